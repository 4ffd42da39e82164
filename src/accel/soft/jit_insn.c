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

/* For a memory operand: its address, then the host pointer to it for access (RSI), from the
 * inline TLB probe or its miss path. Nothing for a register operand. */
static void emit_rm_ptr(struct jit_ctx *c, const struct soft_insn *i, unsigned size, int access)
{
    if (i->mem) {
        jit_emit_ea(c, i, true);
        jit_emit_ptr(c, i, size, access);
    }
}

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
    emit_rm_ptr(c, i, size, store && !reg_dst ? SOFT_ACC_WRITE : SOFT_ACC_READ);
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
    emit_rm_ptr(c, i, size, SOFT_ACC_WRITE);
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
    } else if (cc == SOFT_CC_EFLAGS) {
        jx_load_zx(b, 1, JX_RAX, r); /* recorded whole: CF is bit 0 */
        jx_alu_mi(b, 4, ALU_AND, jx_r(JX_RAX), 1);
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
        emit_rm_ptr(c, i, size, SOFT_ACC_READ);
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
    emit_rm_ptr(c, i, from, SOFT_ACC_READ);
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

static void emit_record_host_flags(struct jit_ctx *c);

/* After a host instruction that left the guest's flags in the host's: record them when a later
 * instruction reads them (live), and know from here on that the record holds all of them. */
static void record_host_flags_if(struct jit_ctx *c, bool live)
{
    if (live) {
        emit_record_host_flags(c);
        c->fv = JIT_FLAGS_ALL;
    }
}

/* IMUL reg, r/m (0F AF) and IMUL reg, r/m, imm (69/6B). Live flags are the host's (CF = OF
 * defined, the others undefined: whatever this host leaves, as for the instruction run
 * natively). */
static bool t_imul(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (size == 1)
        return false;
    ACCEPT(c);
    emit_rm_ptr(c, i, size, SOFT_ACC_READ);
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
    record_host_flags_if(c, i->flags_live);
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

static bool t_cmov_mem(struct jit_ctx *c, const struct soft_insn *i);

static bool t_cmov(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (i->mem)
        return t_cmov_mem(c, i);
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
    emit_rm_ptr(c, i, 8, SOFT_ACC_READ);
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

/* --- flags the host computes whole ------------------------------------------------------- */

/* Record the host's arithmetic flags as the guest's (SOFT_CC_EFLAGS), for instructions whose
 * flags have no lazy form (MUL, BT, LOCKed forms whose result never reaches a register).
 * Leaves the host flags as they are, so that a following condition still reads them: LAHF
 * puts SF ZF AF PF CF at their EFLAGS positions (with bit 1, always set, which LEA takes off
 * without a borrow), SETO gives OF, and only MOVs and LEAs follow. Clobbers RAX and RCX. */
static void emit_record_host_flags(struct jit_ctx *c)
{
    struct jx_buf *b = &c->b;
    int32_t res = JIT_CPU_OFF(cc_res);
    jx_byte(b, 0x9f);                                          /* lahf */
    jx_op(b, 0, 0x0f90u | JX_CC_O, 2, 0, jx_r(JX_RAX), true);  /* seto al */
    jx_byte(b, 0x0f); /* movzx ecx, ah: AH exists only without a REX prefix */
    jx_byte(b, 0xb6);
    jx_byte(b, 0xcc);
    jx_op(b, 0, 0x8d, 1, JX_RCX, jx_m(JX_RCX, -2), false);     /* lea ecx, [rcx - 2] */
    jx_op(b, 0, 0x0fb6, 2, JX_RAX, jx_r(JX_RAX), true);        /* movzx eax, al */
    jx_op(b, 0, 0x8d, 1, JX_RAX, jx_mx(JX_NONE, JX_RAX, 3, 0), false); /* lea eax, [rax*8] */
    jx_store(b, 8, jx_m(JIT_CPU, res), JX_RCX);
    jx_store(b, 1, jx_m(JIT_CPU, res + 1), JX_RAX); /* OF is bit 11: bit 3 of the second byte */
    jx_op(b, 0, 0xc7, 1, 0, jx_m(JIT_CPU, JIT_CPU_OFF(cc_op)), false);
    jx_imm(b, SOFT_CC_EFLAGS, 4);
    c->last_cc = SOFT_CC_EFLAGS;
}

/* Keep the guest's arithmetic flags in cpu->jit_scratch for a host instruction that keeps
 * some of them (BT keeps ZF) but runs after a memory probe, which changes the host's: from
 * the host flags right after a translated producer, else from the lazy record (a call:
 * nothing else may be live yet). */
static void emit_flags_save(struct jit_ctx *c)
{
    struct jx_rm scratch = jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch));
    if (c->fv_in == JIT_FLAGS_ALL) {
        jx_byte(&c->b, 0x9c);                            /* pushfq */
        jx_op(&c->b, 0, 0x8f, 1, 0, scratch, false);     /* pop qword [scratch] */
        return;
    }
    jit_emit_call(c, (const void *)soft_jit_flags);
    jx_store(&c->b, 8, scratch, JX_RAX);
}

/* The host flags = the saved guest ones (POPFQ: at CPL 3 the other bits it could change are
 * either ignored, as IF, or were the host's own, or are clear, as DF must be). */
static void emit_flags_restore(struct jit_ctx *c)
{
    jx_op(&c->b, 0, 0xff, 1, 6, jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch)), false); /* push */
    jx_byte(&c->b, 0x9d);                                                        /* popfq */
}

