/* virtio_net: a virtio-net NIC from inside. The MAC (net_mac=.. when the test knows it) and
 * link status from the config space; a frame sent on the transmit queue (EtherType 0x88b5,
 * payload "vireo-net <net_token>") that the test catches on the host's tap; then a frame the
 * test sends back ("host-reply <net_token>") arriving in a receive buffer with an interrupt.
 * With net_rounds=N the device is reset and all of it done again, N times in all. */
#include "runtime.h"

#include "apic.h"
#include "trap.h"
#include "virtio.h"

const char guest_name[] = "virtio_net";

#define VEC_RX 0x48
#define VEC_TX 0x49
#define NRX 8
#define BUFSZ 2048
#define HDR 12
#define ETHERTYPE 0x88b5

static struct vq_mem rxmem, txmem;
static uint8_t rxbuf[NRX][BUFSZ];
static uint8_t txbuf[128];
static volatile unsigned rx_irqs, tx_irqs;

static void on_rx(struct trap_frame *f)
{
    (void)f;
    rx_irqs++;
    lapic_eoi();
}

static void on_tx(struct trap_frame *f)
{
    (void)f;
    tx_irqs++;
    lapic_eoi();
}

static void post_rx(struct vq *vq, unsigned i)
{
    struct vbuf b = {rxbuf[i], BUFSZ, 1};
    /* Descriptors are handed out in order, so buffer i always sits in descriptor i. */
    vq->next_desc = (uint16_t)i;
    vq_add(vq, &b, 1);
}

/* One life of the driver: reset, negotiate, queues up, send our frame, wait for the reply.
 * Returns 0 once the reply came. */
static int one_round(struct vdev *d, unsigned round, const char *token)
{
    virtio_reset(d);
    uint64_t want = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << 5 /* MAC */ |
                    1ULL << 16 /* STATUS */;
    ASSERT(virtio_negotiate(d, want) == 0);
    ASSERT_EQ(d->features, want);
    uint8_t mac[6];
    for (unsigned i = 0; i < 6; i++)
        mac[i] = virtio_cfg8(d, i);
    char macs[18];
    snprintf(macs, sizeof(macs), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
    uint16_t status = (uint16_t)(virtio_cfg8(d, 6) | virtio_cfg8(d, 7) << 8);
    printf("virtio_net: mac %s, status 0x%x\n", macs, status);
    ASSERT(status & 1); /* link up */
    char arg[64];
    if (cmdline_get("net_mac", arg, sizeof(arg)) >= 0)
        ASSERT(strcmp(arg, macs) == 0);

    virtio_msix_setup(d, 0, VEC_RX);
    virtio_msix_setup(d, 1, VEC_TX);
    struct vq rx, tx;
    ASSERT(virtio_queue_setup(d, 0, &rx, &rxmem, NRX, 0) == 0);
    ASSERT(virtio_queue_setup(d, 1, &tx, &txmem, 8, 1) == 0);
    for (unsigned i = 0; i < NRX; i++)
        post_rx(&rx, i);
    rx_irqs = 0;
    virtio_set_status(d, virtio_status(d) | VIRTIO_STATUS_DRIVER_OK);
    vq_kick(&rx);

    memset(txbuf, 0, sizeof(txbuf));
    uint8_t *eth = txbuf + HDR;
    memset(eth, 0xff, 6);
    memcpy(eth + 6, mac, 6);
    eth[12] = ETHERTYPE >> 8;
    eth[13] = ETHERTYPE & 0xff;
    int plen = snprintf((char *)eth + 14, 64, "vireo-net %s", token);
    struct vbuf tb = {txbuf, (uint32_t)(HDR + 14 + (plen < 46 ? 46 : plen)), 0};
    uint16_t head = vq_add(&tx, &tb, 1);
    vq_kick(&tx);
    ASSERT_EQ(vq_wait(&tx, NULL, 2000000UL), head);
    printf("virtio_net: sent frame\n");

    char expect[48];
    snprintf(expect, sizeof(expect), "host-reply %s", token);
    for (unsigned frames = 0; frames < 64; frames++) {
        uint32_t len = 0;
        int id = vq_wait(&rx, &len, 8000000UL);
        ASSERT(id >= 0 && id < NRX);
        uint8_t *f = rxbuf[id] + HDR;
        uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
        ASSERT(len >= HDR + 14 && len <= BUFSZ);
        if (type == ETHERTYPE && len >= HDR + 14 + strlen(expect) &&
            memcmp(f + 14, expect, strlen(expect)) == 0) {
            ASSERT(memcmp(f, mac, 6) == 0);
            for (unsigned long i = 0; i < 2000000UL && rx_irqs == 0; i++)
                cpu_relax();
            ASSERT(rx_irqs > 0);
            printf("virtio_net: received '%s'%s\n", expect, round ? " after a reset" : "");
            return 0;
        }
        printf("virtio_net: skipped a frame of type 0x%04x\n", type);
        post_rx(&rx, (unsigned)id);
        vq_kick(&rx);
    }
    test_fail("no reply frame");
}

int guest_main(void)
{
    ASSERT(lapic_init() == 0);
    lapic_enable();
    virtio_mask_legacy_irqs();
    trap_set_handler(VEC_RX, on_rx);
    trap_set_handler(VEC_TX, on_tx);
    irq_enable();

    struct vdev d;
    ASSERT(virtio_find(1, 0, &d) == 0);
    char token[32] = "none";
    cmdline_get("net_token", token, sizeof(token));
    /* net_rounds=N: reset the device and do it all again, N times in all (a backend such as
     * vhost must stop at the reset and serve the new rings). */
    uint64_t rounds = 1;
    cmdline_get_size("net_rounds", &rounds);
    for (unsigned r = 0; r < rounds; r++)
        one_round(&d, r, token);
    return 0;
}
