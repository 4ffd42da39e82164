/* Scatter lists (struct iovec): their length, a sub-range of one, and copies between one and a
 * flat buffer. Used by the block layer and the virtio devices. */
#include "util/iov.h"

#include <errno.h>
#include <string.h>

#include "util/err.h"

uint64_t iov_len(const struct iovec *iov, int iovcnt)
{
    uint64_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

int iov_slice(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
              struct iovec *out, int max)
{
    int n = 0;
    for (int i = 0; i < iovcnt && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        if (n == max)
            return -EINVAL;
        uint64_t take = MIN(iov[i].iov_len - skip, len);
        out[n].iov_base = (char *)iov[i].iov_base + skip;
        out[n].iov_len = take;
        n++;
        len -= take;
        skip = 0;
    }
    return n;
}

static void iov_walk(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
                     void (*fn)(void *iov_ptr, size_t n, void *arg, size_t pos), void *arg)
{
    size_t pos = 0;
    for (int i = 0; i < iovcnt && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t take = MIN(iov[i].iov_len - skip, len);
        fn((char *)iov[i].iov_base + skip, take, arg, pos);
        pos += take;
        len -= take;
        skip = 0;
    }
}

static void walk_memset(void *p, size_t n, void *arg, size_t pos)
{
    (void)pos;
    memset(p, *(int *)arg, n);
}

static void walk_to_buf(void *p, size_t n, void *arg, size_t pos)
{
    memcpy((char *)arg + pos, p, n);
}

static void walk_from_buf(void *p, size_t n, void *arg, size_t pos)
{
    memcpy(p, (const char *)arg + pos, n);
}

void iov_memset(const struct iovec *iov, int iovcnt, uint64_t skip, int c, uint64_t len)
{
    iov_walk(iov, iovcnt, skip, len, walk_memset, &c);
}

void iov_to_buf(const struct iovec *iov, int iovcnt, uint64_t skip, void *buf, uint64_t len)
{
    iov_walk(iov, iovcnt, skip, len, walk_to_buf, buf);
}

void iov_from_buf(const struct iovec *iov, int iovcnt, uint64_t skip, const void *buf,
                  uint64_t len)
{
    iov_walk(iov, iovcnt, skip, len, walk_from_buf, (void *)buf);
}
