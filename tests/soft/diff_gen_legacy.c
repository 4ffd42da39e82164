/* Generators of the 32-bit and 16-bit families of the differential tests (see diff_gen.h;
 * tests/soft/diff.c runs them in compatibility mode or from a 16-bit LDT code segment). */
#include "diff_gen.h"

/* [66] when the operand size is not the mode's default (osz 2 or 4). */
static void emit_osz(struct gen *g, unsigned osz)
{
    if (osz != (g->mode == 16 ? 2u : 4u))
        emit(g, 0x66);
}

static unsigned legacy_osz(struct gen *g, struct rng *r)
{
    (void)g;
    return rn(r, 2) ? 2 : 4;
}

/* ALU, INC/DEC/NOT/NEG and the one-byte INC/DEC 40-4F (REX in 64-bit code). */
void gen_l_alu(struct rng *r, struct gen *g)
{
    unsigned k = rn(r, 5);
    if (k < 3) {
        gen_alu(r, g);
    } else if (k == 3) {
        gen_unary(r, g);
    } else {
        emit_osz(g, legacy_osz(g, r));
        emit(g, 0x40 + rn(r, 16));
        g->fmask = F_ALL;
        g->what = "inc/dec 40-4f";
    }
}

/* A flag-setting instruction, then SETcc and CMOVcc (16 or 32 bits) reading the lazy flags. */
void gen_l_cond(struct rng *r, struct gen *g)
{
    gen_l_alu(r, g);
    emit(g, 0x0f);
    emit(g, 0x90 + rn(r, 16));
    emit(g, 0xc0 | rn(r, 8));
    emit_osz(g, legacy_osz(g, r));
    emit(g, 0x0f);
    emit(g, 0x40 + rn(r, 16));
    emit(g, 0xc0 | rn(r, 64));
    g->what = "flags then setcc/cmovcc";
}

/* LEA with every 16-bit and 32-bit ModRM form (mod 0/1/2, SIB, disp16/disp32): no memory is
 * touched, so the registers stay fully random. */
static void gen_l_lea(struct rng *r, struct gen *g)
{
    unsigned osz = legacy_osz(g, r), asz = rn(r, 2) ? 2 : 4;
    unsigned dasz = g->mode == 16 ? 2 : 4;
    emit_osz(g, osz);
    if (asz != dasz)
        emit(g, 0x67);
    emit(g, 0x8d);
    unsigned mod = rn(r, 3), rm = rn(r, 8), reg = rn(r, 8);
    emit(g, mod << 6 | reg << 3 | rm);
    if (asz == 4 && rm == 4) {
        unsigned sib = rn(r, 256);
        emit(g, sib);
        if (mod == 0 && (sib & 7) == 5)
            emit_n(g, rval(r), 4);
    }
    if (asz == 2 && mod == 0 && rm == 6)
        emit_n(g, rval(r), 2);
    if (asz == 4 && mod == 0 && rm == 5)
        emit_n(g, rval(r), 4);
    if (mod == 1)
        emit(g, rn(r, 256));
    if (mod == 2)
        emit_n(g, rval(r), asz);
    g->fmask = F_ALL;
    g->what = asz == 2 ? "lea 16-bit addressing" : "lea 32-bit addressing";
}

