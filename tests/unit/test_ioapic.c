/* The software IOAPIC: register window, edge and level pins, remote IRR and EOI, masking,
 * destinations; MSI delivery on the APIC bus; the machine's GSI router. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "accel/soft/ioapic.h"
#include "accel/soft/irq.h"
#include "accel/soft/lapic.h"
#include "accel/soft/pic.h"
#include "accel/soft/pit.h"
#include "arch/x86/layout.h"
#include "devices/bus.h"

#define NCPUS 2

struct harness {
    struct apic_bus apic;
    struct ioapic *io;
    struct bus mmio;
    uint64_t now;
    unsigned kicks[NCPUS];
};

static uint64_t h_now(void *opaque)
{
    return ((struct harness *)opaque)->now;
}

static void h_kick(void *opaque, unsigned cpu)
{
    ((struct harness *)opaque)->kicks[cpu]++;
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    struct soft_clock clock = {.now_ns = h_now, .opaque = h};
    struct apic_bus_ops ops = {.kick = h_kick, .opaque = h};
    assert_int_equal(apic_bus_init(&h->apic, NCPUS, &clock, 0, &ops), 0);
    for (unsigned i = 0; i < NCPUS; i++)
        lapic_mmio_write(apic_bus_lapic(&h->apic, i), LAPIC_SVR, 0x1ff, 4);
    h->io = ioapic_create(&h->apic);
    assert_non_null(h->io);
    assert_ptr_equal(h->apic.ioapic, h->io);
    bus_init(&h->mmio, "mmio");
    assert_int_equal(ioapic_attach(h->io, &h->mmio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    ioapic_destroy(h->io);
    apic_bus_destroy(&h->apic);
    test_free(h);
    return 0;
}

static uint32_t io_read(struct harness *h, uint32_t index)
{
    uint64_t v;
    assert_true(bus_write(&h->mmio, LAYOUT_IOAPIC_BASE + IOAPIC_REGSEL, 4, index));
    assert_true(bus_read(&h->mmio, LAYOUT_IOAPIC_BASE + IOAPIC_IOWIN, 4, &v));
    return (uint32_t)v;
}

static void io_write(struct harness *h, uint32_t index, uint32_t val)
{
    assert_true(bus_write(&h->mmio, LAYOUT_IOAPIC_BASE + IOAPIC_REGSEL, 4, index));
    assert_true(bus_write(&h->mmio, LAYOUT_IOAPIC_BASE + IOAPIC_IOWIN, 4, val));
}

static void set_entry(struct harness *h, unsigned pin, uint64_t re)
{
    io_write(h, IOAPIC_REG_REDIR + 2 * pin + 1, (uint32_t)(re >> 32));
    io_write(h, IOAPIC_REG_REDIR + 2 * pin, (uint32_t)re);
}

static uint64_t get_entry(struct harness *h, unsigned pin)
{
    return io_read(h, IOAPIC_REG_REDIR + 2 * pin) |
           ((uint64_t)io_read(h, IOAPIC_REG_REDIR + 2 * pin + 1) << 32);
}

static struct lapic *cpu(struct harness *h, unsigned i)
{
    return apic_bus_lapic(&h->apic, i);
}

static uint64_t dest(unsigned id)
{
    return (uint64_t)id << IOAPIC_RE_DEST_SHIFT;
}

static void test_registers(void **state)
{
    struct harness *h = *state;
    assert_int_equal(io_read(h, IOAPIC_REG_VERSION), 0x170011);
    assert_int_equal(io_read(h, IOAPIC_REG_ID), 0);
    io_write(h, IOAPIC_REG_ID, 0xffffffffu);
    assert_int_equal(io_read(h, IOAPIC_REG_ID), 0x0f000000);
    assert_int_equal(io_read(h, IOAPIC_REG_ARB), 0x0f000000);
    io_write(h, IOAPIC_REG_VERSION, 0);
    assert_int_equal(io_read(h, IOAPIC_REG_VERSION), 0x170011);
    /* All pins start masked. */
    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
        assert_int_equal(get_entry(h, pin), IOAPIC_RE_MASKED);
    /* Writable bits round-trip; delivery status and remote IRR do not. */
    set_entry(h, 5, 0xffffffffffffffffULL);
    assert_int_equal(get_entry(h, 5), 0xff0000000001afffULL);
    /* Indices past the last pin and unknown registers read as open bus; IOREGSEL is 8 bits. */
    assert_int_equal(io_read(h, IOAPIC_REG_REDIR + 2 * IOAPIC_PINS), 0xffffffffu);
    assert_int_equal(io_read(h, 0x03), 0xffffffffu);
    assert_true(bus_write(&h->mmio, LAYOUT_IOAPIC_BASE, 4, 0x101));
    uint64_t v;
    assert_true(bus_read(&h->mmio, LAYOUT_IOAPIC_BASE, 4, &v));
    assert_int_equal(v, 0x01);
    /* Only 32-bit writes are decoded. */
    assert_true(bus_write(&h->mmio, LAYOUT_IOAPIC_BASE + IOAPIC_REGSEL, 1, IOAPIC_REG_ID));
    assert_true(bus_read(&h->mmio, LAYOUT_IOAPIC_BASE, 4, &v));
    assert_int_equal(v, 0x01);
    /* Other offsets in the page read as open bus. */
    assert_true(bus_read(&h->mmio, LAYOUT_IOAPIC_BASE + 0x40, 4, &v));
    assert_int_equal(v, 0xffffffffu);
}

