/* The software local APIC: register model, priorities, EOI, timers against an injected clock,
 * IPIs between LAPICs on one APIC bus, INIT/SIPI callbacks, x2APIC MSRs, guest mistakes. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "accel/soft/ioapic.h"
#include "accel/soft/irq.h"
#include "accel/soft/lapic.h"
#include "arch/x86/layout.h"

#define NCPUS 4

struct harness {
    struct apic_bus bus;
    uint64_t now;
    atomic_uint kicks[NCPUS];
    unsigned inits[NCPUS];
    int sipi[NCPUS];
    int extint_vector;
    unsigned extint_acks;
};

static uint64_t h_now(void *opaque)
{
    return ((struct harness *)opaque)->now;
}

static void h_kick(void *opaque, unsigned cpu)
{
    atomic_fetch_add(&((struct harness *)opaque)->kicks[cpu], 1);
}

static void h_init(void *opaque, unsigned cpu)
{
    ((struct harness *)opaque)->inits[cpu]++;
}

static void h_sipi(void *opaque, unsigned cpu, uint8_t vector)
{
    ((struct harness *)opaque)->sipi[cpu] = vector;
}

static int h_extint(void *opaque)
{
    struct harness *h = opaque;
    h->extint_acks++;
    return h->extint_vector;
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    h->now = 1000000000ULL;
    for (unsigned i = 0; i < NCPUS; i++)
        h->sipi[i] = -1;
    struct soft_clock clock = {.now_ns = h_now, .opaque = h};
    struct apic_bus_ops ops = {.kick = h_kick, .on_init = h_init, .on_sipi = h_sipi,
                               .opaque = h, .extint_ack = h_extint, .extint_opaque = h};
    /* A 2 GHz TSC makes TSC <-> ns conversions visible (2 ticks per ns). */
    assert_int_equal(apic_bus_init(&h->bus, NCPUS, &clock, 2000000, &ops), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    if (h->bus.ioapic)
        ioapic_destroy(h->bus.ioapic);
    apic_bus_destroy(&h->bus);
    test_free(h);
    return 0;
}

static struct lapic *cpu(struct harness *h, unsigned i)
{
    return apic_bus_lapic(&h->bus, i);
}

static uint32_t rd(struct lapic *l, unsigned off)
{
    return (uint32_t)lapic_mmio_read(l, off, 4);
}

static void wr(struct lapic *l, unsigned off, uint32_t v)
{
    lapic_mmio_write(l, off, v, 4);
}

static void sw_enable(struct lapic *l)
{
    wr(l, LAPIC_SVR, LAPIC_SVR_ENABLE | 0xff);
}

/* Deliver a fixed edge interrupt from "a device" (no source) to physical APIC ID dest. */
static int send_fixed(struct harness *h, uint32_t dest, uint8_t vector, bool level)
{
    struct apic_msg m = {.dest = dest, .vector = vector, .mode = APIC_DM_FIXED,
                         .level_trig = level, .assert = true};
    return apic_bus_deliver(&h->bus, &m, NULL);
}

static bool vec_bit(struct lapic *l, unsigned base, unsigned v)
{
    return rd(l, base + (v / 32) * 16) & (1u << (v % 32));
}

static uint32_t read_esr(struct lapic *l)
{
    wr(l, LAPIC_ESR, 0); /* latch the errors seen so far */
    return rd(l, LAPIC_ESR);
}

static void test_reset_state(void **state)
{
    struct harness *h = *state;
    struct lapic *bsp = cpu(h, 0), *ap = cpu(h, 2);
    uint64_t v;
    assert_int_equal(rd(bsp, LAPIC_VERSION), 0x50014);
    assert_int_equal(rd(ap, LAPIC_ID), 2u << 24);
    assert_int_equal(rd(ap, LAPIC_SVR), 0xff);
    assert_int_equal(rd(ap, LAPIC_DFR), 0xffffffffu);
    assert_int_equal(rd(ap, LAPIC_LVT_TIMER), LVT_MASKED);
    assert_int_equal(rd(ap, LAPIC_LVT_THERMAL), LVT_MASKED);
    assert_int_equal(rd(ap, LAPIC_LVT_PERF), LVT_MASKED);
    assert_int_equal(rd(ap, LAPIC_LVT_ERROR), LVT_MASKED);
    /* As firmware (and the KVM backend) leave them: virtual wire and NMI on the LINT pins. */
    assert_int_equal(rd(bsp, LAPIC_LVT_LINT0), APIC_DM_EXTINT << 8);
    assert_int_equal(rd(ap, LAPIC_LVT_LINT1), APIC_DM_NMI << 8);
    assert_int_equal(lapic_msr_read(bsp, MSR_IA32_APIC_BASE, &v), 0);
    assert_int_equal(v, 0xfee00900ULL);
    assert_int_equal(lapic_msr_read(ap, MSR_IA32_APIC_BASE, &v), 0);
    assert_int_equal(v, 0xfee00800ULL);
    assert_int_equal(lapic_mmio_base(ap), LAYOUT_LAPIC_BASE);
    assert_false(lapic_has_interrupt(ap));
    assert_int_equal(lapic_next_deadline_ns(ap), UINT64_MAX);
}

