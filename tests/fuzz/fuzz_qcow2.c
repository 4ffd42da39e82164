/* libFuzzer target: the qcow2 header and table parsers, then reads, a check, and a few writes
 * on whatever opened. The input is the whole image file; backing files are never followed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "block/qcow2.h"
#include "block/qcow2_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void exercise(struct block_dev *bd, bool rw)
{
    static uint8_t buf[65536];
    /* Read the start, a stretch in the middle and the end of the disk. */
    uint64_t offs[3] = {0, bd->size / 2, bd->size > sizeof(buf) ? bd->size - sizeof(buf) : 0};
    for (int i = 0; i < 3; i++) {
        uint64_t n = bd->size - offs[i] < sizeof(buf) ? bd->size - offs[i] : sizeof(buf);
        if (n)
            block_pread(bd, offs[i], buf, n);
    }
    struct qcow2_check_result r;
    qcow2_check(bd, 0, &r, NULL);
    if (!rw)
        return;
    memset(buf, 0x5a, 4096);
    for (int i = 0; i < 3; i++) {
        uint64_t n = bd->size - offs[i] < 4096 ? bd->size - offs[i] : 4096;
        if (n)
            block_pwrite(bd, offs[i], buf, n);
    }
    if (bd->size >= 131072)
        block_discard(bd, 0, 131072, true);
    qcow2_check(bd, QCOW2_REPAIR_ALL, &r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) /* tmpfs where there is one: the writes end in fdatasync */
        snprintf(path, sizeof(path), "%s/fuzz-qcow2-%d.img",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
    for (int rw = 0; rw < 2; rw++) {
        FILE *f = fopen(path, "wb");
        if (!f)
            return 0;
        fwrite(data, 1, size, f);
        fclose(f);
        struct block_open_opts o = {
            .format = "qcow2",
            .flags = BLOCK_OPEN_NO_BACKING | (rw ? BLOCK_OPEN_RDWR | BLOCK_OPEN_REPAIR : 0),
            .l2_cache_size = 65536};
        struct block_dev *bd;
        if (block_open(path, &o, &bd) < 0)
            break;
        /* Keep a run bounded: huge virtual disks are fine to open, not to write all over. */
        exercise(bd, rw && bd->size < (1ull << 40));
        block_close(bd);
    }
    unlink(path);
    return 0;
}
