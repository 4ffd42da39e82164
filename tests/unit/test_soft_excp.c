/* Exception and interrupt delivery of the software CPU: 64-bit IDT gates (stack frame, error
 * code, RSP alignment, IF for interrupt vs trap gates), privilege change through the TSS, IST,
 * the gate checks (DPL for INT n, present, limits, target segment) with their error codes,
 * 32-bit protected-mode gates, the real-mode IVT, faults during delivery leaving the registers
 * alone, and the #DF / triple-fault rules. Guest memory is a flat 64 KiB buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "accel/soft/excp.h"
#include "accel/soft/mmu.h"

#define GUEST_SIZE 0x10000u
#define GDT 0x1000
#define IDT 0x2000
#define TSS 0x3000

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

static uint64_t rd64(uint64_t a)
{
    uint64_t v;
    memcpy(&v, guest + a, 8);
    return v;
}

static uint32_t rd32(uint64_t a)
{
    uint32_t v;
    memcpy(&v, guest + a, 4);
    return v;
}

static uint16_t rd16(uint64_t a)
{
    uint16_t v;
    memcpy(&v, guest + a, 2);
    return v;
}

static void wr64(uint64_t a, uint64_t v)
{
    memcpy(guest + a, &v, 8);
}

static void gate64(unsigned vec, uint16_t sel, uint64_t off, unsigned type, unsigned dpl,
                   unsigned ist)
{
    uint64_t lo = (off & 0xffff) | ((uint64_t)sel << 16) | ((uint64_t)ist << 32) |
                  ((uint64_t)type << 40) | ((uint64_t)dpl << 45) | (1ull << 47) |
                  ((off & 0xffff0000ull) << 32);
    wr64(IDT + vec * 16, lo);
    wr64(IDT + vec * 16 + 8, off >> 32);
}

static void gate32(unsigned vec, uint16_t sel, uint32_t off, unsigned type)
{
    uint64_t lo = (off & 0xffff) | ((uint64_t)sel << 16) | ((uint64_t)type << 40) |
                  (1ull << 47) | ((uint64_t)(off & 0xffff0000u) << 32);
    wr64(IDT + vec * 8, lo);
}

/* Long mode at CPL 0: kernel code 0x08, data 0x10, user code 0x1b, data 0x23, TSS 0x28,
 * 32-bit code 0x38, 32-bit data 0x40. RSP0 = 0x9000, IST1 = 0xa000. */
static int setup(void **state)
{
    (void)state;
    memset(guest, 0, sizeof(guest));
    assert_int_equal(soft_cpu_init(&cpu, &ops, NULL, 64), 0);
    wr64(GDT + 0x08, 0x00af9b000000ffffull);
    wr64(GDT + 0x10, 0x00cf93000000ffffull);
    wr64(GDT + 0x18, 0x00affb000000ffffull);
    wr64(GDT + 0x20, 0x00cff3000000ffffull);
    wr64(GDT + 0x28, 0x0000890000000067ull | ((uint64_t)TSS << 16));
    wr64(GDT + 0x30, 0);
    wr64(GDT + 0x38, 0x00cf9b000000ffffull);
    wr64(GDT + 0x40, 0x00cf93000000ffffull);
    cpu.gdtr = (struct soft_dtable){GDT, 0x47};
    cpu.idtr = (struct soft_dtable){IDT, 0xfff};
    cpu.tr = (struct soft_segment){.selector = 0x28, .base = TSS, .limit = 0x67, .attr = 0x8b};
    wr64(TSS + 4, 0x9000);
    wr64(TSS + 0x24, 0xa000);
    cpu.cpl = 0;
    cpu.seg[SOFT_CS].selector = 0x08;
    cpu.seg[SOFT_SS].selector = 0x10;
    cpu.rflags = 0x202;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    soft_cpu_destroy(&cpu);
    return 0;
}

