/* Differential tests of the software CPU against the host CPU.
 *
 * For every instruction family, seeded random instruction encodings (operand sizes, REX bits,
 * register and memory forms) run on seeded random registers, flags, XMM values and memory:
 * once natively (native.S loads the state, jumps to a code page holding the bytes, saves the
 * state) and once on the interpreter (soft_cpu_step at the same address, same memory). The
 * general registers, XMM registers, the memory (two pages around the random window) and the
 * flags the SDM defines
 * for the instruction must match, and so must the fault (SIGFPE for #DE, ...). Families with
 * mode 32 or 16 run in 32-bit (compatibility mode) or 16-bit code, natively through a far jump
 * to the matching code segment (see diff_run_native_legacy in native.S).
 *
 * 64-bit code: every case of a single-instruction family runs a second time as a block
 * through soft_cpu_run (the block compiler, unless VIREO_SOFT_JIT=0), compared with the same
 * native run; RSP points into the memory window (native.S loads it); when both runs fault, the
 * faulting RIP, the general registers and the memory at the fault must match too (the native
 * ones from the signal context).
 *
 *   diff [-v] [-d] [-n CASES] [-s SEED] [--coverage] [FAMILY...]
 * -v dumps the states of mismatches and the block compiler's statistics per family, -d prints
 * every case's bytes. Exit status 0 only if everything matched. Families with a known
 * interpreter bug run only when named (and are listed as not run otherwise). --coverage prints
 * the opcode maps as markdown: which opcodes the decoder implements and which the run above
 * tested against the host. */
#include "accel/soft/cache.h"
#include "accel/soft/cpu.h"
#include "accel/soft/decode.h"
#include "accel/soft/exec.h"
#include "accel/soft/jit.h"

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include <asm/ldt.h>
#include <asm/prctl.h>

struct diff_regs {
    uint64_t r[16];
    uint64_t rflags;
    uint8_t xmm[16][16];
    uint64_t rip; /* after a fault in 64-bit code: the faulting instruction (not in native.S) */
};

void diff_run_native(struct diff_regs *s, const void *code);
void diff_native_return(void);
void diff_run_native_legacy(struct diff_regs *s, uint64_t far, uint64_t data_sel);
void diff_native_return_legacy(void);

#include "diff_gen.h"

/* --- running ------------------------------------------------------------------------------ */

static uint8_t *code_page;
static uint8_t *mem;
static sigjmp_buf native_jmp;
static volatile int native_sig;
/* The native registers where a 64-bit run faulted (from the signal's context). */
static struct diff_regs native_fault;
static int verbose;
static int dump_cases; /* -d: print every case's bytes (to disassemble what a family makes) */

/* 32/16-bit runs: the LDT holds a 16-bit code segment based at code_page and 16/32-bit data
 * segments for DS (based at mem), SS (mem + SS_OFF) and ES (mem + ES_OFF), so that 16-bit
 * addresses and stack offsets reach the memory page, and a wrong choice of segment (the
 * default SS of [bp], ES of string destinations, override prefixes) shows. The code page ends
 * with a far jump back to 64-bit code, which lands on a trampoline at TRAMP_OFF. */
#define TRAMP_OFF 0xf00u
#define SS_OFF 1024u
#define ES_OFF 2048u
#define MEM_SPAN 8192 /* compared: the page below mem (wrapped 32-bit addresses) and mem's */
#define SEL_CODE16 ((0u << 3) | 7u)
#define SEL_DS16 ((1u << 3) | 7u) /* then DS32, SS16, SS32, ES16, ES32 */
#define SEL_DATA(seg, mode) (SEL_DS16 + ((2u * (seg) + ((mode) == 32)) << 3))
/* DS segments with limits (the limit families; gen.ds_limit k = 1..5 is LDT entry 6 + k),
 * byte granular: expand-up with limit 0xff; expand-down with limit 0xff (offsets 0x100 up to
 * 0xffff or 0xffffffff by B); expand-down based 0xff00 below mem with limit 0xfeff, so that
 * offsets from 0xff00 reach mem and, with B=0, end at 0xffff. */
static const struct {
    int64_t base_delta; /* from mem */
    unsigned limit;
    int expand_down, bits32;
} limited_ds[5] = {
    {0, 0xff, 0, 0}, {0, 0xff, 1, 0}, {0, 0xff, 1, 1}, {-0xff00, 0xfeff, 1, 0},
    {-0xff00, 0xfeff, 1, 1},
};
#define SEL_LIMITED(k) (((6u + (k)) << 3) | 7u)
#define SEL_USER_CS32 0x23u /* Linux's flat 32-bit user code segment */
#define SEL_USER_CS64 0x33u

static struct soft_cpu cpu;

uint64_t diff_mem_addr, diff_code_addr;
static uint64_t host_fs_base; /* the host thread's FS base (its TCB), for FS-relative loads */

