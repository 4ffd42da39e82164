/* Guest RAM: one memfd mapped MAP_SHARED|MAP_NORESERVE, so snapshot, migration and vhost-style
 * backends can share it and untouched memory costs nothing. The guest sees it as two regions:
 * [0, min(size, 3 GiB)) and, for the rest, [4 GiB, ...) above the 32-bit PCI hole. */
#ifndef VIREO_VMM_MEMORY_H
#define VIREO_VMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

struct mem_region {
    uint64_t gpa;     /* guest-physical start */
    uint64_t size;
    uint8_t *host;    /* where it is mapped in this process */
    uint64_t offset;  /* offset in the memfd */
};

#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem {
    int fd;                /* the memfd */
    uint64_t size;         /* total RAM bytes */
    uint8_t *base;         /* one mapping of the whole memfd */
    unsigned nregions;
    struct mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Smallest and largest RAM a guest may have. */
#define GUEST_MEM_MIN (16ULL << 20)
#define GUEST_MEM_MAX (1ULL << 40)

/* Create guest RAM of `size` bytes (a multiple of 4 KiB within GUEST_MEM_MIN..GUEST_MEM_MAX).
 * Returns 0, -EINVAL for a bad size, or -errno when the host refuses (memfd, ftruncate, mmap). */
int guest_mem_create(struct guest_mem *mem, uint64_t size, const char *name);
void guest_mem_destroy(struct guest_mem *mem);

/* The one checked way from a guest-physical range to host memory: NULL unless the whole range
 * [gpa, gpa+len) lies inside one RAM region (no wrap-around, no straddling the PCI hole). */
void *gpa_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Top of RAM below 4 GiB (exclusive), and the end of RAM above 4 GiB (0 if there is none). */
uint64_t guest_mem_low_end(const struct guest_mem *mem);
uint64_t guest_mem_high_end(const struct guest_mem *mem);

#endif