static void test_priority_and_eoi(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    sw_enable(l);
    assert_int_equal(send_fixed(h, 1, 0x35, false), 1);
    assert_int_equal(send_fixed(h, 1, 0x41, false), 1);
    assert_true(atomic_load(&h->kicks[1]) >= 2);
    assert_true(vec_bit(l, LAPIC_IRR, 0x35) && vec_bit(l, LAPIC_IRR, 0x41));
    assert_true(lapic_has_interrupt(l));
    assert_int_equal(lapic_get_interrupt(l), 0x41);
    assert_true(vec_bit(l, LAPIC_ISR, 0x41));
    assert_false(vec_bit(l, LAPIC_IRR, 0x41));
    assert_int_equal(rd(l, LAPIC_PPR), 0x40);
    /* 0x35 is a lower class than the one in service; 0x45 is the same class: both wait. */
    send_fixed(h, 1, 0x45, false);
    assert_false(lapic_has_interrupt(l));
    assert_int_equal(lapic_get_interrupt(l), -1);
    send_fixed(h, 1, 0x51, false);
    assert_int_equal(lapic_get_interrupt(l), 0x51);
    assert_int_equal(rd(l, LAPIC_PPR), 0x50);
    /* EOI retires the highest in-service vector first. */
    wr(l, LAPIC_EOI, 0);
    assert_false(vec_bit(l, LAPIC_ISR, 0x51));
    assert_true(vec_bit(l, LAPIC_ISR, 0x41));
    wr(l, LAPIC_EOI, 0);
    assert_int_equal(rd(l, LAPIC_PPR), 0);
    /* TPR blocks its own class and below; CR8 is its high nibble. */
    lapic_set_cr8(l, 4);
    assert_int_equal(rd(l, LAPIC_TPR), 0x40);
    assert_int_equal(rd(l, LAPIC_PPR), 0x40);
    assert_int_equal(lapic_get_interrupt(l), -1); /* 0x45 and 0x35 blocked */
    wr(l, LAPIC_TPR, 0x30);
    assert_int_equal(lapic_get_cr8(l), 3);
    assert_int_equal(lapic_get_interrupt(l), 0x45);
    wr(l, LAPIC_EOI, 0);
    assert_false(lapic_has_interrupt(l));
    wr(l, LAPIC_TPR, 0);
    assert_int_equal(lapic_get_interrupt(l), 0x35);
}

/* The vCPU looks for interrupts when kicked. A vector that arrived while a higher class was in
 * service (its kick found it blocked) must be kicked for again when EOI or a TPR write lets it
 * through; otherwise it waits for the next interrupt, which may block it once more. */
static void test_lower_priority_kicks(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    sw_enable(l);
    send_fixed(h, 1, 0xec, false);
    assert_int_equal(lapic_get_interrupt(l), 0xec);
    send_fixed(h, 1, 0x26, false);
    assert_false(lapic_has_interrupt(l));
    unsigned before = atomic_load(&h->kicks[1]);
    wr(l, LAPIC_EOI, 0);
    assert_int_equal(atomic_load(&h->kicks[1]), before + 1);
    assert_true(lapic_has_interrupt(l));
    /* An EOI that leaves nothing deliverable does not kick. */
    assert_int_equal(lapic_get_interrupt(l), 0x26);
    before = atomic_load(&h->kicks[1]);
    wr(l, LAPIC_EOI, 0);
    assert_int_equal(atomic_load(&h->kicks[1]), before);
    /* Lowering TPR below a waiting vector kicks; raising it does not. */
    wr(l, LAPIC_TPR, 0x40);
    send_fixed(h, 1, 0x35, false);
    before = atomic_load(&h->kicks[1]);
    wr(l, LAPIC_TPR, 0x50);
    assert_int_equal(atomic_load(&h->kicks[1]), before);
    wr(l, LAPIC_TPR, 0x20);
    assert_int_equal(atomic_load(&h->kicks[1]), before + 1);
    assert_int_equal(lapic_get_interrupt(l), 0x35);
}

