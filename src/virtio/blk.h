/* virtio-blk (virtio 1.x, 5.2) over the block layer: reads and writes go to io_uring with many
 * requests in flight, FLUSH is fdatasync, DISCARD and WRITE_ZEROES map to fallocate, GET_ID
 * returns the serial, and there is one request queue per vCPU. */
#ifndef VIREO_VIRTIO_BLK_H
#define VIREO_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"

struct event_loop;

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_CONFIG_LEN 0x3c
#define VIRTIO_BLK_MAX_QUEUES 16

struct virtio_blk_options {
    const char *path;
    const char *format;   /* NULL: probe */
    const char *serial;   /* NULL: none; at most 20 bytes are shown */
    bool read_only;
    bool cache_none;      /* open with O_DIRECT (BLOCK_OPEN_DIRECT); default: the page cache */
    unsigned num_queues;  /* one per vCPU (capped at VIRTIO_BLK_MAX_QUEUES) */
};

/* Open the image and create the device; its completions are served on loop. Returns NULL with
 * errno set and a one-line reason in why. */
struct virtio_dev *virtio_blk_create(const struct guest_mem *mem, struct event_loop *loop,
                                     const struct virtio_blk_options *opts, char *why,
                                     unsigned why_len);

/* What the device has done since it was created. */
struct virtio_blk_stats {
    uint64_t reads, writes, flushes; /* requests from the driver */
    uint64_t errors;                 /* requests answered with a status other than OK */
    uint64_t host_ios;               /* reads and writes submitted to the block layer */
    uint64_t merged;                 /* requests that joined the host I/O of the one before */
};
void virtio_blk_get_stats(struct virtio_dev *dev, struct virtio_blk_stats *out);

/* Wait until every request in flight has completed (their completions run on this thread). For
 * tests and the fuzzer, which run without an I/O thread; never call it on a live machine. */
void virtio_blk_drain(struct virtio_dev *dev);

#endif
