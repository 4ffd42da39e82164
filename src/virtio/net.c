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

#include "util/iov.h"
#include "util/log.h"
#include "virtio/vhost_net.h"
#include "vmm/event.h"
#include "vmm/memory.h"

#define NET_RX 0
#define NET_TX 1
#define NET_QUEUE_SIZE 256
#define NET_CONFIG_LEN 8 /* mac[6], status */
#define NET_BUDGET 256   /* frames per wakeup before letting other devices run */
/* The largest frame the tap hands over, with its vnet header: a 64 KiB GSO packet behind
 * Ethernet and VLAN headers. Mergeable receive buffers are gathered until they hold this much. */
#define NET_MAX_FRAME (VIRTIO_NET_HDR_LEN + 14 + 4 + 65535)
#define NET_RX_MAX_IOV 1024 /* UIO_MAXIOV: the most one readv takes */

/* The receive buffers gathered for one frame when they are mergeable (VIRTIO_NET_F_MRG_RXBUF):
 * several chains, each one buffer of the frame; used[k] holds chain k's head and capacity,
 * then the bytes written into it. */
struct net_rx_bufs {
    unsigned nchains, niov;
    size_t cap;
    struct virtq_used_elem used[NET_QUEUE_SIZE];
    struct iovec iov[NET_RX_MAX_IOV];
};

