/* Random instruction generators for the differential tests (see diff_gen.h). */
#include "diff_gen.h"

#include <string.h>

uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

unsigned rn(struct rng *r, unsigned n)
{
    return (unsigned)(rnd(r) % n);
}

/* Random values biased towards the edges where flags and overflow rules live. */
uint64_t rval(struct rng *r)
{
    static const uint64_t edges[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
                                     0x7fffffff, 0x80000000, 0xffffffff, 0x7fffffffffffffff,
                                     0x8000000000000000, ~0ull, 0x100, 0x10000, 0x100000000};
    switch (rn(r, 6)) {
    case 0: return edges[rn(r, sizeof(edges) / sizeof(edges[0]))];
    case 1: return rnd(r) & 0xff;
    case 2: return (uint64_t)(int64_t)(int8_t)rnd(r);
    case 3: return rnd(r) & 0xffffffff;
    default: return rnd(r);
    }
}

/* Interesting floating-point bit patterns for the FP families. */
uint64_t rdouble(struct rng *r)
{
    static const double vals[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.0, 1e300, -1e-300,
                                  4.9e-324, 2147483647.0, 2147483648.5, -2147483649.0,
                                  9.3e18, -9.3e18, 1e10, 0.1, 1.0 / 3.0};
    uint64_t v;
    double d;
    switch (rn(r, 5)) {
    case 0: d = vals[rn(r, sizeof(vals) / sizeof(vals[0]))]; memcpy(&v, &d, 8); return v;
    case 1: return 0x7ff0000000000000ull | (rnd(r) & 0x8000000000000000ull); /* inf */
    case 2: return 0x7ff8000000000000ull | (rnd(r) & 0x8007ffffffffffffull); /* NaN */
    case 3: d = (double)(int32_t)rnd(r) / (double)(1 + rn(r, 100)); memcpy(&v, &d, 8); return v;
    default: return rnd(r);
    }
}

uint32_t rfloat(struct rng *r)
{
    static const float vals[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 2.5f, -3.5f, 1e30f, 1e-40f,
                                 2147483520.0f, 3e9f, -3e9f, 0.1f};
    uint32_t v;
    float f;
    switch (rn(r, 5)) {
    case 0: f = vals[rn(r, sizeof(vals) / sizeof(vals[0]))]; memcpy(&v, &f, 4); return v;
    case 1: return 0x7f800000u | ((uint32_t)rnd(r) & 0x80000000u);
    case 2: return 0x7fc00000u | ((uint32_t)rnd(r) & 0x803fffffu);
    case 3: f = (float)(int16_t)rnd(r) / (float)(1 + rn(r, 100)); memcpy(&v, &f, 4); return v;
    default: return (uint32_t)rnd(r);
    }
}



void emit(struct gen *g, unsigned b)
{
    g->code[g->len++] = (uint8_t)b;
}

void emit_n(struct gen *g, uint64_t v, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        emit(g, (unsigned)(v >> (8 * k)) & 0xff);
}

/* A general register index other than RSP (the harness keeps its own stack there). */
static unsigned rreg(struct rng *r)
{
    unsigned v;
    do {
        v = rn(r, 16);
    } while (v == 4);
    return v;
}


/* Operands for 32/16-bit code: registers 0-7 (ESP too: nothing here uses the stack), sizes
 * 1/2/4, memory forms with either address size. */
static void pick_ops_legacy(const struct gen *g, struct rng *r, struct ops *o, int byteop,
                            int allow_mem)
{
    o->osz = byteop ? 1 : rn(r, 2) ? 2 : 4;
    o->reg = rn(r, 8);
    o->rm = rn(r, 8);
    o->mem = allow_mem && rn(r, 2);
    o->disp = rn(r, 112);
    o->rex_force = 0;
    unsigned dasz = g->mode == 16 ? 2 : 4;
    o->asz = rn(r, 3) == 0 ? 6 - dasz : dasz;
    o->aform = rn(r, 256);
}

void pick_ops(const struct gen *g, struct rng *r, struct ops *o, int byteop,
                     int allow_mem)
{
    if (g->mode != 64) {
        pick_ops_legacy(g, r, o, byteop, allow_mem);
        return;
    }
    o->osz = byteop ? 1 : (unsigned[]){2, 4, 8}[rn(r, 3)];
    o->reg = rreg(r);
    o->rm = rreg(r);
    o->mem = allow_mem && rn(r, 2);
    o->disp = rn(r, 112); /* disp8 is signed: stay below 128 */
    o->rex_force = rn(r, 4) == 0;
}

/* ModRM (+ SIB) + disp8 of a 32/16-bit memory form. 16-bit: all eight [bx+si].. [bx] forms
 * with disp8; 32-bit: [ebx/ebp/esi/edi + disp8] or [ebx/ebp + esi/edi*1/2 + disp8]. The
 * harness keeps BX BP SI DI small, so every form stays in the memory page; for some
 * two-register forms it makes the sum wrap around the address size instead. */
static void emit_legacy_mem(struct gen *g, const struct ops *o, unsigned regf)
{
    static const uint8_t base32[] = {3, 5, 6, 7};
    if (o->asz == 2) {
        emit(g, 0x40 | ((regf & 7) << 3) | (o->aform & 7));
    } else if (o->aform & 32) {
        emit(g, 0x44 | ((regf & 7) << 3));
        unsigned base = (o->aform & 1) ? 5 : 3, index = (o->aform & 2) ? 7 : 6;
        emit(g, ((o->aform >> 2) & 1) << 6 | index << 3 | base);
    } else {
        emit(g, 0x40 | ((regf & 7) << 3) | base32[o->aform & 3]);
    }
    emit(g, o->disp);
    g->addr_size = o->asz;
    if (o->aform & 16) {
        if (o->asz == 2 ? (o->aform & 7) < 4 : (o->aform & 32))
            g->addr_wrap = 1;
        else if (o->asz == 4 && g->addr_wrap == 2)
            g->addr_wrap = 2; /* asked for by gen_l_wrap */
    }
    if (g->addr_wrap == 2 && (o->asz != 4 || (o->aform & 32)))
        g->addr_wrap = 0;
}

