/* Block compiler: the frame around translated instructions (see jit.h).
 *
 * Compiled code keeps the CPU pointer in RBX and guest state where the interpreter keeps it
 * (registers in cpu->regs, lazy flags in cpu->cc_*), so that at every instruction boundary the
 * state is the interpreter's and the two can hand over anywhere:
 *   - a run of instructions the translator does not know is entered through its first
 *     handler; the entry after the run gets a handler that just returns (jit_resume), so the
 *     threaded handlers come back to the compiled code. A run that ends the block is jumped
 *     to instead, and the interpreter's branch or terminator chains on from there;
 *   - faults are precise as in the interpreter: cpu->cur names the instruction before any
 *     access can fault (before every access in vireo-user, whose host faults are guest
 *     faults; on the TLB miss path in system mode, where guest RAM never faults the host);
 *   - a store through the miss path may have rewritten this very block (the system-mode TLB
 *     keeps no write tag on pages holding decoded code), and so may an interpreted run: the
 *     block's pc then no longer matches and the code leaves with RIP after the store, as
 *     the interpreter does.
 * Two passes: the first only asks the translators which instructions they take (the runs
 * of the others must be known before the first is emitted), the second emits. */
#include "accel/soft/jit.h"

#include "accel/soft/exec.h"
#include "accel/soft/jit_ctx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define JIT_BUF_SIZE (32u << 20)
/* Largest code one block can need: 64 instructions of at most ~200 bytes plus their miss
 * paths, the exits and the chain. */
#define JIT_BLOCK_RESERVE (48u << 10)
/* The buffer's first page holds data the code reads (the mapping generations), never code:
 * writing data next to code would make the host CPU discard what it fetched from there. */
#define JIT_DATA_SIZE 4096u

/* The code lives in one shared-memory buffer mapped twice: writable for the compiler and
 * executable for the CPU, never both at one address. Guest code decides the immediates in
 * compiled code, so a writable and executable page would hand a guest that found a memory
 * bug in the VMM a ready place for its own instructions. Jumps within the buffer are
 * relative, so code written through one view runs unchanged in the other. */
struct soft_jit {
    uint8_t *mem, *p, *end; /* the writable view */
    uint8_t *exec;          /* the executable view of mem */
    const uint8_t *dead;    /* (executable) where a dropped block's body now jumps */
    uint8_t *start;         /* where blocks begin, after that exit (kept across resets) */
    bool profile;           /* count executed interpreted instructions (stats.run_op) */
    /* The mapping generations (soft_jit_mappings_changed), in the data page: [JIT_GEN_ALL]
     * counts every TLB flush, [JIT_GEN_GLOBAL] those that drop global translations too. */
    uint64_t *gen;
    int perfmap;            /* VIREO_SOFT_JIT_PERFMAP=1: /tmp/perf-<pid>.map, or -1 */
    struct soft_jit_stats stats;
};

static void emit_pop_rbx_ret(struct jx_buf *b);

/* The code every dropped block's body jumps to (soft_jit_unlink_into): leave to the run loop,
 * which looks the address up afresh. Entered in a block's frame (RBX pushed, RBX = cpu). */
static void emit_dead_exit(struct soft_jit *j)
{
    struct jx_buf b = {.p = j->p, .end = j->end};
    j->dead = j->exec + (b.p - j->mem);
    jx_op(&b, 8, 0xc7, 1, 0, jx_m(JIT_CPU, JIT_CPU_OFF(last_block)), false);
    jx_imm(&b, 0, 4);
    emit_pop_rbx_ret(&b);
    j->p = b.p;
}

/* VIREO_SOFT_JIT_PERFMAP=1: name compiled blocks for perf, which reads /tmp/perf-<pid>.map
 * ("start size name" per line, hex) to symbolise anonymous executable memory such as the
 * memfd's executable view. Every vCPU appends to the one file; O_APPEND keeps lines whole. */
