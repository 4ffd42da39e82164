/* Unit tests of the qcow2 table cache (src/block/qcow2_cache.c): LRU eviction, write-back of
 * dirty tables only (on eviction and at writeback), dropped slots reused first, read errors
 * leaving the cache consistent, and the default L2 cache sized to hold a whole image's tables. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/block.h"
#include "block/qcow2.h"
#include "block/qcow2_cache.h"

#define TS 4096u /* table size used by the direct cache tests */
#define NT 512u  /* L2 tables of the image in test_image_l2_tables_all_cached */

struct fixture {
    char path[64];
    struct qcow2 q;
    struct qcow2_cache c;
};

/* Table k (k >= 1) lives at offset k * TS and is filled with the byte k. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->path, sizeof(f->path), "/tmp/vireo-qcache-XXXXXX");
    f->q.fd = mkstemp(f->path);
    if (f->q.fd < 0)
        return -1;
    uint8_t buf[TS];
    for (unsigned k = 0; k < 64; k++) {
        memset(buf, (int)k, sizeof(buf));
        if (pwrite(f->q.fd, buf, TS, (off_t)k * TS) != TS)
            return -1;
    }
    f->q.cluster_size = TS;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    qcow2_cache_free(&f->c);
    close(f->q.fd);
    unlink(f->path);
    free(f);
    return 0;
}

static uint8_t *get(struct fixture *f, unsigned k)
{
    uint8_t *t = NULL;
    assert_int_equal(qcow2_cache_get(&f->q, &f->c, (uint64_t)k * TS, &t), 0);
    assert_non_null(t);
    return t;
}

static uint8_t file_byte(struct fixture *f, unsigned k)
{
    uint8_t b = 0xee;
    assert_int_equal(pread(f->q.fd, &b, 1, (off_t)k * TS + 100), 1);
    return b;
}

static void test_lru_eviction(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(qcow2_cache_init(&f->c, 3, TS), 0);
    assert_int_equal(get(f, 1)[0], 1);
    assert_int_equal(get(f, 2)[10], 2);
    assert_int_equal(get(f, 3)[TS - 1], 3);
    assert_int_equal(f->c.misses, 3);
    assert_int_equal(f->c.evictions, 0);
    get(f, 1); /* 2 is now the least recently used */
    assert_int_equal(f->c.hits, 1);
    assert_int_equal(get(f, 4)[0], 4);
    assert_int_equal(f->c.evictions, 1);
    assert_false(qcow2_cache_contains(&f->c, 2 * TS));
    assert_true(qcow2_cache_contains(&f->c, 1 * TS));
    assert_true(qcow2_cache_contains(&f->c, 3 * TS));
    assert_true(qcow2_cache_contains(&f->c, 4 * TS));
    /* Hits do not read the file: change it under the cache and the old content stays. */
    uint8_t b = 0x77;
    assert_int_equal(pwrite(f->q.fd, &b, 1, 3 * TS), 1);
    assert_int_equal(get(f, 3)[0], 3);
    /* 2 comes back by a read from the file, evicting 1 (least recently used now). */
    assert_int_equal(get(f, 2)[0], 2);
    assert_false(qcow2_cache_contains(&f->c, 1 * TS));
    assert_int_equal(qcow2_cache_get(&f->q, &f->c, 0, &(uint8_t *){NULL}), -EINVAL);
}

