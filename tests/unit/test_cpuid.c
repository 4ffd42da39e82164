/* The CPUID model built from a synthetic "supported" table shaped like a modern Intel host under
 * KVM: baseline feature masks, the hypervisor bit, topology (leaf 1, 4, 0xB) for 1..255 vCPUs,
 * TSC frequency leaves, the KVM paravirtual leaves, host pass-through, and table bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/cpuid.h"

#define BIT(n) (1u << (n))

/* Leaf 1 ECX */
#define ECX_SSE3 BIT(0)
#define ECX_PCLMUL BIT(1)
#define ECX_MONITOR BIT(3)
#define ECX_VMX BIT(5)
#define ECX_SSSE3 BIT(9)
#define ECX_FMA BIT(12)
#define ECX_CX16 BIT(13)
#define ECX_PCID BIT(17)
#define ECX_SSE41 BIT(19)
#define ECX_SSE42 BIT(20)
#define ECX_X2APIC BIT(21)
#define ECX_MOVBE BIT(22)
#define ECX_POPCNT BIT(23)
#define ECX_TSC_DEADLINE BIT(24)
#define ECX_AES BIT(25)
#define ECX_XSAVE BIT(26)
#define ECX_OSXSAVE BIT(27)
#define ECX_AVX BIT(28)
#define ECX_F16C BIT(29)
#define ECX_RDRAND BIT(30)
#define ECX_HYPERVISOR BIT(31)
/* Leaf 1 EDX */
#define EDX_FPU BIT(0)
#define EDX_TSC BIT(4)
#define EDX_MSR BIT(5)
#define EDX_PAE BIT(6)
#define EDX_CX8 BIT(8)
#define EDX_APIC BIT(9)
#define EDX_SEP BIT(11)
#define EDX_PGE BIT(13)
#define EDX_CMOV BIT(15)
#define EDX_PAT BIT(16)
#define EDX_CLFLUSH BIT(19)
#define EDX_DS BIT(21)
#define EDX_ACPI BIT(22)
#define EDX_MMX BIT(23)
#define EDX_FXSR BIT(24)
#define EDX_SSE BIT(25)
#define EDX_SSE2 BIT(26)
#define EDX_SS BIT(27)
#define EDX_HTT BIT(28)
#define EDX_TM BIT(29)
#define EDX_PBE BIT(31)
/* Leaf 7.0 EBX */
#define L7B_FSGSBASE BIT(0)
#define L7B_BMI1 BIT(3)
#define L7B_AVX2 BIT(5)
#define L7B_BMI2 BIT(8)
#define L7B_ERMS BIT(9)
#define L7B_AVX512F BIT(16)
/* 0x80000001 */
#define E1D_SYSCALL BIT(11)
#define E1D_NX BIT(20)
#define E1D_PDPE1GB BIT(26)
#define E1D_RDTSCP BIT(27)
#define E1D_LM BIT(29)
#define E1C_LAHF BIT(0)
#define E1C_ABM BIT(5)
#define E1C_PREFETCHW BIT(8)

#define KVM_SIG 0x40000000u
#define KVM_FEAT 0x40000001u
#define KVM_TIMING 0x40000010u

static void add(struct cpuid_table *t, uint32_t fn, uint32_t idx, bool sig, uint32_t a,
                uint32_t b, uint32_t c, uint32_t d)
{
    assert_true(t->count < CPUID_MAX_ENTRIES);
    t->entries[t->count++] = (struct cpuid_entry){fn, idx, sig ? CPUID_F_SIGNIFICANT_INDEX : 0,
                                                  a, b, c, d};
}

static uint32_t str4(const char *s)
{
    uint32_t v;
    memcpy(&v, s, 4);
    return v;
}

#define HOST_1_ECX                                                                                 \
    (ECX_SSE3 | ECX_PCLMUL | ECX_SSSE3 | ECX_FMA | ECX_CX16 | ECX_PCID | ECX_SSE41 | ECX_SSE42 |  \
     ECX_X2APIC | ECX_MOVBE | ECX_POPCNT | ECX_TSC_DEADLINE | ECX_AES | ECX_XSAVE | ECX_OSXSAVE |  \
     ECX_AVX | ECX_F16C | ECX_RDRAND | ECX_VMX | ECX_MONITOR)
