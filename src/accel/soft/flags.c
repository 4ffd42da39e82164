/* Lazy arithmetic flags: built from the last operation and its operands only when read. */
#include "accel/soft/flags.h"

#include "accel/soft/insn.h"

static inline uint32_t parity(uint64_t res)
{
    /* PF looks at the low byte only: set when it has an even number of ones. */
    return (__builtin_popcount((unsigned)(res & 0xff)) & 1) ? 0 : SOFT_PF;
}

static inline uint32_t zs(uint64_t res, unsigned bits)
{
    uint64_t m = bits == 64 ? ~0ull : (1ull << bits) - 1;
    uint32_t f = (res & m) == 0 ? SOFT_ZF : 0;
    if ((res >> (bits - 1)) & 1)
        f |= SOFT_SF;
    return f | parity(res);
}

uint32_t soft_flags_arith(const struct soft_cpu *cpu)
{
    unsigned op = cpu->cc_op & ~3u;
    unsigned bits = 8u << (cpu->cc_op & 3);
    uint64_t m = bits == 64 ? ~0ull : (1ull << bits) - 1;
    uint64_t res = cpu->cc_res & m, a = cpu->cc_a & m, b = cpu->cc_b & m;
    unsigned sh = bits - 1;
    uint32_t f;

    switch (op) {
    case SOFT_CC_EFLAGS:
        return (uint32_t)cpu->cc_res & SOFT_ARITH_FLAGS;
    case SOFT_CC_ADD:
        f = zs(res, bits) | ((a ^ b ^ res) & SOFT_AF);
        f |= res < a ? SOFT_CF : 0;
        f |= (((a ^ res) & (b ^ res)) >> sh) & 1 ? SOFT_OF : 0;
        return f;
    case SOFT_CC_ADC: { /* the carry-in is what the result has beyond a + b */
        uint64_t cin = ((res - a - b) & m) != 0;
        f = zs(res, bits) | ((a ^ b ^ res) & SOFT_AF);
        f |= (cin ? res <= a : res < a) ? SOFT_CF : 0;
        f |= (((a ^ res) & (b ^ res)) >> sh) & 1 ? SOFT_OF : 0;
        return f;
    }
    case SOFT_CC_SUB:
        f = zs(res, bits) | ((a ^ b ^ res) & SOFT_AF);
        f |= a < b ? SOFT_CF : 0;
        f |= (((a ^ b) & (a ^ res)) >> sh) & 1 ? SOFT_OF : 0;
        return f;
    case SOFT_CC_SBB: {
        uint64_t cin = ((a - b) & m) != res;
        f = zs(res, bits) | ((a ^ b ^ res) & SOFT_AF);
        f |= (a < b || (cin && a == b)) ? SOFT_CF : 0;
        f |= (((a ^ b) & (a ^ res)) >> sh) & 1 ? SOFT_OF : 0;
        return f;
    }
    case SOFT_CC_LOGIC:
        return zs(res, bits);
    case SOFT_CC_INC: /* cc_b keeps the carry flag from before */
        f = zs(res, bits) | (cpu->cc_b & SOFT_CF);
        f |= (res & 0xf) == 0 ? SOFT_AF : 0;
        f |= res == (1ull << sh) ? SOFT_OF : 0;
        return f;
    case SOFT_CC_DEC:
        f = zs(res, bits) | (cpu->cc_b & SOFT_CF);
        f |= (res & 0xf) == 0xf ? SOFT_AF : 0;
        f |= res == (1ull << sh) - 1 ? SOFT_OF : 0;
        return f;
    case SOFT_CC_SHL: /* a = value before, b = count (1..bits-1 or more for 8/16-bit) */
        f = zs(res, bits);
        if (b <= bits)
            f |= (a >> (bits - b)) & 1 ? SOFT_CF : 0;
        f |= (((res >> sh) & 1) ^ ((f & SOFT_CF) != 0)) ? SOFT_OF : 0;
        return f;
    case SOFT_CC_SHR:
        f = zs(res, bits);
        if (b <= bits)
            f |= (a >> (b - 1)) & 1 ? SOFT_CF : 0;
        f |= (a >> sh) & 1 ? SOFT_OF : 0;
        return f;
    case SOFT_CC_SAR: {
        f = zs(res, bits);
        int64_t sa = (int64_t)(soft_sext(a, bits / 8));
        unsigned c = b < 64 ? (unsigned)b : 64;
        f |= (c >= 64 ? (sa < 0) : ((sa >> (c - 1)) & 1)) ? SOFT_CF : 0;
        return f;
    }
    default:
        return 0;
    }
}

int soft_cond_slow(const struct soft_cpu *cpu, unsigned cc)
{
    uint32_t f = soft_flags_arith(cpu);
    int r;
    switch (cc >> 1) {
    case 0: r = !!(f & SOFT_OF); break;
    case 1: r = !!(f & SOFT_CF); break;
    case 2: r = !!(f & SOFT_ZF); break;
    case 3: r = !!(f & (SOFT_CF | SOFT_ZF)); break;
    case 4: r = !!(f & SOFT_SF); break;
    case 5: r = !!(f & SOFT_PF); break;
    case 6: r = !!(f & SOFT_SF) != !!(f & SOFT_OF); break;
    default: r = (f & SOFT_ZF) || (!!(f & SOFT_SF) != !!(f & SOFT_OF)); break;
    }
    return r ^ (cc & 1);
}

uint64_t soft_cpu_get_rflags(struct soft_cpu *cpu)
{
    return (cpu->rflags & ~(uint64_t)SOFT_ARITH_FLAGS) | soft_flags_arith(cpu) | 2;
}

void soft_cpu_set_rflags(struct soft_cpu *cpu, uint64_t rflags)
{
    cpu->rflags = (rflags & ~(uint64_t)SOFT_ARITH_FLAGS) | 2;
    soft_flags_store(cpu, (uint32_t)rflags);
}
