/* The virtio-pci transport with a virtio-rng device behind it, driven as a guest driver would
 * (config space through the PCI host, BAR0 through the MMIO bus) against a fake accelerator that
 * records ioeventfd registrations and MSIs: identity and capabilities, feature negotiation, the
 * status machine, a request served on the I/O thread with its MSI-X interrupt, masking and the
 * PBA, the PCI configuration access window, reset, refusal of rings outside RAM, and a queue
 * handed to an in-kernel backend (vhost) and taken back. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/pci.h"
#include "util/log.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "vmm/event.h"
#include "vmm/vm.h"

#define SLOT 3
#define BAR LAYOUT_MMIO32_BASE
#define DESC 0x10000ULL
#define AVAIL 0x11000ULL
#define USED 0x12000ULL
#define DATA 0x20000ULL

static struct {
    int msis, ioeventfds_on;
    uint64_t msi_addr;
    uint32_t msi_data;
} fake;

static int fake_ioeventfd(struct vm *vm, uint64_t addr, unsigned len, int fd, bool assign)
{
    (void)vm, (void)len, (void)fd;
    assert_int_equal(addr, BAR + VIRTIO_PCI_NOTIFY_OFF); /* queue 0's notify address */
    fake.ioeventfds_on += assign ? 1 : -1;
    return -ENOSYS; /* like a backend without the fast path: kicks come through MMIO */
}

static int fake_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
    (void)vm;
    __atomic_add_fetch(&fake.msis, 1, __ATOMIC_SEQ_CST);
    fake.msi_addr = addr;
    fake.msi_data = data;
    return 0;
}

static const struct accel_ops fake_accel = {
    .name = "fake",
    .ioeventfd = fake_ioeventfd,
    .signal_msi = fake_signal_msi,
};

struct harness {
    struct vm vm;
    struct bus mmio, pio;
    struct pci_host *host;
    struct event_loop *loop;
    struct virtio_dev *dev;
    struct virtio_pci *t;
};

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    log_set_level(LOG_ERR);
    memset(&fake, 0, sizeof(fake));
    assert_int_equal(guest_mem_create(&h->vm.mem, 16ULL << 20, "test-vpci"), 0);
    h->vm.accel = &fake_accel;
    h->vm.accel_data = h; /* any non-NULL: "the accelerator's VM exists" */
    bus_init(&h->mmio, "mmio");
    bus_init(&h->pio, "pio");
    h->host = pci_host_create();
    assert_non_null(h->host);
    assert_int_equal(pci_host_attach(h->host, &h->pio, &h->mmio), 0);
    h->loop = event_loop_create("test-io");
    assert_non_null(h->loop);
    h->dev = virtio_rng_create(&h->vm.mem);
    assert_non_null(h->dev);
    h->t = virtio_pci_create(h->dev, &h->vm, h->loop, BAR);
    assert_non_null(h->t);
    assert_int_equal(virtio_pci_attach(h->t, h->host, &h->mmio, SLOT), 0);
    assert_int_equal(event_loop_start(h->loop), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    event_loop_stop(h->loop);
    virtio_pci_destroy(h->t);
    h->dev->ops->destroy(h->dev);
    event_loop_destroy(h->loop);
    pci_host_destroy(h->host);
    guest_mem_destroy(&h->vm.mem);
    test_free(h);
    return 0;
}

static uint32_t cfg_rd(struct harness *h, unsigned off, unsigned size)
{
    return pci_host_config_read(h->host, 0, PCI_DEVFN(SLOT, 0), off, size);
}

static void cfg_wr(struct harness *h, unsigned off, unsigned size, uint32_t v)
{
    pci_host_config_write(h->host, 0, PCI_DEVFN(SLOT, 0), off, size, v);
}

static uint64_t rd(struct harness *h, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    assert_true(bus_read(&h->mmio, BAR + off, size, &v));
    return v;
}

static void wr(struct harness *h, uint64_t off, unsigned size, uint64_t v)
{
    assert_true(bus_write(&h->mmio, BAR + off, size, v));
}

static void *host(struct harness *h, uint64_t gpa, uint64_t len)
{
    void *p = gpa_ptr(&h->vm.mem, gpa, len);
    assert_non_null(p);
    return p;
}

