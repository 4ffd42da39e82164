/* The jit family of the differential tests: random 64-bit sequences of the instructions the
 * block compiler translates (src/accel/soft/jit_insn.c), with every memory form the harness
 * can reach, run as whole blocks through soft_cpu_run (see diff_gen.h, gen.block).
 *
 * Register roles (jit_init_regs), so that every memory operand stays in the window:
 *   RBP R12 R13  pointers into the window (never written);
 *   RSI          a small index (never written);
 *   R9           a pointer in its low 32 bits under random high bits: a base with 67 only;
 *   RSP          a stack in the window (PUSH/POP, CALL/RET);
 *   RAX RCX RDX RBX RDI R8 R10 R11 R14 R15  data: any instruction may write them.
 * The generator tracks which arithmetic flags are undefined after each instruction (shift
 * counts above 1, logic ops' AF, IMUL...) so that conditions read only defined ones and the
 * final compare masks the rest. */
#include "diff_gen.h"

#include <string.h>

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
#define HI8 16 /* byte registers AH CH DH BH: 16..19 (no REX allowed) */

static const unsigned data_regs[] = {RAX, RCX, RDX, RBX, RDI, R8, R10, R11, R14, R15};
#define NDATA (sizeof(data_regs) / sizeof(data_regs[0]))

/* A data register that the sequence may write: not the loop counter while a loop is open. */
static int reserved = -1;

static unsigned dreg(struct rng *r)
{
    unsigned v;
    do {
        v = data_regs[rn(r, NDATA)];
    } while ((int)v == reserved);
    return v;
}

/* Memory operands that fault: at most this many more in the sequence. */
static unsigned fault_budget;

void jit_init_regs(struct rng *r, uint64_t regs[16])
{
    uint64_t mem = diff_mem_addr;
    regs[RBP] = mem + 8 * rn(r, 8);
    regs[R12] = mem + 64 + rn(r, 64);
    regs[R13] = mem + rn(r, 64);
    regs[RSI] = rn(r, 24);
    regs[R9] = (rnd(r) << 32 | 1ull << 63) | (mem + rn(r, 64));
    regs[RSP] = mem + JIT_STACK_OFF - 8 * rn(r, 16) - (rn(r, 8) == 0 ? 4 : 0);
}

/* --- operands ----------------------------------------------------------------------------- */

struct mspec {
    int seg;          /* 0, 0x64 (FS) or 0x65 (GS) */
    int a32;          /* 67 prefix */
    int base, index;  /* -1: none; index with scale (0..3) */
    unsigned scale;
    int32_t disp;
    unsigned dsz;     /* 0, 1 or 4 bytes of displacement */
    int rip;          /* RIP-relative: disp is the offset into the window */
};

static struct {
    unsigned at;   /* position of a RIP-relative disp32 to patch, or 0 */
    uint64_t target;
} pend;

static uint64_t win(unsigned off)
{
    return diff_mem_addr + off;
}

/* A memory operand of size bytes in the window. norex: encodable without REX (the instruction
 * has AH..BH); ro: only read (FS-relative loads of the host TCB allowed). */
static void pick_mem(struct rng *r, struct mspec *m, int norex, int ro)
{
    memset(m, 0, sizeof(*m));
    m->base = m->index = -1;
    if (fault_budget && !norex && rn(r, 4) == 0) {
        /* [r9 + disp8] without 67: R9's high half makes it non-canonical, #GP. Everything
         * before must have been committed, nothing of this instruction (diff.c compares the
         * registers and memory at the fault). Not without REX: R9 would be RCX, a data
         * register, whose address may be mapped in the host process (ASan's shadow). */
        fault_budget--;
        m->base = R9;
        m->disp = (int32_t)rn(r, 128);
        m->dsz = 1;
        return;
    }
    if (rn(r, 16) == 0) {
        /* [disp32] just below the window's page: accesses crossing into it (slow path) */
        m->disp = (int32_t)win(0) - (int32_t)rn(r, 8);
        m->dsz = 4;
        return;
    }
    for (;;) {
        unsigned kind = rn(r, 12);
        if (norex && (kind == 1 || kind == 2 || kind == 4 || kind == 8))
            continue;
        if (kind == 11 && !ro)
            continue;
        switch (kind) {
        case 0: /* [rbp + disp8] */
            m->base = RBP;
            m->disp = (int32_t)rn(r, 128);
            m->dsz = 1;
            return;
        case 1: /* [r12 + disp8], negative too; or disp32 */
            m->base = R12;
            m->disp = (int32_t)rn(r, 192) - 64;
            m->dsz = rn(r, 4) ? 1 : 4;
            return;
        case 2: /* [r13 + disp8/32] (mod 00 would be RIP-relative) */
            m->base = R13;
            m->disp = (int32_t)rn(r, 200);
            m->dsz = m->disp < 128 && rn(r, 3) ? 1 : 4;
            return;
        case 3: { /* [base + rsi * s + disp] */
            static const int bases[] = {RBP, R12, R13, RSP};
            m->base = norex ? RBP : bases[rn(r, 4)];
            m->index = RSI;
            m->scale = rn(r, 4);
            m->disp = (int32_t)rn(r, 100);
            m->dsz = m->disp == 0 && m->base != RBP && m->base != R13 && rn(r, 2) ? 0
                     : rn(r, 4) ? 1 : 4;
            return;
        }
        case 4: /* [r12] / [rsp] with mod 00 (SIB) */
            m->base = rn(r, 2) ? R12 : RSP;
            return;
        case 5: /* [rsi * s + disp32], no base */
            m->index = RSI;
            m->scale = rn(r, 4);
            m->disp = (int32_t)win(rn(r, 300));
            m->dsz = 4;
            return;
        case 6: /* [disp32] through a SIB without base and index */
            m->disp = (int32_t)win(rn(r, 500));
            m->dsz = 4;
            return;
        case 7: /* [rip + disp32] */
            m->rip = 1;
            m->disp = (int32_t)rn(r, 500);
            m->dsz = 4;
            return;
        case 8: /* 67: [r9d + disp8] or [r9d + esi * s + disp8]: R9's high half must go */
            m->a32 = 1;
            m->base = R9;
            m->index = rn(r, 2) ? RSI : -1;
            m->scale = rn(r, 4);
            m->disp = (int32_t)rn(r, 128);
            m->dsz = 1;
            return;
        case 9: /* 67 with clean registers: [ebp + esi * s + disp8], [disp32] */
            m->a32 = 1;
            if (rn(r, 2)) {
                m->base = RBP;
                m->index = rn(r, 2) ? RSI : -1;
                m->scale = rn(r, 4);
                m->disp = (int32_t)rn(r, 128);
                m->dsz = 1;
            } else {
                m->disp = (int32_t)win(rn(r, 500));
                m->dsz = 4;
            }
            return;
        case 10: /* GS (based in the window): [gs: rsi * s + disp32] or [gs: disp32] */
            m->seg = 0x65;
            m->a32 = rn(r, 4) == 0;
            m->index = rn(r, 2) ? RSI : -1;
            m->scale = rn(r, 4);
            m->disp = (int32_t)rn(r, 64);
            m->dsz = 4;
            return;
        default: /* FS: the host's TCB (self pointers, stack canary), loads only */
            m->seg = 0x64;
            m->disp = (int32_t)(unsigned[]){0, 0x10, 0x28}[rn(r, 3)];
            m->dsz = 4;
            return;
        }
    }
}

