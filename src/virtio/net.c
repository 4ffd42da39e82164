#include "virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/event.h"

#define NET_RX 0
#define NET_TX 1
#define NET_QUEUE_SIZE 256
#define NET_CONFIG_LEN 8 /* mac[6], status */
#define NET_BUDGET 256   /* frames per wakeup before letting other devices run */

struct virtio_net {
    struct virtio_dev dev;
    struct event_loop *loop;
    int tap_fd;
    bool rx_watch;     /* the tap is in the loop for EPOLLIN */
    bool tx_blocked;   /* the tap refused a frame: wait for EPOLLOUT */
    char ifname[IFNAMSIZ];
    uint8_t config[NET_CONFIG_LEN];
    struct virtq_elem elem;
    uint64_t stat_rx_frames, stat_tx_frames, stat_rx_bytes, stat_tx_bytes, stat_tx_dropped;
};

void virtio_net_default_mac(const char *vm_name, unsigned index, uint8_t mac[6])
{
    /* FNV-1a over the name and the index: stable, and different per VM and per NIC. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = vm_name ? vm_name : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    h = (h ^ (index + 1)) * 0x100000001b3ULL;
    mac[0] = 0x02; /* locally administered, unicast */
    for (unsigned i = 1; i < 6; i++)
        mac[i] = (uint8_t)(h >> (8 * i));
}

static void net_config_read(struct virtio_dev *dev, unsigned off, void *buf, unsigned len)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    memcpy(buf, n->config + off, len);
}

static void net_watch(struct virtio_net *n)
{
    uint32_t ev = (n->rx_watch ? EPOLLIN : 0) | (n->tx_blocked ? EPOLLOUT : 0);
    if (n->loop)
        event_loop_modify(n->loop, n->tap_fd, ev);
}

/* Set the tap's offloads to what the guest can receive: the tap then hands us (and the guest)
 * partially checksummed and large segments only when the driver said it copes. */
static int net_features_ok(struct virtio_dev *dev)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    unsigned off = 0;
    if (virtio_has_feature(dev, VIRTIO_NET_F_GUEST_CSUM)) {
        off |= TUN_F_CSUM;
        if (virtio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO4))
            off |= TUN_F_TSO4;
        if (virtio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO6))
            off |= TUN_F_TSO6;
        if (virtio_has_feature(dev, VIRTIO_NET_F_GUEST_ECN))
            off |= TUN_F_TSO_ECN;
        if (virtio_has_feature(dev, VIRTIO_NET_F_GUEST_UFO))
            off |= TUN_F_UFO;
    }
    if (ioctl(n->tap_fd, TUNSETOFFLOAD, off) < 0) {
        log_warn("%s: TUNSETOFFLOAD 0x%x: %s", n->ifname, off, strerror(errno));
        return -EINVAL;
    }
    return 0;
}

/* Guest to tap. Each chain is a virtio_net_hdr_v1 followed by the frame; the tap's vnet header
 * has the same layout, so the chain is written as it is. */
static void net_tx(struct virtio_net *n)
{
    struct virtio_dev *dev = &n->dev;
    struct virtq *vq = &dev->vqs[NET_TX];
    unsigned budget = VIRTIO_BUDGET;
    int rc = 0;
    do {
        /* Every round costs budget, even an empty one: a guest whose rings overlap can make
         * the notify toggling itself look like new work. */
        budget--;
        virtq_set_notify(vq, false);
        while (budget && (rc = virtq_pop(vq, &n->elem)) > 0) {
            budget--;
            struct virtq_elem *e = &n->elem;
            if (e->nin || e->out_len < VIRTIO_NET_HDR_LEN) {
                virtq_fail_chain(vq); /* transmit buffers are device-readable only */
                break;
            }
            ssize_t w = writev(n->tap_fd, e->iov, (int)e->nout);
            if (w < 0 && errno == EAGAIN) {
                virtq_unpop(vq);
                n->tx_blocked = true;
                net_watch(n);
                break;
            }
            if (w < 0) {
                n->stat_tx_dropped++; /* the tap refused it (bad frame, down): drop, go on */
            } else {
                n->stat_tx_frames++;
                n->stat_tx_bytes += (uint64_t)w;
            }
            if (virtq_push(vq, e->head, 0) < 0)
                break;
        }
        virtq_set_notify(vq, true);
    } while (budget && rc >= 0 && !n->tx_blocked && !vq->broken && virtq_has_work(vq));
    virtio_dev_queue_done(dev, NET_TX);
    if (!budget && !vq->broken)
        virtio_dev_requeue(dev, NET_TX);
}

