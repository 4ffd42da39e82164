/* CPU lifecycle, the run loop, the soft-TLB slow path, precise exceptions and CPUID. */
#include "accel/soft/cpu.h"

#include "accel/soft/cache.h"
#include "accel/soft/decode.h"
#include "accel/soft/exec.h"
#include "accel/soft/insn.h"
#include "accel/soft/jit.h"
#include "accel/soft/sse.h"

#include <cpuid.h>
#include <errno.h>
#include <string.h>

static void tlb_drop(struct soft_tlb_entry *e)
{
    e->tag_read = e->tag_write = e->tag_exec = ~0ull;
    e->addend = 0;
}

/* Translations were dropped (global: global ones too): compiled exits to other pages check
 * their successor's mapping again (jit.c). */
static void tlb_flushed(struct soft_cpu *cpu, bool global)
{
    if (cpu->cache)
        soft_jit_mappings_changed(soft_cache_jit(cpu), global);
}

/* Drop every filled entry whose attributes have none of the keep bits. Only filled entries are
 * written, found eight attribute bytes at a time: rewriting all 8192 entries (256 KiB) at every
 * CR3 write was 5% of a boot, whose processes touch a few hundred pages between switches. */
static void tlb_drop_filled(struct soft_cpu *cpu, uint8_t keep)
{
    uint8_t *attr = &cpu->tlb_attr[0][0];
    for (unsigned i = 0; i < 2 * SOFT_TLB_SIZE; i += 8) {
        uint64_t word;
        memcpy(&word, attr + i, 8);
        if (!word)
            continue;
        for (unsigned k = i; k < i + 8; k++) {
            if ((attr[k] & SOFT_TLB_FILLED) && !(attr[k] & keep)) {
                tlb_drop(&cpu->tlbs[0][0] + k);
                attr[k] = 0;
            }
        }
    }
}

static void tlb_clear(struct soft_cpu *cpu)
{
    tlb_flushed(cpu, true);
    tlb_drop_filled(cpu, 0);
    cpu->tlb_any_global = false;
    cpu->tlb_large_regions = 0;
}

/* The guest page an entry translates (its tags all name the same one), or -1. */
static uint64_t tlb_entry_page(const struct soft_tlb_entry *e)
{
    return e->tag_read != ~0ull ? e->tag_read : e->tag_write != ~0ull ? e->tag_write : e->tag_exec;
}

/* lin's bit in tlb_large_regions. */
static uint64_t large_region_bit(uint64_t lin)
{
    return 1ull << ((lin >> 30) & 63);
}

void soft_tlb_install(struct soft_cpu *cpu, struct soft_tlb_entry *te,
                      const struct soft_tlb_entry *e)
{
    *te = *e;
    uint8_t attr = cpu->fill_attr;
    (&cpu->tlb_attr[0][0])[te - &cpu->tlbs[0][0]] = attr | SOFT_TLB_FILLED;
    cpu->tlb_any_global |= (attr & SOFT_TLB_GLOBAL) != 0;
    if (attr & SOFT_TLB_LARGE)
        cpu->tlb_large_regions |= large_region_bit(tlb_entry_page(te));
}

void soft_tlb_flush_nonglobal(struct soft_cpu *cpu)
{
    if (!cpu->tlb_any_global) {
        tlb_clear(cpu);
        return;
    }
    /* Kernel mappings are global under Linux: every process switch keeps them, as hardware
     * does, instead of walking the kernel's working set again. */
    tlb_flushed(cpu, false);
    tlb_drop_filled(cpu, SOFT_TLB_GLOBAL);
    /* tlb_large_regions stays: the global large pages keep their bits, and a bit left by a
     * dropped one costs one search, which clears it. */
}

