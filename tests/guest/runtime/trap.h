/* The 64-bit IDT: all 256 vectors go to one dispatcher. A vector with a registered handler calls
 * it; any other exception or interrupt is reported (vector, error code, RIP) and fails the test. */
#ifndef GUEST_TRAP_H
#define GUEST_TRAP_H

#include <stdint.h>

/* Saved by entry.S, lowest address first. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

typedef void (*trap_handler_fn)(struct trap_frame *frame);

/* Fills the IDT and loads it on this CPU. */
void trap_init(void);
/* Loads the (already filled) IDT on an AP. */
void trap_load(void);
/* Routes a vector to fn (NULL restores the fail-the-test default). */
void trap_set_handler(unsigned vector, trap_handler_fn fn);
/* Called by entry.S for every interrupt and exception. */
void trap_dispatch(struct trap_frame *frame);

#endif
