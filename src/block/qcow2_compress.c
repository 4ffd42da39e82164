/* Compressed qcow2 clusters. Images written by QEMU use raw deflate with a 4 KiB window (zlib)
 * or a zstd frame; in both the stored sectors may hold trailing bytes of the next cluster, so
 * decompression stops as soon as one cluster has been produced. */
#include "block/qcow2_compress.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

void qcow2_compressed_range(const struct qcow2 *q, uint64_t l2_entry, uint64_t *off,
                            uint64_t *len)
{
    unsigned shift = 62 - (q->cluster_bits - 8);
    uint64_t offset = l2_entry & ((1ull << shift) - 1);
    uint64_t sectors = ((l2_entry >> shift) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
    *off = offset;
    *len = sectors * 512 - (offset & 511);
}

static int inflate_cluster(const uint8_t *in, uint64_t in_len, uint8_t *out, uint64_t out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -12) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    int ret = inflate(&z, Z_FINISH);
    uint64_t produced = out_len - z.avail_out;
    inflateEnd(&z);
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) && produced == out_len)
        return 0;
    return -EIO;
}

static int zstd_cluster(const uint8_t *in, uint64_t in_len, uint8_t *out, uint64_t out_len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx)
        return -ENOMEM;
    ZSTD_inBuffer ib = {in, in_len, 0};
    ZSTD_outBuffer ob = {out, out_len, 0};
    int ret = -EIO;
    while (ob.pos < ob.size) {
        size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(r))
            break;
        if (r == 0 || ib.pos == ib.size) /* frame ended or input exhausted */
            break;
    }
    if (ob.pos == out_len)
        ret = 0;
    ZSTD_freeDCtx(dctx);
    return ret;
}

int qcow2_decompress_cluster(struct qcow2 *q, uint64_t l2_entry, uint8_t *out)
{
    if (q->dbuf_entry == l2_entry && l2_entry) {
        memcpy(out, q->dbuf, q->cluster_size);
        return 0;
    }
    uint64_t off, len;
    qcow2_compressed_range(q, l2_entry, &off, &len);
    if (off >= q->file_size || off < q->cluster_size)
        return -EIO;
    if (len > q->file_size - off)
        len = q->file_size - off; /* the last sectors may run past the end of the file */
    int ret = block_fd_pread(q->fd, q->cbuf, len, off);
    if (ret < 0)
        return ret;
    if (q->compression_type == QCOW2_COMPRESS_ZSTD)
        ret = zstd_cluster(q->cbuf, len, q->dbuf, q->cluster_size);
    else
        ret = inflate_cluster(q->cbuf, len, q->dbuf, q->cluster_size);
    if (ret < 0) {
        q->dbuf_entry = 0;
        return ret;
    }
    q->dbuf_entry = l2_entry;
    memcpy(out, q->dbuf, q->cluster_size);
    return 0;
}

int64_t qcow2_compress_cluster(const uint8_t *in, uint64_t len, uint8_t *out, uint64_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int ret = deflate(&z, Z_FINISH);
    int64_t n = (int64_t)(cap - z.avail_out);
    deflateEnd(&z);
    return ret == Z_STREAM_END ? n : 0;
}