/* The smc family's runs (gen.smc): the code page is watched like system mode watches pages
 * holding decoded code (soft_sysops.c): a fetch fill marks it and grants no write tag, and the
 * first write after that drops the blocks decoded from it. */
static int watch_code;
static int code_marked;
static uint8_t code_before[4096]; /* the code page as the native run got it (smc) */

static int flat_fill(struct soft_cpu *c, uint64_t vaddr, int access, struct soft_tlb_entry *e)
{
    uint64_t page = vaddr & ~0xfffull;
    e->addend = 0;
    if (!watch_code || page != diff_code_addr) {
        e->tag_read = e->tag_write = e->tag_exec = page;
        return 0;
    }
    e->tag_read = page;
    if (access == SOFT_ACC_EXEC) {
        e->tag_exec = page;
        code_marked = 1;
    } else if (access == SOFT_ACC_WRITE) {
        e->tag_write = page;
        if (code_marked) {
            code_marked = 0;
            soft_cache_invalidate_host_page(c, (uintptr_t)page);
            c->chain_budget = 1;
        }
    }
    return 0;
}

static const struct soft_cpu_ops flat_ops = {.tlb_fill = flat_fill};

static void on_fault(int sig, siginfo_t *si, void *uc);

/* Native faults return through native_jmp; interpreter faults are precise #PF. */
static void install_fault_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_NODEFER | SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* A host fault inside the interpreter is the guest's #PF; anything else comes from the native
 * run, which continues at native_jmp. Runs on the alternate stack: the native code's stack
 * pointer may be a 16-bit offset. */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
    if (cpu.running)
        soft_cpu_host_fault(&cpu, (uint64_t)(uintptr_t)si->si_addr);
    static const int greg[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                 REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                 REG_R12, REG_R13, REG_R14, REG_R15};
    const ucontext_t *ctx = uc;
    for (int k = 0; k < 16; k++)
        native_fault.r[k] = (uint64_t)ctx->uc_mcontext.gregs[greg[k]];
    native_fault.rip = (uint64_t)ctx->uc_mcontext.gregs[REG_RIP];
    native_sig = sig;
    siglongjmp(native_jmp, 1);
}

/* contents: MODIFY_LDT_CONTENTS_DATA, _STACK (expand-down data) or _CODE. */
static int ldt_set(unsigned entry, uint64_t base, unsigned limit, int pages, int bits32,
                   unsigned contents)
{
    struct user_desc d = {
        .entry_number = entry,
        .base_addr = (unsigned)base,
        .limit = limit,
        .seg_32bit = (unsigned)bits32,
        .contents = contents,
        .limit_in_pages = (unsigned)pages,
        .useable = 1,
    };
    return (int)syscall(SYS_modify_ldt, 1, &d, sizeof(d));
}

/* Put the interpreter in the mode the native run uses: 64-bit, compatibility mode with flat
 * CS and the LDT data segments, or the 16-bit code segment of the LDT; SS is a 16-bit or
 * 32-bit segment by ss_bits, DS one of the limited ones if ds_limit is not 0. */
static void interp_mode(int mode, int ss_bits, int ds_limit)
{
    static const struct soft_segment flat = {0, 0, 0xffffffff, 0xc0f3};
    cpu.mode = (uint8_t)mode;
    for (int k = 0; k < SOFT_NSEGS; k++)
        cpu.seg[k] = flat;
    cpu.seg[SOFT_CS].attr = 0xa0fb;
    if (mode == 64) {
        cpu.seg[SOFT_FS].base = host_fs_base;
        cpu.seg[SOFT_GS].base = diff_mem_addr + JIT_GS_OFF; /* as main() set the host's */
        return;
    }
    static const int which[3] = {SOFT_DS, SOFT_SS, SOFT_ES};
    static const unsigned offset[3] = {0, SS_OFF, ES_OFF};
    for (unsigned k = 0; k < 3; k++)
        cpu.seg[which[k]] = (struct soft_segment){SEL_DATA(k, mode),
                                                  (uint64_t)(uintptr_t)mem + offset[k],
                                                  0xffffffff, mode == 32 ? 0xc0f3 : 0x80f3};
    cpu.seg[SOFT_SS].selector = (uint16_t)SEL_DATA(1, ss_bits);
    cpu.seg[SOFT_SS].attr = ss_bits == 32 ? 0xc0f3 : 0x80f3;
    if (ds_limit) {
        int k = ds_limit - 1;
        uint64_t base = (uint64_t)((int64_t)(uintptr_t)mem + limited_ds[k].base_delta);
        uint16_t attr = (uint16_t)(0x00f3 | (limited_ds[k].expand_down ? 4 : 0) |
                                   (limited_ds[k].bits32 ? 0x4000 : 0));
        cpu.seg[SOFT_DS] =
            (struct soft_segment){SEL_LIMITED(ds_limit), base, limited_ds[k].limit, attr};
    }
    if (mode == 32) {
        cpu.seg[SOFT_CS] = (struct soft_segment){SEL_USER_CS32, 0, 0xffffffff, 0xc0fb};
    } else {
        cpu.seg[SOFT_CS] = (struct soft_segment){SEL_CODE16, (uint64_t)(uintptr_t)code_page,
                                                  0xffff, 0x00fb};
    }
}

