/* The modern virtio-pci transport (virtio 1.x, section 4.1): a PCI function with vendor 0x1af4
 * and device 0x1040 + type (non-transitional), one 32-bit memory BAR holding the common, ISR,
 * device-config and notify regions plus the MSI-X table and PBA, and the vendor capabilities
 * (including the PCI configuration access window) that point into it.
 *
 * Fast paths through the accelerator when it has them: queue notifications arrive on an
 * ioeventfd, MSI-X vectors are MSI routes fed by irqfds. Without them the vCPU's MMIO write
 * signals the same eventfd and interrupts go through signal_msi. Queue work always runs on the
 * I/O thread. */
#ifndef VIREO_VIRTIO_PCI_H
#define VIREO_VIRTIO_PCI_H

#include <stdint.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "virtio/virtio.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_BAR_SIZE 0x8000u

/* BAR0 layout. */
#define VIRTIO_PCI_COMMON_OFF 0x0000u
#define VIRTIO_PCI_ISR_OFF 0x1000u
#define VIRTIO_PCI_DEVICE_OFF 0x2000u
#define VIRTIO_PCI_NOTIFY_OFF 0x3000u
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000u
#define VIRTIO_PCI_MSIX_PBA_OFF 0x5000u
#define VIRTIO_PCI_REGION_SIZE 0x1000u
#define VIRTIO_PCI_NOTIFY_MULT 4u

/* Common configuration registers (struct virtio_pci_common_cfg). */
#define VIRTIO_PCI_DFSELECT 0x00
#define VIRTIO_PCI_DF 0x04
#define VIRTIO_PCI_GFSELECT 0x08
#define VIRTIO_PCI_GF 0x0c
#define VIRTIO_PCI_MSIX_CONFIG 0x10
#define VIRTIO_PCI_NUM_QUEUES 0x12
#define VIRTIO_PCI_STATUS 0x14
#define VIRTIO_PCI_CFG_GENERATION 0x15
#define VIRTIO_PCI_Q_SELECT 0x16
#define VIRTIO_PCI_Q_SIZE 0x18
#define VIRTIO_PCI_Q_MSIX 0x1a
#define VIRTIO_PCI_Q_ENABLE 0x1c
#define VIRTIO_PCI_Q_NOFF 0x1e
#define VIRTIO_PCI_Q_DESCLO 0x20
#define VIRTIO_PCI_Q_DESCHI 0x24
#define VIRTIO_PCI_Q_AVAILLO 0x28
#define VIRTIO_PCI_Q_AVAILHI 0x2c
#define VIRTIO_PCI_Q_USEDLO 0x30
#define VIRTIO_PCI_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_LEN 0x38

/* Capability types (cfg_type). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

#define VIRTIO_PCI_NO_VECTOR 0xffff
#define VIRTIO_PCI_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1)

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

struct vm;
struct virtio_pci;

/* Wrap dev in a PCI function whose BAR0 is pre-assigned at bar_addr (as firmware would; the
 * guest may keep it) in the 32-bit MMIO window. vm gives the accelerator (its fast paths are
 * optional); loop is the I/O thread that serves queue kicks. Returns NULL with errno set. */
struct virtio_pci *virtio_pci_create(struct virtio_dev *dev, struct vm *vm,
                                     struct event_loop *loop, uint64_t bar_addr);
/* Place the function at 00:slot.0 of host and its BAR on mmio. Returns 0 or -errno. */
int virtio_pci_attach(struct virtio_pci *t, struct pci_host *host, struct bus *mmio,
                      unsigned slot);
/* Free the transport and its eventfds (the I/O thread must be stopped). Not the device. */
void virtio_pci_destroy(struct virtio_pci *t);
/* The device behind the transport, and the PCI function (tests). */
struct virtio_dev *virtio_pci_device(struct virtio_pci *t);
struct pci_function *virtio_pci_function(struct virtio_pci *t);

/* BAR0 access as a vCPU makes it (bus handlers; exported for tests). */
extern const struct bus_dev_ops virtio_pci_bar_ops;

#endif
