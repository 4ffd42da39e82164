/* A small x86-64 instruction encoder for the software CPU's block compiler (jit.c): just the
 * forms the translator emits. Operands are host registers (JX_RAX..JX_R15) or memory
 * [base + index * 2^scale + disp32]. Internal to src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_JIT_X86_H
#define VIREO_ACCEL_SOFT_JIT_X86_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum {
    JX_RAX, JX_RCX, JX_RDX, JX_RBX, JX_RSP, JX_RBP, JX_RSI, JX_RDI,
    JX_R8, JX_R9, JX_R10, JX_R11, JX_R12, JX_R13, JX_R14, JX_R15,
    JX_NONE = -1,
};

/* Host condition codes share the guest's numbering (both are x86). */
enum { JX_CC_O, JX_CC_NO, JX_CC_B, JX_CC_AE, JX_CC_E, JX_CC_NE, JX_CC_BE, JX_CC_A };

/* Output buffer: emitters never write past end; an overflow is sticky and the caller drops
 * what was emitted. */
struct jx_buf {
    uint8_t *p, *end;
    bool overflow;
};

/* An r/m operand. */
struct jx_rm {
    int8_t reg;          /* register operand, or JX_NONE for memory */
    int8_t base, index;  /* memory: JX_NONE when absent */
    uint8_t scale;       /* 0..3 */
    int32_t disp;
};

static inline struct jx_rm jx_r(int reg)
{
    return (struct jx_rm){.reg = (int8_t)reg, .base = JX_NONE, .index = JX_NONE};
}

static inline struct jx_rm jx_m(int base, int32_t disp)
{
    return (struct jx_rm){.reg = JX_NONE, .base = (int8_t)base, .index = JX_NONE, .disp = disp};
}

static inline struct jx_rm jx_mx(int base, int index, unsigned scale, int32_t disp)
{
    return (struct jx_rm){.reg = JX_NONE, .base = (int8_t)base, .index = (int8_t)index,
                          .scale = (uint8_t)scale, .disp = disp};
}

static inline bool jx_room(struct jx_buf *b, unsigned n)
{
    if (b->overflow || (size_t)(b->end - b->p) < n) {
        b->overflow = true;
        return false;
    }
    return true;
}

static inline void jx_byte(struct jx_buf *b, uint8_t v)
{
    if (jx_room(b, 1))
        *b->p++ = v;
}

static inline void jx_imm(struct jx_buf *b, uint64_t v, unsigned n)
{
    if (jx_room(b, n)) {
        memcpy(b->p, &v, n); /* the host is little-endian x86 */
        b->p += n;
    }
}

static inline bool jx_fits8(int64_t v)
{
    return v >= -128 && v <= 127;
}

