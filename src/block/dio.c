/* Direct I/O alignment: what the kernel asks for, and the bounce path for what does not fit. */
#include "block/dio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "util/err.h"

#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x2000u
#endif

/* Bytes the bounce path moves per system call at most. */
#define DIO_CHUNK (1u << 20)

uint32_t block_dio_alignment(int fd)
{
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_DIOALIGN, &sx) < 0)
        return BLOCK_DIO_MAX_ALIGN;
    if (S_ISBLK(sx.stx_mode)) {
        /* The logical sector size bounds offsets and lengths; the memory alignment block
         * devices ask for (the DMA alignment) is never larger. */
        int ss = 0;
        if (ioctl(fd, BLKSSZGET, &ss) == 0 && ss >= 512 && (ss & (ss - 1)) == 0)
            return (uint32_t)ss;
    }
    if (sx.stx_mask & STATX_DIOALIGN) {
        uint32_t a = MAX(sx.stx_dio_mem_align, sx.stx_dio_offset_align);
        if (a && (a & (a - 1)) == 0)
            return a;
    }
    /* Not reported (older kernels, some filesystems): a page is safe everywhere. */
    return BLOCK_DIO_MAX_ALIGN;
}

bool block_dio_aligned(const struct iovec *iov, int iovcnt, uint64_t offset, uint64_t align)
{
    uint64_t bits = offset;
    for (int i = 0; i < iovcnt; i++)
        bits |= (uintptr_t)iov[i].iov_base | iov[i].iov_len;
    return (bits & (align - 1)) == 0;
}

void block_dio_span(uint64_t offset, uint64_t len, uint64_t align, uint64_t *start,
                    uint64_t *span)
{
    *start = ALIGN_DOWN(offset, align);
    *span = ALIGN_UP(offset + len, align) - *start;
}

void *block_dio_alloc(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, BLOCK_DIO_MAX_ALIGN, len ? len : 1) != 0)
        return NULL;
    return p;
}

bool block_fd_is_direct(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DIRECT);
}

/* One aligned transfer, repeated until complete. A short read is the end of the file: the rest
 * reads as zeros (continuing would start at an unaligned offset, which O_DIRECT refuses). */
static int dio_full(int fd, uint8_t *buf, uint64_t len, uint64_t offset, bool write)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = write ? pwrite(fd, buf + done, len - done, (off_t)(offset + done))
                          : pread(fd, buf + done, len - done, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0 && write)
            return -EIO;
        if (!write && (uint64_t)r < len - done) {
            memset(buf + done + r, 0, len - done - (uint64_t)r);
            return 0;
        }
        done += (uint64_t)r;
    }
    return 0;
}

int block_dio_rw(int fd, const struct iovec *iov, int iovcnt, uint64_t offset, bool write)
{
    const uint64_t a = BLOCK_DIO_MAX_ALIGN;
    uint64_t total = iov_len(iov, iovcnt);
    if (offset > (uint64_t)INT64_MAX - a || total > (uint64_t)INT64_MAX - a - offset)
        return -EINVAL;
    if (total == 0)
        return 0;
    /* A write rounded up to whole blocks may pass the end of a regular file: remember where
     * the end was, to put it back. */
    int64_t old_size = -1;
    struct stat st;
    if (write && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        old_size = st.st_size;
    uint8_t *buf = block_dio_alloc(DIO_CHUNK);
    if (!buf)
        return -ENOMEM;
    uint64_t end = offset + total, pos = offset;
    int ret = 0;
    while (pos < end && ret == 0) {
        uint64_t start = ALIGN_DOWN(pos, a);
        uint64_t stop = MIN(ALIGN_UP(end, a), start + DIO_CHUNK);
        uint64_t n = MIN(end, stop) - pos; /* bytes of the request in this block run */
        bool partial = pos > start || pos + n < stop;
        if (!write || partial)
            ret = dio_full(fd, buf, stop - start, start, false);
        if (ret == 0 && write) {
            iov_to_buf(iov, iovcnt, pos - offset, buf + (pos - start), n);
            ret = dio_full(fd, buf, stop - start, start, true);
        } else if (ret == 0) {
            iov_from_buf(iov, iovcnt, pos - offset, buf + (pos - start), n);
        }
        pos += n;
    }
    free(buf);
    if (ret == 0 && old_size >= 0 && ALIGN_UP(end, a) > (uint64_t)old_size &&
        ftruncate(fd, (off_t)MAX((uint64_t)old_size, end)) < 0)
        ret = -errno;
    return ret;
}
