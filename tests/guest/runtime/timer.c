/* The PM timer extended to 64 bits in software. */
#include "timer.h"

#include "acpi.h"
#include "io.h"

static uint16_t pm_port;
static uint32_t pm_mask;
static uint32_t last_raw;
static uint64_t ticks;

int timer_init(void)
{
    int bits32;

    if (pm_port)
        return 0;
    if (acpi_init())
        return -1;
    pm_port = acpi_pm_timer_port(&bits32);
    if (!pm_port)
        return -1;
    pm_mask = bits32 ? 0xffffffffu : 0xffffffu;
    last_raw = inl(pm_port) & pm_mask;
    ticks = 0;
    return 0;
}

uint64_t timer_now_us(void)
{
    if (!pm_port)
        return 0;
    uint32_t raw = inl(pm_port) & pm_mask;
    ticks += (raw - last_raw) & pm_mask;
    last_raw = raw;
    return ticks * 1000000ULL / PMTIMER_HZ;
}

void timer_delay_us(uint64_t us)
{
    uint64_t end = timer_now_us() + us;

    if (!pm_port)
        return;
    while (timer_now_us() < end)
        cpu_relax();
}

int spin_expired(unsigned long turn, unsigned long turns, uint64_t *deadline)
{
    if (turn < turns)
        return 0;
    if (turn == turns) {
        if (timer_init() != 0)
            return 1; /* no clock: the turn count is all there is */
        *deadline = timer_now_us() + SPIN_FLOOR_US;
        return 0;
    }
    /* A PM timer read leaves the guest: look at the clock now and then only. */
    return (turn & 1023) == 0 && timer_now_us() >= *deadline;
}
