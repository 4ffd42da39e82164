/* Differential tests of the software CPU against the host CPU.
 *
 * For every instruction family, seeded random instruction encodings (operand sizes, REX bits,
 * register and memory forms) run on seeded random registers, flags, XMM values and memory:
 * once natively (native.S loads the state, jumps to a code page holding the bytes, saves the
 * state) and once on the interpreter (soft_cpu_step at the same address, same memory). The
 * general registers, XMM registers, the 256-byte memory window and the flags the SDM defines
 * for the instruction must match, and so must the fault (SIGFPE for #DE, ...).
 *
 *   diff [-v] [-n CASES] [-s SEED] [--coverage] [FAMILY...]
 * Exit status 0 only if everything matched. --coverage prints the opcode maps as markdown:
 * which opcodes the decoder implements and which the run above tested against the host. */
#include "accel/soft/cpu.h"
#include "accel/soft/decode.h"
#include "accel/soft/exec.h"

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct diff_regs {
    uint64_t r[16];
    uint64_t rflags;
    uint8_t xmm[16][16];
};

void diff_run_native(struct diff_regs *s, const void *code);
void diff_native_return(void);

#include "diff_gen.h"

/* --- running ------------------------------------------------------------------------------ */

static uint8_t *code_page;
static uint8_t *mem;
static sigjmp_buf native_jmp;
static volatile int native_sig;
static int verbose;

static void on_native_fault(int sig)
{
    native_sig = sig;
    siglongjmp(native_jmp, 1);
}

static int flat_fill(struct soft_cpu *cpu, uint64_t vaddr, int access, struct soft_tlb_entry *e)
{
    (void)cpu;
    (void)access;
    uint64_t page = vaddr & ~0xfffull;
    e->tag_read = e->tag_write = e->tag_exec = page;
    e->addend = 0;
    return 0;
}

static const struct soft_cpu_ops flat_ops = {.tlb_fill = flat_fill};
static struct soft_cpu cpu;

static void on_interp_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (cpu.running)
        soft_cpu_host_fault(&cpu, (uint64_t)(uintptr_t)si->si_addr);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int vector_signal(int vector)
{
    switch (vector) {
    case 0: return SIGFPE;
    case 6: return SIGILL;
    default: return SIGSEGV;
    }
}

