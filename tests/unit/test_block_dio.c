/* Unit tests of direct I/O (O_DIRECT, `--disk ...,cache=none`): the alignment predicate and
 * span, the synchronous bounce / read-modify-write path of the fd helpers, the asynchronous
 * path's bounce buffers and partial-block writes, and qcow2 on O_DIRECT (allocation,
 * copy-on-write, metadata updates, compressed clusters, a backing file). Files live in a
 * directory whose filesystem accepts O_DIRECT (/var/tmp, or VIREO_DIO_DIR); results are always
 * checked through a second, buffered descriptor or a buffered reopen. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/block.h"
#include "block/dio.h"
#include "block/qcow2.h"
#include "block/qcow2_check.h"
#include "qcow2_assert.h"
#include "scratch_dir.h"

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("VIREO_DIO_DIR");
    if (scratch_make(base ? base : "/var/tmp", "vireo-dio") < 0) {
        fprintf(stderr, "test_block_dio: cannot create a directory under %s\n",
                base ? base : "/var/tmp");
        return -1;
    }
    char *probe = scratch_path("probe");
    int fd = open(probe, O_RDWR | O_CREAT | O_DIRECT, 0644);
    if (fd < 0) {
        /* Every test here needs O_DIRECT: say why they cannot run instead of passing. */
        fprintf(stderr, "test_block_dio: %s refuses O_DIRECT (%s); set VIREO_DIO_DIR to a "
                "directory on ext4/xfs\n", scratch_dir, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return scratch_remove();
}

static void pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

/* A file of len pattern bytes (seed), written through the page cache. */
static void make_file(const char *p, size_t len, unsigned seed)
{
    uint8_t *b = malloc(len);
    assert_non_null(b);
    pattern(b, len, seed);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
    free(b);
}

/* The whole file through a buffered descriptor. */
static uint8_t *slurp(const char *p, size_t *len)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    assert_non_null(b);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void test_aligned_predicate_and_span(void **state)
{
    (void)state;
    static uint8_t buf[8192] __attribute__((aligned(4096)));
    struct iovec v[2] = {{buf, 512}, {buf + 4096, 1024}};
    assert_true(block_dio_aligned(v, 2, 0, 512));
    assert_true(block_dio_aligned(v, 2, 1536, 512));
    assert_false(block_dio_aligned(v, 2, 1536, 4096)); /* offset and lengths */
    assert_false(block_dio_aligned(v, 2, 100, 512));   /* offset */
    v[1].iov_base = buf + 4097;                         /* address */
    assert_false(block_dio_aligned(v, 2, 0, 512));
    v[1].iov_base = buf + 4096;
    v[1].iov_len = 1000;                                /* length */
    assert_false(block_dio_aligned(v, 2, 0, 512));
    assert_true(block_dio_aligned(NULL, 0, 8192, 4096));

    uint64_t start, span;
    block_dio_span(4090, 20, 4096, &start, &span);
    assert_int_equal(start, 0);
    assert_int_equal(span, 8192);
    block_dio_span(8192, 4096, 4096, &start, &span);
    assert_int_equal(start, 8192);
    assert_int_equal(span, 4096);
    block_dio_span(1000, 1, 512, &start, &span);
    assert_int_equal(start, 512);
    assert_int_equal(span, 512);

    void *p = block_dio_alloc(100);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % BLOCK_DIO_MAX_ALIGN, 0);
    free(p);
}

static void test_alignment_query(void **state)
{
    (void)state;
    make_file(scratch_path("q.raw"), 4096, 1);
    int fd = open(scratch_path("q.raw"), O_RDONLY | O_DIRECT);
    assert_true(fd >= 0);
    assert_true(block_fd_is_direct(fd));
    uint32_t a = block_dio_alignment(fd);
    assert_true(a >= 512 && a <= BLOCK_DIO_MAX_ALIGN);
    assert_int_equal(a & (a - 1), 0);
    close(fd);
    fd = open(scratch_path("q.raw"), O_RDONLY);
    assert_false(block_fd_is_direct(fd));
    close(fd);
}

/* The synchronous helpers on an O_DIRECT fd: unaligned buffers, offsets and lengths, partial
 * blocks at both ends, a tail past an unaligned end of file, reads past EOF, and more than
 * one bounce chunk. */
