/* x86 decoder: bytes at a guest address -> struct soft_insn (handler + operands).
 * Handles 16/32/64-bit code, legacy prefixes, REX, ModRM/SIB/RIP-relative and the 0F, 0F38 and
 * 0F3A maps. Anything undefined or not implemented decodes to the #UD handler, so the guest sees
 * an invalid-opcode exception and the VMM never aborts. */
#include "accel/soft/decode.h"

#include "accel/soft/exec.h"
#include "accel/soft/fast.h"

#include <errno.h>

struct dstate {
    struct soft_cpu *cpu;
    uint64_t start;
    unsigned pos;
    int fault;        /* vector of a fetch fault, or 0 */
    const uint8_t *page;
    uint64_t page_addr;
    uint8_t rex, opsz_pfx, adsz_pfx;
};

/* Fetch one code byte. Fetches never raise: a fault ends decoding and is reported to the
 * caller, which raises it only if the instruction is actually reached. */
static uint8_t fetch8(struct dstate *d)
{
    if (d->pos >= 15) {
        d->fault = d->fault ? d->fault : -SOFT_EXC_GP;
        return 0;
    }
    uint64_t a = d->start + d->pos;
    if (d->fault)
        return 0;
    if (!d->page || (a & ~0xfffull) != d->page_addr) {
        struct soft_tlb_entry *te = &soft_tlb(d->cpu)[(a >> 12) & (SOFT_TLB_SIZE - 1)];
        struct soft_tlb_entry e = *te;
        if (e.tag_exec != (a & ~0xfffull)) {
            /* Not in the TLB for fetches: translate, and keep the result like data misses do
             * (the owner drops exec tags of pages whose code it must see again). */
            e = (struct soft_tlb_entry){~0ull, ~0ull, ~0ull, 0};
            int r = d->cpu->ops->tlb_fill(d->cpu, a, SOFT_ACC_EXEC, &e);
            if (r < 0 || r == 1 || e.tag_exec != (a & ~0xfffull)) {
                d->fault = r < 0 ? r : -SOFT_EXC_PF;
                return 0;
            }
            soft_tlb_install(d->cpu, te, &e);
        }
        d->page_addr = a & ~0xfffull;
        d->page = (const uint8_t *)(uintptr_t)(d->page_addr + e.addend);
        if (!d->cpu->fetch_host_page)
            d->cpu->fetch_host_page = (uintptr_t)d->page;
        else if (d->cpu->fetch_host_page != (uintptr_t)d->page)
            d->cpu->fetch_host_page2 = (uintptr_t)d->page;
    }
    d->pos++;
    return d->page[a & 0xfff];
}

static uint64_t fetch(struct dstate *d, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++)
        v |= (uint64_t)fetch8(d) << (8 * k);
    return v;
}

static uint64_t fetch_simm(struct dstate *d, unsigned n)
{
    return soft_sext(fetch(d, n), n);
}

/* Operand sizes. */
static unsigned osize(const struct soft_cpu *cpu, const struct dstate *d)
{
    if (cpu->mode == 64)
        return (d->rex & 8) ? 8 : d->opsz_pfx ? 2 : 4;
    if (cpu->mode == 32)
        return d->opsz_pfx ? 2 : 4;
    return d->opsz_pfx ? 4 : 2;
}

/* Stack operations and near branches default to 64-bit in long mode (66 gives 16). */
static unsigned osize64(const struct soft_cpu *cpu, const struct dstate *d)
{
    if (cpu->mode == 64)
        return d->opsz_pfx ? 2 : 8;
    return osize(cpu, d);
}

static unsigned byte_reg(const struct dstate *d, unsigned r)
{
    if (!d->rex && r >= 4 && r < 8)
        return SOFT_HIGH8 | (r - 4);
    return r;
}

