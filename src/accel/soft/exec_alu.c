/* Integer arithmetic and logic: ALU ops, INC/DEC/NOT/NEG, MUL/DIV, shifts and rotates, bit
 * instructions, XADD/CMPXCHG and friends. Flags are left lazy wherever the SDM defines them from
 * the operands; instructions with odd flag rules store the flags directly. */
#include "accel/soft/exec.h"

/* op: 0 ADD 1 OR 2 ADC 3 SBB 4 AND 5 SUB 6 XOR 7 CMP. cin is the carry for ADC/SBB. */
static inline uint64_t alu(struct soft_cpu *cpu, unsigned op, unsigned osz, uint64_t a,
                           uint64_t b, uint64_t cin)
{
    uint64_t r;
    switch (op) {
    case 0: r = a + b; soft_cc(cpu, SOFT_CC_ADD, osz, r, a, b); break;
    case 1: r = a | b; soft_cc(cpu, SOFT_CC_LOGIC, osz, r, 0, 0); break;
    case 2: r = a + b + cin; soft_cc(cpu, SOFT_CC_ADC, osz, r, a, b); break;
    case 3: r = a - b - cin; soft_cc(cpu, SOFT_CC_SBB, osz, r, a, b); break;
    case 4: r = a & b; soft_cc(cpu, SOFT_CC_LOGIC, osz, r, 0, 0); break;
    case 6: r = a ^ b; soft_cc(cpu, SOFT_CC_LOGIC, osz, r, 0, 0); break;
    default: r = a - b; soft_cc(cpu, SOFT_CC_SUB, osz, r, a, b); break;
    }
    return r & soft_mask(osz);
}

static inline uint64_t carry_in(struct soft_cpu *cpu, unsigned op)
{
    return (op == 2 || op == 3) ? (uint64_t)soft_carry(cpu) : 0;
}

/* Read-modify-write of the r/m operand with src; LOCK makes it a host CAS loop. */
static void alu_rm(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t src)
{
    unsigned osz = i->osz, op = i->sub;
    uint64_t cin = carry_in(cpu, op);
    if (!i->mem) {
        uint64_t r = alu(cpu, op, osz, soft_get(cpu, i->rm, osz), src, cin);
        if (op != 7)
            soft_set(cpu, i->rm, osz, r);
        return;
    }
    uint64_t addr = soft_ea(cpu, i, osz);
    if (op == 7) {
        alu(cpu, op, osz, soft_ld(cpu, addr, osz), src, cin);
        return;
    }
    void *p = soft_mem(cpu, addr, osz, SOFT_ACC_WRITE);
    if (i->lock) {
        uint64_t a, r;
        do {
            a = soft_ldp(p, osz);
            r = alu(cpu, op, osz, a, src, cin);
        } while (!soft_casp(p, osz, a, r));
        return;
    }
    soft_stp(p, osz, alu(cpu, op, osz, soft_ldp(p, osz), src, cin));
}

SOFT_HANDLER(soft_alu_rm_reg)
{
    alu_rm(cpu, i, soft_get(cpu, i->reg, i->osz));
}

SOFT_HANDLER(soft_alu_rm_imm)
{
    alu_rm(cpu, i, i->imm & soft_mask(i->osz));
}

SOFT_HANDLER(soft_alu_reg_rm)
{
    unsigned osz = i->osz, op = i->sub;
    uint64_t b = soft_rm_get(cpu, i, osz);
    uint64_t r = alu(cpu, op, osz, soft_get(cpu, i->reg, osz), b, carry_in(cpu, op));
    if (op != 7)
        soft_set(cpu, i->reg, osz, r);
}

SOFT_HANDLER(soft_test_rm_reg)
{
    uint64_t r = soft_rm_get(cpu, i, i->osz) & soft_get(cpu, i->reg, i->osz);
    soft_cc(cpu, SOFT_CC_LOGIC, i->osz, r, 0, 0);
}