/* --- atomics ------------------------------------------------------------------------------ */

/* The LOCKed read-modify-write forms of the ALU operations, INC/DEC and NOT/NEG (LOCK is only
 * valid with a memory destination): the host's own LOCKed instruction on the host address,
 * atomic against the other vCPU threads and a full barrier, as on hardware. A TLB miss goes
 * through soft_mem_slow(), which refuses device pages and accesses split over host pages that
 * are not adjacent (#GP, as in the interpreter); split over adjacent ones, the access stays
 * one host instruction. The result never reaches a register, so live flags are recorded whole
 * from the host's. */
static bool t_lock_rmw(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned op = i->op, size = i->osz, sub = i->sub;
    bool alu_reg = op < 0x40, alu_imm = op >= 0x80 && op <= 0x83;
    bool incdec = op == 0xfe || op == 0xff;
    if ((alu_reg || alu_imm) && (sub == ALU_ADC || sub == ALU_SBB || sub == ALU_CMP))
        return false; /* ADC/SBB: rare; LOCK CMP is #UD, which the interpreter raises */
    if (alu_reg && (op & 7) > 1)
        return false;
    if ((op == 0xf6 || op == 0xf7) && sub != 2 && sub != 3)
        return false;
    if (incdec && sub > 1)
        return false;
    ACCEPT(c);
    bool not = (op == 0xf6 || op == 0xf7) && sub == 2;
    bool live = i->flags_live && !not; /* NOT changes no flag */
    struct jx_rm scratch = jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch));
    if (incdec && live) {
        /* INC/DEC keep CF: the guest's goes into the host's just before the operation. */
        emit_carry(c);
        jx_store(&c->b, 8, scratch, JX_RAX);
    }
    emit_rm_ptr(c, i, size, SOFT_ACC_WRITE);
    struct jx_rm m = jx_m(JX_RSI, 0);
    if (alu_reg)
        jx_load_zx(&c->b, size, JX_RCX, jit_greg(i->reg, size));
    if (incdec && live) {
        jx_load_zx(&c->b, 8, JX_R8, scratch);
        jx_op(&c->b, 0, 0xd1, 1, 5, jx_r(JX_R8), false); /* shr r8d, 1: CF = the carry */
    }
    jx_byte(&c->b, 0xf0); /* lock */
    if (alu_reg)
        jx_alu_mr(&c->b, size, sub, m, JX_RCX);
    else if (alu_imm)
        jx_alu_mi(&c->b, size, sub, m, i->imm);
    else
        jx_op(&c->b, size == 1 ? 0 : size, op, 1, sub, m, size == 1);
    if (live)
        emit_record_host_flags(c);
    c->fv = not ? JIT_FLAGS_NONE : JIT_FLAGS_ALL;
    return true;
}

/* XCHG r/m, reg (86/87, 90-97): with memory, the host's XCHG on the host address, locked
 * like the guest's (LOCK prefix or not). */
static bool t_xchg(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    ACCEPT(c);
    if (!i->mem) {
        jx_load_zx(&c->b, size, JX_RAX, jit_greg(i->reg, size));
        jx_load_zx(&c->b, size, JX_RCX, jit_greg(i->rm, size));
        store_reg(c, i->rm, size);
        jx_store(&c->b, size == 4 ? 8 : size, jit_greg(i->reg, size), JX_RCX);
        c->fv = c->fv_in;
        return true;
    }
    emit_rm_ptr(c, i, size, SOFT_ACC_WRITE);
    jx_load_zx(&c->b, size, JX_RAX, jit_greg(i->reg, size));
    jx_op(&c->b, size == 1 ? 0 : size, size == 1 ? 0x86 : 0x87, 1, JX_RAX, jx_m(JX_RSI, 0),
          size == 1);
    store_reg(c, i->reg, size);
    return true;
}

/* XADD m, reg (0F C0/C1), LOCKed or not: the host's LOCK XADD (atomic either way, which a
 * plain one may be too). */
static bool t_xadd(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (!i->mem)
        return false;
    ACCEPT(c);
    bool live = i->flags_live;
    emit_rm_ptr(c, i, size, SOFT_ACC_WRITE);
    jx_load_zx(&c->b, size, JX_RCX, jit_greg(i->reg, size));
    if (live)
        jx_mov_rr(&c->b, JX_RDX, JX_RCX);
    jx_byte(&c->b, 0xf0);
    jx_op(&c->b, size == 1 ? 0 : size, size == 1 ? 0x0fc0 : 0x0fc1, 2, JX_RCX, jx_m(JX_RSI, 0),
          size == 1);
    jx_store(&c->b, size == 4 ? 8 : size, jit_greg(i->reg, size), JX_RCX); /* the old value */
    if (live) {
        /* The sum again in a register, for the lazy record (same flags as the XADD's). */
        jx_mov_rr(&c->b, JX_RAX, JX_RCX);
        jx_alu_rm(&c->b, size, ALU_ADD, JX_RAX, jx_r(JX_RDX));
        jit_emit_cc(c, SOFT_CC_ADD, size, JX_RAX, JX_RCX, 0, JX_RDX, 0);
    }
    c->fv = JIT_FLAGS_ALL;
    return true;
}

