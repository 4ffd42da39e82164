/* ALU forms beside fast.c's 32/64-bit register and load forms: read-modify-write of memory
 * ([mem] op= reg or imm, INC/DEC [mem]) at every size, and 8/16-bit register forms. Kernels
 * update counters and flags in memory all the time, and byte/word compares are common in
 * string and compression code; the generic handlers pay a switch on the operation and on the
 * size for each of these. Flags are always recorded here (no flagless twins). */
#include "accel/soft/fast.h"

#include "accel/soft/fast_fuse.h"
#include "accel/soft/fast_mem.h"

/* [mem] = [mem] op src. The read goes through the write tag: a page the TLB lets us write is
 * readable, and a page holding decoded code has no write tag, so its stores still reach the
 * slow path that drops the code. */
#define RMW(name, sz, expr, ccop, kind, src, generic)                                          \
    FAST_MEM(fast_##name##_m##kind##sz, generic)                                               \
    {                                                                                          \
        void *p;                                                                               \
        if (!soft_tlb_try(cpu, fast_ea(cpu, i), sz, SOFT_ACC_WRITE, &p))                       \
            return 1;                                                                          \
        uint64_t a = soft_ldp(p, sz), b = (src) & soft_mask(sz);                               \
        uint64_t r = (expr) & soft_mask(sz);                                                   \
        soft_cc(cpu, ccop, sz, r, a, b);                                                       \
        soft_stp(p, sz, r);                                                                    \
        return 0;                                                                              \
    }

/* rm = rm op src for 8/16-bit registers (high-byte registers included). */
#define NARROW(name, sz, expr, ccop, write, kind, src)                                         \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_r##kind##sz)                                     \
    {                                                                                          \
        uint64_t a = soft_get(cpu, i->rm, sz), b = (src) & soft_mask(sz);                      \
        uint64_t r = (expr) & soft_mask(sz);                                                   \
        soft_cc(cpu, ccop, sz, r, a, b);                                                       \
        if (write)                                                                             \
            soft_set(cpu, i->rm, sz, r);                                                       \
    }

#define RMW_SIZES(name, expr, ccop)                                                            \
    RMW(name, 1, expr, ccop, r, soft_get(cpu, i->reg, 1), soft_alu_rm_reg)                     \
    RMW(name, 2, expr, ccop, r, soft_get(cpu, i->reg, 2), soft_alu_rm_reg)                     \
    RMW(name, 4, expr, ccop, r, cpu->regs[i->reg], soft_alu_rm_reg)                            \
    RMW(name, 8, expr, ccop, r, cpu->regs[i->reg], soft_alu_rm_reg)                            \
    RMW(name, 1, expr, ccop, i, i->imm, soft_alu_rm_imm)                                       \
    RMW(name, 2, expr, ccop, i, i->imm, soft_alu_rm_imm)                                       \
    RMW(name, 4, expr, ccop, i, i->imm, soft_alu_rm_imm)                                       \
    RMW(name, 8, expr, ccop, i, i->imm, soft_alu_rm_imm)

#define NARROW_SIZES(name, expr, ccop, write)                                                  \
    NARROW(name, 1, expr, ccop, write, r, soft_get(cpu, i->reg, 1))                            \
    NARROW(name, 2, expr, ccop, write, r, soft_get(cpu, i->reg, 2))                            \
    NARROW(name, 1, expr, ccop, write, i, i->imm)                                              \
    NARROW(name, 2, expr, ccop, write, i, i->imm)

#define ALU_OP(name, expr, ccop)                                                               \
    RMW_SIZES(name, expr, ccop)                                                                \
    NARROW_SIZES(name, expr, ccop, 1)

ALU_OP(add, a + b, SOFT_CC_ADD)
ALU_OP(or, a | b, SOFT_CC_LOGIC)
ALU_OP(and, a & b, SOFT_CC_LOGIC)
ALU_OP(sub, a - b, SOFT_CC_SUB)
ALU_OP(xor, a ^ b, SOFT_CC_LOGIC)
NARROW_SIZES(cmp, a - b, SOFT_CC_SUB, 0)
NARROW_SIZES(test, a & b, SOFT_CC_LOGIC, 0)

/* INC/DEC [mem]: CF is kept, so it is read first (cc_b holds it, as in the generic form). */
#define INCDEC_MEM(name, sz, delta, ccop)                                                      \
    FAST_MEM(fast_##name##_m##sz, soft_incdec_rm)                                              \
    {                                                                                          \
        void *p;                                                                               \
        if (!soft_tlb_try(cpu, fast_ea(cpu, i), sz, SOFT_ACC_WRITE, &p))                       \
            return 1;                                                                          \
        uint64_t cf = (uint64_t)soft_carry(cpu), a = soft_ldp(p, sz);                          \
        uint64_t r = (a + (delta)) & soft_mask(sz);                                            \
        soft_cc(cpu, ccop, sz, r, a, cf);                                                      \
        soft_stp(p, sz, r);                                                                    \
        return 0;                                                                              \
    }

#define INCDEC_SIZES(name, delta, ccop)                                                        \
    INCDEC_MEM(name, 1, delta, ccop) INCDEC_MEM(name, 2, delta, ccop)                          \
    INCDEC_MEM(name, 4, delta, ccop) INCDEC_MEM(name, 8, delta, ccop)

INCDEC_SIZES(inc, 1, SOFT_CC_INC)
INCDEC_SIZES(dec, (uint64_t)-1, SOFT_CC_DEC)

/* Byte/word compares and tests before a Jcc (string and compression loops: `test $7, %dl`,
 * `cmp %cx, %ax`), and INC/DEC of a counter in memory before one (`decl -0x24(%rbx); jne`),
 * also run fused with the Jcc closing their block. */
#define FUSE_LIST_NARROW(X)                                                                    \
    X(fast_cmp_rr1, SOFT_CC_SUB) X(fast_cmp_rr2, SOFT_CC_SUB) X(fast_cmp_ri1, SOFT_CC_SUB)     \
    X(fast_cmp_ri2, SOFT_CC_SUB) X(fast_test_rr1, SOFT_CC_LOGIC)                               \
    X(fast_test_rr2, SOFT_CC_LOGIC) X(fast_test_ri1, SOFT_CC_LOGIC)                            \
    X(fast_test_ri2, SOFT_CC_LOGIC)

#define FUSE_LIST_INCDEC_MEM(X)                                                                \
    X(fast_inc_m1, SOFT_CC_INC, soft_incdec_rm) X(fast_inc_m2, SOFT_CC_INC, soft_incdec_rm)    \
    X(fast_inc_m4, SOFT_CC_INC, soft_incdec_rm) X(fast_inc_m8, SOFT_CC_INC, soft_incdec_rm)    \
    X(fast_dec_m1, SOFT_CC_DEC, soft_incdec_rm) X(fast_dec_m2, SOFT_CC_DEC, soft_incdec_rm)    \
    X(fast_dec_m4, SOFT_CC_DEC, soft_incdec_rm) X(fast_dec_m8, SOFT_CC_DEC, soft_incdec_rm)

FUSE_LIST_NARROW(FUSED_REG)
FUSE_LIST_INCDEC_MEM(FUSED_MEM)

static const struct soft_fused alu_fusions[] = {
#define FUSE_ENTRY(base, op) FUSED_ENTRY(base),
#define FUSE_ENTRY_MEM(base, op, generic) FUSED_ENTRY(base),
    FUSE_LIST_NARROW(FUSE_ENTRY) FUSE_LIST_INCDEC_MEM(FUSE_ENTRY_MEM)
#undef FUSE_ENTRY
#undef FUSE_ENTRY_MEM
};

/* Indexed by the ALU operation (ModRM.reg: 0 ADD 1 OR 4 AND 5 SUB 6 XOR; ADC/SBB/CMP stay
 * elsewhere) and the size index. */
#define SIZES4(name, kind)                                                                     \
    {fast_##name##_m##kind##1, fast_##name##_m##kind##2, fast_##name##_m##kind##4,             \
     fast_##name##_m##kind##8}
static const soft_exec_fn rmw_reg[8][4] = {
    SIZES4(add, r), SIZES4(or, r), {0}, {0}, SIZES4(and, r), SIZES4(sub, r), SIZES4(xor, r),
};
static const soft_exec_fn rmw_imm[8][4] = {
    SIZES4(add, i), SIZES4(or, i), {0}, {0}, SIZES4(and, i), SIZES4(sub, i), SIZES4(xor, i),
};
static const soft_exec_fn incdec_mem[2][4] = {
    {fast_inc_m1, fast_inc_m2, fast_inc_m4, fast_inc_m8},
    {fast_dec_m1, fast_dec_m2, fast_dec_m4, fast_dec_m8},
};

/* 8/16-bit register forms by operation (8 = TEST) and size (0 = 8-bit, 1 = 16-bit). */
#define SIZES2(name, kind) {fast_##name##_r##kind##1, fast_##name##_r##kind##2}
static const soft_exec_fn narrow_reg[9][2] = {
    SIZES2(add, r), SIZES2(or, r), {0}, {0}, SIZES2(and, r), SIZES2(sub, r), SIZES2(xor, r),
    SIZES2(cmp, r), SIZES2(test, r),
};
static const soft_exec_fn narrow_imm[9][2] = {
    SIZES2(add, i), SIZES2(or, i), {0}, {0}, SIZES2(and, i), SIZES2(sub, i), SIZES2(xor, i),
    SIZES2(cmp, i), SIZES2(test, i),
};

int soft_specialize_alu(struct soft_insn *i)
{
    soft_exec_fn fn = i->fn, f = NULL;
    unsigned op = i->sub, sz = soft_szidx(i->osz);
    if (fn == soft_alu_rm_reg || fn == soft_alu_rm_imm) {
        const soft_exec_fn(*tab)[4] = fn == soft_alu_rm_reg ? rmw_reg : rmw_imm;
        if (i->mem && op < 8)
            f = tab[op][sz];
        else if (!i->mem && i->osz < 4)
            f = (fn == soft_alu_rm_reg ? narrow_reg : narrow_imm)[op][sz];
    } else if (fn == soft_alu_reg_rm && !i->mem && i->osz < 4) {
        f = narrow_reg[op][sz];
        if (f) { /* normalize to dst = rm, src = reg */
            uint8_t t = i->rm;
            i->rm = i->reg;
            i->reg = t;
            i->op ^= 2; /* the "r/m, reg" encoding of the same operation */
        }
    } else if ((fn == soft_test_rm_reg || fn == soft_test_rm_imm) && !i->mem && i->osz < 4) {
        f = (fn == soft_test_rm_reg ? narrow_reg : narrow_imm)[8][sz];
    } else if (fn == soft_incdec_rm && i->mem && i->sub < 2) {
        f = incdec_mem[i->sub][sz];
    }
    if (!f)
        return 0;
    i->fn = f;
    return 1;
}

void soft_fast_alu_describe(const struct soft_fast_sink *out)
{
    for (unsigned op = 0; op < 9; op++) {
        for (unsigned k = 0; k < 4; k++) {
            if (op < 8 && rmw_reg[op][k])
                out->fact(rmw_reg[op][k], SOFT_FX_WRITES, NULL);
            if (op < 8 && rmw_imm[op][k])
                out->fact(rmw_imm[op][k], SOFT_FX_WRITES, NULL);
            if (k < 2 && narrow_reg[op][k])
                out->fact(narrow_reg[op][k], SOFT_FX_WRITES, NULL);
            if (k < 2 && narrow_imm[op][k])
                out->fact(narrow_imm[op][k], SOFT_FX_WRITES, NULL);
        }
    }
    for (size_t k = 0; k < sizeof(alu_fusions) / sizeof(alu_fusions[0]); k++)
        out->jcc(alu_fusions[k].base, alu_fusions[k].any, alu_fusions[k].je, alu_fusions[k].jne);
}
