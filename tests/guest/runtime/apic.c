/* xAPIC and IOAPIC register access. The LAPIC page is in the uncached top GiB that entry.S maps. */
#include "apic.h"

#include "acpi.h"
#include "io.h"
#include "paging.h"

static uint64_t lapic_base = 0xfee00000ULL;

int lapic_init(void)
{
    struct acpi_madt_info m;

    if (acpi_init() || acpi_madt(&m))
        return -1;
    if (m.lapic_addr)
        lapic_base = m.lapic_addr;
    if (lapic_base >= 0x100000000ULL)
        return paging_map_identity(lapic_base, 4096, 1);
    return 0;
}

uint32_t lapic_read(uint32_t reg)
{
    return mmio_read32(lapic_base + reg);
}

void lapic_write(uint32_t reg, uint32_t val)
{
    mmio_write32(lapic_base + reg, val);
}

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_enable(void)
{
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, 0x100 | APIC_SPURIOUS_VECTOR);
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

int lapic_send_ipi(uint32_t apic_id, uint32_t icr_lo)
{
    lapic_write(LAPIC_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr_lo);
    for (unsigned i = 0; i < 100000; i++) {
        if (!(lapic_read(LAPIC_ICR_LO) & ICR_BUSY))
            return 0;
    }
    return -1;
}

uint32_t ioapic_read(uint64_t base, uint32_t reg)
{
    mmio_write32(base, reg);
    return mmio_read32(base + 0x10);
}

void ioapic_write(uint64_t base, uint32_t reg, uint32_t val)
{
    mmio_write32(base, reg);
    mmio_write32(base + 0x10, val);
}

void ioapic_route(uint64_t base, unsigned pin, uint8_t vector, uint32_t apic_id, uint16_t flags)
{
    uint32_t lo = vector; /* fixed delivery, physical destination, unmasked */

    if ((flags & 3) == 3)
        lo |= 1u << 13; /* active low */
    if (((flags >> 2) & 3) == 3)
        lo |= 1u << 15; /* level triggered */
    ioapic_write(base, 0x10 + 2 * pin, 1u << 16); /* mask while changing */
    ioapic_write(base, 0x11 + 2 * pin, apic_id << 24);
    ioapic_write(base, 0x10 + 2 * pin, lo);
}

void ioapic_mask(uint64_t base, unsigned pin)
{
    ioapic_write(base, 0x10 + 2 * pin, 1u << 16);
}