#define HOST_1_EDX 0xbfebfbffu /* every feature bit a Core CPU reports */
#define HOST_7_EBX (L7B_FSGSBASE | L7B_BMI1 | L7B_AVX2 | L7B_BMI2 | L7B_ERMS | L7B_AVX512F)
#define HOST_KVM_FEATURES 0x0100fefbu

/* What KVM_GET_SUPPORTED_CPUID returns on an Ice Lake server, give or take: max basic leaf 0x1b,
 * four caches in leaf 4, topology and XSAVE sub-leaves, the extended leaves up to 0x80000008,
 * and the KVM leaves. `max_ext` lets a test stretch the extended range. */
static void host_table(struct cpuid_table *t, uint32_t max_ext)
{
    memset(t, 0, sizeof(*t));
    add(t, 0, 0, false, 0x1b, str4("Genu"), str4("ntel"), str4("ineI"));
    add(t, 1, 0, false, 0x000606a6, 0x00000805, HOST_1_ECX, HOST_1_EDX);
    add(t, 2, 0, false, 0x00feff01, 0x000000f0, 0, 0);
    /* Leaf 4 as the host reports it, its sharing fields describing the host's own package. */
    add(t, 4, 0, true, 0x7c004121, 0x02c0003f, 0x0000003f, 0);  /* L1d */
    add(t, 4, 1, true, 0x7c004122, 0x01c0003f, 0x0000003f, 0);  /* L1i */
    add(t, 4, 2, true, 0x7c004143, 0x03c0003f, 0x000003ff, 0);  /* L2 */
    add(t, 4, 3, true, 0x7c0fc163, 0x02c0003f, 0x0000bfff, 4);  /* L3 */
    add(t, 4, 4, true, 0, 0, 0, 0);
    add(t, 5, 0, false, 0x40, 0x40, 3, 0x11142120);
    add(t, 6, 0, false, 0x77, 2, 9, 0);
    add(t, 7, 0, true, 0, HOST_7_EBX, 0x40405f5e, 0xbc040412);
    add(t, 7, 1, true, 0, 0, 0, 0);
    add(t, 0xa, 0, false, 0x08300805, 0, 0, 0x8603);
    add(t, 0xb, 0, true, 1, 2, 0x100, 0);
    add(t, 0xb, 1, true, 7, 0x48, 0x201, 0);
    add(t, 0xd, 0, true, 0x2e7, 0xa88, 0xa88, 0);
    add(t, 0xd, 1, true, 0xf, 0x988, 0, 0);
    add(t, 0xd, 2, true, 0x100, 0x240, 0, 0);
    for (uint32_t i = 5; i <= 7; i++)
        add(t, 0xd, i, true, 0x40 << (i - 5), 0x440 + 0x40 * i, 0, 0);
    add(t, 0xd, 9, true, 8, 0xa80, 0, 0);
    add(t, 0x14, 0, true, 1, 0xf, 7, 0);
    add(t, 0x15, 0, false, 2, 0xe6, 0x16e3600, 0); /* the host's own crystal and ratio */
    add(t, 0x16, 0, false, 2600, 3600, 100, 0);
    add(t, KVM_SIG, 0, false, KVM_FEAT, str4("KVMK"), str4("VMKV"), str4("M\0\0\0"));
    add(t, KVM_FEAT, 0, false, HOST_KVM_FEATURES, 0, 0, 0);
    add(t, 0x80000000, 0, false, max_ext, 0, 0, 0);
    add(t, 0x80000001, 0, false, 0, 0, E1C_LAHF | E1C_ABM | E1C_PREFETCHW | BIT(29),
        E1D_SYSCALL | E1D_NX | E1D_PDPE1GB | E1D_RDTSCP | E1D_LM);
    add(t, 0x80000002, 0, false, str4("Inte"), str4("l(R)"), str4(" Xeo"), str4("n(R)"));
    add(t, 0x80000003, 0, false, str4(" Gol"), str4("d 63"), str4("48 C"), str4("PU @"));
    add(t, 0x80000004, 0, false, str4(" 2.6"), str4("0GHz"), 0, 0);
    add(t, 0x80000006, 0, false, 0, 0, 0x01007040, 0);
    add(t, 0x80000007, 0, false, 0, 0, 0, BIT(8));
    add(t, 0x80000008, 0, false, 0x00003030, BIT(9), 0, 0);
    for (uint32_t f = 0x80000009; f <= max_ext; f++)
        add(t, f, 0, false, f, f, f, f);
}

