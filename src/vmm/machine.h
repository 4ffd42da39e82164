/* The platform around the CPUs: which devices a Vireo x86 machine has, where, and the ACPI
 * tables that describe them. Built once per run; survives guest resets. */
#ifndef VIREO_VMM_MACHINE_H
#define VIREO_VMM_MACHINE_H

#include <stddef.h>
#include <stdint.h>

struct vm;

/* Create and attach the devices, write the ACPI tables. Returns 0 or -errno with `why`. */
int machine_create(struct vm *vm, char *why, unsigned why_len);
/* Put devices in their power-on state for a guest reset (battery-backed CMOS stays). */
void machine_reset(struct vm *vm);
void machine_destroy(struct vm *vm);

/* Offer console input to the guest's UART; returns how many bytes it took. */
size_t machine_console_input(struct vm *vm, const uint8_t *buf, size_t len);
/* The fd that becomes readable when the UART has room again after refusing input. */
int machine_console_wake_fd(struct vm *vm);

#endif
