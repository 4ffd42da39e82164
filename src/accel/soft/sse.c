/* SSE and SSE2: XMM moves, packed integer and floating-point arithmetic, conversions, MXCSR,
 * FXSAVE/FXRSTOR. The host is x86-64 and always has SSE2, so the arithmetic itself is done with
 * the host's own instructions (compiler intrinsics): results, NaN propagation and rounding are
 * then bit-exact by construction. While the guest runs, the host MXCSR holds the guest's
 * rounding/DAZ/FTZ bits with every exception masked (see soft_sse_enter/leave). */
#include "accel/soft/sse.h"

#include "accel/soft/exec.h"
#include "accel/soft/x87.h"

#include <emmintrin.h>

/* Memory operand classes for the binary forms (stored in insn.sub). */
enum { MEM_A16, MEM_U16, MEM_8, MEM_4 };

#define KEY(op, pfx) ((unsigned)(op) << 2 | (pfx))

static inline __m128i xget(const struct soft_cpu *cpu, unsigned r)
{
    return _mm_loadu_si128((const __m128i *)cpu->xmm[r].b);
}

static inline void xput(struct soft_cpu *cpu, unsigned r, __m128i v)
{
    _mm_storeu_si128((__m128i *)cpu->xmm[r].b, v);
}

static inline __m128 PS(__m128i v) { return _mm_castsi128_ps(v); }
static inline __m128d PD(__m128i v) { return _mm_castsi128_pd(v); }
static inline __m128i IS(__m128 v) { return _mm_castps_si128(v); }
static inline __m128i ID(__m128d v) { return _mm_castpd_si128(v); }

static uint64_t sse_addr(struct soft_cpu *cpu, const struct soft_insn *i, int aligned)
{
    uint64_t a = soft_ea(cpu, i, 16);
    if (aligned && (a & 15))
        soft_raise(cpu, SOFT_EXC_GP, 0);
    return a;
}

static __m128i load128(struct soft_cpu *cpu, uint64_t a)
{
    return _mm_loadu_si128((const __m128i *)soft_mem(cpu, a, 16, SOFT_ACC_READ));
}

static void store128(struct soft_cpu *cpu, uint64_t a, __m128i v)
{
    void *p = soft_tlb_hit(cpu, a, 16, SOFT_ACC_WRITE);
    if (__builtin_expect(p != NULL, 1)) {
        _mm_storeu_si128((__m128i *)p, v);
        return;
    }
    soft_mem_write_bytes(cpu, a, &v, 16);
}

/* The source operand of a binary form, by its memory class. */
static __m128i src_operand(struct soft_cpu *cpu, const struct soft_insn *i)
{
    if (!i->mem)
        return xget(cpu, i->rm);
    switch (i->sub) {
    case MEM_A16: return load128(cpu, sse_addr(cpu, i, 1));
    case MEM_U16: return load128(cpu, sse_addr(cpu, i, 0));
    case MEM_8: return _mm_set_epi64x(0, (long long)soft_ld(cpu, soft_ea(cpu, i, 8), 8));
    default: return _mm_cvtsi32_si128((int)soft_ld(cpu, soft_ea(cpu, i, 4), 4));
    }
}

static __m128i shuffle32(__m128i a, __m128i b, unsigned imm)
{
    union soft_xmm x, y, r;
    _mm_storeu_si128((__m128i *)x.b, a);
    _mm_storeu_si128((__m128i *)y.b, b);
    r.d[0] = x.d[imm & 3];
    r.d[1] = x.d[(imm >> 2) & 3];
    r.d[2] = y.d[(imm >> 4) & 3];
    r.d[3] = y.d[(imm >> 6) & 3];
    return _mm_loadu_si128((const __m128i *)r.b);
}

static __m128i shuffle_words(__m128i b, unsigned imm, int high)
{
    union soft_xmm x, r;
    _mm_storeu_si128((__m128i *)x.b, b);
    r = x;
    unsigned base = high ? 4 : 0;
    for (unsigned k = 0; k < 4; k++)
        r.w[base + k] = x.w[base + ((imm >> (2 * k)) & 3)];
    return _mm_loadu_si128((const __m128i *)r.b);
}

static __m128 cmp_ps(__m128 a, __m128 b, unsigned p, int scalar)
{
    if (scalar) {
        switch (p & 7) {
        case 0: return _mm_cmpeq_ss(a, b);
        case 1: return _mm_cmplt_ss(a, b);
        case 2: return _mm_cmple_ss(a, b);
        case 3: return _mm_cmpunord_ss(a, b);
        case 4: return _mm_cmpneq_ss(a, b);
        case 5: return _mm_cmpnlt_ss(a, b);
        case 6: return _mm_cmpnle_ss(a, b);
        default: return _mm_cmpord_ss(a, b);
        }
    }
    switch (p & 7) {
    case 0: return _mm_cmpeq_ps(a, b);
    case 1: return _mm_cmplt_ps(a, b);
    case 2: return _mm_cmple_ps(a, b);
    case 3: return _mm_cmpunord_ps(a, b);
    case 4: return _mm_cmpneq_ps(a, b);
    case 5: return _mm_cmpnlt_ps(a, b);
    case 6: return _mm_cmpnle_ps(a, b);
    default: return _mm_cmpord_ps(a, b);
    }
}

