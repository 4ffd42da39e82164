/* Unit tests of the block layer and qcow2: create/open, read/write across clusters, every
 * refcount width, the async request contract, compressed clusters, discard, backing chains and
 * header validation. No qemu needed; interop is in tests/img. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/block.h"
#include "block/qcow2.h"
#include "block/qcow2_check.h"
#include "qcow2_assert.h"
#include "scratch_dir.h"

static int setup(void **state)
{
    (void)state;
    return scratch_make("/tmp", "vireo-qcow2");
}

static int teardown(void **state)
{
    (void)state;
    return scratch_remove();
}

static struct block_dev *make(const char *name, uint64_t size, uint32_t cs, int rbits)
{
    struct block_create_opts o = {
        .format = "qcow2", .size = size, .cluster_size = cs, .refcount_bits = rbits};
    assert_int_equal(block_create(scratch_path(name), &o), 0);
    struct block_open_opts oo = {.flags = BLOCK_OPEN_RDWR};
    struct block_dev *bd;
    assert_int_equal(block_open(scratch_path(name), &oo, &bd), 0);
    return bd;
}

static void pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static void test_create_reads_zeros(void **state)
{
    (void)state;
    struct block_dev *bd = make("z.qcow2", 10 << 20, 0, 0);
    assert_int_equal(bd->size, 10 << 20);
    assert_string_equal(block_format(bd), "qcow2");
    uint8_t buf[8192];
    memset(buf, 0xaa, sizeof(buf));
    assert_int_equal(block_pread(bd, 5 << 20, buf, sizeof(buf)), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    assert_int_equal(block_pread(bd, (10 << 20) - 100, buf, 200), -EINVAL);
    assert_clean(bd);
    block_close(bd);
}

static void test_write_read_across_clusters(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {512, 4096, 65536, 2 << 20};
    for (unsigned k = 0; k < 4; k++) {
        struct block_dev *bd = make("rw.qcow2", 16 << 20, sizes[k], 0);
        size_t len = 3 * sizes[k] + 777;
        uint8_t *w = malloc(len), *r = malloc(len);
        pattern(w, len, k);
        uint64_t off = sizes[k] - 300;
        assert_int_equal(block_pwrite(bd, off, w, len), 0);
        assert_int_equal(block_pread(bd, off, r, len), 0);
        assert_memory_equal(w, r, len);
        /* overwrite in place (allocated, copied clusters) and partially */
        pattern(w, 1000, k + 9);
        assert_int_equal(block_pwrite(bd, off + 50, w, 1000), 0);
        assert_int_equal(block_pread(bd, off + 50, r, 1000), 0);
        assert_memory_equal(w, r, 1000);
        assert_int_equal(block_pread(bd, off - 10, r, 10), 0);
        for (int i = 0; i < 10; i++)
            assert_int_equal(r[i], 0);
        assert_clean(bd);
        block_close(bd);
        free(w);
        free(r);
    }
}

static void test_all_refcount_widths(void **state)
{
    (void)state;
    for (int bits = 1; bits <= 64; bits *= 2) {
        /* 512-byte clusters make refcount blocks and the table grow quickly. */
        struct block_dev *bd = make("rc.qcow2", 8 << 20, 512, bits);
        uint8_t buf[4096];
        for (unsigned i = 0; i < 600; i++) {
            pattern(buf, sizeof(buf), i);
            assert_int_equal(block_pwrite(bd, (uint64_t)i * 13 * 512 % (8 << 20), buf, 512), 0);
        }
        assert_clean(bd);
        assert_int_equal(block_discard(bd, 0, 4 << 20, false), 0);
        assert_clean(bd);
        block_close(bd);
        struct block_dev *ro;
        struct block_open_opts oo = {0};
        assert_int_equal(block_open(scratch_path("rc.qcow2"), &oo, &ro), 0);
        const struct qcow2 *q = qcow2_state(ro);
        assert_non_null(q);
        assert_int_equal(1 << q->refcount_order, bits);
        block_close(ro);
    }
}

struct async_ctx {
    int done;
    int ret;
};

static void on_done(struct block_req *req, int ret)
{
    struct async_ctx *c = req->opaque;
    c->done++;
    c->ret = ret ? ret : c->ret;
}

