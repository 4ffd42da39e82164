/* ACPI PM1 registers, PM timer and reset register. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/bus.h"

struct harness {
    struct bus pio;
    struct acpi_pm *pm;
    struct timespec now;
    unsigned offs, resets, others;
    int sci;
    unsigned sci_gsi, sci_changes;
};

static void h_power(void *opaque, enum power_event event, int status)
{
    struct harness *h = opaque;
    assert_int_equal(status, 0);
    if (event == POWER_OFF)
        h->offs++;
    else if (event == POWER_RESET)
        h->resets++;
    else
        h->others++;
}

static void h_sci(void *opaque, unsigned gsi, int level)
{
    struct harness *h = opaque;
    h->sci = level;
    h->sci_gsi = gsi;
    h->sci_changes++;
}

static void h_clock(void *opaque, struct timespec *ts)
{
    struct harness *h = opaque;
    *ts = h->now;
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    bus_init(&h->pio, "pio");
    h->now.tv_sec = 1000;
    struct acpi_pm_config cfg = {
        .sci = {.set_level = h_sci, .opaque = h, .gsi = IRQ_SCI},
        .power = {.request = h_power, .opaque = h},
        .monotonic = h_clock,
        .clock_opaque = h,
    };
    h->pm = acpi_pm_create(&cfg);
    assert_non_null(h->pm);
    assert_int_equal(acpi_pm_attach(h->pm, &h->pio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    acpi_pm_destroy(h->pm);
    test_free(h);
    return 0;
}

static uint64_t in(struct harness *h, uint16_t port, unsigned size)
{
    uint64_t v;
    assert_true(bus_read(&h->pio, port, size, &v));
    return v;
}

static void out(struct harness *h, uint16_t port, unsigned size, uint64_t v)
{
    assert_true(bus_write(&h->pio, port, size, v));
}

static void test_sci_en_reads_one(void **state)
{
    struct harness *h = *state;
    assert_int_equal(in(h, PORT_ACPI_PM1_CNT, 2), ACPI_PM1_CNT_SCI_EN);
    out(h, PORT_ACPI_PM1_CNT, 2, 0);
    assert_int_equal(in(h, PORT_ACPI_PM1_CNT, 2), ACPI_PM1_CNT_SCI_EN);
    /* BM_RLD and SLP_TYP are kept; GBL_RLS and SLP_EN are strobes that read 0. */
    out(h, PORT_ACPI_PM1_CNT, 2, ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_GBL_RLS | (3 << 10));
    assert_int_equal(in(h, PORT_ACPI_PM1_CNT, 2),
                     ACPI_PM1_CNT_SCI_EN | ACPI_PM1_CNT_BM_RLD | (3 << 10));
    assert_int_equal(h->offs + h->resets + h->others, 0);
}

static void test_s5_powers_off(void **state)
{
    struct harness *h = *state;
    /* Another sleep state is not "off". */
    out(h, PORT_ACPI_PM1_CNT, 2, ACPI_PM1_CNT_SLP_EN | (1 << ACPI_PM1_CNT_SLP_TYP_SHIFT));
    assert_int_equal(h->offs, 0);
    /* SLP_TYP without SLP_EN does nothing yet... */
    out(h, PORT_ACPI_PM1_CNT, 2, ACPI_S5_SLP_TYP << ACPI_PM1_CNT_SLP_TYP_SHIFT);
    assert_int_equal(h->offs, 0);
    /* ...SLP_EN then sleeps with the type already written (ACPICA's two-step sequence). */
    out(h, PORT_ACPI_PM1_CNT, 2,
        ACPI_PM1_CNT_SLP_EN | (ACPI_S5_SLP_TYP << ACPI_PM1_CNT_SLP_TYP_SHIFT));
    assert_int_equal(h->offs, 1);
    /* A byte write of the high half carries both fields too. */
    out(h, PORT_ACPI_PM1_CNT + 1, 1, (ACPI_PM1_CNT_SLP_EN | (ACPI_S5_SLP_TYP << 10)) >> 8);
    assert_int_equal(h->offs, 2);
    assert_int_equal(h->resets + h->others, 0);
}