/* SS.B: the stack's address size, the code size unless the family asks for the other one. */
static int stack_bits(const struct gen *g)
{
    return g->ss_bits ? g->ss_bits : g->mode;
}

static int vector_signal(int vector)
{
    switch (vector) {
    case 0: return SIGFPE;
    case 6: return SIGILL;
    case 12: return SIGBUS; /* #SS: Linux sends SIGBUS */
    default: return SIGSEGV;
    }
}

/* Memory operands and the stack of 32/16-bit code are offsets from the LDT data segment
 * (based at mem): small offsets under random high bits the address size must drop. */
static uint64_t offset_reg(struct rng *r, unsigned asz, unsigned max)
{
    uint64_t hi = asz == 2 ? rval(r) & ~0xffffull : rval(r) & ~0xffffffffull;
    return hi | rn(r, max);
}

static void init_legacy(struct rng *r, const struct gen *g, struct diff_regs *s)
{
    unsigned asz = stack_bits(g) / 8; /* the stack's address size */
    s->r[4] = offset_reg(r, asz, 128) + 320;
    if (rn(r, 2))
        s->r[4] &= ~(uint64_t)(g->mode == 16 ? 1 : 3);
    if (!g->addr_size)
        return;
    s->r[3] = offset_reg(r, g->addr_size, 192); /* BX/EBX */
    s->r[5] = offset_reg(r, g->addr_size, 192); /* BP/EBP */
    s->r[6] = offset_reg(r, g->addr_size, 96);  /* SI/ESI */
    s->r[7] = offset_reg(r, g->addr_size, 96);  /* DI/EDI */
    for (int k = 3; g->align16 && k < 8; k++)
        s->r[k] &= ~15ull;
    if (g->ds_limit >= 4)
        s->r[3] += 0xff00; /* EBX: offsets from 0xff00 in the segments based 0xff00 lower */
    uint64_t below = g->addr_size == 2 ? 0xff00 : 0xffffff00;
    if (g->addr_wrap == 1) { /* base + index = 2^16 or 2^32 + a small offset */
        s->r[3] += below;
        s->r[5] += below;
        s->r[6] += 0x100;
        s->r[7] += 0x100;
    } else if (g->addr_wrap == 2) { /* DS.base + offset wraps at 4 GiB into the page below */
        for (int k = 3; k < 8; k++)
            if (k != 4)
                s->r[k] += below;
    }
}

static void init_state(struct rng *r, const struct gen *g, struct diff_regs *s)
{
    for (int k = 0; k < 16; k++)
        s->r[k] = rval(r);
    s->r[4] = (uint64_t)(uintptr_t)mem + JIT_STACK_OFF; /* 64-bit: a stack in the window */
    s->r[3] = (uint64_t)(uintptr_t)mem; /* RBX: base of every memory operand */
    if (g->mode != 64)
        init_legacy(r, g, s);
    if (g->jit_regs)
        jit_init_regs(r, s->r);
    s->rflags = 0x202 | (rnd(r) & 0x8d5);
    for (int k = 0; k < 16; k++) {
        for (int q = 0; q < 2; q++) {
            uint64_t v;
            if (g->fp == 1)
                v = rdouble(r);
            else if (g->fp == 2)
                v = rfloat(r) | ((uint64_t)rfloat(r) << 32);
            else
                v = rval(r);
            memcpy(&s->xmm[k][8 * q], &v, 8);
        }
    }
    if (g->cl >= 0)
        s->r[1] = (s->r[1] & ~0xffull) | (uint64_t)g->cl; /* shift count in CL */
    if (g->small_rdx && rn(r, 2))
        s->r[2] &= 0xff;
    if (g->bt_reg)
        s->r[g->bt_reg - 1] = rn(r, 256); /* BT bit offset within the memory window */
    if (g->string && g->mode != 64) {
        unsigned asz = g->addr_size ? g->addr_size : 4;
        s->r[6] = offset_reg(r, asz, 64) + 256;
        s->r[7] = offset_reg(r, asz, 64) + 256;
        s->r[1] = (asz == 2 ? rval(r) & ~0xffffull : 0) | rn(r, 20);
        if (rn(r, 2))
            s->rflags |= 0x400;
    } else if (g->string) {
        s->r[6] = (uint64_t)(uintptr_t)mem + 256 + rn(r, 64);
        s->r[7] = (uint64_t)(uintptr_t)mem + 256 + rn(r, 64);
        s->r[1] = rn(r, 20);
        if (rn(r, 2))
            s->rflags |= 0x400;
    }
    for (unsigned k = 0; k < MEMSZ; k += 8) {
        uint64_t v = g->fp == 1 || g->fp == 3 ? rdouble(r)
                     : g->fp == 2 ? (rfloat(r) | ((uint64_t)rfloat(r) << 32)) : rval(r);
        if (g->string && rn(r, 2))
            v = rn(r, 4) * 0x0101010101010101ull; /* equal runs for REPE/REPNE */
        memcpy(mem + k, &v, 8);
    }
    for (unsigned k = MEMSZ; g->mode != 64 && k < 4096; k += 8) {
        uint64_t v = rval(r); /* the stack and ES live further up in the page */
        memcpy(mem + k, &v, 8);
    }
    if (g->x87) {
        int16_t w = (int16_t)rval(r);
        memcpy(mem + 16, &w, 2);
    }
}

