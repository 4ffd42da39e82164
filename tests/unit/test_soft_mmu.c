/* The software CPU's page walk against page tables built by hand in a fake guest RAM: address
 * translation in each paging format, A/D bits as hardware sets them, permission rules (U/S, R/W
 * with CR0.WP, NX), reserved bits, large and global pages, and the #PF error codes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "accel/soft/mmu.h"

#define RAM_SIZE 0x100000u

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));
static struct soft_phys phys;
static struct soft_cpu cpu;

static uint64_t *pt64(uint64_t gpa)
{
    return (uint64_t *)(ram + gpa);
}

static uint32_t *pt32(uint64_t gpa)
{
    return (uint32_t *)(ram + gpa);
}

#define P SOFT_PTE_P
#define W SOFT_PTE_W
#define U SOFT_PTE_U

/* Long mode, 4-level: PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000. VA 0x400000 (PD[2])
 * goes through the PT; PT[5] maps VA 0x405000 to 0x80000. */
static int setup(void **state)
{
    (void)state;
    memset(ram, 0, sizeof(ram));
    memset(&phys, 0, sizeof(phys));
    assert_int_equal(soft_phys_add(&phys, 0, RAM_SIZE, ram), 0);
    memset(&cpu, 0, sizeof(cpu));
    cpu.cr0 = SOFT_CR0_PE | SOFT_CR0_PG | SOFT_CR0_WP;
    cpu.cr4 = SOFT_CR4_PAE;
    cpu.efer = SOFT_EFER_LME | SOFT_EFER_LMA | SOFT_EFER_NXE;
    cpu.cr3 = 0x1000;
    pt64(0x1000)[0] = 0x2000 | P | W | U;
    pt64(0x2000)[0] = 0x3000 | P | W | U;
    pt64(0x3000)[2] = 0x4000 | P | W | U;
    pt64(0x4000)[5] = 0x80000 | P | W | U;
    return 0;
}

static int walk(uint64_t va, int access, bool user, struct soft_walk *w, uint32_t *err)
{
    *err = 0xdead;
    return soft_mmu_walk(&cpu, &phys, va, access, user, w, err);
}

static void test_phys_ranges(void **state)
{
    (void)state;
    assert_ptr_equal(soft_phys_ptr(&phys, 0x10, 4), ram + 0x10);
    assert_ptr_equal(soft_phys_ptr(&phys, RAM_SIZE - 4, 4), ram + RAM_SIZE - 4);
    assert_null(soft_phys_ptr(&phys, RAM_SIZE - 4, 8));
    assert_null(soft_phys_ptr(&phys, RAM_SIZE, 1));
    assert_null(soft_phys_ptr(&phys, ~0ull - 2, 8));
    assert_int_equal(soft_phys_add(&phys, 0x80000, 0x1000, ram), -EINVAL);
    assert_int_equal(soft_phys_add(&phys, ~0ull - 0xfff, 0x2000, ram), -EINVAL);
    static uint8_t hi[4096];
    assert_int_equal(soft_phys_add(&phys, 0x100000000ull, sizeof(hi), hi), 0);
    assert_ptr_equal(soft_phys_ptr(&phys, 0x100000010ull, 4), hi + 0x10);
}

static void test_paging_off_is_identity(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    cpu.cr0 = SOFT_CR0_PE;
    assert_int_equal(walk(0x12345678, SOFT_ACC_WRITE, true, &w, &err), 0);
    assert_int_equal(w.gpa, 0x12345678);
    assert_true(w.write && w.exec && w.user);
}

static void test_read_sets_accessed_not_dirty(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    assert_int_equal(walk(0x405123, SOFT_ACC_READ, false, &w, &err), 0);
    assert_int_equal(w.gpa, 0x80123);
    assert_int_equal(w.page_size, 4096);
    assert_false(w.dirty);
    assert_true(w.write && w.user && w.exec);
    assert_true(pt64(0x1000)[0] & SOFT_PTE_A);
    assert_true(pt64(0x2000)[0] & SOFT_PTE_A);
    assert_true(pt64(0x3000)[2] & SOFT_PTE_A);
    assert_true(pt64(0x4000)[5] & SOFT_PTE_A);
    assert_false(pt64(0x4000)[5] & SOFT_PTE_D);
    assert_false(pt64(0x3000)[2] & SOFT_PTE_D); /* D lives in the leaf only */
}

static void test_write_sets_dirty(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    assert_int_equal(walk(0x405ff8, SOFT_ACC_WRITE, true, &w, &err), 0);
    assert_true(w.dirty);
    assert_true(pt64(0x4000)[5] & SOFT_PTE_D);
    assert_false(pt64(0x3000)[2] & SOFT_PTE_D);
    /* Once D is set, a read walk reports it so the TLB may grant writes. */
    assert_int_equal(walk(0x405000, SOFT_ACC_READ, true, &w, &err), 0);
    assert_true(w.dirty);
}

