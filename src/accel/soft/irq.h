/* Interrupt plumbing of the software CPU's machine: the clock the timers count against, the
 * "APIC bus" that carries interrupt messages between the IOAPIC, MSIs and the local APICs, and
 * the GSI router that feeds device lines to the 8259 pair and the IOAPIC.
 *
 * The hardware backend (KVM) has all of this in the kernel; the software backend builds one
 * struct soft_irq per VM with soft_irq_create() and talks to the pieces through the small API
 * below and in lapic.h. See docs/soft-cpu-irq.md for the design and the thread model.
 *
 * Lock order (outer first): PIT -> router -> PIC -> IOAPIC -> LAPIC. No LAPIC lock is held while
 * calling out of a LAPIC (IPIs, EOIs to the IOAPIC, ExtINT acknowledge to the PIC, callbacks). */
#ifndef VIREO_ACCEL_SOFT_IRQ_H
#define VIREO_ACCEL_SOFT_IRQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

struct lapic;
struct ioapic;
struct pic;
struct pit;

/* ---- Time ---------------------------------------------------------------------------------- */

/* The one time base of the interrupt controllers: nanoseconds of a monotonic host clock. Tests
 * inject their own; now_ns == NULL means clock_gettime(CLOCK_MONOTONIC). */
struct soft_clock {
    uint64_t (*now_ns)(void *opaque);
    void *opaque;
};

/* Read the clock. */
uint64_t soft_clock_now(const struct soft_clock *clock);

/* The LAPIC timer's input clock before its divider: 1 GHz, as KVM's in-kernel LAPIC counts and
 * as cpuid.c advertises in leaf 0x40000010 EBX (in kHz). One timer tick is then exactly one
 * nanosecond times the divider. */
#define SOFT_APIC_BUS_HZ 1000000000ULL

/* TSC frequency used when the owner has no better number (the host's, as the KVM backend
 * advertises it, is better: snapshots then move between backends without a TSC jump). */
#define SOFT_TSC_KHZ_DEFAULT 1000000u

/* The guest TSC counts at tsc_khz from the clock's origin: tsc = ns * tsc_khz / 10^6 (+ the
 * vCPU's TSC offset). These two convert; soft_ns_from_tsc() rounds up, so a deadline computed
 * with it has always passed when the clock reaches it. */
uint64_t soft_tsc_from_ns(uint32_t tsc_khz, uint64_t ns);
uint64_t soft_ns_from_tsc(uint32_t tsc_khz, uint64_t tsc);

/* ---- The APIC bus ------------------------------------------------------------------------- */

/* Delivery modes as ICR, redirection entries and MSI data encode them (bits 8..10). */
enum apic_delivery {
    APIC_DM_FIXED = 0,
    APIC_DM_LOWEST = 1,
    APIC_DM_SMI = 2,
    APIC_DM_NMI = 4,
    APIC_DM_INIT = 5,
    APIC_DM_SIPI = 6,
    APIC_DM_EXTINT = 7,
};

/* Destination shorthands of the ICR (bits 18..19). */
enum apic_shorthand {
    APIC_SH_NONE = 0,
    APIC_SH_SELF = 1,
    APIC_SH_ALL = 2,
    APIC_SH_OTHERS = 3,
};

/* Physical destination "everyone" once normalised by the sender: 0xff in the 8-bit formats
 * (xAPIC ICR, IOAPIC, MSI), 0xffffffff in the x2APIC ICR. */
#define APIC_DEST_BROADCAST 0xffffffffu

/* One interrupt message on the bus. */
struct apic_msg {
    uint32_t dest;       /* APIC ID (physical) or logical mask; APIC_DEST_BROADCAST */
    uint8_t vector;
    uint8_t mode;        /* enum apic_delivery */
    uint8_t shorthand;   /* enum apic_shorthand; needs a source LAPIC */
    bool logical;        /* destination mode */
    bool level_trig;     /* trigger mode: level sets the target's TMR bit */
    bool assert;         /* level bit of the ICR: INIT with !assert is the "de-assert" no-op */
};

/* What the owner of the vCPUs provides. Every callback may run on any thread (the sender's),
 * possibly under the router's, the PIC's or the IOAPIC's lock but never under a LAPIC's: it may
 * call lapic_* functions, must not call soft_irq_set_level() or the PIC/IOAPIC, and should do no
 * more than record the event and wake the vCPU thread. */
struct apic_bus_ops {
    /* Wake vCPU cpu: something became pending in its LAPIC (interrupt, NMI, INIT, SIPI). */
    void (*kick)(void *opaque, unsigned cpu);
    /* cpu received INIT: its LAPIC has already been reset; the owner resets the CPU and puts it
     * in wait-for-SIPI. */
    void (*on_init)(void *opaque, unsigned cpu);
    /* cpu received a start-up IPI: a CPU in wait-for-SIPI starts in real mode at CS:IP =
     * (vector << 8):0; a CPU that is not waiting ignores it (Linux sends two). */
    void (*on_sipi)(void *opaque, unsigned cpu, uint8_t vector);
    void *opaque;
    /* The INTA cycle of an ExtINT interrupt (the 8259's vector), or -1 if it withdrew. */
    int (*extint_ack)(void *extint_opaque);
    void *extint_opaque;
};