static int perfmap_open(void)
{
    const char *env = getenv("VIREO_SOFT_JIT_PERFMAP");
    if (!env || env[0] != '1')
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* One line per block, written at once so that a killed VMM still leaves a usable map. After
 * a reset the buffer is reused and perf sees overlapping entries; the latest is the truth. */
static void perfmap_add(const struct soft_jit *j, const uint8_t *entry, size_t size,
                        const struct soft_block *b)
{
    char line[96];
    int n = snprintf(line, sizeof(line), "%lx %zx guest_%016llx\n",
                     (unsigned long)(uintptr_t)entry, size, (unsigned long long)b->pc);
    if (n > 0 && write(j->perfmap, line, (size_t)n) != n) {
        /* A full disk only loses names. */
    }
}

struct soft_jit *soft_jit_create(void)
{
    const char *env = getenv("VIREO_SOFT_JIT");
    if (env && env[0] == '0')
        return NULL;
    struct soft_jit *j = calloc(1, sizeof(*j));
    int fd = memfd_create("vireo-jit", MFD_CLOEXEC);
    if (!j || fd < 0 || ftruncate(fd, JIT_BUF_SIZE) != 0)
        goto fail;
    /* NORESERVE: only the pages code is written to are ever committed. */
    void *w = mmap(NULL, JIT_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (w == MAP_FAILED)
        goto fail;
    void *x = mmap(NULL, JIT_BUF_SIZE, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (x == MAP_FAILED) {
        munmap(w, JIT_BUF_SIZE);
        goto fail;
    }
    close(fd);
    j->mem = w;
    j->gen = w;
    j->p = j->mem + JIT_DATA_SIZE;
    j->end = j->mem + JIT_BUF_SIZE;
    j->exec = x;
    emit_dead_exit(j);
    j->start = j->p;
    const char *prof = getenv("VIREO_SOFT_JIT_PROFILE");
    j->profile = prof && prof[0] == '1';
    j->perfmap = perfmap_open();
    return j;
fail:
    if (fd >= 0)
        close(fd);
    free(j);
    return NULL;
}

void soft_jit_destroy(struct soft_jit *j)
{
    if (!j)
        return;
    munmap(j->mem, JIT_BUF_SIZE);
    munmap(j->exec, JIT_BUF_SIZE);
    if (j->perfmap >= 0)
        close(j->perfmap);
    free(j);
}

void soft_jit_reset(struct soft_jit *j)
{
    /* No code is written here: a handler called from compiled code may flush the cache, and
     * that code runs on until it returns to the loop, where the next block is compiled. Its
     * exits to other pages must not enter the old successors' code any more. */
    j->p = j->start;
    soft_jit_mappings_changed(j, true);
}

void soft_jit_mappings_changed(struct soft_jit *j, bool global)
{
    if (!j)
        return;
    j->gen[JIT_GEN_ALL]++;
    if (global)
        j->gen[JIT_GEN_GLOBAL]++;
}

bool soft_jit_has_room(const struct soft_jit *j)
{
    return (size_t)(j->end - j->p) >= JIT_BLOCK_RESERVE;
}

const struct soft_jit_stats *soft_jit_stats(const struct soft_jit *j)
{
    return &j->stats;
}

uint64_t soft_jit_carry(struct soft_cpu *cpu)
{
    return (uint64_t)soft_carry(cpu);
}

uint64_t soft_jit_flags(struct soft_cpu *cpu)
{
    return soft_flags_arith(cpu);
}

uint64_t soft_jit_cond(struct soft_cpu *cpu, unsigned cc)
{
    return (uint64_t)soft_cond(cpu, cc);
}

/* Put after an interpreted run: the run's last handler dispatches here, which returns to the
 * compiled code that called the run. */
static void jit_resume(struct soft_cpu *cpu, const struct soft_insn *i)
{
    (void)cpu;
    (void)i;
}

/* --- emit helpers ------------------------------------------------------------------------- */

static void emit_pop_rbx_ret(struct jx_buf *b)
{
    jx_byte(b, 0x5b); /* pop rbx */
    jx_byte(b, 0xc3); /* ret */
}

static void add_fixup(struct jit_ctx *c, uint8_t **list, unsigned *n, uint8_t *at)
{
    if (*n == JIT_MAX_FIXUPS) {
        c->b.overflow = true; /* more exits than any block has: give the block up */
        return;
    }
    list[(*n)++] = at;
}

/* cpu->cur = i (through RDX, which the callers have free). */
static void emit_set_cur(struct jit_ctx *c, const struct soft_insn *i)
{
    jx_mov_ri(&c->b, JX_RDX, (uint64_t)(uintptr_t)i);
    jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(cur)), JX_RDX);
}

/* Jump to the returned rel32 when the block was dropped since it was compiled. Clobbers RAX,
 * RCX and the host flags. */
static uint8_t *emit_if_block_dropped(struct jit_ctx *c)
{
    jx_mov_ri(&c->b, JX_RAX, (uint64_t)(uintptr_t)&c->blk->pc);
    jx_mov_ri(&c->b, JX_RCX, c->blk->pc);
    jx_alu_mr(&c->b, 8, 7, jx_m(JX_RAX, 0), JX_RCX);
    return jx_jcc_fwd(&c->b, JX_CC_NE);
}

void jit_emit_call(struct jit_ctx *c, const void *fn)
{
    jx_mov_rr(&c->b, JX_RDI, JIT_CPU);
    jx_call_abs(&c->b, fn);
}

void jit_emit_raise(struct jit_ctx *c, const struct soft_insn *i, int vector)
{
    emit_set_cur(c, i);
    jx_mov_rr(&c->b, JX_RDI, JIT_CPU);
    jx_mov_ri(&c->b, JX_RSI, (uint64_t)vector);
    jx_mov_ri(&c->b, JX_RDX, 0);
    jx_call_abs(&c->b, (const void *)soft_raise);
}

void jit_emit_set_rip(struct jit_ctx *c, uint64_t v)
{
    struct jx_rm rip = jx_m(JIT_CPU, JIT_CPU_OFF(rip));
    if (jx_fits32((int64_t)v)) {
        jx_op(&c->b, 8, 0xc7, 1, 0, rip, false);
        jx_imm(&c->b, v, 4);
    } else {
        jx_mov_ri(&c->b, JX_RAX, v);
        jx_store(&c->b, 8, rip, JX_RAX);
    }
}

/* [rbx + off] = v (64-bit), through scratch when v needs more than a sign-extended imm32. */
static void emit_store_imm64(struct jit_ctx *c, int32_t off, uint64_t v, int scratch)
{
    if (jx_fits32((int64_t)v)) {
        jx_op(&c->b, 8, 0xc7, 1, 0, jx_m(JIT_CPU, off), false);
        jx_imm(&c->b, v, 4);
    } else {
        jx_mov_ri(&c->b, scratch, v);
        jx_store(&c->b, 8, jx_m(JIT_CPU, off), scratch);
    }
}

void jit_emit_cc(struct jit_ctx *c, unsigned op, unsigned size, int res, int a, uint64_t a_imm,
                 int b, uint64_t b_imm)
{
    jx_op(&c->b, 0, 0xc7, 1, 0, jx_m(JIT_CPU, JIT_CPU_OFF(cc_op)), false);
    jx_imm(&c->b, op + soft_szidx(size), 4);
    c->last_cc = (int)(op + soft_szidx(size));
    jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(cc_res)), res);
    if (op == SOFT_CC_LOGIC)
        return; /* logic flags come from the result alone */
    if (a != JX_NONE)
        jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(cc_a)), a);
    else
        emit_store_imm64(c, JIT_CPU_OFF(cc_a), a_imm, JX_R8);
    if (b != JX_NONE)
        jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(cc_b)), b);
    else
        emit_store_imm64(c, JIT_CPU_OFF(cc_b), b_imm, JX_R8);
}

