/* Opening, probing and creating images; synchronous wrappers; fd and iovec helpers. */
#include "block/block.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/dio.h"
#include "block/qcow2.h"
#include "block/raw.h"
#include "util/err.h"

/* Reasons quote image paths, sometimes two (an image and its backing file). */
static __thread char block_err[2 * PATH_MAX + 256];

const char *block_last_error(void) { return block_err; }

void block_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(block_err, sizeof(block_err), fmt, ap);
    va_end(ap);
}

const char *block_probe(const char *path)
{
    unsigned char magic[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "raw";
    ssize_t n = pread(fd, magic, sizeof(magic), 0);
    close(fd);
    if (n == 4 && memcmp(magic, QCOW2_MAGIC_BYTES, 4) == 0)
        return "qcow2";
    return "raw";
}

static const struct block_ops *block_find_ops(const char *format)
{
    if (strcmp(format, "raw") == 0)
        return &block_raw_ops;
    if (strcmp(format, "qcow2") == 0)
        return &block_qcow2_ops;
    return NULL;
}

const char *block_format(const struct block_dev *bd) { return bd->ops->name; }

int block_open(const char *path, const struct block_open_opts *opts, struct block_dev **out)
{
    struct block_open_opts o = {0};
    if (opts)
        o = *opts;
    block_err[0] = 0;
    const char *format = o.format ? o.format : block_probe(path);
    const struct block_ops *ops = block_find_ops(format);
    if (!ops) {
        block_set_error("unknown image format '%s'", format);
        return -EINVAL;
    }
    bool rw = o.flags & BLOCK_OPEN_RDWR;
    bool direct = o.flags & BLOCK_OPEN_DIRECT;
    int fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (fd < 0) {
        int err = errno;
        if (direct && err == EINVAL)
            block_set_error("cache=none needs direct I/O (O_DIRECT), which the filesystem "
                            "holding '%s' refuses; use cache=writeback", path);
        else
            block_set_error("could not open '%s': %s", path, strerror(err));
        return -err;
    }
    uint32_t dio_align = direct ? block_dio_alignment(fd) : 0;
    if (dio_align > BLOCK_DIO_MAX_ALIGN) {
        block_set_error("cache=none: '%s' needs direct I/O aligned to %u bytes, more than the "
                        "%u supported; use cache=writeback", path, dio_align,
                        BLOCK_DIO_MAX_ALIGN);
        close(fd);
        return -EINVAL;
    }
    struct block_dev *bd = calloc(1, sizeof(*bd));
    if (!bd || !(bd->filename = strdup(path))) {
        free(bd);
        close(fd);
        block_set_error("out of memory");
        return -ENOMEM;
    }
    bd->ops = ops;
    bd->fd = fd;
    bd->read_only = !rw;
    bd->dio_align = dio_align;
    int ret = ops->open(bd, &o);
    if (ret < 0) {
        if (!block_err[0])
            block_set_error("could not open '%s': %s", path, strerror(-ret));
        close(fd);
        free(bd->filename);
        free(bd);
        return ret;
    }
    *out = bd;
    return 0;
}

void block_close(struct block_dev *bd)
{
    if (!bd)
        return;
    if (bd->aio)
        block_drain(bd);
    bd->ops->close(bd);
    if (bd->backing)
        block_close(bd->backing);
    if (bd->own_aio)
        block_aio_free(bd->aio);
    close(bd->fd);
    free(bd->filename);
    free(bd);
}

int block_create(const char *path, const struct block_create_opts *opts)
{
    block_err[0] = 0;
    const char *format = opts->format ? opts->format : "qcow2";
    if (strcmp(format, "raw") == 0) {
        if (opts->backing) {
            block_set_error("raw images cannot have a backing file");
            return -EINVAL;
        }
        return raw_create(path, opts->size);
    }
    if (strcmp(format, "qcow2") == 0)
        return qcow2_create(path, opts);
    block_set_error("unknown image format '%s'", format);
    return -EINVAL;
}

uint64_t block_disk_usage(const struct block_dev *bd)
{
    struct stat st;
    if (fstat(bd->fd, &st) < 0)
        return 0;
    return (uint64_t)st.st_blocks * 512;
}

int block_map(struct block_dev *bd, uint64_t offset, uint64_t len, struct block_extent *ext)
{
    if (offset > bd->size || len > bd->size - offset || len == 0)
        return -EINVAL;
    return bd->ops->map(bd, offset, len, ext);
}

/* ---- synchronous wrappers ---- */

struct sync_wait {
    int done;
    int ret;
};

static void sync_done(struct block_req *req, int ret)
{
    struct sync_wait *w = req->opaque;
    w->ret = ret;
    w->done = 1;
}

static int block_sync_req(struct block_dev *bd, struct block_req *req)
{
    struct sync_wait w = {0};
    req->done = sync_done;
    req->opaque = &w;
    int ret = block_submit(bd, req);
    if (ret < 0)
        return ret;
    while (!w.done)
        block_aio_wait(bd->aio);
    return w.ret;
}

int block_pread(struct block_dev *bd, uint64_t offset, void *buf, uint64_t len)
{
    struct iovec iov = {buf, len};
    struct block_req req = {.op = BLOCK_OP_READ, .offset = offset, .iov = &iov, .iovcnt = 1};
    return block_sync_req(bd, &req);
}

int block_pwrite(struct block_dev *bd, uint64_t offset, const void *buf, uint64_t len)
{
    struct iovec iov = {(void *)buf, len};
    struct block_req req = {.op = BLOCK_OP_WRITE, .offset = offset, .iov = &iov, .iovcnt = 1};
    return block_sync_req(bd, &req);
}

int block_flush(struct block_dev *bd)
{
    struct block_req req = {.op = BLOCK_OP_FLUSH};
    return block_sync_req(bd, &req);
}

int block_discard(struct block_dev *bd, uint64_t offset, uint64_t len, bool zero)
{
    struct block_req req = {
        .op = zero ? BLOCK_OP_WRITE_ZEROES : BLOCK_OP_DISCARD, .offset = offset, .len = len};
    return block_sync_req(bd, &req);
}

int block_truncate(struct block_dev *bd, uint64_t size)
{
    if (bd->read_only)
        return -EROFS;
    if (bd->aio)
        block_drain(bd);
    if (!bd->ops->truncate)
        return -ENOTSUP;
    return bd->ops->truncate(bd, size);
}

/* ---- fd helpers ---- */

int block_fd_pread(int fd, void *buf, size_t len, uint64_t offset)
{
    struct iovec iov = {buf, len};
    return block_fd_preadv(fd, &iov, 1, offset);
}

int block_fd_pwrite(int fd, const void *buf, size_t len, uint64_t offset)
{
    struct iovec iov = {(void *)buf, len};
    return block_fd_pwritev(fd, &iov, 1, offset);
}

#define IOV_STACK 64

static int block_fd_rw(int fd, const struct iovec *iov, int iovcnt, uint64_t offset, bool write)
{
    uint64_t total = iov_len(iov, iovcnt), done = 0;
    if (offset > (uint64_t)INT64_MAX || total > (uint64_t)INT64_MAX - offset)
        return -EINVAL;
    while (done < total) {
        struct iovec part[IOV_STACK];
        int n = iov_slice(iov, iovcnt, done, total - done, part, IOV_STACK);
        if (n < 0) /* more pieces than fit: take what fits */
            n = IOV_STACK;
        ssize_t r = write ? pwritev(fd, part, n, (off_t)(offset + done))
                          : preadv(fd, part, n, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            if (write)
                return -EIO;
            iov_memset(iov, iovcnt, done, 0, total - done); /* past EOF reads zeros */
            return 0;
        }
        done += (uint64_t)r;
    }
    return 0;
}

/* Requests aligned for any O_DIRECT file go straight to the kernel; the others cost one fcntl
 * to learn whether the fd needs the bounce path. */
static bool fd_needs_bounce(int fd, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    return !block_dio_aligned(iov, iovcnt, offset, BLOCK_DIO_MAX_ALIGN) && block_fd_is_direct(fd);
}

int block_fd_preadv(int fd, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    if (fd_needs_bounce(fd, iov, iovcnt, offset))
        return block_dio_rw(fd, iov, iovcnt, offset, false);
    return block_fd_rw(fd, iov, iovcnt, offset, false);
}

int block_fd_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    if (fd_needs_bounce(fd, iov, iovcnt, offset))
        return block_dio_rw(fd, iov, iovcnt, offset, true);
    return block_fd_rw(fd, iov, iovcnt, offset, true);
}