static void test_dirty_written_back_only_when_dirty(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(qcow2_cache_init(&f->c, 2, TS), 0);
    memset(get(f, 5), 0xd5, TS);
    qcow2_cache_mark_dirty(&f->c, 5 * TS);
    assert_true(qcow2_cache_any_dirty(&f->c));
    /* A clean table changed in memory without mark_dirty is never written. */
    memset(get(f, 6), 0xc6, TS);
    assert_int_equal(file_byte(f, 5), 5);
    get(f, 7); /* evicts 5, dirty: written (after an fdatasync) before its slot is reused */
    assert_int_equal(file_byte(f, 5), 0xd5);
    assert_false(qcow2_cache_any_dirty(&f->c));
    get(f, 8); /* evicts 6, clean: the file keeps its content */
    assert_int_equal(file_byte(f, 6), 6);
    /* Writeback writes the dirty tables and leaves them cached and clean. */
    memset(get(f, 7), 0xd7, TS);
    qcow2_cache_mark_dirty(&f->c, 7 * TS);
    qcow2_cache_mark_dirty(&f->c, 7 * TS); /* twice counts once */
    memset(get(f, 8), 0xc8, TS);
    assert_int_equal(qcow2_cache_writeback(&f->q, &f->c), 0);
    assert_int_equal(file_byte(f, 7), 0xd7);
    assert_int_equal(file_byte(f, 8), 8);
    assert_false(qcow2_cache_any_dirty(&f->c));
    assert_true(qcow2_cache_contains(&f->c, 7 * TS));
    assert_int_equal(get(f, 7)[0], 0xd7);
}

static void test_drop_and_get_new(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(qcow2_cache_init(&f->c, 3, TS), 0);
    get(f, 1);
    memset(get(f, 2), 0xd2, TS);
    qcow2_cache_mark_dirty(&f->c, 2 * TS);
    get(f, 3);
    /* A dropped table (its cluster was freed) is forgotten, dirty or not, and never written. */
    qcow2_cache_drop(&f->c, 2 * TS);
    assert_false(qcow2_cache_any_dirty(&f->c));
    assert_false(qcow2_cache_contains(&f->c, 2 * TS));
    /* Its slot is reused first: nothing else is evicted. */
    get(f, 4);
    assert_int_equal(f->c.evictions, 0);
    assert_true(qcow2_cache_contains(&f->c, 1 * TS));
    assert_true(qcow2_cache_contains(&f->c, 3 * TS));
    assert_int_equal(file_byte(f, 2), 2);
    /* A new table at an offset still cached replaces the stale copy with zeros. */
    uint8_t *t = qcow2_cache_get_new(&f->q, &f->c, 3 * TS);
    assert_non_null(t);
    for (unsigned i = 0; i < TS; i++)
        assert_int_equal(t[i], 0);
    assert_false(qcow2_cache_any_dirty(&f->c));
    assert_int_equal(get(f, 3)[7], 0);
    assert_int_equal(f->c.misses, 4);
    /* And a new table elsewhere takes the coldest slot (1). */
    assert_non_null(qcow2_cache_get_new(&f->q, &f->c, 9 * TS));
    assert_false(qcow2_cache_contains(&f->c, 1 * TS));
    assert_int_equal(get(f, 9)[0], 0);
}

static void test_read_error_leaves_cache_consistent(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(qcow2_cache_init(&f->c, 2, TS), 0);
    get(f, 1);
    get(f, 2);
    int fd = f->q.fd;
    f->q.fd = -1;
    uint8_t *t;
    assert_int_equal(qcow2_cache_get(&f->q, &f->c, 3 * TS, &t), -EBADF);
    f->q.fd = fd;
    assert_false(qcow2_cache_contains(&f->c, 3 * TS));
    assert_true(qcow2_cache_contains(&f->c, 2 * TS));
    assert_int_equal(get(f, 3)[0], 3); /* the emptied slot is reused, 2 stays */
    assert_true(qcow2_cache_contains(&f->c, 2 * TS));
    assert_int_equal(get(f, 2)[0], 2);
}

/* Many slots and more tables than buckets' worth of distinct offsets: once every table has been
 * read, a second pass over all of them is all hits, in any order. */
static void test_whole_working_set_stays(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(qcow2_cache_init(&f->c, 63, TS), 0);
    for (unsigned k = 1; k < 64; k++)
        assert_int_equal(get(f, k)[0], k);
    for (unsigned k = 63; k >= 1; k--)
        assert_int_equal(get(f, k)[1], k);
    for (unsigned k = 1; k < 64; k += 2)
        assert_int_equal(get(f, k)[2], k);
    assert_int_equal(f->c.misses, 63);
    assert_int_equal(f->c.evictions, 0);
    assert_int_equal(f->c.hits, 63 + 32);
}

