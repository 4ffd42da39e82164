/* String instructions with REP/REPE/REPNE. Registers are updated after every element, so a fault
 * in the middle leaves RSI/RDI/RCX exactly where the hardware would and the instruction restarts.
 * REP MOVS/STOS move whole page-bounded chunks at once when the direction flag is clear. */
#include "accel/soft/exec.h"

static inline uint64_t sreg(const struct soft_cpu *cpu, unsigned r, unsigned asz)
{
    return soft_get(cpu, r, asz);
}

static inline void sadvance(struct soft_cpu *cpu, unsigned r, unsigned asz, int64_t delta)
{
    soft_set(cpu, r, asz, soft_get(cpu, r, asz) + (uint64_t)delta);
}

static inline int64_t step(const struct soft_cpu *cpu, unsigned osz)
{
    return (cpu->rflags & SOFT_DF) ? -(int64_t)osz : (int64_t)osz;
}

/* Linear addresses of the current source (segment:rSI, DS unless overridden) and destination
 * (ES:rDI) elements; outside 64-bit mode they are checked against the segment limits. */
static inline uint64_t src_addr(struct soft_cpu *cpu, const struct soft_insn *i)
{
    return soft_seg_linear(cpu, i->seg, sreg(cpu, SOFT_RSI, i->asz), i->osz);
}

static inline uint64_t dst_addr(struct soft_cpu *cpu, const struct soft_insn *i)
{
    return soft_seg_linear(cpu, SOFT_ES, sreg(cpu, SOFT_RDI, i->asz), i->osz);
}

/* Bytes that can be handled from a and b before either crosses its page, capped at n. */
static uint64_t chunk(uint64_t a, uint64_t b, uint64_t n)
{
    uint64_t ra = 4096 - (a & 0xfff), rb = 4096 - (b & 0xfff);
    uint64_t c = ra < rb ? ra : rb;
    return c < n ? c : n;
}

SOFT_HANDLER(soft_movs)
{
    unsigned osz = i->osz, asz = i->asz;
    int64_t d = step(cpu, osz);
    if (!i->rep) {
        uint64_t v = soft_ld(cpu, src_addr(cpu, i), osz);
        soft_st(cpu, dst_addr(cpu, i), osz, v);
        sadvance(cpu, SOFT_RSI, asz, d);
        sadvance(cpu, SOFT_RDI, asz, d);
        return;
    }
    while (sreg(cpu, SOFT_RCX, asz) != 0) {
        uint64_t n = sreg(cpu, SOFT_RCX, asz);
        uint64_t s = src_addr(cpu, i), t = dst_addr(cpu, i);
        if (d > 0 && asz == 8 && n > 1) {
            uint64_t bytes = chunk(s, t, n * osz) / osz * osz;
            /* Overlap with the destination ahead of the source replicates data: keep it
             * element by element. */
            if (bytes >= osz && !(t > s && t < s + bytes)) {
                const void *ps = soft_mem(cpu, s, (unsigned)bytes, SOFT_ACC_READ);
                void *pt = soft_mem(cpu, t, (unsigned)bytes, SOFT_ACC_WRITE);
                memmove(pt, ps, bytes);
                uint64_t k = bytes / osz;
                cpu->regs[SOFT_RSI] += bytes;
                cpu->regs[SOFT_RDI] += bytes;
                cpu->regs[SOFT_RCX] -= k;
                continue;
            }
        }
        uint64_t v = soft_ld(cpu, s, osz);
        soft_st(cpu, t, osz, v);
        sadvance(cpu, SOFT_RSI, asz, d);
        sadvance(cpu, SOFT_RDI, asz, d);
        soft_set(cpu, SOFT_RCX, asz, n - 1);
    }
}

