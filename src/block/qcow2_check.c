/* qcow2 check/repair; see qcow2_check.h. */
#include "block/qcow2_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "block/qcow2_cache.h"
#include "block/qcow2_compress.h"
#include "block/qcow2_header.h"
#include "block/qcow2_l2.h"
#include "block/qcow2_refcount.h"
#include "util/err.h"

struct check_ctx {
    struct qcow2 *q;
    struct qcow2_check_result *res;
    FILE *out;
    uint32_t *refs;
    uint64_t nclusters;
    uint64_t last_host; /* for fragmentation: host offset of the previous guest cluster */
};

static void report(struct check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct check_ctx *c, const char *fmt, ...)
{
    if (!c->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
}

static void add_ref(struct check_ctx *c, uint64_t off, uint64_t len)
{
    if (len == 0)
        return;
    uint64_t first = off >> c->q->cluster_bits;
    uint64_t last = (off + len - 1) >> c->q->cluster_bits;
    for (uint64_t ci = first; ci <= last; ci++) {
        if (ci >= c->nclusters) {
            report(c, "ERROR: cluster %llu (offset 0x%llx) is outside of the image file\n",
                   (unsigned long long)ci, (unsigned long long)(ci << c->q->cluster_bits));
            c->res->corruptions++;
            return;
        }
        if (c->refs[ci] < UINT32_MAX)
            c->refs[ci]++;
    }
}

static int walk_l2(struct check_ctx *c, uint64_t l2_off, uint64_t l1i, bool active, uint8_t *t)
{
    struct qcow2 *q = c->q;
    int ret = block_fd_pread(q->fd, t, q->cluster_size, l2_off);
    if (ret < 0)
        return ret;
    for (uint64_t i = 0; i < q->l2_entries; i++) {
        uint64_t e = qcow2_be64(t + i * q->l2_entry_size);
        enum qcow2_cluster_type type;
        if (qcow2_l2_entry_type(q, e, &type) < 0) {
            report(c, "ERROR: invalid L2 entry 0x%llx (l1 index %llu, l2 index %llu)\n",
                   (unsigned long long)e, (unsigned long long)l1i, (unsigned long long)i);
            c->res->corruptions++;
            continue;
        }
        uint64_t off = e & QCOW2_OFFSET_MASK;
        uint64_t guest = ((l1i << q->l2_bits) + i) << q->cluster_bits;
        bool in_disk = guest < q->size;
        switch (type) {
        case QCOW2_CL_COMPRESSED: {
            uint64_t coff, clen;
            qcow2_compressed_range(q, e, &coff, &clen);
            add_ref(c, coff & ~511ull, clen + (coff & 511));
            if (active && in_disk) {
                c->res->allocated_clusters++;
                c->res->compressed_clusters++;
                c->res->fragmented_clusters++;
                c->last_host = 0;
            }
            break;
        }
        case QCOW2_CL_NORMAL:
        case QCOW2_CL_ZERO:
            if (off)
                add_ref(c, off, q->cluster_size);
            if (type == QCOW2_CL_NORMAL && active && in_disk) {
                c->res->allocated_clusters++;
                if (c->last_host && off != c->last_host + q->cluster_size)
                    c->res->fragmented_clusters++;
                c->last_host = off;
            }
            break;
        case QCOW2_CL_UNALLOC:
            break;
        }
    }
    return 0;
}

static int walk_l1(struct check_ctx *c, uint64_t l1_off, uint64_t l1_size, bool active)
{
    struct qcow2 *q = c->q;
    add_ref(c, l1_off, l1_size * 8);
    uint64_t *l1 = malloc(MAX(l1_size, 1) * 8);
    uint8_t *t = malloc(q->cluster_size);
    int ret = -ENOMEM;
    if (!l1 || !t)
        goto out;
    ret = block_fd_pread(q->fd, l1, l1_size * 8, l1_off);
    for (uint64_t i = 0; ret == 0 && i < l1_size; i++) {
        uint64_t e = qcow2_be64((uint8_t *)&l1[i]);
        uint64_t l2_off;
        if (qcow2_l1_entry_offset(q, e, &l2_off) < 0) {
            report(c, "ERROR: invalid L1 entry 0x%llx at index %llu\n", (unsigned long long)e,
                   (unsigned long long)i);
            c->res->corruptions++;
            continue;
        }
        if (!l2_off)
            continue;
        add_ref(c, l2_off, q->cluster_size);
        ret = walk_l2(c, l2_off, i, active, t);
    }
out:
    free(l1);
    free(t);
    return ret;
}

static void walk_bitmaps(struct check_ctx *c)
{
    struct qcow2 *q = c->q;
    for (unsigned i = 0; i < q->n_exts; i++) {
        const struct qcow2_ext *e = &q->exts[i];
        if (e->type != QCOW2_EXT_BITMAPS || e->len < 24)
            continue;
        uint32_t nb = qcow2_be32(e->data);
        uint64_t dsize = qcow2_be64(e->data + 8), doff = qcow2_be64(e->data + 16);
        if (dsize > (64u << 20) || qcow2_check_range(q, doff, dsize, q->file_size) < 0) {
            report(c, "ERROR: bitmap directory is out of bounds\n");
            c->res->corruptions++;
            return;
        }
        add_ref(c, doff, dsize);
        uint8_t *dir = malloc(dsize ? dsize : 1);
        if (!dir || block_fd_pread(q->fd, dir, dsize, doff) < 0) {
            free(dir);
            return;
        }
        uint64_t pos = 0;
        for (uint32_t b = 0; b < nb && pos + 24 <= dsize; b++) {
            uint64_t toff = qcow2_be64(dir + pos);
            uint32_t tsize = qcow2_be32(dir + pos + 8);
            uint16_t name_len = qcow2_be16(dir + pos + 18);
            uint32_t extra = qcow2_be32(dir + pos + 20);
            if ((uint64_t)tsize * 8 <= (64u << 20) &&
                qcow2_check_range(q, toff, (uint64_t)tsize * 8, q->file_size) == 0) {
                add_ref(c, toff, (uint64_t)tsize * 8);
                uint64_t *tab = malloc(MAX(tsize, 1u) * 8ull);
                if (tab && block_fd_pread(q->fd, tab, (uint64_t)tsize * 8, toff) == 0) {
                    for (uint32_t k = 0; k < tsize; k++) {
                        uint64_t off = qcow2_be64((uint8_t *)&tab[k]) & QCOW2_OFFSET_MASK;
                        if (off)
                            add_ref(c, off, q->cluster_size);
                    }
                }
                free(tab);
            }
            pos += ALIGN_UP(24 + (uint64_t)extra + name_len, 8);
        }
        free(dir);
    }
}

static int compare_refcounts(struct check_ctx *c, int repair)
{
    struct qcow2 *q = c->q;
    /* Like qemu-img, only clusters inside the file count: a refcount past its end (left by a
     * writer killed between allocating and writing) wastes nothing. */
    for (uint64_t ci = 0; ci < c->nclusters; ci++) {
        uint64_t stored;
        int ret = qcow2_refcount_get(q, ci, &stored);
        if (ret < 0) {
            /* An unreadable refcount block: corruption, counted once per block. */
            report(c, "ERROR: refcount block for cluster %llu is invalid\n",
                   (unsigned long long)ci);
            c->res->corruptions++;
            ci = (((ci >> q->rb_bits) + 1) << q->rb_bits) - 1;
            continue;
        }
        uint64_t ref = c->refs[ci];
        if (stored == ref)
            continue;
        bool leak = stored > ref;
        bool fix = leak ? (repair & QCOW2_REPAIR_LEAKS) : (repair & QCOW2_REPAIR_ERRORS);
        report(c, "%s cluster %llu refcount=%llu reference=%llu\n",
               fix ? "Repairing" : (leak ? "Leaked" : "ERROR"), (unsigned long long)ci,
               (unsigned long long)stored, (unsigned long long)ref);
        if (fix && qcow2_refcount_set(q, ci, ref) == 0) {
            if (leak)
                c->res->leaks_fixed++;
            else
                c->res->corruptions_fixed++;
        } else if (leak) {
            c->res->leaks++;
        } else {
            c->res->corruptions++;
        }
    }
    return 0;
}

/* Copied flags of the active tables must say "refcount is exactly one". */
static int check_copied(struct check_ctx *c, int repair)
{
    struct qcow2 *q = c->q;
    bool fix = repair & QCOW2_REPAIR_ERRORS;
    for (uint64_t i = 0; i < q->l1_size; i++) {
        uint64_t l2_off;
        if (qcow2_l1_entry_offset(q, q->l1[i], &l2_off) < 0 || !l2_off)
            continue;
        uint64_t rc;
        if (qcow2_refcount_get(q, l2_off >> q->cluster_bits, &rc) < 0)
            continue;
        bool want = rc == 1, have = q->l1[i] & QCOW2_OFLAG_COPIED;
        if (want != have) {
            report(c, "%s OFLAG_COPIED L2 cluster: l1_index=%llu l1_entry=%llx refcount=%llu\n",
                   fix ? "Repairing" : "ERROR", (unsigned long long)i,
                   (unsigned long long)q->l1[i], (unsigned long long)rc);
            uint64_t v = want ? q->l1[i] | QCOW2_OFLAG_COPIED : q->l1[i] & ~QCOW2_OFLAG_COPIED;
            uint8_t e[8];
            qcow2_put64(e, v);
            if (fix && block_fd_pwrite(q->fd, e, 8, q->l1_offset + i * 8) == 0) {
                q->l1[i] = v;
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
        }
        uint8_t *t;
        if (qcow2_cache_get(q, &q->l2_cache, l2_off, &t) < 0)
            continue;
        for (uint64_t k = 0; k < q->l2_entries; k++) {
            uint64_t e = qcow2_be64(t + k * q->l2_entry_size);
            enum qcow2_cluster_type type;
            uint64_t off = e & QCOW2_OFFSET_MASK;
            if (qcow2_l2_entry_type(q, e, &type) < 0 || !off ||
                (type != QCOW2_CL_NORMAL && type != QCOW2_CL_ZERO))
                continue;
            if (qcow2_refcount_get(q, off >> q->cluster_bits, &rc) < 0)
                continue;
            /* qcow2_refcount_get may have evicted the table: fetch it again. */
            if (qcow2_cache_get(q, &q->l2_cache, l2_off, &t) < 0)
                break;
            want = rc == 1;
            have = e & QCOW2_OFLAG_COPIED;
            if (want == have)
                continue;
            report(c, "%s OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu\n",
                   fix ? "Repairing" : "ERROR", (unsigned long long)e, (unsigned long long)rc);
            uint64_t v = want ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
            if (fix && qcow2_l2_set(q, l2_off, ((i << q->l2_bits) + k) << q->cluster_bits, v) == 0)
                c->res->corruptions_fixed++;
            else
                c->res->corruptions++;
            if (qcow2_cache_get(q, &q->l2_cache, l2_off, &t) < 0)
                break;
        }
    }
    return 0;
}

int qcow2_check(struct block_dev *bd, int repair, struct qcow2_check_result *res, FILE *out)
{
    struct qcow2 *q = bd->priv;
    memset(res, 0, sizeof(*res));
    if (repair && q->read_only)
        return -EROFS;
    if (!q->read_only) {
        /* The walk reads tables from the file: put our own pending changes there first. */
        int ret = qcow2_flush_metadata(q);
        if (ret < 0)
            return ret;
    }
    struct check_ctx c = {.q = q, .res = res, .out = out};
    c.nclusters = (q->file_size + q->cluster_size - 1) >> q->cluster_bits;
    c.refs = calloc(MAX(c.nclusters, 1), sizeof(uint32_t));
    if (!c.refs)
        return -ENOMEM;
    res->total_clusters = (q->size + q->cluster_size - 1) >> q->cluster_bits;
    add_ref(&c, 0, q->cluster_size);
    int ret = walk_l1(&c, q->l1_offset, q->l1_size, true);
    if (ret == 0 && q->nb_snapshots) {
        add_ref(&c, q->snapshots_offset, q->snapshots_size);
        for (uint32_t i = 0; ret == 0 && i < q->nb_snapshots; i++)
            ret = walk_l1(&c, q->snapshots[i].l1_offset, q->snapshots[i].l1_size, false);
    }
    if (ret == 0) {
        add_ref(&c, q->rt_offset, (uint64_t)q->rt_clusters << q->cluster_bits);
        for (uint64_t ti = 0; ti < q->rt_entries; ti++) {
            uint64_t off = q->rt[ti] & QCOW2_OFFSET_MASK;
            if (!off)
                continue;
            if (qcow2_check_range(q, off, q->cluster_size, q->file_size) < 0) {
                report(&c, "ERROR refcount block %llu is not cluster aligned or outside the "
                           "image; refcount table entry corrupted\n", (unsigned long long)ti);
                res->corruptions++;
                continue;
            }
            add_ref(&c, off, q->cluster_size);
        }
        walk_bitmaps(&c);
    }
    if (ret == 0)
        ret = compare_refcounts(&c, repair);
    if (ret == 0)
        ret = check_copied(&c, repair);
    for (uint64_t ci = c.nclusters; ci > 0; ci--)
        if (c.refs[ci - 1]) {
            res->image_end = ci << q->cluster_bits;
            break;
        }
    if (ret == 0 && repair)
        ret = qcow2_flush_metadata(q);
    /* A full repair that left nothing wrong makes the corrupt and dirty bits obsolete. */
    uint64_t bits = QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY;
    if (ret == 0 && (repair & QCOW2_REPAIR_ERRORS) && res->corruptions == 0 &&
        (q->incompat & bits)) {
        q->incompat &= ~bits;
        ret = qcow2_header_write(q);
    }
    free(c.refs);
    return ret;
}
