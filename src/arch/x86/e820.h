/* The guest's physical memory map (e820 types), shared by the zero page and PVH start info. */
#ifndef VIREO_ARCH_X86_E820_H
#define VIREO_ARCH_X86_E820_H

#include <stdint.h>

#include "vmm/memory.h"

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3

struct e820_entry {
    uint64_t addr, size;
    uint32_t type;
};

#define E820_MAX_ENTRIES 8

/* Fill `out` with the map of this machine's RAM and reserved ranges (low RAM below the EBDA,
 * the legacy BIOS area holding ACPI, RAM from 1 MiB, the ECAM window, RAM above 4 GiB), sorted by
 * address. Returns the number of entries. */
unsigned e820_build(const struct guest_mem *mem, struct e820_entry out[E820_MAX_ENTRIES]);

#endif