void soft_tlb_flush_page(struct soft_cpu *cpu, uint64_t lin)
{
    unsigned idx = (unsigned)(lin >> 12) & (SOFT_TLB_SIZE - 1);
    tlb_flushed(cpu, true); /* INVLPG drops a global translation too */
    for (unsigned b = 0; b < 2; b++) {
        tlb_drop(&cpu->tlbs[b][idx]);
        cpu->tlb_attr[b][idx] = 0;
    }
    uint64_t bit = large_region_bit(lin);
    if (!(cpu->tlb_large_regions & bit))
        return; /* the common case: a user page, no large page cached near it */
    /* A large page sits in the TLB as many 4 KiB entries, and INVLPG at any address in it
     * drops the whole translation: drop every large-page entry in lin's 1 GiB (the largest
     * page), which may be more than needed, never less. The scan over every entry cost 2% of a
     * fork-heavy guest while any large page was cached anywhere, hence the region bits. */
    uint64_t region = lin >> 30;
    bool shared = false; /* a large entry of another region with the same bit stays */
    for (unsigned k = 0; k < 2 * SOFT_TLB_SIZE; k++) {
        uint8_t *attr = &cpu->tlb_attr[0][0] + k;
        if (!(*attr & SOFT_TLB_LARGE))
            continue;
        struct soft_tlb_entry *e = &cpu->tlbs[0][0] + k;
        uint64_t page = tlb_entry_page(e);
        if ((page >> 30) == region) {
            tlb_drop(e);
            *attr = 0;
        } else if (large_region_bit(page) == bit) {
            shared = true;
        }
    }
    if (!shared)
        cpu->tlb_large_regions &= ~bit;
}

int soft_cpu_init(struct soft_cpu *cpu, const struct soft_cpu_ops *ops, void *opaque, int mode)
{
    memset(cpu, 0, sizeof(*cpu));
    cpu->ops = ops;
    cpu->opaque = opaque;
    cpu->mode = (uint8_t)mode;
    cpu->rflags = 0x202;
    cpu->mxcsr = 0x1f80;
    cpu->fpu.fcw = 0x37f;
    cpu->fpu.ftw = 0xffff;
    for (int s = 0; s < SOFT_NSEGS; s++) {
        cpu->seg[s].limit = 0xffffffff;
        cpu->seg[s].attr = 0xc093; /* present, writable data, 4 KiB granular, 32-bit */
    }
    if (mode == 64) {
        cpu->seg[SOFT_CS].attr = 0xa09b; /* present code, L=1 */
        cpu->cr0 = 0x80050033;          /* PG WP NE ET MP PE */
        cpu->cr4 = 0x6a0;               /* PAE PGE OSFXSR OSXMMEXCPT */
        cpu->efer = 0xd01;              /* NXE LMA LME SCE */
        cpu->cpl = 3;
    }
    cpu->model.cx16 = true;
    cpu->model.popcnt = false;
    /* Every entry empty (the memset made their tags 0, a page that would match); from here on
     * the flushes only visit filled ones. */
    for (unsigned k = 0; k < 2 * SOFT_TLB_SIZE; k++)
        tlb_drop(&cpu->tlbs[0][0] + k);
    tlb_clear(cpu);
    return soft_cache_create(cpu);
}

void soft_cpu_destroy(struct soft_cpu *cpu)
{
    soft_cache_destroy(cpu);
}

void soft_cpu_flush_tlb(struct soft_cpu *cpu)
{
    tlb_clear(cpu);
    if (cpu->cache)
        soft_cache_flush(cpu);
}

void soft_cpu_forked(struct soft_cpu *cpu)
{
    soft_cache_renew_jit(cpu);
}

void soft_tlb_flush(struct soft_cpu *cpu)
{
    tlb_clear(cpu);
}

void soft_cpu_invalidate_code(struct soft_cpu *cpu, uint64_t addr, uint64_t len)
{
    /* Blocks are not indexed by page yet: dropping all of them is correct, and rare in user mode
     * because only ranges that overlap decoded code count. System mode will keep a per-page
     * "holds code" mark and drop only that page's blocks. A block may follow a JMP backwards
     * within its page, so the cache's [lowest start, highest end) range need not cover all of
     * its bytes; every byte is within a page of both, hence the widened query. */
    uint64_t lo = addr > 4096 ? addr - 4096 : 0;
    uint64_t hi = addr + len + 4096 < addr ? ~0ull : addr + len + 4096;
    if (soft_cache_overlaps(cpu, lo, hi - lo))
        soft_cache_flush(cpu);
}

void soft_raise(struct soft_cpu *cpu, int vector, uint32_t error)
{
    if (cpu->cur)
        cpu->rip = cpu->cur->next_rip - cpu->cur->len;
    cpu->exc_vector = (uint8_t)vector;
    cpu->exc_softint = 0;
    cpu->exc_error = error;
    cpu->exit_reason = SOFT_EXIT_EXCEPTION;
    siglongjmp(cpu->fault_jmp, 1);
}

void soft_block_end(struct soft_cpu *cpu, const struct soft_insn *i)
{
    soft_chain(cpu, i);
}

