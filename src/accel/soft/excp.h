/* Exception and interrupt delivery of the software CPU in system mode: the IVT in real mode,
 * 32-bit gates in protected mode, 64-bit gates with IST in long mode, the stack switch through
 * the TSS on a privilege change, and the #DF / triple-fault escalation rules. Also the
 * descriptor-table and system-memory helpers that segment loads share with delivery. */
#ifndef VIREO_ACCEL_SOFT_EXCP_H
#define VIREO_ACCEL_SOFT_EXCP_H

#include "accel/soft/cpu.h"

#include <stdbool.h>
#include <stdint.h>

enum soft_event_kind {
    SOFT_EVENT_FAULT,   /* an exception: RIP is the faulting instruction (or past a trap) */
    SOFT_EVENT_SOFTINT, /* INT n / INT3 / INTO: the gate's DPL must admit the CPL */
    SOFT_EVENT_EXTINT,  /* external interrupt or NMI: EXT is set in nested error codes */
};

/* Vector of the triple-fault "exception" soft_excp_combine() may answer. */
#define SOFT_EXC_TRIPLE 0x100

/* Deliver vector through the IDT of the current mode, pushing error when has_error. RIP must
 * already be where the handler returns to. All registers are committed only once every memory
 * access succeeded. Returns 0, or -vector of the exception delivery itself raised (with
 * cpu->exc_error its error code, cpu->cr2 for #PF); the caller combines and retries. */
int soft_excp_deliver(struct soft_cpu *cpu, unsigned vector, enum soft_event_kind kind,
                      bool has_error, uint32_t error);

/* The event to deliver when `second` is raised while delivering `first`: second itself, #DF,
 * or SOFT_EXC_TRIPLE (the SDM's benign / contributory / page-fault classes). */
unsigned soft_excp_combine(unsigned first, unsigned second);

/* Whether hardware pushes an error code for exception vector (not for INT n). */
bool soft_excp_has_error(unsigned vector);

/* Read the 8-byte descriptor selector names from the GDT or LDT into *desc. Returns 0, or
 * -SOFT_EXC_GP with cpu->exc_error the selector's error code when it is outside the table
 * (a null selector is the caller's to refuse), or the fault of the memory access. */
int soft_desc_read(struct soft_cpu *cpu, uint16_t selector, uint64_t *desc);

/* Descriptor -> segment cache (base, expanded limit, attribute bits 40..55 of the descriptor). */
void soft_desc_to_seg(uint64_t desc, uint16_t selector, struct soft_segment *seg);

/* Linear-address copies at supervisor privilege for descriptor tables, the TSS and delivery
 * stacks (split at page boundaries). 0 or -vector with cpu->exc_error / cr2 set. */
int soft_sys_read(struct soft_cpu *cpu, uint64_t lin, void *buf, unsigned len);
int soft_sys_write(struct soft_cpu *cpu, uint64_t lin, const void *buf, unsigned len);

/* The code size (16, 32, 64) a CS cache gives under cpu's EFER.LMA. */
uint8_t soft_cs_mode(const struct soft_cpu *cpu, const struct soft_segment *cs);

#endif
