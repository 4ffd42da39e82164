/* Config space access, both mechanisms. */
#include "pci.h"

#include "acpi.h"
#include "io.h"
#include "paging.h"

static uint64_t ecam_base;
static unsigned ecam_bus_start, ecam_bus_end;

static uint32_t cf8_addr(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    return 0x80000000u | (bus & 0xff) << 16 | (dev & 31) << 11 | (fn & 7) << 8 | (off & 0xfc);
}

uint32_t pci_cf8_read32(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    outl(cf8_addr(bus, dev, fn, off), 0xcf8);
    return inl(0xcfc);
}

void pci_cf8_write32(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint32_t val)
{
    outl(cf8_addr(bus, dev, fn, off), 0xcf8);
    outl(val, 0xcfc);
}

int pci_ecam_init(uint64_t *base, unsigned *bus_start, unsigned *bus_end)
{
    if (acpi_init() || acpi_mcfg_ecam(&ecam_base, &ecam_bus_start, &ecam_bus_end))
        return -1;
    uint64_t size = (uint64_t)(ecam_bus_end - ecam_bus_start + 1) << 20;
    if (ecam_base + size > 0x100000000ULL &&
        paging_map_identity(ecam_base, size, 1))
        return -1;
    *base = ecam_base;
    *bus_start = ecam_bus_start;
    *bus_end = ecam_bus_end;
    return 0;
}

uint32_t pci_ecam_read32(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    if (!ecam_base || bus < ecam_bus_start || bus > ecam_bus_end)
        return 0xffffffffu;
    uint64_t a = ecam_base + ((uint64_t)(bus - ecam_bus_start) << 20) + ((dev & 31) << 15) +
                 ((fn & 7) << 12) + (off & 0xffc);
    return mmio_read32(a);
}
