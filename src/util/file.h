/* Reading whole input files (kernels, initrds) with the checks a user's path deserves. */
#ifndef VIREO_UTIL_FILE_H
#define VIREO_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Read all of `path` into a malloc'ed buffer. Refuses directories, non-regular files other than
 * block devices, empty files and files larger than max_size. Returns 0, or -errno with a one-line
 * reason in `why` (without the path: the caller names the file). */
int file_read_all(const char *path, uint64_t max_size, uint8_t **data, size_t *size, char *why,
                  size_t why_len);

#endif