static struct cpuid_table sup, out;

static const struct cpuid_entry *get(uint32_t fn, uint32_t idx)
{
    const struct cpuid_entry *e = cpuid_find(&out, fn, idx);
    if (!e)
        fail_msg("leaf %#x.%u missing", fn, idx);
    return e;
}

static void build(enum cpu_model model, unsigned ncpus, unsigned apic_id, uint32_t tsc_khz)
{
    int rc = cpuid_build(&sup, model, ncpus, apic_id, tsc_khz, &out);
    if (rc != 0)
        fail_msg("cpuid_build(%u cpus) = %d", ncpus, rc);
}

/* Properties every built table has: each (leaf, sub-leaf) once, sub-leaf flags where the index
 * matters, and no basic or extended leaf beyond the advertised maximum. */
static void check_table_shape(void)
{
    uint32_t max_basic = get(0, 0)->eax, max_ext = get(0x80000000, 0)->eax;
    for (unsigned i = 0; i < out.count; i++) {
        const struct cpuid_entry *e = &out.entries[i];
        bool indexed = e->function == 4 || e->function == 7 || e->function == 0xb ||
                       e->function == 0xd;
        /* Leaves passed through from the accelerator keep its sub-leaf flag. */
        const struct cpuid_entry *s = cpuid_find(&sup, e->function, e->index);
        if (!indexed && s && s->function >= 0x10 && s->function < 0x40000000)
            indexed = s->flags & CPUID_F_SIGNIFICANT_INDEX;
        assert_int_equal(!!(e->flags & CPUID_F_SIGNIFICANT_INDEX), indexed);
        if (e->function < 0x40000000)
            assert_true(e->function <= max_basic);
        if (e->function >= 0x80000000)
            assert_true(e->function <= max_ext);
        for (unsigned j = 0; j < i; j++)
            assert_false(out.entries[j].function == e->function &&
                         (!indexed || out.entries[j].index == e->index));
    }
}

static int setup(void **state)
{
    (void)state;
    host_table(&sup, 0x80000008);
    return 0;
}

