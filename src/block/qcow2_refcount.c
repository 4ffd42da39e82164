/* qcow2 refcounts: reading and writing entries of any width (1 to 64 bits), allocating refcount
 * blocks and growing the refcount table, and allocating clusters.
 *
 * A missing refcount block is placed at the first cluster of the range it covers: every cluster
 * of that range has refcount 0 by definition, so the block can always describe itself. */
#include "block/qcow2_refcount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2_cache.h"
#include "block/qcow2_compress.h"
#include "block/qcow2_header.h"
#include "block/qcow2_l2.h"
#include "util/err.h"

#define RT_OFFSET_MASK 0xfffffffffffffe00ull
/* Host offsets must fit in the 56 bits an L2 entry can hold. */
#define QCOW2_MAX_HOST_OFFSET (1ull << 56)

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

bool qcow2_overlaps_metadata(const struct qcow2 *q, uint64_t off, uint64_t len)
{
    return ranges_overlap(off, len, 0, q->cluster_size) ||
           ranges_overlap(off, len, q->l1_offset, (uint64_t)q->l1_size * 8) ||
           ranges_overlap(off, len, q->rt_offset, (uint64_t)q->rt_clusters << q->cluster_bits);
}

uint64_t qcow2_refcount_max(const struct qcow2 *q)
{
    unsigned bits = 1u << q->refcount_order;
    return bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
}