/* One instruction: [seg] [66] [67] [REX] opcode ModRM [SIB] [disp]; the caller appends the
 * immediate and then calls end_insn(). regf: register (0-15, HI8+k) or digit; rm_reg >= 0 for a
 * register operand, else m. size 1 makes register numbers byte registers; rm_byte makes rm_reg
 * one (MOVZX/MOVSX). */
static void emit_insn_x(struct gen *g, unsigned size, const uint8_t *op, unsigned nop,
                        unsigned regf, int rm_reg, const struct mspec *m, int force_rex,
                        int rm_byte)
{
    int hi = regf >= HI8 || rm_reg >= HI8;
    /* SPL BPL SIL DIL need a REX (for a digit in regf it is harmless) */
    int need40 = (size == 1 && regf >= 4 && regf <= 7) ||
                 ((size == 1 || rm_byte) && rm_reg >= 4 && rm_reg <= 7);
    pend.at = 0;
    if (rm_reg < 0 && m->seg)
        emit(g, (unsigned)m->seg);
    if (size == 2)
        emit(g, 0x66);
    if (rm_reg < 0 && m->a32)
        emit(g, 0x67);
    unsigned rf = regf >= HI8 ? regf - HI8 + 4 : regf;
    unsigned rex = (size == 8 ? 8u : 0u) | ((rf & 8) ? 4u : 0u);
    if (rm_reg >= 0) {
        rex |= ((unsigned)rm_reg < HI8 && (rm_reg & 8)) ? 1u : 0u;
    } else {
        if (m->base >= 0 && (m->base & 8))
            rex |= 1;
        if (m->index >= 0 && (m->index & 8))
            rex |= 2;
    }
    if (!hi && (rex || need40 || force_rex))
        emit(g, 0x40 | rex);
    for (unsigned k = 0; k < nop; k++)
        emit(g, op[k]);
    if (rm_reg >= 0) {
        unsigned rr = (unsigned)rm_reg >= HI8 ? (unsigned)rm_reg - HI8 + 4 : (unsigned)rm_reg;
        emit(g, 0xc0 | (rf & 7) << 3 | (rr & 7));
        return;
    }
    unsigned reg3 = (rf & 7) << 3;
    if (m->rip) {
        emit(g, 0x05 | reg3);
        pend.at = g->len;
        pend.target = win((unsigned)m->disp);
        emit_n(g, 0, 4);
        return;
    }
    unsigned mod = m->dsz == 0 ? 0 : m->dsz == 1 ? 1 : 2;
    if (m->base < 0) {
        emit(g, 0x04 | reg3);
        unsigned idx = m->index < 0 ? 4u : (unsigned)m->index & 7;
        emit(g, m->scale << 6 | idx << 3 | 5);
        emit_n(g, (uint32_t)m->disp, 4);
        return;
    }
    if (m->index < 0 && (m->base & 7) != 4) {
        emit(g, mod << 6 | reg3 | (m->base & 7));
    } else {
        emit(g, mod << 6 | reg3 | 4);
        unsigned idx = m->index < 0 ? 4u : (unsigned)m->index & 7;
        emit(g, m->scale << 6 | idx << 3 | (m->base & 7));
    }
    if (mod == 1)
        emit(g, (uint8_t)m->disp);
    else if (mod == 2)
        emit_n(g, (uint32_t)m->disp, 4);
}

static void emit_insn(struct gen *g, unsigned size, const uint8_t *op, unsigned nop,
                      unsigned regf, int rm_reg, const struct mspec *m, int force_rex)
{
    emit_insn_x(g, size, op, nop, regf, rm_reg, m, force_rex, 0);
}

/* After the immediate: the RIP-relative displacement is relative to the instruction's end. */
static void end_insn(struct gen *g)
{
    if (!pend.at)
        return;
    uint64_t next = diff_code_addr + g->len;
    uint32_t d = (uint32_t)(pend.target - next);
    memcpy(&g->code[pend.at], &d, 4);
    pend.at = 0;
}

/* --- state of the generator --------------------------------------------------------------- */

struct jstate {
    uint32_t undef; /* arithmetic flags undefined now */
    unsigned pushed;
};

static const uint32_t cc_reads[8] = {F_OF, F_CF, F_ZF, F_CF | F_ZF, F_SF, F_PF, F_SF | F_OF,
                                     F_ZF | F_SF | F_OF};

/* A condition that reads only defined flags, or -1. prefer: a mask the condition should read
 * (tried first). */
static int pick_cc(struct rng *r, const struct jstate *s, uint32_t prefer)
{
    for (int t = 0; t < 24; t++) {
        unsigned cc = rn(r, 16);
        if (t < 12 && prefer && !(cc_reads[cc >> 1] & prefer))
            continue;
        if (!(cc_reads[cc >> 1] & s->undef))
            return (int)cc;
    }
    return -1;
}

static unsigned pick_size(struct rng *r)
{
    return (unsigned[]){1, 2, 4, 8}[rn(r, 4)];
}

/* Operand registers of one instruction. size 1: hi says AH..BH may appear (then no REX). */
struct regs2 {
    int hi;
    unsigned dst;  /* a data register (byte: a writable byte register) */
    unsigned src, src2; /* any register */
};

static void pick_regs(struct rng *r, unsigned size, struct regs2 *p)
{
    p->hi = size == 1 && rn(r, 3) == 0;
    if (p->hi) {
        static const unsigned low[] = {RAX, RCX, RDX, RBX, HI8, HI8 + 1, HI8 + 2, HI8 + 3};
        p->dst = low[rn(r, 8)];
        p->src = low[rn(r, 8)];
        p->src2 = low[rn(r, 8)];
        return;
    }
    p->dst = dreg(r);
    p->src = rn(r, 16);
    p->src2 = rn(r, 16);
}

static unsigned imm_bytes(unsigned size)
{
    return size == 1 ? 1 : size == 2 ? 2 : 4;
}

/* --- instructions ------------------------------------------------------------------------- */

