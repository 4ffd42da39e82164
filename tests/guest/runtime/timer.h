/* Time from the ACPI PM timer (3.579545 MHz, port from the FADT): the one clock every PC-like
 * machine has, needing no calibration, and the same on either accelerator. */
#ifndef GUEST_TIMER_H
#define GUEST_TIMER_H

#include <stdint.h>

#define PMTIMER_HZ 3579545ULL

/* Finds the PM timer through ACPI. Returns 0, or -1 without one. */
int timer_init(void);
/* Microseconds since timer_init(). Must be called at least every ~4 s to see every wrap of a
 * 24-bit counter. */
uint64_t timer_now_us(void);
/* Busy-waits at least us microseconds. */
void timer_delay_us(uint64_t us);
/* For a wait loop counted in turns: true once `turns` have passed and at least SPIN_FLOOR_US
 * too. A loaded host can run the guest's turns faster than the VMM's I/O thread gets a CPU, so
 * a turn count alone fails tests that are not wrong; a device that never answers still fails.
 * *deadline is the loop's own state (set when the turns run out). */
#define SPIN_FLOOR_US 5000000ULL
int spin_expired(unsigned long turn, unsigned long turns, uint64_t *deadline);

#endif
