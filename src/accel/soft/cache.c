/* Decoded-block cache: instructions are decoded once per (address, mode) into blocks that end at
 * a control transfer, after SOFT_BLOCK_MAX instructions, or at a 4 KiB page boundary. Storage is
 * allocated once; when it fills up, everything is dropped and decoding starts over, so the
 * execution path never allocates. */
#include "accel/soft/cache.h"

#include "accel/soft/decode.h"
#include "accel/soft/exec.h"
#include "accel/soft/fast.h"
#include "accel/soft/jit.h"

#include <errno.h>
#include <stdlib.h>

#define CACHE_HASH_BITS 14
#define CACHE_PAGE_BITS 12
#define CACHE_JUMP_BITS 12
#define CACHE_MAX_BLOCKS (1u << 15)
#define CACHE_MAX_INSNS (1u << 18)

struct soft_cache {
    struct soft_block *hash[1u << CACHE_HASH_BITS];
    struct soft_block *jump[1u << CACHE_JUMP_BITS]; /* direct-mapped front of the hash */
    /* Blocks by the host page their code came from, so that a write to code finds them
     * without scanning every block. */
    struct soft_block *by_page[1u << CACHE_PAGE_BITS];
    struct soft_block *blocks;
    struct soft_insn *insns;
    unsigned nblocks, ninsns;
    uint64_t flushes;
    uint64_t code_lo, code_hi; /* guest range holding decoded code, for cheap invalidation */
    struct soft_jit *jit;      /* compiled code of the blocks, or NULL (interpreter only) */
};

static unsigned hash_page(uintptr_t host_page)
{
    return (unsigned)((host_page >> 12) ^ (host_page >> (12 + CACHE_PAGE_BITS))) &
           ((1u << CACHE_PAGE_BITS) - 1);
}

/* Index b under its page(s), once per bucket (both pages may share one). */
static void index_by_page(struct soft_cache *c, struct soft_block *b)
{
    uintptr_t pages[2] = {b->host_page, b->host_page2};
    for (unsigned k = 0; k < 2; k++) {
        b->page_bucket[k] = -1;
        b->page_next[k] = NULL;
        if (!pages[k] || (k == 1 && b->page_bucket[0] == (int32_t)hash_page(pages[1])))
            continue;
        unsigned h = hash_page(pages[k]);
        b->page_bucket[k] = (int32_t)h;
        b->page_next[k] = c->by_page[h];
        c->by_page[h] = b;
    }
}

static unsigned hash_pc(uint64_t pc)
{
    return (unsigned)((pc ^ (pc >> CACHE_HASH_BITS) ^ (pc >> 28)) & ((1u << CACHE_HASH_BITS) - 1));
}

int soft_cache_create(struct soft_cpu *cpu)
{
    struct soft_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->blocks = calloc(CACHE_MAX_BLOCKS, sizeof(*c->blocks));
    c->insns = calloc(CACHE_MAX_INSNS, sizeof(*c->insns));
    if (!c->blocks || !c->insns) {
        free(c->blocks);
        free(c->insns);
        free(c);
        return -ENOMEM;
    }
    c->code_lo = ~0ull;
    c->jit = soft_jit_create();
    cpu->cache = c;
    return 0;
}

void soft_cache_destroy(struct soft_cpu *cpu)
{
    struct soft_cache *c = cpu->cache;
    if (!c)
        return;
    soft_jit_destroy(c->jit);
    free(c->blocks);
    free(c->insns);
    free(c);
    cpu->cache = NULL;
}

void soft_cache_flush(struct soft_cpu *cpu)
{
    struct soft_cache *c = cpu->cache;
    memset(c->hash, 0, sizeof(c->hash));
    memset(c->jump, 0, sizeof(c->jump));
    memset(c->by_page, 0, sizeof(c->by_page));
    c->nblocks = 0;
    c->ninsns = 0;
    c->flushes++;
    c->code_lo = ~0ull;
    c->code_hi = 0;
    if (c->jit)
        soft_jit_reset(c->jit);
}

static uint32_t mode_key(const struct soft_cpu *cpu)
{
    return soft_block_key(cpu);
}

