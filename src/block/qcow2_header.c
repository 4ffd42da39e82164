/* qcow2 header parsing and writing. Everything here comes from an untrusted file: each field is
 * range-checked before it sizes an allocation or a read. */
#include "block/qcow2_header.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"

int qcow2_check_range(const struct qcow2 *q, uint64_t offset, uint64_t len, uint64_t limit)
{
    if (offset & (q->cluster_size - 1))
        return -EINVAL;
    if (offset < q->cluster_size)
        return -EINVAL;
    if (offset > limit || len > limit - offset)
        return -EINVAL;
    return 0;
}

static void feature_name(const struct qcow2 *q, int type, int bit, char *out, size_t n)
{
    for (unsigned i = 0; i < q->n_exts; i++) {
        const struct qcow2_ext *e = &q->exts[i];
        if (e->type != QCOW2_EXT_FEATURE_TABLE)
            continue;
        for (uint32_t off = 0; off + 48 <= e->len; off += 48) {
            if (e->data[off] == type && e->data[off + 1] == bit) {
                snprintf(out, n, "%.46s", (const char *)e->data + off + 2);
                return;
            }
        }
    }
    snprintf(out, n, "bit %d", bit);
}

static int load_exts(struct qcow2 *q, const uint8_t *hdr, uint64_t hdr_len, uint64_t start)
{
    /* Extensions end at the backing name if it sits inside the first cluster. */
    uint64_t end = hdr_len;
    if (q->backing_offset && q->backing_offset < end)
        end = q->backing_offset;
    uint64_t off = start;
    while (off + 8 <= end) {
        uint32_t type = qcow2_be32(hdr + off);
        uint32_t len = qcow2_be32(hdr + off + 4);
        off += 8;
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > end - off) {
            block_set_error("header extension 0x%08x overruns the header cluster", type);
            return -EINVAL;
        }
        const uint8_t *data = hdr + off;
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            if (len > 63 || q->backing_format) {
                block_set_error("invalid backing format header extension");
                return -EINVAL;
            }
            q->backing_format = strndup((const char *)data, len);
            if (!q->backing_format)
                return -ENOMEM;
        } else {
            if (q->n_exts >= 64) {
                block_set_error("too many header extensions");
                return -EINVAL;
            }
            struct qcow2_ext *n = realloc(q->exts, (q->n_exts + 1) * sizeof(*n));
            if (!n)
                return -ENOMEM;
            q->exts = n;
            struct qcow2_ext *e = &q->exts[q->n_exts];
            e->type = type;
            e->len = len;
            e->data = malloc(len ? len : 1);
            if (!e->data)
                return -ENOMEM;
            memcpy(e->data, data, len);
            q->n_exts++;
            if (type == QCOW2_EXT_BITMAPS)
                q->has_bitmaps = true;
        }
        uint64_t padded = ALIGN_UP((uint64_t)len, 8);
        if (padded > end - off)
            break;
        off += padded;
    }
    return 0;
}