static void test_baseline_masks(void **state)
{
    (void)state;
    build(CPU_MODEL_BASELINE, 1, 0, 0);
    check_table_shape();
    const struct cpuid_entry *l1 = get(1, 0);
    /* Kept: x86-64-v1 plus CX16, and the x2APIC/TSC-deadline timer paths. */
    uint32_t keep_edx = EDX_FPU | EDX_TSC | EDX_MSR | EDX_PAE | EDX_CX8 | EDX_APIC | EDX_SEP |
                        EDX_PGE | EDX_CMOV | EDX_PAT | EDX_CLFLUSH | EDX_MMX | EDX_FXSR | EDX_SSE |
                        EDX_SSE2;
    assert_int_equal(l1->edx & keep_edx, keep_edx);
    assert_int_equal(l1->ecx & (ECX_CX16 | ECX_X2APIC | ECX_TSC_DEADLINE),
                     ECX_CX16 | ECX_X2APIC | ECX_TSC_DEADLINE);
    /* Dropped: everything a migration target or the software CPU may lack. */
    uint32_t drop_ecx = ECX_SSE3 | ECX_PCLMUL | ECX_MONITOR | ECX_VMX | ECX_SSSE3 | ECX_FMA |
                        ECX_PCID | ECX_SSE41 | ECX_SSE42 | ECX_MOVBE | ECX_POPCNT | ECX_AES |
                        ECX_XSAVE | ECX_OSXSAVE | ECX_AVX | ECX_F16C | ECX_RDRAND;
    assert_int_equal(l1->ecx & drop_ecx, 0);
    assert_int_equal(l1->edx & (EDX_DS | EDX_ACPI | EDX_SS | EDX_TM | EDX_PBE), 0);
    /* Family/model/stepping are the host's. */
    assert_int_equal(l1->eax, 0x000606a6);

    /* Leaf 7: no AVX2, BMI, AVX-512, ERMS... */
    const struct cpuid_entry *l7 = get(7, 0);
    assert_int_equal(l7->ebx, 0);
    assert_int_equal(l7->ecx, 0);
    assert_int_equal(l7->edx, 0);
    /* No XSAVE, so no XSAVE leaf either. */
    assert_null(cpuid_find(&out, 0xd, 0));
    /* Leaf 6: only ARAT. */
    const struct cpuid_entry *l6 = get(6, 0);
    assert_int_equal(l6->eax, BIT(2));
    assert_int_equal(l6->ecx, 0);

    const struct cpuid_entry *e1 = get(0x80000001, 0);
    assert_int_equal(e1->edx, E1D_SYSCALL | E1D_NX | E1D_LM);
    assert_int_equal(e1->ecx, E1C_LAHF);
    /* The brand string stays, so the guest's /proc/cpuinfo names the host CPU. */
    assert_int_equal(get(0x80000002, 0)->eax, str4("Inte"));
    assert_int_equal(get(0x80000004, 0)->ebx, str4("0GHz"));
    assert_int_equal(get(0x80000007, 0)->edx, BIT(8));
    const struct cpuid_entry *e8 = get(0x80000008, 0);
    assert_int_equal(e8->eax, 0x3030);
    assert_int_equal(e8->ebx, 0);
    /* Vendor string and a capped maximum basic leaf. */
    const struct cpuid_entry *l0 = get(0, 0);
    assert_int_equal(l0->ebx, str4("Genu"));
    assert_int_equal(l0->edx, str4("ineI"));
    assert_int_equal(l0->ecx, str4("ntel"));
    assert_true(l0->eax >= 0xb && l0->eax <= 0x16);
    /* KVM features limited to the clock and I/O-delay ones. */
    uint32_t kvm = get(KVM_FEAT, 0)->eax;
    assert_int_equal(kvm & ~(BIT(0) | BIT(1) | BIT(3) | BIT(24)), 0);
    assert_int_equal(kvm, BIT(0) | BIT(1) | BIT(3) | BIT(24));
}

static void test_baseline_never_exceeds_host(void **state)
{
    (void)state;
    /* A host without x2APIC, TSC deadline or NX: the baseline does not invent them. */
    struct cpuid_entry *l1 = (struct cpuid_entry *)cpuid_find(&sup, 1, 0);
    l1->ecx &= ~(ECX_X2APIC | ECX_TSC_DEADLINE);
    struct cpuid_entry *e1 = (struct cpuid_entry *)cpuid_find(&sup, 0x80000001, 0);
    e1->edx &= ~E1D_NX;
    build(CPU_MODEL_BASELINE, 2, 0, 0);
    assert_int_equal(get(1, 0)->ecx & (ECX_X2APIC | ECX_TSC_DEADLINE), 0);
    assert_int_equal(get(0x80000001, 0)->edx & E1D_NX, 0);
}

static void test_hypervisor_bit(void **state)
{
    (void)state;
    build(CPU_MODEL_BASELINE, 1, 0, 0);
    assert_true(get(1, 0)->ecx & ECX_HYPERVISOR);
    build(CPU_MODEL_HOST, 1, 0, 0);
    assert_true(get(1, 0)->ecx & ECX_HYPERVISOR);
}