static void test_edge(void **state)
{
    struct harness *h = *state;
    set_entry(h, 4, 0x34 | dest(1));
    ioapic_set_irq(h->io, 4, 1);
    assert_int_equal(h->kicks[1], 1);
    ioapic_set_irq(h->io, 4, 1); /* still high: no new edge */
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x34);
    lapic_mmio_write(cpu(h, 1), LAPIC_EOI, 0, 4);
    assert_false(lapic_has_interrupt(cpu(h, 1)));
    ioapic_set_irq(h->io, 4, 0);
    ioapic_set_irq(h->io, 4, 1);
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x34);
    lapic_mmio_write(cpu(h, 1), LAPIC_EOI, 0, 4);
    /* An edge on a masked pin is lost, and unmasking does not bring it back. */
    ioapic_set_irq(h->io, 4, 0);
    set_entry(h, 4, 0x34 | dest(1) | IOAPIC_RE_MASKED);
    ioapic_set_irq(h->io, 4, 1);
    set_entry(h, 4, 0x34 | dest(1));
    assert_false(lapic_has_interrupt(cpu(h, 1)));
    assert_false(get_entry(h, 4) & IOAPIC_RE_REMOTE_IRR);
    /* Out-of-range pins are ignored. */
    ioapic_set_irq(h->io, IOAPIC_PINS, 1);
    ioapic_set_irq(h->io, 1000, 1);
}

