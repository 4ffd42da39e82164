/* vireo-user: run a static x86-64 Linux program on the software CPU (test tooling).
 *
 *   vireo-user PROGRAM [ARGS...]
 *
 * The guest shares this process's address space ("guest physical" = our virtual addresses), so
 * system calls pass to the host kernel with their pointers unchanged. Only what would confuse
 * the host is emulated: brk, arch_prctl (FS/GS bases live in the soft CPU), signal handlers
 * (recorded, never installed), fork (the host forks the whole emulator), execve (re-executes
 * vireo-user on the new program); threads (clone with CLONE_VM) are refused with ENOSYS.
 * Guest faults become the same signal the native program would die of.
 * VIREO_USER_STATS=1 prints instruction counts to stderr at exit; VIREO_USER_TRACE=N traces
 * every instruction from the N-th on (run one by one, so blocks are counted exactly). */
#include "accel/soft/user/loader.h"

#include "accel/soft/cpu.h"
#include "accel/soft/jit.h"

#include <asm/prctl.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct soft_cpu g_cpu;
static struct user_image g_img;
static struct sigaction g_guest_sigactions[65];
static int g_stats;

/* Code pages found mapped since the guest's last system call. Checking a page costs one
 * (msync), and instruction fetches refill the soft TLB whenever data pages evict code pages
 * from it (busybox sort of 50000 lines made ~180000 such calls). Only the guest's own system
 * calls change its mappings (it has no threads), so each one starts a new generation, which
 * forgets every entry at once. */
#define MAPPED_SLOTS 256
static struct {
    uint64_t page;
    uint64_t generation;
} g_mapped[MAPPED_SLOTS];
static uint64_t g_mapped_generation = 1;

/* Whether the page at page is mapped (its code can be read without a host fault). */
static int code_page_mapped(uint64_t page)
{
    unsigned slot = (unsigned)(page >> 12) % MAPPED_SLOTS;
    if (g_mapped[slot].generation == g_mapped_generation && g_mapped[slot].page == page)
        return 1;
    if (msync((void *)(uintptr_t)page, 4096, MS_ASYNC) != 0)
        return 0;
    g_mapped[slot].page = page;
    g_mapped[slot].generation = g_mapped_generation;
    return 1;
}

static int flat_tlb_fill(struct soft_cpu *cpu, uint64_t vaddr, int access,
                         struct soft_tlb_entry *e)
{
    (void)cpu;
    uint64_t page = vaddr & ~0xfffull;
    if (access == SOFT_ACC_EXEC) {
        /* Decoding must not fault the host: check that the page is mapped at all. Data accesses
         * skip this and let the host's SIGSEGV report them precisely. */
        if (!code_page_mapped(page)) {
            cpu->cr2 = vaddr;
            cpu->exc_error = 0x14;
            return -SOFT_EXC_PF;
        }
    }
    e->tag_read = e->tag_write = e->tag_exec = page;
    e->addend = 0;
    return 0;
}

static const struct soft_cpu_ops flat_ops = {.tlb_fill = flat_tlb_fill};

static void on_host_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (g_cpu.running)
        soft_cpu_host_fault(&g_cpu, (uint64_t)(uintptr_t)si->si_addr);
    /* A fault in vireo-user itself: die the ordinary way. */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void die_by_signal(int sig)
{
    fflush(NULL);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig);
}

static void print_stats(void)
{
    if (!g_stats)
        return;
    fprintf(stderr, "vireo-user: %llu guest instructions\n",
            (unsigned long long)g_cpu.insn_count);
    if (soft_cache_jit(&g_cpu))
        soft_jit_print_stats(soft_cache_jit(&g_cpu), stderr);
}

static int64_t do_arch_prctl(struct soft_cpu *cpu, uint64_t code, uint64_t addr)
{
    switch (code) {
    case ARCH_SET_FS: cpu->seg[SOFT_FS].base = addr; return 0;
    case ARCH_SET_GS: cpu->seg[SOFT_GS].base = addr; return 0;
    case ARCH_GET_FS: *(uint64_t *)(uintptr_t)addr = cpu->seg[SOFT_FS].base; return 0;
    case ARCH_GET_GS: *(uint64_t *)(uintptr_t)addr = cpu->seg[SOFT_GS].base; return 0;
    default: return -EINVAL;
    }
}