/* CMPXCHG m, reg (0F B0/B1), LOCKed or not: the host's LOCK CMPXCHG with the guest's
 * accumulator. A mismatch loads the accumulator (32-bit: zero-extended); a match leaves the
 * guest's RAX whole. The flags are those of CMP accumulator, m. */
static bool t_cmpxchg(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (!i->mem)
        return false;
    ACCEPT(c);
    bool live = i->flags_live;
    emit_rm_ptr(c, i, size, SOFT_ACC_WRITE);
    jx_load_zx(&c->b, size, JX_RAX, jit_greg(SOFT_RAX, size));
    jx_load_zx(&c->b, size, JX_RCX, jit_greg(i->reg, size));
    if (live)
        jx_mov_rr(&c->b, JX_RDX, JX_RAX);
    jx_byte(&c->b, 0xf0);
    jx_op(&c->b, size == 1 ? 0 : size, size == 1 ? 0x0fb0 : 0x0fb1, 2, JX_RCX, jx_m(JX_RSI, 0),
          size == 1);
    uint8_t *equal = jx_jcc_fwd(&c->b, JX_CC_E);
    store_reg(c, SOFT_RAX, size);
    jx_patch(equal, c->b.p);
    if (live) {
        /* RAX holds the memory's value either way: the difference for the lazy record. */
        jx_mov_rr(&c->b, JX_R8, JX_RDX);
        jx_alu_rm(&c->b, size, ALU_SUB, JX_R8, jx_r(JX_RAX));
        jit_emit_cc(c, SOFT_CC_SUB, size, JX_R8, JX_RDX, 0, JX_RAX, 0);
    }
    c->fv = JIT_FLAGS_ALL;
    return true;
}

/* The LOCKed forms. */
static bool t_bt(struct jit_ctx *c, const struct soft_insn *i);
static bool t_cmpxchg16b(struct jit_ctx *c, const struct soft_insn *i);

static bool t_locked(struct jit_ctx *c, const struct soft_insn *i)
{
    if (!i->mem)
        return false; /* the decoder made these #UD */
    switch (i->op) {
    case 0x00 ... 0x3f: case 0x80: case 0x81: case 0x83: case 0xf6: case 0xf7: case 0xfe:
    case 0xff:
        return t_lock_rmw(c, i);
    case 0x86: case 0x87:
        return t_xchg(c, i);
    case SOFT_OP_0F | 0xc0: case SOFT_OP_0F | 0xc1:
        return t_xadd(c, i);
    case SOFT_OP_0F | 0xb0: case SOFT_OP_0F | 0xb1:
        return t_cmpxchg(c, i);
    case SOFT_OP_0F | 0xc7:
        return i->fn == soft_cmpxchg8b16b && t_cmpxchg16b(c, i);
    case SOFT_OP_0F | 0xa3: case SOFT_OP_0F | 0xab: case SOFT_OP_0F | 0xb3:
    case SOFT_OP_0F | 0xbb: case SOFT_OP_0F | 0xba:
        return t_bt(c, i);
    default:
        return false;
    }
}

/* --- multiplication, division, bits ------------------------------------------------------- */

/* MUL and one-operand IMUL (F6/F7 /4, /5): the host's, on the guest's accumulator; the 8-bit
 * forms write AX, the others rDX:rAX. Live flags are the host's (CF = OF defined). */
static bool t_mul(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    ACCEPT(c);
    emit_rm_ptr(c, i, size, SOFT_ACC_READ);
    jx_load_zx(&c->b, size, JX_RAX, jit_greg(SOFT_RAX, size));
    jx_op(&c->b, size == 1 ? 0 : size, i->op, 1, i->sub, rm_operand(i, size), size == 1);
    if (size == 1) {
        jx_store(&c->b, 2, jit_greg(SOFT_RAX, 2), JX_RAX);
    } else {
        store_reg(c, SOFT_RAX, size);
        jx_store(&c->b, size == 4 ? 8 : size, jit_greg(SOFT_RDX, size), JX_RDX);
    }
    record_host_flags_if(c, i->flags_live);
    return true;
}

/* DIV (F7 /6): the host's, once the quotient is known to fit (the high half below the
 * divisor, which also rules out a zero divisor); otherwise #DE at this instruction, with the
 * state as before it. The flags are undefined: the lazy record stays as it was, as in the
 * interpreter. */