static inline bool jx_fits32(int64_t v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* One instruction: [66] [REX] opcode (nopc bytes, first byte in the highest position) ModRM
 * [SIB] [disp]. size is the operand size (2 adds 66, 8 sets REX.W; 0 for neither); byteop
 * says register operands are byte registers, where SPL/BPL/SIL/DIL need a REX prefix. reg is
 * the ModRM.reg register or opcode digit. Immediates follow from the caller. */
static inline void jx_op(struct jx_buf *b, unsigned size, uint32_t opc, unsigned nopc,
                         unsigned reg, struct jx_rm rm, bool byteop)
{
    if (size == 2)
        jx_byte(b, 0x66);
    unsigned rex = (size == 8 ? 8u : 0u) | ((reg & 8) >> 1);
    if (rm.reg != JX_NONE) {
        rex |= ((unsigned)rm.reg & 8) >> 3;
        if (byteop && ((rm.reg & 0xc) == 4 || (reg & 0xc) == 4))
            rex |= 0x40;
    } else {
        if (rm.index != JX_NONE)
            rex |= ((unsigned)rm.index & 8) >> 2;
        if (rm.base != JX_NONE)
            rex |= ((unsigned)rm.base & 8) >> 3;
        if (byteop && (reg & 0xc) == 4)
            rex |= 0x40;
    }
    if (rex)
        jx_byte(b, (uint8_t)(0x40 | rex));
    for (unsigned k = nopc; k-- > 0;)
        jx_byte(b, (uint8_t)(opc >> (8 * k)));
    unsigned r = (reg & 7) << 3;
    if (rm.reg != JX_NONE) {
        jx_byte(b, (uint8_t)(0xc0 | r | (rm.reg & 7)));
        return;
    }
    if (rm.base == JX_NONE) {
        /* [index * s + disp32] or [disp32] through a SIB with no base */
        jx_byte(b, (uint8_t)(0x04 | r));
        unsigned idx = rm.index == JX_NONE ? 4u : (unsigned)rm.index & 7;
        jx_byte(b, (uint8_t)((rm.scale << 6) | (idx << 3) | 5));
        jx_imm(b, (uint32_t)rm.disp, 4);
        return;
    }
    unsigned mod = rm.disp == 0 && (rm.base & 7) != JX_RBP ? 0 : jx_fits8(rm.disp) ? 1 : 2;
    if (rm.index == JX_NONE && (rm.base & 7) != JX_RSP) {
        jx_byte(b, (uint8_t)((mod << 6) | r | (rm.base & 7)));
    } else {
        unsigned idx = rm.index == JX_NONE ? 4u : (unsigned)rm.index & 7;
        jx_byte(b, (uint8_t)((mod << 6) | r | 4));
        jx_byte(b, (uint8_t)((rm.scale << 6) | (idx << 3) | (rm.base & 7)));
    }
    if (mod == 1)
        jx_byte(b, (uint8_t)rm.disp);
    else if (mod == 2)
        jx_imm(b, (uint32_t)rm.disp, 4);
}

/* --- common instructions ------------------------------------------------------------------ */

/* Load size bytes from rm into dst, zero-extended to 64 bits. */
static inline void jx_load_zx(struct jx_buf *b, unsigned size, int dst, struct jx_rm rm)
{
    switch (size) {
    case 1: jx_op(b, 0, 0x0fb6, 2, (unsigned)dst, rm, true); break;
    case 2: jx_op(b, 0, 0x0fb7, 2, (unsigned)dst, rm, false); break;
    case 4: jx_op(b, 0, 0x8b, 1, (unsigned)dst, rm, false); break;
    default: jx_op(b, 8, 0x8b, 1, (unsigned)dst, rm, false); break;
    }
}

/* Store the low size bytes of src to rm. */
static inline void jx_store(struct jx_buf *b, unsigned size, struct jx_rm rm, int src)
{
    jx_op(b, size == 1 ? 0 : size, size == 1 ? 0x88 : 0x89, 1, (unsigned)src, rm, size == 1);
}

/* mov dst, src (64-bit). */
static inline void jx_mov_rr(struct jx_buf *b, int dst, int src)
{
    jx_op(b, 8, 0x89, 1, (unsigned)src, jx_r(dst), false);
}

/* dst = v, in the shortest form. */
static inline void jx_mov_ri(struct jx_buf *b, int dst, uint64_t v)
{
    if (v <= 0xffffffffull) {
        if ((dst & 8) != 0)
            jx_byte(b, 0x41);
        jx_byte(b, (uint8_t)(0xb8 + (dst & 7)));
        jx_imm(b, v, 4);
    } else if (jx_fits32((int64_t)v)) {
        jx_op(b, 8, 0xc7, 1, 0, jx_r(dst), false);
        jx_imm(b, v, 4);
    } else {
        jx_byte(b, (uint8_t)(0x48 | ((dst & 8) >> 3)));
        jx_byte(b, (uint8_t)(0xb8 + (dst & 7)));
        jx_imm(b, v, 8);
    }
}

/* ALU operation op (0 ADD, 1 OR, 4 AND, 5 SUB, 6 XOR, 7 CMP) of size: rm op= reg. */
static inline void jx_alu_mr(struct jx_buf *b, unsigned size, unsigned op, struct jx_rm rm,
                             int reg)
{
    jx_op(b, size == 1 ? 0 : size, (op << 3) | (size == 1 ? 0u : 1u), 1, (unsigned)reg, rm,
          size == 1);
}

/* reg op= rm. */
static inline void jx_alu_rm(struct jx_buf *b, unsigned size, unsigned op, int reg,
                             struct jx_rm rm)
{
    jx_op(b, size == 1 ? 0 : size, (op << 3) | (size == 1 ? 2u : 3u), 1, (unsigned)reg, rm,
          size == 1);
}

/* rm op= imm (imm as the guest form defines it: sign-extended to the operand size). */
static inline void jx_alu_mi(struct jx_buf *b, unsigned size, unsigned op, struct jx_rm rm,
                             uint64_t imm)
{
    if (size == 1) {
        jx_op(b, 0, 0x80, 1, op, rm, true);
        jx_imm(b, imm, 1);
    } else if (jx_fits8((int64_t)imm) || (size == 2 && jx_fits8((int16_t)imm))) {
        jx_op(b, size, 0x83, 1, op, rm, false);
        jx_imm(b, imm, 1);
    } else {
        jx_op(b, size, 0x81, 1, op, rm, false);
        jx_imm(b, imm, size == 2 ? 2 : 4);
    }
}

/* test rm, reg */
static inline void jx_test_mr(struct jx_buf *b, unsigned size, struct jx_rm rm, int reg)
{
    jx_op(b, size == 1 ? 0 : size, size == 1 ? 0x84 : 0x85, 1, (unsigned)reg, rm, size == 1);
}

/* Jcc rel32 / JMP rel32 with the displacement left for jx_patch(); returns its address. */
static inline uint8_t *jx_jcc_fwd(struct jx_buf *b, unsigned cc)
{
    jx_byte(b, 0x0f);
    jx_byte(b, (uint8_t)(0x80 | cc));
    jx_imm(b, 0, 4);
    return b->p - 4;
}

static inline uint8_t *jx_jmp_fwd(struct jx_buf *b)
{
    jx_byte(b, 0xe9);
    jx_imm(b, 0, 4);
    return b->p - 4;
}

/* Point the rel32 at at to target. */
static inline void jx_patch(uint8_t *at, const uint8_t *target)
{
    if (!at)
        return;
    int32_t rel = (int32_t)(target - (at + 4));
    memcpy(at, &rel, 4);
}

/* Call or jump to a host function through RAX (the code buffer may lie beyond rel32). */
static inline void jx_call_abs(struct jx_buf *b, const void *fn)
{
    jx_mov_ri(b, JX_RAX, (uint64_t)(uintptr_t)fn);
    jx_op(b, 0, 0xff, 1, 2, jx_r(JX_RAX), false);
}

static inline void jx_jmp_abs(struct jx_buf *b, const void *fn)
{
    jx_mov_ri(b, JX_RAX, (uint64_t)(uintptr_t)fn);
    jx_op(b, 0, 0xff, 1, 4, jx_r(JX_RAX), false);
}

#endif
