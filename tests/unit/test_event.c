/* The I/O thread's epoll loop: callbacks run on the loop's own thread for ready fds, watched
 * events can be changed, a stopped loop runs nothing, and it starts again. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/event.h"

struct probe {
    struct event_loop *loop;
    int fd;
    int calls;
    int on_loop_thread;
};

static void on_ready(void *opaque, uint32_t events)
{
    struct probe *p = opaque;
    uint64_t v;
    if (events & EPOLLIN)
        assert_int_equal(read(p->fd, &v, sizeof(v)), sizeof(v));
    p->on_loop_thread = event_loop_is_self(p->loop);
    __atomic_add_fetch(&p->calls, 1, __ATOMIC_SEQ_CST);
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

/* Wait, bounded by iterations, for the callback count to reach want. */
static void wait_calls(struct probe *p, int want)
{
    for (int i = 0; i < 1000000 && __atomic_load_n(&p->calls, __ATOMIC_SEQ_CST) < want; i++)
        usleep(2);
    assert_int_equal(__atomic_load_n(&p->calls, __ATOMIC_SEQ_CST), want);
}

static void test_loop(void **state)
{
    (void)state;
    struct probe p = {0};
    p.loop = event_loop_create("test");
    assert_non_null(p.loop);
    p.fd = eventfd(0, EFD_NONBLOCK);
    assert_true(p.fd >= 0);
    assert_int_equal(event_loop_add(p.loop, p.fd, EPOLLIN, on_ready, &p), 0);
    assert_int_equal(event_loop_add(p.loop, p.fd, EPOLLIN, on_ready, &p), -EEXIST);
    assert_int_equal(event_loop_start(p.loop), 0);
    assert_false(event_loop_is_self(p.loop));
    signal_fd(p.fd);
    wait_calls(&p, 1);
    assert_true(p.on_loop_thread);

    /* Not watched: a signal produces no call, until it is watched again. */
    assert_int_equal(event_loop_modify(p.loop, p.fd, 0), 0);
    signal_fd(p.fd);
    usleep(20000);
    assert_int_equal(__atomic_load_n(&p.calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(event_loop_modify(p.loop, p.fd, EPOLLIN), 0);
    wait_calls(&p, 2);

    /* Stopped: nothing runs; started again: the pending event is served. */
    event_loop_stop(p.loop);
    signal_fd(p.fd);
    usleep(20000);
    assert_int_equal(p.calls, 2);
    assert_int_equal(event_loop_start(p.loop), 0);
    wait_calls(&p, 3);

    event_loop_stop(p.loop);
    assert_int_equal(event_loop_del(p.loop, p.fd), 0);
    assert_int_equal(event_loop_del(p.loop, p.fd), -ENOENT);
    event_loop_destroy(p.loop);
    close(p.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
