/* The PVH boot ABI (Xen's hvm_start_info, as QEMU, Firecracker and Vireo fill it) and the copy the
 * runtime keeps of it, the memory map and the command line. */
#ifndef GUEST_PVH_H
#define GUEST_PVH_H

#include <stdint.h>

struct hvm_start_info {
    uint32_t magic; /* PVH_MAGIC */
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    /* version 1 and later */
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
} __attribute__((packed));

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} __attribute__((packed));

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_NVS      4
#define E820_UNUSABLE 5

#define PVH_MAX_MEMMAP  128
#define PVH_CMDLINE_MAX 4096

struct pvh_boot {
    uint32_t info_paddr;          /* what %ebx held at entry */
    int valid;                    /* magic matched */
    struct hvm_start_info info;   /* copied at entry, before low memory is reused */
    unsigned memmap_entries;      /* entries copied (at most PVH_MAX_MEMMAP) */
    struct hvm_memmap_table_entry memmap[PVH_MAX_MEMMAP];
    char cmdline[PVH_CMDLINE_MAX];
};

extern struct pvh_boot pvh_boot;

/* Copies the start info, memory map and command line into pvh_boot. Called once at entry. */
void pvh_capture(uint32_t info_paddr);
/* Finds "key=value" on the command line and copies the value into out (NUL-terminated).
 * Returns the value's length, or -1 if the key is absent. A bare "key" gives "". */
int cmdline_get(const char *key, char *out, unsigned outlen);
/* Like cmdline_get for a number with an optional K/M/G/T suffix (binary units). Returns 0, or
 * -1 if the key is absent or not a number. */
int cmdline_get_size(const char *key, uint64_t *val);

#endif