void jit_emit_ea(struct jit_ctx *c, const struct soft_insn *i, bool with_seg)
{
    struct jx_buf *b = &c->b;
    int64_t disp = (int64_t)i->disp;
    bool base = i->base != SOFT_RZERO, index = i->index != SOFT_RZERO;
    if (!jx_fits32(disp)) {
        /* LEA only: ADD would change the host flags, which LEA must keep. */
        jx_mov_ri(b, JX_RSI, (uint64_t)disp);
        if (base) {
            jx_load_zx(b, 8, JX_RDI, jit_greg(i->base, 8));
            jx_op(b, 8, 0x8d, 1, JX_RSI, jx_mx(JX_RSI, JX_RDI, 0, 0), false);
        }
        if (index) {
            jx_load_zx(b, 8, JX_RDI, jit_greg(i->index, 8));
            jx_op(b, 8, 0x8d, 1, JX_RSI, jx_mx(JX_RSI, JX_RDI, i->scale, 0), false);
        }
    } else if (base && index) {
        jx_load_zx(b, 8, JX_RSI, jit_greg(i->base, 8));
        jx_load_zx(b, 8, JX_RDI, jit_greg(i->index, 8));
        jx_op(b, 8, 0x8d, 1, JX_RSI, jx_mx(JX_RSI, JX_RDI, i->scale, (int32_t)disp), false);
    } else if (base) {
        jx_load_zx(b, 8, JX_RSI, jit_greg(i->base, 8));
        if (disp)
            jx_op(b, 8, 0x8d, 1, JX_RSI, jx_m(JX_RSI, (int32_t)disp), false);
    } else if (index) {
        jx_load_zx(b, 8, JX_RDI, jit_greg(i->index, 8));
        jx_op(b, 8, 0x8d, 1, JX_RSI, jx_mx(JX_NONE, JX_RDI, i->scale, (int32_t)disp), false);
    } else {
        jx_mov_ri(b, JX_RSI, (uint64_t)disp);
    }
    if (i->asz == 4)
        jx_op(b, 0, 0x89, 1, JX_RSI, jx_r(JX_RSI), false); /* mov esi, esi */
    if (with_seg && (i->seg == SOFT_FS || i->seg == SOFT_GS))
        jx_alu_rm(b, 8, 0, JX_RSI, jx_m(JIT_CPU, JIT_CPU_OFF(seg[i->seg].base)));
}

/* The inline soft-TLB probe (soft_tlb_try): on a hit RSI becomes the host pointer; the
 * returned rel32 is the branch taken on a miss. */
static uint8_t *emit_tlb_probe(struct jit_ctx *c, const struct soft_insn *i, unsigned size,
                               int access)
{
    struct jx_buf *b = &c->b;
    _Static_assert(sizeof(struct soft_tlb_entry) == 32, "TLB entry size");
    int32_t tlb = c->tlb_off;
    int32_t tag = access == SOFT_ACC_WRITE ? (int32_t)offsetof(struct soft_tlb_entry, tag_write)
                                           : (int32_t)offsetof(struct soft_tlb_entry, tag_read);
    if (c->user)
        emit_set_cur(c, i);
    jx_mov_rr(b, JX_RDI, JX_RSI);
    jx_op(b, 8, 0xc1, 1, 5, jx_r(JX_RDI), false); /* shr rdi, 7: entry offset, see soft_tlb_try */
    jx_imm(b, 12 - 5, 1);
    jx_op(b, 0, 0x81, 1, 4, jx_r(JX_RDI), false); /* and edi, (size - 1) << 5 */
    jx_imm(b, (SOFT_TLB_SIZE - 1) << 5, 4);
    jx_op(b, 8, 0x8d, 1, JX_RDX, jx_m(JX_RSI, (int32_t)size - 1), false);
    jx_alu_mi(b, 8, 4, jx_r(JX_RDX), (uint64_t)-4096);
    jx_alu_rm(b, 8, 7, JX_RDX, jx_mx(JIT_CPU, JX_RDI, 0, tlb + tag));
    uint8_t *miss = jx_jcc_fwd(b, JX_CC_NE);
    jx_alu_rm(b, 8, 0, JX_RSI,
              jx_mx(JIT_CPU, JX_RDI, 0, tlb + (int32_t)offsetof(struct soft_tlb_entry, addend)));
    return miss;
}

static void add_slow(struct jit_ctx *c, uint8_t *miss, const struct soft_insn *i, unsigned kind,
                     unsigned size, int access, int32_t src)
{
    if (c->nslow == JIT_MAX_SLOW) {
        c->b.overflow = true; /* cannot happen with two accesses per instruction at most */
        return;
    }
    c->slow[c->nslow++] = (struct jit_slow){.jne = miss, .resume = c->b.p, .i = i,
                                            .kind = (uint8_t)kind, .size = (uint8_t)size,
                                            .access = (uint8_t)access, .src = src};
}

