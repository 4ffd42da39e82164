/* qcow2 guest-to-host mapping: L1/L2 lookups with validation, L2 allocation and copy-on-write of
 * shared L2 tables, and L1 growth. */
#ifndef VIREO_BLOCK_QCOW2_L2_H
#define VIREO_BLOCK_QCOW2_L2_H

#include <stdint.h>

#include "block/qcow2.h"

enum qcow2_cluster_type {
    QCOW2_CL_UNALLOC,
    QCOW2_CL_ZERO,       /* zero flag (maybe with a preallocated host cluster) */
    QCOW2_CL_NORMAL,
    QCOW2_CL_COMPRESSED,
};

/* Classify an L2 entry and validate it: -EIO for reserved bits or misaligned offsets. */
int qcow2_l2_entry_type(const struct qcow2 *q, uint64_t entry, enum qcow2_cluster_type *type);

/* The L2 entry for guest offset gofs in the active L1 table (0 if its L2 table is absent). */
int qcow2_l2_lookup(struct qcow2 *q, uint64_t gofs, uint64_t *entry);

/* Up to max consecutive L2 entries starting at gofs, within one L2 table; returns how many were
 * copied into entries (host byte order), >= 1, or -errno. */
int qcow2_l2_lookup_run(struct qcow2 *q, uint64_t gofs, uint64_t max, uint64_t *entries);

/* Extended L2 images: the subcluster bitmap of the entry for gofs (bits 0-31 allocated, 32-63
 * reads as zeros); 0 for other images or an absent table. */
int qcow2_l2_subclusters(struct qcow2 *q, uint64_t gofs, uint64_t *bitmap);

/* Make the L2 table covering gofs writable (allocate it, or copy it if shared); returns its
 * offset in *l2_offset. */
int qcow2_l2_prepare(struct qcow2 *q, uint64_t gofs, uint64_t *l2_offset);

/* Set the L2 entry for gofs in the (prepared) table at l2_offset; it reaches the file at the
 * next metadata flush. */
int qcow2_l2_set(struct qcow2 *q, uint64_t l2_offset, uint64_t gofs, uint64_t entry);

/* Grow the active L1 table to at least entries (new table, header switch, old one freed). */
int qcow2_l1_grow(struct qcow2 *q, uint64_t entries);

/* Validate an L1 entry and return its L2 table offset (0 = none). */
int qcow2_l1_entry_offset(const struct qcow2 *q, uint64_t l1e, uint64_t *l2_offset);

#endif
