/* Guest RAM: sizes guest_mem_create accepts, the two backings (private anonymous memory asking for
 * transparent huge pages, or a shared memfd) as /proc/self/smaps shows them, the two-region layout
 * around the 32-bit PCI hole, and gpa_ptr(), the one check every guest address goes through
 * (edges, zero length, wrap-around, straddling the hole, the end of RAM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static void test_create_refusals(void **state)
{
    (void)state;
    static const uint64_t bad[] = {
        0, 4096, GUEST_MEM_MIN - 4096, GUEST_MEM_MIN + 1, GUEST_MEM_MIN + 512, 64 * MIB + 2048,
        GUEST_MEM_MAX + 4096, GUEST_MEM_MAX * 2, UINT64_MAX, UINT64_MAX - 4095,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct guest_mem mem;
        memset(&mem, 0x55, sizeof(mem));
        int rc = guest_mem_create(&mem, bad[i], "test");
        if (rc != -EINVAL)
            fail_msg("guest_mem_create(%#llx) = %d, expected -EINVAL", (unsigned long long)bad[i],
                     rc);
        /* A refused create leaves a state that destroy accepts. */
        assert_int_equal(mem.fd, -1);
        assert_null(mem.base);
        assert_int_equal(mem.nregions, 0);
        guest_mem_destroy(&mem);
    }
}

static void test_create_smallest(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, GUEST_MEM_MIN, "test"), 0);
    assert_int_equal(mem.fd, -1); /* anonymous unless asked otherwise */
    assert_int_equal(mem.size, GUEST_MEM_MIN);
    assert_int_equal(mem.nregions, 1);
    assert_int_equal(guest_mem_low_end(&mem), GUEST_MEM_MIN);
    assert_int_equal(guest_mem_high_end(&mem), 0);
    guest_mem_destroy(&mem);
    assert_int_equal(mem.fd, -1);
    assert_null(mem.base);
    /* Destroying twice is harmless. */
    guest_mem_destroy(&mem);
}

/* The smaps entry of the mapping that starts at `base`: its header line (address range, flags,
 * what is mapped), its VmFlags line and its AnonHugePages in KiB. Fails the test if none. */
struct smaps_entry {
    char header[512];
    char vmflags[512];
    unsigned long anon_huge_kb;
};

static void smaps_of(const void *base, struct smaps_entry *e)
{
    memset(e, 0, sizeof(*e));
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool in = false, found = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end;
        char dash;
        if (sscanf(line, "%lx%c%lx ", &start, &dash, &end) == 3 && dash == '-') {
            in = start == (unsigned long)(uintptr_t)base;
            if (in) {
                found = true;
                snprintf(e->header, sizeof(e->header), "%s", line);
            }
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(e->vmflags, sizeof(e->vmflags), "%s", line);
        } else if (in && strncmp(line, "AnonHugePages:", 14) == 0) {
            e->anon_huge_kb = strtoul(line + 14, NULL, 10);
        }
    }
    fclose(f);
    if (!found)
        fail_msg("no mapping starts at %p in /proc/self/smaps", base);
}

static bool has_vmflag(const struct smaps_entry *e, const char *flag)
{
    char want[8];
    snprintf(want, sizeof(want), " %s", flag);
    for (const char *p = e->vmflags; (p = strstr(p, want)) != NULL; p++)
        if (p[3] == ' ' || p[3] == '\n' || p[3] == '\0')
            return true;
    return false;
}

/* The host's THP mode for anonymous memory: the bracketed word of .../enabled, or "" if unknown. */
static void thp_mode(char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char buf[128];
    if (!f)
        return;
    if (fgets(buf, sizeof(buf), f)) {
        char *l = strchr(buf, '['), *r = l ? strchr(l, ']') : NULL;
        if (l && r)
            snprintf(out, len, "%.*s", (int)(r - l - 1), l + 1);
    }
    fclose(f);
}

