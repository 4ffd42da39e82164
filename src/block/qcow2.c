/* qcow2 block ops: open (with the backing chain), map for the async path, and the synchronous
 * read/write/discard/resize paths that do the metadata work. */
#include "block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/dio.h"
#include "block/qcow2_cache.h"
#include "block/qcow2_check.h"
#include "block/qcow2_compress.h"
#include "block/qcow2_header.h"
#include "block/qcow2_l2.h"
#include "block/qcow2_refcount.h"
#include "util/err.h"
#include "util/log.h"

const struct qcow2 *qcow2_state(struct block_dev *bd)
{
    return bd->ops == &block_qcow2_ops ? bd->priv : NULL;
}

static void qcow2_free_state(struct qcow2 *q)
{
    if (!q)
        return;
    qcow2_header_free(q);
    qcow2_cache_free(&q->l2_cache);
    qcow2_cache_free(&q->rb_cache);
    free(q->cbuf);
    free(q->dbuf);
    free(q->pending_free);
    free(q);
}

/* Resolve a backing name relative to the directory of the image that names it. */
static char *backing_path(const char *image, const char *name)
{
    if (name[0] == '/' || !strchr(image, '/'))
        return strdup(name);
    char *dup = strdup(image);
    if (!dup)
        return NULL;
    char *dir = dirname(dup);
    char *out = NULL;
    if (asprintf(&out, "%s/%s", dir, name) < 0)
        out = NULL;
    free(dup);
    return out;
}

static int open_backing(struct block_dev *bd, struct qcow2 *q, const struct block_open_opts *opts)
{
    struct stat st;
    if (fstat(bd->fd, &st) < 0)
        return -errno;
    struct block_chain self = {.dev = st.st_dev, .ino = st.st_ino, .depth = 0, .up = opts->chain};
    self.depth = opts->chain ? opts->chain->depth + 1 : 1;
    if (self.depth > QCOW2_MAX_CHAIN) {
        block_set_error("backing chain of '%s' is deeper than %d images", bd->filename,
                        QCOW2_MAX_CHAIN);
        return -ELOOP;
    }
    char *path = backing_path(bd->filename, q->backing_name);
    if (!path)
        return -ENOMEM;
    struct stat bst;
    if (stat(path, &bst) < 0) {
        int err = errno;
        block_set_error("could not open backing file '%s': %s", path, strerror(err));
        free(path);
        return -err;
    }
    for (const struct block_chain *c = &self; c; c = c->up) {
        if (c->dev == (uint64_t)bst.st_dev && c->ino == (uint64_t)bst.st_ino) {
            block_set_error("backing chain loops: '%s' is already in the chain", path);
            free(path);
            return -ELOOP;
        }
    }
    /* cache=none covers the whole chain, as QEMU's does. */
    struct block_open_opts bo = {
        .format = q->backing_format, .flags = opts->flags & BLOCK_OPEN_DIRECT,
        .l2_cache_size = opts->l2_cache_size, .chain = &self};
    if (bo.format && strcmp(bo.format, "raw") != 0 && strcmp(bo.format, "qcow2") != 0) {
        block_set_error("backing file '%s' has unsupported format '%s'", path, bo.format);
        free(path);
        return -ENOTSUP;
    }
    int ret = block_open(path, &bo, &bd->backing);
    if (ret < 0 && !strstr(block_last_error(), "backing")) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", block_last_error());
        block_set_error("could not open backing file: %s", msg);
    }
    free(path);
    return ret;
}