static bool t_div(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    if (size == 1)
        return false;
    ACCEPT(c);
    emit_rm_ptr(c, i, size, SOFT_ACC_READ);
    jx_load_zx(&c->b, size, JX_RCX, rm_operand(i, size));
    jx_load_zx(&c->b, size, JX_RDX, jit_greg(SOFT_RDX, size));
    jx_alu_rm(&c->b, size, ALU_CMP, JX_RDX, jx_r(JX_RCX));
    uint8_t *de = jx_jcc_fwd(&c->b, JX_CC_AE);
    jx_load_zx(&c->b, size, JX_RAX, jit_greg(SOFT_RAX, size));
    jx_op(&c->b, size, 0xf7, 1, 6, jx_r(JX_RCX), false); /* div rcx */
    store_reg(c, SOFT_RAX, size);
    jx_store(&c->b, size == 4 ? 8 : size, jit_greg(SOFT_RDX, size), JX_RDX);
    uint8_t *done = jx_jmp_fwd(&c->b);
    jx_patch(de, c->b.p);
    jit_emit_raise(c, i, SOFT_EXC_DE);
    jx_patch(done, c->b.p);
    return true;
}

/* BT, BTS, BTR, BTC (0F A3/AB/B3/BB, 0F BA /4-7), LOCKed or not: the host's, on the operand
 * itself. A register bit offset into memory may reach outside the operand (a bit string):
 * the address first moves by whole operands, as the interpreter computes it, and the host
 * then sees an offset within the operand. CF is the bit; BT keeps ZF and leaves the others
 * undefined, so live flags go in from the guest's and come back whole. */
static bool t_bt(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz, kind = i->sub;
    bool imm = i->op == (SOFT_OP_0F | 0xba), live = i->flags_live;
    /* 32-bit addresses wrap the moved offset before a segment base: left to the
     * interpreter, as is LOCK BT (#UD). */
    if (size == 1 || kind > 3 || (i->mem && !imm && i->asz != 8) || (i->lock && kind == 0))
        return false;
    ACCEPT(c);
    unsigned bits = size * 8, shift = size == 2 ? 4 : size == 4 ? 5 : 6;
    if (live)
        emit_flags_save(c);
    if (i->mem) {
        jit_emit_ea(c, i, true);
        if (!imm) {
            /* RSI += (signed offset >> log2(bits)) * size */
            struct jx_rm off = jit_greg(i->reg, size);
            if (size == 8)
                jx_load_zx(&c->b, 8, JX_RCX, off);
            else if (size == 4)
                jx_op(&c->b, 8, 0x63, 1, JX_RCX, off, false);   /* movsxd rcx, dword */
            else
                jx_op(&c->b, 8, 0x0fbf, 2, JX_RCX, off, false); /* movsx rcx, word */
            jx_op(&c->b, 8, 0xc1, 1, 7, jx_r(JX_RCX), false);   /* sar rcx, shift */
            jx_imm(&c->b, shift, 1);
            jx_op(&c->b, 8, 0x8d, 1, JX_RSI, jx_mx(JX_RSI, JX_RCX, shift - 3, 0), false);
        }
        jit_emit_ptr(c, i, size, kind ? SOFT_ACC_WRITE : SOFT_ACC_READ);
    }
    if (!imm) {
        jx_load_zx(&c->b, size, JX_RCX, jit_greg(i->reg, size));
        jx_alu_mi(&c->b, 4, ALU_AND, jx_r(JX_RCX), bits - 1);
    }
    if (live)
        emit_flags_restore(c);
    if (i->lock)
        jx_byte(&c->b, 0xf0);
    struct jx_rm dst = rm_operand(i, size);
    if (imm) {
        jx_op(&c->b, size, 0x0fba, 2, 4 + kind, dst, false);
        jx_imm(&c->b, i->imm & (bits - 1), 1);
    } else {
        jx_op(&c->b, size, 0x0fa3u | kind << 3, 2, JX_RCX, dst, false);
    }
    if (!i->mem && kind && size == 4) {
        /* a 32-bit register result zero-extends (a MOV: the host flags stay) */
        struct jx_rm hi = jit_greg(i->rm, 8);
        hi.disp += 4;
        jx_op(&c->b, 0, 0xc7, 1, 0, hi, false);
        jx_imm(&c->b, 0, 4);
    }
    record_host_flags_if(c, live);
    return true;
}

/* --- small ones --------------------------------------------------------------------------- */

/* CBW/CWDE/CDQE (98) and CWD/CDQ/CQO (99): the host's, on the guest's RAX. */
static bool t_cbw(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    ACCEPT(c);
    jx_load_zx(&c->b, 8, JX_RAX, jit_greg(SOFT_RAX, 8));
    if (size == 2)
        jx_byte(&c->b, 0x66);
    else if (size == 8)
        jx_byte(&c->b, 0x48);
    jx_byte(&c->b, (uint8_t)i->op);
    if (i->op == 0x98)
        store_reg(c, SOFT_RAX, size);
    else
        jx_store(&c->b, size == 4 ? 8 : size, jit_greg(SOFT_RDX, size), JX_RDX);
    c->fv = c->fv_in;
    return true;
}

