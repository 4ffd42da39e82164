#include "devices/debug_exit.h"

#include <stdlib.h>

#include "arch/x86/layout.h"

static uint64_t debug_exit_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque;
    (void)offset;
    return size >= 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
}

static void debug_exit_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct debug_exit *dev = opaque;
    /* Whichever of the four ports is written and at whatever width, the value written is the
     * status. The device keeps no state, so it needs no lock. */
    (void)offset;
    (void)size;
    power_request(&dev->power, POWER_EXIT_STATUS, (int)(data & 0xff));
}

const struct bus_dev_ops debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
};

struct debug_exit *debug_exit_create(const struct power_ctl *power)
{
    struct debug_exit *dev = calloc(1, sizeof(*dev));
    if (!dev)
        return NULL;
    if (power)
        dev->power = *power;
    return dev;
}

void debug_exit_destroy(struct debug_exit *dev)
{
    free(dev);
}

int debug_exit_attach(struct debug_exit *dev, struct bus *pio)
{
    return bus_register(pio, PORT_DEBUG_EXIT, DEBUG_EXIT_NR_PORTS, &debug_exit_ops, dev,
                        "debug-exit");
}