/* Decode a new block at pc. A fetch fault on the first instruction is the guest's fault now;
 * one further in just ends the block, to be raised if execution gets there. */
static struct soft_block *build(struct soft_cpu *cpu, uint64_t pc, uint32_t key)
{
    struct soft_cache *c = cpu->cache;
    if (c->nblocks >= CACHE_MAX_BLOCKS || c->ninsns + SOFT_BLOCK_MAX + 1 > CACHE_MAX_INSNS ||
        (c->jit && !soft_jit_has_room(c->jit)))
        soft_cache_flush(cpu);
    struct soft_block *b = &c->blocks[c->nblocks];
    b->insns = &c->insns[c->ninsns];
    b->pc = pc;
    b->key = key;
    b->n = 0;
    b->succ[0] = b->succ[1] = NULL;
    b->succ_pc[0] = b->succ_pc[1] = ~0ull;
    b->jit_body = NULL;
    b->jit_link[0] = b->jit_link[1] = NULL;
    b->jit_gen[0] = b->jit_gen[1] = NULL;
    cpu->fetch_host_page = cpu->fetch_host_page2 = 0;
    uint64_t at = pc;
    for (;;) {
        struct soft_insn *i = &b->insns[b->n];
        int r = soft_decode(cpu, at, i);
        if (r < 0) {
            if (b->n == 0) {
                cpu->cur = NULL;
                cpu->rip = pc;
                soft_raise(cpu, -r, cpu->exc_error);
            }
            break;
        }
        if (b->n == 0)
            b->host_page = cpu->fetch_host_page;
        b->n++;
        at = i->next_rip;
        if (r == 1 || b->n >= SOFT_BLOCK_MAX || (at & ~0xfffull) != (pc & ~0xfffull))
            break;
    }
    b->host_page2 = cpu->fetch_host_page2;
    soft_flags_prune(cpu, b->insns, b->n);
    /* The terminator returns from the threaded chain to the run loop. */
    struct soft_insn *t = &b->insns[b->n];
    memset(t, 0, sizeof(*t));
    t->fn = soft_block_end;
    t->next_rip = at;
    t->imm = (uint64_t)(uintptr_t)b;
    b->end_rip = at;
    if (!c->jit || cpu->mode != 64 || !soft_jit_compile(cpu, c->jit, b))
        soft_block_fuse(cpu, b->insns, b->n);
    index_by_page(c, b);
    c->nblocks++;
    c->ninsns += b->n + 1;
    if (pc < c->code_lo)
        c->code_lo = pc;
    if (at + 16 > c->code_hi)
        c->code_hi = at + 16;
    unsigned h = hash_pc(pc);
    b->next = c->hash[h];
    c->hash[h] = b;
    return b;
}

/* Make b unreachable: no lookup finds it, no chain enters it, and compiled predecessors
 * linked to its code leave to the run loop instead. */
static void drop_block(struct soft_cache *c, struct soft_block *b)
{
    b->pc = ~0ull;
    b->host_page = b->host_page2 = 0;
    if (b->jit_body && c->jit)
        soft_jit_unlink_into(c->jit, b);
}

/* Whether the page of lin translates for fetches to host page host (the TLB entry is kept). */
static bool fetches_from(struct soft_cpu *cpu, uint64_t lin, uintptr_t host)
{
    uint64_t page = lin & ~0xfffull;
    struct soft_tlb_entry *te = &soft_tlb(cpu)[(lin >> 12) & (SOFT_TLB_SIZE - 1)];
    if (te->tag_exec == page)
        return page + te->addend == host;
    struct soft_tlb_entry e = {~0ull, ~0ull, ~0ull, 0};
    uint64_t cr2 = cpu->cr2;
    uint32_t error = cpu->exc_error;
    int r = cpu->ops->tlb_fill(cpu, lin, SOFT_ACC_EXEC, &e);
    if (r != 0 || e.tag_exec != page) {
        /* Not fetchable now: decoding it again raises the fault; until then CR2 keeps the
         * guest's value. */
        cpu->cr2 = cr2;
        cpu->exc_error = error;
        return false;
    }
    soft_tlb_install(cpu, te, &e);
    return page + e.addend == host;
}

