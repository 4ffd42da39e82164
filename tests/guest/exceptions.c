/* exceptions: faults are delivered through the IDT with the right vector, error code, CR2 and
 * saved RIP, and returning from the handler resumes where it says: #DE (divide by zero), #PF on a
 * read and on a write of an unmapped page, #GP on a non-canonical address. (No int3 or ud2: KVM's
 * instruction emulator on hosts without VT-x cannot execute them.) */
#include "runtime.h"

#include "trap.h"

const char guest_name[] = "exceptions";

#define UNMAPPED     0x8000000000ULL      /* PML4 entry 1: never present */
#define NONCANONICAL 0x8000000000000000ULL

extern const char de_insn[], de_resume[], pfr_insn[], pfr_resume[], pfw_insn[], pfw_resume[],
    gp_insn[], gp_resume[];
/* With `unhandled` on the command line, the guest ends with a fault nobody handles, which the
 * runtime must report (vector, error code, RIP) and fail the test. */

static volatile unsigned hits;
static volatile uint64_t seen_vector, seen_error, seen_rip, seen_cr2;
static const char *volatile resume_at;

static void on_fault(struct trap_frame *f)
{
    hits++;
    seen_vector = f->vector;
    seen_error = f->error;
    seen_rip = f->rip;
    seen_cr2 = read_cr2();
    f->rip = (uint64_t)(uintptr_t)resume_at;
}

static void expect(const char *what, uint64_t vector, uint64_t error, const char *insn)
{
    printf("exceptions: %s: vector %lu error 0x%lx RIP 0x%lx CR2 0x%lx\n", what, seen_vector,
           seen_error, seen_rip, seen_cr2);
    ASSERT_EQ(hits, 1);
    ASSERT_EQ(seen_vector, vector);
    ASSERT_EQ(seen_error, error);
    ASSERT_EQ(seen_rip, (uintptr_t)insn);
    hits = 0;
}

int guest_main(void)
{
    trap_set_handler(0, on_fault);
    trap_set_handler(13, on_fault);
    trap_set_handler(14, on_fault);

    uint32_t quotient = 7;
    resume_at = de_resume;
    __asm__ volatile("xor %%edx, %%edx\n\t"
                     ".globl de_insn, de_resume\n"
                     "de_insn: divl %1\n"
                     "de_resume:"
                     : "+a"(quotient) : "r"(0u) : "rdx", "cc", "memory");
    expect("divide by zero", 0, 0, de_insn);
    ASSERT_EQ(quotient, 7); /* the faulting divide wrote nothing */

    uint64_t v = 0x1234;
    resume_at = pfr_resume;
    __asm__ volatile(".globl pfr_insn, pfr_resume\n"
                     "pfr_insn: mov (%1), %0\n"
                     "pfr_resume:"
                     : "+r"(v) : "r"(UNMAPPED) : "memory");
    expect("read of unmapped page", 14, 0x0, pfr_insn); /* not present, read, supervisor */
    ASSERT_EQ(seen_cr2, UNMAPPED);
    ASSERT_EQ(v, 0x1234);

    resume_at = pfw_resume;
    __asm__ volatile(".globl pfw_insn, pfw_resume\n"
                     "pfw_insn: movq $1, (%0)\n"
                     "pfw_resume:"
                     : : "r"(UNMAPPED + 8) : "memory");
    expect("write to unmapped page", 14, 0x2, pfw_insn); /* not present, write, supervisor */
    ASSERT_EQ(seen_cr2, UNMAPPED + 8);

    resume_at = gp_resume;
    __asm__ volatile(".globl gp_insn, gp_resume\n"
                     "gp_insn: mov (%1), %0\n"
                     "gp_resume:"
                     : "+r"(v) : "r"(NONCANONICAL) : "memory");
    expect("non-canonical address", 13, 0, gp_insn);

    trap_set_handler(0, NULL);
    trap_set_handler(13, NULL);
    trap_set_handler(14, NULL);
    if (cmdline_get("unhandled", NULL, 0) >= 0) {
        /* The harness checks the runtime's own report of a fault nobody handles. */
        printf("exceptions: now an unhandled #PF\n");
        (void)mmio_read32(UNMAPPED);
        test_fail("survived an unhandled #PF");
    }
    return 0;
}
