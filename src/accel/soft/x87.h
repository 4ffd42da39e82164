/* x87 FPU state helpers shared with FXSAVE/FXRSTOR. */
#ifndef VIREO_ACCEL_SOFT_X87_H
#define VIREO_ACCEL_SOFT_X87_H

#include "accel/soft/cpu.h"

#include <stdint.h>

/* Write the x87 part of an FXSAVE image (bytes 0..159) into img; rexw selects the 64-bit
 * instruction/data pointer layout. */
void soft_x87_save_env(const struct soft_cpu *cpu, uint8_t *img, int rexw);
/* Load the x87 part of an FXSAVE image. */
void soft_x87_load_env(struct soft_cpu *cpu, const uint8_t *img, int rexw);

#endif