static void test_fd_helpers_unaligned(void **state)
{
    (void)state;
    const size_t size = 10000;
    make_file(scratch_path("h.raw"), size, 2);
    int fd = open(scratch_path("h.raw"), O_RDWR | O_DIRECT);
    assert_true(fd >= 0);
    uint8_t *want = malloc(3 << 20);
    uint8_t *src = malloc((3 << 20) + 1), *dst = malloc((3 << 20) + 1);
    pattern(want, size, 2);

    /* 20 bytes across the first block boundary, from an odd address. */
    pattern(src + 1, 20, 50);
    assert_int_equal(block_fd_pwrite(fd, src + 1, 20, 4090), 0);
    memcpy(want + 4090, src + 1, 20);
    /* Two iovecs, one of them unaligned, at an odd offset. */
    pattern(src + 1, 700, 51);
    struct iovec v[2] = {{src + 1, 300}, {src + 301, 400}};
    assert_int_equal(block_fd_pwritev(fd, v, 2, 6001), 0);
    memcpy(want + 6001, src + 1, 700);
    size_t len;
    uint8_t *got = slurp(scratch_path("h.raw"), &len);
    assert_int_equal(len, size); /* rounding up to whole blocks did not grow the file */
    assert_memory_equal(got, want, size);
    free(got);

    /* Unaligned reads, one of them past the end of the file. */
    assert_int_equal(block_fd_pread(fd, dst + 1, 9000, 3), 0);
    assert_memory_equal(dst + 1, want + 3, 9000);
    memset(dst, 0xee, 5000);
    assert_int_equal(block_fd_pread(fd, dst + 1, 4000, 9000), 0);
    assert_memory_equal(dst + 1, want + 9000, size - 9000);
    for (size_t i = size - 9000; i < 4000; i++)
        assert_int_equal(dst[1 + i], 0);

    /* A write across the end of the file grows it to exactly where the write ends. */
    pattern(src + 1, 10, 52);
    assert_int_equal(block_fd_pwrite(fd, src + 1, 10, size - 5), 0);
    memcpy(want + size - 5, src + 1, 10);
    got = slurp(scratch_path("h.raw"), &len);
    assert_int_equal(len, size + 5);
    assert_memory_equal(got, want, size + 5);
    free(got);

    /* Larger than one bounce chunk, unaligned at both ends. */
    size_t big = (1u << 20) + (1u << 19) + 123;
    pattern(src + 1, big, 53);
    assert_int_equal(block_fd_pwrite(fd, src + 1, big, 777), 0);
    memcpy(want + 777, src + 1, big);
    got = slurp(scratch_path("h.raw"), &len);
    assert_int_equal(len, 777 + big);
    assert_memory_equal(got, want, len);
    free(got);
    assert_int_equal(block_fd_pread(fd, dst + 1, big, 777), 0);
    assert_memory_equal(dst + 1, src + 1, big);
    close(fd);
    free(want);
    free(src);
    free(dst);
}

struct async_ctx {
    int done;
    int ret;
};

static void on_done(struct block_req *req, int ret)
{
    struct async_ctx *c = req->opaque;
    c->done++;
    if (ret < 0 && c->ret == 0)
        c->ret = ret;
}

static struct block_dev *open_direct(const char *p, unsigned flags)
{
    struct block_open_opts oo = {.flags = flags | BLOCK_OPEN_DIRECT};
    struct block_dev *bd = NULL;
    int ret = block_open(p, &oo, &bd);
    if (ret < 0)
        fail_msg("open %s: %s", p, block_last_error());
    assert_true(bd->dio_align >= 512 && bd->dio_align <= BLOCK_DIO_MAX_ALIGN);
    assert_true(block_fd_is_direct(bd->fd));
    return bd;
}

/* The ring path of a raw image on O_DIRECT: requests with unaligned buffers (bounced), aligned
 * ones beside them, and writes of partial blocks (read-modify-write after a drain) while other
 * requests are in flight. */