void soft_chain_other_page(struct soft_cpu *cpu, struct soft_block *b, struct soft_block *n)
{
    if (!soft_block_mapped(cpu, n)) {
        cpu->last_block = b; /* its page was remapped: the loop decodes it afresh */
        return;
    }
    cpu->rip = n->end_rip;
    n->insns->fn(cpu, n->insns);
}

void soft_exec_ud(struct soft_cpu *cpu, const struct soft_insn *i)
{
    cpu->cur = i;
    soft_raise(cpu, SOFT_EXC_UD, 0);
}

void soft_cpu_host_fault(struct soft_cpu *cpu, uint64_t addr)
{
    cpu->cr2 = addr;
    soft_raise(cpu, SOFT_EXC_PF, 0x4);
}

/* Translate the page of addr for access: 0 with *host for RAM (the TLB entry is cached), 1 with
 * *gpa for a device page (never cached). Raises the guest's fault. */
static int translate(struct soft_cpu *cpu, uint64_t addr, int access, uint8_t **host,
                     uint64_t *gpa)
{
    struct soft_tlb_entry *e = &soft_tlb(cpu)[(addr >> 12) & (SOFT_TLB_SIZE - 1)];
    uint64_t page = addr & ~0xfffull;
    uint64_t tag = access == SOFT_ACC_WRITE ? e->tag_write
                   : access == SOFT_ACC_EXEC ? e->tag_exec : e->tag_read;
    if (tag == page) {
        *host = (uint8_t *)(uintptr_t)(addr + e->addend);
        return 0;
    }
    struct soft_tlb_entry ne = {~0ull, ~0ull, ~0ull, 0};
    int r = cpu->ops->tlb_fill(cpu, addr, access, &ne);
    if (r < 0)
        soft_raise(cpu, -r, cpu->exc_error);
    if (r == 1) {
        *gpa = ne.addend + (addr & 0xfff);
        return 1;
    }
    tag = access == SOFT_ACC_WRITE ? ne.tag_write
          : access == SOFT_ACC_EXEC ? ne.tag_exec : ne.tag_read;
    if (tag != page) {
        cpu->cr2 = addr;
        soft_raise(cpu, SOFT_EXC_PF, access == SOFT_ACC_WRITE ? 0x6 : 0x4);
    }
    soft_tlb_install(cpu, e, &ne);
    *host = (uint8_t *)(uintptr_t)(addr + ne.addend);
    return 0;
}

void *soft_mem_slow(struct soft_cpu *cpu, uint64_t addr, unsigned size, int access)
{
    uint8_t *h1 = NULL, *h2 = NULL;
    uint64_t g1 = 0, g2 = 0;
    unsigned n1 = 4096 - (unsigned)(addr & 0xfff);
    if (n1 > size)
        n1 = size;
    int m1 = translate(cpu, addr, access, &h1, &g1);
    int m2 = 0;
    if (n1 < size)
        m2 = translate(cpu, addr + n1, access, &h2, &g2);
    if (!m1 && !m2 && (n1 == size || h2 == h1 + n1))
        return h1;
    if (access == SOFT_ACC_WRITE || size > sizeof(cpu->bounce)) {
        /* A read-modify-write form on a device or across two unrelated host pages: the
         * pointer contract cannot express it. No guest we run does this. */
        soft_raise(cpu, SOFT_EXC_GP, 0);
    }
    if (m1)
        cpu->ops->mmio_read(cpu, g1, n1, cpu->bounce);
    else
        memcpy(cpu->bounce, h1, n1);
    if (n1 < size) {
        if (m2)
            cpu->ops->mmio_read(cpu, g2, size - n1, cpu->bounce + n1);
        else
            memcpy(cpu->bounce + n1, h2, size - n1);
    }
    return cpu->bounce;
}

static void mem_copy(struct soft_cpu *cpu, uint64_t addr, uint8_t *buf, unsigned len, bool write)
{
    int access = write ? SOFT_ACC_WRITE : SOFT_ACC_READ;
    uint8_t *h1 = NULL, *h2 = NULL;
    uint64_t g1 = 0, g2 = 0;
    unsigned n1 = 4096 - (unsigned)(addr & 0xfff);
    if (n1 > len)
        n1 = len;
    int m1 = translate(cpu, addr, access, &h1, &g1);
    int m2 = 0;
    if (n1 < len)
        m2 = translate(cpu, addr + n1, access, &h2, &g2);
    for (int part = 0; part < 2; part++) {
        unsigned off = part ? n1 : 0, n = part ? len - n1 : n1;
        uint8_t *h = part ? h2 : h1;
        uint64_t g = part ? g2 : g1;
        int mmio = part ? m2 : m1;
        for (unsigned k = 0; k < n; k += mmio ? 8 : n) {
            unsigned c = mmio ? (n - k < 8 ? n - k : 8) : n;
            if (mmio && write)
                cpu->ops->mmio_write(cpu, g + k, c, buf + off + k);
            else if (mmio)
                cpu->ops->mmio_read(cpu, g + k, c, buf + off + k);
            else if (write)
                memcpy(h + k, buf + off + k, c);
            else
                memcpy(buf + off + k, h + k, c);
        }
    }
}

