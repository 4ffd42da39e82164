/* The device bus: the port-I/O and MMIO address spaces that vCPU exits are dispatched into.
 * Both accelerators deliver exits here, so every platform device works the same on KVM and on the
 * software CPU. Registration happens at machine build time (single-threaded); lookups are
 * lock-free afterwards, and each device serialises its own state. */
#ifndef VIREO_DEVICES_BUS_H
#define VIREO_DEVICES_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_dev_ops {
    /* offset is relative to the registered base; size is 1, 2, 4 or 8. Reads fill *data
     * (unimplemented registers read as all ones, like an open bus). */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, uint64_t data, unsigned size);
};

struct bus_range {
    uint64_t base, len;
    const struct bus_dev_ops *ops;
    void *opaque;
    const char *name;
};

#define BUS_MAX_RANGES 64

struct bus {
    const char *name;   /* "pio" or "mmio", for messages */
    unsigned count;
    struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base, non-overlapping */
};

/* Initialise an empty bus. */
void bus_init(struct bus *bus, const char *name);
/* Claim [base, base+len) for a device. Returns -EEXIST on overlap, -ENOSPC when full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_dev_ops *ops,
                 void *opaque, const char *name);
/* Dispatch an access. Returns false when nothing is mapped there: reads then yield all ones and
 * writes are dropped, as on real hardware; the caller may log it (rate-limited). */
bool bus_read(struct bus *bus, uint64_t addr, unsigned size, uint64_t *data);
bool bus_write(struct bus *bus, uint64_t addr, unsigned size, uint64_t data);

#endif