static int64_t host_syscall(uint64_t nr, const uint64_t a[6])
{
    long r = syscall((long)nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    return r == -1 ? -errno : r;
}

/* Code may live in what these calls change: forget its decoded form first. */
static void maybe_invalidate(struct soft_cpu *cpu, uint64_t addr, uint64_t len)
{
    soft_cpu_invalidate_code(cpu, addr & ~0xfffull, len + 4096);
}

/* fork, vfork and fork-like clone: the host forks this whole process, interpreter included,
 * and the child carries on with RAX = 0. vfork becomes a plain fork, because a child sharing
 * our memory would scribble on the parent's interpreter state. */
static int64_t do_fork(uint64_t flags, uint64_t parent_tid, uint64_t child_tid)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        soft_cpu_forked(&g_cpu);
        if (flags & CLONE_CHILD_SETTID)
            *(pid_t *)(uintptr_t)child_tid = (pid_t)syscall(SYS_gettid);
        if (flags & CLONE_CHILD_CLEARTID)
            syscall(SYS_set_tid_address, child_tid);
        return 0;
    }
    if (flags & CLONE_PARENT_SETTID)
        *(pid_t *)(uintptr_t)parent_tid = pid;
    return pid;
}

/* execve of another static program: exec vireo-user again so that it stays emulated. */
static int64_t do_execve(const char *path, char *const *argv, char *const *envp)
{
    if (path && strcmp(path, "/proc/self/exe") == 0)
        path = g_img.exe_path; /* the guest means itself, not vireo-user */
    if (access(path, X_OK) != 0)
        return -errno;
    fflush(NULL);
    if (!user_is_static_elf(path)) {
        /* Scripts and dynamically linked programs are not ours to run: they run natively. */
        execve(path, argv, envp);
        return -errno;
    }
    size_t n = 0;
    while (argv && argv[n])
        n++;
    char **nargv = calloc(n + 5, sizeof(char *));
    if (!nargv)
        return -ENOMEM;
    nargv[0] = "vireo-user";
    nargv[1] = "--argv0"; /* multi-call programs like busybox dispatch on argv[0] */
    nargv[2] = n ? argv[0] : (char *)path;
    nargv[3] = (char *)path;
    for (size_t k = 1; k < n; k++)
        nargv[k + 3] = argv[k];
    execve("/proc/self/exe", nargv, envp);
    int err = errno;
    free(nargv);
    return -err;
}

static int64_t do_syscall(struct soft_cpu *cpu)
{
    uint64_t nr = cpu->regs[SOFT_RAX];
    uint64_t a[6] = {cpu->regs[SOFT_RDI], cpu->regs[SOFT_RSI], cpu->regs[SOFT_RDX],
                     cpu->regs[SOFT_R10], cpu->regs[SOFT_R8], cpu->regs[SOFT_R9]};
    switch (nr) {
    case SYS_exit:
    case SYS_exit_group:
        print_stats();
        fflush(NULL);
        _exit((int)a[0]);
    case SYS_brk:
        return (int64_t)user_brk(&g_img, a[0]);
    case SYS_arch_prctl:
        return do_arch_prctl(cpu, a[0], a[1]);
    case SYS_fork: case SYS_vfork:
        return do_fork(0, 0, 0);
    case SYS_clone:
        /* Threads share the address space with their parent: not supported (one CPU). */
        if (a[0] & CLONE_VM && !(a[0] & CLONE_VFORK))
            return -ENOSYS;
        if (a[1])
            return -EINVAL; /* a new stack only makes sense with CLONE_VM */
        return do_fork(a[0], a[2], a[3]);
    case SYS_execve:
        return do_execve((const char *)(uintptr_t)a[0], (char *const *)(uintptr_t)a[1],
                         (char *const *)(uintptr_t)a[2]);
    case SYS_execveat: case SYS_rseq: case SYS_rt_sigreturn:
#ifdef SYS_clone3
    case SYS_clone3:
#endif
        return -ENOSYS;
    case SYS_rt_sigaction: {
        /* Guest handlers would be called with host state: record them, install nothing. */
        int sig = (int)a[0];
        if (sig < 1 || sig > 64 || sig == SIGKILL || sig == SIGSTOP)
            return -EINVAL;
        if (a[2])
            memcpy((void *)(uintptr_t)a[2], &g_guest_sigactions[sig], 32);
        if (a[1])
            memcpy(&g_guest_sigactions[sig], (const void *)(uintptr_t)a[1], 32);
        return 0;
    }
    case SYS_sigaltstack:
        if (a[1])
            memset((void *)(uintptr_t)a[1], 0, 24);
        return 0;
    case SYS_munmap: case SYS_mprotect:
        maybe_invalidate(cpu, a[0], a[1]);
        return host_syscall(nr, a);
    case SYS_mremap:
        maybe_invalidate(cpu, a[0], a[1]);
        return host_syscall(nr, a);
    case SYS_mmap:
        if (a[3] & MAP_FIXED)
            maybe_invalidate(cpu, a[0], a[1]);
        return host_syscall(nr, a);
    case SYS_readlink:
        if (a[0] && strcmp((const char *)(uintptr_t)a[0], "/proc/self/exe") == 0)
            return user_readlink_exe(&g_img, (char *)(uintptr_t)a[1], a[2]);
        return host_syscall(nr, a);
    default:
        return host_syscall(nr, a);
    }
}