void soft_mem_read_bytes(struct soft_cpu *cpu, uint64_t addr, void *buf, unsigned len)
{
    mem_copy(cpu, addr, buf, len, false);
}

void soft_mem_write_bytes(struct soft_cpu *cpu, uint64_t addr, const void *buf, unsigned len)
{
    mem_copy(cpu, addr, (uint8_t *)(uintptr_t)buf, len, true);
}

void soft_st_slow(struct soft_cpu *cpu, uint64_t addr, unsigned size, uint64_t v)
{
    uint8_t buf[8];
    memcpy(buf, &v, size);
    uint8_t *h1 = NULL, *h2 = NULL;
    uint64_t g1 = 0, g2 = 0;
    unsigned n1 = 4096 - (unsigned)(addr & 0xfff);
    if (n1 > size)
        n1 = size;
    int m1 = translate(cpu, addr, SOFT_ACC_WRITE, &h1, &g1);
    int m2 = 0;
    if (n1 < size)
        m2 = translate(cpu, addr + n1, SOFT_ACC_WRITE, &h2, &g2);
    if (m1)
        cpu->ops->mmio_write(cpu, g1, n1, buf);
    else
        memcpy(h1, buf, n1);
    if (n1 < size) {
        if (m2)
            cpu->ops->mmio_write(cpu, g2, size - n1, buf + n1);
        else
            memcpy(h2, buf + n1, size - n1);
    }
}

int soft_cpu_run(struct soft_cpu *cpu)
{
    static __thread uint32_t host_mxcsr;
    cpu->exit_reason = SOFT_EXIT_NONE;
    cpu->cur = NULL;
    /* No signal mask is saved: guest faults leave by siglongjmp from ordinary code, and the
     * host-fault handler (vireo-user) is installed with SA_NODEFER, so the mask never changes
     * on the way out. Saving it would cost a system call on every entry. */
    if (sigsetjmp(cpu->fault_jmp, 0)) {
        cpu->running = 0;
        soft_sse_leave(cpu, host_mxcsr);
        return cpu->exit_reason;
    }
    soft_sse_enter(cpu, &host_mxcsr);
    cpu->running = 1;
    struct soft_block *prev = NULL;
    uint64_t gen = soft_cache_generation(cpu);
    while (cpu->exit_reason == SOFT_EXIT_NONE) {
        if (__builtin_expect(cpu->system, 0)) {
            /* Interrupts are taken at block boundaries; an STI or MOV SS ends its block and
             * leaves a shadow that covers (at least) the next instruction. */
            int req = __atomic_load_n(&cpu->intr_request, __ATOMIC_ACQUIRE);
            if ((req & SOFT_INTR_KICK) ||
                ((req & SOFT_INTR_PENDING) && (cpu->rflags & SOFT_IF) && !cpu->irq_shadow)) {
                cpu->exit_reason = SOFT_EXIT_IRQ;
                break;
            }
            cpu->irq_shadow = 0;
        }
        /* System instructions change the mode or CPL and end their block, so the key is
         * recomputed for every lookup. */
        uint32_t key = soft_block_key(cpu);
        struct soft_block *b = NULL;
        uint64_t pc = cpu->rip;
        if (prev) {
            /* Chaining: the block after prev is usually one of the last two seen. */
            if (prev->succ_pc[0] == pc)
                b = prev->succ[0];
            else if (prev->succ_pc[1] == pc)
                b = prev->succ[1];
            if (b && (b->key != key || b->pc != pc || !soft_block_mapped(cpu, b)))
                b = NULL;
        }
        if (!b) {
            cpu->cur = NULL; /* a fault while decoding belongs to the block's first address */
            b = soft_cache_lookup(cpu, pc);
            if (soft_cache_generation(cpu) != gen) {
                gen = soft_cache_generation(cpu);
                prev = NULL; /* every older block is gone */
            }
            if (prev) {
                prev->succ_pc[1] = prev->succ_pc[0];
                prev->succ[1] = prev->succ[0];
                prev->succ_pc[0] = pc;
                prev->succ[0] = b;
            }
        }
        /* Only the last instruction of a block can branch, and no handler reads cpu->rip, so
         * RIP is set to the fall-through address once per block (a taken branch overwrites it)
         * and faults recompute it from cpu->cur. The handlers chain to each other. */
        cpu->rip = b->end_rip;
        cpu->chain_budget = 256;
        b->insns->fn(cpu, b->insns);
        prev = cpu->last_block;
    }
    cpu->running = 0;
    soft_sse_leave(cpu, host_mxcsr);
    return cpu->exit_reason;
}

