/* The asynchronous request path: one io_uring per I/O thread, requests split into pieces by the
 * format's map op. Pieces whose bytes sit at a known place in the image file go to the ring;
 * the rest (allocation, copy-on-write, backing reads, compressed clusters) run synchronously
 * through the format's ops, because they need metadata decisions in order.
 *
 * With O_DIRECT (cache=none), a piece whose buffers, length or offset are not aligned for the
 * file moves through an aligned bounce buffer; a write that covers part of a block is done
 * synchronously (read-modify-write) once the disk's requests in flight have finished, so that
 * no other write to the same block can interleave with it (see block/dio.h). */
#include "block/aio.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/block.h"
#include "block/dio.h"
#include "util/err.h"

struct block_aio {
    struct io_uring ring;
    int efd;
    unsigned inflight; /* pieces in the ring */
    unsigned unsubmitted;
    unsigned plugged;  /* block_aio_plug() depth: submissions wait for the last unplug */
    struct block_req *done_head, *done_tail;
};

/* One ring operation belonging to a request; owns a copy of its slice of the iovec. offset and
 * len are the file range the ring moves: the slice's own, or with a bounce buffer the aligned
 * blocks around it. */
struct block_piece {
    struct block_req *req;
    uint64_t offset;
    uint64_t len;
    int fd;
    int iovcnt;
    bool write;
    bool flush;
    uint8_t *bounce;      /* O_DIRECT: aligned buffer the ring uses instead of iov, or NULL */
    uint64_t bounce_skip; /* where the slice's bytes start in it */
    uint64_t data_len;    /* the slice's length */
    struct iovec biov;    /* the ring's one iovec over bounce */
    struct iovec iov[];
};

struct block_aio *block_aio_new(unsigned entries)
{
    struct block_aio *aio = calloc(1, sizeof(*aio));
    if (!aio)
        return NULL;
    int ret = io_uring_queue_init(entries ? entries : 128, &aio->ring, 0);
    if (ret < 0) {
        free(aio);
        errno = -ret;
        return NULL;
    }
    aio->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (aio->efd < 0 || io_uring_register_eventfd(&aio->ring, aio->efd) < 0) {
        int err = errno;
        if (aio->efd >= 0)
            close(aio->efd);
        io_uring_queue_exit(&aio->ring);
        free(aio);
        errno = err;
        return NULL;
    }
    return aio;
}

void block_aio_free(struct block_aio *aio)
{
    if (!aio)
        return;
    while (aio->inflight || aio->done_head)
        block_aio_wait(aio);
    io_uring_queue_exit(&aio->ring);
    close(aio->efd);
    free(aio);
}

int block_aio_fd(const struct block_aio *aio) { return aio->efd; }

void block_attach_aio(struct block_dev *bd, struct block_aio *aio)
{
    if (bd->own_aio) {
        block_drain(bd);
        block_aio_free(bd->aio);
    }
    bd->aio = aio;
    bd->own_aio = false;
}

static void req_put(struct block_req *req)
{
    if (--req->pending)
        return;
    struct block_dev *bd = req->bd;
    bd->inflight--;
    req->done(req, req->err);
}

static void req_fail(struct block_req *req, int err)
{
    if (!req->err)
        req->err = err;
}

static void piece_complete(struct block_aio *aio, struct block_piece *p, int res)
{
    aio->inflight--;
    struct block_req *req = p->req;
    const struct iovec *ring_iov = p->bounce ? &p->biov : p->iov;
    int ring_cnt = p->bounce ? 1 : p->iovcnt;
    bool ok = res >= 0;
    if (res < 0) {
        req_fail(req, res);
    } else if (!p->flush && (uint64_t)res < p->len) {
        /* Short transfer (EOF on a read, or a partial write): finish the rest synchronously. */
        uint64_t done = (uint64_t)res;
        struct iovec stackv[64];
        struct iovec *rest = ring_cnt <= 64 ? stackv : malloc((size_t)ring_cnt * sizeof(*rest));
        int n = rest ? iov_slice(ring_iov, ring_cnt, done, p->len - done, rest, ring_cnt) : -1;
        int ret = n < 0 ? -EIO
                  : p->write ? block_fd_pwritev(p->fd, rest, n, p->offset + done)
                             : block_fd_preadv(p->fd, rest, n, p->offset + done);
        if (rest != stackv)
            free(rest);
        if (ret < 0) {
            req_fail(req, ret);
            ok = false;
        }
    }
    if (p->bounce && !p->write && ok)
        iov_from_buf(p->iov, p->iovcnt, 0, p->bounce + p->bounce_skip, p->data_len);
    free(p->bounce);
    free(p);
    req_put(req);
}

static int aio_reap(struct block_aio *aio);

/* Hand the kernel everything in the submission ring. io_uring_submit() may take only part of
 * it, or none with -EAGAIN or -EBUSY (no memory for a request; completions backed up): what it
 * did not take stays in the ring, and a wait for its completion would never end. So submit until
 * the ring is empty, reaping completions between failed tries (what -EBUSY waits for) and
 * pausing a moment when there were none. */