static void test_leaf1_ebx_and_htt(void **state)
{
    (void)state;
    static const struct { unsigned ncpus, apic, count; } cases[] = {
        {1, 0, 1}, {2, 1, 2}, {4, 3, 4}, {64, 63, 64}, {255, 254, 255}, {255, 17, 255},
        {256, 5, 255}, /* the 8-bit count saturates without spilling into the APIC ID */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int m = 0; m < 2; m++) {
            build(m ? CPU_MODEL_HOST : CPU_MODEL_BASELINE, cases[i].ncpus, cases[i].apic, 0);
            const struct cpuid_entry *l1 = get(1, 0);
            assert_int_equal(l1->ebx >> 24, cases[i].apic);
            assert_int_equal((l1->ebx >> 16) & 0xff, cases[i].count);
            assert_int_equal((l1->ebx >> 8) & 0xff, 8); /* 64-byte CLFLUSH lines */
            assert_int_equal(l1->ebx & 0xff, 0x05);     /* brand index kept */
            assert_int_equal(!!(l1->edx & EDX_HTT), cases[i].ncpus > 1);
            assert_true(l1->edx & EDX_APIC);
        }
    }
}

static unsigned order(unsigned n)
{
    unsigned b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

static void check_topology(unsigned ncpus)
{
    for (unsigned apic = 0; apic < ncpus; apic += (ncpus > 8 ? ncpus / 5 + 1 : 1)) {
        build(CPU_MODEL_BASELINE, ncpus, apic, 0);
        check_table_shape();
        const struct cpuid_entry *smt = get(0xb, 0), *core = get(0xb, 1), *end = get(0xb, 2);
        assert_int_equal(smt->index, 0);
        assert_int_equal(core->index, 1);
        /* Level 0: SMT, one thread per core, shift 0. */
        assert_int_equal(smt->eax & 0x1f, 0);
        assert_int_equal(smt->ebx & 0xffff, 1);
        assert_int_equal(smt->ecx & 0xff, 0);
        assert_int_equal((smt->ecx >> 8) & 0xff, 1);
        /* Level 1: cores, all vCPUs in one package; the shift covers every APIC ID. */
        unsigned shift = core->eax & 0x1f;
        assert_int_equal(shift, order(ncpus));
        assert_true((1u << shift) >= ncpus);
        assert_true(shift == 0 || (1u << (shift - 1)) < ncpus);
        assert_int_equal(core->ebx & 0xffff, ncpus);
        assert_int_equal(core->ecx & 0xff, 1);
        assert_int_equal((core->ecx >> 8) & 0xff, 2);
        /* Level 2 ends the list. */
        assert_int_equal((end->ecx >> 8) & 0xff, 0);
        assert_int_equal(end->ecx & 0xff, 2);
        assert_int_equal(end->ebx & 0xffff, 0);
        assert_int_equal(end->eax & 0x1f, 0);
        /* EDX of every level: this vCPU's x2APIC ID, and the package ID (ID >> shift) is 0. */
        assert_int_equal(smt->edx, apic);
        assert_int_equal(core->edx, apic);
        assert_int_equal(end->edx, apic);
        assert_int_equal(apic >> shift, 0);
        /* Sub-leaves beyond the list are absent, not a copy of level 0. */
        assert_null(cpuid_find(&out, 0xb, 3));
    }
}

static void test_leaf_b_1cpu(void **state)
{
    (void)state;
    check_topology(1);
}

static void test_leaf_b_2cpus(void **state)
{
    (void)state;
    check_topology(2);
}

static void test_leaf_b_64cpus(void **state)
{
    (void)state;
    check_topology(64);
}

static void test_leaf_b_255cpus(void **state)
{
    (void)state;
    check_topology(255);
}

static void test_leaf4_caches(void **state)
{
    (void)state;
    static const unsigned counts[] = {1, 2, 3, 8, 64, 65, 255};
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        unsigned n = counts[c];
        build(CPU_MODEL_BASELINE, n, 0, 0);
        for (uint32_t i = 0; i < 4; i++) {
            const struct cpuid_entry *h = cpuid_find(&sup, 4, i);
            const struct cpuid_entry *e = get(4, i);
            assert_int_equal(e->index, i);
            /* Geometry is the host's. */
            assert_int_equal(e->eax & 0x3fff, h->eax & 0x3fff);
            assert_int_equal(e->ebx, h->ebx);
            assert_int_equal(e->ecx, h->ecx);
            assert_int_equal(e->edx, h->edx);
            /* Cores per package: a 6-bit field, saturating rather than wrapping. */
            unsigned cores = e->eax >> 26;
            assert_int_equal(cores, n - 1 > 63 ? 63 : n - 1);
            /* Threads sharing the cache: one per core for L1/L2, the package for L3. */
            unsigned level = (e->eax >> 5) & 7;
            unsigned sharing = (e->eax >> 14) & 0xfff;
            assert_int_equal(sharing, level == 3 ? n - 1 : 0);
        }
        /* The list ends with a null cache type, as on hardware. */
        assert_int_equal(get(4, 4)->eax & 0x1f, 0);
        assert_null(cpuid_find(&out, 4, 5));
    }
}