static __m128d cmp_pd(__m128d a, __m128d b, unsigned p, int scalar)
{
    if (scalar) {
        switch (p & 7) {
        case 0: return _mm_cmpeq_sd(a, b);
        case 1: return _mm_cmplt_sd(a, b);
        case 2: return _mm_cmple_sd(a, b);
        case 3: return _mm_cmpunord_sd(a, b);
        case 4: return _mm_cmpneq_sd(a, b);
        case 5: return _mm_cmpnlt_sd(a, b);
        case 6: return _mm_cmpnle_sd(a, b);
        default: return _mm_cmpord_sd(a, b);
        }
    }
    switch (p & 7) {
    case 0: return _mm_cmpeq_pd(a, b);
    case 1: return _mm_cmplt_pd(a, b);
    case 2: return _mm_cmple_pd(a, b);
    case 3: return _mm_cmpunord_pd(a, b);
    case 4: return _mm_cmpneq_pd(a, b);
    case 5: return _mm_cmpnlt_pd(a, b);
    case 6: return _mm_cmpnle_pd(a, b);
    default: return _mm_cmpord_pd(a, b);
    }
}

/* Every "xmm = f(xmm, xmm/mem)" form. Returns 0 for keys it does not know (select checks). */
static int binop(unsigned key, __m128i a, __m128i b, unsigned imm, __m128i *out)
{
    __m128i r;
    switch (key) {
    /* integer (66 prefix) */
    case KEY(0x60, 1): r = _mm_unpacklo_epi8(a, b); break;
    case KEY(0x61, 1): r = _mm_unpacklo_epi16(a, b); break;
    case KEY(0x62, 1): r = _mm_unpacklo_epi32(a, b); break;
    case KEY(0x63, 1): r = _mm_packs_epi16(a, b); break;
    case KEY(0x64, 1): r = _mm_cmpgt_epi8(a, b); break;
    case KEY(0x65, 1): r = _mm_cmpgt_epi16(a, b); break;
    case KEY(0x66, 1): r = _mm_cmpgt_epi32(a, b); break;
    case KEY(0x67, 1): r = _mm_packus_epi16(a, b); break;
    case KEY(0x68, 1): r = _mm_unpackhi_epi8(a, b); break;
    case KEY(0x69, 1): r = _mm_unpackhi_epi16(a, b); break;
    case KEY(0x6a, 1): r = _mm_unpackhi_epi32(a, b); break;
    case KEY(0x6b, 1): r = _mm_packs_epi32(a, b); break;
    case KEY(0x6c, 1): r = _mm_unpacklo_epi64(a, b); break;
    case KEY(0x6d, 1): r = _mm_unpackhi_epi64(a, b); break;
    case KEY(0x74, 1): r = _mm_cmpeq_epi8(a, b); break;
    case KEY(0x75, 1): r = _mm_cmpeq_epi16(a, b); break;
    case KEY(0x76, 1): r = _mm_cmpeq_epi32(a, b); break;
    case KEY(0xd1, 1): r = _mm_srl_epi16(a, b); break;
    case KEY(0xd2, 1): r = _mm_srl_epi32(a, b); break;
    case KEY(0xd3, 1): r = _mm_srl_epi64(a, b); break;
    case KEY(0xd4, 1): r = _mm_add_epi64(a, b); break;
    case KEY(0xd5, 1): r = _mm_mullo_epi16(a, b); break;
    case KEY(0xd8, 1): r = _mm_subs_epu8(a, b); break;
    case KEY(0xd9, 1): r = _mm_subs_epu16(a, b); break;
    case KEY(0xda, 1): r = _mm_min_epu8(a, b); break;
    case KEY(0xdb, 1): r = _mm_and_si128(a, b); break;
    case KEY(0xdc, 1): r = _mm_adds_epu8(a, b); break;
    case KEY(0xdd, 1): r = _mm_adds_epu16(a, b); break;
    case KEY(0xde, 1): r = _mm_max_epu8(a, b); break;
    case KEY(0xdf, 1): r = _mm_andnot_si128(a, b); break;
    case KEY(0xe0, 1): r = _mm_avg_epu8(a, b); break;
    case KEY(0xe1, 1): r = _mm_sra_epi16(a, b); break;
    case KEY(0xe2, 1): r = _mm_sra_epi32(a, b); break;
    case KEY(0xe3, 1): r = _mm_avg_epu16(a, b); break;
    case KEY(0xe4, 1): r = _mm_mulhi_epu16(a, b); break;
    case KEY(0xe5, 1): r = _mm_mulhi_epi16(a, b); break;
    case KEY(0xe8, 1): r = _mm_subs_epi8(a, b); break;
    case KEY(0xe9, 1): r = _mm_subs_epi16(a, b); break;
    case KEY(0xea, 1): r = _mm_min_epi16(a, b); break;
    case KEY(0xeb, 1): r = _mm_or_si128(a, b); break;
    case KEY(0xec, 1): r = _mm_adds_epi8(a, b); break;
    case KEY(0xed, 1): r = _mm_adds_epi16(a, b); break;
    case KEY(0xee, 1): r = _mm_max_epi16(a, b); break;
    case KEY(0xef, 1): r = _mm_xor_si128(a, b); break;
    case KEY(0xf1, 1): r = _mm_sll_epi16(a, b); break;
    case KEY(0xf2, 1): r = _mm_sll_epi32(a, b); break;
    case KEY(0xf3, 1): r = _mm_sll_epi64(a, b); break;
    case KEY(0xf4, 1): r = _mm_mul_epu32(a, b); break;
    case KEY(0xf5, 1): r = _mm_madd_epi16(a, b); break;
    case KEY(0xf6, 1): r = _mm_sad_epu8(a, b); break;
    case KEY(0xf8, 1): r = _mm_sub_epi8(a, b); break;
    case KEY(0xf9, 1): r = _mm_sub_epi16(a, b); break;
    case KEY(0xfa, 1): r = _mm_sub_epi32(a, b); break;
    case KEY(0xfb, 1): r = _mm_sub_epi64(a, b); break;
    case KEY(0xfc, 1): r = _mm_add_epi8(a, b); break;
    case KEY(0xfd, 1): r = _mm_add_epi16(a, b); break;
    case KEY(0xfe, 1): r = _mm_add_epi32(a, b); break;
    case KEY(0x70, 1): r = shuffle32(b, b, imm); break;
    case KEY(0x70, 2): r = shuffle_words(b, imm, 1); break;
    case KEY(0x70, 3): r = shuffle_words(b, imm, 0); break;
    /* packed single (no prefix) and double (66) */
    case KEY(0x14, 0): r = IS(_mm_unpacklo_ps(PS(a), PS(b))); break;
    case KEY(0x15, 0): r = IS(_mm_unpackhi_ps(PS(a), PS(b))); break;
    case KEY(0x14, 1): r = ID(_mm_unpacklo_pd(PD(a), PD(b))); break;
    case KEY(0x15, 1): r = ID(_mm_unpackhi_pd(PD(a), PD(b))); break;
    case KEY(0x51, 0): r = IS(_mm_sqrt_ps(PS(b))); break;
    case KEY(0x51, 1): r = ID(_mm_sqrt_pd(PD(b))); break;
    case KEY(0x52, 0): r = IS(_mm_rsqrt_ps(PS(b))); break;
    case KEY(0x53, 0): r = IS(_mm_rcp_ps(PS(b))); break;
    case KEY(0x54, 0): case KEY(0x54, 1): r = _mm_and_si128(a, b); break;
    case KEY(0x55, 0): case KEY(0x55, 1): r = _mm_andnot_si128(a, b); break;
    case KEY(0x56, 0): case KEY(0x56, 1): r = _mm_or_si128(a, b); break;
    case KEY(0x57, 0): case KEY(0x57, 1): r = _mm_xor_si128(a, b); break;
    case KEY(0x58, 0): r = IS(_mm_add_ps(PS(a), PS(b))); break;
    case KEY(0x58, 1): r = ID(_mm_add_pd(PD(a), PD(b))); break;
    case KEY(0x59, 0): r = IS(_mm_mul_ps(PS(a), PS(b))); break;
    case KEY(0x59, 1): r = ID(_mm_mul_pd(PD(a), PD(b))); break;
    case KEY(0x5c, 0): r = IS(_mm_sub_ps(PS(a), PS(b))); break;
    case KEY(0x5c, 1): r = ID(_mm_sub_pd(PD(a), PD(b))); break;
    case KEY(0x5d, 0): r = IS(_mm_min_ps(PS(a), PS(b))); break;
    case KEY(0x5d, 1): r = ID(_mm_min_pd(PD(a), PD(b))); break;
    case KEY(0x5e, 0): r = IS(_mm_div_ps(PS(a), PS(b))); break;
    case KEY(0x5e, 1): r = ID(_mm_div_pd(PD(a), PD(b))); break;
    case KEY(0x5f, 0): r = IS(_mm_max_ps(PS(a), PS(b))); break;
    case KEY(0x5f, 1): r = ID(_mm_max_pd(PD(a), PD(b))); break;
    case KEY(0x5a, 0): r = ID(_mm_cvtps_pd(PS(b))); break;
    case KEY(0x5a, 1): r = IS(_mm_cvtpd_ps(PD(b))); break;
    case KEY(0x5b, 0): r = IS(_mm_cvtepi32_ps(b)); break;
    case KEY(0x5b, 1): r = _mm_cvtps_epi32(PS(b)); break;
    case KEY(0x5b, 2): r = _mm_cvttps_epi32(PS(b)); break;
    case KEY(0xe6, 1): r = _mm_cvttpd_epi32(PD(b)); break;
    case KEY(0xe6, 2): r = ID(_mm_cvtepi32_pd(b)); break;
    case KEY(0xe6, 3): r = _mm_cvtpd_epi32(PD(b)); break;
    case KEY(0xc2, 0): r = IS(cmp_ps(PS(a), PS(b), imm, 0)); break;
    case KEY(0xc2, 1): r = ID(cmp_pd(PD(a), PD(b), imm, 0)); break;
    case KEY(0xc6, 0): r = shuffle32(a, b, imm); break;
    case KEY(0xc6, 1): {
            union soft_xmm x, y, z;
            _mm_storeu_si128((__m128i *)x.b, a);
            _mm_storeu_si128((__m128i *)y.b, b);
            z.q[0] = x.q[imm & 1];
            z.q[1] = y.q[(imm >> 1) & 1];
            r = _mm_loadu_si128((const __m128i *)z.b);
        break;
    }
    /* scalar single (F3) and double (F2): the upper part of the destination is kept */
    case KEY(0x51, 2): r = IS(_mm_move_ss(PS(a), _mm_sqrt_ss(PS(b)))); break;
    case KEY(0x51, 3): r = ID(_mm_sqrt_sd(PD(a), PD(b))); break;
    case KEY(0x52, 2): r = IS(_mm_move_ss(PS(a), _mm_rsqrt_ss(PS(b)))); break;
    case KEY(0x53, 2): r = IS(_mm_move_ss(PS(a), _mm_rcp_ss(PS(b)))); break;
    case KEY(0x58, 2): r = IS(_mm_add_ss(PS(a), PS(b))); break;
    case KEY(0x58, 3): r = ID(_mm_add_sd(PD(a), PD(b))); break;
    case KEY(0x59, 2): r = IS(_mm_mul_ss(PS(a), PS(b))); break;
    case KEY(0x59, 3): r = ID(_mm_mul_sd(PD(a), PD(b))); break;
    case KEY(0x5c, 2): r = IS(_mm_sub_ss(PS(a), PS(b))); break;
    case KEY(0x5c, 3): r = ID(_mm_sub_sd(PD(a), PD(b))); break;
    case KEY(0x5d, 2): r = IS(_mm_min_ss(PS(a), PS(b))); break;
    case KEY(0x5d, 3): r = ID(_mm_min_sd(PD(a), PD(b))); break;
    case KEY(0x5e, 2): r = IS(_mm_div_ss(PS(a), PS(b))); break;
    case KEY(0x5e, 3): r = ID(_mm_div_sd(PD(a), PD(b))); break;
    case KEY(0x5f, 2): r = IS(_mm_max_ss(PS(a), PS(b))); break;
    case KEY(0x5f, 3): r = ID(_mm_max_sd(PD(a), PD(b))); break;
    case KEY(0x5a, 2): r = ID(_mm_cvtss_sd(PD(a), PS(b))); break;
    case KEY(0x5a, 3): r = IS(_mm_cvtsd_ss(PS(a), PD(b))); break;
    case KEY(0xc2, 2): r = IS(cmp_ps(PS(a), PS(b), imm, 1)); break;
    case KEY(0xc2, 3): r = ID(cmp_pd(PD(a), PD(b), imm, 1)); break;
    default: return 0;
    }
    *out = r;
    return 1;
}