void jit_emit_ptr(struct jit_ctx *c, const struct soft_insn *i, unsigned size, int access)
{
    uint8_t *miss = emit_tlb_probe(c, i, size, access);
    add_slow(c, miss, i, JIT_SLOW_PTR, size, access, 0);
}

void jit_emit_store(struct jit_ctx *c, const struct soft_insn *i, unsigned size)
{
    uint8_t *miss = emit_tlb_probe(c, i, size, SOFT_ACC_WRITE);
    jx_store(&c->b, size, jx_m(JX_RSI, 0), JX_RAX);
    add_slow(c, miss, i, JIT_SLOW_STORE, size, SOFT_ACC_WRITE, 0);
}

void jit_emit_store16(struct jit_ctx *c, const struct soft_insn *i, int32_t src)
{
    uint8_t *miss = emit_tlb_probe(c, i, 16, SOFT_ACC_WRITE);
    jx_byte(&c->b, 0xf3); /* movdqu xmm0, [cpu + src] */
    jx_op(&c->b, 0, 0x0f6f, 2, 0, jx_m(JIT_CPU, src), false);
    jx_byte(&c->b, 0xf3); /* movdqu [rsi], xmm0 */
    jx_op(&c->b, 0, 0x0f7f, 2, 0, jx_m(JX_RSI, 0), false);
    add_slow(c, miss, i, JIT_SLOW_STORE16, 16, SOFT_ACC_WRITE, src);
}

static void emit_slow_paths(struct jit_ctx *c)
{
    struct jx_buf *b = &c->b;
    for (unsigned k = 0; k < c->nslow; k++) {
        const struct jit_slow *s = &c->slow[k];
        jx_patch(s->jne, b->p);
        emit_set_cur(c, s->i);
        jx_mov_rr(b, JX_RDI, JIT_CPU); /* RSI still holds the linear address */
        jx_mov_ri(b, JX_RDX, s->size);
        if (s->kind == JIT_SLOW_PTR) {
            jx_mov_ri(b, JX_RCX, s->access);
            jx_call_abs(b, (const void *)soft_mem_slow);
            jx_mov_rr(b, JX_RSI, JX_RAX);
            if (s->access != SOFT_ACC_WRITE) {
                jx_patch(jx_jmp_fwd(b), s->resume);
                continue;
            }
        } else if (s->kind == JIT_SLOW_STORE16) {
            jx_op(b, 8, 0x8d, 1, JX_RDX, jx_m(JIT_CPU, s->src), false); /* lea rdx, src */
            jx_mov_ri(b, JX_RCX, 16);
            jx_call_abs(b, (const void *)soft_mem_write_bytes);
        } else {
            jx_mov_rr(b, JX_RCX, JX_RAX);
            jx_call_abs(b, (const void *)soft_st_slow);
        }
        uint8_t *dropped = emit_if_block_dropped(c); /* keeps RSI */
        jx_patch(jx_jmp_fwd(b), s->resume);
        /* The write (a read-modify-write's, about to happen, or a store, done) rewrites this
         * block, which soft_cache_invalidate_host_page() ended after the instruction: the
         * instruction's own handler runs it (again, for a store: the same bytes to the same
         * place, as nothing it reads has changed yet; PUSH and CALL still move RSP and RIP
         * after it) and leaves through exit_to_fresh_code, or chains on from the block's
         * end. s->i->fn is still the interpreter's handler while the block is emitted. */
        jx_patch(dropped, b->p);
        jx_mov_rr(b, JX_RDI, JIT_CPU);
        jx_mov_ri(b, JX_RSI, (uint64_t)(uintptr_t)s->i);
        jx_byte(b, 0x5b); /* pop rbx */
        jx_jmp_abs(b, (const void *)s->i->fn);
    }
}

/* Count the block and spend one unit of the chain budget; when it is spent, leave to the run
 * loop (which then sees exit requests and interrupts). Only vireo-user reports the count (its
 * statistics and trace), so system mode saves the update. */
static void emit_count_and_budget(struct jit_ctx *c)
{
    struct jx_buf *b = &c->b;
    if (c->user)
        jx_alu_mi(b, 8, 0, jx_m(JIT_CPU, JIT_CPU_OFF(insn_count)), c->blk->n);
    jx_alu_mi(b, 4, 5, jx_m(JIT_CPU, JIT_CPU_OFF(chain_budget)), 1);
    add_fixup(c, c->to_loop, &c->nto_loop, jx_jcc_fwd(b, JX_CC_E));
}

void jit_emit_chain(struct jit_ctx *c)
{
    c->ends = true;
    emit_count_and_budget(c);
    add_fixup(c, c->to_chain, &c->nto_chain, jx_jmp_fwd(&c->b));
}

/* Point exit k's guard (its CMP's displacement at disp_at, writable view; see emit_gen_check)
 * at generation counter gen and expect value v there. Both views map the buffer alike, so the
 * RIP-relative distance is the same in the executable one. The code is written only when the
 * counter changes (rarely): a store into code the host has in its pipeline costs a machine
 * clear, which at every relink after a CR3 write was a tenth of a fork-heavy guest's time. */
static void set_gen_guard(struct soft_block *b, unsigned k, const uint64_t *gen, uint64_t v)
{
    uint8_t *disp_at = b->jit_gen[k];
    int32_t disp = (int32_t)((const uint8_t *)gen - (disp_at + 4)), old;
    memcpy(&old, disp_at, 4);
    if (old != disp)
        memcpy(disp_at, &disp, 4);
    b->jit_want_gen[k] = v;
}