/* Parse ModRM (and SIB/displacement). byteop: register operands name byte registers. */
static uint8_t decode_modrm(struct dstate *d, struct soft_insn *i, int byteop)
{
    uint8_t modrm = fetch8(d);
    unsigned mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
    i->sub = (uint8_t)reg;
    reg |= (d->rex & 4) << 1;
    i->reg = (uint8_t)(byteop ? byte_reg(d, reg) : reg);
    if (mod == 3) {
        unsigned r = rm | ((d->rex & 1) << 3);
        i->rm = (uint8_t)(byteop ? byte_reg(d, r) : r);
        i->mem = 0;
        return modrm;
    }
    i->mem = 1;
    i->base = SOFT_RZERO;
    i->index = SOFT_RZERO;
    i->scale = 0;
    uint8_t defseg = SOFT_DS;
    if (i->asz == 2) {
        static const uint8_t b16[8] = {SOFT_RBX, SOFT_RBX, SOFT_RBP, SOFT_RBP,
                                       SOFT_RSI, SOFT_RDI, SOFT_RBP, SOFT_RBX};
        static const uint8_t x16[8] = {SOFT_RSI, SOFT_RDI, SOFT_RSI, SOFT_RDI,
                                       SOFT_RZERO, SOFT_RZERO, SOFT_RZERO, SOFT_RZERO};
        if (mod == 0 && rm == 6) {
            i->disp = fetch(d, 2);
        } else {
            i->base = b16[rm];
            i->index = x16[rm];
            if (rm == 2 || rm == 3 || rm == 6)
                defseg = SOFT_SS;
            i->disp = mod == 1 ? fetch_simm(d, 1) : mod == 2 ? fetch_simm(d, 2) : 0;
        }
    } else {
        if (rm == 4) {
            uint8_t sib = fetch8(d);
            unsigned base = sib & 7, idx = ((sib >> 3) & 7) | ((d->rex & 2) << 2);
            i->scale = sib >> 6;
            if (idx != 4)
                i->index = (uint8_t)idx;
            if (base == 5 && mod == 0) {
                i->disp = fetch_simm(d, 4);
            } else {
                i->base = (uint8_t)(base | ((d->rex & 1) << 3));
                if (base == 4 || base == 5)
                    defseg = SOFT_SS;
            }
        } else if (rm == 5 && mod == 0) {
            i->disp = fetch_simm(d, 4);
            if (d->cpu->mode == 64)
                i->base = 0xff; /* RIP-relative: resolved once the length is known */
        } else {
            i->base = (uint8_t)(rm | ((d->rex & 1) << 3));
            if (rm == 5 || rm == 4)
                defseg = SOFT_SS;
        }
        if (mod == 1)
            i->disp = fetch_simm(d, 1);
        else if (mod == 2)
            i->disp = fetch_simm(d, 4);
    }
    if (i->seg == 0xff)
        i->seg = defseg;
    return modrm;
}

static void set_ud(struct soft_insn *i)
{
    i->fn = soft_exec_ud;
}