static void test_disabled_apic_drops_fixed(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    /* Software-disabled (SVR bit 8 clear, the reset state): fixed interrupts are dropped. */
    send_fixed(h, 1, 0x40, false);
    assert_false(vec_bit(l, LAPIC_IRR, 0x40));
    /* Disabling also forces every LVT mask, and LVT writes stay masked. */
    sw_enable(l);
    wr(l, LAPIC_LVT_TIMER, 0xec);
    assert_int_equal(rd(l, LAPIC_LVT_TIMER), 0xec);
    wr(l, LAPIC_SVR, 0xff);
    assert_int_equal(rd(l, LAPIC_LVT_TIMER), LVT_MASKED | 0xec);
    wr(l, LAPIC_LVT_ERROR, 0xfe);
    assert_int_equal(rd(l, LAPIC_LVT_ERROR), LVT_MASKED | 0xfe);
    /* Hardware-disabled: no longer addressed at all, and the page is gone. */
    assert_int_equal(lapic_msr_write(l, MSR_IA32_APIC_BASE, LAYOUT_LAPIC_BASE), 0);
    assert_int_equal(lapic_mmio_base(l), UINT64_MAX);
    assert_int_equal(send_fixed(h, 1, 0x40, false), 0);
}

static void test_illegal_vectors(void **state)
{
    struct harness *h = *state;
    struct lapic *a = cpu(h, 0), *b = cpu(h, 1);
    sw_enable(a);
    sw_enable(b);
    /* Received vector below 16: error on the receiver, nothing pending. */
    send_fixed(h, 1, 5, false);
    assert_false(lapic_has_interrupt(b));
    assert_int_equal(read_esr(b), LAPIC_ESR_RECV_ILLEGAL);
    assert_int_equal(read_esr(b), 0); /* the write re-latches: the error was consumed */
    /* Sent vector below 16: error on the sender, nothing sent. */
    unsigned kicks = atomic_load(&h->kicks[1]);
    wr(a, LAPIC_ICR_HIGH, 1u << 24);
    wr(a, LAPIC_ICR_LOW, 3);
    assert_int_equal(atomic_load(&h->kicks[1]), kicks);
    assert_int_equal(read_esr(a), LAPIC_ESR_SEND_ILLEGAL);
    assert_int_equal(read_esr(b), 0);
    /* With the error LVT unmasked the error raises its own interrupt. */
    wr(b, LAPIC_LVT_ERROR, 0xfe);
    send_fixed(h, 1, 15, false);
    assert_int_equal(lapic_get_interrupt(b), 0xfe);
}

static void test_bad_mmio_accesses(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    sw_enable(l);
    /* Writes that are not 32-bit and aligned are dropped. */
    lapic_mmio_write(l, LAPIC_TPR, 0x20, 1);
    lapic_mmio_write(l, LAPIC_TPR + 4, 0x20, 4);
    lapic_mmio_write(l, LAPIC_TPR, 0x20, 8);
    assert_int_equal(rd(l, LAPIC_TPR), 0);
    /* Sub-dword reads see the bytes of the register. */
    wr(l, LAPIC_TPR, 0xa0);
    assert_int_equal(lapic_mmio_read(l, LAPIC_ID + 3, 1), 1);
    assert_int_equal(lapic_mmio_read(l, LAPIC_VERSION + 2, 2), 5);
    assert_int_equal(lapic_mmio_read(l, LAPIC_TPR + 8, 4), 0);
    /* Read-only registers ignore writes; reserved registers flag an error. */
    wr(l, LAPIC_VERSION, 0);
    wr(l, LAPIC_PPR, 0xff);
    wr(l, LAPIC_IRR, 0xffffffffu);
    assert_int_equal(rd(l, LAPIC_VERSION), 0x50014);
    assert_int_equal(rd(l, LAPIC_IRR), 0);
    assert_int_equal(read_esr(l), 0);
    assert_int_equal(rd(l, 0x2f0), 0); /* CMCI LVT: beyond the advertised 5 */
    assert_int_equal(read_esr(l), LAPIC_ESR_ILLEGAL_REG);
    wr(l, 0x3f0, 0x40); /* SELF_IPI exists only in x2APIC mode */
    assert_false(lapic_has_interrupt(l));
    assert_int_equal(read_esr(l), LAPIC_ESR_ILLEGAL_REG);
    /* Offsets wrap within the page. */
    assert_int_equal(lapic_mmio_read(l, 0x1000 + LAPIC_VERSION, 4), 0x50014);
}