/* PUSH imm (6A/68) and PUSH r/m (FF /6), 64-bit. The operand is read before anything moves;
 * a store that rewrote this block runs the handler again (soft_st_slow's contract), which
 * reads the same operand. */
static bool t_push_other(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->osz != 8)
        return false;
    ACCEPT(c);
    if (i->op == 0xff) {
        if (i->mem) {
            emit_rm_ptr(c, i, 8, SOFT_ACC_READ);
        }
        jx_load_zx(&c->b, 8, JX_RAX, rm_operand(i, 8));
    } else {
        jx_mov_ri(&c->b, JX_RAX, i->imm);
    }
    push_rax(c, i);
    return true;
}

/* LEAVE (C9), 64-bit: RBP is loaded from [RBP] before RSP moves. */
static bool t_leave(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->osz != 8)
        return false;
    ACCEPT(c);
    jx_load_zx(&c->b, 8, JX_RSI, jit_greg(SOFT_RBP, 8));
    jit_emit_ptr(c, i, 8, SOFT_ACC_READ);
    jx_load_zx(&c->b, 8, JX_RAX, jx_m(JX_RSI, 0));
    jx_load_zx(&c->b, 8, JX_RCX, jit_greg(SOFT_RBP, 8));
    jx_op(&c->b, 8, 0x8d, 1, JX_RCX, jx_m(JX_RCX, 8), false);
    jx_store(&c->b, 8, jit_greg(SOFT_RSP, 8), JX_RCX);
    jx_store(&c->b, 8, jit_greg(SOFT_RBP, 8), JX_RAX);
    return true;
}

/* PUSHF (9C), 64-bit: the arithmetic flags from the host's right after a translated producer
 * or from the lazy record, the others from cpu->rflags; RF and VM read as 0. */
static bool t_pushf(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->osz != 8)
        return false;
    ACCEPT(c);
    if (c->fv_in == JIT_FLAGS_ALL) {
        jx_byte(&c->b, 0x9c); /* pushfq */
        jx_byte(&c->b, 0x58); /* pop rax */
        jx_alu_mi(&c->b, 4, ALU_AND, jx_r(JX_RAX), SOFT_ARITH_FLAGS);
    } else {
        jit_emit_call(c, (const void *)soft_jit_flags);
    }
    jx_load_zx(&c->b, 8, JX_RCX, jx_m(JIT_CPU, JIT_CPU_OFF(rflags)));
    jx_alu_mi(&c->b, 8, ALU_AND, jx_r(JX_RCX), ~(uint64_t)(SOFT_ARITH_FLAGS | 0x30000));
    jx_alu_rm(&c->b, 8, ALU_OR, JX_RAX, jx_r(JX_RCX));
    jx_alu_mi(&c->b, 8, ALU_OR, jx_r(JX_RAX), 2);
    push_rax(c, i);
    return true;
}

/* CLI (FA) at CPL 0 (blocks are keyed by CPL; elsewhere the IOPL check is the
 * interpreter's). */
static bool t_cli(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->op != 0xfa || c->user || c->cpl != 0)
        return false;
    ACCEPT(c);
    jx_alu_mi(&c->b, 8, ALU_AND, jx_m(JIT_CPU, JIT_CPU_OFF(rflags)), ~(uint64_t)SOFT_IF);
    return true;
}

/* LFENCE, MFENCE, SFENCE (0F AE /5, /6, /7 with a register operand): the host's own. */
static bool t_fence(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->mem || i->sub < 5 || i->pfx != SOFT_PFX_NONE)
        return false;
    ACCEPT(c);
    jx_byte(&c->b, 0x0f);
    jx_byte(&c->b, 0xae);
    jx_byte(&c->b, (uint8_t)(0xc0 | i->sub << 3));
    c->fv = c->fv_in;
    return true;
}

/* BSF, BSR (0F BC/BD): the host's on the whole destination register, so that a zero source
 * leaves it as the host does; ZF is defined, the other flags undefined. */
static bool t_bsf(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    ACCEPT(c);
    emit_rm_ptr(c, i, size, SOFT_ACC_READ);
    jx_load_zx(&c->b, 8, JX_RAX, jit_greg(i->reg, 8));
    jx_op(&c->b, size == 4 ? 0 : size, i->op == (SOFT_OP_0F | 0xbc) ? 0x0fbc : 0x0fbd, 2, JX_RAX,
          rm_operand(i, size), false);
    jx_store(&c->b, size == 4 ? 8 : size, jit_greg(i->reg, size), JX_RAX);
    record_host_flags_if(c, i->flags_live);
    return true;
}

/* SHLD, SHRD (0F A4/A5/AC/AD): the host's, a register destination on the whole register (a
 * 32-bit one is zero-extended even by a zero count, as the host does). A zero count changes
 * no flag, so with CL live flags go in from the guest's; CL forms on memory (a zero count
 * makes no access) and zero immediate counts are the interpreter's. */
