#include "virtio/queue.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

static __thread enum virtq_error virtq_err;

enum virtq_error virtq_last_error(void)
{
    return virtq_err;
}

const char *virtq_error_name(enum virtq_error err)
{
    static const char *const names[] = {
        [VIRTQ_OK] = "ok",
        [VIRTQ_ERR_RING] = "ring outside RAM or misaligned",
        [VIRTQ_ERR_AVAIL_IDX] = "available index moved by more than the queue size",
        [VIRTQ_ERR_HEAD] = "head index out of range",
        [VIRTQ_ERR_NEXT] = "next index out of range",
        [VIRTQ_ERR_LOOP] = "descriptor chain loops or is longer than the queue",
        [VIRTQ_ERR_ZERO_LEN] = "zero-length buffer",
        [VIRTQ_ERR_ADDR] = "buffer outside RAM",
        [VIRTQ_ERR_ORDER] = "device-readable buffer after a writable one",
        [VIRTQ_ERR_INDIRECT] = "malformed indirect descriptor",
        [VIRTQ_ERR_TOO_MANY] = "too many buffers in one chain",
        [VIRTQ_ERR_USED_ID] = "used id out of range",
        [VIRTQ_ERR_LAYOUT] = "request layout the device cannot parse",
    };
    return (unsigned)err < sizeof(names) / sizeof(names[0]) ? names[err] : "unknown";
}

/* A hostile guest can break queues as fast as it can reset them: besides the one line per queue
 * per reset, at most a handful of lines per second reach the log. */
static bool virtq_log_allowed(void)
{
    static long window;
    static int count;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long now = (long)ts.tv_sec;
    long w = __atomic_load_n(&window, __ATOMIC_RELAXED);
    if (w != now) {
        __atomic_store_n(&window, now, __ATOMIC_RELAXED);
        __atomic_store_n(&count, 0, __ATOMIC_RELAXED);
    }
    return __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED) <= 10;
}

static int virtq_fail(struct virtq *vq, enum virtq_error err)
{
    virtq_err = err;
    vq->broken = true;
    vq->ready = false;
    if (!vq->logged && virtq_log_allowed())
        log_warn("%s: queue %u: %s: the device needs a reset", vq->name ? vq->name : "virtio",
                 vq->index, virtq_error_name(err));
    vq->logged = true;
    return -EINVAL;
}

void virtq_reset(struct virtq *vq, const struct guest_mem *mem, unsigned index, const char *name)
{
    memset(vq, 0, sizeof(*vq));
    vq->mem = mem;
    vq->index = index;
    vq->name = name;
}

int virtq_enable(struct virtq *vq)
{
    uint16_t n = vq->size;
    vq->broken = false;
    vq->ready = false;
    if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)) || (vq->desc_gpa & 15) ||
        (vq->avail_gpa & 1) || (vq->used_gpa & 3) ||
        !gpa_ptr(vq->mem, vq->desc_gpa, 16ULL * n) ||
        !gpa_ptr(vq->mem, vq->avail_gpa, virtq_avail_bytes(n)) ||
        !gpa_ptr(vq->mem, vq->used_gpa, virtq_used_bytes(n)))
        return virtq_fail(vq, VIRTQ_ERR_RING);
    vq->last_avail = 0;
    vq->used_idx = 0;
    vq->signalled_valid = false;
    vq->ready = true;
    return 0;
}

/* Ring fields are re-resolved on every access: RAM does not move, but keeping no pointers means
 * nothing stale survives a pause or a snapshot restore. virtq_enable() checked the ranges, so a
 * NULL here means the memory layout changed under us: treat it as a broken ring. */
static volatile uint16_t *virtq_avail16(struct virtq *vq, uint64_t off)
{
    return gpa_ptr(vq->mem, vq->avail_gpa + off, 2);
}

static volatile uint16_t *virtq_used16(struct virtq *vq, uint64_t off)
{
    return gpa_ptr(vq->mem, vq->used_gpa + off, 2);
}

static int virtq_avail_idx(struct virtq *vq, uint16_t *idx)
{
    volatile uint16_t *p = virtq_avail16(vq, 2);
    if (!p)
        return virtq_fail(vq, VIRTQ_ERR_RING);
    *idx = *p;
    return 0;
}