int soft_cpu_step(struct soft_cpu *cpu)
{
    static __thread uint32_t host_mxcsr;
    static __thread struct soft_insn insns[2];
    struct soft_insn *ip = &insns[0];
    cpu->exit_reason = SOFT_EXIT_NONE;
    cpu->cur = NULL;
    if (sigsetjmp(cpu->fault_jmp, 0)) {
        cpu->running = 0;
        soft_sse_leave(cpu, host_mxcsr);
        return cpu->exit_reason;
    }
    soft_sse_enter(cpu, &host_mxcsr);
    cpu->running = 1;
    int r = soft_decode(cpu, cpu->rip, ip);
    if (r < 0)
        soft_raise(cpu, -r, cpu->exc_error);
    /* The terminator belongs to a one-instruction block that counts the instruction, and a
     * budget of one makes soft_chain() return instead of chaining anywhere. */
    static __thread struct soft_block step_block = {.n = 1};
    memset(&insns[1], 0, sizeof(insns[1]));
    insns[1].fn = soft_block_end;
    insns[1].imm = (uint64_t)(uintptr_t)&step_block;
    cpu->chain_budget = 1;
    cpu->cur = ip;
    cpu->rip = ip->next_rip;
    ip->fn(cpu, ip);
    cpu->running = 0;
    soft_sse_leave(cpu, host_mxcsr);
    if (cpu->exit_reason == SOFT_EXIT_NONE)
        cpu->exit_reason = SOFT_EXIT_STEP;
    return cpu->exit_reason;
}

void soft_cpuid(struct soft_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    const struct soft_cpu_model *m = &cpu->model;
    memset(out, 0, 4 * sizeof(uint32_t));
    switch (leaf) {
    case 0:
        /* Vendor and cache topology come from the host so that libc tunes copies sensibly;
         * feature leaves below describe only what the interpreter implements. */
        __cpuid_count(0, 0, a, b, c, d);
        out[0] = a < 0xd ? a : 0xd;
        out[1] = b;
        out[2] = c;
        out[3] = d;
        return;
    case 1:
        __cpuid_count(1, 0, a, b, c, d);
        out[0] = a;
        out[1] = b & 0x0000ffff; /* brand index, CLFLUSH size; one logical CPU */
        out[1] |= 1u << 16;
        out[2] = (m->sse3 ? 1u : 0) | (m->ssse3 ? 1u << 9 : 0) | (m->cx16 ? 1u << 13 : 0) |
                 (m->movbe ? 1u << 22 : 0) | (m->popcnt ? 1u << 23 : 0);
        out[3] = (1u << 0) | (1u << 4) | (1u << 8) | (1u << 15) | (1u << 19) | (1u << 24) |
                 (1u << 25) | (1u << 26);
        return;
    case 2: case 4:
        __cpuid_count(leaf, subleaf, a, b, c, d);
        out[0] = a; out[1] = b; out[2] = c; out[3] = d;
        if (leaf == 4)
            out[0] &= 0x3ff; /* no claims about cores sharing the cache */
        return;
    case 7:
        if (subleaf == 0)
            out[1] = m->bmi1 ? 1u << 3 : 0;
        return;
    case 0x80000000:
        __cpuid_count(leaf, 0, a, b, c, d);
        out[0] = a < 0x80000008 ? a : 0x80000008;
        return;
    case 0x80000001:
        out[2] = 1u | (m->lzcnt ? 1u << 5 : 0);
        out[3] = (1u << 11) | (1u << 20) | (1u << 27) | (1u << 29);
        return;
    case 0x80000002: case 0x80000003: case 0x80000004: case 0x80000006: case 0x80000008:
        __cpuid_count(leaf, 0, a, b, c, d);
        out[0] = a; out[1] = b; out[2] = c; out[3] = d;
        return;
    default:
        return;
    }
}