/* Two-byte map (0F xx) integer forms; SSE forms go to sse.c. Returns 1 if the block ends. */
static int decode_0f(struct soft_cpu *cpu, struct dstate *d, struct soft_insn *i, uint8_t b)
{
    unsigned osz = osize(cpu, d);
    i->op = (uint16_t)(SOFT_OP_0F | b);
    i->osz = (uint8_t)osz;
    switch (b) {
    case 0x05: i->fn = cpu->system ? soft_syscall_sys : soft_syscall; return 1;
    case 0x07: i->fn = soft_sysret; return 1;
    case 0x06: i->fn = soft_clts; return 0;
    case 0x08: case 0x09: i->fn = soft_cache_nop; return 0; /* INVD, WBINVD */
    case 0x00:
        decode_modrm(d, i, 0);
        switch (i->sub) {
        case 0: case 1: i->fn = soft_sldt_str; return 0;
        case 2: case 3: i->fn = soft_lldt_ltr; return 0;
        case 4: case 5: i->fn = soft_verr_verw; return 0;
        default: set_ud(i); return 1;
        }
    case 0x20: case 0x21: case 0x22: case 0x23: {
        /* MOV to/from CRn/DRn: the ModRM always names a register, whatever its mod field. */
        uint8_t m = fetch8(d);
        i->reg = (uint8_t)(((m >> 3) & 7) | ((d->rex & 4) << 1));
        i->rm = (uint8_t)((m & 7) | ((d->rex & 1) << 3));
        i->mem = 0;
        static const soft_exec_fn crdr[4] = {soft_mov_from_cr, soft_mov_from_dr, soft_mov_to_cr,
                                             soft_mov_to_dr};
        i->fn = crdr[b & 3];
        return b == 0x22;
    }
    case 0x30: i->fn = soft_wrmsr; return 1;
    case 0x32: i->fn = soft_rdmsr; return 0;
    case 0x0b: set_ud(i); return 1;
    case 0x0d: decode_modrm(d, i, 0); i->fn = soft_nop; return 0; /* PREFETCHW */
    case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f:
        decode_modrm(d, i, 0); /* hint NOPs, including ENDBR64 */
        i->fn = soft_nop;
        return 0;
    case 0x01: {
        uint8_t m = decode_modrm(d, i, 0);
        if (m == 0xf9) { /* RDTSCP */
            i->fn = soft_rdtscp;
            return 0;
        }
        if (m == 0xf8) {
            i->fn = soft_swapgs;
            return 0;
        }
        if (!i->mem) {
            /* Register forms: SMSW/LMSW; MONITOR, XGETBV, CLAC/STAC... are not advertised. */
            if (i->sub == 4) {
                i->fn = soft_smsw;
                return 0;
            }
            if (i->sub == 6) {
                i->fn = soft_lmsw;
                return 1;
            }
            set_ud(i);
            return 1;
        }
        switch (i->sub) {
        case 0: case 1: i->fn = soft_sgdt_sidt; return 0;
        case 2: case 3: i->fn = soft_lgdt_lidt; return 0;
        case 4: i->fn = soft_smsw; return 0;
        case 6: i->fn = soft_lmsw; return 1;
        case 7: i->fn = soft_invlpg; return 1;
        default: set_ud(i); return 1;
        }
    }
    case 0x31: i->fn = soft_rdtsc; return 0;
    case 0xa2: i->fn = soft_cpuid_insn; return 0;
    case 0x40 ... 0x4f:
        decode_modrm(d, i, 0);
        i->sub = b & 15;
        i->fn = soft_cmov;
        return 0;
    case 0x80 ... 0x8f: {
        int64_t rel = (int64_t)(osz == 2 && cpu->mode != 64 ? fetch_simm(d, 2) : fetch_simm(d, 4));
        i->sub = b & 15;
        i->imm = (uint64_t)rel; /* made absolute by the caller */
        i->fn = soft_jcc;
        return 1;
    }
    case 0x90 ... 0x9f:
        decode_modrm(d, i, 1);
        i->sub = b & 15;
        i->osz = 1;
        i->fn = soft_setcc;
        return 0;
    case 0xa3: case 0xab: case 0xb3: case 0xbb:
        decode_modrm(d, i, 0);
        i->sub = (uint8_t)((b >> 3) & 3); /* 0 BT, 1 BTS, 2 BTR, 3 BTC */
        i->fn = soft_bt_rm_reg;
        return 0;
    case 0xba:
        decode_modrm(d, i, 0);
        i->imm = fetch(d, 1);
        if (i->sub < 4) {
            set_ud(i);
            return 1;
        }
        i->sub -= 4;
        i->fn = soft_bt_rm_imm;
        return 0;
    case 0xa4: case 0xac:
        decode_modrm(d, i, 0);
        i->imm = fetch(d, 1);
        i->fn = soft_shxd;
        return 0;
    case 0xa5: case 0xad:
        decode_modrm(d, i, 0);
        i->fn = soft_shxd;
        return 0;
    case 0xaf:
        decode_modrm(d, i, 0);
        i->fn = soft_imul_reg_rm;
        return 0;
    case 0xb0: case 0xb1:
        decode_modrm(d, i, b == 0xb0);
        if (b == 0xb0)
            i->osz = 1;
        i->fn = soft_cmpxchg;
        return 0;
    case 0xc0: case 0xc1:
        decode_modrm(d, i, b == 0xc0);
        if (b == 0xc0)
            i->osz = 1;
        i->fn = soft_xadd;
        return 0;
    case 0xb6: case 0xb7: case 0xbe: case 0xbf:
        decode_modrm(d, i, 0);
        i->sub = (b & 1) ? 2 : 1; /* source size */
        if (!(b & 1) && !i->mem)
            i->rm = (uint8_t)byte_reg(d, i->rm);
        i->fn = b < 0xb8 ? soft_movzx : soft_movsx;
        return 0;
    case 0xb8:
        decode_modrm(d, i, 0);
        if (i->pfx != SOFT_PFX_F3 || !cpu->model.popcnt) {
            set_ud(i);
            return 1;
        }
        i->fn = soft_popcnt;
        return 0;
    case 0xbc: case 0xbd:
        decode_modrm(d, i, 0);
        if (i->pfx == SOFT_PFX_F3 && b == 0xbc && cpu->model.bmi1)
            i->fn = soft_tzcnt;
        else if (i->pfx == SOFT_PFX_F3 && b == 0xbd && cpu->model.lzcnt)
            i->fn = soft_lzcnt;
        else
            i->fn = b == 0xbc ? soft_bsf : soft_bsr;
        return 0;
    case 0xc7: {
        decode_modrm(d, i, 0);
        if (i->sub == 1 && i->mem && (i->osz != 8 || cpu->model.cx16)) {
            i->fn = soft_cmpxchg8b16b;
            return 0;
        }
        set_ud(i);
        return 1;
    }
    case 0xc8 ... 0xcf:
        i->reg = (uint8_t)((b & 7) | ((d->rex & 1) << 3));
        i->fn = soft_bswap;
        return 0;
    case 0x38: {
        uint8_t b3 = fetch8(d);
        i->op = (uint16_t)(SOFT_OP_0F38 | b3);
        if ((b3 == 0xf0 || b3 == 0xf1) && cpu->model.movbe && i->pfx != SOFT_PFX_F2) {
            decode_modrm(d, i, 0);
            i->fn = soft_movbe;
            return !i->mem;
        }
        decode_modrm(d, i, 0);
        if (soft_sse_select(cpu, i) < 0) {
            set_ud(i);
            return 1;
        }
        return 0;
    }
    case 0x3a: {
        uint8_t b3 = fetch8(d);
        i->op = (uint16_t)(SOFT_OP_0F3A | b3);
        decode_modrm(d, i, 0);
        i->imm = fetch(d, 1);
        if (soft_sse_select(cpu, i) < 0) {
            set_ud(i);
            return 1;
        }
        return 0;
    }
    case 0x10 ... 0x17: case 0x28 ... 0x2f: case 0x50 ... 0x7f: case 0xae: case 0xc2:
    case 0xc3: case 0xc4: case 0xc5: case 0xc6: case 0xd0 ... 0xff:
        decode_modrm(d, i, 0);
        if (soft_sse_has_imm8(b))
            i->imm = fetch(d, 1);
        if (soft_sse_select(cpu, i) < 0) {
            set_ud(i);
            return 1;
        }
        return 0;
    default:
        set_ud(i);
        return 1;
    }
}

