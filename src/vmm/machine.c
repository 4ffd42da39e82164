#include "vmm/machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/debug_exit.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "util/err.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "vmm/event.h"
#include "vmm/vm.h"

/* virtio-pci functions sit at 00:01.0 upwards; their BARs are pre-assigned, one after the other,
 * at the start of the 32-bit MMIO window. */
#define MACHINE_VIRTIO_FIRST_SLOT 1
#define MACHINE_MAX_VIRTIO (MACHINE_MAX_DISKS + MACHINE_MAX_NICS + 2)

struct machine_devices {
    struct serial *com1;
    struct i8042 *i8042;
    struct rtc *rtc;
    struct pci_host *pci;
    struct acpi_pm *pm;
    struct debug_exit *debug_exit;
    struct pvpanic *pvpanic;
    int console_wake_fd;
    struct event_loop *io;  /* the I/O thread: virtqueue work and completions */
    struct virtio_dev *virtio[MACHINE_MAX_VIRTIO];
    struct virtio_pci *virtio_pci[MACHINE_MAX_VIRTIO];
    unsigned nvirtio;
    struct virtio_dev *vcon; /* hvc0 when --console virtio: console input goes there */
};

static void machine_set_irq(void *opaque, unsigned gsi, int level)
{
    vm_set_irq(opaque, gsi, level);
}

/* UART output goes straight to the console fd: a byte at a time from the guest's point of view,
 * and a full or closed console must not stall or kill the guest. */