static void test_timer_one_shot(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    sw_enable(l);
    wr(l, LAPIC_LVT_TIMER, 0xec);
    wr(l, LAPIC_TIMER_DIVIDE, 0xb); /* divide by 1: one tick per ns at 1 GHz */
    uint64_t t0 = h->now;
    wr(l, LAPIC_TIMER_INITIAL, 1000);
    assert_int_equal(lapic_next_deadline_ns(l), t0 + 1000);
    h->now = t0 + 300;
    assert_int_equal(rd(l, LAPIC_TIMER_CURRENT), 700);
    assert_false(lapic_tick(l, t0 + 999));
    assert_false(lapic_has_interrupt(l));
    assert_true(lapic_tick(l, t0 + 1000));
    assert_int_equal(lapic_get_interrupt(l), 0xec);
    h->now = t0 + 5000;
    assert_int_equal(rd(l, LAPIC_TIMER_CURRENT), 0);
    assert_int_equal(lapic_next_deadline_ns(l), UINT64_MAX);
    assert_false(lapic_tick(l, t0 + 100000));
    /* Divide by 2 (encoding 0): twice as long. Writing 0 stops it. */
    wr(l, LAPIC_TIMER_DIVIDE, 0);
    wr(l, LAPIC_TIMER_INITIAL, 1000);
    assert_int_equal(lapic_next_deadline_ns(l), h->now + 2000);
    wr(l, LAPIC_TIMER_INITIAL, 0);
    assert_int_equal(lapic_next_deadline_ns(l), UINT64_MAX);
    /* A masked timer still expires, silently. */
    wr(l, LAPIC_LVT_TIMER, 0xec | LVT_MASKED);
    wr(l, LAPIC_TIMER_INITIAL, 10);
    assert_false(lapic_tick(l, h->now + 20));
    assert_int_equal(lapic_next_deadline_ns(l), UINT64_MAX);
}

static void test_timer_periodic(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    sw_enable(l);
    wr(l, LAPIC_LVT_TIMER, 0xef | LVT_TIMER_PERIODIC);
    wr(l, LAPIC_TIMER_DIVIDE, 0x3); /* divide by 16 */
    uint64_t t0 = h->now, period = 10000 * 16;
    wr(l, LAPIC_TIMER_INITIAL, 10000);
    assert_int_equal(lapic_next_deadline_ns(l), t0 + period);
    h->now = t0 + period + 16 * 250;
    assert_int_equal(rd(l, LAPIC_TIMER_CURRENT), 10000 - 250);
    /* Three and a half periods late: one interrupt, and the next expiry stays on the grid. */
    assert_true(lapic_tick(l, t0 + period * 7 / 2));
    assert_int_equal(lapic_next_deadline_ns(l), t0 + 4 * period);
    assert_int_equal(lapic_get_interrupt(l), 0xef);
    wr(l, LAPIC_EOI, 0);
    assert_false(lapic_tick(l, t0 + 4 * period - 1));
    assert_true(lapic_tick(l, t0 + 4 * period));
    assert_int_equal(lapic_next_deadline_ns(l), t0 + 5 * period);
    /* Changing the mode stops the timer. */
    wr(l, LAPIC_LVT_TIMER, 0xef);
    assert_int_equal(lapic_next_deadline_ns(l), UINT64_MAX);
    assert_int_equal(rd(l, LAPIC_TIMER_INITIAL), 0);
    /* A tiny period is stretched to the minimum. */
    wr(l, LAPIC_LVT_TIMER, 0xef | LVT_TIMER_PERIODIC);
    wr(l, LAPIC_TIMER_DIVIDE, 0xb);
    wr(l, LAPIC_TIMER_INITIAL, 1);
    assert_int_equal(lapic_next_deadline_ns(l), h->now + LAPIC_MIN_PERIOD_NS);
}

