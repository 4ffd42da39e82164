/* A small LRU cache of cluster-sized qcow2 tables (L2 tables, refcount blocks), in file byte
 * order. Refcount blocks are written through by the caller; L2 tables may be marked dirty and
 * are then written by qcow2_cache_writeback() (at a flush) or when evicted, after an fdatasync
 * that makes what they reference durable first. */
#ifndef VIREO_BLOCK_QCOW2_CACHE_H
#define VIREO_BLOCK_QCOW2_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "block/qcow2.h"

/* nslots tables of q->cluster_size bytes each. */
int qcow2_cache_init(struct qcow2_cache *c, unsigned nslots, uint64_t cluster_size);
void qcow2_cache_free(struct qcow2_cache *c);
/* The table at offset, read from the file on a miss. The pointer stays valid until the next
 * qcow2_cache_* call on the same cache. */
int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t offset, uint8_t **out);
/* A zero-filled slot for a table just allocated at offset (not read from the file); NULL if a
 * dirty table could not be evicted. */
uint8_t *qcow2_cache_get_new(struct qcow2 *q, struct qcow2_cache *c, uint64_t offset);
/* Forget the table at offset (its cluster was freed), dirty or not. */
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset);
/* The cached table at offset has changes not yet in the file. */
void qcow2_cache_mark_dirty(struct qcow2_cache *c, uint64_t offset);
/* Write every dirty table (no fdatasync: the caller orders that). */
int qcow2_cache_writeback(struct qcow2 *q, struct qcow2_cache *c);
bool qcow2_cache_any_dirty(const struct qcow2_cache *c);

#endif