static void test_default_sizing(void **state)
{
    (void)state;
    /* Default: one slot per L1 entry, up to 32 MiB of tables, at least 4. */
    assert_int_equal(qcow2_cache_slots_for(2, 65536, 0), 4);
    assert_int_equal(qcow2_cache_slots_for(160, 65536, 0), 160);
    assert_int_equal(qcow2_cache_slots_for(100000, 65536, 0), 512);
    assert_int_equal(qcow2_cache_slots_for(100000, 2 << 20, 0), 16);
    assert_int_equal(qcow2_cache_slots_for(1 << 22, 512, 0), QCOW2_CACHE_MAX_SLOTS);
    /* An explicit size wins, whatever the image. */
    assert_int_equal(qcow2_cache_slots_for(160, 65536, 1 << 20), 16);
    assert_int_equal(qcow2_cache_slots_for(2, 4096, 8192), 4);
}

/* Through the block layer: a 1 GiB image with 4 KiB clusters has 512 L2 tables (2 MiB of guest
 * each). The default cache holds them all, so reading every table three times reads each from
 * the file once; a fixed 1 MiB cache (256 slots) would re-read every one on each pass. A capped
 * cache (8192 bytes: 4 slots) keeps working; it just misses. */
static void test_image_l2_tables_all_cached(void **state)
{
    (void)state;
    char dir[] = "/tmp/vireo-qcache-img-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[96];
    snprintf(file, sizeof(file), "%s/a.qcow2", dir);
    struct block_create_opts o = {.format = "qcow2", .size = 1 << 30, .cluster_size = 4096};
    assert_int_equal(block_create(file, &o), 0);
    for (int capped = 0; capped < 2; capped++) {
        struct block_open_opts oo = {.flags = BLOCK_OPEN_RDWR,
                                     .l2_cache_size = capped ? 8192 : 0};
        struct block_dev *bd;
        assert_int_equal(block_open(file, &oo, &bd), 0);
        struct qcow2 *q = bd->priv;
        assert_int_equal(q->l1_size, NT);
        assert_int_equal(q->l2_cache.nslots, capped ? 4 : NT);
        uint8_t buf[512];
        for (unsigned pass = 0; pass < 2; pass++)
            for (unsigned t = 0; t < NT; t++) {
                memset(buf, (int)(t + 1), sizeof(buf));
                uint64_t off = (uint64_t)t << 21;
                if (pass == 0 && capped == 0)
                    assert_int_equal(block_pwrite(bd, off, buf, sizeof(buf)), 0);
                assert_int_equal(block_pread(bd, off, buf, sizeof(buf)), 0);
                assert_int_equal(buf[0], (t + 1) & 0xff);
            }
        if (capped)
            assert_true(q->l2_cache.misses >= 2 * NT);
        else
            assert_int_equal(q->l2_cache.misses, 0); /* every table was new: get_new, no read */
        assert_true(capped ? q->l2_cache.hits == 0 : q->l2_cache.hits >= 3 * NT);
        block_close(bd);
    }
    /* Reopened with the default size: the tables are read once each. */
    struct block_open_opts ro = {0};
    struct block_dev *bd;
    assert_int_equal(block_open(file, &ro, &bd), 0);
    struct qcow2 *q = bd->priv;
    uint8_t buf[512];
    for (unsigned pass = 0; pass < 3; pass++)
        for (unsigned t = 0; t < NT; t++) {
            assert_int_equal(block_pread(bd, ((uint64_t)t << 21) + 4096 * pass, buf, 512), 0);
            assert_int_equal(buf[0], pass == 0 ? (t + 1) & 0xff : 0);
        }
    assert_int_equal(q->l2_cache.misses, NT);
    assert_int_equal(q->l2_cache.evictions, 0);
    block_close(bd);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_written_back_only_when_dirty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_get_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_error_leaves_cache_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_working_set_stays, setup, teardown),
        cmocka_unit_test(test_default_sizing),
        cmocka_unit_test(test_image_l2_tables_all_cached),
    };
    return cmocka_run_group_tests_name("qcow2_cache", tests, NULL, NULL);
}