/* Far pointer to the start of the code page: flat 32-bit CS, or offset 0 of the 16-bit CS. */
static uint64_t legacy_entry(int mode)
{
    if (mode == 32)
        return (uint64_t)SEL_USER_CS32 << 32 | (uint32_t)(uintptr_t)code_page;
    return (uint64_t)SEL_CODE16 << 32;
}

/* DS | ES << 16 | SS << 32 for diff_run_native_legacy. */
static uint64_t data_selectors(const struct gen *g)
{
    uint64_t ds = g->ds_limit ? SEL_LIMITED(g->ds_limit) : SEL_DATA(0, g->mode);
    return ds | SEL_DATA(2, g->mode) << 16 | (uint64_t)SEL_DATA(1, stack_bits(g)) << 32;
}

/* Run the code natively; returns the signal it died of, or 0. */
static int run_native(const struct gen *g, struct diff_regs *s)
{
    if (g->mode != 64) {
        memcpy(code_page, g->code, g->len);
        uint8_t *p = code_page + g->len;
        if (g->mode == 16)
            *p++ = 0x66; /* ptr16:32 */
        *p++ = 0xea;     /* jmp far 0x33:trampoline */
        uint32_t back = (uint32_t)(uintptr_t)(code_page + TRAMP_OFF);
        memcpy(p, &back, 4);
        p[4] = SEL_USER_CS64;
        p[5] = 0;
        native_sig = 0;
        if (sigsetjmp(native_jmp, 1) == 0)
            diff_run_native_legacy(s, legacy_entry(g->mode), data_selectors(g));
        return native_sig;
    }
    memcpy(code_page, g->code, g->len);
    uint8_t *p = code_page + g->len;
    *p++ = 0xff; *p++ = 0x25; /* jmp *0(%rip) */
    memset(p, 0, 4);
    p += 4;
    uint64_t back = (uint64_t)(uintptr_t)diff_native_return;
    memcpy(p, &back, 8);
    if (g->smc)
        memcpy(code_before, code_page, sizeof(code_before));
    native_sig = 0;
    if (sigsetjmp(native_jmp, 1) == 0)
        diff_run_native(s, code_page);
    if (native_sig && g->x87)
        __asm__ volatile("fninit");
    if (native_sig) { /* the registers at the fault, compared with the interpreter's */
        memcpy(s->r, native_fault.r, sizeof(s->r));
        s->rip = native_fault.rip;
    }
    return native_sig;
}

static int run_interp(const struct gen *g, struct diff_regs *s, int block)
{
    soft_cpu_flush_tlb(&cpu);
    for (int k = 0; k < 16; k++)
        cpu.regs[k] = s->r[k];
    soft_cpu_set_rflags(&cpu, s->rflags);
    for (int k = 0; k < 16; k++)
        memcpy(cpu.xmm[k].b, s->xmm[k], 16);
    cpu.mxcsr = 0x1f80;
    cpu.fpu.fcw = 0x37f;
    cpu.fpu.fsw = 0;
    cpu.fpu.top = 0;
    cpu.fpu.ftw = 0xffff;
    interp_mode(g->mode, stack_bits(g), g->ds_limit);
    uint64_t start = g->mode == 16 ? 0 : (uint64_t)(uintptr_t)code_page, end = start + g->len;
    cpu.rip = start;
    int sig = 0;
    watch_code = g->smc;
    code_marked = 0;
    if (g->smc) /* the native run stored into it */
        memcpy(code_page, code_before, sizeof(code_before));
    if (block) {
        /* An INT3 after the sequence ends the run, in place of run_native's jump back to the
         * harness (the block cache was dropped with the TLB above, so the bytes are decoded
         * afresh). */
        code_page[g->len] = 0xcc;
        int why = soft_cpu_run(&cpu);
        if (why != SOFT_EXIT_EXCEPTION)
            sig = -1; /* cannot happen: no system calls or I/O in these sequences */
        else if (cpu.exc_vector != SOFT_EXC_BP || cpu.rip != end + 1)
            sig = vector_signal(cpu.exc_vector);
    }
    for (int n = 0; n < 64 && !block && cpu.rip != end; n++) {
        int why = soft_cpu_step(&cpu);
        if (why == SOFT_EXIT_EXCEPTION) {
            sig = vector_signal(cpu.exc_vector);
            break;
        }
    }
    for (int k = 0; k < 16; k++)
        s->r[k] = cpu.regs[k];
    s->rip = cpu.rip;
    s->rflags = soft_cpu_get_rflags(&cpu);
    for (int k = 0; k < 16; k++)
        memcpy(s->xmm[k], cpu.xmm[k].b, 16);
    return sig;
}