static void test_tsc_frequency(void **state)
{
    (void)state;
    const uint32_t khz = 2600000;
    build(CPU_MODEL_BASELINE, 2, 0, khz);
    check_table_shape();
    assert_true(get(0, 0)->eax >= 0x16);
    /* 0x15: TSC Hz = ECX * EBX / EAX, exactly the kHz value given. */
    const struct cpuid_entry *l15 = get(0x15, 0);
    assert_int_not_equal(l15->eax, 0);
    assert_int_not_equal(l15->ebx, 0);
    assert_int_not_equal(l15->ecx, 0);
    assert_int_equal((uint64_t)l15->ecx * l15->ebx / l15->eax, (uint64_t)khz * 1000);
    assert_int_equal((uint64_t)l15->ecx * l15->ebx % l15->eax, 0);
    assert_int_equal(l15->ecx, 1000000000); /* the crystal is the 1 GHz LAPIC timer clock */
    /* ... and so Linux computes it: crystal kHz times EBX in 32-bit arithmetic. */
    uint32_t crystal_khz = l15->ecx / 1000;
    assert_int_equal((uint32_t)(crystal_khz * l15->ebx) / l15->eax, khz);
    assert_true((uint64_t)crystal_khz * l15->ebx <= UINT32_MAX);
    /* 0x16: base and max MHz, bus 100 MHz. */
    const struct cpuid_entry *l16 = get(0x16, 0);
    assert_int_equal(l16->eax, khz / 1000);
    assert_int_equal(l16->ebx, khz / 1000);
    assert_int_equal(l16->ecx, 100);
    /* The KVM timing leaf, advertised by the signature leaf's maximum. */
    assert_int_equal(get(KVM_SIG, 0)->eax, KVM_TIMING);
    const struct cpuid_entry *t = get(KVM_TIMING, 0);
    assert_int_equal(t->eax, khz);
    assert_int_equal(t->ebx, 1000000);

    /* A frequency whose ratio to 1 GHz needs a numerator Linux would overflow: no ratio. */
    build(CPU_MODEL_BASELINE, 2, 0, 2593906);
    l15 = get(0x15, 0);
    assert_int_equal(l15->eax, 0);
    assert_int_equal(l15->ebx, 0);
    assert_int_equal(get(0x16, 0)->eax, 2593);
    /* The software CPU's 1 GHz TSC is 1:1 with the crystal. */
    build(CPU_MODEL_BASELINE, 2, 0, 1000000);
    l15 = get(0x15, 0);
    assert_int_equal(l15->eax, 1);
    assert_int_equal(l15->ebx, 1);

    /* Without a known frequency the host's crystal values must not leak through. */
    build(CPU_MODEL_BASELINE, 2, 0, 0);
    const struct cpuid_entry *e = cpuid_find(&out, 0x15, 0);
    assert_true(!e || (e->eax == 0 && e->ebx == 0));
    assert_null(cpuid_find(&out, KVM_TIMING, 0));
    assert_int_equal(get(KVM_SIG, 0)->eax, KVM_FEAT);
}