/* Hardware writes an entry only to set a bit that is clear. The tables are made read-only once
 * A and D are set: a walk that wrote them anyway would fault here. */
static void test_set_bits_are_not_rewritten(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    assert_int_equal(walk(0x405010, SOFT_ACC_WRITE, true, &w, &err), 0);
    uint64_t before[4] = {pt64(0x1000)[0], pt64(0x2000)[0], pt64(0x3000)[2], pt64(0x4000)[5]};
    assert_int_equal(mprotect(ram + 0x1000, 0x4000, PROT_READ), 0);
    int rr = walk(0x405020, SOFT_ACC_READ, true, &w, &err);
    int rw = walk(0x405030, SOFT_ACC_WRITE, false, &w, &err);
    int rx = walk(0x405040, SOFT_ACC_EXEC, false, &w, &err);
    assert_int_equal(mprotect(ram + 0x1000, 0x4000, PROT_READ | PROT_WRITE), 0);
    assert_int_equal(rr, 0);
    assert_int_equal(rw, 0);
    assert_int_equal(rx, 0);
    assert_int_equal(pt64(0x1000)[0], before[0]);
    assert_int_equal(pt64(0x2000)[0], before[1]);
    assert_int_equal(pt64(0x3000)[2], before[2]);
    assert_int_equal(pt64(0x4000)[5], before[3]);
}

