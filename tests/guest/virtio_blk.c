/* virtio_blk: a virtio-blk disk from inside. Capacity and serial (GET_ID) as the command line
 * says (blk_sectors=N blk_serial=ID); sector 0 holds what the host wrote (printed for the test
 * to compare); a write + FLUSH of sector 1 with blk_token=T reads back and lands in the host
 * file; WRITE_ZEROES clears sector 2; with blk_readonly=1 the device offers RO and a write fails
 * with VIRTIO_BLK_S_IOERR. Requests use an MSI-X vector and EVENT_IDX. blk_nth=N picks the Nth
 * disk; blk_discard=1 also discards sectors 8..2055 (1 MiB) for the host to see freed. */
#include "runtime.h"

#include "apic.h"
#include "trap.h"
#include "timer.h"
#include "virtio.h"

const char guest_name[] = "virtio_blk";

#define VEC_QUEUE 0x45
#define SPINS 2000000UL

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13

struct blk_hdr {
    uint32_t type, reserved;
    uint64_t sector;
};

static struct vq_mem qmem;
static struct blk_hdr hdr;
static uint8_t data[512];
static uint8_t seg[16];
static volatile uint8_t status;
static volatile unsigned irqs;

static void on_irq(struct trap_frame *f)
{
    (void)f;
    irqs++;
    lapic_eoi();
}

/* One request: header, optional data (readable for writes, writable for reads), status. */
static uint8_t request(struct vq *vq, uint32_t type, uint64_t sector, void *buf, uint32_t len,
                       int device_writes)
{
    hdr = (struct blk_hdr){type, 0, sector};
    status = 0xff;
    struct vbuf b[3];
    unsigned n = 0;
    b[n++] = (struct vbuf){&hdr, sizeof(hdr), 0};
    if (len)
        b[n++] = (struct vbuf){buf, len, device_writes};
    b[n++] = (struct vbuf){(const void *)&status, 1, 1};
    unsigned before = irqs;
    uint16_t head = vq_add(vq, b, n);
    vq_kick(vq);
    uint32_t used_len = 0;
    ASSERT_EQ(vq_wait(vq, &used_len, SPINS), head);
    uint64_t deadline = 0;
    for (unsigned long i = 0; !spin_expired(i, SPINS, &deadline) && irqs == before; i++)
        cpu_relax();
    ASSERT(irqs > before);
    return status;
}

int guest_main(void)
{
    char arg[64];
    ASSERT(lapic_init() == 0);
    lapic_enable();
    virtio_mask_legacy_irqs();
    trap_set_handler(VEC_QUEUE, on_irq);
    irq_enable();

    struct vdev d;
    unsigned nth = 0;
    if (cmdline_get("blk_nth", arg, sizeof(arg)) >= 0)
        nth = (unsigned)strtou64(arg, NULL);
    ASSERT(virtio_find(2, nth, &d) == 0);
    virtio_reset(&d);
    uint64_t want = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX |
                    1ULL << 5 /* RO */ | 1ULL << 9 /* FLUSH */ | 1ULL << 13 /* DISCARD */ |
                    1ULL << 14 /* WRITE_ZEROES */;
    ASSERT(virtio_negotiate(&d, want) == 0);
    int readonly = cmdline_get("blk_readonly", arg, sizeof(arg)) >= 0 && arg[0] == '1';
    ASSERT_EQ(!!(d.features & (1ULL << 5)), readonly);
    ASSERT(d.features & (1ULL << 9));

    uint64_t sectors = virtio_cfg64(&d, 0);
    uint64_t expect;
    if (cmdline_get("blk_sectors", arg, sizeof(arg)) >= 0) {
        expect = strtou64(arg, NULL);
        ASSERT_EQ(sectors, expect);
    }
    uint16_t nq = mmio_read16(d.common + 0x12);
    printf("virtio_blk: %lu sectors, %u queues, features 0x%lx\n", sectors, nq, d.features);

    virtio_msix_setup(&d, 0, VEC_QUEUE);
    struct vq vq;
    ASSERT(virtio_queue_setup(&d, 0, &vq, &qmem, 32, 0) == 0);
    virtio_set_status(&d, virtio_status(&d) | VIRTIO_STATUS_DRIVER_OK);

    /* GET_ID: the serial, NUL-padded to 20 bytes. */
    memset(data, 0, sizeof(data));
    ASSERT_EQ(request(&vq, T_GET_ID, 0, data, 20, 1), 0);
    char serial[21] = {0};
    memcpy(serial, data, 20);
    printf("virtio_blk: serial '%s'\n", serial);
    if (cmdline_get("blk_serial", arg, sizeof(arg)) >= 0)
        ASSERT(strcmp(serial, arg) == 0);

    /* Sector 0 as the host wrote it. */
    memset(data, 0, sizeof(data));
    ASSERT_EQ(request(&vq, T_IN, 0, data, 512, 1), 0);
    char first[49] = {0};
    memcpy(first, data, 48);
    printf("virtio_blk: sector 0: '%s'\n", first);

    char token[32] = "none";
    cmdline_get("blk_token", token, sizeof(token));
    memset(data, 0, sizeof(data));
    snprintf((char *)data, sizeof(data), "guest wrote %s", token);
    uint8_t st = request(&vq, T_OUT, 1, data, 512, 0);
    if (readonly) {
        ASSERT_EQ(st, 1); /* VIRTIO_BLK_S_IOERR */
        printf("virtio_blk: write refused on a read-only disk\n");
        return 0;
    }
    ASSERT_EQ(st, 0);
    ASSERT_EQ(request(&vq, T_FLUSH, 0, NULL, 0, 0), 0);
    memset(data, 0, sizeof(data));
    ASSERT_EQ(request(&vq, T_IN, 1, data, 512, 1), 0);
    char expect_text[64];
    snprintf(expect_text, sizeof(expect_text), "guest wrote %s", token);
    ASSERT(strcmp((char *)data, expect_text) == 0);
    printf("virtio_blk: sector 1 written, flushed and read back\n");

    /* WRITE_ZEROES on sector 2 (the host filled it with 0xaa). */
    uint64_t s2 = 2;
    uint32_t one = 1, flags = 0;
    memcpy(seg, &s2, 8);
    memcpy(seg + 8, &one, 4);
    memcpy(seg + 12, &flags, 4);
    ASSERT_EQ(request(&vq, T_WRITE_ZEROES, 0, seg, 16, 0), 0);
    memset(data, 0x55, sizeof(data));
    ASSERT_EQ(request(&vq, T_IN, 2, data, 512, 1), 0);
    for (unsigned i = 0; i < 512; i++)
        ASSERT_EQ(data[i], 0);
    printf("virtio_blk: write-zeroes cleared sector 2\n");

    if (cmdline_get("blk_discard", arg, sizeof(arg)) >= 0) {
        uint64_t s8 = 8;
        uint32_t count = 2048;
        memcpy(seg, &s8, 8);
        memcpy(seg + 8, &count, 4);
        memcpy(seg + 12, &flags, 4);
        ASSERT_EQ(request(&vq, T_DISCARD, 0, seg, 16, 0), 0);
        printf("virtio_blk: discarded sectors 8..2055\n");
    }

    /* A read past the end fails with IOERR instead of touching anything. */
    ASSERT_EQ(request(&vq, T_IN, sectors, data, 512, 1), 1);
    printf("virtio_blk: read past the end refused\n");
    return 0;
}