/* Find the capability of the given vendor cfg_type (or the MSI-X one with type 0). */
static unsigned find_cap(struct harness *h, uint8_t id, uint8_t type)
{
    for (unsigned c = cfg_rd(h, PCI_CAPABILITY_LIST, 1); c; c = cfg_rd(h, c + 1, 1))
        if (cfg_rd(h, c, 1) == id && (id != PCI_CAP_ID_VNDR || cfg_rd(h, c + 3, 1) == type))
            return c;
    return 0;
}

static void negotiate(struct harness *h, uint64_t features)
{
    wr(h, VIRTIO_PCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(h, VIRTIO_PCI_GFSELECT, 4, 0);
    wr(h, VIRTIO_PCI_GF, 4, (uint32_t)features);
    wr(h, VIRTIO_PCI_GFSELECT, 4, 1);
    wr(h, VIRTIO_PCI_GF, 4, (uint32_t)(features >> 32));
    wr(h, VIRTIO_PCI_STATUS, 1, 3 | VIRTIO_STATUS_FEATURES_OK);
}

/* Negotiate, set up queue 0 (16 entries) on vector 0, config on vector 1, MSI-X on. */
static void bring_up(struct harness *h)
{
    negotiate(h, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK,
                     VIRTIO_STATUS_FEATURES_OK);
    unsigned msix = find_cap(h, PCI_CAP_ID_MSIX, 0);
    for (unsigned n = 0; n < 2; n++) {
        wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * n, 4, 0xfee00000);
        wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * n + 8, 4, 0x40 + n);
        wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * n + 12, 4, 0);
    }
    cfg_wr(h, msix + 2, 2, 0x8000);
    wr(h, VIRTIO_PCI_MSIX_CONFIG, 2, 1);
    wr(h, VIRTIO_PCI_Q_SELECT, 2, 0);
    wr(h, VIRTIO_PCI_Q_SIZE, 2, 16);
    wr(h, VIRTIO_PCI_Q_MSIX, 2, 0);
    wr(h, VIRTIO_PCI_Q_DESCLO, 4, DESC);
    wr(h, VIRTIO_PCI_Q_DESCHI, 4, 0);
    wr(h, VIRTIO_PCI_Q_AVAILLO, 8, AVAIL);
    wr(h, VIRTIO_PCI_Q_USEDLO, 4, USED);
    wr(h, VIRTIO_PCI_Q_ENABLE, 2, 1);
    assert_int_equal(rd(h, VIRTIO_PCI_Q_ENABLE, 2), 1);
    wr(h, VIRTIO_PCI_STATUS, 1, 0x0b | VIRTIO_STATUS_DRIVER_OK);
}