SOFT_HANDLER_STATIC(sse_binop)
{
    __m128i b = src_operand(cpu, i), r;
    binop(i->imm2, xget(cpu, i->reg), b, (unsigned)i->imm, &r);
    xput(cpu, i->reg, r);
}

/* The packed-integer forms that glibc's string and memory functions run in their inner loops
 * get handlers of their own, so that binop()'s switch is not taken on every execution. */
#define SSE_HOT(name, key, expr)                                                               \
    SOFT_HANDLER_STATIC(sse_##name)                                                            \
    {                                                                                          \
        __m128i b = src_operand(cpu, i), a = xget(cpu, i->reg);                                \
        xput(cpu, i->reg, expr);                                                               \
    }

#define SSE_HOT_LIST(X)                                                                        \
    X(pcmpeqb, KEY(0x74, 1), _mm_cmpeq_epi8(a, b))                                             \
    X(pminub, KEY(0xda, 1), _mm_min_epu8(a, b))                                                \
    X(pand, KEY(0xdb, 1), _mm_and_si128(a, b))                                                 \
    X(por, KEY(0xeb, 1), _mm_or_si128(a, b))                                                   \
    X(pxor, KEY(0xef, 1), _mm_xor_si128(a, b))                                                 \
    X(psubb, KEY(0xf8, 1), _mm_sub_epi8(a, b))

SSE_HOT_LIST(SSE_HOT)

/* --- moves -------------------------------------------------------------------------------- */

/* Full 128-bit load into xmm (0F 10/28/6F, 66 variants): sub = MEM_A16 or MEM_U16. */
SOFT_HANDLER_STATIC(sse_load128)
{
    xput(cpu, i->reg, src_operand(cpu, i));
}

SOFT_HANDLER_STATIC(sse_store128)
{
    __m128i v = xget(cpu, i->reg);
    if (i->mem)
        store128(cpu, sse_addr(cpu, i, i->sub == MEM_A16), v);
    else
        xput(cpu, i->rm, v);
}

/* MOVSS/MOVSD: loads from memory zero the rest, register moves keep it. sub = MEM_4/MEM_8. */
SOFT_HANDLER_STATIC(sse_movs_load)
{
    if (i->mem) {
        xput(cpu, i->reg, src_operand(cpu, i));
        return;
    }
    if (i->sub == MEM_4)
        cpu->xmm[i->reg].d[0] = cpu->xmm[i->rm].d[0];
    else
        cpu->xmm[i->reg].q[0] = cpu->xmm[i->rm].q[0];
}

SOFT_HANDLER_STATIC(sse_movs_store)
{
    if (i->mem) {
        if (i->sub == MEM_4)
            soft_st(cpu, soft_ea(cpu, i, 4), 4, cpu->xmm[i->reg].d[0]);
        else
            soft_st(cpu, soft_ea(cpu, i, 8), 8, cpu->xmm[i->reg].q[0]);
        return;
    }
    if (i->sub == MEM_4)
        cpu->xmm[i->rm].d[0] = cpu->xmm[i->reg].d[0];
    else
        cpu->xmm[i->rm].q[0] = cpu->xmm[i->reg].q[0];
}

/* 0F 12/13/16/17: low/high quadword moves, one handler each. */
SOFT_HANDLER_STATIC(sse_movl_load)
{
    uint64_t v = i->mem ? soft_ld(cpu, soft_ea(cpu, i, 8), 8) : cpu->xmm[i->rm].q[1];
    cpu->xmm[i->reg].q[0] = v;
}

SOFT_HANDLER_STATIC(sse_movh_load)
{
    uint64_t v = i->mem ? soft_ld(cpu, soft_ea(cpu, i, 8), 8) : cpu->xmm[i->rm].q[0];
    cpu->xmm[i->reg].q[1] = v;
}

SOFT_HANDLER_STATIC(sse_movl_store)
{
    soft_st(cpu, soft_ea(cpu, i, 8), 8, cpu->xmm[i->reg].q[0]);
}

SOFT_HANDLER_STATIC(sse_movh_store)
{
    soft_st(cpu, soft_ea(cpu, i, 8), 8, cpu->xmm[i->reg].q[1]);
}

/* 66 0F 6E: MOVD/MOVQ xmm, r/m32/64. */
SOFT_HANDLER_STATIC(sse_movd_to_xmm)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz == 8 ? 8 : 4);
    cpu->xmm[i->reg].q[0] = v;
    cpu->xmm[i->reg].q[1] = 0;
}

