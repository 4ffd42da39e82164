/* The software CPU's architectural state and its run interface.
 *
 * One struct soft_cpu per virtual CPU. Everything the guest can observe lives here in a plain
 * form (registers, RIP, segment caches, control registers, SSE and x87 state) so that the VMM can
 * convert it to and from its common vCPU state; the lazily kept arithmetic flags are folded into
 * RFLAGS by soft_cpu_get_rflags(). Memory goes through a small soft TLB whose misses call back
 * into the owner (flat process memory in vireo-user, guest RAM + MMIO in system mode). */
#ifndef VIREO_ACCEL_SOFT_CPU_H
#define VIREO_ACCEL_SOFT_CPU_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

enum soft_reg {
    SOFT_RAX, SOFT_RCX, SOFT_RDX, SOFT_RBX, SOFT_RSP, SOFT_RBP, SOFT_RSI, SOFT_RDI,
    SOFT_R8, SOFT_R9, SOFT_R10, SOFT_R11, SOFT_R12, SOFT_R13, SOFT_R14, SOFT_R15,
    SOFT_RZERO, /* always 0: the decoder's "no base / no index" register */
    SOFT_NREGS
};

enum soft_seg { SOFT_ES, SOFT_CS, SOFT_SS, SOFT_DS, SOFT_FS, SOFT_GS, SOFT_NSEGS };

/* Exceptions raised by instructions (vector numbers as the SDM numbers them). */
enum soft_vector {
    SOFT_EXC_DE = 0, SOFT_EXC_DB = 1, SOFT_EXC_NMI = 2, SOFT_EXC_BP = 3, SOFT_EXC_BR = 5,
    SOFT_EXC_UD = 6,
    SOFT_EXC_NM = 7, SOFT_EXC_DF = 8, SOFT_EXC_TS = 10, SOFT_EXC_NP = 11, SOFT_EXC_SS = 12,
    SOFT_EXC_GP = 13, SOFT_EXC_PF = 14, SOFT_EXC_MF = 16, SOFT_EXC_AC = 17, SOFT_EXC_XM = 19,
};

#define SOFT_INTR_KICK    1
#define SOFT_INTR_PENDING 2

/* Why soft_cpu_run() returned. */
enum soft_exit {
    SOFT_EXIT_NONE = 0,
    SOFT_EXIT_SYSCALL,   /* SYSCALL in user mode: the owner services it, RIP is past it */
    SOFT_EXIT_EXCEPTION, /* cpu->exc_vector/exc_error/cr2 say which; RIP is the faulting insn */
    SOFT_EXIT_HLT,
    SOFT_EXIT_STEP,      /* soft_cpu_step() finished its one instruction */
    SOFT_EXIT_IRQ,       /* system mode: cpu->intr_request asked the owner to look (see below) */
    SOFT_EXIT_IO,        /* IN/OUT: cpu->io says what; RIP is past the instruction, and an IN
                            completes with soft_cpu_finish_in() before the next run */
};

/* A port access waiting for the owner (SOFT_EXIT_IO). */
struct soft_io {
    uint16_t port;
    uint8_t size;  /* 1, 2 or 4 */
    uint8_t write;
    uint32_t data; /* OUT: the value written; IN: the owner stores the value read */
};

/* Lazy flags: the last flag-setting operation and its inputs. SOFT_CC_EFLAGS means cc_res
 * already holds the six arithmetic flags. The size index (0..3 = 8..64 bits) is added to the
 * operation so that one switch decodes both. */
enum soft_cc_op {
    SOFT_CC_EFLAGS = 0,
    SOFT_CC_ADD = 4, SOFT_CC_ADC = 8, SOFT_CC_SUB = 12, SOFT_CC_SBB = 16, SOFT_CC_LOGIC = 20,
    SOFT_CC_INC = 24, SOFT_CC_DEC = 28, SOFT_CC_SHL = 32, SOFT_CC_SHR = 36, SOFT_CC_SAR = 40,
};

