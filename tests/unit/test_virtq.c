/* Split virtqueues against hand-built rings in a 16 MiB fake guest RAM: good chains, every kind
 * of malformed chain (refused, queue broken, nothing outside RAM touched), and the EVENT_IDX
 * arithmetic across the 16-bit index wrap. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/log.h"
#include "virtio/queue.h"

#define QSIZE 16
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define DATA_GPA 0x100000ULL
#define IND_GPA 0x40000ULL

struct harness {
    struct guest_mem mem;
    struct virtq vq;
    struct virtq_elem elem;
};

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    log_set_level(LOG_ERR); /* the refusals below log warnings by design */
    assert_int_equal(guest_mem_create(&h->mem, 16ULL << 20, "test-virtq"), 0);
    virtq_reset(&h->vq, &h->mem, 0, "test");
    h->vq.size = QSIZE;
    h->vq.desc_gpa = DESC_GPA;
    h->vq.avail_gpa = AVAIL_GPA;
    h->vq.used_gpa = USED_GPA;
    h->vq.indirect = true;
    assert_int_equal(virtq_enable(&h->vq), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    guest_mem_destroy(&h->mem);
    test_free(h);
    return 0;
}

static void *host(struct harness *h, uint64_t gpa, uint64_t len)
{
    void *p = gpa_ptr(&h->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static void set_desc_at(struct harness *h, uint64_t table, unsigned i, uint64_t addr,
                        uint32_t len, uint16_t flags, uint16_t next)
{
    struct virtq_desc d = {addr, len, flags, next};
    memcpy(host(h, table + 16ULL * i, 16), &d, 16);
}

static void set_desc(struct harness *h, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    set_desc_at(h, DESC_GPA, i, addr, len, flags, next);
}

static uint16_t *avail16(struct harness *h, unsigned off)
{
    return host(h, AVAIL_GPA + off, 2);
}

static uint16_t *used16(struct harness *h, unsigned off)
{
    return host(h, USED_GPA + off, 2);
}

/* Make head available as the next entry of the avail ring. */
static void offer(struct harness *h, uint16_t head)
{
    uint16_t idx = *avail16(h, 2);
    *avail16(h, 4 + 2 * (idx % QSIZE)) = head;
    *avail16(h, 2) = (uint16_t)(idx + 1);
}

static void expect_refused(struct harness *h, enum virtq_error why)
{
    assert_int_equal(virtq_pop(&h->vq, &h->elem), -EINVAL);
    assert_int_equal(virtq_last_error(), why);
    assert_true(h->vq.broken);
    /* A broken queue serves nothing more, even a good chain. */
    set_desc(h, 15, DATA_GPA, 8, 0, 0);
    offer(h, 15);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 0);
}

static void test_good_chain(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(h, 1, DATA_GPA + 0x1000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    set_desc(h, 2, DATA_GPA + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 0); /* empty */
    offer(h, 0);
    assert_true(virtq_has_work(&h->vq));
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 1);
    assert_int_equal(h->elem.head, 0);
    assert_int_equal(h->elem.nout, 1);
    assert_int_equal(h->elem.nin, 2);
    assert_int_equal(h->elem.out_len, 16);
    assert_int_equal(h->elem.in_len, 513);
    assert_ptr_equal(h->elem.iov[1].iov_base, host(h, DATA_GPA + 0x1000, 512));
    assert_false(virtq_has_work(&h->vq));
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 0);

    assert_int_equal(virtq_push(&h->vq, 0, 513), 0);
    assert_int_equal(*used16(h, 2), 1);
    struct virtq_used_elem u;
    memcpy(&u, host(h, USED_GPA + 4, 8), 8);
    assert_int_equal(u.id, 0);
    assert_int_equal(u.len, 513);
    assert_false(h->vq.broken);
}

static void test_head_out_of_range(void **state)
{
    struct harness *h = *state;
    offer(h, QSIZE);
    expect_refused(h, VIRTQ_ERR_HEAD);
}

static void test_next_out_of_range(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0xffff);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_NEXT);
}

static void test_loop(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(h, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_LOOP);
}

static void test_self_loop(void **state)
{
    struct harness *h = *state;
    set_desc(h, 3, DATA_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
    offer(h, 3);
    expect_refused(h, VIRTQ_ERR_LOOP);
}

static void test_zero_length(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 0, 0, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_ZERO_LEN);
}

