/* Compare-and-branch fusion (fast.c, fast_alu.c): generators of the handlers that run a flag
 * producer and the Jcc closing its block as one. Internal to src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_FAST_FUSE_H
#define VIREO_ACCEL_SOFT_FAST_FUSE_H

#include "accel/soft/exec.h"

/* A flag-setting instruction directly followed by the block's closing Jcc runs as one handler:
 * the flags are still recorded (the next block may read them), the condition is evaluated
 * branch-free with the operation known, and the Jcc's own dispatch is skipped. Each producer
 * has three such handlers, by the Jcc's condition: JE and JNE (most loop and search branches)
 * read ZF alone, one test of the result; any other condition but P/NP indexes the mask that
 * fuse_branch() left in the Jcc's imm2 with the four-flag index (soft_cc_index). */
enum { FUSED_ANY, FUSED_E, FUSED_NE };

static inline __attribute__((always_inline)) int fused_take(const struct soft_cpu *cpu,
                                                            const struct soft_insn *j,
                                                            unsigned op, int kind)
{
    unsigned sz = cpu->cc_op & 3; /* a constant here: the producer has just stored it */
    if (kind != FUSED_ANY) {
        int zf = (cpu->cc_res & soft_cc_mask(sz)) == 0;
        return kind == FUSED_E ? zf : !zf;
    }
    return (j->imm2 >> soft_cc_index(cpu, op, sz)) & 1;
}

#define FUSED_REG_KIND(base, op, suffix, kind)                                                 \
    static void base##suffix(struct soft_cpu *cpu, const struct soft_insn *i)                  \
    {                                                                                          \
        base##_body(cpu, i);                                                                   \
        const struct soft_insn *j = i + 1;                                                     \
        if (fused_take(cpu, j, op, kind))                                                      \
            cpu->rip = j->imm;                                                                 \
        soft_chain(cpu, j + 1);                                                                \
    }

/* With a memory operand: on a soft-TLB miss the generic handler runs the compare and continues
 * with the Jcc's own entry, which stays in the block. */
#define FUSED_MEM_KIND(base, op, generic, suffix, kind)                                        \
    static void base##suffix(struct soft_cpu *cpu, const struct soft_insn *i)                  \
    {                                                                                          \
        cpu->cur = i;                                                                          \
        if (__builtin_expect(base##_body(cpu, i), 0)) {                                        \
            generic(cpu, i);                                                                   \
            return;                                                                            \
        }                                                                                      \
        const struct soft_insn *j = i + 1;                                                     \
        if (fused_take(cpu, j, op, kind))                                                      \
            cpu->rip = j->imm;                                                                 \
        soft_chain(cpu, j + 1);                                                                \
    }

#define FUSED_REG(base, op)                                                                    \
    FUSED_REG_KIND(base, op, _jcc, FUSED_ANY)                                                  \
    FUSED_REG_KIND(base, op, _je, FUSED_E) FUSED_REG_KIND(base, op, _jne, FUSED_NE)
#define FUSED_MEM(base, op, generic)                                                           \
    FUSED_MEM_KIND(base, op, generic, _jcc, FUSED_ANY)                                         \
    FUSED_MEM_KIND(base, op, generic, _je, FUSED_E)                                            \
    FUSED_MEM_KIND(base, op, generic, _jne, FUSED_NE)

/* A producer and its three fused handlers, as tables list them for soft_fast_sink.jcc. */
struct soft_fused {
    soft_exec_fn base, any, je, jne;
};
#define FUSED_ENTRY(base) {base, base##_jcc, base##_je, base##_jne}

#endif
