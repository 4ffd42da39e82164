/* Instruction translators of the block compiler (64-bit mode): the integer instructions that
 * dominate compiled code. Each one first decides whether it can translate the form, emitting
 * nothing when not, then emits host code working on the guest registers in memory:
 * operands are loaded into RAX (destination) and RCX (source) at the guest's operand size and
 * the host executes the very operation, so its result and flags are the guest's; results go
 * back with the x86 merge rules (8/16-bit stores merge, 32-bit results are stored as zero-
 * extended 64-bit values). A memory operand's host pointer is found first (RSI), because its
 * miss path may call out and clobber every scratch register. Lazy flags are recorded only
 * where soft_flags_prune() found them live. */
#include "accel/soft/exec.h"
#include "accel/soft/jit_ctx.h"

enum { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP };

/* Every translator decides first whether it takes the form, then emits: when only asked
 * (c->dry), it stops here. */
#define ACCEPT(c)                                                                              \
    do {                                                                                       \
        if ((c)->dry)                                                                          \
            return true;                                                                       \
    } while (0)

/* Store RAX to a guest register destination of size bytes (32-bit: the whole register). */
static void store_reg(struct jit_ctx *c, unsigned r, unsigned size)
{
    jx_store(&c->b, size == 4 ? 8 : size, jit_greg(r, size), JX_RAX);
}

/* Store RAX to the r/m destination: the host pointer in RSI, or a register. */
static void store_rm(struct jit_ctx *c, const struct soft_insn *i, unsigned size)
{
    if (i->mem)
        jx_store(&c->b, size, jx_m(JX_RSI, 0), JX_RAX);
    else
        store_reg(c, i->rm, size);
}

static struct jx_rm rm_operand(const struct soft_insn *i, unsigned size)
{
    return i->mem ? jx_m(JX_RSI, 0) : jit_greg(i->rm, size);
}

/* Whether the host flags hold the guest's flags that condition cc reads. */
static bool cond_ready(const struct jit_ctx *c, unsigned cc)
{
    if (c->fv_in == JIT_FLAGS_ALL)
        return true;
    unsigned k = cc >> 1; /* B/AE and BE/A read CF */
    return c->fv_in == JIT_FLAGS_NO_CF && k != 1 && k != 3;
}

/* Make the host flags answer condition cc and return the host condition to test: cc itself
 * right after a translated producer, else NE after asking soft_cond() (a call: nothing else
 * may be live yet, and the host flags no longer hold the guest's afterwards). */
static unsigned emit_cond(struct jit_ctx *c, unsigned cc)
{
    if (cond_ready(c, cc))
        return cc;
    jx_mov_ri(&c->b, JX_RSI, cc);
    jit_emit_call(c, (const void *)soft_jit_cond);
    jx_op(&c->b, 0, 0x85, 1, JX_RAX, jx_r(JX_RAX), false); /* test eax, eax */
    c->fv_in = JIT_FLAGS_NONE;
    return JX_CC_NE;
}

static void emit_carry(struct jit_ctx *c);