static void test_not_present_error_codes(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    assert_int_equal(walk(0x406000, SOFT_ACC_READ, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, 0);
    assert_int_equal(walk(0x406000, SOFT_ACC_WRITE, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_W | SOFT_PF_U);
    assert_int_equal(walk(0x406000, SOFT_ACC_EXEC, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_I);
    /* Not present at the PML4 level too. */
    assert_int_equal(walk(0x8000000000ull, SOFT_ACC_READ, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_U);
    /* I is reported only with NXE. */
    cpu.efer &= ~SOFT_EFER_NXE;
    assert_int_equal(walk(0x406000, SOFT_ACC_EXEC, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, 0);
}

static void test_fault_leaves_accessed_clear(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    pt64(0x4000)[5] &= ~U;
    assert_int_equal(walk(0x405000, SOFT_ACC_READ, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_U);
    assert_false(pt64(0x4000)[5] & SOFT_PTE_A);
    assert_false(pt64(0x1000)[0] & SOFT_PTE_A);
}

static void test_user_supervisor(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    pt64(0x3000)[2] &= ~U; /* a supervisor-only PDE makes the whole 2 MiB supervisor */
    assert_int_equal(walk(0x405000, SOFT_ACC_WRITE, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_W | SOFT_PF_U);
    assert_int_equal(walk(0x405000, SOFT_ACC_WRITE, false, &w, &err), 0);
    assert_false(w.user);
}

static void test_write_protect(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    pt64(0x2000)[0] &= ~W; /* read-only at the PDPT level */
    assert_int_equal(walk(0x405000, SOFT_ACC_WRITE, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_W);
    assert_int_equal(walk(0x405000, SOFT_ACC_READ, false, &w, &err), 0);
    assert_false(w.write);
    assert_int_equal(walk(0x405000, SOFT_ACC_WRITE, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_W | SOFT_PF_U);
    /* Without CR0.WP the supervisor writes anyway; the user still may not. */
    cpu.cr0 &= ~SOFT_CR0_WP;
    assert_int_equal(walk(0x405000, SOFT_ACC_WRITE, false, &w, &err), 0);
    assert_true(w.write);
    assert_int_equal(walk(0x405000, SOFT_ACC_WRITE, true, &w, &err), -SOFT_EXC_PF);
}

static void test_no_execute(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    pt64(0x4000)[5] |= SOFT_PTE_NX;
    assert_int_equal(walk(0x405000, SOFT_ACC_EXEC, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_I);
    assert_int_equal(walk(0x405000, SOFT_ACC_READ, true, &w, &err), 0);
    assert_false(w.exec);
    /* Without EFER.NXE, bit 63 is reserved. */
    cpu.efer &= ~SOFT_EFER_NXE;
    assert_int_equal(walk(0x405000, SOFT_ACC_READ, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_RSVD);
}

static void test_large_pages(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    pt64(0x3000)[3] = 0x200000 | P | W | SOFT_PTE_PS | SOFT_PTE_G; /* VA 6 MiB -> 2 MiB */
    assert_int_equal(walk(0x6abcde, SOFT_ACC_WRITE, false, &w, &err), 0);
    assert_int_equal(w.gpa, 0x2abcde);
    assert_int_equal(w.page_size, 0x200000);
    assert_true(pt64(0x3000)[3] & SOFT_PTE_D);
    assert_false(w.global); /* G counts only with CR4.PGE */
    cpu.cr4 |= SOFT_CR4_PGE;
    assert_int_equal(walk(0x6abcde, SOFT_ACC_READ, false, &w, &err), 0);
    assert_true(w.global);
    /* A misaligned 2 MiB frame sets reserved bits. */
    pt64(0x3000)[3] |= 0x1000 << 1;
    assert_int_equal(walk(0x6abcde, SOFT_ACC_READ, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_RSVD);
    /* 1 GiB pages only when the model has them. */
    pt64(0x2000)[1] = 0x40000000 | P | W | SOFT_PTE_PS;
    assert_int_equal(walk(0x40001234, SOFT_ACC_READ, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_RSVD);
    cpu.model.pdpe1gb = true;
    assert_int_equal(walk(0x7fff1234, SOFT_ACC_READ, false, &w, &err), 0);
    assert_int_equal(w.gpa, 0x7fff1234);
    assert_int_equal(w.page_size, 0x40000000);
    /* PS in a PML4 entry is always reserved. */
    pt64(0x1000)[0] |= SOFT_PTE_PS;
    assert_int_equal(walk(0x405000, SOFT_ACC_READ, false, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_RSVD);
}

static void test_pae(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    cpu.efer = SOFT_EFER_NXE;
    cpu.cr3 = 0x5020; /* PDPT need only be 32-byte aligned */
    pt64(0x5020)[1] = 0x6000 | P;             /* VA 1 GiB .. 2 GiB */
    pt64(0x6000)[0] = 0x7000 | P | W | U;
    pt64(0x7000)[1] = 0x90000 | P | U;         /* read-only user page */
    assert_int_equal(walk(0x40001010, SOFT_ACC_READ, true, &w, &err), 0);
    assert_int_equal(w.gpa, 0x90010);
    assert_int_equal(walk(0x40001010, SOFT_ACC_WRITE, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_W | SOFT_PF_U);
    assert_int_equal(walk(0x00001010, SOFT_ACC_READ, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_U);
    pt64(0x5020)[1] |= W; /* R/W is reserved in a PAE PDPTE */
    assert_int_equal(walk(0x40001010, SOFT_ACC_READ, true, &w, &err), -SOFT_EXC_PF);
    assert_int_equal(err, SOFT_PF_P | SOFT_PF_RSVD | SOFT_PF_U);
}

static void test_legacy_32bit(void **state)
{
    (void)state;
    struct soft_walk w;
    uint32_t err;
    cpu.efer = 0;
    cpu.cr4 = 0;
    cpu.cr3 = 0x8000;
    pt32(0x8000)[1] = 0x9000 | P | W | U;      /* VA 4 MiB .. 8 MiB */
    pt32(0x9000)[2] = 0xa0000 | P | W | U;
    pt32(0x8000)[2] = 0x00c00000 | P | W | SOFT_PTE_PS; /* 4 MiB page if CR4.PSE */
    assert_int_equal(walk(0x402345, SOFT_ACC_WRITE, true, &w, &err), 0);
    assert_int_equal(w.gpa, 0xa0345);
    assert_true(pt32(0x9000)[2] & SOFT_PTE_D);
    assert_true(pt32(0x8000)[1] & SOFT_PTE_A);
    cpu.cr4 = SOFT_CR4_PSE;
    assert_int_equal(walk(0x812345, SOFT_ACC_READ, false, &w, &err), 0);
    assert_int_equal(w.gpa, 0xc12345);
    assert_int_equal(w.page_size, 0x400000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_phys_ranges, setup),
        cmocka_unit_test_setup(test_paging_off_is_identity, setup),
        cmocka_unit_test_setup(test_read_sets_accessed_not_dirty, setup),
        cmocka_unit_test_setup(test_write_sets_dirty, setup),
        cmocka_unit_test_setup(test_set_bits_are_not_rewritten, setup),
        cmocka_unit_test_setup(test_not_present_error_codes, setup),
        cmocka_unit_test_setup(test_fault_leaves_accessed_clear, setup),
        cmocka_unit_test_setup(test_user_supervisor, setup),
        cmocka_unit_test_setup(test_write_protect, setup),
        cmocka_unit_test_setup(test_no_execute, setup),
        cmocka_unit_test_setup(test_large_pages, setup),
        cmocka_unit_test_setup(test_pae, setup),
        cmocka_unit_test_setup(test_legacy_32bit, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
