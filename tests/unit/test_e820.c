/* The e820 map for several RAM sizes: sorted, non-overlapping, covering exactly the guest's RAM,
 * with the legacy BIOS area and ECAM reserved, the 32-bit PCI window left as a gap and RAM
 * continuing above 4 GiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

/* Bytes of [lo, hi) that entries of `type` cover. */
static uint64_t covered(const struct e820_entry *map, unsigned n, uint32_t type, uint64_t lo,
                        uint64_t hi)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (map[i].type != type)
            continue;
        uint64_t s = map[i].addr > lo ? map[i].addr : lo;
        uint64_t e = map[i].addr + map[i].size < hi ? map[i].addr + map[i].size : hi;
        if (e > s)
            total += e - s;
    }
    return total;
}

static uint64_t covered_any(const struct e820_entry *map, unsigned n, uint64_t lo, uint64_t hi)
{
    return covered(map, n, E820_RAM, lo, hi) + covered(map, n, E820_RESERVED, lo, hi) +
           covered(map, n, E820_ACPI, lo, hi);
}

static void check_map(uint64_t size)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, size, "e820"), 0);
    struct e820_entry map[E820_MAX_ENTRIES + 1];
    memset(map, 0xa5, sizeof(map));
    unsigned n = e820_build(&mem, map);
    assert_true(n >= 4 && n <= E820_MAX_ENTRIES);
    /* e820_build stays inside the array it was given. */
    struct e820_entry poison;
    memset(&poison, 0xa5, sizeof(poison));
    assert_memory_equal(&map[E820_MAX_ENTRIES], &poison, sizeof(poison));

    /* Sorted, non-empty, non-overlapping, no wrap, known types. */
    for (unsigned i = 0; i < n; i++) {
        assert_true(map[i].size > 0);
        assert_true(map[i].addr + map[i].size > map[i].addr);
        assert_true(map[i].type == E820_RAM || map[i].type == E820_RESERVED ||
                    map[i].type == E820_ACPI);
        if (i > 0)
            assert_true(map[i - 1].addr + map[i - 1].size <= map[i].addr);
    }

    /* Every RAM entry is memory the VMM backs. */
    uint64_t ram = 0;
    for (unsigned i = 0; i < n; i++) {
        if (map[i].type != E820_RAM)
            continue;
        ram += map[i].size;
        if (!gpa_ptr(&mem, map[i].addr, map[i].size))
            fail_msg("RAM entry %#llx+%#llx is not backed for size %#llx",
                     (unsigned long long)map[i].addr, (unsigned long long)map[i].size,
                     (unsigned long long)size);
    }
    /* RAM totals the memory size, less the legacy area below 1 MiB that is reserved instead. */
    uint64_t legacy = LAYOUT_HIGH_RAM_START - LAYOUT_EBDA;
    assert_int_equal(ram + legacy, size);
    assert_int_equal(covered(map, n, E820_RESERVED, LAYOUT_EBDA, LAYOUT_HIGH_RAM_START), legacy);
    /* Low RAM starts at 0 (the real-mode IVT and the boot structures live there) and again at
     * 1 MiB where kernels load. */
    assert_int_equal(map[0].addr, 0);
    assert_int_equal(map[0].type, E820_RAM);
    assert_int_equal(covered(map, n, E820_RAM, 0, LAYOUT_EBDA), LAYOUT_EBDA);
    assert_int_equal(covered(map, n, E820_RAM, LAYOUT_BOOT_GDT, LAYOUT_PAGE_TABLES + 6 * 4096),
                     LAYOUT_PAGE_TABLES + 6 * 4096 - LAYOUT_BOOT_GDT);
    /* The ACPI tables must not be in RAM the guest could reuse before parsing them. */
    uint64_t acpi_end = LAYOUT_ACPI_BASE + LAYOUT_ACPI_SIZE;
    assert_int_equal(covered(map, n, E820_RAM, LAYOUT_ACPI_BASE, acpi_end), 0);
    assert_int_equal(covered_any(map, n, LAYOUT_ACPI_BASE, acpi_end), LAYOUT_ACPI_SIZE);

    /* Below 4 GiB RAM ends at min(size, 3 GiB); nothing in the hole is RAM. */
    uint64_t low = size < LAYOUT_LOW_RAM_MAX ? size : LAYOUT_LOW_RAM_MAX;
    assert_int_equal(covered(map, n, E820_RAM, LAYOUT_HIGH_RAM_START, low),
                     low - LAYOUT_HIGH_RAM_START);
    assert_int_equal(covered(map, n, E820_RAM, low, LAYOUT_HIGH_RAM_BASE), 0);
    /* ECAM is reserved (Linux ignores MCFG otherwise). */
    assert_int_equal(covered(map, n, E820_RESERVED, LAYOUT_ECAM_BASE,
                             LAYOUT_ECAM_BASE + LAYOUT_ECAM_SIZE),
                     LAYOUT_ECAM_SIZE);
    /* The 32-bit BAR window stays a gap: Linux clips its PCI host bridge windows by reserved
     * e820 ranges on firmware without a recent DMI date, so reserving it would leave no room
     * for BARs. */
    uint64_t mmio32_end = LAYOUT_MMIO32_BASE + LAYOUT_MMIO32_SIZE;
    assert_int_equal(covered_any(map, n, LAYOUT_MMIO32_BASE, mmio32_end), 0);
    assert_int_equal(covered(map, n, E820_RAM, LAYOUT_IOAPIC_BASE, LAYOUT_IOAPIC_BASE + 4096), 0);
    assert_int_equal(covered(map, n, E820_RAM, LAYOUT_LAPIC_BASE, LAYOUT_LAPIC_BASE + 4096), 0);

    /* Above 4 GiB: all the rest, from 4 GiB, in one entry, last in the map. */
    uint64_t high = size - low;
    assert_int_equal(covered(map, n, E820_RAM, LAYOUT_HIGH_RAM_BASE, UINT64_MAX), high);
    if (high) {
        assert_int_equal(map[n - 1].addr, LAYOUT_HIGH_RAM_BASE);
        assert_int_equal(map[n - 1].size, high);
        assert_int_equal(map[n - 1].type, E820_RAM);
    } else {
        assert_true(map[n - 1].addr + map[n - 1].size <= LAYOUT_HIGH_RAM_BASE);
    }
    guest_mem_destroy(&mem);
}