static bool t_shxd(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    bool by_cl = i->op & 1, live = i->flags_live;
    if (size == 1 || (by_cl && i->mem) ||
        (!by_cl && (i->imm & (size == 8 ? 63 : 31)) == 0))
        return false;
    ACCEPT(c);
    bool flags_in = by_cl && live;
    if (flags_in)
        emit_flags_save(c);
    emit_rm_ptr(c, i, size, SOFT_ACC_WRITE);
    jx_load_zx(&c->b, size, JX_RDX, jit_greg(i->reg, size));
    if (by_cl)
        jx_load_zx(&c->b, 1, JX_RCX, jit_greg(SOFT_RCX, 1));
    struct jx_rm dst = jx_m(JX_RSI, 0);
    if (!i->mem) {
        jx_load_zx(&c->b, 8, JX_RAX, jit_greg(i->rm, 8));
        dst = jx_r(JX_RAX);
    }
    if (flags_in)
        emit_flags_restore(c);
    jx_op(&c->b, size == 4 ? 0 : size, 0x0f00u | (i->op & 0xff), 2, JX_RDX, dst, false);
    if (!by_cl)
        jx_imm(&c->b, i->imm, 1);
    if (!i->mem)
        jx_store(&c->b, size == 4 ? 8 : size, jit_greg(i->rm, size), JX_RAX);
    record_host_flags_if(c, live);
    return true;
}

/* CMOVcc reg, m: the load happens whatever the condition (and may fault), as on hardware. The
 * condition is taken first (it may call out), kept in cpu->jit_scratch across the probe. */
static bool t_cmov_mem(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned size = i->osz;
    ACCEPT(c);
    struct jx_rm scratch = jx_m(JIT_CPU, JIT_CPU_OFF(jit_scratch));
    unsigned cc = emit_cond(c, i->sub);
    jx_op(&c->b, 0, 0x0f90u | cc, 2, 0, scratch, true); /* setcc byte [scratch] */
    emit_rm_ptr(c, i, size, SOFT_ACC_READ);
    jx_load_zx(&c->b, size, JX_RCX, jx_m(JX_RSI, 0));
    jx_load_zx(&c->b, size, JX_RAX, jit_greg(i->reg, size));
    jx_op(&c->b, 0, 0x80, 1, 7, scratch, true); /* cmp byte [scratch], 0 */
    jx_imm(&c->b, 0, 1);
    jx_op(&c->b, size == 4 ? 0 : size, 0x0f40u | JX_CC_NE, 2, JX_RAX, jx_r(JX_RCX), false);
    store_reg(c, i->reg, size);
    return true;
}

/* MOV r/m, Sreg (8C): the selector; a register gets it zero-extended (16-bit: merged). */
static bool t_mov_sreg(struct jit_ctx *c, const struct soft_insn *i)
{
    ACCEPT(c);
    jx_load_zx(&c->b, 2, JX_RAX, jx_m(JIT_CPU, JIT_CPU_OFF(seg[0].selector) +
                                                 (int32_t)(i->sub * sizeof(struct soft_segment))));
    if (!i->mem) {
        store_reg(c, i->rm, i->osz == 2 ? 2 : 4);
        c->fv = c->fv_in;
        return true;
    }
    jit_emit_ea(c, i, true);
    jit_emit_store(c, i, 2);
    return true;
}

/* SWAPGS (0F 01 F8) at CPL 0: GS.base and IA32_KERNEL_GS_BASE trade places. */
static bool t_swapgs(struct jit_ctx *c, const struct soft_insn *i)
{
    (void)i;
    if (c->user || c->cpl != 0)
        return false;
    ACCEPT(c);
    struct jx_rm gs = jx_m(JIT_CPU, JIT_CPU_OFF(seg[SOFT_GS].base));
    struct jx_rm kgs = jx_m(JIT_CPU, JIT_CPU_OFF(kernel_gs_base));
    jx_load_zx(&c->b, 8, JX_RAX, gs);
    jx_load_zx(&c->b, 8, JX_RCX, kgs);
    jx_store(&c->b, 8, gs, JX_RCX);
    jx_store(&c->b, 8, kgs, JX_RAX);
    c->fv = c->fv_in;
    return true;
}

/* STI (FB) at CPL 0: IF set, the next instruction shielded from interrupts when IF was clear,
 * and the chain budget spent so that the block's end returns to the run loop, which then
 * looks at pending interrupts (the decoder ends the block here). */
static bool t_sti(struct jit_ctx *c, const struct soft_insn *i)
{
    (void)i;
    if (c->user || c->cpl != 0)
        return false;
    ACCEPT(c);
    struct jx_rm rflags = jx_m(JIT_CPU, JIT_CPU_OFF(rflags));
    jx_op(&c->b, 0, 0xf7, 1, 0, rflags, false); /* test dword [rflags], IF */
    jx_imm(&c->b, SOFT_IF, 4);
    uint8_t *was_set = jx_jcc_fwd(&c->b, JX_CC_NE);
    jx_op(&c->b, 0, 0xc6, 1, 0, jx_m(JIT_CPU, JIT_CPU_OFF(irq_shadow)), true);
    jx_imm(&c->b, 1, 1);
    jx_patch(was_set, c->b.p);
    jx_alu_mi(&c->b, 4, ALU_OR, rflags, SOFT_IF);
    jx_op(&c->b, 0, 0xc7, 1, 0, jx_m(JIT_CPU, JIT_CPU_OFF(chain_budget)), false);
    jx_imm(&c->b, 1, 4);
    return true;
}