/* 66 0F 7E: MOVD/MOVQ r/m32/64, xmm. */
SOFT_HANDLER_STATIC(sse_movd_from_xmm)
{
    unsigned sz = i->osz == 8 ? 8 : 4;
    soft_rm_set(cpu, i, sz, cpu->xmm[i->reg].q[0] & soft_mask(sz));
}

/* F3 0F 7E: MOVQ xmm, xmm/m64 (zero-extends). */
SOFT_HANDLER_STATIC(sse_movq_load)
{
    uint64_t v = i->mem ? soft_ld(cpu, soft_ea(cpu, i, 8), 8) : cpu->xmm[i->rm].q[0];
    cpu->xmm[i->reg].q[0] = v;
    cpu->xmm[i->reg].q[1] = 0;
}

/* 66 0F D6: MOVQ xmm/m64, xmm. */
SOFT_HANDLER_STATIC(sse_movq_store)
{
    uint64_t v = cpu->xmm[i->reg].q[0];
    if (i->mem) {
        soft_st(cpu, soft_ea(cpu, i, 8), 8, v);
    } else {
        cpu->xmm[i->rm].q[0] = v;
        cpu->xmm[i->rm].q[1] = 0;
    }
}

/* 0F C3 MOVNTI m32/64, r. */
SOFT_HANDLER_STATIC(sse_movnti)
{
    soft_st(cpu, soft_ea(cpu, i, i->osz), i->osz, soft_get(cpu, i->reg, i->osz));
}

