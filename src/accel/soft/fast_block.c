/* The passes over each decoded block (64-bit mode): dead-flag elimination, which switches
 * an instruction to its flagless twin when a later one in the block overwrites all flags before
 * anything reads them, then fusion: a flag producer + the closing Jcc, register-move pairs, and
 * runs of PUSH/POP. The handlers themselves live in fast.c and fast_alu.c, which describe them
 * once at startup into a small table keyed by handler address. */
#include "accel/soft/fast.h"

#include "accel/soft/exec.h"

#include <stdlib.h>

/* Set once at startup from soft_fast_describe(). */
static soft_exec_fn mov_rr32, mov_rr64, push64, pop64;

/* --- register-move pairs on the same register --------------------------------------------- */

/* A 32-bit register move whose destination the next instruction modifies at once (mov ecx,
 * esi; ror ecx, 6 -- the shape of SHA-2 and other hash rounds): the moved value goes straight
 * into the operation in a host register, with one store to the guest register instead of a
 * store and a reload through memory on the round's critical path. The same holds when the
 * first instruction is a flagless 32-bit register ALU op (and ecx, ebx; xor ecx, r15d): hash
 * rounds chain several on one register. Forms reading a second register are only fused when
 * that register is not the destination (it would have to be the first one's result). */

/* Rotate the low 32 bits of a left by c (0..32). */
static inline uint64_t rot32(uint64_t a, uint64_t c)
{
    c &= 31;
    return c ? (uint32_t)((a << c) | ((uint32_t)a >> (32 - c))) : (uint32_t)a;
}

/* The first instruction's result (i: dst = rm, src = reg), by SOFT_DEP32_FIRST_* kind. */
#define DEP32_FIRSTS(X, second, sexpr)                                                         \
    X(mov, (uint32_t)cpu->regs[i->reg], second, sexpr)                                         \
    X(xor, (uint32_t)(cpu->regs[i->rm] ^ cpu->regs[i->reg]), second, sexpr)                    \
    X(and, (uint32_t)(cpu->regs[i->rm] & cpu->regs[i->reg]), second, sexpr)                    \
    X(or, (uint32_t)(cpu->regs[i->rm] | cpu->regs[i->reg]), second, sexpr)                     \
    X(add, (uint32_t)(cpu->regs[i->rm] + cpu->regs[i->reg]), second, sexpr)

/* The second one's result from a, the first one's (j: dst = rm, the same register). */
#define DEP32_SECONDS(X)                                                                       \
    DEP32_FIRSTS(X, xor, a ^ cpu->regs[j->reg])                                                \
    DEP32_FIRSTS(X, and, a & cpu->regs[j->reg])                                                \
    DEP32_FIRSTS(X, or, a | cpu->regs[j->reg])                                                 \
    DEP32_FIRSTS(X, add, a + cpu->regs[j->reg])                                                \
    DEP32_FIRSTS(X, shr, a >> (j->imm & 31))                                                   \
    DEP32_FIRSTS(X, shl, a << (j->imm & 31))                                                   \
    DEP32_FIRSTS(X, ror, rot32(a, 32 - (j->imm & 31)))                                         \
    DEP32_FIRSTS(X, rol, rot32(a, j->imm & 31))

#define DEP32(first, fexpr, second, sexpr)                                                     \
    static void dep32_##first##_##second(struct soft_cpu *cpu, const struct soft_insn *i)      \
    {                                                                                          \
        const struct soft_insn *j = i + 1;                                                     \
        uint64_t a = fexpr;                                                                    \
        cpu->regs[i->rm] = (uint32_t)(sexpr);                                                  \
        soft_next(cpu, j);                                                                     \
    }

DEP32_SECONDS(DEP32)

/* By the second's SOFT_DEP32_* kind: whether it reads a second register, and the fused
 * handlers by the first's SOFT_DEP32_FIRST_* kind. */
