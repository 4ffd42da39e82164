/* qcow2 operations on a whole image rather than on guest requests: creating an image,
 * emptying it (commit), changing its backing file (rebase), and compressed writes (convert -c).
 * Declared in block/qcow2.h. */
#include "block/qcow2_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2_compress.h"
#include "block/qcow2_header.h"
#include "block/qcow2_l2.h"
#include "block/qcow2_refcount.h"
#include "util/err.h"

int qcow2_make_empty(struct block_dev *bd)
{
    struct qcow2 *q = bd->priv;
    if (q->read_only)
        return -EROFS;
    uint64_t *entries = malloc(q->l2_entries * 8);
    if (!entries)
        return -ENOMEM;
    int ret = 0;
    for (uint64_t l1i = 0; l1i < q->l1_size && ret == 0; l1i++) {
        uint64_t l2_off;
        ret = qcow2_l1_entry_offset(q, q->l1[l1i], &l2_off);
        if (ret < 0 || !l2_off)
            continue;
        ret = qcow2_l2_lookup_run(q, (l1i << q->l2_bits) << q->cluster_bits, q->l2_entries,
                                  entries);
        if (ret < 0)
            break;
        /* Unhook the table first, then drop what it referenced: a kill leaks, never corrupts. */
        uint8_t z[8] = {0};
        ret = block_fd_pwrite(q->fd, z, 8, q->l1_offset + l1i * 8);
        if (ret < 0)
            break;
        q->l1[l1i] = 0;
        for (uint64_t i = 0; i < q->l2_entries && ret == 0; i++)
            ret = qcow2_release_entry_later(q, entries[i]);
        if (ret == 0)
            ret = qcow2_free_clusters_later(q, l2_off, 1);
    }
    free(entries);
    if (ret == 0)
        ret = qcow2_flush_metadata(q);
    return ret;
}

int qcow2_set_backing(struct block_dev *bd, const char *name, const char *format)
{
    struct qcow2 *q = bd->priv;
    if (bd->ops != &block_qcow2_ops)
        return -ENOTSUP;
    char *n = name ? strdup(name) : NULL;
    char *f = format ? strdup(format) : NULL;
    if ((name && !n) || (format && !f)) {
        free(n);
        free(f);
        return -ENOMEM;
    }
    free(q->backing_name);
    free(q->backing_format);
    q->backing_name = n;
    q->backing_format = name ? f : NULL;
    if (!name)
        free(f);
    if (!name) {
        q->backing_offset = 0;
        q->backing_len = 0;
    }
    return qcow2_header_write(q);
}

int qcow2_write_compressed(struct block_dev *bd, uint64_t offset, const void *data, uint64_t len)
{
    struct qcow2 *q = bd->priv;
    uint64_t cs = q->cluster_size;
    if ((offset & (cs - 1)) || len > cs || offset >= bd->size)
        return -EINVAL;
    uint8_t *in = calloc(1, cs);
    if (!in)
        return -ENOMEM;
    memcpy(in, data, len);
    int64_t clen = qcow2_compress_cluster(in, cs, q->cbuf, cs - 1);
    free(in);
    if (clen <= 0)
        return clen < 0 ? (int)clen : 1;
    uint64_t entry;
    int ret = qcow2_l2_lookup(q, offset, &entry);
    if (ret < 0)
        return ret;
    uint64_t l2_off;
    ret = qcow2_l2_prepare(q, offset, &l2_off);
    if (ret < 0)
        return ret;
    /* Pack compressed clusters back to back inside one host cluster; each user of a host
     * cluster holds one reference to it. */
    uint64_t at = q->cwrite_offset;
    if (!at || (at & (cs - 1)) + (uint64_t)clen > cs) {
        int64_t c = qcow2_alloc_clusters(q, 1);
        if (c < 0)
            return (int)c;
        at = (uint64_t)c;
    } else {
        ret = qcow2_refcount_update(q, at >> q->cluster_bits, 1);
        if (ret < 0)
            return ret;
    }
    ret = block_fd_pwrite(q->fd, q->cbuf, (size_t)clen, at);
    if (ret < 0)
        return ret;
    uint64_t extra = (at + (uint64_t)clen - 1) / 512 - at / 512;
    unsigned shift = 62 - (q->cluster_bits - 8);
    ret = qcow2_l2_set(q, l2_off, offset, QCOW2_OFLAG_COMPRESSED | extra << shift | at);
    if (ret < 0)
        return ret;
    q->cwrite_offset = at + (uint64_t)clen;
    if ((q->cwrite_offset & (cs - 1)) == 0)
        q->cwrite_offset = 0;
    return qcow2_release_entry_later(q, entry);
}

