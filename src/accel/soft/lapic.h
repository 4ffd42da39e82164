/* The local APIC of one software vCPU: xAPIC (MMIO page at the APIC base) and x2APIC (MSRs
 * 0x800-0x8ff), the timer (one-shot, periodic, TSC-deadline), IPIs, EOI, TPR/PPR.
 *
 * Contract with the vCPU loop that owns it (all calls from that vCPU's thread unless noted):
 *  - Accesses of the guest to physical page lapic_mmio_base() go to lapic_mmio_read/write();
 *    RDMSR/WRMSR of APIC_BASE (0x1b), TSC_DEADLINE (0x6e0) and 0x800-0x8ff go to
 *    lapic_msr_read/write(), whose -EINVAL means #GP. MOV to/from CR8 uses lapic_set_cr8()/
 *    lapic_get_cr8().
 *  - At each instruction boundary where RFLAGS.IF=1 and no STI/MOV SS shadow is active, and
 *    after every lapic_* call of its own, the loop asks lapic_has_interrupt(); if true, it calls
 *    lapic_get_interrupt() and delivers the returned vector through the IDT. NMIs are taken with
 *    lapic_take_nmi() regardless of IF (the CPU blocks nested NMIs until IRET itself).
 *  - Timers: before sleeping (HLT) or periodically while running, the loop calls
 *    lapic_tick(now) and sleeps no later than lapic_next_deadline_ns().
 * Other threads (other vCPUs' IPIs, the IOAPIC, MSIs, the PIC) only add pending events; they do
 * so under the LAPIC's lock and then call the bus's kick callback for this vCPU. */
#ifndef VIREO_ACCEL_SOFT_LAPIC_H
#define VIREO_ACCEL_SOFT_LAPIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "accel/soft/irq.h"
#include "arch/x86/msr.h"

/* xAPIC register offsets in the 4 KiB page (x2APIC MSR = 0x800 + offset / 16). */
#define LAPIC_ID        0x020
#define LAPIC_VERSION   0x030
#define LAPIC_TPR       0x080
#define LAPIC_APR       0x090
#define LAPIC_PPR       0x0a0
#define LAPIC_EOI       0x0b0
#define LAPIC_RRD       0x0c0
#define LAPIC_LDR       0x0d0
#define LAPIC_DFR       0x0e0
#define LAPIC_SVR       0x0f0
#define LAPIC_ISR       0x100 /* 8 registers, 16 bytes apart, 32 vectors each */
#define LAPIC_TMR       0x180
#define LAPIC_IRR       0x200
#define LAPIC_ESR       0x280
#define LAPIC_ICR_LOW   0x300
#define LAPIC_ICR_HIGH  0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_THERMAL 0x330
#define LAPIC_LVT_PERF  0x340
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE  0x3e0
#define LAPIC_SELF_IPI  0x3f0 /* x2APIC only */

/* MSRs. */
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_X2APIC_FIRST      0x800
#define MSR_X2APIC_LAST       0x8ff

#define APIC_BASE_BSP    (1ULL << 8)
#define APIC_BASE_EXTD   (1ULL << 10) /* x2APIC mode */
#define APIC_BASE_ENABLE (1ULL << 11)
#define APIC_BASE_ADDR_MASK 0xffffff000ULL /* a 36-bit physical address space is plenty here */

/* Version register: version 0x14 (integrated APIC), highest LVT entry 5 (no CMCI). */
#define LAPIC_VERSION_VALUE 0x50014u
#define LAPIC_LVT_COUNT 6

#define LAPIC_SVR_ENABLE 0x100u
#define LVT_MASKED       0x10000u
#define LVT_LEVEL        0x8000u
#define LVT_REMOTE_IRR   0x4000u
#define LVT_TIMER_PERIODIC 0x20000u
#define LVT_TIMER_TSC_DEADLINE 0x40000u
#define LVT_TIMER_MODE_MASK 0x60000u

/* Error status bits. */
#define LAPIC_ESR_SEND_ILLEGAL 0x20u
#define LAPIC_ESR_RECV_ILLEGAL 0x40u
#define LAPIC_ESR_ILLEGAL_REG  0x80u

/* Shortest periodic timer period accepted (as KVM bounds it): a guest programming 1 ns would
 * otherwise keep its vCPU busy firing interrupts. One-shot and TSC-deadline are not bounded. */
#define LAPIC_MIN_PERIOD_NS 100000ULL

struct lapic {
    pthread_mutex_t lock;
    struct apic_bus *bus;
    unsigned index;          /* vCPU index and initial APIC ID */
    struct soft_clock clock;
    uint32_t tsc_khz;
    int64_t tsc_offset;      /* guest TSC minus soft_tsc_from_ns(now) */

