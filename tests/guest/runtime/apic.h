/* Local APIC (xAPIC MMIO at the MADT's address) and IOAPIC access. */
#ifndef GUEST_APIC_H
#define GUEST_APIC_H

#include <stdint.h>

#define LAPIC_ID    0x020
#define LAPIC_VER   0x030
#define LAPIC_TPR   0x080
#define LAPIC_EOI   0x0b0
#define LAPIC_SVR   0x0f0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360

#define ICR_INIT        0x00000500u
#define ICR_STARTUP     0x00000600u
#define ICR_ASSERT      0x00004000u
#define ICR_BUSY        0x00001000u

#define APIC_SPURIOUS_VECTOR 0xff

/* Reads the MADT for the LAPIC address. Returns 0, or -1 without ACPI/MADT. */
int lapic_init(void);
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t val);
/* This CPU's xAPIC ID. */
uint32_t lapic_id(void);
/* Software-enables this CPU's LAPIC (spurious vector 0xff) and accepts every priority. */
void lapic_enable(void);
void lapic_eoi(void);
/* Sends an IPI (icr_lo: mode, level, vector) to one APIC ID and waits until it is delivered.
 * Returns 0, or -1 if the ICR stayed busy. */
int lapic_send_ipi(uint32_t apic_id, uint32_t icr_lo);

uint32_t ioapic_read(uint64_t base, uint32_t reg);
void ioapic_write(uint64_t base, uint32_t reg, uint32_t val);
/* Routes an IOAPIC pin to vector on apic_id, fixed delivery, physical destination, with the
 * MADT polarity/trigger flags (0 means ISA defaults: active high, edge). */
void ioapic_route(uint64_t base, unsigned pin, uint8_t vector, uint32_t apic_id, uint16_t flags);
/* Masks an IOAPIC pin. */
void ioapic_mask(uint64_t base, unsigned pin);

#endif
