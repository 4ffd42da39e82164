#include "accel/soft/ioapic.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/log.h"

/* Bits software writes in a redirection entry; delivery status and remote IRR are the chip's. */
#define RE_WRITABLE                                                                                \
    (IOAPIC_RE_VECTOR | IOAPIC_RE_DELIVERY | IOAPIC_RE_LOGICAL | IOAPIC_RE_POLARITY |             \
     IOAPIC_RE_LEVEL | IOAPIC_RE_MASKED | (0xffULL << IOAPIC_RE_DEST_SHIFT))

struct ioapic *ioapic_create(struct apic_bus *bus)
{
    struct ioapic *io = calloc(1, sizeof(*io));
    if (!io)
        return NULL;
    int rc = pthread_mutex_init(&io->lock, NULL);
    if (rc) {
        free(io);
        errno = rc;
        return NULL;
    }
    io->bus = bus;
    for (unsigned i = 0; i < IOAPIC_PINS; i++)
        io->redir[i] = IOAPIC_RE_MASKED;
    if (bus)
        bus->ioapic = io;
    return io;
}

void ioapic_destroy(struct ioapic *ioapic)
{
    if (!ioapic)
        return;
    if (ioapic->bus && ioapic->bus->ioapic == ioapic)
        ioapic->bus->ioapic = NULL;
    pthread_mutex_destroy(&ioapic->lock);
    free(ioapic);
}

void ioapic_reset(struct ioapic *ioapic)
{
    pthread_mutex_lock(&ioapic->lock);
    ioapic->regsel = 0;
    ioapic->id = 0;
    for (unsigned i = 0; i < IOAPIC_PINS; i++)
        ioapic->redir[i] = IOAPIC_RE_MASKED;
    pthread_mutex_unlock(&ioapic->lock);
}

int ioapic_attach(struct ioapic *ioapic, struct bus *mmio)
{
    return bus_register(mmio, LAYOUT_IOAPIC_BASE, IOAPIC_MMIO_SIZE, &ioapic_ops, ioapic, "ioapic");
}

/* Send pin's interrupt to the LAPICs (lock held). */
static void deliver(struct ioapic *io, unsigned pin)
{
    uint64_t re = io->redir[pin];
    uint32_t dest = (uint32_t)(re >> IOAPIC_RE_DEST_SHIFT);
    struct apic_msg m = {
        .dest = dest == 0xff ? APIC_DEST_BROADCAST : dest,
        .vector = re & IOAPIC_RE_VECTOR,
        .mode = (re & IOAPIC_RE_DELIVERY) >> 8,
        .logical = re & IOAPIC_RE_LOGICAL,
        .level_trig = re & IOAPIC_RE_LEVEL,
        .assert = true,
    };
    /* Level interrupts stay "remote IRR" until the EOI, whether or not a LAPIC took them, so a
     * line nobody listens to does not storm. NMI, INIT and ExtINT are edge by definition. */
    if ((re & IOAPIC_RE_LEVEL) && (m.mode == APIC_DM_FIXED || m.mode == APIC_DM_LOWEST))
        io->redir[pin] |= IOAPIC_RE_REMOTE_IRR;
    else
        m.level_trig = false;
    if (m.mode == APIC_DM_SIPI || m.mode == 3 || m.mode == APIC_DM_EXTINT)
        return; /* meaningless from an IOAPIC; ExtINT goes through the 8259 and LINT0 */
    if (io->bus)
        apic_bus_deliver(io->bus, &m, NULL);
}

/* Deliver a level-triggered pin if it is asserted, unmasked and not already in service. */
static void service_level(struct ioapic *io, unsigned pin)
{
    uint64_t re = io->redir[pin];
    if ((re & IOAPIC_RE_LEVEL) && (io->levels & (1u << pin)) && !(re & IOAPIC_RE_MASKED) &&
        !(re & IOAPIC_RE_REMOTE_IRR))
        deliver(io, pin);
}

void ioapic_set_irq(struct ioapic *ioapic, unsigned pin, int level)
{
    if (pin >= IOAPIC_PINS)
        return;
    uint32_t bit = 1u << pin;
    pthread_mutex_lock(&ioapic->lock);
    bool was = ioapic->levels & bit;
    if (level)
        ioapic->levels |= bit;
    else
        ioapic->levels &= ~bit;
    uint64_t re = ioapic->redir[pin];
    if (re & IOAPIC_RE_LEVEL)
        service_level(ioapic, pin);
    else if (level && !was && !(re & IOAPIC_RE_MASKED))
        deliver(ioapic, pin);
    pthread_mutex_unlock(&ioapic->lock);
}

