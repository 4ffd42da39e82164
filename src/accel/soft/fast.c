/* Specialized handlers for the instruction forms compiled code executes most (register ALU ops,
 * MOV/LEA, shifts by constants, PUSH/POP in long mode), and the flag-liveness pass that lets a
 * block skip flag bookkeeping nobody reads. The generic handlers stay correct for every form;
 * these only take over when the decoder proves the form matches (no LOCK, register or simple
 * memory operand, 32/64-bit size). */
#include "accel/soft/fast.h"

#include "accel/soft/exec.h"

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
    SOFT_HANDLER_STATIC(fast_##name##_rm64)                                                    \
    {                                                                                          \
        uint64_t b = soft_ld(cpu, soft_ea(cpu, i), 8), a = cpu->regs[i->reg], r = expr;        \
        soft_cc(cpu, ccop, 8, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->reg] = r;                                                             \
    }                                                                                          \
    SOFT_HANDLER_STATIC(fast_##name##_rm32)                                                    \
    {                                                                                          \
        uint64_t b = soft_ld(cpu, soft_ea(cpu, i), 4), a = (uint32_t)cpu->regs[i->reg];        \
        uint64_t r = (uint32_t)(expr);                                                         \
        soft_cc(cpu, ccop, 4, r, a, b);                                                        \
        if (write)                                                                             \
            cpu->regs[i->reg] = r;                                                             \
    }                                                                                          \
    SOFT_HANDLER_STATIC(fast_##name##_rm64_nf)                                                 \
    {                                                                                          \
        uint64_t b = soft_ld(cpu, soft_ea(cpu, i), 8), a = cpu->regs[i->reg];                  \
        if (write)                                                                             \
            cpu->regs[i->reg] = expr;                                                          \
    }                                                                                          \
    SOFT_HANDLER_STATIC(fast_##name##_rm32_nf)                                                 \
    {                                                                                          \
        uint64_t b = soft_ld(cpu, soft_ea(cpu, i), 4), a = cpu->regs[i->reg];                  \
        if (write)                                                                             \
            cpu->regs[i->reg] = (uint32_t)(expr);                                              \
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

SOFT_HANDLER_STATIC(fast_load64)
{
    cpu->regs[i->reg] = soft_ld(cpu, soft_ea(cpu, i), 8);
}

SOFT_HANDLER_STATIC(fast_load32)
{
    cpu->regs[i->reg] = soft_ld(cpu, soft_ea(cpu, i), 4);
}

SOFT_HANDLER_STATIC(fast_store64)
{
    soft_st(cpu, soft_ea(cpu, i), 8, cpu->regs[i->reg]);
}

SOFT_HANDLER_STATIC(fast_store32)
{
    soft_st(cpu, soft_ea(cpu, i), 4, cpu->regs[i->reg]);
}

SOFT_HANDLER_STATIC(fast_movzx8_load)
{
    cpu->regs[i->reg] = soft_ld(cpu, soft_ea(cpu, i), 1);
}

/* Any-size forms that still skip the generic operand decoding. */
SOFT_HANDLER_STATIC(fast_load_n)
{
    soft_set(cpu, i->reg, i->osz, soft_ld(cpu, soft_ea(cpu, i), i->osz));
}

SOFT_HANDLER_STATIC(fast_store_n)
{
    soft_st(cpu, soft_ea(cpu, i), i->osz, soft_get(cpu, i->reg, i->osz));
}

SOFT_HANDLER_NOFAULT_STATIC(fast_movzx_r)
{
    soft_set(cpu, i->reg, i->osz, soft_get(cpu, i->rm, i->sub));
}

SOFT_HANDLER_STATIC(fast_movzx16_load)
{
    cpu->regs[i->reg] = soft_ld(cpu, soft_ea(cpu, i), 2);
}

SOFT_HANDLER_STATIC(fast_cmp_mi)
{
    unsigned osz = i->osz;
    uint64_t a = soft_ld(cpu, soft_ea(cpu, i), osz), b = i->imm & soft_mask(osz);
    soft_cc(cpu, SOFT_CC_SUB, osz, (a - b) & soft_mask(osz), a, b);
}

SOFT_HANDLER_STATIC(fast_cmp_mr)
{
    unsigned osz = i->osz;
    uint64_t a = soft_ld(cpu, soft_ea(cpu, i), osz), b = soft_get(cpu, i->reg, osz);
    soft_cc(cpu, SOFT_CC_SUB, osz, (a - b) & soft_mask(osz), a, b);
}

SOFT_HANDLER_STATIC(fast_test_mi)
{
    unsigned osz = i->osz;
    soft_cc(cpu, SOFT_CC_LOGIC, osz, soft_ld(cpu, soft_ea(cpu, i), osz) & i->imm, 0, 0);
}

SOFT_HANDLER_NOFAULT_STATIC(fast_lea64)
{
    cpu->regs[i->reg] = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
}

SOFT_HANDLER_NOFAULT_STATIC(fast_lea32)
{
    cpu->regs[i->reg] = (uint32_t)(i->disp + cpu->regs[i->base] +
                                   (cpu->regs[i->index] << i->scale));
}

SOFT_HANDLER_STATIC(fast_push64)
{
    uint64_t sp = cpu->regs[SOFT_RSP] - 8;
    soft_st(cpu, sp, 8, cpu->regs[i->reg]);
    cpu->regs[SOFT_RSP] = sp;
}

SOFT_HANDLER_STATIC(fast_pop64)
{
    uint64_t sp = cpu->regs[SOFT_RSP];
    uint64_t v = soft_ld(cpu, sp, 8);
    cpu->regs[SOFT_RSP] = sp + 8;
    cpu->regs[i->reg] = v;
}

SOFT_HANDLER_STATIC(fast_call_rel64)
{
    uint64_t sp = cpu->regs[SOFT_RSP] - 8;
    soft_st(cpu, sp, 8, i->next_rip);
    cpu->regs[SOFT_RSP] = sp;
    cpu->rip = i->imm;
}

SOFT_HANDLER_STATIC(fast_ret64)
{
    uint64_t sp = cpu->regs[SOFT_RSP];
    cpu->rip = soft_ld(cpu, sp, 8);
    cpu->regs[SOFT_RSP] = sp + 8 + i->imm;
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

/* --- selection ---------------------------------------------------------------------------- */

static int size_ok(const struct soft_insn *i)
{
    return (i->osz == 8 || i->osz == 4) && !i->lock;
}

void soft_specialize(const struct soft_cpu *cpu, struct soft_insn *i)
{
    soft_exec_fn fn = i->fn;
    if (cpu->mode != 64 || i->lock)
        return;
    /* Any operand size. */
    if (fn == soft_mov_reg_rm && i->mem && i->osz < 4) {
        i->fn = fast_load_n;
    } else if (fn == soft_mov_rm_reg && i->mem && i->osz < 4) {
        i->fn = fast_store_n;
    } else if (fn == soft_movzx && !i->mem) {
        i->fn = fast_movzx_r;
    } else if (fn == soft_movzx && i->sub == 2 && i->osz != 2) {
        i->fn = fast_movzx16_load;
    } else if (fn == soft_alu_rm_imm && i->mem && i->sub == 7) {
        i->fn = fast_cmp_mi;
    } else if (fn == soft_alu_rm_reg && i->mem && i->sub == 7) {
        i->fn = fast_cmp_mr;
    } else if (fn == soft_test_rm_imm && i->mem) {
        i->fn = fast_test_mi;
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
        }
        i->fn = alu_sets[i->sub].f[w ? 0 : 1];
    } else if (fn == soft_alu_reg_rm && i->sub != 2 && i->sub != 3) {
        i->fn = alu_mem_sets[i->sub].f[w ? 0 : 1];
    } else if (fn == soft_incdec_rm && !i->mem) {
        i->fn = i->sub ? (w ? fast_dec64 : fast_dec32) : (w ? fast_inc64 : fast_inc32);
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

/* A flag-setting instruction directly followed by the block's closing Jcc runs as one handler:
 * the flags are still recorded (the next block may read them), the condition is evaluated with
 * the operation known, and the Jcc's own dispatch is skipped. */
#define FUSED(base)                                                                            \
    static void base##_jcc(struct soft_cpu *cpu, const struct soft_insn *i)                    \
    {                                                                                          \
        cpu->cur = i;                                                                          \
        base##_body(cpu, i);                                                                   \
        const struct soft_insn *j = i + 1;                                                     \
        if (soft_cond(cpu, j->sub))                                                            \
            cpu->rip = j->imm;                                                                 \
        soft_next(cpu, j);                                                                     \
    }

#define FUSE_LIST(X)                                                                           \
    X(fast_cmp_rr64) X(fast_cmp_rr32) X(fast_cmp_ri64) X(fast_cmp_ri32) X(fast_cmp_rm64)       \
    X(fast_cmp_rm32) X(fast_cmp_mi) X(fast_cmp_mr) X(fast_test_rr64) X(fast_test_rr32)         \
    X(fast_test_ri64) X(fast_test_ri32) X(fast_test_mi) X(fast_sub_rr64) X(fast_sub_rr32)      \
    X(fast_sub_ri64) X(fast_sub_ri32) X(fast_and_rr64) X(fast_and_rr32) X(fast_and_ri64)       \
    X(fast_and_ri32) X(fast_add_ri64) X(fast_add_ri32) X(fast_add_rr64) X(fast_add_rr32)       \
    X(fast_dec64) X(fast_dec32) X(fast_inc64) X(fast_inc32)

FUSE_LIST(FUSED)

static const struct {
    soft_exec_fn base, fused;
} fusions[] = {
#define FUSE_ENTRY(base) {base, base##_jcc},
    FUSE_LIST(FUSE_ENTRY)
#undef FUSE_ENTRY
};

static void fuse_branch(struct soft_insn *insns, unsigned n)
{
    if (n < 2 || insns[n - 1].fn != soft_jcc)
        return;
    for (size_t k = 0; k < sizeof(fusions) / sizeof(fusions[0]); k++) {
        if (insns[n - 2].fn == fusions[k].base) {
            insns[n - 2].fn = fusions[k].fused;
            return;
        }
    }
}

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

static void fuse_pairs(struct soft_insn *insns, unsigned n)
{
    for (unsigned k = 0; k + 1 < n; k++) {
        soft_exec_fn a = insns[k].fn, b = insns[k + 1].fn;
        if (a != fast_mov_rr32 && a != fast_mov_rr64)
            continue;
        for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
            if (pairs[p].first == a && pairs[p].second == b) {
                insns[k].fn = pairs[p].pair;
                k++; /* the second one is consumed */
                break;
            }
        }
    }
}

/* How an instruction's handler treats the arithmetic flags. */
enum { FX_READS, FX_NEUTRAL, FX_WRITES };

static int flag_effect(const struct soft_insn *i)
{
    soft_exec_fn fn = i->fn;
    for (unsigned k = 0; k < 9; k++) {
        if (k == 2 || k == 3)
            continue;
        for (unsigned v = 0; v < 8; v++) {
            if (fn == alu_sets[k].f[v])
                return FX_WRITES;
        }
    }
    for (unsigned k = 0; k < 8; k++) {
        if (k == 2 || k == 3)
            continue;
        for (unsigned v = 0; v < 4; v++) {
            if (fn == alu_mem_sets[k].f[v])
                return FX_WRITES;
        }
    }
    if (fn == fast_inc64_nf || fn == fast_inc32_nf || fn == fast_dec64_nf || fn == fast_dec32_nf)
        return FX_NEUTRAL;
    if ((fn == soft_alu_rm_reg || fn == soft_alu_reg_rm || fn == soft_alu_rm_imm) &&
        i->sub != 2 && i->sub != 3)
        return FX_WRITES;
    if (fn == fast_cmp_mi || fn == fast_cmp_mr || fn == fast_test_mi)
        return FX_WRITES;
    if (fn == fast_load_n || fn == fast_store_n || fn == fast_movzx_r || fn == fast_movzx16_load)
        return FX_NEUTRAL;
    if (fn == soft_test_rm_reg || fn == soft_test_rm_imm || fn == soft_neg_rm ||
        fn == fast_shl64 || fn == fast_shl32 || fn == fast_shr64 || fn == fast_shr32 ||
        fn == fast_sar64 || fn == fast_sar32 || fn == soft_imul_reg_rm ||
        fn == soft_imul_reg_rm_imm || fn == soft_mul_rm || fn == soft_imul1_rm)
        return FX_WRITES;
    if (fn == fast_mov_rr64 || fn == fast_mov_rr32 || fn == fast_mov_ri || fn == fast_load64 ||
        fn == fast_load32 || fn == fast_store64 || fn == fast_store32 ||
        fn == fast_movzx8_load || fn == fast_lea64 || fn == fast_lea32 || fn == fast_push64 ||
        fn == fast_pop64 || fn == soft_mov_rm_reg || fn == soft_mov_reg_rm ||
        fn == soft_mov_rm_imm || fn == soft_mov_reg_imm || fn == soft_lea || fn == soft_movzx ||
        fn == soft_movsx || fn == soft_push_reg || fn == soft_pop_reg || fn == soft_nop ||
        fn == soft_not_rm || fn == soft_bswap || fn == fast_rol64_nf || fn == fast_rol32_nf ||
        fn == fast_ror64_nf || fn == fast_ror32_nf || fn == soft_push_imm ||
        fn == soft_xchg_rm_reg || fn == soft_cbw || fn == soft_cwd)
        return FX_NEUTRAL;
    return FX_READS;
}

/* Flagless twin of a flag-writing fast handler, or NULL. */
static soft_exec_fn flagless(soft_exec_fn fn)
{
    for (unsigned k = 0; k < 9; k++) {
        if (k == 2 || k == 3)
            continue;
        for (unsigned v = 0; v < 4; v++) {
            if (fn == alu_sets[k].f[v])
                return alu_sets[k].f[v + 4];
        }
    }
    for (unsigned k = 0; k < 8; k++) {
        if (k == 2 || k == 3)
            continue;
        for (unsigned v = 0; v < 2; v++) {
            if (fn == alu_mem_sets[k].f[v])
                return alu_mem_sets[k].f[v + 2];
        }
    }
    if (fn == fast_inc64) return fast_inc64_nf;
    if (fn == fast_inc32) return fast_inc32_nf;
    if (fn == fast_dec64) return fast_dec64_nf;
    if (fn == fast_dec32) return fast_dec32_nf;
    if (fn == fast_shl64) return fast_shl64_nf;
    if (fn == fast_shl32) return fast_shl32_nf;
    if (fn == fast_shr64) return fast_shr64_nf;
    if (fn == fast_shr32) return fast_shr32_nf;
    if (fn == fast_sar64) return fast_sar64_nf;
    if (fn == fast_sar32) return fast_sar32_nf;
    return NULL;
}

void soft_flags_prune(const struct soft_cpu *cpu, struct soft_insn *insns, unsigned n)
{
    /* Walk backwards: flags are live at the end of a block (the next block may read them). */
    int live = 1;
    if (cpu->mode != 64)
        return;
    for (unsigned k = n; k-- > 0;) {
        struct soft_insn *i = &insns[k];
        int fx = flag_effect(i);
        if (!live) {
            soft_exec_fn nf = flagless(i->fn);
            if (nf) {
                i->fn = nf;
                fx = FX_NEUTRAL;
            } else if (i->fn == soft_shift_rm_imm && !i->mem && (i->sub == 0 || i->sub == 1) &&
                       (i->osz == 8 || i->osz == 4)) {
                int w = i->osz == 8;
                i->fn = i->sub == 0 ? (w ? fast_rol64_nf : fast_rol32_nf)
                                    : (w ? fast_ror64_nf : fast_ror32_nf);
                fx = FX_NEUTRAL;
            }
        }
        if (fx == FX_WRITES)
            live = 0;
        else if (fx == FX_READS)
            live = 1;
    }
    fuse_branch(insns, n);
    fuse_pairs(insns, n);
}
