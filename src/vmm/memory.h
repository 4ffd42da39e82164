/* Guest RAM: one mapping of the whole RAM, 2 MiB aligned, MAP_NORESERVE so untouched memory costs
 * nothing. The guest sees it as two regions: [0, min(size, 3 GiB)) and, for the rest,
 * [4 GiB, ...) above the 32-bit PCI hole.
 *
 * Two backings. The default is private anonymous memory, the memory Linux backs with transparent
 * huge pages whenever THP is `always` or `madvise` (the usual setting). 2 MiB pages matter for
 * I/O: O_DIRECT and io_uring pin the guest's buffers page by page, so a 1 MiB request pins one
 * huge page instead of 256 small ones; and one host TLB entry covers 2 MiB of guest RAM (for
 * KVM's nested paging and the software CPU's accesses alike). A memfd (guest_mem_create_shared(),
 * `--memory SIZE,shared=on`) is for what must reach the same RAM through a file descriptor
 * (a vhost-user backend, a helper process); it is shmem, which gets huge pages only where the
 * host opts in (`shmem_enabled`, `never` by default). The dirty log, and snapshot and migration
 * when they come, work on either: they go through the mapping, not the fd. */
#ifndef VIREO_VMM_MEMORY_H
#define VIREO_VMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

struct mem_region {
    uint64_t gpa;     /* guest-physical start */
    uint64_t size;
    uint8_t *host;    /* where it is mapped in this process */
    uint64_t offset;  /* offset in the RAM mapping (and in the memfd, if there is one) */
};

#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem {
    int fd;                /* the memfd of shared RAM; -1 for anonymous RAM */
    uint64_t size;         /* total RAM bytes */
    uint8_t *base;         /* one mapping of all of RAM, 2 MiB aligned */
    unsigned nregions;
    struct mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Smallest and largest RAM a guest may have. */
#define GUEST_MEM_MIN (16ULL << 20)
#define GUEST_MEM_MAX (1ULL << 40)

/* Create guest RAM of `size` bytes (a multiple of 4 KiB within GUEST_MEM_MIN..GUEST_MEM_MAX),
 * private anonymous memory (mem->fd is -1). Returns 0, -EINVAL for a bad size, or -errno when
 * the host refuses. `name` only names a memfd (kept so both constructors are called alike). */
int guest_mem_create(struct guest_mem *mem, uint64_t size, const char *name);
/* The same backed by a memfd named `name` (mem->fd), mapped MAP_SHARED: for features that share
 * guest RAM by its fd. Costs the huge pages on hosts with shmem THP off. */
int guest_mem_create_shared(struct guest_mem *mem, uint64_t size, const char *name);
void guest_mem_destroy(struct guest_mem *mem);

/* The one checked way from a guest-physical range to host memory: NULL unless the whole range
 * [gpa, gpa+len) lies inside one RAM region (no wrap-around, no straddling the PCI hole). */
void *gpa_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Top of RAM below 4 GiB (exclusive), and the end of RAM above 4 GiB (0 if there is none). */
uint64_t guest_mem_low_end(const struct guest_mem *mem);
uint64_t guest_mem_high_end(const struct guest_mem *mem);

#endif
