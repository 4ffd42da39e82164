/* Scatter lists (struct iovec): the helpers the block layer and the virtio devices share. */
#ifndef VIREO_UTIL_IOV_H
#define VIREO_UTIL_IOV_H

#include <stdint.h>
#include <sys/uio.h>

/* Total length of the list. */
uint64_t iov_len(const struct iovec *iov, int iovcnt);
/* Copy the byte range [skip, skip+len) of iov into a new list of at most max entries: returns
 * the count, or -EINVAL if max is too small. */
int iov_slice(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
              struct iovec *out, int max);
/* memset / copy to and from the byte range [skip, skip+len) of the list (as far as it goes). */
void iov_memset(const struct iovec *iov, int iovcnt, uint64_t skip, int c, uint64_t len);
void iov_to_buf(const struct iovec *iov, int iovcnt, uint64_t skip, void *buf, uint64_t len);
void iov_from_buf(const struct iovec *iov, int iovcnt, uint64_t skip, const void *buf,
                  uint64_t len);

#endif
