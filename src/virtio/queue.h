/* Split virtqueues (virtio 1.x, section 2.7), device side. The rings live in guest RAM and the
 * guest may change them at any moment, so every index, address, length and flag is read once,
 * copied, and checked before use: a malformed chain marks the queue broken (the transport then
 * sets NEEDS_RESET) and is never followed. No host pointer into guest RAM is kept between calls:
 * every access goes through gpa_ptr(). */
#ifndef VIREO_VIRTIO_QUEUE_H
#define VIREO_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/memory.h"

#define VIRTQ_MAX_SIZE 1024 /* largest queue size a device offers */
#define VIRTQ_MAX_IOV 256   /* most buffers one element may carry (direct or indirect) */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* Ring layout in guest memory (little-endian; x86 hosts only). */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq {
    const struct guest_mem *mem;
    unsigned index;        /* queue number, for messages */
    uint16_t size;         /* entries, a power of two; 0 until configured */
    bool ready;            /* the driver enabled it and the rings lie in RAM */
    bool event_idx;        /* VIRTIO_F_EVENT_IDX negotiated */
    bool indirect;         /* VIRTIO_F_INDIRECT_DESC negotiated */
    bool broken;           /* a malformed ring or chain was seen: stop serving */
    bool logged;           /* the first error was logged (one line per queue per reset) */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t last_avail;   /* next avail ring slot to consume */
    uint16_t used_idx;     /* our copy of used->idx */
    uint16_t signalled;    /* used_idx when the last interrupt was sent */
    bool signalled_valid;  /* false until the first interrupt after a reset */
    bool pushed;           /* used entries added since the last virtq_should_notify() */
    const char *name;      /* device name for messages */
};

/* One popped chain: device-readable buffers first (out), then device-writable ones (in). */
struct virtq_elem {
    uint16_t head;
    unsigned nout, nin;
    uint64_t out_len, in_len;
    struct iovec iov[VIRTQ_MAX_IOV];
};

/* Why a chain was refused (virtq_pop() returns the negative of one of these as -EINVAL after
 * logging; tests read the reason from virtq_last_error()). */
enum virtq_error {
    VIRTQ_OK,
    VIRTQ_ERR_RING,          /* ring addresses outside RAM or misaligned */
    VIRTQ_ERR_AVAIL_IDX,     /* avail->idx moved by more than the queue size */
    VIRTQ_ERR_HEAD,          /* head index >= size */
    VIRTQ_ERR_NEXT,          /* next index >= size */
    VIRTQ_ERR_LOOP,          /* chain longer than the queue (or indirect table): a loop */
    VIRTQ_ERR_ZERO_LEN,      /* a zero-length buffer */
    VIRTQ_ERR_ADDR,          /* a buffer outside RAM or wrapping around */
    VIRTQ_ERR_ORDER,         /* a readable buffer after a writable one */
    VIRTQ_ERR_INDIRECT,      /* indirect not negotiated, with NEXT, nested, or a bad table */
    VIRTQ_ERR_TOO_MANY,      /* more than VIRTQ_MAX_IOV buffers */
    VIRTQ_ERR_USED_ID,       /* virtq_push() of an id >= size */
    VIRTQ_ERR_LAYOUT,        /* a well-formed chain the device cannot parse (no header...) */
};

/* Reset to the unconfigured state (size 0, not ready, counters cleared). */
void virtq_reset(struct virtq *vq, const struct guest_mem *mem, unsigned index, const char *name);
/* Bytes of the avail and used rings of a queue of size entries (with the event-index words). */
static inline uint64_t virtq_avail_bytes(uint16_t size)
{
    return 6 + 2ULL * size;
}
static inline uint64_t virtq_used_bytes(uint16_t size)
{
    return 6 + 8ULL * size;
}
/* Start serving: check the ring addresses against RAM and alignment. Returns 0, or -EINVAL
 * (the queue is then broken). The driver sets size and the three addresses first. */
int virtq_enable(struct virtq *vq);
/* Take the next available chain. Returns 1 with *elem filled, 0 when the ring is empty (or the
 * queue is not ready/broken), -EINVAL when the chain is malformed: the queue is then broken and
 * the caller should put the device in NEEDS_RESET. */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem);
/* Return a chain to the driver with len bytes written into its writable buffers. Returns 0 or
 * -EINVAL for a bad head (the queue is then broken). */
int virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
/* Return n chains in one step: the driver sees all of them or none (a mergeable receive
 * buffer is only complete with all its parts). Returns 0 or -EINVAL as virtq_push(). */
int virtq_push_batch(struct virtq *vq, const struct virtq_used_elem *elems, unsigned n);
/* How many chains the driver has made available and we have not popped (0 when not ready). */
unsigned virtq_avail_count(struct virtq *vq);
/* After one or more pushes: should the driver be interrupted? Honours EVENT_IDX (used_event)
 * or VIRTQ_AVAIL_F_NO_INTERRUPT, and records the point of the interrupt when it says yes. */
bool virtq_should_notify(struct virtq *vq);
/* Tell the driver whether we want kicks (avail_event with EVENT_IDX, else the used flags).
 * Call with false while draining, then true and check virtq_has_work() again to close the
 * race with a driver that added a buffer in between. */
void virtq_set_notify(struct virtq *vq, bool enable);
/* As virtq_set_notify(vq, true) for a device that has seen `have` chains past the ones it
 * popped and waits for more (a frame that needs more buffers): the driver is asked to kick when
 * it adds beyond them, since it will not kick again for those. have < 0: notifications off. */
void virtq_notify_beyond(struct virtq *vq, int have);
/* True when the driver has made chains available that we have not popped. */
bool virtq_has_work(struct virtq *vq);
/* The device found the popped chain unusable (e.g. no room for a status byte): break the
 * queue as for a malformed chain. Returns -EINVAL. */
int virtq_fail_chain(struct virtq *vq);
/* Undo the last pop (the device could not take it now, e.g. a full tap). */
void virtq_unpop(struct virtq *vq);
/* The reason of the last error on this thread, and its one-word name. */
enum virtq_error virtq_last_error(void);
const char *virtq_error_name(enum virtq_error err);
/* The EVENT_IDX test of the spec: did the index move past event going from old to new? */
static inline bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

#endif