static void machine_console_out(void *opaque, const uint8_t *buf, size_t len)
{
    struct vm *vm = opaque;
    int fd = vm->cfg.console_out_fd;
    while (fd >= 0 && len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void machine_console_rx_ready(void *opaque)
{
    struct vm *vm = opaque;
    uint64_t one = 1;
    if (write(vm->devices->console_wake_fd, &one, sizeof(one)) < 0)
        log_debug("console wake: %s", strerror(errno));
}

static int machine_build_acpi(struct vm *vm, char *why, unsigned why_len)
{
    struct acpi_config cfg = {
        .ncpus = vm->ncpus,
        .ecam_base = LAYOUT_ECAM_BASE,
        .mmio32_base = LAYOUT_MMIO32_BASE,
        .mmio32_size = LAYOUT_MMIO32_SIZE,
        .mmio64_base = ALIGN_UP(MAX(guest_mem_high_end(&vm->mem), LAYOUT_HIGH_RAM_BASE),
                                1ULL << 30),
        .mmio64_size = LAYOUT_MMIO64_SIZE,
    };
    uint8_t *buf = gpa_ptr(&vm->mem, LAYOUT_ACPI_BASE, LAYOUT_ACPI_SIZE);
    int rc = acpi_build(&cfg, buf, LAYOUT_ACPI_SIZE, LAYOUT_ACPI_BASE);
    if (rc < 0)
        snprintf(why, why_len, "cannot build ACPI tables: %s", strerror(-rc));
    return rc < 0 ? rc : 0;
}

/* Wrap dev in a virtio-pci function at the next slot and BAR. Takes ownership of dev. */
static int machine_add_virtio(struct vm *vm, struct virtio_dev *dev, char *why, unsigned why_len)
{
    struct machine_devices *d = vm->devices;
    if (d->nvirtio >= MACHINE_MAX_VIRTIO) {
        dev->ops->destroy(dev);
        snprintf(why, why_len, "too many virtio devices");
        return -ENOSPC;
    }
    unsigned i = d->nvirtio;
    uint64_t bar = LAYOUT_MMIO32_BASE + (uint64_t)i * VIRTIO_PCI_BAR_SIZE;
    d->virtio[i] = dev;
    d->nvirtio++;
    struct virtio_pci *t = virtio_pci_create(dev, vm, d->io, bar);
    if (!t) {
        int err = errno;
        snprintf(why, why_len, "cannot create %s: %s", dev->name, strerror(err));
        return -err;
    }
    d->virtio_pci[i] = t;
    int rc = virtio_pci_attach(t, d->pci, &vm->mmio, MACHINE_VIRTIO_FIRST_SLOT + i);
    if (rc < 0)
        snprintf(why, why_len, "cannot attach %s: %s", dev->name, strerror(-rc));
    return rc;
}

static int machine_create_virtio(struct vm *vm, char *why, unsigned why_len)
{
    struct machine_devices *d = vm->devices;
    const struct machine_io_config *io = vm->cfg.io;
    d->io = event_loop_create("vireo-io");
    if (!d->io) {
        int err = errno;
        snprintf(why, why_len, "cannot create the I/O thread: %s", strerror(err));
        return -err;
    }
    int rc;
    for (unsigned i = 0; io && i < io->ndisks; i++) {
        const struct machine_disk *md = &io->disks[i];
        struct virtio_blk_options bo = {
            .path = md->path, .format = md->format, .serial = md->serial,
            .read_only = md->read_only, .cache_none = md->cache_none,
            .num_queues = vm->ncpus,
        };
        struct virtio_dev *dev = virtio_blk_create(&vm->mem, d->io, &bo, why, why_len);
        if (!dev)
            return -EINVAL; /* the user's disk or option is at fault; why says which */
        if ((rc = machine_add_virtio(vm, dev, why, why_len)) < 0)
            return rc;
    }
    for (unsigned i = 0; io && i < io->nnics; i++) {
        const struct machine_nic *nic = &io->nics[i];
        uint8_t mac[6];
        if (nic->mac_set)
            memcpy(mac, nic->mac, 6);
        else
            virtio_net_default_mac(vm->cfg.name, i, mac);
        struct virtio_dev *dev = virtio_net_create(&vm->mem, d->io, nic->ifname, mac, why,
                                                   why_len);
        if (!dev)
            return errno == EINVAL ? -EINVAL : -errno;
        if (nic->vhost != MACHINE_VHOST_OFF &&
            (rc = virtio_net_use_vhost(dev, why, why_len)) < 0) {
            if (nic->vhost == MACHINE_VHOST_ON) {
                char reason[160];
                snprintf(reason, sizeof(reason), "%s", why);
                snprintf(why, why_len, "--net tap=%s,vhost=on: %s", nic->ifname, reason);
                dev->ops->destroy(dev);
                return -EINVAL; /* the user asked for it, and this host cannot */
            }
            log_debug("--net tap=%s: %s; frames move in userspace", nic->ifname, why);
        }
        if ((rc = machine_add_virtio(vm, dev, why, why_len)) < 0)
            return rc;
    }
    if (io && io->virtio_console) {
        struct virtio_console_config cc = {machine_console_out, machine_console_rx_ready, vm};
        struct virtio_dev *dev = virtio_console_create(&vm->mem, &cc);
        if (!dev) {
            snprintf(why, why_len, "cannot create virtio-console: out of memory");
            return -ENOMEM;
        }
        if ((rc = machine_add_virtio(vm, dev, why, why_len)) < 0)
            return rc;
        d->vcon = dev;
    }
    if (!io || !io->no_rng) {
        struct virtio_dev *dev = virtio_rng_create(&vm->mem);
        if (!dev) {
            snprintf(why, why_len, "cannot create virtio-rng: out of memory");
            return -ENOMEM;
        }
        if ((rc = machine_add_virtio(vm, dev, why, why_len)) < 0)
            return rc;
    }
    rc = event_loop_start(d->io);
    if (rc < 0)
        snprintf(why, why_len, "cannot start the I/O thread: %s", strerror(-rc));
    return rc;
}

#define ATTACH(expr, what)                                                                         \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) {                                                                             \
            snprintf(why, why_len, "cannot attach %s: %s", what, strerror(-rc_));                 \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

int machine_create(struct vm *vm, char *why, unsigned why_len)
{
    struct machine_devices *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    vm->devices = d;
    d->console_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct serial_config scfg = {
        .irq = {machine_set_irq, vm, IRQ_COM1},
        .out = machine_console_out,
        .rx_ready = machine_console_rx_ready,
        .opaque = vm,
    };
    d->com1 = serial_create(&scfg);
    d->i8042 = i8042_create(&vm->power);
    d->rtc = rtc_create(NULL);
    d->pci = pci_host_create();
    struct acpi_pm_config pmcfg = {.sci = {machine_set_irq, vm, IRQ_SCI}, .power = vm->power};
    d->pm = acpi_pm_create(&pmcfg);
    d->pvpanic = pvpanic_create(&vm->power);
    if (vm->cfg.debug_exit)
        d->debug_exit = debug_exit_create(&vm->power);
    if (d->console_wake_fd < 0 || !d->com1 || !d->i8042 || !d->rtc || !d->pci || !d->pm ||
        !d->pvpanic || (vm->cfg.debug_exit && !d->debug_exit)) {
        snprintf(why, why_len, "cannot create the platform devices: out of memory");
        return -ENOMEM;
    }
    ATTACH(serial_attach(d->com1, &vm->pio, PORT_COM1), "COM1");
    ATTACH(i8042_attach(d->i8042, &vm->pio), "i8042");
    ATTACH(rtc_attach(d->rtc, &vm->pio), "RTC");
    ATTACH(pci_host_attach(d->pci, &vm->pio, &vm->mmio), "PCI host");
    ATTACH(acpi_pm_attach(d->pm, &vm->pio), "ACPI PM");
    ATTACH(pvpanic_attach(d->pvpanic, &vm->pio), "pvpanic");
    if (d->debug_exit)
        ATTACH(debug_exit_attach(d->debug_exit, &vm->pio), "debug-exit");
    int rc = machine_create_virtio(vm, why, why_len);
    if (rc < 0)
        return rc;
    return machine_build_acpi(vm, why, why_len);
}

void machine_reset(struct vm *vm)
{
    struct machine_devices *d = vm->devices;
    serial_reset(d->com1);
    i8042_reset(d->i8042);
    acpi_pm_reset(d->pm);
    pci_host_reset(d->pci);
}

void machine_destroy(struct vm *vm)
{
    struct machine_devices *d = vm->devices;
    if (!d)
        return;
    /* The I/O thread goes first: nothing may touch a device while it is freed. */
    event_loop_stop(d->io);
    for (unsigned i = 0; i < d->nvirtio; i++) {
        virtio_pci_destroy(d->virtio_pci[i]);
        if (d->virtio[i])
            d->virtio[i]->ops->destroy(d->virtio[i]);
    }
    event_loop_destroy(d->io);
    if (d->debug_exit)
        debug_exit_destroy(d->debug_exit);
    if (d->pvpanic)
        pvpanic_destroy(d->pvpanic);
    if (d->pm)
        acpi_pm_destroy(d->pm);
    if (d->pci)
        pci_host_destroy(d->pci);
    if (d->rtc)
        rtc_destroy(d->rtc);
    if (d->i8042)
        i8042_destroy(d->i8042);
    if (d->com1)
        serial_destroy(d->com1);
    if (d->console_wake_fd >= 0)
        close(d->console_wake_fd);
    free(d);
    vm->devices = NULL;
}

void machine_io_pause(struct vm *vm)
{
    if (vm->devices)
        event_loop_stop(vm->devices->io);
}

int machine_io_resume(struct vm *vm)
{
    return vm->devices && vm->devices->io ? event_loop_start(vm->devices->io) : 0;
}

size_t machine_console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
    if (vm->devices->vcon)
        return virtio_console_input(vm->devices->vcon, buf, len);
    return serial_receive(vm->devices->com1, buf, len);
}

int machine_console_wake_fd(struct vm *vm)
{
    return vm->devices->console_wake_fd;
}
