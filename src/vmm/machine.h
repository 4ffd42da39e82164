/* The platform around the CPUs: which devices a Vireo x86 machine has, where, and the ACPI
 * tables that describe them. Built once per run; survives guest resets. */
#ifndef VIREO_VMM_MACHINE_H
#define VIREO_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

/* The paravirtual (virtio-pci) devices of a machine. */
#define MACHINE_MAX_DISKS 8
#define MACHINE_MAX_NICS 4

struct machine_disk {
    const char *path;
    const char *format;  /* "raw", "qcow2" or NULL to probe */
    const char *serial;  /* NULL: none */
    bool read_only;
    bool cache_none;     /* cache=none: O_DIRECT, bypassing the host page cache */
};

struct machine_nic {
    const char *ifname;  /* tap interface */
    uint8_t mac[6];
    bool mac_set;        /* false: derived from the VM name and the NIC's index */
    enum machine_vhost { MACHINE_VHOST_AUTO, MACHINE_VHOST_ON, MACHINE_VHOST_OFF } vhost;
};

struct machine_io_config {
    struct machine_disk disks[MACHINE_MAX_DISKS];
    unsigned ndisks;
    struct machine_nic nics[MACHINE_MAX_NICS];
    unsigned nnics;
    bool no_rng;          /* virtio-rng is on unless this is set */
    bool virtio_console;  /* a virtio-console (hvc0) wired to the console output */
};

/* Create and attach the devices, write the ACPI tables. Returns 0 or -errno with `why`. */
int machine_create(struct vm *vm, char *why, unsigned why_len);
/* Put devices in their power-on state for a guest reset (battery-backed CMOS stays). */
void machine_reset(struct vm *vm);
void machine_destroy(struct vm *vm);
/* Stop / restart the I/O thread. A reboot should stop it before the accelerator's VM is torn
 * down and restart it after the new one is built, so that no device completion reaches for the
 * old accelerator state in between. */
void machine_io_pause(struct vm *vm);
int machine_io_resume(struct vm *vm);

/* Offer console input to the guest's UART (or to hvc0 with a virtio console); returns how many
 * bytes it took. */
size_t machine_console_input(struct vm *vm, const uint8_t *buf, size_t len);
/* The fd that becomes readable when the UART has room again after refusing input. */
int machine_console_wake_fd(struct vm *vm);

#endif