/* ALU op (0-7) in one of its forms; reads/writes per op. */
static void i_alu(struct rng *r, struct gen *g, struct jstate *s, int op)
{
    if (op < 0) {
        static const int ops[] = {0, 1, 4, 5, 6, 7, 0, 5, 7, 7};
        op = ops[rn(r, 10)];
        if ((s->undef & F_CF) == 0 && rn(r, 12) == 0)
            op = 2 + (int)rn(r, 2); /* ADC/SBB: read CF (host CF or the lazy record) */
    }
    unsigned size = pick_size(r), form = rn(r, 5);
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    int cmp = op == 7, mem = rn(r, 2);
    pick_mem(r, &m, p.hi, cmp || form == 1);
    uint8_t b;
    switch (form) {
    case 0: /* op r/m, r */
        b = (uint8_t)(op * 8 + (size != 1));
        emit_insn(g, size, &b, 1, p.src, mem ? -1 : (int)(cmp ? p.src2 : p.dst), &m,
                  rn(r, 5) == 0 && !p.hi);
        break;
    case 1: /* op r, r/m */
        b = (uint8_t)(op * 8 + 2 + (size != 1));
        emit_insn(g, size, &b, 1, cmp ? p.src : p.dst, mem ? -1 : (int)p.src, &m, 0);
        break;
    case 2: /* accumulator, immediate */
        if (size == 2)
            emit(g, 0x66);
        if (size == 8)
            emit(g, 0x48);
        emit(g, (unsigned)op * 8 + 4 + (size != 1));
        emit_n(g, rval(r), imm_bytes(size));
        break;
    default: { /* 80 / 81 / 83 */
        b = (uint8_t)(size == 1 ? 0x80 : rn(r, 2) ? 0x83 : 0x81);
        emit_insn(g, size, &b, 1, (unsigned)op, mem ? -1 : (int)(cmp ? p.src2 : p.dst), &m,
                  0);
        emit_n(g, rval(r), b == 0x81 ? imm_bytes(size) : 1);
        break;
    }
    }
    end_insn(g);
    int logic = op == 1 || op == 4 || op == 6;
    s->undef = logic ? F_AF : 0;
}

static void i_test(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = pick_size(r), form = rn(r, 3);
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    pick_mem(r, &m, p.hi, 1);
    int mem = rn(r, 2);
    unsigned rm = p.src2;
    if (form == 0) {
        uint8_t b = (uint8_t)(0x84 + (size != 1));
        emit_insn(g, size, &b, 1, p.src, mem ? -1 : (int)rm, &m, 0);
    } else if (form == 1) {
        if (size == 2)
            emit(g, 0x66);
        if (size == 8)
            emit(g, 0x48);
        emit(g, 0xa8 + (size != 1));
        emit_n(g, rval(r), imm_bytes(size));
    } else {
        uint8_t b = (uint8_t)(0xf6 + (size != 1));
        emit_insn(g, size, &b, 1, rn(r, 8) == 0 ? 1 : 0, mem ? -1 : (int)rm, &m, 0);
        emit_n(g, rval(r), imm_bytes(size));
    }
    end_insn(g);
    s->undef = F_AF;
}

static void i_unary(struct rng *r, struct gen *g, struct jstate *s, int which)
{
    unsigned size = pick_size(r), k = which >= 0 ? (unsigned)which : rn(r, 4); /* INC DEC NOT NEG */
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    pick_mem(r, &m, p.hi, 0);
    int mem = rn(r, 2);
    uint8_t b = (uint8_t)((k < 2 ? 0xfe : 0xf6) + (size != 1));
    emit_insn(g, size, &b, 1, k, mem ? -1 : (int)p.dst, &m, rn(r, 5) == 0 && !p.hi);
    end_insn(g);
    if (k < 2)
        s->undef &= F_CF;
    else if (k == 3)
        s->undef = 0;
}

static void i_mov(struct rng *r, struct gen *g)
{
    unsigned size = pick_size(r), form = rn(r, 5);
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    int mem = rn(r, 3) != 0;
    uint8_t b;
    switch (form) {
    case 0: /* 88/89: r/m <- r */
        pick_mem(r, &m, p.hi, 0);
        b = (uint8_t)(0x88 + (size != 1));
        emit_insn(g, size, &b, 1, p.src, mem ? -1 : (int)p.dst, &m, 0);
        break;
    case 1: /* 8A/8B: r <- r/m */
        pick_mem(r, &m, p.hi, 1);
        b = (uint8_t)(0x8a + (size != 1));
        emit_insn(g, size, &b, 1, p.dst, mem ? -1 : (int)p.src, &m, 0);
        break;
    case 2: /* C6/C7 /0 */
        pick_mem(r, &m, p.hi, 0);
        b = (uint8_t)(0xc6 + (size != 1));
        emit_insn(g, size, &b, 1, 0, mem ? -1 : (int)p.dst, &m, 0);
        emit_n(g, rval(r), imm_bytes(size));
        break;
    default: { /* B0+r / B8+r (imm64 with REX.W) */
        unsigned d = p.dst, code = d >= HI8 ? d - HI8 + 4 : d;
        if (size == 2)
            emit(g, 0x66);
        unsigned rex = (size == 8 ? 8u : 0u) | ((code & 8) ? 1u : 0u);
        if (d < HI8 && (rex || (size == 1 && code >= 4 && code <= 7) || rn(r, 6) == 0))
            emit(g, 0x40 | rex);
        emit(g, (size == 1 ? 0xb0 : 0xb8) + (code & 7));
        emit_n(g, rval(r), size);
        break;
    }
    }
    end_insn(g);
}

static void i_lea(struct rng *r, struct gen *g)
{
    unsigned size = (unsigned[]){2, 4, 8, 8}[rn(r, 4)];
    if (rn(r, 5) == 0) {
        /* lea d, [rip + disp32] anywhere: from the code page (below 2 GiB) up to 4 GiB, an
         * absolute address beyond a sign-extended imm32 (the compiler's 64-bit disp path) */
        unsigned d = dreg(r);
        if (size == 2)
            emit(g, 0x66);
        emit(g, 0x40 | (size == 8 ? 8 : 0) | ((d & 8) ? 4 : 0));
        emit(g, 0x8d);
        emit(g, 0x05 | (d & 7) << 3);
        emit_n(g, rn(r, 2) ? 0x7f000000u + rn(r, 0xffffff) : (uint32_t)rnd(r), 4);
        return;
    }
    struct mspec m;
    pick_mem(r, &m, 0, 1); /* a segment override is ignored by LEA */
    uint8_t b = 0x8d;
    emit_insn(g, size, &b, 1, dreg(r), -1, &m, 0);
    end_insn(g);
}

static void i_movx(struct rng *r, struct gen *g)
{
    unsigned size = (unsigned[]){2, 4, 8, 8, 4}[rn(r, 5)];
    unsigned k = rn(r, 5);
    struct mspec m;
    int mem = rn(r, 2);
    if (k == 4) { /* MOVSXD (without REX.W: a 32-bit move) */
        pick_mem(r, &m, 0, 1);
        uint8_t b = 0x63;
        emit_insn_x(g, rn(r, 6) ? 8 : 4, &b, 1, dreg(r),
                    mem ? -1 : (int)rn(r, 16), &m, 0, 0);
        end_insn(g);
        return;
    }
    uint8_t ob[2] = {0x0f, (uint8_t)((k & 2 ? 0xbe : 0xb6) + (k & 1))};
    int byte_src = !(k & 1);
    /* A byte source may be AH..BH only without REX: a low destination, not 64-bit. */
    int hi = byte_src && size != 8 && rn(r, 3) == 0;
    pick_mem(r, &m, hi, 1);
    unsigned dst = hi ? (unsigned[]){RAX, RCX, RDX, RBX}[rn(r, 4)] : dreg(r);
    int src = mem ? -1 : hi ? (int)(HI8 + rn(r, 4)) : (int)rn(r, 16);
    emit_insn_x(g, size, ob, 2, dst, src, &m, rn(r, 6) == 0 && !hi, byte_src);
    end_insn(g);
}

