#include "virtio/console.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CON_RX 0
#define CON_TX 1
#define CON_QUEUE_SIZE 128
#define CON_CONFIG_LEN 8 /* cols, rows, max_nr_ports: zeros without F_SIZE / F_MULTIPORT */

struct virtio_console {
    struct virtio_dev dev;
    struct virtio_console_config cfg;
    bool input_refused; /* input was offered while no buffer was posted */
    uint8_t config[CON_CONFIG_LEN];
    struct virtq_elem elem;
    uint64_t stat_in_bytes, stat_out_bytes;
};

static void con_config_read(struct virtio_dev *dev, unsigned off, void *buf, unsigned len)
{
    struct virtio_console *c = (struct virtio_console *)dev;
    memcpy(buf, c->config + off, len);
}

static void con_tx(struct virtio_console *c)
{
    struct virtq *vq = &c->dev.vqs[CON_TX];
    unsigned budget = VIRTIO_BUDGET;
    int rc = 0;
    do {
        /* Every round costs budget, even an empty one: a guest whose rings overlap can make
         * the notify toggling itself look like new work. */
        budget--;
        virtq_set_notify(vq, false);
        while (budget && (rc = virtq_pop(vq, &c->elem)) > 0) {
            budget--;
            for (unsigned i = 0; i < c->elem.nout; i++) {
                c->stat_out_bytes += c->elem.iov[i].iov_len;
                if (c->cfg.out)
                    c->cfg.out(c->cfg.opaque, c->elem.iov[i].iov_base, c->elem.iov[i].iov_len);
            }
            if (virtq_push(vq, c->elem.head, 0) < 0)
                break;
        }
        virtq_set_notify(vq, true);
    } while (budget && rc >= 0 && !vq->broken && virtq_has_work(vq));
    virtio_dev_queue_done(&c->dev, CON_TX);
    if (!budget && !vq->broken)
        virtio_dev_requeue(&c->dev, CON_TX);
}

static void con_queue_notify(struct virtio_dev *dev, unsigned q)
{
    struct virtio_console *c = (struct virtio_console *)dev;
    if (q == CON_TX) {
        con_tx(c);
    } else if (q == CON_RX && c->input_refused) {
        c->input_refused = false;
        if (c->cfg.rx_ready)
            c->cfg.rx_ready(c->cfg.opaque);
    }
}

size_t virtio_console_input(struct virtio_dev *dev, const uint8_t *buf, size_t len)
{
    struct virtio_console *c = (struct virtio_console *)dev;
    struct virtq *vq = &dev->vqs[CON_RX];
    size_t taken = 0;
    pthread_mutex_lock(&dev->lock);
    while (taken < len && virtio_dev_running(dev)) {
        int rc = virtq_pop(vq, &c->elem);
        if (rc <= 0)
            break;
        size_t put = 0;
        for (unsigned i = c->elem.nout; i < c->elem.nout + c->elem.nin && taken < len; i++) {
            size_t n = c->elem.iov[i].iov_len;
            if (n > len - taken)
                n = len - taken;
            memcpy(c->elem.iov[i].iov_base, buf + taken, n);
            taken += n;
            put += n;
        }
        if (virtq_push(vq, c->elem.head, (uint32_t)put) < 0)
            break;
    }
    if (vq->broken)
        virtio_dev_set_needs_reset(dev);
    else if (taken)
        virtio_dev_queue_done(dev, CON_RX);
    if (taken < len)
        c->input_refused = true;
    c->stat_in_bytes += taken;
    pthread_mutex_unlock(&dev->lock);
    return taken;
}

static void con_destroy(struct virtio_dev *dev)
{
    virtio_dev_fini(dev);
    free(dev);
}

static const struct virtio_dev_ops con_ops = {
    .name = "virtio-console",
    .device_id = VIRTIO_ID_CONSOLE,
    .pci_class = 0x078000,
    .config_read = con_config_read,
    .queue_notify = con_queue_notify,
    .destroy = con_destroy,
};

struct virtio_dev *virtio_console_create(const struct guest_mem *mem,
                                         const struct virtio_console_config *cfg)
{
    struct virtio_console *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    virtio_dev_init(&c->dev, &con_ops, "virtio-console", mem, 2, CON_QUEUE_SIZE,
                    CON_CONFIG_LEN);
    c->cfg = *cfg;
    return &c->dev;
}
