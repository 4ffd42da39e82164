#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, uint64_t max_size, uint8_t **data, size_t *size, char *why,
                  size_t why_len)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        snprintf(why, why_len, "cannot be opened: %s", strerror(err));
        return -err;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(why, why_len, "cannot be examined: %s", strerror(-rc));
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        snprintf(why, why_len, "is a directory");
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(why, why_len, "is not a regular file");
    } else if (st.st_size == 0) {
        rc = -EINVAL;
        snprintf(why, why_len, "is empty");
    } else if ((uint64_t)st.st_size > max_size) {
        rc = -EFBIG;
        snprintf(why, why_len, "is too large (%lld bytes, at most %llu)", (long long)st.st_size,
                 (unsigned long long)max_size);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    uint8_t *buf = malloc((size_t)st.st_size);
    if (!buf) {
        close(fd);
        snprintf(why, why_len, "does not fit in memory");
        return -ENOMEM;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            snprintf(why, why_len, "cannot be read: %s", n < 0 ? strerror(errno) : "file shrank");
            free(buf);
            close(fd);
            return rc;
        }
        done += (size_t)n;
    }
    close(fd);
    *data = buf;
    *size = done;
    return 0;
}
