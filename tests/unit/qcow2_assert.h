/* The check every qcow2 unit test ends with: the image is free of corruptions and leaks. */
#ifndef VIREO_TESTS_UNIT_QCOW2_ASSERT_H
#define VIREO_TESTS_UNIT_QCOW2_ASSERT_H

#include "block/block.h"
#include "block/qcow2_check.h"

static inline void assert_clean(struct block_dev *bd)
{
    struct qcow2_check_result r;
    assert_int_equal(qcow2_check(bd, 0, &r, NULL), 0);
    assert_int_equal(r.corruptions, 0);
    assert_int_equal(r.leaks, 0);
}

#endif
