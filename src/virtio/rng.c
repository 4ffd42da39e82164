#include "virtio/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "util/log.h"

struct virtio_rng {
    struct virtio_dev dev;
    struct virtq_elem elem;
    uint64_t stat_bytes;
};

/* Fill the writable buffers of one request; returns the bytes written. getrandom() without
 * GRND_RANDOM does not block once the host pool is initialised, which it is after boot. */
static uint32_t rng_fill(struct virtq_elem *e)
{
    uint64_t total = 0;
    for (unsigned i = e->nout; i < e->nout + e->nin; i++) {
        uint8_t *p = e->iov[i].iov_base;
        size_t left = e->iov[i].iov_len;
        while (left) {
            ssize_t n = getrandom(p, left > 65536 ? 65536 : left, GRND_NONBLOCK);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                return (uint32_t)total; /* partial: the driver copes with short fills */
            }
            p += n;
            left -= (size_t)n;
            total += (uint64_t)n;
        }
    }
    return (uint32_t)total;
}

static void rng_queue_notify(struct virtio_dev *dev, unsigned q)
{
    struct virtio_rng *r = (struct virtio_rng *)dev;
    struct virtq *vq = &dev->vqs[q];
    unsigned budget = VIRTIO_BUDGET;
    int rc = 0;
    do {
        /* Every round costs budget, even an empty one: a guest whose rings overlap can make
         * the notify toggling itself look like new work. */
        budget--;
        virtq_set_notify(vq, false);
        while (budget && (rc = virtq_pop(vq, &r->elem)) > 0) {
            budget--;
            uint32_t n = rng_fill(&r->elem);
            r->stat_bytes += n;
            if (virtq_push(vq, r->elem.head, n) < 0)
                break;
        }
        virtq_set_notify(vq, true);
    } while (budget && rc >= 0 && !vq->broken && virtq_has_work(vq));
    virtio_dev_queue_done(dev, q);
    if (!budget && !vq->broken)
        virtio_dev_requeue(dev, q);
}

static void rng_destroy(struct virtio_dev *dev)
{
    virtio_dev_fini(dev);
    free(dev);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .pci_class = 0x00ff00,
    .queue_notify = rng_queue_notify,
    .destroy = rng_destroy,
};

struct virtio_dev *virtio_rng_create(const struct guest_mem *mem)
{
    struct virtio_rng *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    virtio_dev_init(&r->dev, &rng_ops, "virtio-rng", mem, 1, 256, 0);
    return &r->dev;
}
