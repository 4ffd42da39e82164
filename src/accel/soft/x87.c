/* x87 FPU, enough for libc and the kernel: loads/stores of every memory format, the basic
 * arithmetic, compares (FCOM/FUCOM/FCOMI), FCMOV, FXCH, constants, control/status/environment.
 * Values are host long doubles, which on an x86 host are the same 80-bit extended format, so
 * arithmetic done by the compiler in extended precision gives the hardware's results. */
#include "accel/soft/x87.h"

#include "accel/soft/exec.h"

#include <math.h>

#define C0 0x0100u
#define C1 0x0200u
#define C2 0x0400u
#define C3 0x4000u

static inline long double *st(struct soft_cpu *cpu, unsigned k)
{
    return &cpu->fpu.st[(cpu->fpu.top + k) & 7];
}

static inline void tag_set(struct soft_cpu *cpu, unsigned phys, unsigned tag)
{
    cpu->fpu.ftw = (uint16_t)((cpu->fpu.ftw & ~(3u << (2 * phys))) | (tag << (2 * phys)));
}

static void fpush(struct soft_cpu *cpu, long double v)
{
    cpu->fpu.top = (cpu->fpu.top - 1) & 7;
    cpu->fpu.st[cpu->fpu.top] = v;
    tag_set(cpu, cpu->fpu.top, 0);
}

static void fpop(struct soft_cpu *cpu)
{
    tag_set(cpu, cpu->fpu.top, 3);
    cpu->fpu.top = (cpu->fpu.top + 1) & 7;
}

static void set_cc(struct soft_cpu *cpu, uint16_t cc)
{
    cpu->fpu.fsw = (uint16_t)((cpu->fpu.fsw & ~(C0 | C1 | C2 | C3)) | cc);
}

static uint16_t fsw_full(const struct soft_cpu *cpu)
{
    return (uint16_t)((cpu->fpu.fsw & ~0x3800u) | ((cpu->fpu.top & 7) << 11));
}

/* Compare a with b: condition codes for FCOM, or EFLAGS for FCOMI. */
static uint16_t compare_cc(long double a, long double b)
{
    if (isnan(a) || isnan(b))
        return C3 | C2 | C0;
    if (a < b)
        return C0;
    if (a == b)
        return C3;
    return 0;
}

static void compare_flags(struct soft_cpu *cpu, long double a, long double b)
{
    uint16_t cc = compare_cc(a, b);
    uint32_t f = 0;
    if (cc & C3)
        f |= SOFT_ZF;
    if (cc & C2)
        f |= SOFT_PF;
    if (cc & C0)
        f |= SOFT_CF;
    soft_flags_store(cpu, f);
}

static long double arith(unsigned op, long double a, long double b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a * b;
    case 4: return a - b;
    case 5: return b - a;
    case 6: return a / b;
    default: return b / a;
    }
}

static long double round_fcw(const struct soft_cpu *cpu, long double v)
{
    switch ((cpu->fpu.fcw >> 10) & 3) {
    case 0: return rintl(v);  /* the host rounds to nearest-even */
    case 1: return floorl(v);
    case 2: return ceill(v);
    default: return truncl(v);
    }
}

static uint64_t to_int(const struct soft_cpu *cpu, long double v, unsigned size)
{
    long double r = round_fcw(cpu, v);
    long double lim = size == 2 ? 32768.0L : size == 4 ? 2147483648.0L : 9223372036854775808.0L;
    if (isnan(r) || r >= lim || r < -lim)
        return 1ull << (size * 8 - 1); /* integer indefinite */
    return (uint64_t)(int64_t)r;
}

