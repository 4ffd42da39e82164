/* The i8042 controller: status, command byte, self-tests, A20 and the reset line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/bus.h"
#include "devices/i8042.h"

struct harness {
    struct bus pio;
    struct i8042 *kbc;
    unsigned resets, others;
};

static void h_power(void *opaque, enum power_event event, int status)
{
    struct harness *h = opaque;
    (void)status;
    if (event == POWER_RESET)
        h->resets++;
    else
        h->others++;
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    bus_init(&h->pio, "pio");
    struct power_ctl power = {.request = h_power, .opaque = h};
    h->kbc = i8042_create(&power);
    assert_non_null(h->kbc);
    assert_int_equal(i8042_attach(h->kbc, &h->pio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    i8042_destroy(h->kbc);
    test_free(h);
    return 0;
}

static uint8_t inb(struct harness *h, uint16_t port)
{
    uint64_t v;
    assert_true(bus_read(&h->pio, port, 1, &v));
    return (uint8_t)v;
}

static void outb(struct harness *h, uint16_t port, uint8_t v)
{
    assert_true(bus_write(&h->pio, port, 1, v));
}

/* Issue a command and collect its one-byte answer the way drivers do: poll OBF, then read. */
static uint8_t command_reply(struct harness *h, uint8_t cmd)
{
    outb(h, PORT_I8042_CMD, cmd);
    assert_int_equal(inb(h, PORT_I8042_CMD) & I8042_STS_OBF, I8042_STS_OBF);
    uint8_t v = inb(h, PORT_I8042_DATA);
    assert_int_equal(inb(h, PORT_I8042_CMD) & I8042_STS_OBF, 0);
    return v;
}

static void test_status_after_power_on(void **state)
{
    struct harness *h = *state;
    uint8_t st = inb(h, PORT_I8042_CMD);
    assert_int_equal(st & I8042_STS_OBF, 0);     /* nothing to read */
    assert_int_equal(st & I8042_STS_IBF, 0);     /* ready for input */
    assert_int_equal(st & I8042_STS_SYS, I8042_STS_SYS);
    /* The command port and the data port are separate devices on the bus: 0x61..0x63 are not
     * the controller's. */
    uint64_t v;
    assert_false(bus_read(&h->pio, 0x61, 1, &v));
}

static void test_self_tests(void **state)
{
    struct harness *h = *state;
    assert_int_equal(command_reply(h, I8042_CMD_SELF_TEST), 0x55);
    assert_int_equal(command_reply(h, I8042_CMD_KBD_TEST), 0x00);
    assert_int_equal(inb(h, PORT_I8042_CMD) & I8042_STS_CMD, I8042_STS_CMD);
    assert_int_equal(h->resets, 0);
}

static void test_command_byte(void **state)
{
    struct harness *h = *state;
    uint8_t ctr = command_reply(h, I8042_CMD_READ_CTR);
    assert_int_equal(ctr & I8042_CTR_SYS, I8042_CTR_SYS);
    outb(h, PORT_I8042_CMD, I8042_CMD_WRITE_CTR);
    outb(h, PORT_I8042_DATA, 0x41);
    assert_int_equal(inb(h, PORT_I8042_CMD) & I8042_STS_CMD, 0); /* last write was data */
    assert_int_equal(command_reply(h, I8042_CMD_READ_CTR), 0x41);
    /* SYS cleared in the command byte shows in the status register. */
    assert_int_equal(inb(h, PORT_I8042_CMD) & I8042_STS_SYS, 0);
    /* Keyboard and aux disable commands edit the command byte. */
    outb(h, PORT_I8042_CMD, I8042_CMD_KBD_DIS);
    outb(h, PORT_I8042_CMD, I8042_CMD_AUX_DIS);
    assert_int_equal(command_reply(h, I8042_CMD_READ_CTR),
                     0x41 | I8042_CTR_KBDDIS | I8042_CTR_AUXDIS);
    outb(h, PORT_I8042_CMD, I8042_CMD_KBD_EN);
    outb(h, PORT_I8042_CMD, I8042_CMD_AUX_EN);
    assert_int_equal(command_reply(h, I8042_CMD_READ_CTR), 0x41);
    /* A data byte without a pending command goes to the (absent) keyboard: no effect. */
    outb(h, PORT_I8042_DATA, 0xf4);
    assert_int_equal(command_reply(h, I8042_CMD_READ_CTR), 0x41);
}

static void test_a20_is_harmless(void **state)
{
    struct harness *h = *state;
    /* Linux's A20 sequence: 0xd1 then 0xdf on the data port. */
    outb(h, PORT_I8042_CMD, I8042_CMD_WRITE_OUTP);
    outb(h, PORT_I8042_DATA, 0xdf);
    assert_int_equal(command_reply(h, I8042_CMD_READ_OUTP), 0xdf);
    outb(h, PORT_I8042_CMD, I8042_CMD_A20_OFF);
    assert_int_equal(command_reply(h, I8042_CMD_READ_OUTP) & I8042_OUTP_A20, 0);
    outb(h, PORT_I8042_CMD, I8042_CMD_A20_ON);
    assert_int_equal(command_reply(h, I8042_CMD_READ_OUTP) & I8042_OUTP_A20, I8042_OUTP_A20);
    assert_int_equal(h->resets, 0);
    assert_int_equal(h->others, 0);
}

static void test_reset_pulse(void **state)
{
    struct harness *h = *state;
    outb(h, PORT_I8042_CMD, I8042_CMD_PULSE_RESET);
    assert_int_equal(h->resets, 1);
    /* Pulse commands that leave bit 0 alone do not reset. */
    outb(h, PORT_I8042_CMD, 0xff);
    outb(h, PORT_I8042_CMD, 0xfd);
    assert_int_equal(h->resets, 1);
    /* Driving the reset line low through the output port resets too. */
    outb(h, PORT_I8042_CMD, I8042_CMD_WRITE_OUTP);
    outb(h, PORT_I8042_DATA, 0x02);
    assert_int_equal(h->resets, 2);
    assert_int_equal(h->others, 0);
}

static void test_reset_state(void **state)
{
    struct harness *h = *state;
    outb(h, PORT_I8042_CMD, I8042_CMD_WRITE_CTR);
    outb(h, PORT_I8042_DATA, 0x00);
    outb(h, PORT_I8042_CMD, I8042_CMD_WRITE_KBD_OUTBUF);
    outb(h, PORT_I8042_DATA, 0xab);
    assert_int_equal(inb(h, PORT_I8042_CMD) & I8042_STS_OBF, I8042_STS_OBF);
    i8042_reset(h->kbc);
    assert_int_equal(inb(h, PORT_I8042_CMD) & (I8042_STS_OBF | I8042_STS_SYS), I8042_STS_SYS);
    assert_int_equal(command_reply(h, I8042_CMD_READ_CTR) & I8042_CTR_SYS, I8042_CTR_SYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_after_power_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_tests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a20_is_harmless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_pulse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
    };
    return cmocka_run_group_tests_name("i8042", tests, NULL, NULL);
}