static int load_snapshots(struct qcow2 *q, uint64_t limit)
{
    if (q->nb_snapshots == 0)
        return 0;
    if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        block_set_error("too many internal snapshots (%u)", q->nb_snapshots);
        return -EINVAL;
    }
    if (qcow2_check_range(q, q->snapshots_offset, 0, limit) < 0) {
        block_set_error("snapshot table offset 0x%llx is invalid",
                        (unsigned long long)q->snapshots_offset);
        return -EINVAL;
    }
    q->snapshots = calloc(q->nb_snapshots, sizeof(*q->snapshots));
    if (!q->snapshots)
        return -ENOMEM;
    uint64_t off = q->snapshots_offset;
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        uint8_t h[40];
        if (off + sizeof(h) > limit || block_fd_pread(q->fd, h, sizeof(h), off) < 0) {
            block_set_error("snapshot table extends beyond the end of the file");
            return -EINVAL;
        }
        struct qcow2_snapshot *s = &q->snapshots[i];
        s->l1_offset = qcow2_be64(h);
        s->l1_size = qcow2_be32(h + 8);
        uint16_t id_len = qcow2_be16(h + 12), name_len = qcow2_be16(h + 14);
        s->date_sec = qcow2_be32(h + 16);
        s->date_nsec = qcow2_be32(h + 20);
        s->vm_clock_nsec = qcow2_be64(h + 24);
        s->vm_state_size = qcow2_be32(h + 32);
        uint32_t extra_len = qcow2_be32(h + 36);
        s->disk_size = q->size;
        s->icount = UINT64_MAX;
        if (extra_len > 1024) {
            block_set_error("snapshot %u has an oversized extra data field", i);
            return -EINVAL;
        }
        uint64_t entry_len = 40 + (uint64_t)extra_len + id_len + name_len;
        if (off + entry_len > limit) {
            block_set_error("snapshot table extends beyond the end of the file");
            return -EINVAL;
        }
        uint8_t *rest = malloc(entry_len - 40 + 1);
        if (!rest)
            return -ENOMEM;
        if (block_fd_pread(q->fd, rest, entry_len - 40, off + 40) < 0) {
            free(rest);
            return -EIO;
        }
        if (extra_len >= 8)
            s->vm_state_size = qcow2_be64(rest);
        if (extra_len >= 16)
            s->disk_size = qcow2_be64(rest + 8);
        if (extra_len >= 24)
            s->icount = qcow2_be64(rest + 16);
        s->id = strndup((char *)rest + extra_len, id_len);
        s->name = strndup((char *)rest + extra_len + id_len, name_len);
        free(rest);
        if (!s->id || !s->name)
            return -ENOMEM;
        if (s->l1_size > QCOW2_MAX_L1_BYTES / 8 ||
            qcow2_check_range(q, s->l1_offset, (uint64_t)s->l1_size * 8, limit) < 0) {
            block_set_error("snapshot '%s' has an invalid L1 table", s->name);
            return -EINVAL;
        }
        off += ALIGN_UP(entry_len, 8);
    }
    q->snapshots_size = off - q->snapshots_offset;
    return 0;
}

static int load_table(struct qcow2 *q, uint64_t offset, uint64_t entries, uint64_t **out)
{
    uint64_t *t = calloc(entries ? entries : 1, 8);
    if (!t)
        return -ENOMEM;
    if (entries && block_fd_pread(q->fd, t, entries * 8, offset) < 0) {
        free(t);
        return -EIO;
    }
    for (uint64_t i = 0; i < entries; i++)
        t[i] = qcow2_be64((uint8_t *)&t[i]);
    *out = t;
    return 0;
}