static void test_long_mode_fault_frame(void **state)
{
    (void)state;
    gate64(14, 0x08, 0x123456789aull, 0xe, 0, 0);
    cpu.rip = 0x4444;
    cpu.regs[SOFT_RSP] = 0x8008;
    assert_int_equal(soft_excp_deliver(&cpu, 14, SOFT_EVENT_FAULT, true, 6), 0);
    uint64_t sp = 0x8000 - 48; /* aligned to 16 first, then six quadwords */
    assert_int_equal(cpu.regs[SOFT_RSP], sp);
    assert_int_equal(rd64(sp), 6);
    assert_int_equal(rd64(sp + 8), 0x4444);
    assert_int_equal(rd64(sp + 16), 0x08);
    assert_int_equal(rd64(sp + 24), 0x202);
    assert_int_equal(rd64(sp + 32), 0x8008);
    assert_int_equal(rd64(sp + 40), 0x10);
    assert_int_equal(cpu.rip, 0x123456789aull);
    assert_false(soft_cpu_get_rflags(&cpu) & SOFT_IF); /* interrupt gate */
    assert_int_equal(cpu.cpl, 0);
    assert_int_equal(cpu.mode, 64);
}

static void test_user_to_kernel_switches_stack(void **state)
{
    (void)state;
    gate64(0x20, 0x08, 0xffffffff81000000ull, 0xf, 0, 0);
    cpu.cpl = 3;
    cpu.seg[SOFT_CS].selector = 0x1b;
    cpu.seg[SOFT_SS].selector = 0x23;
    cpu.regs[SOFT_RSP] = 0x7000;
    cpu.rip = 0x5555;
    assert_int_equal(soft_excp_deliver(&cpu, 0x20, SOFT_EVENT_EXTINT, false, 0), 0);
    uint64_t sp = 0x9000 - 40;
    assert_int_equal(cpu.regs[SOFT_RSP], sp);
    assert_int_equal(rd64(sp), 0x5555);
    assert_int_equal(rd64(sp + 8), 0x1b);
    assert_int_equal(rd64(sp + 24), 0x7000);
    assert_int_equal(rd64(sp + 32), 0x23);
    assert_int_equal(cpu.cpl, 0);
    assert_int_equal(cpu.seg[SOFT_CS].selector, 0x08);
    assert_int_equal(cpu.seg[SOFT_SS].selector, 0);
    assert_true(soft_cpu_get_rflags(&cpu) & SOFT_IF); /* trap gate keeps IF */
    assert_int_equal(cpu.rip, 0xffffffff81000000ull);
}

static void test_ist_stack(void **state)
{
    (void)state;
    gate64(2, 0x08, 0x1000, 0xe, 0, 1);
    cpu.regs[SOFT_RSP] = 0x7000;
    assert_int_equal(soft_excp_deliver(&cpu, 2, SOFT_EVENT_EXTINT, false, 0), 0);
    assert_int_equal(cpu.regs[SOFT_RSP], 0xa000 - 40);
    assert_int_equal(rd64(0xa000 - 40 + 24), 0x7000);
}

