/* libFuzzer target for virtio-blk's request parser behind the virtqueue: the input becomes the
 * rings, descriptors, request headers and DISCARD/WRITE_ZEROES segments in the first 64 KiB of a
 * 16 MiB guest RAM; the device serves the queue against a 1 MiB scratch image and every request
 * is drained. No input may crash it or make it touch memory outside guest RAM. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "virtio/blk.h"

#define FUZZ_WINDOW 0x10000u

static struct guest_mem mem;
static struct virtio_dev *dev;

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void fuzz_init(void)
{
    log_set_level(LOG_ERR);
    if (guest_mem_create(&mem, 16ULL << 20, "fuzz-blk") < 0)
        abort();
    char path[] = "/tmp/vireo-fuzz-blk-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
        abort();
    close(fd);
    struct virtio_blk_options o = {.path = path, .format = "raw", .serial = "fuzz",
                                   .num_queues = 1};
    char why[160];
    dev = virtio_blk_create(&mem, NULL, &o, why, sizeof(why));
    unlink(path);
    if (!dev) {
        fprintf(stderr, "%s\n", why);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dev)
        fuzz_init();
    if (size < 8)
        return 0;
    pthread_mutex_lock(&dev->lock);
    virtio_dev_reset(dev);
    dev->features = 1ULL << VIRTIO_F_VERSION_1;
    if (data[1] & 1)
        dev->features |= 1ULL << VIRTIO_F_EVENT_IDX;
    if (data[1] & 2)
        dev->features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
    dev->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                  VIRTIO_STATUS_DRIVER_OK;
    struct virtq *vq = &dev->vqs[0];
    vq->size = (uint16_t)(1u << (data[0] % 9));
    vq->event_idx = data[1] & 1;
    vq->indirect = data[1] & 2;
    vq->desc_gpa = rd16(data + 2) & ~15u;
    vq->avail_gpa = rd16(data + 4) & ~1u;
    vq->used_gpa = rd16(data + 6) & ~3u;
    size_t body = size - 8 > FUZZ_WINDOW ? FUZZ_WINDOW : size - 8;
    memset(mem.base, 0, FUZZ_WINDOW);
    memcpy(mem.base, data + 8, body);
    if (virtq_enable(vq) == 0)
        dev->ops->queue_notify(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    virtio_blk_drain(dev);
    return 0;
}
