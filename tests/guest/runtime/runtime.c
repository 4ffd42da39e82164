/* Boot-CPU start-up in C and the ways a test ends. */
#include "runtime.h"

#include "defs.h"
#include "trap.h"

void test_exit(int status)
{
    outl((uint32_t)status, 0xf4);
    /* Still here: no debug-exit device. Stop the CPU; the harness's timeout takes over. */
    for (;;)
        __asm__ volatile("cli; hlt");
}

void test_fail(const char *why)
{
    console_break_lock();
    printf("FAIL: %s: %s\n", guest_name, why);
    test_exit(1);
}

void assert_fail(const char *file, int line, const char *expr)
{
    console_break_lock();
    printf("FAIL: %s: %s:%d: assertion failed: %s\n", guest_name, file, line, expr);
    test_exit(1);
}

void assert_eq_fail(const char *file, int line, const char *expr, uint64_t a, uint64_t b)
{
    console_break_lock();
    printf("FAIL: %s: %s:%d: assertion failed: %s (0x%lx != 0x%lx)\n", guest_name, file, line,
           expr, a, b);
    test_exit(1);
}

void runtime_start(uint32_t info_paddr)
{
    console_init();
    trap_init();
    pvh_capture(info_paddr);
    int rc = guest_main();
    if (rc == 0) {
        printf("PASS: %s\n", guest_name);
        test_exit(0);
    }
    printf("FAIL: %s: guest_main returned %d\n", guest_name, rc);
    test_exit(rc);
}
