/* Software CPU through its public interface, with guest memory that is NOT the host's flat
 * address space: 64 KiB of "guest physical" memory at a host buffer, reached through the soft
 * TLB's addend the way system mode will. Runs small programs, checks precise faults (#PF with
 * CR2, #UD, #DE restart at the faulting instruction with state untouched), instruction lengths,
 * lazy flags read back through RFLAGS, and invalidation of decoded code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "accel/soft/cpu.h"
#include "accel/soft/decode.h"

#define GUEST_SIZE 0x10000u

static uint8_t guest[GUEST_SIZE] __attribute__((aligned(4096)));
static struct soft_cpu cpu;

static int fill(struct soft_cpu *c, uint64_t vaddr, int access, struct soft_tlb_entry *e)
{
    (void)access;
    if (vaddr >= GUEST_SIZE) {
        c->cr2 = vaddr;
        c->exc_error = access == SOFT_ACC_WRITE ? 2 : 0;
        return -SOFT_EXC_PF;
    }
    uint64_t page = vaddr & ~0xfffull;
    e->tag_read = e->tag_write = e->tag_exec = page;
    e->addend = (uint64_t)(uintptr_t)guest;
    return 0;
}

static const struct soft_cpu_ops ops = {.tlb_fill = fill};

static int setup(void **state)
{
    (void)state;
    memset(guest, 0xcc, sizeof(guest));
    assert_int_equal(soft_cpu_init(&cpu, &ops, NULL, 64), 0);
    cpu.regs[SOFT_RSP] = 0x8000;
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
    soft_cpu_invalidate_code(&cpu, at, len);
    cpu.rip = at;
}

static void test_loop_and_store(void **state)
{
    (void)state;
    /* mov ecx,10; xor eax,eax; l: add eax,ecx; dec ecx; jnz l; mov [0x2000],eax;
     * call f; syscall; f: add eax,1; ret */
    static const uint8_t code[] = {0xb9, 0x0a, 0, 0, 0, 0x31, 0xc0, 0x01, 0xc8, 0xff, 0xc9,
                                   0x75, 0xfa, 0x89, 0x04, 0x25, 0x00, 0x20, 0, 0,
                                   0xe8, 0x02, 0, 0, 0, 0x0f, 0x05, 0x83, 0xc0, 0x01, 0xc3};
    load(0x1000, code, sizeof(code));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_SYSCALL);
    assert_int_equal(cpu.regs[SOFT_RAX], 56);
    assert_int_equal(guest[0x2000], 55);
    assert_int_equal(cpu.rip, 0x1000 + 27); /* after SYSCALL */
    assert_int_equal(cpu.regs[SOFT_RSP], 0x8000);
    assert_int_equal(cpu.regs[SOFT_RCX], 0x1000 + 27); /* SYSCALL leaves RIP in RCX */
}

static void test_page_fault_is_precise(void **state)
{
    (void)state;
    /* mov eax,7; mov rbx,[0x100000]; mov eax,9 */
    static const uint8_t code[] = {0xb8, 7, 0, 0, 0, 0x48, 0x8b, 0x1c, 0x25, 0, 0, 0x10, 0,
                                   0xb8, 9, 0, 0, 0};
    cpu.regs[SOFT_RBX] = 0x1234;
    load(0x1000, code, sizeof(code));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_PF);
    assert_int_equal(cpu.cr2, 0x100000);
    assert_int_equal(cpu.rip, 0x1005);
    assert_int_equal(cpu.regs[SOFT_RAX], 7);
    assert_int_equal(cpu.regs[SOFT_RBX], 0x1234);
}

static void test_fetch_fault_only_when_reached(void **state)
{
    (void)state;
    /* The block runs up to the end of guest memory; the fault belongs to the next fetch. */
    static const uint8_t code[] = {0xb8, 1, 0, 0, 0, 0x90};
    load(GUEST_SIZE - sizeof(code), code, sizeof(code));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_PF);
    assert_int_equal(cpu.rip, GUEST_SIZE);
    assert_int_equal(cpu.regs[SOFT_RAX], 1);
}

static void test_ud_and_de(void **state)
{
    (void)state;
    static const uint8_t ud[] = {0x90, 0x0f, 0x0b};
    load(0x1000, ud, sizeof(ud));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_UD);
    assert_int_equal(cpu.rip, 0x1001);

    /* xor ecx,ecx; mov eax,5; div ecx */
    static const uint8_t de[] = {0x31, 0xc9, 0xb8, 5, 0, 0, 0, 0xf7, 0xf1};
    load(0x1100, de, sizeof(de));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_DE);
    assert_int_equal(cpu.rip, 0x1107);
    assert_int_equal(cpu.regs[SOFT_RAX], 5);

    /* A LOCK prefix on a register destination is #UD, not a crash. */
    static const uint8_t lock[] = {0xf0, 0x01, 0xc0};
    load(0x1200, lock, sizeof(lock));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_UD);
}

