#include "util/iov.h"

#include <stdbool.h>
#include <string.h>

/* Walk the list from byte skip for len bytes, copying each piece towards or from buf. */
static size_t iov_copy(const struct iovec *iov, unsigned cnt, size_t skip, void *buf, size_t len,
                       bool into_iov)
{
    size_t done = 0;
    for (unsigned k = 0; k < cnt && done < len; k++) {
        size_t n = iov[k].iov_len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        n -= skip;
        if (n > len - done)
            n = len - done;
        char *p = (char *)iov[k].iov_base + skip;
        if (into_iov)
            memcpy(p, (const char *)buf + done, n);
        else
            memcpy((char *)buf + done, p, n);
        done += n;
        skip = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t skip, const void *buf,
                    size_t len)
{
    return iov_copy(iov, cnt, skip, (void *)buf, len, true);
}

size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t skip, void *buf, size_t len)
{
    return iov_copy(iov, cnt, skip, buf, len, false);
}

size_t iov_size(const struct iovec *iov, unsigned cnt)
{
    size_t total = 0;
    for (unsigned k = 0; k < cnt; k++)
        total += iov[k].iov_len;
    return total;
}