/* MOV, MOVZX/MOVSX, XCHG (also 90+r), MOV r,imm, CBW/CWDE/CWD/CDQ, CMOVcc, SETcc, LEA. */
void gen_l_mov(struct rng *r, struct gen *g)
{
    struct ops o;
    unsigned form = rn(r, 9);
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    g->fmask = F_ALL;
    uint8_t b, ob[2];
    switch (form) {
    case 0:
        switch (rn(r, 6)) {
        case 0: { /* MOV AL/eAX <-> moffs: a 16- or 32-bit offset by the address size */
            unsigned dasz = g->mode == 16 ? 2 : 4, asz = rn(r, 2) ? 2 : 4;
            if (o.osz != 1)
                emit_osz(g, o.osz);
            if (asz != dasz)
                emit(g, 0x67);
            emit(g, 0xa0 + (o.osz != 1) + 2 * rn(r, 2));
            emit_n(g, rn(r, MEMSZ - 4), asz);
            g->what = "mov moffs";
            break;
        }
        case 1: /* XLAT: [BX/EBX + AL] */
            if (rn(r, 2))
                emit(g, 0x67);
            emit(g, 0xd7);
            g->addr_size = (g->mode == 16) == (g->code[0] == 0x67) ? 4 : 2;
            g->what = "xlat";
            break;
        case 2: /* MOV r/m, Sreg (ES CS SS DS FS GS); a register gets the size, memory 16 bits */
            o.osz = o.mem ? 2 : o.osz == 1 ? 4 : o.osz;
            b = 0x8c;
            emit_modrm_insn(g, &o, &b, 1, (int)rn(r, 6), 0);
            g->what = "mov r/m,sreg";
            break;
        case 3:
            emit(g, rn(r, 2) ? 0x9e : 0x9f);
            g->what = "lahf/sahf";
            break;
        default:
            b = (uint8_t)(0x88 + (o.osz != 1) + 2 * rn(r, 2));
            emit_modrm_insn(g, &o, &b, 1, -1, 0);
            g->what = "mov";
            break;
        }
        break;
    case 1:
        b = (uint8_t)(0xc6 + (o.osz != 1));
        emit_modrm_insn(g, &o, &b, 1, 0, 0);
        emit_n(g, rval(r), imm_size(o.osz));
        g->what = "mov imm";
        break;
    case 2:
        if (o.osz == 1)
            o.osz = 4;
        ob[0] = 0x0f;
        ob[1] = (uint8_t)((rn(r, 2) ? 0xb6 : 0xbe) + rn(r, 2));
        emit_modrm_insn(g, &o, ob, 2, -1, 0);
        g->what = "movzx/movsx";
        break;
    case 3:
        if (o.osz != 1 && rn(r, 2)) {
            emit_osz(g, o.osz);
            emit(g, 0x90 + rn(r, 8));
        } else {
            b = (uint8_t)(0x86 + (o.osz != 1));
            emit_modrm_insn(g, &o, &b, 1, -1, 0);
        }
        g->what = "xchg";
        break;
    case 4:
        if (o.osz == 1) {
            emit(g, 0xb0 + rn(r, 8));
            emit(g, rn(r, 256));
        } else {
            emit_osz(g, o.osz);
            emit(g, 0xb8 + rn(r, 8));
            emit_n(g, rval(r), o.osz);
        }
        g->what = "mov r,imm";
        break;
    case 5:
        emit_osz(g, legacy_osz(g, r));
        emit(g, 0x98 + rn(r, 2));
        g->what = "cbw/cwde/cwd/cdq";
        break;
    case 6:
    case 7:
        emit_cmov_setcc(r, g, &o, form == 6);
        break;
    default:
        gen_l_lea(r, g);
        break;
    }
}

