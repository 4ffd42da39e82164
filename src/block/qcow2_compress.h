/* qcow2 compressed clusters: decoding the descriptor, decompressing (zlib, zstd) and
 * compressing (zlib) one cluster. */
#ifndef VIREO_BLOCK_QCOW2_COMPRESS_H
#define VIREO_BLOCK_QCOW2_COMPRESS_H

#include <stdint.h>

#include "block/qcow2.h"

/* Host byte range [*off, *off + *len) holding a compressed cluster's data (512-byte sectors). */
void qcow2_compressed_range(const struct qcow2 *q, uint64_t l2_entry, uint64_t *off,
                            uint64_t *len);
/* Read and decompress the cluster of l2_entry into out (cluster_size bytes). A stream that does
 * not produce exactly one cluster is -EIO. */
int qcow2_decompress_cluster(struct qcow2 *q, uint64_t l2_entry, uint8_t *out);
/* Compress one cluster with raw deflate into out (capacity cap). Returns the compressed length,
 * or 0 if it does not fit in cap. */
int64_t qcow2_compress_cluster(const uint8_t *in, uint64_t len, uint8_t *out, uint64_t cap);

#endif
