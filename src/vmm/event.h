/* The I/O thread: an epoll loop on its own thread that serves ioeventfds (queue kicks), io_uring
 * completions, tap fds and timers, so that queue work never runs on a vCPU thread. The machine
 * creates one and starts it before the vCPUs. */
#ifndef VIREO_VMM_EVENT_H
#define VIREO_VMM_EVENT_H

#include <stdint.h>

struct event_loop;

/* Called on the I/O thread when fd is ready; events are the EPOLL* bits that fired. */
typedef void (*event_fn)(void *opaque, uint32_t events);

/* Create an idle loop. Returns NULL with errno set. */
struct event_loop *event_loop_create(const char *name);
/* Watch fd for events (EPOLLIN, EPOLLOUT...), level-triggered. Any thread; the callback may run
 * before this returns. Returns 0, -EEXIST, -ENOSPC or -errno. */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_fn fn, void *opaque);
/* Change the events watched on fd (e.g. EPOLLOUT only while a tap is full). */
int event_loop_modify(struct event_loop *loop, int fd, uint32_t events);
/* Stop watching fd. Only from the I/O thread itself or while the loop is stopped: a callback
 * already picked up by another thread could otherwise still run. */
int event_loop_del(struct event_loop *loop, int fd);
/* Start / stop (and join) the thread. Stop is idempotent; start after stop is allowed. */
int event_loop_start(struct event_loop *loop);
void event_loop_stop(struct event_loop *loop);
/* Stop the thread and free the loop (not the watched fds). NULL is fine. */
void event_loop_destroy(struct event_loop *loop);
/* True on the loop's own thread. */
int event_loop_is_self(const struct event_loop *loop);

#endif
