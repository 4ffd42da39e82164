/* The block layer: disk images (raw, qcow2) behind one asynchronous request interface.
 *
 * A struct block_dev is an open image (plus, for qcow2, its chain of backing images). Requests
 * carry an iovec and a completion callback and run on a struct block_aio, an io_uring owned by
 * one I/O thread: data that lives in the image file at a known place goes straight to the ring;
 * anything needing metadata work (allocation, copy-on-write, backing reads, decompression) is done
 * synchronously on the calling thread and completes through the same callback path.
 *
 * Every value read from an image is untrusted; a malformed image makes open fail with a one-line
 * message (block_last_error()) and never crashes the process. */
#ifndef VIREO_BLOCK_BLOCK_H
#define VIREO_BLOCK_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/iov.h" /* the iovec helpers requests are handled with */

struct block_dev;
struct block_aio;
struct block_req;

enum block_op {
    BLOCK_OP_READ,
    BLOCK_OP_WRITE,
    BLOCK_OP_FLUSH,
    BLOCK_OP_DISCARD,      /* hint: whole clusters read back as zeros, partial ones unchanged */
    BLOCK_OP_WRITE_ZEROES, /* the range reads back as zeros */
};

typedef void (*block_done_fn)(struct block_req *req, int ret);

/* One request. The caller owns the struct and the iovec until done() runs; done() gets 0 or
 * -errno and runs from block_aio_poll()/block_aio_wait(), never from inside the
 * block_submit() of the same request. (Other requests' callbacks can run inside a submit: a
 * discard or write-zeroes waits for the device's requests in flight, and a full ring is made
 * room in by reaping completions.) */
struct block_req {
    enum block_op op;
    uint64_t offset;
    uint64_t len; /* DISCARD / WRITE_ZEROES only; READ/WRITE take the iovec's length */
    const struct iovec *iov;
    int iovcnt;
    block_done_fn done;
    void *opaque;
    /* private to the block layer */
    struct block_dev *bd;
    struct block_req *next_done;
    int pending;
    int err;
};

/* Extent kinds reported by block_map() (and by the formats' map op). */
enum block_extent_kind {
    BLOCK_EXT_DATA,       /* bytes at host_offset in this image's file */
    BLOCK_EXT_ZERO,       /* reads as zeros, decided by this image */
    BLOCK_EXT_UNALLOC,    /* not in this image: backing file, or zeros without one */
    BLOCK_EXT_COMPRESSED, /* compressed cluster in this image */
};

struct block_extent {
    enum block_extent_kind kind;
    uint64_t length;
    uint64_t host_offset; /* DATA (and COMPRESSED: start of the compressed bytes) */
    bool writable;        /* DATA that may be overwritten in place (no copy-on-write needed) */
};

/* Format-specific options for block_create(). Zero fields mean the default. */
struct block_create_opts {
    const char *format;         /* "qcow2" (default) or "raw" */
    uint64_t size;
    const char *backing;        /* backing file name as recorded in the image, or NULL */
    const char *backing_format; /* recorded backing format, or NULL (probed on open) */
    uint32_t cluster_size;      /* qcow2: 512..2M, power of two; default 64 KiB */
    int compat_v2;              /* qcow2: write a version 2 image ("compat=0.10") */
    int refcount_bits;          /* qcow2: 1..64, power of two; default 16 */
    int lazy_refcounts;         /* qcow2: set the lazy refcounts compatible bit */
};

/* Open flags */
#define BLOCK_OPEN_RDWR 0x1
#define BLOCK_OPEN_NO_BACKING 0x2 /* do not open the backing chain (info, rebase -u) */
#define BLOCK_OPEN_REPAIR 0x4     /* allow opening an image marked corrupt read-write (check -r) */
/* cache=none: open the image and its backing chain with O_DIRECT, bypassing the host page cache
 * (block/dio.h says how unaligned requests are served). Durability is unchanged: FLUSH is still
 * fdatasync, which O_DIRECT does not replace. */
#define BLOCK_OPEN_DIRECT 0x8

/* The images opened so far down a backing chain, to refuse loops (a -> b -> a). */
struct block_chain {
    uint64_t dev, ino;
    unsigned depth;
    const struct block_chain *up;
};

struct block_open_opts {
    const char *format;     /* "raw", "qcow2", or NULL to probe (qcow2 magic -> qcow2, else raw) */
    unsigned flags;         /* BLOCK_OPEN_* */
    /* qcow2: bytes of L2 tables to cache; 0 = every L2 table of the image, up to 32 MiB */
    uint64_t l2_cache_size;
    const struct block_chain *chain; /* set by the block layer when opening backing files */
};

/* A format's operations. Synchronous ops are used by tools and by the async path for the parts
 * that need metadata work; map tells the async path where data lives. */