static void aio_submit_all(struct block_aio *aio)
{
    aio->unsubmitted = 0;
    while (io_uring_sq_ready(&aio->ring)) {
        int n = io_uring_submit(&aio->ring);
        if (n > 0 || n == -EINTR)
            continue;
        if (aio_reap(aio) == 0)
            usleep(1000);
    }
}

static void aio_submit_pending(struct block_aio *aio)
{
    if (aio->unsubmitted)
        aio_submit_all(aio);
}

void block_aio_plug(struct block_aio *aio)
{
    aio->plugged++;
}

void block_aio_unplug(struct block_aio *aio)
{
    if (aio->plugged && --aio->plugged == 0)
        aio_submit_pending(aio);
}

static int aio_reap(struct block_aio *aio)
{
    struct io_uring_cqe *cqe;
    int n = 0;
    while (io_uring_peek_cqe(&aio->ring, &cqe) == 0) {
        struct block_piece *p = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&aio->ring, cqe);
        piece_complete(aio, p, res);
        n++;
    }
    return n;
}

static int aio_run_deferred(struct block_aio *aio)
{
    int n = 0;
    struct block_req *req = aio->done_head;
    aio->done_head = aio->done_tail = NULL;
    while (req) {
        struct block_req *next = req->next_done;
        req_put(req);
        req = next;
        n++;
    }
    return n;
}

int block_aio_poll(struct block_aio *aio)
{
    uint64_t v;
    /* Clear the eventfd before reaping so that a completion arriving meanwhile re-arms it. */
    while (read(aio->efd, &v, sizeof(v)) == sizeof(v)) {
    }
    aio_submit_pending(aio);
    int n = aio_reap(aio);
    return n + aio_run_deferred(aio);
}

int block_aio_wait(struct block_aio *aio)
{
    aio_submit_pending(aio);
    if (!aio->done_head && aio->inflight) {
        struct io_uring_cqe *cqe;
        int ret;
        do {
            ret = io_uring_wait_cqe(&aio->ring, &cqe);
        } while (ret == -EINTR);
    }
    return block_aio_poll(aio);
}

static struct io_uring_sqe *aio_get_sqe(struct block_aio *aio)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&aio->ring);
    while (!sqe) {
        /* Ring full: push what is queued, and if that is not enough, reap completions. */
        aio_submit_all(aio);
        sqe = io_uring_get_sqe(&aio->ring);
        if (!sqe) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&aio->ring, &cqe) == 0)
                aio_reap(aio);
            sqe = io_uring_get_sqe(&aio->ring);
        }
    }
    return sqe;
}

static int aio_queue_rw(struct block_dev *bd, struct block_req *req, uint64_t skip, uint64_t len,
                        uint64_t host_offset, bool write)
{
    struct block_aio *aio = bd->aio;
    int cnt = req->iovcnt; /* a slice never has more pieces than the whole */
    struct block_piece *p = malloc(sizeof(*p) + (size_t)cnt * sizeof(struct iovec));
    if (!p)
        return -ENOMEM;
    p->req = req;
    p->offset = host_offset;
    p->len = len;
    p->fd = bd->fd;
    p->write = write;
    p->flush = false;
    p->bounce = NULL;
    p->iovcnt = iov_slice(req->iov, req->iovcnt, skip, len, p->iov, cnt);
    const struct iovec *ring_iov = p->iov;
    int ring_cnt = p->iovcnt;
    if (bd->dio_align && !block_dio_aligned(p->iov, p->iovcnt, host_offset, bd->dio_align)) {
        /* The whole blocks around the slice, through an aligned buffer. Writes get here with
         * an aligned offset and length (aio_do_rw), so the span is the slice itself and
         * nothing needs reading first. */
        uint64_t start, span;
        block_dio_span(host_offset, len, bd->dio_align, &start, &span);
        p->bounce = block_dio_alloc(span);
        if (!p->bounce) {
            free(p);
            return -ENOMEM;
        }
        p->bounce_skip = host_offset - start;
        p->data_len = len;
        if (write)
            iov_to_buf(p->iov, p->iovcnt, 0, p->bounce + p->bounce_skip, len);
        p->biov = (struct iovec){p->bounce, span};
        p->offset = start;
        p->len = span;
        ring_iov = &p->biov;
        ring_cnt = 1;
    }
    struct io_uring_sqe *sqe = aio_get_sqe(aio);
    if (write)
        io_uring_prep_writev(sqe, p->fd, ring_iov, (unsigned)ring_cnt, p->offset);
    else
        io_uring_prep_readv(sqe, p->fd, ring_iov, (unsigned)ring_cnt, p->offset);
    io_uring_sqe_set_data(sqe, p);
    req->pending++;
    aio->inflight++;
    aio->unsubmitted++;
    return 0;
}