static void test_anonymous_ram_asks_for_huge_pages(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 64 * MIB + 4096, "test"), 0);
    assert_int_equal(mem.fd, -1);
    /* 2 MiB aligned, so that every whole 2 MiB of guest-physical RAM can be one huge page. */
    assert_int_equal((uintptr_t)mem.base % (2 * MIB), 0);
    struct smaps_entry e;
    smaps_of(mem.base, &e);
    /* Private ("p" in the permissions), no file behind it, and MADV_HUGEPAGE given ("hg"). */
    if (!strstr(e.header, " rw-p ") || strstr(e.header, "memfd:") || strstr(e.header, "/"))
        fail_msg("guest RAM is not private anonymous memory: %s", e.header);
    if (!has_vmflag(&e, "hg"))
        fail_msg("guest RAM lacks MADV_HUGEPAGE: %s", e.vmflags);
    assert_false(has_vmflag(&e, "sh"));
    /* Where the host gives anonymous memory huge pages on request, touching a whole aligned
     * 2 MiB gets one (the kernel falls back to small pages only when it cannot find 2 MiB of
     * free memory, even after compaction: not on a test host). */
    char mode[16];
    thp_mode(mode, sizeof(mode));
    if (strcmp(mode, "madvise") == 0 || strcmp(mode, "always") == 0) {
        memset(mem.base + 8 * MIB, 0xa5, 2 * MIB);
        smaps_of(mem.base, &e);
        if (e.anon_huge_kb < 2048)
            fail_msg("THP is '%s' but touched guest RAM has %lu KiB of huge pages", mode,
                     e.anon_huge_kb);
    }
    guest_mem_destroy(&mem);
}

static void test_shared_ram_is_a_memfd(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(guest_mem_create_shared(&mem, GUEST_MEM_MIN, "test-shared"), 0);
    assert_true(mem.fd >= 0);
    assert_int_equal((uintptr_t)mem.base % (2 * MIB), 0);
    struct smaps_entry e;
    smaps_of(mem.base, &e);
    if (!strstr(e.header, " rw-s ") || !strstr(e.header, "/memfd:test-shared"))
        fail_msg("shared guest RAM is not the memfd mapped shared: %s", e.header);
    assert_true(has_vmflag(&e, "sh"));
    assert_true(has_vmflag(&e, "hg"));
    /* What is written through the mapping is in the memfd, for whoever holds the fd. */
    memcpy(gpa_ptr(&mem, 0x3000, 4), "fd!!", 4);
    char buf[4];
    assert_int_equal(pread(mem.fd, buf, 4, 0x3000), 4);
    assert_memory_equal(buf, "fd!!", 4);
    /* Refusals leave the same state as the anonymous constructor's. */
    guest_mem_destroy(&mem);
    assert_int_equal(mem.fd, -1);
    assert_int_equal(guest_mem_create_shared(&mem, GUEST_MEM_MIN + 1, "test-shared"), -EINVAL);
    assert_int_equal(mem.fd, -1);
    assert_null(mem.base);
    guest_mem_destroy(&mem);
}

static void test_layout_3g_exactly(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 3 * GIB, "test"), 0);
    assert_int_equal(mem.nregions, 1);
    assert_int_equal(guest_mem_low_end(&mem), 3 * GIB);
    assert_int_equal(guest_mem_high_end(&mem), 0);
    assert_non_null(gpa_ptr(&mem, 3 * GIB - 1, 1));
    assert_null(gpa_ptr(&mem, 3 * GIB - 1, 2));
    assert_null(gpa_ptr(&mem, 3 * GIB, 1));
    assert_null(gpa_ptr(&mem, LAYOUT_HIGH_RAM_BASE, 1));
    guest_mem_destroy(&mem);
}

static void test_layout_3g_plus_page(void **state)
{
    (void)state;
    /* One page more than fits below the hole: it must appear at 4 GiB. */
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 3 * GIB + 4096, "test"), 0);
    assert_int_equal(mem.nregions, 2);
    assert_int_equal(guest_mem_low_end(&mem), 3 * GIB);
    assert_int_equal(guest_mem_high_end(&mem), LAYOUT_HIGH_RAM_BASE + 4096);
    uint8_t *p = gpa_ptr(&mem, LAYOUT_HIGH_RAM_BASE, 4096);
    assert_ptr_equal(p, mem.base + 3 * GIB);
    assert_null(gpa_ptr(&mem, LAYOUT_HIGH_RAM_BASE, 4097));
    assert_null(gpa_ptr(&mem, LAYOUT_HIGH_RAM_BASE + 4096, 1));
    guest_mem_destroy(&mem);
}