static int qcow2_open(struct block_dev *bd, const struct block_open_opts *opts)
{
    struct qcow2 *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->fd = bd->fd;
    q->read_only = bd->read_only;
    int ret = qcow2_header_load(q, bd->filename);
    if (ret < 0)
        goto fail;
    ret = -ENOMEM;
    /* Every L2 table of the image in memory unless the user caps it (qcow2_cache.h). */
    unsigned slots = qcow2_cache_slots_for(q->l1_size, q->cluster_size, opts->l2_cache_size);
    if (qcow2_cache_init(&q->l2_cache, slots, q->cluster_size) < 0 ||
        qcow2_cache_init(&q->rb_cache, 8, q->cluster_size) < 0)
        goto fail;
    /* Aligned, so that reads into them need no bounce under O_DIRECT. */
    q->cbuf = block_dio_alloc(2 * q->cluster_size);
    q->dbuf = block_dio_alloc(q->cluster_size);
    if (!q->cbuf || !q->dbuf)
        goto fail;
    bd->priv = q;
    bd->size = q->size;
    if (bd->dio_align && !bd->read_only && q->cluster_size < BLOCK_DIO_MAX_ALIGN) {
        /* Metadata updates smaller than a block are read-modify-writes of the block around
         * them (block/dio.h); with clusters smaller than that block, the same block could
         * hold a data cluster that a guest write is changing at that moment. */
        block_set_error("cache=none needs clusters of at least %u bytes to write '%s' (it has "
                        "%llu-byte clusters); use cache=writeback", BLOCK_DIO_MAX_ALIGN,
                        bd->filename, (unsigned long long)q->cluster_size);
        ret = -EINVAL;
        goto fail;
    }
    if (q->ext_l2 && !bd->read_only) {
        block_set_error("extended L2 entries (subclusters) are supported read-only");
        ret = -EROFS;
        goto fail;
    }
    if (!bd->read_only && (q->incompat & QCOW2_INCOMPAT_CORRUPT) &&
        !(opts->flags & BLOCK_OPEN_REPAIR)) {
        block_set_error("image is marked corrupt: open it read-only or repair it with "
                        "'vireo img check -r all'");
        ret = -EROFS;
        goto fail;
    }
    if (!bd->read_only && q->autoclear) {
        /* We do not maintain bitmaps: clearing the bit tells others they are stale. */
        q->autoclear = 0;
        ret = qcow2_header_write(q);
        if (ret < 0)
            goto fail;
    }
    if (!bd->read_only && (q->incompat & QCOW2_INCOMPAT_DIRTY) &&
        !(opts->flags & BLOCK_OPEN_REPAIR)) {
        /* Lazy refcounts left unflushed: rebuild them before allocating anything. */
        struct qcow2_check_result res;
        ret = qcow2_check(bd, QCOW2_REPAIR_ALL, &res, NULL);
        if (ret < 0 || res.corruptions) {
            block_set_error("image was not closed cleanly and its refcounts could not be "
                            "repaired");
            ret = ret < 0 ? ret : -EIO;
            goto fail;
        }
        q->incompat &= ~QCOW2_INCOMPAT_DIRTY;
        ret = qcow2_header_write(q);
        if (ret < 0)
            goto fail;
    }
    if (q->backing_name && !(opts->flags & BLOCK_OPEN_NO_BACKING)) {
        ret = open_backing(bd, q, opts);
        if (ret < 0)
            goto fail;
    }
    return 0;
fail:
    bd->priv = NULL;
    qcow2_free_state(q);
    return ret;
}

static void qcow2_close(struct block_dev *bd)
{
    struct qcow2 *q = bd->priv;
    if (!q->read_only && (qcow2_flush_metadata(q) < 0 || fdatasync(q->fd) < 0))
        fprintf(stderr, "qcow2: '%s': metadata could not be written on close\n", bd->filename);
    qcow2_free_state(bd->priv);
    bd->priv = NULL;
}

