#include "devices/pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "util/err.h"

static uint32_t pci_ones(unsigned size)
{
    return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static void pci_set16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void pci_set32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t pci_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void pci_function_init(struct pci_function *fn, uint16_t vendor, uint16_t device,
                       uint32_t class_code, uint8_t revision)
{
    memset(fn, 0, sizeof(*fn));
    pci_set16(&fn->config[PCI_VENDOR_ID], vendor);
    pci_set16(&fn->config[PCI_DEVICE_ID], device);
    fn->config[PCI_REVISION_ID] = revision;
    fn->config[PCI_CLASS_PROG] = (uint8_t)class_code;
    fn->config[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
    fn->config[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
    fn->config[PCI_HEADER_TYPE] = 0;

    pci_set16(&fn->wmask[PCI_COMMAND], PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                           PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                           PCI_COMMAND_INTX_DISABLE);
    pci_set16(&fn->w1cmask[PCI_STATUS], PCI_STATUS_ERRORS);
    fn->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    fn->wmask[PCI_LATENCY_TIMER] = 0xff;
    fn->wmask[PCI_INTERRUPT_LINE] = 0xff; /* scratch for the OS: the IRQ it routed */
    fn->next_cap = PCI_CAP_START;
}

static bool pci_is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

int pci_function_set_bar(struct pci_function *fn, unsigned idx, uint64_t size, unsigned flags)
{
    bool io = flags & PCI_BAR_IO, is64 = !io && (flags & PCI_BAR_MEM_64);
    if (idx >= PCI_BAR_COUNT || (is64 && idx + 1 >= PCI_BAR_COUNT) || !pci_is_pow2(size))
        return -EINVAL;
    if (io ? (size < 4 || size > 0x10000 || (flags & ~PCI_BAR_IO))
           : (size < 16 || (!is64 && size > 0x80000000ULL) ||
              (flags & ~(PCI_BAR_MEM_64 | PCI_BAR_PREFETCH))))
        return -EINVAL;

    unsigned off = PCI_BAR0 + 4 * idx;
    uint64_t mask = ~(size - 1) & (io ? ~0x3ULL : ~0xfULL);
    pci_set32(&fn->config[off], (uint32_t)flags);
    pci_set32(&fn->wmask[off], (uint32_t)mask);
    if (is64) {
        pci_set32(&fn->config[off + 4], 0);
        pci_set32(&fn->wmask[off + 4], (uint32_t)(mask >> 32));
    }
    return 0;
}

uint64_t pci_function_bar_addr(const struct pci_function *fn, unsigned idx)
{
    if (idx >= PCI_BAR_COUNT)
        return 0;
    unsigned off = PCI_BAR0 + 4 * idx;
    uint32_t lo = pci_get32(&fn->config[off]);
    if (lo & PCI_BAR_IO)
        return lo & ~0x3u;
    uint64_t addr = lo & ~0xfu;
    if ((lo & PCI_BAR_MEM_64) && idx + 1 < PCI_BAR_COUNT)
        addr |= (uint64_t)pci_get32(&fn->config[off + 4]) << 32;
    return addr;
}

int pci_function_add_cap(struct pci_function *fn, uint8_t cap_id, unsigned len)
{
    unsigned off = fn->next_cap;
    if (len < 2 || off < PCI_CAP_START || off + len > PCI_CONFIG_LEGACY_SIZE)
        return -ENOSPC;
    fn->config[off] = cap_id;
    fn->config[off + 1] = 0;
    /* Link it at the end of the list, so capabilities appear in the order they were added. */
    uint8_t *link = &fn->config[PCI_CAPABILITY_LIST];
    while (*link)
        link = &fn->config[*link + 1];
    *link = (uint8_t)off;
    fn->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    unsigned next = ALIGN_UP(off + len, 4u);
    fn->next_cap = next < PCI_CONFIG_LEGACY_SIZE ? (uint8_t)next : 0; /* 0: full */
    return (int)off;
}

/* Host side. Every access below runs with host->lock held. */

static struct pci_function *pci_host_lookup(struct pci_host *host, unsigned bus, unsigned devfn)
{
    /* Only the root bus exists; no bridges lead anywhere else. */
    if (bus != 0 || devfn >= PCI_MAX_DEVFN)
        return NULL;
    return host->fns[devfn];
}

static bool pci_access_ok(unsigned off, unsigned size)
{
    return (size == 1 || size == 2 || size == 4) && !(off & (size - 1)) &&
           off + size <= PCI_CONFIG_SIZE;
}

static uint32_t pci_config_read_locked(struct pci_host *host, unsigned bus, unsigned devfn,
                                       unsigned off, unsigned size)
{
    struct pci_function *fn = pci_host_lookup(host, bus, devfn);
    if (!fn || !pci_access_ok(off, size))
        return pci_ones(size);
    uint32_t val = 0;
    for (unsigned i = 0; i < size; i++)
        val |= (uint32_t)fn->config[off + i] << (8 * i);
    if (fn->config_read)
        val = fn->config_read(fn, off, size, val) & pci_ones(size);
    return val;
}

static void pci_config_write_locked(struct pci_host *host, unsigned bus, unsigned devfn,
                                    unsigned off, unsigned size, uint32_t val)
{
    struct pci_function *fn = pci_host_lookup(host, bus, devfn);
    if (!fn || !pci_access_ok(off, size))
        return;
    for (unsigned i = 0; i < size; i++) {
        uint8_t byte = (uint8_t)(val >> (8 * i)), w = fn->wmask[off + i];
        uint8_t cfg = (uint8_t)((fn->config[off + i] & ~w) | (byte & w));
        fn->config[off + i] = (uint8_t)(cfg & ~(byte & fn->w1cmask[off + i]));
    }
    if (fn->config_write)
        fn->config_write(fn, off, size, val & pci_ones(size));
}

uint32_t pci_host_config_read(struct pci_host *host, unsigned bus, unsigned devfn, unsigned off,
                              unsigned size)
{
    pthread_mutex_lock(&host->lock);
    uint32_t val = pci_config_read_locked(host, bus, devfn, off, size);
    pthread_mutex_unlock(&host->lock);
    return val;
}

void pci_host_config_write(struct pci_host *host, unsigned bus, unsigned devfn, unsigned off,
                           unsigned size, uint32_t val)
{
    pthread_mutex_lock(&host->lock);
    pci_config_write_locked(host, bus, devfn, off, size, val);
    pthread_mutex_unlock(&host->lock);
}

/* Mechanism #1. The address register only answers 32-bit accesses; narrower ones at
 * 0xCF8..0xCFB are not config cycles (on PCs 0xCF9 is a chipset reset register, not modelled). */

#define PCI_PIO_DATA 4

static uint64_t pci_host_pio_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_host *host = opaque;
    uint32_t val = pci_ones(size);

    pthread_mutex_lock(&host->lock);
    if (offset == 0 && size == 4) {
        val = host->config_addr;
    } else if (offset >= PCI_PIO_DATA && size <= 4) {
        uint32_t addr = host->config_addr;
        if (addr & PCI_CONFIG_ADDR_ENABLE)
            val = pci_config_read_locked(host, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
                                         (addr & 0xfc) + (unsigned)(offset - PCI_PIO_DATA), size);
    }
    pthread_mutex_unlock(&host->lock);
    return val;
}

static void pci_host_pio_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pci_host *host = opaque;

    pthread_mutex_lock(&host->lock);
    if (offset == 0 && size == 4) {
        /* Bits 30..24 are reserved and bits 1..0 select type 0/1 cycles: keep neither. */
        host->config_addr = (uint32_t)data & (PCI_CONFIG_ADDR_ENABLE | 0x00fffffcu);
    } else if (offset >= PCI_PIO_DATA && size <= 4) {
        uint32_t addr = host->config_addr;
        if (addr & PCI_CONFIG_ADDR_ENABLE)
            pci_config_write_locked(host, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
                                    (addr & 0xfc) + (unsigned)(offset - PCI_PIO_DATA), size,
                                    (uint32_t)data);
    }
    pthread_mutex_unlock(&host->lock);
}

/* ECAM: offset = bus << 20 | device << 15 | function << 12 | register. A 64-bit access is two
 * dword accesses, low half first. */

static uint64_t pci_host_ecam_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_host *host = opaque;
    unsigned bus = (unsigned)(offset >> 20), devfn = (unsigned)(offset >> 12) & 0xff;
    unsigned reg = (unsigned)offset & 0xfff;
    uint64_t val;

    pthread_mutex_lock(&host->lock);
    if (size == 8 && !(reg & 7))
        val = pci_config_read_locked(host, bus, devfn, reg, 4) |
              (uint64_t)pci_config_read_locked(host, bus, devfn, reg + 4, 4) << 32;
    else if (size == 8)
        val = ~0ULL;
    else
        val = pci_config_read_locked(host, bus, devfn, reg, size);
    pthread_mutex_unlock(&host->lock);
    return val;
}

