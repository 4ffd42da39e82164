/* vhost-net: the host kernel's data path for virtio-net (/dev/vhost-net). Once started, the
 * kernel's vhost worker takes frames straight from the transmit ring to the tap and from the
 * tap into the receive ring: the guest's kick eventfds wake it, and it signals completions on
 * call eventfds. The VMM only sets it up and tears it down; no frame passes through userspace.
 *
 * The kernel reaches guest memory only through the table given here (guest RAM's regions), and
 * it checks every ring address and descriptor against that table itself, so a hostile guest
 * gets no further through vhost than through the userspace path. */
#ifndef VIREO_VIRTIO_VHOST_NET_H
#define VIREO_VIRTIO_VHOST_NET_H

#include <stdint.h>

struct guest_mem;
struct vhost_net;

/* One virtqueue as vhost needs it: its rings' host addresses, size, where the device starts
 * reading the avail ring, and the eventfds the guest kicks and the kernel signals. */
struct vhost_queue {
    void *desc, *avail, *used;
    uint16_t size;
    uint16_t last_avail;
    int kick_fd, call_fd;
};

/* Open /dev/vhost-net and become its owner. NULL with errno set and a one-line reason in
 * why (ENOENT: the host has no vhost-net). */
struct vhost_net *vhost_net_open(char *why, unsigned why_len);
/* The feature bits the kernel serves (VHOST_GET_FEATURES). */
uint64_t vhost_net_features(const struct vhost_net *v);
/* Start serving: the negotiated features (those the kernel knows), guest RAM, the receive
 * queue q[0] and the transmit queue q[1], and tap_fd (a tap opened with IFF_VNET_HDR whose
 * header size matches the features) as their backend. Returns 0, or -errno with a reason in
 * why; on failure nothing is left attached. */
int vhost_net_start(struct vhost_net *v, uint64_t features, const struct guest_mem *mem,
                    const struct vhost_queue q[2], int tap_fd, char *why, unsigned why_len);
/* Stop: detach the tap and the eventfds (waits for the worker to finish what it started). */
void vhost_net_stop(struct vhost_net *v);
/* Close (stops first if needed). NULL is fine. */
void vhost_net_close(struct vhost_net *v);

#endif