/* The guard of exit k to another page (system mode): the guest may map other code there by the
 * next time, but it must flush its TLB after remapping, and until then hardware may run the old
 * translation too. So the successor linked there (soft_jit_link_exit, which checks the mapping)
 * is entered while no flush happened since: the block's jit_want_gen[k] holds the generation it
 * was linked in (~0, never, until then), the CMP reads the counter that applies (global
 * translations, as the kernel's, survive CR3 writes). A stale generation goes to the link path,
 * which links again. The inline soft_block_mapped() this replaces cost a dozen instructions and,
 * when the successor's fetch entry had been evicted from the soft TLB, a call and a page walk
 * on every pass. */
static void emit_gen_check(struct jit_ctx *c, unsigned k)
{
    struct jx_buf *b = &c->b;
    uint64_t *want = &c->blk->jit_want_gen[k];
    *want = ~0ull;
    jx_mov_ri(b, JX_RCX, (uint64_t)(uintptr_t)want);
    jx_load_zx(b, 8, JX_RCX, jx_m(JX_RCX, 0));
    jx_byte(b, 0x48); /* cmp rcx, [rip + disp32] */
    jx_byte(b, 0x3b);
    jx_byte(b, 0x0d);
    c->link_gen[k] = b->p;
    jx_imm(b, 0, 4);
    if (!b->overflow) {
        int32_t disp = (int32_t)((const uint8_t *)&c->gen[JIT_GEN_ALL] - b->p);
        memcpy(c->link_gen[k], &disp, 4);
    }
    c->link_stale[k] = jx_jcc_fwd(b, JX_CC_NE);
}

void jit_emit_exit(struct jit_ctx *c, bool set_rip, uint64_t target)
{
    c->ends = true;
    if (set_rip)
        jit_emit_set_rip(c, target);
    emit_count_and_budget(c);
    if (c->nlinks == 2) { /* never: at most a taken and a fall-through exit */
        c->b.overflow = true;
        return;
    }
    unsigned k = c->nlinks++;
    c->link_gen[k] = NULL;
    if (!c->user && ((target ^ c->blk->pc) >> 12))
        emit_gen_check(c, k);
    /* Linked later (soft_jit_link_exit) straight into the successor's body; until then the
     * jump goes to this exit's link path (emitted after the block). */
    c->link[k] = jx_jmp_fwd(&c->b);
}

/* soft_block_mapped() inline for the block in RCX whose address is in RAX: its page's exec tag
 * in this bank and the host page that maps to; each mismatch adds a jump to miss[]. Clobbers
 * RAX and RSI. */
static void emit_mapped_check(struct jit_ctx *c, uint8_t **miss, unsigned *nmiss)
{
    struct jx_buf *b = &c->b;
    int32_t tlb = c->tlb_off;
    jx_mov_rr(b, JX_RSI, JX_RAX);
    jx_op(b, 8, 0xc1, 1, 5, jx_r(JX_RSI), false); /* shr rsi, 7: entry offset */
    jx_imm(b, 12 - 5, 1);
    jx_op(b, 0, 0x81, 1, 4, jx_r(JX_RSI), false);
    jx_imm(b, (SOFT_TLB_SIZE - 1) << 5, 4);
    jx_alu_mi(b, 8, 4, jx_r(JX_RAX), (uint64_t)-4096);
    jx_alu_rm(b, 8, 7, JX_RAX,
              jx_mx(JIT_CPU, JX_RSI, 0, tlb + (int32_t)offsetof(struct soft_tlb_entry, tag_exec)));
    miss[(*nmiss)++] = jx_jcc_fwd(b, JX_CC_NE);
    jx_alu_rm(b, 8, 0, JX_RAX,
              jx_mx(JIT_CPU, JX_RSI, 0, tlb + (int32_t)offsetof(struct soft_tlb_entry, addend)));
    jx_alu_rm(b, 8, 7, JX_RAX,
              jx_m(JX_RCX, (int32_t)offsetof(struct soft_block, host_page)));
    miss[(*nmiss)++] = jx_jcc_fwd(b, JX_CC_NE);
}

/* Jump into the compiled body of the block in RCX (which sets RIP), or to miss[] if it has
 * none. */
static void emit_enter_body(struct jit_ctx *c, uint8_t **miss, unsigned *nmiss)
{
    struct jx_buf *b = &c->b;
    jx_load_zx(b, 8, JX_RAX, jx_m(JX_RCX, (int32_t)offsetof(struct soft_block, jit_body)));
    jx_op(b, 8, 0x85, 1, JX_RAX, jx_r(JX_RAX), false); /* test rax, rax */
    miss[(*nmiss)++] = jx_jcc_fwd(b, JX_CC_E);
    jx_op(b, 0, 0xff, 1, 4, jx_r(JX_RAX), false); /* jmp rax */
}

/* The generic chain's way into a remembered successor on another page (RCX; its pc is RIP):
 * soft_block_mapped() inline and a jump into its compiled body, as a link path does; anything
 * unusual falls through to soft_chain_other_page(). Kernel code returns across pages all the
 * time, and the call cost 4% of a vCPU thread under guest disk I/O. Keeps RCX and RDX. */
static void emit_other_page_chain(struct jit_ctx *c)
{
    struct jx_buf *b = &c->b;
    uint8_t *miss[4];
    unsigned nmiss = 0;
#define BLK(field) jx_m(JX_RCX, (int32_t)offsetof(struct soft_block, field))
    if (!c->user) {
        jx_alu_mi(b, 8, 7, BLK(host_page2), 0);
        miss[nmiss++] = jx_jcc_fwd(b, JX_CC_NE);
        jx_load_zx(b, 8, JX_RAX, jx_m(JIT_CPU, JIT_CPU_OFF(rip)));
        emit_mapped_check(c, miss, &nmiss);
    }
    emit_enter_body(c, miss, &nmiss);
#undef BLK
    for (unsigned m = 0; m < nmiss; m++)
        jx_patch(miss[m], b->p);
}