SOFT_HANDLER_STATIC(sse_pmovmskb)
{
    soft_set(cpu, i->reg, 4, (uint32_t)_mm_movemask_epi8(xget(cpu, i->rm)));
}

SOFT_HANDLER_STATIC(sse_movmsk)
{
    __m128i v = xget(cpu, i->rm);
    int m = i->pfx == SOFT_PFX_66 ? _mm_movemask_pd(PD(v)) : _mm_movemask_ps(PS(v));
    soft_set(cpu, i->reg, 4, (uint32_t)m);
}

SOFT_HANDLER_STATIC(sse_pextrw)
{
    soft_set(cpu, i->reg, 4, cpu->xmm[i->rm].w[i->imm & 7]);
}

SOFT_HANDLER_STATIC(sse_pinsrw)
{
    uint64_t v = i->mem ? soft_ld(cpu, soft_ea(cpu, i, 2), 2) : soft_get(cpu, i->rm, 2);
    cpu->xmm[i->reg].w[i->imm & 7] = (uint16_t)v;
}

SOFT_HANDLER_STATIC(sse_maskmov)
{
    uint64_t off = soft_addr_trunc(cpu->regs[SOFT_RDI], i->asz);
    uint64_t base = soft_seg_linear(cpu, i->seg, off, 16);
    for (unsigned k = 0; k < 16; k++) {
        if (cpu->xmm[i->rm].b[k] & 0x80)
            soft_st(cpu, base + k, 1, cpu->xmm[i->reg].b[k]);
    }
}