/* The eight ALU operations, and TEST (as AND without a store). */
static bool t_alu(struct jit_ctx *c, const struct soft_insn *i, unsigned op, bool test)
{
    unsigned size = i->osz, form = i->op & 7;
    bool imm = i->op < 0x40 ? form >= 4 : i->op != 0x84 && i->op != 0x85;
    bool reg_dst = i->op < 0x40 && (form == 2 || form == 3);
    ACCEPT(c);
    bool store = op != ALU_CMP && !test, carry_in = op == ALU_ADC || op == ALU_SBB;
    bool live = i->flags_live, arith = op != ALU_OR && op != ALU_AND && op != ALU_XOR;
    /* ADC/SBB take the guest's CF as the host's: still there right after a translated
     * producer when nothing in between changes host flags, else saved before the memory
     * probe and put back just before the operation. */
    bool host_cf = carry_in && c->fv_in == JIT_FLAGS_ALL && !i->mem;
    if (carry_in && !host_cf) {
        emit_carry(c);
        jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch)), JX_RAX);
    }
    if (i->mem) {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, size, store && !reg_dst ? SOFT_ACC_WRITE : SOFT_ACC_READ);
    }
    struct jx_rm dst = reg_dst ? jit_greg(i->reg, size) : rm_operand(i, size);
    struct jx_rm src = reg_dst ? rm_operand(i, size) : jit_greg(i->reg, size);
    jx_load_zx(&c->b, size, JX_RAX, dst);
    if (!imm)
        jx_load_zx(&c->b, size, JX_RCX, src);
    if (live && arith)
        jx_mov_rr(&c->b, JX_RDX, JX_RAX);
    if (carry_in && !host_cf) {
        jx_load_zx(&c->b, 8, JX_R8, jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch)));
        jx_op(&c->b, 0, 0xd1, 1, 5, jx_r(JX_R8), false); /* shr r8d, 1: CF = the carry */
    }
    /* CMP as SUB: the lazy record wants the difference in RAX; the flags are the same. */
    unsigned host_op = op == ALU_CMP ? ALU_SUB : op;
    if (imm)
        jx_alu_mi(&c->b, size, host_op, jx_r(JX_RAX), i->imm);
    else
        jx_alu_rm(&c->b, size, host_op, JX_RAX, jx_r(JX_RCX));
    if (store) {
        if (reg_dst)
            store_reg(c, i->reg, size);
        else
            store_rm(c, i, size);
    }
    if (live) {
        unsigned cc = op == ALU_ADD   ? SOFT_CC_ADD
                      : op == ALU_ADC ? SOFT_CC_ADC
                      : op == ALU_SBB ? SOFT_CC_SBB
                      : arith         ? SOFT_CC_SUB
                                      : SOFT_CC_LOGIC;
        jit_emit_cc(c, cc, size, JX_RAX, JX_RDX, 0, imm ? JX_NONE : JX_RCX, i->imm);
    }
    c->fv = JIT_FLAGS_ALL;
    return true;
}

/* How emit_unary() runs the host's own one-operand instruction. */
struct unary_op {
    uint8_t opc8, opc; /* opcode of the byte form and of the others */
    uint8_t digit;     /* ModRM.reg */
    bool count_imm;    /* an imm8 count follows (imm) */
    bool count_cl;     /* the count is the guest's CL (masked into RCX, loaded after the probe) */
    uint8_t imm;
};

/* The one-operand read-modify-write forms: RSI = the host pointer of a memory operand, RAX =
 * the operand (RDX = a copy when keep), the host instruction on RAX, the result stored back. */
static void emit_unary(struct jit_ctx *c, const struct soft_insn *i, const struct unary_op *u,
                       bool keep)
{
    unsigned size = i->osz;
    if (i->mem) {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, size, SOFT_ACC_WRITE);
    }
    if (u->count_cl) {
        jx_load_zx(&c->b, 1, JX_RCX, jit_greg(SOFT_RCX, 1));
        jx_op(&c->b, 0, 0x83, 1, 4, jx_r(JX_RCX), false); /* and ecx, count mask */
        jx_imm(&c->b, size == 8 ? 63 : 31, 1);
    }
    jx_load_zx(&c->b, size, JX_RAX, rm_operand(i, size));
    if (keep)
        jx_mov_rr(&c->b, JX_RDX, JX_RAX);
    jx_op(&c->b, size == 1 ? 0 : size, size == 1 ? u->opc8 : u->opc, 1, u->digit, jx_r(JX_RAX),
          size == 1);
    if (u->count_imm)
        jx_imm(&c->b, u->imm, 1);
    store_rm(c, i, size);
}

/* NOT and NEG (F6/F7 /2, /3). */
static bool t_not_neg(struct jit_ctx *c, const struct soft_insn *i)
{
    ACCEPT(c);
    unsigned size = i->osz;
    bool neg = i->sub == 3, live = neg && i->flags_live;
    emit_unary(c, i, &(struct unary_op){.opc8 = 0xf6, .opc = 0xf7, .digit = i->sub}, live);
    if (live)
        jit_emit_cc(c, SOFT_CC_SUB, size, JX_RAX, JX_NONE, 0, JX_RDX, 0);
    c->fv = neg ? JIT_FLAGS_ALL : i->mem ? JIT_FLAGS_NONE : c->fv_in;
    return true;
}

/* RAX = CF (0 or 1) of the guest flags as they are now: from the host flags right after a
 * translated producer, recomputed from the lazy record when translated code wrote it, else
 * through soft_carry(). */
