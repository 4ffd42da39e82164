/* AML and resource-descriptor encoding (ACPI 6.x, sections 20.2 and 6.4). */
#include "arch/x86/aml.h"

#include <errno.h>
#include <string.h>

/* AML opcodes and prefixes used here. */
#define AML_ZERO_OP       0x00
#define AML_ONE_OP        0x01
#define AML_NAME_OP       0x08
#define AML_BYTE_PREFIX   0x0a
#define AML_WORD_PREFIX   0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP      0x10
#define AML_BUFFER_OP     0x11
#define AML_PACKAGE_OP    0x12
#define AML_METHOD_OP     0x14
#define AML_DUAL_NAME     0x2e
#define AML_MULTI_NAME    0x2f
#define AML_EXT_OP        0x5b
#define AML_DEVICE_OP     0x82 /* after AML_EXT_OP */
#define AML_ROOT_CHAR     0x5c
#define AML_PARENT_CHAR   0x5e
#define AML_RETURN_OP     0xa4
#define AML_ONES_OP       0xff

/* Resource descriptor tags (section 6.4). */
#define RES_IRQ_NOFLAGS   0x22 /* small item 0x04, length 2 */
#define RES_IO            0x47 /* small item 0x08, length 7 */
#define RES_END_TAG       0x79 /* small item 0x0f, length 1 */
#define RES_MEMORY32_FIXED 0x86
#define RES_DWORD_ADDR    0x87
#define RES_WORD_ADDR     0x88
#define RES_EXT_IRQ       0x89
#define RES_QWORD_ADDR    0x8a

#define RES_TYPE_MEMORY 0
#define RES_TYPE_IO     1
#define RES_TYPE_BUS    2
/* General flags of a window: producer, positive decode, min and max fixed. */
#define RES_GFLAGS_WINDOW 0x0c
#define RES_IO_ENTIRE_RANGE 0x03
#define RES_MEM_READ_WRITE  0x01
#define RES_MEM_CACHEABLE   0x02

/* Largest value a PkgLength can hold: 28 bits. */
#define AML_PKGLEN_MAX 0x0fffffffU

static void put_le(uint8_t *dst, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        dst[i] = (uint8_t)(v >> (8 * i));
}

static void aml_fail(struct aml *a, int err)
{
    if (!a->err)
        a->err = err;
}

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->cap = cap;
}

int aml_finish(const struct aml *a)
{
    if (a->err)
        return a->err;
    if (a->depth)
        return -EINVAL;
    return (int)a->len;
}

void aml_bytes(struct aml *a, const void *data, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        aml_fail(a, -ENOSPC);
        return;
    }
    memcpy(a->buf + a->len, data, n);
    a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
    aml_bytes(a, &b, 1);
}

static int name_lead_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char_ok(char c)
{
    return name_lead_ok(c) || (c >= '0' && c <= '9');
}

/* Parse one NameSeg of 1..4 characters at *p into seg (padded with '_'); advance *p. */
static int name_seg_parse(const char **p, char seg[4])
{
    const char *s = *p;
    unsigned n = 0;

    if (!name_lead_ok(*s))
        return -EINVAL;
    while (name_char_ok(s[n])) {
        if (n == 4)
            return -EINVAL;
        seg[n] = s[n];
        n++;
    }
    for (unsigned i = n; i < 4; i++)
        seg[i] = '_';
    *p = s + n;
    return 0;
}

void aml_name_string(struct aml *a, const char *path)
{
    char segs[255][4];
    unsigned nseg = 0;
    const char *p = path;

    if (a->err)
        return;
    if (*p == '\\') {
        aml_byte(a, AML_ROOT_CHAR);
        p++;
    } else {
        while (*p == '^') {
            aml_byte(a, AML_PARENT_CHAR);
            p++;
        }
    }
    while (*p) {
        if (nseg == 255 || name_seg_parse(&p, segs[nseg]) < 0) {
            aml_fail(a, -EINVAL);
            return;
        }
        nseg++;
        if (*p == '.') {
            p++;
            if (!*p) {
                aml_fail(a, -EINVAL);
                return;
            }
        } else if (*p) {
            aml_fail(a, -EINVAL);
            return;
        }
    }
    if (nseg == 0) {
        aml_byte(a, AML_ZERO_OP); /* NullName */
        return;
    }
    if (nseg == 2) {
        aml_byte(a, AML_DUAL_NAME);
    } else if (nseg > 2) {
        aml_byte(a, AML_MULTI_NAME);
        aml_byte(a, (uint8_t)nseg);
    }
    aml_bytes(a, segs, 4 * (size_t)nseg);
}

