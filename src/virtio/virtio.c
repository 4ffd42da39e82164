#include "virtio/virtio.h"

#include <string.h>

#include "util/log.h"

void virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, const char *name,
                     const struct guest_mem *mem, unsigned num_queues, uint16_t queue_max,
                     unsigned config_len)
{
    memset(dev, 0, sizeof(*dev));
    dev->ops = ops;
    dev->name = name;
    dev->mem = mem;
    dev->num_queues = num_queues > VIRTIO_MAX_QUEUES ? VIRTIO_MAX_QUEUES : num_queues;
    dev->queue_max = queue_max;
    dev->config_len = config_len;
    /* Recursive: a backend may complete an earlier request from inside a submit made with the
     * lock held (the block layer drains before a discard), and that completion locks again. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&dev->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    for (unsigned q = 0; q < dev->num_queues; q++)
        virtq_reset(&dev->vqs[q], mem, q, name);
}

void virtio_dev_reset(struct virtio_dev *dev)
{
    dev->status = 0;
    dev->features = 0;
    dev->generation++;
    for (unsigned q = 0; q < dev->num_queues; q++)
        virtq_reset(&dev->vqs[q], dev->mem, q, dev->name);
    if (dev->ops->reset)
        dev->ops->reset(dev);
}

void virtio_dev_fini(struct virtio_dev *dev)
{
    pthread_mutex_destroy(&dev->lock);
}

bool virtio_dev_running(const struct virtio_dev *dev)
{
    return (dev->status & VIRTIO_STATUS_DRIVER_OK) && !(dev->status & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_dev_queue_done(struct virtio_dev *dev, unsigned q)
{
    if (q >= dev->num_queues)
        return;
    if (dev->vqs[q].broken) {
        virtio_dev_set_needs_reset(dev);
        return;
    }
    if (virtq_should_notify(&dev->vqs[q]) && dev->transport.queue_interrupt) {
        dev->stat_interrupts++;
        dev->transport.queue_interrupt(dev->transport.opaque, q);
    }
}

void virtio_dev_requeue(struct virtio_dev *dev, unsigned q)
{
    if (dev->transport.requeue)
        dev->transport.requeue(dev->transport.opaque, q);
}

void virtio_dev_set_needs_reset(struct virtio_dev *dev)
{
    dev->stat_errors++;
    if (dev->status & VIRTIO_STATUS_NEEDS_RESET)
        return;
    /* Before DRIVER_OK the driver is not listening for config changes; the flag alone tells it. */
    dev->status |= VIRTIO_STATUS_NEEDS_RESET;
    if ((dev->status & VIRTIO_STATUS_DRIVER_OK) && dev->transport.config_interrupt)
        dev->transport.config_interrupt(dev->transport.opaque);
}
