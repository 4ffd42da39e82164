/* Cache of decoded blocks, keyed by guest address and the mode bits decoding depends on. */
#ifndef VIREO_ACCEL_SOFT_CACHE_H
#define VIREO_ACCEL_SOFT_CACHE_H

#include "accel/soft/insn.h"

#define SOFT_BLOCK_MAX 64

struct soft_block {
    uint64_t pc;
    uint64_t end_rip; /* fall-through address after the last instruction */
    uint32_t key; /* mode bits: code size, CPL */
    uint32_t n;
    struct soft_insn *insns;
    struct soft_block *next;
    /* The two successors seen last (taken / fall-through), so that the run loop can chain
     * blocks without a hash lookup. Valid only while the cache generation is unchanged. */
    uint64_t succ_pc[2];
    struct soft_block *succ[2];
    uintptr_t host_page; /* host address of the code's page (its physical identity), or 0 */
    uintptr_t host_page2; /* the next page, when the last instruction straddles into it */
    /* The index of soft_cache_invalidate_host_page(): the bucket (by host page) of each of the
     * block's two pages, or -1, and the next block in that bucket. */
    int32_t page_bucket[2];
    struct soft_block *page_next[2];
    /* Compiled code (jit.c): the body (entered by a jump from a linked predecessor, whose
     * frame it shares) or NULL, and the jumps of the static exits that can be linked. */
    const uint8_t *jit_body;
    uint8_t *jit_link[2];   /* writable address of each exit's rel32, or NULL */
    uint8_t *jit_gen[2];    /* an exit to another page (system mode): the writable address of
                               its guard's counter displacement (jit.c, emit_gen_check), or NULL */
    uint64_t jit_want_gen[2]; /* the generation that guard lets through: data, not code, as it
                                 changes at every relink */
};

/* The mode bits a block was decoded under: code size, CPL and, outside long mode, the code
 * segment's base (blocks are keyed by RIP, an offset into CS). */
static inline uint32_t soft_block_key(const struct soft_cpu *cpu)
{
    uint32_t k = (uint32_t)cpu->mode | ((uint32_t)cpu->cpl << 8);
    if (cpu->mode != 64)
        k ^= (uint32_t)(cpu->seg[SOFT_CS].base >> 4) << 10;
    return k;
}

/* Allocate the cache of cpu (once, at CPU creation); 0 or -ENOMEM. */
int soft_cache_create(struct soft_cpu *cpu);
void soft_cache_destroy(struct soft_cpu *cpu);
/* Drop every block and replace the compiler's code buffer (a forked child must not write
 * into the one it shares with its parent). */
void soft_cache_renew_jit(struct soft_cpu *cpu);
/* The block compiler's state (NULL when blocks are only interpreted). */
struct soft_jit *soft_cache_jit(const struct soft_cpu *cpu);
/* Drop every decoded block (code changed, or the storage is full). */
void soft_cache_flush(struct soft_cpu *cpu);
/* Increments whenever blocks are dropped; chained successor pointers from an older generation
 * must not be followed. */
uint64_t soft_cache_generation(const struct soft_cpu *cpu);
/* Drop the blocks decoded from the page at host address host_page (its code was written).
 * Chained successor links check the block's pc, which a dropped block no longer matches. */
void soft_cache_invalidate_host_page(struct soft_cpu *cpu, uintptr_t host_page);
/* Whether [addr, addr + len) may hold decoded code. */
int soft_cache_overlaps(struct soft_cpu *cpu, uint64_t addr, uint64_t len);
/* The block starting at pc for the current mode if one is decoded and still mapped, else NULL;
 * never decodes (compiled code calls it while it runs). */
struct soft_block *soft_cache_find(struct soft_cpu *cpu, uint64_t pc);
/* The block starting at pc, decoding it if needed; raises the guest fault if its first
 * instruction cannot be fetched. */
struct soft_block *soft_cache_lookup(struct soft_cpu *cpu, uint64_t pc);

/* The slow half of soft_block_mapped(): translates the block's page(s) for a fetch (no fault
 * is raised). */
bool soft_cache_still_mapped(struct soft_cpu *cpu, const struct soft_block *b);

/* Whether b's code still comes from the page it was decoded from. Blocks are keyed by virtual
 * address, so once the guest points that address at another page (module text freed and other
 * code loaded at the same address) the old block must not run again; like hardware, the new
 * mapping counts from the TLB flush the guest must do anyway. A TLB hit is the common case. */
static inline bool soft_block_mapped(struct soft_cpu *cpu, const struct soft_block *b)
{
    /* vireo-user's owner drops every block when the guest changes its mappings (mmap,
     * munmap, mprotect, mremap), so a block it still holds is mapped. */
    if (!cpu->system)
        return true;
    uint64_t lin = b->pc + (cpu->mode == 64 ? 0 : cpu->seg[SOFT_CS].base);
    uint64_t page = lin & ~0xfffull;
    const struct soft_tlb_entry *e = &soft_tlb(cpu)[(lin >> 12) & (SOFT_TLB_SIZE - 1)];
    if (e->tag_exec == page && !b->host_page2)
        return page + e->addend == b->host_page;
    return soft_cache_still_mapped(cpu, b);
}

#endif