static void test_level_remote_irr(void **state)
{
    struct harness *h = *state;
    struct lapic *l = cpu(h, 0);
    set_entry(h, 10, 0x61 | IOAPIC_RE_LEVEL | dest(0));
    ioapic_set_irq(h->io, 10, 1);
    assert_true(get_entry(h, 10) & IOAPIC_RE_REMOTE_IRR);
    assert_int_equal(lapic_get_interrupt(l), 0x61);
    /* While in service, the still-asserted line is not delivered again. */
    ioapic_set_irq(h->io, 10, 1);
    assert_false(lapic_has_interrupt(l));
    /* EOI with the line still high: remote IRR clears and the interrupt comes back. */
    lapic_mmio_write(l, LAPIC_EOI, 0, 4);
    assert_true(get_entry(h, 10) & IOAPIC_RE_REMOTE_IRR);
    assert_int_equal(lapic_get_interrupt(l), 0x61);
    /* The device deasserts before the EOI: nothing more. */
    ioapic_set_irq(h->io, 10, 0);
    lapic_mmio_write(l, LAPIC_EOI, 0, 4);
    assert_false(get_entry(h, 10) & IOAPIC_RE_REMOTE_IRR);
    assert_false(lapic_has_interrupt(l));
    /* A masked level pin waits; unmasking delivers it. */
    set_entry(h, 10, 0x61 | IOAPIC_RE_LEVEL | dest(0) | IOAPIC_RE_MASKED);
    ioapic_set_irq(h->io, 10, 1);
    assert_false(lapic_has_interrupt(l));
    set_entry(h, 10, 0x61 | IOAPIC_RE_LEVEL | dest(0));
    assert_int_equal(lapic_get_interrupt(l), 0x61);
    /* Switching the pin to edge drops a stuck remote IRR. */
    set_entry(h, 10, 0x61 | dest(0) | IOAPIC_RE_MASKED);
    assert_false(get_entry(h, 10) & IOAPIC_RE_REMOTE_IRR);
    /* An EOI for another vector leaves a pin alone. */
    set_entry(h, 11, 0x62 | IOAPIC_RE_LEVEL | dest(1));
    ioapic_set_irq(h->io, 11, 1);
    ioapic_eoi(h->io, 0x63);
    assert_true(get_entry(h, 11) & IOAPIC_RE_REMOTE_IRR);
    ioapic_eoi(h->io, 0x62);
    assert_true(get_entry(h, 11) & IOAPIC_RE_REMOTE_IRR); /* still asserted: redelivered */
}

static void test_destinations(void **state)
{
    struct harness *h = *state;
    /* Logical flat, both CPUs. */
    for (unsigned i = 0; i < NCPUS; i++)
        lapic_mmio_write(cpu(h, i), LAPIC_LDR, (1u << i) << 24, 4);
    set_entry(h, 3, 0x40 | IOAPIC_RE_LOGICAL | dest(3));
    ioapic_set_irq(h->io, 3, 1);
    assert_int_equal(lapic_get_interrupt(cpu(h, 0)), 0x40);
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x40);
    for (unsigned i = 0; i < NCPUS; i++)
        lapic_mmio_write(cpu(h, i), LAPIC_EOI, 0, 4);
    /* Lowest priority to both: exactly one gets it, the one with the lower priority. */
    lapic_mmio_write(cpu(h, 0), LAPIC_TPR, 0x90, 4);
    set_entry(h, 5, 0x41 | (APIC_DM_LOWEST << 8) | IOAPIC_RE_LOGICAL | dest(3));
    ioapic_set_irq(h->io, 5, 1);
    assert_false(lapic_has_interrupt(cpu(h, 0)));
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x41);
    lapic_mmio_write(cpu(h, 1), LAPIC_EOI, 0, 4);
    /* Physical broadcast 0xff. */
    set_entry(h, 6, 0x42 | dest(0xff));
    ioapic_set_irq(h->io, 6, 1);
    lapic_mmio_write(cpu(h, 0), LAPIC_TPR, 0, 4);
    assert_int_equal(lapic_get_interrupt(cpu(h, 0)), 0x42);
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x42);
    /* NMI delivery mode. */
    set_entry(h, 7, (APIC_DM_NMI << 8) | dest(1));
    ioapic_set_irq(h->io, 7, 1);
    assert_true(lapic_take_nmi(cpu(h, 1)));
    assert_false(lapic_take_nmi(cpu(h, 0)));
}

