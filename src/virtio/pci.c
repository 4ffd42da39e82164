#include "virtio/pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/err.h"
#include "util/log.h"
#include "vmm/event.h"
#include "vmm/vm.h"

#define MSIX_ENTRY_SIZE 16
#define MSIX_CTRL_MASKED 1u
#define MSIX_MSGCTL_ENABLE 0x8000u
#define MSIX_MSGCTL_MASKALL 0x4000u

struct virtio_pci_vector {
    uint32_t addr_lo, addr_hi, data, ctrl;
    int route;          /* accelerator MSI route, -1: none */
    int irqfd;          /* eventfd bound to route when irqfd_bound */
    bool irqfd_bound;
};

struct virtio_pci_queue {
    struct virtio_pci *t;
    unsigned index;
    uint16_t vector;
    int kick_fd;        /* the guest's notifications land here, by ioeventfd or by us */
    int call_fd;        /* a backend's (vhost's) interrupts for this queue */
    bool ioeventfd_on;
    bool backend;       /* a backend reads kick_fd, the I/O thread does not */
};

struct virtio_pci {
    struct pci_function fn;
    struct virtio_dev *dev;
    struct vm *vm;
    struct event_loop *loop;
    uint64_t bar_addr;
    uint32_t dfselect, gfselect;
    uint16_t queue_select;
    uint16_t config_vector;
    uint8_t isr;
    uint8_t config_generation;
    uint8_t status_before_reset;  /* shown until requests in flight at a reset finish */
    bool msix_enabled, msix_masked;
    unsigned nvec;
    unsigned msix_cap, cfg_cap;
    struct virtio_pci_vector vec[VIRTIO_PCI_MAX_VECTORS];
    uint64_t pba[(VIRTIO_PCI_MAX_VECTORS + 63) / 64];
    struct virtio_pci_queue q[VIRTIO_MAX_QUEUES];
};

static const struct accel_ops *tp_accel(const struct virtio_pci *t)
{
    return t->vm && t->vm->accel_data ? t->vm->accel : NULL;
}

static uint64_t tp_offered(const struct virtio_pci *t)
{
    return t->dev->host_features | (1ULL << VIRTIO_F_VERSION_1) |
           (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC);
}

/* --- MSI-X --- */

static uint64_t vec_addr(const struct virtio_pci_vector *v)
{
    return (uint64_t)v->addr_hi << 32 | v->addr_lo;
}

static void vec_fire(struct virtio_pci *t, unsigned n)
{
    struct virtio_pci_vector *v = &t->vec[n];
    if (v->irqfd_bound) {
        uint64_t one = 1;
        if (write(v->irqfd, &one, sizeof(one)) == sizeof(one))
            return;
    }
    const struct accel_ops *a = tp_accel(t);
    if (a && a->signal_msi) {
        int rc = a->signal_msi(t->vm, vec_addr(v), v->data);
        if (rc < 0)
            log_debug("%s: MSI-X vector %u: %s", t->dev->name, n, strerror(-rc));
    }
}

static bool vec_masked(const struct virtio_pci *t, unsigned n)
{
    return t->msix_masked || (t->vec[n].ctrl & MSIX_CTRL_MASKED);
}

/* Deliver vector n, or leave it pending in the PBA while it is masked. */
static void tp_deliver(struct virtio_pci *t, uint16_t n)
{

    if (n >= t->nvec || !t->msix_enabled)
        return; /* no INTx: a driver that enables no MSI-X gets no interrupts */
    if (vec_masked(t, n)) {
        t->pba[n / 64] |= 1ULL << (n % 64);
        return;
    }
    vec_fire(t, n);
}

/* A vector became unmasked (or MSI-X was enabled): send what was pending. */
static void tp_flush_pending(struct virtio_pci *t)
{
    if (!t->msix_enabled)
        return;
    for (unsigned n = 0; n < t->nvec; n++) {
        uint64_t bit = 1ULL << (n % 64);
        if ((t->pba[n / 64] & bit) && !vec_masked(t, n)) {
            t->pba[n / 64] &= ~bit;
            vec_fire(t, n);
        }
    }
}

/* Keep the accelerator's route for vector n in step with the table entry. vCPU thread only
 * (the accelerator exists while vCPUs run). */