/* A 5 GiB guest: 3 GiB low, 2 GiB from 4 GiB. RAM is MAP_NORESERVE: this costs nothing. */
static int setup_5g(void **state)
{
    struct guest_mem *mem = test_malloc(sizeof(*mem));
    if (guest_mem_create(mem, 5 * GIB, "test") < 0) {
        test_free(mem);
        return -1;
    }
    *state = mem;
    return 0;
}

static int teardown_mem(void **state)
{
    struct guest_mem *mem = *state;
    guest_mem_destroy(mem);
    test_free(mem);
    return 0;
}

static void test_5g_regions(void **state)
{
    struct guest_mem *mem = *state;
    assert_int_equal(mem->nregions, 2);
    assert_int_equal(mem->regions[0].gpa, 0);
    assert_int_equal(mem->regions[0].size, 3 * GIB);
    assert_int_equal(mem->regions[1].gpa, LAYOUT_HIGH_RAM_BASE);
    assert_int_equal(mem->regions[1].size, 2 * GIB);
    assert_int_equal(mem->regions[1].offset, 3 * GIB);
    assert_int_equal(guest_mem_low_end(mem), 3 * GIB);
    assert_int_equal(guest_mem_high_end(mem), 6 * GIB);
}

static void test_gpa_ptr_region_edges(void **state)
{
    struct guest_mem *mem = *state;
    uint8_t *base = mem->base;
    assert_ptr_equal(gpa_ptr(mem, 0, 1), base);
    assert_ptr_equal(gpa_ptr(mem, 0, 3 * GIB), base);
    assert_ptr_equal(gpa_ptr(mem, 3 * GIB - 1, 1), base + 3 * GIB - 1);
    assert_ptr_equal(gpa_ptr(mem, 3 * GIB - 4096, 4096), base + 3 * GIB - 4096);
    /* The high region maps to the RAM mapping right after the low one. */
    assert_ptr_equal(gpa_ptr(mem, 4 * GIB, 1), base + 3 * GIB);
    assert_ptr_equal(gpa_ptr(mem, 4 * GIB, 2 * GIB), base + 3 * GIB);
    assert_ptr_equal(gpa_ptr(mem, 5 * GIB + 123, 8), base + 4 * GIB + 123);
}

static void test_gpa_ptr_end_of_ram(void **state)
{
    struct guest_mem *mem = *state;
    uint8_t *base = mem->base;
    /* Ranges ending exactly at the end of RAM are fine; one byte more is not. */
    assert_ptr_equal(gpa_ptr(mem, 6 * GIB - 1, 1), base + 5 * GIB - 1);
    assert_ptr_equal(gpa_ptr(mem, 6 * GIB - 8, 8), base + 5 * GIB - 8);
    assert_ptr_equal(gpa_ptr(mem, 6 * GIB - 4096, 4096), base + 5 * GIB - 4096);
    assert_null(gpa_ptr(mem, 6 * GIB - 8, 9));
    assert_null(gpa_ptr(mem, 6 * GIB - 1, 2));
    assert_null(gpa_ptr(mem, 6 * GIB, 1));
    assert_null(gpa_ptr(mem, 6 * GIB + 4096, 1));
    assert_null(gpa_ptr(mem, 4 * GIB, 2 * GIB + 1));
}

static void test_gpa_ptr_straddles_hole(void **state)
{
    struct guest_mem *mem = *state;
    /* Low RAM and high RAM are adjacent in the mapping but not in guest-physical space: a range
     * reaching into the hole must not be served from the next region's memory. */
    assert_null(gpa_ptr(mem, 3 * GIB - 4096, 4097));
    assert_null(gpa_ptr(mem, 3 * GIB - 1, 2));
    assert_null(gpa_ptr(mem, 3 * GIB - 8, GIB + 16));
    assert_null(gpa_ptr(mem, 0, 4 * GIB + 1));
    assert_null(gpa_ptr(mem, 0, 6 * GIB));
    /* Inside the hole. */
    assert_null(gpa_ptr(mem, 3 * GIB, 1));
    assert_null(gpa_ptr(mem, LAYOUT_ECAM_BASE, 4));
    assert_null(gpa_ptr(mem, LAYOUT_LAPIC_BASE, 4));
    assert_null(gpa_ptr(mem, 4 * GIB - 1, 1));
    assert_null(gpa_ptr(mem, 4 * GIB - 1, 2));
    assert_null(gpa_ptr(mem, 4 * GIB - 4096, 8192));
}

