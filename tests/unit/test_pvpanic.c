/* pvpanic: reads advertise the events, a PANICKED write ends the run as a failure, a
 * CRASH_LOADED write alone does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/pvpanic.h"

static int requests;
static enum power_event last_event;
static int last_status;

static void record(void *opaque, enum power_event event, int status)
{
    (void)opaque;
    requests++;
    last_event = event;
    last_status = status;
}

static void test_pvpanic(void **state)
{
    (void)state;
    struct power_ctl power = {record, NULL};
    struct pvpanic *dev = pvpanic_create(&power);
    assert_non_null(dev);
    struct bus pio;
    bus_init(&pio, "pio");
    assert_int_equal(pvpanic_attach(dev, &pio), 0);

    uint64_t v = 0;
    assert_true(bus_read(&pio, PORT_PVPANIC, 1, &v));
    assert_int_equal(v, PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);

    requests = 0;
    assert_true(bus_write(&pio, PORT_PVPANIC, 1, PVPANIC_CRASH_LOADED));
    assert_int_equal(requests, 0);
    assert_true(bus_write(&pio, PORT_PVPANIC, 1, PVPANIC_PANICKED | PVPANIC_CRASH_LOADED));
    assert_int_equal(requests, 1);
    assert_int_equal(last_event, POWER_PANIC);
    assert_int_equal(last_status, 1);
    /* Only the one port is decoded. */
    assert_false(bus_write(&pio, PORT_PVPANIC + 1, 1, PVPANIC_PANICKED));
    pvpanic_destroy(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pvpanic)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
