#include "virtio/vhost_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/memory.h"

struct vhost_net {
    int fd;
    uint64_t features;
    bool started;
};

struct vhost_net *vhost_net_open(char *why, unsigned why_len)
{
    struct vhost_net *v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(why, why_len, "vhost-net: out of memory");
        errno = ENOMEM;
        return NULL;
    }
    v->fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
    const char *step = v->fd < 0 ? "/dev/vhost-net" : NULL;
    /* The owner is the process whose memory the table's addresses refer to: this one. */
    if (!step && ioctl(v->fd, VHOST_SET_OWNER) < 0)
        step = "VHOST_SET_OWNER";
    if (!step && ioctl(v->fd, VHOST_GET_FEATURES, &v->features) < 0)
        step = "VHOST_GET_FEATURES";
    if (step) {
        int err = errno;
        snprintf(why, why_len, "vhost-net: %s: %s", step, strerror(err));
        if (v->fd >= 0)
            close(v->fd);
        free(v);
        errno = err;
        return NULL;
    }
    return v;
}

uint64_t vhost_net_features(const struct vhost_net *v)
{
    return v->features;
}

static int set_mem_table(struct vhost_net *v, const struct guest_mem *mem)
{
    /* struct vhost_memory ends in a flexible array: room for it and the regions after it. */
    union {
        struct vhost_memory m;
        uint8_t room[sizeof(struct vhost_memory) +
                     GUEST_MEM_MAX_REGIONS * sizeof(struct vhost_memory_region)];
    } table;
    memset(&table, 0, sizeof(table));
    table.m.nregions = mem->nregions;
    for (unsigned i = 0; i < mem->nregions; i++) {
        table.m.regions[i].guest_phys_addr = mem->regions[i].gpa;
        table.m.regions[i].memory_size = mem->regions[i].size;
        table.m.regions[i].userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].host;
    }
    return ioctl(v->fd, VHOST_SET_MEM_TABLE, &table.m) < 0 ? -errno : 0;
}

/* Ring geometry, eventfds. Returns the failing step's name, or NULL. */
static const char *set_queue(struct vhost_net *v, unsigned index, const struct vhost_queue *q)
{
    struct vhost_vring_state num = {.index = index, .num = q->size};
    if (ioctl(v->fd, VHOST_SET_VRING_NUM, &num) < 0)
        return "VHOST_SET_VRING_NUM";
    struct vhost_vring_state base = {.index = index, .num = q->last_avail};
    if (ioctl(v->fd, VHOST_SET_VRING_BASE, &base) < 0)
        return "VHOST_SET_VRING_BASE";
    struct vhost_vring_addr addr = {
        .index = index,
        .desc_user_addr = (uint64_t)(uintptr_t)q->desc,
        .avail_user_addr = (uint64_t)(uintptr_t)q->avail,
        .used_user_addr = (uint64_t)(uintptr_t)q->used,
    };
    if (ioctl(v->fd, VHOST_SET_VRING_ADDR, &addr) < 0)
        return "VHOST_SET_VRING_ADDR";
    struct vhost_vring_file kick = {.index = index, .fd = q->kick_fd};
    if (ioctl(v->fd, VHOST_SET_VRING_KICK, &kick) < 0)
        return "VHOST_SET_VRING_KICK";
    struct vhost_vring_file call = {.index = index, .fd = q->call_fd};
    if (ioctl(v->fd, VHOST_SET_VRING_CALL, &call) < 0)
        return "VHOST_SET_VRING_CALL";
    return NULL;
}

int vhost_net_start(struct vhost_net *v, uint64_t features, const struct guest_mem *mem,
                    const struct vhost_queue q[2], int tap_fd, char *why, unsigned why_len)
{
    /* Without VHOST_NET_F_VIRTIO_NET_HDR the kernel leaves the virtio-net header to the tap
     * (its vnet header has the same layout), as the userspace path does. No dirty log: nothing
     * tracks guest memory for migration yet. */
    uint64_t f = features & v->features &
                 ~((1ULL << VHOST_NET_F_VIRTIO_NET_HDR) | (1ULL << VHOST_F_LOG_ALL));
    const char *step = NULL;
    int err = 0;
    if (ioctl(v->fd, VHOST_SET_FEATURES, &f) < 0)
        step = "VHOST_SET_FEATURES";
    else if ((err = set_mem_table(v, mem)) < 0)
        step = "VHOST_SET_MEM_TABLE";
    for (unsigned i = 0; i < 2 && !step; i++)
        step = set_queue(v, i, &q[i]);
    v->started = true; /* from here, a failure must unbind what was bound */
    for (unsigned i = 0; i < 2 && !step; i++) {
        struct vhost_vring_file backend = {.index = i, .fd = tap_fd};
        if (ioctl(v->fd, VHOST_NET_SET_BACKEND, &backend) < 0)
            step = "VHOST_NET_SET_BACKEND";
    }
    if (!step)
        return 0;
    err = err ? err : -errno;
    snprintf(why, why_len, "vhost-net: %s: %s", step, strerror(-err));
    vhost_net_stop(v);
    return err;
}

void vhost_net_stop(struct vhost_net *v)
{
    if (!v || !v->started)
        return;
    /* The backend first: detaching it waits for the worker, so no frame is half moved when the
     * rings are reset behind it. */
    for (unsigned i = 0; i < 2; i++) {
        struct vhost_vring_file off = {.index = i, .fd = VHOST_FILE_UNBIND};
        if (ioctl(v->fd, VHOST_NET_SET_BACKEND, &off) < 0)
            log_debug("vhost-net: detaching queue %u: %s", i, strerror(errno));
        ioctl(v->fd, VHOST_SET_VRING_KICK, &off);
        ioctl(v->fd, VHOST_SET_VRING_CALL, &off);
    }
    v->started = false;
}

void vhost_net_close(struct vhost_net *v)
{
    if (!v)
        return;
    vhost_net_stop(v);
    close(v->fd);
    free(v);
}