static void test_16m(void **state)
{
    (void)state;
    check_map(16 * MIB);
}

static void test_2g(void **state)
{
    (void)state;
    check_map(2 * GIB);
}

static void test_3g_exactly(void **state)
{
    (void)state;
    check_map(3 * GIB);
}

static void test_3g_plus_page(void **state)
{
    (void)state;
    check_map(3 * GIB + 4096);
}

static void test_5g(void **state)
{
    (void)state;
    check_map(5 * GIB);
}

static void test_64g(void **state)
{
    (void)state;
    check_map(64 * GIB);
}

static void test_exact_map_5g(void **state)
{
    (void)state;
    /* The whole map spelled out once, so a change to it is a deliberate one. */
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 5 * GIB, "e820"), 0);
    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(&mem, map);
    const struct e820_entry want[] = {
        {0, 0x9fc00, E820_RAM},
        {0x9fc00, 0x60400, E820_RESERVED},
        {0x100000, 0xc0000000 - 0x100000, E820_RAM},
        {0xe0000000, 0x10000000, E820_RESERVED},
        {0x100000000, 0x80000000, E820_RAM},
    };
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(map[i].addr, want[i].addr);
        assert_int_equal(map[i].size, want[i].size);
        assert_int_equal(map[i].type, want[i].type);
    }
    guest_mem_destroy(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_16m),
        cmocka_unit_test(test_2g),
        cmocka_unit_test(test_3g_exactly),
        cmocka_unit_test(test_3g_plus_page),
        cmocka_unit_test(test_5g),
        cmocka_unit_test(test_64g),
        cmocka_unit_test(test_exact_map_5g),
    };
    return cmocka_run_group_tests_name("e820", tests, NULL, NULL);
}
