/* The CMOS RTC against an injected clock: BCD/binary, 12/24 h, setting the time, NVRAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/bus.h"
#include "devices/rtc.h"

struct harness {
    struct bus pio;
    struct rtc *rtc;
    struct timespec now; /* what the injected host clock says */
};

static void h_now(void *opaque, struct timespec *ts)
{
    struct harness *h = opaque;
    *ts = h->now;
}

static time_t utc(int year, int mon, int mday, int hour, int min, int sec)
{
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = mday,
                    .tm_hour = hour, .tm_min = min, .tm_sec = sec};
    return timegm(&tm);
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    bus_init(&h->pio, "pio");
    /* Friday 2026-11-27 13:45:07 UTC. */
    h->now.tv_sec = utc(2026, 11, 27, 13, 45, 7);
    struct rtc_clock clock = {.now = h_now, .opaque = h};
    h->rtc = rtc_create(&clock);
    assert_non_null(h->rtc);
    assert_int_equal(rtc_attach(h->rtc, &h->pio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    rtc_destroy(h->rtc);
    test_free(h);
    return 0;
}

static uint8_t cmos_read(struct harness *h, uint8_t idx)
{
    uint64_t v;
    assert_true(bus_write(&h->pio, PORT_CMOS_INDEX, 1, idx));
    assert_true(bus_read(&h->pio, PORT_CMOS_DATA, 1, &v));
    return (uint8_t)v;
}

static void cmos_write(struct harness *h, uint8_t idx, uint8_t val)
{
    assert_true(bus_write(&h->pio, PORT_CMOS_INDEX, 1, idx));
    assert_true(bus_write(&h->pio, PORT_CMOS_DATA, 1, val));
}

static void test_bcd_24h_default(void **state)
{
    struct harness *h = *state;
    assert_int_equal(cmos_read(h, RTC_REG_B), RTC_B_24H);
    assert_int_equal(cmos_read(h, RTC_SECONDS), 0x07);
    assert_int_equal(cmos_read(h, RTC_MINUTES), 0x45);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x13);
    assert_int_equal(cmos_read(h, RTC_DAY_OF_WEEK), 0x06); /* Friday; Sunday is 1 */
    assert_int_equal(cmos_read(h, RTC_DAY_OF_MONTH), 0x27);
    assert_int_equal(cmos_read(h, RTC_MONTH), 0x11);
    assert_int_equal(cmos_read(h, RTC_YEAR), 0x26);
    assert_int_equal(cmos_read(h, RTC_CENTURY), 0x20);
    /* Time follows the host clock at read time. */
    h->now.tv_sec += 60 * 60 + 3;
    assert_int_equal(cmos_read(h, RTC_SECONDS), 0x10);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x14);
}

static void test_binary_and_12h(void **state)
{
    struct harness *h = *state;
    cmos_write(h, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
    assert_int_equal(cmos_read(h, RTC_SECONDS), 7);
    assert_int_equal(cmos_read(h, RTC_MINUTES), 45);
    assert_int_equal(cmos_read(h, RTC_HOURS), 13);
    assert_int_equal(cmos_read(h, RTC_DAY_OF_MONTH), 27);
    assert_int_equal(cmos_read(h, RTC_MONTH), 11);
    assert_int_equal(cmos_read(h, RTC_YEAR), 26);
    assert_int_equal(cmos_read(h, RTC_CENTURY), 20);
    /* 12-hour binary: 1 PM is 1 with bit 7. */
    cmos_write(h, RTC_REG_B, RTC_B_DM_BINARY);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x81);
    /* 12-hour BCD: midnight reads 12 AM, noon 12 PM, 11 PM is 0x91. */
    cmos_write(h, RTC_REG_B, 0);
    h->now.tv_sec = utc(2026, 11, 27, 0, 30, 0);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x12);
    h->now.tv_sec = utc(2026, 11, 27, 12, 30, 0);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x92);
    h->now.tv_sec = utc(2026, 11, 27, 23, 30, 0);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x91);
}