static void test_raw_async_direct(void **state)
{
    (void)state;
    const size_t size = 1 << 20;
    make_file(scratch_path("a.raw"), size, 3);
    struct block_dev *bd = open_direct(scratch_path("a.raw"), BLOCK_OPEN_RDWR);
    /* Treat the file as 4 KiB-aligned whatever the filesystem says, so that 512-byte guest
     * sectors are partial blocks, as on a 4K-native disk. */
    bd->dio_align = 4096;
    uint8_t *want = malloc(size);
    pattern(want, size, 3);
    enum { N = 12 };
    static uint8_t bufs[N][8192 + 1] __attribute__((aligned(4096)));
    struct iovec iov[N];
    struct block_req reqs[N];
    struct async_ctx ctx = {0};
    for (int i = 0; i < N; i++) {
        /* Even i: 4 KiB-aligned offset and length from an odd address (bounce, no RMW).
         * Odd i: a 512-byte-aligned range, 1.5 KiB (a partial-block write). Write 9 reads. */
        uint64_t off = (uint64_t)i * 65536 + (i % 2 ? 512 : 0);
        size_t n = i % 2 ? 1536 : 8192;
        uint8_t *b = i % 2 ? bufs[i] : bufs[i] + 1;
        pattern(b, n, 100 + (unsigned)i);
        iov[i] = (struct iovec){b, n};
        enum block_op op = i == 9 ? BLOCK_OP_READ : BLOCK_OP_WRITE;
        if (op == BLOCK_OP_WRITE)
            memcpy(want + off, b, n);
        reqs[i] = (struct block_req){.op = op, .offset = off, .iov = &iov[i], .iovcnt = 1,
                                     .done = on_done, .opaque = &ctx};
        assert_int_equal(block_submit(bd, &reqs[i]), 0);
    }
    while (ctx.done < N)
        block_aio_wait(bd->aio);
    assert_int_equal(ctx.ret, 0);
    assert_memory_equal(bufs[9], want + 9 * 65536 + 512, 1536);
    /* Reads with unaligned buffers, offsets and lengths (bounced through whole blocks). */
    ctx = (struct async_ctx){0};
    for (int i = 0; i < N; i++) {
        iov[i] = (struct iovec){bufs[i] + 1, 3000};
        reqs[i] = (struct block_req){.op = BLOCK_OP_READ, .offset = (uint64_t)i * 65536 + 1000,
                                     .iov = &iov[i], .iovcnt = 1, .done = on_done,
                                     .opaque = &ctx};
        assert_int_equal(block_submit(bd, &reqs[i]), 0);
    }
    while (ctx.done < N)
        block_aio_wait(bd->aio);
    assert_int_equal(ctx.ret, 0);
    for (int i = 0; i < N; i++)
        assert_memory_equal(bufs[i] + 1, want + i * 65536 + 1000, 3000);
    assert_int_equal(block_flush(bd), 0);
    block_close(bd);
    size_t len;
    uint8_t *got = slurp(scratch_path("a.raw"), &len);
    assert_int_equal(len, size);
    assert_memory_equal(got, want, size);
    free(got);
    free(want);
}

/* qcow2 on O_DIRECT: allocating writes (refcounts, L2 entries, L1 at flush), copy-on-write of
 * partial clusters, unaligned guest buffers; then everything checked after a buffered reopen. */
static void test_qcow2_direct_writes(void **state)
{
    (void)state;
    const uint64_t size = 8 << 20;
    struct block_create_opts co = {.format = "qcow2", .size = size, .cluster_size = 65536};
    assert_int_equal(block_create(scratch_path("w.qcow2"), &co), 0);
    struct block_dev *bd = open_direct(scratch_path("w.qcow2"), BLOCK_OPEN_RDWR);
    uint8_t *want = calloc(1, size);
    uint8_t *b = malloc(200001), *r = malloc(200001);
    struct { uint64_t off; size_t len; } w[] = {
        {0, 512},              /* start of an unallocated cluster: copy-on-write from zeros */
        {65536 * 3, 65536},    /* one whole cluster */
        {65536 * 5 - 1024, 4096 + 2048}, /* across a cluster boundary */
        {1000448, 200000},     /* several clusters, partial at both ends */
        {512, 1024},           /* into the allocated first cluster (in place, on the ring) */
        {7 << 20, 4096},
    };
    for (unsigned i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        pattern(b + 1, w[i].len, 200 + i);
        assert_int_equal(block_pwrite(bd, w[i].off, b + 1, w[i].len), 0);
        memcpy(want + w[i].off, b + 1, w[i].len);
    }
    assert_int_equal(block_pread(bd, 900000, r + 1, 200000), 0);
    assert_memory_equal(r + 1, want + 900000, 200000);
    assert_int_equal(block_flush(bd), 0);
    assert_clean(bd);
    block_close(bd);

    struct block_open_opts oo = {0};
    assert_int_equal(block_open(scratch_path("w.qcow2"), &oo, &bd), 0);
    assert_int_equal(bd->dio_align, 0);
    uint8_t *all = malloc(size);
    assert_int_equal(block_pread(bd, 0, all, size), 0);
    assert_memory_equal(all, want, size);
    assert_clean(bd);
    block_close(bd);
    free(all);
    free(want);
    free(b);
    free(r);
}