SOFT_HANDLER(soft_test_rm_imm)
{
    uint64_t r = soft_rm_get(cpu, i, i->osz) & i->imm;
    soft_cc(cpu, SOFT_CC_LOGIC, i->osz, r, 0, 0);
}

/* Generic RMW for one-operand forms: f computes the new value (and flags). */
typedef uint64_t (*unop_fn)(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t a,
                            uint64_t cf);

static uint64_t do_incdec(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t a,
                          uint64_t cf);

static void unop_rm(struct soft_cpu *cpu, const struct soft_insn *i, unop_fn f)
{
    unsigned osz = i->osz;
    uint64_t cf = f == do_incdec ? (uint64_t)soft_carry(cpu) : 0; /* INC/DEC keep CF */
    if (!i->mem) {
        soft_set(cpu, i->rm, osz, f(cpu, i, soft_get(cpu, i->rm, osz), cf));
        return;
    }
    void *p = soft_mem(cpu, soft_ea(cpu, i, osz), osz, SOFT_ACC_WRITE);
    if (i->lock) {
        uint64_t a, r;
        do {
            a = soft_ldp(p, osz);
            r = f(cpu, i, a, cf);
        } while (!soft_casp(p, osz, a, r));
        return;
    }
    soft_stp(p, osz, f(cpu, i, soft_ldp(p, osz), cf));
}

static uint64_t do_incdec(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t a, uint64_t cf)
{
    uint64_t r = (i->sub ? a - 1 : a + 1) & soft_mask(i->osz);
    soft_cc(cpu, i->sub ? SOFT_CC_DEC : SOFT_CC_INC, i->osz, r, a, cf);
    return r;
}

static uint64_t do_not(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t a, uint64_t cf)
{
    (void)cpu;
    (void)cf;
    return ~a & soft_mask(i->osz);
}

static uint64_t do_neg(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t a, uint64_t cf)
{
    (void)cf;
    uint64_t r = (0 - a) & soft_mask(i->osz);
    soft_cc(cpu, SOFT_CC_SUB, i->osz, r, 0, a);
    return r;
}

SOFT_HANDLER(soft_incdec_rm) { unop_rm(cpu, i, do_incdec); }
SOFT_HANDLER(soft_not_rm) { unop_rm(cpu, i, do_not); }
SOFT_HANDLER(soft_neg_rm) { unop_rm(cpu, i, do_neg); }

/* Flags after MUL/IMUL: CF=OF say the high half matters; SF/ZF/PF follow the low half (the SDM
 * leaves them undefined; this matches common hardware closely enough and tests mask them). */
static void mul_flags(struct soft_cpu *cpu, unsigned osz, uint64_t lo, int overflow)
{
    /* SF/ZF/PF as a logic result would leave them (what the host CPU does); built here
     * directly rather than through soft_flags_arith(). */
    uint64_t r = lo & soft_mask(osz);
    uint32_t f = (r == 0 ? SOFT_ZF : 0) | ((r >> (osz * 8 - 1)) & 1 ? SOFT_SF : 0) |
                 (__builtin_parity((unsigned)(r & 0xff)) ? 0 : SOFT_PF);
    if (overflow)
        f |= SOFT_CF | SOFT_OF;
    soft_flags_store(cpu, f);
}

SOFT_HANDLER(soft_mul_rm)
{
    unsigned osz = i->osz;
    uint64_t b = soft_rm_get(cpu, i, osz);
    uint64_t a = soft_get(cpu, SOFT_RAX, osz);
    if (osz == 8) {
        unsigned __int128 p = (unsigned __int128)a * b;
        cpu->regs[SOFT_RAX] = (uint64_t)p;
        cpu->regs[SOFT_RDX] = (uint64_t)(p >> 64);
        mul_flags(cpu, osz, (uint64_t)p, (p >> 64) != 0);
        return;
    }
    uint64_t p = a * b;
    unsigned bits = osz * 8;
    if (osz == 1) {
        soft_set(cpu, SOFT_RAX, 2, p);
    } else {
        soft_set(cpu, SOFT_RAX, osz, p);
        soft_set(cpu, SOFT_RDX, osz, p >> bits);
    }
    mul_flags(cpu, osz, p & soft_mask(osz), (p >> bits) != 0);
}