static long double load_fp(struct soft_cpu *cpu, uint64_t a, unsigned size)
{
    if (size == 4) {
        uint32_t v = (uint32_t)soft_ld(cpu, a, 4);
        float f;
        memcpy(&f, &v, 4);
        return f;
    }
    if (size == 8) {
        uint64_t v = soft_ld(cpu, a, 8);
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    long double x = 0;
    soft_mem_read_bytes(cpu, a, &x, 10);
    return x;
}

static void store_fp(struct soft_cpu *cpu, uint64_t a, unsigned size, long double x)
{
    if (size == 4) {
        float f = (float)x;
        uint32_t v;
        memcpy(&v, &f, 4);
        soft_st(cpu, a, 4, v);
    } else if (size == 8) {
        double d = (double)x;
        uint64_t v;
        memcpy(&v, &d, 8);
        soft_st(cpu, a, 8, v);
    } else {
        soft_mem_write_bytes(cpu, a, &x, 10);
    }
}

static long double load_int(struct soft_cpu *cpu, uint64_t a, unsigned size)
{
    return (long double)(int64_t)soft_sext(soft_ld(cpu, a, size), size);
}

static void fxam(struct soft_cpu *cpu)
{
    long double v = *st(cpu, 0);
    uint16_t cc = signbit(v) ? C1 : 0;
    if (((cpu->fpu.ftw >> (2 * cpu->fpu.top)) & 3) == 3)
        cc |= C3 | C0;
    else if (isnan(v))
        cc |= C0;
    else if (isinf(v))
        cc |= C2 | C0;
    else if (v == 0)
        cc |= C3;
    else if (fpclassify(v) == FP_SUBNORMAL)
        cc |= C3 | C2;
    else
        cc |= C2;
    set_cc(cpu, cc);
}

static void store_env(struct soft_cpu *cpu, uint64_t a)
{
    uint32_t env[7] = {cpu->fpu.fcw | 0xffff0000u, fsw_full(cpu) | 0xffff0000u,
                       cpu->fpu.ftw | 0xffff0000u, (uint32_t)cpu->fpu.fip,
                       (uint32_t)cpu->fpu.fop << 16, (uint32_t)cpu->fpu.fdp, 0xffff0000u};
    soft_mem_write_bytes(cpu, a, env, 28);
}

static void load_env(struct soft_cpu *cpu, uint64_t a)
{
    uint32_t env[7];
    soft_mem_read_bytes(cpu, a, env, 28);
    cpu->fpu.fcw = (uint16_t)env[0];
    cpu->fpu.fsw = (uint16_t)env[1] & ~0x3800u;
    cpu->fpu.top = (env[1] >> 11) & 7;
    cpu->fpu.ftw = (uint16_t)env[2];
}

/* Memory forms: key = (escape - D8) << 3 | ModRM.reg. */
static void x87_mem(struct soft_cpu *cpu, const struct soft_insn *i, unsigned esc, unsigned r)
{
    /* Bytes each form accesses (for the segment limit check; 1 where the form is undefined):
     * D9 /4 /6 and DD /4 /6 are the 32-bit environment (28) and save area (108). */
    static const uint8_t mem_size[8][8] = {
        {4, 4, 4, 4, 4, 4, 4, 4},          {4, 1, 4, 4, 28, 2, 28, 2},
        {4, 4, 4, 4, 4, 4, 4, 4},          {4, 4, 4, 4, 1, 10, 1, 10},
        {8, 8, 8, 8, 8, 8, 8, 8},          {8, 8, 8, 8, 108, 1, 108, 2},
        {2, 2, 2, 2, 2, 2, 2, 2},          {2, 2, 2, 2, 10, 8, 10, 8},
    };
    uint64_t a = soft_ea(cpu, i, mem_size[esc & 7][r & 7]);
    static const uint8_t arith_size[8] = {4, 4, 8, 2, 0, 0, 0, 0}; /* D8 DA DC DE */
    if (!(esc & 1)) {
        /* D8/DA/DC/DE: arithmetic and compares with m32fp, m32int, m64fp, m16int. */
        unsigned size = arith_size[esc >> 1];
        long double m = (esc == 0 || esc == 4) ? load_fp(cpu, a, size) : load_int(cpu, a, size);
        if (r == 2 || r == 3) {
            set_cc(cpu, compare_cc(*st(cpu, 0), m));
            if (r == 3)
                fpop(cpu);
            return;
        }
        *st(cpu, 0) = arith(r, *st(cpu, 0), m);
        return;
    }
    switch (esc << 3 | r) {
    case 010: fpush(cpu, load_fp(cpu, a, 4)); return;                /* D9 /0 FLD m32 */
    case 012: store_fp(cpu, a, 4, *st(cpu, 0)); return;              /* FST m32 */
    case 013: store_fp(cpu, a, 4, *st(cpu, 0)); fpop(cpu); return;  /* FSTP m32 */
    case 014: load_env(cpu, a); return;                              /* FLDENV */
    case 015: cpu->fpu.fcw = (uint16_t)soft_ld(cpu, a, 2); return;   /* FLDCW */
    case 016: store_env(cpu, a); cpu->fpu.fcw |= 0x3f; return;      /* FNSTENV */
    case 017: soft_st(cpu, a, 2, cpu->fpu.fcw); return;              /* FNSTCW */
    case 030: fpush(cpu, load_int(cpu, a, 4)); return;               /* DB /0 FILD m32 */
    case 032: soft_st(cpu, a, 4, to_int(cpu, *st(cpu, 0), 4)); return;
    case 033: soft_st(cpu, a, 4, to_int(cpu, *st(cpu, 0), 4)); fpop(cpu); return;
    case 035: fpush(cpu, load_fp(cpu, a, 10)); return;               /* FLD m80 */
    case 037: store_fp(cpu, a, 10, *st(cpu, 0)); fpop(cpu); return; /* FSTP m80 */
    case 050: fpush(cpu, load_fp(cpu, a, 8)); return;                /* DD /0 FLD m64 */
    case 052: store_fp(cpu, a, 8, *st(cpu, 0)); return;
    case 053: store_fp(cpu, a, 8, *st(cpu, 0)); fpop(cpu); return;
    case 057: soft_st(cpu, a, 2, fsw_full(cpu)); return;             /* FNSTSW m16 */
    case 070: fpush(cpu, load_int(cpu, a, 2)); return;               /* DF /0 FILD m16 */
    case 072: soft_st(cpu, a, 2, to_int(cpu, *st(cpu, 0), 2)); return;
    case 073: soft_st(cpu, a, 2, to_int(cpu, *st(cpu, 0), 2)); fpop(cpu); return;
    case 075: fpush(cpu, load_int(cpu, a, 8)); return;               /* FILD m64 */
    case 077: soft_st(cpu, a, 8, to_int(cpu, *st(cpu, 0), 8)); fpop(cpu); return;
    default: soft_raise(cpu, SOFT_EXC_UD, 0);
    }
}

static void fcmov(struct soft_cpu *cpu, unsigned esc, unsigned r, unsigned k)
{
    static const uint8_t cc[4] = {2, 4, 6, 10}; /* B, E, BE, P as Jcc condition numbers */
    int take = soft_cond(cpu, cc[r & 3]);
    if (esc == 3)
        take = !take;
    if (take)
        *st(cpu, 0) = *st(cpu, k);
}

static void x87_special(struct soft_cpu *cpu, unsigned m)
{
    long double *s0 = st(cpu, 0);
    static const long double consts[7] = {
        1.0L, 3.321928094887362347870319429489390175864831393L,
        1.442695040888963407359924681001892137426645954L,
        3.141592653589793238462643383279502884197169399L,
        0.301029995663981195213738894724493026768189881L,
        0.693147180559945309417232121458176568075500134L, 0.0L};
    switch (m) {
    case 0xd0: return;                                 /* FNOP */
    case 0xe0: *s0 = -*s0; return;                     /* FCHS */
    case 0xe1: *s0 = fabsl(*s0); return;               /* FABS */
    case 0xe4: set_cc(cpu, compare_cc(*s0, 0.0L)); return; /* FTST */
    case 0xe5: fxam(cpu); return;
    case 0xe8: case 0xe9: case 0xea: case 0xeb: case 0xec: case 0xed: case 0xee:
        fpush(cpu, consts[m - 0xe8]);
        return;
    case 0xf0: *s0 = exp2l(*s0) - 1.0L; return;        /* F2XM1 */
    case 0xf1: *st(cpu, 1) = *st(cpu, 1) * log2l(*s0); fpop(cpu); return; /* FYL2X */
    case 0xf2: *s0 = tanl(*s0); fpush(cpu, 1.0L); set_cc(cpu, 0); return;
    case 0xf3: *st(cpu, 1) = atan2l(*st(cpu, 1), *s0); fpop(cpu); return;
    case 0xf6: cpu->fpu.top = (cpu->fpu.top - 1) & 7; return;
    case 0xf7: cpu->fpu.top = (cpu->fpu.top + 1) & 7; return;
    case 0xf8: case 0xf5: { /* FPREM, FPREM1: complete the reduction in one step */
        long double q = *s0 / *st(cpu, 1);
        q = m == 0xf8 ? truncl(q) : rintl(q);
        long double r = m == 0xf8 ? fmodl(*s0, *st(cpu, 1)) : remainderl(*s0, *st(cpu, 1));
        uint64_t qi = isfinite(q) ? (uint64_t)(int64_t)fabsl(fmodl(q, 8.0L)) : 0;
        *s0 = r;
        set_cc(cpu, (uint16_t)(((qi & 1) ? C1 : 0) | ((qi & 2) ? C3 : 0) | ((qi & 4) ? C0 : 0)));
        return;
    }
    case 0xf9: *st(cpu, 1) = *st(cpu, 1) * log2l(*s0 + 1.0L); fpop(cpu); return;
    case 0xfa: *s0 = sqrtl(*s0); return;               /* FSQRT */
    case 0xfb: { long double v = *s0; *s0 = sinl(v); fpush(cpu, cosl(v)); set_cc(cpu, 0); return; }
    case 0xfc: *s0 = round_fcw(cpu, *s0); return;      /* FRNDINT */
    case 0xfd: *s0 = scalbnl(*s0, (int)truncl(*st(cpu, 1))); return; /* FSCALE */
    case 0xfe: *s0 = sinl(*s0); set_cc(cpu, 0); return;
    case 0xff: *s0 = cosl(*s0); set_cc(cpu, 0); return;
    case 0xf4: { /* FXTRACT */
        long double v = *s0;
        int e;
        long double f = frexpl(v, &e);
        *s0 = (long double)(e - 1);
        fpush(cpu, f * 2.0L);
        return;
    }
    default: soft_raise(cpu, SOFT_EXC_UD, 0);
    }
}

static void x87_reg(struct soft_cpu *cpu, unsigned esc, unsigned modrm)
{
    unsigned r = (modrm >> 3) & 7, k = modrm & 7;
    switch (esc) {
    case 0: /* D8: ST0 = ST0 op ST(k); compares */
        if (r == 2 || r == 3) {
            set_cc(cpu, compare_cc(*st(cpu, 0), *st(cpu, k)));
            if (r == 3)
                fpop(cpu);
            return;
        }
        *st(cpu, 0) = arith(r, *st(cpu, 0), *st(cpu, k));
        return;
    case 1:
        if (r == 0) { fpush(cpu, *st(cpu, k)); return; }
        if (r == 1) {
            long double t = *st(cpu, 0);
            *st(cpu, 0) = *st(cpu, k);
            *st(cpu, k) = t;
            return;
        }
        x87_special(cpu, modrm);
        return;
    case 2:
        if (r < 4) { fcmov(cpu, 2, r, k); return; }
        if (modrm == 0xe9) { /* FUCOMPP */
            set_cc(cpu, compare_cc(*st(cpu, 0), *st(cpu, 1)));
            fpop(cpu);
            fpop(cpu);
            return;
        }
        break;
    case 3:
        if (r < 4) { fcmov(cpu, 3, r, k); return; }
        if (modrm == 0xe2) { cpu->fpu.fsw &= 0x7f00; return; }       /* FNCLEX */
        if (modrm == 0xe3) {                                           /* FNINIT */
            cpu->fpu.fcw = 0x37f;
            cpu->fpu.fsw = 0;
            cpu->fpu.top = 0;
            cpu->fpu.ftw = 0xffff;
            return;
        }
        if (r == 5 || r == 6) { compare_flags(cpu, *st(cpu, 0), *st(cpu, k)); return; }
        break;
    case 4: /* DC: ST(k) = ST(k) op ST0, with SUB/SUBR and DIV/DIVR swapped */
        if (r == 2 || r == 3) {
            set_cc(cpu, compare_cc(*st(cpu, 0), *st(cpu, k)));
            if (r == 3)
                fpop(cpu);
            return;
        }
        *st(cpu, k) = arith(r < 4 ? r : r ^ 1, *st(cpu, k), *st(cpu, 0));
        return;
    case 5:
        if (r == 0) { tag_set(cpu, (cpu->fpu.top + k) & 7, 3); return; } /* FFREE */
        if (r == 2) { *st(cpu, k) = *st(cpu, 0); return; }              /* FST ST(k) */
        if (r == 3) { *st(cpu, k) = *st(cpu, 0); fpop(cpu); return; }   /* FSTP ST(k) */
        if (r == 4 || r == 5) {                                          /* FUCOM(P) */
            set_cc(cpu, compare_cc(*st(cpu, 0), *st(cpu, k)));
            if (r == 5)
                fpop(cpu);
            return;
        }
        break;
    case 6: /* DE: op and pop */
        if (modrm == 0xd9) {
            set_cc(cpu, compare_cc(*st(cpu, 0), *st(cpu, 1)));
            fpop(cpu);
            fpop(cpu);
            return;
        }
        if (r == 2 || r == 3)
            break;
        *st(cpu, k) = arith(r < 4 ? r : r ^ 1, *st(cpu, k), *st(cpu, 0));
        fpop(cpu);
        return;
    default:
        if (modrm == 0xe0) { soft_set(cpu, SOFT_RAX, 2, fsw_full(cpu)); return; } /* FNSTSW AX */
        if (r == 5 || r == 6) {                                     /* FUCOMIP, FCOMIP */
            compare_flags(cpu, *st(cpu, 0), *st(cpu, k));
            fpop(cpu);
            return;
        }
        break;
    }
    soft_raise(cpu, SOFT_EXC_UD, 0);
}

SOFT_HANDLER_STATIC(x87_exec)
{
    unsigned esc = i->imm2 >> 8, modrm = i->imm2 & 0xff;
    if (cpu->cr0 & 0xc) /* EM or TS: the system issue uses this for lazy FPU switching */
        soft_raise(cpu, (cpu->cr0 & 4) ? SOFT_EXC_UD : SOFT_EXC_NM, 0);
    if (i->mem)
        x87_mem(cpu, i, esc, (modrm >> 3) & 7);
    else
        x87_reg(cpu, esc, modrm);
}

int soft_x87_select(struct soft_insn *i, uint8_t modrm)
{
    i->imm2 = (uint16_t)(((i->op - 0xd8) << 8) | modrm);
    i->fn = x87_exec;
    return 0;
}

SOFT_HANDLER(soft_fwait)
{
    (void)cpu;
    (void)i;
}

void soft_x87_save_env(const struct soft_cpu *cpu, uint8_t *img, int rexw)
{
    uint16_t fcw = cpu->fpu.fcw, fsw = fsw_full(cpu), fop = cpu->fpu.fop;
    uint8_t abridged = 0;
    for (unsigned k = 0; k < 8; k++) {
        if (((cpu->fpu.ftw >> (2 * k)) & 3) != 3)
            abridged |= (uint8_t)(1u << k);
    }
    memcpy(img, &fcw, 2);
    memcpy(img + 2, &fsw, 2);
    img[4] = abridged;
    memcpy(img + 6, &fop, 2);
    if (rexw) {
        memcpy(img + 8, &cpu->fpu.fip, 8);
        memcpy(img + 16, &cpu->fpu.fdp, 8);
    } else {
        uint32_t ip = (uint32_t)cpu->fpu.fip, dp = (uint32_t)cpu->fpu.fdp;
        memcpy(img + 8, &ip, 4);
        memcpy(img + 16, &dp, 4);
    }
    for (unsigned k = 0; k < 8; k++)
        memcpy(img + 32 + 16 * k, &cpu->fpu.st[(cpu->fpu.top + k) & 7], 10);
}

void soft_x87_load_env(struct soft_cpu *cpu, const uint8_t *img, int rexw)
{
    uint16_t fsw;
    memcpy(&cpu->fpu.fcw, img, 2);
    memcpy(&fsw, img + 2, 2);
    cpu->fpu.fsw = fsw & ~0x3800u;
    cpu->fpu.top = (fsw >> 11) & 7;
    cpu->fpu.ftw = 0;
    for (unsigned k = 0; k < 8; k++) {
        if (!(img[4] & (1u << k)))
            cpu->fpu.ftw |= (uint16_t)(3u << (2 * k));
    }
    memcpy(&cpu->fpu.fop, img + 6, 2);
    if (rexw) {
        memcpy(&cpu->fpu.fip, img + 8, 8);
        memcpy(&cpu->fpu.fdp, img + 16, 8);
    } else {
        uint32_t ip, dp;
        memcpy(&ip, img + 8, 4);
        memcpy(&dp, img + 16, 4);
        cpu->fpu.fip = ip;
        cpu->fpu.fdp = dp;
    }
    for (unsigned k = 0; k < 8; k++) {
        long double v = 0;
        memcpy(&v, img + 32 + 16 * k, 10);
        cpu->fpu.st[(cpu->fpu.top + k) & 7] = v;
    }
}