bool virtq_has_work(struct virtq *vq)
{
    uint16_t idx = 0;
    if (!vq->ready || vq->broken || virtq_avail_idx(vq, &idx) < 0)
        return false;
    return idx != vq->last_avail;
}

/* Copy one descriptor out of guest memory before looking at it: the guest may rewrite it. */
static int virtq_read_desc(struct virtq *vq, uint64_t table, uint32_t i, struct virtq_desc *d)
{
    const void *p = gpa_ptr(vq->mem, table + 16ULL * i, 16);
    if (!p)
        return virtq_fail(vq, VIRTQ_ERR_RING);
    memcpy(d, p, sizeof(*d));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return 0;
}

static int virtq_add_buf(struct virtq *vq, struct virtq_elem *e, const struct virtq_desc *d)
{
    if (d->len == 0)
        return virtq_fail(vq, VIRTQ_ERR_ZERO_LEN);
    bool writable = d->flags & VIRTQ_DESC_F_WRITE;
    if (!writable && e->nin)
        return virtq_fail(vq, VIRTQ_ERR_ORDER);
    if (e->nout + e->nin >= VIRTQ_MAX_IOV)
        return virtq_fail(vq, VIRTQ_ERR_TOO_MANY);
    void *host = gpa_ptr(vq->mem, d->addr, d->len);
    if (!host)
        return virtq_fail(vq, VIRTQ_ERR_ADDR);
    e->iov[e->nout + e->nin] = (struct iovec){host, d->len};
    if (writable) {
        e->nin++;
        e->in_len += d->len;
    } else {
        e->nout++;
        e->out_len += d->len;
    }
    return 0;
}

/* Walk an indirect table: its own chain, at most len/16 entries, with no further indirection. */
static int virtq_walk_indirect(struct virtq *vq, struct virtq_elem *e, const struct virtq_desc *d)
{
    if (!vq->indirect || (d->flags & VIRTQ_DESC_F_NEXT) || d->len == 0 || d->len % 16 ||
        d->len / 16 > VIRTQ_MAX_IOV)
        return virtq_fail(vq, VIRTQ_ERR_INDIRECT);
    uint32_t count = d->len / 16;
    uint64_t table = d->addr;
    if (!gpa_ptr(vq->mem, table, d->len))
        return virtq_fail(vq, VIRTQ_ERR_ADDR);
    uint32_t i = 0;
    for (uint32_t seen = 0;; seen++) {
        if (seen >= count)
            return virtq_fail(vq, VIRTQ_ERR_LOOP);
        struct virtq_desc sub;
        if (virtq_read_desc(vq, table, i, &sub) < 0)
            return -EINVAL;
        if (sub.flags & VIRTQ_DESC_F_INDIRECT)
            return virtq_fail(vq, VIRTQ_ERR_INDIRECT);
        if (virtq_add_buf(vq, e, &sub) < 0)
            return -EINVAL;
        if (!(sub.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (sub.next >= count)
            return virtq_fail(vq, VIRTQ_ERR_NEXT);
        i = sub.next;
    }
}

int virtq_pop(struct virtq *vq, struct virtq_elem *e)
{
    virtq_err = VIRTQ_OK;
    if (!vq->ready || vq->broken)
        return 0;
    uint16_t avail = 0;
    if (virtq_avail_idx(vq, &avail) < 0)
        return -EINVAL;
    uint16_t pending = (uint16_t)(avail - vq->last_avail);
    if (pending == 0)
        return 0;
    if (pending > vq->size)
        return virtq_fail(vq, VIRTQ_ERR_AVAIL_IDX);
    /* The ring entry and the descriptors were written before idx: read them after it. */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    volatile uint16_t *slot = virtq_avail16(vq, 4 + 2ULL * (vq->last_avail & (vq->size - 1)));
    if (!slot)
        return virtq_fail(vq, VIRTQ_ERR_RING);
    uint16_t head = *slot;
    if (head >= vq->size)
        return virtq_fail(vq, VIRTQ_ERR_HEAD);

    e->head = head;
    e->nout = e->nin = 0;
    e->out_len = e->in_len = 0;
    uint16_t i = head;
    for (unsigned seen = 0;; seen++) {
        if (seen >= vq->size)
            return virtq_fail(vq, VIRTQ_ERR_LOOP);
        struct virtq_desc d;
        if (virtq_read_desc(vq, vq->desc_gpa, i, &d) < 0)
            return -EINVAL;
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            /* An indirect descriptor stands alone: the spec forbids NEXT beside it, and mixing
             * it with direct buffers in one chain is refused for the same reason. */
            if (seen != 0)
                return virtq_fail(vq, VIRTQ_ERR_INDIRECT);
            if (virtq_walk_indirect(vq, e, &d) < 0)
                return -EINVAL;
            break;
        }
        if (virtq_add_buf(vq, e, &d) < 0)
            return -EINVAL;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            break;
        if (d.next >= vq->size)
            return virtq_fail(vq, VIRTQ_ERR_NEXT);
        i = d.next;
    }
    vq->last_avail++;
    return 1;
}

int virtq_fail_chain(struct virtq *vq)
{
    return virtq_fail(vq, VIRTQ_ERR_LAYOUT);
}

void virtq_unpop(struct virtq *vq)
{
    vq->last_avail--;
}

int virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
    struct virtq_used_elem u = {head, len};
    return virtq_push_batch(vq, &u, 1);
}

