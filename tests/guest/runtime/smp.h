/* Starting the application processors: INIT, SIPI, SIPI to each enabled MADT CPU, one at a
 * time, through a real-mode trampoline at TRAMPOLINE_BASE. Each AP climbs to long mode on the
 * boot CPU's page tables and IDT, calls the guest's function, then halts. */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include <stdint.h>

/* Runs on each AP in long mode, on its own stack; cpu is 1.. in start order. */
typedef void (*smp_ap_fn)(unsigned cpu, uint32_t apic_id);

/* Starts every enabled CPU in the MADT other than this one. Returns how many reported in
 * (called fn and returned), or -1 if the machine lacks what SMP start-up needs (MADT, LAPIC,
 * PM timer, usable low memory). An AP that does not report within timeout_us is skipped with a
 * line on the console. */
int smp_start_aps(smp_ap_fn fn, uint64_t timeout_us);
/* Called by entry.S on each AP. */
void ap_runtime_entry(void);

#endif