/* Emit [66] [REX] opcode ModRM [disp8] for the operand choice; opcode bytes in op[0..nop). */
void emit_modrm_insn(struct gen *g, const struct ops *o, const uint8_t *op, unsigned nop,
                            int digit, int mand_pfx)
{
    if (g->mode != 64) {
        unsigned dsz = g->mode == 16 ? 2 : 4, regf = digit >= 0 ? (unsigned)digit : o->reg;
        /* Not for size 8 (REX.W in 64-bit code) nor SSE: their GPR operands are 32-bit */
        if (o->osz != 1 && o->osz != 8 && o->osz != dsz && !mand_pfx && !g->sse)
            emit(g, 0x66);
        if (o->mem && o->asz != dsz)
            emit(g, 0x67);
        if (o->mem && (o->aform >> 6))
            emit(g, (unsigned[]){0, 0x26, 0x36, 0x3e}[o->aform >> 6]);
        if (mand_pfx)
            emit(g, (unsigned)mand_pfx);
        for (unsigned k = 0; k < nop; k++)
            emit(g, op[k]);
        if (o->mem)
            emit_legacy_mem(g, o, regf);
        else
            emit(g, 0xc0 | ((regf & 7) << 3) | (o->rm & 7));
        return;
    }
    if (o->osz == 2)
        emit(g, 0x66);
    if (mand_pfx)
        emit(g, (unsigned)mand_pfx);
    unsigned regf = digit >= 0 ? (unsigned)digit : o->reg;
    unsigned rex = 0x40 | (o->osz == 8 ? 8 : 0) | ((regf & 8) ? 4 : 0) |
                   (!o->mem && (o->rm & 8) ? 1 : 0);
    if (rex != 0x40 || o->rex_force)
        emit(g, rex);
    for (unsigned k = 0; k < nop; k++)
        emit(g, op[k]);
    if (o->mem) {
        emit(g, 0x40 | ((regf & 7) << 3) | 3); /* [rbx + disp8] */
        emit(g, o->disp);
    } else {
        emit(g, 0xc0 | ((regf & 7) << 3) | (o->rm & 7));
    }
}

unsigned imm_size(unsigned osz)
{
    return osz == 1 ? 1 : osz == 2 ? 2 : 4;
}

/* --- families ----------------------------------------------------------------------------- */

