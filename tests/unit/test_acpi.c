/* ACPI tables: found the way a guest finds them (RSDP -> XSDT -> tables, FADT -> DSDT/FACS),
 * checksums, the MADT for several CPU counts, FADT fields, fixed bytes, and buffer limits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/rtc.h"

static uint8_t blob[LAYOUT_ACPI_SIZE];
static int blob_len;

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static struct acpi_config default_config(unsigned ncpus)
{
    struct acpi_config cfg = {
        .ncpus = ncpus,
        .ecam_base = LAYOUT_ECAM_BASE,
        .mmio32_base = LAYOUT_MMIO32_BASE,
        .mmio32_size = LAYOUT_MMIO32_SIZE,
        .mmio64_base = 0x200000000ULL,
        .mmio64_size = LAYOUT_MMIO64_SIZE,
    };
    return cfg;
}

static void build(const struct acpi_config *cfg)
{
    memset(blob, 0x5a, sizeof(blob));
    blob_len = acpi_build(cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE);
    assert_true(blob_len > 0);
}

/* The table at gpa, checked to lie inside what acpi_build reported using. */
static const uint8_t *at(uint64_t gpa, size_t len)
{
    assert_true(gpa >= LAYOUT_ACPI_BASE);
    assert_true(gpa - LAYOUT_ACPI_BASE + len <= (uint64_t)blob_len);
    return blob + (gpa - LAYOUT_ACPI_BASE);
}

static const uint8_t *table_at(uint64_t gpa, const char *sig)
{
    const uint8_t *t = at(gpa, 36);
    assert_memory_equal(t, sig, 4);
    at(gpa, get32(t + 4));
    return t;
}

/* Walk RSDP -> XSDT and return the table with this signature, or NULL. */
static const uint8_t *find_table(const char *sig)
{
    const uint8_t *xsdt = table_at(get64(blob + 24), "XSDT");
    uint32_t len = get32(xsdt + 4);

    for (uint32_t off = 36; off + 8 <= len; off += 8) {
        const uint8_t *t = at(get64(xsdt + off), 36);
        if (!memcmp(t, sig, 4))
            return table_at(get64(xsdt + off), sig);
    }
    return NULL;
}

static const uint8_t *find_dsdt(void)
{
    const uint8_t *fadt = find_table("FACP");
    assert_non_null(fadt);
    return table_at(get64(fadt + 140), "DSDT");
}

static const uint8_t *memfind(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return hay + i;
    return NULL;
}

/* The RSDP of the standard layout, byte for byte: XSDT right after it at 0xe0030. */
static void test_rsdp_bytes(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(1);
    static const uint8_t want[36] = {
        'R', 'S', 'D', ' ', 'P', 'T', 'R', ' ', 0x3a, 'V', 'I', 'R', 'E', 'O', ' ', 0x02,
        0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x30, 0x00, 0x0e, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x9e, 0x00, 0x00, 0x00,
    };

    build(&cfg);
    assert_memory_equal(blob, want, sizeof(want));
    assert_int_equal(sum(blob, 20), 0);
    assert_int_equal(sum(blob, 36), 0);
}

static void check_tables(unsigned ncpus)
{
    struct acpi_config cfg = default_config(ncpus);
    static const char *const xsdt_sigs[] = { "FACP", "APIC", "MCFG" };

    build(&cfg);
    assert_int_equal(sum(blob, 20), 0);
    assert_int_equal(sum(blob, get32(blob + 20)), 0);
    assert_int_equal(blob[15], 2);

    const uint8_t *xsdt = table_at(get64(blob + 24), "XSDT");
    assert_int_equal(get32(xsdt + 4), 36 + 8 * 3);
    assert_int_equal(sum(xsdt, get32(xsdt + 4)), 0);
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *t = find_table(xsdt_sigs[i]);
        assert_non_null(t);
        assert_int_equal(sum(t, get32(t + 4)), 0);
        assert_memory_equal(t + 10, "VIREO ", 6);
        /* Every table is 8-byte aligned at least, as the spec asks. */
        assert_int_equal((t - blob) % 8, 0);
    }
    assert_null(find_table("DSDT")); /* reached through the FADT only */

    const uint8_t *dsdt = find_dsdt();
    assert_int_equal(sum(dsdt, get32(dsdt + 4)), 0);
    assert_int_equal(dsdt[8], 2); /* 64-bit integers */

    const uint8_t *fadt = find_table("FACP");
    uint64_t facs_gpa = get64(fadt + 132);
    const uint8_t *facs = at(facs_gpa, 64);
    assert_memory_equal(facs, "FACS", 4);
    assert_int_equal(get32(facs + 4), 64);
    assert_int_equal(facs_gpa % 64, 0);

    /* Nothing was written past the reported length. */
    assert_int_equal(blob[blob_len], 0x5a);
}