/* Offer one 64-byte writable buffer and kick through the notify region. */
static void offer_and_kick(struct harness *h, uint16_t n)
{
    struct virtq_desc d = {DATA, 64, VIRTQ_DESC_F_WRITE, 0};
    memcpy(host(h, DESC, 16), &d, 16);
    uint16_t *avail = host(h, AVAIL, 4 + 2 * 16 + 2);
    avail[2 + (n % 16)] = 0;
    __atomic_store_n(&avail[1], (uint16_t)(n + 1), __ATOMIC_RELEASE);
    wr(h, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
}

/* Wait (bounded by iterations, not by time) until the device has used n + 1 entries. */
static void wait_used(struct harness *h, uint16_t n)
{
    volatile uint16_t *used = host(h, USED, 4);
    for (unsigned i = 0; i < 2000000 && used[1] != (uint16_t)(n + 1); i++)
        usleep(1);
    assert_int_equal(used[1], n + 1);
}

static void wait_msis(int want)
{
    for (unsigned i = 0; i < 2000000 && __atomic_load_n(&fake.msis, __ATOMIC_SEQ_CST) < want; i++)
        usleep(1);
    assert_int_equal(__atomic_load_n(&fake.msis, __ATOMIC_SEQ_CST), want);
}

static void test_identity(void **state)
{
    struct harness *h = *state;
    assert_int_equal(cfg_rd(h, PCI_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(cfg_rd(h, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
    assert_int_equal(cfg_rd(h, PCI_REVISION_ID, 1), 1);
    assert_true(cfg_rd(h, PCI_SUBSYSTEM_ID, 2) >= 0x40);
    assert_int_equal(cfg_rd(h, PCI_BAR0, 4), BAR); /* pre-assigned, 32-bit memory */
    unsigned common = find_cap(h, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG);
    unsigned notify = find_cap(h, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
    assert_true(common && notify);
    assert_true(find_cap(h, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG));
    assert_true(find_cap(h, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG));
    assert_int_equal(find_cap(h, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG), 0); /* rng: none */
    assert_int_equal(cfg_rd(h, common + 8, 4), VIRTIO_PCI_COMMON_OFF);
    assert_int_equal(cfg_rd(h, notify + 8, 4), VIRTIO_PCI_NOTIFY_OFF);
    assert_int_equal(cfg_rd(h, notify + 16, 4), VIRTIO_PCI_NOTIFY_MULT);
    unsigned msix = find_cap(h, PCI_CAP_ID_MSIX, 0);
    assert_true(msix);
    assert_int_equal(cfg_rd(h, msix + 2, 2) & 0x7ff, 1); /* 2 vectors: queue + config */
    assert_int_equal(cfg_rd(h, msix + 4, 4), VIRTIO_PCI_MSIX_TABLE_OFF);
    assert_int_equal(rd(h, VIRTIO_PCI_NUM_QUEUES, 2), 1);
}

static void test_feature_negotiation(void **state)
{
    struct harness *h = *state;
    wr(h, VIRTIO_PCI_DFSELECT, 4, 1);
    assert_int_equal(rd(h, VIRTIO_PCI_DF, 4) & 1, 1); /* VERSION_1 (bit 32) */
    wr(h, VIRTIO_PCI_DFSELECT, 4, 0);
    uint32_t lo = (uint32_t)rd(h, VIRTIO_PCI_DF, 4);
    assert_true(lo & (1u << VIRTIO_F_EVENT_IDX));
    assert_true(lo & (1u << VIRTIO_F_INDIRECT_DESC));
    /* Without VERSION_1: refused. */
    negotiate(h, 1ULL << VIRTIO_F_EVENT_IDX);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
    /* A bit the device never offered: refused. */
    wr(h, VIRTIO_PCI_STATUS, 1, 0);
    negotiate(h, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 40);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
    /* A subset of the offer: accepted, and then frozen. */
    wr(h, VIRTIO_PCI_STATUS, 1, 0);
    negotiate(h, 1ULL << VIRTIO_F_VERSION_1);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1), 0x0b);
    wr(h, VIRTIO_PCI_GFSELECT, 4, 0);
    wr(h, VIRTIO_PCI_GF, 4, 1u << VIRTIO_F_EVENT_IDX);
    assert_int_equal(rd(h, VIRTIO_PCI_GF, 4), 0);
}

static void test_driver_ok_needs_features_ok(void **state)
{
    struct harness *h = *state;
    wr(h, VIRTIO_PCI_STATUS, 1, 3 | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, 0);
}

static void test_request_and_msix(void **state)
{
    struct harness *h = *state;
    bring_up(h);
    memset(host(h, DATA, 64), 0, 64);
    offer_and_kick(h, 0);
    wait_used(h, 0);
    uint32_t *used = host(h, USED, 12);
    assert_int_equal(used[1], 0);  /* id */
    assert_int_equal(used[2], 64); /* len */
    uint8_t zero[64] = {0};
    assert_memory_not_equal(host(h, DATA, 64), zero, 64);
    wait_msis(1);
    assert_int_equal(fake.msi_addr, 0xfee00000);
    assert_int_equal(fake.msi_data, 0x40);
    assert_int_equal(rd(h, VIRTIO_PCI_ISR_OFF, 1) & 1, 1);
    assert_int_equal(rd(h, VIRTIO_PCI_ISR_OFF, 1), 0); /* read clears */
}

static void test_masked_vector_pends(void **state)
{
    struct harness *h = *state;
    bring_up(h);
    wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4, 1); /* mask vector 0 */
    offer_and_kick(h, 0);
    wait_used(h, 0);
    /* The completion was pushed before we look, so no MSI can still be on its way. */
    assert_int_equal(__atomic_load_n(&fake.msis, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(rd(h, VIRTIO_PCI_MSIX_PBA_OFF, 8) & 1, 1);
    wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4, 0);
    assert_int_equal(fake.msis, 1);
    assert_int_equal(rd(h, VIRTIO_PCI_MSIX_PBA_OFF, 8) & 1, 0);
}

static void test_function_mask(void **state)
{
    struct harness *h = *state;
    bring_up(h);
    unsigned msix = find_cap(h, PCI_CAP_ID_MSIX, 0);
    cfg_wr(h, msix + 2, 2, 0xc000); /* enabled, all masked */
    offer_and_kick(h, 0);
    wait_used(h, 0);
    assert_int_equal(__atomic_load_n(&fake.msis, __ATOMIC_SEQ_CST), 0);
    cfg_wr(h, msix + 2, 2, 0x8000);
    assert_int_equal(fake.msis, 1);
}

static void test_pci_cfg_window(void **state)
{
    struct harness *h = *state;
    unsigned c = find_cap(h, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
    cfg_wr(h, c + 4, 1, 0);
    cfg_wr(h, c + 8, 4, VIRTIO_PCI_NUM_QUEUES);
    cfg_wr(h, c + 12, 4, 2);
    assert_int_equal(cfg_rd(h, c + 16, 4), 1);
    /* Writes go through too: set the status to ACKNOWLEDGE by the window. */
    cfg_wr(h, c + 8, 4, VIRTIO_PCI_STATUS);
    cfg_wr(h, c + 12, 4, 1);
    cfg_wr(h, c + 16, 4, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1), VIRTIO_STATUS_ACKNOWLEDGE);
    /* A window past the BAR reads as the raw register, touching nothing. */
    cfg_wr(h, c + 8, 4, 0xfffffffc);
    cfg_wr(h, c + 12, 4, 4);
    cfg_rd(h, c + 16, 4);
}

static void test_reset(void **state)
{
    struct harness *h = *state;
    bring_up(h);
    offer_and_kick(h, 0);
    wait_used(h, 0);
    wr(h, VIRTIO_PCI_STATUS, 1, 0);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1), 0);
    assert_int_equal(rd(h, VIRTIO_PCI_Q_ENABLE, 2), 0);
    assert_int_equal(rd(h, VIRTIO_PCI_Q_SIZE, 2), 256); /* back to the maximum */
    assert_int_equal(rd(h, VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
    wr(h, VIRTIO_PCI_GFSELECT, 4, 1);
    assert_int_equal(rd(h, VIRTIO_PCI_GF, 4), 0);
    /* And it comes back: a second driver gets served from a fresh ring. */
    memset(host(h, USED, 4 + 8 * 16 + 2), 0, 4 + 8 * 16 + 2);
    memset(host(h, AVAIL, 4 + 2 * 16 + 2), 0, 4 + 2 * 16 + 2);
    bring_up(h);
    offer_and_kick(h, 0);
    wait_used(h, 0);
}

static void test_ring_outside_ram(void **state)
{
    struct harness *h = *state;
    negotiate(h, 1ULL << VIRTIO_F_VERSION_1);
    wr(h, VIRTIO_PCI_Q_SELECT, 2, 0);
    wr(h, VIRTIO_PCI_Q_DESCLO, 4, 0);
    wr(h, VIRTIO_PCI_Q_DESCHI, 4, 0x100); /* 1 TiB: no RAM there */
    wr(h, VIRTIO_PCI_Q_AVAILLO, 4, AVAIL);
    wr(h, VIRTIO_PCI_Q_USEDLO, 4, USED);
    wr(h, VIRTIO_PCI_Q_ENABLE, 2, 1);
    assert_int_equal(rd(h, VIRTIO_PCI_Q_ENABLE, 2), 0);
    assert_true(rd(h, VIRTIO_PCI_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
    wr(h, VIRTIO_PCI_STATUS, 1, 0);
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1), 0);
}

static void test_bad_queue_select(void **state)
{
    struct harness *h = *state;
    wr(h, VIRTIO_PCI_Q_SELECT, 2, 7);
    assert_int_equal(rd(h, VIRTIO_PCI_Q_SIZE, 2), 0);
    wr(h, VIRTIO_PCI_Q_ENABLE, 2, 1);
    wr(h, VIRTIO_PCI_Q_DESCLO, 4, 0x1234);
    assert_int_equal(rd(h, VIRTIO_PCI_Q_DESCLO, 4), 0);
    wr(h, VIRTIO_PCI_NOTIFY_OFF + 4 * 7, 2, 7); /* a kick for a queue that does not exist */
    wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * 40, 4, 1); /* past the table */
    assert_int_equal(rd(h, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * 40, 4), 0xffffffff);
}

static void test_machine_reset(void **state)
{
    struct harness *h = *state;
    bring_up(h);
    cfg_wr(h, PCI_BAR0, 4, 0xd0000000);
    pci_host_reset(h->host);
    assert_int_equal(cfg_rd(h, PCI_BAR0, 4), BAR);
    unsigned msix = find_cap(h, PCI_CAP_ID_MSIX, 0);
    assert_int_equal(cfg_rd(h, msix + 2, 2), 1); /* disabled, table size kept */
    assert_int_equal(rd(h, VIRTIO_PCI_STATUS, 1), 0);
    assert_int_equal(rd(h, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4), 1); /* masked again */
}

/* Wait (bounded) until fd is readable; then read its count. */
static uint64_t wait_eventfd(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
    uint64_t n = 0;
    assert_int_equal(read(fd, &n, sizeof(n)), sizeof(n));
    return n;
}

static void signal_eventfd(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

/* A queue handed to a backend (vhost): its kicks stay in the eventfd for the backend, the
 * backend's call eventfd interrupts through the queue's vector (masking included), and once
 * taken back the I/O thread serves the queue again. */
static void test_backend_owns_queue(void **state)
{
    struct harness *h = *state;
    struct virtio_transport *tr = &h->dev->transport;
    bring_up(h);
    int kick = -1, call = -1;
    pthread_mutex_lock(&h->dev->lock);
    assert_int_equal(tr->backend_attach(tr->opaque, 0, &kick, &call), 0);
    pthread_mutex_unlock(&h->dev->lock);
    assert_true(kick >= 0 && call >= 0 && kick != call);

    /* Had the I/O thread still watched the kick, it would have consumed it and served the
     * request; instead the count waits for the backend and the ring is untouched. */
    offer_and_kick(h, 0);
    assert_true(wait_eventfd(kick) >= 1);
    volatile uint16_t *used = host(h, USED, 4);
    assert_int_equal(used[1], 0);

    signal_eventfd(call);
    wait_msis(1);
    assert_int_equal(fake.msi_data, 0x40); /* queue 0's vector */
    assert_int_equal(rd(h, VIRTIO_PCI_ISR_OFF, 1) & 1, 1);

    wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4, 1); /* mask vector 0: the call must pend */
    signal_eventfd(call);
    for (unsigned i = 0; i < 2000000 && !(rd(h, VIRTIO_PCI_MSIX_PBA_OFF, 8) & 1); i++)
        usleep(1);
    assert_int_equal(rd(h, VIRTIO_PCI_MSIX_PBA_OFF, 8) & 1, 1);
    assert_int_equal(__atomic_load_n(&fake.msis, __ATOMIC_SEQ_CST), 1);
    wr(h, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4, 0);
    assert_int_equal(fake.msis, 2);

    pthread_mutex_lock(&h->dev->lock);
    tr->backend_detach(tr->opaque, 0);
    pthread_mutex_unlock(&h->dev->lock);
    wr(h, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    wait_used(h, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_identity),          T(test_feature_negotiation),
        T(test_driver_ok_needs_features_ok), T(test_request_and_msix),
        T(test_masked_vector_pends), T(test_function_mask),
        T(test_pci_cfg_window),    T(test_reset),
        T(test_ring_outside_ram),  T(test_bad_queue_select),
        T(test_machine_reset),     T(test_backend_owns_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