static void dump(const char *tag, const struct diff_regs *s)
{
    fprintf(stderr, "  %s:", tag);
    for (int k = 0; k < 16; k++)
        fprintf(stderr, " r%d=%llx", k, (unsigned long long)s->r[k]);
    fprintf(stderr, " fl=%llx\n", (unsigned long long)s->rflags);
}

static const char *const regname[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};

/* Opcodes (map 0 = one byte, 1 = 0F) whose generated cases all matched; a failure clears. */
static uint8_t tested[2][256], failed[2][256];

static void note_opcode(const struct gen *g, int ok)
{
    unsigned k = 0;
    static const uint8_t prefixes[] = {0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2,
                                       0xf3};
    while (k < g->len && (memchr(prefixes, g->code[k], sizeof(prefixes)) ||
                          (g->mode == 64 && (g->code[k] & 0xf0) == 0x40)))
        k++;
    if (k >= g->len)
        return;
    unsigned map = 0, op = g->code[k];
    if (op == 0x0f && k + 1 < g->len) {
        map = 1;
        op = g->code[k + 1];
    }
    if (ok)
        tested[map][op] = 1;
    else
        failed[map][op] = 1;
}

/* Compare a native run with an interpreter run; fills why and returns 0 on a difference. */
static int compare(const struct gen *gp, int nsig, int esig, const struct diff_regs *natp,
                   const struct diff_regs *emup, const uint8_t *mem_nat, const uint8_t *span,
                   char *why, size_t whysz, unsigned *faulted)
{
    const struct gen g = *gp;
    const struct diff_regs nat = *natp, emu = *emup;
    why[0] = 0;
    if (nsig != esig) {
        snprintf(why, whysz, "fault: native %d, interpreter %d", nsig, esig);
    } else if (nsig && g.mode != 64) {
        (*faulted)++;
        return 1; /* both faulted the same way: registers are the pre-instruction ones */
    } else if (nsig) {
        /* 64-bit: the state at the fault must be the same: the faulting instruction, every
         * register and memory as the instructions before it left them (not the flags: those
         * of earlier instructions are not materialized where they are dead, see
         * docs/soft-cpu.md). */
        (*faulted)++;
        if (nat.rip != emu.rip)
            snprintf(why, whysz, "fault at: native +%llx, interpreter +%llx",
                     (unsigned long long)(nat.rip - diff_code_addr),
                     (unsigned long long)(emu.rip - diff_code_addr));
        for (int k = 0; k < 16 && !why[0]; k++) {
            if (nat.r[k] != emu.r[k])
                snprintf(why, whysz, "at the fault, %s: native %llx, interpreter %llx",
                         regname[k], (unsigned long long)nat.r[k],
                         (unsigned long long)emu.r[k]);
        }
        for (int k = 0; k < MEM_SPAN && !why[0]; k++) {
            if (mem_nat[k] != span[k])
                snprintf(why, whysz, "at the fault, memory[%d]: native %02x, interpreter %02x",
                         k - MEM_SPAN / 2, mem_nat[k], span[k]);
        }
    } else {
        uint32_t fm = g.fmask;
        for (int k = 0; k < (g.mode == 64 ? 16 : 8) && !why[0]; k++) {
            uint64_t a = nat.r[k], b = emu.r[k];
            if (g.mode != 64) { /* the high halves are not architectural there */
                a = (uint32_t)a;
                b = (uint32_t)b;
            }
            if (g.fsw_only && k == 0) {
                a &= 0x4500;
                b &= 0x4500;
            }
            if (a != b)
                snprintf(why, whysz, "%s: native %llx, interpreter %llx", regname[k],
                         (unsigned long long)a, (unsigned long long)b);
        }
        if (!why[0] && ((nat.rflags ^ emu.rflags) & fm))
            snprintf(why, whysz, "flags: native %llx, interpreter %llx (mask %x)",
                     (unsigned long long)nat.rflags, (unsigned long long)emu.rflags, fm);
        for (int k = 0; k < 16 && !why[0]; k++) {
            if (memcmp(nat.xmm[k], emu.xmm[k], 16)) {
                uint64_t a[2], b[2];
                memcpy(a, nat.xmm[k], 16);
                memcpy(b, emu.xmm[k], 16);
                snprintf(why, whysz, "xmm%d: native %016llx%016llx, interpreter "
                         "%016llx%016llx", k, (unsigned long long)a[1], (unsigned long long)a[0],
                         (unsigned long long)b[1], (unsigned long long)b[0]);
            }
        }
        for (int k = 0; k < MEM_SPAN && !why[0]; k++) {
            if (mem_nat[k] != span[k])
                snprintf(why, whysz, "memory[%d]: native %02x, interpreter %02x",
                         k - MEM_SPAN / 2, mem_nat[k], span[k]);
        }
    }
    return !why[0];
}

