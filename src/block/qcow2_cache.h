/* A cache of cluster-sized qcow2 tables (L2 tables, refcount blocks), in file byte order, with
 * O(1) lookup (hash on the table's offset) and least-recently-used eviction. Refcount blocks are
 * written through by the caller; L2 tables may be marked dirty and are then written by
 * qcow2_cache_writeback() (at a flush) or when evicted, after an fdatasync that makes what they
 * reference durable first.
 *
 * The L2 cache is sized by default to hold every L2 table of the image (one per L1 entry) up to
 * QCOW2_L2_CACHE_DEFAULT_MAX bytes, as QEMU does on Linux: then a random access anywhere in the
 * image finds its table in memory after the first touch, instead of re-reading a whole cluster
 * per request once the working set passes a fixed-size cache. The memory is reserved, not
 * committed: slots never used cost nothing. */
#ifndef VIREO_BLOCK_QCOW2_CACHE_H
#define VIREO_BLOCK_QCOW2_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "block/qcow2.h"

#define QCOW2_L2_CACHE_DEFAULT_MAX (32ull << 20)
#define QCOW2_CACHE_MAX_SLOTS 65536u

/* nslots (at least 2, at most QCOW2_CACHE_MAX_SLOTS) tables of table_size bytes each. */
int qcow2_cache_init(struct qcow2_cache *c, unsigned nslots, uint64_t table_size);
/* Release the cache (safe on a zeroed or already freed one). Dirty tables are not written. */
void qcow2_cache_free(struct qcow2_cache *c);
/* How many L2 slots to use: requested bytes if non-zero, else enough for all l1_size tables up
 * to QCOW2_L2_CACHE_DEFAULT_MAX; always within [4, QCOW2_CACHE_MAX_SLOTS]. */
unsigned qcow2_cache_slots_for(uint64_t l1_size, uint64_t table_size, uint64_t requested);
/* The table at offset (non-zero), read from the file on a miss, which evicts the least recently
 * used table. The pointer stays valid until the next qcow2_cache_* call on the same cache. */
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
/* Whether the table at offset is in the cache (tests and diagnostics; does not touch the LRU). */
bool qcow2_cache_contains(const struct qcow2_cache *c, uint64_t offset);

#endif
