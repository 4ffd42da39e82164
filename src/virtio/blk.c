#include "virtio/blk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "block/block.h"
#include "util/err.h"
#include "util/log.h"
#include "vmm/event.h"

#define BLK_SECTOR 512ULL
#define BLK_QUEUE_SIZE 256
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2)
#define BLK_HDR_LEN 16
#define BLK_DISCARD_MAX_SECTORS 0x3fffff
#define BLK_RING_DEPTH 256
/* Merged requests are one readv/writev: at most IOV_MAX buffers. The byte cap keeps a merge from
 * holding the first request's completion hostage to many others; 2 MiB still joins the pieces of
 * a 1 MiB transfer the guest had to split (its pages scattered over more than seg_max segments)
 * whichever way they fall. */
#define BLK_MERGE_MAX_IOV 1024
#define BLK_MERGE_MAX_BYTES (2ULL << 20)

struct virtio_blk {
    struct virtio_dev dev;
    struct block_dev *bd;
    struct block_aio *aio;
    struct event_loop *loop;
    bool read_only;
    char serial[VIRTIO_BLK_ID_BYTES];
    uint8_t config[VIRTIO_BLK_CONFIG_LEN];
    struct virtq_elem elem;
    /* A read or write popped in this notify, held back until the next popped request shows
     * whether it continues it (blk_submit). Never held past blk_queue_notify(). */
    struct blk_req *held;
    struct virtio_blk_stats stats;
};

/* One request handed to the block layer; lives until its completion. */
struct blk_req {
    struct block_req br;
    struct virtio_blk *b;
    uint32_t generation;
    uint16_t head;
    uint16_t queue;
    uint8_t *status;   /* the status byte in guest RAM */
    uint32_t written;  /* bytes written into the driver's buffers, status included */
    uint64_t len;      /* data bytes (reads and writes) */
    int iovcnt;
    /* Requests merged behind this one: its host I/O serves them all, and they complete with it
     * in order. joined is the merged iovec (NULL until the first merge); tail the last member. */
    struct blk_req *next, *tail;
    struct iovec *joined;
    struct iovec iov[VIRTQ_MAX_IOV];
};

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void blk_config_read(struct virtio_dev *dev, unsigned off, void *buf, unsigned len)
{
    struct virtio_blk *b = (struct virtio_blk *)dev;
    memcpy(buf, b->config + off, len);
}

/* Copy len bytes starting at byte skip of iov[0..cnt) into buf; false when there are fewer. */
static bool iov_copy_out(const struct iovec *iov, unsigned cnt, uint64_t skip, void *buf,
                         uint64_t len)
{
    if (iov_len(iov, (int)cnt) < skip + len)
        return false;
    iov_to_buf(iov, (int)cnt, skip, buf, len);
    return true;
}

/* Return a request to the driver: status byte and used ring; true when it was pushed. The
 * caller decides on the interrupt (virtio_dev_queue_done), once for a batch. Lock held. */
static bool blk_complete(struct virtio_blk *b, unsigned q, uint16_t head, uint8_t *status,
                         uint8_t value, uint32_t written)
{
    *status = value;
    if (value != VIRTIO_BLK_S_OK)
        b->stats.errors++;
    return virtq_push(&b->dev.vqs[q], head, written) == 0;
}

/* Finish a request: status byte, used ring, interrupt. Lock held. */
static void blk_finish(struct virtio_blk *b, unsigned q, uint16_t head, uint8_t *status,
                       uint8_t value, uint32_t written)
{
    if (blk_complete(b, q, head, status, value, written))
        virtio_dev_queue_done(&b->dev, q);
}

/* Finish a request and every request merged behind it with one status, then free them. A
 * request from before a reset belongs to a driver that is gone: its ring is not ours. Lock held. */
static void blk_finish_all(struct virtio_blk *b, struct blk_req *r, uint8_t value)
{
    struct virtio_dev *dev = &b->dev;
    unsigned q = r->queue;
    bool live = r->generation == dev->generation && dev->vqs[q].ready;
    bool pushed = false;
    free(r->joined);
    while (r) {
        struct blk_req *next = r->next;
        dev->inflight--;
        if (live)
            pushed |= blk_complete(b, q, r->head, r->status, value, r->written);
        free(r);
        r = next;
    }
    if (pushed)
        virtio_dev_queue_done(dev, q);
}

