/* All mappings live under PML4[0] (the first 512 GiB), so adding one means at most a new page
 * directory from a small static pool. */
#include "paging.h"

#include "io.h"

#define PTE_P   0x1ULL
#define PTE_W   0x2ULL
#define PTE_PWT 0x8ULL
#define PTE_PCD 0x10ULL
#define PTE_PS  0x80ULL
#define PD_POOL 16
#define PAGE_2M 0x200000ULL

extern uint64_t pdpt_low[512];

static uint64_t pd_pool[PD_POOL][512] __attribute__((aligned(4096)));
static unsigned pd_used;

int paging_map_identity(uint64_t addr, uint64_t len, int uncached)
{
    if (!len)
        return 0;
    uint64_t start = addr & ~(PAGE_2M - 1);
    uint64_t end = addr + len;
    if (end < addr || end > (512ULL << 30))
        return -1;
    for (uint64_t a = start; a < end; a += PAGE_2M) {
        unsigned gi = (unsigned)(a >> 30);
        unsigned mi = (unsigned)((a >> 21) & 511);
        if (!(pdpt_low[gi] & PTE_P)) {
            if (pd_used == PD_POOL)
                return -1;
            /* Already zero: entry.S clears .bss. */
            uint64_t *pd = pd_pool[pd_used++];
            pdpt_low[gi] = (uint64_t)(uintptr_t)pd | PTE_P | PTE_W;
        }
        uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt_low[gi] & ~0xfffULL);
        pd[mi] = a | PTE_P | PTE_W | PTE_PS | (uncached ? PTE_PCD | PTE_PWT : 0);
    }
    write_cr3(read_cr3()); /* flush: pages may have been mapped differently before */
    return 0;
}