/* The tail shared by the block's exits: the link paths of unlinked exits, the generic chain of
 * soft_chain() (RET, and exits whose successor cannot be linked), and the return to the loop. */
static void emit_block_tail(struct jit_ctx *c)
{
    struct jx_buf *b = &c->b;
    struct soft_block *blk = c->blk;
    for (unsigned k = 0; k < c->nlinks; k++) {
        jx_patch(c->link[k], b->p);
        if (c->link_gen[k])
            jx_patch(c->link_stale[k], b->p);
        jx_mov_rr(b, JX_RDI, JIT_CPU);
        jx_mov_ri(b, JX_RSI, (uint64_t)(uintptr_t)blk);
        jx_mov_ri(b, JX_RDX, k);
        jx_call_abs(b, (const void *)soft_jit_link_exit);
        jx_op(b, 8, 0x85, 1, JX_RAX, jx_r(JX_RAX), false); /* test rax, rax */
        add_fixup(c, c->to_chain, &c->nto_chain, jx_jcc_fwd(b, JX_CC_E));
        jx_op(b, 0, 0xff, 1, 4, jx_r(JX_RAX), false); /* jmp rax: the successor's body */
    }
    if (c->nto_chain) {
        for (unsigned k = 0; k < c->nto_chain; k++)
            jx_patch(c->to_chain[k], b->p);
        jx_load_zx(b, 8, JX_RAX, jx_m(JIT_CPU, JIT_CPU_OFF(rip)));
        jx_mov_ri(b, JX_RDX, (uint64_t)(uintptr_t)blk);
#define BLK(field) jx_m(JX_RDX, (int32_t)offsetof(struct soft_block, field))
        jx_alu_rm(b, 8, 7, JX_RAX, BLK(succ_pc[0]));
        uint8_t *not0 = jx_jcc_fwd(b, JX_CC_NE);
        jx_load_zx(b, 8, JX_RCX, BLK(succ[0]));
        uint8_t *have0 = jx_jmp_fwd(b);
        jx_patch(not0, b->p);
        jx_alu_rm(b, 8, 7, JX_RAX, BLK(succ_pc[1]));
        uint8_t *unknown = jx_jcc_fwd(b, JX_CC_NE);
        jx_load_zx(b, 8, JX_RCX, BLK(succ[1]));
        jx_patch(have0, b->p);
        /* RCX = the successor: still decoded from this address? */
        jx_alu_rm(b, 8, 7, JX_RAX, jx_m(JX_RCX, (int32_t)offsetof(struct soft_block, pc)));
        add_fixup(c, c->to_loop, &c->nto_loop, jx_jcc_fwd(b, JX_CC_NE));
        jx_alu_rm(b, 8, 6, JX_RAX, BLK(pc));
        jx_op(b, 8, 0xc1, 1, 5, jx_r(JX_RAX), false); /* shr rax, 12: another page? */
        jx_imm(b, 12, 1);
        uint8_t *other = jx_jcc_fwd(b, JX_CC_NE);
        jx_load_zx(b, 8, JX_RAX, jx_m(JX_RCX, (int32_t)offsetof(struct soft_block, end_rip)));
        jx_store(b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(rip)), JX_RAX);
        jx_load_zx(b, 8, JX_RSI, jx_m(JX_RCX, (int32_t)offsetof(struct soft_block, insns)));
        jx_mov_rr(b, JX_RDI, JIT_CPU);
        jx_byte(b, 0x5b); /* pop rbx */
        _Static_assert(offsetof(struct soft_insn, fn) == 0, "fn first");
        jx_op(b, 0, 0xff, 1, 4, jx_m(JX_RSI, 0), false); /* jmp [rsi]: the successor's entry */
        jx_patch(other, b->p);
        emit_other_page_chain(c);
        jx_mov_rr(b, JX_RDI, JIT_CPU);
        jx_mov_rr(b, JX_RSI, JX_RDX);
        jx_mov_rr(b, JX_RDX, JX_RCX);
        jx_byte(b, 0x5b);
        jx_jmp_abs(b, (const void *)soft_chain_other_page);
        /* Neither remembered successor (returns, jump tables): ask the cache. */
        jx_patch(unknown, b->p);
        jx_mov_rr(b, JX_RDI, JIT_CPU);
        jx_mov_ri(b, JX_RSI, (uint64_t)(uintptr_t)blk);
        jx_call_abs(b, (const void *)soft_jit_find_next);
        jx_op(b, 8, 0x85, 1, JX_RAX, jx_r(JX_RAX), false); /* test rax, rax */
        add_fixup(c, c->to_loop, &c->nto_loop, jx_jcc_fwd(b, JX_CC_E));
        jx_load_zx(b, 8, JX_RSI, jx_m(JX_RAX, (int32_t)offsetof(struct soft_block, insns)));
        jx_mov_rr(b, JX_RDI, JIT_CPU);
        jx_byte(b, 0x5b);
        jx_op(b, 0, 0xff, 1, 4, jx_m(JX_RSI, 0), false); /* jmp [rsi] */
#undef BLK
    }
    if (c->nto_loop) {
        for (unsigned k = 0; k < c->nto_loop; k++)
            jx_patch(c->to_loop[k], b->p);
        jx_mov_ri(b, JX_RAX, (uint64_t)(uintptr_t)blk);
        jx_store(b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(last_block)), JX_RAX);
        emit_pop_rbx_ret(b);
    }
}