static void test_kvm_signature(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        build(m ? CPU_MODEL_HOST : CPU_MODEL_BASELINE, 4, 2, 1000000);
        const struct cpuid_entry *s = get(KVM_SIG, 0);
        char sig[13] = {0};
        memcpy(sig, &s->ebx, 4);
        memcpy(sig + 4, &s->ecx, 4);
        memcpy(sig + 8, &s->edx, 4);
        assert_memory_equal(sig, "KVMKVMKVM\0\0\0", 12);
        assert_non_null(cpuid_find(&out, KVM_FEAT, 0));
    }
    /* Host model: all the paravirtual features KVM offers. */
    assert_int_equal(get(KVM_FEAT, 0)->eax, HOST_KVM_FEATURES);
    /* An accelerator without KVM leaves: the signature is still ours, the features empty. */
    for (unsigned i = 0; i < sup.count; i++)
        if (sup.entries[i].function == KVM_FEAT)
            sup.entries[i].function = 0x4fffffff;
    build(CPU_MODEL_BASELINE, 1, 0, 0);
    assert_int_equal(get(KVM_FEAT, 0)->eax, 0);
}

static void test_host_passthrough(void **state)
{
    (void)state;
    build(CPU_MODEL_HOST, 4, 0, 0);
    check_table_shape();
    const struct cpuid_entry *l1 = get(1, 0);
    assert_int_equal(l1->ecx, HOST_1_ECX | ECX_HYPERVISOR);
    assert_int_equal(l1->edx, HOST_1_EDX | EDX_HTT);
    assert_int_equal(get(7, 0)->ebx, HOST_7_EBX);
    assert_int_equal(get(7, 0)->ecx, 0x40405f5e);
    assert_int_equal(get(0, 0)->eax, 0x1b);
    /* XSAVE is on, so its sub-leaves come along: the guest sizes its FPU state from them. */
    assert_int_equal(get(0xd, 0)->eax, 0x2e7);
    assert_int_equal(get(0xd, 0)->ebx, 0xa88);
    assert_int_equal(get(0xd, 1)->eax, 0xf);
    assert_int_equal(get(0xd, 2)->ebx, 0x240);
    assert_int_equal(get(0xd, 9)->ebx, 0xa80);
    assert_null(cpuid_find(&out, 0xd, 3));
    const struct cpuid_entry *e1 = get(0x80000001, 0);
    assert_true(e1->edx & E1D_PDPE1GB);
    assert_true(e1->edx & E1D_RDTSCP);
    assert_true(e1->ecx & E1C_ABM);
    /* Topology is still ours, not the host's. */
    assert_int_equal(get(0xb, 1)->ebx & 0xffff, 4);
    assert_int_equal(get(4, 3)->eax >> 26, 3);
    /* Leaves the model does not rewrite pass through as the accelerator gave them. */
    assert_int_equal(get(0xa, 0)->eax, 0x08300805);
    assert_int_equal(get(0x14, 0)->ebx, 0xf);
    /* ...and the baseline hides them. */
    build(CPU_MODEL_BASELINE, 4, 0, 0);
    assert_null(cpuid_find(&out, 0xa, 0));
    assert_null(cpuid_find(&out, 0x14, 0));
}