/* Extended L2: one extent per run of subclusters in the same state, within one cluster. */
static int map_subclusters(struct qcow2 *q, uint64_t offset, uint64_t len, struct block_extent *ext)
{
    uint64_t entry, bitmap;
    enum qcow2_cluster_type t;
    int ret = qcow2_l2_lookup(q, offset, &entry);
    if (ret == 0)
        ret = qcow2_l2_entry_type(q, entry, &t);
    if (ret == 0)
        ret = qcow2_l2_subclusters(q, offset, &bitmap);
    if (ret < 0)
        return ret;
    uint64_t in = offset & (q->cluster_size - 1);
    uint64_t sc_size = q->cluster_size / 32;
    ext->writable = false;
    ext->host_offset = 0;
    if (t == QCOW2_CL_COMPRESSED) {
        uint64_t off, clen;
        qcow2_compressed_range(q, entry, &off, &clen);
        ext->kind = BLOCK_EXT_COMPRESSED;
        ext->host_offset = off;
        ext->length = MIN(q->cluster_size - in, len);
        return 0;
    }
    uint32_t alloc = (uint32_t)bitmap, zero = (uint32_t)(bitmap >> 32);
    if (alloc & zero) {
        block_set_error("qcow2: subcluster both allocated and zero (L2 entry 0x%llx)",
                        (unsigned long long)entry);
        return -EIO;
    }
    if (alloc && t != QCOW2_CL_NORMAL) {
        block_set_error("qcow2: allocated subclusters without a host cluster");
        return -EIO;
    }
    unsigned sc = (unsigned)(in / sc_size);
    int state = (alloc >> sc & 1) ? 1 : (zero >> sc & 1) ? 2 : 0;
    unsigned end = sc + 1;
    while (end < 32 && ((alloc >> end & 1) ? 1 : (zero >> end & 1) ? 2 : 0) == state)
        end++;
    ext->length = MIN((uint64_t)end * sc_size - in, len);
    if (state == 1) {
        ext->kind = BLOCK_EXT_DATA;
        ext->host_offset = (entry & QCOW2_OFFSET_MASK) + in;
    } else {
        ext->kind = state == 2 ? BLOCK_EXT_ZERO : BLOCK_EXT_UNALLOC;
    }
    return 0;
}

static int qcow2_map(struct block_dev *bd, uint64_t offset, uint64_t len, struct block_extent *ext)
{
    struct qcow2 *q = bd->priv;
    if (q->ext_l2)
        return map_subclusters(q, offset, len, ext);
    uint64_t in = offset & (q->cluster_size - 1);
    uint64_t want = (in + len + q->cluster_size - 1) >> q->cluster_bits;
    uint64_t entries[64];
    int n = qcow2_l2_lookup_run(q, offset, MIN(want, 64), entries);
    if (n < 0)
        return n;
    enum qcow2_cluster_type t0;
    int ret = qcow2_l2_entry_type(q, entries[0], &t0);
    if (ret < 0)
        return ret;
    uint64_t l1i = (offset >> q->cluster_bits) >> q->l2_bits;
    bool l2_owned = l1i < q->l1_size && (q->l1[l1i] & QCOW2_OFLAG_COPIED);
    uint64_t host0 = entries[0] & QCOW2_OFFSET_MASK;
    bool copied0 = (entries[0] & QCOW2_OFLAG_COPIED) && l2_owned;
    int i = 1;
    if (t0 != QCOW2_CL_COMPRESSED) {
        for (; i < n; i++) {
            enum qcow2_cluster_type t;
            if (qcow2_l2_entry_type(q, entries[i], &t) < 0 || t != t0)
                break;
            if (t0 == QCOW2_CL_NORMAL &&
                ((entries[i] & QCOW2_OFFSET_MASK) != host0 + ((uint64_t)i << q->cluster_bits) ||
                 ((entries[i] & QCOW2_OFLAG_COPIED) && l2_owned) != copied0))
                break;
        }
    }
    uint64_t length = ((uint64_t)i << q->cluster_bits) - in;
    ext->length = MIN(length, len);
    ext->writable = false;
    ext->host_offset = 0;
    switch (t0) {
    case QCOW2_CL_NORMAL:
        ext->kind = BLOCK_EXT_DATA;
        ext->host_offset = host0 + in;
        /* Writes to clusters that claim to be metadata go the slow way, which refuses them. */
        ext->writable = copied0 && !qcow2_overlaps_metadata(q, host0, (uint64_t)i
                                                                          << q->cluster_bits);
        break;
    case QCOW2_CL_ZERO:
        ext->kind = BLOCK_EXT_ZERO;
        break;
    case QCOW2_CL_UNALLOC:
        ext->kind = BLOCK_EXT_UNALLOC;
        break;
    case QCOW2_CL_COMPRESSED: {
        uint64_t off, clen;
        qcow2_compressed_range(q, entries[0], &off, &clen);
        ext->kind = BLOCK_EXT_COMPRESSED;
        ext->host_offset = off;
        break;
    }
    }
    return 0;
}

