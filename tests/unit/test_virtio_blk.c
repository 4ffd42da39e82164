/* virtio-blk's request merging, against a raw scratch image and rings built by hand in a fake
 * guest RAM: reads or writes popped together that continue one another go to the host as one
 * I/O, and every request still completes with its own status, length and data; what must not
 * merge (a gap, the other direction, a flush between, the byte and buffer caps) does not, and a
 * bad request in a run fails alone. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch_dir.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio_rig.h"

enum {
    DESC = 0x1000,
    AVAIL = 0x2000,
    USED = 0x3000,
    HDRS = 0x10000,   /* request i: header at HDRS + 32 i, status byte 16 bytes on */
    TABLES = 0x40000, /* request i: its indirect descriptor table at TABLES + 4 KiB i */
    DATA = 0x200000,
    QSZ = 256,
    DISK_BYTES = 4 << 20,
};

struct rig {
    struct guest_mem mem;
    struct virtio_dev *dev;
    char *path;
    uint16_t avail_idx;
};

/* The image's initial bytes: different in every 512-byte sector and within it. */
static uint8_t pattern(uint64_t off)
{
    return (uint8_t)((off * 2654435761u) >> 13 ^ (off >> 9));
}

static void put(struct rig *r, uint64_t gpa, const void *src, size_t len)
{
    memcpy(gpa_ptr(&r->mem, gpa, len), src, len);
}

static int rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    log_set_level(LOG_ERR);
    assert_int_equal(guest_mem_create(&r->mem, 16 << 20, "test-blk"), 0);
    r->path = scratch_path("disk.raw");
    int fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static uint8_t buf[DISK_BYTES];
    for (uint64_t o = 0; o < DISK_BYTES; o++)
        buf[o] = pattern(o);
    assert_int_equal(write(fd, buf, DISK_BYTES), DISK_BYTES);
    close(fd);
    struct virtio_blk_options o = {.path = r->path, .format = "raw", .num_queues = 1};
    char why[160];
    r->dev = virtio_blk_create(&r->mem, NULL, &o, why, sizeof(why));
    assert_non_null(r->dev);
    struct virtq *vq = rig_driver_ok(r->dev, 1ULL << VIRTIO_F_INDIRECT_DESC, 0, QSZ, DESC, AVAIL,
                                     USED);
    vq->indirect = true;
    assert_int_equal(virtq_enable(vq), 0);
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    struct rig *r = *state;
    r->dev->ops->destroy(r->dev);
    guest_mem_destroy(&r->mem);
    unlink(r->path);
    free(r);
    return 0;
}

/* Make request number n available: type at sector, its data in nseg equal segments starting at
 * data_gpa (each placed seg_stride apart), all through one indirect table. */
static void add_req(struct rig *r, uint16_t n, uint32_t type, uint64_t sector, uint64_t data_gpa,
                    uint32_t len, unsigned nseg, uint64_t seg_stride)
{
    uint64_t hdr = HDRS + 32u * n, table = TABLES + 4096u * n;
    uint8_t h[16] = {0};
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    put(r, hdr, h, sizeof(h));
    uint8_t poison = 0xee;
    put(r, hdr + 16, &poison, 1);
    uint16_t data_flags = type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;
    unsigned k = 0;
    struct virtq_desc d = {hdr, 16, VIRTQ_DESC_F_NEXT, 1};
    put(r, table + 16u * k++, &d, 16);
    for (unsigned s = 0; s < nseg; s++) {
        d = (struct virtq_desc){data_gpa + s * seg_stride, len / nseg,
                                (uint16_t)(data_flags | VIRTQ_DESC_F_NEXT), (uint16_t)(k + 1)};
        put(r, table + 16u * k++, &d, 16);
    }
    d = (struct virtq_desc){hdr + 16, 1, VIRTQ_DESC_F_WRITE, 0};
    put(r, table + 16u * k++, &d, 16);
    d = (struct virtq_desc){table, 16u * k, VIRTQ_DESC_F_INDIRECT, 0};
    put(r, DESC + 16u * n, &d, 16);
    put(r, AVAIL + 4 + 2u * (r->avail_idx % QSZ), &n, 2);
    r->avail_idx++;
}