void gen_alu(struct rng *r, struct gen *g)
{
    struct ops o;
    unsigned op = rn(r, 8), form = rn(r, 6);
    int logic = op == 1 || op == 4 || op == 6;
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    g->fmask = logic ? F_ALL & ~F_AF : F_ALL;
    uint8_t b;
    switch (form) {
    case 0: /* op Eb/Ev, Gb/Gv or reversed */
    case 1:
        b = (uint8_t)(op * 8 + (form == 1 ? 2 : 0) + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        g->what = "alu r/m,r";
        break;
    case 2: /* accumulator, immediate */
        o.mem = 0;
        if (o.osz != 1 && o.osz != (g->mode == 16 ? 2u : 4u) && o.osz != 8)
            emit(g, 0x66);
        if (o.osz == 8)
            emit(g, 0x48);
        emit(g, op * 8 + 4 + (o.osz != 1));
        emit_n(g, rval(r), imm_size(o.osz));
        g->what = "alu acc,imm";
        break;
    case 3: { /* 80/81/83 */
        unsigned k = o.osz == 1 ? 0 : rn(r, 2);
        b = (uint8_t)(o.osz == 1 ? 0x80 : k ? 0x83 : 0x81);
        emit_modrm_insn(g, &o, &b, 1, (int)op, 0);
        emit_n(g, rval(r), b == 0x81 ? imm_size(o.osz) : 1);
        g->what = "alu r/m,imm";
        break;
    }
    case 4: /* TEST r/m, r */
        b = (uint8_t)(0x84 + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        g->fmask = F_ALL & ~F_AF;
        g->what = "test";
        break;
    default: /* TEST r/m, imm */
        b = (uint8_t)(0xf6 + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, 0, 0);
        emit_n(g, rval(r), imm_size(o.osz));
        g->fmask = F_ALL & ~F_AF;
        g->what = "test imm";
        break;
    }
}

void gen_unary(struct rng *r, struct gen *g)
{
    struct ops o;
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    unsigned k = rn(r, 4); /* INC DEC NOT NEG */
    uint8_t b = (uint8_t)((k < 2 ? 0xfe : 0xf6) + (o.osz != 1));
    emit_modrm_insn(g, &o, &b, 1, k < 2 ? (int)k : (int)k, 0);
    g->fmask = F_ALL;
    g->what = "inc/dec/not/neg";
}

static void gen_shift(struct rng *r, struct gen *g)
{
    struct ops o;
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    unsigned kind = rn(r, 8), form = rn(r, 4), count;
    uint8_t b;
    unsigned bits = o.osz * 8;
    if (kind == 6)
        kind = 4;
    if (form == 3 && o.osz != 1) { /* SHLD/SHRD */
        int left = rn(r, 2), cl = rn(r, 2);
        uint8_t ob[2] = {0x0f, (uint8_t)((left ? 0xa4 : 0xac) + cl)};
        count = rn(r, bits == 16 ? 17 : bits);
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
        if (!cl)
            emit(g, count);
        else
            emit(g, 0x90); /* NOP: keeps the count in CL from the state below */
        g->fmask = count == 1 ? F_ALL & ~F_AF : F_ALL & ~(F_AF | F_OF);
        g->cl = (int)count;
        g->what = "shld/shrd";
        return;
    }
    count = rn(r, 4) == 0 ? rn(r, 256) : rn(r, bits + 2);
    if (form == 0) {
        b = (uint8_t)(0xd0 + (o.osz != 1));
        count = 1;
    } else if (form == 1) {
        b = (uint8_t)(0xc0 + (o.osz != 1));
    } else {
        b = (uint8_t)(0xd2 + (o.osz != 1));
    }
    emit_modrm_insn(g, &o, &b, 1, (int)kind, 0);
    if (form == 1)
        emit(g, count);
    else
        emit(g, 0x90);
    unsigned masked = count & (o.osz == 8 ? 63 : 31);
    g->fmask = F_ALL & ~F_AF;
    if (masked != 1)
        g->fmask &= ~F_OF;
    if (kind < 4)
        g->fmask &= F_CF | F_OF; /* rotates touch only CF and OF */
    if (kind >= 4 && masked >= bits)
        g->fmask &= ~F_CF; /* 8/16-bit shifts past the width */
    if (kind == 0 || kind == 1) {
        if (masked % bits == 0 && masked != 0)
            g->fmask &= ~F_OF;
    }
    if (masked == 0)
        g->fmask = F_ALL;
    g->cl = (int)count;
    g->what = "shift/rotate";
}

static void gen_muldiv(struct rng *r, struct gen *g)
{
    struct ops o;
    unsigned form = rn(r, 4);
    pick_ops(g, r, &o, form == 0 && rn(r, 3) == 0, 1);
    if (form == 0) { /* F6/F7 /4..7 */
        unsigned k = 4 + rn(r, 4);
        uint8_t b = (uint8_t)(0xf6 + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, (int)k, 0);
        g->fmask = k < 6 ? F_CF | F_OF : 0;
        g->what = k < 6 ? "mul/imul" : "div/idiv";
        g->small_rdx = 1;
        return;
    }
    if (o.osz == 1)
        o.osz = 4;
    if (form == 1) {
        uint8_t ob[2] = {0x0f, 0xaf};
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
    } else {
        uint8_t b = form == 2 ? 0x69 : 0x6b;
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        emit_n(g, rval(r), form == 2 ? imm_size(o.osz) : 1);
    }
    g->fmask = F_CF | F_OF;
    g->what = "imul r,r/m[,imm]";
}

void gen_bit(struct rng *r, struct gen *g)
{
    struct ops o;
    pick_ops(g, r, &o, 0, 1);
    unsigned form = rn(r, 5);
    if (o.osz == 1)
        o.osz = 4;
    switch (form) {
    case 0: { /* BT/BTS/BTR/BTC r/m, r: memory forms with the register offset kept small */
        uint8_t ob[2] = {0x0f, (uint8_t)(0xa3 + 8 * rn(r, 4))};
        if (o.mem && o.reg == 3)
            o.reg = 0; /* the offset register must not be the base */
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
        g->fmask = F_CF;
        g->bt_reg = o.mem ? (int)o.reg + 1 : 0;
        g->what = "bt r/m,r";
        break;
    }
    case 1: {
        uint8_t ob[2] = {0x0f, 0xba};
        emit_modrm_insn(g, &o, ob, 2, (int)(4 + rn(r, 4)), 0);
        emit(g, rn(r, 256));
        g->fmask = F_CF;
        g->what = "bt r/m,imm";
        break;
    }
    case 2: {
        uint8_t ob[2] = {0x0f, (uint8_t)(0xbc + rn(r, 2))};
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
        g->fmask = F_ZF;
        g->what = "bsf/bsr";
        break;
    }
    case 3: { /* BSWAP (32/64 only) */
        if (o.osz == 2)
            o.osz = 4;
        unsigned reg = rreg(r);
        unsigned rex = 0x40 | (o.osz == 8 ? 8 : 0) | ((reg & 8) ? 1 : 0);
        if (g->mode == 16)
            emit(g, 0x66);
        if (rex != 0x40 && g->mode == 64)
            emit(g, rex);
        emit(g, 0x0f);
        emit(g, 0xc8 + (reg & 7));
        g->fmask = F_ALL;
        g->what = "bswap";
        break;
    }
    default: { /* XADD / CMPXCHG */
        int byteop = rn(r, 3) == 0;
        if (byteop)
            o.osz = 1;
        uint8_t ob[2] = {0x0f, (uint8_t)((rn(r, 2) ? 0xc0 : 0xb0) + (byteop ? 0 : 1))};
        if (o.mem && rn(r, 2))
            emit(g, 0xf0); /* LOCK */
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
        g->fmask = F_ALL;
        g->what = "xadd/cmpxchg";
        break;
    }
    }
}

void emit_cmov_setcc(struct rng *r, struct gen *g, struct ops *o, int cmov)
{
    uint8_t ob[2] = {0x0f, (uint8_t)((cmov ? 0x40 : 0x90) + rn(r, 16))};
    if (cmov && o->osz == 1)
        o->osz = 4;
    if (!cmov)
        o->osz = 1;
    emit_modrm_insn(g, o, ob, 2, cmov ? -1 : 0, 0);
    g->what = cmov ? "cmovcc" : "setcc";
}

static void gen_mov(struct rng *r, struct gen *g)
{
    struct ops o;
    unsigned form = rn(r, 10);
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    g->fmask = F_ALL;
    uint8_t b, ob[2];
    switch (form) {
    case 0:
        b = (uint8_t)(0x88 + (o.osz != 1) + 2 * rn(r, 2));
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        g->what = "mov";
        break;
    case 1:
        b = (uint8_t)(0xc6 + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, 0, 0);
        emit_n(g, rval(r), imm_size(o.osz));
        g->what = "mov imm";
        break;
    case 2: { /* MOVZX/MOVSX */
        if (o.osz == 1)
            o.osz = 4;
        ob[0] = 0x0f;
        ob[1] = (uint8_t)((rn(r, 2) ? 0xb6 : 0xbe) + rn(r, 2));
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
        g->what = "movzx/movsx";
        break;
    }
    case 3:
        o.osz = 8;
        b = 0x63;
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        g->what = "movsxd";
        break;
    case 4:
        if (o.osz == 1)
            o.osz = 8;
        o.mem = 1;
        b = 0x8d;
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        g->what = "lea";
        break;
    case 5:
        b = (uint8_t)(0x86 + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, -1, 0);
        g->what = "xchg";
        break;
    case 6:
    case 7:
        emit_cmov_setcc(r, g, &o, form == 6);
        break;
    case 8: { /* CBW/CWDE/CDQE, CWD/CDQ/CQO, LAHF, SAHF, CMC/CLC/STC */
        static const uint8_t one[] = {0x98, 0x99, 0x9f, 0x9e, 0xf5, 0xf8, 0xf9};
        unsigned k = rn(r, sizeof(one));
        if (k < 2) {
            unsigned s = rn(r, 3);
            if (s == 0)
                emit(g, 0x66);
            if (s == 2)
                emit(g, 0x48);
        }
        emit(g, one[k]);
        g->what = "cbw/cwd/lahf/sahf/cmc";
        break;
    }
    default: { /* MOV r, imm64 and B0+r */
        unsigned reg = rreg(r);
        if (o.osz == 1) {
            if (reg & 8)
                emit(g, 0x41);
            emit(g, 0xb0 + (reg & 7));
            emit(g, rn(r, 256));
        } else {
            unsigned rex = 0x40 | (o.osz == 8 ? 8 : 0) | ((reg & 8) ? 1 : 0);
            if (o.osz == 2)
                emit(g, 0x66);
            if (rex != 0x40)
                emit(g, rex);
            emit(g, 0xb8 + (reg & 7));
            emit_n(g, rval(r), o.osz);
        }
        g->what = "mov r,imm";
        break;
    }
    }
}

static void gen_string(struct rng *r, struct gen *g)
{
    static const uint8_t ops[] = {0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
    unsigned k = rn(r, sizeof(ops));
    unsigned rep = rn(r, 3);
    unsigned s = rn(r, 3);
    if (rep == 1)
        emit(g, 0xf3);
    else if (rep == 2)
        emit(g, 0xf2);
    if ((ops[k] & 1) && s == 0)
        emit(g, 0x66);
    if ((ops[k] & 1) && s == 2)
        emit(g, 0x48);
    emit(g, ops[k]);
    g->string = 1;
    g->fmask = F_ALL | F_DF;
    g->what = "string";
}

void gen_sse_int(struct rng *r, struct gen *g)
{
    static const uint8_t bin[] = {
        0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
        0x74, 0x75, 0x76, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd,
        0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed,
        0xee, 0xef, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd,
        0xfe, 0x6f, 0x7f, 0xd6};
    struct ops o;
    pick_ops(g, r, &o, 0, 1);
    o.osz = 4;
    o.disp = rn(r, 7) * 16;
    unsigned form = rn(r, 6);
    g->fmask = F_ALL;
    g->what = "sse2 integer";
    if (form <= 2) {
        uint8_t ob[2] = {0x0f, bin[rn(r, sizeof(bin))]};
        int pfx = 0x66;
        if ((ob[1] == 0x6f || ob[1] == 0x7f) && rn(r, 2))
            pfx = 0xf3;
        if (ob[1] == 0xd6)
            o.disp = rn(r, 14) * 8;
        emit_modrm_insn(g, &o, ob, 2, -1, pfx);
    } else if (form == 3) { /* shifts by immediate, PSHUFD/HW/LW */
        o.mem = 0;
        static const uint8_t digits[] = {0x12, 0x14, 0x16, 0x22, 0x24, 0x26, 0x32, 0x33, 0x36,
                                         0x37};
        if (rn(r, 2)) {
            unsigned d = digits[rn(r, sizeof(digits))];
            uint8_t ob[2] = {0x0f, (uint8_t)(0x70 + (d >> 4))};
            emit_modrm_insn(g, &o, ob, 2, (int)(d & 7), 0x66);
            emit(g, rn(r, 4) ? rn(r, 20) : rn(r, 256));
        } else {
            static const int pf[] = {0x66, 0xf3, 0xf2};
            uint8_t ob[2] = {0x0f, 0x70};
            o.mem = rn(r, 2);
            emit_modrm_insn(g, &o, ob, 2, -1, pf[rn(r, 3)]);
            emit(g, rn(r, 256));
        }
    } else if (form == 4) { /* MOVD/MOVQ to and from GPRs, PMOVMSKB, PEXTRW, PINSRW */
        unsigned k = rn(r, 5);
        o.osz = rn(r, 2) ? 8 : 4;
        if (k == 0 || k == 1) {
            uint8_t ob[2] = {0x0f, (uint8_t)(k ? 0x7e : 0x6e)};
            emit(g, 0x66);
            struct ops p = o;
            p.osz = o.osz == 8 ? 8 : 4;
            emit_modrm_insn(g, &p, ob, 2, -1, 0);
        } else if (k == 2) {
            uint8_t ob[2] = {0x0f, 0xd7};
            o.mem = 0;
            o.osz = 4;
            emit_modrm_insn(g, &o, ob, 2, -1, 0x66);
        } else if (k == 3) {
            uint8_t ob[2] = {0x0f, 0xc5};
            o.mem = 0;
            o.osz = 4;
            emit_modrm_insn(g, &o, ob, 2, -1, 0x66);
            emit(g, rn(r, 8));
        } else {
            uint8_t ob[2] = {0x0f, 0xc4};
            o.osz = 4;
            emit_modrm_insn(g, &o, ob, 2, -1, 0x66);
            emit(g, rn(r, 8));
        }
        g->what = "sse2 movd/movq/pmovmskb/pextrw/pinsrw";
    } else { /* MOVQ xmm, xmm/m64 (F3 0F 7E) */
        uint8_t ob[2] = {0x0f, 0x7e};
        o.disp = rn(r, 14) * 8;
        emit_modrm_insn(g, &o, ob, 2, -1, 0xf3);
        g->what = "sse2 movq";
    }
}

void gen_sse_fp(struct rng *r, struct gen *g)
{
    static const uint8_t arith[] = {0x51, 0x58, 0x59, 0x5c, 0x5d, 0x5e, 0x5f, 0x54, 0x55, 0x56,
                                    0x57, 0x14, 0x15, 0x5a, 0x5b, 0xc2, 0xc6, 0xe6, 0x10, 0x11,
                                    0x28, 0x12, 0x16};
    struct ops o;
    pick_ops(g, r, &o, 0, 1);
    o.osz = 4;
    unsigned form = rn(r, 5);
    static const int pf[] = {0, 0x66, 0xf3, 0xf2};
    unsigned p = rn(r, 4);
    g->fp = (p == 1 || p == 3) ? 1 : 2;
    g->fmask = F_ALL;
    if (form <= 2) {
        uint8_t op = arith[rn(r, sizeof(arith))];
        /* keep to defined forms */
        if ((op == 0x54 || op == 0x55 || op == 0x56 || op == 0x57 || op == 0x14 || op == 0x15 ||
             op == 0xc6 || op == 0x28) && p >= 2)
            p = rn(r, 2);
        if (op == 0xe6 && p == 0)
            p = 1 + rn(r, 3);
        if ((op == 0x12 || op == 0x16) && p >= 1) {
            p = 0;
        }
        if (op == 0x52 && p & 1)
            p = 0;
        g->fp = (p == 1 || p == 3) ? 1 : 2;
        o.disp = (p >= 2 || op == 0x12 || op == 0x16) ? rn(r, 14) * 8 : rn(r, 7) * 16;
        if (op == 0x5a && p == 0)
            o.disp = rn(r, 14) * 8;
        if (op == 0xe6 && p == 2)
            o.disp = rn(r, 14) * 8;
        uint8_t ob[2] = {0x0f, op};
        emit_modrm_insn(g, &o, ob, 2, -1, pf[p]);
        if (op == 0xc2 || op == 0xc6)
            emit(g, op == 0xc2 ? rn(r, 8) : rn(r, 256));
        g->what = "sse fp arith/cvt/move";
    } else if (form == 3) { /* COMIS/UCOMIS */
        p = rn(r, 2);
        g->fp = p ? 1 : 2;
        o.disp = rn(r, 14) * 8;
        uint8_t ob[2] = {0x0f, (uint8_t)(0x2e + rn(r, 2))};
        emit_modrm_insn(g, &o, ob, 2, -1, pf[p]);
        g->what = "comis/ucomis";
    } else { /* CVTSI2Sx, CVT(T)Sx2SI, MOVMSKPx */
        unsigned k = rn(r, 3);
        p = 2 + rn(r, 2);
        g->fp = p == 3 ? 1 : 2;
        o.osz = rn(r, 2) ? 8 : 4;
        o.disp = rn(r, 14) * 8;
        if (k == 0) {
            uint8_t ob[2] = {0x0f, 0x2a};
            emit_modrm_insn(g, &o, ob, 2, -1, pf[p]);
        } else if (k == 1) {
            uint8_t ob[2] = {0x0f, (uint8_t)(0x2c + rn(r, 2))};
            emit_modrm_insn(g, &o, ob, 2, -1, pf[p]);
        } else {
            p = rn(r, 2);
            o.mem = 0;
            o.osz = 4;
            uint8_t ob[2] = {0x0f, 0x50};
            emit_modrm_insn(g, &o, ob, 2, -1, pf[p]);
        }
        g->what = "cvtsi2sx/cvtsx2si/movmsk";
    }
}

/* x87: short sequences that load from memory, compute, and store back, leaving the stack
 * empty; memory holds doubles at [rbx+0..], [rbx+8..], the results go to [rbx+64..]. */
void gen_x87(struct rng *r, struct gen *g)
{
    static const uint8_t ariths[][2] = {{0xde, 0xc1}, {0xde, 0xc9}, {0xde, 0xe9}, {0xde, 0xe1},
                                        {0xde, 0xf9}, {0xde, 0xf1}};
    g->fp = 3;
    g->x87 = 1;
    g->fmask = F_ALL;
    unsigned k = rn(r, 6);
    /* fld qword [rbx]; fld qword [rbx+8] */
    emit(g, 0xdd); emit(g, 0x03);
    emit(g, 0xdd); emit(g, 0x43); emit(g, 0x08);
    switch (k) {
    case 0: case 1: /* arithmetic and pop, store as m64 and m80 */
        emit(g, ariths[rn(r, 6)][0]);
        g->code[g->len - 1] = 0xde;
        emit(g, ariths[rn(r, 6)][1]);
        emit(g, 0xd9); emit(g, 0xc0);               /* fld st0 */
        emit(g, 0xdb); emit(g, 0x7b); emit(g, 64);  /* fstp tword [rbx+64] */
        emit(g, 0xdd); emit(g, 0x5b); emit(g, 80);  /* fstp qword [rbx+80] */
        g->what = "x87 arith";
        break;
    case 2: /* compare with FUCOMIP/FCOMIP then clean */
        emit(g, rn(r, 2) ? 0xdf : 0xdf);
        emit(g, rn(r, 2) ? 0xe9 : 0xf1);
        emit(g, 0xdd); emit(g, 0xd8);               /* fstp st0 */
        g->fmask = F_ZF | F_PF | F_CF;
        g->what = "x87 fcomi";
        break;
    case 3: /* FCOMPP + FNSTSW AX */
        emit(g, 0xde); emit(g, 0xd9);
        emit(g, 0xdf); emit(g, 0xe0);
        g->what = "x87 fcompp/fnstsw";
        g->fsw_only = 1;
        break;
    case 4: /* FISTP m32 / m64 / m16 of the sum, FILD back */
        emit(g, 0xde); emit(g, 0xc1);
        if (rn(r, 2)) {
            emit(g, 0xdb); emit(g, 0x5b); emit(g, 64);  /* fistp dword [rbx+64] */
        } else {
            emit(g, 0xdf); emit(g, 0x7b); emit(g, 72);  /* fistp qword [rbx+72] */
        }
        emit(g, 0xdf); emit(g, 0x43); emit(g, 16);      /* fild word [rbx+16] */
        emit(g, 0xd9); emit(g, 0x5b); emit(g, 88);      /* fstp dword [rbx+88] */
        g->what = "x87 fist/fild";
        break;
    default: { /* unary ops on ST0: FCHS FABS FSQRT FRNDINT, plus FXCH */
        static const uint8_t un[] = {0xe0, 0xe1, 0xfa, 0xfc, 0xc9};
        emit(g, 0xd9); emit(g, un[rn(r, sizeof(un))]);
        emit(g, 0xdd); emit(g, 0x5b); emit(g, 64);
        emit(g, 0xdd); emit(g, 0x5b); emit(g, 72);
        g->what = "x87 unary";
        break;
    }
    }
}

/* A flag-setting instruction followed by SETcc and CMOVcc: checks the conditions computed from
 * lazily kept flags (the single-instruction families start from materialized flags). */
static void gen_cond(struct rng *r, struct gen *g)
{
    if (rn(r, 2))
        gen_alu(r, g);
    else
        gen_unary(r, g);
    unsigned reg = rreg(r), cc = rn(r, 16);
    emit(g, 0x40 | ((reg & 8) ? 1 : 0));
    emit(g, 0x0f);
    emit(g, 0x90 + cc);
    emit(g, 0xc0 | (reg & 7));
    unsigned d = rreg(r), s2 = rreg(r);
    emit(g, 0x48 | ((d & 8) ? 4 : 0) | ((s2 & 8) ? 1 : 0));
    emit(g, 0x0f);
    emit(g, 0x40 + rn(r, 16));
    emit(g, 0xc0 | ((d & 7) << 3) | (s2 & 7));
    g->what = "flags then setcc/cmovcc";
}

/* A general register that is neither RSP nor RBX (the memory operands' base). */
static unsigned data_reg(struct rng *r)
{
    unsigned v;
    do {
        v = rn(r, 16);
    } while (v == 4 || v == 3);
    return v;
}

/* op r/m, r between registers: src in ModRM.reg, dst in ModRM.rm; REX.W when w. */
static void emit_rr(struct rng *r, struct gen *g, uint8_t op, int w, unsigned src, unsigned dst)
{
    unsigned rex = 0x40 | (w ? 8 : 0) | ((src & 8) ? 4 : 0) | ((dst & 8) ? 1 : 0);
    if (rex != 0x40 || rn(r, 4) == 0)
        emit(g, rex);
    emit(g, op);
    emit(g, 0xc0 | ((src & 7) << 3) | (dst & 7));
}

/* Sequences for the passes over a whole decoded block, run with soft_cpu_run (gen.block): a
 * 32-bit (sometimes 64-bit) register MOV or ALU op and a second operation, mostly on the same
 * register (the same-register pairs, also with the second's source being that register), then
 * usually a flag producer of any form, which makes the pair's flags dead (flagless forms), and a
 * Jcc over a flag-neutral LEA, closing the block (compare-and-branch fusion, JE/JNE and the
 * others). */
static void gen_fuse(struct rng *r, struct gen *g)
{
    static const uint8_t alu[] = {0x89, 0x31, 0x21, 0x09, 0x01}; /* MOV XOR AND OR ADD Ev,Gv */
    unsigned dst = data_reg(r), src = data_reg(r);
    int producer = rn(r, 4) != 0;
    emit_rr(r, g, alu[rn(r, 5)], rn(r, 4) == 0, src, dst);
    unsigned dst2 = rn(r, 4) ? dst : data_reg(r);
    unsigned second = producer ? rn(r, 3) : 0;
    if (second == 0) { /* XOR AND OR ADD */
        emit_rr(r, g, alu[1 + rn(r, 4)], 0, rn(r, 3) ? data_reg(r) : dst2, dst2);
    } else if (second == 1) { /* ROL ROR SHL SHR by a constant, sometimes 0 or above 31 */
        static const unsigned digit[] = {0, 1, 4, 5};
        if (dst2 & 8)
            emit(g, 0x41);
        emit(g, 0xc1);
        emit(g, 0xc0 | (digit[rn(r, 4)] << 3) | (dst2 & 7));
        emit(g, rn(r, 8) ? 1 + rn(r, 31) : rn(r, 256));
    } else { /* NOT NEG */
        emit(g, 0x40 | ((dst2 & 8) ? 1 : 0) | (rn(r, 2) ? 8 : 0));
        emit(g, 0xf7);
        emit(g, 0xc0 | ((2 + rn(r, 2)) << 3) | (dst2 & 7));
    }
    if (producer) {
        /* After a shift or rotate, whose OF (and more, for a zero count) is undefined, the
         * producer must write the flags: INC DEC NOT NEG only follow the ALU forms, as NOT
         * leaves the flags of the instruction before it. */
        if (second == 0 && rn(r, 2))
            gen_unary(r, g);
        else
            gen_alu(r, g);
    }
    emit(g, 0x70 + rn(r, 16)); /* Jcc over the LEA */
    emit(g, 4);
    static const uint8_t lea_r15_inc[] = {0x4d, 0x8d, 0x7f, 0x01}; /* lea r15, [r15 + 1] */
    for (unsigned k = 0; k < sizeof(lea_r15_inc); k++)
        emit(g, lea_r15_inc[k]);
    g->fmask = F_ALL & ~F_AF; /* AF is left undefined by the logic forms */
    g->block = 1;
    g->what = "register pair, flag producer, Jcc (as one block)";
}

/* Every 64-bit family below that is not a block family already (fuse, jit) also runs each
 * case as a block through soft_cpu_run (diff.c run_case), so that the block compiler sees each
 * form on its own: none needs .no_block today (no instruction here ends its block or depends
 * on being stepped). */
const struct family families[] = {
    {.name = "alu", .gen = gen_alu,
     .opcodes = "00-05 08-0D 10-15 18-1D 20-25 28-2D 30-35 38-3D 80 81 83 84 85 A8 A9 F6/0 F7/0"},
    {.name = "unary", .gen = gen_unary,
     .opcodes = "FE/0-1 FF/0-1 F6/2-3 F7/2-3"},
    {.name = "cond", .gen = gen_cond,
     .opcodes = "SETcc/CMOVcc after ALU, INC/DEC/NEG (lazy flags)"},
    {.name = "fuse", .gen = gen_fuse,
     .opcodes = "89 01 09 21 31 C1/0,1,4,5 F7/2,3 pairs, ALU or INC/DEC/NOT/NEG, then 70-7F "
                "(whole blocks)"},
    {.name = "jit", .gen = gen_jit,
     .opcodes = "00-05 08-0D 10-15 18-1D 20-25 28-2D 30-35 38-3D 80 81 83 84 85 A8 A9 F6/F7 /0-3 "
                "FE/FF /0-1 88-8B C6 C7 B0-BF 8D 63 0F B6 B7 BE BF C0 C1 D0-D3 50-5F 0F 40-4F "
                "0F 90-9F 0F AF 69 6B 0F C8-CF 90 0F 1F 70-7F 0F 80-8F EB E8 C3 FF/2,4, with 87 0F BA/4 "
                "F0 01 F5 F8 F9 6A 68 66 50/58 interpreted between them; all memory forms, "
                "67, FS/GS (sequences as one block)"},
    {.name = "smc", .gen = gen_smc,
     .opcodes = "C6 88 80 FE/0-1 F6/2-3 C0/4 86 0F 90-9F F0 80/6 storing into a later 83/0 of "
                "the same block, 50-57 E8 with the stack in the code page (one block, the code "
                "page watched for writes)"},
    {.name = "shift", .gen = gen_shift,
     .opcodes = "C0 C1 D0-D3 /0-7, 0F A4 A5 AC AD"},
    {.name = "muldiv", .gen = gen_muldiv,
     .opcodes = "F6/F7 /4-7, 0F AF, 69, 6B"},
    {.name = "bit", .gen = gen_bit,
     .opcodes = "0F A3 AB B3 BB BA BC BD C8-CF, 0F B0 B1 C0 C1 (LOCK)"},
    {.name = "mov", .gen = gen_mov,
     .opcodes = "88-8B C6 C7 B0-BF 0F B6 B7 BE BF 63 8D 86 87 0F 40-4F 0F 90-9F 98 99 9E 9F F5 F8 "
                "F9"},
    {.name = "string", .gen = gen_string,
     .opcodes = "A4-A7 AA-AF with F3/F2"},
    {.name = "sse-int", .gen = gen_sse_int,
     .opcodes = "66 0F 60-6F 70-76 7E 7F C4 C5 D1-FE, F3 0F 6F 7E 7F"},
    {.name = "sse-fp", .gen = gen_sse_fp,
     .opcodes = "0F 10-16 28 2A 2C-2F 50-5F C2 C6 E6 (none/66/F3/F2)"},
    {.name = "x87", .gen = gen_x87,
     .opcodes = "D9 DB DD DE DF (FLD FSTP FIST FILD FADDP.. FCOMIP FCOMPP FNSTSW FCHS FABS FSQRT "
                "FRNDINT FXCH)"},
    /* 32-bit code (compatibility mode) and 16-bit code (a 16-bit LDT code segment). */
    {.name = "alu32", .gen = gen_l_alu, .mode = 32,
     .opcodes = "ALU 00-3D 80-85 A8 A9 F6/F7 FE/FF /0-3, 40-4F INC/DEC, 66/67"},
    {.name = "alu16", .gen = gen_l_alu, .mode = 16,
     .opcodes = "ALU 00-3D 80-85 A8 A9 F6/F7 FE/FF /0-3, 40-4F INC/DEC, 66/67"},
    {.name = "cond32", .gen = gen_l_cond, .mode = 32,
     .opcodes = "SETcc/CMOVcc after ALU, INC/DEC"},
    {.name = "cond16", .gen = gen_l_cond, .mode = 16,
     .opcodes = "SETcc/CMOVcc after ALU, INC/DEC"},
    {.name = "shift32", .gen = gen_shift, .mode = 32,
     .opcodes = "C0 C1 D0-D3 /0-7, 0F A4 A5 AC AD"},
    {.name = "shift16", .gen = gen_shift, .mode = 16,
     .opcodes = "C0 C1 D0-D3 /0-7, 0F A4 A5 AC AD"},
    {.name = "muldiv32", .gen = gen_muldiv, .mode = 32,
     .opcodes = "F6/F7 /4-7, 0F AF, 69, 6B"},
    {.name = "muldiv16", .gen = gen_muldiv, .mode = 16,
     .opcodes = "F6/F7 /4-7, 0F AF, 69, 6B"},
    {.name = "bit32", .gen = gen_l_bit, .mode = 32,
     .opcodes = "0F A3 AB B3 BB BA BC BD C8-CF B0 B1 C0 C1 C7/1 (LOCK)"},
    {.name = "bit16", .gen = gen_l_bit, .mode = 16,
     .opcodes = "0F A3 AB B3 BB BA BC BD C8-CF B0 B1 C0 C1 C7/1 (LOCK)"},
    {.name = "mov32", .gen = gen_l_mov, .mode = 32,
     .opcodes = "88-8C A0-A3 C6 C7 B0-BF 90-97 98 99 9E 9F D7 0F B6 B7 BE BF 0F 40-4F 0F 90-9F, "
                "8D all 16/32-bit forms"},
    {.name = "mov16", .gen = gen_l_mov, .mode = 16,
     .opcodes = "88-8C A0-A3 C6 C7 B0-BF 90-97 98 99 9E 9F D7 0F B6 B7 BE BF 0F 40-4F 0F 90-9F, "
                "8D all 16/32-bit forms"},
    {.name = "string32", .gen = gen_l_string, .mode = 32,
     .opcodes = "A4-A7 AA-AF with F3/F2, 66, 67"},
    {.name = "string16", .gen = gen_l_string, .mode = 16,
     .opcodes = "A4-A7 AA-AF with F3/F2, 66, 67"},
    {.name = "stack32", .gen = gen_l_stack, .mode = 32,
     .opcodes = "50-5F 60 61 68 6A 8F/0 FF/6 9C C2 C3 C8 C9 E8 E0-E3"},
    {.name = "stack16", .gen = gen_l_stack, .mode = 16,
     .opcodes = "50-5F 60 61 68 6A 8F/0 FF/6 9C C2 C3 C8 C9 E8 E0-E3"},
    {.name = "sse-int32", .gen = gen_l_sse_int, .mode = 32,
     .opcodes = "66 0F 60-6F 70-76 7E 7F C4 C5 D1-FE, F3 0F 6F 7E 7F"},
    {.name = "sse-fp32", .gen = gen_l_sse_fp, .mode = 32,
     .opcodes = "0F 10-16 28 2A 2C-2F 50-5F C2 C6 E6 (none/66/F3/F2)"},
    {.name = "x87-32", .gen = gen_l_x87, .mode = 32,
     .opcodes = "D9 DB DD DE DF"},
    {.name = "sse-int16", .gen = gen_l_sse_int, .mode = 16,
     .opcodes = "66 0F 60-6F 70-76 7E 7F C4 C5 D1-FE, F3 0F 6F 7E 7F"},
    {.name = "sse-fp16", .gen = gen_l_sse_fp, .mode = 16,
     .opcodes = "0F 10-16 28 2A 2C-2F 50-5F C2 C6 E6 (none/66/F3/F2)"},
    {.name = "x87-16", .gen = gen_l_x87, .mode = 16,
     .opcodes = "D9 DB DD DE DF"},
    /* ESP stays below 64 KiB here, so SP and ESP agree: see stack32-ss16 for SS.B */
    {.name = "stack16-ss32", .gen = gen_l_stack_other_ss, .mode = 16,
     .opcodes = "50-5F 60 61 68 6A 8F/0 FF/6 9C C2 C3 C8 C9 E8 with a 32-bit SS"},
    {.name = "stack32-ss16", .gen = gen_l_stack_other_ss, .mode = 32,
     .opcodes = "50-5F 60 61 68 6A 8F/0 FF/6 9C C2 C3 C8 C9 E8 with a 16-bit SS"},
    {.name = "wrap32", .gen = gen_l_wrap, .mode = 32,
     .opcodes = "00-3B with [reg32 + disp8] near 4 GiB"},
    {.name = "wrap16", .gen = gen_l_wrap, .mode = 16,
     .opcodes = "00-3B with [reg32 + disp8] near 4 GiB"},
    {.name = "limit32", .gen = gen_l_limit, .mode = 32,
     .opcodes = "00-3B through expand-up and expand-down DS segments, at their limits"},
    {.name = "limit16", .gen = gen_l_limit, .mode = 16,
     .opcodes = "00-3B through expand-up and expand-down DS segments, at their limits"},
    {.name = "pusha32", .gen = gen_l_pusha, .mode = 32,
     .opcodes = "60 61"},
    {.name = "pusha16", .gen = gen_l_pusha, .mode = 16,
     .opcodes = "60 61"},
    {.name = "bcd32", .gen = gen_l_bcd, .mode = 32,
     .opcodes = "27 2F 37 3F D4 D5"},
    {.name = "bcd16", .gen = gen_l_bcd, .mode = 16,
     .opcodes = "27 2F 37 3F D4 D5"},
    {.name = "bound32", .gen = gen_l_bound, .mode = 32,
     .opcodes = "62"},
    {.name = "bound16", .gen = gen_l_bound, .mode = 16,
     .opcodes = "62"},
};

const unsigned nfamilies = sizeof(families) / sizeof(families[0]);