static void tp_sync_route(struct virtio_pci *t, unsigned n)
{
    const struct accel_ops *a = tp_accel(t);
    struct virtio_pci_vector *v = &t->vec[n];
    if (!a || !a->msi_route_add || !a->irqfd || v->irqfd < 0)
        return;
    if (v->route < 0) {
        int r = a->msi_route_add(t->vm, vec_addr(v), v->data);
        if (r < 0)
            return; /* signal_msi stays the path */
        v->route = r;
    } else if (a->msi_route_update(t->vm, v->route, vec_addr(v), v->data) < 0) {
        return;
    }
    if (!v->irqfd_bound && a->irqfd(t->vm, v->route, v->irqfd, true) == 0)
        v->irqfd_bound = true;
}

/* Forget routes and bindings. With release, tell the accelerator; without, it is already gone
 * (machine reset rebuilds it) and only our bookkeeping is cleared. */
static void tp_drop_routes(struct virtio_pci *t, bool release)
{
    const struct accel_ops *a = release ? tp_accel(t) : NULL;
    for (unsigned n = 0; n < t->nvec; n++) {
        struct virtio_pci_vector *v = &t->vec[n];
        if (a && v->irqfd_bound)
            a->irqfd(t->vm, v->route, v->irqfd, false);
        if (a && v->route >= 0)
            a->msi_route_remove(t->vm, v->route);
        v->irqfd_bound = false;
        v->route = -1;
    }
}

static void tp_msix_reset(struct virtio_pci *t)
{
    for (unsigned n = 0; n < t->nvec; n++) {
        struct virtio_pci_vector *v = &t->vec[n];
        v->addr_lo = v->addr_hi = v->data = 0;
        v->ctrl = MSIX_CTRL_MASKED;
    }
    memset(t->pba, 0, sizeof(t->pba));
    t->msix_enabled = t->msix_masked = false;
}

static uint64_t tp_msix_table_read(struct virtio_pci *t, uint64_t off, unsigned size)
{
    unsigned n = (unsigned)(off / MSIX_ENTRY_SIZE), word = (unsigned)(off % MSIX_ENTRY_SIZE) / 4;
    if (n >= t->nvec || (off & (size - 1)) || size < 4)
        return ~0ULL;
    const struct virtio_pci_vector *v = &t->vec[n];
    uint32_t w[4] = {v->addr_lo, v->addr_hi, v->data, v->ctrl};
    return size == 8 ? (word == 0 ? vec_addr(v) : (uint64_t)w[3] << 32 | w[2]) : w[word];
}

static void tp_msix_table_write(struct virtio_pci *t, uint64_t off, uint64_t val, unsigned size)
{
    unsigned n = (unsigned)(off / MSIX_ENTRY_SIZE), word = (unsigned)(off % MSIX_ENTRY_SIZE) / 4;
    if (n >= t->nvec || (off & (size - 1)) || size < 4)
        return;
    struct virtio_pci_vector *v = &t->vec[n];
    uint32_t *w[4] = {&v->addr_lo, &v->addr_hi, &v->data, &v->ctrl};
    *w[word] = (uint32_t)val;
    if (size == 8)
        *w[word + 1] = (uint32_t)(val >> 32);
    v->ctrl &= MSIX_CTRL_MASKED;
    if (word < 3 || size == 8)
        tp_sync_route(t, n);
    tp_flush_pending(t);
}

/* --- queues and kicks --- */

static void tp_signal_kick(struct virtio_pci_queue *pq)
{
    uint64_t one = 1;
    if (write(pq->kick_fd, &one, sizeof(one)) < 0)
        log_debug("virtio kick: %s", strerror(errno));
}

/* I/O thread: the guest notified queue q (through the ioeventfd or our MMIO handler). */
static void tp_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_pci_queue *pq = opaque;
    struct virtio_pci *t = pq->t;
    uint64_t n;
    if (read(pq->kick_fd, &n, sizeof(n)) < 0)
        return;
    struct virtio_dev *dev = t->dev;
    pthread_mutex_lock(&dev->lock);
    if (pq->backend) {
        /* Picked up just before the queue was handed over (perhaps the kick DRIVER_OK sends):
         * it is the backend's, so put it back, and make sure this loop watches no more. */
        event_loop_modify(t->loop, pq->kick_fd, 0);
        tp_signal_kick(pq);
    } else if (virtio_dev_running(dev) && dev->vqs[pq->index].ready) {
        dev->stat_kicks++;
        dev->ops->queue_notify(dev, pq->index);
    }
    pthread_mutex_unlock(&dev->lock);
}