static void test_async_contract(void **state)
{
    (void)state;
    struct block_dev *bd = make("a.qcow2", 4 << 20, 65536, 0);
    struct block_aio *aio = block_aio_new(32);
    assert_non_null(aio);
    block_attach_aio(bd, aio);
    enum { N = 16 };
    static uint8_t bufs[N][8192];
    struct iovec iov[N][2];
    struct block_req reqs[N];
    struct async_ctx ctx = {0};
    for (int i = 0; i < N; i++) {
        pattern(bufs[i], sizeof(bufs[i]), (unsigned)i);
        iov[i][0] = (struct iovec){bufs[i], 100};
        iov[i][1] = (struct iovec){bufs[i] + 100, sizeof(bufs[i]) - 100};
        reqs[i] = (struct block_req){.op = BLOCK_OP_WRITE, .offset = (uint64_t)i * 200000,
                                     .iov = iov[i], .iovcnt = 2, .done = on_done, .opaque = &ctx};
        assert_int_equal(block_submit(bd, &reqs[i]), 0);
    }
    /* Completion never runs inside submit. */
    assert_int_equal(ctx.done, 0);
    while (ctx.done < N)
        block_aio_wait(aio);
    assert_int_equal(ctx.ret, 0);
    /* Second round: in-place writes go to the ring, then read back asynchronously. */
    ctx = (struct async_ctx){0};
    static uint8_t back[N][8192];
    for (int i = 0; i < N; i++) {
        iov[i][0] = (struct iovec){back[i], 4096};
        iov[i][1] = (struct iovec){back[i] + 4096, 4096};
        reqs[i] = (struct block_req){.op = BLOCK_OP_READ, .offset = (uint64_t)i * 200000,
                                     .iov = iov[i], .iovcnt = 2, .done = on_done, .opaque = &ctx};
        assert_int_equal(block_submit(bd, &reqs[i]), 0);
    }
    while (ctx.done < N)
        block_aio_wait(aio);
    for (int i = 0; i < N; i++)
        assert_memory_equal(bufs[i], back[i], sizeof(bufs[i]));
    struct block_req bad = {.op = BLOCK_OP_WRITE_ZEROES, .offset = 4 << 20, .len = 1,
                            .done = on_done, .opaque = &ctx};
    assert_int_equal(block_submit(bd, &bad), -EINVAL);
    struct block_req fl = {.op = BLOCK_OP_FLUSH, .done = on_done, .opaque = &ctx};
    ctx = (struct async_ctx){0};
    assert_int_equal(block_submit(bd, &fl), 0);
    while (!ctx.done)
        block_aio_wait(aio);
    assert_int_equal(ctx.ret, 0);
    block_close(bd);
    block_aio_free(aio);
}

static void test_compressed_roundtrip(void **state)
{
    (void)state;
    struct block_dev *bd = make("c.qcow2", 1 << 20, 65536, 0);
    uint8_t *buf = malloc(65536), *r = malloc(65536);
    for (int c = 0; c < 8; c++) {
        for (int i = 0; i < 65536; i++)
            buf[i] = (uint8_t)("compressible"[i % 12] + c);
        assert_int_equal(qcow2_write_compressed(bd, (uint64_t)c * 65536, buf, 65536), 0);
    }
    for (int c = 0; c < 8; c++) {
        for (int i = 0; i < 65536; i++)
            buf[i] = (uint8_t)("compressible"[i % 12] + c);
        assert_int_equal(block_pread(bd, (uint64_t)c * 65536, r, 65536), 0);
        assert_memory_equal(buf, r, 65536);
    }
    struct block_extent e;
    assert_int_equal(block_map(bd, 0, 65536, &e), 0);
    assert_int_equal(e.kind, BLOCK_EXT_COMPRESSED);
    assert_clean(bd);
    /* Overwriting part of a compressed cluster turns it into a normal one. */
    memset(buf, 0x42, 100);
    assert_int_equal(block_pwrite(bd, 65536 + 10, buf, 100), 0);
    assert_int_equal(block_pread(bd, 65536, r, 65536), 0);
    assert_memory_equal(r + 10, buf, 100);
    assert_int_equal(r[0], (uint8_t)('c' + 1));
    assert_clean(bd);
    /* Random data does not compress: the caller is told to write it normally. */
    for (int i = 0; i < 65536; i++)
        buf[i] = (uint8_t)(rand() >> 3);
    assert_int_equal(qcow2_write_compressed(bd, 9 * 65536, buf, 65536), 1);
    free(buf);
    free(r);
    block_close(bd);
}

