/* Seeded I/O workloads through the asynchronous block API, for the pytest suite.
 *
 *   vireo-img-io workload SEED STEPS IMG REF [discard]
 *       Batches of non-overlapping random writes / write-zeroes (/ discards) with several in
 *       flight, applied to IMG (any format) and REF (raw); after every batch both are read back
 *       whole and compared. Exit 0 if they always matched.
 *   vireo-img-io writer SEED IMG
 *       Endless batches of writes; after each batch, flush and print "flushed N" (N = ops so far).
 *   vireo-img-io mark IMG OFF LEN BYTE
 *       Write LEN bytes of value BYTE at OFF and flush.
 *   vireo-img-io bench IMG OPS read|write [seq] [direct]
 *       4 KiB random requests at queue depth 32 (not a test: prints IOPS). With "seq", the
 *       offsets go up 4 KiB per request and wrap at the end, as `qemu-img bench` issues them;
 *       with "direct", the image is opened with O_DIRECT (cache=none, as virtio-blk runs it).
 *   vireo-img-io verify SEED N IMG [BASE]
 *       Replay the writer's first N ops in memory (over BASE's content, else zeros) and compare
 *       with IMG, ignoring what the next batch may have touched. Exit 0 if equal.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block/block.h"
#include "util/err.h"

#define BATCH 8
#define MAX_LEN (256 * 1024)

struct op {
    int kind; /* 0 write, 1 write zeroes, 2 discard */
    uint64_t off, len;
    uint64_t data_seed;
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void fill(uint8_t *buf, uint64_t len, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint64_t i = 0; i < len; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(buf + i, &v, MIN(8, len - i));
    }
}

/* Next batch of non-overlapping ops (overlap within a batch would make the result undefined). */
static void gen_batch(uint64_t *rng, uint64_t size, bool discard, uint64_t first, struct op *ops)
{
    for (int i = 0; i < BATCH; i++) {
        for (;;) {
            struct op o;
            uint64_t r = rng_next(rng);
            int k = (int)(r % 10);
            o.kind = k < 7 ? 0 : (k < 9 || !discard) ? 1 : 2;
            bool aligned = rng_next(rng) % 4 != 0;
            o.len = 1 + rng_next(rng) % MAX_LEN;
            o.off = rng_next(rng) % size;
            if (aligned) {
                o.off &= ~511ull;
                o.len = (o.len + 511) & ~511ull;
            }
            if (o.kind == 2) {
                /* A discard may leave partial clusters as they were: keep it on cluster
                 * boundaries (2 MiB covers every cluster size). */
                o.off &= ~0x1fffffull;
                o.len = (o.len + 0x1fffff) & ~0x1fffffull;
            }
            if (o.off + o.len > size)
                o.len = size - o.off;
            if (o.len == 0)
                continue;
            o.data_seed = first + (uint64_t)i + 1;
            bool overlap = false;
            for (int j = 0; j < i; j++)
                if (o.off < ops[j].off + ops[j].len && ops[j].off < o.off + o.len)
                    overlap = true;
            if (overlap)
                continue;
            ops[i] = o;
            break;
        }
    }
}

struct pending {
    struct block_req req;
    struct iovec iov[3];
    uint8_t *buf;
    int *outstanding;
    int *failed;
};

static void on_done(struct block_req *req, int ret)
{
    struct pending *p = req->opaque;
    if (ret < 0) {
        fprintf(stderr, "request failed: %s\n", strerror(-ret));
        (*p->failed)++;
    }
    (*p->outstanding)--;
    free(p->buf);
    free(p);
}

/* Submit a batch with everything in flight at once, then wait for all of it. */
static int run_batch(struct block_dev *bd, const struct op *ops, int n)
{
    int outstanding = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        struct pending *p = calloc(1, sizeof(*p));
        p->outstanding = &outstanding;
        p->failed = &failed;
        p->req.opaque = p;
        p->req.done = on_done;
        p->req.offset = ops[i].off;
        if (ops[i].kind == 0) {
            p->buf = malloc(ops[i].len);
            fill(p->buf, ops[i].len, ops[i].data_seed);
            /* Split the buffer into up to three iovec pieces to exercise slicing. */
            uint64_t a = ops[i].len / 3, b = ops[i].len / 2;
            p->iov[0] = (struct iovec){p->buf, a};
            p->iov[1] = (struct iovec){p->buf + a, b - a};
            p->iov[2] = (struct iovec){p->buf + b, ops[i].len - b};
            p->req.op = BLOCK_OP_WRITE;
            p->req.iov = p->iov;
            p->req.iovcnt = 3;
        } else {
            p->req.op = ops[i].kind == 1 ? BLOCK_OP_WRITE_ZEROES : BLOCK_OP_DISCARD;
            p->req.len = ops[i].len;
        }
        int ret = block_submit(bd, &p->req);
        if (ret < 0) {
            fprintf(stderr, "submit failed: %s\n", strerror(-ret));
            free(p->buf);
            free(p);
            return ret;
        }
        outstanding++;
    }
    while (outstanding > 0)
        block_aio_wait(bd->aio);
    return failed ? -5 : 0;
}