static void init_state(struct rng *r, const struct gen *g, struct diff_regs *s)
{
    for (int k = 0; k < 16; k++)
        s->r[k] = rval(r);
    s->r[4] = 0;
    s->r[3] = (uint64_t)(uintptr_t)mem; /* RBX: base of every memory operand */
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
    if (g->string) {
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
    if (g->x87) {
        int16_t w = (int16_t)rval(r);
        memcpy(mem + 16, &w, 2);
    }
}

/* Run the code natively; returns the signal it died of, or 0. */
static int run_native(const struct gen *g, struct diff_regs *s)
{
    memcpy(code_page, g->code, g->len);
    uint8_t *p = code_page + g->len;
    *p++ = 0xff; *p++ = 0x25; /* jmp *0(%rip) */
    memset(p, 0, 4);
    p += 4;
    uint64_t back = (uint64_t)(uintptr_t)diff_native_return;
    memcpy(p, &back, 8);
    native_sig = 0;
    if (sigsetjmp(native_jmp, 1) == 0)
        diff_run_native(s, code_page);
    if (native_sig && g->x87)
        __asm__ volatile("fninit");
    return native_sig;
}

static int run_interp(const struct gen *g, struct diff_regs *s)
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
    uint64_t start = (uint64_t)(uintptr_t)code_page, end = start + g->len;
    cpu.rip = start;
    int sig = 0;
    for (int n = 0; n < 64 && cpu.rip != end; n++) {
        int why = soft_cpu_step(&cpu);
        if (why == SOFT_EXIT_EXCEPTION) {
            sig = vector_signal(cpu.exc_vector);
            break;
        }
    }
    for (int k = 0; k < 16; k++)
        s->r[k] = cpu.regs[k];
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
    while (k < g->len && (g->code[k] == 0x66 || g->code[k] == 0xf2 || g->code[k] == 0xf3 ||
                          g->code[k] == 0xf0 || (g->code[k] & 0xf0) == 0x40))
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

/* One random case; returns 1 if native and interpreter agree. */
static int run_case(const struct family *f, struct rng *r, uint64_t *skipped)
{
    struct gen g;
    memset(&g, 0, sizeof(g));
    g.cl = -1;
    f->gen(r, &g);
    struct diff_regs in, nat, emu;
    init_state(r, &g, &in);
    static uint8_t mem_in[MEMSZ], mem_nat[MEMSZ];
    memcpy(mem_in, mem, MEMSZ);
    nat = in;
    int nsig = run_native(&g, &nat);
    memcpy(mem_nat, mem, MEMSZ);
    memcpy(mem, mem_in, MEMSZ);
    emu = in;
    int esig = run_interp(&g, &emu);

    char why[200] = "";
    if (nsig != esig) {
        snprintf(why, sizeof(why), "fault: native %d, interpreter %d", nsig, esig);
    } else if (nsig) {
        return 1; /* both faulted the same way: registers are the pre-instruction ones */
    } else {
        uint32_t fm = g.fmask;
        for (int k = 0; k < 16 && !why[0]; k++) {
            uint64_t a = nat.r[k], b = emu.r[k];
            if (g.fsw_only && k == 0) {
                a &= 0x4500;
                b &= 0x4500;
            }
            if (a != b)
                snprintf(why, sizeof(why), "%s: native %llx, interpreter %llx", regname[k],
                         (unsigned long long)a, (unsigned long long)b);
        }
        if (!why[0] && ((nat.rflags ^ emu.rflags) & fm))
            snprintf(why, sizeof(why), "flags: native %llx, interpreter %llx (mask %x)",
                     (unsigned long long)nat.rflags, (unsigned long long)emu.rflags, fm);
        for (int k = 0; k < 16 && !why[0]; k++) {
            if (memcmp(nat.xmm[k], emu.xmm[k], 16)) {
                uint64_t a[2], b[2];
                memcpy(a, nat.xmm[k], 16);
                memcpy(b, emu.xmm[k], 16);
                snprintf(why, sizeof(why), "xmm%d: native %016llx%016llx, interpreter "
                         "%016llx%016llx", k, (unsigned long long)a[1], (unsigned long long)a[0],
                         (unsigned long long)b[1], (unsigned long long)b[0]);
            }
        }
        for (int k = 0; k < MEMSZ && !why[0]; k++) {
            if (mem_nat[k] != mem[k])
                snprintf(why, sizeof(why), "memory[%d]: native %02x, interpreter %02x", k,
                         mem_nat[k], mem[k]);
        }
    }
    (void)skipped;
    note_opcode(&g, !why[0]);
    if (!why[0])
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
 * memory form. */
static int implemented(unsigned map, unsigned op, unsigned pfx)
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
           "the prefixes none/66/F3/F2 decodes.\n\n");
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
                    printf(" pfx |");
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
    code_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code_page == MAP_FAILED || mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (soft_cpu_init(&cpu, &flat_ops, NULL, 64) < 0)
        return 1;
    cpu.model.cx16 = true;

    int total_fail = 0;
    if (coverage)
        printf("| family | opcodes | random cases | result |\n| --- | --- | --- | --- |\n");
    for (size_t f = 0; f < nfamilies; f++) {
        const struct family *fam = &families[f];
        if (first < argc) {
            int want = 0;
            for (int k = first; k < argc; k++)
                want |= !strcmp(argv[k], fam->name);
            if (!want)
                continue;
        }
        struct sigaction sa;
        struct rng r = {seed ^ (0x9e3779b97f4a7c15ull * (f + 1))};
        unsigned fails = 0;
        uint64_t skipped = 0;
        for (unsigned c = 0; c < cases; c++) {
            /* Native faults return through native_jmp; interpreter faults are precise #PF. */
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = on_native_fault;
            sa.sa_flags = SA_NODEFER;
            sigaction(SIGFPE, &sa, NULL);
            sigaction(SIGILL, &sa, NULL);
            sigaction(SIGSEGV, &sa, NULL);
            sigaction(SIGBUS, &sa, NULL);
            /* The interpreter runs with its own fault handler installed just around it. */
            struct gen probe;
            (void)probe;
            if (!run_case(fam, &r, &skipped)) {
                if (++fails >= 10 && !verbose)
                    break;
            }
        }
        if (coverage)
            printf("| %s | %s | %u | %s |\n", fam->name, fam->opcodes, cases,
                   fails ? "FAILED" : "ok");
        else
            printf("%-8s %5u cases  %s\n", fam->name, cases, fails ? "FAILED" : "ok");
        total_fail += fails != 0;
    }
    (void)on_interp_fault;
    if (coverage) {
        printf("\n");
        print_coverage();
    }
    printf("soft-cpu differential tests: %s\n", total_fail ? "FAILED" : "all passed");
    return total_fail ? 1 : 0;
}
