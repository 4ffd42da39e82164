/* virtio-rng (virtio 1.x, 5.4): one request queue whose buffers the device fills from the
 * host's getrandom(). On by default. */
#ifndef VIREO_VIRTIO_RNG_H
#define VIREO_VIRTIO_RNG_H

#include "virtio/virtio.h"

/* Create the device over guest RAM mem. Returns NULL with errno set. */
struct virtio_dev *virtio_rng_create(const struct guest_mem *mem);

#endif
