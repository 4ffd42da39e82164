/* Model-specific registers the machine sets at boot, as firmware would leave them. Shared by both
 * accelerators so a guest starts from the same state on either. */
#ifndef VIREO_ARCH_X86_MSR_H
#define VIREO_ARCH_X86_MSR_H

#include <stdint.h>

#define MSR_IA32_APIC_BASE 0x1b
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_EFER 0xc0000080

struct msr_value {
    uint32_t index;
    uint64_t value;
};

#define MSR_BOOT_COUNT 2

/* The MSR_BOOT_COUNT values every vCPU starts with. */
const struct msr_value *msr_boot_values(void);

#endif