static void test_discard_and_zeroes(void **state)
{
    (void)state;
    struct block_dev *bd = make("d.qcow2", 4 << 20, 65536, 0);
    uint8_t *buf = malloc(1 << 20);
    memset(buf, 0x77, 1 << 20);
    assert_int_equal(block_pwrite(bd, 0, buf, 1 << 20), 0);
    assert_int_equal(block_discard(bd, 65536, 3 * 65536, true), 0);
    assert_int_equal(block_discard(bd, 5 * 65536 + 100, 1000, true), 0);
    assert_int_equal(block_pread(bd, 0, buf, 1 << 20), 0);
    for (int i = 0; i < (1 << 20); i++) {
        int zero = (i >= 65536 && i < 4 * 65536) || (i >= 5 * 65536 + 100 && i < 5 * 65536 + 1100);
        assert_int_equal(buf[i], zero ? 0 : 0x77);
    }
    struct block_extent e;
    /* Without a backing file, zeroed clusters are simply released. */
    assert_int_equal(block_map(bd, 65536, 3 * 65536, &e), 0);
    assert_int_equal(e.kind, BLOCK_EXT_UNALLOC);
    assert_int_equal(e.length, 3 * 65536);
    assert_clean(bd);
    free(buf);
    block_close(bd);
}

static void test_backing_chain_and_loop(void **state)
{
    (void)state;
    struct block_dev *base = make("base.qcow2", 1 << 20, 65536, 0);
    uint8_t buf[4096], r[4096];
    memset(buf, 0x11, sizeof(buf));
    assert_int_equal(block_pwrite(base, 8192, buf, sizeof(buf)), 0);
    block_close(base);
    struct block_create_opts o = {.format = "qcow2", .size = 2 << 20, .backing = "base.qcow2",
                                  .backing_format = "qcow2"};
    assert_int_equal(block_create(scratch_path("top.qcow2"), &o), 0);
    struct block_open_opts oo = {.flags = BLOCK_OPEN_RDWR};
    struct block_dev *top;
    assert_int_equal(block_open(scratch_path("top.qcow2"), &oo, &top), 0);
    assert_non_null(top->backing);
    assert_int_equal(block_pread(top, 8192, r, sizeof(r)), 0);
    assert_memory_equal(buf, r, sizeof(r));
    /* A partial write copies the rest of the cluster up from the backing file. */
    memset(buf, 0x22, 10);
    assert_int_equal(block_pwrite(top, 8192, buf, 10), 0);
    assert_int_equal(block_pread(top, 8192, r, sizeof(r)), 0);
    assert_int_equal(r[0], 0x22);
    assert_int_equal(r[10], 0x11);
    /* Zeroing over a backing file needs the zero flag, or the backing data would show. */
    assert_int_equal(block_discard(top, 65536, 65536, true), 0);
    struct block_extent e;
    assert_int_equal(block_map(top, 65536, 65536, &e), 0);
    assert_int_equal(e.kind, BLOCK_EXT_ZERO);
    /* Past the backing file's end reads zeros. */
    assert_int_equal(block_pread(top, (1 << 20) + 4096, r, sizeof(r)), 0);
    assert_int_equal(r[0], 0);
    assert_clean(top);
    /* Point the base at the top: a loop, refused on open. */
    assert_int_equal(qcow2_set_backing(top, NULL, NULL), 0);
    block_close(top);
    struct block_dev *b2;
    assert_int_equal(block_open(scratch_path("base.qcow2"), &oo, &b2), 0);
    assert_int_equal(qcow2_set_backing(b2, "top.qcow2", "qcow2"), 0);
    block_close(b2);
    struct block_dev *t2;
    assert_int_equal(block_open(scratch_path("top.qcow2"), &oo, &t2), 0);
    assert_int_equal(qcow2_set_backing(t2, "base.qcow2", "qcow2"), 0);
    block_close(t2);
    struct block_open_opts ro = {0};
    assert_int_equal(block_open(scratch_path("top.qcow2"), &ro, &t2), -ELOOP);
    assert_non_null(strstr(block_last_error(), "loop"));
}