struct apic_bus {
    unsigned ncpus;
    struct lapic **lapics;   /* index = vCPU index = initial APIC ID */
    struct ioapic *ioapic;   /* receives EOIs of level-triggered vectors; may be NULL */
    struct apic_bus_ops ops;
    atomic_uint lowest_rr;   /* rotates ties of lowest-priority arbitration */
};

/* Create ncpus LAPICs (APIC IDs 0..ncpus-1, vCPU 0 is the BSP) in their power-on state.
 * tsc_khz: the guest TSC frequency (for TSC-deadline mode). Returns 0 or -errno. */
int apic_bus_init(struct apic_bus *bus, unsigned ncpus, const struct soft_clock *clock,
                  uint32_t tsc_khz, const struct apic_bus_ops *ops);
/* Free the LAPICs. */
void apic_bus_destroy(struct apic_bus *bus);
/* The LAPIC of vCPU cpu, or NULL when out of range. */
struct lapic *apic_bus_lapic(struct apic_bus *bus, unsigned cpu);

/* Deliver a message to every LAPIC it addresses (source: the sending LAPIC for shorthands and
 * IPIs, NULL for the IOAPIC and MSIs) and kick those that accepted something. Returns the number
 * of LAPICs it reached. Takes no lock of the caller's; safe from any thread. */
int apic_bus_deliver(struct apic_bus *bus, const struct apic_msg *msg, struct lapic *source);

/* Deliver a message-signalled interrupt: addr is the 0xfeexxxxx MSI address (destination ID in
 * bits 12..19, destination mode in bit 2), data the MSI data (vector, delivery mode, trigger).
 * Returns the number of LAPICs reached, or -EINVAL when addr is not an MSI address. */
int apic_bus_deliver_msi(struct apic_bus *bus, uint64_t addr, uint32_t data);

/* ---- The machine's interrupt router ----------------------------------------------------- */

struct soft_irq_config {
    unsigned ncpus;
    struct soft_clock clock;  /* now_ns NULL: CLOCK_MONOTONIC */
    uint32_t tsc_khz;         /* 0: SOFT_TSC_KHZ_DEFAULT */
    /* kick, on_init and on_sipi as in struct apic_bus_ops (extint_ack is wired to the PIC). */
    void (*kick)(void *opaque, unsigned cpu);
    void (*on_init)(void *opaque, unsigned cpu);
    void (*on_sipi)(void *opaque, unsigned cpu, uint8_t vector);
    /* A machine-wide timer was programmed: soft_irq_next_deadline_ns() may be earlier (NULL:
     * nobody sleeps on it). */
    void (*timer_programmed)(void *opaque);
    void *opaque;
};

/* The interrupt controllers and timers of one VM, wired as on a PC: PIT channel 0 -> ISA IRQ0,
 * the master 8259's INT -> LINT0 of the BSP, the IOAPIC and MSIs -> the APIC bus. */
struct soft_irq {
    struct apic_bus apic;
    struct ioapic *ioapic;
    struct pic *pic;
    struct pit *pit;
    pthread_mutex_t lock;    /* serialises set_level so that shared pins see ordered levels */
    uint32_t levels;         /* current level of each GSI input */
};

/* Build the whole set. Returns NULL with errno set. */
struct soft_irq *soft_irq_create(const struct soft_irq_config *cfg);
/* Free it; nothing may reach it any more (buses, vCPU threads). */
void soft_irq_destroy(struct soft_irq *irq);
/* Machine reset (the guest's reboot): every controller and LAPIC back to its power-on state.
 * Call it with the vCPUs stopped. */
void soft_irq_reset(struct soft_irq *irq);
/* Register the PIC (0x20, 0xa0, ELCR 0x4d0), the PIT (0x40-0x43, 0x61) on pio and the IOAPIC
 * on mmio. The LAPIC page is not on the shared bus: each vCPU's accesses to its own APIC base
 * go to lapic_mmio_read/write() of its LAPIC (see lapic.h). Returns 0 or -errno. */
int soft_irq_attach(struct soft_irq *irq, struct bus *pio, struct bus *mmio);

/* Drive GSI gsi to level, with the same routing as the KVM backend (accel/kvm.c): GSI 0..15
 * reach the 8259 input of that number (except 2, the cascade) and IOAPIC pin gsi, except GSI 0
 * (the PIT) which arrives on IOAPIC pin 2, per the MADT override; GSI 16..23 reach the IOAPIC
 * only. Out-of-range GSIs are ignored. Returns 0 or -EINVAL. Safe from any thread. */
int soft_irq_set_level(struct soft_irq *irq, unsigned gsi, int level);

/* Machine-wide timers (the PIT). The owner sleeps at most until soft_irq_next_deadline_ns()
 * (UINT64_MAX: nothing scheduled) and then calls soft_irq_tick() with the clock's time; the
 * vCPU loops call lapic_next_deadline_ns()/lapic_tick() for their own LAPIC timers. */
uint64_t soft_irq_next_deadline_ns(struct soft_irq *irq);
void soft_irq_tick(struct soft_irq *irq, uint64_t now_ns);

#endif