bool soft_cache_still_mapped(struct soft_cpu *cpu, const struct soft_block *b)
{
    uint64_t lin = b->pc + (cpu->mode == 64 ? 0 : cpu->seg[SOFT_CS].base);
    if (!fetches_from(cpu, lin, b->host_page))
        return false;
    /* The last instruction runs into the next page: that one must not have moved either. */
    return !b->host_page2 || fetches_from(cpu, (lin | 0xfffull) + 1, b->host_page2);
}

struct soft_block *soft_cache_find(struct soft_cpu *cpu, uint64_t pc)
{
    struct soft_cache *c = cpu->cache;
    uint32_t key = mode_key(cpu);
    unsigned slot = (unsigned)((pc ^ (pc >> CACHE_JUMP_BITS)) & ((1u << CACHE_JUMP_BITS) - 1));
    struct soft_block *b = c->jump[slot];
    if (!b || b->pc != pc || b->key != key) {
        for (b = c->hash[hash_pc(pc)]; b; b = b->next) {
            if (b->pc == pc && b->key == key)
                break;
        }
    }
    if (!b || !soft_block_mapped(cpu, b))
        return NULL;
    c->jump[slot] = b;
    return b;
}

struct soft_block *soft_cache_lookup(struct soft_cpu *cpu, uint64_t pc)
{
    struct soft_cache *c = cpu->cache;
    uint32_t key = mode_key(cpu);
    unsigned slot = (unsigned)((pc ^ (pc >> CACHE_JUMP_BITS)) & ((1u << CACHE_JUMP_BITS) - 1));
    struct soft_block **jp = &c->jump[slot];
    struct soft_block *b = *jp;
    if (!b || b->pc != pc || b->key != key) {
        for (b = c->hash[hash_pc(pc)]; b; b = b->next) {
            if (b->pc == pc && b->key == key)
                break;
        }
    }
    if (b && soft_block_mapped(cpu, b)) {
        *jp = b;
        return b;
    }
    if (b) {
        drop_block(c, b); /* decoded from a page no longer mapped here */
    }
    b = build(cpu, pc, key);
    *jp = b;
    return b;
}

/* Put in place of the instruction after a store that rewrote its own block: leaves the block
 * with RIP at that instruction, which is then decoded afresh. */
static void exit_to_fresh_code(struct soft_cpu *cpu, const struct soft_insn *i)
{
    cpu->rip = i->next_rip - i->len;
    cpu->last_block = NULL;
}

void soft_cache_invalidate_host_page(struct soft_cpu *cpu, uintptr_t host_page)
{
    struct soft_cache *c = cpu->cache;
    struct soft_block *next;
    int32_t h = (int32_t)hash_page(host_page);
    for (struct soft_block *b = c->by_page[h]; b; b = next) {
        next = b->page_next[b->page_bucket[0] == h ? 0 : 1]; /* b's link in this bucket */
        if (b->host_page == host_page || b->host_page2 == host_page) {
            drop_block(c, b); /* never looked up, never chained into again */
            /* The running block itself: the rest of it may be stale (a store followed by a
             * jump, the SDM's way to modify code, must see the new bytes, and the decoder
             * follows jumps inside a block), so it ends after the storing instruction. */
            const struct soft_insn *cur = cpu->cur;
            if (cur >= b->insns && cur + 1 < b->insns + b->n)
                b->insns[cur - b->insns + 1].fn = exit_to_fresh_code;
        }
    }
}

int soft_cache_overlaps(struct soft_cpu *cpu, uint64_t addr, uint64_t len)
{
    struct soft_cache *c = cpu->cache;
    return c && addr < c->code_hi && addr + len > c->code_lo;
}

uint64_t soft_cache_generation(const struct soft_cpu *cpu)
{
    return cpu->cache->flushes;
}

void soft_cache_renew_jit(struct soft_cpu *cpu)
{
    struct soft_cache *c = cpu->cache;
    soft_cache_flush(cpu);
    soft_jit_destroy(c->jit);
    c->jit = soft_jit_create();
}

struct soft_jit *soft_cache_jit(const struct soft_cpu *cpu)
{
    return cpu->cache ? cpu->cache->jit : NULL;
}
