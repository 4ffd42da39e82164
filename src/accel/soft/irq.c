#include "accel/soft/irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accel/soft/ioapic.h"
#include "accel/soft/lapic.h"
#include "accel/soft/pic.h"
#include "accel/soft/pit.h"
#include "arch/x86/layout.h"

/* ---- time ---- */

uint64_t soft_clock_now(const struct soft_clock *clock)
{
    if (clock && clock->now_ns)
        return clock->now_ns(clock->opaque);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t soft_tsc_from_ns(uint32_t tsc_khz, uint64_t ns)
{
    return (uint64_t)((unsigned __int128)ns * tsc_khz / 1000000u);
}

uint64_t soft_ns_from_tsc(uint32_t tsc_khz, uint64_t tsc)
{
    if (!tsc_khz)
        return UINT64_MAX;
    unsigned __int128 ns = ((unsigned __int128)tsc * 1000000u + tsc_khz - 1) / tsc_khz;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/* ---- the APIC bus ---- */

int apic_bus_init(struct apic_bus *bus, unsigned ncpus, const struct soft_clock *clock,
                  uint32_t tsc_khz, const struct apic_bus_ops *ops)
{
    memset(bus, 0, sizeof(*bus));
    /* Physical xAPIC destinations are 8 bits and 0xff is the broadcast. */
    if (ncpus == 0 || ncpus > 255)
        return -EINVAL;
    if (ops)
        bus->ops = *ops;
    bus->lapics = calloc(ncpus, sizeof(*bus->lapics));
    if (!bus->lapics)
        return -ENOMEM;
    for (unsigned i = 0; i < ncpus; i++) {
        int rc = -ENOMEM;
        bus->lapics[i] = calloc(1, sizeof(struct lapic));
        if (!bus->lapics[i] || (rc = lapic_init(bus->lapics[i], bus, i, clock, tsc_khz)) < 0) {
            free(bus->lapics[i]);
            bus->lapics[i] = NULL;
            bus->ncpus = i;
            apic_bus_destroy(bus);
            return rc;
        }
    }
    bus->ncpus = ncpus;
    return 0;
}

void apic_bus_destroy(struct apic_bus *bus)
{
    for (unsigned i = 0; i < bus->ncpus; i++) {
        lapic_destroy(bus->lapics[i]);
        free(bus->lapics[i]);
    }
    free(bus->lapics);
    bus->lapics = NULL;
    bus->ncpus = 0;
}

struct lapic *apic_bus_lapic(struct apic_bus *bus, unsigned cpu)
{
    return cpu < bus->ncpus ? bus->lapics[cpu] : NULL;
}

/* Lowest-priority arbitration: the addressed APIC with the lowest processor priority; ties go
 * round-robin so that a quiet system spreads device interrupts over its CPUs. */
static struct lapic *pick_lowest(struct apic_bus *bus, struct lapic **cand, unsigned n)
{
    unsigned start = atomic_fetch_add(&bus->lowest_rr, 1) % n;
    struct lapic *best = NULL;
    uint32_t best_ppr = UINT32_MAX;
    for (unsigned k = 0; k < n; k++) {
        struct lapic *l = cand[(start + k) % n];
        uint32_t ppr = lapic_get_ppr(l) & 0xf0;
        if (ppr < best_ppr) {
            best = l;
            best_ppr = ppr;
        }
    }
    return best;
}

int apic_bus_deliver(struct apic_bus *bus, const struct apic_msg *msg, struct lapic *source)
{
    struct lapic *stack[64];
    struct lapic **targets = stack;
    unsigned n = 0;
    if (bus->ncpus > 64 && !(targets = malloc(bus->ncpus * sizeof(*targets))))
        return -ENOMEM;

    for (unsigned i = 0; i < bus->ncpus; i++) {
        struct lapic *l = bus->lapics[i];
        bool hit;
        switch (source ? msg->shorthand : APIC_SH_NONE) {
        case APIC_SH_SELF:
            hit = l == source;
            break;
        case APIC_SH_ALL:
            hit = lapic_enabled(l);
            break;
        case APIC_SH_OTHERS:
            hit = l != source && lapic_enabled(l);
            break;
        default:
            hit = lapic_match_dest(l, msg);
        }
        if (hit)
            targets[n++] = l;
    }
    if (msg->mode == APIC_DM_LOWEST && n > 1) {
        targets[0] = pick_lowest(bus, targets, n);
        n = 1;
    }
    for (unsigned i = 0; i < n; i++)
        if (lapic_accept(targets[i], msg) && bus->ops.kick)
            bus->ops.kick(bus->ops.opaque, targets[i]->index);
    if (targets != stack)
        free(targets);
    return (int)n;
}

int apic_bus_deliver_msi(struct apic_bus *bus, uint64_t addr, uint32_t data)
{
    if ((addr >> 20) != 0xfee)
        return -EINVAL;
    uint32_t dest = (addr >> 12) & 0xff;
    struct apic_msg m = {
        .dest = dest == 0xff ? APIC_DEST_BROADCAST : dest,
        .logical = addr & (1u << 2),
        .vector = data & 0xff,
        .mode = (data >> 8) & 7,
        .level_trig = data & (1u << 15),
        .assert = true,
    };
    /* A vector below 16 is refused by the receiver, which records the error. Modes without a
     * meaning for MSIs (SIPI, reserved) are dropped here. */
    if (m.mode == APIC_DM_SIPI || m.mode == 3)
        return 0;
    return apic_bus_deliver(bus, &m, NULL);
}

/* ---- the router ---- */

static int router_extint_ack(void *opaque)
{
    struct soft_irq *r = opaque;
    return pic_get_vector(r->pic);
}

static void router_pic_int(void *opaque, int level)
{
    struct soft_irq *r = opaque;
    lapic_set_lint(r->apic.lapics[0], 0, level);
}

static void router_set_line(void *opaque, unsigned gsi, int level)
{
    soft_irq_set_level(opaque, gsi, level);
}

struct soft_irq *soft_irq_create(const struct soft_irq_config *cfg)
{
    struct soft_irq *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    int rc = pthread_mutex_init(&r->lock, NULL);
    if (rc) {
        free(r);
        errno = rc;
        return NULL;
    }
    struct apic_bus_ops ops = {.kick = cfg->kick, .on_init = cfg->on_init,
                               .on_sipi = cfg->on_sipi, .opaque = cfg->opaque,
                               .extint_ack = router_extint_ack, .extint_opaque = r};
    rc = apic_bus_init(&r->apic, cfg->ncpus, &cfg->clock, cfg->tsc_khz, &ops);
    if (rc < 0) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        errno = -rc;
        return NULL;
    }
    struct pic_output out = {.set_int = router_pic_int, .opaque = r};
    struct irq_line irq0 = {.set_level = router_set_line, .opaque = r, .gsi = 0};
    r->ioapic = ioapic_create(&r->apic);
    r->pic = pic_create(&out);
    r->pit = pit_create(&cfg->clock, &irq0);
    if (!r->ioapic || !r->pic || !r->pit) {
        soft_irq_destroy(r);
        errno = ENOMEM;
        return NULL;
    }
    if (cfg->timer_programmed)
        pit_set_programmed(r->pit, cfg->timer_programmed, cfg->opaque);
    return r;
}

void soft_irq_destroy(struct soft_irq *irq)
{
    if (!irq)
        return;
    if (irq->pit)
        pit_destroy(irq->pit);
    if (irq->pic)
        pic_destroy(irq->pic);
    if (irq->ioapic)
        ioapic_destroy(irq->ioapic);
    apic_bus_destroy(&irq->apic);
    pthread_mutex_destroy(&irq->lock);
    free(irq);
}

void soft_irq_reset(struct soft_irq *irq)
{
    pit_reset(irq->pit);
    pic_reset(irq->pic);
    ioapic_reset(irq->ioapic);
    for (unsigned i = 0; i < irq->apic.ncpus; i++)
        lapic_reset(irq->apic.lapics[i]);
}

int soft_irq_attach(struct soft_irq *irq, struct bus *pio, struct bus *mmio)
{
    int rc = pic_attach(irq->pic, pio);
    if (rc == 0)
        rc = pit_attach(irq->pit, pio);
    if (rc == 0)
        rc = ioapic_attach(irq->ioapic, mmio);
    return rc;
}

int soft_irq_set_level(struct soft_irq *irq, unsigned gsi, int level)
{
    if (gsi >= IOAPIC_PINS)
        return -EINVAL;
    pthread_mutex_lock(&irq->lock);
    if (level)
        irq->levels |= 1u << gsi;
    else
        irq->levels &= ~(1u << gsi);
    if (gsi < 16 && gsi != 2)
        pic_set_irq(irq->pic, gsi, level);
    /* IOAPIC pin 2 is shared by GSI 0 (the PIT, through the MADT override) and GSI 2. */
    unsigned pin = gsi == 0 ? 2 : gsi;
    int pin_level = pin == 2 ? (irq->levels & 5u) != 0 : level != 0;
    ioapic_set_irq(irq->ioapic, pin, pin_level);
    pthread_mutex_unlock(&irq->lock);
    return 0;
}

uint64_t soft_irq_next_deadline_ns(struct soft_irq *irq)
{
    return pit_next_deadline_ns(irq->pit);
}

void soft_irq_tick(struct soft_irq *irq, uint64_t now_ns)
{
    pit_tick(irq->pit, now_ns);
}