static void apply_mem(uint8_t *mem, const struct op *o)
{
    if (o->kind == 0)
        fill(mem + o->off, o->len, o->data_seed);
    else
        memset(mem + o->off, 0, o->len);
}

static int open_dev(const char *path, bool rw, struct block_dev **bd)
{
    struct block_open_opts oo = {.flags = rw ? BLOCK_OPEN_RDWR : 0};
    int ret = block_open(path, &oo, bd);
    if (ret < 0)
        fprintf(stderr, "%s\n", block_last_error());
    return ret;
}

static int cmd_workload(uint64_t seed, long steps, const char *img, const char *ref, bool discard)
{
    struct block_dev *a, *b;
    if (open_dev(img, true, &a) < 0)
        return 1;
    struct block_open_opts ro = {.format = "raw", .flags = BLOCK_OPEN_RDWR};
    if (block_open(ref, &ro, &b) < 0 || a->size != b->size) {
        fprintf(stderr, "reference unusable\n");
        return 1;
    }
    struct block_aio *aio = block_aio_new(64);
    block_attach_aio(a, aio);
    block_attach_aio(b, aio);
    uint64_t rng = seed | 1;
    uint8_t *ba = malloc(a->size), *bb = malloc(a->size);
    for (long s = 0; s < steps; s++) {
        struct op ops[BATCH];
        gen_batch(&rng, a->size, discard, (uint64_t)s * BATCH, ops);
        if (run_batch(a, ops, BATCH) < 0 || run_batch(b, ops, BATCH) < 0)
            return 1;
        if (s % 7 == 6 && block_flush(a) < 0)
            return 1;
        if (block_pread(a, 0, ba, a->size) < 0 || block_pread(b, 0, bb, b->size) < 0) {
            fprintf(stderr, "read back failed\n");
            return 1;
        }
        if (memcmp(ba, bb, a->size)) {
            uint64_t i = 0;
            while (ba[i] == bb[i])
                i++;
            fprintf(stderr, "step %ld: contents differ at offset %llu\n", s,
                    (unsigned long long)i);
            return 1;
        }
    }
    block_close(a);
    block_close(b);
    block_aio_free(aio);
    free(ba);
    free(bb);
    printf("workload ok: %ld steps\n", steps);
    return 0;
}

static int cmd_writer(uint64_t seed, const char *img)
{
    struct block_dev *bd;
    if (open_dev(img, true, &bd) < 0)
        return 1;
    uint64_t rng = seed | 1;
    for (uint64_t n = 0;; n += BATCH) {
        struct op ops[BATCH];
        gen_batch(&rng, bd->size, false, n, ops);
        if (run_batch(bd, ops, BATCH) < 0 || block_flush(bd) < 0)
            return 1;
        printf("flushed %llu\n", (unsigned long long)(n + BATCH));
        fflush(stdout);
    }
}

static int cmd_verify(uint64_t seed, uint64_t nops, const char *img, const char *base)
{
    struct block_dev *bd;
    if (open_dev(img, false, &bd) < 0)
        return 1;
    uint8_t *mem = calloc(1, bd->size), *got = malloc(bd->size);
    if (base) {
        /* The image's content before the writer started (a copy of it, or its backing file). */
        struct block_dev *b;
        if (open_dev(base, false, &b) < 0)
            return 1;
        if (block_pread(b, 0, mem, MIN(b->size, bd->size)) < 0)
            return 1;
        block_close(b);
    }
    uint8_t *maybe = calloc(1, bd->size);
    uint64_t rng = seed | 1;
    uint64_t n = 0;
    for (; n < nops; n += BATCH) {
        struct op ops[BATCH];
        gen_batch(&rng, bd->size, false, n, ops);
        for (int i = 0; i < BATCH; i++)
            apply_mem(mem, &ops[i]);
    }
    /* The batch after the last flush may have landed in part: ignore its ranges. */
    struct op next[BATCH];
    gen_batch(&rng, bd->size, false, n, next);
    for (int i = 0; i < BATCH; i++)
        memset(maybe + next[i].off, 1, next[i].len);
    if (block_pread(bd, 0, got, bd->size) < 0) {
        fprintf(stderr, "read failed\n");
        return 1;
    }
    for (uint64_t i = 0; i < bd->size; i++) {
        if (!maybe[i] && mem[i] != got[i]) {
            fprintf(stderr, "flushed data lost at offset %llu\n", (unsigned long long)i);
            return 1;
        }
    }
    block_close(bd);
    free(mem);
    free(got);
    free(maybe);
    printf("verify ok: %llu ops\n", (unsigned long long)nops);
    return 0;
}

