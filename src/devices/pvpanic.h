/* pvpanic: a one-byte I/O port through which a guest kernel reports that it panicked (the
 * device QEMU defined and Linux's pvpanic driver speaks). Reads tell which events the host
 * understands; a write with the PANICKED bit ends the run as a guest failure. */
#ifndef VIREO_DEVICES_PVPANIC_H
#define VIREO_DEVICES_PVPANIC_H

#include "devices/bus.h"
#include "devices/platform.h"

#define PVPANIC_PANICKED (1u << 0)
#define PVPANIC_CRASH_LOADED (1u << 1) /* a crash kernel takes over: not a failure yet */

struct pvpanic {
    struct power_ctl power;
};

/* Returns NULL with errno set. */
struct pvpanic *pvpanic_create(const struct power_ctl *power);
void pvpanic_destroy(struct pvpanic *dev);
/* Register the port at PORT_PVPANIC. Returns 0 or -errno. */
int pvpanic_attach(struct pvpanic *dev, struct bus *pio);

extern const struct bus_dev_ops pvpanic_ops;

#endif