SOFT_HANDLER(soft_imul1_rm)
{
    unsigned osz = i->osz;
    int64_t b = (int64_t)soft_sext(soft_rm_get(cpu, i, osz), osz);
    int64_t a = (int64_t)soft_sext(soft_get(cpu, SOFT_RAX, osz), osz);
    if (osz == 8) {
        __int128 p = (__int128)a * b;
        cpu->regs[SOFT_RAX] = (uint64_t)p;
        cpu->regs[SOFT_RDX] = (uint64_t)((unsigned __int128)p >> 64);
        mul_flags(cpu, osz, (uint64_t)p, p != (__int128)(int64_t)p);
        return;
    }
    int64_t p = a * b;
    unsigned bits = osz * 8;
    if (osz == 1) {
        soft_set(cpu, SOFT_RAX, 2, (uint64_t)p);
    } else {
        soft_set(cpu, SOFT_RAX, osz, (uint64_t)p);
        soft_set(cpu, SOFT_RDX, osz, (uint64_t)p >> bits);
    }
    mul_flags(cpu, osz, (uint64_t)p & soft_mask(osz),
              (int64_t)soft_sext((uint64_t)p, osz) != p);
}

static void imul2(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t ua, uint64_t ub)
{
    unsigned osz = i->osz;
    int64_t a = (int64_t)soft_sext(ua, osz), b = (int64_t)soft_sext(ub, osz);
    __int128 p = (__int128)a * b;
    uint64_t lo = (uint64_t)p & soft_mask(osz);
    soft_set(cpu, i->reg, osz, lo);
    mul_flags(cpu, osz, lo, p != (__int128)(int64_t)soft_sext(lo, osz));
}

SOFT_HANDLER(soft_imul_reg_rm)
{
    uint64_t b = soft_rm_get(cpu, i, i->osz);
    imul2(cpu, i, soft_get(cpu, i->reg, i->osz), b);
}

SOFT_HANDLER(soft_imul_reg_rm_imm)
{
    imul2(cpu, i, soft_rm_get(cpu, i, i->osz), i->imm);
}

SOFT_HANDLER(soft_div_rm)
{
    unsigned osz = i->osz, bits = osz * 8;
    uint64_t d = soft_rm_get(cpu, i, osz);
    if (d == 0)
        soft_raise(cpu, SOFT_EXC_DE, 0);
    if (osz == 8) {
        unsigned __int128 n = ((unsigned __int128)cpu->regs[SOFT_RDX] << 64) | cpu->regs[SOFT_RAX];
        unsigned __int128 q = n / d;
        if (q >> 64)
            soft_raise(cpu, SOFT_EXC_DE, 0);
        cpu->regs[SOFT_RAX] = (uint64_t)q;
        cpu->regs[SOFT_RDX] = (uint64_t)(n % d);
        return;
    }
    uint64_t n = osz == 1 ? soft_get(cpu, SOFT_RAX, 2)
                          : (soft_get(cpu, SOFT_RDX, osz) << bits) | soft_get(cpu, SOFT_RAX, osz);
    uint64_t q = n / d, r = n % d;
    if (q >> bits)
        soft_raise(cpu, SOFT_EXC_DE, 0);
    if (osz == 1) {
        soft_set(cpu, SOFT_RAX, 2, q | (r << 8));
    } else {
        soft_set(cpu, SOFT_RAX, osz, q);
        soft_set(cpu, SOFT_RDX, osz, r);
    }
}