static void emit_carry(struct jit_ctx *c)
{
    struct jx_buf *b = &c->b;
    int cc = c->last_cc;
    unsigned op = (unsigned)cc & ~3u, size = 1u << ((unsigned)cc & 3);
    struct jx_rm a = jx_m(JIT_CPU, JIT_CPU_OFF(cc_a)), r = jx_m(JIT_CPU, JIT_CPU_OFF(cc_res));
    if (c->fv_in == JIT_FLAGS_ALL) {
        jx_op(b, 0, 0x0f92, 2, 0, jx_r(JX_RAX), true); /* setc al */
    } else if (cc >= 0 && op == SOFT_CC_SUB) {
        jx_load_zx(b, size, JX_RAX, a); /* CF of a - b */
        jx_alu_rm(b, size, ALU_CMP, JX_RAX, jx_m(JIT_CPU, JIT_CPU_OFF(cc_b)));
        jx_op(b, 0, 0x0f92, 2, 0, jx_r(JX_RAX), true);
    } else if (cc >= 0 && op == SOFT_CC_ADD) {
        jx_load_zx(b, size, JX_RAX, r); /* CF of a + b: the result wrapped below a */
        jx_alu_rm(b, size, ALU_CMP, JX_RAX, a);
        jx_op(b, 0, 0x0f92, 2, 0, jx_r(JX_RAX), true);
    } else if (cc >= 0 && (op == SOFT_CC_INC || op == SOFT_CC_DEC)) {
        jx_load_zx(b, 1, JX_RAX, jx_m(JIT_CPU, JIT_CPU_OFF(cc_b))); /* the carry it kept */
    } else if (cc >= 0 && op == SOFT_CC_LOGIC) {
        jx_mov_ri(b, JX_RAX, 0);
        return;
    } else {
        jit_emit_call(c, (const void *)soft_jit_carry);
        return;
    }
    jx_op(b, 0, 0x0fb6, 2, JX_RAX, jx_r(JX_RAX), true); /* movzx eax, al */
}

/* INC and DEC (FE/FF /0, /1): CF stays, so a live record needs the carry from before. */
static bool t_incdec(struct jit_ctx *c, const struct soft_insn *i)
{
    ACCEPT(c);
    unsigned size = i->osz;
    bool live = i->flags_live;
    int32_t scratch = JIT_CPU_OFF(jit_scratch);
    if (live) {
        emit_carry(c);
        jx_store(&c->b, 8, jx_m(JIT_CPU, scratch), JX_RAX);
    }
    emit_unary(c, i, &(struct unary_op){.opc8 = 0xfe, .opc = 0xff, .digit = i->sub}, live);
    if (live) {
        jx_load_zx(&c->b, 8, JX_RCX, jx_m(JIT_CPU, scratch));
        jit_emit_cc(c, i->sub ? SOFT_CC_DEC : SOFT_CC_INC, size, JX_RAX, JX_RDX, 0, JX_RCX, 0);
    }
    c->fv = JIT_FLAGS_NO_CF;
    return true;
}

/* Shifts and rotates by a constant (C0/C1/D0/D1). */
static bool t_shift(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz, sub = i->sub;
    unsigned count = (unsigned)i->imm & (size == 8 ? 63 : 31);
    bool rotate = sub < 2, live = i->flags_live;
    if (sub == 2 || sub == 3 || count == 0 || (rotate && live))
        return false; /* RCL/RCR; a zero count changes nothing, not even flags */
    ACCEPT(c);
    emit_unary(c, i, &(struct unary_op){.opc8 = 0xc0, .opc = 0xc1, .digit = sub == 6 ? 4 : sub,
                                        .count_imm = true, .imm = (uint8_t)count}, live);
    if (live) {
        unsigned cc = sub == 5 ? SOFT_CC_SHR : sub == 7 ? SOFT_CC_SAR : SOFT_CC_SHL;
        jit_emit_cc(c, cc, size, JX_RAX, JX_RDX, 0, JX_NONE, count);
    }
    c->fv = rotate ? JIT_FLAGS_NONE : JIT_FLAGS_ALL;
    return true;
}

/* Shifts and rotates by CL (D2/D3). A count that is zero after masking changes no flag, so
 * the lazy record is only written when it is not (JRCXZ leaves the host flags alone). */
static bool t_shift_cl(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz, sub = i->sub;
    bool rotate = sub < 2, live = i->flags_live;
    if (sub == 2 || sub == 3 || (rotate && live))
        return false;
    ACCEPT(c);
    emit_unary(c, i, &(struct unary_op){.opc8 = 0xd2, .opc = 0xd3, .digit = sub == 6 ? 4 : sub,
                                        .count_cl = true}, live);
    if (live) {
        jx_byte(&c->b, 0xe3); /* jrcxz: a zero count keeps the old record */
        jx_byte(&c->b, 0);
        uint8_t *skip = c->b.p;
        unsigned cc = sub == 5 ? SOFT_CC_SHR : sub == 7 ? SOFT_CC_SAR : SOFT_CC_SHL;
        jit_emit_cc(c, cc, size, JX_RAX, JX_RDX, 0, JX_RCX, 0);
        if (c->b.p - skip > 127)
            c->b.overflow = true; /* cannot happen: four MOVs */
        else if (!c->b.overflow)
            skip[-1] = (uint8_t)(c->b.p - skip);
        c->last_cc = -1; /* maybe written, maybe not */
    }
    return true;
}