#define SOFT_CF 0x0001u
#define SOFT_PF 0x0004u
#define SOFT_AF 0x0010u
#define SOFT_ZF 0x0040u
#define SOFT_SF 0x0080u
#define SOFT_TF 0x0100u
#define SOFT_IF 0x0200u
#define SOFT_DF 0x0400u
#define SOFT_OF 0x0800u
#define SOFT_ARITH_FLAGS (SOFT_CF | SOFT_PF | SOFT_AF | SOFT_ZF | SOFT_SF | SOFT_OF)

struct soft_segment {
    uint16_t selector;
    uint64_t base;
    uint32_t limit;
    uint16_t attr; /* type, S, DPL, P, AVL, L, D/B, G as in the descriptor's bits 40..55 */
};

struct soft_dtable {
    uint64_t base;
    uint16_t limit;
};

union soft_xmm {
    uint8_t b[16];
    uint16_t w[8];
    uint32_t d[4];
    uint64_t q[2];
    int8_t sb[16];
    int16_t sw[8];
    int32_t sd[4];
    int64_t sq[2];
    float f[4];
    double fd[2];
};

/* x87 state: the stack is kept as host long doubles (the host is x86, so they are the same
 * 80-bit format); ST(i) is st[(top + i) & 7]. */
struct soft_x87 {
    long double st[8];
    uint16_t fcw, fsw, ftw; /* ftw: full 16-bit tag word, 3 = empty */
    uint16_t top;
    uint16_t fop;
    uint64_t fip, fdp;
};

/* One soft-TLB entry. Tags are the guest page address or -1; a hit gives host = guest + addend. */
struct soft_tlb_entry {
    uint64_t tag_read, tag_write, tag_exec;
    uint64_t addend;
};

/* Entries per bank, as a power of two; EXTRA_CFLAGS=-DSOFT_TLB_BITS=N builds another size to
 * compare. 4096: with 1024, Linux's 2 MiB-aligned kernel text, data and the direct map's alias
 * of the image kept evicting each other (docs/soft-cpu.md, TLB size). */
#ifndef SOFT_TLB_BITS
#define SOFT_TLB_BITS 12
#endif
#define SOFT_TLB_SIZE (1u << SOFT_TLB_BITS)

enum soft_access { SOFT_ACC_READ = 1, SOFT_ACC_WRITE = 2, SOFT_ACC_EXEC = 4 };

/* Attributes of a TLB entry's translation (cpu->tlb_attr). */
enum soft_tlb_attr {
    SOFT_TLB_GLOBAL = 1, /* G with CR4.PGE: survives CR3 writes */
    SOFT_TLB_LARGE = 2,  /* part of a page larger than 4 KiB, which INVLPG drops whole */
    SOFT_TLB_FILLED = 4, /* filled since its last drop: the flushes drop only such entries */
};

struct soft_cpu;
struct soft_cache;

/* What the owner of a CPU provides. tlb_fill translates the page holding vaddr for access and
 * fills *entry (tags it does not grant stay -1); it returns 0, or a negative vector number after
 * setting cpu->exc_error/cr2 (the instruction then faults precisely), or 1 when the page is not
 * RAM (system mode): entry->addend is then the page's guest-physical address, nothing is
 * cached, and the access goes to mmio_read/mmio_write. */
