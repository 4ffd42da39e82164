#include "arch/x86/e820.h"

#include "arch/x86/layout.h"

unsigned e820_build(const struct guest_mem *mem, struct e820_entry out[E820_MAX_ENTRIES])
{
    unsigned n = 0;
    out[n++] = (struct e820_entry){0, LAYOUT_EBDA, E820_RAM};
    /* EBDA, VGA hole and BIOS area: ACPI tables live at 0xE0000, so the range is reserved. */
    out[n++] = (struct e820_entry){LAYOUT_EBDA, LAYOUT_HIGH_RAM_START - LAYOUT_EBDA, E820_RESERVED};
    out[n++] = (struct e820_entry){LAYOUT_HIGH_RAM_START,
                                   guest_mem_low_end(mem) - LAYOUT_HIGH_RAM_START, E820_RAM};
    /* Linux only trusts MCFG when the ECAM window is reserved in the map or in ACPI. */
    out[n++] = (struct e820_entry){LAYOUT_ECAM_BASE, LAYOUT_ECAM_SIZE, E820_RESERVED};
    if (guest_mem_high_end(mem))
        out[n++] = (struct e820_entry){LAYOUT_HIGH_RAM_BASE,
                                       guest_mem_high_end(mem) - LAYOUT_HIGH_RAM_BASE, E820_RAM};
    return n;
}
