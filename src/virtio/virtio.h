/* A virtio device as the transport sees it: a const ops table (the device type) plus this common
 * state (queues, features, the lock every path takes). Transport and device are separate: the
 * device asks the transport for interrupts through struct virtio_transport, so the same device
 * code can sit behind virtio-pci today and another transport later.
 *
 * Threads: the transport's register handlers run on vCPU threads, queue work and completions on
 * the I/O thread; all of them hold dev->lock while they touch the device or its queues. */
#ifndef VIREO_VIRTIO_VIRTIO_H
#define VIREO_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/queue.h"

/* Device status bits (virtio 1.x, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Transport feature bits. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_RING_PACKED 34

/* Device types. */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

#define VIRTIO_MAX_QUEUES 64
/* Chains a device serves per wakeup of a queue before it yields (virtio_dev_requeue()). */
#define VIRTIO_BUDGET 256

struct virtio_dev;
struct event_loop;

struct virtio_dev_ops {
    const char *name;      /* "virtio-blk" ... */
    uint16_t device_id;    /* VIRTIO_ID_* */
    uint32_t pci_class;    /* PCI class code the transport shows */
    /* Device configuration space: copy len bytes at off (within dev->config_len) to/from buf.
     * Optional (a device without config space leaves both NULL). Lock held. */
    void (*config_read)(struct virtio_dev *dev, unsigned off, void *buf, unsigned len);
    void (*config_write)(struct virtio_dev *dev, unsigned off, const void *buf, unsigned len);
    /* The driver set FEATURES_OK with dev->features: refuse (-EINVAL) a combination the device
     * cannot serve, or configure backends for it (net offloads). Optional. Lock held. */
    int (*features_ok)(struct virtio_dev *dev);
    /* The driver set DRIVER_OK: a device whose queues a backend outside this thread serves
     * (vhost) starts it here. Returns 0, or -errno to put the device in NEEDS_RESET. Optional.
     * vCPU thread, lock held. */
    int (*driver_ok)(struct virtio_dev *dev);
    /* The driver kicked queue q (or the device was woken for it): serve it. I/O thread, lock
     * held. */
    void (*queue_notify)(struct virtio_dev *dev, unsigned q);
    /* Device reset: forget requests in flight (their completions must check dev->generation)
     * and backend state tied to the driver. Lock held. Optional. */
    void (*reset)(struct virtio_dev *dev);
    /* Free the device (the transport is gone, the I/O thread stopped). */
    void (*destroy)(struct virtio_dev *dev);
};

/* What a device asks of its transport. */
struct virtio_transport {
    /* Interrupt the driver for queue q if it wants one (EVENT_IDX / NO_INTERRUPT). Lock held. */
    void (*queue_interrupt)(void *opaque, unsigned q);
    /* Device configuration changed (or NEEDS_RESET was set): config interrupt. Lock held. */
    void (*config_interrupt)(void *opaque);
    /* Serve queue q again later, as if kicked: a device that used up its budget yields so that
     * one busy (or hostile) queue cannot hold the I/O thread. Any thread. */
    void (*requeue)(void *opaque, unsigned q);
    /* Hand queue q to a backend that serves it without the I/O thread (vhost): the transport
     * stops reading the queue's kick eventfd and returns it in *kick_fd (the guest's
     * notifications keep landing there), and returns in *call_fd an eventfd the backend writes
     * to interrupt the driver for q. Returns 0 or -errno. Lock held. */
    int (*backend_attach)(void *opaque, unsigned q, int *kick_fd, int *call_fd);
    /* Take queue q back: the I/O thread reads its kicks again. Lock held. */
    void (*backend_detach)(void *opaque, unsigned q);
    void *opaque;
};

struct virtio_dev {
    const struct virtio_dev_ops *ops;
    const char *name;
    const struct guest_mem *mem;
    struct event_loop *loop;        /* the I/O thread queue work runs on */
    pthread_mutex_t lock;
    uint64_t host_features;         /* device-specific bits offered (transport adds its own) */
    uint64_t features;              /* what the driver acknowledged */
    uint8_t status;
    uint32_t generation;            /* bumped on every reset: stale completions are dropped */
    int inflight;                   /* requests still owned by a backend (reset waits for 0) */
    unsigned num_queues;
    uint16_t queue_max;             /* largest queue size offered */
    unsigned config_len;            /* bytes of device configuration space */
    struct virtq vqs[VIRTIO_MAX_QUEUES];
    struct virtio_transport transport;
    /* statistics */
    uint64_t stat_kicks, stat_interrupts, stat_errors;
};

/* Fill the common part (called by each device's create function). */
void virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, const char *name,
                     const struct guest_mem *mem, unsigned num_queues, uint16_t queue_max,
                     unsigned config_len);
/* Bring the common part back to its power-on state (status 0, queues unconfigured, features
 * cleared) and call ops->reset. Lock held. */
void virtio_dev_reset(struct virtio_dev *dev);
/* Release what virtio_dev_init() set up. */
void virtio_dev_fini(struct virtio_dev *dev);
/* True when the feature bit was negotiated. */
static inline bool virtio_has_feature(const struct virtio_dev *dev, unsigned bit)
{
    return (dev->features >> bit) & 1;
}
/* True while the driver lets the device work (DRIVER_OK, not NEEDS_RESET). */
bool virtio_dev_running(const struct virtio_dev *dev);
/* After pushing used entries on queue q: interrupt the driver if it asked to be. Lock held. */
void virtio_dev_queue_done(struct virtio_dev *dev, unsigned q);
/* Ask to be woken for queue q again (the budget ran out with work left). Lock held. */
void virtio_dev_requeue(struct virtio_dev *dev, unsigned q);
/* A queue or request was malformed: mark the device NEEDS_RESET and tell the driver. Lock
 * held. */
void virtio_dev_set_needs_reset(struct virtio_dev *dev);

#endif