/* I/O thread: a backend completed work on the queue and wants the driver interrupted (it has
 * already applied EVENT_IDX / NO_INTERRUPT). Through tp_deliver, so masking holds. */
static void tp_call(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_pci_queue *pq = opaque;
    struct virtio_pci *t = pq->t;
    uint64_t n;
    if (read(pq->call_fd, &n, sizeof(n)) < 0)
        return;
    pthread_mutex_lock(&t->dev->lock);
    if (pq->backend && virtio_dev_running(t->dev)) {
        t->dev->stat_interrupts++;
        t->isr |= 1;
        tp_deliver(t, pq->vector);
    }
    pthread_mutex_unlock(&t->dev->lock);
}

static uint64_t tp_notify_addr(const struct virtio_pci *t, unsigned q)
{
    return t->bar_addr + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q;
}

static void tp_ioeventfd(struct virtio_pci *t, unsigned q, bool on)
{
    struct virtio_pci_queue *pq = &t->q[q];
    const struct accel_ops *a = tp_accel(t);
    if (pq->ioeventfd_on == on || !a || !a->ioeventfd)
        return;
    int rc = a->ioeventfd(t->vm, tp_notify_addr(t, q), 2, pq->kick_fd, on);
    if (rc == 0)
        pq->ioeventfd_on = on;
    else if (on)
        log_debug("%s: no ioeventfd for queue %u (%s): kicks take the slow path", t->dev->name, q,
                  strerror(-rc));
}

static void tp_queue_enable(struct virtio_pci *t, unsigned q)
{
    struct virtio_dev *dev = t->dev;
    struct virtq *vq = &dev->vqs[q];
    if (vq->ready)
        return;
    vq->event_idx = virtio_has_feature(dev, VIRTIO_F_EVENT_IDX);
    vq->indirect = virtio_has_feature(dev, VIRTIO_F_INDIRECT_DESC);
    if (virtq_enable(vq) < 0) {
        virtio_dev_set_needs_reset(dev);
        return;
    }
    tp_ioeventfd(t, q, true);
}

/* Device reset by the driver (status 0) or by the machine (release=false: the accelerator's
 * registrations are already gone). */
static void tp_device_reset(struct virtio_pci *t, bool release)
{
    struct virtio_dev *dev = t->dev;
    t->status_before_reset = dev->status;
    for (unsigned q = 0; q < dev->num_queues; q++) {
        if (release)
            tp_ioeventfd(t, q, false);
        t->q[q].ioeventfd_on = false;
        t->q[q].vector = VIRTIO_PCI_NO_VECTOR;
    }
    virtio_dev_reset(dev);
    for (unsigned q = 0; q < dev->num_queues; q++)
        dev->vqs[q].size = dev->queue_max;
    t->dfselect = t->gfselect = 0;
    t->queue_select = 0;
    t->config_vector = VIRTIO_PCI_NO_VECTOR;
    t->isr = 0;
}

static void tp_set_status(struct virtio_pci *t, uint8_t val)
{
    struct virtio_dev *dev = t->dev;
    if (val == 0) {
        tp_device_reset(t, true);
        return;
    }
    uint8_t old = dev->status;
    if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
        bool ok = !(dev->features & ~tp_offered(t)) &&
                  virtio_has_feature(dev, VIRTIO_F_VERSION_1) &&
                  (!dev->ops->features_ok || dev->ops->features_ok(dev) == 0);
        if (!ok)
            val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
    }
    /* DRIVER_OK without FEATURES_OK is a driver bug: do not start serving. */
    if ((val & VIRTIO_STATUS_DRIVER_OK) && !(val & VIRTIO_STATUS_FEATURES_OK))
        val &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
    dev->status = (uint8_t)(val | (old & VIRTIO_STATUS_NEEDS_RESET));
    if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
        if (dev->ops->driver_ok && dev->ops->driver_ok(dev) < 0) {
            virtio_dev_set_needs_reset(dev);
            return;
        }
        /* Buffers made available before DRIVER_OK (receive queues) get looked at now. */
        for (unsigned q = 0; q < dev->num_queues; q++)
            if (dev->vqs[q].ready)
                tp_signal_kick(&t->q[q]);
    }
}

