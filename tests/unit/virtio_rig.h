/* Shared by the device unit tests that drive a virtio device directly, without the transport:
 * the state a driver leaves a device in once it has negotiated and set a queue up. Header-only:
 * each unit test is its own program. */
#ifndef VIREO_TESTS_UNIT_VIRTIO_RIG_H
#define VIREO_TESTS_UNIT_VIRTIO_RIG_H

#include <stdint.h>

#include "virtio/virtio.h"

/* Reset dev, accept VERSION_1 plus features, set DRIVER_OK, and place queue q's rings of size
 * entries at desc, avail and used. The caller fills the rings, then calls virtq_enable(). */
static inline struct virtq *rig_driver_ok(struct virtio_dev *dev, uint64_t features, unsigned q,
                                          uint16_t size, uint64_t desc, uint64_t avail,
                                          uint64_t used)
{
    virtio_dev_reset(dev);
    dev->features = (1ULL << VIRTIO_F_VERSION_1) | features;
    dev->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                  VIRTIO_STATUS_DRIVER_OK;
    struct virtq *vq = &dev->vqs[q];
    vq->size = size;
    vq->desc_gpa = desc;
    vq->avail_gpa = avail;
    vq->used_gpa = used;
    return vq;
}

#endif