struct virtio_net {
    struct virtio_dev dev;
    struct event_loop *loop;
    int tap_fd;
    bool rx_watch;     /* the tap is in the loop for EPOLLIN */
    bool tx_blocked;   /* the tap refused a frame: wait for EPOLLOUT */
    char ifname[IFNAMSIZ];
    uint8_t config[NET_CONFIG_LEN];
    struct virtq_elem elem;
    struct net_rx_bufs rxb;
    /* A frame read ahead of the guest's buffers: the ring held less than NET_MAX_FRAME, so the
     * next frame was read here to learn its size, and waits until its buffers are posted. */
    uint8_t *pending;
    size_t pending_len;
    uint64_t stat_rx_frames, stat_tx_frames, stat_rx_bytes, stat_tx_bytes, stat_tx_dropped;
    uint64_t stat_rx_dropped; /* frames larger than every buffer the ring can hold */
    struct vhost_net *vhost;  /* the kernel's data path, when the host has it and it is wanted */
    bool vhost_on;            /* vhost serves both queues: this thread leaves tap and rings */
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

/* num_buffers of the frame's virtio_net_hdr_v1 (bytes 10-11, little-endian): how many receive
 * buffers it took. The tap leaves the field alone. */
static void net_set_num_buffers(const struct iovec *iov, unsigned cnt, uint16_t n)
{
    uint8_t le[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
    iov_from_buf(iov, cnt, 10, le, sizeof(le));
}

unsigned virtio_net_spread(struct virtq_used_elem *bufs, unsigned n, size_t len)
{
    unsigned k = 0;
    for (; k < n && (len > 0 || k == 0); k++) {
        uint32_t take = bufs[k].len < len ? bufs[k].len : (uint32_t)len;
        bufs[k].len = take;
        len -= take;
    }
    return k;
}

/* No receive buffers, or too few for the frame waiting: listen for the driver's kick instead of
 * the tap. had: the chains the driver has posted that we gave back unused; it will not kick for
 * those again, so the kick is asked for beyond them. Returns true when more arrived meanwhile
 * (try again at once). */
static bool net_rx_wait_for_buffers(struct virtio_net *n, unsigned had)
{
    struct virtq *vq = &n->dev.vqs[NET_RX];
    virtq_notify_beyond(vq, (int)had);
    if (virtq_avail_count(vq) > had)
        return true;
    n->rx_watch = false;
    net_watch(n);
    return false;
}

/* Hand a frame of len bytes, written into the chains of used[] (count of them, whose buffers are
 * iov), to the driver. False when the queue broke. */
static bool net_rx_publish(struct virtio_net *n, const struct iovec *iov, unsigned niov,
                           const struct virtq_used_elem *used, unsigned count, size_t len)
{
    net_set_num_buffers(iov, niov, (uint16_t)count);
    n->stat_rx_frames++;
    n->stat_rx_bytes += len;
    return virtq_push_batch(&n->dev.vqs[NET_RX], used, count) == 0;
}

/* Tap to guest: one frame per receive chain (no mergeable buffers). Returns whether any frame
 * was delivered. */
static bool net_rx_whole(struct virtio_net *n)
{
    struct virtq *vq = &n->dev.vqs[NET_RX];
    bool got = false;
    for (unsigned budget = NET_BUDGET; budget; budget--) {
        int rc = virtq_pop(vq, &n->elem);
        if (rc < 0)
            break;
        if (rc == 0) {
            /* No buffers: stop watching the tap until the driver adds some (its kick). */
            if (net_rx_wait_for_buffers(n, 0))
                continue;
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
        struct virtq_used_elem one = {e->head, (uint32_t)r};
        if (!net_rx_publish(n, e->iov, e->nin, &one, 1, (size_t)r))
            break;
        got = true;
    }
    return got;
}

/* Pop receive chains until they hold want bytes. Returns 1 (enough), 0 (the ring ran dry first),
 * 2 (one frame can take no more: the scatter list or the chain count is at its limit) or -1 (a
 * malformed chain: the queue is broken). */
static int net_rx_gather(struct virtio_net *n, size_t want)
{
    struct virtq *vq = &n->dev.vqs[NET_RX];
    struct net_rx_bufs *b = &n->rxb;
    b->nchains = b->niov = 0;
    b->cap = 0;
    while (b->cap < want) {
        if (b->nchains == NET_QUEUE_SIZE)
            return 2;
        int rc = virtq_pop(vq, &n->elem);
        if (rc <= 0)
            return rc < 0 ? -1 : 0;
        struct virtq_elem *e = &n->elem;
        if (e->nout || e->in_len < VIRTIO_NET_HDR_LEN) {
            virtq_fail_chain(vq); /* each mergeable buffer holds at least the header (5.1.6.3) */
            return -1;
        }
        if (b->niov + e->nin > NET_RX_MAX_IOV) {
            virtq_unpop(vq);
            return 2;
        }
        memcpy(&b->iov[b->niov], e->iov, e->nin * sizeof(e->iov[0]));
        b->niov += e->nin;
        uint32_t cap = e->in_len > UINT32_MAX ? UINT32_MAX : (uint32_t)e->in_len;
        b->used[b->nchains++] = (struct virtq_used_elem){e->head, cap};
        b->cap += cap;
    }
    return 1;
}

/* Give back the gathered chains from index from on (popped last, so returned first). */
static void net_rx_return(struct virtio_net *n, unsigned from)
{
    for (unsigned k = n->rxb.nchains; k > from; k--)
        virtq_unpop(&n->dev.vqs[NET_RX]);
    n->rxb.nchains = from;
}

/* Tap to guest with mergeable buffers: a frame spreads over as many chains as it needs. While
 * the ring holds room for the largest frame, frames are read straight into the guest's
 * buffers; otherwise one is read aside first to learn its size. Returns whether any frame was
 * delivered. */
static bool net_rx_mergeable(struct virtio_net *n)
{
    struct net_rx_bufs *b = &n->rxb;
    bool got = false;
    for (unsigned budget = NET_BUDGET; budget; budget--) {
        int rc = net_rx_gather(n, n->pending_len ? n->pending_len : NET_MAX_FRAME);
        if (rc < 0)
            break;
        ssize_t r = -1;
        if (rc == 1 && !n->pending_len) {
            r = readv(n->tap_fd, b->iov, (int)b->niov);
        } else {
            if (!n->pending_len) {
                if (b->nchains == 0) {
                    if (net_rx_wait_for_buffers(n, 0))
                        continue;
                    break;
                }
                ssize_t got_len = read(n->tap_fd, n->pending, NET_MAX_FRAME);
                if (got_len >= VIRTIO_NET_HDR_LEN)
                    n->pending_len = (size_t)got_len;
                else
                    r = got_len;
            }
            if (n->pending_len) {
                if (n->pending_len > b->cap) {
                    unsigned had = b->nchains;
                    net_rx_return(n, 0);
                    if (rc == 2 || had >= n->dev.vqs[NET_RX].size) {
                        /* Not even a full ring of these buffers holds it: dropped, as a NIC
                         * drops what does not fit, or receiving would stop for good. */
                        n->pending_len = 0;
                        n->stat_rx_dropped++;
                        continue;
                    }
                    if (net_rx_wait_for_buffers(n, had))
                        continue;
                    break;
                }
                iov_from_buf(b->iov, b->niov, 0, n->pending, n->pending_len);
                r = (ssize_t)n->pending_len;
                n->pending_len = 0;
            }
        }
        if (r < VIRTIO_NET_HDR_LEN) {
            net_rx_return(n, 0);
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                log_debug("%s: read: %s", n->ifname, strerror(errno));
            if (r < 0)
                break;
            continue; /* a runt without its header: dropped */
        }
        unsigned used = virtio_net_spread(b->used, b->nchains, (size_t)r);
        net_rx_return(n, used);
        if (!net_rx_publish(n, b->iov, b->niov, b->used, used, (size_t)r))
            break;
        got = true;
    }
    return got;
}

static void net_rx(struct virtio_net *n)
{
    struct virtio_dev *dev = &n->dev;
    bool mergeable = virtio_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF);
    bool got = mergeable ? net_rx_mergeable(n) : net_rx_whole(n);
    if (dev->vqs[NET_RX].broken)
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
    if (n->vhost_on) {
        /* An event picked up before vhost took the tap over (net_driver_ok unwatched it). */
    } else if (!virtio_dev_running(dev)) {
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

/* The rings and eventfds of queue q for vhost; false if the transport cannot hand it over. */
static bool net_vhost_queue(struct virtio_net *n, unsigned q, struct vhost_queue *out)
{
    struct virtq *vq = &n->dev.vqs[q];
    const struct virtio_transport *t = &n->dev.transport;
    if (!vq->ready || !t->backend_attach)
        return false;
    /* virtq_enable() checked that each ring lies inside one RAM region. */
    *out = (struct vhost_queue){
        .desc = gpa_ptr(n->dev.mem, vq->desc_gpa, 16ULL * vq->size),
        .avail = gpa_ptr(n->dev.mem, vq->avail_gpa, virtq_avail_bytes(vq->size)),
        .used = gpa_ptr(n->dev.mem, vq->used_gpa, virtq_used_bytes(vq->size)),
        .size = vq->size,
        .last_avail = vq->last_avail,
    };
    return out->desc && out->avail && out->used &&
           t->backend_attach(t->opaque, q, &out->kick_fd, &out->call_fd) == 0;
}

static void net_vhost_detach(struct virtio_net *n)
{
    const struct virtio_transport *t = &n->dev.transport;
    for (unsigned q = 0; q < 2 && t->backend_detach; q++)
        t->backend_detach(t->opaque, q);
}

/* DRIVER_OK: with vhost, hand it both queues and the tap. A driver that left a queue disabled
 * gets the userspace path, which serves whatever it enabled. */
static int net_driver_ok(struct virtio_dev *dev)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    if (!n->vhost)
        return 0;
    struct vhost_queue q[2];
    if (!net_vhost_queue(n, NET_RX, &q[0]) || !net_vhost_queue(n, NET_TX, &q[1])) {
        net_vhost_detach(n);
        log_info("%s: a queue is not enabled: frames take the userspace path", n->ifname);
        return 0;
    }
    char why[160];
    int rc = vhost_net_start(n->vhost, dev->features, dev->mem, q, n->tap_fd, why, sizeof(why));
    if (rc < 0) {
        net_vhost_detach(n);
        log_warn("%s: %s", n->ifname, why);
        return rc;
    }
    n->vhost_on = true;
    n->rx_watch = n->tx_blocked = false;
    net_watch(n);
    return 0;
}

static void net_reset(struct virtio_dev *dev)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    if (n->vhost_on) {
        vhost_net_stop(n->vhost);
        net_vhost_detach(n);
        n->vhost_on = false;
    }
    n->rx_watch = false;
    n->tx_blocked = false;
    n->pending_len = 0; /* a frame read ahead for the old rings is dropped, as a NIC reset would */
    if (n->tap_fd >= 0)
        net_watch(n);
}

static void net_destroy(struct virtio_dev *dev)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    vhost_net_close(n->vhost); /* before the tap it uses */
    if (n->tap_fd >= 0)
        close(n->tap_fd);
    virtio_dev_fini(dev);
    free(n->pending);
    free(n);
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .pci_class = 0x020000,
    .config_read = net_config_read,
    .features_ok = net_features_ok,
    .driver_ok = net_driver_ok,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .destroy = net_destroy,
};

/* Open tap ifname with the vnet header and no offloads yet: the fd, or -errno with the reason
 * in why; its kernel name goes to name. */
static int net_open_tap(const char *ifname, char name[IFNAMSIZ], char *why, unsigned why_len)
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
    snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
    return fd;
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
    char name[IFNAMSIZ];
    int fd = net_open_tap(ifname, name, why, why_len);
    if (fd < 0) {
        errno = -fd;
        return NULL;
    }
    return virtio_net_create_on_fd(mem, loop, fd, name, mac, why, why_len);
}

