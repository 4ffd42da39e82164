/* Specialized handlers for the instruction forms compiled code executes most (register ALU ops,
 * MOV/LEA, shifts by constants, PUSH/POP in long mode), and the flag-liveness pass that lets a
 * block skip flag bookkeeping nobody reads. The generic handlers stay correct for every form;
 * these only take over when the decoder proves the form matches (no LOCK, register or simple
 * memory operand, 32/64-bit size). */
#include "accel/soft/fast.h"

#include "accel/soft/exec.h"
#include "accel/soft/fast_fuse.h"
#include "accel/soft/fast_mem.h"

/* --- ALU reg/reg and reg/imm: dst = rm, src = reg or imm -------------------------------- */

#define ALU_BODY(name, expr, ccop, write)                                                      \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_rr64)                                                \
    {                                                                                          \
        uint64_t a = cpu->regs[i->rm], b = cpu->regs[i->reg], r = expr;                        \
        soft_cc(cpu, ccop, 8, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->rm] = r;                                                              \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_rr32)                                                \
    {                                                                                          \
        uint64_t a = (uint32_t)cpu->regs[i->rm], b = (uint32_t)cpu->regs[i->reg];              \
        uint64_t r = (uint32_t)(expr);                                                         \
        soft_cc(cpu, ccop, 4, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->rm] = r;                                                              \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_ri64)                                                \
    {                                                                                          \
        uint64_t a = cpu->regs[i->rm], b = i->imm, r = expr;                                   \
        soft_cc(cpu, ccop, 8, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->rm] = r;                                                              \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_ri32)                                                \
    {                                                                                          \
        uint64_t a = (uint32_t)cpu->regs[i->rm], b = (uint32_t)i->imm;                         \
        uint64_t r = (uint32_t)(expr);                                                         \
        soft_cc(cpu, ccop, 4, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->rm] = r;                                                              \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_rr64_nf)                                             \
    {                                                                                          \
        uint64_t a = cpu->regs[i->rm], b = cpu->regs[i->reg];                                  \
        if (write)                                                                             \
            cpu->regs[i->rm] = expr;                                                           \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_rr32_nf)                                             \
    {                                                                                          \
        uint64_t a = cpu->regs[i->rm], b = cpu->regs[i->reg];                                  \
        if (write)                                                                             \
            cpu->regs[i->rm] = (uint32_t)(expr);                                               \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_ri64_nf)                                             \
    {                                                                                          \
        uint64_t a = cpu->regs[i->rm], b = i->imm;                                             \
        if (write)                                                                             \
            cpu->regs[i->rm] = expr;                                                           \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##_ri32_nf)                                             \
    {                                                                                          \
        uint64_t a = cpu->regs[i->rm], b = i->imm;                                             \
        if (write)                                                                             \
            cpu->regs[i->rm] = (uint32_t)(expr);                                               \
    }

ALU_BODY(add, a + b, SOFT_CC_ADD, 1)
ALU_BODY(or, a | b, SOFT_CC_LOGIC, 1)
ALU_BODY(and, a & b, SOFT_CC_LOGIC, 1)
ALU_BODY(sub, a - b, SOFT_CC_SUB, 1)
ALU_BODY(xor, a ^ b, SOFT_CC_LOGIC, 1)
ALU_BODY(cmp, a - b, SOFT_CC_SUB, 0)
ALU_BODY(test, a & b, SOFT_CC_LOGIC, 0)

/* reg = reg op [mem]: dst = reg. */
#define ALU_MEM(name, expr, ccop, write)                                                       \
    FAST_MEM(fast_##name##_rm64, soft_alu_reg_rm)                                              \
    {                                                                                          \
        uint64_t b, a = cpu->regs[i->reg];                                                     \
        if (fast_ld(cpu, fast_ea(cpu, i), 8, &b))                                              \
            return 1;                                                                          \
        uint64_t r = expr;                                                                     \
        soft_cc(cpu, ccop, 8, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->reg] = r;                                                             \
        return 0;                                                                              \
    }                                                                                          \
    FAST_MEM(fast_##name##_rm32, soft_alu_reg_rm)                                              \
    {                                                                                          \
        uint64_t b, a = (uint32_t)cpu->regs[i->reg];                                           \
        if (fast_ld(cpu, fast_ea(cpu, i), 4, &b))                                              \
            return 1;                                                                          \
        uint64_t r = (uint32_t)(expr);                                                         \
        soft_cc(cpu, ccop, 4, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->reg] = r;                                                             \
        return 0;                                                                              \
    }                                                                                          \
    FAST_MEM(fast_##name##_rm64_nf, soft_alu_reg_rm)                                           \
    {                                                                                          \
        uint64_t b, a = cpu->regs[i->reg];                                                     \
        if (fast_ld(cpu, fast_ea(cpu, i), 8, &b))                                              \
            return 1;                                                                          \
        if (write)                                                                             \
            cpu->regs[i->reg] = expr;                                                          \
        return 0;                                                                              \
    }                                                                                          \
    FAST_MEM(fast_##name##_rm32_nf, soft_alu_reg_rm)                                           \
    {                                                                                          \
        uint64_t b, a = cpu->regs[i->reg];                                                     \
        if (fast_ld(cpu, fast_ea(cpu, i), 4, &b))                                              \
            return 1;                                                                          \
        if (write)                                                                             \
            cpu->regs[i->reg] = (uint32_t)(expr);                                              \
        return 0;                                                                              \
    }

ALU_MEM(add, a + b, SOFT_CC_ADD, 1)
ALU_MEM(or, a | b, SOFT_CC_LOGIC, 1)
ALU_MEM(and, a & b, SOFT_CC_LOGIC, 1)
ALU_MEM(sub, a - b, SOFT_CC_SUB, 1)
ALU_MEM(xor, a ^ b, SOFT_CC_LOGIC, 1)
ALU_MEM(cmp, a - b, SOFT_CC_SUB, 0)

/* INC/DEC of a register; the flag form keeps CF, the flagless one is used when flags are dead. */
#define INCDEC(name, delta, ccop)                                                              \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##64)                                                   \
    {                                                                                          \
        uint64_t cf = (uint64_t)soft_carry(cpu), a = cpu->regs[i->rm], r = a + (delta);        \
        soft_cc(cpu, ccop, 8, r, a, cf);                                                       \
        cpu->regs[i->rm] = r;                                                                  \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##32)                                                   \
    {                                                                                          \
        uint64_t cf = (uint64_t)soft_carry(cpu), a = (uint32_t)cpu->regs[i->rm];               \
        uint64_t r = (uint32_t)(a + (delta));                                                  \
        soft_cc(cpu, ccop, 4, r, a, cf);                                                       \
        cpu->regs[i->rm] = r;                                                                  \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##64_nf) { cpu->regs[i->rm] += (delta); }               \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##32_nf)                                                \
    {                                                                                          \
        cpu->regs[i->rm] = (uint32_t)(cpu->regs[i->rm] + (delta));                             \
    }

INCDEC(inc, 1, SOFT_CC_INC)
INCDEC(dec, (uint64_t)-1, SOFT_CC_DEC)

/* NOT of a register leaves the flags alone; NEG records them as 0 - a (what soft_neg_rm
 * does), and has a flagless twin for when they are dead. Hash rounds (SHA-2's Ch) use NOT. */
#define NOT_NEG(bits, type)                                                                    \
    SOFT_HANDLER_NOFAULT_STATIC(fast_not##bits)                                                \
    {                                                                                          \
        cpu->regs[i->rm] = (type)~cpu->regs[i->rm];                                            \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_neg##bits)                                                \
    {                                                                                          \
        uint64_t a = (type)cpu->regs[i->rm], r = (type)(0 - a);                                \
        soft_cc(cpu, SOFT_CC_SUB, bits / 8, r, 0, a);                                          \
        cpu->regs[i->rm] = r;                                                                  \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_neg##bits##_nf)                                           \
    {                                                                                          \
        cpu->regs[i->rm] = (type)(0 - cpu->regs[i->rm]);                                       \
    }

NOT_NEG(64, uint64_t)
NOT_NEG(32, uint32_t)

struct alu_mem_set {
    soft_exec_fn f[4]; /* rm64 rm32 rm64_nf rm32_nf */
};

#define ALU_MEM_SET(name)                                                                      \
    {{fast_##name##_rm64, fast_##name##_rm32, fast_##name##_rm64_nf, fast_##name##_rm32_nf}}

static const struct alu_mem_set alu_mem_sets[8] = {
    ALU_MEM_SET(add), ALU_MEM_SET(or), {{0}}, {{0}}, ALU_MEM_SET(and), ALU_MEM_SET(sub),
    ALU_MEM_SET(xor), ALU_MEM_SET(cmp),
};

struct alu_set {
    soft_exec_fn f[8]; /* rr64 rr32 ri64 ri32, then the flagless ones */
};

#define ALU_SET(name)                                                                          \
    {{fast_##name##_rr64, fast_##name##_rr32, fast_##name##_ri64, fast_##name##_ri32,          \
      fast_##name##_rr64_nf, fast_##name##_rr32_nf, fast_##name##_ri64_nf,                     \
      fast_##name##_ri32_nf}}

/* Indexed by the ALU op (0 ADD .. 7 CMP); ADC/SBB (2, 3) stay generic. Index 8 is TEST. */
static const struct alu_set alu_sets[9] = {
    ALU_SET(add), ALU_SET(or), {{0}}, {{0}}, ALU_SET(and), ALU_SET(sub), ALU_SET(xor),
    ALU_SET(cmp), ALU_SET(test),
};

/* --- moves -------------------------------------------------------------------------------- */

SOFT_HANDLER_NOFAULT_STATIC(fast_mov_rr64) { cpu->regs[i->rm] = cpu->regs[i->reg]; }
SOFT_HANDLER_NOFAULT_STATIC(fast_mov_rr32) { cpu->regs[i->rm] = (uint32_t)cpu->regs[i->reg]; }
SOFT_HANDLER_NOFAULT_STATIC(fast_mov_ri) { cpu->regs[i->reg] = i->imm; }

FAST_MEM(fast_load64, soft_mov_reg_rm)
{
    uint64_t v;
    if (fast_ld(cpu, fast_ea(cpu, i), 8, &v))
        return 1;
    cpu->regs[i->reg] = v;
    return 0;
}

FAST_MEM(fast_load32, soft_mov_reg_rm)
{
    uint64_t v;
    if (fast_ld(cpu, fast_ea(cpu, i), 4, &v))
        return 1;
    cpu->regs[i->reg] = v;
    return 0;
}

FAST_MEM(fast_store64, soft_mov_rm_reg)
{
    return fast_st(cpu, fast_ea(cpu, i), 8, cpu->regs[i->reg]);
}

FAST_MEM(fast_store32, soft_mov_rm_reg)
{
    return fast_st(cpu, fast_ea(cpu, i), 4, cpu->regs[i->reg]);
}

FAST_MEM(fast_movzx8_load, soft_movzx)
{
    uint64_t v;
    if (fast_ld(cpu, fast_ea(cpu, i), 1, &v))
        return 1;
    cpu->regs[i->reg] = v;
    return 0;
}

/* 8/16-bit loads and stores merge into the register (high-byte registers included). */
#define LOAD_STORE_N(sz)                                                                       \
    FAST_MEM(fast_load_n##sz, soft_mov_reg_rm)                                                 \
    {                                                                                          \
        uint64_t v;                                                                            \
        if (fast_ld(cpu, fast_ea(cpu, i), sz, &v))                                             \
            return 1;                                                                          \
        soft_set(cpu, i->reg, sz, v);                                                          \
        return 0;                                                                              \
    }                                                                                          \
    FAST_MEM(fast_store_n##sz, soft_mov_rm_reg)                                                \
    {                                                                                          \
        return fast_st(cpu, fast_ea(cpu, i), sz, soft_get(cpu, i->reg, sz));                   \
    }

LOAD_STORE_N(1)
LOAD_STORE_N(2)

/* MOVSX/MOVSXD from memory to a 32/64-bit register. */
#define MOVSX_LOAD(src, dst)                                                                   \
    FAST_MEM(fast_movsx##src##_##dst, soft_movsx)                                              \
    {                                                                                          \
        uint64_t v;                                                                            \
        if (fast_ld(cpu, fast_ea(cpu, i), src, &v))                                            \
            return 1;                                                                          \
        v = soft_sext(v, src);                                                                 \
        cpu->regs[i->reg] = dst == 4 ? (uint32_t)v : v;                                        \
        return 0;                                                                              \
    }

MOVSX_LOAD(1, 4)
MOVSX_LOAD(1, 8)
MOVSX_LOAD(2, 4)
MOVSX_LOAD(2, 8)
MOVSX_LOAD(4, 8)

SOFT_HANDLER_NOFAULT_STATIC(fast_movsx_r)
{
    soft_set(cpu, i->reg, i->osz, soft_sext(soft_get(cpu, i->rm, i->sub), i->sub));
}

/* MOVSX/MOVSXD between registers, 32/64-bit destination. */
#define MOVSX_REG(src, dst)                                                                    \
    SOFT_HANDLER_NOFAULT_STATIC(fast_movsx_r##src##_##dst)                                     \
    {                                                                                          \
        uint64_t v = soft_sext(soft_get(cpu, i->rm, src), src);                                \
        cpu->regs[i->reg] = dst == 4 ? (uint32_t)v : v;                                        \
    }

MOVSX_REG(1, 4)
MOVSX_REG(1, 8)
MOVSX_REG(2, 4)
MOVSX_REG(2, 8)
MOVSX_REG(4, 8)

/* CMOVcc at 32/64 bits. The 32-bit form writes (zero-extends) its destination either way; a
 * memory source is read whether or not the condition holds. */
SOFT_HANDLER_NOFAULT_STATIC(fast_cmov_rr64)
{
    if (soft_cond_masked(cpu, i->sub, i->imm2))
        cpu->regs[i->reg] = cpu->regs[i->rm];
}

SOFT_HANDLER_NOFAULT_STATIC(fast_cmov_rr32)
{
    uint64_t v = soft_cond_masked(cpu, i->sub, i->imm2) ? cpu->regs[i->rm] : cpu->regs[i->reg];
    cpu->regs[i->reg] = (uint32_t)v;
}

FAST_MEM(fast_cmov_rm64, soft_cmov)
{
    uint64_t v;
    if (fast_ld(cpu, fast_ea(cpu, i), 8, &v))
        return 1;
    if (soft_cond_masked(cpu, i->sub, i->imm2))
        cpu->regs[i->reg] = v;
    return 0;
}

FAST_MEM(fast_cmov_rm32, soft_cmov)
{
    uint64_t v;
    if (fast_ld(cpu, fast_ea(cpu, i), 4, &v))
        return 1;
    if (!soft_cond_masked(cpu, i->sub, i->imm2))
        v = cpu->regs[i->reg];
    cpu->regs[i->reg] = (uint32_t)v;
    return 0;
}

/* Shifts of 32/64-bit registers by CL. A zero count leaves the flags alone, so the flag forms
 * count as reading them; the flagless twins are used when they are dead. */
#define SHIFT_CL(name, bits, expr, ccop)                                                       \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##bits##_cl)                                        \
    {                                                                                          \
        unsigned c = (unsigned)cpu->regs[SOFT_RCX] & (bits - 1);                               \
        uint64_t a = bits == 64 ? cpu->regs[i->rm] : (uint32_t)cpu->regs[i->rm], r = a;        \
        if (c) {                                                                               \
            r = expr;                                                                          \
            if (bits == 32)                                                                    \
                r = (uint32_t)r;                                                               \
            soft_cc(cpu, ccop, bits / 8, r, a, c);                                             \
        }                                                                                      \
        cpu->regs[i->rm] = r;                                                                  \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##bits##_cl_nf)                                     \
    {                                                                                          \
        unsigned c = (unsigned)cpu->regs[SOFT_RCX] & (bits - 1);                               \
        uint64_t a = bits == 64 ? cpu->regs[i->rm] : (uint32_t)cpu->regs[i->rm];              \
        uint64_t r = expr;                                                                     \
        cpu->regs[i->rm] = bits == 32 ? (uint32_t)r : r;                                       \
    }

SHIFT_CL(shl, 64, a << c, SOFT_CC_SHL)
SHIFT_CL(shl, 32, a << c, SOFT_CC_SHL)
SHIFT_CL(shr, 64, a >> c, SOFT_CC_SHR)
SHIFT_CL(shr, 32, a >> c, SOFT_CC_SHR)
SHIFT_CL(sar, 64, (uint64_t)((int64_t)a >> c), SOFT_CC_SAR)
SHIFT_CL(sar, 32, (uint64_t)(uint32_t)((int32_t)a >> c), SOFT_CC_SAR)

SOFT_HANDLER_NOFAULT_STATIC(fast_movzx_r)
{
    soft_set(cpu, i->reg, i->osz, soft_get(cpu, i->rm, i->sub));
}

FAST_MEM(fast_movzx16_load, soft_movzx)
{
    uint64_t v;
    if (fast_ld(cpu, fast_ea(cpu, i), 2, &v))
        return 1;
    cpu->regs[i->reg] = v;
    return 0;
}

/* CMP/TEST with a memory operand, one handler per operand size so that the size is a
 * constant. */
#define CMP_MEM(sz)                                                                            \
    FAST_MEM(fast_cmp_mi##sz, soft_alu_rm_imm)                                                 \
    {                                                                                          \
        uint64_t a, b = i->imm & soft_mask(sz);                                                \
        if (fast_ld(cpu, fast_ea(cpu, i), sz, &a))                                             \
            return 1;                                                                          \
        soft_cc(cpu, SOFT_CC_SUB, sz, (a - b) & soft_mask(sz), a, b);                          \
        return 0;                                                                              \
    }                                                                                          \
    FAST_MEM(fast_cmp_mr##sz, soft_alu_rm_reg)                                                 \
    {                                                                                          \
        uint64_t a, b = soft_get(cpu, i->reg, sz);                                             \
        if (fast_ld(cpu, fast_ea(cpu, i), sz, &a))                                             \
            return 1;                                                                          \
        soft_cc(cpu, SOFT_CC_SUB, sz, (a - b) & soft_mask(sz), a, b);                          \
        return 0;                                                                              \
    }                                                                                          \
    FAST_MEM(fast_test_mi##sz, soft_test_rm_imm)                                               \
    {                                                                                          \
        uint64_t a;                                                                            \
        if (fast_ld(cpu, fast_ea(cpu, i), sz, &a))                                             \
            return 1;                                                                          \
        soft_cc(cpu, SOFT_CC_LOGIC, sz, a & i->imm & soft_mask(sz), 0, 0);                     \
        return 0;                                                                              \
    }

CMP_MEM(1)
CMP_MEM(2)
CMP_MEM(4)
CMP_MEM(8)

/* Indexed by soft_szidx(osz). */
static const soft_exec_fn cmp_mi_fns[4] = {fast_cmp_mi1, fast_cmp_mi2, fast_cmp_mi4,
                                            fast_cmp_mi8};
static const soft_exec_fn cmp_mr_fns[4] = {fast_cmp_mr1, fast_cmp_mr2, fast_cmp_mr4,
                                            fast_cmp_mr8};
static const soft_exec_fn test_mi_fns[4] = {fast_test_mi1, fast_test_mi2, fast_test_mi4,
                                             fast_test_mi8};

SOFT_HANDLER_NOFAULT_STATIC(fast_lea64)
{
    cpu->regs[i->reg] = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
}

SOFT_HANDLER_NOFAULT_STATIC(fast_lea32)
{
    cpu->regs[i->reg] = (uint32_t)(i->disp + cpu->regs[i->base] +
                                   (cpu->regs[i->index] << i->scale));
}

FAST_MEM(fast_push64, soft_push_reg)
{
    uint64_t sp = cpu->regs[SOFT_RSP] - 8;
    if (fast_st(cpu, sp, 8, cpu->regs[i->reg]))
        return 1;
    cpu->regs[SOFT_RSP] = sp;
    return 0;
}

FAST_MEM(fast_pop64, soft_pop_reg)
{
    uint64_t sp = cpu->regs[SOFT_RSP], v;
    if (fast_ld(cpu, sp, 8, &v))
        return 1;
    cpu->regs[SOFT_RSP] = sp + 8;
    cpu->regs[i->reg] = v;
    return 0;
}

FAST_MEM_BRANCH(fast_call_rel64, soft_call_rel)
{
    uint64_t sp = cpu->regs[SOFT_RSP] - 8;
    if (fast_st(cpu, sp, 8, i->next_rip))
        return 1;
    cpu->regs[SOFT_RSP] = sp;
    cpu->rip = i->imm;
    return 0;
}

FAST_MEM_BRANCH(fast_ret64, soft_ret)
{
    uint64_t sp = cpu->regs[SOFT_RSP], v;
    if (fast_ld(cpu, sp, 8, &v))
        return 1;
    cpu->rip = v;
    cpu->regs[SOFT_RSP] = sp + 8 + i->imm;
    return 0;
}

/* --- shifts and rotates of registers by a constant (count already masked, nonzero) -------- */

#define SHIFT_BODY(name, bits, expr, ccop)                                                     \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##bits)                                                 \
    {                                                                                          \
        uint64_t a = bits == 64 ? cpu->regs[i->rm] : (uint32_t)cpu->regs[i->rm];              \
        unsigned c = (unsigned)i->imm;                                                         \
        uint64_t r = expr;                                                                     \
        if (bits == 32)                                                                        \
            r = (uint32_t)r;                                                                   \
        soft_cc(cpu, ccop, bits / 8, r, a, c);                                                 \
        cpu->regs[i->rm] = r;                                                                  \
    }                                                                                          \
    SOFT_HANDLER_NOFAULT_STATIC(fast_##name##bits##_nf)                                            \
    {                                                                                          \
        uint64_t a = bits == 64 ? cpu->regs[i->rm] : (uint32_t)cpu->regs[i->rm];              \
        unsigned c = (unsigned)i->imm;                                                         \
        uint64_t r = expr;                                                                     \
        cpu->regs[i->rm] = bits == 32 ? (uint32_t)r : r;                                       \
    }

SHIFT_BODY(shl, 64, a << c, SOFT_CC_SHL)
SHIFT_BODY(shl, 32, a << c, SOFT_CC_SHL)
SHIFT_BODY(shr, 64, a >> c, SOFT_CC_SHR)
SHIFT_BODY(shr, 32, a >> c, SOFT_CC_SHR)
SHIFT_BODY(sar, 64, (uint64_t)((int64_t)a >> c), SOFT_CC_SAR)
SHIFT_BODY(sar, 32, (uint64_t)(uint32_t)((int32_t)a >> c), SOFT_CC_SAR)

/* Rotates only get a flagless fast form: with live flags the generic handler keeps the rest. */
SOFT_HANDLER_NOFAULT_STATIC(fast_rol64_nf)
{
    unsigned c = (unsigned)i->imm & 63;
    uint64_t a = cpu->regs[i->rm];
    cpu->regs[i->rm] = c ? (a << c) | (a >> (64 - c)) : a;
}

SOFT_HANDLER_NOFAULT_STATIC(fast_rol32_nf)
{
    unsigned c = (unsigned)i->imm & 31;
    uint32_t a = (uint32_t)cpu->regs[i->rm];
    cpu->regs[i->rm] = c ? (uint32_t)((a << c) | (a >> (32 - c))) : a;
}

SOFT_HANDLER_NOFAULT_STATIC(fast_ror64_nf)
{
    unsigned c = (unsigned)i->imm & 63;
    uint64_t a = cpu->regs[i->rm];
    cpu->regs[i->rm] = c ? (a >> c) | (a << (64 - c)) : a;
}

SOFT_HANDLER_NOFAULT_STATIC(fast_ror32_nf)
{
    unsigned c = (unsigned)i->imm & 31;
    uint32_t a = (uint32_t)cpu->regs[i->rm];
    cpu->regs[i->rm] = c ? (uint32_t)((a >> c) | (a << (32 - c))) : a;
}

/* IMUL when its flags are dead (the flag forms stay generic): the low half of the product is
 * the same for signed and unsigned operands. */
SOFT_HANDLER_NOFAULT_STATIC(fast_imul_rr64_nf)
{
    cpu->regs[i->reg] *= cpu->regs[i->rm];
}

SOFT_HANDLER_NOFAULT_STATIC(fast_imul_rr32_nf)
{
    cpu->regs[i->reg] = (uint32_t)(cpu->regs[i->reg] * cpu->regs[i->rm]);
}

SOFT_HANDLER_NOFAULT_STATIC(fast_imul_rri64_nf)
{
    cpu->regs[i->reg] = cpu->regs[i->rm] * i->imm;
}

SOFT_HANDLER_NOFAULT_STATIC(fast_imul_rri32_nf)
{
    cpu->regs[i->reg] = (uint32_t)(cpu->regs[i->rm] * i->imm);
}

/* --- selection ---------------------------------------------------------------------------- */

static int size_ok(const struct soft_insn *i)
{
    return (i->osz == 8 || i->osz == 4) && !i->lock;
}

void soft_specialize(const struct soft_cpu *cpu, struct soft_insn *i)
{
    soft_exec_fn fn = i->fn;
    /* Conditions are evaluated from a mask of the flag combinations that satisfy them. */
    if (fn == soft_jcc || fn == soft_cmov || fn == soft_setcc)
        i->imm2 = soft_cond_mask(i->sub);
    /* Memory forms: fast_ea() does not truncate to a 32-bit address size (0x67 prefix). */
    if (cpu->mode != 64 || i->lock || (i->mem && i->asz != 8))
        return;
    if (soft_specialize_alu(i))
        return;
    /* Any operand size. */
    if (fn == soft_mov_reg_rm && i->mem && i->osz < 4) {
        i->fn = i->osz == 1 ? fast_load_n1 : fast_load_n2;
    } else if (fn == soft_mov_rm_reg && i->mem && i->osz < 4) {
        i->fn = i->osz == 1 ? fast_store_n1 : fast_store_n2;
    } else if (fn == soft_movsx && !i->mem && i->osz >= 4 && i->sub < i->osz) {
        i->fn = i->osz == 4 ? (i->sub == 1 ? fast_movsx_r1_4 : fast_movsx_r2_4)
                : i->sub == 1 ? fast_movsx_r1_8 : i->sub == 2 ? fast_movsx_r2_8 : fast_movsx_r4_8;
    } else if (fn == soft_movsx && !i->mem) {
        i->fn = fast_movsx_r;
    } else if (fn == soft_movsx && i->osz == 8) {
        i->fn = i->sub == 1 ? fast_movsx1_8 : i->sub == 2 ? fast_movsx2_8 : fast_movsx4_8;
    } else if (fn == soft_movsx && i->osz == 4 && i->sub < 4) {
        i->fn = i->sub == 1 ? fast_movsx1_4 : fast_movsx2_4;
    } else if (fn == soft_movzx && !i->mem) {
        i->fn = fast_movzx_r;
    } else if (fn == soft_movzx && i->sub == 2 && i->osz != 2) {
        i->fn = fast_movzx16_load;
    } else if (fn == soft_alu_rm_imm && i->mem && i->sub == 7) {
        i->fn = cmp_mi_fns[soft_szidx(i->osz)];
    } else if (fn == soft_alu_rm_reg && i->mem && i->sub == 7) {
        i->fn = cmp_mr_fns[soft_szidx(i->osz)];
    } else if (fn == soft_test_rm_imm && i->mem) {
        i->fn = test_mi_fns[soft_szidx(i->osz)];
    }
    fn = i->fn;
    if (!size_ok(i))
        return;
    int w = i->osz == 8;
    if ((fn == soft_alu_rm_reg || fn == soft_alu_reg_rm) && !i->mem && i->sub != 2 &&
        i->sub != 3) {
        if (fn == soft_alu_reg_rm) { /* normalize to dst = rm, src = reg */
            uint8_t t = i->rm;
            i->rm = i->reg;
            i->reg = t;
            i->op ^= 2; /* and say so: the "r/m, reg" encoding of the same operation */
        }
        i->fn = alu_sets[i->sub].f[w ? 0 : 1];
    } else if (fn == soft_alu_reg_rm && i->sub != 2 && i->sub != 3) {
        i->fn = alu_mem_sets[i->sub].f[w ? 0 : 1];
    } else if (fn == soft_incdec_rm && !i->mem) {
        i->fn = i->sub ? (w ? fast_dec64 : fast_dec32) : (w ? fast_inc64 : fast_inc32);
    } else if (fn == soft_not_rm && !i->mem) {
        i->fn = w ? fast_not64 : fast_not32;
    } else if (fn == soft_neg_rm && !i->mem) {
        i->fn = w ? fast_neg64 : fast_neg32;
    } else if (fn == soft_alu_rm_imm && !i->mem && i->sub != 2 && i->sub != 3) {
        i->fn = alu_sets[i->sub].f[w ? 2 : 3];
    } else if (fn == soft_test_rm_reg && !i->mem) {
        i->fn = alu_sets[8].f[w ? 0 : 1];
    } else if (fn == soft_test_rm_imm && !i->mem) {
        i->fn = alu_sets[8].f[w ? 2 : 3];
    } else if (fn == soft_mov_rm_reg) {
        if (!i->mem)
            i->fn = w ? fast_mov_rr64 : fast_mov_rr32;
        else
            i->fn = w ? fast_store64 : fast_store32;
    } else if (fn == soft_mov_reg_rm) {
        if (!i->mem) {
            uint8_t t = i->rm;
            i->rm = i->reg;
            i->reg = t;
            i->op ^= 2; /* 8B -> 89 */
            i->fn = w ? fast_mov_rr64 : fast_mov_rr32;
        } else {
            i->fn = w ? fast_load64 : fast_load32;
        }
    } else if (fn == soft_mov_reg_imm) {
        if (!w)
            i->imm = (uint32_t)i->imm;
        i->fn = fast_mov_ri;
    } else if (fn == soft_lea) {
        if (i->asz == 8)
            i->fn = w ? fast_lea64 : fast_lea32;
    } else if (fn == soft_movzx && i->sub == 1 && i->mem) {
        i->fn = fast_movzx8_load;
    } else if (fn == soft_push_reg && w) {
        i->fn = fast_push64;
    } else if (fn == soft_pop_reg && w) {
        i->fn = fast_pop64;
    } else if (fn == soft_call_rel && w) {
        i->fn = fast_call_rel64;
    } else if (fn == soft_ret && w) {
        i->fn = fast_ret64;
    } else if (fn == soft_cmov) {
        if (!i->mem)
            i->fn = w ? fast_cmov_rr64 : fast_cmov_rr32;
        else
            i->fn = w ? fast_cmov_rm64 : fast_cmov_rm32;
    } else if (fn == soft_shift_rm_cl && !i->mem && i->sub >= 4) {
        switch (i->sub) {
        case 4: case 6: i->fn = w ? fast_shl64_cl : fast_shl32_cl; break;
        case 5: i->fn = w ? fast_shr64_cl : fast_shr32_cl; break;
        default: i->fn = w ? fast_sar64_cl : fast_sar32_cl; break;
        }
    } else if (fn == soft_shift_rm_imm && !i->mem) {
        unsigned c = (unsigned)i->imm & (w ? 63 : 31);
        if (c == 0)
            return;
        i->imm = c;
        switch (i->sub) {
        case 4: case 6: i->fn = w ? fast_shl64 : fast_shl32; break;
        case 5: i->fn = w ? fast_shr64 : fast_shr32; break;
        case 7: i->fn = w ? fast_sar64 : fast_sar32; break;
        default: break; /* rotates: see soft_flags_prune */
        }
    }
}

/* --- compare-and-branch fusion --------------------------------------------------------- */

/* The generators (FUSED_REG, FUSED_MEM) are in fast_fuse.h, shared with fast_alu.c. */
#define FUSE_LIST_REG(X)                                                                       \
    X(fast_cmp_rr64, SOFT_CC_SUB) X(fast_cmp_rr32, SOFT_CC_SUB) X(fast_cmp_ri64, SOFT_CC_SUB)  \
    X(fast_cmp_ri32, SOFT_CC_SUB) X(fast_sub_rr64, SOFT_CC_SUB) X(fast_sub_rr32, SOFT_CC_SUB)  \
    X(fast_sub_ri64, SOFT_CC_SUB) X(fast_sub_ri32, SOFT_CC_SUB)                                \
    X(fast_test_rr64, SOFT_CC_LOGIC) X(fast_test_rr32, SOFT_CC_LOGIC)                          \
    X(fast_test_ri64, SOFT_CC_LOGIC) X(fast_test_ri32, SOFT_CC_LOGIC)                          \
    X(fast_and_rr64, SOFT_CC_LOGIC) X(fast_and_rr32, SOFT_CC_LOGIC)                            \
    X(fast_and_ri64, SOFT_CC_LOGIC) X(fast_and_ri32, SOFT_CC_LOGIC)                            \
    X(fast_add_ri64, SOFT_CC_ADD) X(fast_add_ri32, SOFT_CC_ADD) X(fast_add_rr64, SOFT_CC_ADD)  \
    X(fast_add_rr32, SOFT_CC_ADD) X(fast_dec64, SOFT_CC_DEC) X(fast_dec32, SOFT_CC_DEC)        \
    X(fast_inc64, SOFT_CC_INC) X(fast_inc32, SOFT_CC_INC)

#define FUSE_LIST_MEM(X)                                                                       \
    X(fast_cmp_rm64, SOFT_CC_SUB, soft_alu_reg_rm)                                             \
    X(fast_cmp_rm32, SOFT_CC_SUB, soft_alu_reg_rm)                                             \
    X(fast_cmp_mi1, SOFT_CC_SUB, soft_alu_rm_imm)                                              \
    X(fast_cmp_mi2, SOFT_CC_SUB, soft_alu_rm_imm)                                              \
    X(fast_cmp_mi4, SOFT_CC_SUB, soft_alu_rm_imm)                                              \
    X(fast_cmp_mi8, SOFT_CC_SUB, soft_alu_rm_imm)                                              \
    X(fast_cmp_mr1, SOFT_CC_SUB, soft_alu_rm_reg)                                              \
    X(fast_cmp_mr2, SOFT_CC_SUB, soft_alu_rm_reg)                                              \
    X(fast_cmp_mr4, SOFT_CC_SUB, soft_alu_rm_reg)                                              \
    X(fast_cmp_mr8, SOFT_CC_SUB, soft_alu_rm_reg)                                              \
    X(fast_test_mi1, SOFT_CC_LOGIC, soft_test_rm_imm)                                          \
    X(fast_test_mi2, SOFT_CC_LOGIC, soft_test_rm_imm)                                          \
    X(fast_test_mi4, SOFT_CC_LOGIC, soft_test_rm_imm)                                          \
    X(fast_test_mi8, SOFT_CC_LOGIC, soft_test_rm_imm)

FUSE_LIST_REG(FUSED_REG)
FUSE_LIST_MEM(FUSED_MEM)

static const struct soft_fused fusions[] = {
#define FUSE_ENTRY(base, op) FUSED_ENTRY(base),
#define FUSE_ENTRY_MEM(base, op, generic) FUSED_ENTRY(base),
    FUSE_LIST_REG(FUSE_ENTRY) FUSE_LIST_MEM(FUSE_ENTRY_MEM)
#undef FUSE_ENTRY
#undef FUSE_ENTRY_MEM
};

/* --- register-move pairs ---------------------------------------------------------------- */

/* Compilers emit long runs of register moves feeding ALU ops (SHA-2 rounds, register
 * shuffles before calls). A register move followed by one of these forms runs as one handler,
 * saving a dispatch. The second instruction's entry stays in the block but is skipped. */
#define PAIR_FIRST(X, b) X(fast_mov_rr32, b) X(fast_mov_rr64, b)
#define PAIR_SECOND(X)                                                                         \
    PAIR_FIRST(X, fast_mov_rr32) PAIR_FIRST(X, fast_mov_rr64) PAIR_FIRST(X, fast_xor_rr32_nf)  \
    PAIR_FIRST(X, fast_and_rr32_nf) PAIR_FIRST(X, fast_or_rr32_nf)                             \
    PAIR_FIRST(X, fast_add_rr32_nf) PAIR_FIRST(X, fast_add_rr64_nf)                            \
    PAIR_FIRST(X, fast_xor_rr32) PAIR_FIRST(X, fast_add_rr32) PAIR_FIRST(X, fast_ror32_nf)     \
    PAIR_FIRST(X, fast_rol32_nf) PAIR_FIRST(X, fast_shr32_nf) PAIR_FIRST(X, fast_shl32_nf)     \
    PAIR_FIRST(X, fast_lea32) PAIR_FIRST(X, fast_lea64) PAIR_FIRST(X, fast_add_ri64_nf)

#define PAIR_FN(a, b)                                                                          \
    static void a##__##b(struct soft_cpu *cpu, const struct soft_insn *i)                      \
    {                                                                                          \
        a##_body(cpu, i);                                                                      \
        b##_body(cpu, i + 1);                                                                  \
        soft_next(cpu, i + 1);                                                                 \
    }

PAIR_SECOND(PAIR_FN)

static const struct {
    soft_exec_fn first, second, pair;
} pairs[] = {
#define PAIR_ENTRY(a, b) {a, b, a##__##b},
    PAIR_SECOND(PAIR_ENTRY)
#undef PAIR_ENTRY
};

/* --- what fast.c tells the block passes (fast_block.c) ------------------------------------ */

soft_exec_fn soft_fast_flagless_form(const struct soft_insn *i)
{
    int w = i->osz == 8;
    if (i->mem || (i->osz != 8 && i->osz != 4))
        return NULL;
    if (i->fn == soft_shift_rm_imm && (i->sub == 0 || i->sub == 1))
        return i->sub == 0 ? (w ? fast_rol64_nf : fast_rol32_nf)
                           : (w ? fast_ror64_nf : fast_ror32_nf);
    if (i->fn == soft_imul_reg_rm)
        return w ? fast_imul_rr64_nf : fast_imul_rr32_nf;
    if (i->fn == soft_imul_reg_rm_imm)
        return w ? fast_imul_rri64_nf : fast_imul_rri32_nf;
    return NULL;
}

void soft_fast_describe(const struct soft_fast_sink *out)
{
    for (unsigned k = 0; k < 9; k++) {
        if (k == 2 || k == 3)
            continue;
        for (unsigned v = 0; v < 8; v++)
            out->fact(alu_sets[k].f[v], SOFT_FX_WRITES, v < 4 ? alu_sets[k].f[v + 4] : NULL);
        if (k == 8)
            continue;
        for (unsigned v = 0; v < 4; v++)
            out->fact(alu_mem_sets[k].f[v], SOFT_FX_WRITES,
                      v < 2 ? alu_mem_sets[k].f[v + 2] : NULL);
    }
    static const soft_exec_fn writes[] = {
        soft_test_rm_reg, soft_test_rm_imm, soft_neg_rm, soft_imul_reg_rm, soft_imul_reg_rm_imm,
        soft_mul_rm, soft_imul1_rm,
    };
    static const soft_exec_fn neutral[] = {
        fast_inc64_nf, fast_inc32_nf, fast_dec64_nf, fast_dec32_nf, fast_load_n1, fast_load_n2,
        fast_store_n1, fast_store_n2, fast_movzx_r, fast_movzx16_load, fast_movsx_r,
        fast_movsx1_4, fast_movsx1_8, fast_movsx2_4, fast_movsx2_8, fast_movsx4_8,
        fast_movsx_r1_4, fast_movsx_r1_8, fast_movsx_r2_4, fast_movsx_r2_8, fast_movsx_r4_8,
        fast_mov_rr64, fast_mov_rr32, fast_mov_ri, fast_load64, fast_load32, fast_store64,
        fast_store32, fast_movzx8_load, fast_lea64, fast_lea32, fast_push64, fast_pop64,
        soft_mov_rm_reg, soft_mov_reg_rm, soft_mov_rm_imm, soft_mov_reg_imm, soft_lea,
        soft_movzx, soft_movsx, soft_push_reg, soft_pop_reg, soft_nop, soft_not_rm, soft_bswap,
        fast_rol64_nf, fast_rol32_nf, fast_ror64_nf, fast_ror32_nf, soft_push_imm, fast_not64,
        fast_not32, fast_neg64_nf, fast_neg32_nf,
        soft_xchg_rm_reg, soft_cbw, soft_cwd,
    };
    for (size_t k = 0; k < sizeof(writes) / sizeof(writes[0]); k++)
        out->fact(writes[k], SOFT_FX_WRITES, NULL);
    for (size_t k = 0; k < sizeof(neutral) / sizeof(neutral[0]); k++)
        out->fact(neutral[k], SOFT_FX_NEUTRAL, NULL);
    for (unsigned k = 0; k < 4; k++) {
        out->fact(cmp_mi_fns[k], SOFT_FX_WRITES, NULL);
        out->fact(cmp_mr_fns[k], SOFT_FX_WRITES, NULL);
        out->fact(test_mi_fns[k], SOFT_FX_WRITES, NULL);
    }
    out->fact(soft_alu_rm_reg, SOFT_FX_ALU, NULL);
    out->fact(soft_alu_reg_rm, SOFT_FX_ALU, NULL);
    out->fact(soft_alu_rm_imm, SOFT_FX_ALU, NULL);
    /* Shifts by a constant write all flags; by CL they may leave them (zero count), and
     * INC/DEC keep CF: those stay SOFT_FX_READS, but all have flagless twins. */
    static const soft_exec_fn twins[][2] = {
        {fast_shl64, fast_shl64_nf}, {fast_shl32, fast_shl32_nf}, {fast_shr64, fast_shr64_nf},
        {fast_shr32, fast_shr32_nf}, {fast_sar64, fast_sar64_nf}, {fast_sar32, fast_sar32_nf},
        {fast_inc64, fast_inc64_nf}, {fast_inc32, fast_inc32_nf}, {fast_dec64, fast_dec64_nf},
        {fast_dec32, fast_dec32_nf}, {fast_shl64_cl, fast_shl64_cl_nf},
        {fast_shl32_cl, fast_shl32_cl_nf}, {fast_shr64_cl, fast_shr64_cl_nf},
        {fast_shr32_cl, fast_shr32_cl_nf}, {fast_sar64_cl, fast_sar64_cl_nf},
        {fast_sar32_cl, fast_sar32_cl_nf},
    };
    for (size_t k = 0; k < sizeof(twins) / sizeof(twins[0]); k++)
        out->fact(twins[k][0], k < 6 ? SOFT_FX_WRITES : SOFT_FX_READS, twins[k][1]);
    out->fact(fast_neg64, SOFT_FX_WRITES, fast_neg64_nf);
    out->fact(fast_neg32, SOFT_FX_WRITES, fast_neg32_nf);
    for (size_t k = 0; k < sizeof(fusions) / sizeof(fusions[0]); k++)
        out->jcc(fusions[k].base, fusions[k].any, fusions[k].je, fusions[k].jne);
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++)
        out->pair(pairs[k].first == fast_mov_rr64, pairs[k].second, pairs[k].pair);
    static const soft_exec_fn dep32_seconds[SOFT_DEP32_KINDS] = {
        [SOFT_DEP32_XOR] = fast_xor_rr32_nf, [SOFT_DEP32_AND] = fast_and_rr32_nf,
        [SOFT_DEP32_OR] = fast_or_rr32_nf,   [SOFT_DEP32_ADD] = fast_add_rr32_nf,
        [SOFT_DEP32_SHR] = fast_shr32_nf,    [SOFT_DEP32_SHL] = fast_shl32_nf,
        [SOFT_DEP32_ROR] = fast_ror32_nf,    [SOFT_DEP32_ROL] = fast_rol32_nf,
    };
    for (unsigned k = 0; k < SOFT_DEP32_KINDS; k++)
        out->dep32(dep32_seconds[k], k);
    static const soft_exec_fn dep32_firsts[SOFT_DEP32_FIRST_KINDS] = {
        [SOFT_DEP32_FIRST_MOV] = fast_mov_rr32,    [SOFT_DEP32_FIRST_XOR] = fast_xor_rr32_nf,
        [SOFT_DEP32_FIRST_AND] = fast_and_rr32_nf, [SOFT_DEP32_FIRST_OR] = fast_or_rr32_nf,
        [SOFT_DEP32_FIRST_ADD] = fast_add_rr32_nf,
    };
    for (unsigned k = 0; k < SOFT_DEP32_FIRST_KINDS; k++)
        out->dep32_first(dep32_firsts[k], k);
    out->moves(fast_mov_rr32, fast_mov_rr64);
    out->stack(fast_push64, fast_pop64);
}