struct bench_ctx {
    struct block_dev *bd;
    uint64_t rng, left, inflight;
    uint8_t *bufs;
    struct iovec *iov;
    struct block_req *reqs;
    bool write;
    bool seq;      /* sequential offsets instead of random ones */
    uint64_t next; /* the next sequential block */
};

static void bench_issue(struct bench_ctx *b, int slot);

static void bench_done(struct block_req *req, int ret)
{
    struct bench_ctx *b = req->opaque;
    if (ret < 0) {
        fprintf(stderr, "bench request failed: %s\n", strerror(-ret));
        exit(1);
    }
    b->inflight--;
    if (b->left)
        bench_issue(b, (int)(req - b->reqs));
}

static void bench_issue(struct bench_ctx *b, int slot)
{
    uint64_t blocks = b->bd->size / 4096;
    uint64_t block = b->seq ? b->next++ % blocks : rng_next(&b->rng) % blocks;
    b->left--;
    b->inflight++;
    b->iov[slot] = (struct iovec){b->bufs + (size_t)slot * 4096, 4096};
    b->reqs[slot] = (struct block_req){.op = b->write ? BLOCK_OP_WRITE : BLOCK_OP_READ,
                                       .offset = block * 4096,
                                       .iov = &b->iov[slot], .iovcnt = 1, .done = bench_done,
                                       .opaque = b};
    if (block_submit(b->bd, &b->reqs[slot]) < 0)
        exit(1);
}

/* 4 KiB random (or sequential) reads or writes at queue depth 32: prints requests per second. */
static int cmd_bench(const char *img, uint64_t ops, bool write, bool seq, bool direct)
{
    struct timespec t0, t1;
    struct bench_ctx b = {.rng = 42, .left = ops, .write = write, .seq = seq};
    struct block_open_opts oo = {.flags = (write ? BLOCK_OPEN_RDWR : 0) |
                                          (direct ? BLOCK_OPEN_DIRECT : 0)};
    if (block_open(img, &oo, &b.bd) < 0) {
        fprintf(stderr, "%s\n", block_last_error());
        return 1;
    }
    /* Aligned buffers, so that O_DIRECT takes them without a bounce. */
    if (posix_memalign((void **)&b.bufs, 4096, 32 * 4096))
        return 1;
    memset(b.bufs, 0, 32 * 4096);
    b.iov = calloc(32, sizeof(*b.iov));
    b.reqs = calloc(32, sizeof(*b.reqs));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 32 && b.left; i++)
        bench_issue(&b, i);
    while (b.inflight)
        block_aio_wait(b.bd->aio);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%s %s%s: %.0f IOPS\n", img, seq ? "" : "rand", write ? "write" : "read",
           (double)ops / secs);
    block_close(b.bd);
    free(b.bufs);
    free(b.iov);
    free(b.reqs);
    return 0;
}

/* Write LEN bytes of BYTE at OFF through the async path, then flush: a guest's marker. */
static int cmd_mark(const char *img, uint64_t off, uint64_t len, int byte)
{
    struct block_dev *bd;
    if (open_dev(img, true, &bd) < 0)
        return 1;
    uint8_t *buf = malloc(len);
    memset(buf, byte, len);
    int ret = block_pwrite(bd, off, buf, len);
    if (ret == 0)
        ret = block_flush(bd);
    free(buf);
    block_close(bd);
    if (ret < 0)
        fprintf(stderr, "mark failed: %s\n", strerror(-ret));
    return ret < 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "mark"))
        return cmd_mark(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
                        (int)strtol(argv[5], NULL, 0));
    if (argc >= 5 && argc <= 7 && !strcmp(argv[1], "bench")) {
        bool seq = false, direct = false, bad = false;
        for (int i = 5; i < argc; i++) {
            if (!strcmp(argv[i], "seq"))
                seq = true;
            else if (!strcmp(argv[i], "direct"))
                direct = true;
            else
                bad = true;
        }
        if (!bad)
            return cmd_bench(argv[2], strtoull(argv[3], NULL, 0), !strcmp(argv[4], "write"), seq,
                             direct);
    }
    if (argc >= 6 && !strcmp(argv[1], "workload"))
        return cmd_workload(strtoull(argv[2], NULL, 0), strtol(argv[3], NULL, 0), argv[4],
                            argv[5], argc > 6 && !strcmp(argv[6], "discard"));
    if (argc == 4 && !strcmp(argv[1], "writer"))
        return cmd_writer(strtoull(argv[2], NULL, 0), argv[3]);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "verify"))
        return cmd_verify(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0), argv[4],
                          argc == 6 ? argv[5] : NULL);
    fprintf(stderr, "usage: vireo-img-io workload|writer|verify ...\n");
    return 2;
}