static void test_no_e2big_for_realistic_input(void **state)
{
    (void)state;
    /* The largest realistic input: host model, every XSAVE component, extended leaves up to
     * AMD's 0x80000028, TSC leaves, 255 vCPUs. */
    host_table(&sup, 0x80000028);
    for (uint32_t i = 3; i < 20; i++)
        if (!cpuid_find(&sup, 0xd, i))
            add(&sup, 0xd, i, true, 0x40, 0x400 + i, 0, 0);
    for (int m = 0; m < 2; m++) {
        for (unsigned n = 1; n <= 255; n += 127) {
            int rc = cpuid_build(&sup, m ? CPU_MODEL_HOST : CPU_MODEL_BASELINE, n, n - 1,
                                 3000000, &out);
            assert_int_equal(rc, 0);
            assert_true(out.count <= CPUID_MAX_ENTRIES);
            check_table_shape();
        }
    }
    /* Host model keeps the extended range; baseline stops at 0x80000008. */
    build(CPU_MODEL_HOST, 1, 0, 0);
    assert_int_equal(get(0x80000000, 0)->eax, 0x80000028);
    assert_int_equal(get(0x80000021, 0)->eax, 0x80000021);
    build(CPU_MODEL_BASELINE, 1, 0, 0);
    assert_int_equal(get(0x80000000, 0)->eax, 0x80000008);
    assert_null(cpuid_find(&out, 0x80000021, 0));
}

static void test_absurd_input_is_bounded(void **state)
{
    (void)state;
    /* An accelerator claiming a huge extended range: the builder refuses instead of writing past
     * its table. */
    host_table(&sup, 0x80000008);
    struct cpuid_entry *e = (struct cpuid_entry *)cpuid_find(&sup, 0x80000000, 0);
    e->eax = 0x8000ffff;
    assert_int_equal(cpuid_build(&sup, CPU_MODEL_HOST, 1, 0, 0, &out), -E2BIG);
    assert_true(out.count <= CPUID_MAX_ENTRIES);
    /* The baseline model caps the range and is unaffected. */
    build(CPU_MODEL_BASELINE, 1, 0, 0);
}

static void test_minimal_host(void **state)
{
    (void)state;
    /* An accelerator reporting only leaves 0 and 1 (max leaf 1): no topology leaves appear. */
    memset(&sup, 0, sizeof(sup));
    add(&sup, 0, 0, false, 1, str4("Auth"), str4("cAMD"), str4("enti"));
    add(&sup, 1, 0, false, 0x00800f12, 0, ECX_CX16, EDX_FPU | EDX_CX8 | EDX_SSE2);
    build(CPU_MODEL_BASELINE, 2, 1, 0);
    check_table_shape();
    assert_int_equal(get(0, 0)->eax, 1);
    assert_null(cpuid_find(&out, 0xb, 0));
    assert_null(cpuid_find(&out, 4, 0));
    assert_int_equal(get(1, 0)->ebx >> 24, 1);
    assert_true(get(1, 0)->ecx & ECX_HYPERVISOR);
    assert_non_null(cpuid_find(&out, KVM_SIG, 0));
}

static void test_parse_model(void **state)
{
    (void)state;
    enum cpu_model m = CPU_MODEL_HOST;
    assert_int_equal(cpuid_parse_model("baseline", &m), 0);
    assert_int_equal(m, CPU_MODEL_BASELINE);
    assert_int_equal(cpuid_parse_model("host", &m), 0);
    assert_int_equal(m, CPU_MODEL_HOST);
    static const char *const bad[] = {"", "Host", "HOST", "base", "baseline ", " host", "max",
                                      "hostx", "qemu64"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = CPU_MODEL_HOST;
        assert_int_equal(cpuid_parse_model(bad[i], &m), -EINVAL);
        assert_int_equal(m, CPU_MODEL_HOST);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    const struct CMUnitTest tests[] = {
        T(test_baseline_masks),
        T(test_baseline_never_exceeds_host),
        T(test_hypervisor_bit),
        T(test_leaf1_ebx_and_htt),
        T(test_leaf_b_1cpu),
        T(test_leaf_b_2cpus),
        T(test_leaf_b_64cpus),
        T(test_leaf_b_255cpus),
        T(test_leaf4_caches),
        T(test_tsc_frequency),
        T(test_kvm_signature),
        T(test_host_passthrough),
        T(test_no_e2big_for_realistic_input),
        T(test_absurd_input_is_bounded),
        T(test_minimal_host),
        T(test_parse_model),
    };
#undef T
    return cmocka_run_group_tests_name("cpuid", tests, NULL, NULL);
}
