/* virtio-console (virtio 1.x, 5.3), one port without multiport: the guest's hvc0. Output goes
 * to a callback (the VMM's console fd); input is offered by the main loop and taken as far as
 * the guest has posted receive buffers. */
#ifndef VIREO_VIRTIO_CONSOLE_H
#define VIREO_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"

struct virtio_console_config {
    /* The guest wrote len bytes (I/O thread). */
    void (*out)(void *opaque, const uint8_t *buf, size_t len);
    /* The guest posted receive buffers after input was refused: offer it again (I/O thread). */
    void (*rx_ready)(void *opaque);
    void *opaque;
};

/* Returns NULL with errno set. */
struct virtio_dev *virtio_console_create(const struct guest_mem *mem,
                                         const struct virtio_console_config *cfg);
/* Offer input; returns how many bytes the guest took (0 when it has no buffers posted). Any
 * thread. */
size_t virtio_console_input(struct virtio_dev *dev, const uint8_t *buf, size_t len);

#endif