static int aio_queue_flush(struct block_dev *bd, struct block_req *req)
{
    struct block_aio *aio = bd->aio;
    struct block_piece *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->req = req;
    p->fd = bd->fd;
    p->flush = true; /* calloc: no bounce */
    struct io_uring_sqe *sqe = aio_get_sqe(aio);
    io_uring_prep_fsync(sqe, bd->fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data(sqe, p);
    req->pending++;
    aio->inflight++;
    aio->unsubmitted++;
    return 0;
}

/* Run one slice synchronously through the format: used for everything that is not plain data. */
static int slice_sync(struct block_dev *bd, struct block_req *req, uint64_t skip, uint64_t len,
                      bool write)
{
    int cnt = req->iovcnt;
    struct iovec stackv[16];
    struct iovec *v = cnt <= 16 ? stackv : malloc((size_t)cnt * sizeof(*v));
    if (!v)
        return -ENOMEM;
    int n = iov_slice(req->iov, req->iovcnt, skip, len, v, cnt);
    int ret = write ? bd->ops->pwritev(bd, req->offset + skip, v, n)
                    : bd->ops->preadv(bd, req->offset + skip, v, n);
    if (v != stackv)
        free(v);
    return ret;
}

static int aio_do_rw(struct block_dev *bd, struct block_req *req, uint64_t total, bool write)
{
    if (write && bd->dio_align && ((req->offset | total) & (bd->dio_align - 1))) {
        /* O_DIRECT writes whole blocks only: this one is a read-modify-write of the blocks at
         * its ends. Let every request of the disk in flight finish first (other requests'
         * callbacks may run here), then do it synchronously: no other write to those blocks
         * can interleave. Formats split at cluster boundaries, which are aligned. */
        bd->inflight--;
        block_drain(bd);
        bd->inflight++;
        return slice_sync(bd, req, 0, total, true);
    }
    uint64_t skip = 0;
    while (skip < total) {
        struct block_extent ext;
        int ret = bd->ops->map(bd, req->offset + skip, total - skip, &ext);
        if (ret < 0)
            return ret;
        uint64_t len = MIN(ext.length, total - skip);
        if (len == 0)
            return -EIO;
        if (ext.kind == BLOCK_EXT_DATA && (!write || ext.writable)) {
            ret = aio_queue_rw(bd, req, skip, len, ext.host_offset, write);
        } else if (!write && (ext.kind == BLOCK_EXT_ZERO ||
                              (ext.kind == BLOCK_EXT_UNALLOC && !bd->backing))) {
            iov_memset(req->iov, req->iovcnt, skip, 0, len);
        } else {
            ret = slice_sync(bd, req, skip, len, write);
        }
        if (ret < 0)
            return ret;
        skip += len;
    }
    return 0;
}

int block_submit(struct block_dev *bd, struct block_req *req)
{
    if (!bd->aio) {
        bd->aio = block_aio_new(64);
        if (!bd->aio)
            return -errno;
        bd->own_aio = true;
    }
    uint64_t total = 0;
    switch (req->op) {
    case BLOCK_OP_READ:
    case BLOCK_OP_WRITE:
        total = iov_len(req->iov, req->iovcnt);
        break;
    case BLOCK_OP_DISCARD:
    case BLOCK_OP_WRITE_ZEROES:
        total = req->len;
        break;
    case BLOCK_OP_FLUSH:
        break;
    default:
        return -EINVAL;
    }
    if (req->op != BLOCK_OP_FLUSH && (req->offset > bd->size || total > bd->size - req->offset))
        return -EINVAL;
    if (req->op != BLOCK_OP_READ && bd->read_only)
        return -EROFS;

    req->bd = bd;
    req->err = 0;
    req->pending = 1; /* held by this function until every piece is queued */
    req->next_done = NULL;
    bd->inflight++;
    int ret = 0;
    switch (req->op) {
    case BLOCK_OP_READ:
    case BLOCK_OP_WRITE:
        ret = aio_do_rw(bd, req, total, req->op == BLOCK_OP_WRITE);
        break;
    case BLOCK_OP_FLUSH:
        ret = bd->ops->flush ? bd->ops->flush(bd) : 0;
        if (ret >= 0)
            ret = aio_queue_flush(bd, req);
        break;
    case BLOCK_OP_DISCARD:
    case BLOCK_OP_WRITE_ZEROES:
        /* Clusters may be freed: let writes already in the ring land first. Other requests'
         * callbacks may run here. */
        bd->inflight--;
        block_drain(bd);
        bd->inflight++;
        if (total)
            ret = bd->ops->discard(bd, req->offset, total, req->op == BLOCK_OP_WRITE_ZEROES);
        break;
    }
    if (ret < 0)
        req_fail(req, ret);
    struct block_aio *aio = bd->aio;
    if (req->pending == 1) {
        /* Nothing in the ring: complete from the next poll, never from inside submit. */
        if (aio->done_tail)
            aio->done_tail->next_done = req;
        else
            aio->done_head = req;
        aio->done_tail = req;
        uint64_t one = 1;
        if (write(aio->efd, &one, sizeof(one)) < 0) {
            /* the counter cannot overflow in practice; the deferred list is still run */
        }
    } else {
        req->pending--;
        if (!aio->plugged)
            aio_submit_pending(aio);
    }
    return 0;
}

void block_drain(struct block_dev *bd)
{
    while (bd->inflight > 0 && bd->aio)
        block_aio_wait(bd->aio);
}
