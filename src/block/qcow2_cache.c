/* LRU table cache for qcow2; see qcow2_cache.h. */
#include "block/qcow2_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int qcow2_cache_init(struct qcow2_cache *c, unsigned nslots, uint64_t cluster_size)
{
    if (nslots < 2)
        nslots = 2;
    c->nslots = nslots;
    c->tick = 0;
    c->slots = calloc(nslots, sizeof(*c->slots));
    if (!c->slots)
        return -ENOMEM;
    for (unsigned i = 0; i < nslots; i++) {
        c->slots[i].data = malloc(cluster_size);
        if (!c->slots[i].data) {
            qcow2_cache_free(c);
            return -ENOMEM;
        }
    }
    return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
    for (unsigned i = 0; c->slots && i < c->nslots; i++)
        free(c->slots[i].data);
    free(c->slots);
    c->slots = NULL;
}

static struct qcow2_cache_slot *cache_victim(struct qcow2_cache *c, uint64_t offset, int *hit)
{
    /* Consecutive requests mostly touch the same table: try the last one first. */
    if (c->slots[c->last].offset == offset && offset) {
        *hit = 1;
        return &c->slots[c->last];
    }
    struct qcow2_cache_slot *victim = &c->slots[0];
    for (unsigned i = 0; i < c->nslots; i++) {
        struct qcow2_cache_slot *s = &c->slots[i];
        if (s->offset == offset) {
            *hit = 1;
            c->last = i;
            return s;
        }
        if (s->lru < victim->lru)
            victim = s;
    }
    *hit = 0;
    c->last = (unsigned)(victim - c->slots);
    return victim;
}

/* A dirty table leaving the cache: what it references must be durable before it is written. */
static int cache_evict(struct qcow2 *q, struct qcow2_cache_slot *s)
{
    if (!s->dirty || !s->offset)
        return 0;
    if (fdatasync(q->fd) < 0)
        return -errno;
    int ret = block_fd_pwrite(q->fd, s->data, q->cluster_size, s->offset);
    if (ret == 0)
        s->dirty = false;
    return ret;
}

int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t offset, uint8_t **out)
{
    int hit;
    struct qcow2_cache_slot *s = cache_victim(c, offset, &hit);
    if (!hit) {
        int ret = cache_evict(q, s);
        if (ret < 0)
            return ret;
        s->offset = 0;
        ret = block_fd_pread(q->fd, s->data, q->cluster_size, offset);
        if (ret < 0)
            return ret;
        s->offset = offset;
    }
    s->lru = ++c->tick;
    *out = s->data;
    return 0;
}

uint8_t *qcow2_cache_get_new(struct qcow2 *q, struct qcow2_cache *c, uint64_t offset)
{
    int hit;
    struct qcow2_cache_slot *s = cache_victim(c, offset, &hit);
    if (!hit && cache_evict(q, s) < 0)
        return NULL;
    s->dirty = false;
    memset(s->data, 0, q->cluster_size);
    s->offset = offset;
    s->lru = ++c->tick;
    return s->data;
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset)
{
    for (unsigned i = 0; i < c->nslots; i++)
        if (c->slots[i].offset == offset) {
            c->slots[i].offset = 0;
            c->slots[i].lru = 0;
            c->slots[i].dirty = false;
        }
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, uint64_t offset)
{
    for (unsigned i = 0; i < c->nslots; i++)
        if (c->slots[i].offset == offset)
            c->slots[i].dirty = true;
}

int qcow2_cache_writeback(struct qcow2 *q, struct qcow2_cache *c)
{
    for (unsigned i = 0; i < c->nslots; i++) {
        struct qcow2_cache_slot *s = &c->slots[i];
        if (!s->dirty || !s->offset)
            continue;
        int ret = block_fd_pwrite(q->fd, s->data, q->cluster_size, s->offset);
        if (ret < 0)
            return ret;
        s->dirty = false;
    }
    return 0;
}

bool qcow2_cache_any_dirty(const struct qcow2_cache *c)
{
    for (unsigned i = 0; i < c->nslots; i++)
        if (c->slots[i].dirty && c->slots[i].offset)
            return true;
    return false;
}