/* Publish what add_req() queued, let the device pop it all in one notify, and wait for it. */
static void kick(struct rig *r)
{
    put(r, AVAIL + 2, &r->avail_idx, 2);
    pthread_mutex_lock(&r->dev->lock);
    r->dev->ops->queue_notify(r->dev, 0);
    pthread_mutex_unlock(&r->dev->lock);
    virtio_blk_drain(r->dev);
}

static uint8_t status_of(struct rig *r, uint16_t n)
{
    return *(uint8_t *)gpa_ptr(&r->mem, HDRS + 32u * n + 16, 1);
}

/* The used ring holds requests 0..count-1, each once, with the lengths it should. */
static void check_used(struct rig *r, unsigned count, const uint32_t *written)
{
    uint16_t idx;
    memcpy(&idx, gpa_ptr(&r->mem, USED + 2, 2), 2);
    assert_int_equal(idx, count);
    unsigned seen = 0;
    for (unsigned i = 0; i < count; i++) {
        struct virtq_used_elem u;
        memcpy(&u, gpa_ptr(&r->mem, USED + 4 + 8u * i, 8), 8);
        assert_true(u.id < count);
        assert_false(seen & (1u << u.id));
        seen |= 1u << u.id;
        assert_int_equal(u.len, written[u.id]);
    }
}

static void check_data(struct rig *r, uint64_t gpa, uint64_t disk_off, uint64_t len)
{
    const uint8_t *p = gpa_ptr(&r->mem, gpa, len);
    for (uint64_t i = 0; i < len; i++)
        if (p[i] != pattern(disk_off + i))
            fail_msg("byte %llu of the read at disk offset %llu: %#x, want %#x",
                     (unsigned long long)i, (unsigned long long)disk_off, p[i],
                     pattern(disk_off + i));
}

static struct virtio_blk_stats stats(struct rig *r)
{
    struct virtio_blk_stats s;
    virtio_blk_get_stats(r->dev, &s);
    return s;
}

/* Four 64 KiB reads, one after another on the disk, each in two segments and laid out in
 * guest memory in the opposite order: one host read, four correct completions. */
static void test_adjacent_reads_share_one_host_io(void **state)
{
    struct rig *r = *state;
    uint32_t written[4];
    for (uint16_t i = 0; i < 4; i++) {
        add_req(r, i, VIRTIO_BLK_T_IN, 128u * i, DATA + 0x30000u * (3 - i), 0x10000, 2, 0x18000);
        written[i] = 0x10000 + 1;
    }
    kick(r);
    check_used(r, 4, written);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_OK);
        uint64_t gpa = DATA + 0x30000u * (3 - i);
        check_data(r, gpa, 0x10000u * i, 0x8000);
        check_data(r, gpa + 0x18000, 0x10000u * i + 0x8000, 0x8000);
    }
    struct virtio_blk_stats s = stats(r);
    assert_int_equal(s.reads, 4);
    assert_int_equal(s.host_ios, 1);
    assert_int_equal(s.merged, 3);
}

/* A gap, a change of direction and a flush each end a run; adjacent writes join, and what they
 * wrote is on the disk in the right places. */
static void test_runs_end_at_gaps_direction_and_flush(void **state)
{
    struct rig *r = *state;
    for (uint64_t o = 0; o < 0x4000; o++)
        *(uint8_t *)gpa_ptr(&r->mem, DATA + 0x100000 + o, 1) = (uint8_t)(o * 13 + 5);
    add_req(r, 0, VIRTIO_BLK_T_IN, 0, DATA, 4096, 1, 0);                      /* alone */
    add_req(r, 1, VIRTIO_BLK_T_IN, 100, DATA + 0x10000, 4096, 1, 0);          /* gap */
    add_req(r, 2, VIRTIO_BLK_T_OUT, 108, DATA + 0x100000, 4096, 1, 0);        /* a write */
    add_req(r, 3, VIRTIO_BLK_T_OUT, 116, DATA + 0x101000, 4096, 2, 2048);     /* joins 2 */
    add_req(r, 4, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, 0);
    add_req(r, 5, VIRTIO_BLK_T_OUT, 124, DATA + 0x102000, 8192, 1, 0);        /* after flush */
    add_req(r, 6, VIRTIO_BLK_T_IN, 140, DATA + 0x20000, 4096, 1, 0);          /* a read */
    kick(r);
    uint32_t written[7] = {4097, 4097, 1, 1, 1, 1, 4097};
    check_used(r, 7, written);
    for (uint16_t i = 0; i < 7; i++)
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_OK);
    check_data(r, DATA, 0, 4096);
    check_data(r, DATA + 0x10000, 100 * 512, 4096);
    check_data(r, DATA + 0x20000, 140 * 512, 4096);
    int fd = open(r->path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t got[0x4000 + 1024];
    assert_int_equal(pread(fd, got, sizeof(got), 108 * 512 - 512), (ssize_t)sizeof(got));
    close(fd);
    for (uint64_t o = 0; o < 512; o++)
        assert_int_equal(got[o], pattern(107 * 512 + o)); /* the sector before, untouched */
    for (uint64_t o = 0; o < 0x4000; o++)
        assert_int_equal(got[512 + o], (uint8_t)(o * 13 + 5));
    for (uint64_t o = 0; o < 512; o++)
        assert_int_equal(got[512 + 0x4000 + o], pattern(140 * 512 + o)); /* and the one after */
    struct virtio_blk_stats s = stats(r);
    assert_int_equal(s.host_ios, 5);
    assert_int_equal(s.merged, 1);
    assert_int_equal(s.flushes, 1);
}

