/* qcow2 images (QEMU's format, docs/interop/qcow2.txt): the state shared by the qcow2_*.c files
 * and the entry points others call (create, info, check). The block ops are block_qcow2_ops.
 * The order in which metadata reaches the file is described at struct qcow2_free below. */
#ifndef VIREO_BLOCK_QCOW2_H
#define VIREO_BLOCK_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

#define QCOW2_MAGIC_BYTES "QFI\xfb"
#define QCOW2_MAGIC 0x514649fbu

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)     /* QEMU's limits, kept so images stay portable */
#define QCOW2_MAX_RT_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_CHAIN 32

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO (1ull << 0)
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9..55 */

#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_COMPRESS_ZLIB 0
#define QCOW2_COMPRESS_ZSTD 1

/* A cache of cluster-sized tables (L2 tables or refcount blocks), kept in file byte order.
 * Slots are found by a hash of the table's offset and kept on an LRU list, so a lookup costs the
 * same with 4 slots or with the thousands a whole large image needs (see qcow2_cache.h). */
#define QCOW2_CACHE_NONE UINT32_MAX

struct qcow2_cache_slot {
    uint64_t offset;     /* 0 = empty */
    uint32_t hash_next;  /* next slot in the same hash bucket */
    uint32_t prev, next; /* LRU list, most recently used first */
    bool dirty;          /* L2 tables only: entries not yet written to the file */
    uint8_t *data;
};

struct qcow2_cache {
    unsigned nslots;
    unsigned nbuckets;   /* power of two */
    unsigned last;       /* slot of the last hit */
    uint32_t mru, lru;   /* ends of the LRU list */
    unsigned ndirty;
    uint64_t table_size; /* bytes per slot */
    uint32_t *buckets;
    struct qcow2_cache_slot *slots;
    uint8_t *mem;        /* nslots * table_size, mapped lazily: unused slots cost no memory */
    size_t mem_len;
    uint64_t hits, misses, evictions; /* for tests and benchmarks */
};

struct qcow2_ext {
    uint32_t type;
    uint32_t len;
    uint8_t *data;
};

struct qcow2_snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id;
    char *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint64_t icount; /* UINT64_MAX if absent */
};

struct qcow2 {
    int fd;
    bool read_only;
    /* header */
    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint64_t size;
    uint64_t backing_offset;
    uint32_t backing_len;
    char *backing_name;
    char *backing_format;
    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompat, compat, autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
    bool has_bitmaps;
    bool ext_l2;            /* extended L2 entries: 16 bytes, 32 subclusters (read-only) */
    uint32_t l2_entry_size; /* 8, or 16 with ext_l2 */
    struct qcow2_ext *exts; /* header extensions kept verbatim when the header is rewritten */
    unsigned n_exts;
    /* derived */
    uint32_t l2_bits;   /* log2 of entries per L2 table */
    uint64_t l2_entries;
    uint32_t rb_bits;   /* log2 of entries per refcount block */
    uint64_t rb_entries;
    uint64_t rt_entries;
    uint64_t file_size; /* grows as we allocate */
    /* tables */
    uint64_t *l1; /* host order */
    uint64_t *rt; /* host order */
    struct qcow2_snapshot *snapshots;
    uint64_t snapshots_size; /* bytes of the snapshot table */
    struct qcow2_cache l2_cache;
    struct qcow2_cache rb_cache;
    uint64_t free_hint; /* cluster index from which to look for free clusters */
    /* compressed reads */
    uint8_t *cbuf;
    uint8_t *dbuf;
    uint64_t dbuf_entry; /* L2 entry whose data dbuf holds, 0 = none */
    /* compressed writes (convert -c): current partly filled cluster */
    uint64_t cwrite_offset;
    /* write-back state, written by qcow2_flush_metadata() */
    uint64_t l1_dirty_lo, l1_dirty_hi; /* dirty L1 entries [lo, hi) */
    struct qcow2_free *pending_free;   /* references to drop once the tables are on disk */
    size_t n_pending_free, cap_pending_free;
};

/* A queued reference drop. Ordering that keeps an image consistent whatever happens (kill or
 * power loss):
 *  - refcount increments and the contents of new clusters and tables are written at once;
 *  - L2 entries and L1 entries that point to new clusters stay dirty in memory and reach the
 *    file at a metadata flush, after an fdatasync has made what they reference durable;
 *  - references are dropped (refcount decrements) only after a second fdatasync has made the
 *    tables that stopped using them durable.
 * The file never names a cluster whose refcount is not durable; a killed process leaves at
 * worst leaked clusters, and data written before a completed flush is reachable. */
struct qcow2_free {
    uint64_t cluster;
    uint64_t count;
};

static inline struct qcow2 *qcow2_of(struct block_dev *bd) { return bd->priv; }

/* Create a qcow2 image: header, refcount table and block, then an L1 table for opts->size. */
int qcow2_create(const char *path, const struct block_create_opts *opts);

/* Facts about an open qcow2 image for `img info`. */
const struct qcow2 *qcow2_state(struct block_dev *bd);

/* Write a guest cluster compressed (zlib), for `convert -c`. offset must be cluster aligned and
 * the cluster currently unallocated; len <= cluster size (a short last cluster is zero-padded).
 * Returns 0, or 1 when the data does not compress (the caller then writes it normally). */
int qcow2_write_compressed(struct block_dev *bd, uint64_t offset, const void *buf, uint64_t len);

/* Drop every cluster of the active image (commit's "make empty"): all guest clusters become
 * unallocated, so reads go to the backing file again. */
int qcow2_make_empty(struct block_dev *bd);

/* Record a new backing file name and format in the header (rebase); NULL removes it. */
int qcow2_set_backing(struct block_dev *bd, const char *name, const char *format);

#endif