/* --- common configuration --- */

static uint64_t tp_common_read(struct virtio_pci *t, unsigned off, unsigned size)
{
    struct virtio_dev *dev = t->dev;
    unsigned qs = t->queue_select;
    struct virtq *vq = qs < dev->num_queues ? &dev->vqs[qs] : NULL;
    uint64_t v;
    switch (off) {
    case VIRTIO_PCI_DFSELECT: v = t->dfselect; break;
    case VIRTIO_PCI_DF:
        v = t->dfselect < 2 ? (uint32_t)(tp_offered(t) >> (32 * t->dfselect)) : 0;
        break;
    case VIRTIO_PCI_GFSELECT: v = t->gfselect; break;
    case VIRTIO_PCI_GF:
        v = t->gfselect < 2 ? (uint32_t)(dev->features >> (32 * t->gfselect)) : 0;
        break;
    case VIRTIO_PCI_MSIX_CONFIG: v = t->config_vector; break;
    case VIRTIO_PCI_NUM_QUEUES: v = dev->num_queues; break;
    case VIRTIO_PCI_STATUS:
        /* The driver waits for 0 after a reset: say 0 only once nothing is in flight. */
        v = dev->status == 0 && dev->inflight > 0 ? (t->status_before_reset | 1u) : dev->status;
        break;
    case VIRTIO_PCI_CFG_GENERATION: v = t->config_generation; break;
    case VIRTIO_PCI_Q_SELECT: v = qs; break;
    case VIRTIO_PCI_Q_SIZE: v = vq ? vq->size : 0; break;
    case VIRTIO_PCI_Q_MSIX: v = vq ? t->q[qs].vector : VIRTIO_PCI_NO_VECTOR; break;
    case VIRTIO_PCI_Q_ENABLE: v = vq ? vq->ready : 0; break;
    case VIRTIO_PCI_Q_NOFF: v = vq ? qs : 0; break;
    case VIRTIO_PCI_Q_DESCLO: v = vq ? vq->desc_gpa : 0; break;
    case VIRTIO_PCI_Q_DESCHI: v = vq ? vq->desc_gpa >> 32 : 0; break;
    case VIRTIO_PCI_Q_AVAILLO: v = vq ? vq->avail_gpa : 0; break;
    case VIRTIO_PCI_Q_AVAILHI: v = vq ? vq->avail_gpa >> 32 : 0; break;
    case VIRTIO_PCI_Q_USEDLO: v = vq ? vq->used_gpa : 0; break;
    case VIRTIO_PCI_Q_USEDHI: v = vq ? vq->used_gpa >> 32 : 0; break;
    default: return 0;
    }
    if (size == 8 && (off == VIRTIO_PCI_Q_DESCLO || off == VIRTIO_PCI_Q_AVAILLO ||
                      off == VIRTIO_PCI_Q_USEDLO))
        return v;
    return size >= 4 ? (uint32_t)v : v & ((1ULL << (8 * size)) - 1);
}

static void tp_set_addr(uint64_t *addr, bool hi, unsigned size, uint64_t val)
{
    if (size == 8 && !hi)
        *addr = val;
    else if (hi)
        *addr = (*addr & 0xffffffffULL) | (uint64_t)(uint32_t)val << 32;
    else
        *addr = (*addr & ~0xffffffffULL) | (uint32_t)val;
}