void ioapic_eoi(struct ioapic *ioapic, uint8_t vector)
{
    pthread_mutex_lock(&ioapic->lock);
    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
        uint64_t re = ioapic->redir[pin];
        if ((re & IOAPIC_RE_VECTOR) != vector || !(re & IOAPIC_RE_REMOTE_IRR))
            continue;
        ioapic->redir[pin] &= ~IOAPIC_RE_REMOTE_IRR;
        service_level(ioapic, pin);
    }
    pthread_mutex_unlock(&ioapic->lock);
}

static uint32_t reg_read(struct ioapic *io, uint32_t index)
{
    switch (index) {
    case IOAPIC_REG_ID:
    case IOAPIC_REG_ARB: /* the arbitration ID is loaded from the ID */
        return io->id << 24;
    case IOAPIC_REG_VERSION:
        return IOAPIC_VERSION_VALUE;
    }
    if (index >= IOAPIC_REG_REDIR && index < IOAPIC_REG_REDIR + 2 * IOAPIC_PINS) {
        uint64_t re = io->redir[(index - IOAPIC_REG_REDIR) / 2];
        return (index & 1) ? (uint32_t)(re >> 32) : (uint32_t)re;
    }
    return 0xffffffffu; /* unimplemented indices read as an open bus */
}

static void reg_write(struct ioapic *io, uint32_t index, uint32_t val)
{
    if (index == IOAPIC_REG_ID) {
        io->id = (val >> 24) & 0xf;
        return;
    }
    if (index < IOAPIC_REG_REDIR || index >= IOAPIC_REG_REDIR + 2 * IOAPIC_PINS)
        return; /* version, arbitration and unimplemented registers are read-only */
    unsigned pin = (index - IOAPIC_REG_REDIR) / 2;
    uint64_t old = io->redir[pin], nw;
    if (index & 1)
        nw = (old & 0xffffffffULL) | ((uint64_t)val << 32);
    else
        nw = (old & ~0xffffffffULL) | val;
    nw = (nw & RE_WRITABLE) | (old & IOAPIC_RE_REMOTE_IRR);
    /* Remote IRR belongs to level mode: switching to edge drops it (Linux relies on this to
     * clear a stuck remote IRR). */
    if (!(nw & IOAPIC_RE_LEVEL))
        nw &= ~IOAPIC_RE_REMOTE_IRR;
    io->redir[pin] = nw;
    /* Unmasking a level pin whose line is asserted delivers it now. */
    service_level(io, pin);
}

static uint64_t ioapic_read(void *opaque, uint64_t offset, unsigned size)
{
    static atomic_bool warned;
    struct ioapic *io = opaque;
    uint64_t val;
    if (size != 4 && !atomic_exchange(&warned, true))
        log_warn("ioapic: %u-byte access at 0x%llx (reported once)", size,
                 (unsigned long long)offset);
    pthread_mutex_lock(&io->lock);
    if (offset == IOAPIC_REGSEL)
        val = io->regsel;
    else if (offset == IOAPIC_IOWIN)
        val = reg_read(io, io->regsel);
    else
        val = 0xffffffffu;
    pthread_mutex_unlock(&io->lock);
    return size >= 8 ? val : val & ((1ull << (size * 8)) - 1);
}

static void ioapic_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    static atomic_bool warned;
    struct ioapic *io = opaque;
    /* The chip decodes only 32-bit accesses; anything else is dropped, not half-applied. */
    if (size != 4) {
        if (!atomic_exchange(&warned, true))
            log_warn("ioapic: %u-byte write at 0x%llx ignored (reported once)", size,
                     (unsigned long long)offset);
        return;
    }
    pthread_mutex_lock(&io->lock);
    if (offset == IOAPIC_REGSEL)
        io->regsel = (uint32_t)data & 0xff;
    else if (offset == IOAPIC_IOWIN)
        reg_write(io, io->regsel, (uint32_t)data);
    pthread_mutex_unlock(&io->lock);
}

const struct bus_dev_ops ioapic_ops = {
    .read = ioapic_read,
    .write = ioapic_write,
};