void aml_integer(struct aml *a, uint64_t value)
{
    uint8_t b[9];

    if (value == 0) {
        aml_byte(a, AML_ZERO_OP);
    } else if (value == 1) {
        aml_byte(a, AML_ONE_OP);
    } else if (value == UINT64_MAX) {
        aml_byte(a, AML_ONES_OP);
    } else if (value <= 0xff) {
        b[0] = AML_BYTE_PREFIX;
        put_le(b + 1, value, 1);
        aml_bytes(a, b, 2);
    } else if (value <= 0xffff) {
        b[0] = AML_WORD_PREFIX;
        put_le(b + 1, value, 2);
        aml_bytes(a, b, 3);
    } else if (value <= 0xffffffff) {
        b[0] = AML_DWORD_PREFIX;
        put_le(b + 1, value, 4);
        aml_bytes(a, b, 5);
    } else {
        b[0] = AML_QWORD_PREFIX;
        put_le(b + 1, value, 8);
        aml_bytes(a, b, 9);
    }
}

void aml_string(struct aml *a, const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p > 0x7f) {
            aml_fail(a, -EINVAL);
            return;
        }
    }
    aml_byte(a, AML_STRING_PREFIX);
    aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
    uint8_t b[5];
    int d[4];

    if (strlen(id) != 7) {
        aml_fail(a, -EINVAL);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            aml_fail(a, -EINVAL);
            return;
        }
    }
    for (int i = 0; i < 4; i++) {
        d[i] = hex_digit(id[3 + i]);
        if (d[i] < 0) {
            aml_fail(a, -EINVAL);
            return;
        }
    }
    /* Three 5-bit letters ('A' = 1) then four nibbles, most significant first in memory. */
    unsigned c0 = (unsigned)(id[0] - 0x40), c1 = (unsigned)(id[1] - 0x40);
    unsigned c2 = (unsigned)(id[2] - 0x40);
    b[0] = AML_DWORD_PREFIX;
    b[1] = (uint8_t)((c0 << 2) | (c1 >> 3));
    b[2] = (uint8_t)(((c1 & 7) << 5) | c2);
    b[3] = (uint8_t)((d[0] << 4) | d[1]);
    b[4] = (uint8_t)((d[2] << 4) | d[3]);
    aml_bytes(a, b, sizeof(b));
}

/* Reserve room for a PkgLength; aml_end() writes it in its shortest form and closes the gap. */
static void pkg_open(struct aml *a)
{
    static const uint8_t placeholder[4];

    if (a->err)
        return;
    if (a->depth == AML_MAX_DEPTH) {
        aml_fail(a, -EINVAL);
        return;
    }
    a->open[a->depth++] = a->len;
    aml_bytes(a, placeholder, sizeof(placeholder));
}