static void test_outside_ram(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, (16ULL << 20) - 8, 16, 0, 0); /* straddles the end of RAM */
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_ADDR);
}

static void test_wrapping_address(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, ~0ULL - 8, 0x100, VIRTQ_DESC_F_WRITE, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_ADDR);
}

static void test_huge_length(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 0xffffffffu, 0, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_ADDR);
}

static void test_wrong_direction_order(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    set_desc(h, 1, DATA_GPA, 16, 0, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_ORDER);
}

static void test_avail_idx_jump(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 16, 0, 0);
    *avail16(h, 2) = QSIZE + 1;
    expect_refused(h, VIRTQ_ERR_AVAIL_IDX);
}

static void test_indirect_good(void **state)
{
    struct harness *h = *state;
    set_desc_at(h, IND_GPA, 0, DATA_GPA, 64, VIRTQ_DESC_F_NEXT, 2);
    set_desc_at(h, IND_GPA, 2, DATA_GPA + 0x100, 32, VIRTQ_DESC_F_WRITE, 0);
    set_desc(h, 5, IND_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 5);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 1);
    assert_int_equal(h->elem.head, 5);
    assert_int_equal(h->elem.nout, 1);
    assert_int_equal(h->elem.nin, 1);
    assert_int_equal(h->elem.in_len, 32);
}

