/* System instructions of the software CPU run as code: the climb from 32-bit protected mode to
 * long mode (CR4.PAE, EFER.LME via WRMSR, CR0.PG, far jump into a 64-bit segment), port I/O
 * exits and IN completion, privilege checks (#GP at CPL 3), unknown MSRs, IRETQ, SYSCALL and
 * SYSRET in system mode, STI's interrupt shadow, VERR/VERW and real mode's 64 KiB segment
 * limits. Guest memory is a flat 64 KiB buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "accel/soft/cpu.h"
#include "accel/soft/mmu.h"

#define GUEST_SIZE 0x10000u
#define GDT 0x1000

static uint8_t guest[GUEST_SIZE] __attribute__((aligned(4096)));
static struct soft_cpu cpu;

static int fill(struct soft_cpu *c, uint64_t vaddr, int access, struct soft_tlb_entry *e)
{
    if (vaddr >= GUEST_SIZE) {
        c->cr2 = vaddr;
        c->exc_error = access == SOFT_ACC_WRITE ? SOFT_PF_W : 0;
        return -SOFT_EXC_PF;
    }
    uint64_t page = vaddr & ~0xfffull;
    e->tag_read = e->tag_write = e->tag_exec = page;
    e->addend = (uint64_t)(uintptr_t)guest;
    return 0;
}

static const struct soft_cpu_ops ops = {.tlb_fill = fill};

static void wr64(uint64_t a, uint64_t v)
{
    memcpy(guest + a, &v, 8);
}

static int setup(void **state)
{
    (void)state;
    memset(guest, 0xcc, sizeof(guest));
    assert_int_equal(soft_cpu_init(&cpu, &ops, NULL, 64), 0);
    cpu.system = 1;
    cpu.cpl = 0;
    cpu.seg[SOFT_CS].selector = 0x08;
    cpu.regs[SOFT_RSP] = 0x8000;
    wr64(GDT, 0);
    wr64(GDT + 0x08, 0x00af9b000000ffffull); /* 64-bit code */
    wr64(GDT + 0x10, 0x00cf93000000ffffull); /* data */
    wr64(GDT + 0x18, 0x00cf9b000000ffffull); /* 32-bit code */
    wr64(GDT + 0x20, 0x00cff3000000ffffull); /* user data */
    wr64(GDT + 0x28, 0x00affb000000ffffull); /* user 64-bit code */
    cpu.gdtr = (struct soft_dtable){GDT, 0x2f};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    soft_cpu_destroy(&cpu);
    return 0;
}

static void load(uint64_t at, const uint8_t *code, size_t len)
{
    memcpy(guest + at, code, len);
    soft_cpu_flush_tlb(&cpu);
    cpu.rip = at;
}

static void test_protected_to_long_mode(void **state)
{
    (void)state;
    cpu.efer = 0;
    cpu.cr0 = SOFT_CR0_PE;
    cpu.cr4 = 0;
    cpu.mode = 32;
    cpu.seg[SOFT_CS] = (struct soft_segment){0x18, 0, 0xffffffff, 0xc09b};
    static const uint8_t code[] = {
        0x0f, 0x20, 0xe0,                         /* mov eax, cr4 */
        0x83, 0xc8, 0x20,                         /* or eax, 0x20 (PAE) */
        0x0f, 0x22, 0xe0,                         /* mov cr4, eax */
        0xb9, 0x80, 0x00, 0x00, 0xc0,             /* mov ecx, 0xc0000080 */
        0x0f, 0x32,                               /* rdmsr */
        0x0d, 0x00, 0x01, 0x00, 0x00,             /* or eax, 0x100 (LME) */
        0x0f, 0x30,                               /* wrmsr */
        0x0f, 0x20, 0xc0,                         /* mov eax, cr0 */
        0x0d, 0x00, 0x00, 0x00, 0x80,             /* or eax, 0x80000000 (PG) */
        0x0f, 0x22, 0xc0,                         /* mov cr0, eax */
        0xea, 0x00, 0x30, 0x00, 0x00, 0x08, 0x00, /* ljmp 0x08:0x3000 */
    };
    load(0x2000, code, sizeof(code));
    static const uint8_t code64[] = {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 0xf4}; /* movabs; hlt */
    memcpy(guest + 0x3000, code64, sizeof(code64));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_HLT);
    assert_true(cpu.efer & SOFT_EFER_LMA);
    assert_true(cpu.cr0 & SOFT_CR0_PG);
    assert_int_equal(cpu.mode, 64);
    assert_int_equal(cpu.seg[SOFT_CS].selector, 0x08);
    assert_int_equal(cpu.regs[SOFT_RAX], 0x0807060504030201ull); /* a 64-bit instruction ran */
    assert_int_equal(cpu.rip, 0x3000 + sizeof(code64));
}