/* String instructions with either address size (SI/DI/CX or ESI/EDI/ECX) and operand size. */
void gen_l_string(struct rng *r, struct gen *g)
{
    static const uint8_t ops[] = {0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
    unsigned k = rn(r, sizeof(ops)), rep = rn(r, 3);
    unsigned dasz = g->mode == 16 ? 2 : 4, asz = rn(r, 2) ? 2 : 4;
    if (rep == 1)
        emit(g, 0xf3);
    else if (rep == 2)
        emit(g, 0xf2);
    if (ops[k] & 1)
        emit_osz(g, legacy_osz(g, r));
    if (asz != dasz)
        emit(g, 0x67);
    if (rn(r, 3) == 0) /* overrides the source (DS:SI) only; ES:DI stays */
        emit(g, (unsigned[]){0x26, 0x36, 0x3e}[rn(r, 3)]);
    emit(g, ops[k]);
    g->string = 1;
    g->addr_size = asz;
    g->fmask = F_ALL | F_DF;
    g->what = asz == 2 ? "string, 16-bit addresses" : "string, 32-bit addresses";
}

/* PUSH/POP of registers, immediates and memory, PUSHA/POPA, PUSHF, CALL/RET (near, with
 * RET imm16), ENTER/LEAVE, LOOP/LOOPcc/JCXZ, each at 16 or 32 bits. */
void gen_l_stack(struct rng *r, struct gen *g)
{
    unsigned osz = legacy_osz(g, r), form = rn(r, 9);
    unsigned dsz = g->mode == 16 ? 2 : 4;
    unsigned ssz = g->ss_bits ? (unsigned)g->ss_bits / 8 : dsz; /* SP or ESP */
    struct ops o;
    g->fmask = F_ALL;
    switch (form) {
    case 0: /* PUSH r; POP r */
        emit_osz(g, osz);
        emit(g, 0x50 + rn(r, 8));
        if (rn(r, 2)) {
            emit_osz(g, osz);
            emit(g, 0x58 + rn(r, 8));
        }
        g->what = "push/pop r";
        break;
    case 1: /* PUSH imm16/32, PUSH imm8 */
        emit_osz(g, osz);
        if (rn(r, 2)) {
            emit(g, 0x68);
            emit_n(g, rval(r), osz);
        } else {
            emit(g, 0x6a);
            emit(g, rn(r, 256));
        }
        g->what = "push imm";
        break;
    case 2: { /* PUSH r/m (FF /6), POP r/m (8F /0) */
        uint8_t b = rn(r, 2) ? 0xff : 0x8f;
        pick_ops(g, r, &o, 0, 1);
        o.osz = osz;
        if (o.rm == 4 && !o.mem)
            o.rm = 0;
        emit_modrm_insn(g, &o, &b, 1, b == 0xff ? 6 : 0, 0);
        g->what = "push/pop r/m";
        break;
    }
    case 3: /* PUSHA / POPA */
        emit_osz(g, osz);
        emit(g, rn(r, 2) ? 0x60 : 0x61);
        g->what = "pusha/popa";
        break;
    case 4: /* PUSHF */
        emit_osz(g, osz);
        emit(g, 0x9c);
        g->what = "pushf";
        break;
    case 5: { /* CALL L; JMP over; L: RET [imm16] */
        int imm = rn(r, 2);
        if (g->mode == 32)
            osz = 4; /* a 16-bit CALL truncates EIP, and the code page is above 64 KiB */
        unsigned ret_len = (osz != dsz) + (imm ? 3 : 1);
        emit_osz(g, osz);
        emit(g, 0xe8);
        emit_n(g, 2, osz);
        emit(g, 0xeb);
        emit(g, ret_len);
        emit_osz(g, osz);
        if (imm) {
            emit(g, 0xc2);
            emit_n(g, rn(r, 4) * 2, 2);
        } else {
            emit(g, 0xc3);
        }
        g->what = "call/ret";
        break;
    }
    case 6: /* LEAVE: EBP holds a small stack offset */
        emit_osz(g, osz);
        emit(g, 0xc9);
        g->addr_size = ssz; /* EBP: a small stack offset */
        g->what = "leave";
        break;
    case 7: /* ENTER n, 0/1 */
        emit_osz(g, osz);
        emit(g, 0xc8);
        emit_n(g, rn(r, 16) * 2, 2);
        emit(g, rn(r, 4) == 0);
        g->addr_size = ssz; /* EBP: a small stack offset */
        g->what = "enter";
        break;
    default: { /* LOOP/LOOPE/LOOPNE/JCXZ to the next instruction, CX or ECX by 0x67 */
        if (rn(r, 2))
            emit(g, 0x67);
        emit(g, 0xe0 + rn(r, 4));
        emit(g, 0);
        g->what = "loop/jcxz";
        break;
    }
    }
}

/* The stack family with SS of the other size: SS.B, not the code size, sets the stack's
 * address size (SP or ESP) of PUSH, POP, CALL, RET, ENTER, LEAVE. */
void gen_l_stack_other_ss(struct rng *r, struct gen *g)
{
    g->ss_bits = g->mode == 16 ? 32 : 16;
    gen_l_stack(r, g);
}

/* ALU with a 32-bit memory operand whose offset is just below 4 GiB: DS.base + offset wraps
 * around 4 GiB outside 64-bit mode, to just below the window. */
void gen_l_wrap(struct rng *r, struct gen *g)
{
    struct ops o;
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    o.mem = 1;
    o.asz = 4;
    o.aform = (o.aform & ~32u) | 16u;
    g->addr_wrap = 2;
    uint8_t b = (uint8_t)(rn(r, 8) * 8 + 2 * rn(r, 2) + (o.osz != 1));
    emit_modrm_insn(g, &o, &b, 1, -1, 0);
    g->fmask = F_ALL & ~F_AF;
    g->what = "alu with a linear address wrapping at 4 GiB";
}

/* ALU with a memory operand through a DS of limited size (the LDT segments of diff.c): expand-up
 * with limit 0xff; expand-down (valid above 0xff) with B=0 and B=1; expand-down valid from
 * 0xff00, where B=0 ends the segment at 0xffff and B=1 does not. The offsets of the operands
 * (0..400; BX/EBX 0xff00 higher for the last two) straddle each bound, operands too. */
void gen_l_limit(struct rng *r, struct gen *g)
{
    struct ops o;
    pick_ops(g, r, &o, rn(r, 3) == 0, 1);
    o.mem = 1;
    o.aform &= ~16u; /* no wrapping sums; overrides (ES, SS, DS) stay */
    g->ds_limit = 1 + (int)rn(r, 5);
    if (g->ds_limit >= 4) /* EBX is near 64 KiB: only DS may add it to its base */
        o.aform &= ~0xc0u;
    unsigned op = rn(r, 8);
    uint8_t b = (uint8_t)(op * 8 + 2 * rn(r, 2) + (o.osz != 1));
    emit_modrm_insn(g, &o, &b, 1, -1, 0);
    g->fmask = F_ALL & ~F_AF;
    g->what = g->ds_limit == 1 ? "alu through an expand-up DS with a limit"
                               : "alu through an expand-down DS";
}

/* PUSHA/POPA at 16 and 32 bits. */
void gen_l_pusha(struct rng *r, struct gen *g)
{
    emit_osz(g, legacy_osz(g, r));
    emit(g, rn(r, 2) ? 0x60 : 0x61);
    g->fmask = F_ALL;
    g->what = "pusha/popa";
}

/* BT*, BSF/BSR, BSWAP, XADD/CMPXCHG, CMPXCHG8B with either address size. */
void gen_l_bit(struct rng *r, struct gen *g)
{
    if (rn(r, 5)) {
        gen_bit(r, g);
        return;
    }
    struct ops o;
    pick_ops(g, r, &o, 0, 1);
    o.mem = 1;
    o.osz = g->mode == 16 ? 2 : 4; /* no 0x66: CMPXCHG8B ignores it */
    uint8_t ob[2] = {0x0f, 0xc7};
    if (rn(r, 2))
        emit(g, 0xf0);
    emit_modrm_insn(g, &o, ob, 2, 1, 0);
    g->fmask = F_ZF;
    g->what = "cmpxchg8b";
}

/* DAA DAS AAA AAS AAM AAD (not in 64-bit code); flags the SDM leaves undefined are masked. */
void gen_l_bcd(struct rng *r, struct gen *g)
{
    switch (rn(r, 6)) {
    case 0: emit(g, 0x27); g->fmask = F_ALL & ~F_OF; g->what = "daa"; break;
    case 1: emit(g, 0x2f); g->fmask = F_ALL & ~F_OF; g->what = "das"; break;
    case 2: emit(g, 0x37); g->fmask = F_AF | F_CF; g->what = "aaa"; break;
    case 3: emit(g, 0x3f); g->fmask = F_AF | F_CF; g->what = "aas"; break;
    case 4:
        emit(g, 0xd4);
        emit(g, rn(r, 8) ? rn(r, 256) : 10);
        g->fmask = F_SF | F_ZF | F_PF;
        g->what = "aam";
        break;
    default:
        emit(g, 0xd5);
        emit(g, rn(r, 8) ? rn(r, 256) : 10);
        g->fmask = F_SF | F_ZF | F_PF;
        g->what = "aad";
        break;
    }
}

/* BOUND r, m16&16 / m32&32: #BR (SIGSEGV here) when the index is outside the pair. */
void gen_l_bound(struct rng *r, struct gen *g)
{
    struct ops o;
    pick_ops(g, r, &o, 0, 1);
    o.mem = 1;
    uint8_t b = 0x62;
    emit_modrm_insn(g, &o, &b, 1, -1, 0);
    g->fmask = F_ALL;
    g->what = "bound";
}

/* SSE and x87 in 32/16-bit code: the 64-bit generators with registers 0-7 and 32/16-bit
 * memory forms whose registers hold 16-byte aligned offsets (the 64-bit ones use an aligned
 * RBX). */
void gen_l_sse_int(struct rng *r, struct gen *g)
{
    g->sse = 1;
    gen_sse_int(r, g);
    g->align16 = 1;
}

void gen_l_sse_fp(struct rng *r, struct gen *g)
{
    g->sse = 1;
    gen_sse_fp(r, g);
    g->align16 = 1;
}

void gen_l_x87(struct rng *r, struct gen *g)
{
    gen_x87(r, g); /* its [rbx+disp8] bytes: [ebx+disp8] in 32-bit, [bp+di+disp8] in 16-bit */
    g->addr_size = g->mode == 16 ? 2 : 4;
    g->align16 = 1;
}
