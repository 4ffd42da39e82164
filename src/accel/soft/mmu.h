/* The software CPU's MMU in system mode: guest-physical RAM regions and the page-table walk
 * (paging off, 32-bit 2-level, PAE 3-level, 4-level long mode) with hardware's permission rules,
 * accessed/dirty updates and #PF error codes. The soft TLB (cpu.h) caches what a walk grants. */
#ifndef VIREO_ACCEL_SOFT_MMU_H
#define VIREO_ACCEL_SOFT_MMU_H

#include "accel/soft/cpu.h"

#include <stdbool.h>
#include <stdint.h>

#define SOFT_PHYS_MAX_REGIONS 16

struct soft_ram_region {
    uint64_t gpa, size;
    uint8_t *host;
};

/* Guest RAM as the VMM mapped it; everything else in the physical space is MMIO. */
struct soft_phys {
    struct soft_ram_region region[SOFT_PHYS_MAX_REGIONS];
    unsigned n;
};

/* #PF error-code bits. */
#define SOFT_PF_P    0x01u /* the page was present (a protection violation) */
#define SOFT_PF_W    0x02u /* the access was a write */
#define SOFT_PF_U    0x04u /* the access was a user-mode access */
#define SOFT_PF_RSVD 0x08u /* a reserved bit was set in a paging entry */
#define SOFT_PF_I    0x10u /* the access was an instruction fetch (with EFER.NXE) */

/* Page-table entry bits shared by every format. */
#define SOFT_PTE_P  0x001ull
#define SOFT_PTE_W  0x002ull
#define SOFT_PTE_U  0x004ull
#define SOFT_PTE_A  0x020ull
#define SOFT_PTE_D  0x040ull
#define SOFT_PTE_PS 0x080ull
#define SOFT_PTE_G  0x100ull
#define SOFT_PTE_NX (1ull << 63)

/* Control-register and EFER bits the MMU reads. */
#define SOFT_CR0_PE  (1ull << 0)
#define SOFT_CR0_WP  (1ull << 16)
#define SOFT_CR0_PG  (1ull << 31)
#define SOFT_CR4_PSE (1ull << 4)
#define SOFT_CR4_PAE (1ull << 5)
#define SOFT_CR4_PGE (1ull << 7)
#define SOFT_EFER_LME (1ull << 8)
#define SOFT_EFER_LMA (1ull << 10)
#define SOFT_EFER_NXE (1ull << 11)

/* Result of a successful walk: where the page is and what its mapping allows. */
struct soft_walk {
    uint64_t gpa;       /* guest-physical address of the accessed byte */
    uint64_t page_size; /* 4 KiB, 2 MiB, 4 MiB or 1 GiB */
    bool user;          /* user-mode accesses allowed */
    bool write;         /* writes allowed for this access's privilege (R/W and CR0.WP) */
    bool exec;          /* instruction fetches allowed (no NX on the path) */
    bool dirty;         /* the leaf's D bit is set, so later writes need no walk */
    bool global;        /* G bit with CR4.PGE: survives CR3 writes */
};

/* Add RAM [gpa, gpa + size) backed by host; 0, -ENOSPC when the table is full, -EINVAL when it
 * overlaps a region already there. */
int soft_phys_add(struct soft_phys *phys, uint64_t gpa, uint64_t size, void *host);
/* Host pointer to [gpa, gpa + len) when the whole range is inside one RAM region, else NULL. */
void *soft_phys_ptr(const struct soft_phys *phys, uint64_t gpa, uint64_t len);

/* Translate the linear address va for access (SOFT_ACC_*) at user (CPL 3, not an implicit
 * supervisor access such as a descriptor-table read) or supervisor privilege, using cpu's
 * CR0/CR3/CR4/EFER. Sets accessed bits along the path and the dirty bit on writes, atomically
 * (other vCPUs walk the same tables). Returns 0 with *w filled, or -SOFT_EXC_PF with *error the
 * #PF error code; CR2 is the caller's to set. */
int soft_mmu_walk(const struct soft_cpu *cpu, const struct soft_phys *phys, uint64_t va,
                  int access, bool user, struct soft_walk *w, uint32_t *error);

#endif