/* One-byte map. Returns 1 if the instruction ends a decoded block. */
static int decode_1(struct soft_cpu *cpu, struct dstate *d, struct soft_insn *i, uint8_t b)
{
    unsigned osz = osize(cpu, d);
    i->op = b;
    i->osz = (uint8_t)osz;
    if (b < 0x40 && (b & 7) < 6) {
        switch (b & 7) {
        case 0: decode_modrm(d, i, 1); i->osz = 1; i->fn = soft_alu_rm_reg; break;
        case 1: decode_modrm(d, i, 0); i->fn = soft_alu_rm_reg; break;
        case 2: decode_modrm(d, i, 1); i->osz = 1; i->fn = soft_alu_reg_rm; break;
        case 3: decode_modrm(d, i, 0); i->fn = soft_alu_reg_rm; break;
        case 4:
            i->osz = 1; i->mem = 0; i->rm = SOFT_RAX; i->sub = b >> 3;
            i->imm = fetch(d, 1);
            i->fn = soft_alu_rm_imm;
            break;
        default:
            i->mem = 0; i->rm = SOFT_RAX; i->sub = b >> 3;
            i->imm = soft_sext(fetch(d, osz == 2 ? 2 : 4), osz == 2 ? 2 : 4);
            i->fn = soft_alu_rm_imm;
            break;
        }
        i->sub = b >> 3; /* after the ModRM, which sets sub to its reg field */
        return 0;
    }
    switch (b) {
    case 0x40 ... 0x4f: /* 32/16-bit only; in 64-bit mode these are REX and never get here */
        i->mem = 0;
        i->rm = b & 7;
        i->sub = (b >> 3) & 1;
        i->fn = soft_incdec_rm;
        return 0;
    case 0x50 ... 0x57:
        i->reg = (uint8_t)((b & 7) | ((d->rex & 1) << 3));
        i->osz = (uint8_t)osize64(cpu, d);
        i->fn = soft_push_reg;
        return 0;
    case 0x58 ... 0x5f:
        i->reg = (uint8_t)((b & 7) | ((d->rex & 1) << 3));
        i->osz = (uint8_t)osize64(cpu, d);
        i->fn = soft_pop_reg;
        return 0;
    /* 32/16-bit code only: #UD in 64-bit mode (62 is the EVEX prefix there, and in 32/16-bit
     * code with a register operand; AVX-512 is not in the CPU model, so that is #UD too). */
    case 0x27: case 0x2f:
        if (cpu->mode == 64)
            break;
        i->fn = soft_daa_das;
        return 0;
    case 0x37: case 0x3f:
        if (cpu->mode == 64)
            break;
        i->fn = soft_aaa_aas;
        return 0;
    case 0xd4: case 0xd5:
        if (cpu->mode == 64)
            break;
        i->imm = fetch(d, 1);
        i->fn = soft_aam_aad;
        return 0;
    case 0x60: case 0x61:
        if (cpu->mode == 64)
            break;
        i->fn = b == 0x60 ? soft_pusha : soft_popa;
        return 0;
    case 0x62:
        if (cpu->mode == 64)
            break;
        decode_modrm(d, i, 0);
        if (!i->mem)
            break;
        i->fn = soft_bound;
        return 0;
    case 0x63:
        if (cpu->mode != 64)
            break;
        decode_modrm(d, i, 0);
        i->sub = 4;
        i->fn = soft_movsx; /* MOVSXD */
        return 0;
    case 0x68: case 0x6a:
        i->osz = (uint8_t)osize64(cpu, d);
        i->imm = b == 0x6a ? fetch_simm(d, 1) : fetch_simm(d, i->osz == 2 ? 2 : 4);
        i->fn = soft_push_imm;
        return 0;
    case 0x69: case 0x6b:
        decode_modrm(d, i, 0);
        i->imm = b == 0x6b ? fetch_simm(d, 1) : fetch_simm(d, osz == 2 ? 2 : 4);
        i->fn = soft_imul_reg_rm_imm;
        return 0;
    case 0x70 ... 0x7f:
        i->sub = b & 15;
        i->imm = fetch_simm(d, 1);
        i->fn = soft_jcc;
        return 1;
    case 0x80: case 0x81: case 0x82: case 0x83:
        if (b == 0x82 && cpu->mode == 64)
            break;
        decode_modrm(d, i, b != 0x81 && b != 0x83);
        if (b == 0x80 || b == 0x82) {
            i->osz = 1;
            i->imm = fetch(d, 1);
        } else if (b == 0x81) {
            i->imm = soft_sext(fetch(d, osz == 2 ? 2 : 4), osz == 2 ? 2 : 4);
        } else {
            i->imm = fetch_simm(d, 1);
        }
        i->fn = soft_alu_rm_imm;
        return 0;
    case 0x84: case 0x85:
        decode_modrm(d, i, b == 0x84);
        if (b == 0x84)
            i->osz = 1;
        i->fn = soft_test_rm_reg;
        return 0;
    case 0x86: case 0x87:
        decode_modrm(d, i, b == 0x86);
        if (b == 0x86)
            i->osz = 1;
        i->fn = soft_xchg_rm_reg;
        return 0;
    case 0x88: case 0x89:
        decode_modrm(d, i, b == 0x88);
        if (b == 0x88)
            i->osz = 1;
        i->fn = soft_mov_rm_reg;
        return 0;
    case 0x8a: case 0x8b:
        decode_modrm(d, i, b == 0x8a);
        if (b == 0x8a)
            i->osz = 1;
        i->fn = soft_mov_reg_rm;
        return 0;
    case 0x8c:
        decode_modrm(d, i, 0);
        if (i->sub >= SOFT_NSEGS)
            break;
        i->fn = soft_mov_rm_sreg;
        return 0;
    case 0x8d:
        decode_modrm(d, i, 0);
        if (!i->mem)
            break;
        i->fn = soft_lea;
        return 0;
    case 0x8f:
        i->osz = (uint8_t)osize64(cpu, d);
        decode_modrm(d, i, 0);
        if (i->sub != 0)
            break;
        i->fn = soft_pop_rm;
        return 0;
    case 0x90:
        if (!(d->rex & 1)) {
            i->fn = i->rep == 2 ? soft_pause : soft_nop; /* F3 90: PAUSE */
            return 0;
        }
        __attribute__((fallthrough)); /* XCHG r8, rAX */
    case 0x91 ... 0x97:
        i->mem = 0;
        i->rm = (uint8_t)((b & 7) | ((d->rex & 1) << 3));
        i->reg = SOFT_RAX;
        i->fn = soft_xchg_rm_reg;
        return 0;
    case 0x98: i->fn = soft_cbw; return 0;
    case 0x99: i->fn = soft_cwd; return 0;
    case 0x9b: i->fn = soft_fwait; return 0;
    case 0x9c: i->osz = (uint8_t)osize64(cpu, d); i->fn = soft_pushf; return 0;
    case 0x9d: i->osz = (uint8_t)osize64(cpu, d); i->fn = soft_popf; return 0;
    case 0x9e: i->fn = soft_sahf; return 0;
    case 0x9f: i->fn = soft_lahf; return 0;
    case 0xa0 ... 0xa3:
        i->disp = fetch(d, i->asz);
        i->mem = 1;
        i->base = SOFT_RZERO;
        i->index = SOFT_RZERO;
        i->scale = 0;
        if (i->seg == 0xff)
            i->seg = SOFT_DS;
        if (!(b & 1))
            i->osz = 1;
        i->fn = b < 0xa2 ? soft_mov_moffs_load : soft_mov_moffs_store;
        return 0;
    case 0xa4 ... 0xa7: case 0xaa ... 0xaf:
        if (!(b & 1))
            i->osz = 1;
        if (i->seg == 0xff)
            i->seg = SOFT_DS;
        switch (b & ~1) {
        case 0xa4: i->fn = soft_movs; break;
        case 0xa6: i->fn = soft_cmps; break;
        case 0xaa: i->fn = soft_stos; break;
        case 0xac: i->fn = soft_lods; break;
        default: i->fn = soft_scas; break;
        }
        return 0;
    case 0xa8: case 0xa9:
        i->mem = 0;
        i->rm = SOFT_RAX;
        if (b == 0xa8) {
            i->osz = 1;
            i->imm = fetch(d, 1);
        } else {
            i->imm = soft_sext(fetch(d, osz == 2 ? 2 : 4), osz == 2 ? 2 : 4);
        }
        i->fn = soft_test_rm_imm;
        return 0;
    case 0xb0 ... 0xb7:
        i->osz = 1;
        i->reg = (uint8_t)byte_reg(d, (b & 7) | ((d->rex & 1) << 3));
        i->imm = fetch(d, 1);
        i->fn = soft_mov_reg_imm;
        return 0;
    case 0xb8 ... 0xbf:
        i->reg = (uint8_t)((b & 7) | ((d->rex & 1) << 3));
        i->imm = fetch(d, osz);
        i->fn = soft_mov_reg_imm;
        return 0;
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        decode_modrm(d, i, !(b & 1));
        if (!(b & 1))
            i->osz = 1;
        if (b < 0xd0)
            i->imm = fetch(d, 1);
        else
            i->imm = 1;
        i->fn = b >= 0xd2 ? soft_shift_rm_cl : soft_shift_rm_imm;
        return 0;
    case 0xc2: case 0xc3:
        i->osz = (uint8_t)osize64(cpu, d);
        i->imm = b == 0xc2 ? fetch(d, 2) : 0;
        i->fn = soft_ret;
        return 1;
    case 0xc6: case 0xc7:
        decode_modrm(d, i, b == 0xc6);
        if (i->sub != 0)
            break;
        if (b == 0xc6) {
            i->osz = 1;
            i->imm = fetch(d, 1);
        } else {
            i->imm = soft_sext(fetch(d, osz == 2 ? 2 : 4), osz == 2 ? 2 : 4);
        }
        i->fn = soft_mov_rm_imm;
        return 0;
    case 0xc8:
        i->osz = (uint8_t)osize64(cpu, d);
        i->imm = fetch(d, 2);
        i->imm2 = (uint16_t)fetch(d, 1);
        i->fn = soft_enter;
        return 0;
    case 0xc9:
        i->osz = (uint8_t)osize64(cpu, d);
        i->fn = soft_leave;
        return 0;
    case 0xcc: i->fn = cpu->system ? soft_int_sys : soft_int3; return 1;
    case 0xcd: i->imm = fetch(d, 1); i->fn = cpu->system ? soft_int_sys : soft_int_n; return 1;
    case 0xce:
        if (cpu->mode == 64 || !cpu->system)
            break;
        i->fn = soft_int_sys;
        return 1;
    case 0xcf: i->fn = soft_iret; return 1;
    case 0xca: case 0xcb:
        i->imm = b == 0xca ? fetch(d, 2) : 0;
        i->fn = soft_retf;
        return 1;
    case 0x9a: case 0xea:
        if (cpu->mode == 64)
            break;
        i->imm = fetch(d, osz);
        i->imm2 = (uint16_t)fetch(d, 2);
        i->fn = soft_far_direct;
        return 1;
    case 0x8e:
        decode_modrm(d, i, 0);
        if (i->sub == SOFT_CS || i->sub >= SOFT_NSEGS)
            break;
        i->fn = soft_mov_sreg_rm;
        return 1;
    case 0xd7:
        if (i->seg == 0xff)
            i->seg = SOFT_DS;
        i->fn = soft_xlat;
        return 0;
    case 0xd8 ... 0xdf: {
        uint8_t m = decode_modrm(d, i, 0);
        i->op = b;
        if (soft_x87_select(i, m) < 0) {
            set_ud(i);
            return 1;
        }
        return 0;
    }
    case 0xe0: case 0xe1: case 0xe2:
        i->sub = b & 3;
        i->imm = fetch_simm(d, 1);
        i->fn = soft_loop;
        return 1;
    case 0xe3:
        i->imm = fetch_simm(d, 1);
        i->fn = soft_jrcxz;
        return 1;
    case 0xe4 ... 0xe7: case 0xec ... 0xef:
        if (b <= 0xe7)
            i->imm = fetch(d, 1);
        i->fn = soft_port_io;
        return 1;
    case 0x6c ... 0x6f:
        i->fn = soft_gp; /* INS/OUTS are not implemented yet */
        return 1;
    case 0xe8:
        i->osz = (uint8_t)osize64(cpu, d);
        i->imm = fetch_simm(d, i->osz == 2 ? 2 : 4);
        i->fn = soft_call_rel;
        return 1;
    case 0xe9: case 0xeb:
        i->osz = (uint8_t)osize64(cpu, d);
        i->imm = b == 0xeb ? fetch_simm(d, 1) : fetch_simm(d, i->osz == 2 ? 2 : 4);
        i->fn = soft_jmp_rel;
        return 1;
    case 0xf4: i->fn = soft_hlt; return 1;
    case 0xf5: case 0xf8: case 0xf9: case 0xfc: case 0xfd:
        i->fn = soft_flagop;
        return 0;
    case 0xfa: case 0xfb: i->fn = soft_cli_sti; return 1;
    case 0xf6: case 0xf7:
        decode_modrm(d, i, b == 0xf6);
        if (b == 0xf6)
            i->osz = 1;
        switch (i->sub) {
        case 0: case 1:
            i->imm = b == 0xf6 ? fetch(d, 1) : soft_sext(fetch(d, osz == 2 ? 2 : 4),
                                                         osz == 2 ? 2 : 4);
            i->fn = soft_test_rm_imm;
            break;
        case 2: i->fn = soft_not_rm; break;
        case 3: i->fn = soft_neg_rm; break;
        case 4: i->fn = soft_mul_rm; break;
        case 5: i->fn = soft_imul1_rm; break;
        case 6: i->fn = soft_div_rm; break;
        default: i->fn = soft_idiv_rm; break;
        }
        return 0;
    case 0xfe:
        decode_modrm(d, i, 1);
        i->osz = 1;
        if (i->sub > 1)
            break;
        i->fn = soft_incdec_rm;
        return 0;
    case 0xff:
        decode_modrm(d, i, 0);
        switch (i->sub) {
        case 0: case 1: i->fn = soft_incdec_rm; return 0;
        case 2: i->osz = (uint8_t)(cpu->mode == 64 ? 8 : osz); i->fn = soft_call_rm; return 1;
        case 4: i->osz = (uint8_t)(cpu->mode == 64 ? 8 : osz); i->fn = soft_jmp_rm; return 1;
        case 3: case 5:
            if (!i->mem)
                break;
            i->fn = soft_far_indirect;
            return 1;
        case 6: i->osz = (uint8_t)osize64(cpu, d); i->fn = soft_push_rm; return 0;
        default: break;
        }
        break;
    default:
        break;
    }
    set_ud(i);
    return 1;
}