static void test_indirect_not_negotiated(void **state)
{
    struct harness *h = *state;
    h->vq.indirect = false;
    set_desc_at(h, IND_GPA, 0, DATA_GPA, 64, 0, 0);
    set_desc(h, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_indirect_with_next(void **state)
{
    struct harness *h = *state;
    set_desc_at(h, IND_GPA, 0, DATA_GPA, 64, 0, 0);
    set_desc(h, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    set_desc(h, 1, DATA_GPA, 16, 0, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_indirect_after_direct(void **state)
{
    struct harness *h = *state;
    set_desc_at(h, IND_GPA, 0, DATA_GPA, 64, 0, 0);
    set_desc(h, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(h, 1, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_indirect_nested(void **state)
{
    struct harness *h = *state;
    set_desc_at(h, IND_GPA, 0, IND_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc_at(h, IND_GPA + 0x100, 0, DATA_GPA, 16, 0, 0);
    set_desc(h, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_indirect_bad_length(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, IND_GPA, 20, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_indirect_empty(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, IND_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_indirect_outside_ram(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, (16ULL << 20) - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_ADDR);
}

static void test_indirect_loop(void **state)
{
    struct harness *h = *state;
    set_desc_at(h, IND_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc_at(h, IND_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    set_desc(h, 0, IND_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_LOOP);
}

static void test_indirect_next_out_of_table(void **state)
{
    struct harness *h = *state;
    set_desc_at(h, IND_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
    set_desc(h, 0, IND_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_NEXT);
}

static void test_indirect_too_many(void **state)
{
    struct harness *h = *state;
    unsigned n = VIRTQ_MAX_IOV + 1;
    set_desc(h, 0, IND_GPA, n * 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(h, 0);
    expect_refused(h, VIRTQ_ERR_INDIRECT);
}

static void test_too_many_buffers(void **state)
{
    struct harness *h = *state;
    /* Only a direct chain in a large queue can carry more buffers than an element holds. */
    h->vq.size = 512;
    assert_int_equal(virtq_enable(&h->vq), 0);
    unsigned n = VIRTQ_MAX_IOV + 1;
    for (unsigned i = 0; i < n; i++)
        set_desc(h, i, DATA_GPA, 8, i + 1 < n ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    *avail16(h, 4) = 0;
    *avail16(h, 2) = 1;
    assert_int_equal(virtq_pop(&h->vq, &h->elem), -EINVAL);
    assert_int_equal(virtq_last_error(), VIRTQ_ERR_TOO_MANY);
    assert_true(h->vq.broken);
}

static void test_bad_rings(void **state)
{
    struct harness *h = *state;
    struct virtq *vq = &h->vq;
    vq->desc_gpa = DESC_GPA + 8; /* misaligned */
    assert_int_equal(virtq_enable(vq), -EINVAL);
    assert_false(vq->ready);
    vq->desc_gpa = (16ULL << 20) - 16 * 8; /* runs past RAM */
    assert_int_equal(virtq_enable(vq), -EINVAL);
    vq->desc_gpa = DESC_GPA;
    vq->used_gpa = 0xfffffffffffffff0ULL;
    assert_int_equal(virtq_enable(vq), -EINVAL);
    vq->used_gpa = USED_GPA;
    vq->size = 24; /* not a power of two */
    assert_int_equal(virtq_enable(vq), -EINVAL);
    vq->size = 0;
    assert_int_equal(virtq_enable(vq), -EINVAL);
    assert_int_equal(virtq_pop(vq, &h->elem), 0);
    vq->size = QSIZE;
    assert_int_equal(virtq_enable(vq), 0);
    assert_false(vq->broken);
}

static void test_push_bad_head(void **state)
{
    struct harness *h = *state;
    assert_int_equal(virtq_push(&h->vq, QSIZE, 0), -EINVAL);
    assert_int_equal(virtq_last_error(), VIRTQ_ERR_USED_ID);
    assert_true(h->vq.broken);
    assert_int_equal(*used16(h, 2), 0);
}

/* A batch is published with one index update (a mergeable frame is complete or absent); a bad
 * id anywhere in it publishes none. The available count follows pops and unpops. */
static void test_push_batch_and_avail_count(void **state)
{
    struct harness *h = *state;
    for (unsigned i = 0; i < 3; i++) {
        set_desc(h, i, DATA_GPA + 0x1000ULL * i, 1500, VIRTQ_DESC_F_WRITE, 0);
        offer(h, (uint16_t)i);
    }
    assert_int_equal(virtq_avail_count(&h->vq), 3);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(virtq_pop(&h->vq, &h->elem), 1);
    assert_int_equal(virtq_avail_count(&h->vq), 0);
    virtq_unpop(&h->vq);
    assert_int_equal(virtq_avail_count(&h->vq), 1);
    struct virtq_used_elem two[2] = {{0, 1500}, {1, 700}};
    assert_int_equal(virtq_push_batch(&h->vq, two, 2), 0);
    assert_int_equal(*used16(h, 2), 2);
    struct virtq_used_elem u;
    memcpy(&u, host(h, USED_GPA + 4 + 8, 8), 8);
    assert_int_equal(u.id, 1);
    assert_int_equal(u.len, 700);
    struct virtq_used_elem bad[2] = {{2, 10}, {QSIZE, 10}};
    assert_int_equal(virtq_push_batch(&h->vq, bad, 2), -EINVAL);
    assert_int_equal(virtq_last_error(), VIRTQ_ERR_USED_ID);
    assert_int_equal(*used16(h, 2), 2);
    assert_int_equal(virtq_avail_count(&h->vq), 0); /* broken: nothing is offered any more */
}

/* A device that saw `have` buffers it cannot use yet asks to be kicked past them: the driver
 * does not kick again for entries it published before. */
static void test_notify_beyond(void **state)
{
    struct harness *h = *state;
    h->vq.event_idx = true;
    for (unsigned i = 0; i < 4; i++) {
        set_desc(h, i, DATA_GPA + 0x1000ULL * i, 1500, VIRTQ_DESC_F_WRITE, 0);
        offer(h, (uint16_t)i);
    }
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 1);
    virtq_notify_beyond(&h->vq, 3);
    assert_int_equal(*used16(h, 4 + 8 * QSIZE), 1 + 3);
    virtq_set_notify(&h->vq, true);
    assert_int_equal(*used16(h, 4 + 8 * QSIZE), 1);
}

static void test_need_event_arith(void **state)
{
    (void)state;
    /* Moving from old to new crosses event exactly when event is in [old, new). */
    assert_true(virtq_need_event(5, 6, 5));
    assert_false(virtq_need_event(6, 6, 5));
    assert_false(virtq_need_event(4, 6, 5));
    /* Across the wrap: 0xfffe..0x0002. */
    assert_true(virtq_need_event(0xffff, 2, 0xfffe));
    assert_true(virtq_need_event(0, 2, 0xfffe));
    assert_true(virtq_need_event(1, 2, 0xfffe));
    assert_false(virtq_need_event(2, 2, 0xfffe));
    assert_false(virtq_need_event(0xfffd, 2, 0xfffe));
}

/* Push n chains of head 0 (the queue's content does not matter for interrupts). */
static void push_n(struct harness *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(virtq_push(&h->vq, 0, 0), 0);
}

static void test_event_idx_wrap(void **state)
{
    struct harness *h = *state;
    struct virtq *vq = &h->vq;
    vq->event_idx = true;
    uint16_t *used_event = avail16(h, 4 + 2 * QSIZE);
    vq->used_idx = 0xfffd;
    *used_event = 0;
    push_n(h, 1); /* used 0xfffe: the first interrupt always goes */
    assert_true(virtq_should_notify(vq));
    /* The driver wants to hear when entry 0x0001 is used (idx goes past 1, i.e. to 2). */
    *used_event = 1;
    push_n(h, 1); /* 0xffff */
    assert_false(virtq_should_notify(vq));
    push_n(h, 1); /* 0x0000: wrapped */
    assert_false(virtq_should_notify(vq));
    push_n(h, 1); /* 0x0001 */
    assert_false(virtq_should_notify(vq));
    push_n(h, 1); /* 0x0002: crossed used_event */
    assert_true(virtq_should_notify(vq));
    push_n(h, 1);
    assert_false(virtq_should_notify(vq)); /* used_event is now behind: suppressed */
    /* A batch that crosses used_event across the wrap in one step also interrupts. */
    vq->used_idx = 0xfff0;
    vq->signalled = 0xfff0;
    *used_event = 0xfffa;
    push_n(h, 20); /* to 0x0004 */
    assert_true(virtq_should_notify(vq));
}

static void test_no_interrupt_flag(void **state)
{
    struct harness *h = *state;
    push_n(h, 1);
    assert_true(virtq_should_notify(&h->vq));
    *avail16(h, 0) = VIRTQ_AVAIL_F_NO_INTERRUPT;
    push_n(h, 1);
    assert_false(virtq_should_notify(&h->vq));
}

static void test_no_interrupt_without_push(void **state)
{
    struct harness *h = *state;
    /* A kick that found nothing to do must not interrupt (not even the first time). */
    assert_false(virtq_should_notify(&h->vq));
    push_n(h, 1);
    assert_true(virtq_should_notify(&h->vq));
    assert_false(virtq_should_notify(&h->vq));
}

static void test_set_notify(void **state)
{
    struct harness *h = *state;
    virtq_set_notify(&h->vq, false);
    assert_int_equal(*used16(h, 0), VIRTQ_USED_F_NO_NOTIFY);
    virtq_set_notify(&h->vq, true);
    assert_int_equal(*used16(h, 0), 0);
    h->vq.event_idx = true;
    set_desc(h, 0, DATA_GPA, 16, 0, 0);
    offer(h, 0);
    offer(h, 0);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 1);
    virtq_set_notify(&h->vq, true);
    assert_int_equal(*used16(h, 4 + 8 * QSIZE), 1); /* avail_event = next slot we will read */
}

static void test_avail_wrap(void **state)
{
    struct harness *h = *state;
    set_desc(h, 0, DATA_GPA, 16, 0, 0);
    h->vq.last_avail = 0xfffe;
    *avail16(h, 2) = 0xfffe;
    for (unsigned i = 0; i < 4; i++) {
        offer(h, 0);
        assert_int_equal(virtq_pop(&h->vq, &h->elem), 1);
    }
    assert_int_equal(h->vq.last_avail, 2);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 0);
}

static void test_reset_clears_broken(void **state)
{
    struct harness *h = *state;
    offer(h, QSIZE);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), -EINVAL);
    virtq_reset(&h->vq, &h->mem, 0, "test");
    assert_false(h->vq.broken);
    assert_false(h->vq.ready);
    assert_int_equal(virtq_pop(&h->vq, &h->elem), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_good_chain),           T(test_head_out_of_range),
        T(test_next_out_of_range),    T(test_loop),
        T(test_self_loop),            T(test_zero_length),
        T(test_outside_ram),          T(test_wrapping_address),
        T(test_huge_length),          T(test_wrong_direction_order),
        T(test_avail_idx_jump),       T(test_indirect_good),
        T(test_indirect_not_negotiated), T(test_indirect_with_next),
        T(test_indirect_after_direct), T(test_indirect_nested),
        T(test_indirect_bad_length),  T(test_indirect_empty),
        T(test_indirect_outside_ram), T(test_indirect_loop),
        T(test_indirect_next_out_of_table), T(test_indirect_too_many),
        T(test_too_many_buffers),     T(test_bad_rings),
        T(test_push_bad_head),        T(test_push_batch_and_avail_count),
        T(test_notify_beyond),        T(test_need_event_arith),
        T(test_event_idx_wrap),       T(test_no_interrupt_flag),
        T(test_set_notify),           T(test_no_interrupt_without_push),
        T(test_avail_wrap),
        T(test_reset_clears_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
