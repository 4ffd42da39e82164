/* The device bus: registration overlap rules, sorted lookup, decoding at device edges, the open-bus
 * value of unmapped reads, and accesses of every size including 8 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>

#include <cmocka.h>

#include "devices/bus.h"

/* A recording device: reads return a value derived from the device id and offset, so a test can
 * tell which device answered and at which offset; writes are remembered. */
struct fake_dev {
    unsigned id;
    unsigned reads, writes;
    uint64_t last_offset, last_data;
    unsigned last_size;
};

static uint64_t fake_read(void *opaque, uint64_t offset, unsigned size)
{
    struct fake_dev *d = opaque;
    d->reads++;
    d->last_offset = offset;
    d->last_size = size;
    return ((uint64_t)d->id << 32) | offset;
}

static void fake_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct fake_dev *d = opaque;
    d->writes++;
    d->last_offset = offset;
    d->last_data = data;
    d->last_size = size;
}

static const struct bus_dev_ops fake_ops = {.read = fake_read, .write = fake_write};
static const struct bus_dev_ops write_only_ops = {.write = fake_write};

static void test_adjacent_ranges_allowed(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    bus_init(&bus, "pio");
    assert_int_equal(bus_register(&bus, 0x100, 0x10, &fake_ops, &a, "a"), 0);
    /* Touching at either end is not an overlap. */
    assert_int_equal(bus_register(&bus, 0x110, 0x10, &fake_ops, &b, "b"), 0);
    assert_int_equal(bus_register(&bus, 0xf0, 0x10, &fake_ops, &c, "c"), 0);
    assert_int_equal(bus.count, 3);
    uint64_t v;
    assert_true(bus_read(&bus, 0xff, 1, &v));
    assert_int_equal(v, (3ULL << 32) | 0xf);
    assert_true(bus_read(&bus, 0x100, 1, &v));
    assert_int_equal(v, (1ULL << 32) | 0);
    assert_true(bus_read(&bus, 0x10f, 1, &v));
    assert_int_equal(v, (1ULL << 32) | 0xf);
    assert_true(bus_read(&bus, 0x110, 1, &v));
    assert_int_equal(v, (2ULL << 32) | 0);
}

static void test_overlap_refused(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a = {.id = 1};
    bus_init(&bus, "mmio");
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &a, "a"), 0);
    /* Same base, inside, covering, overlapping the start, overlapping the end. */
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x1000, 1, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x1080, 0x10, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x800, 0x10000, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0xfff, 2, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x10ff, 2, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x10ff, 1, &fake_ops, &a, "x"), -EEXIST);
    /* Empty and wrapping ranges are invalid. */
    assert_int_equal(bus_register(&bus, 0x5000, 0, &fake_ops, &a, "x"), -EINVAL);
    assert_int_equal(bus_register(&bus, UINT64_MAX - 0xf, 0x20, &fake_ops, &a, "x"), -EINVAL);
    /* The refusals left the bus as it was. */
    assert_int_equal(bus.count, 1);
    assert_int_equal(bus.ranges[0].base, 0x1000);
    assert_int_equal(bus.ranges[0].len, 0x100);
}

static void test_overlap_with_middle_neighbour(void **state)
{
    (void)state;
    /* With several ranges, an overlap with the predecessor or successor of the insertion point is
     * found wherever that point falls. */
    struct bus bus;
    struct fake_dev a = {.id = 1};
    bus_init(&bus, "mmio");
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(bus_register(&bus, 0x10000 * (i + 1), 0x1000, &fake_ops, &a, "r"), 0);
    assert_int_equal(bus_register(&bus, 0x40fff, 0x10, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x4fff0, 0x11, &fake_ops, &a, "x"), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x4fff0, 0x10, &fake_ops, &a, "x"), 0);
    assert_int_equal(bus_register(&bus, 0x41000, 0xeff0, &fake_ops, &a, "x"), 0);
    assert_int_equal(bus.count, 10);
}

