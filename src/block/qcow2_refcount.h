/* qcow2 reference counts and cluster allocation. Increments are written through to the file
 * before returning, so a caller may rely on them in the next step; decrements of clusters
 * still named by on-disk tables are queued until a metadata flush. */
#ifndef VIREO_BLOCK_QCOW2_REFCOUNT_H
#define VIREO_BLOCK_QCOW2_REFCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "block/qcow2.h"

/* Reference count of host cluster index ci (0 for clusters no refcount block covers). */
int qcow2_refcount_get(struct qcow2 *q, uint64_t ci, uint64_t *rc);
/* Add delta to cluster ci's refcount, allocating a refcount block (or growing the table) if
 * needed. Underflow and overflow are -EIO / -ERANGE. */
int qcow2_refcount_update(struct qcow2 *q, uint64_t ci, int64_t delta);
/* Set cluster ci's refcount to value (check's repair). */
int qcow2_refcount_set(struct qcow2 *q, uint64_t ci, uint64_t value);
/* Allocate n contiguous free clusters, refcount 1 each; returns the host offset or -errno. */
int64_t qcow2_alloc_clusters(struct qcow2 *q, uint64_t n);
/* Drop one reference to each of the n clusters at offset (freed clusters may be reused). */
int qcow2_free_clusters(struct qcow2 *q, uint64_t offset, uint64_t n);
/* Drop the references a compressed L2 entry holds. */
int qcow2_free_compressed(struct qcow2 *q, uint64_t l2_entry);
/* Queue dropping one reference to each of n clusters at offset until the next metadata flush
 * (the tables that stopped using them must be durable first). */
int qcow2_free_clusters_later(struct qcow2 *q, uint64_t offset, uint64_t n);
/* Queue dropping what an L2 entry (normal, zero-with-offset or compressed) references. */
int qcow2_release_entry_later(struct qcow2 *q, uint64_t l2_entry);
/* Make everything durable in order: fdatasync, dirty L2/L1 entries, fdatasync, then the queued
 * reference drops (written through; durable at the next flush). */
int qcow2_flush_metadata(struct qcow2 *q);
/* Whether host range [off, off+len) touches the header cluster, the active L1 table or the
 * refcount table: guest data must never land there, whatever the tables say. */
bool qcow2_overlaps_metadata(const struct qcow2 *q, uint64_t off, uint64_t len);
/* Largest refcount representable with the image's refcount width. */
uint64_t qcow2_refcount_max(const struct qcow2 *q);

#endif
