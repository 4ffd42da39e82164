/* Raw images: guest offset == file offset, so every request maps straight onto the ring. */
#include "block/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"

int raw_create(const char *path, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX) {
        block_set_error("image size too large");
        return -EFBIG;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        block_set_error("could not create '%s': %s", path, strerror(err));
        return -err;
    }
    int ret = 0;
    if (ftruncate(fd, (off_t)size) < 0) {
        ret = -errno;
        block_set_error("could not resize '%s': %s", path, strerror(-ret));
    }
    close(fd);
    return ret;
}

static int raw_open(struct block_dev *bd, const struct block_open_opts *opts)
{
    (void)opts;
    struct stat st;
    if (fstat(bd->fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(bd->fd, 0, SEEK_END);
        if (end < 0)
            return -errno;
        bd->size = (uint64_t)end;
    } else {
        bd->size = (uint64_t)st.st_size;
    }
    return 0;
}

static void raw_close(struct block_dev *bd) { (void)bd; }

static int raw_map(struct block_dev *bd, uint64_t offset, uint64_t len, struct block_extent *ext)
{
    (void)bd;
    ext->kind = BLOCK_EXT_DATA;
    ext->length = len;
    ext->host_offset = offset;
    ext->writable = true;
    return 0;
}

static int raw_preadv(struct block_dev *bd, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    return block_fd_preadv(bd->fd, iov, iovcnt, offset);
}

static int raw_pwritev(struct block_dev *bd, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    return block_fd_pwritev(bd->fd, iov, iovcnt, offset);
}

static int raw_flush(struct block_dev *bd)
{
    (void)bd; /* the ring's fdatasync that follows is the flush */
    return 0;
}

static int raw_discard(struct block_dev *bd, uint64_t offset, uint64_t len, bool zero)
{
    /* Punching a hole reads back as zeros on every Linux filesystem that supports it; when it is
     * not supported, a discard is simply dropped and zeroing falls back to writing zeros. */
    if (fallocate(bd->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len)
        == 0)
        return 0;
    if (!zero)
        return 0;
    static const char zeros[65536];
    while (len) {
        size_t n = len < sizeof(zeros) ? len : sizeof(zeros);
        int ret = block_fd_pwrite(bd->fd, zeros, n, offset);
        if (ret < 0)
            return ret;
        offset += n;
        len -= n;
    }
    return 0;
}

static int raw_truncate(struct block_dev *bd, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    if (ftruncate(bd->fd, (off_t)size) < 0)
        return -errno;
    bd->size = size;
    return 0;
}

const struct block_ops block_raw_ops = {
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
    .map = raw_map,
    .preadv = raw_preadv,
    .pwritev = raw_pwritev,
    .flush = raw_flush,
    .discard = raw_discard,
    .truncate = raw_truncate,
};