/* 66 0F 71/72/73 with an immediate count: sub is the ModRM digit. */
SOFT_HANDLER_STATIC(sse_shift_imm)
{
    __m128i v = xget(cpu, i->rm), c = _mm_cvtsi32_si128((int)(i->imm & 0xff)), r;
    unsigned op = i->op & 0xff, n = (unsigned)(i->imm & 0xff);
    switch (op << 4 | i->sub) {
    case 0x712: r = _mm_srl_epi16(v, c); break;
    case 0x714: r = _mm_sra_epi16(v, c); break;
    case 0x716: r = _mm_sll_epi16(v, c); break;
    case 0x722: r = _mm_srl_epi32(v, c); break;
    case 0x724: r = _mm_sra_epi32(v, c); break;
    case 0x726: r = _mm_sll_epi32(v, c); break;
    case 0x732: r = _mm_srl_epi64(v, c); break;
    case 0x736: r = _mm_sll_epi64(v, c); break;
    default: { /* 0x733 PSRLDQ, 0x737 PSLLDQ: whole-register byte shifts */
        union soft_xmm x, y;
        _mm_storeu_si128((__m128i *)x.b, v);
        memset(&y, 0, sizeof(y));
        if (n < 16) {
            if (i->sub == 3)
                memcpy(y.b, x.b + n, 16 - n);
            else
                memcpy(y.b + n, x.b, 16 - n);
        }
        r = _mm_loadu_si128((const __m128i *)y.b);
        break;
    }
    }
    xput(cpu, i->rm, r);
}

/* --- conversions with general registers, compares into EFLAGS ----------------------------- */

SOFT_HANDLER_STATIC(sse_cvtsi2s)
{
    unsigned sz = i->osz == 8 ? 8 : 4;
    int64_t v = (int64_t)soft_sext(soft_rm_get(cpu, i, sz), sz);
    __m128i a = xget(cpu, i->reg);
    if (i->pfx == SOFT_PFX_F3)
        a = IS(sz == 8 ? _mm_cvtsi64_ss(PS(a), v) : _mm_cvtsi32_ss(PS(a), (int)v));
    else
        a = ID(sz == 8 ? _mm_cvtsi64_sd(PD(a), v) : _mm_cvtsi32_sd(PD(a), (int)v));
    xput(cpu, i->reg, a);
}

/* 2C (truncating) and 2D (MXCSR rounding): F3 single, F2 double source. */
SOFT_HANDLER_STATIC(sse_cvts2si)
{
    int trunc = (i->op & 0xff) == 0x2c, dbl = i->pfx == SOFT_PFX_F2;
    __m128i s = src_operand(cpu, i);
    uint64_t r;
    if (i->osz == 8) {
        if (dbl)
            r = (uint64_t)(trunc ? _mm_cvttsd_si64(PD(s)) : _mm_cvtsd_si64(PD(s)));
        else
            r = (uint64_t)(trunc ? _mm_cvttss_si64(PS(s)) : _mm_cvtss_si64(PS(s)));
        soft_set(cpu, i->reg, 8, r);
    } else {
        if (dbl)
            r = (uint32_t)(trunc ? _mm_cvttsd_si32(PD(s)) : _mm_cvtsd_si32(PD(s)));
        else
            r = (uint32_t)(trunc ? _mm_cvttss_si32(PS(s)) : _mm_cvtss_si32(PS(s)));
        soft_set(cpu, i->reg, 4, r);
    }
}

/* UCOMISS/COMISS/UCOMISD/COMISD: ZF PF CF from the comparison, OF SF AF cleared. */
SOFT_HANDLER_STATIC(sse_comis)
{
    __m128i a = xget(cpu, i->reg), b = src_operand(cpu, i);
    int unord, lt, eq;
    union soft_xmm x, y;
    _mm_storeu_si128((__m128i *)x.b, a);
    _mm_storeu_si128((__m128i *)y.b, b);
    if (i->pfx == SOFT_PFX_66) {
        double p = x.fd[0], q = y.fd[0];
        unord = p != p || q != q;
        lt = p < q;
        eq = p == q;
    } else {
        float p = x.f[0], q = y.f[0];
        unord = p != p || q != q;
        lt = p < q;
        eq = p == q;
    }
    uint32_t f;
    if (unord)
        f = SOFT_ZF | SOFT_PF | SOFT_CF;
    else if (eq)
        f = SOFT_ZF;
    else if (lt)
        f = SOFT_CF;
    else
        f = 0;
    soft_flags_store(cpu, f);
}