    uint64_t apic_base;
    uint32_t id;             /* ID register: xAPIC bits 31..24 / x2APIC the whole value */
    uint32_t tpr, ldr, dfr, svr;
    uint32_t esr, esr_pending; /* what ESR reads; what accumulates until the next ESR write */
    uint32_t icr_low, icr_high;
    uint32_t lvt[LAPIC_LVT_COUNT]; /* timer, thermal, perf, LINT0, LINT1, error */
    uint32_t isr[8], tmr[8], irr[8];
    bool lint_level[2];
    bool nmi_pending;

    /* Timer: one-shot/periodic count from timer_start_ns; timer_next_ns is the next expiry
     * (UINT64_MAX when stopped). */
    uint32_t timer_initial, timer_divide;
    uint64_t timer_start_ns, timer_next_ns;
    uint64_t tsc_deadline;
};

/* Set up the LAPIC of vCPU index (its APIC ID) on bus, in its power-on state. Returns 0 or
 * -errno. */
int lapic_init(struct lapic *lapic, struct apic_bus *bus, unsigned index,
               const struct soft_clock *clock, uint32_t tsc_khz);
/* Release what lapic_init set up. */
void lapic_destroy(struct lapic *lapic);

/* Power-on state: APIC base LAYOUT_LAPIC_BASE, enabled, xAPIC, software-disabled, LVTs masked
 * except LINT0 = ExtINT and LINT1 = NMI (what firmware leaves; the KVM backend does the same). */
void lapic_reset(struct lapic *lapic);

/* Guest physical address of the xAPIC page, or UINT64_MAX while the LAPIC is disabled or in
 * x2APIC mode (the page then is not the LAPIC's). */
uint64_t lapic_mmio_base(struct lapic *lapic);
/* Access to the page at offset (0..0xfff), size 1/2/4/8. Reads of undefined registers return 0
 * and set the illegal-register error; writes other than 32-bit aligned are dropped. */
uint64_t lapic_mmio_read(struct lapic *lapic, uint64_t offset, unsigned size);
void lapic_mmio_write(struct lapic *lapic, uint64_t offset, uint64_t value, unsigned size);

/* RDMSR/WRMSR of APIC_BASE, TSC_DEADLINE and the x2APIC range. Return 0, or -EINVAL where the
 * CPU raises #GP (x2APIC MSR outside x2APIC mode, read-only or write-only register, reserved
 * bits, invalid APIC_BASE transition), or -ENOENT for an MSR that is not the LAPIC's. */
int lapic_msr_read(struct lapic *lapic, uint32_t msr, uint64_t *value);
int lapic_msr_write(struct lapic *lapic, uint32_t msr, uint64_t value);

/* CR8 is TPR[7:4]. */
uint64_t lapic_get_cr8(struct lapic *lapic);
void lapic_set_cr8(struct lapic *lapic, uint64_t cr8);

/* The vCPU's TSC offset (guest TSC = soft_tsc_from_ns(tsc_khz, now) + offset): the owner
 * updates it when the guest writes IA32_TSC, so TSC-deadline expiries stay right. */
void lapic_set_tsc_offset(struct lapic *lapic, int64_t offset);

/* True when a maskable interrupt is ready for the CPU: an ExtINT from the 8259 through LINT0
 * (or straight in while the LAPIC is disabled), or the highest IRR vector's priority class above
 * PPR's. */
bool lapic_has_interrupt(struct lapic *lapic);
/* The interrupt acknowledge cycle: returns the vector to deliver (moving it from IRR to ISR, or
 * asking the 8259 for an ExtINT), or -1 when nothing is deliverable any more. */
int lapic_get_interrupt(struct lapic *lapic);
/* Consume a pending NMI (LINT1, ICR or IOAPIC NMI): true when one was pending. */
bool lapic_take_nmi(struct lapic *lapic);

/* When the LAPIC timer next expires (clock nanoseconds), UINT64_MAX if it is stopped. */
uint64_t lapic_next_deadline_ns(struct lapic *lapic);
/* Fire the timer if it expired by now (missed periods coalesce into one interrupt). Returns
 * true when that made an interrupt pending; it does not kick, so a caller other than the vCPU's
 * own thread kicks the vCPU itself. Any thread. */
bool lapic_tick(struct lapic *lapic, uint64_t now_ns);

/* Drive local interrupt pin LINT0 (pin 0) or LINT1 (pin 1) to level; any thread. The 8259's INT
 * output is wired to LINT0 of the BSP. */
void lapic_set_lint(struct lapic *lapic, unsigned pin, int level);

/* Bus side (irq.c): accept a message addressed to this LAPIC. Returns true when the owner must
 * be kicked. Runs the on_init/on_sipi callbacks itself. Any thread; takes the LAPIC lock. */
bool lapic_accept(struct lapic *lapic, const struct apic_msg *msg);
/* Does msg (without shorthand) address this LAPIC? */
bool lapic_match_dest(struct lapic *lapic, const struct apic_msg *msg);
/* Processor priority (for lowest-priority arbitration). */
uint32_t lapic_get_ppr(struct lapic *lapic);
/* True while the LAPIC is hardware-enabled (APIC_BASE bit 11). */
bool lapic_enabled(struct lapic *lapic);

#endif
