/* libFuzzer target for the split virtqueue parser: the input becomes the first 64 KiB of a
 * 16 MiB guest RAM (rings, descriptors, indirect tables) plus the queue's configuration, and the
 * device side pops and pushes until the queue is empty or broken. Every buffer handed out must
 * lie inside guest RAM; anything else (or any sanitizer report) is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "virtio/queue.h"

#define FUZZ_WINDOW 0x10000u

static struct guest_mem mem;
static struct virtq_elem elem;

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void check_inside(const struct guest_mem *m, const struct virtq_elem *e)
{
    for (unsigned i = 0; i < e->nout + e->nin; i++) {
        const uint8_t *b = e->iov[i].iov_base;
        if (b < m->base || e->iov[i].iov_len > m->size ||
            (size_t)(b - m->base) > m->size - e->iov[i].iov_len)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mem.base) {
        log_set_level(LOG_ERR);
        if (guest_mem_create(&mem, 16ULL << 20, "fuzz-virtq") < 0)
            abort();
    }
    if (size < 8)
        return 0;
    /* Header: size shift, flags, and the three ring offsets inside the window. */
    struct virtq vq;
    virtq_reset(&vq, &mem, 0, "fuzz");
    vq.size = (uint16_t)(1u << (data[0] % 9));
    vq.event_idx = data[1] & 1;
    vq.indirect = data[1] & 2;
    vq.desc_gpa = (uint64_t)(rd16(data + 2) & ~15u);
    vq.avail_gpa = (uint64_t)(rd16(data + 4) & ~1u);
    vq.used_gpa = (uint64_t)(rd16(data + 6) & ~3u);
    size_t body = size - 8 > FUZZ_WINDOW ? FUZZ_WINDOW : size - 8;
    memset(mem.base, 0, FUZZ_WINDOW);
    memcpy(mem.base, data + 8, body);
    if (virtq_enable(&vq) < 0)
        return 0;
    for (unsigned round = 0; round < 2 * VIRTQ_MAX_SIZE; round++) {
        int rc = virtq_pop(&vq, &elem);
        if (rc <= 0)
            break;
        check_inside(&mem, &elem);
        if (virtq_push(&vq, elem.head, (uint32_t)elem.in_len) < 0)
            break;
        (void)virtq_should_notify(&vq);
        virtq_set_notify(&vq, round & 1);
    }
    return 0;
}
