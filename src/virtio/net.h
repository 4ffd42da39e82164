/* virtio-net (virtio 1.x, 5.1) over a Linux tap device: one receive and one transmit queue, the
 * tap opened with IFF_VNET_HDR so checksum and segmentation offloads pass through untouched
 * (TUNSETOFFLOAD follows what the driver negotiated), the MAC chosen by the user or derived
 * stably from the VM name, the link reported up. Frames move on the I/O thread. */
#ifndef VIREO_VIRTIO_NET_H
#define VIREO_VIRTIO_NET_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/queue.h"
#include "virtio/virtio.h"

struct event_loop;

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_LEN 12 /* struct virtio_net_hdr_v1: VERSION_1 always has num_buffers */

/* Open tap ifname (created if it does not exist) and create the device. Returns NULL with errno
 * set and a one-line reason in why. */
struct virtio_dev *virtio_net_create(const struct guest_mem *mem, struct event_loop *loop,
                                     const char *ifname, const uint8_t mac[6], char *why,
                                     unsigned why_len);
/* The same over an fd the caller opened that behaves like a tap with a vnet header (one frame
 * per read and write; tests use a SOCK_SEQPACKET socket pair). The device owns fd from here,
 * also when it fails. name labels messages. */
struct virtio_dev *virtio_net_create_on_fd(const struct guest_mem *mem, struct event_loop *loop,
                                           int fd, const char *name, const uint8_t mac[6],
                                           char *why, unsigned why_len);
/* Move frames through the host kernel's vhost-net from the next DRIVER_OK on (before the guest
 * starts). Returns 0, or -errno with a one-line reason in why (-ENOENT: the host has no
 * /dev/vhost-net); the device is unchanged then and uses the userspace path. */
int virtio_net_use_vhost(struct virtio_dev *dev, char *why, unsigned why_len);
/* Spread a received frame of len bytes over mergeable receive buffers in order: bufs[k].len
 * holds buffer k's capacity and becomes the bytes written into it. Returns how many buffers
 * the frame takes (at least one); the caller made sure their capacity covers len. */
unsigned virtio_net_spread(struct virtq_used_elem *bufs, unsigned n, size_t len);
/* A locally administered unicast MAC derived from the VM name and the NIC index: the same VM
 * gets the same addresses on every run. */
void virtio_net_default_mac(const char *vm_name, unsigned index, uint8_t mac[6]);

#endif