static void test_msi(void **state)
{
    struct harness *h = *state;
    assert_int_equal(apic_bus_deliver_msi(&h->apic, 0xfee01000ULL, 0x4051), 1);
    assert_int_equal(lapic_get_interrupt(cpu(h, 1)), 0x51);
    assert_int_equal(lapic_get_interrupt(cpu(h, 0)), -1);
    /* Logical destination (bit 2 of the address). */
    for (unsigned i = 0; i < NCPUS; i++)
        lapic_mmio_write(cpu(h, i), LAPIC_LDR, (1u << i) << 24, 4);
    assert_int_equal(apic_bus_deliver_msi(&h->apic, 0xfee01004ULL, 0x52), 1);
    assert_int_equal(lapic_get_interrupt(cpu(h, 0)), 0x52);
    assert_int_equal(apic_bus_deliver_msi(&h->apic, 0xfeeff000ULL, 0x53), 2);
    /* Not an MSI address; a SIPI by MSI; a vector the receiver refuses. */
    assert_int_equal(apic_bus_deliver_msi(&h->apic, 0xfed00000ULL, 0x54), -EINVAL);
    assert_int_equal(apic_bus_deliver_msi(&h->apic, 0xfee00000ULL, 0x600 | 0x54), 0);
    assert_int_equal(apic_bus_deliver_msi(&h->apic, 0xfee00000ULL, 0x07), 1);
    lapic_mmio_write(cpu(h, 0), LAPIC_ESR, 0, 4);
    assert_int_equal(lapic_mmio_read(cpu(h, 0), LAPIC_ESR, 4), LAPIC_ESR_RECV_ILLEGAL);
}

/* ---- the router ---- */

struct router_harness {
    struct soft_irq *irq;
    struct bus pio, mmio;
    uint64_t now;
};

static uint64_t r_now(void *opaque)
{
    return ((struct router_harness *)opaque)->now;
}

static void test_router(void **state)
{
    (void)state;
    struct router_harness rh = {.now = 1000};
    struct soft_irq_config cfg = {.ncpus = 2, .clock = {.now_ns = r_now, .opaque = &rh}};
    rh.irq = soft_irq_create(&cfg);
    assert_non_null(rh.irq);
    bus_init(&rh.pio, "pio");
    bus_init(&rh.mmio, "mmio");
    assert_int_equal(soft_irq_attach(rh.irq, &rh.pio, &rh.mmio), 0);
    struct ioapic *io = rh.irq->ioapic;
    struct pic *pic = rh.irq->pic;

    /* GSI 0 (the PIT) reaches 8259 IRQ0 and IOAPIC pin 2; GSI 2 only IOAPIC pin 2. */
    assert_int_equal(soft_irq_set_level(rh.irq, 0, 1), 0);
    assert_int_equal(io->levels, 1u << 2);
    assert_int_equal(pic->chip[0].irr, 1u << 0);
    assert_int_equal(soft_irq_set_level(rh.irq, 2, 1), 0);
    assert_int_equal(soft_irq_set_level(rh.irq, 0, 0), 0);
    assert_int_equal(io->levels, 1u << 2); /* GSI 2 still holds the shared pin */
    assert_int_equal(soft_irq_set_level(rh.irq, 2, 0), 0);
    assert_int_equal(io->levels, 0);
    /* ISA IRQs reach both controllers; GSIs above 15 only the IOAPIC. */
    assert_int_equal(soft_irq_set_level(rh.irq, 12, 1), 0);
    assert_int_equal(io->levels, 1u << 12);
    assert_int_equal(pic->chip[1].irr, 1u << 4);
    assert_int_equal(soft_irq_set_level(rh.irq, 20, 1), 0);
    assert_int_equal(io->levels, (1u << 12) | (1u << 20));
    assert_int_equal(soft_irq_set_level(rh.irq, 24, 1), -EINVAL);

    /* Everything is on the buses where a PC has it. */
    uint64_t v;
    assert_true(bus_write(&rh.mmio, LAYOUT_IOAPIC_BASE, 4, IOAPIC_REG_VERSION));
    assert_true(bus_read(&rh.mmio, LAYOUT_IOAPIC_BASE + IOAPIC_IOWIN, 4, &v));
    assert_int_equal(v, 0x170011);
    assert_true(bus_read(&rh.pio, 0x21, 1, &v));
    assert_true(bus_read(&rh.pio, 0xa1, 1, &v));
    assert_true(bus_read(&rh.pio, 0x4d0, 1, &v));
    assert_true(bus_read(&rh.pio, 0x61, 1, &v));
    assert_true(bus_read(&rh.pio, 0x42, 1, &v));
    assert_int_equal(soft_irq_next_deadline_ns(rh.irq), UINT64_MAX);

    /* The 8259's output reaches the BSP through LINT0 (ExtINT after reset) and its vector
     * comes from the INTA cycle. */
    struct lapic *bsp = apic_bus_lapic(&rh.irq->apic, 0);
    assert_true(bus_write(&rh.pio, 0x20, 1, 0x11));
    assert_true(bus_write(&rh.pio, 0x21, 1, 0x30));
    assert_true(bus_write(&rh.pio, 0x21, 1, 0x04));
    assert_true(bus_write(&rh.pio, 0x21, 1, 0x01));
    assert_true(bus_write(&rh.pio, 0x21, 1, 0xfe)); /* only IRQ0 unmasked */
    soft_irq_set_level(rh.irq, 0, 1);
    soft_irq_set_level(rh.irq, 0, 0);
    assert_true(lapic_has_interrupt(bsp));
    assert_int_equal(lapic_get_interrupt(bsp), 0x30);
    assert_false(lapic_has_interrupt(bsp));
    assert_false(lapic_has_interrupt(apic_bus_lapic(&rh.irq->apic, 1)));

    /* A machine reset puts everything back to its power-on state. */
    assert_true(bus_write(&rh.pio, 0x43, 1, 0x34));
    assert_true(bus_write(&rh.pio, 0x40, 1, 0x00));
    assert_true(bus_write(&rh.pio, 0x40, 1, 0x10));
    assert_int_not_equal(soft_irq_next_deadline_ns(rh.irq), UINT64_MAX);
    assert_true(bus_write(&rh.pio, 0x4d0, 1, 0x20));
    io->redir[4] = 0x44;
    lapic_mmio_write(bsp, LAPIC_SVR, 0x1ff, 4);
    soft_irq_reset(rh.irq);
    assert_int_equal(soft_irq_next_deadline_ns(rh.irq), UINT64_MAX);
    assert_int_equal(io->redir[4], IOAPIC_RE_MASKED);
    assert_true(bus_read(&rh.pio, 0x4d0, 1, &v));
    assert_int_equal(v, 0);
    assert_int_equal(pic->chip[0].base, 0);
    assert_int_equal(lapic_mmio_read(bsp, LAPIC_SVR, 4), 0xff);
    soft_irq_destroy(rh.irq);
}