SOFT_HANDLER(soft_stos)
{
    unsigned osz = i->osz, asz = i->asz;
    int64_t d = step(cpu, osz);
    uint64_t v = soft_get(cpu, SOFT_RAX, osz);
    if (!i->rep) {
        soft_st(cpu, dst_addr(cpu, i), osz, v);
        sadvance(cpu, SOFT_RDI, asz, d);
        return;
    }
    while (sreg(cpu, SOFT_RCX, asz) != 0) {
        uint64_t n = sreg(cpu, SOFT_RCX, asz);
        uint64_t t = dst_addr(cpu, i);
        if (d > 0 && asz == 8 && n > 1) {
            uint64_t bytes = chunk(t, t, n * osz) / osz * osz;
            if (bytes >= osz) {
                uint8_t *pt = soft_mem(cpu, t, (unsigned)bytes, SOFT_ACC_WRITE);
                if (osz == 1) {
                    memset(pt, (int)(v & 0xff), bytes);
                } else {
                    for (uint64_t k = 0; k < bytes; k += osz)
                        soft_stp(pt + k, osz, v);
                }
                cpu->regs[SOFT_RDI] += bytes;
                cpu->regs[SOFT_RCX] -= bytes / osz;
                continue;
            }
        }
        soft_st(cpu, t, osz, v);
        sadvance(cpu, SOFT_RDI, asz, d);
        soft_set(cpu, SOFT_RCX, asz, n - 1);
    }
}

SOFT_HANDLER(soft_lods)
{
    unsigned osz = i->osz, asz = i->asz;
    int64_t d = step(cpu, osz);
    if (!i->rep) {
        soft_set(cpu, SOFT_RAX, osz, soft_ld(cpu, src_addr(cpu, i), osz));
        sadvance(cpu, SOFT_RSI, asz, d);
        return;
    }
    while (sreg(cpu, SOFT_RCX, asz) != 0) {
        uint64_t n = sreg(cpu, SOFT_RCX, asz);
        soft_set(cpu, SOFT_RAX, osz, soft_ld(cpu, src_addr(cpu, i), osz));
        sadvance(cpu, SOFT_RSI, asz, d);
        soft_set(cpu, SOFT_RCX, asz, n - 1);
    }
}

/* CMPS and SCAS: i->rep 2 = REPE (stop on difference), 3 = REPNE (stop on equality). */
SOFT_HANDLER(soft_cmps)
{
    unsigned osz = i->osz, asz = i->asz;
    int64_t d = step(cpu, osz);
    do {
        uint64_t n = sreg(cpu, SOFT_RCX, asz);
        if (i->rep && n == 0)
            return;
        uint64_t a = soft_ld(cpu, src_addr(cpu, i), osz);
        uint64_t b = soft_ld(cpu, dst_addr(cpu, i), osz);
        soft_cc(cpu, SOFT_CC_SUB, osz, (a - b) & soft_mask(osz), a, b);
        sadvance(cpu, SOFT_RSI, asz, d);
        sadvance(cpu, SOFT_RDI, asz, d);
        if (!i->rep)
            return;
        soft_set(cpu, SOFT_RCX, asz, n - 1);
        if ((i->rep == 2) != (a == b))
            return;
    } while (1);
}

SOFT_HANDLER(soft_scas)
{
    unsigned osz = i->osz, asz = i->asz;
    int64_t d = step(cpu, osz);
    uint64_t a = soft_get(cpu, SOFT_RAX, osz);
    do {
        uint64_t n = sreg(cpu, SOFT_RCX, asz);
        if (i->rep && n == 0)
            return;
        uint64_t b = soft_ld(cpu, dst_addr(cpu, i), osz);
        soft_cc(cpu, SOFT_CC_SUB, osz, (a - b) & soft_mask(osz), a, b);
        sadvance(cpu, SOFT_RDI, asz, d);
        if (!i->rep)
            return;
        soft_set(cpu, SOFT_RCX, asz, n - 1);
        if ((i->rep == 2) != (a == b))
            return;
    } while (1);
}