static void test_timer_tsc_deadline(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    uint64_t v;
    sw_enable(l);
    /* Outside TSC-deadline mode the MSR reads 0 and ignores writes. */
    assert_int_equal(lapic_msr_write(l, MSR_IA32_TSC_DEADLINE, 12345), 0);
    assert_int_equal(lapic_msr_read(l, MSR_IA32_TSC_DEADLINE, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(lapic_next_deadline_ns(l), UINT64_MAX);

    wr(l, LAPIC_LVT_TIMER, 0xe0 | LVT_TIMER_TSC_DEADLINE);
    uint64_t tsc_now = soft_tsc_from_ns(2000000, h->now);
    assert_int_equal(tsc_now, h->now * 2);
    assert_int_equal(lapic_msr_write(l, MSR_IA32_TSC_DEADLINE, tsc_now + 3000), 0);
    assert_int_equal(lapic_next_deadline_ns(l), h->now + 1500);
    assert_int_equal(lapic_msr_read(l, MSR_IA32_TSC_DEADLINE, &v), 0);
    assert_int_equal(v, tsc_now + 3000);
    /* The initial-count register is ignored in this mode. */
    wr(l, LAPIC_TIMER_INITIAL, 5);
    assert_int_equal(lapic_next_deadline_ns(l), h->now + 1500);
    assert_false(lapic_tick(l, h->now + 1499));
    assert_true(lapic_tick(l, h->now + 1500));
    assert_int_equal(lapic_get_interrupt(l), 0xe0);
    assert_int_equal(lapic_msr_read(l, MSR_IA32_TSC_DEADLINE, &v), 0);
    assert_int_equal(v, 0); /* cleared when it fires */
    wr(l, LAPIC_EOI, 0);
    /* A deadline in the past fires at once; the guest's TSC offset counts. */
    lapic_set_tsc_offset(l, 1000000);
    assert_int_equal(lapic_msr_write(l, MSR_IA32_TSC_DEADLINE, tsc_now + 10), 0);
    assert_int_equal(lapic_next_deadline_ns(l), h->now);
    assert_int_equal(lapic_msr_write(l, MSR_IA32_TSC_DEADLINE, tsc_now + 1000000 + 20), 0);
    assert_int_equal(lapic_next_deadline_ns(l), h->now + 10);
    /* Writing 0 disarms. */
    assert_int_equal(lapic_msr_write(l, MSR_IA32_TSC_DEADLINE, 0), 0);
    assert_int_equal(lapic_next_deadline_ns(l), UINT64_MAX);
}

static void send_ipi(struct lapic *from, uint8_t dest, uint32_t low)
{
    wr(from, LAPIC_ICR_HIGH, (uint32_t)dest << 24);
    wr(from, LAPIC_ICR_LOW, low);
}

static void enable_all(struct harness *h)
{
    for (unsigned i = 0; i < NCPUS; i++)
        sw_enable(cpu(h, i));
}

static unsigned pending_mask(struct harness *h, unsigned vector)
{
    unsigned mask = 0;
    for (unsigned i = 0; i < NCPUS; i++)
        if (vec_bit(cpu(h, i), LAPIC_IRR, vector))
            mask |= 1u << i;
    return mask;
}

static void test_ipi_physical_and_shorthands(void **state)
{
    struct harness *h = *state;
    enable_all(h);
    struct lapic *a = cpu(h, 0);
    send_ipi(a, 2, 0x40);
    assert_int_equal(pending_mask(h, 0x40), 1u << 2);
    assert_int_equal(atomic_load(&h->kicks[2]), 1);
    assert_int_equal(rd(a, LAPIC_ICR_LOW) & (1u << 12), 0); /* never "send pending" */
    send_ipi(a, 0xff, 0x41); /* physical broadcast */
    assert_int_equal(pending_mask(h, 0x41), 0xf);
    send_ipi(a, 0, 0x42 | (APIC_SH_SELF << 18));
    assert_int_equal(pending_mask(h, 0x42), 1u << 0);
    send_ipi(a, 0, 0x43 | (APIC_SH_ALL << 18));
    assert_int_equal(pending_mask(h, 0x43), 0xf);
    send_ipi(a, 0, 0x44 | (APIC_SH_OTHERS << 18));
    assert_int_equal(pending_mask(h, 0x44), 0xe);
    send_ipi(a, 9, 0x45); /* nobody has ID 9 */
    assert_int_equal(pending_mask(h, 0x45), 0);
    /* Level-triggered fixed interrupts set TMR; edge ones clear it. */
    send_ipi(a, 3, 0x46 | (1u << 15) | (1u << 14));
    assert_true(vec_bit(cpu(h, 3), LAPIC_TMR, 0x46));
}

static void test_ipi_logical(void **state)
{
    struct harness *h = *state;
    enable_all(h);
    /* Flat model: one bit per CPU in LDR[31:24]. */
    for (unsigned i = 0; i < NCPUS; i++)
        wr(cpu(h, i), LAPIC_LDR, (1u << i) << 24);
    send_ipi(cpu(h, 0), 0x0a, 0x50 | (1u << 11));
    assert_int_equal(pending_mask(h, 0x50), 0xa);
    /* Cluster model: cluster in LDR[31:28], member bits in LDR[27:24]. */
    for (unsigned i = 0; i < NCPUS; i++) {
        wr(cpu(h, i), LAPIC_DFR, 0x0fffffff);
        wr(cpu(h, i), LAPIC_LDR, ((i / 2) << 28) | ((1u << (i % 2)) << 24));
    }
    assert_int_equal(rd(cpu(h, 1), LAPIC_DFR), 0x0fffffff);
    send_ipi(cpu(h, 0), 0x13, 0x51 | (1u << 11)); /* cluster 1, members 0 and 1 */
    assert_int_equal(pending_mask(h, 0x51), 0xc);
    send_ipi(cpu(h, 0), 0x02, 0x52 | (1u << 11)); /* cluster 0, member 1 */
    assert_int_equal(pending_mask(h, 0x52), 0x2);
}

static void test_ipi_lowest_priority(void **state)
{
    struct harness *h = *state;
    enable_all(h);
    for (unsigned i = 0; i < NCPUS; i++) {
        wr(cpu(h, i), LAPIC_LDR, (1u << i) << 24);
        wr(cpu(h, i), LAPIC_TPR, 0x80);
    }
    wr(cpu(h, 2), LAPIC_TPR, 0x10);
    send_ipi(cpu(h, 0), 0x0f, 0x60 | (APIC_DM_LOWEST << 8) | (1u << 11));
    assert_int_equal(pending_mask(h, 0x60), 1u << 2);
    /* Among equals exactly one is chosen. */
    wr(cpu(h, 2), LAPIC_TPR, 0x80);
    send_ipi(cpu(h, 0), 0x0f, 0x61 | (APIC_DM_LOWEST << 8) | (1u << 11));
    unsigned m = pending_mask(h, 0x61);
    assert_int_equal(__builtin_popcount(m), 1);
}

static void test_nmi_init_sipi(void **state)
{
    struct harness *h = *state;
    enable_all(h);
    struct lapic *bsp = cpu(h, 0), *ap = cpu(h, 1);
    send_ipi(bsp, 1, APIC_DM_NMI << 8);
    assert_true(lapic_take_nmi(ap));
    assert_false(lapic_take_nmi(ap));
    assert_false(lapic_take_nmi(bsp));

    /* INIT resets the target's APIC (not its ID or base) and tells the owner. */
    wr(ap, LAPIC_TPR, 0x20);
    send_fixed(h, 1, 0x70, false);
    send_ipi(bsp, 1, (APIC_DM_INIT << 8) | (1u << 14));
    assert_int_equal(h->inits[1], 1);
    assert_int_equal(rd(ap, LAPIC_SVR), 0xff);
    assert_int_equal(rd(ap, LAPIC_TPR), 0);
    assert_false(vec_bit(ap, LAPIC_IRR, 0x70));
    assert_int_equal(rd(ap, LAPIC_ID), 1u << 24);
    /* The de-assert form that follows it in the MP protocol changes nothing. */
    send_ipi(bsp, 1, (APIC_DM_INIT << 8) | (1u << 15));
    assert_int_equal(h->inits[1], 1);
    /* SIPI carries the start page; the callback gets it even on a software-disabled APIC. */
    send_ipi(bsp, 1, (APIC_DM_SIPI << 8) | 0x9a);
    assert_int_equal(h->sipi[1], 0x9a);
    assert_int_equal(h->sipi[2], -1);
    /* All-excluding-self, as Linux does for every AP at once. */
    send_ipi(bsp, 0, (APIC_DM_INIT << 8) | (1u << 14) | (APIC_SH_OTHERS << 18));
    assert_int_equal(h->inits[0], 0);
    assert_int_equal(h->inits[2], 1);
    assert_int_equal(h->inits[3], 1);
    /* SMI and ExtINT through the ICR are not sent. */
    unsigned k = atomic_load(&h->kicks[3]);
    send_ipi(bsp, 3, APIC_DM_SMI << 8);
    send_ipi(bsp, 3, APIC_DM_EXTINT << 8);
    assert_int_equal(atomic_load(&h->kicks[3]), k);
}

static void test_lint_pins(void **state)
{
    struct harness *h = *state;
    struct lapic *bsp = cpu(h, 0), *ap = cpu(h, 1);
    /* BSP LINT0 is ExtINT after reset: the INTA goes to the 8259 (here the harness). */
    h->extint_vector = 0x30;
    assert_false(lapic_has_interrupt(bsp));
    lapic_set_lint(bsp, 0, 1);
    assert_true(atomic_load(&h->kicks[0]) >= 1);
    assert_true(lapic_has_interrupt(bsp));
    assert_int_equal(lapic_get_interrupt(bsp), 0x30);
    assert_int_equal(h->extint_acks, 1);
    lapic_set_lint(bsp, 0, 0);
    assert_false(lapic_has_interrupt(bsp));
    /* Masking LINT0 cuts the 8259 off. */
    sw_enable(bsp);
    wr(bsp, LAPIC_LVT_LINT0, LVT_MASKED | (APIC_DM_EXTINT << 8));
    lapic_set_lint(bsp, 0, 1);
    assert_false(lapic_has_interrupt(bsp));
    /* LINT1 as NMI, as the MADT describes: edge, one NMI per rising edge. */
    sw_enable(ap);
    wr(ap, LAPIC_LVT_LINT1, APIC_DM_NMI << 8);
    lapic_set_lint(ap, 1, 1);
    lapic_set_lint(ap, 1, 1);
    assert_true(lapic_take_nmi(ap));
    assert_false(lapic_take_nmi(ap));
    lapic_set_lint(ap, 1, 0);
    lapic_set_lint(ap, 1, 1);
    assert_true(lapic_take_nmi(ap));
    /* LINT0 as a fixed vector. */
    wr(ap, LAPIC_LVT_LINT0, 0x90);
    lapic_set_lint(ap, 0, 1);
    assert_int_equal(lapic_get_interrupt(ap), 0x90);
}

static void test_level_eoi_reaches_ioapic(void **state)
{
    struct harness *h = *state;
    struct ioapic *io = ioapic_create(&h->bus);
    assert_non_null(io);
    struct lapic *l = cpu(h, 1);
    sw_enable(l);
    /* Pin 9: vector 0x59, level, physical destination 1. */
    io->redir[9] = 0x59 | IOAPIC_RE_LEVEL | (1ULL << IOAPIC_RE_DEST_SHIFT);
    ioapic_set_irq(io, 9, 1);
    assert_true(io->redir[9] & IOAPIC_RE_REMOTE_IRR);
    assert_true(vec_bit(l, LAPIC_TMR, 0x59));
    assert_int_equal(lapic_get_interrupt(l), 0x59);
    ioapic_set_irq(io, 9, 0);
    wr(l, LAPIC_EOI, 0);
    assert_false(io->redir[9] & IOAPIC_RE_REMOTE_IRR);
    /* An edge vector's EOI is not broadcast: remote IRR of a pin using it stays. */
    io->redir[9] |= IOAPIC_RE_REMOTE_IRR;
    send_fixed(h, 1, 0x59, false);
    assert_int_equal(lapic_get_interrupt(l), 0x59);
    wr(l, LAPIC_EOI, 0);
    assert_true(io->redir[9] & IOAPIC_RE_REMOTE_IRR);
}

static void test_x2apic(void **state)
{
    struct harness *h = *state;
    struct lapic *a = cpu(h, 0), *b = cpu(h, 3);
    uint64_t v;
    /* x2APIC MSRs fault until x2APIC mode is on; disabled -> x2APIC is not a valid step. */
    assert_int_equal(lapic_msr_read(b, 0x802, &v), -EINVAL);
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE, LAYOUT_LAPIC_BASE), 0);
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE,
                                     LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE | APIC_BASE_EXTD),
                     -EINVAL);
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE, LAYOUT_LAPIC_BASE | APIC_BASE_EXTD),
                     -EINVAL);
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE, 1ULL << 63), -EINVAL);
    for (unsigned i = 0; i < NCPUS; i++) {
        struct lapic *l = cpu(h, i);
        assert_int_equal(lapic_msr_write(l, MSR_IA32_APIC_BASE,
                                         LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE), 0);
        assert_int_equal(lapic_msr_write(l, MSR_IA32_APIC_BASE,
                                         LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE | APIC_BASE_EXTD),
                         0);
        assert_int_equal(lapic_msr_write(l, 0x80f, 0x1ff), 0); /* SVR */
    }
    assert_int_equal(lapic_msr_read(a, MSR_IA32_APIC_BASE, &v), 0);
    assert_int_equal(v, LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE | APIC_BASE_EXTD | APIC_BASE_BSP);
    assert_int_equal(lapic_mmio_base(b), UINT64_MAX);
    assert_int_equal(lapic_mmio_read(b, LAPIC_VERSION, 4), 0xffffffffu);
    assert_int_equal(lapic_msr_read(b, 0x802, &v), 0);
    assert_int_equal(v, 3); /* the x2APIC ID is not shifted */
    assert_int_equal(lapic_msr_read(b, 0x80d, &v), 0);
    assert_int_equal(v, 0x8); /* LDR: cluster 0, bit 3 */
    /* Absent, read-only and write-only registers fault. */
    assert_int_equal(lapic_msr_read(b, 0x80e, &v), -EINVAL); /* DFR */
    assert_int_equal(lapic_msr_read(b, 0x80b, &v), -EINVAL); /* EOI */
    assert_int_equal(lapic_msr_read(b, 0x83f, &v), -EINVAL); /* SELF_IPI */
    assert_int_equal(lapic_msr_read(b, 0x831, &v), -EINVAL); /* ICR high */
    assert_int_equal(lapic_msr_read(b, 0x8ff, &v), -EINVAL);
    assert_int_equal(lapic_msr_write(b, 0x802, 7), -EINVAL);
    assert_int_equal(lapic_msr_write(b, 0x80d, 7), -EINVAL);
    assert_int_equal(lapic_msr_write(b, 0x803, 0), -EINVAL);
    assert_int_equal(lapic_msr_write(b, 0x80b, 1), -EINVAL); /* EOI must write 0 */
    assert_int_equal(lapic_msr_write(b, 0x808, 1ULL << 32), -EINVAL);
    assert_int_equal(lapic_msr_write(b, 0x830, 0x40 | (1u << 13)), -EINVAL);
    assert_int_equal(lapic_msr_read(b, 0x1234, &v), -ENOENT);
    /* The ICR is one 64-bit MSR with a 32-bit destination. */
    assert_int_equal(lapic_msr_write(a, 0x830, (3ULL << 32) | 0x70), 0);
    assert_int_equal(lapic_msr_read(b, 0x800 + (LAPIC_IRR + 0x30) / 16, &v), 0);
    assert_int_equal(v, 1u << (0x70 - 0x60));
    assert_int_equal(lapic_msr_read(a, 0x830, &v), 0);
    assert_int_equal(v, (3ULL << 32) | 0x70);
    /* Logical: cluster 0, members 1 and 3. */
    assert_int_equal(lapic_msr_write(a, 0x830, (0xaULL << 32) | 0x71 | (1u << 11)), 0);
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x71);
    assert_int_equal(lapic_get_interrupt(b), 0x71);
    assert_int_equal(lapic_msr_write(b, 0x80b, 0), 0); /* EOI by MSR */
    /* SELF_IPI. */
    assert_int_equal(lapic_msr_write(b, 0x83f, 0x72), 0);
    assert_int_equal(lapic_get_interrupt(b), 0x72);
    assert_int_equal(lapic_msr_write(b, 0x80b, 0), 0);
    assert_int_equal(lapic_msr_read(b, 0x800 + (LAPIC_ISR + 0x30) / 16, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(lapic_msr_read(b, 0x800 + (LAPIC_IRR + 0x30) / 16, &v), 0);
    assert_int_equal(v, 1u << (0x70 - 0x60)); /* still waiting: it was never acknowledged */
    /* x2APIC -> xAPIC must go through disabled. */
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE,
                                     LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE), -EINVAL);
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE, LAYOUT_LAPIC_BASE), 0);
    assert_int_equal(lapic_msr_write(b, MSR_IA32_APIC_BASE,
                                     LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE), 0);
    assert_int_equal(rd(b, LAPIC_SVR), 0xff); /* came back in its reset state */
}