/* Whether the soft TLB holds b's page(s) (b is mapped: soft_block_mapped()) as global
 * translations, which only flushes that drop those may change. */
static bool block_global(const struct soft_cpu *cpu, const struct soft_block *b)
{
    const uint8_t *attr = cpu->tlb_attr[cpu->cpl == 3];
    uint64_t lin = b->pc; /* 64-bit mode: no CS base */
    if (!(attr[(lin >> 12) & (SOFT_TLB_SIZE - 1)] & SOFT_TLB_GLOBAL))
        return false;
    lin = (lin | 0xfffull) + 1;
    return !b->host_page2 || (attr[(lin >> 12) & (SOFT_TLB_SIZE - 1)] & SOFT_TLB_GLOBAL);
}

const uint8_t *soft_jit_link_exit(struct soft_cpu *cpu, struct soft_block *b, unsigned k)
{
    struct soft_jit *j = soft_cache_jit(cpu);
    uint64_t pc = cpu->rip;
    struct soft_block *n = b->succ_pc[0] == pc ? b->succ[0]
                           : b->succ_pc[1] == pc ? b->succ[1] : NULL;
    if (!j || !n || n->pc != pc || !n->jit_body || n->key != b->key)
        return NULL; /* the generic chain (or the run loop) takes it from here */
    /* Another page may map other code by the next time (system mode): such an exit is linked
     * for the current generation only (emit_gen_check). vireo-user's code pages only change
     * with mmap/munmap, which drop every block. */
    bool other = ((n->pc ^ b->pc) >> 12) && cpu->system;
    if (other && !soft_block_mapped(cpu, n))
        return NULL;
    if (b->pc != ~0ull && b->jit_link[k]) {
        /* Both views of the buffer are one mapping apart, so the distance is the same. */
        uint8_t *at = b->jit_link[k];
        int32_t rel = (int32_t)((n->jit_body - j->exec) - (at + 4 - j->mem)), old;
        memcpy(&old, at, 4);
        if (old != rel) /* relinking the same successor for a new generation changes no code */
            memcpy(at, &rel, 4);
        if (b->jit_gen[k]) {
            const uint64_t *gen = &j->gen[block_global(cpu, n) ? JIT_GEN_GLOBAL : JIT_GEN_ALL];
            set_gen_guard(b, k, gen, *gen);
        } else {
            b->jit_link[k] = NULL; /* same page: for good */
        }
    }
    return n->jit_body;
}

struct soft_block *soft_jit_find_next(struct soft_cpu *cpu, struct soft_block *b)
{
    struct soft_block *n = soft_cache_find(cpu, cpu->rip);
    if (!n)
        return NULL;
    /* Remember it as b's most recent successor, as the run loop would. */
    b->succ_pc[1] = b->succ_pc[0];
    b->succ[1] = b->succ[0];
    b->succ_pc[0] = n->pc;
    b->succ[0] = n;
    cpu->rip = n->end_rip;
    return n;
}

void soft_jit_unlink_into(struct soft_jit *j, struct soft_block *b)
{
    /* Its body starts with a 5-byte NOP kept for this: it becomes a jump to the exit that
     * returns to the loop (RIP already holds the address the predecessor went to). */
    uint8_t *at = j->mem + (b->jit_body - j->exec);
    int32_t rel = (int32_t)((j->dead - j->exec) - (at + 5 - j->mem));
    at[0] = 0xe9;
    memcpy(at + 1, &rel, 4);
    b->jit_body = NULL;
}

/* --- the block ---------------------------------------------------------------------------- */

/* Interpreted instructions [k, m] of the block: called (returning through jit_resume at m + 1)
 * or, when they end the block, jumped to. */
static void emit_interpreted(struct jit_ctx *c, struct soft_insn *insns, unsigned k,
                             unsigned m, const soft_exec_fn *fns)
{
    struct jx_buf *b = &c->b;
    for (unsigned q = k; c->run_op && q <= m; q++) {
        jx_mov_ri(b, JX_RAX, (uint64_t)(uintptr_t)&c->run_op[SOFT_JIT_RUN_KEY(&insns[q])]);
        jx_alu_mi(b, 8, 0, jx_m(JX_RAX, 0), 1);
    }
    jx_mov_rr(b, JX_RDI, JIT_CPU);
    jx_mov_ri(b, JX_RSI, (uint64_t)(uintptr_t)&insns[k]);
    if (m + 1 == c->blk->n) {
        jx_byte(b, 0x5b);
        jx_jmp_abs(b, (const void *)fns[k]);
        c->ends = true;
        return;
    }
    jx_call_abs(b, (const void *)fns[k]);
    uint8_t *dropped = emit_if_block_dropped(c);
    uint8_t *cont = jx_jmp_fwd(b);
    /* The run rewrote this block: its store already pointed RIP after itself. */
    jx_patch(dropped, b->p);
    emit_pop_rbx_ret(b);
    jx_patch(cont, b->p);
}

