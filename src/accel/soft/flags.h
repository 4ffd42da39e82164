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

#endif
