/* SSE/SSE2 state handling shared with the run loop. */
#ifndef VIREO_ACCEL_SOFT_SSE_H
#define VIREO_ACCEL_SOFT_SSE_H

#include "accel/soft/cpu.h"

#include <stdint.h>

/* Entering guest execution: save the host MXCSR and load the guest's control bits (exceptions
 * masked), so that host SSE arithmetic rounds as the guest asked. */
void soft_sse_enter(struct soft_cpu *cpu, uint32_t *host_mxcsr);
/* Leaving: fold the sticky exception flags into the guest MXCSR and restore the host's. */
void soft_sse_leave(struct soft_cpu *cpu, uint32_t host_mxcsr);

#endif