static void tp_common_write(struct virtio_pci *t, unsigned off, unsigned size, uint64_t val)
{
    struct virtio_dev *dev = t->dev;
    unsigned qs = t->queue_select;
    struct virtq *vq = qs < dev->num_queues ? &dev->vqs[qs] : NULL;
    /* A live queue's configuration is frozen until the next reset. */
    bool q_writable = vq && !vq->ready;
    switch (off) {
    case VIRTIO_PCI_DFSELECT: t->dfselect = (uint32_t)val; break;
    case VIRTIO_PCI_GFSELECT: t->gfselect = (uint32_t)val; break;
    case VIRTIO_PCI_GF:
        if (t->gfselect < 2 && !(dev->status & VIRTIO_STATUS_FEATURES_OK)) {
            unsigned sh = 32 * t->gfselect;
            dev->features = (dev->features & ~(0xffffffffULL << sh)) |
                            ((uint64_t)(uint32_t)val << sh);
        }
        break;
    case VIRTIO_PCI_MSIX_CONFIG:
        t->config_vector = val < t->nvec ? (uint16_t)val : VIRTIO_PCI_NO_VECTOR;
        break;
    case VIRTIO_PCI_STATUS: tp_set_status(t, (uint8_t)val); break;
    case VIRTIO_PCI_Q_SELECT: t->queue_select = (uint16_t)val; break;
    case VIRTIO_PCI_Q_SIZE:
        /* Up to what the device offers; virtq_enable() checks the power of two. */
        if (q_writable && val <= dev->queue_max)
            vq->size = (uint16_t)val;
        break;
    case VIRTIO_PCI_Q_MSIX:
        if (vq)
            t->q[qs].vector = val < t->nvec ? (uint16_t)val : VIRTIO_PCI_NO_VECTOR;
        break;
    case VIRTIO_PCI_Q_ENABLE:
        if (vq && (val & 1) && (dev->status & VIRTIO_STATUS_FEATURES_OK))
            tp_queue_enable(t, qs);
        break;
    case VIRTIO_PCI_Q_DESCLO: case VIRTIO_PCI_Q_DESCHI:
        if (q_writable)
            tp_set_addr(&vq->desc_gpa, off == VIRTIO_PCI_Q_DESCHI, size, val);
        break;
    case VIRTIO_PCI_Q_AVAILLO: case VIRTIO_PCI_Q_AVAILHI:
        if (q_writable)
            tp_set_addr(&vq->avail_gpa, off == VIRTIO_PCI_Q_AVAILHI, size, val);
        break;
    case VIRTIO_PCI_Q_USEDLO: case VIRTIO_PCI_Q_USEDHI:
        if (q_writable)
            tp_set_addr(&vq->used_gpa, off == VIRTIO_PCI_Q_USEDHI, size, val);
        break;
    default: break; /* read-only or reserved */
    }
}

/* --- BAR0 --- */

static uint64_t tp_bar_read(void *opaque, uint64_t off, unsigned size)
{
    struct virtio_pci *t = opaque;
    struct virtio_dev *dev = t->dev;
    uint64_t v = ~0ULL;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return v;
    pthread_mutex_lock(&dev->lock);
    if (off < VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_LEN) {
        v = tp_common_read(t, (unsigned)off, size);
    } else if (off >= VIRTIO_PCI_ISR_OFF && off < VIRTIO_PCI_ISR_OFF + VIRTIO_PCI_REGION_SIZE) {
        v = off == VIRTIO_PCI_ISR_OFF ? t->isr : 0;
        if (off == VIRTIO_PCI_ISR_OFF)
            t->isr = 0; /* reading ISR acknowledges it */
    } else if (off >= VIRTIO_PCI_DEVICE_OFF &&
               off < VIRTIO_PCI_DEVICE_OFF + VIRTIO_PCI_REGION_SIZE) {
        unsigned o = (unsigned)(off - VIRTIO_PCI_DEVICE_OFF);
        v = 0;
        if (dev->ops->config_read && o < dev->config_len && size <= dev->config_len - o)
            dev->ops->config_read(dev, o, &v, size);
    } else if (off >= VIRTIO_PCI_NOTIFY_OFF &&
               off < VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_REGION_SIZE) {
        v = 0;
    } else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF &&
               off < VIRTIO_PCI_MSIX_TABLE_OFF + VIRTIO_PCI_REGION_SIZE) {
        v = tp_msix_table_read(t, off - VIRTIO_PCI_MSIX_TABLE_OFF, size);
    } else if (off >= VIRTIO_PCI_MSIX_PBA_OFF && off < VIRTIO_PCI_MSIX_PBA_OFF + sizeof(t->pba)) {
        uint64_t o = off - VIRTIO_PCI_MSIX_PBA_OFF;
        uint8_t bytes[sizeof(t->pba) + 8] = {0};
        memcpy(bytes, t->pba, sizeof(t->pba));
        v = 0;
        memcpy(&v, bytes + o, size);
    }
    pthread_mutex_unlock(&dev->lock);
    return size == 8 ? v : v & ((1ULL << (8 * size)) - 1);
}

