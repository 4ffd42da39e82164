/* Human sizes ("512M", "5G", "4096") as the CLI and image tools accept them. */
#ifndef VIREO_UTIL_SIZE_H
#define VIREO_UTIL_SIZE_H

#include <stdint.h>

/* Parse a size with an optional binary suffix K, M, G, T, P (optionally followed by "iB" or "B").
 * A bare number is in bytes unless default_unit says otherwise (e.g. 1 << 20 for "--memory 512").
 * Returns 0, or -EINVAL for malformed text and -ERANGE for values that overflow 64 bits. */
int size_parse(const char *text, uint64_t default_unit, uint64_t *out);

/* Format bytes compactly ("512 MiB", "1.5 GiB") into buf; returns buf. */
char *size_format(uint64_t bytes, char *buf, unsigned len);

#endif