/* --- MXCSR, fences, FXSAVE ---------------------------------------------------------------- */

void soft_sse_enter(struct soft_cpu *cpu, uint32_t *host_mxcsr)
{
    *host_mxcsr = _mm_getcsr();
    _mm_setcsr((cpu->mxcsr & 0xffc0) | 0x1f80);
}

void soft_sse_leave(struct soft_cpu *cpu, uint32_t host_mxcsr)
{
    cpu->mxcsr = (cpu->mxcsr & ~0x3fu) | (_mm_getcsr() & 0x3f);
    _mm_setcsr(host_mxcsr);
}

static uint32_t mxcsr_read(struct soft_cpu *cpu)
{
    return cpu->running ? (cpu->mxcsr & ~0x3fu) | (_mm_getcsr() & 0x3f) : cpu->mxcsr;
}

static void mxcsr_write(struct soft_cpu *cpu, uint32_t v)
{
    if (v & 0xffff0000u)
        soft_raise(cpu, SOFT_EXC_GP, 0);
    cpu->mxcsr = v;
    if (cpu->running)
        _mm_setcsr((v & 0xffff) | 0x1f80);
}

static void fxsave(struct soft_cpu *cpu, uint64_t a, int rexw)
{
    uint8_t img[512];
    memset(img, 0, sizeof(img));
    soft_x87_save_env(cpu, img, rexw);
    uint32_t mx = mxcsr_read(cpu), mask = 0xffbf;
    memcpy(img + 24, &mx, 4);
    memcpy(img + 28, &mask, 4);
    for (unsigned k = 0; k < 16; k++)
        memcpy(img + 160 + 16 * k, cpu->xmm[k].b, 16);
    soft_mem_write_bytes(cpu, a, img, 512);
}

static void fxrstor(struct soft_cpu *cpu, uint64_t a, int rexw)
{
    uint8_t p[512];
    soft_mem_read_bytes(cpu, a, p, 512);
    uint32_t mx;
    memcpy(&mx, p + 24, 4);
    if (mx & 0xffff0040u)
        soft_raise(cpu, SOFT_EXC_GP, 0);
    soft_x87_load_env(cpu, p, rexw);
    mxcsr_write(cpu, mx);
    for (unsigned k = 0; k < 16; k++)
        memcpy(cpu->xmm[k].b, p + 160 + 16 * k, 16);
}

SOFT_HANDLER_STATIC(sse_group15)
{
    if (!i->mem) {
        if (i->sub >= 5) /* LFENCE, MFENCE, SFENCE */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return;
    }
    uint64_t a = soft_ea(cpu, i, i->sub <= 1 ? 512 : i->sub <= 3 ? 4 : 1);
    switch (i->sub) {
    case 0:
    case 1:
        if (a & 15)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        if (i->sub == 0)
            fxsave(cpu, a, (i->rex & 8) != 0);
        else
            fxrstor(cpu, a, (i->rex & 8) != 0);
        break;
    case 2: mxcsr_write(cpu, (uint32_t)soft_ld(cpu, a, 4)); break;
    case 3: soft_st(cpu, a, 4, mxcsr_read(cpu)); break;
    default: /* CLFLUSH: only checks that the address is mapped */
        soft_mem(cpu, a, 1, SOFT_ACC_READ);
        break;
    }
}

/* --- selection ---------------------------------------------------------------------------- */

int soft_sse_has_imm8(unsigned op)
{
    return op == 0x70 || op == 0x71 || op == 0x72 || op == 0x73 || op == 0xc2 || op == 0xc4 ||
           op == 0xc5 || op == 0xc6;
}

static int set_bin(struct soft_insn *i, unsigned key, int memclass)
{
    __m128i z = _mm_setzero_si128(), r;
    if (!binop(key, z, z, 0, &r))
        return -1;
    i->imm2 = (uint16_t)key;
    i->sub = (uint8_t)memclass;
    i->fn = sse_binop;
    switch (key) {
#define SSE_HOT_CASE(name, k, expr)                                                            \
    case k: i->fn = sse_##name; break;
        SSE_HOT_LIST(SSE_HOT_CASE)
#undef SSE_HOT_CASE
    default: break;
    }
    return 0;
}

