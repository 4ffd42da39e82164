/* Lazy arithmetic flags (see enum soft_cc_op in cpu.h): evaluated only when something reads
 * them. */
#ifndef VIREO_ACCEL_SOFT_FLAGS_H
#define VIREO_ACCEL_SOFT_FLAGS_H

#include "accel/soft/cpu.h"

#include <stdint.h>

/* The six arithmetic flags (CF PF AF ZF SF OF) of the last flag-setting operation. */
uint32_t soft_flags_arith(const struct soft_cpu *cpu);
/* soft_cond() for the cases its inline fast paths do not cover. */
int soft_cond_slow(const struct soft_cpu *cpu, unsigned cc);

static inline uint64_t soft_cc_mask(unsigned szidx)
{
    return szidx == 3 ? ~0ull : (1ull << (8u << szidx)) - 1;
}

static inline int64_t soft_cc_sext(uint64_t v, unsigned szidx)
{
    unsigned sh = 64 - (8u << szidx);
    return (int64_t)(v << sh) >> sh;
}

/* Branch-free conditions. The flags that conditions other than P/NP read (CF ZF SF OF) form a
 * 4-bit index; soft_cond_mask(cc) has bit k set when condition cc holds for index k, so a
 * condition is one shift of a mask the decoder computed, with no switch to mispredict. */
#define SOFT_IDX_CF 1u
#define SOFT_IDX_ZF 2u
#define SOFT_IDX_SF 4u
#define SOFT_IDX_OF 8u

/* Mask of the 4-bit flag indexes for which condition cc holds (cc not P/NP). */
static inline uint16_t soft_cond_mask(unsigned cc)
{
    uint16_t m = 0;
    for (unsigned k = 0; k < 16; k++) {
        int cf = !!(k & SOFT_IDX_CF), zf = !!(k & SOFT_IDX_ZF), sf = !!(k & SOFT_IDX_SF);
        int of = !!(k & SOFT_IDX_OF), r;
        switch (cc >> 1) {
        case 0: r = of; break;
        case 1: r = cf; break;
        case 2: r = zf; break;
        case 3: r = cf | zf; break;
        case 4: r = sf; break;
        case 6: r = sf != of; break;
        case 7: r = zf || sf != of; break;
        default: r = 0; break; /* P/NP: not representable */
        }
        if (r ^ (int)(cc & 1))
            m |= (uint16_t)(1u << k);
    }
    return m;
}

/* The flag index after operation op (a SOFT_CC_* constant the compiler can fold: SUB, ADD,
 * LOGIC, INC, DEC) of the given size index, from the lazy state just recorded. */
static inline __attribute__((always_inline)) unsigned soft_cc_index(const struct soft_cpu *cpu,
                                                                    unsigned op, unsigned sz)
{
    /* Always inlined: op (and often sz) are constants at the call, which folds the switch. */
    unsigned sh = (8u << sz) - 1;
    uint64_t m = soft_cc_mask(sz);
    uint64_t r = cpu->cc_res & m, a = cpu->cc_a & m, b = cpu->cc_b & m;
    unsigned cf, of;
    switch (op) {
    case SOFT_CC_SUB:
        cf = a < b;
        of = (unsigned)((((a ^ b) & (a ^ r)) >> sh) & 1);
        break;
    case SOFT_CC_ADD:
        cf = r < a;
        of = (unsigned)((((a ^ r) & (b ^ r)) >> sh) & 1);
        break;
    case SOFT_CC_INC: /* cc_b holds the carry from before */
        cf = (unsigned)(cpu->cc_b & 1);
        of = r == (1ull << sh);
        break;
    case SOFT_CC_DEC:
        cf = (unsigned)(cpu->cc_b & 1);
        of = r == (1ull << sh) - 1;
        break;
    default: /* logic: CF = OF = 0 */
        cf = of = 0;
        break;
    }
    return cf | (r == 0 ? SOFT_IDX_ZF : 0) | (unsigned)((r >> sh) & 1) << 2 | of << 3;
}

/* Condition code cc (0..15, as numbered in Jcc/SETcc/CMOVcc) of the current flags: 0 or 1.
 * The hot cases (after CMP/SUB, logic ops, and ZF/SF after anything) avoid building the flags. */
static inline int soft_cond(const struct soft_cpu *cpu, unsigned cc)
{
    unsigned op = cpu->cc_op & ~3u, sz = cpu->cc_op & 3;
    if (op == SOFT_CC_EFLAGS)
        return soft_cond_slow(cpu, cc);
    uint64_t m = soft_cc_mask(sz);
    uint64_t res = cpu->cc_res & m;
    int r;
    switch (cc >> 1) {
    case 2: r = res == 0; break;                                   /* E */
    case 4: r = soft_cc_sext(res, sz) < 0; break;                  /* S */
    case 1:                                                        /* B */
        if (op == SOFT_CC_SUB) { r = (cpu->cc_a & m) < (cpu->cc_b & m); break; }
        if (op == SOFT_CC_LOGIC) { r = 0; break; }
        return soft_cond_slow(cpu, cc);
    case 3:                                                        /* BE */
        if (op == SOFT_CC_SUB) { r = (cpu->cc_a & m) <= (cpu->cc_b & m); break; }
        if (op == SOFT_CC_LOGIC) { r = res == 0; break; }
        return soft_cond_slow(cpu, cc);
    case 6:                                                        /* L */
        if (op == SOFT_CC_SUB) {
            r = soft_cc_sext(cpu->cc_a, sz) < soft_cc_sext(cpu->cc_b, sz);
            break;
        }
        if (op == SOFT_CC_LOGIC) { r = soft_cc_sext(res, sz) < 0; break; }
        return soft_cond_slow(cpu, cc);
    case 7:                                                        /* LE */
        if (op == SOFT_CC_SUB) {
            r = soft_cc_sext(cpu->cc_a, sz) <= soft_cc_sext(cpu->cc_b, sz);
            break;
        }
        if (op == SOFT_CC_LOGIC) { r = soft_cc_sext(res, sz) <= 0; break; }
        return soft_cond_slow(cpu, cc);
    default:
        return soft_cond_slow(cpu, cc);
    }
    return r ^ (int)(cc & 1);
}

/* soft_cond() for an instruction whose decoder stored mask = soft_cond_mask(cc): branch-free
 * after CMP/SUB and logic operations, the usual producers. */
static inline int soft_cond_masked(const struct soft_cpu *cpu, unsigned cc, uint16_t mask)
{
    unsigned op = cpu->cc_op & ~3u, sz = cpu->cc_op & 3;
    if ((cc >> 1) != 5) {
        if (op == SOFT_CC_SUB)
            return (mask >> soft_cc_index(cpu, SOFT_CC_SUB, sz)) & 1;
        if (op == SOFT_CC_LOGIC)
            return (mask >> soft_cc_index(cpu, SOFT_CC_LOGIC, sz)) & 1;
    }
    return soft_cond(cpu, cc);
}

#endif