static void test_full_bus(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a = {.id = 1};
    bus_init(&bus, "pio");
    for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
        assert_int_equal(bus_register(&bus, i * 8, 8, &fake_ops, &a, "r"), 0);
    assert_int_equal(bus_register(&bus, 0x10000, 8, &fake_ops, &a, "r"), -ENOSPC);
    assert_int_equal(bus.count, BUS_MAX_RANGES);
}

static void test_sorted_lookup_many_ranges(void **state)
{
    (void)state;
    struct bus bus;
    static struct fake_dev devs[BUS_MAX_RANGES];
    bus_init(&bus, "mmio");
    /* Register in a scrambled order (a stride coprime to the count), with gaps between. */
    for (unsigned k = 0; k < BUS_MAX_RANGES; k++) {
        unsigned i = (k * 37) % BUS_MAX_RANGES;
        devs[i] = (struct fake_dev){.id = i + 1};
        uint64_t base = 0xfe000000ULL + i * 0x2000ULL;
        assert_int_equal(bus_register(&bus, base, 0x1000 + i, &fake_ops, &devs[i], "d"), 0);
    }
    for (unsigned i = 1; i < bus.count; i++)
        assert_true(bus.ranges[i - 1].base + bus.ranges[i - 1].len <= bus.ranges[i].base);
    for (unsigned i = 0; i < BUS_MAX_RANGES; i++) {
        uint64_t base = 0xfe000000ULL + i * 0x2000ULL;
        uint64_t v;
        /* First byte, last byte, middle. */
        assert_true(bus_read(&bus, base, 1, &v));
        assert_int_equal(v, ((uint64_t)(i + 1) << 32) | 0);
        assert_true(bus_read(&bus, base + 0x1000 + i - 1, 1, &v));
        assert_int_equal(v, ((uint64_t)(i + 1) << 32) | (0x1000 + i - 1));
        assert_true(bus_read(&bus, base + 0x800, 4, &v));
        assert_int_equal(v, ((uint64_t)(i + 1) << 32) | 0x800);
        /* The gap after each range is unmapped. */
        assert_false(bus_read(&bus, base + 0x1000 + i, 1, &v));
        assert_int_equal(v, 0xff);
        assert_false(bus_read(&bus, base + 0x1fff, 4, &v));
        assert_int_equal(v, 0xffffffff);
    }
    uint64_t v;
    assert_false(bus_read(&bus, 0xfdffffff, 1, &v));
    assert_false(bus_read(&bus, 0, 1, &v));
    assert_false(bus_read(&bus, UINT64_MAX, 1, &v));
    /* Writes reach the right device with the offset relative to its base. */
    assert_true(bus_write(&bus, 0xfe000000ULL + 17 * 0x2000 + 0x44, 2, 0xbeef));
    assert_int_equal(devs[17].writes, 1);
    assert_int_equal(devs[17].last_offset, 0x44);
    assert_int_equal(devs[17].last_data, 0xbeef);
    assert_int_equal(devs[17].last_size, 2);
    for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
        if (i != 17)
            assert_int_equal(devs[i].writes, 0);
}

static void test_straddling_access_not_decoded(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a = {.id = 1}, b = {.id = 2};
    bus_init(&bus, "pio");
    assert_int_equal(bus_register(&bus, 0x3f8, 8, &fake_ops, &a, "com1"), 0);
    uint64_t v;
    /* A 4-byte access at the last 4 bytes is inside; one byte later it sticks out. */
    assert_true(bus_read(&bus, 0x3fc, 4, &v));
    assert_int_equal(a.reads, 1);
    assert_false(bus_read(&bus, 0x3fd, 4, &v));
    assert_int_equal(v, 0xffffffff);
    assert_false(bus_read(&bus, 0x3ff, 2, &v));
    assert_int_equal(v, 0xffff);
    assert_false(bus_write(&bus, 0x3fe, 4, 0x12345678));
    assert_int_equal(a.reads, 1);
    assert_int_equal(a.writes, 0);
    /* Straddling into an adjacent device is decoded by neither. */
    assert_int_equal(bus_register(&bus, 0x400, 8, &fake_ops, &b, "next"), 0);
    assert_false(bus_read(&bus, 0x3fe, 4, &v));
    assert_int_equal(v, 0xffffffff);
    assert_false(bus_write(&bus, 0x3ff, 2, 0));
    assert_int_equal(a.reads + a.writes + b.reads + b.writes, 1);
    /* An access starting before a device and ending in it is not decoded either. */
    assert_false(bus_read(&bus, 0x3f6, 4, &v));
    assert_int_equal(a.reads, 1);
}

