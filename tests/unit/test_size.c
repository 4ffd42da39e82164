/* size_parse()/size_format(): the text the CLI and image tools accept for sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#include "util/size.h"

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define TIB (1ULL << 40)
#define PIB (1ULL << 50)

/* Parse and return the value, failing the test if the parse fails. */
static uint64_t parse_ok(const char *text, uint64_t unit)
{
    uint64_t v = 0xdeadbeef;
    int rc = size_parse(text, unit, &v);
    if (rc != 0)
        fail_msg("size_parse(\"%s\") = %d, expected success", text, rc);
    return v;
}

/* Parse expecting an error; the output must be left alone so callers keep their default. */
static int parse_err(const char *text, uint64_t unit)
{
    uint64_t v = 0x5a5a5a5a;
    int rc = size_parse(text, unit, &v);
    assert_int_equal(v, 0x5a5a5a5a);
    return rc;
}

static void test_bare_numbers_use_default_unit(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("4096", 1), 4096);
    assert_int_equal(parse_ok("512", MIB), 512 * MIB);
    assert_int_equal(parse_ok("0", MIB), 0);
    assert_int_equal(parse_ok("3", GIB), 3 * GIB);
    /* Leading zeros are still decimal, never octal. */
    assert_int_equal(parse_ok("010", 1), 10);
}

static void test_suffixes(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1K", 1), KIB);
    assert_int_equal(parse_ok("2M", 1), 2 * MIB);
    assert_int_equal(parse_ok("5G", 1), 5 * GIB);
    assert_int_equal(parse_ok("3T", 1), 3 * TIB);
    assert_int_equal(parse_ok("7P", 1), 7 * PIB);
    /* A suffix overrides the default unit instead of multiplying with it. */
    assert_int_equal(parse_ok("64K", MIB), 64 * KIB);
    assert_int_equal(parse_ok("1G", MIB), GIB);
    /* Lower case is accepted too. */
    assert_int_equal(parse_ok("512m", 1), 512 * MIB);
    assert_int_equal(parse_ok("1g", 1), GIB);
}

static void test_long_spellings(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1KiB", 1), KIB);
    assert_int_equal(parse_ok("16MiB", 1), 16 * MIB);
    assert_int_equal(parse_ok("2GiB", 1), 2 * GIB);
    assert_int_equal(parse_ok("1MB", 1), MIB);
    assert_int_equal(parse_ok("1kb", 1), KIB);
    assert_int_equal(parse_ok("4gib", 1), 4 * GIB);
    assert_int_equal(parse_ok("1TB", 1), TIB);
}

static void test_overflow_is_erange(void **state)
{
    (void)state;
    /* The largest value: 2^64 - 1 bytes. */
    assert_int_equal(parse_ok("18446744073709551615", 1), UINT64_MAX);
    /* One more does not fit strtoull. */
    assert_int_equal(parse_err("18446744073709551616", 1), -ERANGE);
    assert_int_equal(parse_err("99999999999999999999999", 1), -ERANGE);
    /* Fits as a number but not once multiplied by its unit. */
    assert_int_equal(parse_err("16384P", 1), -ERANGE);
    assert_int_equal(parse_err("17179869184G", 1), -ERANGE);
    assert_int_equal(parse_err("999999999999T", 1), -ERANGE);
    assert_int_equal(parse_err("18446744073709551615", 2), -ERANGE);
    /* Just below the limit works. */
    assert_int_equal(parse_ok("16383P", 1), 16383 * PIB);
    assert_int_equal(parse_ok("17179869183G", 1), 17179869183ULL * GIB);
}

static void test_garbage_is_einval(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-1", "-5G", "+5", " 5", "5 ", "5 G", "G", "K5", "abc", "0x10", "1.5G", "5X",
        "5E", "5Ki", "5GiBB", "5GB ", "5iB", "1KK", "5\n", "1e3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_err(bad[i], 1);
        if (rc != -EINVAL)
            fail_msg("size_parse(\"%s\") = %d, expected -EINVAL", bad[i], rc);
    }
    uint64_t v;
    assert_int_equal(size_parse(NULL, 1, &v), -EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(size_format(0, buf, sizeof(buf)), "0 B");
    assert_string_equal(size_format(1023, buf, sizeof(buf)), "1023 B");
    assert_string_equal(size_format(KIB, buf, sizeof(buf)), "1 KiB");
    assert_string_equal(size_format(1536, buf, sizeof(buf)), "1.5 KiB");
    assert_string_equal(size_format(512 * MIB, buf, sizeof(buf)), "512 MiB");
    assert_string_equal(size_format(3 * GIB / 2, buf, sizeof(buf)), "1.5 GiB");
    assert_string_equal(size_format(5 * GIB, buf, sizeof(buf)), "5 GiB");
    assert_string_equal(size_format(2 * TIB, buf, sizeof(buf)), "2 TiB");
    assert_string_equal(size_format(3 * PIB, buf, sizeof(buf)), "3 PiB");
    /* Beyond PiB the number just grows. */
    assert_string_equal(size_format(2048 * PIB, buf, sizeof(buf)), "2048 PiB");
    /* The returned pointer is the caller's buffer, and a short buffer is truncated, not overrun. */
    char small[4];
    memset(small, 'x', sizeof(small));
    assert_ptr_equal(size_format(512 * MIB, small, sizeof(small)), small);
    assert_string_equal(small, "512");
}

static void test_format_parse_round_trip(void **state)
{
    (void)state;
    /* Whole numbers of a unit print without a fraction and parse back to the same bytes. */
    static const uint64_t sizes[] = {KIB, 16 * MIB, 256 * MIB, GIB, 5 * GIB, 64 * GIB, TIB};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char buf[32], compact[32];
        size_format(sizes[i], buf, sizeof(buf));
        /* "5 GiB" -> "5GiB" */
        size_t o = 0;
        for (size_t j = 0; buf[j]; j++)
            if (buf[j] != ' ')
                compact[o++] = buf[j];
        compact[o] = 0;
        assert_int_equal(parse_ok(compact, 1), sizes[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_numbers_use_default_unit),
        cmocka_unit_test(test_suffixes),
        cmocka_unit_test(test_long_spellings),
        cmocka_unit_test(test_overflow_is_erange),
        cmocka_unit_test(test_garbage_is_einval),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_parse_round_trip),
    };
    return cmocka_run_group_tests_name("size", tests, NULL, NULL);
}