static void i_shift(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = pick_size(r), bits = size * 8;
    static const unsigned kinds[] = {0, 1, 4, 5, 6, 7, 4, 5, 7};
    unsigned kind = kinds[rn(r, 9)];
    if (!(s->undef & F_CF) && rn(r, 10) == 0)
        kind = 2 + rn(r, 2); /* RCL/RCR: interpreted, read CF */
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    pick_mem(r, &m, p.hi, 0);
    int mem = rn(r, 3) == 0, one = rn(r, 4) == 0, by_cl = !one && rn(r, 3) == 0;
    if (by_cl && kind < 4 && kind >= 2)
        by_cl = 0;
    unsigned count = one ? 1 : rn(r, 5) == 0 ? rn(r, 256) : 1 + rn(r, bits);
    uint8_t b = (uint8_t)((one ? 0xd0 : by_cl ? 0xd2 : 0xc0) + (size != 1));
    emit_insn(g, size, &b, 1, kind, mem ? -1 : (int)p.dst, &m, 0);
    if (!one && !by_cl)
        emit(g, count);
    end_insn(g);
    if (by_cl) {
        /* The count is CL's, unknown here: a zero count keeps the old flags, any other
         * defines ZF/SF/PF; OF, AF and (past the operand size) CF may be undefined. */
        s->undef |= F_OF | F_AF | F_CF;
        return;
    }
    unsigned masked = count & (size == 8 ? 63 : 31);
    if (masked == 0)
        return;
    if (kind < 4) {
        s->undef = (s->undef & ~(F_CF | F_OF)) | (masked == 1 ? 0 : F_OF);
        return;
    }
    s->undef = F_AF | (masked == 1 ? 0 : F_OF) | (masked >= bits ? F_CF : 0);
}

static void i_push(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned reg = rn(r, 16);
    if (rn(r, 10) == 0) { /* PUSH imm8 / imm32 (interpreted) */
        if (rn(r, 2)) {
            emit(g, 0x6a);
            emit(g, rn(r, 256));
        } else {
            emit(g, 0x68);
            emit_n(g, rval(r), 4);
        }
        s->pushed++;
        return;
    }
    if (reg & 8)
        emit(g, 0x41);
    else if (rn(r, 6) == 0)
        emit(g, 0x40);
    emit(g, 0x50 + (reg & 7));
    s->pushed++;
}

static void i_pop(struct rng *r, struct gen *g, struct jstate *s)
{
    if (rn(r, 8) == 0) { /* PUSH RSP; POP RSP (loads the value pushed, not RSP + 8) */
        emit(g, 0x54);
        emit(g, 0x5c);
        return;
    }
    if (rn(r, 8) == 0) { /* PUSH m64 / POP m64 (FF /6, 8F /0: interpreted) */
        struct mspec m;
        pick_mem(r, &m, 0, 0);
        uint8_t b = 0xff;
        emit_insn(g, 4, &b, 1, 6, -1, &m, 0);
        end_insn(g);
        pick_mem(r, &m, 0, 0);
        b = 0x8f;
        emit_insn(g, 4, &b, 1, 0, -1, &m, 0);
        end_insn(g);
        return;
    }
    unsigned reg = dreg(r);
    if (reg & 8)
        emit(g, 0x41);
    emit(g, 0x58 + (reg & 7));
    if (s->pushed)
        s->pushed--;
}

/* PUSH r16 ... POP r16 (66: interpreted, RSP moves by 2). */
static void i_push_pop16(struct rng *r, struct gen *g)
{
    unsigned a = rn(r, 16), d = dreg(r);
    emit(g, 0x66);
    if (a & 8)
        emit(g, 0x41);
    emit(g, 0x50 + (a & 7));
    emit(g, 0x66);
    if (d & 8)
        emit(g, 0x41);
    emit(g, 0x58 + (d & 7));
}

static void i_cmov(struct rng *r, struct gen *g, const struct jstate *s, uint32_t prefer)
{
    int cc = pick_cc(r, s, prefer);
    if (cc < 0)
        return;
    unsigned size = (unsigned[]){2, 4, 8}[rn(r, 3)];
    uint8_t ob[2] = {0x0f, (uint8_t)(0x40 + cc)};
    struct mspec m;
    pick_mem(r, &m, 0, 1);
    int mem = rn(r, 6) == 0;
    emit_insn(g, size, ob, 2, dreg(r), mem ? -1 : (int)rn(r, 16), &m, 0);
    end_insn(g);
}

static void i_setcc(struct rng *r, struct gen *g, const struct jstate *s, uint32_t prefer)
{
    int cc = pick_cc(r, s, prefer);
    if (cc < 0)
        return;
    uint8_t ob[2] = {0x0f, (uint8_t)(0x90 + cc)};
    struct regs2 p;
    pick_regs(r, 1, &p);
    struct mspec m;
    pick_mem(r, &m, p.hi, 0);
    int mem = rn(r, 3) == 0;
    emit_insn(g, 1, ob, 2, 0, mem ? -1 : (int)p.dst, &m, 0);
    end_insn(g);
}

static void i_imul(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = (unsigned[]){2, 4, 8}[rn(r, 3)], form = rn(r, 3);
    struct mspec m;
    pick_mem(r, &m, 0, 1);
    int mem = rn(r, 3) == 0;
    unsigned dst = dreg(r);
    int src = mem ? -1 : (int)rn(r, 16);
    if (form == 0) {
        uint8_t ob[2] = {0x0f, 0xaf};
        emit_insn(g, size, ob, 2, dst, src, &m, 0);
    } else {
        uint8_t b = form == 1 ? 0x69 : 0x6b;
        emit_insn(g, size, &b, 1, dst, src, &m, 0);
        emit_n(g, rval(r), form == 1 ? imm_bytes(size) : 1);
    }
    end_insn(g);
    s->undef = F_SF | F_ZF | F_AF | F_PF;
    if (rn(r, 2))
        i_alu(r, g, s, -1); /* flags dead at the IMUL: the compiled form (it has no other) */
}

static void i_bswap(struct rng *r, struct gen *g)
{
    unsigned d = dreg(r), w = rn(r, 2);
    if (w || (d & 8))
        emit(g, 0x40 | (w ? 8 : 0) | ((d & 8) ? 1 : 0));
    emit(g, 0x0f);
    emit(g, 0xc8 + (d & 7));
}

