#include "devices/bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_dev_ops *ops,
                 void *opaque, const char *name)
{
    if (len == 0 || base + len < base)
        return -EINVAL;
    if (bus->count == BUS_MAX_RANGES)
        return -ENOSPC;
    unsigned pos = 0;
    while (pos < bus->count && bus->ranges[pos].base < base)
        pos++;
    if (pos > 0) {
        const struct bus_range *prev = &bus->ranges[pos - 1];
        if (prev->base + prev->len > base)
            return -EEXIST;
    }
    if (pos < bus->count && base + len > bus->ranges[pos].base)
        return -EEXIST;
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
            (bus->count - pos) * sizeof(bus->ranges[0]));
    bus->ranges[pos] = (struct bus_range){base, len, ops, opaque, name};
    bus->count++;
    return 0;
}

static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, unsigned size)
{
    unsigned lo = 0, hi = bus->count;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->len)
            lo = mid + 1;
        else
            /* An access straddling the end of a device is not decoded by it. */
            return addr - r->base + size <= r->len ? r : NULL;
    }
    return NULL;
}

bool bus_read(struct bus *bus, uint64_t addr, unsigned size, uint64_t *data)
{
    const struct bus_range *r = bus_find(bus, addr, size);
    if (!r || !r->ops->read) {
        *data = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
        return r != NULL;
    }
    *data = r->ops->read(r->opaque, addr - r->base, size);
    return true;
}

bool bus_write(struct bus *bus, uint64_t addr, unsigned size, uint64_t data)
{
    const struct bus_range *r = bus_find(bus, addr, size);
    if (!r)
        return false;
    if (r->ops->write)
        r->ops->write(r->opaque, addr - r->base, data, size);
    return true;
}
