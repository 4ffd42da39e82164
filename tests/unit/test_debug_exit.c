/* debug-exit: the status a guest writes ends the run; reads are open bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/bus.h"
#include "devices/debug_exit.h"

struct harness {
    unsigned calls;
    enum power_event event;
    int status;
};

static void h_power(void *opaque, enum power_event event, int status)
{
    struct harness *h = opaque;
    h->calls++;
    h->event = event;
    h->status = status;
}

static void test_write_sets_exit_status(void **state)
{
    (void)state;
    struct harness h = {0};
    struct power_ctl power = {.request = h_power, .opaque = &h};
    struct bus pio;
    bus_init(&pio, "pio");
    struct debug_exit *dev = debug_exit_create(&power);
    assert_non_null(dev);
    assert_int_equal(debug_exit_attach(dev, &pio), 0);

    assert_true(bus_write(&pio, PORT_DEBUG_EXIT, 1, 3));
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.event, POWER_EXIT_STATUS);
    assert_int_equal(h.status, 3);
    /* A 32-bit write: the status is masked to 0..255. */
    assert_true(bus_write(&pio, PORT_DEBUG_EXIT, 4, 0x12345601));
    assert_int_equal(h.status, 1);
    assert_true(bus_write(&pio, PORT_DEBUG_EXIT, 4, 0xff));
    assert_int_equal(h.status, 255);
    assert_true(bus_write(&pio, PORT_DEBUG_EXIT, 2, 0x100));
    assert_int_equal(h.status, 0);
    assert_int_equal(h.calls, 4);

    uint64_t v;
    assert_true(bus_read(&pio, PORT_DEBUG_EXIT, 4, &v));
    assert_int_equal(v, 0xffffffffu);
    assert_true(bus_read(&pio, PORT_DEBUG_EXIT + 3, 1, &v));
    assert_int_equal(v, 0xff);
    assert_false(bus_write(&pio, PORT_DEBUG_EXIT + 4, 1, 7));
    assert_int_equal(h.calls, 4);
    debug_exit_destroy(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_sets_exit_status),
    };
    return cmocka_run_group_tests_name("debug_exit", tests, NULL, NULL);
}