/* One random case; returns 1 if native and interpreter agree. */
static int run_case(const struct family *f, struct rng *r, unsigned *faulted)
{
    struct gen g;
    memset(&g, 0, sizeof(g));
    g.cl = -1;
    g.mode = f->mode ? f->mode : 64;
    f->gen(r, &g);
    struct diff_regs in, nat, emu;
    init_state(r, &g, &in);
    if (dump_cases) {
        printf("case %s:", f->name);
        for (unsigned k = 0; k < g.len; k++)
            printf(" %02x", g.code[k]);
        printf("\n");
    }
    /* Whole pages: bit offsets and 16/32-bit stack and address forms may reach past the
     * randomized window, and both runs must start from the same bytes there too. */
    static uint8_t mem_in[MEM_SPAN], mem_nat[MEM_SPAN];
    uint8_t *span = mem - MEM_SPAN / 2;
    memcpy(mem_in, span, MEM_SPAN);
    nat = in;
    int nsig = run_native(&g, &nat);
    memcpy(mem_nat, span, MEM_SPAN);
    memcpy(span, mem_in, MEM_SPAN);
    emu = in;
    int esig = run_interp(&g, &emu, g.block);

    char why[200] = "";
    int ok = compare(&g, nsig, esig, &nat, &emu, mem_nat, span, why, sizeof(why), faulted);
    if (ok && g.mode == 64 && !g.block && !f->no_block) {
        /* The same case again as a block through soft_cpu_run (the JIT, when it is on), from
         * the same state and memory; the native run is the reference for both. */
        uint8_t mem_step[MEM_SPAN];
        memcpy(mem_step, span, MEM_SPAN);
        memcpy(span, mem_in, MEM_SPAN);
        struct diff_regs blk = in;
        unsigned faulted_blk = 0;
        int bsig = run_interp(&g, &blk, 1);
        if (!compare(&g, nsig, bsig, &nat, &blk, mem_nat, span, why, sizeof(why), &faulted_blk)) {
            ok = 0;
            emu = blk;
            snprintf(why + strlen(why), sizeof(why) - strlen(why), " (run as a block)");
        }
        memcpy(span, mem_step, MEM_SPAN);
    }
    note_opcode(&g, ok);
    if (ok)
        return 1;
    fprintf(stderr, "MISMATCH %s (%s): bytes", f->name, g.what);
    for (unsigned k = 0; k < g.len; k++)
        fprintf(stderr, " %02x", g.code[k]);
    fprintf(stderr, "\n  %s\n", why);
    if (verbose) {
        dump("in ", &in);
        dump("nat", &nat);
        dump("emu", &emu);
    }
    return 0;
}

/* Whether the decoder has a handler for the opcode with this mandatory prefix, in register or
 * memory form, in 64-bit or else in 32-bit code (DAA, PUSHA, BOUND... exist only there). */
static int implemented_in(unsigned map, unsigned op, unsigned pfx);

static int implemented(unsigned map, unsigned op, unsigned pfx)
{
    interp_mode(64, 64, 0);
    int impl = implemented_in(map, op, pfx);
    if (!impl) {
        interp_mode(32, 32, 0);
        impl = implemented_in(map, op, pfx);
        interp_mode(64, 64, 0);
    }
    return impl;
}

static int implemented_in(unsigned map, unsigned op, unsigned pfx)
{
    /* ModRM probes: a register, [rbx], digits /2 and /4 (shift groups, BT group), /1 on memory
     * (CMPXCHG8B/16B), and F9 (RDTSCP). */
    static const uint8_t probes[] = {0xc0, 0x03, 0xd0, 0xe0, 0x0b, 0xf9};
    for (unsigned form = 0; form < sizeof(probes); form++) {
        uint8_t *p = code_page;
        memset(code_page, 0, 32);
        if (pfx)
            *p++ = (uint8_t)pfx;
        if (map)
            *p++ = 0x0f;
        *p++ = (uint8_t)op;
        *p++ = probes[form];
        struct soft_insn insn;
        int r = soft_decode(&cpu, (uint64_t)(uintptr_t)code_page, &insn);
        if (r >= 0 && insn.fn != soft_exec_ud)
            return 1;
    }
    return 0;
}