static void test_unmapped_reads_all_ones(void **state)
{
    (void)state;
    struct bus bus;
    bus_init(&bus, "mmio");
    uint64_t v = 0;
    assert_false(bus_read(&bus, 0x1000, 1, &v));
    assert_int_equal(v, 0xffULL);
    assert_false(bus_read(&bus, 0x1000, 2, &v));
    assert_int_equal(v, 0xffffULL);
    assert_false(bus_read(&bus, 0x1000, 4, &v));
    assert_int_equal(v, 0xffffffffULL);
    assert_false(bus_read(&bus, 0x1000, 8, &v));
    assert_int_equal(v, UINT64_MAX);
    assert_false(bus_write(&bus, 0x1000, 4, 0));
}

static void test_missing_callbacks(void **state)
{
    (void)state;
    /* A device without a read callback decodes its range (the access is claimed) but reads as
     * open bus. */
    struct bus bus;
    struct fake_dev a = {.id = 1};
    bus_init(&bus, "pio");
    assert_int_equal(bus_register(&bus, 0xf4, 4, &write_only_ops, &a, "debug-exit"), 0);
    uint64_t v = 0;
    assert_true(bus_read(&bus, 0xf4, 2, &v));
    assert_int_equal(v, 0xffff);
    assert_true(bus_write(&bus, 0xf4, 4, 0x31));
    assert_int_equal(a.writes, 1);
    assert_int_equal(a.last_data, 0x31);
    assert_int_equal(a.last_size, 4);
}

static void test_eight_byte_accesses(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a = {.id = 7};
    bus_init(&bus, "mmio");
    assert_int_equal(bus_register(&bus, 0xfed00000ULL, 0x400, &fake_ops, &a, "hpet"), 0);
    uint64_t v;
    assert_true(bus_read(&bus, 0xfed003f8ULL, 8, &v));
    assert_int_equal(v, (7ULL << 32) | 0x3f8);
    assert_int_equal(a.last_size, 8);
    assert_true(bus_write(&bus, 0xfed00010ULL, 8, 0x0123456789abcdefULL));
    assert_int_equal(a.last_data, 0x0123456789abcdefULL);
    assert_int_equal(a.last_offset, 0x10);
    assert_int_equal(a.last_size, 8);
    /* Eight bytes at the last four straddle the end. */
    assert_false(bus_read(&bus, 0xfed003fcULL, 8, &v));
    assert_int_equal(v, UINT64_MAX);
    /* A device near the top of the address space: no sum in the lookup may wrap. */
    struct fake_dev top = {.id = 9};
    uint64_t top_base = UINT64_MAX - 0x1fff;
    assert_int_equal(bus_register(&bus, top_base, 0x1000, &fake_ops, &top, "top"), 0);
    assert_true(bus_read(&bus, top_base + 0xff8, 8, &v));
    assert_int_equal(v, (9ULL << 32) | 0xff8);
    assert_false(bus_read(&bus, top_base + 0xffc, 8, &v));
    assert_false(bus_read(&bus, UINT64_MAX - 3, 8, &v));
    assert_int_equal(v, UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adjacent_ranges_allowed),
        cmocka_unit_test(test_overlap_refused),
        cmocka_unit_test(test_overlap_with_middle_neighbour),
        cmocka_unit_test(test_full_bus),
        cmocka_unit_test(test_sorted_lookup_many_ranges),
        cmocka_unit_test(test_straddling_access_not_decoded),
        cmocka_unit_test(test_unmapped_reads_all_ones),
        cmocka_unit_test(test_missing_callbacks),
        cmocka_unit_test(test_eight_byte_accesses),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