/* Read [gofs, gofs+len) from the backing chain into iov at skip; zeros past its end. */
static int read_backing(struct block_dev *bd, uint64_t gofs, const struct iovec *iov, int iovcnt,
                        uint64_t skip, uint64_t len)
{
    struct block_dev *b = bd->backing;
    uint64_t avail = 0;
    if (b && gofs < b->size)
        avail = MIN(len, b->size - gofs);
    if (avail) {
        struct iovec v[64];
        int n = iov_slice(iov, iovcnt, skip, avail, v, 64);
        if (n < 0) {
            uint8_t *tmp = malloc(avail);
            if (!tmp)
                return -ENOMEM;
            struct iovec t = {tmp, avail};
            int ret = b->ops->preadv(b, gofs, &t, 1);
            if (ret == 0)
                iov_from_buf(iov, iovcnt, skip, tmp, avail);
            free(tmp);
            if (ret < 0)
                return ret;
        } else {
            int ret = b->ops->preadv(b, gofs, v, n);
            if (ret < 0)
                return ret;
        }
    }
    if (avail < len)
        iov_memset(iov, iovcnt, skip + avail, 0, len - avail);
    return 0;
}

static int qcow2_preadv(struct block_dev *bd, uint64_t offset, const struct iovec *iov,
                        int iovcnt)
{
    struct qcow2 *q = bd->priv;
    uint64_t total = iov_len(iov, iovcnt), done = 0;
    while (done < total) {
        uint64_t gofs = offset + done;
        struct block_extent ext;
        int ret = qcow2_map(bd, gofs, total - done, &ext);
        if (ret < 0)
            return ret;
        uint64_t n = ext.length;
        switch (ext.kind) {
        case BLOCK_EXT_DATA: {
            struct iovec v[64];
            int cnt = iov_slice(iov, iovcnt, done, n, v, 64);
            if (cnt < 0) {
                n = MIN(n, q->cluster_size - (gofs & (q->cluster_size - 1)));
                uint8_t *tmp = q->dbuf;
                q->dbuf_entry = 0;
                ret = block_fd_pread(q->fd, tmp, n, ext.host_offset);
                if (ret == 0)
                    iov_from_buf(iov, iovcnt, done, tmp, n);
            } else {
                ret = block_fd_preadv(q->fd, v, cnt, ext.host_offset);
            }
            break;
        }
        case BLOCK_EXT_ZERO:
            iov_memset(iov, iovcnt, done, 0, n);
            break;
        case BLOCK_EXT_UNALLOC:
            ret = read_backing(bd, gofs, iov, iovcnt, done, n);
            break;
        case BLOCK_EXT_COMPRESSED: {
            uint64_t entry;
            ret = qcow2_l2_lookup(q, gofs, &entry);
            if (ret == 0)
                ret = qcow2_decompress_cluster(q, entry, q->dbuf);
            if (ret == 0)
                iov_from_buf(iov, iovcnt, done, q->dbuf + (gofs & (q->cluster_size - 1)),
                                   n);
            break;
        }
        }
        if (ret < 0)
            return ret;
        done += n;
    }
    return 0;
}

/* The current content of the guest cluster at cofs (cluster aligned) into buf. */
static int read_cluster(struct block_dev *bd, uint64_t cofs, uint8_t *buf)
{
    struct qcow2 *q = bd->priv;
    struct iovec v = {buf, q->cluster_size};
    uint64_t len = q->cluster_size;
    if (cofs + len > bd->size) {
        len = bd->size - cofs;
        memset(buf + len, 0, q->cluster_size - len);
        v.iov_len = len;
    }
    return qcow2_preadv(bd, cofs, &v, 1);
}