struct virtio_dev *virtio_net_create_on_fd(const struct guest_mem *mem, struct event_loop *loop,
                                           int fd, const char *name, const uint8_t mac[6],
                                           char *why, unsigned why_len)
{
    struct virtio_net *n = calloc(1, sizeof(*n));
    uint8_t *pending = malloc(NET_MAX_FRAME);
    if (!n || !pending) {
        snprintf(why, why_len, "out of memory");
        free(n);
        free(pending);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    virtio_dev_init(&n->dev, &net_ops, "virtio-net", mem, 2, NET_QUEUE_SIZE, NET_CONFIG_LEN);
    n->tap_fd = fd;
    n->pending = pending;
    n->loop = loop;
    snprintf(n->ifname, sizeof(n->ifname), "%s", name);
    int rc = loop ? event_loop_add(loop, n->tap_fd, 0, net_tap_ready, n) : 0;
    if (rc < 0) {
        snprintf(why, why_len, "--net tap=%s: cannot watch it: %s", name, strerror(-rc));
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
                           (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) |
                           (1ULL << VIRTIO_NET_F_MRG_RXBUF);
    return &n->dev;
}

int virtio_net_use_vhost(struct virtio_dev *dev, char *why, unsigned why_len)
{
    struct virtio_net *n = (struct virtio_net *)dev;
    if (n->vhost)
        return 0;
    struct vhost_net *v = vhost_net_open(why, why_len);
    if (!v)
        return -errno;
    /* The transport always offers these; a kernel without one of them cannot serve the rings
     * the driver will set up. */
    uint64_t need = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX) |
                    (1ULL << VIRTIO_F_INDIRECT_DESC);
    uint64_t have = vhost_net_features(v);
    if ((have & need) != need) {
        snprintf(why, why_len, "vhost-net: the kernel lacks feature bits 0x%llx",
                 (unsigned long long)(need & ~have));
        vhost_net_close(v);
        return -ENOTSUP;
    }
    if (!(have & (1ULL << VIRTIO_NET_F_MRG_RXBUF)))
        dev->host_features &= ~(1ULL << VIRTIO_NET_F_MRG_RXBUF);
    n->vhost = v;
    return 0;
}