struct soft_cpu_ops {
    int (*tlb_fill)(struct soft_cpu *cpu, uint64_t vaddr, int access,
                    struct soft_tlb_entry *entry);
    /* Device accesses (system mode; NULL in user mode): size 1..8 bytes at gpa. */
    void (*mmio_read)(struct soft_cpu *cpu, uint64_t gpa, unsigned size, void *data);
    void (*mmio_write)(struct soft_cpu *cpu, uint64_t gpa, unsigned size, const void *data);
    /* Optional: CPUID from the VMM's model instead of soft_cpuid(). */
    void (*cpuid)(struct soft_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
    /* Optional: the guest TSC before cpu->tsc_offset (system mode: the clock the LAPIC uses);
     * NULL means the host's RDTSC. */
    uint64_t (*tsc)(struct soft_cpu *cpu);
    /* Optional (system mode): MSRs the CPU does not keep itself (APIC_BASE, x2APIC,
     * TSC_DEADLINE...). Return 0 when handled, or -ENOENT so that the access raises #GP. */
    int (*msr_read)(struct soft_cpu *cpu, uint32_t msr, uint64_t *value);
    int (*msr_write)(struct soft_cpu *cpu, uint32_t msr, uint64_t value);
};

/* CPU model: which optional features CPUID advertises and the decoder accepts. */
struct soft_cpu_model {
    bool cx16, popcnt, lzcnt, bmi1, movbe, sse3, ssse3;
    bool pdpe1gb; /* 1 GiB pages in the page walk (system mode) */
};

struct soft_insn;

struct soft_cpu {
    uint64_t regs[SOFT_NREGS];
    uint64_t rip;
    uint64_t rflags; /* non-arithmetic bits (DF, IF, ...) plus bit 1; arithmetic bits are lazy */
    uint64_t cc_res, cc_a, cc_b; /* lazy flags: result and operands of cc_op */
    uint32_t cc_op;

    struct soft_segment seg[SOFT_NSEGS];
    struct soft_segment ldtr, tr;
    struct soft_dtable gdtr, idtr;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer;
    uint64_t tsc_offset;
    uint64_t star, lstar, cstar, sfmask, kernel_gs_base, tsc_aux;
    uint8_t cpl;
    uint8_t system;     /* system mode: SYSCALL, INT n and exceptions go through the IDT */
    uint8_t irq_shadow;
    /* Set by any thread (atomically): SOFT_INTR_KICK makes the run loop return SOFT_EXIT_IRQ
     * at the next block boundary; SOFT_INTR_PENDING does so once RFLAGS.IF = 1 and no shadow.
     * The owner clears what it has dealt with. */
    int intr_request; /* STI / MOV SS shadow: no interrupt before the next instruction */
    uint64_t dr[8];
    uint64_t pat, misc_enable, tsc_adjust;
    uint64_t mtrr_def, mtrr_fixed[11], mtrr_var[16];
    struct soft_io io;
    uint8_t bounce[16]; /* page-crossing and MMIO reads land here */
    uintptr_t fetch_host_page;  /* host address of the first page the block decoder fetched from */
    uintptr_t fetch_host_page2; /* and of a second one (an instruction straddling pages) */
    uint8_t sys_access; /* an implicit supervisor access (descriptor table, TSS, delivery
                           stack) is in progress: tlb_fill checks supervisor rights */
    uint8_t mode; /* 64, 32 or 16: the default operand/address size of the code segment */

    union soft_xmm xmm[16];
    uint32_t mxcsr;
    struct soft_x87 fpu;

    struct soft_cpu_model model;

    /* Result of the last run. */
    int exit_reason;
    uint8_t exc_vector;
    uint8_t exc_softint; /* INT n / INT3 / INTO: RIP is past it, the gate DPL is checked */
    uint32_t exc_error;

