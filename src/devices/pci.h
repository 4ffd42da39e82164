/* The PCI host: configuration mechanism #1 (PORT_PCI_CONFIG_ADDR/DATA) and ECAM
 * (LAYOUT_ECAM_BASE, 1 MiB per bus, 4 KiB per function) in front of one root bus, bus 0. The
 * host bridge sits at 00:00.0; other functions (virtio-pci devices) register with
 * pci_host_register(). Functions that do not exist read all ones; their writes are dropped.
 *
 * A function is a 4 KiB configuration space with two masks per byte: which bits the guest may
 * write, and which are write-1-to-clear. Everything else is read-only. BAR sizing needs no code:
 * a BAR's write mask is ~(size - 1), so writing all ones reads back the size. */
#ifndef VIREO_DEVICES_PCI_H
#define VIREO_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

#define PCI_CONFIG_SIZE        4096 /* PCIe extended space, reachable through ECAM */
#define PCI_CONFIG_LEGACY_SIZE 256  /* what mechanism #1 reaches */
#define PCI_MAX_DEVFN          256  /* 32 devices x 8 functions on bus 0 */
#define PCI_DEVFN(dev, fn)     ((((dev) & 0x1f) << 3) | ((fn) & 7))
#define PCI_ECAM_BUS_SIZE      (1u << 20)

#define PCI_CONFIG_ADDR_ENABLE 0x80000000u

/* Type 0 header. */
#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define PCI_STATUS          0x06
#define PCI_REVISION_ID     0x08
#define PCI_CLASS_PROG      0x09 /* class code: prog-if, subclass, class at 0x09..0x0b */
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER   0x0d
#define PCI_HEADER_TYPE     0x0e
#define PCI_BAR0            0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID    0x2e
#define PCI_ROM_ADDRESS     0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE  0x3c
#define PCI_INTERRUPT_PIN   0x3d
#define PCI_CAP_START       0x40 /* first byte after the type 0 header */

#define PCI_HEADER_TYPE_MULTIFUNCTION 0x80

#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_PARITY       0x0040
#define PCI_COMMAND_SERR         0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400

#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST  0x0010
#define PCI_STATUS_ERRORS    0xf900 /* the write-1-to-clear error bits */

#define PCI_BAR_COUNT        6
#define PCI_BAR_IO           0x1
#define PCI_BAR_MEM_64       0x4
#define PCI_BAR_PREFETCH     0x8

/* The host bridge's identity: the generic PCIe host bridge ID Linux applies no quirks to. */
#define PCI_HOST_BRIDGE_VENDOR 0x1b36
#define PCI_HOST_BRIDGE_DEVICE 0x0008
#define PCI_CLASS_HOST_BRIDGE  0x060000

struct pci_function {
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE];   /* bits the guest may write */
    uint8_t w1cmask[PCI_CONFIG_SIZE]; /* bits the guest clears by writing 1 */
    /* Optional hooks, both called with the PCI host's lock held: they may take the device's
     * own lock but must not call back into pci_host_*. config_read may replace the value about
     * to be returned (for registers that mirror live state); config_write runs after a write
     * has landed in config[] (to act on COMMAND or BAR changes). off is aligned to size. */
    uint32_t (*config_read)(struct pci_function *fn, unsigned off, unsigned size, uint32_t val);
    void (*config_write)(struct pci_function *fn, unsigned off, unsigned size, uint32_t val);
    /* Optional: called (lock held) by pci_host_reset() after the header's guest-writable bits
     * were cleared, to put device-specific registers and capabilities back. */
    void (*reset)(struct pci_function *fn);
    void *opaque;
    uint8_t next_cap; /* where pci_function_add_cap() places the next capability */
};

/* Host state. config_addr is the guest's 0xCF8 register and, with the functions' config[],
 * all a snapshot needs. */
struct pci_host {
    pthread_mutex_t lock;
    uint32_t config_addr;
    struct pci_function *fns[PCI_MAX_DEVFN]; /* bus 0, by devfn */
    struct pci_function bridge;              /* 00:00.0 */
};

/* Fill fn with an empty type 0 header: the IDs and class code given, the usual writable fields
 * (COMMAND's enables, cache line size, latency timer, interrupt line), STATUS's error bits as
 * write-1-to-clear, no BARs, no capabilities, no hooks. */
void pci_function_init(struct pci_function *fn, uint16_t vendor, uint16_t device,
                       uint32_t class_code, uint8_t revision);
/* Declare BAR idx of size bytes (a power of two; at least 16 for memory, 4 for I/O). flags is
 * PCI_BAR_IO, or a memory BAR optionally PCI_BAR_MEM_64 (which also takes idx + 1) and/or
 * PCI_BAR_PREFETCH. Returns 0 or -EINVAL. */
int pci_function_set_bar(struct pci_function *fn, unsigned idx, uint64_t size, unsigned flags);
/* The address the guest programmed into BAR idx (flag bits stripped; 64 bits for a 64-bit BAR). */
uint64_t pci_function_bar_addr(const struct pci_function *fn, unsigned idx);
/* Append a capability of len bytes (header included) with the given ID to fn's list in the
 * legacy space, and return its offset; the caller fills the body (and its write mask).
 * Returns -ENOSPC when it does not fit. */
int pci_function_add_cap(struct pci_function *fn, uint8_t cap_id, unsigned len);

/* Allocate the host with the bridge at 00:00.0. Returns NULL with errno set. */
struct pci_host *pci_host_create(void);
/* Free the host (not the functions registered with it). It must no longer be on any bus. */
void pci_host_destroy(struct pci_host *host);
/* Register mechanism #1 on pio (PORT_PCI_CONFIG_ADDR, 8 ports) and ECAM on mmio
 * (LAYOUT_ECAM_BASE, LAYOUT_ECAM_SIZE). mmio may be NULL. Returns 0 or -errno. */
int pci_host_attach(struct pci_host *host, struct bus *pio, struct bus *mmio);
/* Guest reset: the address register is cleared, and every function's header loses what the
 * guest wrote (COMMAND, BARs, interrupt line...) and its error status bits, as after RST#;
 * then each function's reset hook runs. */
void pci_host_reset(struct pci_host *host);
/* Place fn at 00:dev.func. fn must stay valid while the host lives. Keeps the multi-function
 * bit of the device's function 0 consistent. Returns -EINVAL for a bad slot, -EEXIST when it
 * is taken. */
int pci_host_register(struct pci_host *host, unsigned dev, unsigned func,
                      struct pci_function *fn);
/* Configuration access by address, as the two mechanisms do it (tests and firmware-like
 * callers). off must be aligned to size (1, 2 or 4); anything else reads all ones. */
uint32_t pci_host_config_read(struct pci_host *host, unsigned bus, unsigned devfn, unsigned off,
                              unsigned size);
void pci_host_config_write(struct pci_host *host, unsigned bus, unsigned devfn, unsigned off,
                           unsigned size, uint32_t val);

/* Bus handlers: mechanism #1 (offset 0: address register, 4..7: data) and ECAM. */
extern const struct bus_dev_ops pci_host_pio_ops;
extern const struct bus_dev_ops pci_host_ecam_ops;

#endif
