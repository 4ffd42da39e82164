/* AML builder: encodings checked byte for byte against ACPI 6.x chapter 20 (and what iasl emits
 * for the same ASL), plus the builder's error handling. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/aml.h"

static uint8_t out[256];

static void expect_bytes(const struct aml *a, const uint8_t *want, size_t n)
{
    assert_int_equal(aml_finish(a), (int)n);
    assert_memory_equal(a->buf, want, n);
}

static void test_integer_encodings(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        uint8_t bytes[9];
        size_t n;
    } cases[] = {
        { 0, { 0x00 }, 1 },
        { 1, { 0x01 }, 1 },
        { 2, { 0x0a, 0x02 }, 2 },
        { 0xff, { 0x0a, 0xff }, 2 },
        { 0x100, { 0x0b, 0x00, 0x01 }, 3 },
        { 0xffff, { 0x0b, 0xff, 0xff }, 3 },
        { 0x10000, { 0x0c, 0x00, 0x00, 0x01, 0x00 }, 5 },
        { 0xfee00000, { 0x0c, 0x00, 0x00, 0xe0, 0xfe }, 5 },
        { 0x100000000ULL, { 0x0e, 0, 0, 0, 0, 1, 0, 0, 0 }, 9 },
        { 0x0123456789abcdefULL, { 0x0e, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01 }, 9 },
        { UINT64_MAX, { 0xff }, 1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct aml a;
        aml_init(&a, out, sizeof(out));
        aml_integer(&a, cases[i].v);
        expect_bytes(&a, cases[i].bytes, cases[i].n);
    }
}

static void test_name_strings(void **state)
{
    (void)state;
    struct aml a;

    aml_init(&a, out, sizeof(out));
    aml_name_string(&a, "_S5");
    expect_bytes(&a, (const uint8_t *)"_S5_", 4);

    aml_init(&a, out, sizeof(out));
    aml_name_string(&a, "\\_SB.PCI0");
    expect_bytes(&a, (const uint8_t *)"\\\x2e_SB_PCI0", 10);

    aml_init(&a, out, sizeof(out));
    aml_name_string(&a, "\\_SB.PCI0.COM1");
    expect_bytes(&a, (const uint8_t *)"\\\x2f\x03_SB_PCI0COM1", 15);

    aml_init(&a, out, sizeof(out));
    aml_name_string(&a, "^^AB.C");
    expect_bytes(&a, (const uint8_t *)"^^\x2e" "AB__C___", 11);

    aml_init(&a, out, sizeof(out));
    aml_name_string(&a, "\\");
    expect_bytes(&a, (const uint8_t *)"\\\x00", 2);

    static const char *bad[] = { "1ABC", "ABCDE", "A..B", "A.", ".A", "a", "A-B", "\\^A" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a, out, sizeof(out));
        aml_name_string(&a, bad[i]);
        assert_int_equal(aml_finish(&a), -EINVAL);
    }
}

static void test_eisaid_and_string(void **state)
{
    (void)state;
    struct aml a;

    aml_init(&a, out, sizeof(out));
    aml_eisaid(&a, "PNP0A08");
    aml_eisaid(&a, "PNP0501");
    aml_eisaid(&a, "PNP0c02");
    static const uint8_t want[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x0c, 0x41, 0xd0, 0x05, 0x01,
                                    0x0c, 0x41, 0xd0, 0x0c, 0x02 };
    expect_bytes(&a, want, sizeof(want));

    static const char *bad[] = { "PNP0A0", "PNP0A088", "pNP0A08", "PNP0G08", "P1P0A08" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a, out, sizeof(out));
        aml_eisaid(&a, bad[i]);
        assert_int_equal(aml_finish(&a), -EINVAL);
    }

    aml_init(&a, out, sizeof(out));
    aml_string(&a, "ACPI0007");
    expect_bytes(&a, (const uint8_t *)"\x0d" "ACPI0007", 10);
}

/* Name(_S5, Package(4) {5, 5, 0, 0}) and Method(_STA) { Return (0x0F) } as iasl emits them. */
static void test_package_method_device(void **state)
{
    (void)state;
    struct aml a;

    aml_init(&a, out, sizeof(out));
    aml_name(&a, "_S5");
    aml_package_begin(&a, 4);
    aml_integer(&a, 5);
    aml_integer(&a, 5);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_end(&a);
    static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
                                  0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
    expect_bytes(&a, s5, sizeof(s5));

    aml_init(&a, out, sizeof(out));
    aml_device_begin(&a, "COM1");
    aml_method_begin(&a, "_STA", 0, false);
    aml_return(&a);
    aml_integer(&a, 0x0f);
    aml_end(&a);
    aml_end(&a);
    static const uint8_t dev[] = { 0x5b, 0x82, 0x0f, 'C', 'O', 'M', '1', 0x14, 0x09,
                                   '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f };
    expect_bytes(&a, dev, sizeof(dev));

    aml_init(&a, out, sizeof(out));
    aml_method_begin(&a, "FOO", 3, true);
    aml_end(&a);
    static const uint8_t meth[] = { 0x14, 0x06, 'F', 'O', 'O', '_', 0x0b };
    expect_bytes(&a, meth, sizeof(meth));

    aml_init(&a, out, sizeof(out));
    aml_method_begin(&a, "FOO", 8, false);
    assert_int_equal(aml_finish(&a), -EINVAL);

    aml_init(&a, out, sizeof(out));
    aml_package_begin(&a, 256);
    assert_int_equal(aml_finish(&a), -EINVAL);
}

/* PkgLength takes 1 byte up to 63, 2 up to 4095, 3 up to 2^20 - 1, then 4; the encoded value
 * includes the PkgLength bytes themselves. Checked through Buffer objects of growing size. */
static void check_buffer_pkglen(size_t n, const uint8_t *want_head, size_t head_len)
{
    size_t cap = n + 16;
    uint8_t *big = malloc(cap), *data = malloc(n);
    struct aml a;

    assert_non_null(big);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    aml_init(&a, big, cap);
    aml_buffer(&a, data, n);
    assert_int_equal(aml_finish(&a), (int)(head_len + n));
    assert_memory_equal(big, want_head, head_len);
    assert_memory_equal(big + head_len, data, n);
    free(big);
    free(data);
}

static void test_pkglength_boundaries(void **state)
{
    (void)state;
    /* 60 bytes: body = 2 (size) + 60 = 62, total 63 in one byte. */
    check_buffer_pkglen(60, (const uint8_t[]){ 0x11, 0x3f, 0x0a, 60 }, 4);
    /* 61 bytes: total 65 = 0x41 in two bytes: lead 0x40 | 1, then 0x04. */
    check_buffer_pkglen(61, (const uint8_t[]){ 0x11, 0x41, 0x04, 0x0a, 61 }, 5);
    /* 4090 bytes: body 3 + 4090 = 4093, total 4095 = 0xfff in two bytes. */
    check_buffer_pkglen(4090, (const uint8_t[]){ 0x11, 0x4f, 0xff, 0x0b, 0xfa, 0x0f }, 6);
    /* 4091 bytes: body 4094, total 4097 = 0x1001 in three bytes. */
    check_buffer_pkglen(4091, (const uint8_t[]){ 0x11, 0x81, 0x00, 0x01, 0x0b, 0xfb, 0x0f }, 7);
    /* 0xffff8 bytes: body 0xffffd (size is a DWord const), total 0x100001 in four bytes. */
    check_buffer_pkglen(0xffff8, (const uint8_t[]){ 0x11, 0xc1, 0x00, 0x00, 0x01, 0x0c, 0xf8,
                                                    0xff, 0x0f, 0x00 }, 10);
    /* One byte less fits three: total 0xfffff. */
    check_buffer_pkglen(0xffff7, (const uint8_t[]){ 0x11, 0x8f, 0xff, 0xff, 0x0c, 0xf7, 0xff,
                                                    0x0f, 0x00 }, 9);
}

static void test_nesting_errors(void **state)
{
    (void)state;
    struct aml a;

    aml_init(&a, out, sizeof(out));
    aml_end(&a);
    assert_int_equal(aml_finish(&a), -EINVAL);

    aml_init(&a, out, sizeof(out));
    aml_scope_begin(&a, "_SB");
    assert_int_equal(aml_finish(&a), -EINVAL);

    aml_init(&a, out, sizeof(out));
    for (int i = 0; i < AML_MAX_DEPTH; i++)
        aml_scope_begin(&a, "_SB");
    for (int i = 0; i < AML_MAX_DEPTH; i++)
        aml_end(&a);
    /* Scope(_SB_) levels take 6 bytes each while the body fits a 1-byte PkgLength (10 levels),
     * then 7: 60 + 67 + 5 * 7. */
    assert_int_equal(aml_finish(&a), 102);
    /* The outermost: PkgLength 101 = 0x65 (99 bytes of body plus its own 2). */
    static const uint8_t outer[] = { 0x10, 0x45, 0x06, '_', 'S', 'B', '_', 0x10 };
    assert_memory_equal(out, outer, sizeof(outer));

    aml_init(&a, out, sizeof(out));
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_scope_begin(&a, "_SB");
    assert_int_equal(aml_finish(&a), -EINVAL);
}

static void test_out_of_space_is_sticky(void **state)
{
    (void)state;
    uint8_t small[8];
    struct aml a;

    memset(small, 0xaa, sizeof(small));
    aml_init(&a, small, 4);
    aml_integer(&a, 0x100); /* 3 bytes: fits */
    aml_integer(&a, 0x100); /* does not */
    aml_integer(&a, 0);     /* would fit, but the error sticks */
    assert_int_equal(aml_finish(&a), -ENOSPC);
    assert_int_equal(small[4], 0xaa);

    aml_init(&a, small, 0);
    aml_name(&a, "_S5");
    assert_int_equal(aml_finish(&a), -ENOSPC);
}

static void test_resource_descriptors(void **state)
{
    (void)state;
    struct aml_res r;
    struct aml a;

    aml_res_init(&r);
    aml_res_io(&r, 0x3f8, 0x3f8, 1, 8);
    aml_res_irq_noflags(&r, 4);
    aml_init(&a, out, sizeof(out));
    aml_resource_template(&a, &r);
    static const uint8_t com1[] = { 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03,
                                    0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00 };
    expect_bytes(&a, com1, sizeof(com1));

    aml_res_init(&r);
    aml_res_word_bus(&r, 0, 0xff);
    aml_res_word_io(&r, 0xd00, 0xffff);
    static const uint8_t words[] = {
        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00,
        0x00, 0x01,
        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00,
        0x00, 0xf3,
    };
    assert_int_equal(r.err, 0);
    assert_int_equal(r.len, sizeof(words));
    assert_memory_equal(r.buf, words, sizeof(words));

    aml_res_init(&r);
    aml_res_dword_memory(&r, 0xc0000000, 0xdfffffff, false);
    aml_res_qword_memory(&r, 0x200000000ULL, 0x9ffffffffULL, true);
    aml_res_dword_io(&r, 0x1000, 0x1fff);
    static const uint8_t big[] = {
        0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0xc0,
        0xff, 0xff, 0xff, 0xdf, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20,
        0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 9, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0,
        0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x00,
        0xff, 0x1f, 0x00, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x00,
    };
    assert_int_equal(r.err, 0);
    assert_int_equal(r.len, sizeof(big));
    assert_memory_equal(r.buf, big, sizeof(big));

    aml_res_init(&r);
    aml_res_memory32_fixed(&r, 0xe0000000, 0x10000000);
    aml_res_interrupt(&r, 9, false, false);
    aml_res_interrupt(&r, 20, true, true);
    static const uint8_t misc[] = {
        0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x00, 0x10,
        0x89, 0x06, 0x00, 0x01, 0x01, 0x09, 0x00, 0x00, 0x00,
        0x89, 0x06, 0x00, 0x07, 0x01, 0x14, 0x00, 0x00, 0x00,
    };
    assert_int_equal(r.err, 0);
    assert_int_equal(r.len, sizeof(misc));
    assert_memory_equal(r.buf, misc, sizeof(misc));
}

static void test_resource_errors(void **state)
{
    (void)state;
    struct aml_res r;
    struct aml a;

    aml_res_init(&r);
    aml_res_irq_noflags(&r, 16);
    assert_int_equal(r.err, -EINVAL);

    aml_res_init(&r);
    aml_res_io(&r, 0x10, 0x0f, 1, 1);
    assert_int_equal(r.err, -EINVAL);

    /* The whole 16-bit space has length 0x10000, which a Word cannot hold. */
    aml_res_init(&r);
    aml_res_word_io(&r, 0, 0xffff);
    assert_int_equal(r.err, -EINVAL);

    aml_res_init(&r);
    aml_res_qword_memory(&r, 0, UINT64_MAX, false);
    assert_int_equal(r.err, -EINVAL);

    aml_res_init(&r);
    aml_res_memory32_fixed(&r, 0xf0000000, 0x20000000);
    assert_int_equal(r.err, -EINVAL);

    /* Full template: the error reaches the AML stream. */
    aml_res_init(&r);
    for (int i = 0; i < AML_RES_MAX; i++)
        aml_res_irq_noflags(&r, 1);
    assert_int_equal(r.err, -ENOSPC);
    aml_init(&a, out, sizeof(out));
    aml_resource_template(&a, &r);
    assert_int_equal(aml_finish(&a), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_encodings),
        cmocka_unit_test(test_name_strings),
        cmocka_unit_test(test_eisaid_and_string),
        cmocka_unit_test(test_package_method_device),
        cmocka_unit_test(test_pkglength_boundaries),
        cmocka_unit_test(test_nesting_errors),
        cmocka_unit_test(test_out_of_space_is_sticky),
        cmocka_unit_test(test_resource_descriptors),
        cmocka_unit_test(test_resource_errors),
    };
    return cmocka_run_group_tests_name("aml", tests, NULL, NULL);
}