SOFT_HANDLER(soft_idiv_rm)
{
    unsigned osz = i->osz, bits = osz * 8;
    int64_t d = (int64_t)soft_sext(soft_rm_get(cpu, i, osz), osz);
    if (d == 0)
        soft_raise(cpu, SOFT_EXC_DE, 0);
    __int128 n;
    if (osz == 8)
        n = (__int128)(((unsigned __int128)cpu->regs[SOFT_RDX] << 64) | cpu->regs[SOFT_RAX]);
    else if (osz == 1)
        n = (int16_t)soft_get(cpu, SOFT_RAX, 2);
    else
        n = (int64_t)soft_sext((soft_get(cpu, SOFT_RDX, osz) << bits) |
                                   soft_get(cpu, SOFT_RAX, osz), osz * 2);
    /* The one quotient __int128 cannot hold is -2^127 / -1, and it overflows any size anyway. */
    if (d == -1 && osz == 8 && n == -n && n != 0)
        soft_raise(cpu, SOFT_EXC_DE, 0);
    __int128 q = n / d, r = n % d;
    __int128 lim = (__int128)1 << (bits - 1);
    if (q >= lim || q < -lim)
        soft_raise(cpu, SOFT_EXC_DE, 0);
    if (osz == 1) {
        soft_set(cpu, SOFT_RAX, 2, ((uint64_t)q & 0xff) | (((uint64_t)r & 0xff) << 8));
    } else {
        soft_set(cpu, SOFT_RAX, osz, (uint64_t)q);
        soft_set(cpu, SOFT_RDX, osz, (uint64_t)r);
    }
}

/* --- shifts and rotates ------------------------------------------------------------------- */

static void rot_flags(struct soft_cpu *cpu, int cf, int of)
{
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)(SOFT_CF | SOFT_OF);
    f |= (cf ? SOFT_CF : 0) | (of ? SOFT_OF : 0);
    soft_flags_store(cpu, f);
}

static uint64_t shift(struct soft_cpu *cpu, unsigned kind, unsigned osz, uint64_t a,
                      unsigned count)
{
    unsigned bits = osz * 8;
    uint64_t m = soft_mask(osz), r;
    count &= osz == 8 ? 63 : 31;
    if (count == 0)
        return a;
    switch (kind) {
    case 0: { /* ROL */
        unsigned c = count % bits;
        r = c ? ((a << c) | (a >> (bits - c))) & m : a;
        rot_flags(cpu, r & 1, ((r >> (bits - 1)) ^ r) & 1);
        return r;
    }
    case 1: { /* ROR */
        unsigned c = count % bits;
        r = c ? ((a >> c) | (a << (bits - c))) & m : a;
        rot_flags(cpu, (r >> (bits - 1)) & 1, ((r >> (bits - 1)) ^ (r >> (bits - 2))) & 1);
        return r;
    }
    case 2: { /* RCL: rotate through CF, one bit at a time (rare in compiled code) */
        unsigned c = count % (bits + 1);
        uint64_t cf = soft_carry(cpu) ? 1 : 0;
        r = a;
        for (unsigned k = 0; k < c; k++) {
            uint64_t out = (r >> (bits - 1)) & 1;
            r = ((r << 1) | cf) & m;
            cf = out;
        }
        rot_flags(cpu, (int)cf, (int)(((r >> (bits - 1)) & 1) ^ cf));
        return r;
    }
    case 3: { /* RCR */
        unsigned c = count % (bits + 1);
        uint64_t cf = soft_carry(cpu) ? 1 : 0;
        r = a;
        int of = (int)((((r >> (bits - 1)) & 1) ^ cf));
        for (unsigned k = 0; k < c; k++) {
            uint64_t out = r & 1;
            r = (r >> 1) | (cf << (bits - 1));
            cf = out;
        }
        rot_flags(cpu, (int)cf, of);
        return r;
    }
    case 4: case 6: /* SHL/SAL */
        r = (count < 64 ? a << count : 0) & m;
        soft_cc(cpu, SOFT_CC_SHL, osz, r, a, count);
        return r;
    case 5: /* SHR */
        r = a >> count;
        soft_cc(cpu, SOFT_CC_SHR, osz, r, a, count);
        return r;
    default: /* SAR */
        r = (uint64_t)((int64_t)soft_sext(a, osz) >> count) & m;
        soft_cc(cpu, SOFT_CC_SAR, osz, r, a, count);
        return r;
    }
}

