/* virtio-net's default MAC: stable for a VM name and NIC index, different across them, and a
 * locally administered unicast address. How a received frame spreads over mergeable buffers,
 * and what the device does with a frame no ring of the guest's buffers can hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"
#include "virtio/net.h"
#include "virtio_rig.h"

static void test_default_mac(void **state)
{
    (void)state;
    uint8_t a[6], b[6], c[6], d[6];
    virtio_net_default_mac("web-1", 0, a);
    virtio_net_default_mac("web-1", 0, b);
    virtio_net_default_mac("web-1", 1, c);
    virtio_net_default_mac("web-2", 0, d);
    assert_memory_equal(a, b, 6);
    assert_memory_not_equal(a, c, 6);
    assert_memory_not_equal(a, d, 6);
    for (const uint8_t *m = a; m; m = m == a ? c : m == c ? d : NULL) {
        assert_int_equal(m[0] & 1, 0); /* unicast */
        assert_int_equal(m[0] & 2, 2); /* locally administered */
    }
}

static void test_spread_over_mergeable_buffers(void **state)
{
    (void)state;
    struct virtq_used_elem b[4] = {{7, 1526}, {3, 1526}, {9, 4096}, {1, 1526}};
    /* 3000 bytes: the first buffer full, the rest in the second; the others stay unused. */
    assert_int_equal(virtio_net_spread(b, 4, 3000), 2);
    assert_int_equal(b[0].len, 1526);
    assert_int_equal(b[1].len, 3000 - 1526);
    assert_int_equal(b[0].id, 7);
    assert_int_equal(b[1].id, 3);
    /* A frame that exactly fills three buffers takes three. */
    struct virtq_used_elem c[4] = {{0, 100}, {1, 200}, {2, 300}, {3, 400}};
    assert_int_equal(virtio_net_spread(c, 4, 600), 3);
    assert_int_equal(c[2].len, 300);
    /* A header-only frame still takes the first buffer. */
    struct virtq_used_elem d[2] = {{5, 1526}, {6, 1526}};
    assert_int_equal(virtio_net_spread(d, 2, 12), 1);
    assert_int_equal(d[0].len, 12);
}

/* A receive ring of four 16-byte mergeable buffers and, on the "tap" (a SOCK_SEQPACKET socket
 * pair), a 1000-byte frame and then a 40-byte one: the first cannot fit even in the whole ring,
 * so it is dropped instead of waiting for buffers that cannot come; the second is received. */
static void test_frame_larger_than_ring_is_dropped(void **state)
{
    (void)state;
    enum { DESC = 0x1000, AVAIL = 0x2000, USED = 0x3000, BUF = 0x10000, QSZ = 4 };
    log_set_level(LOG_ERR);
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 16 << 20, "test-net"), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    char why[160];
    struct virtio_dev *dev = virtio_net_create_on_fd(&mem, NULL, sv[0], "test", mac, why,
                                                     sizeof(why));
    assert_non_null(dev);
    struct virtq *vq = rig_driver_ok(dev, 1ULL << VIRTIO_NET_F_MRG_RXBUF, 0, QSZ, DESC, AVAIL,
                                     USED);
    for (uint16_t i = 0; i < QSZ; i++) {
        struct virtq_desc d = {BUF + 0x100u * i, 16, VIRTQ_DESC_F_WRITE, 0};
        memcpy(gpa_ptr(&mem, DESC + 16u * i, 16), &d, 16);
        memcpy(gpa_ptr(&mem, AVAIL + 4 + 2u * i, 2), &i, 2);
    }
    uint16_t idx = QSZ;
    memcpy(gpa_ptr(&mem, AVAIL + 2, 2), &idx, 2);
    assert_int_equal(virtq_enable(vq), 0);
    static uint8_t frame[1000];
    assert_int_equal(send(sv[1], frame, 1000, 0), 1000);
    assert_int_equal(send(sv[1], frame, 40, 0), 40);
    pthread_mutex_lock(&dev->lock);
    dev->ops->queue_notify(dev, 0);
    pthread_mutex_unlock(&dev->lock);
    uint16_t used;
    memcpy(&used, gpa_ptr(&mem, USED + 2, 2), 2);
    assert_int_equal(used, 3); /* 40 bytes over 16 + 16 + 8 */
    uint16_t num_buffers;
    memcpy(&num_buffers, gpa_ptr(&mem, BUF + 10, 2), 2);
    assert_int_equal(num_buffers, 3);
    uint8_t rest[16];
    assert_int_equal(recv(sv[0], rest, sizeof(rest), MSG_DONTWAIT), -1); /* nothing left */
    dev->ops->destroy(dev);
    close(sv[1]);
    guest_mem_destroy(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_mac),
        cmocka_unit_test(test_spread_over_mergeable_buffers),
        cmocka_unit_test(test_frame_larger_than_ring_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