static void test_lengths(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[15];
        unsigned len;
    } cases[] = {
        {{0x90}, 1},
        {{0x48, 0x8b, 0x44, 0x24, 0x08}, 5},                          /* mov rax,[rsp+8] */
        {{0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}, 10},                   /* movabs */
        {{0x66, 0x0f, 0x6f, 0x05, 0, 0, 0, 0}, 8},                     /* movdqa rip-rel */
        {{0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0}, 10},           /* nopw cs:[rax+rax] */
        {{0xf3, 0x48, 0xab}, 3},                                       /* rep stosq */
        {{0x81, 0x84, 0x88, 1, 0, 0, 0, 2, 0, 0, 0}, 11},              /* add [rax+rcx*4+1],2 */
        {{0x66, 0x81, 0xc1, 0x34, 0x12}, 5},                           /* add cx,0x1234 */
        {{0xc8, 0x10, 0, 1}, 4},                                       /* enter 16,1 */
        {{0xf3, 0x0f, 0x1e, 0xfa}, 4},                                 /* endbr64 */
        {{0x0f, 0xba, 0xe0, 5}, 4},                                    /* bt eax,5 */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        memcpy(guest + 0x3000, cases[k].bytes, sizeof(cases[k].bytes));
        struct soft_insn insn;
        int r = soft_decode(&cpu, 0x3000, &insn);
        assert_true(r >= 0);
        assert_int_equal(insn.len, cases[k].len);
    }
    /* Sixteen prefixes make an instruction longer than 15 bytes: a fault, not a hang. */
    memset(guest + 0x3000, 0x66, 16);
    struct soft_insn insn;
    assert_true(soft_decode(&cpu, 0x3000, &insn) < 0);
}

static void test_flags_roundtrip(void **state)
{
    (void)state;
    /* mov al,0x7f; add al,1 -> OF SF AF set, ZF CF clear; then stop at syscall */
    static const uint8_t code[] = {0xb0, 0x7f, 0x04, 0x01, 0x0f, 0x05};
    load(0x1000, code, sizeof(code));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_SYSCALL);
    uint64_t f = soft_cpu_get_rflags(&cpu);
    assert_int_equal(f & (SOFT_OF | SOFT_SF | SOFT_AF | SOFT_ZF | SOFT_CF),
                     SOFT_OF | SOFT_SF | SOFT_AF);
    soft_cpu_set_rflags(&cpu, 0x202 | SOFT_CF);
    assert_int_equal(soft_cpu_get_rflags(&cpu) & SOFT_ARITH_FLAGS, SOFT_CF);
}

static void test_code_invalidation(void **state)
{
    (void)state;
    static const uint8_t v1[] = {0xb8, 1, 0, 0, 0, 0x0f, 0x05};
    static const uint8_t v2[] = {0xb8, 2, 0, 0, 0, 0x0f, 0x05};
    load(0x1000, v1, sizeof(v1));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_SYSCALL);
    assert_int_equal(cpu.regs[SOFT_RAX], 1);
    load(0x1000, v2, sizeof(v2));
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_SYSCALL);
    assert_int_equal(cpu.regs[SOFT_RAX], 2);
}

/* The same loop as 32-bit and as 16-bit code: operand/address sizes and LOOP's counter width. */
static void run_legacy(int mode, const uint8_t *code, size_t len)
{
    soft_cpu_destroy(&cpu);
    assert_int_equal(soft_cpu_init(&cpu, &ops, NULL, mode), 0);
    cpu.regs[SOFT_RAX] = 0xffffffff00000000ull;
    cpu.regs[SOFT_RCX] = 0xabcd000000000000ull;
    load(0x1000, code, len);
    assert_int_equal(soft_cpu_run(&cpu), SOFT_EXIT_EXCEPTION);
    assert_int_equal(cpu.exc_vector, SOFT_EXC_UD);
}

static void test_legacy_modes(void **state)
{
    (void)state;
    /* mov ecx,10; xor eax,eax; l: add eax,ecx; loop l; inc eax (40: INC outside long mode);
     * ud2 */
    static const uint8_t code32[] = {0xb9, 10, 0, 0, 0, 0x31, 0xc0, 0x01, 0xc8, 0xe2, 0xfc,
                                     0x40, 0x0f, 0x0b};
    run_legacy(32, code32, sizeof(code32));
    assert_int_equal(cpu.regs[SOFT_RAX], 56); /* 32-bit writes zero-extend */
    assert_int_equal(cpu.rip, 0x100c);

    /* The same in 16-bit code: mov cx,10 is three bytes and LOOP counts in CX. */
    static const uint8_t code16[] = {0xb9, 10, 0, 0x31, 0xc0, 0x01, 0xc8, 0xe2, 0xfc,
                                     0x40, 0x0f, 0x0b};
    run_legacy(16, code16, sizeof(code16));
    assert_int_equal(cpu.regs[SOFT_RAX], 0xffffffff00000000ull | 56); /* 16-bit merges */
    assert_int_equal(cpu.regs[SOFT_RCX], 0xabcd000000000000ull);
    assert_int_equal(cpu.rip, 0x100a);

    /* 16-bit addressing: mov ax,[bx+si+2] */
    static const uint8_t m16[] = {0x8b, 0x40, 0x02};
    memcpy(guest + 0x3000, m16, sizeof(m16));
    struct soft_insn insn;
    assert_true(soft_decode(&cpu, 0x3000, &insn) >= 0);
    assert_int_equal(insn.len, 3);
    assert_int_equal(insn.osz, 2);
    assert_int_equal(insn.asz, 2);
    assert_int_equal(insn.base, SOFT_RBX);
    assert_int_equal(insn.index, SOFT_RSI);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_and_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_fault_is_precise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_fault_only_when_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ud_and_de, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_invalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_modes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