static void test_relocate_base(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 1);
    uint64_t v;
    assert_int_equal(lapic_msr_write(l, MSR_IA32_APIC_BASE, 0xfed00000ULL | APIC_BASE_ENABLE |
                                                             APIC_BASE_BSP), 0);
    assert_int_equal(lapic_mmio_base(l), 0xfed00000ULL);
    assert_int_equal(lapic_msr_read(l, MSR_IA32_APIC_BASE, &v), 0);
    assert_int_equal(v, 0xfed00000ULL | APIC_BASE_ENABLE); /* BSP flag is read-only */
    assert_int_equal(lapic_msr_write(l, MSR_IA32_APIC_BASE, 0xfee00000ULL | 0x1), -EINVAL);
}

struct storm {
    struct harness *h;
    unsigned from, to;
};

static void *storm_thread(void *arg)
{
    struct storm *s = arg;
    struct lapic *l = cpu(s->h, s->from);
    for (unsigned i = 0; i < 20000; i++) {
        wr(l, LAPIC_ICR_HIGH, s->to << 24);
        wr(l, LAPIC_ICR_LOW, 0x80 + (i & 0x3f));
        int v = lapic_get_interrupt(l);
        if (v >= 0)
            wr(l, LAPIC_EOI, 0);
    }
    return NULL;
}

/* Two vCPUs IPI each other while acknowledging their own: no deadlock, no lost kick. */
static void test_concurrent_ipis(void **state)
{
    struct harness *h = *state;
    enable_all(h);
    struct storm s1 = {h, 0, 1}, s2 = {h, 1, 0};
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, storm_thread, &s1), 0);
    assert_int_equal(pthread_create(&t2, NULL, storm_thread, &s2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    /* One kick per IPI, plus at most one per EOI that lets a waiting vector through. */
    for (unsigned c = 0; c < 2; c++) {
        assert_true(atomic_load(&h->kicks[c]) >= 20000);
        assert_true(atomic_load(&h->kicks[c]) <= 40000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lower_priority_kicks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_apic_drops_fixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_illegal_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_mmio_accesses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_one_shot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_periodic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_tsc_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipi_physical_and_shorthands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipi_logical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipi_lowest_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nmi_init_sipi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lint_pins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_eoi_reaches_ioapic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x2apic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relocate_base, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_ipis, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