/* ---- all of it at once, from several threads ---- */

struct storm {
    struct soft_irq *irq;
    atomic_ullong now;
    atomic_bool stop;
    atomic_uint taken;
};

/* The sources keep going until the vCPU thread has taken something: on a loaded host it may
 * not run at all during the first 20000 rounds (bounded, so a real loss still fails). */
static bool storm_more(struct storm *s, unsigned i)
{
    return i < 20000 || (atomic_load(&s->taken) == 0 && i < 20000000);
}

static uint64_t s_now(void *opaque)
{
    return atomic_load(&((struct storm *)opaque)->now);
}

static void *device_thread(void *arg)
{
    struct storm *s = arg;
    for (unsigned i = 0; storm_more(s, i); i++) {
        soft_irq_set_level(s->irq, 10, 1);
        soft_irq_set_level(s->irq, 10, 0);
        soft_irq_set_level(s->irq, 4, (int)(i & 1));
    }
    soft_irq_set_level(s->irq, 4, 0);
    return NULL;
}

static void *timer_thread(void *arg)
{
    struct storm *s = arg;
    for (unsigned i = 0; storm_more(s, i); i++) {
        atomic_fetch_add(&s->now, 50000);
        soft_irq_tick(s->irq, atomic_load(&s->now));
    }
    return NULL;
}

static void *vcpu_thread(void *arg)
{
    struct storm *s = arg;
    struct lapic *bsp = apic_bus_lapic(&s->irq->apic, 0);
    while (!atomic_load(&s->stop)) {
        int v = lapic_get_interrupt(bsp);
        if (v < 0)
            continue;
        atomic_fetch_add(&s->taken, 1);
        /* IOAPIC vectors end at the LAPIC; the 8259's (0x30-0x37 here) at the master. */
        if (v >= 0x40)
            lapic_mmio_write(bsp, LAPIC_EOI, 0, 4);
        else
            pic_chip_ops.write(&s->irq->pic->chip[0], 0, 0x20, 1);
    }
    return NULL;
}

