#include "devices/pvpanic.h"

#include <stdlib.h>

#include "arch/x86/layout.h"

static uint64_t pvpanic_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque;
    (void)offset;
    (void)size;
    return PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pvpanic *dev = opaque;
    (void)offset;
    (void)size;
    /* CRASH_LOADED alone means a kdump kernel is about to run: the guest carries on. */
    if (data & PVPANIC_PANICKED)
        power_request(&dev->power, POWER_PANIC, 1);
}

const struct bus_dev_ops pvpanic_ops = {.read = pvpanic_read, .write = pvpanic_write};

struct pvpanic *pvpanic_create(const struct power_ctl *power)
{
    struct pvpanic *dev = calloc(1, sizeof(*dev));
    if (dev)
        dev->power = *power;
    return dev;
}

void pvpanic_destroy(struct pvpanic *dev)
{
    free(dev);
}

int pvpanic_attach(struct pvpanic *dev, struct bus *pio)
{
    return bus_register(pio, PORT_PVPANIC, 1, &pvpanic_ops, dev, "pvpanic");
}