static void test_paging_without_pae_in_long_mode_faults(void **state)
{
    (void)state;
    cpu.efer = SOFT_EFER_LME;
    cpu.cr0 = SOFT_CR0_PE;
    cpu.cr4 = 0;
    cpu.mode = 32;
    cpu.seg[SOFT_CS] = (struct soft_segment){0x18, 0, 0xffffffff, 0xc09b};
    static const uint8_t code[] = {0xb8, 0x01, 0x00, 0x00, 0x80, /* mov eax, 0x80000001 */
                                   0x0f, 0x22, 0xc0};            /* mov cr0, eax */
    load(0x2000, code, sizeof(code));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
    assert_int_equal(cpu.rip, 0x2005);
    assert_false(cpu.cr0 & SOFT_CR0_PG);
}

static void test_port_io(void **state)
{
    (void)state;
    static const uint8_t code[] = {
        0x66, 0xba, 0xf8, 0x03, /* mov dx, 0x3f8 */
        0xb0, 0x41,             /* mov al, 0x41 */
        0xee,                   /* out dx, al */
        0xe4, 0x60,             /* in al, 0x60 */
        0xf4,                   /* hlt */
    };
    load(0x2000, code, sizeof(code));
    cpu.regs[SOFT_RAX] = 0x1234567800ull;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_IO);
    assert_int_equal(cpu.io.port, 0x3f8);
    assert_int_equal(cpu.io.size, 1);
    assert_true(cpu.io.write);
    assert_int_equal(cpu.io.data, 0x41);
    assert_int_equal(cpu.rip, 0x2007);
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_IO);
    assert_int_equal(cpu.io.port, 0x60);
    assert_false(cpu.io.write);
    cpu.io.data = 0x5a;
    soft_cpu_finish_in(&cpu);
    assert_int_equal(cpu.regs[SOFT_RAX], 0x123456785aull); /* AL only */
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_HLT);
}

static void test_privileged_at_cpl3(void **state)
{
    (void)state;
    static const uint8_t code[] = {0x0f, 0x20, 0xc0}; /* mov rax, cr0 */
    load(0x2000, code, sizeof(code));
    cpu.cpl = 3;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
    assert_int_equal(cpu.rip, 0x2000);
    static const uint8_t out[] = {0xe6, 0x80}; /* out 0x80, al (IOPL 0) */
    load(0x2000, out, sizeof(out));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
}

static void test_msrs(void **state)
{
    (void)state;
    static const uint8_t code[] = {0x0f, 0x30, /* wrmsr */
                                   0x0f, 0x32, /* rdmsr */
                                   0xf4};
    load(0x2000, code, sizeof(code));
    cpu.regs[SOFT_RCX] = 0xc0000102; /* KERNEL_GS_BASE */
    cpu.regs[SOFT_RAX] = 0x89abcdef;
    cpu.regs[SOFT_RDX] = 0xffff8000;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_HLT);
    assert_int_equal(cpu.kernel_gs_base, 0xffff800089abcdefull);
    assert_int_equal(cpu.regs[SOFT_RAX], 0x89abcdef);
    assert_int_equal(cpu.regs[SOFT_RDX], 0xffff8000);
    /* A non-canonical base and an unknown MSR raise #GP. */
    load(0x2000, code, sizeof(code));
    cpu.regs[SOFT_RDX] = 0x00ff8000;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
    load(0x2002, code + 2, 3);
    cpu.regs[SOFT_RCX] = 0x12345;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
    assert_int_equal(cpu.rip, 0x2002);
}

static void test_iretq_same_privilege(void **state)
{
    (void)state;
    static const uint8_t code[] = {0x48, 0xcf}; /* iretq */
    load(0x2000, code, sizeof(code));
    uint64_t sp = 0x7000;
    wr64(sp, 0x3000);           /* RIP */
    wr64(sp + 8, 0x08);         /* CS */
    wr64(sp + 16, 0x246);       /* RFLAGS: IF ZF PF */
    wr64(sp + 24, 0x7ff0);      /* RSP */
    wr64(sp + 32, 0x10);        /* SS */
    guest[0x3000] = 0xf4;
    cpu.regs[SOFT_RSP] = sp;
    cpu.rflags = 2;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_HLT);
    assert_int_equal(cpu.rip, 0x3001);
    assert_int_equal(cpu.regs[SOFT_RSP], 0x7ff0);
    assert_int_equal(soft_cpu_get_rflags(&cpu) & 0xfff, 0x246);
    assert_int_equal(cpu.seg[SOFT_SS].selector, 0x10);
}