static void i_nop(struct rng *r, struct gen *g)
{
    if (rn(r, 2)) {
        emit(g, 0x90);
        return;
    }
    struct mspec m;
    pick_mem(r, &m, 0, 1);
    uint8_t ob[2] = {0x0f, 0x1f};
    emit_insn(g, rn(r, 2) ? 2 : 4, ob, 2, 0, -1, &m, 0);
    end_insn(g);
}

/* Instructions the compiler leaves to the interpreter, between compiled ones. */
static void i_other(struct rng *r, struct gen *g, struct jstate *s)
{
    switch (rn(r, 4)) {
    case 0: /* SAHF: SF ZF AF PF CF from AH, OF kept */
        emit(g, 0x9e);
        s->undef &= F_OF;
        break;
    case 1: { /* RCL/RCR r, 1: reads CF, sets CF and OF */
        if (s->undef & F_CF) {
            emit(g, 0xf8 + rn(r, 2));
            s->undef &= ~F_CF;
        }
        unsigned d = dreg(r);
        emit(g, 0x48 | ((d & 8) ? 1 : 0));
        emit(g, 0xd1);
        emit(g, (rn(r, 2) ? 0xd0 : 0xd8) | (d & 7));
        s->undef &= ~(F_CF | F_OF);
        break;
    }
    case 2: { /* LOCK ADC/SBB m, r (the compiler takes the other LOCKed ALU ops) */
        struct mspec m;
        pick_mem(r, &m, 0, 0);
        if (s->undef & F_CF) {
            emit(g, 0xf8 + rn(r, 2));
            s->undef &= ~F_CF;
        }
        emit(g, 0xf0);
        uint8_t b = rn(r, 2) ? 0x11 : 0x19;
        emit_insn(g, 4 << rn(r, 2), &b, 1, rn(r, 16), -1, &m, 0);
        end_insn(g);
        s->undef = 0;
        break;
    }
    default: /* CMC / STC / CLC */
        if (s->undef & F_CF) {
            emit(g, 0xf8 + rn(r, 2));
            s->undef &= ~F_CF;
        } else {
            emit(g, 0xf5);
        }
        break;
    }
}

/* The atomics: LOCKed ALU ops and INC/DEC/NOT/NEG on memory, XCHG (memory, implicitly locked,
 * or registers), XADD, CMPXCHG and CMPXCHG16B on memory, LOCKed or not (the compares
 * sometimes after a load of their accumulator from the same place, so that they succeed). */
static void i_atomic(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = pick_size(r);
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    pick_mem(r, &m, p.hi, 0);
    uint8_t b;
    switch (rn(r, 7)) {
    case 6: { /* CMPXCHG16B m128: an aligned [disp32] mostly, RDX:RAX sometimes loaded from it */
        if (rn(r, 4)) {
            memset(&m, 0, sizeof(m));
            m.base = m.index = -1;
            m.disp = (int32_t)win(16 * rn(r, 30));
            m.dsz = 4;
        }
        if (rn(r, 2)) {
            struct mspec hi = m;
            hi.disp += 8;
            b = 0x8b;
            emit_insn(g, 8, &b, 1, RAX, -1, &m, 0);
            end_insn(g);
            emit_insn(g, 8, &b, 1, RDX, -1, &hi, 0);
            end_insn(g);
        }
        if (rn(r, 2))
            emit(g, 0xf0);
        uint8_t ob[2] = {0x0f, 0xc7};
        emit_insn(g, 8, ob, 2, 1, -1, &m, 0);
        end_insn(g);
        s->undef &= ~F_ZF;
        break;
    }
    case 0: case 1: { /* LOCK ADD/OR/AND/SUB/XOR m, r or m, imm */
        static const unsigned ops[] = {0, 1, 4, 5, 6};
        unsigned op = ops[rn(r, 5)];
        emit(g, 0xf0);
        if (rn(r, 2)) {
            b = (uint8_t)(op * 8 + (size != 1));
            emit_insn(g, size, &b, 1, p.src, -1, &m, 0);
        } else {
            b = (uint8_t)(size == 1 ? 0x80 : rn(r, 2) ? 0x83 : 0x81);
            emit_insn(g, size, &b, 1, op, -1, &m, 0);
            emit_n(g, rval(r), b == 0x81 ? imm_bytes(size) : 1);
        }
        end_insn(g);
        s->undef = op == 1 || op == 4 || op == 6 ? F_AF : 0;
        break;
    }
    case 2: { /* LOCK INC/DEC/NOT/NEG m */
        unsigned k = rn(r, 4);
        emit(g, 0xf0);
        b = (uint8_t)((k < 2 ? 0xfe : 0xf6) + (size != 1));
        emit_insn(g, size, &b, 1, k, -1, &m, 0);
        end_insn(g);
        if (k < 2)
            s->undef &= F_CF;
        else if (k == 3)
            s->undef = 0;
        break;
    }
    case 3: { /* XCHG r/m, r (both written: data registers) */
        int mem = rn(r, 3) != 0;
        if (mem && rn(r, 4) == 0)
            emit(g, 0xf0);
        b = (uint8_t)(0x86 + (size != 1));
        emit_insn(g, size, &b, 1, p.dst, mem ? -1 : p.hi ? (int)p.src : (int)dreg(r), &m, 0);
        end_insn(g);
        break;
    }
    case 4: { /* XADD m, r */
        if (rn(r, 2))
            emit(g, 0xf0);
        uint8_t ob[2] = {0x0f, (uint8_t)(0xc0 + (size != 1))};
        emit_insn(g, size, ob, 2, p.dst, -1, &m, 0);
        end_insn(g);
        s->undef = 0;
        break;
    }
    default: { /* CMPXCHG m, r */
        if (rn(r, 2)) {
            b = (uint8_t)(0x8a + (size != 1)); /* mov al/ax/eax/rax, m */
            emit_insn(g, size, &b, 1, RAX, -1, &m, 0);
            end_insn(g);
        }
        if (rn(r, 2))
            emit(g, 0xf0);
        uint8_t ob[2] = {0x0f, (uint8_t)(0xb0 + (size != 1))};
        emit_insn(g, size, ob, 2, p.src, -1, &m, 0);
        end_insn(g);
        s->undef = 0;
        break;
    }
    }
}

/* MUL, IMUL and DIV with one operand (F6/F7 /4-6): on RAX and RDX, which are data registers.
 * DIV's high half is usually cleared first, so that #DE (compared like any fault) stays
 * rare. */