static void test_status_registers(void **state)
{
    struct harness *h = *state;
    h->now.tv_nsec = 0;
    assert_int_equal(cmos_read(h, RTC_REG_A), 0x26);
    /* Just before the second rolls over an update is in progress. */
    h->now.tv_nsec = 999900000;
    assert_int_equal(cmos_read(h, RTC_REG_A), RTC_A_UIP | 0x26);
    cmos_write(h, RTC_REG_A, 0xa6); /* UIP is read-only */
    h->now.tv_nsec = 500000000;
    assert_int_equal(cmos_read(h, RTC_REG_A), 0x26);
    assert_int_equal(cmos_read(h, RTC_REG_C), 0);
    assert_int_equal(cmos_read(h, RTC_REG_D), RTC_D_VRT);
    cmos_write(h, RTC_REG_D, 0);
    cmos_write(h, RTC_REG_C, 0xff);
    assert_int_equal(cmos_read(h, RTC_REG_D), RTC_D_VRT);
    assert_int_equal(cmos_read(h, RTC_REG_C), 0);
    /* The NMI-disable bit of the index port does not change which register is addressed. */
    assert_int_equal(cmos_read(h, RTC_INDEX_NMI_DISABLE | RTC_MINUTES), 0x45);
    /* The index port itself is write-only. */
    uint64_t v;
    assert_true(bus_read(&h->pio, PORT_CMOS_INDEX, 1, &v));
    assert_int_equal(v, 0xff);
}

static void test_guest_sets_clock(void **state)
{
    struct harness *h = *state;
    cmos_write(h, RTC_REG_B, RTC_B_SET | RTC_B_24H | RTC_B_UIE);
    assert_int_equal(cmos_read(h, RTC_REG_B), RTC_B_SET | RTC_B_24H); /* SET clears UIE */
    cmos_write(h, RTC_CENTURY, 0x20);
    cmos_write(h, RTC_YEAR, 0x30);
    cmos_write(h, RTC_MONTH, 0x01);
    cmos_write(h, RTC_DAY_OF_MONTH, 0x02);
    cmos_write(h, RTC_HOURS, 0x03);
    cmos_write(h, RTC_MINUTES, 0x04);
    cmos_write(h, RTC_SECONDS, 0x05);
    /* Frozen while SET is on, whatever the host clock does. */
    h->now.tv_sec += 100;
    assert_int_equal(cmos_read(h, RTC_SECONDS), 0x05);
    assert_int_equal(cmos_read(h, RTC_YEAR), 0x30);
    cmos_write(h, RTC_REG_B, RTC_B_24H);
    /* Running again from the time written. */
    h->now.tv_sec += 10;
    assert_int_equal(cmos_read(h, RTC_SECONDS), 0x15);
    assert_int_equal(cmos_read(h, RTC_MINUTES), 0x04);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x03);
    assert_int_equal(cmos_read(h, RTC_DAY_OF_MONTH), 0x02);
    assert_int_equal(cmos_read(h, RTC_MONTH), 0x01);
    assert_int_equal(cmos_read(h, RTC_YEAR), 0x30);
    assert_int_equal(cmos_read(h, RTC_CENTURY), 0x20);
    assert_int_equal(cmos_read(h, RTC_DAY_OF_WEEK), 0x04); /* 2030-01-02 is a Wednesday */
    assert_int_equal(h->rtc->offset, utc(2030, 1, 2, 3, 4, 5) - (h->now.tv_sec - 10));

    /* Binary, 12-hour: writing 11 PM while running takes effect at once. */
    cmos_write(h, RTC_REG_B, RTC_B_DM_BINARY);
    cmos_write(h, RTC_HOURS, 0x80 | 11);
    cmos_write(h, RTC_REG_B, RTC_B_DM_BINARY | RTC_B_24H);
    assert_int_equal(cmos_read(h, RTC_HOURS), 23);
    assert_int_equal(cmos_read(h, RTC_MINUTES), 4);
    /* 12 AM is midnight and 12 PM is noon (BCD, 12-hour). */
    cmos_write(h, RTC_REG_B, 0);
    cmos_write(h, RTC_HOURS, 0x12);
    cmos_write(h, RTC_REG_B, RTC_B_24H);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x00);
    cmos_write(h, RTC_REG_B, 0);
    cmos_write(h, RTC_HOURS, 0x92);
    cmos_write(h, RTC_REG_B, RTC_B_24H);
    assert_int_equal(cmos_read(h, RTC_HOURS), 0x12);
}

