/* Instructions that exist only outside 64-bit mode (there their opcodes are #UD, or the EVEX
 * prefix for 62): PUSHA/POPA, BOUND and the BCD adjustments DAA DAS AAA AAS AAM AAD. */
#include "accel/soft/exec.h"

/* PUSHA/PUSHAD: EAX ECX EDX EBX, the ESP from before the instruction, EBP ESI EDI, each at the
 * operand size; the stack size (SS.B) picks SP or ESP. Every slot is checked (limit, page)
 * before the first store, so a fault leaves memory and ESP as they were. */
SOFT_HANDLER(soft_pusha)
{
    unsigned osz = i->osz, ssz = soft_stack_size(cpu);
    uint64_t sp = soft_get(cpu, SOFT_RSP, ssz), addr[8];
    for (unsigned k = 0; k < 8; k++) {
        uint64_t off = soft_addr_trunc(sp - (k + 1) * osz, ssz);
        addr[k] = soft_stack_linear(cpu, off, osz);
        soft_mem(cpu, addr[k], 1, SOFT_ACC_WRITE);
        soft_mem(cpu, addr[k] + osz - 1, 1, SOFT_ACC_WRITE);
    }
    for (unsigned k = 0; k < 8; k++) /* register k is the k-th pushed (ESP is register 4) */
        soft_st(cpu, addr[k], osz, soft_get(cpu, k, osz));
    soft_set(cpu, SOFT_RSP, ssz, sp - 8 * osz);
}

/* POPA/POPAD: EDI ESI EBP, a slot skipped (ESP is not loaded), EBX EDX ECX EAX. All loads come
 * before any register changes. */
SOFT_HANDLER(soft_popa)
{
    unsigned osz = i->osz, ssz = soft_stack_size(cpu);
    uint64_t sp = soft_get(cpu, SOFT_RSP, ssz), v[8];
    for (unsigned k = 0; k < 8; k++) {
        uint64_t off = soft_addr_trunc(sp + k * osz, ssz);
        v[7 - k] = soft_ld(cpu, soft_stack_linear(cpu, off, osz), osz);
    }
    for (unsigned r = 0; r < 8; r++) {
        if (r != SOFT_RSP)
            soft_set(cpu, r, osz, v[r]);
    }
    soft_set(cpu, SOFT_RSP, ssz, sp + 8 * osz);
}

/* BOUND r, m16&16 / m32&32: #BR unless lower <= index <= upper, all signed. The register form
 * is #UD (the decoder never picks this handler for it). */
SOFT_HANDLER(soft_bound)
{
    unsigned osz = i->osz;
    uint64_t a = soft_ea(cpu, i, 2 * osz);
    int64_t lower = (int64_t)soft_sext(soft_ld(cpu, a, osz), osz);
    int64_t upper = (int64_t)soft_sext(soft_ld(cpu, soft_addr_trunc(a + osz, 4), osz), osz);
    int64_t index = (int64_t)soft_sext(soft_get(cpu, i->reg, osz), osz);
    if (index < lower || index > upper)
        soft_raise(cpu, SOFT_EXC_BR, 0);
}

/* SF, ZF and PF of an 8-bit result. */
static uint32_t szp8(uint8_t v)
{
    return (v & 0x80 ? SOFT_SF : 0) | (v == 0 ? SOFT_ZF : 0) |
           (__builtin_parity(v) ? 0 : SOFT_PF);
}

/* DAA (27) and DAS (2F): AL adjusted to two packed BCD digits after an addition/subtraction.
 * CF is the old CF or the carry/borrow of either adjustment: DAS's low-digit step can borrow
 * (AL < 6) without the high-digit step running. OF is undefined; it is left clear. */
SOFT_HANDLER(soft_daa_das)
{
    uint32_t f = soft_flags_arith(cpu);
    uint8_t al = (uint8_t)cpu->regs[SOFT_RAX], old = al;
    bool sub = i->op == 0x2f, cf = false, af = false;
    if ((al & 0x0f) > 9 || (f & SOFT_AF)) {
        cf = (f & SOFT_CF) || (sub ? al < 6 : al > 0xf9);
        al = (uint8_t)(sub ? al - 6 : al + 6);
        af = true;
    }
    if (old > 0x99 || (f & SOFT_CF)) {
        al = (uint8_t)(sub ? al - 0x60 : al + 0x60);
        cf = true;
    }
    soft_set(cpu, SOFT_RAX, 1, al);
    soft_flags_store(cpu, szp8(al) | (cf ? SOFT_CF : 0) | (af ? SOFT_AF : 0));
}

/* AAA (37) and AAS (3F): AL to one unpacked BCD digit, the carry or borrow going into AH
 * (AX + 106h, or AX - 6 and AH - 1, as current processors do). Only AF and CF are defined; the
 * others are left as SF/ZF/PF of AL and OF clear. */
SOFT_HANDLER(soft_aaa_aas)
{
    uint32_t f = soft_flags_arith(cpu);
    uint16_t ax = (uint16_t)cpu->regs[SOFT_RAX];
    bool adjust = (ax & 0x0f) > 9 || (f & SOFT_AF);
    if (adjust)
        ax = i->op == 0x37 ? (uint16_t)(ax + 0x106) : (uint16_t)(ax - 6 - 0x100);
    ax &= 0xff0f;
    soft_set(cpu, SOFT_RAX, 2, ax);
    soft_flags_store(cpu, szp8((uint8_t)ax) | (adjust ? SOFT_CF | SOFT_AF : 0));
}

/* AAM imm8 (D4): AH = AL / imm8, AL = AL % imm8; #DE for 0. AAD imm8 (D5): AL = AL + AH * imm8,
 * AH = 0. SF, ZF and PF follow AL; OF, AF and CF are undefined and left clear. */
SOFT_HANDLER(soft_aam_aad)
{
    uint8_t base = (uint8_t)i->imm, al = (uint8_t)cpu->regs[SOFT_RAX];
    uint8_t ah = (uint8_t)(cpu->regs[SOFT_RAX] >> 8);
    if (i->op == 0xd4) {
        if (base == 0)
            soft_raise(cpu, SOFT_EXC_DE, 0);
        ah = al / base;
        al = al % base;
    } else {
        al = (uint8_t)(al + ah * base);
        ah = 0;
    }
    soft_set(cpu, SOFT_RAX, 2, (uint64_t)ah << 8 | al);
    soft_flags_store(cpu, szp8(al));
}