static int decode_at(struct soft_cpu *cpu, uint64_t rip, struct soft_insn *i, unsigned depth)
{
    /* Bytes come from CS.base + RIP (the base is 0 in long mode); RIP stays an offset. */
    struct dstate d = {.cpu = cpu,
                       .start = rip + (cpu->mode == 64 ? 0 : cpu->seg[SOFT_CS].base)};
    memset(i, 0, sizeof(*i));
    i->seg = 0xff;
    i->base = i->index = SOFT_RZERO;
    uint8_t b;
    unsigned last_rep = 0;

    for (;;) {
        b = fetch8(&d);
        if (d.fault)
            return d.fault;
        switch (b) {
        case 0x66: d.opsz_pfx = 1; d.rex = 0; continue;
        case 0x67: d.adsz_pfx = 1; d.rex = 0; continue;
        case 0xf0: i->lock = 1; d.rex = 0; continue;
        case 0xf2: case 0xf3: last_rep = b; d.rex = 0; continue;
        case 0x26: case 0x2e: case 0x36: case 0x3e:
            if (cpu->mode != 64)
                i->seg = (uint8_t)((b >> 3) & 3);
            d.rex = 0;
            continue;
        case 0x64: i->seg = SOFT_FS; d.rex = 0; continue;
        case 0x65: i->seg = SOFT_GS; d.rex = 0; continue;
        default: break;
        }
        if (cpu->mode == 64 && (b & 0xf0) == 0x40) {
            d.rex = b;
            /* A REX prefix counts only directly before the opcode. */
            uint8_t nb = fetch8(&d);
            if (d.fault)
                return d.fault;
            if ((nb & 0xf0) == 0x40 || nb == 0x66 || nb == 0x67 || nb == 0xf0 || nb == 0xf2 ||
                nb == 0xf3 || nb == 0x26 || nb == 0x2e || nb == 0x36 || nb == 0x3e ||
                nb == 0x64 || nb == 0x65) {
                d.pos--;
                d.rex = 0;
                continue;
            }
            b = nb;
        }
        break;
    }
    i->rex = d.rex;
    i->rep = last_rep == 0xf3 ? 2 : last_rep == 0xf2 ? 3 : 0;
    i->pfx = last_rep == 0xf3 ? SOFT_PFX_F3 : last_rep == 0xf2 ? SOFT_PFX_F2
             : d.opsz_pfx ? SOFT_PFX_66 : SOFT_PFX_NONE;
    if (cpu->mode == 64)
        i->asz = d.adsz_pfx ? 4 : 8;
    else if (cpu->mode == 32)
        i->asz = d.adsz_pfx ? 2 : 4;
    else
        i->asz = d.adsz_pfx ? 4 : 2;

    int ends;
    if (b == 0x0f) {
        uint8_t b2 = fetch8(&d);
        ends = d.fault ? 1 : decode_0f(cpu, &d, i, b2);
    } else {
        ends = decode_1(cpu, &d, i, b);
    }
    if (d.fault)
        return d.fault;
    if (i->seg == 0xff)
        i->seg = SOFT_DS;
    /* In 64-bit mode only FS and GS have a base; the others read as flat. */
    if (cpu->mode == 64 && i->seg != SOFT_FS && i->seg != SOFT_GS)
        i->seg = SOFT_DS;
    i->len = (uint8_t)d.pos;
    i->next_rip = rip + d.pos;
    if (cpu->mode != 64)
        i->next_rip = cpu->mode == 32 ? (uint32_t)i->next_rip : (uint16_t)i->next_rip;
    if (i->mem && i->base == 0xff) {
        i->base = SOFT_RZERO;
        i->disp += i->next_rip;
    }
    /* Relative branches: make the target absolute now that the length is known. */
    if (i->fn == soft_jcc || i->fn == soft_jmp_rel || i->fn == soft_call_rel ||
        i->fn == soft_loop || i->fn == soft_jrcxz) {
        uint64_t t = i->next_rip + i->imm;
        if (cpu->mode != 64 || i->osz == 2)
            t = (cpu->mode == 16 || i->osz == 2) ? (uint16_t)t : (uint32_t)t;
        i->imm = t;
    }
    /* LOCK is only valid on read-modify-write forms with a memory destination. */
    if (i->lock && (!i->mem || !(i->fn == soft_alu_rm_reg || i->fn == soft_alu_rm_imm ||
                                 i->fn == soft_incdec_rm || i->fn == soft_not_rm ||
                                 i->fn == soft_neg_rm || i->fn == soft_xchg_rm_reg ||
                                 i->fn == soft_xadd || i->fn == soft_cmpxchg ||
                                 i->fn == soft_cmpxchg8b16b || i->fn == soft_bt_rm_reg ||
                                 i->fn == soft_bt_rm_imm))) {
        i->fn = soft_exec_ud;
        ends = 1;
    }
    if (i->fn == soft_exec_ud || i->fn == soft_gp)
        ends = 1;
    /* A direct JMP within the page does not end the block: its entry holds the instruction at
     * the target instead, and decoding goes on after that one. The jump itself has no effect
     * but on RIP, which no handler reads (a fault recomputes it from the entry's own address),
     * so the block behaves as if the target's code had been laid out after the jump. Loops
     * whose back edge is a JMP then run as one block per iteration. A chain of JMPs is
     * followed a few steps only (JMP $ must end). */
    if (i->fn == soft_jmp_rel && cpu->mode == 64 && depth < 4 &&
        (i->imm & ~0xfffull) == (rip & ~0xfffull)) {
        struct soft_insn t;
        int r = decode_at(cpu, i->imm, &t, depth + 1);
        if (r >= 0) {
            *i = t;
            return r;
        }
    }
    soft_specialize(cpu, i);
    return ends;
}

int soft_decode(struct soft_cpu *cpu, uint64_t rip, struct soft_insn *i)
{
    return decode_at(cpu, rip, i, 0);
}