int virtq_push_batch(struct virtq *vq, const struct virtq_used_elem *elems, unsigned n)
{
    virtq_err = VIRTQ_OK;
    if (!vq->ready || vq->broken)
        return -EINVAL;
    volatile uint16_t *idx = virtq_used16(vq, 2);
    if (!idx)
        return virtq_fail(vq, VIRTQ_ERR_RING);
    for (unsigned k = 0; k < n; k++) {
        if (elems[k].id >= vq->size)
            return virtq_fail(vq, VIRTQ_ERR_USED_ID);
        uint64_t off = 4 + 8ULL * ((uint16_t)(vq->used_idx + k) & (vq->size - 1));
        void *p = gpa_ptr(vq->mem, vq->used_gpa + off, 8);
        if (!p)
            return virtq_fail(vq, VIRTQ_ERR_RING);
        memcpy(p, &elems[k], sizeof(elems[k]));
    }
    /* The elements must be visible before the index that publishes them, all at once. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vq->used_idx = (uint16_t)(vq->used_idx + n);
    *idx = vq->used_idx;
    vq->pushed = true;
    return 0;
}

unsigned virtq_avail_count(struct virtq *vq)
{
    uint16_t idx = 0;
    if (!vq->ready || vq->broken || virtq_avail_idx(vq, &idx) < 0)
        return 0;
    uint16_t pending = (uint16_t)(idx - vq->last_avail);
    return pending <= vq->size ? pending : 0; /* a bad index is refused by the next pop */
}

bool virtq_should_notify(struct virtq *vq)
{
    if (!vq->ready || vq->broken || !vq->pushed)
        return false; /* nothing new for the driver */
    vq->pushed = false;
    /* Our used->idx store must be visible before we read what the driver asked for, or we
     * could miss an interrupt the driver is about to wait for. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old = vq->signalled, cur = vq->used_idx;
    bool valid = vq->signalled_valid;
    vq->signalled = cur;
    vq->signalled_valid = true;
    if (!vq->event_idx) {
        volatile uint16_t *flags = virtq_avail16(vq, 0);
        return !flags || !(*flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    volatile uint16_t *ev = virtq_avail16(vq, 4 + 2ULL * vq->size);
    if (!ev)
        return true;
    /* Without a previous interrupt to measure from, always interrupt once. */
    return !valid || virtq_need_event(*ev, cur, old);
}

void virtq_set_notify(struct virtq *vq, bool enable)
{
    virtq_notify_beyond(vq, enable ? 0 : -1);
}

void virtq_notify_beyond(struct virtq *vq, int have)
{
    bool enable = have >= 0;
    if (!vq->ready || vq->broken)
        return;
    if (vq->event_idx) {
        volatile uint16_t *ev = virtq_used16(vq, 4 + 8ULL * vq->size);
        if (ev && enable)
            *ev = (uint16_t)(vq->last_avail + (unsigned)have);
    } else {
        volatile uint16_t *flags = virtq_used16(vq, 0);
        if (flags)
            *flags = enable ? 0 : VIRTQ_USED_F_NO_NOTIFY;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