/* Write one piece that lies within one guest cluster. */
static int write_cluster_piece(struct block_dev *bd, uint64_t gofs, const struct iovec *iov,
                               int iovcnt, uint64_t skip, uint64_t n)
{
    struct qcow2 *q = bd->priv;
    uint64_t cofs = gofs & ~(q->cluster_size - 1), in = gofs - cofs;
    uint64_t entry;
    enum qcow2_cluster_type t;
    int ret = qcow2_l2_lookup(q, gofs, &entry);
    if (ret == 0)
        ret = qcow2_l2_entry_type(q, entry, &t);
    if (ret < 0)
        return ret;
    uint64_t l1i = (gofs >> q->cluster_bits) >> q->l2_bits;
    bool owned = (q->l1[l1i] & QCOW2_OFLAG_COPIED) && (entry & QCOW2_OFLAG_COPIED);
    uint64_t host = entry & QCOW2_OFFSET_MASK;
    struct iovec v[64];
    int cnt = iov_slice(iov, iovcnt, skip, n, v, 64);
    if (t == QCOW2_CL_NORMAL && qcow2_overlaps_metadata(q, host, q->cluster_size)) {
        block_set_error("qcow2: L2 entry 0x%llx points into image metadata",
                        (unsigned long long)entry);
        return -EIO;
    }
    if (t == QCOW2_CL_NORMAL && owned && cnt >= 0)
        return block_fd_pwritev(q->fd, v, cnt, host + in);

    /* Build the whole new cluster: old content (for a partial write) plus the new bytes. */
    uint8_t *buf = block_dio_alloc(q->cluster_size);
    if (!buf)
        return -ENOMEM;
    if (n < q->cluster_size) {
        ret = read_cluster(bd, cofs, buf);
        if (ret < 0)
            goto out;
    }
    iov_to_buf(iov, iovcnt, skip, buf + in, n);
    uint64_t l2_off;
    ret = qcow2_l2_prepare(q, gofs, &l2_off);
    if (ret < 0)
        goto out;
    uint64_t rc = 0;
    if (t == QCOW2_CL_ZERO && host && (entry & QCOW2_OFLAG_COPIED) &&
        qcow2_refcount_get(q, host >> q->cluster_bits, &rc) == 0 && rc == 1) {
        /* Preallocated zero cluster that is ours: fill it in place, then drop the zero flag. */
        ret = block_fd_pwrite(q->fd, buf, q->cluster_size, host);
        if (ret == 0)
            ret = qcow2_l2_set(q, l2_off, gofs, host | QCOW2_OFLAG_COPIED);
        goto out;
    }
    int64_t noff = qcow2_alloc_clusters(q, 1);
    if (noff < 0) {
        ret = (int)noff;
        goto out;
    }
    ret = block_fd_pwrite(q->fd, buf, q->cluster_size, (uint64_t)noff);
    if (ret < 0)
        goto out;
    ret = qcow2_l2_set(q, l2_off, gofs, (uint64_t)noff | QCOW2_OFLAG_COPIED);
    if (ret < 0)
        goto out;
    ret = qcow2_release_entry_later(q, entry);
out:
    free(buf);
    return ret;
}

static int qcow2_pwritev(struct block_dev *bd, uint64_t offset, const struct iovec *iov,
                         int iovcnt)
{
    struct qcow2 *q = bd->priv;
    if (q->read_only)
        return -EROFS;
    uint64_t total = iov_len(iov, iovcnt), done = 0;
    while (done < total) {
        uint64_t gofs = offset + done;
        uint64_t n = MIN(total - done, q->cluster_size - (gofs & (q->cluster_size - 1)));
        int ret = write_cluster_piece(bd, gofs, iov, iovcnt, done, n);
        if (ret < 0)
            return ret;
        done += n;
    }
    return 0;
}

static int qcow2_flush(struct block_dev *bd)
{
    struct qcow2 *q = bd->priv;
    if (q->read_only)
        return 0;
    /* Metadata in order; the ring's fdatasync that follows makes the last steps durable. */
    return qcow2_flush_metadata(q);
}

static int write_zeros(struct block_dev *bd, uint64_t offset, uint64_t len)
{
    static const uint8_t zeros[4096];
    while (len) {
        uint64_t n = MIN(len, sizeof(zeros));
        struct iovec v = {(void *)zeros, n};
        int ret = qcow2_pwritev(bd, offset, &v, 1);
        if (ret < 0)
            return ret;
        offset += n;
        len -= n;
    }
    return 0;
}

enum discard_mode { DISCARD_HINT, DISCARD_ZERO, DISCARD_UNMAP };