static void print_coverage(void)
{
    static const char *const names[2] = {"one-byte map", "0F map"};
    printf("Legend: **T** implemented and differentially tested against the host CPU in this\n"
           "run, I implemented (exercised by the busybox tests or too stateful for the harness),\n"
           ". undefined or not implemented (#UD). A cell of the 0F map is implemented if any of\n"
           "the prefixes none/66/F3/F2 decodes. Opcodes are probed in 64-bit and in 32-bit\n"
           "code; \"pfx **T**\" is a prefix in 64-bit code tested as an instruction in\n"
           "32/16-bit code (INC/DEC 40-4F).\n\n");
    for (unsigned map = 0; map < 2; map++) {
        printf("#### %s\n\n|   |", names[map]);
        for (unsigned col = 0; col < 16; col++)
            printf(" x%X |", col);
        printf("\n|---|");
        for (unsigned col = 0; col < 16; col++)
            printf("---|");
        printf("\n");
        for (unsigned row = 0; row < 16; row++) {
            printf("| %Xx |", row);
            for (unsigned col = 0; col < 16; col++) {
                unsigned op = row * 16 + col;
                int impl = 0;
                if (map == 0 && (op == 0x0f || op == 0x26 || op == 0x2e || op == 0x36 ||
                                 op == 0x3e || op == 0x64 || op == 0x65 || op == 0x66 ||
                                 op == 0x67 || op == 0xf0 || op == 0xf2 || op == 0xf3 ||
                                 (op & 0xf0) == 0x40)) {
                    /* 40-4F: REX in 64-bit code, INC/DEC in 32/16-bit code */
                    printf(" pfx%s |", tested[map][op] && !failed[map][op] ? " **T**" : "");
                    continue;
                }
                for (unsigned p = 0; p < 4 && !impl; p++)
                    impl = implemented(map, op, (unsigned[]){0, 0x66, 0xf3, 0xf2}[p]);
                const char *mark = !impl ? "." : tested[map][op] && !failed[map][op] ? "**T**"
                                                                                      : "I";
                printf(" %s |", mark);
            }
            printf("\n");
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    int coverage = 0;
    unsigned cases = 4000;
    uint64_t seed = 0x5eed5eedull;
    int first = argc;
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "-v"))
            verbose = 1;
        else if (!strcmp(argv[k], "-d"))
            dump_cases = 1;
        else if (!strcmp(argv[k], "--coverage"))
            coverage = 1;
        else if (!strcmp(argv[k], "-n") && k + 1 < argc)
            cases = (unsigned)strtoul(argv[++k], NULL, 0);
        else if (!strcmp(argv[k], "-s") && k + 1 < argc)
            seed = strtoull(argv[++k], NULL, 0);
        else if (!strcmp(argv[k], "--table")) {
            printf("| family | opcodes differentially tested |\n| --- | --- |\n");
            for (size_t f = 0; f < nfamilies; f++)
                printf("| %s | %s |\n", families[f].name, families[f].opcodes);
            return 0;
        } else {
            first = k;
            break;
        }
    }
    /* Below 4 GiB (MAP_32BIT): 32-bit code runs there and far-jumps back through it. */
    code_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    mem = mmap(NULL, MEM_SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
               -1, 0);
    if (code_page == MAP_FAILED || mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    mem += MEM_SPAN / 2;
    diff_mem_addr = (uint64_t)(uintptr_t)mem;
    diff_code_addr = (uint64_t)(uintptr_t)code_page;
    /* GS points into the window for the jit family's GS-relative forms (glibc does not use GS
     * on x86-64; nothing here loads a GS selector, which would reset the base). */
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)(diff_mem_addr + JIT_GS_OFF)) < 0 ||
        syscall(SYS_arch_prctl, ARCH_GET_FS, &host_fs_base) < 0) {
        perror("arch_prctl");
        return 1;
    }
    uint8_t *t = code_page + TRAMP_OFF; /* jmp *0(%rip) to diff_native_return_legacy */
    uint64_t back = (uint64_t)(uintptr_t)diff_native_return_legacy;
    t[0] = 0xff;
    t[1] = 0x25;
    memset(t + 2, 0, 4);
    memcpy(t + 6, &back, 8);
    int ldt_err = ldt_set(0, (uint64_t)(uintptr_t)code_page, 0xffff, 0, 0,
                          MODIFY_LDT_CONTENTS_CODE);
    for (unsigned k = 0; k < 6; k++) {
        uint64_t base = (uint64_t)(uintptr_t)mem + (unsigned[]){0, SS_OFF, ES_OFF}[k / 2];
        ldt_err |= ldt_set(1 + k, base, 0xfffff, 1, (int)(k & 1), MODIFY_LDT_CONTENTS_DATA);
    }
    for (unsigned k = 0; k < 5; k++) {
        uint64_t base = (uint64_t)((int64_t)(uintptr_t)mem + limited_ds[k].base_delta);
        ldt_err |= ldt_set(7 + k, base, limited_ds[k].limit, 0, limited_ds[k].bits32,
                           limited_ds[k].expand_down ? MODIFY_LDT_CONTENTS_STACK
                                                     : MODIFY_LDT_CONTENTS_DATA);
    }
    static uint8_t altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    if (sigaltstack(&ss, NULL) < 0) {
        perror("sigaltstack");
        return 1;
    }
    /* Hosts that refuse modify_ldt (some container seccomp profiles) or have no 32-bit user
     * segment (ia32_emulation=0) cannot run the 32/16-bit families: said below, not hidden. */
    const char *no_legacy = NULL;
    if (ldt_err < 0) {
        no_legacy = "modify_ldt(2) refused";
    } else {
        install_fault_handlers();
        for (int mode = 32; mode >= 16 && !no_legacy; mode -= 16) {
            struct gen probe = {.mode = mode, .cl = -1};
            struct diff_regs st = {.rflags = 0x202};
            st.r[4] = SS_OFF;
            if (run_native(&probe, &st))
                no_legacy = mode == 32 ? "no 32-bit user code segment" : "16-bit code faults";
        }
    }
    if (soft_cpu_init(&cpu, &flat_ops, NULL, 64) < 0)
        return 1;
    cpu.model.cx16 = true;

    int total_fail = 0;
    unsigned not_run_host = 0, not_run_bug = 0;
    if (coverage)
        printf("| family | opcodes | random cases | result |\n| --- | --- | --- | --- |\n");
    for (size_t f = 0; f < nfamilies; f++) {
        const struct family *fam = &families[f];
        int named = 0;
        for (int k = first; k < argc; k++)
            named |= !strcmp(argv[k], fam->name);
        if (first < argc && !named)
            continue;
        if (fam->mode && no_legacy) {
            if (coverage)
                printf("| %s | %s | 0 | not run: %s |\n", fam->name, fam->opcodes, no_legacy);
            else
                printf("%-8s NOT RUN on this host: %s\n", fam->name, no_legacy);
            not_run_host++;
            continue;
        }
        if (fam->known_bug && !named) {
            /* Said, not hidden: these cases fail today and stay out of the default run. */
            if (coverage)
                printf("| %s | %s | 0 | not run: %s |\n", fam->name, fam->opcodes,
                       fam->known_bug);
            else
                printf("%-8s not run (known interpreter bug: %s)\n", fam->name,
                       fam->known_bug);
            not_run_bug++;
            continue;
        }
        struct rng r = {seed ^ (0x9e3779b97f4a7c15ull * (f + 1))};
        unsigned fails = 0, faulted = 0;
        for (unsigned c = 0; c < cases; c++) {
            install_fault_handlers();
            if (!run_case(fam, &r, &faulted)) {
                if (++fails >= 10 && !verbose)
                    break;
            }
        }
        if (coverage)
            printf("| %s | %s | %u | %s |\n", fam->name, fam->opcodes, cases,
                   fails ? "FAILED" : "ok");
        else if (faulted)
            printf("%-8s %5u cases  %s (%u of them faulted alike)\n", fam->name, cases,
                   fails ? "FAILED" : "ok", faulted);
        else
            printf("%-8s %5u cases  %s\n", fam->name, cases, fails ? "FAILED" : "ok");
        total_fail += fails != 0;
        if (verbose && !fam->mode && soft_cache_jit(&cpu)) {
            /* How much of the family's block runs the compiler took (-v). */
            static struct soft_jit_stats seen;
            const struct soft_jit_stats *js = soft_jit_stats(soft_cache_jit(&cpu));
            printf("%-8s jit: %llu blocks, %llu instructions compiled, %llu interpreted\n",
                   fam->name, (unsigned long long)(js->blocks - seen.blocks),
                   (unsigned long long)(js->insns_compiled - seen.insns_compiled),
                   (unsigned long long)(js->insns_interpreted - seen.insns_interpreted));
            seen.blocks = js->blocks;
            seen.insns_compiled = js->insns_compiled;
            seen.insns_interpreted = js->insns_interpreted;
        }
    }
    if (coverage) {
        printf("\n");
        print_coverage();
    }
    printf("soft-cpu differential tests: %s", total_fail ? "FAILED" : "all passed");
    if (not_run_host || not_run_bug)
        printf(" (not run: %u families on this host, %u with known bugs)", not_run_host,
               not_run_bug);
    printf("\n");
    return total_fail ? 1 : 0;
}