static void test_gate_checks(void **state)
{
    (void)state;
    gate64(0x30, 0x08, 0x1000, 0xe, 0, 0);
    cpu.cpl = 3;
    cpu.seg[SOFT_CS].selector = 0x1b;
    cpu.rip = 0x4000;
    cpu.regs[SOFT_RSP] = 0x7000;
    /* INT n through a DPL 0 gate from ring 3. */
    assert_int_equal(soft_excp_deliver(&cpu, 0x30, SOFT_EVENT_SOFTINT, false, 0), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, (0x30 << 3) | 2);
    assert_int_equal(cpu.rip, 0x4000);
    assert_int_equal(cpu.cpl, 3);
    assert_int_equal(cpu.regs[SOFT_RSP], 0x7000);
    /* The same vector as a hardware interrupt is fine. */
    assert_int_equal(soft_excp_deliver(&cpu, 0x30, SOFT_EVENT_EXTINT, false, 0), 0);
    /* A zero entry is not a valid gate type: #GP before the present check. */
    assert_int_equal(soft_excp_deliver(&cpu, 0x31, SOFT_EVENT_FAULT, false, 0), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, (0x31 << 3) | 3);
    /* Not present: #NP with IDT and EXT bits. */
    gate64(0x31, 0x08, 0x1000, 0xe, 0, 0);
    guest[IDT + 0x31 * 16 + 5] &= 0x7f;
    assert_int_equal(soft_excp_deliver(&cpu, 0x31, SOFT_EVENT_FAULT, false, 0), -SOFT_EXC_NP);
    assert_int_equal(cpu.exc_error, (0x31 << 3) | 3);
    /* Beyond the IDT limit. */
    cpu.idtr.limit = 0x30 * 16 - 1;
    assert_int_equal(soft_excp_deliver(&cpu, 0x30, SOFT_EVENT_EXTINT, false, 0), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, (0x30 << 3) | 3);
    cpu.idtr.limit = 0xfff;
    /* A gate whose selector names a data segment. */
    gate64(0x32, 0x10, 0x1000, 0xe, 0, 0);
    assert_int_equal(soft_excp_deliver(&cpu, 0x32, SOFT_EVENT_FAULT, false, 0), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, 0x10 | 1);
    /* A selector beyond the GDT limit. */
    gate64(0x33, 0x80, 0x1000, 0xe, 0, 0);
    assert_int_equal(soft_excp_deliver(&cpu, 0x33, SOFT_EVENT_SOFTINT, false, 0), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, 0x80);
    /* A 32-bit code segment is not a valid long-mode target. */
    gate64(0x34, 0x38, 0x1000, 0xe, 0, 0);
    assert_int_equal(soft_excp_deliver(&cpu, 0x34, SOFT_EVENT_FAULT, false, 0), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, 0x38 | 1);
}

static void test_fault_while_pushing(void **state)
{
    (void)state;
    gate64(13, 0x08, 0x1000, 0xe, 0, 0);
    cpu.rip = 0x4000;
    cpu.regs[SOFT_RSP] = GUEST_SIZE + 0x100; /* the stack is not mapped */
    assert_int_equal(soft_excp_deliver(&cpu, 13, SOFT_EVENT_FAULT, true, 0), -SOFT_EXC_PF);
    assert_true(cpu.cr2 >= GUEST_SIZE);
    assert_int_equal(cpu.exc_error, SOFT_PF_W);
    assert_int_equal(cpu.rip, 0x4000);
    assert_int_equal(cpu.regs[SOFT_RSP], GUEST_SIZE + 0x100);
    assert_int_equal(cpu.seg[SOFT_CS].selector, 0x08);
}

static void test_protected_mode_gate(void **state)
{
    (void)state;
    cpu.efer = 0;
    cpu.cr0 = SOFT_CR0_PE;
    cpu.cr4 = 0;
    cpu.mode = 32;
    cpu.seg[SOFT_CS] = (struct soft_segment){0x38, 0, 0xffffffff, 0xc09b};
    cpu.seg[SOFT_SS] = (struct soft_segment){0x40, 0, 0xffffffff, 0xc093};
    gate32(13, 0x38, 0x00123456, 0xe);
    cpu.rip = 0x4444;
    cpu.regs[SOFT_RSP] = 0x8000;
    assert_int_equal(soft_excp_deliver(&cpu, 13, SOFT_EVENT_FAULT, true, 0x10), 0);
    assert_int_equal(cpu.regs[SOFT_RSP], 0x8000 - 16);
    assert_int_equal(rd32(0x8000 - 16), 0x10);
    assert_int_equal(rd32(0x8000 - 12), 0x4444);
    assert_int_equal(rd32(0x8000 - 8), 0x38);
    assert_int_equal(rd32(0x8000 - 4), 0x202);
    assert_int_equal(cpu.rip, 0x123456);
    assert_int_equal(cpu.mode, 32);
    assert_false(soft_cpu_get_rflags(&cpu) & SOFT_IF);
}