static uint64_t rb_get(const struct qcow2 *q, const uint8_t *blk, uint64_t i)
{
    unsigned order = q->refcount_order;
    if (order < 3) {
        unsigned bits = 1u << order;
        uint64_t bit = i * bits;
        return (blk[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    unsigned bytes = 1u << (order - 3);
    const uint8_t *p = blk + i * bytes;
    uint64_t v = 0;
    for (unsigned k = 0; k < bytes; k++)
        v = v << 8 | p[k];
    return v;
}

/* Sets entry i; returns the byte offset within the block of the bytes changed (*len of them). */
static uint64_t rb_set(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v, unsigned *len)
{
    unsigned order = q->refcount_order;
    if (order < 3) {
        unsigned bits = 1u << order;
        uint64_t bit = i * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
        blk[bit / 8] = (uint8_t)((blk[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
        *len = 1;
        return bit / 8;
    }
    unsigned bytes = 1u << (order - 3);
    uint8_t *p = blk + i * bytes;
    for (unsigned k = 0; k < bytes; k++)
        p[k] = (uint8_t)(v >> (8 * (bytes - 1 - k)));
    *len = bytes;
    return i * bytes;
}

/* Offset of the refcount block for table index ti, 0 if none, -EIO if the entry is invalid. */
static int64_t rb_offset(struct qcow2 *q, uint64_t ti)
{
    if (ti >= q->rt_entries)
        return 0;
    uint64_t off = q->rt[ti] & RT_OFFSET_MASK;
    if (!off)
        return 0;
    if ((off & (q->cluster_size - 1)) || off > q->file_size ||
        q->cluster_size > q->file_size - off) {
        block_set_error("qcow2: refcount block %llu has an invalid offset 0x%llx",
                        (unsigned long long)ti,
                (unsigned long long)off);
        return -EIO;
    }
    return (int64_t)off;
}

int qcow2_refcount_get(struct qcow2 *q, uint64_t ci, uint64_t *rc)
{
    int64_t off = rb_offset(q, ci >> q->rb_bits);
    if (off <= 0) {
        *rc = 0;
        return (int)off;
    }
    uint8_t *blk;
    int ret = qcow2_cache_get(q, &q->rb_cache, (uint64_t)off, &blk);
    if (ret < 0)
        return ret;
    *rc = rb_get(q, blk, ci & (q->rb_entries - 1));
    return 0;
}

static void note_file_end(struct qcow2 *q, uint64_t end)
{
    if (end > q->file_size)
        q->file_size = end;
}

/* Grow the refcount table so that it has an entry for need_ti. The new table and the blocks
 * that describe it go after the end of the file; the header switches to it in one write, and
 * only then the old table's clusters are released (a kill in between leaks them). */
static int rt_grow(struct qcow2 *q, uint64_t need_ti)
{
    uint64_t cs = q->cluster_size;
    uint64_t p = (q->file_size + cs - 1) >> q->cluster_bits;
    uint64_t entries = MAX(need_ti + 1, q->rt_entries) * 2;
    uint64_t nblocks = 0, tclusters = 0;
    for (int iter = 0; iter < 64; iter++) {
        tclusters = (entries * 8 + cs - 1) / cs;
        uint64_t last = p + nblocks + tclusters - 1;
        if ((last >> q->rb_bits) >= entries) {
            entries = (last >> q->rb_bits) + 1;
            continue;
        }
        uint64_t need = 0;
        for (uint64_t ti = p >> q->rb_bits; ti <= last >> q->rb_bits; ti++)
            if (ti >= q->rt_entries || !(q->rt[ti] & RT_OFFSET_MASK))
                need++;
        if (need == nblocks)
            break;
        nblocks = need;
    }
    if (tclusters * cs > QCOW2_MAX_RT_BYTES ||
        (p + nblocks + tclusters) * cs >= QCOW2_MAX_HOST_OFFSET)
        return -EFBIG;
    entries = tclusters * cs / 8;
    uint64_t first = p, last = p + nblocks + tclusters - 1;
    uint64_t *rt = calloc(entries, 8);
    uint8_t *blk = malloc(cs);
    uint8_t *tbuf = calloc(tclusters, cs);
    int ret = -ENOMEM;
    if (!rt || !blk || !tbuf)
        goto out;
    memcpy(rt, q->rt, q->rt_entries * 8);
    /* New blocks, each holding the refcounts of the new clusters it covers. */
    uint64_t next_block = p;
    for (uint64_t ti = first >> q->rb_bits; ti <= last >> q->rb_bits; ti++) {
        if (ti < q->rt_entries && (q->rt[ti] & RT_OFFSET_MASK))
            continue;
        memset(blk, 0, cs);
        for (uint64_t c = MAX(first, ti << q->rb_bits);
             c <= last && (c >> q->rb_bits) == ti; c++) {
            unsigned len;
            rb_set(q, blk, c & (q->rb_entries - 1), 1, &len);
        }
        ret = block_fd_pwrite(q->fd, blk, cs, next_block * cs);
        if (ret < 0)
            goto out;
        rt[ti] = next_block * cs;
        next_block++;
    }
    /* New clusters covered by blocks that already exist get their refcounts there. */
    for (uint64_t c = first; c <= last; c++) {
        uint64_t ti = c >> q->rb_bits;
        if (ti < q->rt_entries && (q->rt[ti] & RT_OFFSET_MASK)) {
            ret = qcow2_refcount_update(q, c, 1);
            if (ret < 0)
                goto out;
        }
    }
    for (uint64_t i = 0; i < entries; i++)
        qcow2_put64(tbuf + i * 8, rt[i]);
    uint64_t toff = (p + nblocks) * cs;
    ret = block_fd_pwrite(q->fd, tbuf, tclusters * cs, toff);
    if (ret < 0)
        goto out;
    note_file_end(q, (last + 1) * cs);
    if (fdatasync(q->fd) < 0) {
        ret = -errno;
        goto out;
    }
    uint8_t h[12];
    qcow2_put64(h, toff);
    qcow2_put32(h + 8, (uint32_t)tclusters);
    ret = block_fd_pwrite(q->fd, h, sizeof(h), 48);
    if (ret < 0)
        goto out;
    uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
    free(q->rt);
    q->rt = rt;
    rt = NULL;
    q->rt_entries = entries;
    q->rt_offset = toff;
    q->rt_clusters = (uint32_t)tclusters;
    ret = qcow2_free_clusters_later(q, old_off, old_clusters);
out:
    free(rt);
    free(blk);
    free(tbuf);
    return ret;
}

/* Make sure table entry ti has a refcount block. Returns 1 if something was allocated.
 * With self_place the block goes to the first cluster of the range it covers (always free when
 * the block is missing); otherwise, so as not to cut a multi-cluster run in pieces, it is
 * allocated as an ordinary single cluster. */
static int rb_ensure(struct qcow2 *q, uint64_t ti, bool self_place)
{
    int ret = 0;
    if (ti >= q->rt_entries) {
        ret = rt_grow(q, ti);
        if (ret < 0)
            return ret;
        ret = 1;
    }
    int64_t off = rb_offset(q, ti);
    if (off < 0)
        return (int)off;
    if (off > 0)
        return ret;
    uint64_t boff;
    if (self_place) {
        uint64_t b = ti << q->rb_bits;
        if (b == 0 || b * q->cluster_size >= QCOW2_MAX_HOST_OFFSET)
            return -EIO; /* the header's own block is missing: a corrupt image */
        boff = b * q->cluster_size;
    } else {
        int64_t c = qcow2_alloc_clusters(q, 1);
        if (c < 0)
            return (int)c;
        if (rb_offset(q, ti) != 0) /* allocating c created the block already */
            return qcow2_free_clusters(q, (uint64_t)c, 1) < 0 ? -EIO : 1;
        boff = (uint64_t)c;
    }
    uint8_t *blk = qcow2_cache_get_new(q, &q->rb_cache, boff);
    if (!blk)
        return -EIO;
    unsigned len;
    if (self_place)
        rb_set(q, blk, 0, 1, &len);
    ret = block_fd_pwrite(q->fd, blk, q->cluster_size, boff);
    if (ret < 0) {
        qcow2_cache_drop(&q->rb_cache, boff);
        return ret;
    }
    note_file_end(q, boff + q->cluster_size);
    uint8_t e[8];
    qcow2_put64(e, boff);
    ret = block_fd_pwrite(q->fd, e, 8, q->rt_offset + ti * 8);
    if (ret < 0)
        return ret;
    q->rt[ti] = boff;
    return 1;
}

int qcow2_refcount_set(struct qcow2 *q, uint64_t ci, uint64_t value)
{
    uint64_t ti = ci >> q->rb_bits;
    int64_t off = rb_offset(q, ti);
    if (off < 0)
        return (int)off;
    if (off == 0) {
        if (value == 0)
            return 0;
        int ret = rb_ensure(q, ti, true);
        if (ret < 0)
            return ret;
        off = rb_offset(q, ti);
        if (off <= 0)
            return -EIO;
    }
    uint8_t *blk;
    int ret = qcow2_cache_get(q, &q->rb_cache, (uint64_t)off, &blk);
    if (ret < 0)
        return ret;
    unsigned len;
    uint64_t at = rb_set(q, blk, ci & (q->rb_entries - 1), value, &len);
    ret = block_fd_pwrite(q->fd, blk + at, len, (uint64_t)off + at);
    if (ret < 0)
        return ret;
    if (value == 0) {
        uint64_t coff = ci << q->cluster_bits;
        if (ci < q->free_hint)
            q->free_hint = ci;
        /* A freed cluster may come back as anything: forget what we cached from it. */
        qcow2_cache_drop(&q->l2_cache, coff);
        qcow2_cache_drop(&q->rb_cache, coff);
        q->dbuf_entry = 0;
    }
    return 0;
}

int qcow2_refcount_update(struct qcow2 *q, uint64_t ci, int64_t delta)
{
    uint64_t rc;
    int ret = qcow2_refcount_get(q, ci, &rc);
    if (ret < 0)
        return ret;
    if (delta < 0 && rc < (uint64_t)-delta) {
        block_set_error("qcow2: refcount of cluster %llu would drop below zero",
                (unsigned long long)ci);
        return -EIO;
    }
    if (delta > 0 && qcow2_refcount_max(q) - rc < (uint64_t)delta)
        return -ERANGE;
    return qcow2_refcount_set(q, ci, rc + (uint64_t)delta);
}

int64_t qcow2_alloc_clusters(struct qcow2 *q, uint64_t n)
{
    if (n == 0)
        return -EINVAL;
    for (uint64_t attempt = 0; attempt < 1000 + 2 * (n >> q->rb_bits); attempt++) {
        /* Everything before free_hint is in use; move it past the used clusters it points at. */
        for (;;) {
            uint64_t rc;
            int ret = qcow2_refcount_get(q, q->free_hint, &rc);
            if (ret < 0)
                return ret;
            if (rc == 0)
                break;
            q->free_hint++;
        }
        uint64_t start = q->free_hint, run = 0;
        for (uint64_t c = start; run < n; c++) {
            if (c >= QCOW2_MAX_HOST_OFFSET >> q->cluster_bits)
                return -ENOSPC;
            uint64_t rc;
            int ret = qcow2_refcount_get(q, c, &rc);
            if (ret < 0)
                return ret;
            if (rc == 0) {
                run++;
            } else {
                run = 0;
                start = c + 1;
            }
        }
        bool changed = false;
        for (uint64_t ti = start >> q->rb_bits; ti <= (start + n - 1) >> q->rb_bits; ti++) {
            int ret = rb_ensure(q, ti, n == 1);
            if (ret < 0)
                return ret;
            if (ret > 0)
                changed = true;
        }
        if (changed)
            continue; /* a new block may have landed in the run: look again */
        for (uint64_t c = start; c < start + n; c++) {
            int ret = qcow2_refcount_update(q, c, 1);
            if (ret < 0)
                return ret;
        }
        if (qcow2_overlaps_metadata(q, start << q->cluster_bits, n << q->cluster_bits)) {
            block_set_error("qcow2: refcounts are corrupt (free cluster %llu is metadata)",
                            (unsigned long long)start);
            return -EIO;
        }
        if (start == q->free_hint)
            q->free_hint = start + n;
        note_file_end(q, (start + n) << q->cluster_bits);
        return (int64_t)(start << q->cluster_bits);
    }
    return -EIO;
}

int qcow2_free_clusters(struct qcow2 *q, uint64_t offset, uint64_t n)
{
    int first_err = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ci = (offset >> q->cluster_bits) + i;
        int ret = qcow2_refcount_update(q, ci, -1);
        if (ret < 0 && !first_err)
            first_err = ret;
    }
    return first_err;
}

int qcow2_free_compressed(struct qcow2 *q, uint64_t l2_entry)
{
    uint64_t off, len;
    qcow2_compressed_range(q, l2_entry, &off, &len);
    uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
    return qcow2_free_clusters(q, first << q->cluster_bits, last - first + 1);
}

#define PENDING_FREE_MAX 65536

int qcow2_free_clusters_later(struct qcow2 *q, uint64_t offset, uint64_t n)
{
    uint64_t ci = offset >> q->cluster_bits;
    if (q->n_pending_free) {
        struct qcow2_free *last = &q->pending_free[q->n_pending_free - 1];
        if (last->cluster + last->count == ci) { /* discards free runs: keep them compact */
            last->count += n;
            return 0;
        }
    }
    if (q->n_pending_free >= PENDING_FREE_MAX) {
        /* A guest that discards without ever flushing: flush now rather than grow forever.
         * Every table that dropped a queued reference is already in the cache. */
        int ret = qcow2_flush_metadata(q);
        if (ret < 0)
            return ret;
    }
    if (q->n_pending_free == q->cap_pending_free) {
        size_t cap = q->cap_pending_free ? q->cap_pending_free * 2 : 64;
        struct qcow2_free *p = realloc(q->pending_free, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        q->pending_free = p;
        q->cap_pending_free = cap;
    }
    q->pending_free[q->n_pending_free++] = (struct qcow2_free){ci, n};
    return 0;
}

int qcow2_release_entry_later(struct qcow2 *q, uint64_t entry)
{
    enum qcow2_cluster_type t;
    if (qcow2_l2_entry_type(q, entry, &t) < 0)
        return 0; /* never free what we cannot trust */
    if (t == QCOW2_CL_COMPRESSED) {
        uint64_t off, len;
        qcow2_compressed_range(q, entry, &off, &len);
        uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
        return qcow2_free_clusters_later(q, first << q->cluster_bits, last - first + 1);
    }
    uint64_t off = entry & QCOW2_OFFSET_MASK;
    if ((t == QCOW2_CL_NORMAL || t == QCOW2_CL_ZERO) && off)
        return qcow2_free_clusters_later(q, off, 1);
    return 0;
}

int qcow2_flush_metadata(struct qcow2 *q)
{
    bool l1_dirty = q->l1_dirty_lo != q->l1_dirty_hi;
    if (!l1_dirty && !q->n_pending_free && !qcow2_cache_any_dirty(&q->l2_cache))
        return 0;
    /* 1: refcounts, new tables and data durable before anything points to them. */
    if (fdatasync(q->fd) < 0)
        return -errno;
    int ret = qcow2_cache_writeback(q, &q->l2_cache);
    if (ret < 0)
        return ret;
    if (l1_dirty) {
        uint64_t n = q->l1_dirty_hi - q->l1_dirty_lo;
        uint8_t *buf = malloc(n * 8);
        if (!buf)
            return -ENOMEM;
        for (uint64_t i = 0; i < n; i++)
            qcow2_put64(buf + i * 8, q->l1[q->l1_dirty_lo + i]);
        ret = block_fd_pwrite(q->fd, buf, n * 8, q->l1_offset + q->l1_dirty_lo * 8);
        free(buf);
        if (ret < 0)
            return ret;
        q->l1_dirty_lo = q->l1_dirty_hi = 0;
    }
    if (!q->n_pending_free)
        return 0;
    /* 2: the tables that dropped references durable before the refcounts drop. */
    if (fdatasync(q->fd) < 0)
        return -errno;
    int first_err = 0;
    for (size_t i = 0; i < q->n_pending_free; i++) {
        const struct qcow2_free *f = &q->pending_free[i];
        for (uint64_t k = 0; k < f->count; k++) {
            uint64_t ci = f->cluster + k;
            ret = qcow2_refcount_update(q, ci, -1);
            uint64_t rc;
            if (ret == 0 && qcow2_refcount_get(q, ci, &rc) == 0 && rc == 0)
                fallocate(q->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          (off_t)(ci << q->cluster_bits), (off_t)q->cluster_size);
            if (ret < 0 && !first_err)
                first_err = ret;
        }
    }
    q->n_pending_free = 0;
    return first_err;
}
