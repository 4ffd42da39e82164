/* qcow2 consistency check and repair: recompute every cluster's references from the L1/L2
 * tables (active and snapshots), the refcount structures, the snapshot table and bitmaps, and
 * compare with the stored refcounts and copied flags. */
#ifndef VIREO_BLOCK_QCOW2_CHECK_H
#define VIREO_BLOCK_QCOW2_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "block/block.h"

#define QCOW2_REPAIR_LEAKS 0x1
#define QCOW2_REPAIR_ERRORS 0x2
#define QCOW2_REPAIR_ALL (QCOW2_REPAIR_LEAKS | QCOW2_REPAIR_ERRORS)

struct qcow2_check_result {
    uint64_t corruptions;       /* refcount too low, bad copied flags, invalid entries */
    uint64_t leaks;             /* refcount too high */
    uint64_t corruptions_fixed;
    uint64_t leaks_fixed;
    uint64_t image_end;         /* end of the last referenced cluster */
    uint64_t total_clusters;    /* guest clusters */
    uint64_t allocated_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
};

/* Check bd (a qcow2 image; writable if repair is set). Problems are printed one per line to
 * out (may be NULL) in qemu-img's words. Returns 0 when the check ran, -errno if it could not. */
int qcow2_check(struct block_dev *bd, int repair, struct qcow2_check_result *res, FILE *out);

#endif