static void test_gpa_ptr_zero_length(void **state)
{
    struct guest_mem *mem = *state;
    /* Zero bytes inside RAM are addressable; outside RAM they are not. */
    assert_ptr_equal(gpa_ptr(mem, 0, 0), mem->base);
    assert_ptr_equal(gpa_ptr(mem, 0x12345, 0), mem->base + 0x12345);
    assert_ptr_equal(gpa_ptr(mem, 5 * GIB, 0), mem->base + 4 * GIB);
    assert_null(gpa_ptr(mem, 3 * GIB + 4096, 0));
    assert_null(gpa_ptr(mem, LAYOUT_ECAM_BASE, 0));
    assert_null(gpa_ptr(mem, 6 * GIB + 1, 0));
    assert_null(gpa_ptr(mem, UINT64_MAX, 0));
}

static void test_gpa_ptr_wraparound(void **state)
{
    struct guest_mem *mem = *state;
    /* gpa + len overflowing 2^64 would look small if summed naively. */
    assert_null(gpa_ptr(mem, UINT64_MAX, 1));
    assert_null(gpa_ptr(mem, UINT64_MAX, 2));
    assert_null(gpa_ptr(mem, UINT64_MAX - 4095, 4096));
    assert_null(gpa_ptr(mem, UINT64_MAX - 4095, 8192));
    assert_null(gpa_ptr(mem, 0x1000, UINT64_MAX));
    assert_null(gpa_ptr(mem, 0x1000, UINT64_MAX - 0xfff)); /* ends exactly at 2^64 */
    assert_null(gpa_ptr(mem, 0x1000, UINT64_MAX - 0xffe)); /* wraps to 1 */
    assert_null(gpa_ptr(mem, 4 * GIB, UINT64_MAX));
    assert_null(gpa_ptr(mem, 4 * GIB, UINT64_MAX - 4 * GIB + 2)); /* wraps to 1 */
    assert_null(gpa_ptr(mem, 0, UINT64_MAX));
    assert_null(gpa_ptr(mem, 6 * GIB - 1, UINT64_MAX));
}

/* The same 5 GiB in a memfd. */
static int setup_5g_shared(void **state)
{
    struct guest_mem *mem = test_malloc(sizeof(*mem));
    if (guest_mem_create_shared(mem, 5 * GIB, "test") < 0) {
        test_free(mem);
        return -1;
    }
    *state = mem;
    return 0;
}

static void test_gpa_ptr_reaches_memfd(void **state)
{
    struct guest_mem *mem = *state;
    /* What the guest writes through gpa_ptr lands at the right offset of the shared memfd, which
     * a process sharing guest RAM by its fd reads. */
    memcpy(gpa_ptr(mem, 0x1000, 4), "low!", 4);
    memcpy(gpa_ptr(mem, 4 * GIB + 0x2000, 5), "high!", 5);
    char buf[8] = {0};
    assert_int_equal(pread(mem->fd, buf, 4, 0x1000), 4);
    assert_memory_equal(buf, "low!", 4);
    assert_int_equal(pread(mem->fd, buf, 5, (off_t)(3 * GIB + 0x2000)), 5);
    assert_memory_equal(buf, "high!", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_refusals),
        cmocka_unit_test(test_create_smallest),
        cmocka_unit_test(test_anonymous_ram_asks_for_huge_pages),
        cmocka_unit_test(test_shared_ram_is_a_memfd),
        cmocka_unit_test(test_layout_3g_exactly),
        cmocka_unit_test(test_layout_3g_plus_page),
        cmocka_unit_test_setup_teardown(test_5g_regions, setup_5g, teardown_mem),
        cmocka_unit_test_setup_teardown(test_gpa_ptr_region_edges, setup_5g, teardown_mem),
        cmocka_unit_test_setup_teardown(test_gpa_ptr_end_of_ram, setup_5g, teardown_mem),
        cmocka_unit_test_setup_teardown(test_gpa_ptr_straddles_hole, setup_5g, teardown_mem),
        cmocka_unit_test_setup_teardown(test_gpa_ptr_zero_length, setup_5g, teardown_mem),
        cmocka_unit_test_setup_teardown(test_gpa_ptr_wraparound, setup_5g, teardown_mem),
        cmocka_unit_test_setup_teardown(test_gpa_ptr_reaches_memfd, setup_5g_shared, teardown_mem),
    };
    return cmocka_run_group_tests_name("memory", tests, NULL, NULL);
}