struct block_ops {
    const char *name;
    int (*open)(struct block_dev *bd, const struct block_open_opts *opts);
    void (*close)(struct block_dev *bd);
    int (*map)(struct block_dev *bd, uint64_t offset, uint64_t len, struct block_extent *ext);
    int (*preadv)(struct block_dev *bd, uint64_t offset, const struct iovec *iov, int iovcnt);
    int (*pwritev)(struct block_dev *bd, uint64_t offset, const struct iovec *iov, int iovcnt);
    int (*flush)(struct block_dev *bd);
    int (*discard)(struct block_dev *bd, uint64_t offset, uint64_t len, bool zero);
    int (*truncate)(struct block_dev *bd, uint64_t size);
};

extern const struct block_ops block_raw_ops;
extern const struct block_ops block_qcow2_ops;

struct block_dev {
    const struct block_ops *ops;
    void *priv;
    int fd;
    uint64_t size; /* virtual size in bytes */
    bool read_only;
    char *filename;
    struct block_dev *backing;
    struct block_aio *aio;
    bool own_aio;
    int inflight;
    /* BLOCK_OPEN_DIRECT: the alignment O_DIRECT needs for this file's buffers, lengths and
     * offsets (block_dio_alignment()); 0 when the image is read through the page cache. */
    uint32_t dio_align;
};

/* Open an image (and its backing chain). Returns 0 and *out, or -errno with a one-line reason
 * available from block_last_error(). */
int block_open(const char *path, const struct block_open_opts *opts, struct block_dev **out);
/* Close an image and its backing chain; waits for its in-flight requests first. */
void block_close(struct block_dev *bd);
/* Create an image file (truncating an existing one). Returns 0 or -errno (+ block_last_error()). */
int block_create(const char *path, const struct block_create_opts *opts);
/* Probe: "qcow2" if the file starts with the qcow2 magic, else "raw". */
const char *block_probe(const char *path);

/* The last error message set on this thread: by open/create, and by a request that failed with
 * -EIO because of invalid metadata (which entry was wrong). Empty string if none. */
const char *block_last_error(void);
/* Set the thread's error message (used by the formats). */
void block_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An io_uring for one I/O thread. entries is the ring depth (e.g. 128). */
struct block_aio *block_aio_new(unsigned entries);
void block_aio_free(struct block_aio *aio);
/* An eventfd that becomes readable when completions are ready (for epoll). */
int block_aio_fd(const struct block_aio *aio);
/* Run the callbacks of finished requests; returns how many completed. Never blocks. */
int block_aio_poll(struct block_aio *aio);
/* Block until at least one request finishes, then run callbacks as block_aio_poll(). */
int block_aio_wait(struct block_aio *aio);
/* Hold back the ring submissions of block_submit() until the matching unplug (nestable), so
 * that requests a device pops in one go reach the kernel in one io_uring_enter: the host's
 * block layer then dispatches them as one batch (one doorbell of a virtual host disk instead
 * of one per request). Waiting and polling still submit what is held. */
void block_aio_plug(struct block_aio *aio);
void block_aio_unplug(struct block_aio *aio);
/* Use this ring for bd's (and its backing chain's) requests instead of a private one. */
void block_attach_aio(struct block_dev *bd, struct block_aio *aio);

/* Submit a request (req->done runs later, see struct block_req). Returns 0, or -errno without
 * calling done() if the request is malformed (out of range, read-only device). */
int block_submit(struct block_dev *bd, struct block_req *req);
/* Wait until every request submitted to bd has completed. */
void block_drain(struct block_dev *bd);

/* Synchronous convenience wrappers for tools: submit through the ring and wait. */
int block_pread(struct block_dev *bd, uint64_t offset, void *buf, uint64_t len);
int block_pwrite(struct block_dev *bd, uint64_t offset, const void *buf, uint64_t len);
int block_flush(struct block_dev *bd);
int block_discard(struct block_dev *bd, uint64_t offset, uint64_t len, bool zero);
int block_truncate(struct block_dev *bd, uint64_t size);

/* Where the bytes at [offset, offset+len) of bd itself (not its backing) live: fills ext with the
 * first extent, whose length is <= len. */
int block_map(struct block_dev *bd, uint64_t offset, uint64_t len, struct block_extent *ext);
/* Bytes the image file occupies on the host (st_blocks * 512). */
uint64_t block_disk_usage(const struct block_dev *bd);
/* Format name of an open image ("raw", "qcow2"). */
const char *block_format(const struct block_dev *bd);

/* Helpers shared by the formats: full-length positioned I/O on a file descriptor (EINTR and
 * short transfers handled; a read past EOF fills zeros). On an O_DIRECT fd, requests that are
 * not aligned go through block_dio_rw() (a bounce buffer; read-modify-write for partial
 * blocks). */
int block_fd_pread(int fd, void *buf, size_t len, uint64_t offset);
int block_fd_pwrite(int fd, const void *buf, size_t len, uint64_t offset);
int block_fd_preadv(int fd, const struct iovec *iov, int iovcnt, uint64_t offset);
int block_fd_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t offset);

#endif