/* --- SSE moves ---------------------------------------------------------------------------- */

static int32_t xmm_off(unsigned r)
{
    return JIT_CPU_OFF(xmm[0]) + 16 * (int32_t)r;
}

/* movdqu xmm(x), m128 / movdqu m128, xmm(x) (x is 0 or 1: no REX needed) */
static void movdqu(struct jit_ctx *c, bool store, unsigned x, struct jx_rm m)
{
    jx_byte(&c->b, 0xf3);
    jx_op(&c->b, 0, store ? 0x0f7f : 0x0f6f, 2, x, m, false);
}

/* The 128-bit moves (MOVUPS/MOVUPD/MOVDQU and the aligned MOVAPS/MOVAPD/MOVDQA: loads,
 * stores, register copies) and PXOR. Guest XMM registers live in cpu->xmm and pass through
 * the host's XMM0/XMM1, which no caller keeps anything in. An aligned form at a misaligned
 * address is #GP(0), as in the interpreter; stores go through jit_emit_store16(), so pages
 * that are not adjacent on the host, devices and code pages are the interpreter's business
 * as for any store. */
static bool t_sse(struct jit_ctx *c, const struct soft_insn *i)
{
    unsigned op = i->op & 0xff, pfx = i->pfx;
    bool aligned;
    switch (op) {
    case 0x10: case 0x11: /* F3/F2: MOVSS/MOVSD */
        if (pfx != SOFT_PFX_NONE && pfx != SOFT_PFX_66)
            return false;
        aligned = false;
        break;
    case 0x28: case 0x29:
        if (pfx != SOFT_PFX_NONE && pfx != SOFT_PFX_66)
            return false;
        aligned = true;
        break;
    case 0x6f: case 0x7f:
        if (pfx != SOFT_PFX_66 && pfx != SOFT_PFX_F3)
            return false;
        aligned = pfx == SOFT_PFX_66;
        break;
    case 0xef:
        if (pfx != SOFT_PFX_66)
            return false;
        aligned = true;
        break;
    default:
        return false;
    }
    ACCEPT(c);
    bool store = op == 0x11 || op == 0x29 || op == 0x7f;
    int32_t xr = xmm_off(i->reg);
    if (op == 0xef && !i->mem && i->rm == i->reg) { /* PXOR x, x: the zeroing idiom */
        jx_op(&c->b, 8, 0xc7, 1, 0, jx_m(JIT_CPU, xr), false);
        jx_imm(&c->b, 0, 4);
        jx_op(&c->b, 8, 0xc7, 1, 0, jx_m(JIT_CPU, xr + 8), false);
        jx_imm(&c->b, 0, 4);
        c->fv = c->fv_in;
        return true;
    }
    struct jx_rm rm;
    if (i->mem) {
        jit_emit_ea(c, i, true);
        if (aligned) {
            jx_op(&c->b, 0, 0xf6, 1, 0, jx_r(JX_RSI), true); /* test sil, 15 */
            jx_imm(&c->b, 15, 1);
            uint8_t *ok = jx_jcc_fwd(&c->b, JX_CC_E);
            jit_emit_raise(c, i, SOFT_EXC_GP);
            jx_patch(ok, c->b.p);
        }
        if (store) {
            jit_emit_store16(c, i, xr);
            return true;
        }
        jit_emit_ptr(c, i, 16, SOFT_ACC_READ);
        rm = jx_m(JX_RSI, 0);
    } else {
        rm = jx_m(JIT_CPU, xmm_off(i->rm));
        c->fv = c->fv_in;
    }
    if (op == 0xef) {
        movdqu(c, false, 1, rm);
        movdqu(c, false, 0, jx_m(JIT_CPU, xr));
        jx_byte(&c->b, 0x66); /* pxor xmm0, xmm1 */
        jx_op(&c->b, 0, 0x0fef, 2, 0, jx_r(1), false);
        movdqu(c, true, 0, jx_m(JIT_CPU, xr));
    } else if (store) { /* a register destination: rm <- reg */
        movdqu(c, false, 0, jx_m(JIT_CPU, xr));
        movdqu(c, true, 0, rm);
    } else {
        movdqu(c, false, 0, rm);
        movdqu(c, true, 0, jx_m(JIT_CPU, xr));
    }
    return true;
}

/* CMPXCHG16B m128 (REX.W 0F C7 /1), LOCKed or not: the host's LOCK CMPXCHG16B, atomic as
 * other vCPU threads must see it (SLUB updates freelist and counter pairs with it). Its new
 * value's low half is RBX, the compiler's CPU pointer, which waits in R11 meanwhile. Only ZF
 * changes, so live flags go in from the guest's and come back whole. */