static void tp_bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    struct virtio_pci *t = opaque;
    struct virtio_dev *dev = t->dev;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return;
    if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_REGION_SIZE) {
        /* The slow path of a kick: only wake the I/O thread, do no queue work here. */
        unsigned q = (unsigned)(off - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT;
        if (q < dev->num_queues)
            tp_signal_kick(&t->q[q]);
        return;
    }
    pthread_mutex_lock(&dev->lock);
    if (off < VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_LEN) {
        tp_common_write(t, (unsigned)off, size, val);
    } else if (off >= VIRTIO_PCI_DEVICE_OFF &&
               off < VIRTIO_PCI_DEVICE_OFF + VIRTIO_PCI_REGION_SIZE) {
        unsigned o = (unsigned)(off - VIRTIO_PCI_DEVICE_OFF);
        if (dev->ops->config_write && o < dev->config_len && size <= dev->config_len - o)
            dev->ops->config_write(dev, o, &val, size);
    } else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF &&
               off < VIRTIO_PCI_MSIX_TABLE_OFF + VIRTIO_PCI_REGION_SIZE) {
        tp_msix_table_write(t, off - VIRTIO_PCI_MSIX_TABLE_OFF, val, size);
    }
    pthread_mutex_unlock(&dev->lock);
}

const struct bus_dev_ops virtio_pci_bar_ops = {
    .read = tp_bar_read,
    .write = tp_bar_write,
};

/* --- interrupts asked for by the device (lock held) --- */

static void tp_queue_interrupt(void *opaque, unsigned q)
{
    struct virtio_pci *t = opaque;
    t->isr |= 1;
    tp_deliver(t, t->q[q].vector);
}

static int tp_backend_attach(void *opaque, unsigned q, int *kick_fd, int *call_fd)
{
    struct virtio_pci *t = opaque;
    if (q >= t->dev->num_queues || !t->loop)
        return -EINVAL;
    struct virtio_pci_queue *pq = &t->q[q];
    if (pq->call_fd < 0) {
        /* Made on first use (only vhost queues need one), then watched for good. */
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            return -errno;
        int rc = event_loop_add(t->loop, fd, EPOLLIN, tp_call, pq);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        pq->call_fd = fd;
    }
    /* Only the I/O thread may remove an fd from its loop (event.h); watching nothing is as
     * good, and tp_kick hands back a kick it picked up just before. */
    int rc = event_loop_modify(t->loop, pq->kick_fd, 0);
    if (rc < 0)
        return rc;
    pq->backend = true;
    *kick_fd = pq->kick_fd;
    *call_fd = pq->call_fd;
    return 0;
}

static void tp_backend_detach(void *opaque, unsigned q)
{
    struct virtio_pci *t = opaque;
    if (q >= t->dev->num_queues || !t->q[q].backend)
        return;
    t->q[q].backend = false;
    if (event_loop_modify(t->loop, t->q[q].kick_fd, EPOLLIN) < 0)
        log_warn("%s: queue %u: cannot watch its kicks again", t->dev->name, q);
}

static void tp_requeue(void *opaque, unsigned q)
{
    struct virtio_pci *t = opaque;
    if (q < t->dev->num_queues)
        tp_signal_kick(&t->q[q]);
}

static void tp_config_interrupt(void *opaque)
{
    struct virtio_pci *t = opaque;
    t->isr |= 2;
    t->config_generation++;
    tp_deliver(t, t->config_vector);
}

/* --- PCI configuration space hooks (PCI host lock held) --- */

static uint32_t cfg_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The PCI configuration access capability: a window onto BAR0 for drivers that cannot map it. */
static bool tp_cfg_window(struct virtio_pci *t, unsigned off, unsigned size, unsigned *len,
                          uint64_t *bar_off)
{
    unsigned data = t->cfg_cap + 16;
    if (!t->cfg_cap || off != data || size != 4)
        return false;
    const uint8_t *c = &t->fn.config[t->cfg_cap];
    *len = cfg_get32(c + 12);
    *bar_off = cfg_get32(c + 8);
    return c[4] == 0 && (*len == 1 || *len == 2 || *len == 4) && !(*bar_off & (*len - 1)) &&
           *bar_off + *len <= VIRTIO_PCI_BAR_SIZE;
}

static uint32_t tp_config_read(struct pci_function *fn, unsigned off, unsigned size, uint32_t val)
{
    struct virtio_pci *t = fn->opaque;
    unsigned len;
    uint64_t bar_off;
    if (tp_cfg_window(t, off, size, &len, &bar_off))
        return (uint32_t)tp_bar_read(t, bar_off, len);
    return val;
}

