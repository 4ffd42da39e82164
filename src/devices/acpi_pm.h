/* ACPI fixed hardware: the PM1a event and control registers, the PM timer and the reset
 * register, at the ports the FADT names (PORT_ACPI_PM_BASE.., PORT_ACPI_RESET).
 *
 * Contract with the ACPI tables: PM1a_EVT_BLK is 4 bytes (status, enable), PM1a_CNT_BLK 2
 * bytes, PM_TMR_BLK 4 bytes with a 32-bit counter (set TMR_VAL_EXT in the FADT flags:
 * ACPI_PM_TMR_32BIT), RESET_REG an 8-bit I/O register taking ACPI_RESET_VALUE. SCI_EN always
 * reads 1: the machine starts in ACPI mode, so the FADT needs no SMI_CMD. _S5's SLP_TYP is
 * ACPI_S5_SLP_TYP. No GPE block is modelled. */
#ifndef VIREO_DEVICES_ACPI_PM_H
#define VIREO_DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "devices/bus.h"
#include "devices/platform.h"

#define ACPI_PM_TMR_32BIT 1       /* the timer counts 32 bits: FADT flag TMR_VAL_EXT */
#define ACPI_PM_TMR_FREQ  3579545 /* Hz, fixed by the ACPI specification */

#define ACPI_PM1_EVT_LEN 4
#define ACPI_PM1_CNT_LEN 2
#define ACPI_PM_TMR_LEN  4
#define ACPI_PM_IO_LEN   12 /* EVT, CNT (+2 reserved), TMR as one port range */

#define ACPI_PM1_STS_TMR    0x0001
#define ACPI_PM1_STS_BM     0x0010
#define ACPI_PM1_STS_GBL    0x0020
#define ACPI_PM1_STS_PWRBTN 0x0100
#define ACPI_PM1_STS_SLPBTN 0x0200
#define ACPI_PM1_STS_RTC    0x0400
#define ACPI_PM1_STS_WAK    0x8000

#define ACPI_PM1_EN_TMR    0x0001
#define ACPI_PM1_EN_GBL    0x0020
#define ACPI_PM1_EN_PWRBTN 0x0100
#define ACPI_PM1_EN_SLPBTN 0x0200
#define ACPI_PM1_EN_RTC    0x0400

#define ACPI_PM1_CNT_SCI_EN      0x0001
#define ACPI_PM1_CNT_BM_RLD      0x0002
#define ACPI_PM1_CNT_GBL_RLS     0x0004
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP     0x1c00
#define ACPI_PM1_CNT_SLP_EN      0x2000

struct acpi_pm_config {
    struct irq_line sci;    /* IRQ_SCI */
    struct power_ctl power; /* S5 -> POWER_OFF, reset register -> POWER_RESET */
    /* Source of the PM timer: NULL means clock_gettime(CLOCK_MONOTONIC). Tests inject one. */
    void (*monotonic)(void *opaque, struct timespec *ts);
    void *clock_opaque;
};

/* Device state; sts, en, cnt and the timer's start are what a snapshot saves. */
struct acpi_pm {
    pthread_mutex_t lock;
    struct acpi_pm_config cfg;
    uint16_t sts, en, cnt;
    uint64_t tmr_start_ns; /* monotonic time at which the counter read 0 */
    uint32_t tmr_msb;      /* counter bit 31 at the last look, for TMR_STS */
    bool sci_level;
    bool warned_sleep; /* an unsupported sleep state was logged once */
};

/* Allocate the PM block in its power-on state (ACPI mode, nothing pending). Returns NULL with
 * errno set. */
struct acpi_pm *acpi_pm_create(const struct acpi_pm_config *cfg);
/* Free it; it must no longer be reachable from a bus. */
void acpi_pm_destroy(struct acpi_pm *pm);
/* Register the PM1/timer ports at PORT_ACPI_PM_BASE and the reset register at PORT_ACPI_RESET.
 * Returns 0 or -errno. */
int acpi_pm_attach(struct acpi_pm *pm, struct bus *pio);
/* Clear status and enables (guest reset). The timer keeps counting. */
void acpi_pm_reset(struct acpi_pm *pm);
/* A press of the power button: PWRBTN_STS, and an SCI if the guest enabled it (graceful
 * shutdown requested by the host). */
void acpi_pm_press_power_button(struct acpi_pm *pm);
/* The PM timer's current count (what PM_TMR reads). */
uint32_t acpi_pm_timer(struct acpi_pm *pm);

/* Port-I/O handlers: the PM1/timer block (opaque: struct acpi_pm) and the reset register. */
extern const struct bus_dev_ops acpi_pm_ops;
extern const struct bus_dev_ops acpi_pm_reset_ops;

#endif
