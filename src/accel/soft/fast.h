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
/* Call add() for each fast_alu.c handler that writes all six flags and reads none. */
void soft_fast_alu_flag_writers(void (*add)(soft_exec_fn fn));
/* Within one decoded block, switch instructions whose flags are overwritten before anything
 * reads them to flagless handlers (flags are assumed live at the block's end), and fuse a
 * closing compare-and-Jcc pair into one handler. */
void soft_flags_prune(const struct soft_cpu *cpu, struct soft_insn *insns, unsigned n);

#endif
