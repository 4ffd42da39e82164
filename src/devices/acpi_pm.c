#include "devices/acpi_pm.h"

#include <errno.h>
#include <stdlib.h>

#include "arch/x86/layout.h"
#include "util/log.h"

/* Offsets inside the PM1/timer port range. */
#define PM_STS 0
#define PM_EN  2
#define PM_CNT 4
#define PM_TMR 8

static uint64_t acpi_pm_now_ns(const struct acpi_pm *pm)
{
    struct timespec ts;
    if (pm->cfg.monotonic)
        pm->cfg.monotonic(pm->cfg.clock_opaque, &ts);
    else
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint32_t acpi_pm_ticks(const struct acpi_pm *pm)
{
    uint64_t ns = acpi_pm_now_ns(pm) - pm->tmr_start_ns;
    /* Split so the product fits in 64 bits for any uptime. */
    uint64_t sec = ns / 1000000000ULL, rem = ns % 1000000000ULL;
    return (uint32_t)(sec * ACPI_PM_TMR_FREQ + rem * ACPI_PM_TMR_FREQ / 1000000000ULL);
}

/* TMR_STS is set each time the counter's top bit changes. No host timer watches for that: the
 * flip is noticed at the guest's next access to the block, so a TMR_EN interrupt comes late.
 * Guests use the timer as a clock source and leave TMR_EN off (Linux does). */
static uint32_t acpi_pm_sample_timer(struct acpi_pm *pm)
{
    uint32_t ticks = acpi_pm_ticks(pm), msb = ticks >> 31;
    if (msb != pm->tmr_msb) {
        pm->tmr_msb = msb;
        pm->sts |= ACPI_PM1_STS_TMR;
    }
    return ticks;
}

static void acpi_pm_update_sci(struct acpi_pm *pm)
{
    static const uint16_t events = ACPI_PM1_STS_TMR | ACPI_PM1_STS_GBL | ACPI_PM1_STS_PWRBTN |
                                   ACPI_PM1_STS_SLPBTN | ACPI_PM1_STS_RTC;
    bool level = (pm->sts & pm->en & events) && (pm->cnt & ACPI_PM1_CNT_SCI_EN);
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_line_set(&pm->cfg.sci, level);
    }
}

static void acpi_pm_power_on(struct acpi_pm *pm)
{
    pm->sts = 0;
    pm->en = 0;
    pm->cnt = ACPI_PM1_CNT_SCI_EN;
}

static uint64_t acpi_pm_read(void *opaque, uint64_t offset, unsigned size)
{
    struct acpi_pm *pm = opaque;
    uint8_t image[ACPI_PM_IO_LEN] = {0};
    uint64_t val = 0;

    pthread_mutex_lock(&pm->lock);
    uint32_t ticks = acpi_pm_sample_timer(pm);
    acpi_pm_update_sci(pm);
    uint16_t regs[3] = {pm->sts, pm->en, pm->cnt};
    pthread_mutex_unlock(&pm->lock);

    for (unsigned r = 0; r < 3; r++) {
        image[2 * r] = (uint8_t)regs[r];
        image[2 * r + 1] = (uint8_t)(regs[r] >> 8);
    }
    for (unsigned i = 0; i < 4; i++)
        image[PM_TMR + i] = (uint8_t)(ticks >> (8 * i));
    for (unsigned i = 0; i < size; i++) {
        if (offset + i < ACPI_PM_IO_LEN)
            val |= (uint64_t)image[offset + i] << (8 * i);
    }
    return val;
}

/* One byte lane of a write. Returns true when it requests S5. */
static bool acpi_pm_write_byte(struct acpi_pm *pm, unsigned off, uint8_t byte)
{
    unsigned shift = 8 * (off & 1);
    uint16_t bits = (uint16_t)(byte << shift), lane = (uint16_t)(0xff << shift);

    switch (off & ~1u) {
    case PM_STS:
        pm->sts &= (uint16_t)~bits; /* write 1 to clear */
        break;
    case PM_EN:
        pm->en = (uint16_t)((pm->en & ~lane) | bits);
        break;
    case PM_CNT: {
        /* SCI_EN is fixed at 1; GBL_RLS and SLP_EN are write-only strobes. */
        uint16_t keep = ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_SLP_TYP;
        pm->cnt = (uint16_t)((pm->cnt & ~(lane & keep)) | (bits & keep));
        if (bits & ACPI_PM1_CNT_SLP_EN) {
            unsigned typ = (pm->cnt & ACPI_PM1_CNT_SLP_TYP) >> ACPI_PM1_CNT_SLP_TYP_SHIFT;
            if (typ == ACPI_S5_SLP_TYP)
                return true;
            if (!pm->warned_sleep) {
                pm->warned_sleep = true;
                log_warn("acpi: guest asked for sleep type %u; only S5 (off) is supported", typ);
            }
        }
        break;
    }
    default:
        break; /* reserved bytes and the read-only timer */
    }
    return false;
}

static void acpi_pm_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct acpi_pm *pm = opaque;
    bool off = false;

    pthread_mutex_lock(&pm->lock);
    acpi_pm_sample_timer(pm);
    for (unsigned i = 0; i < size; i++) {
        if (offset + i < ACPI_PM_IO_LEN)
            off |= acpi_pm_write_byte(pm, (unsigned)(offset + i), (uint8_t)(data >> (8 * i)));
    }
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
    /* Outside the lock: the machine may reset or tear down this device while handling it. */
    if (off)
        power_request(&pm->cfg.power, POWER_OFF, 0);
}

static uint64_t acpi_pm_reset_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque;
    (void)offset;
    (void)size;
    return 0; /* write-only register */
}

static void acpi_pm_reset_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct acpi_pm *pm = opaque;
    (void)offset;
    (void)size;
    if ((data & 0xff) == ACPI_RESET_VALUE)
        power_request(&pm->cfg.power, POWER_RESET, 0);
}

const struct bus_dev_ops acpi_pm_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
};

const struct bus_dev_ops acpi_pm_reset_ops = {
    .read = acpi_pm_reset_read,
    .write = acpi_pm_reset_write,
};

struct acpi_pm *acpi_pm_create(const struct acpi_pm_config *cfg)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return NULL;
    int err = pthread_mutex_init(&pm->lock, NULL);
    if (err) {
        free(pm);
        errno = err;
        return NULL;
    }
    if (cfg)
        pm->cfg = *cfg;
    pm->tmr_start_ns = acpi_pm_now_ns(pm);
    acpi_pm_power_on(pm);
    return pm;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    if (!pm)
        return;
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

int acpi_pm_attach(struct acpi_pm *pm, struct bus *pio)
{
    int ret = bus_register(pio, PORT_ACPI_PM_BASE, ACPI_PM_IO_LEN, &acpi_pm_ops, pm, "acpi-pm");
    if (ret < 0)
        return ret;
    return bus_register(pio, PORT_ACPI_RESET, 1, &acpi_pm_reset_ops, pm, "acpi-reset");
}

void acpi_pm_reset(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    acpi_pm_power_on(pm);
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    pm->sts |= ACPI_PM1_STS_PWRBTN;
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

uint32_t acpi_pm_timer(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    uint32_t ticks = acpi_pm_sample_timer(pm);
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
    return ticks;
}