static int exception_signal(const struct soft_cpu *cpu)
{
    switch (cpu->exc_vector) {
    case SOFT_EXC_DE: return SIGFPE;
    case SOFT_EXC_UD: return SIGILL;
    case SOFT_EXC_BP: case SOFT_EXC_DB: return SIGTRAP;
    case SOFT_EXC_MF: case SOFT_EXC_XM: return SIGFPE;
    case SOFT_EXC_AC: return SIGBUS;
    default: return SIGSEGV;
    }
}

int main(int argc, char **argv)
{
    const char *argv0 = NULL;
    if (argc >= 4 && strcmp(argv[1], "--argv0") == 0) {
        argv0 = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: vireo-user [--argv0 NAME] PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *path = argv[1];
    if (argv0)
        argv[1] = (char *)argv0; /* what the guest sees as argv[0] */
    g_stats = getenv("VIREO_USER_STATS") != NULL;
    if (soft_cpu_init(&g_cpu, &flat_ops, NULL, 64) < 0) {
        fprintf(stderr, "vireo-user: out of memory\n");
        return 1;
    }
    uint32_t feat[4];
    soft_cpuid(&g_cpu, 1, 0, feat);
    int r = user_load(&g_img, path, argc - 1, argv + 1, feat[3]);
    if (r < 0) {
        fprintf(stderr, "vireo-user: %s: %s\n", path, strerror(-r));
        return 127;
    }
    g_cpu.rip = g_img.entry;
    g_cpu.regs[SOFT_RSP] = g_img.sp;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_host_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    const char *trace = getenv("VIREO_USER_TRACE");
    uint64_t trace_from = trace ? strtoull(trace, NULL, 0) : 0;
    for (;;) {
        int why;
        if (trace && g_cpu.insn_count >= trace_from) {
            /* Debug aid: one instruction at a time with the registers it starts from. */
            fprintf(stderr, "%llu rip=%llx rax=%llx rcx=%llx rdx=%llx rbx=%llx rsp=%llx rbp=%llx "
                    "rsi=%llx rdi=%llx fl=%llx\n", (unsigned long long)g_cpu.insn_count,
                    (unsigned long long)g_cpu.rip, (unsigned long long)g_cpu.regs[0],
                    (unsigned long long)g_cpu.regs[1], (unsigned long long)g_cpu.regs[2],
                    (unsigned long long)g_cpu.regs[3], (unsigned long long)g_cpu.regs[4],
                    (unsigned long long)g_cpu.regs[5], (unsigned long long)g_cpu.regs[6],
                    (unsigned long long)g_cpu.regs[7],
                    (unsigned long long)soft_cpu_get_rflags(&g_cpu));
            why = soft_cpu_step(&g_cpu);
            if (why == SOFT_EXIT_STEP)
                continue;
        } else {
            why = soft_cpu_run(&g_cpu);
        }
        if (why == SOFT_EXIT_SYSCALL) {
            g_cpu.regs[SOFT_RAX] = (uint64_t)do_syscall(&g_cpu);
            g_mapped_generation++; /* the call may have mapped or unmapped pages */
            continue;
        }
        int sig = why == SOFT_EXIT_EXCEPTION ? exception_signal(&g_cpu) : SIGSEGV;
        const uint8_t *p = (const uint8_t *)(uintptr_t)g_cpu.rip;
        fprintf(stderr, "vireo-user: guest %s at rip=%#llx (vector %d, cr2=%#llx)",
                strsignal(sig), (unsigned long long)g_cpu.rip, g_cpu.exc_vector,
                (unsigned long long)g_cpu.cr2);
        if (g_cpu.exc_vector == SOFT_EXC_UD && msync((void *)((uintptr_t)p & ~0xfffull), 4096,
                                                     MS_ASYNC) == 0) {
            fprintf(stderr, " bytes:");
            for (int k = 0; k < 8; k++)
                fprintf(stderr, " %02x", p[k]);
        }
        fprintf(stderr, "\n");
        print_stats();
        die_by_signal(sig);
    }
}