int soft_sse_select(const struct soft_cpu *cpu, struct soft_insn *i)
{
    (void)cpu;
    if ((i->op & 0xf00) != SOFT_OP_0F)
        return -1; /* no SSSE3/SSE4 in the CPU model yet */
    unsigned op = i->op & 0xff, pfx = i->pfx;
    switch (op) {
    case 0x10: case 0x11:
        if (pfx >= SOFT_PFX_F3) {
            i->sub = pfx == SOFT_PFX_F3 ? MEM_4 : MEM_8;
            i->fn = op == 0x10 ? sse_movs_load : sse_movs_store;
        } else {
            i->sub = MEM_U16;
            i->fn = op == 0x10 ? sse_load128 : sse_store128;
        }
        return 0;
    case 0x28: case 0x29:
        if (pfx >= SOFT_PFX_F3)
            return -1;
        i->sub = MEM_A16;
        i->fn = op == 0x28 ? sse_load128 : sse_store128;
        return 0;
    case 0x6f: case 0x7f:
        if (pfx == SOFT_PFX_NONE || pfx == SOFT_PFX_F2)
            return -1;
        i->sub = pfx == SOFT_PFX_66 ? MEM_A16 : MEM_U16;
        i->fn = op == 0x6f ? sse_load128 : sse_store128;
        return 0;
    case 0x2b: case 0xe7:
        if (!i->mem || (op == 0x2b && pfx >= SOFT_PFX_F3) || (op == 0xe7 && pfx != SOFT_PFX_66))
            return -1;
        i->sub = MEM_A16;
        i->fn = sse_store128;
        return 0;
    case 0x12: case 0x16:
        if (pfx >= SOFT_PFX_F3 || (pfx == SOFT_PFX_66 && !i->mem))
            return -1;
        i->fn = op == 0x12 ? sse_movl_load : sse_movh_load;
        return 0;
    case 0x13: case 0x17:
        if (pfx >= SOFT_PFX_F3 || !i->mem)
            return -1;
        i->fn = op == 0x13 ? sse_movl_store : sse_movh_store;
        return 0;
    case 0x6e:
        if (pfx != SOFT_PFX_66)
            return -1;
        i->fn = sse_movd_to_xmm;
        return 0;
    case 0x7e:
        if (pfx == SOFT_PFX_66) {
            i->fn = sse_movd_from_xmm;
            return 0;
        }
        if (pfx == SOFT_PFX_F3) {
            i->fn = sse_movq_load;
            return 0;
        }
        return -1;
    case 0xd6:
        if (pfx != SOFT_PFX_66)
            return -1;
        i->fn = sse_movq_store;
        return 0;
    case 0xc3:
        if (pfx != SOFT_PFX_NONE || !i->mem || i->osz < 4)
            return -1;
        i->fn = sse_movnti;
        return 0;
    case 0xd7:
        if (pfx != SOFT_PFX_66 || i->mem)
            return -1;
        i->fn = sse_pmovmskb;
        return 0;
    case 0x50:
        if (pfx >= SOFT_PFX_F3 || i->mem)
            return -1;
        i->fn = sse_movmsk;
        return 0;
    case 0xc4:
        if (pfx != SOFT_PFX_66)
            return -1;
        i->fn = sse_pinsrw;
        return 0;
    case 0xc5:
        if (pfx != SOFT_PFX_66 || i->mem)
            return -1;
        i->fn = sse_pextrw;
        return 0;
    case 0xf7:
        if (pfx != SOFT_PFX_66 || i->mem)
            return -1;
        i->fn = sse_maskmov;
        return 0;
    case 0x71: case 0x72: case 0x73:
        if (pfx != SOFT_PFX_66 || i->mem)
            return -1;
        if (!(i->sub == 2 || i->sub == 6 || (i->sub == 4 && op != 0x73) ||
              (op == 0x73 && (i->sub == 3 || i->sub == 7))))
            return -1;
        i->fn = sse_shift_imm;
        return 0;
    case 0x2a:
        if (pfx < SOFT_PFX_F3)
            return -1; /* CVTPI2PS/PD are MMX forms */
        i->fn = sse_cvtsi2s;
        return 0;
    case 0x2c: case 0x2d:
        if (pfx < SOFT_PFX_F3)
            return -1;
        i->sub = pfx == SOFT_PFX_F3 ? MEM_4 : MEM_8;
        i->fn = sse_cvts2si;
        return 0;
    case 0x2e: case 0x2f:
        if (pfx >= SOFT_PFX_F3)
            return -1;
        i->sub = pfx == SOFT_PFX_66 ? MEM_8 : MEM_4;
        i->fn = sse_comis;
        return 0;
    case 0xae:
        if (pfx != SOFT_PFX_NONE || i->sub == 4 || (!i->mem && i->sub < 5) ||
            (i->mem && i->sub > 3 && i->sub != 7))
            return -1;
        i->fn = sse_group15;
        return 0;
    default:
        break;
    }
    /* Binary forms: pick the memory size of the source. */
    int memclass = MEM_A16;
    if (pfx == SOFT_PFX_F3 && op != 0x5b && op != 0x70 && op != 0xe6)
        memclass = MEM_4;
    else if (pfx == SOFT_PFX_F2 && op != 0x70 && op != 0xe6)
        memclass = MEM_8;
    if (KEY(op, pfx) == KEY(0x5a, 0) || KEY(op, pfx) == KEY(0xe6, 2))
        memclass = MEM_8;
    if (op >= 0x60 && op != 0x70 && pfx == SOFT_PFX_NONE && op != 0xc2 && op != 0xc6)
        return -1; /* MMX register forms: not in the CPU model */
    return set_bin(i, KEY(op, pfx), memclass);
}
