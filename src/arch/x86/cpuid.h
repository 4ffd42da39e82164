/* The guest's CPUID: a model built from what the accelerator supports. `baseline` is a
 * conservative x86-64 feature set that both accelerators and every migration target share;
 * `host` passes through what the accelerator supports. Both get a topology consistent with the
 * vCPU count (one thread per core, one socket) and the KVM paravirtual leaves. */
#ifndef VIREO_ARCH_X86_CPUID_H
#define VIREO_ARCH_X86_CPUID_H

#include <stdint.h>

enum cpu_model { CPU_MODEL_BASELINE, CPU_MODEL_HOST };

struct cpuid_entry {
    uint32_t function, index;
    uint32_t flags;   /* CPUID_F_SIGNIFICANT_INDEX when index selects a sub-leaf */
    uint32_t eax, ebx, ecx, edx;
};
#define CPUID_F_SIGNIFICANT_INDEX 1u

#define CPUID_MAX_ENTRIES 128

struct cpuid_table {
    unsigned count;
    struct cpuid_entry entries[CPUID_MAX_ENTRIES];
};

/* Parse "baseline" or "host"; -EINVAL otherwise. */
int cpuid_parse_model(const char *name, enum cpu_model *out);

/* Build the CPUID of the vCPU with APIC ID apic_id out of `supported` (what the accelerator can
 * run). tsc_khz > 0 is advertised in leaves 0x15/0x16 and the KVM timing leaf so the guest need
 * not calibrate. Returns 0 or -E2BIG. */
int cpuid_build(const struct cpuid_table *supported, enum cpu_model model, unsigned ncpus,
                unsigned apic_id, uint32_t tsc_khz, struct cpuid_table *out);

/* Find a leaf (index ignored unless the entry says it is significant); NULL if absent. */
const struct cpuid_entry *cpuid_find(const struct cpuid_table *t, uint32_t function,
                                     uint32_t index);

/* Leaf 1 and 0x80000001 feature bits the models refer to. */
#define CPUID_1_EDX_APIC (1u << 9)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_1_ECX_X2APIC (1u << 21)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)

#endif