static void tp_config_write(struct pci_function *fn, unsigned off, unsigned size, uint32_t val)
{
    struct virtio_pci *t = fn->opaque;
    unsigned len;
    uint64_t bar_off;
    if (tp_cfg_window(t, off, size, &len, &bar_off)) {
        tp_bar_write(t, bar_off, val, len);
        return;
    }
    unsigned ctl = t->msix_cap + 2;
    if (off + size > ctl && off < ctl + 2) {
        uint16_t msgctl = (uint16_t)(fn->config[ctl] | fn->config[ctl + 1] << 8);
        pthread_mutex_lock(&t->dev->lock);
        bool was = t->msix_enabled;
        t->msix_enabled = msgctl & MSIX_MSGCTL_ENABLE;
        t->msix_masked = msgctl & MSIX_MSGCTL_MASKALL;
        /* Every vector gets its route now, even one the guest left at address 0: the I/O
         * thread then only ever writes irqfds, and never calls into the accelerator. */
        if (t->msix_enabled && !was)
            for (unsigned n = 0; n < t->nvec; n++)
                tp_sync_route(t, n);
        tp_flush_pending(t);
        pthread_mutex_unlock(&t->dev->lock);
    }
}

static void tp_firmware_bar(struct virtio_pci *t)
{
    uint32_t bar = (uint32_t)t->bar_addr;
    for (unsigned i = 0; i < 4; i++)
        t->fn.config[PCI_BAR0 + i] = (uint8_t)(bar >> (8 * i));
}

/* Machine reset (RST#): the accelerator was rebuilt, so its registrations are simply gone. */
static void tp_pci_reset(struct pci_function *fn)
{
    struct virtio_pci *t = fn->opaque;
    tp_firmware_bar(t);
    fn->config[t->msix_cap + 2] = (uint8_t)(t->nvec - 1);
    fn->config[t->msix_cap + 3] = (uint8_t)((t->nvec - 1) >> 8);
    pthread_mutex_lock(&t->dev->lock);
    tp_drop_routes(t, false);
    tp_msix_reset(t);
    tp_device_reset(t, false);
    pthread_mutex_unlock(&t->dev->lock);
}

/* --- construction --- */

static void cfg_put32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int tp_add_vndr_cap(struct virtio_pci *t, uint8_t type, uint32_t offset, uint32_t length,
                           unsigned len)
{
    int c = pci_function_add_cap(&t->fn, PCI_CAP_ID_VNDR, len);
    if (c < 0)
        return c;
    uint8_t *p = &t->fn.config[c];
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = 0; /* BAR0 */
    cfg_put32(p + 8, offset);
    cfg_put32(p + 12, length);
    return c;
}