static void i_muldiv(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = pick_size(r), k = rn(r, 3); /* MUL IMUL DIV */
    struct regs2 p;
    pick_regs(r, size, &p);
    struct mspec m;
    pick_mem(r, &m, p.hi, 1);
    int mem = rn(r, 2);
    if (k == 2 && rn(r, 4)) {
        emit(g, size == 1 ? 0x30 : 0x31); /* xor ah, ah / xor edx, edx */
        emit(g, size == 1 ? 0xe4 : 0xd2);
    }
    uint8_t b = (uint8_t)(0xf6 + (size != 1));
    emit_insn(g, size, &b, 1, 4 + k, mem ? -1 : (int)p.src, &m, 0);
    end_insn(g);
    s->undef = k == 2 ? F_ALL : F_SF | F_ZF | F_AF | F_PF;
}

/* BT/BTS/BTR/BTC with an immediate or a register bit offset, LOCKed sometimes on memory. A
 * register offset into memory is RSI's small one, or a data register set to -256..255 first
 * with R12 (at least 64 bytes into the window) as the base, so that the bit string reaches
 * back too. */
static void i_bt(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = (unsigned[]){2, 4, 8}[rn(r, 3)], kind = rn(r, 4);
    struct mspec m;
    pick_mem(r, &m, 0, kind == 0);
    int mem = rn(r, 2), imm = rn(r, 2);
    unsigned dst = dreg(r), off = rn(r, 16);
    if (mem && !imm) {
        if (rn(r, 2)) {
            off = RSI;
        } else {
            off = dreg(r);
            emit(g, 0x48 | ((off & 8) ? 1 : 0)); /* mov off, imm32 (sign-extended) */
            emit(g, 0xc7);
            emit(g, 0xc0 | (off & 7));
            emit_n(g, (uint32_t)((int32_t)rn(r, 512) - 256), 4);
            memset(&m, 0, sizeof(m));
            m.base = R12;
            m.index = -1;
            m.disp = (int32_t)rn(r, 64);
            m.dsz = 1;
        }
    }
    if (mem && kind && rn(r, 3) == 0)
        emit(g, 0xf0);
    if (imm) {
        uint8_t ob[2] = {0x0f, 0xba};
        emit_insn(g, size, ob, 2, 4 + kind, mem ? -1 : (int)dst, &m, 0);
        emit(g, rn(r, 256));
    } else {
        uint8_t ob[2] = {0x0f, (uint8_t)(0xa3 + 8 * kind)};
        emit_insn(g, size, ob, 2, off, mem ? -1 : (int)dst, &m, 0);
    }
    end_insn(g);
    s->undef = (s->undef & F_ZF) | F_OF | F_SF | F_AF | F_PF;
}

/* BSF/BSR r, r/m (ZF defined); SHLD/SHRD r/m, r by an immediate, or by CL on a register. */
static void i_bitscan_shxd(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned size = (unsigned[]){2, 4, 8}[rn(r, 3)];
    struct mspec m;
    int mem = rn(r, 3) == 0;
    if (rn(r, 2)) {
        pick_mem(r, &m, 0, 1);
        uint8_t ob[2] = {0x0f, (uint8_t)(0xbc + rn(r, 2))};
        emit_insn(g, size, ob, 2, dreg(r), mem ? -1 : (int)rn(r, 16), &m, 0);
        end_insn(g);
        s->undef = F_ALL & ~F_ZF;
        return;
    }
    pick_mem(r, &m, 0, 0);
    int by_cl = rn(r, 3) == 0, left = rn(r, 2);
    if (by_cl)
        mem = 0; /* the interpreter makes no access for a zero CL, where hardware faults */
    unsigned count = rn(r, 6) == 0 ? rn(r, 256) : 1 + rn(r, size * 8 - 1);
    uint8_t ob[2] = {0x0f, (uint8_t)((left ? 0xa4 : 0xac) + by_cl)};
    emit_insn(g, size, ob, 2, rn(r, 16), mem ? -1 : (int)dreg(r), &m, 0);
    if (!by_cl)
        emit(g, count);
    end_insn(g);
    if (by_cl) {
        s->undef |= F_OF | F_AF | F_CF; /* as i_shift's: a zero CL keeps them */
        return;
    }
    unsigned masked = count & (size == 8 ? 63 : 31);
    if (masked)
        s->undef = F_AF | (masked == 1 ? 0 : F_OF) | (size == 2 && masked >= 16 ? F_CF : 0);
}

/* 128-bit SSE moves and PXOR (0F 10/11/28/29 and their 66 forms, 66/F3 0F 6F/7F, 66 0F EF):
 * loads, stores and register copies. The aligned forms fault (#GP, compared like any fault)
 * at most of the window's addresses, so they get an aligned [disp32] half the time. */
static void i_sse(struct rng *r, struct gen *g)
{
    static const struct {
        uint8_t pfx, op, aligned;
    } forms[] = {{0, 0x10, 0}, {0x66, 0x10, 0}, {0, 0x11, 0}, {0x66, 0x11, 0},
                 {0xf3, 0x6f, 0}, {0xf3, 0x7f, 0}, {0, 0x28, 1}, {0x66, 0x29, 1},
                 {0x66, 0x6f, 1}, {0x66, 0x7f, 1}, {0x66, 0xef, 1}};
    unsigned k = rn(r, 11);
    int store = forms[k].op == 0x11 || forms[k].op == 0x29 || forms[k].op == 0x7f;
    struct mspec m;
    pick_mem(r, &m, 0, !store);
    if (forms[k].aligned && rn(r, 2)) {
        memset(&m, 0, sizeof(m));
        m.base = m.index = -1;
        m.disp = (int32_t)win(16 * rn(r, 30));
        m.dsz = 4;
    }
    int mem = rn(r, 3) != 0;
    unsigned x = rn(r, 16);
    if (forms[k].pfx)
        emit(g, forms[k].pfx);
    uint8_t ob[2] = {0x0f, forms[k].op};
    emit_insn(g, 4, ob, 2, x, mem ? -1 : (int)(rn(r, 4) ? rn(r, 16) : x), &m, 0);
    end_insn(g);
}

/* CBW/CWDE/CDQE, CWD/CDQ/CQO; PUSH r/m64 (register form) and POP; a frame with LEAVE; PUSHF
 * and POP (only the defined arithmetic flags kept); LFENCE/MFENCE/SFENCE. */
static void i_misc(struct rng *r, struct gen *g, struct jstate *s)
{
    unsigned d = dreg(r);
    switch (rn(r, 5)) {
    case 0: {
        unsigned size = (unsigned[]){2, 4, 8}[rn(r, 3)];
        if (size == 2)
            emit(g, 0x66);
        else if (size == 8)
            emit(g, 0x48);
        emit(g, 0x98 + rn(r, 2));
        break;
    }
    case 1: { /* push r/m64 (FF /6, a register), pop d */
        uint8_t b = 0xff;
        emit_insn(g, 4, &b, 1, 6, (int)rn(r, 16), NULL, 0);
        if (d & 8)
            emit(g, 0x41);
        emit(g, 0x58 + (d & 7));
        break;
    }
    case 2: /* push rbp; mov rbp, rsp; [push d]; leave */
        emit(g, 0x55);
        emit(g, 0x48);
        emit(g, 0x89);
        emit(g, 0xe5);
        if (rn(r, 2)) {
            if (d & 8)
                emit(g, 0x41);
            emit(g, 0x50 + (d & 7));
        }
        emit(g, 0xc9);
        break;
    case 3: /* pushf; and qword [rsp], the defined flags (the stack is compared too); pop d */
        emit(g, 0x9c);
        emit(g, 0x48);
        emit(g, 0x81);
        emit(g, 0x24);
        emit(g, 0x24);
        emit_n(g, F_ALL & ~s->undef, 4);
        if (d & 8)
            emit(g, 0x41);
        emit(g, 0x58 + (d & 7));
        s->undef = F_AF;
        break;
    default: /* 0F AE E8/F0/F8 */
        emit(g, 0x0f);
        emit(g, 0xae);
        emit(g, 0xe8 + 8 * rn(r, 3));
        break;
    }
}

