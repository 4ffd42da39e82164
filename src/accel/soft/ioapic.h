/* The I/O APIC of the software backend: 24 pins at LAYOUT_IOAPIC_BASE, an 82093AA-style
 * register window (IOREGSEL at +0x00, IOWIN at +0x10), version 0x11 (no EOI register: EOIs come
 * from the LAPICs' broadcast), delivery to the LAPICs over the APIC bus.
 *
 * Pin levels are logical (1 = asserted): the polarity bit of a redirection entry is stored and
 * read back but does not invert the line, because the router hands over what the device means,
 * not the voltage on a wire (as QEMU's and KVM's IOAPICs do).
 *
 * Edge pins deliver on a rising edge while unmasked (an edge on a masked pin is lost, as on the
 * 82093AA). Level pins deliver while asserted, unmasked and remote IRR is clear; delivery sets
 * remote IRR and the EOI of that vector clears it, re-delivering if the line is still asserted.
 *
 * Threading: one lock; set_irq, EOIs and register accesses may come from any thread. Deliveries
 * take LAPIC locks under it (the LAPIC never calls back into the IOAPIC while holding its own). */
#ifndef VIREO_ACCEL_SOFT_IOAPIC_H
#define VIREO_ACCEL_SOFT_IOAPIC_H

#include <pthread.h>
#include <stdint.h>

#include "accel/soft/irq.h"
#include "arch/x86/layout.h"
#include "devices/bus.h"

#define IOAPIC_MMIO_SIZE 0x1000
#define IOAPIC_REGSEL 0x00
#define IOAPIC_IOWIN  0x10

/* Indirect registers. */
#define IOAPIC_REG_ID      0x00
#define IOAPIC_REG_VERSION 0x01
#define IOAPIC_REG_ARB     0x02
#define IOAPIC_REG_REDIR   0x10 /* pin n: low dword at 0x10 + 2n, high at 0x11 + 2n */

/* Version 0x11, highest redirection entry IOAPIC_PINS - 1. */
#define IOAPIC_VERSION_VALUE (0x11u | ((uint32_t)(IOAPIC_PINS - 1) << 16))

/* Redirection entry bits. */
#define IOAPIC_RE_VECTOR     0xffULL
#define IOAPIC_RE_DELIVERY   0x700ULL
#define IOAPIC_RE_LOGICAL    (1ULL << 11)
#define IOAPIC_RE_PENDING    (1ULL << 12) /* delivery status (read-only) */
#define IOAPIC_RE_POLARITY   (1ULL << 13)
#define IOAPIC_RE_REMOTE_IRR (1ULL << 14) /* read-only */
#define IOAPIC_RE_LEVEL      (1ULL << 15)
#define IOAPIC_RE_MASKED     (1ULL << 16)
#define IOAPIC_RE_DEST_SHIFT 56

struct ioapic {
    pthread_mutex_t lock;
    struct apic_bus *bus;
    uint32_t regsel;
    uint32_t id;                  /* bits 24..27 of the ID register */
    uint64_t redir[IOAPIC_PINS];
    uint32_t levels;              /* input level of each pin */
};

/* Allocate an IOAPIC delivering on bus, all pins masked; also makes it the bus's EOI target.
 * Returns NULL with errno set. */
struct ioapic *ioapic_create(struct apic_bus *bus);
/* Free it; it must no longer be reachable from a bus or the APIC bus. */
void ioapic_destroy(struct ioapic *ioapic);
/* Back to the power-on state (all pins masked, ID 0); the input levels stay as the wires are. */
void ioapic_reset(struct ioapic *ioapic);
/* Register it on mmio at LAYOUT_IOAPIC_BASE. Returns 0 or -errno. */
int ioapic_attach(struct ioapic *ioapic, struct bus *mmio);

/* Drive pin (0..IOAPIC_PINS-1) to level (0/1). Out-of-range pins are ignored. */
void ioapic_set_irq(struct ioapic *ioapic, unsigned pin, int level);
/* A LAPIC ended a level-triggered interrupt with this vector: clear remote IRR of the pins that
 * use it and deliver again those whose line is still asserted. */
void ioapic_eoi(struct ioapic *ioapic, uint8_t vector);

/* The MMIO handlers (opaque: struct ioapic). */
extern const struct bus_dev_ops ioapic_ops;

#endif