/* MOV between registers and memory (88/89/8A/8B). */
static bool t_mov(struct jit_ctx *c, const struct soft_insn *i)
{
    ACCEPT(c);
    unsigned size = i->osz;
    bool to_rm = i->op <= 0x89;
    if (!i->mem) {
        unsigned from = to_rm ? i->reg : i->rm, to = to_rm ? i->rm : i->reg;
        jx_load_zx(&c->b, size, JX_RAX, jit_greg(from, size));
        store_reg(c, to, size);
        c->fv = c->fv_in;
        return true;
    }
    if (to_rm) {
        jx_load_zx(&c->b, size, JX_RAX, jit_greg(i->reg, size));
        jit_emit_ea(c, i, true);
        jit_emit_store(c, i, size);
    } else {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, size, SOFT_ACC_READ);
        jx_load_zx(&c->b, size, JX_RAX, jx_m(JX_RSI, 0));
        store_reg(c, i->reg, size);
    }
    return true;
}

/* MOV r/m, imm (C6/C7 /0) and MOV reg, imm (B0..BF). */
static bool t_mov_imm(struct jit_ctx *c, const struct soft_insn *i, bool to_reg)
{
    ACCEPT(c);
    unsigned size = i->osz;
    uint64_t v = size == 8 ? i->imm : i->imm & soft_mask(size);
    jx_mov_ri(&c->b, JX_RAX, v);
    if (to_reg || !i->mem) {
        store_reg(c, to_reg ? i->reg : i->rm, size);
        c->fv = c->fv_in;
        return true;
    }
    jit_emit_ea(c, i, true);
    jit_emit_store(c, i, size);
    return true;
}

static bool t_lea(struct jit_ctx *c, const struct soft_insn *i)
{
    if (!i->mem)
        return false;
    ACCEPT(c);
    jit_emit_ea(c, i, false);
    jx_mov_rr(&c->b, JX_RAX, JX_RSI);
    if (i->osz == 4)
        jx_op(&c->b, 0, 0x89, 1, JX_RAX, jx_r(JX_RAX), false); /* mov eax, eax */
    store_reg(c, i->reg, i->osz);
    c->fv = c->fv_in;
    return true;
}

/* MOVZX, MOVSX (0F B6/B7/BE/BF) and MOVSXD (63) into a 64-bit register. */
static bool t_movx(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned from = i->sub, size = i->osz;
    bool sx = i->op != (SOFT_OP_0F | 0xb6) && i->op != (SOFT_OP_0F | 0xb7);
    if (size == 2 || (from == 4 && size != 8))
        return false;
    ACCEPT(c);
    if (i->mem) {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, from, SOFT_ACC_READ);
    }
    struct jx_rm src = rm_operand(i, from);
    if (!sx)
        jx_load_zx(&c->b, from, JX_RAX, src);
    else if (from == 4)
        jx_op(&c->b, 8, 0x63, 1, JX_RAX, src, false);
    else
        jx_op(&c->b, size == 8 ? 8 : 0, from == 1 ? 0x0fbe : 0x0fbf, 2, JX_RAX, src, false);
    store_reg(c, i->reg, size);
    c->fv = i->mem ? JIT_FLAGS_NONE : c->fv_in;
    return true;
}

/* IMUL reg, r/m (0F AF) and IMUL reg, r/m, imm (69/6B), where no flag is read later. */
static bool t_imul(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (i->flags_live || size == 1)
        return false;
    ACCEPT(c);
    if (i->mem) {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, size, SOFT_ACC_READ);
    }
    struct jx_rm src = rm_operand(i, size);
    unsigned hsize = size == 4 ? 0 : size;
    if (i->op == (SOFT_OP_0F | 0xaf)) {
        jx_load_zx(&c->b, size, JX_RAX, jit_greg(i->reg, size));
        jx_op(&c->b, hsize, 0x0faf, 2, JX_RAX, src, false);
    } else if (jx_fits8((int64_t)i->imm) || (size == 2 && jx_fits8((int16_t)i->imm))) {
        jx_op(&c->b, hsize, 0x6b, 1, JX_RAX, src, false);
        jx_imm(&c->b, i->imm, 1);
    } else {
        jx_op(&c->b, hsize, 0x69, 1, JX_RAX, src, false);
        jx_imm(&c->b, i->imm, size == 2 ? 2 : 4);
    }
    store_reg(c, i->reg, size);
    return true;
}