static void test_real_mode_ivt(void **state)
{
    (void)state;
    cpu.efer = 0;
    cpu.cr0 = 0;
    cpu.cr4 = 0;
    cpu.mode = 16;
    cpu.idtr = (struct soft_dtable){0, 0x3ff};
    cpu.seg[SOFT_CS] = (struct soft_segment){0x0000, 0, 0xffff, 0x9b};
    cpu.seg[SOFT_SS] = (struct soft_segment){0x0700, 0x7000, 0xffff, 0x93};
    guest[8 * 4] = 0x34, guest[8 * 4 + 1] = 0x12; /* IP */
    guest[8 * 4 + 2] = 0x00, guest[8 * 4 + 3] = 0x01; /* CS */
    cpu.rip = 0x500;
    cpu.regs[SOFT_RSP] = 0xdead0100; /* only SP is used and written */
    assert_int_equal(soft_excp_deliver(&cpu, 8, SOFT_EVENT_EXTINT, false, 0), 0);
    assert_int_equal(cpu.regs[SOFT_RSP], 0xdead00fa);
    assert_int_equal(rd16(0x7000 + 0xfa), 0x500);
    assert_int_equal(rd16(0x7000 + 0xfc), 0);
    assert_int_equal(rd16(0x7000 + 0xfe), 0x202);
    assert_int_equal(cpu.seg[SOFT_CS].selector, 0x100);
    assert_int_equal(cpu.seg[SOFT_CS].base, 0x1000);
    assert_int_equal(cpu.rip, 0x1234);
    assert_false(soft_cpu_get_rflags(&cpu) & SOFT_IF);
}

static void test_combine_rules(void **state)
{
    (void)state;
    assert_int_equal(soft_excp_combine(SOFT_EXC_GP, SOFT_EXC_NP), SOFT_EXC_DF);
    assert_int_equal(soft_excp_combine(SOFT_EXC_PF, SOFT_EXC_PF), SOFT_EXC_DF);
    assert_int_equal(soft_excp_combine(SOFT_EXC_PF, SOFT_EXC_GP), SOFT_EXC_DF);
    assert_int_equal(soft_excp_combine(SOFT_EXC_GP, SOFT_EXC_PF), SOFT_EXC_PF);
    assert_int_equal(soft_excp_combine(SOFT_EXC_DF, SOFT_EXC_GP), SOFT_EXC_TRIPLE);
    assert_int_equal(soft_excp_combine(SOFT_EXC_DF, SOFT_EXC_PF), SOFT_EXC_TRIPLE);
    assert_int_equal(soft_excp_combine(0x20, SOFT_EXC_GP), SOFT_EXC_GP);
    assert_int_equal(soft_excp_combine(SOFT_EXC_BP, SOFT_EXC_PF), SOFT_EXC_PF);
    assert_true(soft_excp_has_error(SOFT_EXC_PF));
    assert_true(soft_excp_has_error(SOFT_EXC_DF));
    assert_false(soft_excp_has_error(SOFT_EXC_UD));
    assert_false(soft_excp_has_error(SOFT_EXC_BP));
}

static void test_desc_read_limits(void **state)
{
    (void)state;
    uint64_t d;
    assert_int_equal(soft_desc_read(&cpu, 0x08, &d), 0);
    assert_int_equal(d, 0x00af9b000000ffffull);
    assert_int_equal(soft_desc_read(&cpu, 0x4b, &d), -SOFT_EXC_GP);
    assert_int_equal(cpu.exc_error, 0x48);
    assert_int_equal(soft_desc_read(&cpu, 0x0c, &d), -SOFT_EXC_GP); /* LDT: none loaded */
    assert_int_equal(cpu.exc_error, 0x0c);
    struct soft_segment s;
    soft_desc_to_seg(0x00cf93000000ffffull | (0x12ull << 56) | (0x345678ull << 16), 0x10, &s);
    assert_int_equal(s.base, 0x12345678);
    assert_int_equal(s.limit, 0xffffffff);
    assert_int_equal(s.attr, 0xc093);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_long_mode_fault_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_to_kernel_switches_stack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ist_stack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_while_pushing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protected_mode_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_mode_ivt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_combine_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_desc_read_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