static int discard_cluster(struct block_dev *bd, uint64_t cofs, enum discard_mode mode)
{
    struct qcow2 *q = bd->priv;
    uint64_t entry;
    enum qcow2_cluster_type t;
    int ret = qcow2_l2_lookup(q, cofs, &entry);
    if (ret == 0)
        ret = qcow2_l2_entry_type(q, entry, &t);
    if (ret < 0)
        return ret;
    uint64_t target;
    if (mode == DISCARD_UNMAP || !bd->backing)
        target = (mode == DISCARD_ZERO && bd->backing) ? QCOW2_OFLAG_ZERO : 0;
    else
        target = QCOW2_OFLAG_ZERO;
    if (target == QCOW2_OFLAG_ZERO && q->version < 3) {
        if (mode == DISCARD_HINT)
            return 0;
        return write_zeros(bd, cofs, q->cluster_size);
    }
    if ((target == 0 && t == QCOW2_CL_UNALLOC) || (target == QCOW2_OFLAG_ZERO && entry == target))
        return 0;
    uint64_t l2_off;
    ret = qcow2_l2_prepare(q, cofs, &l2_off);
    if (ret < 0)
        return ret;
    ret = qcow2_l2_set(q, l2_off, cofs, target);
    if (ret < 0)
        return ret;
    return qcow2_release_entry_later(q, entry);
}

static int qcow2_discard_mode(struct block_dev *bd, uint64_t offset, uint64_t len,
                              enum discard_mode mode)
{
    struct qcow2 *q = bd->priv;
    if (q->read_only)
        return -EROFS;
    uint64_t end = offset + len;
    while (offset < end) {
        uint64_t cofs = offset & ~(q->cluster_size - 1);
        uint64_t cend = MIN(cofs + q->cluster_size, end);
        bool whole = offset == cofs && (cend == cofs + q->cluster_size || cend == bd->size);
        int ret = 0;
        if (whole)
            ret = discard_cluster(bd, cofs, mode);
        else if (mode == DISCARD_ZERO)
            ret = write_zeros(bd, offset, cend - offset);
        if (ret < 0)
            return ret;
        offset = cend;
    }
    return 0;
}

static int qcow2_discard(struct block_dev *bd, uint64_t offset, uint64_t len, bool zero)
{
    return qcow2_discard_mode(bd, offset, len, zero ? DISCARD_ZERO : DISCARD_HINT);
}

static int qcow2_truncate(struct block_dev *bd, uint64_t size)
{
    struct qcow2 *q = bd->priv;
    if (q->read_only)
        return -EROFS;
    if (size > (1ull << 62))
        return -EFBIG;
    uint64_t old = q->size;
    int ret;
    if (size < old) {
        if (q->nb_snapshots)
            return -ENOTSUP;
        uint64_t from = ALIGN_UP(size, q->cluster_size);
        if (from < old) {
            ret = qcow2_discard_mode(bd, from, old - from, DISCARD_UNMAP);
            if (ret < 0)
                return ret;
        }
        if (from > size && from - q->cluster_size < old) {
            /* The tail of the last cluster must read as zeros if the image grows again. */
            uint64_t zend = MIN(from, old);
            ret = write_zeros(bd, size, zend - size);
            if (ret < 0)
                return ret;
        }
    } else {
        uint64_t per_l2 = q->cluster_size << q->l2_bits;
        ret = qcow2_l1_grow(q, (size + per_l2 - 1) / per_l2);
        if (ret < 0)
            return ret;
    }
    uint8_t e[8];
    qcow2_put64(e, size);
    ret = block_fd_pwrite(q->fd, e, 8, 24);
    if (ret < 0)
        return ret;
    q->size = size;
    bd->size = size;
    if (size > old && bd->backing && bd->backing->size > old) {
        /* Do not let the backing file show through the newly added space. */
        ret = qcow2_discard_mode(bd, old, MIN(size, bd->backing->size) - old, DISCARD_ZERO);
    }
    return ret;
}

const struct block_ops block_qcow2_ops = {
    .name = "qcow2",
    .open = qcow2_open,
    .close = qcow2_close,
    .map = qcow2_map,
    .preadv = qcow2_preadv,
    .pwritev = qcow2_pwritev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .truncate = qcow2_truncate,
};