static bool t_bswap(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->osz == 2)
        return false; /* undefined; left to the interpreter's choice */
    ACCEPT(c);
    jx_load_zx(&c->b, i->osz, JX_RAX, jit_greg(i->reg, i->osz));
    if (i->osz == 8)
        jx_byte(&c->b, 0x48);
    jx_byte(&c->b, 0x0f);
    jx_byte(&c->b, 0xc8); /* bswap eax / rax */
    store_reg(c, i->reg, i->osz);
    c->fv = c->fv_in;
    return true;
}

static bool t_cmov(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (i->mem)
        return false; /* the load happens whatever the condition: left to the interpreter */
    ACCEPT(c);
    unsigned cc = emit_cond(c, i->sub);
    jx_load_zx(&c->b, size, JX_RAX, jit_greg(i->reg, size));
    jx_op(&c->b, size == 4 ? 0 : size, 0x0f40u | cc, 2, JX_RAX, jit_greg(i->rm, size), false);
    store_reg(c, i->reg, size);
    c->fv = c->fv_in;
    return true;
}

static bool t_setcc(struct jit_ctx *c, const struct soft_insn *i)
{
    ACCEPT(c);
    unsigned cc = emit_cond(c, i->sub);
    if (!i->mem) {
        jx_op(&c->b, 0, 0x0f90u | cc, 2, 0, jit_greg(i->rm, 1), true);
        c->fv = c->fv_in;
        return true;
    }
    jx_op(&c->b, 0, 0x0f90u | cc, 2, 0, jx_r(JX_RAX), true);
    jit_emit_ea(c, i, true);
    jit_emit_store(c, i, 1);
    return true;
}

/* RSI = RSP + delta (the stack segment has no base in 64-bit mode). */
static void stack_addr(struct jit_ctx *c, int32_t delta)
{
    jx_load_zx(&c->b, 8, JX_RSI, jit_greg(SOFT_RSP, 8));
    if (delta)
        jx_op(&c->b, 8, 0x8d, 1, JX_RSI, jx_m(JX_RSI, delta), false);
}

/* Push RAX (the value is read before RSP moves, as PUSH RSP requires). */
static void push_rax(struct jit_ctx *c, const struct soft_insn *i)
{
    stack_addr(c, -8);
    jit_emit_store(c, i, 8);
    jx_alu_mi(&c->b, 8, ALU_SUB, jit_greg(SOFT_RSP, 8), 8);
}

/* RAX = the 64-bit value popped. */
static void pop_rax(struct jit_ctx *c, const struct soft_insn *i)
{
    stack_addr(c, 0);
    jit_emit_ptr(c, i, 8, SOFT_ACC_READ);
    jx_load_zx(&c->b, 8, JX_RAX, jx_m(JX_RSI, 0));
    jx_alu_mi(&c->b, 8, ALU_ADD, jit_greg(SOFT_RSP, 8), 8);
}

static bool t_push_pop(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->osz != 8)
        return false;
    ACCEPT(c);
    if (i->op <= 0x57) {
        jx_load_zx(&c->b, 8, JX_RAX, jit_greg(i->reg, 8));
        push_rax(c, i);
    } else {
        pop_rax(c, i);
        store_reg(c, i->reg, 8); /* after RSP moved: POP RSP loads the popped value */
    }
    return true;
}

static bool is_last(const struct jit_ctx *c, const struct soft_insn *i)
{
    return i == &c->blk->insns[c->blk->n - 1];
}

/* Branches end their block: RIP gets the target (a not-taken Jcc leaves end_rip), then the
 * chain. */