static void shift_rm(struct soft_cpu *cpu, const struct soft_insn *i, unsigned count)
{
    unsigned osz = i->osz;
    if (!i->mem) {
        uint64_t a = soft_get(cpu, i->rm, osz);
        soft_set(cpu, i->rm, osz, shift(cpu, i->sub, osz, a, count));
        return;
    }
    void *p = soft_mem(cpu, soft_ea(cpu, i, osz), osz, SOFT_ACC_WRITE);
    soft_stp(p, osz, shift(cpu, i->sub, osz, soft_ldp(p, osz), count));
}

SOFT_HANDLER(soft_shift_rm_imm) { shift_rm(cpu, i, (unsigned)i->imm); }
SOFT_HANDLER(soft_shift_rm_cl) { shift_rm(cpu, i, (unsigned)cpu->regs[SOFT_RCX] & 0xff); }

/* SHLD/SHRD: op 0FA4/A5 left, 0FAC/AD right; A5/AD take the count from CL. */
SOFT_HANDLER(soft_shxd)
{
    unsigned osz = i->osz, bits = osz * 8;
    int left = (i->op & 0xff) < 0xa8;
    unsigned count = ((i->op & 1) ? (unsigned)cpu->regs[SOFT_RCX] : (unsigned)i->imm) &
                     (osz == 8 ? 63 : 31);
    if (count == 0) {
        if (!i->mem)
            soft_set(cpu, i->rm, osz, soft_get(cpu, i->rm, osz));
        return;
    }
    uint64_t m = soft_mask(osz);
    uint64_t addr = i->mem ? soft_ea(cpu, i, osz) : 0;
    uint64_t a = i->mem ? soft_ld(cpu, addr, osz) : soft_get(cpu, i->rm, osz);
    uint64_t s = soft_get(cpu, i->reg, osz), r;
    int cf;
    if (osz == 2 && count > 16) {
        /* Undefined in the SDM; hardware shifts the 48-bit pattern dst:src:dst. */
        uint64_t w = (a << 32) | (s << 16) | a;
        if (left) {
            r = ((w << count) >> 32) & m;
            cf = (int)((w >> (48 - count)) & 1);
        } else {
            r = (w >> count) & m;
            cf = (int)((w >> (count - 1)) & 1);
        }
    } else if (left) {
        r = ((a << count) | (s >> (bits - count))) & m;
        cf = (int)((a >> (bits - count)) & 1);
    } else {
        r = ((a >> count) | (s << (bits - count))) & m;
        cf = (int)((a >> (count - 1)) & 1);
    }
    soft_cc(cpu, SOFT_CC_LOGIC, osz, r, 0, 0);
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)(SOFT_CF | SOFT_OF);
    if (cf)
        f |= SOFT_CF;
    if (((r ^ a) >> (bits - 1)) & 1)
        f |= SOFT_OF;
    soft_flags_store(cpu, f);
    if (i->mem)
        soft_st(cpu, addr, osz, r);
    else
        soft_set(cpu, i->rm, osz, r);
}

/* --- bit instructions --------------------------------------------------------------------- */

static uint64_t bt_apply(struct soft_cpu *cpu, unsigned kind, uint64_t v, unsigned bit)
{
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)SOFT_CF;
    if ((v >> bit) & 1)
        f |= SOFT_CF;
    soft_flags_store(cpu, f);
    switch (kind) {
    case 1: return v | (1ull << bit);
    case 2: return v & ~(1ull << bit);
    case 3: return v ^ (1ull << bit);
    default: return v;
    }
}

