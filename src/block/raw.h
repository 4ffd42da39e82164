/* Raw images: the file is the disk. Operations are exported as block_raw_ops (block/block.h). */
#ifndef VIREO_BLOCK_RAW_H
#define VIREO_BLOCK_RAW_H

#include <stdint.h>

/* Create (or truncate) a sparse raw image of size bytes. Returns 0 or -errno. */
int raw_create(const char *path, uint64_t size);

#endif
