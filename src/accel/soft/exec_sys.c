/* System instructions of the software CPU: control and debug registers, descriptor tables,
 * MSRs, CLI/STI, port I/O exits, SYSCALL/SYSRET/SWAPGS in system mode, and the segment loads and
 * far transfers (MOV Sreg, far JMP/CALL/RET, IRET) with the protected-mode checks that matter.
 * Handlers that change the mode, the CPL or the address space end their block and return to the
 * run loop (chain_budget = 1), whose block key and interrupt check then see the new state. */
#include "accel/soft/exec.h"

#include "accel/soft/cache.h"
#include "accel/soft/excp.h"
#include "accel/soft/mmu.h"

#include <errno.h>

#define CR0_MP (1ull << 1)
#define CR0_EM (1ull << 2)
#define CR0_TS (1ull << 3)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_NW (1ull << 29)
#define CR0_CD (1ull << 30)
/* CR4 bits the CPU model implements: VME/PVI absent; TSD DE PSE PAE MCE PGE PCE OSFXSR
 * OSXMMEXCPT. */
#define CR4_KNOWN 0x7fcull
#define EFER_SCE 1ull

#define ATTR_S      0x0010u
#define ATTR_CODE   0x0008u
#define ATTR_CONF   0x0004u
#define ATTR_RW     0x0002u /* data: writable; code: readable */
#define ATTR_P      0x0080u
#define ATTR_L      0x2000u
#define ATTR_DB     0x4000u

#define MSR_TSC            0x10
#define MSR_TSC_ADJUST     0x3b
#define MSR_APIC_BASE      0x1b
#define MSR_UCODE_REV      0x8b
#define MSR_MTRRCAP        0xfe
#define MSR_MISC_ENABLE    0x1a0
#define MSR_PAT            0x277
#define MSR_MTRR_DEF       0x2ff
#define MSR_EFER           0xc0000080u
#define MSR_STAR           0xc0000081u
#define MSR_LSTAR          0xc0000082u
#define MSR_CSTAR          0xc0000083u
#define MSR_FMASK          0xc0000084u
#define MSR_FS_BASE        0xc0000100u
#define MSR_GS_BASE        0xc0000101u
#define MSR_KERNEL_GS_BASE 0xc0000102u
#define MSR_TSC_AUX        0xc0000103u

static void need_cpl0(struct soft_cpu *cpu)
{
    if (cpu->cpl != 0)
        soft_raise(cpu, SOFT_EXC_GP, 0);
}

static void check(struct soft_cpu *cpu, int r)
{
    if (r < 0)
        soft_raise(cpu, -r, cpu->exc_error);
}