static void blk_done(struct block_req *br, int ret)
{
    struct blk_req *r = (struct blk_req *)br;
    struct virtio_blk *b = r->b;
    pthread_mutex_lock(&b->dev.lock);
    if (ret < 0)
        log_debug("%s: request failed: %s", b->dev.name, strerror(-ret));
    blk_finish_all(b, r, ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
    pthread_mutex_unlock(&b->dev.lock);
}

/* Hand a request (with any merged behind it) to the block layer; a refusal fails them all. */
static void blk_send(struct virtio_blk *b, struct blk_req *r)
{
    if (r->br.op == BLOCK_OP_READ || r->br.op == BLOCK_OP_WRITE)
        b->stats.host_ios++;
    if (block_submit(b->bd, &r->br) < 0)
        blk_finish_all(b, r, VIRTIO_BLK_S_IOERR);
}

/* Submit the held read or write, if any. */
static void blk_release_held(struct virtio_blk *b)
{
    struct blk_req *h = b->held;
    b->held = NULL;
    if (h)
        blk_send(b, h);
}

/* Whether r starts where the held request ends, in the same direction, and both fit in one
 * host readv/writev. */
static bool blk_continues(const struct blk_req *h, const struct blk_req *r)
{
    return h->br.op == r->br.op && h->queue == r->queue &&
           h->br.offset + h->len == r->br.offset && h->len + r->len <= BLK_MERGE_MAX_BYTES &&
           h->br.iovcnt + r->iovcnt <= BLK_MERGE_MAX_IOV;
}

/* Append r's buffers to h's host I/O. False (nothing changed) when memory is short. */
static bool blk_merge(struct blk_req *h, struct blk_req *r)
{
    if (!h->joined) {
        h->joined = malloc(BLK_MERGE_MAX_IOV * sizeof(struct iovec));
        if (!h->joined)
            return false;
        memcpy(h->joined, h->iov, (size_t)h->iovcnt * sizeof(struct iovec));
        h->br.iov = h->joined;
        h->tail = h;
    }
    memcpy(h->joined + h->br.iovcnt, r->iov, (size_t)r->iovcnt * sizeof(struct iovec));
    h->br.iovcnt += r->iovcnt;
    h->len += r->len;
    h->tail->next = r;
    h->tail = r;
    return true;
}

/* Hand one request to the block layer. Returns the immediate status when it cannot be queued
 * (bad range, read-only), or -1 when the completion will report it. */
static int blk_submit(struct virtio_blk *b, unsigned q, const struct virtq_elem *e,
                      uint32_t type, uint64_t sector, uint8_t *status)
{
    struct blk_req *r = malloc(sizeof(*r));
    if (!r)
        return VIRTIO_BLK_S_IOERR;
    /* Field by field: a compound literal would zero the 4 KiB iovec array on every request,
     * though only the iovcnt entries iov_slice() fills are ever read. */
    r->br = (struct block_req){.done = blk_done, .opaque = r};
    r->b = b;
    r->generation = b->dev.generation;
    r->head = e->head;
    r->queue = (uint16_t)q;
    r->status = status;
    r->written = 1;
    r->len = 0;
    r->iovcnt = 0;
    r->next = r->tail = NULL;
    r->joined = NULL;
    struct block_req *br = &r->br;
    uint64_t size = b->bd->size;
    if (sector > size / BLK_SECTOR) {
        free(r);
        return VIRTIO_BLK_S_IOERR;
    }
    br->offset = sector * BLK_SECTOR;
    switch (type) {
    case VIRTIO_BLK_T_IN: {
        /* Data: every writable byte but the trailing status. */
        uint64_t len = e->in_len - 1;
        int n = iov_slice(&e->iov[e->nout], (int)e->nin, 0, len, r->iov, VIRTQ_MAX_IOV);
        if (n < 0 || len % BLK_SECTOR) {
            free(r);
            return VIRTIO_BLK_S_IOERR;
        }
        br->op = BLOCK_OP_READ;
        r->iovcnt = n;
        r->written = (uint32_t)(len + 1);
        b->stats.reads++;
        break;
    }
    case VIRTIO_BLK_T_OUT: {
        uint64_t len = e->out_len - BLK_HDR_LEN;
        int n = iov_slice(e->iov, (int)e->nout, BLK_HDR_LEN, len, r->iov, VIRTQ_MAX_IOV);
        if (n < 0 || len % BLK_SECTOR || b->read_only) {
            free(r);
            return VIRTIO_BLK_S_IOERR;
        }
        br->op = BLOCK_OP_WRITE;
        r->iovcnt = n;
        b->stats.writes++;
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        br->op = BLOCK_OP_FLUSH;
        br->offset = 0;
        b->stats.flushes++;
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        /* One segment per request (max_discard_seg = max_write_zeroes_seg = 1). */
        uint8_t seg[16];
        if (b->read_only || e->out_len != BLK_HDR_LEN + sizeof(seg) ||
            !iov_copy_out(e->iov, e->nout, BLK_HDR_LEN, seg, sizeof(seg))) {
            free(r);
            return VIRTIO_BLK_S_IOERR;
        }
        uint64_t s0;
        uint32_t count, flags;
        memcpy(&s0, seg, 8);
        memcpy(&count, seg + 8, 4);
        memcpy(&flags, seg + 12, 4);
        if (s0 > size / BLK_SECTOR || count > (size / BLK_SECTOR) - s0 ||
            (flags & ~1u) || (type == VIRTIO_BLK_T_DISCARD && flags)) {
            free(r);
            return type == VIRTIO_BLK_T_DISCARD && (flags & ~1u) ? VIRTIO_BLK_S_UNSUPP
                                                                   : VIRTIO_BLK_S_IOERR;
        }
        br->op = type == VIRTIO_BLK_T_DISCARD ? BLOCK_OP_DISCARD : BLOCK_OP_WRITE_ZEROES;
        br->offset = s0 * BLK_SECTOR;
        br->len = (uint64_t)count * BLK_SECTOR;
        break;
    }
    default:
        free(r);
        return VIRTIO_BLK_S_UNSUPP;
    }
    bool data = br->op == BLOCK_OP_READ || br->op == BLOCK_OP_WRITE;
    if (data) {
        br->iov = r->iov;
        br->iovcnt = r->iovcnt;
        r->len = iov_len(r->iov, r->iovcnt);
        if (r->len > size - br->offset) {
            free(r);
            return VIRTIO_BLK_S_IOERR;
        }
    }
    b->dev.inflight++;
    if (!data) {
        blk_release_held(b); /* flushes and discards go after the reads and writes before them */
        blk_send(b, r);
        return -1;
    }
    /* Held back: the next request popped may continue it (blk_queue_notify submits the last
     * one). A guest splits transfers over more pages than its segment limit, and one host
     * I/O for the whole saves the host's block layer a request and this thread a submission. */
    if (b->held && blk_continues(b->held, r) && blk_merge(b->held, r)) {
        b->stats.merged++;
        return -1;
    }
    blk_release_held(b);
    b->held = r;
    return -1;
}

/* Serve one popped chain. */
static void blk_handle(struct virtio_blk *b, unsigned q, const struct virtq_elem *e)
{
    struct virtq *vq = &b->dev.vqs[q];
    uint8_t hdr[BLK_HDR_LEN];
    /* The status byte is the last writable byte; a request without one cannot even be failed,
     * so it is a malformed chain (the spec requires the layout). */
    if (e->nin == 0 || !iov_copy_out(e->iov, e->nout, 0, hdr, sizeof(hdr))) {
        virtq_fail_chain(vq);
        return;
    }
    const struct iovec *last = &e->iov[e->nout + e->nin - 1];
    uint8_t *status = (uint8_t *)last->iov_base + last->iov_len - 1;
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    int st;
    uint32_t written = 1;
    if (type == VIRTIO_BLK_T_GET_ID) {
        uint64_t room = e->in_len - 1;
        uint64_t n = room < VIRTIO_BLK_ID_BYTES ? room : VIRTIO_BLK_ID_BYTES;
        iov_from_buf(&e->iov[e->nout], (int)e->nin, 0, b->serial, n);
        written = (uint32_t)n + 1;
        st = VIRTIO_BLK_S_OK;
    } else {
        st = blk_submit(b, q, e, type, sector, status);
    }
    if (st >= 0)
        blk_finish(b, q, e->head, status, (uint8_t)st, written);
}

static void blk_queue_notify(struct virtio_dev *dev, unsigned q)
{
    struct virtio_blk *b = (struct virtio_blk *)dev;
    struct virtq *vq = &dev->vqs[q];
    unsigned budget = VIRTIO_BUDGET;
    int rc = 0;
    block_aio_plug(b->aio); /* everything popped now goes to the kernel in one submission */
    do {
        /* Every round costs budget, even an empty one: a guest whose rings overlap can make
         * the notify toggling itself look like new work. */
        budget--;
        virtq_set_notify(vq, false);
        while (budget && (rc = virtq_pop(vq, &b->elem)) > 0 && !vq->broken) {
            blk_handle(b, q, &b->elem);
            budget--;
        }
        virtq_set_notify(vq, true);
    } while (budget && rc >= 0 && !vq->broken && virtq_has_work(vq));
    blk_release_held(b);
    block_aio_unplug(b->aio);
    if (vq->broken)
        virtio_dev_set_needs_reset(dev);
    else if (!budget)
        virtio_dev_requeue(dev, q);
}

/* I/O thread: io_uring completions are ready. */
static void blk_aio_ready(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_blk *b = opaque;
    block_aio_poll(b->aio);
}

void virtio_blk_drain(struct virtio_dev *dev)
{
    struct virtio_blk *b = (struct virtio_blk *)dev;
    block_drain(b->bd);
}

void virtio_blk_get_stats(struct virtio_dev *dev, struct virtio_blk_stats *out)
{
    struct virtio_blk *b = (struct virtio_blk *)dev;
    pthread_mutex_lock(&dev->lock);
    *out = b->stats;
    pthread_mutex_unlock(&dev->lock);
}

static void blk_destroy(struct virtio_dev *dev)
{
    struct virtio_blk *b = (struct virtio_blk *)dev;
    if (b->bd)
        block_close(b->bd); /* waits for requests in flight; their completions free them */
    if (b->aio)
        block_aio_free(b->aio);
    virtio_dev_fini(dev);
    free(b);
}

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .pci_class = 0x010000,
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .destroy = blk_destroy,
};

