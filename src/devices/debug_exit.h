/* debug-exit: the I/O port through which a test guest ends the run with a status of its choice,
 * at the port QEMU's isa-debug-exit uses for kvm-unit-tests (PORT_DEBUG_EXIT, 4 bytes wide).
 * Unlike QEMU, the run's exit status is the value written itself (masked to 0..255), not
 * (value << 1) | 1. */
#ifndef VIREO_DEVICES_DEBUG_EXIT_H
#define VIREO_DEVICES_DEBUG_EXIT_H

#include "devices/bus.h"
#include "devices/platform.h"

#define DEBUG_EXIT_NR_PORTS 4

struct debug_exit {
    struct power_ctl power;
};

/* Allocate the device; writes are reported through power. Returns NULL with errno set. */
struct debug_exit *debug_exit_create(const struct power_ctl *power);
/* Free it; it must no longer be reachable from a bus. */
void debug_exit_destroy(struct debug_exit *dev);
/* Register its ports at PORT_DEBUG_EXIT. Returns 0 or -errno. */
int debug_exit_attach(struct debug_exit *dev, struct bus *pio);

/* The port-I/O handlers (opaque is the struct debug_exit). Reads return all ones. */
extern const struct bus_dev_ops debug_exit_ops;

#endif