/* A forward branch over one MOV/LEA (flag-neutral, so both paths leave the same flags):
 * Jcc rel8/rel32 or JMP rel8. */
static void i_branch_over(struct rng *r, struct gen *g, const struct jstate *s)
{
    int cc = rn(r, 5) == 0 ? -2 : pick_cc(r, s, 0);
    if (cc == -1)
        return;
    int wide = cc >= 0 && rn(r, 3) == 0;
    unsigned at;
    if (cc == -2) {
        emit(g, 0xeb);
        at = g->len;
        emit(g, 0);
    } else if (wide) {
        emit(g, 0x0f);
        emit(g, 0x80 + (unsigned)cc);
        at = g->len;
        emit_n(g, 0, 4);
    } else {
        emit(g, 0x70 + (unsigned)cc);
        at = g->len;
        emit(g, 0);
    }
    unsigned from = g->len;
    if (rn(r, 2))
        i_mov(r, g);
    else
        i_lea(r, g);
    uint32_t d = g->len - from;
    if (wide)
        memcpy(&g->code[at], &d, 4);
    else
        g->code[at] = (uint8_t)d;
}

/* CALL to the next instruction, which pops the return address; or a RET to the next
 * instruction through a pushed LEA of it. */
/* lea d, [rip + len]: d = the address len bytes after this LEA. */
static void lea_rip(struct gen *g, unsigned d, unsigned len)
{
    emit(g, 0x48 | ((d & 8) ? 4 : 0));
    emit(g, 0x8d);
    emit(g, 0x05 | (d & 7) << 3);
    emit_n(g, len, 4);
}

/* CALL/JMP through a register or memory (FF /2, /4) to the next instruction. */
static void i_indirect(struct rng *r, struct gen *g)
{
    unsigned d = dreg(r), rex = (d & 8) ? 1 : 0;
    switch (rn(r, 3)) {
    case 0: /* lea d, next; jmp d */
        lea_rip(g, d, 2 + rex);
        if (rex)
            emit(g, 0x41);
        emit(g, 0xff);
        emit(g, 0xe0 | (d & 7));
        break;
    case 1: /* lea d, next; call d; pop d (the return address) */
        lea_rip(g, d, 2 + rex);
        if (rex)
            emit(g, 0x41);
        emit(g, 0xff);
        emit(g, 0xd0 | (d & 7));
        if (rex)
            emit(g, 0x41);
        emit(g, 0x58 + (d & 7));
        break;
    default: /* lea d, next; push d; jmp [rsp]; pop d */
        lea_rip(g, d, 1 + rex + 3);
        if (rex)
            emit(g, 0x41);
        emit(g, 0x50 + (d & 7));
        emit(g, 0xff);
        emit(g, 0x24);
        emit(g, 0x24);
        if (rex)
            emit(g, 0x41);
        emit(g, 0x58 + (d & 7));
        break;
    }
}

static void i_call_ret(struct rng *r, struct gen *g)
{
    unsigned d = dreg(r);
    if (rn(r, 4) == 0) {
        i_indirect(r, g);
        return;
    }
    if (rn(r, 2)) {
        emit(g, 0xe8);
        emit_n(g, 0, 4);
        if (d & 8)
            emit(g, 0x41);
        emit(g, 0x58 + (d & 7));
        return;
    }
    unsigned psize = (d & 8) ? 2 : 1; /* PUSH d */
    emit(g, 0x48 | ((d & 8) ? 4 : 0)); /* lea d, [rip + psize + 1] */
    emit(g, 0x8d);
    emit(g, 0x05 | (d & 7) << 3);
    emit_n(g, psize + 1, 4);
    if (d & 8)
        emit(g, 0x41);
    emit(g, 0x50 + (d & 7));
    emit(g, 0xc3);
}

/* INC/DEC, then a condition on ZF/SF/OF or (when defined) CF; CMP/TEST, then SETcc/CMOVcc,
 * then a Jcc over a MOV. */
static void i_combo(struct rng *r, struct gen *g, struct jstate *s)
{
    if (rn(r, 2)) {
        i_unary(r, g, s, (int)rn(r, 2));
        uint32_t prefer = rn(r, 3) == 0 ? F_CF : F_ZF | F_SF | F_OF;
        switch (rn(r, 3)) {
        case 0: i_setcc(r, g, s, prefer); break;
        case 1: i_cmov(r, g, s, prefer); break;
        default: i_branch_over(r, g, s); break;
        }
        return;
    }
    if (rn(r, 2))
        i_alu(r, g, s, 7);
    else
        i_test(r, g, s);
    if (rn(r, 2))
        i_setcc(r, g, s, 0);
    else
        i_cmov(r, g, s, 0);
    if (rn(r, 2))
        i_branch_over(r, g, s);
}

static void one(struct rng *r, struct gen *g, struct jstate *s);

/* mov r14d, N; body; dec r14d; jnz body: the loop's block chains to itself (a backward JMP
 * within the page would be followed by the decoder; a Jcc ends the block). R14 is kept out of
 * the body. Flags at the top are the ones before the loop or DEC's, so CF counts as
 * undefined there. */
static void i_loop(struct rng *r, struct gen *g, struct jstate *s)
{
    emit(g, 0x41);
    emit(g, 0xbe);
    /* sometimes past the chain budget (256 blocks), which returns to the run loop */
    emit_n(g, rn(r, 8) == 0 ? 200 + rn(r, 200) : 1 + rn(r, 6), 4);
    reserved = R14;
    s->undef |= F_CF;
    unsigned top = g->len, n = 1 + rn(r, 4);
    for (unsigned k = 0; k < n && g->len < top + 60; k++)
        one(r, g, s);
    emit(g, 0x41); /* dec r14d */
    emit(g, 0xff);
    emit(g, 0xce);
    s->undef &= F_CF;
    int32_t rel = (int32_t)top - (int32_t)(g->len + 2);
    if (rel >= -128) {
        emit(g, 0x75);
        emit(g, (uint8_t)rel);
    } else {
        emit(g, 0x0f);
        emit(g, 0x85);
        emit_n(g, (uint32_t)(rel - 4), 4);
    }
    reserved = -1;
}