static void test_status_enable_and_sci(void **state)
{
    struct harness *h = *state;
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 4), 0);
    acpi_pm_press_power_button(h->pm);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 2), ACPI_PM1_STS_PWRBTN);
    assert_int_equal(h->sci_changes, 0); /* not enabled: no SCI */
    out(h, PORT_ACPI_PM1_EVT + 2, 2, ACPI_PM1_EN_PWRBTN | ACPI_PM1_EN_RTC);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT + 2, 2), ACPI_PM1_EN_PWRBTN | ACPI_PM1_EN_RTC);
    assert_int_equal(h->sci, 1);
    assert_int_equal(h->sci_gsi, IRQ_SCI);
    /* 32-bit read: status low, enable high. */
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 4),
                     ((uint32_t)(ACPI_PM1_EN_PWRBTN | ACPI_PM1_EN_RTC) << 16) |
                         ACPI_PM1_STS_PWRBTN);
    /* Writing 0 leaves status alone; writing 1 clears it and the SCI drops. */
    out(h, PORT_ACPI_PM1_EVT, 2, 0);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 2), ACPI_PM1_STS_PWRBTN);
    assert_int_equal(h->sci, 1);
    out(h, PORT_ACPI_PM1_EVT, 2, ACPI_PM1_STS_PWRBTN);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 2), 0);
    assert_int_equal(h->sci, 0);
    /* A 32-bit write that clears status keeps the enables it writes. */
    acpi_pm_press_power_button(h->pm);
    assert_int_equal(h->sci, 1);
    out(h, PORT_ACPI_PM1_EVT, 4, ((uint32_t)ACPI_PM1_EN_PWRBTN << 16) | 0xffff);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 4), (uint32_t)ACPI_PM1_EN_PWRBTN << 16);
    assert_int_equal(h->sci, 0);
    /* Guest reset clears enables and status. */
    acpi_pm_press_power_button(h->pm);
    assert_int_equal(h->sci, 1);
    acpi_pm_reset(h->pm);
    assert_int_equal(h->sci, 0);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 4), 0);
}

static void test_pm_timer(void **state)
{
    struct harness *h = *state;
    assert_int_equal(ACPI_PM_TMR_32BIT, 1);
    assert_int_equal(in(h, PORT_ACPI_PM_TMR, 4), 0);
    h->now.tv_sec += 1;
    assert_int_equal(in(h, PORT_ACPI_PM_TMR, 4), ACPI_PM_TMR_FREQ);
    h->now.tv_nsec = 500000000;
    assert_int_equal(in(h, PORT_ACPI_PM_TMR, 4), ACPI_PM_TMR_FREQ + ACPI_PM_TMR_FREQ / 2);
    /* The upper half on its own, and writes that cannot change it. */
    out(h, PORT_ACPI_PM_TMR, 4, 0);
    assert_int_equal(in(h, PORT_ACPI_PM_TMR + 2, 2), (ACPI_PM_TMR_FREQ * 3 / 2) >> 16);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 2) & ACPI_PM1_STS_TMR, 0);

    /* 32 bits wide: it passes 2^31 (TMR_STS) and wraps at 2^32 (~1200 s). */
    h->now.tv_sec = 1000 + 600;
    h->now.tv_nsec = 0;
    uint32_t t = (uint32_t)in(h, PORT_ACPI_PM_TMR, 4);
    assert_int_equal(t, (uint32_t)(600ULL * ACPI_PM_TMR_FREQ));
    assert_true(t >= 0x80000000u);
    assert_int_equal(in(h, PORT_ACPI_PM1_EVT, 2) & ACPI_PM1_STS_TMR, ACPI_PM1_STS_TMR);
    out(h, PORT_ACPI_PM1_EVT + 2, 2, ACPI_PM1_EN_TMR);
    assert_int_equal(h->sci, 1);
    out(h, PORT_ACPI_PM1_EVT, 2, ACPI_PM1_STS_TMR);
    assert_int_equal(h->sci, 0);
    h->now.tv_sec = 1000 + 1300;
    assert_int_equal(acpi_pm_timer(h->pm), (uint32_t)(1300ULL * ACPI_PM_TMR_FREQ));
    assert_true(acpi_pm_timer(h->pm) < 0x80000000u);
    assert_int_equal(h->sci, 1);
}

static void test_reset_register(void **state)
{
    struct harness *h = *state;
    out(h, PORT_ACPI_RESET, 1, 0);
    out(h, PORT_ACPI_RESET, 1, 0x06);
    assert_int_equal(h->resets, 0);
    out(h, PORT_ACPI_RESET, 1, ACPI_RESET_VALUE);
    assert_int_equal(h->resets, 1);
    assert_int_equal(h->offs + h->others, 0);
    assert_int_equal(in(h, PORT_ACPI_RESET, 1), 0);
    /* Nothing else is decoded between the timer and the reset register. */
    uint64_t v;
    assert_false(bus_read(&h->pio, PORT_ACPI_PM_BASE + ACPI_PM_IO_LEN, 1, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sci_en_reads_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s5_powers_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_enable_and_sci, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pm_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
    };
    return cmocka_run_group_tests_name("acpi_pm", tests, NULL, NULL);
}