static bool t_cmpxchg16b(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->osz != 8 || !i->mem)
        return false; /* CMPXCHG8B: rare in 64-bit code */
    ACCEPT(c);
    bool live = i->flags_live;
    if (live)
        emit_flags_save(c);
    jit_emit_ea(c, i, true);
    jx_op(&c->b, 0, 0xf6, 1, 0, jx_r(JX_RSI), true); /* test sil, 15 */
    jx_imm(&c->b, 15, 1);
    uint8_t *aligned = jx_jcc_fwd(&c->b, JX_CC_E);
    jit_emit_raise(c, i, SOFT_EXC_GP);
    jx_patch(aligned, c->b.p);
    jit_emit_ptr(c, i, 16, SOFT_ACC_WRITE);
    if (live)
        emit_flags_restore(c);
#define GREG(r) jx_m(JX_R11, JIT_CPU_OFF(regs) + 8 * (r))
    jx_mov_rr(&c->b, JX_R11, JIT_CPU);
    jx_load_zx(&c->b, 8, JX_RAX, GREG(SOFT_RAX));
    jx_load_zx(&c->b, 8, JX_RDX, GREG(SOFT_RDX));
    jx_load_zx(&c->b, 8, JX_RCX, GREG(SOFT_RCX));
    jx_load_zx(&c->b, 8, JX_RBX, GREG(SOFT_RBX));
    jx_byte(&c->b, 0xf0);
    jx_op(&c->b, 8, 0x0fc7, 2, 1, jx_m(JX_RSI, 0), false); /* lock cmpxchg16b [rsi] */
    jx_mov_rr(&c->b, JIT_CPU, JX_R11);
#undef GREG
    uint8_t *equal = jx_jcc_fwd(&c->b, JX_CC_E);
    jx_store(&c->b, 8, jit_greg(SOFT_RAX, 8), JX_RAX); /* a mismatch loads RDX:RAX */
    jx_store(&c->b, 8, jit_greg(SOFT_RDX, 8), JX_RDX);
    jx_patch(equal, c->b.p);
    record_host_flags_if(c, live);
    return true;
}

bool jit_translate(struct jit_ctx *c, const struct soft_insn *i)
{
    if (i->fn == soft_exec_ud || (i->mem && i->asz != 8 && i->asz != 4))
        return false;
    if (i->lock)
        return t_locked(c, i);
    if (i->fn == soft_nop) {
        ACCEPT(c);
        c->fv = c->fv_in;
        return true;
    }
    if (i->fn == soft_xchg_rm_reg) /* 86/87 and 90-97 */
        return t_xchg(c, i);
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
        if (i->sub < 4)
            return t_not_neg(c, i);
        if (i->sub < 6)
            return t_mul(c, i);
        return i->sub == 6 && t_div(c, i);
    case 0xfe: case 0xff:
        if (i->sub < 2)
            return t_incdec(c, i);
        if (op == 0xff && i->sub == 6)
            return t_push_other(c, i);
        return op == 0xff && (i->sub == 2 || i->sub == 4) && t_indirect(c, i);
    case 0x68: case 0x6a:
        return t_push_other(c, i);
    case 0x98: case 0x99:
        return t_cbw(c, i);
    case 0x9c:
        return t_pushf(c, i);
    case 0xc9:
        return t_leave(c, i);
    case 0xfa: case 0xfb:
        return i->op == 0xfa ? t_cli(c, i) : t_sti(c, i);
    case 0x8c:
        return i->fn == soft_mov_rm_sreg && t_mov_sreg(c, i);
    case SOFT_OP_0F | 0x01:
        return i->fn == soft_swapgs && t_swapgs(c, i);
    case SOFT_OP_0F | 0xbc: case SOFT_OP_0F | 0xbd:
        return (i->fn == soft_bsf || i->fn == soft_bsr) && t_bsf(c, i);
    case SOFT_OP_0F | 0xa4: case SOFT_OP_0F | 0xa5: case SOFT_OP_0F | 0xac:
    case SOFT_OP_0F | 0xad:
        return t_shxd(c, i);
    case SOFT_OP_0F | 0xae:
        return t_fence(c, i);
    case SOFT_OP_0F | 0x10: case SOFT_OP_0F | 0x11: case SOFT_OP_0F | 0x28:
    case SOFT_OP_0F | 0x29: case SOFT_OP_0F | 0x6f: case SOFT_OP_0F | 0x7f:
    case SOFT_OP_0F | 0xef:
        return t_sse(c, i);
    case SOFT_OP_0F | 0xa3: case SOFT_OP_0F | 0xab: case SOFT_OP_0F | 0xb3:
    case SOFT_OP_0F | 0xbb: case SOFT_OP_0F | 0xba:
        return t_bt(c, i);
    case SOFT_OP_0F | 0xc0: case SOFT_OP_0F | 0xc1:
        return t_xadd(c, i);
    case SOFT_OP_0F | 0xb0: case SOFT_OP_0F | 0xb1:
        return t_cmpxchg(c, i);
    case SOFT_OP_0F | 0xc7:
        return i->fn == soft_cmpxchg8b16b && t_cmpxchg16b(c, i);
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
