/* qcow2 L1/L2 tables: lookups (validated, since every offset comes from the file), allocation
 * and copy-on-write of L2 tables, and L1 growth. L1/L2 entry updates are written back at the
 * next metadata flush (see qcow2.h). */
#include "block/qcow2_l2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2_cache.h"
#include "block/qcow2_header.h"
#include "block/qcow2_refcount.h"
#include "util/err.h"

#define L1E_RESERVED 0x7f000000000001ffull
#define L2E_STD_RESERVED 0x3f000000000001feull

int qcow2_l1_entry_offset(const struct qcow2 *q, uint64_t l1e, uint64_t *l2_offset)
{
    uint64_t off = l1e & QCOW2_OFFSET_MASK;
    *l2_offset = off;
    if (!off)
        return 0;
    if ((l1e & L1E_RESERVED) || (off & (q->cluster_size - 1)) || off < q->cluster_size ||
        off > q->file_size || q->cluster_size > q->file_size - off) {
        block_set_error("qcow2: invalid L1 entry 0x%llx", (unsigned long long)l1e);
        return -EIO;
    }
    return 0;
}

int qcow2_l2_entry_type(const struct qcow2 *q, uint64_t entry, enum qcow2_cluster_type *type)
{
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        *type = QCOW2_CL_COMPRESSED;
        return 0;
    }
    uint64_t off = entry & QCOW2_OFFSET_MASK;
    if ((entry & L2E_STD_RESERVED) || (off & (q->cluster_size - 1)) ||
        ((q->version < 3 || q->ext_l2) && (entry & QCOW2_OFLAG_ZERO))) {
        block_set_error("qcow2: invalid L2 entry 0x%llx", (unsigned long long)entry);
        return -EIO;
    }
    if (entry & QCOW2_OFLAG_ZERO)
        *type = QCOW2_CL_ZERO;
    else if (off)
        *type = QCOW2_CL_NORMAL;
    else if (entry & QCOW2_OFLAG_COPIED)
        return -EIO; /* offset 0 with the copied flag: only valid with external data files */
    else
        *type = QCOW2_CL_UNALLOC;
    return 0;
}

int qcow2_l2_lookup_run(struct qcow2 *q, uint64_t gofs, uint64_t max, uint64_t *entries)
{
    uint64_t gc = gofs >> q->cluster_bits;
    uint64_t l1i = gc >> q->l2_bits, l2i = gc & (q->l2_entries - 1);
    uint64_t n = MIN(max, q->l2_entries - l2i);
    if (n == 0)
        return -EINVAL;
    if (l1i >= q->l1_size) {
        memset(entries, 0, n * 8);
        return (int)n;
    }
    uint64_t l2_off;
    int ret = qcow2_l1_entry_offset(q, q->l1[l1i], &l2_off);
    if (ret < 0)
        return ret;
    if (!l2_off) {
        memset(entries, 0, n * 8);
        return (int)n;
    }
    uint8_t *t;
    ret = qcow2_cache_get(q, &q->l2_cache, l2_off, &t);
    if (ret < 0)
        return ret;
    for (uint64_t i = 0; i < n; i++)
        entries[i] = qcow2_be64(t + (l2i + i) * q->l2_entry_size);
    return (int)n;
}

int qcow2_l2_subclusters(struct qcow2 *q, uint64_t gofs, uint64_t *bitmap)
{
    *bitmap = 0;
    uint64_t gc = gofs >> q->cluster_bits;
    uint64_t l1i = gc >> q->l2_bits, l2i = gc & (q->l2_entries - 1);
    if (!q->ext_l2 || l1i >= q->l1_size)
        return 0;
    uint64_t l2_off;
    int ret = qcow2_l1_entry_offset(q, q->l1[l1i], &l2_off);
    if (ret < 0 || !l2_off)
        return ret;
    uint8_t *t;
    ret = qcow2_cache_get(q, &q->l2_cache, l2_off, &t);
    if (ret == 0)
        *bitmap = qcow2_be64(t + l2i * 16 + 8);
    return ret;
}

int qcow2_l2_lookup(struct qcow2 *q, uint64_t gofs, uint64_t *entry)
{
    int ret = qcow2_l2_lookup_run(q, gofs, 1, entry);
    return ret < 0 ? ret : 0;
}

/* L1 entries are written back at the next metadata flush (see qcow2.h for the ordering). */
static int l1_set(struct qcow2 *q, uint64_t l1i, uint64_t value)
{
    q->l1[l1i] = value;
    if (q->l1_dirty_lo == q->l1_dirty_hi) {
        q->l1_dirty_lo = l1i;
        q->l1_dirty_hi = l1i + 1;
    } else {
        q->l1_dirty_lo = MIN(q->l1_dirty_lo, l1i);
        q->l1_dirty_hi = MAX(q->l1_dirty_hi, l1i + 1);
    }
    return 0;
}

