/* Block compiler of the software CPU: turns a decoded 64-bit block into host x86-64 code.
 *
 * The compiled code is a drop-in for the block's first handler (same signature, entered the
 * same way by the run loop and by chaining), so compiled and interpreted blocks mix freely.
 * Instructions it translates run as host instructions on the guest registers in struct
 * soft_cpu, with soft-TLB hits inline; runs of the others call their interpreter handlers,
 * which return to the compiled code. Internal to src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_JIT_H
#define VIREO_ACCEL_SOFT_JIT_H

#include "accel/soft/cache.h"

#include <stdbool.h>
#include <stdio.h>

struct soft_jit;

/* The code buffer of one CPU; NULL when compiling is off (VIREO_SOFT_JIT=0) or the host
 * refused executable memory (the interpreter then runs everything). */
struct soft_jit *soft_jit_create(void);
void soft_jit_destroy(struct soft_jit *j);
/* Forget all compiled code (the block cache was flushed). */
void soft_jit_reset(struct soft_jit *j);
/* The guest's translations may have changed (the soft TLB was flushed, wholly or in part;
 * global: global translations too): exits linked to blocks on other pages check the
 * successor's mapping again before they enter it. j may be NULL. */
void soft_jit_mappings_changed(struct soft_jit *j, bool global);
/* Whether the buffer has room for one more block of any size. */
bool soft_jit_has_room(const struct soft_jit *j);
/* Compile b (64-bit mode, after soft_flags_prune); on success b->insns[0].fn enters the code.
 * False leaves b to the interpreter. */
bool soft_jit_compile(struct soft_cpu *cpu, struct soft_jit *j, struct soft_block *b);

/* b is being dropped: predecessors linked straight into its code leave to the run loop. */
void soft_jit_unlink_into(struct soft_jit *j, struct soft_block *b);

/* Statistics for tuning, printed at exit by `VIREO_USER_STATS=1 vireo-user` and, per vCPU, by
 * `VIREO_SOFT_JIT_STATS=1 vireo run`. VIREO_SOFT_JIT_PROFILE=1 also counts every interpreted
 * instruction executed (slower: a counter update per instruction). */
struct soft_jit_stats {
    uint64_t blocks, insns_compiled, insns_interpreted;
    uint64_t by_op[0x400];  /* interpreted instructions by opcode (with map), as compiled */
    /* ... as executed (VIREO_SOFT_JIT_PROFILE=1), by SOFT_JIT_RUN_KEY: the opcode with the
     * LOCK prefix and ModRM digit, which tell group opcodes (F7 /4 MUL, /6 DIV) and locked
     * forms apart */
    uint64_t run_op[0x4000];
};
#define SOFT_JIT_RUN_KEY(i)                                                                    \
    (((unsigned)(i)->op & 0x3ffu) << 4 | ((i)->lock ? 8u : 0u) | ((i)->sub & 7u))

const struct soft_jit_stats *soft_jit_stats(const struct soft_jit *j);
void soft_jit_print_stats(const struct soft_jit *j, FILE *out);

#endif
