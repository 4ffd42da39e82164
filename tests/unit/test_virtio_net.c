/* virtio-net's default MAC: stable for a VM name and NIC index, different across them, and a
 * locally administered unicast address. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