int qcow2_l2_prepare(struct qcow2 *q, uint64_t gofs, uint64_t *l2_offset)
{
    uint64_t gc = gofs >> q->cluster_bits;
    uint64_t l1i = gc >> q->l2_bits;
    if (l1i >= q->l1_size)
        return -EIO;
    uint64_t old;
    int ret = qcow2_l1_entry_offset(q, q->l1[l1i], &old);
    if (ret < 0)
        return ret;
    if (old && (q->l1[l1i] & QCOW2_OFLAG_COPIED)) {
        *l2_offset = old;
        return 0;
    }
    if (old) {
        uint64_t rc;
        ret = qcow2_refcount_get(q, old >> q->cluster_bits, &rc);
        if (ret < 0)
            return ret;
        if (rc == 1) { /* not shared after all: just mark it so */
            ret = l1_set(q, l1i, old | QCOW2_OFLAG_COPIED);
            *l2_offset = old;
            return ret;
        }
    }
    /* New table: refcount first, then its content, then the L1 entry, then drop the old. */
    int64_t noff = qcow2_alloc_clusters(q, 1);
    if (noff < 0)
        return (int)noff;
    uint8_t *copy = malloc(q->cluster_size);
    if (!copy)
        return -ENOMEM;
    if (old) {
        uint8_t *t;
        ret = qcow2_cache_get(q, &q->l2_cache, old, &t);
        if (ret < 0) {
            free(copy);
            return ret;
        }
        memcpy(copy, t, q->cluster_size);
        /* Entries of a shared table are shared too: clear their copied flags. */
        for (uint64_t i = 0; i < q->l2_entries; i++)
            copy[i * 8] &= 0x7f;
    } else {
        memset(copy, 0, q->cluster_size);
    }
    ret = block_fd_pwrite(q->fd, copy, q->cluster_size, (uint64_t)noff);
    if (ret == 0) {
        uint8_t *t = qcow2_cache_get_new(q, &q->l2_cache, (uint64_t)noff);
        if (t)
            memcpy(t, copy, q->cluster_size);
    }
    free(copy);
    if (ret < 0)
        return ret;
    ret = l1_set(q, l1i, (uint64_t)noff | QCOW2_OFLAG_COPIED);
    if (ret < 0)
        return ret;
    if (old)
        ret = qcow2_free_clusters_later(q, old, 1);
    *l2_offset = (uint64_t)noff;
    return ret;
}

int qcow2_l2_set(struct qcow2 *q, uint64_t l2_offset, uint64_t gofs, uint64_t entry)
{
    uint64_t l2i = (gofs >> q->cluster_bits) & (q->l2_entries - 1);
    uint8_t *t;
    int ret = qcow2_cache_get(q, &q->l2_cache, l2_offset, &t);
    if (ret < 0)
        return ret;
    qcow2_put64(t + l2i * 8, entry);
    qcow2_cache_mark_dirty(&q->l2_cache, l2_offset);
    return 0;
}

int qcow2_l1_grow(struct qcow2 *q, uint64_t entries)
{
    if (entries <= q->l1_size)
        return 0;
    if (entries > QCOW2_MAX_L1_BYTES / 8)
        return -EFBIG;
    uint64_t bytes = ALIGN_UP(entries * 8, q->cluster_size);
    uint64_t nclusters = bytes >> q->cluster_bits;
    entries = bytes / 8 > QCOW2_MAX_L1_BYTES / 8 ? entries : bytes / 8;
    int64_t noff = qcow2_alloc_clusters(q, nclusters);
    if (noff < 0)
        return (int)noff;
    uint64_t *l1 = calloc(entries, 8);
    uint8_t *buf = calloc(1, bytes);
    int ret = -ENOMEM;
    if (!l1 || !buf)
        goto out;
    memcpy(l1, q->l1, (uint64_t)q->l1_size * 8);
    for (uint64_t i = 0; i < entries; i++)
        qcow2_put64(buf + i * 8, l1[i]);
    ret = block_fd_pwrite(q->fd, buf, bytes, (uint64_t)noff);
    if (ret < 0)
        goto out;
    if (fdatasync(q->fd) < 0) {
        ret = -errno;
        goto out;
    }
    uint8_t h[12];
    qcow2_put32(h, (uint32_t)entries);
    qcow2_put64(h + 4, (uint64_t)noff);
    ret = block_fd_pwrite(q->fd, h, sizeof(h), 36);
    if (ret < 0)
        goto out;
    uint64_t old_off = q->l1_offset;
    uint64_t old_clusters = ALIGN_UP((uint64_t)q->l1_size * 8, q->cluster_size) >> q->cluster_bits;
    free(q->l1);
    q->l1 = l1;
    l1 = NULL;
    q->l1_size = (uint32_t)entries;
    q->l1_offset = (uint64_t)noff;
    q->l1_dirty_lo = q->l1_dirty_hi = 0; /* the new table was written whole */
    if (old_off && old_clusters)
        ret = qcow2_free_clusters_later(q, old_off, old_clusters);
out:
    free(l1);
    free(buf);
    return ret;
}