static bool canonical(uint64_t a)
{
    return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

/* Leave the block chain: the next block is looked up under the new mode/CPL key, and pending
 * interrupts are looked at. */
static void state_changed(struct soft_cpu *cpu)
{
    cpu->mode = soft_cs_mode(cpu, &cpu->seg[SOFT_CS]);
    cpu->chain_budget = 1;
}

static void set_cpl(struct soft_cpu *cpu, unsigned cpl)
{
    cpu->cpl = (uint8_t)cpl; /* the other privilege has its own TLB bank (soft_tlb()) */
}

static unsigned iopl(const struct soft_cpu *cpu)
{
    return (cpu->rflags >> 12) & 3;
}

/* --- control and debug registers ---------------------------------------------------------- */

static void write_cr0(struct soft_cpu *cpu, uint64_t v)
{
    v |= CR0_ET;
    if ((v >> 32) || ((v & SOFT_CR0_PG) && !(v & SOFT_CR0_PE)) || ((v & CR0_NW) && !(v & CR0_CD)))
        soft_raise(cpu, SOFT_EXC_GP, 0);
    uint64_t efer = cpu->efer;
    if ((v & SOFT_CR0_PG) && !(cpu->cr0 & SOFT_CR0_PG) && (efer & SOFT_EFER_LME)) {
        if (!(cpu->cr4 & SOFT_CR4_PAE))
            soft_raise(cpu, SOFT_EXC_GP, 0);
        efer |= SOFT_EFER_LMA;
    }
    if (!(v & SOFT_CR0_PG) && (cpu->cr0 & SOFT_CR0_PG)) {
        if (cpu->mode == 64)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        efer &= ~SOFT_EFER_LMA;
    }
    if ((v ^ cpu->cr0) & (SOFT_CR0_PG | SOFT_CR0_PE | SOFT_CR0_WP))
        soft_tlb_flush(cpu);
    if ((v ^ cpu->cr0) & SOFT_CR0_PG)
        soft_cache_flush(cpu); /* blocks are keyed by the address before translation */
    cpu->cr0 = v;
    cpu->efer = efer;
}

static void write_cr4(struct soft_cpu *cpu, uint64_t v)
{
    if ((v & ~CR4_KNOWN) || ((cpu->efer & SOFT_EFER_LMA) && !(v & SOFT_CR4_PAE)))
        soft_raise(cpu, SOFT_EXC_GP, 0);
    if ((v ^ cpu->cr4) & (SOFT_CR4_PAE | SOFT_CR4_PGE | SOFT_CR4_PSE))
        soft_tlb_flush(cpu);
    cpu->cr4 = v;
}

SOFT_HANDLER(soft_mov_from_cr)
{
    need_cpl0(cpu);
    uint64_t v;
    switch (i->reg) {
    case 0: v = cpu->cr0; break;
    case 2: v = cpu->cr2; break;
    case 3: v = cpu->cr3; break;
    case 4: v = cpu->cr4; break;
    case 8: v = cpu->cr8; break;
    default: soft_raise(cpu, SOFT_EXC_UD, 0);
    }
    soft_set(cpu, i->rm, cpu->mode == 64 ? 8 : 4, v);
}

SOFT_HANDLER(soft_mov_to_cr)
{
    need_cpl0(cpu);
    uint64_t v = soft_get(cpu, i->rm, cpu->mode == 64 ? 8 : 4);
    switch (i->reg) {
    case 0: write_cr0(cpu, v); break;
    case 2: cpu->cr2 = v; break;
    case 3:
        cpu->cr3 = v;
        /* Decoded blocks stay: each is checked against the new translation of its address
         * before it runs (soft_block_mapped), so code shared between address spaces, such as
         * the same program's pages in two processes, is decoded once. */
        soft_tlb_flush_nonglobal(cpu);
        break;
    case 4: write_cr4(cpu, v); break;
    case 8:
        if (v > 15)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        cpu->cr8 = v;
        /* The LAPIC's TPR follows at the next return to the vCPU loop, which then looks again
         * for interrupts that a lower priority lets through: make that return come now. */
        __atomic_or_fetch(&cpu->intr_request, SOFT_INTR_KICK, __ATOMIC_RELEASE);
        break;
    default: soft_raise(cpu, SOFT_EXC_UD, 0);
    }
    state_changed(cpu);
}

static unsigned dr_index(struct soft_cpu *cpu, unsigned n)
{
    if (n > 7)
        soft_raise(cpu, SOFT_EXC_UD, 0);
    return n == 4 ? 6 : n == 5 ? 7 : n; /* DR4/DR5 alias DR6/DR7 without CR4.DE */
}

SOFT_HANDLER(soft_mov_from_dr)
{
    need_cpl0(cpu);
    unsigned n = dr_index(cpu, i->reg);
    uint64_t v = cpu->dr[n];
    if (n == 6)
        v |= 0xffff0ff0;
    else if (n == 7)
        v |= 0x400;
    soft_set(cpu, i->rm, cpu->mode == 64 ? 8 : 4, v);
}

SOFT_HANDLER(soft_mov_to_dr)
{
    need_cpl0(cpu);
    unsigned n = dr_index(cpu, i->reg);
    cpu->dr[n] = soft_get(cpu, i->rm, cpu->mode == 64 ? 8 : 4);
}

SOFT_HANDLER(soft_clts)
{
    need_cpl0(cpu);
    cpu->cr0 &= ~CR0_TS;
}

SOFT_HANDLER(soft_smsw)
{
    if (i->mem)
        soft_st(cpu, soft_ea(cpu, i, 2), 2, cpu->cr0 & 0xffff);
    else
        soft_set(cpu, i->rm, i->osz, cpu->cr0);
}

SOFT_HANDLER(soft_lmsw)
{
    need_cpl0(cpu);
    uint64_t v = soft_rm_get(cpu, i, 2);
    /* LMSW sets PE but never clears it, and touches only PE/MP/EM/TS. */
    uint64_t cr0 = (cpu->cr0 & ~(CR0_MP | CR0_EM | CR0_TS)) | (v & 0xe) | (cpu->cr0 & 1) | (v & 1);
    write_cr0(cpu, cr0);
    state_changed(cpu);
}

SOFT_HANDLER(soft_invlpg)
{
    need_cpl0(cpu);
    soft_tlb_flush_page(cpu, soft_ea(cpu, i, 1));
}

SOFT_HANDLER(soft_cache_nop)
{
    need_cpl0(cpu); /* WBINVD, INVD: caches are the host's */
}

/* --- descriptor tables -------------------------------------------------------------------- */

SOFT_HANDLER(soft_sgdt_sidt)
{
    const struct soft_dtable *t = i->sub == 0 ? &cpu->gdtr : &cpu->idtr;
    uint64_t ea = soft_ea(cpu, i, cpu->mode == 64 ? 10 : 6);
    soft_st(cpu, ea, 2, t->limit);
    soft_st(cpu, ea + 2, cpu->mode == 64 ? 8 : 4, t->base);
}

SOFT_HANDLER(soft_lgdt_lidt)
{
    need_cpl0(cpu);
    uint64_t ea = soft_ea(cpu, i, cpu->mode == 64 ? 10 : 6);
    uint16_t limit = (uint16_t)soft_ld(cpu, ea, 2);
    uint64_t base = soft_ld(cpu, ea + 2, cpu->mode == 64 ? 8 : 4);
    if (cpu->mode != 64 && i->osz == 2)
        base &= 0xffffff;
    if (cpu->mode == 64 && !canonical(base))
        soft_raise(cpu, SOFT_EXC_GP, 0);
    struct soft_dtable *t = i->sub == 2 ? &cpu->gdtr : &cpu->idtr;
    t->base = base;
    t->limit = limit;
}

SOFT_HANDLER(soft_sldt_str)
{
    if (!(cpu->cr0 & SOFT_CR0_PE))
        soft_raise(cpu, SOFT_EXC_UD, 0);
    uint16_t v = i->sub == 0 ? cpu->ldtr.selector : cpu->tr.selector;
    if (i->mem)
        soft_st(cpu, soft_ea(cpu, i, 2), 2, v);
    else
        soft_set(cpu, i->rm, i->osz, v);
}

/* LLDT / LTR: a system descriptor from the GDT (16 bytes in long mode). */
SOFT_HANDLER(soft_lldt_ltr)
{
    if (!(cpu->cr0 & SOFT_CR0_PE))
        soft_raise(cpu, SOFT_EXC_UD, 0);
    need_cpl0(cpu);
    uint16_t sel = (uint16_t)soft_rm_get(cpu, i, 2);
    bool ltr = i->sub == 3;
    if ((sel & ~3u) == 0) {
        if (ltr)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        cpu->ldtr = (struct soft_segment){.selector = sel};
        return;
    }
    if (sel & 4)
        soft_raise(cpu, SOFT_EXC_GP, sel & 0xfffc);
    uint64_t d, hi = 0;
    check(cpu, soft_desc_read(cpu, sel, &d));
    if (cpu->efer & SOFT_EFER_LMA)
        check(cpu, soft_desc_read(cpu, (uint16_t)(sel + 8), &hi));
    struct soft_segment s;
    soft_desc_to_seg(d, sel, &s);
    unsigned type = s.attr & 0xf;
    bool ok = !(s.attr & ATTR_S) && (ltr ? (type == 9 || type == 1) : type == 2);
    if (!ok)
        soft_raise(cpu, SOFT_EXC_GP, sel & 0xfffc);
    if (!(s.attr & ATTR_P))
        soft_raise(cpu, SOFT_EXC_NP, sel & 0xfffc);
    s.base |= (hi & 0xffffffff) << 32;
    if (ltr) {
        s.attr |= 2; /* busy; the descriptor in memory is left as the guest wrote it */
        cpu->tr = s;
    } else {
        cpu->ldtr = s;
    }
}

/* VERR / VERW: ZF says whether the segment could be read / written at this privilege. Linux's
 * MDS mitigation runs VERW on every return to user space. */
SOFT_HANDLER(soft_verr_verw)
{
    if (!(cpu->cr0 & SOFT_CR0_PE))
        soft_raise(cpu, SOFT_EXC_UD, 0);
    uint16_t sel = (uint16_t)soft_rm_get(cpu, i, 2);
    bool ok = false;
    uint64_t d;
    if ((sel & ~3u) != 0 && soft_desc_read(cpu, sel, &d) == 0) {
        struct soft_segment s;
        soft_desc_to_seg(d, sel, &s);
        unsigned dpl = (s.attr >> 5) & 3, rpl = sel & 3;
        bool code = (s.attr & ATTR_CODE) != 0, conf = code && (s.attr & ATTR_CONF);
        bool priv = conf || (dpl >= cpu->cpl && dpl >= rpl);
        if ((s.attr & ATTR_S) && priv)
            ok = i->sub == 4 ? (!code || (s.attr & ATTR_RW)) : (!code && (s.attr & ATTR_RW));
    }
    uint32_t f = soft_flags_arith(cpu);
    soft_flags_store(cpu, ok ? (f | SOFT_ZF) : (f & ~SOFT_ZF));
}

/* --- MSRs --------------------------------------------------------------------------------- */

static uint64_t *mtrr_slot(struct soft_cpu *cpu, uint32_t msr)
{
    if (msr >= 0x200 && msr < 0x210)
        return &cpu->mtrr_var[msr - 0x200];
    switch (msr) {
    case 0x250: return &cpu->mtrr_fixed[0];
    case 0x258: return &cpu->mtrr_fixed[1];
    case 0x259: return &cpu->mtrr_fixed[2];
    case 0x268 ... 0x26f: return &cpu->mtrr_fixed[3 + msr - 0x268];
    case MSR_MTRR_DEF: return &cpu->mtrr_def;
    default: return NULL;
    }
}

static uint64_t host_tsc(struct soft_cpu *cpu)
{
    return cpu->ops->tsc ? cpu->ops->tsc(cpu) : __builtin_ia32_rdtsc();
}

SOFT_HANDLER(soft_rdmsr)
{
    need_cpl0(cpu);
    uint32_t msr = (uint32_t)cpu->regs[SOFT_RCX];
    uint64_t v;
    uint64_t *m = mtrr_slot(cpu, msr);
    switch (msr) {
    case MSR_TSC: v = host_tsc(cpu) + cpu->tsc_offset; break;
    case MSR_TSC_ADJUST: v = cpu->tsc_adjust; break;
    case MSR_UCODE_REV: v = 0; break;
    case MSR_MTRRCAP: v = 0x508; break; /* 8 variable ranges, fixed ranges, WC */
    case MSR_MISC_ENABLE: v = cpu->misc_enable; break;
    case MSR_PAT: v = cpu->pat; break;
    case MSR_EFER: v = cpu->efer; break;
    case MSR_STAR: v = cpu->star; break;
    case MSR_LSTAR: v = cpu->lstar; break;
    case MSR_CSTAR: v = cpu->cstar; break;
    case MSR_FMASK: v = cpu->sfmask; break;
    case MSR_FS_BASE: v = cpu->seg[SOFT_FS].base; break;
    case MSR_GS_BASE: v = cpu->seg[SOFT_GS].base; break;
    case MSR_KERNEL_GS_BASE: v = cpu->kernel_gs_base; break;
    case MSR_TSC_AUX: v = cpu->tsc_aux; break;
    default:
        if (m) {
            v = *m;
            break;
        }
        if (!cpu->ops->msr_read || cpu->ops->msr_read(cpu, msr, &v) < 0)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        break;
    }
    cpu->regs[SOFT_RAX] = (uint32_t)v;
    cpu->regs[SOFT_RDX] = v >> 32;
}

SOFT_HANDLER(soft_wrmsr)
{
    need_cpl0(cpu);
    uint32_t msr = (uint32_t)cpu->regs[SOFT_RCX];
    uint64_t v = (uint32_t)cpu->regs[SOFT_RAX] | (cpu->regs[SOFT_RDX] << 32);
    uint64_t *m = mtrr_slot(cpu, msr);
    switch (msr) {
    case MSR_TSC: cpu->tsc_offset = v - host_tsc(cpu); break;
    case MSR_TSC_ADJUST:
        /* Writing TSC_ADJUST moves the TSC by the difference, as on hardware. */
        cpu->tsc_offset += v - cpu->tsc_adjust;
        cpu->tsc_adjust = v;
        break;
    case MSR_UCODE_REV: break; /* the microcode-revision read protocol writes 0 first */
    case MSR_MISC_ENABLE: cpu->misc_enable = v; break;
    case MSR_PAT: cpu->pat = v; break;
    case MSR_EFER: {
        uint64_t allowed = EFER_SCE | SOFT_EFER_LME | SOFT_EFER_NXE;
        if ((v & ~(allowed | SOFT_EFER_LMA)) ||
            ((cpu->cr0 & SOFT_CR0_PG) && ((v ^ cpu->efer) & SOFT_EFER_LME)))
            soft_raise(cpu, SOFT_EXC_GP, 0);
        if ((v ^ cpu->efer) & SOFT_EFER_NXE)
            soft_tlb_flush(cpu);
        cpu->efer = (v & allowed) | (cpu->efer & SOFT_EFER_LMA);
        break;
    }
    case MSR_STAR: cpu->star = v; break;
    case MSR_LSTAR: case MSR_CSTAR: case MSR_FS_BASE: case MSR_GS_BASE: case MSR_KERNEL_GS_BASE:
        if (!canonical(v))
            soft_raise(cpu, SOFT_EXC_GP, 0);
        if (msr == MSR_LSTAR)
            cpu->lstar = v;
        else if (msr == MSR_CSTAR)
            cpu->cstar = v;
        else if (msr == MSR_FS_BASE)
            cpu->seg[SOFT_FS].base = v;
        else if (msr == MSR_GS_BASE)
            cpu->seg[SOFT_GS].base = v;
        else
            cpu->kernel_gs_base = v;
        break;
    case MSR_FMASK: cpu->sfmask = (uint32_t)v; break;
    case MSR_TSC_AUX: cpu->tsc_aux = (uint32_t)v; break;
    default:
        if (m) {
            *m = v;
            break;
        }
        if (!cpu->ops->msr_write || cpu->ops->msr_write(cpu, msr, v) < 0)
            soft_raise(cpu, SOFT_EXC_GP, 0);
        break;
    }
}

/* --- interrupts flag, I/O ----------------------------------------------------------------- */

SOFT_HANDLER(soft_cli_sti)
{
    if ((cpu->cr0 & SOFT_CR0_PE) && cpu->cpl > iopl(cpu))
        soft_raise(cpu, SOFT_EXC_GP, 0);
    if (i->op == 0xfa) {
        cpu->rflags &= ~(uint64_t)SOFT_IF;
        return;
    }
    if (!(cpu->rflags & SOFT_IF))
        cpu->irq_shadow = 1; /* the next instruction runs before any interrupt */
    cpu->rflags |= SOFT_IF;
    cpu->chain_budget = 1;
}

SOFT_HANDLER(soft_port_io)
{
    if ((cpu->cr0 & SOFT_CR0_PE) && cpu->cpl > iopl(cpu))
        soft_raise(cpu, SOFT_EXC_GP, 0); /* no TSS I/O bitmap: CPL > IOPL is refused */
    unsigned size = (i->op & 1) ? (i->osz == 2 ? 2 : 4) : 1;
    bool write = (i->op & 2) != 0;
    uint16_t port = (i->op & 8) ? (uint16_t)cpu->regs[SOFT_RDX] : (uint16_t)i->imm;
    cpu->io.port = port;
    cpu->io.size = (uint8_t)size;
    cpu->io.write = write;
    cpu->io.data = write ? (uint32_t)soft_get(cpu, SOFT_RAX, size) : 0;
    soft_request_exit(cpu, SOFT_EXIT_IO);
}

void soft_cpu_finish_in(struct soft_cpu *cpu)
{
    if (!cpu->io.write)
        soft_set(cpu, SOFT_RAX, cpu->io.size, cpu->io.data);
}

/* --- SYSCALL / SYSRET / SWAPGS ------------------------------------------------------------ */

SOFT_HANDLER(soft_syscall_sys)
{
    if (!(cpu->efer & SOFT_EFER_LMA) || !(cpu->efer & EFER_SCE))
        soft_raise(cpu, SOFT_EXC_UD, 0);
    uint16_t sel = (uint16_t)(cpu->star >> 32) & 0xfffc;
    uint64_t rfl = soft_cpu_get_rflags(cpu);
    cpu->regs[SOFT_RCX] = i->next_rip;
    cpu->regs[SOFT_R11] = rfl;
    cpu->seg[SOFT_CS] = (struct soft_segment){sel, 0, 0xffffffff, 0xa09b};
    cpu->seg[SOFT_SS] = (struct soft_segment){(uint16_t)(sel + 8), 0, 0xffffffff, 0xc093};
    soft_cpu_set_rflags(cpu, (rfl & ~cpu->sfmask) & ~0x10000ull);
    cpu->rip = cpu->mode == 64 ? cpu->lstar : cpu->cstar;
    set_cpl(cpu, 0);
    state_changed(cpu);
}

SOFT_HANDLER(soft_sysret)
{
    if (!(cpu->efer & SOFT_EFER_LMA) || !(cpu->efer & EFER_SCE))
        soft_raise(cpu, SOFT_EXC_UD, 0);
    need_cpl0(cpu);
    uint16_t base = (uint16_t)(cpu->star >> 48);
    uint64_t rip = cpu->regs[SOFT_RCX];
    if (i->rex & 8) {
        if (!canonical(rip))
            soft_raise(cpu, SOFT_EXC_GP, 0);
        cpu->seg[SOFT_CS] = (struct soft_segment){(uint16_t)((base + 16) | 3), 0, 0xffffffff,
                                                  0xa0fb};
    } else {
        rip = (uint32_t)rip;
        cpu->seg[SOFT_CS] = (struct soft_segment){(uint16_t)(base | 3), 0, 0xffffffff, 0xc0fb};
    }
    cpu->seg[SOFT_SS] = (struct soft_segment){(uint16_t)((base + 8) | 3), 0, 0xffffffff, 0xc0f3};
    soft_cpu_set_rflags(cpu, (cpu->regs[SOFT_R11] & 0x3c7fd7ull) | 2);
    cpu->rip = rip;
    set_cpl(cpu, 3);
    state_changed(cpu);
}

SOFT_HANDLER(soft_swapgs)
{
    if (cpu->mode != 64)
        soft_raise(cpu, SOFT_EXC_UD, 0);
    need_cpl0(cpu);
    uint64_t t = cpu->seg[SOFT_GS].base;
    cpu->seg[SOFT_GS].base = cpu->kernel_gs_base;
    cpu->kernel_gs_base = t;
}

SOFT_HANDLER(soft_int_sys)
{
    /* INT n / INT3 / INTO in system mode: a trap the owner delivers through the IDT with the
     * gate-DPL check of software interrupts. RIP is already past the instruction. */
    if (i->op == 0xce && !(soft_cpu_get_rflags(cpu) & SOFT_OF))
        return;
    cpu->exc_vector = (uint8_t)(i->op == 0xcc ? SOFT_EXC_BP : i->op == 0xce ? 4 : i->imm);
    cpu->exc_error = 0;
    cpu->exc_softint = 1;
    soft_request_exit(cpu, SOFT_EXIT_EXCEPTION);
}

/* --- segment loads and far transfers ------------------------------------------------------ */

static int seg_fail(struct soft_cpu *cpu, unsigned vector, uint32_t err)
{
    cpu->exc_error = err;
    return -(int)vector;
}

/* Check a data or stack segment load of sel into s at privilege cpl in code size mode; fills
 * *out, or returns -vector with cpu->exc_error set. */
static int data_seg_check(struct soft_cpu *cpu, unsigned s, uint16_t sel, unsigned cpl,
                          unsigned mode, struct soft_segment *out)
{
    uint32_t err = sel & 0xfffcu;
    if ((sel & ~3u) == 0) {
        if (s == SOFT_SS && (mode != 64 || cpl == 3 || (sel & 3) != cpl))
            return seg_fail(cpu, SOFT_EXC_GP, 0);
        *out = (struct soft_segment){.selector = sel};
        return 0;
    }
    uint64_t d;
    int r = soft_desc_read(cpu, sel, &d);
    if (r == -SOFT_EXC_GP)
        return seg_fail(cpu, SOFT_EXC_GP, err);
    if (r < 0)
        return r;
    soft_desc_to_seg(d, sel, out);
    unsigned dpl = (out->attr >> 5) & 3, rpl = sel & 3;
    if (!(out->attr & ATTR_S))
        return seg_fail(cpu, SOFT_EXC_GP, err);
    if (s == SOFT_SS) {
        if ((out->attr & ATTR_CODE) || !(out->attr & ATTR_RW) || rpl != cpl || dpl != cpl)
            return seg_fail(cpu, SOFT_EXC_GP, err);
        if (!(out->attr & ATTR_P))
            return seg_fail(cpu, SOFT_EXC_SS, err);
    } else {
        bool code = (out->attr & ATTR_CODE) != 0;
        if (code && !(out->attr & ATTR_RW))
            return seg_fail(cpu, SOFT_EXC_GP, err);
        if ((!code || !(out->attr & ATTR_CONF)) && (dpl < cpl || dpl < rpl))
            return seg_fail(cpu, SOFT_EXC_GP, err);
        if (!(out->attr & ATTR_P))
            return seg_fail(cpu, SOFT_EXC_NP, err);
    }
    /* Long mode ignores the bases of ES/SS/DS; the address helpers add them, so keep them 0. */
    if (mode == 64 && s != SOFT_FS && s != SOFT_GS)
        out->base = 0;
    return 0;
}

/* A data or stack segment register load (MOV Sreg) in the current mode. */
static void load_data_seg(struct soft_cpu *cpu, unsigned s, uint16_t sel)
{
    if (!(cpu->cr0 & SOFT_CR0_PE)) {
        cpu->seg[s].selector = sel;
        cpu->seg[s].base = (uint64_t)sel << 4;
        return;
    }
    struct soft_segment t;
    check(cpu, data_seg_check(cpu, s, sel, cpu->cpl, cpu->mode, &t));
    cpu->seg[s] = t;
}

SOFT_HANDLER(soft_mov_sreg_rm)
{
    uint16_t sel = (uint16_t)soft_rm_get(cpu, i, 2);
    load_data_seg(cpu, i->sub, sel);
    if (i->sub == SOFT_SS) {
        cpu->irq_shadow = 1;
        state_changed(cpu);
    }
}

/* The code segment a far JMP/CALL/RET or IRET names, checked for a transfer that leaves the
 * privilege at new_cpl (same-privilege for JMP/CALL; RPL for RET/IRET). */
static void fetch_code_seg(struct soft_cpu *cpu, uint16_t sel, bool ret, struct soft_segment *cs)
{
    uint32_t err = sel & 0xfffcu;
    if ((sel & ~3u) == 0)
        soft_raise(cpu, SOFT_EXC_GP, 0);
    uint64_t d;
    int r = soft_desc_read(cpu, sel, &d);
    if (r == -SOFT_EXC_GP)
        soft_raise(cpu, SOFT_EXC_GP, err);
    check(cpu, r);
    soft_desc_to_seg(d, sel, cs);
    unsigned dpl = (cs->attr >> 5) & 3, rpl = sel & 3;
    /* Call gates and task switches are not implemented: only code segments are targets. */
    if ((cs->attr & (ATTR_S | ATTR_CODE)) != (ATTR_S | ATTR_CODE))
        soft_raise(cpu, SOFT_EXC_GP, err);
    bool conf = (cs->attr & ATTR_CONF) != 0;
    if (ret) {
        if (rpl < cpu->cpl || (conf ? dpl > rpl : dpl != rpl))
            soft_raise(cpu, SOFT_EXC_GP, err);
    } else if (conf ? dpl > cpu->cpl : (rpl > cpu->cpl || dpl != cpu->cpl)) {
        soft_raise(cpu, SOFT_EXC_GP, err);
    }
    if ((cpu->efer & SOFT_EFER_LMA) && (cs->attr & ATTR_L) && (cs->attr & ATTR_DB))
        soft_raise(cpu, SOFT_EXC_GP, err);
    if (!(cs->attr & ATTR_P))
        soft_raise(cpu, SOFT_EXC_NP, err);
}

static uint64_t trunc_ip(const struct soft_cpu *cpu, uint64_t ip, unsigned osz)
{
    if (cpu->mode == 64 && osz == 8)
        return ip;
    return osz == 2 ? (uint16_t)ip : (uint32_t)ip;
}

static void far_transfer(struct soft_cpu *cpu, const struct soft_insn *i, uint16_t sel,
                         uint64_t off, bool call)
{
    struct soft_segment cs = cpu->seg[SOFT_CS];
    if (cpu->cr0 & SOFT_CR0_PE) {
        fetch_code_seg(cpu, sel, false, &cs);
        cs.selector = (uint16_t)((sel & ~3u) | cpu->cpl);
    } else {
        cs.selector = sel;
        cs.base = (uint64_t)sel << 4;
    }
    if (call) {
        soft_push(cpu, i->osz, cpu->seg[SOFT_CS].selector);
        soft_push(cpu, i->osz, i->next_rip);
    }
    cpu->seg[SOFT_CS] = cs;
    state_changed(cpu);
    cpu->rip = trunc_ip(cpu, off, i->osz);
}

/* JMP/CALL ptr16:16/32 (EA/9A): the selector is in imm2, the offset in imm. */
SOFT_HANDLER(soft_far_direct)
{
    far_transfer(cpu, i, i->imm2, i->imm, i->op == 0x9a);
}

/* JMP/CALL m16:16/32/64 (FF /5, FF /3). */
SOFT_HANDLER(soft_far_indirect)
{
    uint64_t ea = soft_ea(cpu, i, i->osz + 2u);
    uint64_t off = soft_ld(cpu, ea, i->osz);
    uint16_t sel = (uint16_t)soft_ld(cpu, ea + i->osz, 2);
    far_transfer(cpu, i, sel, off, i->sub == 3);
}

/* RETF [imm16]: same-privilege returns only (outer-level far returns are not implemented). */
SOFT_HANDLER(soft_retf)
{
    uint64_t rsp = cpu->regs[SOFT_RSP];
    uint64_t off = soft_pop(cpu, i->osz);
    uint16_t sel = (uint16_t)soft_pop(cpu, i->osz);
    struct soft_segment cs = cpu->seg[SOFT_CS];
    if (cpu->cr0 & SOFT_CR0_PE) {
        cpu->regs[SOFT_RSP] = rsp; /* a fault restarts with the stack untouched */
        fetch_code_seg(cpu, sel, true, &cs);
        if ((sel & 3) != cpu->cpl)
            soft_raise(cpu, SOFT_EXC_GP, sel & 0xfffc);
        soft_pop(cpu, i->osz);
        soft_pop(cpu, i->osz);
    } else {
        cs.selector = sel;
        cs.base = (uint64_t)sel << 4;
    }
    if (cpu->mode == 64)
        cpu->regs[SOFT_RSP] += i->imm;
    else
        soft_stack_adjust(cpu, (int64_t)i->imm);
    cpu->seg[SOFT_CS] = cs;
    state_changed(cpu);
    cpu->rip = trunc_ip(cpu, off, i->osz);
}

/* RFLAGS bits IRET may load, then narrowed by privilege. */
static uint64_t iret_flags(const struct soft_cpu *cpu, uint64_t cur, uint64_t v, unsigned osz)
{
    uint64_t allowed = 0x257fd5;
    if (cpu->cpl > 0)
        allowed &= ~0x3000ull;
    if (cpu->cpl > iopl(cpu))
        allowed &= ~(uint64_t)SOFT_IF;
    if (osz == 2)
        allowed &= 0xffff;
    return (cur & ~allowed) | (v & allowed);
}

SOFT_HANDLER(soft_iret)
{
    unsigned osz = i->osz;
    uint64_t cur = soft_cpu_get_rflags(cpu);
    uint64_t sp0 = cpu->regs[SOFT_RSP];
    if (!(cpu->cr0 & SOFT_CR0_PE)) {
        uint64_t ip = soft_pop(cpu, osz);
        uint16_t sel = (uint16_t)soft_pop(cpu, osz);
        uint64_t fl = soft_pop(cpu, osz);
        cpu->seg[SOFT_CS].selector = sel;
        cpu->seg[SOFT_CS].base = (uint64_t)sel << 4;
        soft_cpu_set_rflags(cpu, iret_flags(cpu, cur, fl, osz));
        cpu->rip = trunc_ip(cpu, ip, osz);
        state_changed(cpu);
        return;
    }
    if (cur & 0x4000)
        soft_raise(cpu, SOFT_EXC_GP, 0); /* NT: task return, not implemented */
    uint64_t ip = soft_pop(cpu, osz);
    uint16_t sel = (uint16_t)soft_pop(cpu, osz);
    uint64_t fl = soft_pop(cpu, osz);
    struct soft_segment cs, ss = cpu->seg[SOFT_SS];
    cpu->regs[SOFT_RSP] = sp0; /* checks below may fault: restart with the frame intact */
    fetch_code_seg(cpu, sel, true, &cs);
    unsigned ncpl = sel & 3;
    uint64_t nsp = 0;
    bool pop_stack = cpu->mode == 64 || ncpl > cpu->cpl;
    unsigned ssz = soft_stack_size(cpu); /* SP or ESP outside 64-bit mode, by SS.B */
    uint64_t after = soft_addr_trunc(sp0 + 3 * osz, ssz);
    if (pop_stack) {
        uint64_t a = cpu->mode == 64 ? after : soft_stack_linear(cpu, after, 2 * osz);
        nsp = soft_ld(cpu, a, osz);
        uint16_t ssel = (uint16_t)soft_ld(cpu, a + osz, osz);
        bool to64 = (cpu->efer & SOFT_EFER_LMA) && (cs.attr & ATTR_L);
        if ((ssel & ~3u) == 0 && to64 && ncpl < 3) {
            ss = (struct soft_segment){.selector = ssel, .attr = (uint16_t)(ncpl << 5)};
        } else {
            check(cpu, data_seg_check(cpu, SOFT_SS, ssel, ncpl, to64 ? 64 : 32, &ss));
        }
    }
    uint64_t nfl = iret_flags(cpu, cur, fl, osz);
    cs.selector = sel;
    cpu->seg[SOFT_CS] = cs;
    if (pop_stack) {
        cpu->seg[SOFT_SS] = ss;
        cpu->regs[SOFT_RSP] = nsp;
    } else {
        soft_set(cpu, SOFT_RSP, ssz, after);
    }
    set_cpl(cpu, ncpl);
    soft_cpu_set_rflags(cpu, nfl);
    state_changed(cpu);
    cpu->rip = trunc_ip(cpu, ip, cpu->mode == 64 ? osz : (osz == 8 ? 4 : osz));
}