void aml_end(struct aml *a)
{
    if (a->err)
        return;
    if (a->depth == 0) {
        aml_fail(a, -EINVAL);
        return;
    }
    size_t start = a->open[--a->depth];
    size_t body = a->len - start - 4;
    size_t n;

    /* The encoded length counts the PkgLength bytes themselves. A one-byte form holds 6 bits;
     * each extra byte adds 8 bits above a 4-bit low nibble. */
    if (body + 1 <= 0x3f)
        n = 1;
    else if (body + 2 <= 0xfff)
        n = 2;
    else if (body + 3 <= 0xfffff)
        n = 3;
    else if (body + 4 <= AML_PKGLEN_MAX)
        n = 4;
    else {
        aml_fail(a, -EINVAL);
        return;
    }
    size_t total = body + n;
    memmove(a->buf + start + n, a->buf + start + 4, body);
    if (n == 1) {
        a->buf[start] = (uint8_t)total;
    } else {
        a->buf[start] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
        for (size_t i = 1; i < n; i++)
            a->buf[start + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
    }
    a->len = start + n + body;
}

void aml_buffer(struct aml *a, const void *data, size_t n)
{
    aml_byte(a, AML_BUFFER_OP);
    pkg_open(a);
    aml_integer(a, n);
    aml_bytes(a, data, n);
    aml_end(a);
}

void aml_name(struct aml *a, const char *path)
{
    aml_byte(a, AML_NAME_OP);
    aml_name_string(a, path);
}

void aml_return(struct aml *a)
{
    aml_byte(a, AML_RETURN_OP);
}

void aml_scope_begin(struct aml *a, const char *path)
{
    aml_byte(a, AML_SCOPE_OP);
    pkg_open(a);
    aml_name_string(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
    aml_byte(a, AML_EXT_OP);
    aml_byte(a, AML_DEVICE_OP);
    pkg_open(a);
    aml_name_string(a, path);
}

void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
    if (nargs > 7) {
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, AML_METHOD_OP);
    pkg_open(a);
    aml_name_string(a, path);
    /* MethodFlags: ArgCount in bits 0-2, SerializeFlag in bit 3, SyncLevel 0. */
    aml_byte(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package_begin(struct aml *a, unsigned nelems)
{
    if (nelems > 255) {
        aml_fail(a, -EINVAL); /* would need VarPackage */
        return;
    }
    aml_byte(a, AML_PACKAGE_OP);
    pkg_open(a);
    aml_byte(a, (uint8_t)nelems);
}

/* Resource templates. */

void aml_res_init(struct aml_res *r)
{
    memset(r, 0, sizeof(*r));
}

static uint8_t *res_reserve(struct aml_res *r, size_t n)
{
    if (r->err)
        return NULL;
    if (n > sizeof(r->buf) - r->len) {
        r->err = -ENOSPC;
        return NULL;
    }
    uint8_t *p = r->buf + r->len;
    r->len += n;
    return p;
}

static void res_fail(struct aml_res *r, int err)
{
    if (!r->err)
        r->err = err;
}

void aml_res_io(struct aml_res *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    if (min > max) {
        res_fail(r, -EINVAL);
        return;
    }
    uint8_t *p = res_reserve(r, 8);
    if (!p)
        return;
    p[0] = RES_IO;
    p[1] = 0x01; /* decodes 16 address bits */
    put_le(p + 2, min, 2);
    put_le(p + 4, max, 2);
    p[6] = align;
    p[7] = len;
}

void aml_res_irq_noflags(struct aml_res *r, unsigned irq)
{
    if (irq > 15) {
        res_fail(r, -EINVAL);
        return;
    }
    uint8_t *p = res_reserve(r, 3);
    if (!p)
        return;
    p[0] = RES_IRQ_NOFLAGS;
    put_le(p + 1, 1u << irq, 2);
}

void aml_res_interrupt(struct aml_res *r, uint32_t gsi, bool edge, bool active_low)
{
    uint8_t *p = res_reserve(r, 9);
    if (!p)
        return;
    p[0] = RES_EXT_IRQ;
    put_le(p + 1, 6, 2);
    /* Consumer (bit 0), edge (bit 1), active low (bit 2), exclusive (bit 3 clear). */
    p[3] = (uint8_t)(0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0));
    p[4] = 1; /* one interrupt number follows */
    put_le(p + 5, gsi, 4);
}

void aml_res_memory32_fixed(struct aml_res *r, uint32_t base, uint32_t len)
{
    if (len && (uint64_t)base + len - 1 > UINT32_MAX) {
        res_fail(r, -EINVAL);
        return;
    }
    uint8_t *p = res_reserve(r, 12);
    if (!p)
        return;
    p[0] = RES_MEMORY32_FIXED;
    put_le(p + 1, 9, 2);
    p[3] = 0x01; /* read-write */
    put_le(p + 4, base, 4);
    put_le(p + 8, len, 4);
}

/* Word, DWord and QWord address space descriptors share one layout with fields of width w. */
static void res_window(struct aml_res *r, uint8_t tag, unsigned w, uint8_t type, uint8_t tflags,
                       uint64_t min, uint64_t max)
{
    uint64_t len = max - min + 1;

    /* The length field is as wide as the others: a window covering the whole space of its
     * width (0..0xffff in a Word) cannot be described. */
    if (min > max || len == 0 || (w < 8 && len >> (8 * w))) {
        res_fail(r, -EINVAL);
        return;
    }
    uint8_t *p = res_reserve(r, 6 + 5 * (size_t)w);
    if (!p)
        return;
    p[0] = tag;
    put_le(p + 1, 3 + 5 * w, 2);
    p[3] = type;
    p[4] = RES_GFLAGS_WINDOW;
    p[5] = tflags;
    put_le(p + 6, 0, w);               /* granularity */
    put_le(p + 6 + w, min, w);
    put_le(p + 6 + 2 * w, max, w);
    put_le(p + 6 + 3 * w, 0, w);       /* translation offset */
    put_le(p + 6 + 4 * w, len, w);
}

void aml_res_word_bus(struct aml_res *r, uint16_t min, uint16_t max)
{
    res_window(r, RES_WORD_ADDR, 2, RES_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml_res *r, uint16_t min, uint16_t max)
{
    res_window(r, RES_WORD_ADDR, 2, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, min, max);
}

void aml_res_dword_io(struct aml_res *r, uint32_t min, uint32_t max)
{
    res_window(r, RES_DWORD_ADDR, 4, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, min, max);
}

void aml_res_dword_memory(struct aml_res *r, uint32_t min, uint32_t max, bool cacheable)
{
    res_window(r, RES_DWORD_ADDR, 4, RES_TYPE_MEMORY,
               RES_MEM_READ_WRITE | (cacheable ? RES_MEM_CACHEABLE : 0), min, max);
}

void aml_res_qword_memory(struct aml_res *r, uint64_t min, uint64_t max, bool cacheable)
{
    res_window(r, RES_QWORD_ADDR, 8, RES_TYPE_MEMORY,
               RES_MEM_READ_WRITE | (cacheable ? RES_MEM_CACHEABLE : 0), min, max);
}

void aml_resource_template(struct aml *a, const struct aml_res *r)
{
    uint8_t tmp[AML_RES_MAX + 2];

    if (r->err) {
        aml_fail(a, r->err);
        return;
    }
    memcpy(tmp, r->buf, r->len);
    /* End Tag; a checksum of 0 means "treat as correct", which is what ASL compilers emit. */
    tmp[r->len] = RES_END_TAG;
    tmp[r->len + 1] = 0;
    aml_buffer(a, tmp, r->len + 2);
}
