#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* The baseline model: x86-64 as every 64-bit CPU since 2003 has it (x86-64-v1), plus CX16 and
 * LAHF in long mode, which every CPU that runs a current distribution kernel also has. Features a
 * backend must emulate in software (x2APIC, TSC deadline) are listed on purpose: Linux's timer and
 * IPI paths are faster with them. */
#define BASE_1_EDX                                                                                 \
    ((1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |         \
     (1u << 7) | (1u << 8) | (1u << 9) | (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14) |      \
     (1u << 15) | (1u << 16) | (1u << 17) | (1u << 19) | (1u << 23) | (1u << 24) | (1u << 25) |   \
     (1u << 26))
/* fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse
 * sse2 */
#define BASE_1_ECX ((1u << 13) | CPUID_1_ECX_X2APIC | CPUID_1_ECX_TSC_DEADLINE) /* cx16 */
#define BASE_80000001_EDX ((1u << 11) | (1u << 20) | (1u << 29))          /* syscall nx lm */
#define BASE_80000001_ECX (1u << 0)                                        /* lahf_lm */
/* KVM paravirtual features kept in the baseline: clocksource (old and new MSRs), no I/O delay,
 * and the stable-clock bit. Interrupt and scheduling enlightenments depend on the host. */
#define BASE_KVM_FEATURES ((1u << 0) | (1u << 1) | (1u << 3) | (1u << 24))

#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_CPUID_FEATURES 0x40000001u
#define KVM_CPUID_TIMING 0x40000010u

int cpuid_parse_model(const char *name, enum cpu_model *out)
{
    if (strcmp(name, "baseline") == 0)
        *out = CPU_MODEL_BASELINE;
    else if (strcmp(name, "host") == 0)
        *out = CPU_MODEL_HOST;
    else
        return -EINVAL;
    return 0;
}

const struct cpuid_entry *cpuid_find(const struct cpuid_table *t, uint32_t function,
                                     uint32_t index)
{
    for (unsigned i = 0; i < t->count; i++) {
        const struct cpuid_entry *e = &t->entries[i];
        if (e->function == function &&
            (!(e->flags & CPUID_F_SIGNIFICANT_INDEX) || e->index == index))
            return e;
    }
    return NULL;
}

/* Whether `out` already answers the leaf and sub-leaf that `e` describes. */
static bool cpuid_has(const struct cpuid_table *out, const struct cpuid_entry *e)
{
    for (unsigned i = 0; i < out->count; i++) {
        const struct cpuid_entry *o = &out->entries[i];
        if (o->function == e->function &&
            (!(o->flags & CPUID_F_SIGNIFICANT_INDEX) || !(e->flags & CPUID_F_SIGNIFICANT_INDEX) ||
             o->index == e->index))
            return true;
    }
    return false;
}

static struct cpuid_entry *cpuid_add(struct cpuid_table *t, uint32_t function, uint32_t index,
                                     uint32_t flags)
{
    if (t->count == CPUID_MAX_ENTRIES)
        return NULL;
    struct cpuid_entry *e = &t->entries[t->count++];
    *e = (struct cpuid_entry){.function = function, .index = index, .flags = flags};
    return e;
}

/* Copy a supported leaf, or add an empty one when the accelerator does not know it. */
static struct cpuid_entry *cpuid_take(struct cpuid_table *out, const struct cpuid_table *sup,
                                      uint32_t function, uint32_t index, uint32_t flags)
{
    const struct cpuid_entry *s = cpuid_find(sup, function, index);
    struct cpuid_entry *e = cpuid_add(out, function, index, flags);
    if (e && s) {
        e->eax = s->eax;
        e->ebx = s->ebx;
        e->ecx = s->ecx;
        e->edx = s->edx;
    }
    return e;
}

static unsigned bits_for(unsigned n)
{
    unsigned b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

/* Leaf 0xB: x2APIC topology; one thread per core, every vCPU a core of one package. */
static int cpuid_add_topology(struct cpuid_table *out, unsigned ncpus, unsigned apic_id)
{
    struct cpuid_entry *smt = cpuid_add(out, 0xb, 0, CPUID_F_SIGNIFICANT_INDEX);
    struct cpuid_entry *core = cpuid_add(out, 0xb, 1, CPUID_F_SIGNIFICANT_INDEX);
    struct cpuid_entry *end = cpuid_add(out, 0xb, 2, CPUID_F_SIGNIFICANT_INDEX);
    if (!smt || !core || !end)
        return -E2BIG;
    *smt = (struct cpuid_entry){0xb, 0, CPUID_F_SIGNIFICANT_INDEX, 0, 1, 0x100, apic_id};
    *core = (struct cpuid_entry){0xb, 1, CPUID_F_SIGNIFICANT_INDEX, bits_for(ncpus), ncpus,
                                 0x201, apic_id};
    *end = (struct cpuid_entry){0xb, 2, CPUID_F_SIGNIFICANT_INDEX, 0, 0, 2, apic_id};
    return 0;
}

/* Leaf 4: deterministic cache parameters, with the cores-per-package field that Linux uses to
 * size its topology. The cache geometry is the host's; only the sharing fields are ours. */
static int cpuid_add_caches(struct cpuid_table *out, const struct cpuid_table *sup, unsigned ncpus)
{
    for (uint32_t i = 0; i < 8; i++) {
        const struct cpuid_entry *s = cpuid_find(sup, 4, i);
        struct cpuid_entry *e = cpuid_add(out, 4, i, CPUID_F_SIGNIFICANT_INDEX);
        if (!e)
            return -E2BIG;
        if (!s || (s->eax & 0x1f) == 0)
            return 0; /* the empty entry terminates the list, as on hardware */
        *e = *s;
        e->flags = CPUID_F_SIGNIFICANT_INDEX;
        unsigned level = (s->eax >> 5) & 7;
        unsigned sharing = level >= 3 ? ncpus - 1 : 0; /* L3 shared by the package */
        /* The cores field has 6 bits: saturate past 64 vCPUs instead of wrapping (leaf 0xB
         * carries the real count). */
        unsigned cores = ncpus - 1 > 63 ? 63 : ncpus - 1;
        e->eax = (s->eax & 0x3fff) | (sharing << 14) | (cores << 26);
    }
    return 0;
}

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void cpuid_set_vendor_leaf0(struct cpuid_entry *e, uint32_t max_leaf)
{
    if (e->eax > max_leaf)
        e->eax = max_leaf;
}

int cpuid_build(const struct cpuid_table *sup, enum cpu_model model, unsigned ncpus,
                unsigned apic_id, uint32_t tsc_khz, struct cpuid_table *out)
{
    bool host = model == CPU_MODEL_HOST;
    memset(out, 0, sizeof(*out));
    const struct cpuid_entry *s0 = cpuid_find(sup, 0, 0);
    uint32_t max_leaf = s0 ? s0->eax : 1;

    struct cpuid_entry *e = cpuid_take(out, sup, 0, 0, 0);
    if (!e)
        return -E2BIG;
    cpuid_set_vendor_leaf0(e, host ? max_leaf : 0x16);
    max_leaf = e->eax;

    if (!(e = cpuid_take(out, sup, 1, 0, 0)))
        return -E2BIG;
    if (!host) {
        e->edx &= BASE_1_EDX;
        e->ecx &= BASE_1_ECX;
    }
    e->ecx |= CPUID_1_ECX_HYPERVISOR;
    /* EBX: APIC ID, logical processors per package, CLFLUSH line size in 8-byte units. */
    e->ebx = (apic_id << 24) | ((ncpus > 255 ? 255 : ncpus) << 16) | (8 << 8) | (e->ebx & 0xff);
    if (ncpus > 1)
        e->edx |= CPUID_1_EDX_HTT;
    else
        e->edx &= ~CPUID_1_EDX_HTT;

    if (max_leaf >= 4 && cpuid_add_caches(out, sup, ncpus) < 0)
        return -E2BIG;
    if (max_leaf >= 6 && (e = cpuid_take(out, sup, 6, 0, 0)) && !host) {
        e->eax &= 1u << 2; /* only ARAT: the APIC timer keeps running in deep C-states */
        e->ebx = e->ecx = e->edx = 0;
    }
    if (max_leaf >= 7) {
        if (!(e = cpuid_take(out, sup, 7, 0, CPUID_F_SIGNIFICANT_INDEX)))
            return -E2BIG;
        if (!host)
            e->eax = e->ebx = e->ecx = e->edx = 0;
    }
    if (max_leaf >= 0xb && cpuid_add_topology(out, ncpus, apic_id) < 0)
        return -E2BIG;
    if (max_leaf >= 0xd && host) {
        for (uint32_t i = 0; i < 64; i++) {
            const struct cpuid_entry *s = cpuid_find(sup, 0xd, i);
            if (s && (s->eax | s->ebx | s->ecx | s->edx) &&
                !cpuid_take(out, sup, 0xd, i, CPUID_F_SIGNIFICANT_INDEX))
                return -E2BIG;
        }
    }
    if (max_leaf >= 0x15 && tsc_khz) {
        /* Linux takes the crystal (ECX) as the LAPIC timer's frequency: both KVM's in-kernel
         * LAPIC and the software CPU's count at 1 GHz. TSC = ECX * EBX / EAX, as the reduced
         * fraction tsc_khz / 1e6: Linux multiplies crystal kHz by EBX in 32 bits, so EBX must
         * stay below 4295. A frequency with no such exact fraction leaves the leaf empty and
         * Linux calibrates instead (a rounded ratio would make the guest clock drift). */
        if (!(e = cpuid_add(out, 0x15, 0, 0)))
            return -E2BIG;
        uint32_t g = gcd_u32(tsc_khz, 1000000);
        if (tsc_khz / g <= 4294) {
            e->eax = 1000000 / g;
            e->ebx = tsc_khz / g;
            e->ecx = 1000000000;
        }
    }
    if (max_leaf >= 0x16 && tsc_khz) {
        if (!(e = cpuid_add(out, 0x16, 0, 0)))
            return -E2BIG;
        e->eax = e->ebx = tsc_khz / 1000;
        e->ecx = 100;
    }

    if (host) {
        /* Everything else the accelerator supports passes through unchanged (leaf 2's cache
         * descriptors, 5, 0xa, 0x14, 0x1d, further sub-leaves of 7...), except 0x1f: it would
         * describe the host's topology, and Linux prefers it to our leaf 0xb. */
        for (unsigned i = 0; i < sup->count; i++) {
            const struct cpuid_entry *s = &sup->entries[i];
            if (s->function > max_leaf || s->function == 0x1f || cpuid_has(out, s))
                continue;
            if (out->count == CPUID_MAX_ENTRIES)
                return -E2BIG;
            out->entries[out->count++] = *s;
        }
    }

    /* KVM's paravirtual leaves. */
    const struct cpuid_entry *kf = cpuid_find(sup, KVM_CPUID_FEATURES, 0);
    if (!(e = cpuid_add(out, KVM_CPUID_SIGNATURE, 0, 0)))
        return -E2BIG;
    e->eax = tsc_khz ? KVM_CPUID_TIMING : KVM_CPUID_FEATURES;
    memcpy(&e->ebx, "KVMK", 4);
    memcpy(&e->ecx, "VMKV", 4);
    memcpy(&e->edx, "M\0\0\0", 4);
    if (!(e = cpuid_add(out, KVM_CPUID_FEATURES, 0, 0)))
        return -E2BIG;
    e->eax = kf ? (host ? kf->eax : kf->eax & BASE_KVM_FEATURES) : 0;
    if (tsc_khz) {
        if (!(e = cpuid_add(out, KVM_CPUID_TIMING, 0, 0)))
            return -E2BIG;
        e->eax = tsc_khz;
        e->ebx = 1000000; /* APIC bus: 1 GHz as KVM's in-kernel LAPIC counts */
    }

    const struct cpuid_entry *s8 = cpuid_find(sup, 0x80000000, 0);
    uint32_t max_ext = s8 ? s8->eax : 0x80000000;
    if (!host && max_ext > 0x80000008)
        max_ext = 0x80000008;
    if (!(e = cpuid_take(out, sup, 0x80000000, 0, 0)))
        return -E2BIG;
    e->eax = max_ext;
    for (uint32_t f = 0x80000001; f <= max_ext; f++) {
        if (!(e = cpuid_take(out, sup, f, 0, 0)))
            return -E2BIG;
        if (host)
            continue;
        if (f == 0x80000001) {
            e->edx &= BASE_80000001_EDX;
            e->ecx &= BASE_80000001_ECX;
        } else if (f == 0x80000007) {
            e->eax = e->ebx = e->ecx = 0;
            e->edx &= 1u << 8; /* invariant TSC */
        } else if (f == 0x80000008) {
            e->eax &= 0xffff; /* address sizes only */
            e->ebx = e->ecx = e->edx = 0;
        } else if (f < 0x80000002 || f > 0x80000004) {
            e->eax = e->ebx = e->ecx = e->edx = 0; /* keep the brand string, drop the rest */
        }
    }
    return 0;
}