static void test_syscall_sysret(void **state)
{
    (void)state;
    cpu.efer |= 1; /* SCE */
    cpu.star = (0x18ull << 48) | (0x08ull << 32);
    cpu.lstar = 0x4000;
    cpu.sfmask = SOFT_IF;
    cpu.cpl = 3;
    cpu.seg[SOFT_CS] = (struct soft_segment){0x2b, 0, 0xffffffff, 0xa0fb};
    static const uint8_t user[] = {0x0f, 0x05, 0xf4};       /* syscall; (hlt at CPL 3 = #GP) */
    static const uint8_t kern[] = {0x48, 0x0f, 0x07};       /* sysretq */
    load(0x2000, user, sizeof(user));
    memcpy(guest + 0x4000, kern, sizeof(kern));
    cpu.rflags = 0x202;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    /* Went to the kernel and back: the HLT after SYSCALL faulted at CPL 3. */
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
    assert_int_equal(cpu.rip, 0x2002);
    assert_int_equal(cpu.cpl, 3);
    assert_int_equal(cpu.seg[SOFT_CS].selector, 0x2b);
    assert_int_equal(cpu.seg[SOFT_SS].selector, 0x23);
    assert_int_equal(cpu.regs[SOFT_RCX], 0x2002);
    assert_int_equal(cpu.regs[SOFT_R11] & SOFT_IF, SOFT_IF);
    assert_true(soft_cpu_get_rflags(&cpu) & SOFT_IF); /* restored from R11 */
}

static void test_sti_shadow_and_cli(void **state)
{
    (void)state;
    static const uint8_t code[] = {0xfb, 0xf4}; /* sti; hlt */
    load(0x2000, code, sizeof(code));
    cpu.rflags = 2;
    /* An interrupt is pending: the loop must still run the instruction after STI first. */
    cpu.intr_request = SOFT_INTR_PENDING;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_HLT);
    assert_true(soft_cpu_get_rflags(&cpu) & SOFT_IF);
    /* With IF set and no shadow, the same request stops the loop before any instruction. */
    load(0x2000, code + 1, 1);
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_IRQ);
    assert_int_equal(cpu.rip, 0x2000);
}

static void test_verw(void **state)
{
    (void)state;
    static const uint8_t code[] = {
        0x66, 0xb8, 0x10, 0x00, /* mov ax, 0x10 (writable data) */
        0x0f, 0x00, 0xe8,       /* verw ax */
        0x0f, 0x94, 0xc1,       /* sete cl */
        0x66, 0xb8, 0x08, 0x00, /* mov ax, 0x08 (code) */
        0x0f, 0x00, 0xe8,       /* verw ax */
        0x0f, 0x94, 0xc2,       /* sete dl */
        0x66, 0xb8, 0x08, 0x00, /* mov ax, 0x08 */
        0x0f, 0x00, 0xe0,       /* verr ax: code is readable */
        0x0f, 0x94, 0xc3,       /* sete bl */
        0xf4,
    };
    load(0x2000, code, sizeof(code));
    cpu.regs[SOFT_RCX] = cpu.regs[SOFT_RDX] = cpu.regs[SOFT_RBX] = 0x77;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_HLT);
    assert_int_equal(cpu.regs[SOFT_RCX] & 0xff, 1);
    assert_int_equal(cpu.regs[SOFT_RDX] & 0xff, 0);
    assert_int_equal(cpu.regs[SOFT_RBX] & 0xff, 1);
}

/* Real mode keeps its 64 KiB segment limits: a word at offset 0xFFFE is read, one at 0xFFFF is
 * #GP(0), and a PUSH with SP = 1 (the word at 0xFFFF) is #SS(0); a fault leaves RIP at the
 * instruction and SP as it was. (Past 64 KiB the flat test memory would raise #PF instead.) */
static void test_real_mode_segment_limits(void **state)
{
    (void)state;
    cpu.cr0 = 0x10;
    cpu.cr4 = 0;
    cpu.efer = 0;
    cpu.mode = 16;
    for (int s = 0; s < SOFT_NSEGS; s++)
        cpu.seg[s] = (struct soft_segment){0, 0, 0xffff, 0x93};
    cpu.seg[SOFT_CS] = (struct soft_segment){0, 0, 0xffff, 0x9b};
    static const uint8_t code[] = {
        0x8b, 0x06, 0xfe, 0xff, /* mov ax, [0xfffe] */
        0x8b, 0x1e, 0xff, 0xff, /* mov bx, [0xffff]: past the limit */
    };
    memcpy(guest + 0xfffe, "\x34\x12", 2);
    load(0x2000, code, sizeof(code));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, 0);
    assert_int_equal(cpu.rip, 0x2004);
    assert_int_equal(cpu.regs[SOFT_RAX] & 0xffff, 0x1234);

    static const uint8_t push[] = {0x50}; /* push ax */
    load(0x2100, push, sizeof(push));
    cpu.regs[SOFT_RSP] = 1;
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_SS);
    assert_int_equal(cpu.exc_error, 0);
    assert_int_equal(cpu.rip, 0x2100);
    assert_int_equal(cpu.regs[SOFT_RSP], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_protected_to_long_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_without_pae_in_long_mode_faults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_port_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_privileged_at_cpl3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msrs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iretq_same_privilege, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syscall_sysret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sti_shadow_and_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_mode_segment_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
