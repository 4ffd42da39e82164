/* LRU table cache for qcow2; see qcow2_cache.h. */
#include "block/qcow2_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/err.h"

/* Table offsets are multiples of the cluster size: Fibonacci hashing spreads their high bits. */
static unsigned cache_bucket(const struct qcow2_cache *c, uint64_t offset)
{
    return (unsigned)((offset * 0x9e3779b97f4a7c15ull) >> 32) & (c->nbuckets - 1);
}

static void lru_unlink(struct qcow2_cache *c, uint32_t i)
{
    struct qcow2_cache_slot *s = &c->slots[i];
    if (s->prev != QCOW2_CACHE_NONE)
        c->slots[s->prev].next = s->next;
    else
        c->mru = s->next;
    if (s->next != QCOW2_CACHE_NONE)
        c->slots[s->next].prev = s->prev;
    else
        c->lru = s->prev;
    s->prev = s->next = QCOW2_CACHE_NONE;
}

static void lru_push_front(struct qcow2_cache *c, uint32_t i)
{
    struct qcow2_cache_slot *s = &c->slots[i];
    s->prev = QCOW2_CACHE_NONE;
    s->next = c->mru;
    if (c->mru != QCOW2_CACHE_NONE)
        c->slots[c->mru].prev = i;
    c->mru = i;
    if (c->lru == QCOW2_CACHE_NONE)
        c->lru = i;
}

/* An emptied slot goes to the cold end, so that it is the next one reused. */
static void lru_push_back(struct qcow2_cache *c, uint32_t i)
{
    struct qcow2_cache_slot *s = &c->slots[i];
    s->next = QCOW2_CACHE_NONE;
    s->prev = c->lru;
    if (c->lru != QCOW2_CACHE_NONE)
        c->slots[c->lru].next = i;
    c->lru = i;
    if (c->mru == QCOW2_CACHE_NONE)
        c->mru = i;
}

static void hash_insert(struct qcow2_cache *c, uint32_t i)
{
    unsigned b = cache_bucket(c, c->slots[i].offset);
    c->slots[i].hash_next = c->buckets[b];
    c->buckets[b] = i;
}

static void hash_remove(struct qcow2_cache *c, uint32_t i)
{
    uint32_t *link = &c->buckets[cache_bucket(c, c->slots[i].offset)];
    while (*link != QCOW2_CACHE_NONE) {
        if (*link == i) {
            *link = c->slots[i].hash_next;
            break;
        }
        link = &c->slots[*link].hash_next;
    }
    c->slots[i].hash_next = QCOW2_CACHE_NONE;
}