static void pci_host_ecam_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pci_host *host = opaque;
    unsigned bus = (unsigned)(offset >> 20), devfn = (unsigned)(offset >> 12) & 0xff;
    unsigned reg = (unsigned)offset & 0xfff;

    pthread_mutex_lock(&host->lock);
    if (size == 8 && !(reg & 7)) {
        pci_config_write_locked(host, bus, devfn, reg, 4, (uint32_t)data);
        pci_config_write_locked(host, bus, devfn, reg + 4, 4, (uint32_t)(data >> 32));
    } else if (size != 8) {
        pci_config_write_locked(host, bus, devfn, reg, size, (uint32_t)data);
    }
    pthread_mutex_unlock(&host->lock);
}

const struct bus_dev_ops pci_host_pio_ops = {
    .read = pci_host_pio_read,
    .write = pci_host_pio_write,
};

const struct bus_dev_ops pci_host_ecam_ops = {
    .read = pci_host_ecam_read,
    .write = pci_host_ecam_write,
};

struct pci_host *pci_host_create(void)
{
    struct pci_host *host = calloc(1, sizeof(*host));
    if (!host)
        return NULL;
    int err = pthread_mutex_init(&host->lock, NULL);
    if (err) {
        free(host);
        errno = err;
        return NULL;
    }
    pci_function_init(&host->bridge, PCI_HOST_BRIDGE_VENDOR, PCI_HOST_BRIDGE_DEVICE,
                      PCI_CLASS_HOST_BRIDGE, 0);
    /* A host bridge raises no INTx and has nothing behind the interrupt line register. */
    host->bridge.wmask[PCI_INTERRUPT_LINE] = 0;
    host->fns[PCI_DEVFN(0, 0)] = &host->bridge;
    return host;
}