/* Emit the block: translated instructions where ok[] says so, interpreted runs between. */
static bool emit_block(struct jit_ctx *c, struct soft_insn *insns, const bool *ok,
                       const soft_exec_fn *fns)
{
    unsigned n = c->blk->n;
    c->fv = JIT_FLAGS_NONE;
    c->last_cc = -1;
    c->nslow = c->nlinks = c->nto_loop = c->nto_chain = 0;
    c->ends = false;
    jx_byte(&c->b, 0x53); /* push rbx: also aligns the stack for calls */
    jx_mov_rr(&c->b, JIT_CPU, JX_RDI);
    /* The body, where linked predecessors jump in: a NOP to patch when the block is dropped,
     * and RIP = the fall-through address (the predecessor left its own target there). */
    c->body = c->b.p;
    static const uint8_t nop5[] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
    for (unsigned k = 0; k < sizeof(nop5); k++)
        jx_byte(&c->b, nop5[k]);
    jit_emit_set_rip(c, c->blk->end_rip);
    for (unsigned k = 0; k < n && !c->ends;) {
        if (ok[k]) {
            c->fv_in = c->fv;
            c->fv = JIT_FLAGS_NONE;
            if (!jit_translate(c, &insns[k]))
                return false; /* it said yes when asked: never expected */
            k++;
            if (k == n && !c->ends)
                jit_emit_exit(c, false, c->blk->end_rip); /* fell off the end */
            continue;
        }
        unsigned m = k;
        while (m + 1 < n && !ok[m + 1])
            m++;
        emit_interpreted(c, insns, k, m, fns);
        c->fv = JIT_FLAGS_NONE;
        c->last_cc = -1;
        k = m + 1;
    }
    emit_slow_paths(c);
    emit_block_tail(c);
    return !c->b.overflow;
}

bool soft_jit_compile(struct soft_cpu *cpu, struct soft_jit *j, struct soft_block *b)
{
    bool ok[SOFT_BLOCK_MAX];
    soft_exec_fn fns[SOFT_BLOCK_MAX];
    static __thread struct jit_ctx ctx;
    struct jit_ctx *c = &ctx;
    unsigned n = b->n, good = 0;
    if (n == 0 || n > SOFT_BLOCK_MAX || !soft_jit_has_room(j))
        return false;
    c->blk = b;
    c->gen = j->gen;
    c->user = !cpu->system;
    c->cpl = cpu->cpl;
    /* Blocks are keyed by CPL, so the TLB bank their accesses use is known now. */
    c->tlb_off = JIT_CPU_OFF(tlbs[cpu->cpl == 3]);
    c->run_op = j->profile ? j->stats.run_op : NULL;
    /* First learn which instructions translate: an interpreted run's extent must be known
     * before its call is emitted. */
    c->dry = true;
    for (unsigned k = 0; k < n; k++) {
        fns[k] = b->insns[k].fn;
        ok[k] = jit_translate(c, &b->insns[k]);
        good += ok[k];
        if (!ok[k])
            j->stats.by_op[b->insns[k].op & 0x3ff]++;
    }
    c->dry = false;
    j->stats.blocks++;
    j->stats.insns_compiled += good;
    j->stats.insns_interpreted += n - good;
    if (good == 0)
        return false; /* the interpreter alone is as fast */
    uint8_t *entry = j->p;
    c->b = (struct jx_buf){.p = j->p, .end = j->end};
    if (!emit_block(c, b->insns, ok, fns))
        return false;
    j->p = c->b.p;
    /* Interpreted runs in the middle return to the compiled code through jit_resume. */
    for (unsigned k = 1; k < n; k++) {
        if (ok[k] && !ok[k - 1])
            b->insns[k].fn = jit_resume;
    }
    b->insns[0].fn = (soft_exec_fn)(void *)(j->exec + (entry - j->mem));
    b->jit_body = j->exec + (c->body - j->mem);
    for (unsigned k = 0; k < c->nlinks; k++) {
        b->jit_link[k] = c->link[k];
        b->jit_gen[k] = c->link_gen[k];
    }
    if (j->perfmap >= 0)
        perfmap_add(j, j->exec + (entry - j->mem), (size_t)(j->p - entry), b);
    return true;
}

void soft_jit_print_stats(const struct soft_jit *j, FILE *out)
{
    /* For reading the generated code: objdump -D -b binary -mi386:x86-64 FILE (offsets are
     * those perf reports for the memfd). */
    const char *dump = getenv("VIREO_SOFT_JIT_DUMP");
    FILE *f = dump ? fopen(dump, "wb") : NULL;
    if (f) {
        fwrite(j->mem, 1, (size_t)(j->p - j->mem), f);
        fclose(f);
    }
    const struct soft_jit_stats *s = &j->stats;
    fprintf(out, "jit: %llu blocks, %llu instructions compiled, %llu interpreted\n",
            (unsigned long long)s->blocks, (unsigned long long)s->insns_compiled,
            (unsigned long long)s->insns_interpreted);
    uint64_t runs = 0;
    for (unsigned k = 0; k < 0x4000; k++)
        runs += s->run_op[k];
    for (unsigned op = 0; op < 0x400; op++) {
        if (s->by_op[op] * 200 >= s->insns_interpreted && s->by_op[op])
            fprintf(out, "jit:   interpreted op %03x: %llu in blocks\n", op,
                    (unsigned long long)s->by_op[op]);
    }
    if (runs)
        fprintf(out, "jit: %llu interpreted instructions executed\n", (unsigned long long)runs);
    for (unsigned k = 0; k < 0x4000; k++) {
        /* The digit is the ModRM.reg field or the decoder's operation selector. */
        if (s->run_op[k] * 200 >= runs && s->run_op[k])
            fprintf(out, "jit:   executed op %03x /%u%s: %llu\n", k >> 4, k & 7,
                    (k & 8) ? " lock" : "", (unsigned long long)s->run_op[k]);
    }
}
