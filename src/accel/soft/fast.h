/* Fast paths of the software CPU: specialized handlers and dead-flag elimination. */
#ifndef VIREO_ACCEL_SOFT_FAST_H
#define VIREO_ACCEL_SOFT_FAST_H

#include "accel/soft/insn.h"

/* Swap a decoded instruction's generic handler for a specialized one when its form allows
 * (called by the decoder as its last step). */
void soft_specialize(const struct soft_cpu *cpu, struct soft_insn *i);
/* fast_alu.c: pick a read-modify-write memory or 8/16-bit register ALU handler for i (64-bit
 * mode, no LOCK, 64-bit address size: the caller checks); 1 if it did. */
int soft_specialize_alu(struct soft_insn *i);
/* How a handler treats the arithmetic flags. SOFT_FX_ALU: a generic ALU handler, which writes
 * them, except for ADC/SBB (sub 2 and 3), which read them. */
enum { SOFT_FX_READS, SOFT_FX_NEUTRAL, SOFT_FX_WRITES, SOFT_FX_ALU };

enum {
    SOFT_DEP32_XOR, SOFT_DEP32_AND, SOFT_DEP32_OR, SOFT_DEP32_ADD, SOFT_DEP32_SHR, SOFT_DEP32_SHL,
    SOFT_DEP32_ROR, SOFT_DEP32_ROL, SOFT_DEP32_KINDS
};
/* First instructions of same-register pairs: the 32-bit register MOV and flagless ALU ops. */
enum {
    SOFT_DEP32_FIRST_MOV, SOFT_DEP32_FIRST_XOR, SOFT_DEP32_FIRST_AND, SOFT_DEP32_FIRST_OR,
    SOFT_DEP32_FIRST_ADD, SOFT_DEP32_FIRST_KINDS
};

/* What fast.c tells the block passes about its handlers (soft_fast_describe). */
struct soft_fast_sink {
    /* fn's flag effect, and its flagless twin (or NULL) */
    void (*fact)(soft_exec_fn fn, int fx, soft_exec_fn flagless);
    /* base followed by the block's Jcc runs as fused: any (not P/NP), je for JE, jne for
     * JNE */
    void (*jcc)(soft_exec_fn base, soft_exec_fn any, soft_exec_fn je, soft_exec_fn jne);
    /* the 32-bit (0) or 64-bit (1) register MOV followed by second runs as pair */
    void (*pair)(int first_is_64, soft_exec_fn second, soft_exec_fn pair);
    /* second is the flagless 32-bit form of kind (SOFT_DEP32_*): fused with a preceding
     * dep32_first instruction to the same destination */
    void (*dep32)(soft_exec_fn second, unsigned kind);
    /* first is the 32-bit register form of kind (SOFT_DEP32_FIRST_*) */
    void (*dep32_first)(soft_exec_fn first, unsigned kind);
    void (*moves)(soft_exec_fn mov_rr32, soft_exec_fn mov_rr64);
    /* PUSH/POP of a 64-bit register */
    void (*stack)(soft_exec_fn push, soft_exec_fn pop);
};
void soft_fast_describe(const struct soft_fast_sink *out);
/* The same for fast_alu.c's handlers (all of which write the six flags and read none). */
void soft_fast_alu_describe(const struct soft_fast_sink *out);
/* The flagless form of a generic rotate-by-constant or register IMUL, or NULL. */
soft_exec_fn soft_fast_flagless_form(const struct soft_insn *i);

/* fast_block.c: within one decoded block, switch instructions whose flags are overwritten
 * before anything reads them to flagless handlers (flags are assumed live at the block's end)
 * and record in each instruction whether its flags are read later (flags_live). */
void soft_flags_prune(const struct soft_cpu *cpu, struct soft_insn *insns, unsigned n);
/* Then, for the interpreter, fuse a closing flag producer + Jcc, register-move pairs and
 * PUSH/POP runs (compiled blocks skip this: their interpreted runs need unfused handlers). */
void soft_block_fuse(const struct soft_cpu *cpu, struct soft_insn *insns, unsigned n);

#endif