#define DEP32_ROW(second)                                                                      \
    {dep32_mov_##second, dep32_xor_##second, dep32_and_##second, dep32_or_##second,            \
     dep32_add_##second}
static const struct {
    int rr;
    soft_exec_fn fn[SOFT_DEP32_FIRST_KINDS];
} dep32s[SOFT_DEP32_KINDS] = {
    [SOFT_DEP32_XOR] = {1, DEP32_ROW(xor)}, [SOFT_DEP32_AND] = {1, DEP32_ROW(and)},
    [SOFT_DEP32_OR] = {1, DEP32_ROW(or)},   [SOFT_DEP32_ADD] = {1, DEP32_ROW(add)},
    [SOFT_DEP32_SHR] = {0, DEP32_ROW(shr)}, [SOFT_DEP32_SHL] = {0, DEP32_ROW(shl)},
    [SOFT_DEP32_ROR] = {0, DEP32_ROW(ror)}, [SOFT_DEP32_ROL] = {0, DEP32_ROW(rol)},
};

/* --- runs of PUSH / POP ------------------------------------------------------------------ */

/* Function prologues push several registers in a row and epilogues pop them: a run of n (in
 * imm) 64-bit PUSHes or POPs checks the soft TLB once for all its slots when they share a page,
 * then skips the run's other entries (which stay ordinary PUSH/POP entries, so a miss simply
 * runs the first one alone). Runs never include RSP itself. */
static void push_run(struct soft_cpu *cpu, const struct soft_insn *i)
{
    unsigned n = (unsigned)i->imm;
    uint64_t sp = cpu->regs[SOFT_RSP] - 8 * n;
    cpu->cur = i;
    uint8_t *p = soft_tlb_hit(cpu, sp, 8 * n, SOFT_ACC_WRITE);
    if (__builtin_expect(p == NULL, 0)) {
        push64(cpu, i);
        return;
    }
    for (unsigned k = 0; k < n; k++)
        soft_stp(p + 8 * (n - 1 - k), 8, cpu->regs[i[k].reg]);
    cpu->regs[SOFT_RSP] = sp;
    soft_next(cpu, i + n - 1);
}

static void pop_run(struct soft_cpu *cpu, const struct soft_insn *i)
{
    unsigned n = (unsigned)i->imm;
    uint64_t sp = cpu->regs[SOFT_RSP];
    cpu->cur = i;
    const uint8_t *p = soft_tlb_hit(cpu, sp, 8 * n, SOFT_ACC_READ);
    if (__builtin_expect(p == NULL, 0)) {
        pop64(cpu, i);
        return;
    }
    for (unsigned k = 0; k < n; k++)
        cpu->regs[i[k].reg] = soft_ldp(p + 8 * k, 8);
    cpu->regs[SOFT_RSP] = sp + 8 * n;
    soft_next(cpu, i + n - 1);
}


/* Facts about one handler, looked up by its address in a small open-addressing table filled
 * once at startup: the passes run for every decoded block, and Linux decodes a lot while it
 * boots (code pages are rewritten, user blocks dropped on every CR3 write). */
struct fn_info {
    soft_exec_fn fn;
    soft_exec_fn flagless; /* twin without flag bookkeeping, or NULL */
    soft_exec_fn jcc[3];   /* this followed by the block's Jcc, fused: any, JE, JNE; or NULL */
    soft_exec_fn pair[2];  /* fast_mov_rr32 / fast_mov_rr64 followed by this, fused; or NULL */
    uint8_t dep32;       /* 1 + SOFT_DEP32_* kind as the second of a same-register pair, or 0 */
    uint8_t dep32_first; /* 1 + SOFT_DEP32_FIRST_* kind as the first of one, or 0 */
    uint8_t fx;
};

#define INFO_BITS 10
#define INFO_MASK ((1u << INFO_BITS) - 1)
static struct fn_info infos[1u << INFO_BITS]; /* written only before main() */

static struct fn_info *info_find(soft_exec_fn fn, int create)
{
    uintptr_t p = (uintptr_t)fn;
    for (unsigned s = (unsigned)((p >> 4) ^ (p >> (4 + INFO_BITS))) & INFO_MASK;;
         s = (s + 1) & INFO_MASK) {
        if (infos[s].fn == fn)
            return &infos[s];
        if (infos[s].fn == NULL) {
            if (!create)
                return NULL;
            /* Lookups stay short while the table is at most half full (and a full one would
             * never find an empty slot): grow INFO_BITS when handlers outgrow it. */
            static unsigned used;
            if (++used > (1u << INFO_BITS) / 2)
                abort();
            infos[s].fn = fn;
            infos[s].fx = SOFT_FX_READS;
            return &infos[s];
        }
    }
}

static void info_fact(soft_exec_fn fn, int fx, soft_exec_fn flagless_fn)
{
    struct fn_info *f = info_find(fn, 1);
    f->fx = (uint8_t)fx;
    if (flagless_fn)
        f->flagless = flagless_fn;
}

static void info_jcc(soft_exec_fn base, soft_exec_fn any, soft_exec_fn je, soft_exec_fn jne)
{
    struct fn_info *f = info_find(base, 1);
    f->jcc[0] = any;
    f->jcc[1] = je;
    f->jcc[2] = jne;
}

static void info_pair(int first_is_64, soft_exec_fn second, soft_exec_fn pair)
{
    info_find(second, 1)->pair[first_is_64] = pair;
}

static void info_dep32(soft_exec_fn second, unsigned kind)
{
    info_find(second, 1)->dep32 = (uint8_t)(1 + kind);
}

static void info_dep32_first(soft_exec_fn first, unsigned kind)
{
    info_find(first, 1)->dep32_first = (uint8_t)(1 + kind);
}

static void info_moves(soft_exec_fn m32, soft_exec_fn m64)
{
    mov_rr32 = m32;
    mov_rr64 = m64;
}

static void info_stack(soft_exec_fn push, soft_exec_fn pop)
{
    push64 = push;
    pop64 = pop;
}

/* The fused handler of fn followed by a Jcc with condition cc (not P/NP), or NULL. */
static soft_exec_fn fused_jcc(soft_exec_fn fn, unsigned cc)
{
    const struct fn_info *f = info_find(fn, 0);
    return f ? f->jcc[cc == 4 ? 1 : cc == 5 ? 2 : 0] : NULL; /* 4 = E, 5 = NE */
}

static int flag_effect(const struct soft_insn *i)
{
    const struct fn_info *f = info_find(i->fn, 0);
    if (!f)
        return SOFT_FX_READS;
    if (f->fx == SOFT_FX_ALU)
        return i->sub != 2 && i->sub != 3 ? SOFT_FX_WRITES : SOFT_FX_READS;
    return f->fx;
}

/* Flagless twin of a flag-writing fast handler, or NULL. */
static soft_exec_fn flagless(soft_exec_fn fn)
{
    const struct fn_info *f = info_find(fn, 0);
    return f ? f->flagless : NULL;
}

/* The same-register fusion of insns[k] and insns[k + 1] (see DEP32), or NULL. */
static soft_exec_fn dep32_pair(const struct soft_insn *insns, unsigned k)
{
    const struct fn_info *f = info_find(insns[k].fn, 0);
    if (!f || !f->dep32_first || insns[k + 1].rm != insns[k].rm)
        return NULL;
    const struct fn_info *g = info_find(insns[k + 1].fn, 0);
    if (!g || !g->dep32)
        return NULL;
    if (dep32s[g->dep32 - 1].rr && insns[k + 1].reg == insns[k].rm)
        return NULL;
    return dep32s[g->dep32 - 1].fn[f->dep32_first - 1];
}

static void fuse_pairs(struct soft_insn *insns, unsigned n)
{
    for (unsigned k = 0; k + 1 < n; k++) {
        soft_exec_fn a = insns[k].fn, p = dep32_pair(insns, k);
        if (!p && (a == mov_rr32 || a == mov_rr64)) {
            const struct fn_info *f = info_find(insns[k + 1].fn, 0);
            p = f ? f->pair[a == mov_rr64] : NULL;
        }
        if (p) {
            insns[k].fn = p;
            k++; /* the second one is consumed */
        }
    }
}

static void fuse_branch(struct soft_insn *insns, unsigned n)
{
    if (n < 2 || insns[n - 1].fn != soft_jcc || (insns[n - 1].sub >> 1) == 5)
        return; /* JP/JNP need PF, which the flag index leaves out */
    soft_exec_fn f = fused_jcc(insns[n - 2].fn, insns[n - 1].sub);
    if (f) {
        insns[n - 2].fn = f;
        insns[n - 1].imm2 = soft_cond_mask(insns[n - 1].sub);
    }
}

static void fuse_stack_runs(struct soft_insn *insns, unsigned n)
{
    for (unsigned k = 0; k < n;) {
        soft_exec_fn fn = insns[k].fn;
        unsigned len = 0;
        if (fn == push64 || fn == pop64) {
            while (k + len < n && len < 8 && insns[k + len].fn == fn &&
                   insns[k + len].reg != SOFT_RSP)
                len++;
        }
        if (len >= 2) {
            insns[k].fn = fn == push64 ? push_run : pop_run;
            insns[k].imm = len;
            k += len;
        } else {
            k++;
        }
    }
}

__attribute__((constructor)) static void fast_block_init(void)
{
    static const struct soft_fast_sink sink = {
        .fact = info_fact, .jcc = info_jcc, .pair = info_pair, .dep32 = info_dep32,
        .dep32_first = info_dep32_first,
        .moves = info_moves, .stack = info_stack,
    };
    soft_fast_describe(&sink);
    soft_fast_alu_describe(&sink);
}

void soft_flags_prune(const struct soft_cpu *cpu, struct soft_insn *insns, unsigned n)
{
    /* Walk backwards: flags are live at the end of a block (the next block may read them). */
    int live = 1;
    for (unsigned k = 0; k < n; k++)
        insns[k].flags_live = 1;
    if (cpu->mode != 64)
        return;
    for (unsigned k = n; k-- > 0;) {
        struct soft_insn *i = &insns[k];
        i->flags_live = (uint8_t)live;
        int fx = flag_effect(i);
        if (!live) {
            soft_exec_fn nf = flagless(i->fn);
            if (nf) {
                i->fn = nf;
                fx = SOFT_FX_NEUTRAL;
            } else if ((nf = soft_fast_flagless_form(i)) != NULL) {
                i->fn = nf; /* generic rotates and IMUL by register forms */
                fx = SOFT_FX_NEUTRAL;
            }
        }
        if (fx == SOFT_FX_WRITES)
            live = 0;
        else if (fx == SOFT_FX_READS)
            live = 1;
    }
}

void soft_block_fuse(const struct soft_cpu *cpu, struct soft_insn *insns, unsigned n)
{
    if (cpu->mode != 64)
        return;
    fuse_branch(insns, n);
    fuse_pairs(insns, n);
    fuse_stack_runs(insns, n);
}