int qcow2_cache_init(struct qcow2_cache *c, unsigned nslots, uint64_t table_size)
{
    memset(c, 0, sizeof(*c));
    if (nslots < 2)
        nslots = 2;
    if (nslots > QCOW2_CACHE_MAX_SLOTS || table_size == 0 ||
        table_size > SIZE_MAX / QCOW2_CACHE_MAX_SLOTS)
        return -EINVAL;
    unsigned nbuckets = 1;
    while (nbuckets < 2 * nslots)
        nbuckets <<= 1;
    c->nslots = nslots;
    c->nbuckets = nbuckets;
    c->table_size = table_size;
    c->slots = calloc(nslots, sizeof(*c->slots));
    c->buckets = malloc(nbuckets * sizeof(*c->buckets));
    c->mem_len = (size_t)nslots * table_size;
    /* Anonymous and untouched until a table is read in: a cache sized for a whole image costs
     * only the tables the guest actually uses. */
    void *mem = mmap(NULL, c->mem_len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    c->mem = mem == MAP_FAILED ? NULL : mem;
    if (!c->slots || !c->buckets || !c->mem) {
        qcow2_cache_free(c);
        return -ENOMEM;
    }
    for (unsigned b = 0; b < nbuckets; b++)
        c->buckets[b] = QCOW2_CACHE_NONE;
    c->mru = c->lru = QCOW2_CACHE_NONE;
    for (uint32_t i = 0; i < nslots; i++) {
        c->slots[i].data = c->mem + (size_t)i * table_size;
        c->slots[i].hash_next = QCOW2_CACHE_NONE;
        lru_push_back(c, i);
    }
    return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
    if (c->mem)
        munmap(c->mem, c->mem_len);
    free(c->slots);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

static uint32_t cache_find(struct qcow2_cache *c, uint64_t offset)
{
    /* Consecutive requests mostly touch the same table: try the last one first. */
    if (offset && c->slots[c->last].offset == offset)
        return c->last;
    for (uint32_t i = c->buckets[cache_bucket(c, offset)]; i != QCOW2_CACHE_NONE;
         i = c->slots[i].hash_next)
        if (c->slots[i].offset == offset)
            return i;
    return QCOW2_CACHE_NONE;
}

/* A dirty table leaving the cache: what it references must be durable before it is written. */
static int cache_evict(struct qcow2 *q, struct qcow2_cache *c, struct qcow2_cache_slot *s)
{
    if (!s->offset)
        return 0;
    if (s->dirty) {
        if (fdatasync(q->fd) < 0)
            return -errno;
        int ret = block_fd_pwrite(q->fd, s->data, c->table_size, s->offset);
        if (ret < 0)
            return ret;
        s->dirty = false;
        c->ndirty--;
    }
    c->evictions++;
    return 0;
}

/* The coldest slot, emptied (a dirty table is written first) and out of the hash. */
static int cache_take_victim(struct qcow2 *q, struct qcow2_cache *c, uint32_t *out)
{
    uint32_t v = c->lru;
    struct qcow2_cache_slot *s = &c->slots[v];
    int ret = cache_evict(q, c, s);
    if (ret < 0)
        return ret;
    if (s->offset) {
        hash_remove(c, v);
        s->offset = 0;
    }
    *out = v;
    return 0;
}

static void cache_install(struct qcow2_cache *c, uint32_t i, uint64_t offset)
{
    c->slots[i].offset = offset;
    hash_insert(c, i);
    lru_unlink(c, i);
    lru_push_front(c, i);
    c->last = i;
}

int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t offset, uint8_t **out)
{
    if (!offset)
        return -EINVAL;
    uint32_t i = cache_find(c, offset);
    if (i != QCOW2_CACHE_NONE) {
        c->hits++;
        if (c->mru != i) {
            lru_unlink(c, i);
            lru_push_front(c, i);
        }
        c->last = i;
        *out = c->slots[i].data;
        return 0;
    }
    c->misses++;
    int ret = cache_take_victim(q, c, &i);
    if (ret < 0)
        return ret;
    ret = block_fd_pread(q->fd, c->slots[i].data, c->table_size, offset);
    if (ret < 0)
        return ret; /* the slot stays empty, at the cold end */
    cache_install(c, i, offset);
    *out = c->slots[i].data;
    return 0;
}

uint8_t *qcow2_cache_get_new(struct qcow2 *q, struct qcow2_cache *c, uint64_t offset)
{
    if (!offset)
        return NULL;
    uint32_t i = cache_find(c, offset);
    if (i != QCOW2_CACHE_NONE) {
        /* A stale copy of a table that used to live here: its content no longer matters. */
        if (c->slots[i].dirty)
            c->ndirty--;
        hash_remove(c, i);
        c->slots[i].offset = 0;
    } else if (cache_take_victim(q, c, &i) < 0) {
        return NULL;
    }
    struct qcow2_cache_slot *s = &c->slots[i];
    s->dirty = false;
    memset(s->data, 0, c->table_size);
    cache_install(c, i, offset);
    return s->data;
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset)
{
    uint32_t i = offset ? cache_find(c, offset) : QCOW2_CACHE_NONE;
    if (i == QCOW2_CACHE_NONE)
        return;
    struct qcow2_cache_slot *s = &c->slots[i];
    if (s->dirty)
        c->ndirty--;
    s->dirty = false;
    hash_remove(c, i);
    s->offset = 0;
    lru_unlink(c, i);
    lru_push_back(c, i);
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, uint64_t offset)
{
    uint32_t i = offset ? cache_find(c, offset) : QCOW2_CACHE_NONE;
    if (i != QCOW2_CACHE_NONE && !c->slots[i].dirty) {
        c->slots[i].dirty = true;
        c->ndirty++;
    }
}

int qcow2_cache_writeback(struct qcow2 *q, struct qcow2_cache *c)
{
    for (unsigned i = 0; c->ndirty && i < c->nslots; i++) {
        struct qcow2_cache_slot *s = &c->slots[i];
        if (!s->dirty || !s->offset)
            continue;
        int ret = block_fd_pwrite(q->fd, s->data, c->table_size, s->offset);
        if (ret < 0)
            return ret;
        s->dirty = false;
        c->ndirty--;
    }
    return 0;
}

bool qcow2_cache_any_dirty(const struct qcow2_cache *c) { return c->ndirty > 0; }

bool qcow2_cache_contains(const struct qcow2_cache *c, uint64_t offset)
{
    if (!offset || !c->nbuckets)
        return false;
    for (uint32_t i = c->buckets[cache_bucket(c, offset)]; i != QCOW2_CACHE_NONE;
         i = c->slots[i].hash_next)
        if (c->slots[i].offset == offset)
            return true;
    return false;
}

unsigned qcow2_cache_slots_for(uint64_t l1_size, uint64_t table_size, uint64_t requested)
{
    uint64_t n;
    if (requested)
        n = requested / table_size;
    else
        n = MIN(l1_size, QCOW2_L2_CACHE_DEFAULT_MAX / table_size);
    return (unsigned)MIN(MAX(n, 4), QCOW2_CACHE_MAX_SLOTS);
}