static void bt_common(struct soft_cpu *cpu, const struct soft_insn *i, uint64_t off, int regoff)
{
    unsigned osz = i->osz, bits = osz * 8, kind = i->sub;
    if (!i->mem) {
        unsigned bit = (unsigned)(off & (bits - 1));
        uint64_t r = bt_apply(cpu, kind, soft_get(cpu, i->rm, osz), bit);
        if (kind)
            soft_set(cpu, i->rm, osz, r);
        return;
    }
    uint64_t addr;
    if (!regoff) {
        addr = soft_ea(cpu, i, osz);
    } else {
        /* A register bit offset is signed and may reach far outside the operand; the address
         * size wraps the offset within the segment, before the segment base is added. */
        int64_t so = (int64_t)soft_sext(off, osz);
        int64_t unit = so >= 0 ? so / (int64_t)bits : -((-so + (int64_t)bits - 1) / (int64_t)bits);
        uint64_t seg_off = soft_ea_offset(cpu, i) + (uint64_t)(unit * (int64_t)osz);
        addr = soft_seg_linear(cpu, i->seg, soft_addr_trunc(seg_off, i->asz), osz);
        off = (uint64_t)(so - unit * (int64_t)bits);
    }
    unsigned bit = (unsigned)(off & (bits - 1));
    if (!kind) {
        bt_apply(cpu, 0, soft_ld(cpu, addr, osz), bit);
        return;
    }
    void *p = soft_mem(cpu, addr, osz, SOFT_ACC_WRITE);
    if (i->lock) {
        uint64_t a, r;
        do {
            a = soft_ldp(p, osz);
            r = bt_apply(cpu, kind, a, bit);
        } while (!soft_casp(p, osz, a, r));
        return;
    }
    soft_stp(p, osz, bt_apply(cpu, kind, soft_ldp(p, osz), bit));
}

SOFT_HANDLER(soft_bt_rm_reg) { bt_common(cpu, i, soft_get(cpu, i->reg, i->osz), 1); }
SOFT_HANDLER(soft_bt_rm_imm) { bt_common(cpu, i, i->imm, 0); }

SOFT_HANDLER(soft_bsf)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz);
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)SOFT_ZF;
    if (v == 0) {
        soft_flags_store(cpu, f | SOFT_ZF); /* destination left unchanged, as hardware does */
        return;
    }
    soft_flags_store(cpu, f);
    soft_set(cpu, i->reg, i->osz, (uint64_t)__builtin_ctzll(v));
}

SOFT_HANDLER(soft_bsr)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz);
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)SOFT_ZF;
    if (v == 0) {
        soft_flags_store(cpu, f | SOFT_ZF);
        return;
    }
    soft_flags_store(cpu, f);
    soft_set(cpu, i->reg, i->osz, (uint64_t)(63 - __builtin_clzll(v)));
}

SOFT_HANDLER(soft_tzcnt)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz);
    uint64_t r = v ? (uint64_t)__builtin_ctzll(v) : i->osz * 8u;
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)(SOFT_CF | SOFT_ZF);
    f |= (v == 0 ? SOFT_CF : 0) | (r == 0 ? SOFT_ZF : 0);
    soft_flags_store(cpu, f);
    soft_set(cpu, i->reg, i->osz, r);
}

SOFT_HANDLER(soft_lzcnt)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz);
    unsigned bits = i->osz * 8u;
    uint64_t r = v ? (uint64_t)(__builtin_clzll(v) - (64 - bits)) : bits;
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)(SOFT_CF | SOFT_ZF);
    f |= (v == 0 ? SOFT_CF : 0) | (r == 0 ? SOFT_ZF : 0);
    soft_flags_store(cpu, f);
    soft_set(cpu, i->reg, i->osz, r);
}