/* Compressed clusters (arbitrary offsets and lengths in the file) and a backing file, read on
 * O_DIRECT; a partial write over the backing data copies the rest of the cluster up. */
static void test_qcow2_direct_compressed_and_backing(void **state)
{
    (void)state;
    struct block_create_opts co = {.format = "qcow2", .size = 1 << 20, .cluster_size = 65536};
    assert_int_equal(block_create(scratch_path("c.qcow2"), &co), 0);
    struct block_open_opts rw = {.flags = BLOCK_OPEN_RDWR};
    struct block_dev *bd;
    assert_int_equal(block_open(scratch_path("c.qcow2"), &rw, &bd), 0);
    uint8_t *buf = malloc(65536), *r = malloc(65536 + 1);
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 65536; i++)
            buf[i] = (uint8_t)("compressible"[i % 12] + c);
        assert_int_equal(qcow2_write_compressed(bd, (uint64_t)c * 65536, buf, 65536), 0);
    }
    block_close(bd);

    bd = open_direct(scratch_path("c.qcow2"), 0);
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 65536; i++)
            buf[i] = (uint8_t)("compressible"[i % 12] + c);
        assert_int_equal(block_pread(bd, (uint64_t)c * 65536, r + 1, 65536), 0);
        assert_memory_equal(buf, r + 1, 65536);
    }
    block_close(bd);

    /* An overlay on the compressed image: reads fall through, a write copies up. */
    struct block_create_opts oo = {.format = "qcow2", .size = 1 << 20, .backing = "c.qcow2",
                                   .backing_format = "qcow2"};
    assert_int_equal(block_create(scratch_path("o.qcow2"), &oo), 0);
    struct block_dev *top = open_direct(scratch_path("o.qcow2"), BLOCK_OPEN_RDWR);
    assert_non_null(top->backing);
    assert_true(top->backing->dio_align > 0); /* cache=none covers the chain */
    memset(buf, 0x5a, 100);
    assert_int_equal(block_pwrite(top, 65536 + 300, buf, 100), 0);
    assert_int_equal(block_pread(top, 65536, r + 1, 65536), 0);
    assert_int_equal(r[1], (uint8_t)('c' + 1));
    assert_memory_equal(r + 1 + 300, buf, 100);
    assert_int_equal(r[1 + 400], (uint8_t)("compressible"[400 % 12] + 1));
    assert_clean(top);
    block_close(top);
    free(buf);
    free(r);
}

/* Clusters smaller than the bounce block would put data and metadata in one block: refused for
 * writing, with a message naming cache=none; reading is fine. */
static void test_qcow2_small_clusters(void **state)
{
    (void)state;
    struct block_create_opts co = {.format = "qcow2", .size = 1 << 20, .cluster_size = 512};
    assert_int_equal(block_create(scratch_path("s.qcow2"), &co), 0);
    struct block_open_opts oo = {.flags = BLOCK_OPEN_RDWR | BLOCK_OPEN_DIRECT};
    struct block_dev *bd = NULL;
    assert_int_equal(block_open(scratch_path("s.qcow2"), &oo, &bd), -EINVAL);
    assert_non_null(strstr(block_last_error(), "cache=none"));
    bd = open_direct(scratch_path("s.qcow2"), 0);
    uint8_t r[1000];
    assert_int_equal(block_pread(bd, 1, r, sizeof(r)), 0);
    assert_int_equal(r[0], 0);
    block_close(bd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_predicate_and_span),
        cmocka_unit_test(test_alignment_query),
        cmocka_unit_test(test_fd_helpers_unaligned),
        cmocka_unit_test(test_raw_async_direct),
        cmocka_unit_test(test_qcow2_direct_writes),
        cmocka_unit_test(test_qcow2_direct_compressed_and_backing),
        cmocka_unit_test(test_qcow2_small_clusters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