int qcow2_header_load(struct qcow2 *q, const char *filename)
{
    (void)filename;
    struct stat st;
    if (fstat(q->fd, &st) < 0)
        return -errno;
    q->file_size = (uint64_t)st.st_size;
    uint8_t h[104] = {0};
    if (q->file_size < 72 || block_fd_pread(q->fd, h, sizeof(h), 0) < 0) {
        block_set_error("image is too short to hold a qcow2 header");
        return -EINVAL;
    }
    if (qcow2_be32(h) != QCOW2_MAGIC) {
        block_set_error("not a qcow2 image (bad magic)");
        return -EINVAL;
    }
    q->version = qcow2_be32(h + 4);
    if (q->version != 2 && q->version != 3) {
        block_set_error("unsupported qcow2 version %u", q->version);
        return -ENOTSUP;
    }
    q->backing_offset = qcow2_be64(h + 8);
    q->backing_len = qcow2_be32(h + 16);
    q->cluster_bits = qcow2_be32(h + 20);
    q->size = qcow2_be64(h + 24);
    uint32_t crypt = qcow2_be32(h + 32);
    q->l1_size = qcow2_be32(h + 36);
    q->l1_offset = qcow2_be64(h + 40);
    q->rt_offset = qcow2_be64(h + 48);
    q->rt_clusters = qcow2_be32(h + 56);
    q->nb_snapshots = qcow2_be32(h + 60);
    q->snapshots_offset = qcow2_be64(h + 64);
    q->refcount_order = 4;
    q->header_length = 72;
    if (q->version == 3) {
        if (q->file_size < 104) {
            block_set_error("image is too short to hold a qcow2 v3 header");
            return -EINVAL;
        }
        q->incompat = qcow2_be64(h + 72);
        q->compat = qcow2_be64(h + 80);
        q->autoclear = qcow2_be64(h + 88);
        q->refcount_order = qcow2_be32(h + 96);
        q->header_length = qcow2_be32(h + 100);
    }
    if (q->cluster_bits < QCOW2_MIN_CLUSTER_BITS || q->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        block_set_error("cluster size 2^%u is out of range (512 B to 2 MiB)", q->cluster_bits);
        return -EINVAL;
    }
    q->cluster_size = 1ull << q->cluster_bits;
    if (q->version == 3 &&
        (q->header_length < 104 || q->header_length % 8 || q->header_length > q->cluster_size)) {
        block_set_error("invalid header length %u", q->header_length);
        return -EINVAL;
    }
    if (q->refcount_order > 6) {
        block_set_error("refcount order %u is out of range (0-6)", q->refcount_order);
        return -EINVAL;
    }
    if (crypt != 0) {
        block_set_error("encrypted qcow2 images are not supported");
        return -ENOTSUP;
    }

    uint64_t hdr_len = MIN(q->cluster_size, q->file_size);
    uint8_t *hdr = calloc(1, q->cluster_size);
    if (!hdr)
        return -ENOMEM;
    int ret = block_fd_pread(q->fd, hdr, hdr_len, 0);
    if (ret < 0)
        goto out;
    if (q->version == 3 && q->header_length > 104)
        q->compression_type = hdr[104];
    ret = -EINVAL;
    if (q->backing_offset) {
        if (q->backing_len > QCOW2_MAX_BACKING_NAME || q->backing_len == 0 ||
            q->backing_offset > hdr_len || q->backing_len > hdr_len - q->backing_offset ||
            q->backing_offset < q->header_length) {
            block_set_error("backing file name is out of bounds");
            goto out;
        }
        q->backing_name = strndup((char *)hdr + q->backing_offset, q->backing_len);
        if (!q->backing_name || strlen(q->backing_name) != q->backing_len) {
            block_set_error("backing file name is invalid");
            goto out;
        }
    }
    ret = load_exts(q, hdr, hdr_len, q->header_length);
    if (ret < 0)
        goto out;
    ret = -ENOTSUP;
    uint64_t unknown = q->incompat & ~QCOW2_INCOMPAT_KNOWN;
    if (unknown) {
        char name[64];
        feature_name(q, 0, __builtin_ctzll(unknown), name, sizeof(name));
        block_set_error("unsupported incompatible feature: %s", name);
        goto out;
    }
    if (q->incompat & QCOW2_INCOMPAT_DATA_FILE) {
        block_set_error("unsupported incompatible feature: external data file");
        goto out;
    }
    if (q->incompat & QCOW2_INCOMPAT_EXTL2) {
        q->ext_l2 = true;
        if (q->cluster_bits < 14) {
            block_set_error("extended L2 entries need clusters of at least 16 KiB");
            ret = -EINVAL;
            goto out;
        }
    }
    if (q->incompat & QCOW2_INCOMPAT_COMPRESSION) {
        if (q->compression_type != QCOW2_COMPRESS_ZSTD) {
            block_set_error("unsupported compression type %u", q->compression_type);
            goto out;
        }
    } else if (q->compression_type != QCOW2_COMPRESS_ZLIB) {
        block_set_error("compression type %u set without its feature bit", q->compression_type);
        ret = -EINVAL;
        goto out;
    }

    ret = -EINVAL;
    q->l2_entry_size = q->ext_l2 ? 16 : 8;
    q->l2_bits = q->cluster_bits - (q->ext_l2 ? 4 : 3);
    q->l2_entries = 1ull << q->l2_bits;
    q->rb_bits = q->cluster_bits + 3 - q->refcount_order;
    q->rb_entries = 1ull << q->rb_bits;
    if (q->size > (1ull << 62)) {
        block_set_error("virtual size %llu is too large", (unsigned long long)q->size);
        goto out;
    }
    uint64_t per_l2 = q->cluster_size << q->l2_bits;
    uint64_t l1_needed = (q->size + per_l2 - 1) / per_l2;
    if (q->l1_size > QCOW2_MAX_L1_BYTES / 8 || l1_needed > q->l1_size) {
        block_set_error("L1 table size %u does not fit the virtual size", q->l1_size);
        goto out;
    }
    if (q->l1_size &&
        qcow2_check_range(q, q->l1_offset, (uint64_t)q->l1_size * 8, q->file_size) < 0) {
        block_set_error("L1 table offset 0x%llx is invalid or beyond the end of the file",
                        (unsigned long long)q->l1_offset);
        goto out;
    }
    if (q->rt_clusters == 0 || (uint64_t)q->rt_clusters * q->cluster_size > QCOW2_MAX_RT_BYTES ||
        qcow2_check_range(q, q->rt_offset, (uint64_t)q->rt_clusters << q->cluster_bits,
                          q->file_size) < 0) {
        block_set_error("refcount table offset 0x%llx is invalid or beyond the end of the file",
                        (unsigned long long)q->rt_offset);
        goto out;
    }
    uint64_t rt_bytes = (uint64_t)q->rt_clusters << q->cluster_bits;
    if (q->l1_size && q->l1_offset < q->rt_offset + rt_bytes &&
        q->rt_offset < q->l1_offset + (uint64_t)q->l1_size * 8) {
        block_set_error("L1 table overlaps the refcount table");
        goto out;
    }
    q->rt_entries = rt_bytes / 8;
    ret = load_table(q, q->l1_offset, q->l1_size, &q->l1);
    if (ret < 0)
        goto out;
    ret = load_table(q, q->rt_offset, q->rt_entries, &q->rt);
    if (ret < 0)
        goto out;
    ret = load_snapshots(q, q->file_size);
out:
    free(hdr);
    return ret;
}