int qcow2_create(const char *path, const struct block_create_opts *opts)
{
    uint64_t cs = opts->cluster_size ? opts->cluster_size : 65536;
    int rbits = opts->refcount_bits ? opts->refcount_bits : 16;
    if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1))) {
        block_set_error("cluster size must be a power of two between 512 and 2M");
        return -EINVAL;
    }
    if (rbits < 1 || rbits > 64 || (rbits & (rbits - 1))) {
        block_set_error("refcount bits must be a power of two between 1 and 64");
        return -EINVAL;
    }
    if (opts->compat_v2 && (rbits != 16 || opts->lazy_refcounts)) {
        block_set_error("compat=0.10 images need 16 refcount bits and no lazy refcounts");
        return -EINVAL;
    }
    if (opts->backing && strlen(opts->backing) > QCOW2_MAX_BACKING_NAME) {
        block_set_error("backing file name is too long");
        return -EINVAL;
    }
    if (opts->size > (1ull << 62)) {
        block_set_error("image size too large");
        return -EFBIG;
    }
    struct qcow2 q = {0};
    q.version = opts->compat_v2 ? 2 : 3;
    q.cluster_bits = (uint32_t)__builtin_ctzll(cs);
    q.cluster_size = cs;
    q.rt_offset = cs;
    q.rt_clusters = 1;
    q.refcount_order = (uint32_t)__builtin_ctz((unsigned)rbits);
    q.header_length = q.version == 3 ? 112 : 72;
    q.compat = opts->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0;
    q.backing_name = (char *)opts->backing;
    q.backing_format = (char *)(opts->backing ? opts->backing_format : NULL);
    uint8_t *buf = calloc(3, cs);
    if (!buf)
        return -ENOMEM;
    int ret = qcow2_header_build(&q, buf, cs);
    if (ret < 0) {
        free(buf);
        block_set_error("backing file name does not fit in the header cluster");
        return ret;
    }
    qcow2_put64(buf + cs, 2 * cs);
    /* The refcount block describes the header, the table and itself. */
    q.rb_bits = q.cluster_bits + 3 - q.refcount_order;
    for (int i = 0; i < 3; i++) {
        uint8_t *blk = buf + 2 * cs;
        unsigned bits = (unsigned)rbits;
        if (bits < 8)
            blk[(i * bits) / 8] |= (uint8_t)(1u << ((i * bits) % 8));
        else
            blk[i * (bits / 8) + bits / 8 - 1] = 1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ret = -errno;
        free(buf);
        block_set_error("could not create '%s': %s", path, strerror(-ret));
        return ret;
    }
    ret = block_fd_pwrite(fd, buf, 3 * cs, 0);
    close(fd);
    free(buf);
    if (ret < 0) {
        block_set_error("could not write '%s': %s", path, strerror(-ret));
        return ret;
    }
    struct block_dev *bd;
    struct block_open_opts oo = {.format = "qcow2",
                                 .flags = BLOCK_OPEN_RDWR | BLOCK_OPEN_NO_BACKING};
    ret = block_open(path, &oo, &bd);
    if (ret < 0)
        return ret;
    /* Sizes are whole 512-byte sectors, as QEMU (which rounds down otherwise) sees them. */
    ret = block_truncate(bd, ALIGN_UP(opts->size, 512));
    if (ret < 0)
        block_set_error("could not size '%s': %s", path, strerror(-ret));
    block_close(bd);
    return ret;
}