static void test_tables_found_and_checksummed(void **state)
{
    (void)state;
    static const unsigned counts[] = { 1, 2, 3, 64, 254, 255 };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        check_tables(counts[i]);
}

static void check_madt(unsigned ncpus)
{
    struct acpi_config cfg = default_config(ncpus);
    unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;
    uint8_t seen[256] = { 0 };

    build(&cfg);
    const uint8_t *madt = find_table("APIC");
    assert_non_null(madt);
    uint32_t len = get32(madt + 4);
    assert_int_equal(get32(madt + 36), LAYOUT_LAPIC_BASE);
    assert_int_equal(get32(madt + 40), 1); /* PCAT_COMPAT */

    for (uint32_t off = 44; off < len;) {
        const uint8_t *e = madt + off;
        assert_true(off + 2 <= len);
        assert_true(e[1] >= 2 && off + e[1] <= len);
        switch (e[0]) {
        case 0: /* Processor Local APIC */
            assert_int_equal(e[1], 8);
            assert_int_equal(e[2], e[3]); /* UID == APIC ID == CPU index */
            assert_true(e[3] < ncpus);
            assert_int_equal(seen[e[3]], 0);
            seen[e[3]] = 1;
            assert_int_equal(get32(e + 4), 1);
            lapics++;
            break;
        case 1: {
            static const uint8_t want[] = { 1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0 };
            assert_memory_equal(e, want, sizeof(want));
            ioapics++;
            break;
        }
        case 2: {
            static const uint8_t irq0[] = { 2, 10, 0, 0, 2, 0, 0, 0, 0x00, 0x00 };
            static const uint8_t sci[] = { 2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0x00 };
            assert_memory_equal(e, isos == 0 ? irq0 : sci, 10);
            isos++;
            break;
        }
        case 4: {
            static const uint8_t want[] = { 4, 6, 0xff, 0x05, 0x00, 1 };
            assert_memory_equal(e, want, sizeof(want));
            nmis++;
            break;
        }
        default:
            fail_msg("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    assert_int_equal(lapics, ncpus);
    assert_int_equal(ioapics, 1);
    assert_int_equal(isos, 2);
    assert_int_equal(nmis, 1);
}

static void test_madt_cpu_counts(void **state)
{
    (void)state;
    static const unsigned counts[] = { 1, 2, 64, 255 };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        check_madt(counts[i]);
}

/* A legacy 32-bit block address and length match their X_ Generic Address Structure. */
static void check_gas_pair(const uint8_t *fadt, unsigned off32, unsigned len_off, unsigned xoff,
                           uint32_t port, unsigned len)
{
    const uint8_t *gas = fadt + xoff;
    assert_int_equal(get32(fadt + off32), port);
    assert_int_equal(fadt[len_off], len);
    assert_int_equal(gas[0], 1); /* system I/O */
    assert_int_equal(gas[1], 8 * len);
    assert_int_equal(gas[2], 0);
    assert_int_equal(get64(gas + 4), port);
}

static void test_fadt_fields(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(2);

    build(&cfg);
    const uint8_t *f = find_table("FACP");
    assert_non_null(f);
    assert_int_equal(get32(f + 4), 276);
    assert_int_equal(f[8], 6);
    assert_int_equal(get16(f + 46), IRQ_SCI);
    assert_int_equal(get32(f + 48), 0); /* no SMI_CMD: always in ACPI mode */
    assert_int_equal(f[52], 0);
    assert_int_equal(f[53], 0);
    check_gas_pair(f, 56, 88, 148, PORT_ACPI_PM1_EVT, 4);
    check_gas_pair(f, 64, 89, 172, PORT_ACPI_PM1_CNT, 2);
    check_gas_pair(f, 76, 91, 208, PORT_ACPI_PM_TMR, 4);
    /* No PM1b, PM2 or GPE blocks. */
    assert_int_equal(get32(f + 60), 0);
    assert_int_equal(get32(f + 68), 0);
    assert_int_equal(get32(f + 72), 0);
    assert_int_equal(get32(f + 80), 0);
    assert_int_equal(f[92], 0);

    uint16_t boot = get16(f + 109);
    assert_true(boot & (1u << 1));    /* 8042 */
    assert_true(boot & (1u << 2));    /* no VGA */
    assert_false(boot & (1u << 3));   /* MSI works */
    assert_false(boot & (1u << 5));   /* CMOS RTC present */

    uint32_t flags = get32(f + 112);
    assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
    assert_false(flags & (1u << 20)); /* not hardware-reduced */
    assert_int_equal(!!(flags & (1u << 8)), ACPI_PM_TMR_32BIT); /* TMR_VAL_EXT as the device */
    assert_false(flags & (1u << 4));  /* the power button is the fixed-feature one */
    assert_int_equal(f[108], RTC_CENTURY);

    static const uint8_t reset[12] = { 1, 8, 0, 1, 0x10, 0x06, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(f + 116, reset, sizeof(reset));
    assert_int_equal(f[128], ACPI_RESET_VALUE);

    /* FACS and DSDT through the X_ pointers only: the 32-bit ones must then be zero. */
    assert_int_equal(get32(f + 36), 0);
    assert_int_equal(get32(f + 40), 0);
    assert_memory_equal(at(get64(f + 132), 64), "FACS", 4);
    table_at(get64(f + 140), "DSDT");
}

static void test_mcfg_bytes(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(4);
    static const uint8_t head[] = { 'M', 'C', 'F', 'G', 60, 0, 0, 0, 1 };
    static const uint8_t tail[] = {
        0, 0, 0, 0, 0, 0, 0, 0,                         /* reserved */
        0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x00, 0x00, /* ECAM base */
        0x00, 0x00,                                     /* segment 0 */
        0x00, 0xff,                                     /* buses 0..255 */
        0, 0, 0, 0,
    };

    build(&cfg);
    const uint8_t *t = find_table("MCFG");
    assert_non_null(t);
    assert_memory_equal(t, head, sizeof(head));
    assert_memory_equal(t + 10, "VIREO VIREOVM ", 14);
    assert_memory_equal(t + 36, tail, sizeof(tail));
    assert_int_equal(sum(t, 60), 0);
}

static void test_dsdt_contents(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(255);
    /* Name(_S5, Package(4) {5, 5, 0, 0}) */
    static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
                                  0x0a, ACPI_S5_SLP_TYP, 0x0a, ACPI_S5_SLP_TYP, 0x00, 0x00 };
    /* QWordMemory window of the 64-bit BARs. */
    static const uint8_t qword[] = { 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03 };
    /* Memory32Fixed(ReadWrite, 0xe0000000, 0x10000000) reserving ECAM. */
    static const uint8_t ecam[] = { 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0,
                                    0x00, 0x00, 0x00, 0x10 };
    /* COM1: IO(Decode16, 0x3f8, 0x3f8, 1, 8) IRQNoFlags() {4} */
    static const uint8_t com1[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
                                    0x22, 0x10, 0x00, 0x79, 0x00 };
    static const uint8_t pnp0a08[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08 };
    /* KBD_: PNP0303 with IO(Decode16, 0x60, 0x60, 1, 1) IO(Decode16, 0x64, ...) IRQNoFlags {1} */
    static const uint8_t pnp0303[] = { 0x0c, 0x41, 0xd0, 0x03, 0x03 };
    static const uint8_t kbd[] = { 0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01,
                                   0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x01, 0x01,
                                   0x22, 0x02, 0x00, 0x79, 0x00 };

    _Static_assert(ACPI_S5_SLP_TYP > 1 && ACPI_S5_SLP_TYP < 256, "encoded as a ByteConst");
    build(&cfg);
    const uint8_t *d = find_dsdt();
    size_t n = get32(d + 4);
    assert_non_null(memfind(d, n, s5, sizeof(s5)));
    assert_non_null(memfind(d, n, pnp0a08, sizeof(pnp0a08)));
    assert_non_null(memfind(d, n, "PCI0", 4));
    assert_non_null(memfind(d, n, "COM1", 4));
    assert_non_null(memfind(d, n, ecam, sizeof(ecam)));
    assert_non_null(memfind(d, n, com1, sizeof(com1)));
    assert_non_null(memfind(d, n, pnp0303, sizeof(pnp0303)));
    assert_non_null(memfind(d, n, kbd, sizeof(kbd)));
    assert_non_null(memfind(d, n, qword, sizeof(qword)));
    assert_non_null(memfind(d, n, "CP00", 4));
    assert_non_null(memfind(d, n, "CPFE", 4));
    assert_null(memfind(d, n, "CPFF", 4));

    cfg.mmio64_size = 0;
    cfg.ncpus = 1;
    build(&cfg);
    d = find_dsdt();
    n = get32(d + 4);
    assert_null(memfind(d, n, qword, sizeof(qword)));
    assert_null(memfind(d, n, "CP01", 4));
    assert_int_equal(sum(d, n), 0);
}

/* _PRT: INTA..INTD of each slot rotate over four GSIs from the base. */
static void test_dsdt_prt(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(2);
    /* Package {0x1ffff, 3, 0, 16}: slot 1, INTD -> 16 + (1 + 3) % 4. */
    static const uint8_t slot1_intd[] = { 0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00,
                                          0x0a, 0x03, 0x00, 0x0a, 0x10 };
    /* Package {0x2ffff, 0, 0, 18}: slot 2, INTA. */
    static const uint8_t slot2_inta[] = { 0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x02, 0x00,
                                          0x00, 0x00, 0x0a, 0x12 };
    /* Package {0x1fffff, 1, 0, 16}: slot 31, INTB -> 16 + (31 + 1) % 4. */
    static const uint8_t slot31_intb[] = { 0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x1f, 0x00,
                                           0x01, 0x00, 0x0a, 0x10 };
    /* Name(_PRT, Package(0x80) {: a 2-byte PkgLength, then 128 elements. */
    static const uint8_t head[] = { 0x08, '_', 'P', 'R', 'T', 0x12 };

    build(&cfg);
    const uint8_t *d = find_dsdt();
    assert_null(memfind(d, get32(d + 4), "_PRT", 4));

    cfg.pci_intx_gsi_base = 16;
    build(&cfg);
    d = find_dsdt();
    size_t n = get32(d + 4);
    const uint8_t *prt = memfind(d, n, head, sizeof(head));
    assert_non_null(prt);
    assert_int_equal(prt[6] >> 6, 1);
    assert_int_equal(prt[8], 128);
    assert_non_null(memfind(d, n, slot1_intd, sizeof(slot1_intd)));
    assert_non_null(memfind(d, n, slot2_inta, sizeof(slot2_inta)));
    assert_non_null(memfind(d, n, slot31_intb, sizeof(slot31_intb)));
    assert_int_equal(sum(d, n), 0);

    /* The four lines must be IOAPIC inputs above the ISA ones. */
    cfg.pci_intx_gsi_base = 15;
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
    cfg.pci_intx_gsi_base = IOAPIC_PINS - 3;
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
    cfg.pci_intx_gsi_base = IOAPIC_PINS - 4;
    assert_true(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE) > 0);
}

static void test_too_small_buffer(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(64);
    static uint8_t small[LAYOUT_ACPI_SIZE];

    build(&cfg);
    int need = blob_len;
    static const size_t lens[] = { 0, 1, 35, 36, 100, 400, 1000 };
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        assert_int_equal(acpi_build(&cfg, small, lens[i], LAYOUT_ACPI_BASE), -ENOSPC);
    for (size_t len = (size_t)need - 64; len < (size_t)need; len++) {
        memset(small, 0xa5, sizeof(small));
        assert_int_equal(acpi_build(&cfg, small, len, LAYOUT_ACPI_BASE), -ENOSPC);
        assert_int_equal(small[len], 0xa5);
    }
    assert_int_equal(acpi_build(&cfg, small, (size_t)need, LAYOUT_ACPI_BASE), need);
    assert_memory_equal(small, blob, (size_t)need);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct acpi_config cfg;

    cfg = default_config(0);
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
    cfg = default_config(ACPI_MAX_CPUS + 1);
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
    cfg = default_config(1);
    cfg.mmio32_base = 0xf0000000;
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
    cfg = default_config(1);
    cfg.ecam_base = 0x100000000ULL;
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
    cfg = default_config(1);
    cfg.mmio64_base = UINT64_MAX - 10;
    assert_int_equal(acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE), -EINVAL);
}

static void test_deterministic(void **state)
{
    (void)state;
    struct acpi_config cfg = default_config(8);
    static uint8_t first[LAYOUT_ACPI_SIZE];

    build(&cfg);
    memcpy(first, blob, (size_t)blob_len);
    int len = blob_len;
    build(&cfg);
    assert_int_equal(blob_len, len);
    assert_memory_equal(first, blob, (size_t)len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsdp_bytes),
        cmocka_unit_test(test_tables_found_and_checksummed),
        cmocka_unit_test(test_madt_cpu_counts),
        cmocka_unit_test(test_fadt_fields),
        cmocka_unit_test(test_mcfg_bytes),
        cmocka_unit_test(test_dsdt_contents),
        cmocka_unit_test(test_dsdt_prt),
        cmocka_unit_test(test_too_small_buffer),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests_name("acpi", tests, NULL, NULL);
}
