/* apic_priority: fixed interrupts wait while a higher priority class is in service or TPR blocks
 * them, and are taken as soon as EOI or a lower TPR lets them through, with no other interrupt
 * to wake the CPU (a CPU that only looks for interrupts when a new one arrives would sit on
 * them: Linux's network stall on the software CPU was this). Self-IPIs only: no timer runs. */
#include "runtime.h"

#include <stdbool.h>

#include "apic.h"
#include "io.h"
#include "timer.h"
#include "trap.h"

const char guest_name[] = "apic_priority";

#define ICR_SELF  (1u << 18) /* destination shorthand: self */
#define LAPIC_IRR 0x200
#define VEC_HIGH  0xe0
#define VEC_LOW   0x30
#define VEC_MID   0x41
#define VEC_MID2  0x45
#define VEC_TPR   0x35

static volatile unsigned order[8];
static volatile unsigned taken;
static volatile bool low_pending_in_high; /* VEC_LOW was in IRR while VEC_HIGH was in service */

static void self_ipi(unsigned vector)
{
    ASSERT(lapic_send_ipi(0, ICR_SELF | vector) == 0);
}

static bool in_irr(unsigned vector)
{
    return lapic_read(LAPIC_IRR + (vector / 32) * 0x10) & (1u << (vector % 32));
}

static void record(struct trap_frame *f)
{
    if (taken < 8)
        order[taken] = (unsigned)f->vector;
    taken++;
}

static void on_high(struct trap_frame *f)
{
    record(f);
    /* A lower class arriving now must wait in IRR until this handler's EOI. */
    self_ipi(VEC_LOW);
    for (unsigned i = 0; i < 1000; i++)
        cpu_relax();
    low_pending_in_high = in_irr(VEC_LOW) && taken == 1;
    lapic_eoi();
}

static void on_other(struct trap_frame *f)
{
    record(f);
    lapic_eoi();
}

static uint64_t tsc_per_ms;

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* The waits below read the TSC, not the PM timer: a port access leaves the CPU for the VMM,
 * and that return trip alone would make the VMM look for interrupts again, hiding the bug. */
static void calibrate_tsc(void)
{
    uint64_t t0 = timer_now_us(), c0 = rdtsc();
    while (timer_now_us() - t0 < 20000)
        cpu_relax();
    tsc_per_ms = (rdtsc() - c0) / 20;
    ASSERT(tsc_per_ms > 0);
}

/* Wait up to 2 s (interrupts enabled, nothing else pending) for `want` interrupts. */
static bool wait_taken(unsigned want)
{
    uint64_t deadline = rdtsc() + 2000 * tsc_per_ms;
    while (taken < want && rdtsc() < deadline)
        cpu_relax();
    return taken >= want;
}

int guest_main(void)
{
    ASSERT(lapic_init() == 0);
    ASSERT(timer_init() == 0);
    calibrate_tsc();
    outb(0xff, 0x21); /* the 8259s stay out of the way */
    outb(0xff, 0xa1);
    lapic_enable();
    trap_set_handler(VEC_HIGH, on_high);
    trap_set_handler(VEC_LOW, on_other);
    trap_set_handler(VEC_MID, on_other);
    trap_set_handler(VEC_MID2, on_other);
    trap_set_handler(VEC_TPR, on_other);

    /* 1: EOI of a higher class lets the waiting lower vector in. */
    irq_enable();
    self_ipi(VEC_HIGH);
    bool got = wait_taken(2);
    irq_disable();
    printf("apic_priority: eoi: taken %u (0x%x, 0x%x), low waited in IRR: %d\n", taken, order[0],
           order[1], low_pending_in_high);
    ASSERT(got);
    ASSERT_EQ(order[0], VEC_HIGH);
    ASSERT_EQ(order[1], VEC_LOW);
    ASSERT(low_pending_in_high);
    printf("apic_priority: step eoi: ok\n");

    /* 2: several pending at once are taken highest first, each after the previous EOI. */
    taken = 0;
    self_ipi(VEC_LOW);
    self_ipi(VEC_MID);
    self_ipi(VEC_MID2);
    irq_enable();
    got = wait_taken(3);
    irq_disable();
    printf("apic_priority: order: 0x%x 0x%x 0x%x\n", order[0], order[1], order[2]);
    ASSERT(got);
    ASSERT_EQ(order[0], VEC_MID2);
    ASSERT_EQ(order[1], VEC_MID);
    ASSERT_EQ(order[2], VEC_LOW);
    printf("apic_priority: step order: ok\n");

    /* 3: TPR holds a vector of its own class back; lowering it lets the vector in. */
    taken = 0;
    lapic_write(LAPIC_TPR, 0x30);
    irq_enable();
    self_ipi(VEC_TPR);
    for (uint64_t end = rdtsc() + 50 * tsc_per_ms; rdtsc() < end;)
        cpu_relax();
    unsigned while_blocked = taken;
    bool blocked_in_irr = in_irr(VEC_TPR);
    lapic_write(LAPIC_TPR, 0);
    got = wait_taken(1);
    irq_disable();
    printf("apic_priority: tpr: taken while blocked %u, in IRR %d, after lowering %u\n",
           while_blocked, blocked_in_irr, taken);
    ASSERT_EQ(while_blocked, 0);
    ASSERT(blocked_in_irr);
    ASSERT(got);
    ASSERT_EQ(order[0], VEC_TPR);
    printf("apic_priority: step tpr: ok\n");
    return 0;
}