SOFT_HANDLER(soft_popcnt)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz);
    soft_flags_store(cpu, v == 0 ? SOFT_ZF : 0);
    soft_set(cpu, i->reg, i->osz, (uint64_t)__builtin_popcountll(v));
}

SOFT_HANDLER(soft_bswap)
{
    if (i->osz == 8)
        cpu->regs[i->reg] = __builtin_bswap64(cpu->regs[i->reg]);
    else if (i->osz == 4)
        cpu->regs[i->reg] = __builtin_bswap32((uint32_t)cpu->regs[i->reg]);
    else
        soft_set(cpu, i->reg, 2, 0); /* undefined in the SDM; hardware clears the word */
}

SOFT_HANDLER(soft_movbe)
{
    unsigned osz = i->osz;
    if ((i->op & 0xff) == 0xf0) {
        uint64_t v = soft_ld(cpu, soft_ea(cpu, i, osz), osz);
        v = osz == 8 ? __builtin_bswap64(v) : osz == 4 ? __builtin_bswap32((uint32_t)v)
                                                       : __builtin_bswap16((uint16_t)v);
        soft_set(cpu, i->reg, osz, v);
    } else {
        uint64_t v = soft_get(cpu, i->reg, osz);
        v = osz == 8 ? __builtin_bswap64(v) : osz == 4 ? __builtin_bswap32((uint32_t)v)
                                                       : __builtin_bswap16((uint16_t)v);
        soft_st(cpu, soft_ea(cpu, i, osz), osz, v);
    }
}

/* --- exchange and compare ----------------------------------------------------------------- */

SOFT_HANDLER(soft_xadd)
{
    unsigned osz = i->osz;
    uint64_t s = soft_get(cpu, i->reg, osz);
    if (!i->mem) {
        uint64_t a = soft_get(cpu, i->rm, osz);
        uint64_t r = (a + s) & soft_mask(osz);
        soft_cc(cpu, SOFT_CC_ADD, osz, r, a, s);
        soft_set(cpu, i->reg, osz, a);
        soft_set(cpu, i->rm, osz, r);
        return;
    }
    void *p = soft_mem(cpu, soft_ea(cpu, i, osz), osz, SOFT_ACC_WRITE);
    uint64_t a, r;
    do {
        a = soft_ldp(p, osz);
        r = (a + s) & soft_mask(osz);
    } while (!soft_casp(p, osz, a, r));
    soft_cc(cpu, SOFT_CC_ADD, osz, r, a, s);
    soft_set(cpu, i->reg, osz, a);
}

SOFT_HANDLER(soft_cmpxchg)
{
    unsigned osz = i->osz;
    uint64_t acc = soft_get(cpu, SOFT_RAX, osz), s = soft_get(cpu, i->reg, osz);
    if (!i->mem) {
        uint64_t d = soft_get(cpu, i->rm, osz);
        soft_cc(cpu, SOFT_CC_SUB, osz, (acc - d) & soft_mask(osz), acc, d);
        if (acc == d)
            soft_set(cpu, i->rm, osz, s);
        else
            soft_set(cpu, SOFT_RAX, osz, d);
        return;
    }
    void *p = soft_mem(cpu, soft_ea(cpu, i, osz), osz, SOFT_ACC_WRITE);
    uint64_t d;
    for (;;) {
        d = soft_ldp(p, osz);
        if (d != acc || soft_casp(p, osz, d, s))
            break;
    }
    soft_cc(cpu, SOFT_CC_SUB, osz, (acc - d) & soft_mask(osz), acc, d);
    if (acc != d)
        soft_set(cpu, SOFT_RAX, osz, d);
}