/* One host I/O moves at most 2 MiB and 1024 buffers: three adjacent 1 MiB reads make two, and
 * six adjacent reads of 200 buffers each make two (1000 buffers, then 200). */
static void test_merge_caps(void **state)
{
    struct rig *r = *state;
    for (uint16_t i = 0; i < 3; i++)
        add_req(r, i, VIRTIO_BLK_T_IN, 2048u * i, DATA + 0x100000u * i, 0x100000, 4, 0x40000);
    kick(r);
    struct virtio_blk_stats s = stats(r);
    assert_int_equal(s.host_ios, 2);
    assert_int_equal(s.merged, 1);
    for (uint16_t i = 0; i < 3; i++) {
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_OK);
        check_data(r, DATA + 0x100000u * i, 0x100000u * i, 0x100000);
    }
    for (uint16_t i = 3; i < 9; i++)
        add_req(r, i, VIRTIO_BLK_T_IN, 4096 + 200u * (i - 3), DATA + 0x20000u * (i - 3),
                200 * 512, 200, 512);
    kick(r);
    s = stats(r);
    assert_int_equal(s.host_ios, 4);
    assert_int_equal(s.merged, 1 + 4);
    for (uint16_t i = 3; i < 9; i++) {
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_OK);
        check_data(r, DATA + 0x20000u * (i - 3), (4096 + 200u * (i - 3)) * 512, 200 * 512);
    }
}

/* A request the device refuses (past the end; a length that is not whole sectors) fails alone:
 * the good ones around it still join and complete. */
static void test_bad_request_fails_alone(void **state)
{
    struct rig *r = *state;
    add_req(r, 0, VIRTIO_BLK_T_IN, 0, DATA, 4096, 1, 0);
    add_req(r, 1, VIRTIO_BLK_T_IN, DISK_BYTES / 512 - 4, DATA + 0x10000, 4096, 1, 0);
    add_req(r, 2, VIRTIO_BLK_T_IN, 8, DATA + 0x20000, 4096, 1, 0);
    add_req(r, 3, VIRTIO_BLK_T_IN, 16, DATA + 0x30000, 1000, 1, 0);
    add_req(r, 4, VIRTIO_BLK_T_IN, 16, DATA + 0x40000, 4096, 1, 0);
    kick(r);
    uint32_t written[5] = {4097, 1, 4097, 1, 4097};
    check_used(r, 5, written);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 3), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 4), VIRTIO_BLK_S_OK);
    check_data(r, DATA, 0, 4096);
    check_data(r, DATA + 0x20000, 8 * 512, 4096);
    check_data(r, DATA + 0x40000, 16 * 512, 4096);
    struct virtio_blk_stats s = stats(r);
    assert_int_equal(s.host_ios, 1);
    assert_int_equal(s.merged, 2);
    assert_int_equal(s.errors, 2);
}

int main(void)
{
    if (scratch_make("/tmp", "vireo-test-blk") < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adjacent_reads_share_one_host_io, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_runs_end_at_gaps_direction_and_flush, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_merge_caps, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_bad_request_fails_alone, rig_setup, rig_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    scratch_remove();
    return rc;
}
