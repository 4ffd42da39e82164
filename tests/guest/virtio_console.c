/* virtio_console: hvc0 through virtio-console. Output on the transmit queue reaches the VMM's
 * console ("hvc0 says <con_token>"); then the guest posts receive buffers, prints
 * "virtio_console: ready" on the serial port, and echoes the first line typed on the console
 * back as "hvc0 got: <line>". */
#include "runtime.h"

#include "virtio.h"

const char guest_name[] = "virtio_console";

static struct vq_mem rxmem, txmem;
static char rxbuf[4][64];
static char txbuf[128];

static void put(struct vq *tx, const char *s)
{
    unsigned n = (unsigned)strlen(s);
    memcpy(txbuf, s, n);
    struct vbuf b = {txbuf, n, 0};
    uint16_t head = vq_add(tx, &b, 1);
    vq_kick(tx);
    ASSERT_EQ(vq_wait(tx, NULL, 2000000UL), head);
}

int guest_main(void)
{
    struct vdev d;
    ASSERT(virtio_find(3, 0, &d) == 0);
    virtio_reset(&d);
    ASSERT(virtio_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1) == 0);
    struct vq rx, tx;
    ASSERT(virtio_queue_setup(&d, 0, &rx, &rxmem, 4, 0xffff) == 0);
    ASSERT(virtio_queue_setup(&d, 1, &tx, &txmem, 4, 0xffff) == 0);
    virtio_set_status(&d, virtio_status(&d) | VIRTIO_STATUS_DRIVER_OK);

    char token[32] = "none", line[96];
    cmdline_get("con_token", token, sizeof(token));
    snprintf(line, sizeof(line), "hvc0 says %s\n", token);
    put(&tx, line);

    for (unsigned i = 0; i < 4; i++) {
        struct vbuf b = {rxbuf[i], sizeof(rxbuf[i]), 1};
        vq_add(&rx, &b, 1);
    }
    vq_kick(&rx);
    printf("virtio_console: ready\n");

    /* Collect input until a newline; buffers are re-posted as they come back. */
    char got[64];
    unsigned len = 0;
    for (;;) {
        uint32_t n = 0;
        int id = vq_wait(&rx, &n, 20000000UL);
        ASSERT(id >= 0 && id < 4 && n <= sizeof(rxbuf[0]));
        for (uint32_t i = 0; i < n && len + 1 < sizeof(got); i++) {
            char ch = rxbuf[id][i];
            if (ch == '\n' || ch == '\r') {
                got[len] = 0;
                snprintf(line, sizeof(line), "hvc0 got: %s\n", got);
                put(&tx, line);
                return 0;
            }
            got[len++] = ch;
        }
        struct vbuf b = {rxbuf[id], sizeof(rxbuf[id]), 1};
        rx.next_desc = (uint16_t)id;
        vq_add(&rx, &b, 1);
        vq_kick(&rx);
    }
}