void pci_host_destroy(struct pci_host *host)
{
    if (!host)
        return;
    pthread_mutex_destroy(&host->lock);
    free(host);
}

int pci_host_attach(struct pci_host *host, struct bus *pio, struct bus *mmio)
{
    int ret = bus_register(pio, PORT_PCI_CONFIG_ADDR, 8, &pci_host_pio_ops, host, "pci-cfg");
    if (ret < 0 || !mmio)
        return ret;
    return bus_register(mmio, LAYOUT_ECAM_BASE, LAYOUT_ECAM_SIZE, &pci_host_ecam_ops, host,
                        "pci-ecam");
}

void pci_host_reset(struct pci_host *host)
{
    pthread_mutex_lock(&host->lock);
    host->config_addr = 0;
    for (unsigned devfn = 0; devfn < PCI_MAX_DEVFN; devfn++) {
        struct pci_function *fn = host->fns[devfn];
        if (!fn)
            continue;
        for (unsigned off = PCI_COMMAND; off < PCI_CAP_START; off++)
            fn->config[off] &= (uint8_t)~(fn->wmask[off] | fn->w1cmask[off]);
        if (fn->reset)
            fn->reset(fn);
    }
    pthread_mutex_unlock(&host->lock);
}

int pci_host_register(struct pci_host *host, unsigned dev, unsigned func,
                      struct pci_function *fn)
{
    if (dev > 31 || func > 7 || !fn)
        return -EINVAL;
    unsigned devfn = PCI_DEVFN(dev, func);
    int ret = 0;

    pthread_mutex_lock(&host->lock);
    if (host->fns[devfn]) {
        ret = -EEXIST;
    } else {
        host->fns[devfn] = fn;
        /* Software scans functions 1..7 only when function 0 says it is multi-function. */
        struct pci_function *fn0 = host->fns[PCI_DEVFN(dev, 0)];
        bool multi = false;
        for (unsigned f = 1; f < 8; f++)
            multi |= host->fns[PCI_DEVFN(dev, f)] != NULL;
        if (fn0 && multi)
            fn0->config[PCI_HEADER_TYPE] |= PCI_HEADER_TYPE_MULTIFUNCTION;
    }
    pthread_mutex_unlock(&host->lock);
    return ret;
}