static void test_garbage_time_is_survivable(void **state)
{
    struct harness *h = *state;
    /* Nonsense BCD digits from the guest: the clock stays a valid calendar. */
    cmos_write(h, RTC_REG_B, RTC_B_SET | RTC_B_24H);
    cmos_write(h, RTC_MONTH, 0xff);
    cmos_write(h, RTC_DAY_OF_MONTH, 0xee);
    cmos_write(h, RTC_HOURS, 0x99);
    cmos_write(h, RTC_CENTURY, 0xff);
    cmos_write(h, RTC_REG_B, RTC_B_24H);
    static const uint8_t regs[] = {RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_MONTH,
                                   RTC_MONTH, RTC_YEAR, RTC_CENTURY};
    for (unsigned i = 0; i < sizeof(regs); i++) {
        uint8_t v = cmos_read(h, regs[i]);
        assert_true((v & 0x0f) <= 9 && (v >> 4) <= 9);
    }
    uint8_t mon = cmos_read(h, RTC_MONTH);
    assert_true(mon >= 0x01 && mon <= 0x12);
}

static void test_nvram_persists(void **state)
{
    struct harness *h = *state;
    for (unsigned i = 0x0e; i < RTC_NVRAM_SIZE; i++) {
        if (i != RTC_CENTURY)
            cmos_write(h, (uint8_t)i, (uint8_t)(i ^ 0x5a));
    }
    /* Alarm registers are plain storage too. */
    cmos_write(h, RTC_SECONDS_ALARM, 0x33);
    /* A guest reset does not touch the RTC; time passes and the clock is set meanwhile. */
    h->now.tv_sec += 3600;
    cmos_write(h, RTC_MINUTES, 0x00);
    for (unsigned i = 0x0e; i < RTC_NVRAM_SIZE; i++) {
        if (i != RTC_CENTURY)
            assert_int_equal(cmos_read(h, (uint8_t)i), i ^ 0x5a);
    }
    assert_int_equal(cmos_read(h, RTC_SECONDS_ALARM), 0x33);
    /* One 16-bit access writes index and data together. */
    assert_true(bus_write(&h->pio, PORT_CMOS_INDEX, 2, 0xc340));
    assert_int_equal(cmos_read(h, 0x40), 0xc3);
}

static int bcd_ok(uint8_t v)
{
    return (v & 0x0f) <= 9 && (v >> 4) <= 9;
}

/* Random guest accesses to both ports: the calendar stays a calendar and the status registers
 * keep their fixed bits. */
static void test_random_accesses(void **state)
{
    struct harness *h = *state;
    uint32_t seed = 4242;
    for (unsigned i = 0; i < 100000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 4;
        unsigned size = (r & 1) ? 2 : 1, port = PORT_CMOS_INDEX + ((r >> 1) & 1);
        uint64_t v;
        if (port + size > PORT_CMOS_DATA + 1)
            size = 1;
        if (r & 4)
            bus_write(&h->pio, port, size, r >> 8);
        else
            bus_read(&h->pio, port, size, &v);
        h->now.tv_sec += (r >> 20) & 3;
        h->now.tv_nsec = (long)((r >> 3) % 1000000000u);
        assert_true(h->rtc->index < RTC_NVRAM_SIZE);
    }
    cmos_write(h, RTC_REG_B, RTC_B_24H);
    static const uint8_t regs[] = {RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK,
                                   RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, RTC_CENTURY};
    for (unsigned i = 0; i < sizeof(regs); i++)
        assert_true(bcd_ok(cmos_read(h, regs[i])));
    assert_true(cmos_read(h, RTC_SECONDS) <= 0x59);
    assert_true(cmos_read(h, RTC_HOURS) <= 0x23);
    assert_int_equal(cmos_read(h, RTC_REG_D), RTC_D_VRT);
    assert_int_equal(cmos_read(h, RTC_REG_C), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bcd_24h_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_12h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_sets_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_time_is_survivable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nvram_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_accesses, setup, teardown),
    };
    return cmocka_run_group_tests_name("rtc", tests, NULL, NULL);
}
