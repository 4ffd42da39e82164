/* Memory operands of the fast handlers (fast.c, fast_alu.c): 64-bit mode, 64-bit address
 * size, soft-TLB hits only; a miss falls back to the instruction's generic handler. Internal to
 * src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_FAST_MEM_H
#define VIREO_ACCEL_SOFT_FAST_MEM_H

#include "accel/soft/exec.h"

/* Effective address of a memory operand in 64-bit mode with a 64-bit address size, the only
 * memory forms the fast handlers take (so no truncation to the address size). */
static inline uint64_t fast_ea(const struct soft_cpu *cpu, const struct soft_insn *i)
{
    return i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale) +
           cpu->seg[i->seg].base;
}

/* Load/store through a soft-TLB hit; nonzero on a miss (or an access crossing a page). */
static inline int fast_ld(struct soft_cpu *cpu, uint64_t addr, unsigned size, uint64_t *v)
{
    void *p;
    if (!soft_tlb_try(cpu, addr, size, SOFT_ACC_READ, &p))
        return 1;
    *v = soft_ldp(p, size);
    return 0;
}

static inline int fast_st(struct soft_cpu *cpu, uint64_t addr, unsigned size, uint64_t v)
{
    void *p;
    if (!soft_tlb_try(cpu, addr, size, SOFT_ACC_WRITE, &p))
        return 1;
    soft_stp(p, size, v);
    return 0;
}

/* A handler with a memory operand. Its body returns nonzero, before changing any state, when
 * the access misses the soft TLB; the instruction then runs through its generic handler, whose
 * slow path fills the TLB, reaches devices or raises the fault. Leaving the miss as a tail call
 * keeps the fast handler free of calls, so it needs no stack frame or saved registers. */
#define FAST_MEM(name, generic) FAST_MEM_THEN(name, generic, soft_next(cpu, i))
/* The same for branches, which end their block (see soft_chain). */
#define FAST_MEM_BRANCH(name, generic) FAST_MEM_THEN(name, generic, soft_chain(cpu, i + 1))

#define FAST_MEM_THEN(name, generic, then)                                                     \
    static inline __attribute__((always_inline)) int name##_body(struct soft_cpu *cpu,         \
                                                                 const struct soft_insn *i);   \
    static void name(struct soft_cpu *cpu, const struct soft_insn *i)                          \
    {                                                                                          \
        cpu->cur = i; /* a host fault (vireo-user) is the guest's #PF at this instruction */   \
        if (__builtin_expect(name##_body(cpu, i), 0)) {                                        \
            generic(cpu, i);                                                                   \
            return;                                                                            \
        }                                                                                      \
        then;                                                                                  \
    }                                                                                          \
    static inline __attribute__((always_inline)) int name##_body(struct soft_cpu *cpu,         \
                                                                 const struct soft_insn *i)

#endif
