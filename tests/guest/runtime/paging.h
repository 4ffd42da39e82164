/* Identity mappings beyond the low 4 GiB that entry.S maps (RAM above 4 GiB, 64-bit MMIO). */
#ifndef GUEST_PAGING_H
#define GUEST_PAGING_H

#include <stdint.h>

/* Identity-maps [addr, addr + len) with 2 MiB pages (uncached if uncached != 0), below 512 GiB.
 * Returns 0, or -1 if the range is out of reach or the page-directory pool is used up. */
int paging_map_identity(uint64_t addr, uint64_t len, int uncached);

#endif
