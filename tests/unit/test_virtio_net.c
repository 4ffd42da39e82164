/* virtio-net's default MAC: stable for a VM name and NIC index, different across them, and a
 * locally administered unicast address. How a received frame spreads over mergeable buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/net.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_mac),
        cmocka_unit_test(test_spread_over_mergeable_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
