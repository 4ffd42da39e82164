/* A minimal virtio 1.x driver over modern virtio-pci for the test guests: find a device on bus 0,
 * walk its capabilities, negotiate features, set up split queues in static memory, program MSI-X,
 * post buffers and wait for them. Polled or interrupt-driven; no allocation. */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include <stdint.h>

#define VIRTIO_STATUS_ACK 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VQ_DESC_F_INDIRECT 4

#define VQ_MAX 64 /* entries per queue in these guests */

struct vq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* One queue's rings, laid out in one static block. */
struct vq_mem {
    struct vq_desc desc[VQ_MAX];
    struct {
        uint16_t flags, idx, ring[VQ_MAX], spare; /* used_event sits at ring[size] */
    } avail __attribute__((aligned(16)));
    struct {
        uint16_t flags, idx;
        struct {
            uint32_t id, len;
        } ring[VQ_MAX];
        uint16_t spare; /* avail_event sits at ring[size] */
    } used __attribute__((aligned(16)));
} __attribute__((aligned(4096)));

struct vq {
    struct vq_mem *mem;
    uint16_t size, index;
    uint16_t next_desc;  /* descriptors are handed out in order, wrapping */
    uint16_t last_used;
    uint64_t notify;     /* MMIO address to kick */
};

struct vdev {
    unsigned dev;        /* slot on bus 0 */
    uint64_t bar;
    uint64_t common, isr, device, notify_base;
    uint32_t notify_mult;
    unsigned msix_cap;
    uint64_t features;   /* negotiated */
};

/* One buffer of a chain. */
struct vbuf {
    const void *addr;
    uint32_t len;
    int write;           /* device-writable */
};

/* Masks both 8259 PICs (firmware may have left the PIT ticking into vector 8) so that only
 * MSI-X interrupts arrive once interrupts are enabled. */
void virtio_mask_legacy_irqs(void);
/* Finds the nth (from 0) virtio device of type id (0x1040 + id) on bus 0. 0 or -1. */
int virtio_find(unsigned type, unsigned nth, struct vdev *d);
uint8_t virtio_status(struct vdev *d);
void virtio_set_status(struct vdev *d, uint8_t status);
/* Writes 0 and waits for the device to read back 0. */
void virtio_reset(struct vdev *d);
/* ACK, DRIVER, the features in want that the device offers, FEATURES_OK. Returns 0, or -1 when
 * the device refused FEATURES_OK. d->features gets what was accepted. */
int virtio_negotiate(struct vdev *d, uint64_t want);
/* The device's offered features. */
uint64_t virtio_device_features(struct vdev *d);
/* Sets up queue q in mem with size entries (<= VQ_MAX) and MSI-X vector msix (0xffff: none). */
int virtio_queue_setup(struct vdev *d, unsigned q, struct vq *vq, struct vq_mem *mem,
                       uint16_t size, uint16_t msix);
/* Enables MSI-X on the function and points table entry n at this CPU's vector cpu_vector. */
void virtio_msix_setup(struct vdev *d, unsigned n, uint8_t cpu_vector);
void virtio_msix_mask(struct vdev *d, unsigned n, int masked);
/* Device-config space accessors. */
uint8_t virtio_cfg8(struct vdev *d, unsigned off);
uint32_t virtio_cfg32(struct vdev *d, unsigned off);
uint64_t virtio_cfg64(struct vdev *d, unsigned off);
/* Adds a chain of n buffers (readable ones first) and makes it available; returns its head. */
uint16_t vq_add(struct vq *vq, const struct vbuf *bufs, unsigned n);
/* Adds one indirect descriptor pointing at table (filled from bufs); returns its head. */
uint16_t vq_add_indirect(struct vq *vq, struct vq_desc *table, const struct vbuf *bufs,
                         unsigned n);
void vq_kick(struct vq *vq);
/* Polls for the next used entry for up to spins iterations; returns its id (and *len), or -1. */
int vq_wait(struct vq *vq, uint32_t *len, unsigned long spins);

#endif
