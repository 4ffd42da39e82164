/* qcow2 header: parsing and validating everything in the first cluster (header, extensions,
 * backing name) plus the tables it points to (L1, refcount table, snapshot table); writing it. */
#ifndef VIREO_BLOCK_QCOW2_HEADER_H
#define VIREO_BLOCK_QCOW2_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "block/qcow2.h"

static inline uint16_t qcow2_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t qcow2_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t qcow2_be64(const uint8_t *p)
{
    return (uint64_t)qcow2_be32(p) << 32 | qcow2_be32(p + 4);
}
static inline void qcow2_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void qcow2_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline void qcow2_put64(uint8_t *p, uint64_t v)
{
    qcow2_put32(p, (uint32_t)(v >> 32));
    qcow2_put32(p + 4, (uint32_t)v);
}

/* Parse and validate the header of q->fd, then load the L1 table, the refcount table and the
 * snapshot table. On failure sets block_last_error() to one line naming the problem. */
int qcow2_header_load(struct qcow2 *q, const char *filename);

/* Serialize the header, extensions and backing name into buf (cluster_size bytes, zeroed by the
 * caller). Returns 0, or -ENOSPC if they do not fit in the first cluster. */
int qcow2_header_build(const struct qcow2 *q, uint8_t *buf, size_t len);

/* Rewrite the whole first cluster from q (one pwrite, so a kill leaves the old or new one). */
int qcow2_header_write(struct qcow2 *q);

/* Free what qcow2_header_load allocated. */
void qcow2_header_free(struct qcow2 *q);

/* Bounds check shared by all parsers: [offset, offset+len) is cluster aligned at offset, does not
 * wrap, does not touch the header cluster and ends within limit. */
int qcow2_check_range(const struct qcow2 *q, uint64_t offset, uint64_t len, uint64_t limit);

#endif