static void one(struct rng *r, struct gen *g, struct jstate *s)
{
    switch (rn(r, 30)) {
    case 0: case 1: case 2: i_alu(r, g, s, -1); break;
    case 3: i_test(r, g, s); break;
    case 4: case 5: i_unary(r, g, s, -1); break;
    case 6: case 7: i_mov(r, g); break;
    case 8: i_lea(r, g); break;
    case 9: i_movx(r, g); break;
    case 10: case 11: i_shift(r, g, s); break;
    case 12: i_push(r, g, s); break;
    case 13: i_pop(r, g, s); break;
    case 14: i_cmov(r, g, s, 0); break;
    case 15: i_setcc(r, g, s, 0); break;
    case 16: i_imul(r, g, s); break;
    case 17: i_bswap(r, g); break;
    case 18: i_nop(r, g); break;
    case 19: i_other(r, g, s); break;
    case 20: i_branch_over(r, g, s); break;
    case 21: if (rn(r, 3) == 0) i_push_pop16(r, g); else i_call_ret(r, g); break;
    case 22: case 23: i_combo(r, g, s); break;
    case 24: i_atomic(r, g, s); break;
    case 25: i_muldiv(r, g, s); break;
    case 26: i_bt(r, g, s); break;
    case 27: i_bitscan_shxd(r, g, s); break;
    case 28: i_sse(r, g); break;
    default: i_misc(r, g, s); break;
    }
}

/* End a sequence with Jcc cc over `lea d, [d + 1]` and run it as one block, comparing the
 * flags it leaves defined. */
static void close_block(struct rng *r, struct gen *g, const struct jstate *s, int cc)
{
    emit(g, 0x70 + (unsigned)cc);
    emit(g, 4);
    unsigned d = dreg(r);
    emit(g, 0x48 | ((d & 8) ? 5 : 0)); /* lea d, [d + 1] */
    emit(g, 0x8d);
    emit(g, 0x40 | (d & 7) << 3 | (d & 7));
    emit(g, 1);
    g->fmask = F_ALL & ~s->undef;
    g->block = 1;
    g->jit_regs = 1;
}

void gen_jit(struct rng *r, struct gen *g)
{
    struct jstate s = {0, 0};
    unsigned n = 4 + rn(r, 9);
    int loop = rn(r, 6) == 0;
    fault_budget = rn(r, 5) == 0;
    reserved = -1;
    for (unsigned k = 0; k < n && g->len < 150; k++) {
        if (loop && rn(r, 4) == 0 && g->len < 120) {
            i_loop(r, g, &s);
            loop = 0;
            continue;
        }
        one(r, g, &s);
    }
    fault_budget = 0;
    /* A Jcc over a LEA closes the block (flags read by the compiled Jcc or the interpreter's). */
    int cc = pick_cc(r, &s, 0);
    if (cc < 0) {
        emit(g, 0xf8 + rn(r, 2)); /* CLC/STC: CF defined */
        s.undef &= ~F_CF;
        cc = 2 + (int)rn(r, 2);
    }
    close_block(r, g, &s, cc);
    g->what = "jit sequence (as one block)";
}

/* Self-modifying code in one block: a store (compiled or interpreted, plain or read-modify-
 * write) into the immediate of a later ADD of the same block, which must then run with its new
 * byte (x86 sees a store into the instruction stream at once). The interpreter watches the code
 * page (diff.c): the store drops the running block, which must leave after the store. */
void gen_smc(struct rng *r, struct gen *g)
{
    struct jstate s = {0, 0};
    reserved = -1;
    fault_budget = 0;
    unsigned pre = rn(r, 3);
    for (unsigned k = 0; k < pre; k++)
        one(r, g, &s);
    unsigned form = rn(r, 10), reg = rn(r, 4); /* AL..BL */
    int cc = pick_cc(r, &s, 0);
    if (form == 7 && cc < 0)
        form = 0;
    switch (form) {
    case 0: emit(g, 0xc6); emit(g, 0x05); break;                 /* mov byte [rip+d], ib */
    case 1: emit(g, 0x88); emit(g, 0x05 | reg << 3); break;      /* mov [rip+d], r8 */
    case 2: emit(g, 0x80); emit(g, 0x05); break;                 /* add byte [rip+d], ib */
    case 3: emit(g, 0xfe); emit(g, 0x05 | (rn(r, 2) << 3)); break; /* inc/dec byte [rip+d] */
    case 4: emit(g, 0xf6); emit(g, 0x05 | (2 + rn(r, 2)) << 3); break; /* not/neg */
    case 5: emit(g, 0xc0); emit(g, 0x05 | (4 << 3)); break;      /* shl byte [rip+d], ib */
    case 6: emit(g, 0x86); emit(g, 0x05 | reg << 3); break;      /* xchg [rip+d], r8 */
    case 7: emit(g, 0x0f); emit(g, 0x90 + (unsigned)cc); emit(g, 0x05); break; /* setcc */
    case 8: emit(g, 0xf0); emit(g, 0x80); emit(g, 0x05 | 6 << 3); break; /* lock xor */
    default: /* the stack in the code page (past the code): PUSH or CALL write there */
        emit(g, 0x48); /* lea rsp, [rip + d]: code page + 2048 */
        emit(g, 0x8d);
        emit(g, 0x25);
        emit_n(g, 2048 - (g->len + 4), 4);
        if (rn(r, 2)) {
            emit(g, 0x50 + rn(r, 8));
        } else {
            emit(g, 0xe8);
            emit_n(g, 0, 4);
        }
        break;
    }
    unsigned at = g->len;
    if (form != 9)
        emit_n(g, 0, 4);
    if (form == 0 || form == 2 || form == 5 || form == 8)
        emit(g, form == 5 ? 1 + rn(r, 7) : rn(r, 256));
    unsigned end = g->len;
    /* Flag-neutral instructions in between, sometimes none (the very next instruction). */
    unsigned mid = rn(r, 3);
    for (unsigned k = 0; k < mid; k++) {
        if (rn(r, 2))
            i_mov(r, g);
        else
            i_lea(r, g);
    }
    unsigned d = dreg(r); /* add d32, ib: its immediate is the store's target */
    if (d & 8)
        emit(g, 0x41);
    emit(g, 0x83);
    emit(g, 0xc0 | (d & 7));
    uint32_t rel = g->len - end;
    if (form != 9)
        memcpy(&g->code[at], &rel, 4);
    emit(g, rn(r, 256));
    s.undef = 0;
    unsigned post = rn(r, 3);
    for (unsigned k = 0; k < post && g->len < 150; k++)
        one(r, g, &s);
    cc = pick_cc(r, &s, 0);
    if (cc < 0) {
        emit(g, 0xf8);
        s.undef &= ~F_CF;
        cc = 2;
    }
    close_block(r, g, &s, cc);
    g->smc = 1;
    g->what = "store into a later instruction of the block";
}