struct virtio_pci *virtio_pci_create(struct virtio_dev *dev, struct vm *vm,
                                     struct event_loop *loop, uint64_t bar_addr)
{
    struct virtio_pci *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->dev = dev;
    t->vm = vm;
    t->loop = loop;
    t->bar_addr = bar_addr;
    t->nvec = dev->num_queues + 1;
    for (unsigned n = 0; n < VIRTIO_PCI_MAX_VECTORS; n++) {
        t->vec[n].route = -1;
        t->vec[n].irqfd = -1;
    }
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        t->q[q] = (struct virtio_pci_queue){.t = t, .index = q, .vector = VIRTIO_PCI_NO_VECTOR,
                                            .kick_fd = -1, .call_fd = -1};
    int err = 0;
    for (unsigned q = 0; q < dev->num_queues && !err; q++)
        if ((t->q[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            err = errno;
    for (unsigned n = 0; n < t->nvec && !err; n++)
        if ((t->vec[n].irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            err = errno;

    struct pci_function *fn = &t->fn;
    pci_function_init(fn, VIRTIO_PCI_VENDOR,
                      (uint16_t)(VIRTIO_PCI_DEVICE_BASE + dev->ops->device_id),
                      dev->ops->pci_class, 1);
    fn->config[PCI_SUBSYSTEM_VENDOR_ID] = (uint8_t)VIRTIO_PCI_VENDOR;
    fn->config[PCI_SUBSYSTEM_VENDOR_ID + 1] = (uint8_t)(VIRTIO_PCI_VENDOR >> 8);
    fn->config[PCI_SUBSYSTEM_ID] = 0x00;
    fn->config[PCI_SUBSYSTEM_ID + 1] = 0x11; /* >= 0x40: a modern device */
    fn->opaque = t;
    fn->config_read = tp_config_read;
    fn->config_write = tp_config_write;
    fn->reset = tp_pci_reset;
    int rc = pci_function_set_bar(fn, 0, VIRTIO_PCI_BAR_SIZE, 0);
    if (rc == 0)
        rc = tp_add_vndr_cap(t, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
                             VIRTIO_PCI_COMMON_LEN, 16);
    if (rc >= 0) {
        rc = tp_add_vndr_cap(t, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
                             VIRTIO_PCI_NOTIFY_MULT * dev->num_queues, 20);
        if (rc >= 0)
            cfg_put32(&fn->config[rc + 16], VIRTIO_PCI_NOTIFY_MULT);
    }
    if (rc >= 0)
        rc = tp_add_vndr_cap(t, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, 16);
    if (rc >= 0 && dev->config_len)
        rc = tp_add_vndr_cap(t, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, dev->config_len,
                             16);
    if (rc >= 0) {
        rc = tp_add_vndr_cap(t, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20);
        if (rc >= 0) {
            t->cfg_cap = (unsigned)rc;
            /* bar, offset, length and the data window are the driver's to write. */
            fn->wmask[rc + 4] = 0xff;
            memset(&fn->wmask[rc + 8], 0xff, 12);
        }
    }
    if (rc >= 0) {
        rc = pci_function_add_cap(fn, PCI_CAP_ID_MSIX, 12);
        if (rc >= 0) {
            t->msix_cap = (unsigned)rc;
            fn->config[rc + 2] = (uint8_t)(t->nvec - 1);
            fn->config[rc + 3] = (uint8_t)((t->nvec - 1) >> 8);
            fn->wmask[rc + 3] = 0xc0; /* enable, function mask */
            cfg_put32(&fn->config[rc + 4], VIRTIO_PCI_MSIX_TABLE_OFF); /* BIR 0 */
            cfg_put32(&fn->config[rc + 8], VIRTIO_PCI_MSIX_PBA_OFF);
        }
    }
    if (rc < 0 || err) {
        virtio_pci_destroy(t);
        errno = err ? err : -rc;
        return NULL;
    }
    tp_firmware_bar(t);
    tp_msix_reset(t);
    dev->transport = (struct virtio_transport){
        .queue_interrupt = tp_queue_interrupt, .config_interrupt = tp_config_interrupt,
        .requeue = tp_requeue, .backend_attach = tp_backend_attach,
        .backend_detach = tp_backend_detach, .opaque = t};
    pthread_mutex_lock(&dev->lock);
    tp_device_reset(t, false);
    pthread_mutex_unlock(&dev->lock);
    return t;
}

int virtio_pci_attach(struct virtio_pci *t, struct pci_host *host, struct bus *mmio,
                      unsigned slot)
{
    if (t->loop) {
        for (unsigned q = 0; q < t->dev->num_queues; q++) {
            int rc = event_loop_add(t->loop, t->q[q].kick_fd, EPOLLIN, tp_kick, &t->q[q]);
            if (rc < 0)
                return rc;
        }
    }
    int rc = bus_register(mmio, t->bar_addr, VIRTIO_PCI_BAR_SIZE, &virtio_pci_bar_ops, t,
                          t->dev->name);
    if (rc < 0)
        return rc;
    return pci_host_register(host, slot, 0, &t->fn);
}

void virtio_pci_destroy(struct virtio_pci *t)
{
    if (!t)
        return;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (t->q[q].kick_fd >= 0) {
            if (t->loop)
                event_loop_del(t->loop, t->q[q].kick_fd);
            close(t->q[q].kick_fd);
        }
        if (t->q[q].call_fd >= 0) {
            if (t->loop)
                event_loop_del(t->loop, t->q[q].call_fd);
            close(t->q[q].call_fd);
        }
    }
    for (unsigned n = 0; n < VIRTIO_PCI_MAX_VECTORS; n++)
        if (t->vec[n].irqfd >= 0)
            close(t->vec[n].irqfd);
    free(t);
}

struct virtio_dev *virtio_pci_device(struct virtio_pci *t)
{
    return t->dev;
}

struct pci_function *virtio_pci_function(struct virtio_pci *t)
{
    return &t->fn;
}