SOFT_HANDLER(soft_cmpxchg8b16b)
{
    uint64_t addr = soft_ea(cpu, i, i->osz == 8 ? 16 : 8);
    uint32_t f = soft_flags_arith(cpu) & ~(uint32_t)SOFT_ZF;
    if (i->osz == 8) {
        if (addr & 15)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        unsigned __int128 *p = soft_mem(cpu, addr, 16, SOFT_ACC_WRITE);
        unsigned __int128 exp = ((unsigned __int128)cpu->regs[SOFT_RDX] << 64) |
                                cpu->regs[SOFT_RAX];
        unsigned __int128 nv = ((unsigned __int128)cpu->regs[SOFT_RCX] << 64) |
                               cpu->regs[SOFT_RBX];
        /* Always atomic, LOCK or not: Linux's SLUB updates a slab's freelist and counters with
         * LOCK CMPXCHG16B from several CPUs at once (a plain read-compare-write here let two
         * vCPUs both win, and the guest found objects freed twice). */
        unsigned __int128 cur = exp;
        if (soft_cas16(p, &cur, nv)) {
            soft_flags_store(cpu, f | SOFT_ZF);
        } else {
            cpu->regs[SOFT_RAX] = (uint64_t)cur;
            cpu->regs[SOFT_RDX] = (uint64_t)(cur >> 64);
            soft_flags_store(cpu, f);
        }
        return;
    }
    void *p = soft_mem(cpu, addr, 8, SOFT_ACC_WRITE);
    uint64_t exp = (soft_get(cpu, SOFT_RDX, 4) << 32) | soft_get(cpu, SOFT_RAX, 4);
    uint64_t nv = (soft_get(cpu, SOFT_RCX, 4) << 32) | soft_get(cpu, SOFT_RBX, 4);
    uint64_t cur = soft_ldp(p, 8);
    if (cur == exp && soft_casp(p, 8, cur, nv)) {
        soft_flags_store(cpu, f | SOFT_ZF);
    } else {
        soft_set(cpu, SOFT_RAX, 4, cur);
        soft_set(cpu, SOFT_RDX, 4, cur >> 32);
        soft_flags_store(cpu, f);
    }
}

/* --- sign extension of the accumulator, flag instructions --------------------------------- */

SOFT_HANDLER(soft_cbw)
{
    unsigned osz = i->osz;
    soft_set(cpu, SOFT_RAX, osz, soft_sext(soft_get(cpu, SOFT_RAX, osz / 2), osz / 2));
}

SOFT_HANDLER(soft_cwd)
{
    unsigned osz = i->osz;
    uint64_t a = soft_get(cpu, SOFT_RAX, osz);
    soft_set(cpu, SOFT_RDX, osz, ((a >> (osz * 8 - 1)) & 1) ? ~0ull : 0);
}

SOFT_HANDLER(soft_lahf)
{
    (void)i;
    uint32_t f = soft_flags_arith(cpu);
    soft_set(cpu, SOFT_HIGH8 | 0, 1, (f & (SOFT_SF | SOFT_ZF | SOFT_AF | SOFT_PF | SOFT_CF)) | 2);
}

SOFT_HANDLER(soft_sahf)
{
    (void)i;
    uint32_t ah = (uint32_t)(cpu->regs[SOFT_RAX] >> 8) & 0xff;
    uint32_t f = soft_flags_arith(cpu) & SOFT_OF;
    f |= ah & (SOFT_SF | SOFT_ZF | SOFT_AF | SOFT_PF | SOFT_CF);
    soft_flags_store(cpu, f);
}

SOFT_HANDLER(soft_flagop)
{
    uint32_t f;
    switch (i->op) {
    case 0xf5: f = soft_flags_arith(cpu); soft_flags_store(cpu, f ^ SOFT_CF); break;
    case 0xf8: f = soft_flags_arith(cpu); soft_flags_store(cpu, f & ~SOFT_CF); break;
    case 0xf9: f = soft_flags_arith(cpu); soft_flags_store(cpu, f | SOFT_CF); break;
    case 0xfc: cpu->rflags &= ~(uint64_t)SOFT_DF; break;
    default: cpu->rflags |= SOFT_DF; break;
    }
}