static void blk_fill_config(struct virtio_blk *b)
{
    uint8_t *c = b->config;
    put_le64(c + 0x00, b->bd->size / BLK_SECTOR);
    put_le32(c + 0x08, 1u << 30);             /* size_max */
    put_le32(c + 0x0c, BLK_SEG_MAX);          /* seg_max */
    put_le32(c + 0x14, (uint32_t)BLK_SECTOR); /* blk_size */
    put_le16(c + 0x22, (uint16_t)b->dev.num_queues);
    put_le32(c + 0x24, BLK_DISCARD_MAX_SECTORS);
    put_le32(c + 0x28, 1);
    put_le32(c + 0x2c, 1);
    put_le32(c + 0x30, BLK_DISCARD_MAX_SECTORS);
    put_le32(c + 0x34, 1);
    c[0x38] = 1; /* write_zeroes_may_unmap */
}

struct virtio_dev *virtio_blk_create(const struct guest_mem *mem, struct event_loop *loop,
                                     const struct virtio_blk_options *opts, char *why,
                                     unsigned why_len)
{
    struct virtio_blk *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, why_len, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    unsigned nq = opts->num_queues ? opts->num_queues : 1;
    if (nq > VIRTIO_BLK_MAX_QUEUES)
        nq = VIRTIO_BLK_MAX_QUEUES;
    virtio_dev_init(&b->dev, &blk_ops, "virtio-blk", mem, nq, BLK_QUEUE_SIZE,
                    VIRTIO_BLK_CONFIG_LEN);
    b->read_only = opts->read_only;
    b->loop = loop;
    if (opts->serial)
        /* The ID field is 20 bytes, NUL-padded, not NUL-terminated when full. */
        memcpy(b->serial, opts->serial, MIN(strlen(opts->serial), sizeof(b->serial)));
    struct block_open_opts oo = {
        .format = opts->format,
        .flags = (opts->read_only ? 0 : BLOCK_OPEN_RDWR) |
                 (opts->cache_none ? BLOCK_OPEN_DIRECT : 0)};
    int rc = block_open(opts->path, &oo, &b->bd);
    if (rc < 0) {
        snprintf(why, why_len, "--disk %s: %s", opts->path, block_last_error());
        b->bd = NULL;
        blk_destroy(&b->dev);
        errno = -rc;
        return NULL;
    }
    b->aio = block_aio_new(BLK_RING_DEPTH);
    if (!b->aio || (loop && (rc = event_loop_add(loop, block_aio_fd(b->aio), EPOLLIN,
                                                 blk_aio_ready, b)) < 0)) {
        int err = b->aio ? -rc : errno;
        snprintf(why, why_len, "--disk %s: cannot set up io_uring: %s", opts->path,
                 strerror(err));
        blk_destroy(&b->dev);
        errno = err;
        return NULL;
    }
    block_attach_aio(b->bd, b->aio);
    b->dev.host_features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
                           (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
                           (1ULL << VIRTIO_BLK_F_MQ);
    if (opts->read_only)
        b->dev.host_features |= 1ULL << VIRTIO_BLK_F_RO;
    else
        b->dev.host_features |= (1ULL << VIRTIO_BLK_F_DISCARD) |
                                (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
    blk_fill_config(b);
    return &b->dev;
}