int qcow2_header_build(const struct qcow2 *q, uint8_t *buf, size_t len)
{
    if (len < 104)
        return -ENOSPC;
    qcow2_put32(buf, QCOW2_MAGIC);
    qcow2_put32(buf + 4, q->version);
    qcow2_put32(buf + 20, q->cluster_bits);
    qcow2_put64(buf + 24, q->size);
    qcow2_put32(buf + 36, q->l1_size);
    qcow2_put64(buf + 40, q->l1_offset);
    qcow2_put64(buf + 48, q->rt_offset);
    qcow2_put32(buf + 56, q->rt_clusters);
    qcow2_put32(buf + 60, q->nb_snapshots);
    qcow2_put64(buf + 64, q->snapshots_offset);
    size_t off = 72;
    if (q->version == 3) {
        qcow2_put64(buf + 72, q->incompat);
        qcow2_put64(buf + 80, q->compat);
        qcow2_put64(buf + 88, q->autoclear);
        qcow2_put32(buf + 96, q->refcount_order);
        uint32_t hl = q->header_length < 104 ? 104 : q->header_length;
        if (hl > len)
            return -ENOSPC;
        qcow2_put32(buf + 100, hl);
        if (hl > 104)
            buf[104] = q->compression_type;
        off = hl;
    }
    if (q->backing_format) {
        size_t n = strlen(q->backing_format);
        if (off + 8 + ALIGN_UP(n, 8) > len)
            return -ENOSPC;
        qcow2_put32(buf + off, QCOW2_EXT_BACKING_FORMAT);
        qcow2_put32(buf + off + 4, (uint32_t)n);
        memcpy(buf + off + 8, q->backing_format, n);
        off += 8 + ALIGN_UP(n, 8);
    }
    for (unsigned i = 0; i < q->n_exts; i++) {
        const struct qcow2_ext *e = &q->exts[i];
        if (off + 8 + ALIGN_UP((size_t)e->len, 8) > len)
            return -ENOSPC;
        qcow2_put32(buf + off, e->type);
        qcow2_put32(buf + off + 4, e->len);
        memcpy(buf + off + 8, e->data, e->len);
        off += 8 + ALIGN_UP((size_t)e->len, 8);
    }
    if (off + 8 > len)
        return -ENOSPC;
    off += 8; /* end-of-extensions marker: zeros */
    if (q->backing_name) {
        size_t n = strlen(q->backing_name);
        if (off + n > len)
            return -ENOSPC;
        memcpy(buf + off, q->backing_name, n);
        qcow2_put64(buf + 8, off);
        qcow2_put32(buf + 16, (uint32_t)n);
    }
    return 0;
}

int qcow2_header_write(struct qcow2 *q)
{
    uint8_t *buf = calloc(1, q->cluster_size);
    if (!buf)
        return -ENOMEM;
    int ret = qcow2_header_build(q, buf, q->cluster_size);
    if (ret == 0)
        ret = block_fd_pwrite(q->fd, buf, q->cluster_size, 0);
    free(buf);
    return ret;
}

void qcow2_header_free(struct qcow2 *q)
{
    free(q->l1);
    free(q->rt);
    free(q->backing_name);
    free(q->backing_format);
    for (unsigned i = 0; i < q->n_exts; i++)
        free(q->exts[i].data);
    free(q->exts);
    for (uint32_t i = 0; q->snapshots && i < q->nb_snapshots; i++) {
        free(q->snapshots[i].id);
        free(q->snapshots[i].name);
    }
    free(q->snapshots);
    q->l1 = q->rt = NULL;
    q->exts = NULL;
    q->snapshots = NULL;
}
