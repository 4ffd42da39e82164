/* libFuzzer target for virtio-net's frame handling behind its two virtqueues: the input gives
 * both queues' sizes and ring addresses, the negotiated features (EVENT_IDX, INDIRECT_DESC,
 * MRG_RXBUF), up to eight frames of chosen lengths waiting on the "tap", and the first 64 KiB
 * of a 16 MiB guest RAM (rings, descriptors, transmit data). The device transmits what the
 * guest queued and receives the waiting frames into whatever buffers the guest posted. The tap
 * is one end of a SOCK_SEQPACKET socket pair: one frame per read and write, as a tap. No input
 * may crash it, loop, or make it touch memory outside guest RAM. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "virtio/net.h"

#define FUZZ_WINDOW 0x10000u
#define FUZZ_HEADER 20      /* sizes, features, frame count, six ring addresses */
#define FUZZ_MAX_FRAMES 8

static struct guest_mem mem;
static struct virtio_dev *dev;
static int tap_fd = -1, peer_fd = -1;
static uint8_t frame[70000];

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void fuzz_init(void)
{
    log_set_level(LOG_ERR);
    if (guest_mem_create(&mem, 16ULL << 20, "fuzz-net") < 0)
        abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    /* Room for every frame of an input, the largest ones included. */
    int big = 4 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    tap_fd = sv[0];
    peer_fd = sv[1];
    static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 1};
    char why[160];
    dev = virtio_net_create_on_fd(&mem, NULL, tap_fd, "fuzz", mac, why, sizeof(why));
    if (!dev) {
        fprintf(stderr, "%s\n", why);
        abort();
    }
    for (size_t i = 0; i < sizeof(frame); i++)
        frame[i] = (uint8_t)(i * 7);
}

static void drain(int fd)
{
    while (recv(fd, frame, sizeof(frame), MSG_DONTWAIT) >= 0)
        ;
}

static void set_queue(struct virtq *vq, uint8_t size_exp, const uint8_t *addrs)
{
    vq->size = (uint16_t)(1u << (size_exp % 9));
    vq->event_idx = virtio_has_feature(dev, VIRTIO_F_EVENT_IDX);
    vq->indirect = virtio_has_feature(dev, VIRTIO_F_INDIRECT_DESC);
    vq->desc_gpa = rd16(addrs) & ~15u;
    vq->avail_gpa = rd16(addrs + 2) & ~1u;
    vq->used_gpa = rd16(addrs + 4) & ~3u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dev)
        fuzz_init();
    if (size < FUZZ_HEADER + 2 * FUZZ_MAX_FRAMES)
        return 0;
    pthread_mutex_lock(&dev->lock);
    virtio_dev_reset(dev);
    dev->features = 1ULL << VIRTIO_F_VERSION_1;
    if (data[2] & 1)
        dev->features |= 1ULL << VIRTIO_F_EVENT_IDX;
    if (data[2] & 2)
        dev->features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
    if (data[2] & 4)
        dev->features |= 1ULL << VIRTIO_NET_F_MRG_RXBUF;
    dev->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                  VIRTIO_STATUS_DRIVER_OK;
    set_queue(&dev->vqs[0], data[0], data + 8);
    set_queue(&dev->vqs[1], data[1], data + 14);
    /* Frames waiting on the tap: lengths up to the largest a tap hands over, runts included. */
    unsigned nframes = data[3] % (FUZZ_MAX_FRAMES + 1);
    const uint8_t *lens = data + FUZZ_HEADER;
    for (unsigned k = 0; k < nframes; k++) {
        size_t len = (size_t)rd16(lens + 2 * k) * ((data[4] & 1) ? 1 : 2) % sizeof(frame);
        (void)send(peer_fd, frame, len, MSG_DONTWAIT);
    }
    size_t off = FUZZ_HEADER + 2 * FUZZ_MAX_FRAMES;
    size_t body = size - off > FUZZ_WINDOW ? FUZZ_WINDOW : size - off;
    memset(mem.base, 0, FUZZ_WINDOW);
    memcpy(mem.base, data + off, body);
    bool tx_ok = virtq_enable(&dev->vqs[1]) == 0;
    bool rx_ok = virtq_enable(&dev->vqs[0]) == 0;
    if (tx_ok)
        dev->ops->queue_notify(dev, 1);
    if (rx_ok)
        dev->ops->queue_notify(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    drain(peer_fd); /* what the device transmitted */
    drain(tap_fd);  /* frames the guest had no room for: the next input starts empty */
    return 0;
}