/* Store a little-endian 16-bit value at byte off of an iovec (possibly split across two). */
static void net_iov_put16(const struct iovec *iov, unsigned cnt, size_t off, uint16_t v)
{
    uint8_t bytes[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    unsigned done = 0;
    for (unsigned i = 0; i < cnt && done < 2; i++) {
        size_t len = iov[i].iov_len;
        if (off >= len) {
            off -= len;
            continue;
        }
        while (done < 2 && off < len)
            ((uint8_t *)iov[i].iov_base)[off++] = bytes[done++];
        off = 0; /* the rest starts at the next buffer */
    }
}

/* Tap to guest: one frame per receive chain (no mergeable buffers). */
static void net_rx(struct virtio_net *n)
{
    struct virtio_dev *dev = &n->dev;
    struct virtq *vq = &dev->vqs[NET_RX];
    bool got = false;
    for (unsigned budget = NET_BUDGET; budget; budget--) {
        int rc = virtq_pop(vq, &n->elem);
        if (rc < 0)
            break;
        if (rc == 0) {
            /* No buffers: stop watching the tap until the driver adds some (its kick). */
            virtq_set_notify(vq, true);
            if (virtq_has_work(vq))
                continue;
            n->rx_watch = false;
            net_watch(n);
            break;
        }
        struct virtq_elem *e = &n->elem;
        if (e->nout || e->in_len < VIRTIO_NET_HDR_LEN) {
            virtq_fail_chain(vq);
            break;
        }
        ssize_t r = readv(n->tap_fd, e->iov, (int)e->nin);
        if (r < 0) {
            virtq_unpop(vq);
            if (errno != EAGAIN && errno != EINTR)
                log_debug("%s: read: %s", n->ifname, strerror(errno));
            break;
        }
        if (r < VIRTIO_NET_HDR_LEN) {
            virtq_unpop(vq);
            continue;
        }
        /* num_buffers: always 1 without VIRTIO_NET_F_MRG_RXBUF; the tap leaves it alone. */
        net_iov_put16(e->iov, e->nin, 10, 1);
        n->stat_rx_frames++;
        n->stat_rx_bytes += (uint64_t)r;
        if (virtq_push(vq, e->head, (uint32_t)r) < 0)
            break;
        got = true;
    }
    if (vq->broken)
        virtio_dev_set_needs_reset(dev);
    else if (got)
        virtio_dev_queue_done(dev, NET_RX);
}

static void net_queue_notify(struct virtio_dev *dev, unsigned q)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    if (q == NET_TX) {
        net_tx(n);
    } else if (q == NET_RX) {
        /* New receive buffers: listen to the tap again. */
        if (!n->rx_watch) {
            n->rx_watch = true;
            net_watch(n);
        }
        net_rx(n);
    }
}

/* I/O thread: the tap has a frame, or room again. */
static void net_tap_ready(void *opaque, uint32_t events)
{
    struct virtio_net *n = opaque;
    struct virtio_dev *dev = &n->dev;
    pthread_mutex_lock(&dev->lock);
    if (!virtio_dev_running(dev)) {
        n->rx_watch = false;
        n->tx_blocked = false;
        net_watch(n); /* nothing to do until the driver starts the device */
    } else {
        if ((events & EPOLLOUT) && n->tx_blocked) {
            n->tx_blocked = false;
            net_watch(n);
            net_tx(n);
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            net_rx(n);
    }
    pthread_mutex_unlock(&dev->lock);
}

static void net_reset(struct virtio_dev *dev)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    n->rx_watch = false;
    n->tx_blocked = false;
    if (n->tap_fd >= 0)
        net_watch(n);
}

static void net_destroy(struct virtio_dev *dev)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    if (n->tap_fd >= 0)
        close(n->tap_fd);
    virtio_dev_fini(dev);
    free(n);
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .pci_class = 0x020000,
    .config_read = net_config_read,
    .features_ok = net_features_ok,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .destroy = net_destroy,
};

static int net_open_tap(struct virtio_net *n, const char *ifname, char *why, unsigned why_len)
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "--net tap=%s: /dev/net/tun: %s", ifname, strerror(errno));
        return -errno;
    }
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    int hdr = VIRTIO_NET_HDR_LEN;
    const char *step = NULL;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        step = "TUNSETIFF";
    else if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
        step = "TUNSETVNETHDRSZ";
    else if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
        step = "TUNSETOFFLOAD";
    if (step) {
        int err = errno;
        snprintf(why, why_len, "--net tap=%s: %s: %s", ifname, step, strerror(err));
        close(fd);
        return -err;
    }
    snprintf(n->ifname, sizeof(n->ifname), "%s", ifr.ifr_name);
    n->tap_fd = fd;
    return 0;
}

struct virtio_dev *virtio_net_create(const struct guest_mem *mem, struct event_loop *loop,
                                     const char *ifname, const uint8_t mac[6], char *why,
                                     unsigned why_len)
{
    if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ) {
        snprintf(why, why_len, "--net tap=%s: interface names have 1 to %d characters",
                 ifname ? ifname : "", IFNAMSIZ - 1);
        errno = EINVAL;
        return NULL;
    }
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(why, why_len, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    virtio_dev_init(&n->dev, &net_ops, "virtio-net", mem, 2, NET_QUEUE_SIZE, NET_CONFIG_LEN);
    n->tap_fd = -1;
    n->loop = loop;
    int rc = net_open_tap(n, ifname, why, why_len);
    if (rc == 0 && loop && (rc = event_loop_add(loop, n->tap_fd, 0, net_tap_ready, n)) < 0)
        snprintf(why, why_len, "--net tap=%s: cannot watch it: %s", ifname, strerror(-rc));
    if (rc < 0) {
        net_destroy(&n->dev);
        errno = -rc;
        return NULL;
    }
    memcpy(n->config, mac, 6);
    n->config[6] = VIRTIO_NET_S_LINK_UP;
    n->dev.host_features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
                           (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
                           (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6) |
                           (1ULL << VIRTIO_NET_F_GUEST_ECN) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |
                           (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN);
    return &n->dev;
}