/* Devices, the PIT and a vCPU taking and ending interrupts concurrently, through the 8259 (its
 * INTA runs from the vCPU) and the IOAPIC (EOIs go back to it): no deadlock, nothing stuck. */
static void test_concurrent_sources(void **state)
{
    (void)state;
    struct storm s = {.now = 1000};
    struct soft_irq_config cfg = {.ncpus = 1, .clock = {.now_ns = s_now, .opaque = &s}};
    s.irq = soft_irq_create(&cfg);
    assert_non_null(s.irq);
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    assert_int_equal(soft_irq_attach(s.irq, &pio, &mmio), 0);
    struct lapic *bsp = apic_bus_lapic(&s.irq->apic, 0);
    lapic_mmio_write(bsp, LAPIC_SVR, 0x1ff, 4);
    /* 8259 at 0x30/0x38, master unmasked, slave masked: GSI 0 and 4 arrive as ExtINT through
     * LINT0 too. */
    const uint8_t init[][2] = {{0x20, 0x11}, {0x21, 0x30}, {0x21, 0x04}, {0x21, 0x01},
                               {0xa0, 0x11}, {0xa1, 0x38}, {0xa1, 0x02}, {0xa1, 0x01},
                               {0x21, 0x00}, {0xa1, 0xff}};
    for (unsigned i = 0; i < sizeof(init) / sizeof(init[0]); i++)
        assert_true(bus_write(&pio, init[i][0], 1, init[i][1]));
    /* IOAPIC: GSI 10 level (vector 0x50), the PIT on pin 2 edge (vector 0x60). */
    assert_true(bus_write(&mmio, LAYOUT_IOAPIC_BASE, 4, IOAPIC_REG_REDIR + 2 * 10));
    assert_true(bus_write(&mmio, LAYOUT_IOAPIC_BASE + IOAPIC_IOWIN, 4, 0x50 | IOAPIC_RE_LEVEL));
    assert_true(bus_write(&mmio, LAYOUT_IOAPIC_BASE, 4, IOAPIC_REG_REDIR + 2 * 2));
    assert_true(bus_write(&mmio, LAYOUT_IOAPIC_BASE + IOAPIC_IOWIN, 4, 0x60));
    /* PIT channel 0 periodic every 100 ticks: IRQ0 reaches the 8259 (0x30) and pin 2 (0x60). */
    assert_true(bus_write(&pio, 0x43, 1, 0x34));
    assert_true(bus_write(&pio, 0x40, 1, 100));
    assert_true(bus_write(&pio, 0x40, 1, 0));

    pthread_t dev, tim, vcpu;
    assert_int_equal(pthread_create(&vcpu, NULL, vcpu_thread, &s), 0);
    assert_int_equal(pthread_create(&dev, NULL, device_thread, &s), 0);
    assert_int_equal(pthread_create(&tim, NULL, timer_thread, &s), 0);
    pthread_join(dev, NULL);
    pthread_join(tim, NULL);
    atomic_store(&s.stop, true);
    pthread_join(vcpu, NULL);
    assert_true(atomic_load(&s.taken) > 0);
    /* Drain: whatever is left can be taken and ended; then nothing is stuck in service. */
    atomic_store(&s.stop, false);
    for (int v; (v = lapic_get_interrupt(bsp)) >= 0;) {
        if (v >= 0x40)
            lapic_mmio_write(bsp, LAPIC_EOI, 0, 4);
        else
            pic_chip_ops.write(&s.irq->pic->chip[0], 0, 0x20, 1);
    }
    assert_false(s.irq->ioapic->redir[10] & IOAPIC_RE_REMOTE_IRR);
    assert_int_equal(lapic_mmio_read(bsp, LAPIC_ISR + 0x20, 4), 0);
    assert_int_equal(lapic_mmio_read(bsp, LAPIC_ISR + 0x30, 4), 0);
    soft_irq_destroy(s.irq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_remote_irr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destinations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msi, setup, teardown),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_concurrent_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