static bool t_branch(struct jit_ctx *c, const struct soft_insn *i)
{
    /* 16-bit operand sizes (66 prefix) truncate RIP and move the stack by 2: left alone. */
    if (!is_last(c, i) || i->osz == 2)
        return false;
    ACCEPT(c);
    switch (i->op) {
    case 0xe8: /* CALL rel32 */
        jx_mov_ri(&c->b, JX_RAX, i->next_rip);
        push_rax(c, i);
        jit_emit_exit(c, true, i->imm);
        return true;
    case 0xe9: case 0xeb:
        jit_emit_exit(c, true, i->imm);
        return true;
    case 0xc3: /* RET */
        pop_rax(c, i);
        jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(rip)), JX_RAX);
        jit_emit_chain(c);
        return true;
    default: { /* Jcc */
        uint8_t *not_taken = jx_jcc_fwd(&c->b, emit_cond(c, i->sub) ^ 1u);
        jit_emit_exit(c, true, i->imm);
        jx_patch(not_taken, c->b.p);
        jit_emit_exit(c, false, c->blk->end_rip);
        return true;
    }
    }
}

/* CALL and JMP through a register or memory (FF /2, /4): RIP from the operand, then the
 * generic chain. The target is read first and kept in cpu->jit_scratch across the push, whose
 * miss path may call out: a fault on either leaves the state as before the instruction. */
static bool t_indirect(struct jit_ctx *c, const struct soft_insn *i)
{
    if (!is_last(c, i) || i->osz != 8)
        return false;
    ACCEPT(c);
    struct jx_rm rip = jx_m(JIT_CPU, JIT_CPU_OFF(rip));
    if (i->mem) {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, 8, SOFT_ACC_READ);
    }
    jx_load_zx(&c->b, 8, JX_RAX, rm_operand(i, 8));
    if (i->sub == 2) {
        jx_store(&c->b, 8, jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch)), JX_RAX);
        jx_mov_ri(&c->b, JX_RAX, i->next_rip);
        push_rax(c, i);
        jx_load_zx(&c->b, 8, JX_RAX, jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch)));
    }
    jx_store(&c->b, 8, rip, JX_RAX);
    jit_emit_chain(c);
    return true;
}

bool jit_translate(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->lock || i->fn == soft_exec_ud || (i->mem && i->asz != 8 && i->asz != 4))
        return false;
    if (i->fn == soft_nop) {
        ACCEPT(c);
        c->fv = c->fv_in;
        return true;
    }
    unsigned op = i->op;
    if (op < 0x40 && (op & 7) < 6)
        return t_alu(c, i, i->sub, false);
    switch (op) {
    case 0x80: case 0x81: case 0x83:
        return t_alu(c, i, i->sub, false);
    case 0x84: case 0x85: case 0xa8: case 0xa9:
        return t_alu(c, i, ALU_AND, true);
    case 0xf6: case 0xf7:
        if (i->sub < 2)
            return t_alu(c, i, ALU_AND, true);
        return i->sub < 4 ? t_not_neg(c, i) : false;
    case 0xfe: case 0xff:
        if (i->sub < 2)
            return t_incdec(c, i);
        return op == 0xff && (i->sub == 2 || i->sub == 4) && t_indirect(c, i);
    case 0x88: case 0x89: case 0x8a: case 0x8b:
        return t_mov(c, i);
    case 0xc6: case 0xc7:
        return i->sub == 0 && t_mov_imm(c, i, false);
    case 0xb0 ... 0xbf:
        return t_mov_imm(c, i, true);
    case 0x8d:
        return t_lea(c, i);
    case 0x63: case SOFT_OP_0F | 0xb6: case SOFT_OP_0F | 0xb7: case SOFT_OP_0F | 0xbe:
    case SOFT_OP_0F | 0xbf:
        return t_movx(c, i);
    case 0xc0: case 0xc1: case 0xd0: case 0xd1:
        return t_shift(c, i);
    case 0xd2: case 0xd3:
        return t_shift_cl(c, i);
    case 0x50 ... 0x5f:
        return t_push_pop(c, i);
    case 0x70 ... 0x7f: case SOFT_OP_0F | 0x80 ... SOFT_OP_0F | 0x8f:
    case 0xe8: case 0xe9: case 0xeb:
        return t_branch(c, i);
    case 0xc3:
        return t_branch(c, i);
    case SOFT_OP_0F | 0x40 ... SOFT_OP_0F | 0x4f:
        return t_cmov(c, i);
    case SOFT_OP_0F | 0x90 ... SOFT_OP_0F | 0x9f:
        return t_setcc(c, i);
    case SOFT_OP_0F | 0xaf: case 0x69: case 0x6b:
        return t_imul(c, i);
    case SOFT_OP_0F | 0xc8 ... SOFT_OP_0F | 0xcf:
        return t_bswap(c, i);
    default:
        return false;
    }
}
