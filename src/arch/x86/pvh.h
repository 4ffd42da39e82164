/* The PVH boot ABI's structures (Xen public header start_info.h, version 1), and where Vireo
 * places them in guest memory. */
#ifndef VIREO_ARCH_X86_PVH_H
#define VIREO_ARCH_X86_PVH_H

#include <stdint.h>

#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;   /* version 1 */
    uint32_t memmap_entries; /* version 1 */
    uint32_t reserved;
};

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

/* start_info, then the module list, then the memory map, in one page. */
#define PVH_INFO_AREA_SIZE 4096

struct pvh_layout {
    uint64_t start_info, modlist, memmap;
};

static inline void pvh_layout_init(struct pvh_layout *l, uint64_t base)
{
    l->start_info = base;
    l->modlist = base + 64;
    l->memmap = base + 128;
}

#endif
