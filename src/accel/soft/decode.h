/* The x86 decoder of the software CPU. */
#ifndef VIREO_ACCEL_SOFT_DECODE_H
#define VIREO_ACCEL_SOFT_DECODE_H

#include "accel/soft/insn.h"

/* Decode the instruction at guest address rip in the CPU's current mode into *i. Returns 1 if
 * the instruction ends a decoded block (control transfer, exit, #UD), 0 if not, or -vector if
 * fetching its bytes faulted (nothing is raised: the caller decides whether it is reached).
 * Undefined encodings decode to a handler that raises #UD. In 64-bit mode a direct JMP to the
 * same 4 KiB page decodes as the instruction at its target (whose next_rip then says where
 * decoding continues), so that blocks run through such jumps. */
int soft_decode(struct soft_cpu *cpu, uint64_t rip, struct soft_insn *i);

#endif