static void test_header_validation(void **state)
{
    (void)state;
    struct block_dev *bd = make("h.qcow2", 1 << 20, 65536, 0);
    block_close(bd);
    FILE *f = fopen(scratch_path("h.qcow2"), "r+b");
    assert_non_null(f);
    static const struct {
        long off;
        uint8_t bytes[4];
        const char *msg;
    } cases[] = {
        {0, {'Q', 'F', 'I', 0}, "magic"},
        {20, {0, 0, 0, 30}, "cluster size"},
        {96, {0, 0, 0, 9}, "refcount order"},
        {36, {0, 0, 0, 0}, "L1"},
    };
    uint8_t orig[4];
    for (unsigned i = 0; i < 4; i++) {
        fseek(f, cases[i].off, SEEK_SET);
        assert_int_equal(fread(orig, 1, 4, f), 4);
        fseek(f, cases[i].off, SEEK_SET);
        fwrite(cases[i].bytes, 1, 4, f);
        fflush(f);
        struct block_open_opts oo = {.format = "qcow2"};
        assert_true(block_open(scratch_path("h.qcow2"), &oo, &bd) < 0);
        assert_non_null(strstr(block_last_error(), cases[i].msg));
        fseek(f, cases[i].off, SEEK_SET);
        fwrite(orig, 1, 4, f);
        fflush(f);
    }
    fclose(f);
    /* Probing: only the magic makes qcow2; anything else is raw. */
    assert_string_equal(block_probe(scratch_path("h.qcow2")), "qcow2");
    f = fopen(scratch_path("plain.raw"), "wb");
    fputs("hello", f);
    fclose(f);
    assert_string_equal(block_probe(scratch_path("plain.raw")), "raw");
}

static void test_small_l2_cache(void **state)
{
    (void)state;
    struct block_create_opts o = {.format = "qcow2", .size = 64 << 20, .cluster_size = 4096};
    assert_int_equal(block_create(scratch_path("l2.qcow2"), &o), 0);
    struct block_open_opts oo = {.flags = BLOCK_OPEN_RDWR, .l2_cache_size = 8192};
    struct block_dev *bd;
    assert_int_equal(block_open(scratch_path("l2.qcow2"), &oo, &bd), 0);
    uint8_t buf[512], r[512];
    for (unsigned i = 0; i < 200; i++) {
        pattern(buf, sizeof(buf), i);
        assert_int_equal(block_pwrite(bd, (uint64_t)i * 327680 % (64 << 20), buf, sizeof(buf)), 0);
    }
    for (unsigned i = 0; i < 200; i++) {
        pattern(buf, sizeof(buf), i);
        assert_int_equal(block_pread(bd, (uint64_t)i * 327680 % (64 << 20), r, sizeof(r)), 0);
        assert_memory_equal(buf, r, sizeof(r));
    }
    assert_clean(bd);
    block_close(bd);
}

static void test_raw_basics(void **state)
{
    (void)state;
    struct block_create_opts o = {.format = "raw", .size = 1 << 20};
    assert_int_equal(block_create(scratch_path("r.raw"), &o), 0);
    struct block_open_opts oo = {.flags = BLOCK_OPEN_RDWR};
    struct block_dev *bd;
    assert_int_equal(block_open(scratch_path("r.raw"), &oo, &bd), 0);
    assert_string_equal(block_format(bd), "raw");
    assert_int_equal(bd->size, 1 << 20);
    uint8_t buf[8192], r[8192];
    memset(buf, 0x3c, sizeof(buf));
    assert_int_equal(block_pwrite(bd, 4096, buf, sizeof(buf)), 0);
    assert_int_equal(block_discard(bd, 8192, 4096, true), 0);
    assert_int_equal(block_pread(bd, 4096, r, sizeof(r)), 0);
    assert_memory_equal(r, buf, 4096);
    for (int i = 4096; i < 8192; i++)
        assert_int_equal(r[i], 0);
    assert_int_equal(block_truncate(bd, 2 << 20), 0);
    assert_int_equal(bd->size, 2 << 20);
    struct block_extent e;
    assert_int_equal(block_map(bd, 100, 1000, &e), 0);
    assert_int_equal(e.kind, BLOCK_EXT_DATA);
    assert_int_equal(e.host_offset, 100);
    assert_int_equal(block_flush(bd), 0);
    block_close(bd);
    struct block_open_opts ro = {0};
    assert_int_equal(block_open(scratch_path("r.raw"), &ro, &bd), 0);
    assert_int_equal(block_pwrite(bd, 0, buf, 512), -EROFS);
    block_close(bd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_reads_zeros),
        cmocka_unit_test(test_write_read_across_clusters),
        cmocka_unit_test(test_all_refcount_widths),
        cmocka_unit_test(test_async_contract),
        cmocka_unit_test(test_compressed_roundtrip),
        cmocka_unit_test(test_discard_and_zeroes),
        cmocka_unit_test(test_backing_chain_and_loop),
        cmocka_unit_test(test_header_validation),
        cmocka_unit_test(test_small_l2_cache),
        cmocka_unit_test(test_raw_basics),
    };
    return cmocka_run_group_tests_name("qcow2", tests, setup, teardown);
}