    /* Internal execution state. */
    const struct soft_insn *cur;   /* instruction being executed (for precise faults) */
    volatile int running;          /* inside soft_cpu_run: host faults belong to the guest */
    sigjmp_buf fault_jmp;
    /* The soft TLB, one bank per privilege: [0] for CPL 0-2, [1] for CPL 3 (see soft_tlb()).
     * Entries grant what the page tables allow at that privilege, so switching between user
     * and kernel mode (every system call and interrupt) keeps both working sets. */
    struct soft_tlb_entry tlbs[2][SOFT_TLB_SIZE];
    /* What each entry's translation was (SOFT_TLB_GLOBAL, SOFT_TLB_LARGE, SOFT_TLB_FILLED),
     * parallel to tlbs and kept apart from them so the inline probes' entries stay 32 bytes:
     * CR3 writes keep global entries and INVLPG drops every entry of a large page. */
    uint8_t tlb_attr[2][SOFT_TLB_SIZE];
    uint8_t fill_attr;      /* set by the owner's tlb_fill: the attributes of its answer */
    bool tlb_any_global;    /* some entry may have SOFT_TLB_GLOBAL (since the last full flush) */
    /* The 1 GiB regions (guest linear address bits 30-35, so regions 64 GiB apart share a
     * bit) where some entry may have SOFT_TLB_LARGE: INVLPG elsewhere need not look for the
     * entries of a large page (soft_tlb_flush_page). */
    uint64_t tlb_large_regions;
    const struct soft_cpu_ops *ops;
    void *opaque;
    struct soft_cache *cache;
    void *last_block;      /* block whose end returned to the run loop (for chaining) */
    uint32_t chain_budget; /* blocks that may still chain without returning to the loop */
    uint64_t insn_count; /* instructions retired (blocks are counted whole; compiled code
                            counts only in user mode, where vireo-user reports it) */
    uint64_t jit_scratch; /* compiled code keeps a value here across calls (jit_insn.c) */
};

/* The TLB bank of the current privilege. */
static inline struct soft_tlb_entry *soft_tlb(struct soft_cpu *cpu)
{
    return cpu->tlbs[cpu->cpl == 3];
}

/* Set up a CPU in its reset-like state for the given mode (64 = long mode, flat segments).
 * Allocates the decoded-block cache; returns 0 or -ENOMEM. */
int soft_cpu_init(struct soft_cpu *cpu, const struct soft_cpu_ops *ops, void *opaque, int mode);
/* Free what soft_cpu_init allocated. */
void soft_cpu_destroy(struct soft_cpu *cpu);

/* Run until something needs the owner (see enum soft_exit); returns the exit reason. */
int soft_cpu_run(struct soft_cpu *cpu);
/* Execute exactly one instruction at RIP, decoded afresh (the differential tests use this). */
int soft_cpu_step(struct soft_cpu *cpu);

/* RFLAGS with the lazy arithmetic flags folded in, and its inverse. */
uint64_t soft_cpu_get_rflags(struct soft_cpu *cpu);
void soft_cpu_set_rflags(struct soft_cpu *cpu, uint64_t rflags);

/* Drop all translations (after the owner changed mappings) and all decoded code. */
void soft_cpu_flush_tlb(struct soft_cpu *cpu);
/* Drop all translations but keep decoded code (CR0/CR4/EFER paging changes). */
void soft_tlb_flush(struct soft_cpu *cpu);
/* Drop the translations that are not global (a CR3 write). */
void soft_tlb_flush_nonglobal(struct soft_cpu *cpu);
/* Drop the translations of the page holding lin, of any size (INVLPG). */
void soft_tlb_flush_page(struct soft_cpu *cpu, uint64_t lin);
/* Put e (just filled by the owner's tlb_fill, whose attributes are in cpu->fill_attr) into the
 * TLB slot te. */
void soft_tlb_install(struct soft_cpu *cpu, struct soft_tlb_entry *te,
                      const struct soft_tlb_entry *e);
/* In the child of a fork(): get a code buffer of its own (compiled code lives in memory the
 * parent shares) and drop all decoded code. Outside soft_cpu_run only. */
void soft_cpu_forked(struct soft_cpu *cpu);
/* Forget decoded code in [addr, addr + len): the owner calls it when code pages change. */
void soft_cpu_invalidate_code(struct soft_cpu *cpu, uint64_t addr, uint64_t len);

/* Called from a host SIGSEGV/SIGBUS handler while cpu->running: turn the host fault into a
 * precise guest #PF at the current instruction. Does not return. */
void soft_cpu_host_fault(struct soft_cpu *cpu, uint64_t addr) __attribute__((noreturn));

/* Complete an IN after SOFT_EXIT_IO: cpu->io.data goes to AL/AX/EAX. */
void soft_cpu_finish_in(struct soft_cpu *cpu);

/* CPUID as the CPU model answers it. */
void soft_cpuid(struct soft_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

#endif
