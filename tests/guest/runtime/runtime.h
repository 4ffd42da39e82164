/* What a test guest sees: define guest_name and guest_main(); the runtime enters long mode, sets
 * up the console, IDT and PVH info, calls guest_main() and reports its result. Guest main returns
 * 0 for pass; ASSERT() and test_fail() end the test on the spot. */
#ifndef GUEST_RUNTIME_H
#define GUEST_RUNTIME_H

#include <stdint.h>

#include "console.h"
#include "io.h"
#include "pvh.h"
#include "string.h"

/* Provided by each guest. */
extern const char guest_name[];
int guest_main(void);

/* Ends the run with status through the debug-exit port (port 0xf4, 4 bytes). Vireo exits with
 * exactly status; QEMU's isa-debug-exit with (status << 1) | 1. Never returns. */
void test_exit(int status) __attribute__((noreturn));
/* Prints "FAIL: <guest>: <why>" and exits with status 1. */
void test_fail(const char *why) __attribute__((noreturn));
/* Prints "FAIL: <guest>: <file>:<line>: <expr>" and exits with status 1. */
void assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));
/* Same, also printing the two values compared. */
void assert_eq_fail(const char *file, int line, const char *expr, uint64_t a, uint64_t b)
    __attribute__((noreturn));

#define ASSERT(cond)                                                                           \
    do {                                                                                       \
        if (!(cond))                                                                           \
            assert_fail(__FILE__, __LINE__, #cond);                                            \
    } while (0)

#define ASSERT_EQ(a, b)                                                                        \
    do {                                                                                       \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                       \
        if (a_ != b_)                                                                          \
            assert_eq_fail(__FILE__, __LINE__, #a " == " #b, a_, b_);                          \
    } while (0)

/* Entry from entry.S on the boot CPU, with the PVH start info address. */
void runtime_start(uint32_t info_paddr) __attribute__((noreturn));

#endif
