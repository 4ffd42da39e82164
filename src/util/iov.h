/* Copying between a flat buffer and a scatter list (struct iovec), starting skip bytes in. */
#ifndef VIREO_UTIL_IOV_H
#define VIREO_UTIL_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Copy len bytes of buf into the list from byte skip on; returns the bytes copied (fewer when
 * the list ends first). */
size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t skip, const void *buf,
                    size_t len);
/* Copy len bytes of the list from byte skip on into buf; returns the bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t skip, void *buf, size_t len);
/* Total length of the list. */
size_t iov_size(const struct iovec *iov, unsigned cnt);

#endif
