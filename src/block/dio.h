/* Direct I/O (O_DIRECT, `--disk ...,cache=none`): reads and writes that bypass the host page
 * cache must have their buffer address, length and file offset aligned to what the file's
 * filesystem or device asks (its logical block size, usually 512 or 4096 bytes).
 *
 * Two paths keep unaligned requests working:
 *  - the asynchronous path (aio.c) checks each ring operation against the image's alignment
 *    (block_dev.dio_align) and, when it is off, reads or writes whole aligned blocks through an
 *    aligned bounce buffer instead of the caller's iovec; a write whose offset or length is not
 *    aligned is a read-modify-write, done synchronously with nothing else of the disk in flight;
 *  - the synchronous fd helpers of block.h (block_fd_pread and friends, used for qcow2 metadata,
 *    copy-on-write and compressed clusters) notice an O_DIRECT fd themselves and go through
 *    block_dio_rw() below when a request is not aligned to BLOCK_DIO_MAX_ALIGN.
 * Images whose alignment is larger than BLOCK_DIO_MAX_ALIGN are refused at open. */
#ifndef VIREO_BLOCK_DIO_H
#define VIREO_BLOCK_DIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The alignment the synchronous helpers use on O_DIRECT files: a multiple of every alignment
 * block_open() accepts, so they need not know which image an fd belongs to. */
#define BLOCK_DIO_MAX_ALIGN 4096u

/* The alignment O_DIRECT needs on fd for buffer addresses, lengths and offsets alike: the
 * larger of statx's stx_dio_mem_align and stx_dio_offset_align, the logical sector size
 * (BLKSSZGET) of a block device, or BLOCK_DIO_MAX_ALIGN when the kernel does not say. */
uint32_t block_dio_alignment(int fd);

/* True when offset and every iovec's base address and length are multiples of align (a power
 * of two). */
bool block_dio_aligned(const struct iovec *iov, int iovcnt, uint64_t offset, uint64_t align);

/* The aligned span that covers [offset, offset+len): *start rounded down, *span rounded up. */
void block_dio_span(uint64_t offset, uint64_t len, uint64_t align, uint64_t *start,
                    uint64_t *span);

/* len bytes aligned to BLOCK_DIO_MAX_ALIGN (release with free()), or NULL. */
void *block_dio_alloc(size_t len);

/* Whether fd was opened with O_DIRECT. */
bool block_fd_is_direct(int fd);

/* Read or write [offset, offset+len of iov) on an O_DIRECT fd whatever the alignment of the
 * request: whole BLOCK_DIO_MAX_ALIGN blocks move through an aligned buffer; a write that covers
 * part of a block reads the block first (read-modify-write), so the caller must make sure that
 * no other write to the same blocks is in flight. A write never leaves a regular file longer
 * than offset+len or its old size. Reads past the end of the file give zeros. Returns 0 or
 * -errno. */
int block_dio_rw(int fd, const struct iovec *iov, int iovcnt, uint64_t offset, bool write);

#endif
