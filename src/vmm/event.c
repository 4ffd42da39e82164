#include "vmm/event.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"

#define EVENT_MAX_SOURCES 256

struct event_source {
    int fd; /* -1: free slot */
    event_fn fn;
    void *opaque;
};

struct event_loop {
    int epfd;
    int stop_fd;
    pthread_t thread;
    bool running;
    char name[16];
    pthread_mutex_t lock; /* guards the source table */
    struct event_source sources[EVENT_MAX_SOURCES];
};

struct event_loop *event_loop_create(const char *name)
{
    struct event_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    snprintf(l->name, sizeof(l->name), "%s", name ? name : "io");
    pthread_mutex_init(&l->lock, NULL);
    for (unsigned i = 0; i < EVENT_MAX_SOURCES; i++)
        l->sources[i].fd = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->stop_fd < 0) {
        int err = errno;
        event_loop_destroy(l);
        errno = err;
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stop_fd, &ev) < 0) {
        int err = errno;
        event_loop_destroy(l);
        errno = err;
        return NULL;
    }
    return l;
}

static struct event_source *event_find(struct event_loop *l, int fd)
{
    for (unsigned i = 0; i < EVENT_MAX_SOURCES; i++)
        if (l->sources[i].fd == fd)
            return &l->sources[i];
    return NULL;
}

int event_loop_add(struct event_loop *l, int fd, uint32_t events, event_fn fn, void *opaque)
{
    if (fd < 0 || !fn)
        return -EINVAL;
    pthread_mutex_lock(&l->lock);
    int rc = 0;
    struct event_source *s = event_find(l, fd) ? NULL : event_find(l, -1);
    if (!s) {
        rc = event_find(l, fd) ? -EEXIST : -ENOSPC;
    } else {
        *s = (struct event_source){fd, fn, opaque};
        struct epoll_event ev = {.events = events, .data.ptr = s};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rc = -errno;
            s->fd = -1;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int event_loop_modify(struct event_loop *l, int fd, uint32_t events)
{
    pthread_mutex_lock(&l->lock);
    struct event_source *s = event_find(l, fd);
    int rc = -ENOENT;
    if (s) {
        struct epoll_event ev = {.events = events, .data.ptr = s};
        rc = epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int event_loop_del(struct event_loop *l, int fd)
{
    pthread_mutex_lock(&l->lock);
    struct event_source *s = event_find(l, fd);
    int rc = -ENOENT;
    if (s) {
        rc = epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
        s->fd = -1;
        s->fn = NULL;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

static void *event_loop_main(void *arg)
{
    struct event_loop *l = arg;
    for (;;) {
        struct epoll_event evs[32];
        int n = epoll_wait(l->epfd, evs, 32, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_err("%s: epoll_wait: %s", l->name, strerror(errno));
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            struct event_source *s = evs[i].data.ptr;
            if (!s) {
                uint64_t v;
                if (read(l->stop_fd, &v, sizeof(v)) < 0) {
                    /* nothing to drain: still a stop request */
                }
                return NULL;
            }
            /* A source deleted by an earlier callback of this batch has fn == NULL. */
            event_fn fn = s->fn;
            if (fn && s->fd >= 0)
                fn(s->opaque, evs[i].events);
        }
    }
}

int event_loop_start(struct event_loop *l)
{
    if (l->running)
        return 0;
    /* The I/O thread takes no process signals: the main loop handles them via signalfd. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&l->thread, NULL, event_loop_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return -err;
    pthread_setname_np(l->thread, l->name);
    l->running = true;
    return 0;
}

void event_loop_stop(struct event_loop *l)
{
    if (!l || !l->running)
        return;
    uint64_t one = 1;
    if (write(l->stop_fd, &one, sizeof(one)) < 0)
        log_warn("%s: cannot stop the I/O thread: %s", l->name, strerror(errno));
    pthread_join(l->thread, NULL);
    l->running = false;
}

void event_loop_destroy(struct event_loop *l)
{
    if (!l)
        return;
    event_loop_stop(l);
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->stop_fd >= 0)
        close(l->stop_fd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

int event_loop_is_self(const struct event_loop *l)
{
    return l->running && pthread_equal(pthread_self(), l->thread);
}
