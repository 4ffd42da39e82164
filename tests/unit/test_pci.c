/* The PCI host: both configuration mechanisms, absent functions, read-only fields, BARs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/bus.h"
#include "devices/pci.h"

struct harness {
    struct bus pio, mmio;
    struct pci_host *host;
    struct pci_function fn; /* a device the tests plug in */
    unsigned writes_seen, last_write_off, last_write_size;
};

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    bus_init(&h->pio, "pio");
    bus_init(&h->mmio, "mmio");
    h->host = pci_host_create();
    assert_non_null(h->host);
    assert_int_equal(pci_host_attach(h->host, &h->pio, &h->mmio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    pci_host_destroy(h->host);
    test_free(h);
    return 0;
}

static uint32_t cf8_addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
    return PCI_CONFIG_ADDR_ENABLE | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cf8_read(struct harness *h, unsigned bus, unsigned dev, unsigned fn, unsigned reg,
                         unsigned size)
{
    uint64_t v;
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_ADDR, 4, cf8_addr(bus, dev, fn, reg)));
    assert_true(bus_read(&h->pio, PORT_PCI_CONFIG_DATA + (reg & 3), size, &v));
    return (uint32_t)v;
}

static void cf8_write(struct harness *h, unsigned bus, unsigned dev, unsigned fn, unsigned reg,
                      unsigned size, uint32_t val)
{
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_ADDR, 4, cf8_addr(bus, dev, fn, reg)));
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_DATA + (reg & 3), size, val));
}

static uint64_t ecam_addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
    return LAYOUT_ECAM_BASE + ((uint64_t)bus << 20 | dev << 15 | fn << 12 | reg);
}

static uint64_t ecam_read(struct harness *h, unsigned bus, unsigned dev, unsigned fn, unsigned reg,
                          unsigned size)
{
    uint64_t v;
    assert_true(bus_read(&h->mmio, ecam_addr(bus, dev, fn, reg), size, &v));
    return v;
}

static void ecam_write(struct harness *h, unsigned bus, unsigned dev, unsigned fn, unsigned reg,
                       unsigned size, uint64_t val)
{
    assert_true(bus_write(&h->mmio, ecam_addr(bus, dev, fn, reg), size, val));
}

static void test_enumeration_both_mechanisms(void **state)
{
    struct harness *h = *state;
    unsigned found = 0;
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t id = cf8_read(h, 0, dev, fn, PCI_VENDOR_ID, 4);
            assert_int_equal(id, (uint32_t)ecam_read(h, 0, dev, fn, PCI_VENDOR_ID, 4));
            if (id == 0xffffffffu)
                continue;
            found++;
            assert_int_equal(dev, 0);
            assert_int_equal(fn, 0);
            /* The whole legacy space is the same through both doors. */
            for (unsigned reg = 0; reg < PCI_CONFIG_LEGACY_SIZE; reg += 4)
                assert_int_equal(cf8_read(h, 0, dev, fn, reg, 4),
                                 ecam_read(h, 0, dev, fn, reg, 4));
        }
    }
    assert_int_equal(found, 1);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_VENDOR_ID, 2), PCI_HOST_BRIDGE_VENDOR);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_DEVICE_ID, 2), PCI_HOST_BRIDGE_DEVICE);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_REVISION_ID, 4) >> 8, PCI_CLASS_HOST_BRIDGE);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_HEADER_TYPE, 1), 0);
    /* Byte and word accesses at every offset of the data window. */
    assert_int_equal(cf8_read(h, 0, 0, 0, 0, 1), 0x36);
    assert_int_equal(cf8_read(h, 0, 0, 0, 1, 1), 0x1b);
    assert_int_equal(cf8_read(h, 0, 0, 0, 2, 1), 0x08);
    assert_int_equal(cf8_read(h, 0, 0, 0, 3, 1), 0x00);
    assert_int_equal(cf8_read(h, 0, 0, 0, 0x0a, 2), 0x0600);
    assert_int_equal(cf8_read(h, 0, 0, 0, 0x0b, 1), 0x06);
    assert_int_equal(ecam_read(h, 0, 0, 0, 0x0b, 1), 0x06);
    assert_int_equal(ecam_read(h, 0, 0, 0, 0x02, 2), PCI_HOST_BRIDGE_DEVICE);
    /* A 64-bit ECAM read is two dwords; PCIe extended space is empty. */
    assert_int_equal(ecam_read(h, 0, 0, 0, 0, 8),
                     (uint64_t)ecam_read(h, 0, 0, 0, 4, 4) << 32 | 0x00081b36);
    assert_int_equal(ecam_read(h, 0, 0, 0, 0x100, 4), 0);
}

static void test_absent_functions_read_ones(void **state)
{
    struct harness *h = *state;
    assert_int_equal(cf8_read(h, 0, 1, 0, 0, 4), 0xffffffffu);
    assert_int_equal(cf8_read(h, 0, 0, 1, 0, 4), 0xffffffffu);
    assert_int_equal(cf8_read(h, 0, 31, 7, 0x3c, 1), 0xff);
    assert_int_equal(cf8_read(h, 1, 0, 0, 0, 4), 0xffffffffu); /* no bus 1 */
    assert_int_equal(cf8_read(h, 255, 0, 0, 0, 2), 0xffff);
    assert_int_equal(ecam_read(h, 0, 5, 0, 0, 4), 0xffffffffu);
    assert_int_equal(ecam_read(h, 1, 0, 0, 0, 4), 0xffffffffu);
    assert_int_equal(ecam_read(h, 255, 31, 7, 0xffc, 4), 0xffffffffu);
    assert_int_equal(ecam_read(h, 9, 0, 0, 0, 8), ~0ULL);
    /* Writes to them go nowhere (and do not crash). */
    cf8_write(h, 0, 1, 0, PCI_COMMAND, 2, 0xffff);
    ecam_write(h, 3, 0, 0, PCI_COMMAND, 2, 0xffff);
    /* With the enable bit clear, the data port is not a config cycle. */
    uint64_t v;
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_ADDR, 4, 0x00000000));
    assert_true(bus_read(&h->pio, PORT_PCI_CONFIG_DATA, 4, &v));
    assert_int_equal(v, 0xffffffffu);
    /* Misaligned accesses are not decoded. */
    assert_int_equal(cf8_read(h, 0, 0, 0, 1, 2), 0xffff);
    assert_int_equal(ecam_read(h, 0, 0, 0, 2, 4), 0xffffffffu);
}

static void test_config_address_register(void **state)
{
    struct harness *h = *state;
    uint64_t v;
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_ADDR, 4, 0xffffffff));
    assert_true(bus_read(&h->pio, PORT_PCI_CONFIG_ADDR, 4, &v));
    assert_int_equal(v, 0x80fffffc); /* reserved bits 30..24 and type bits 1..0 read 0 */
    /* Narrow accesses to 0xcf8..0xcfb are not the address register. */
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_ADDR + 1, 1, 0x06));
    assert_true(bus_write(&h->pio, PORT_PCI_CONFIG_ADDR, 2, 0));
    assert_true(bus_read(&h->pio, PORT_PCI_CONFIG_ADDR, 4, &v));
    assert_int_equal(v, 0x80fffffc);
    assert_true(bus_read(&h->pio, PORT_PCI_CONFIG_ADDR, 1, &v));
    assert_int_equal(v, 0xff);
}

static void test_read_only_fields(void **state)
{
    struct harness *h = *state;
    uint32_t before[16];
    for (unsigned i = 0; i < 16; i++)
        before[i] = cf8_read(h, 0, 0, 0, 4 * i, 4);
    /* IDs, class, revision, header type: neither mechanism can change them. */
    cf8_write(h, 0, 0, 0, PCI_VENDOR_ID, 4, 0x12345678);
    ecam_write(h, 0, 0, 0, PCI_VENDOR_ID, 2, 0xabcd);
    cf8_write(h, 0, 0, 0, PCI_REVISION_ID, 4, 0xffffffff);
    ecam_write(h, 0, 0, 0, PCI_HEADER_TYPE, 1, 0xff);
    cf8_write(h, 0, 0, 0, PCI_SUBSYSTEM_VENDOR_ID, 4, 0xffffffff);
    cf8_write(h, 0, 0, 0, PCI_CAPABILITY_LIST, 1, 0x40);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_VENDOR_ID, 4), before[0]);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_REVISION_ID, 4), before[2]);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_HEADER_TYPE, 1), 0);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_SUBSYSTEM_VENDOR_ID, 4), before[11]);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_CAPABILITY_LIST, 1), 0);
    /* The host bridge has no BARs: sizing reads 0. */
    for (unsigned bar = 0; bar < PCI_BAR_COUNT; bar++) {
        cf8_write(h, 0, 0, 0, PCI_BAR0 + 4 * bar, 4, 0xffffffff);
        assert_int_equal(cf8_read(h, 0, 0, 0, PCI_BAR0 + 4 * bar, 4), 0);
    }
    /* COMMAND keeps only its defined enables; STATUS is read-only except write-1-to-clear. */
    cf8_write(h, 0, 0, 0, PCI_COMMAND, 4, 0xffffffff);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_COMMAND, 2),
                     PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                         PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    assert_int_equal(cf8_read(h, 0, 0, 0, PCI_STATUS, 2), 0);
    h->host->bridge.config[PCI_STATUS + 1] = 0x20; /* as if a master abort was received */
    ecam_write(h, 0, 0, 0, PCI_STATUS, 2, 0);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_STATUS, 2), 0x2000);
    ecam_write(h, 0, 0, 0, PCI_STATUS, 2, 0x2000);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_STATUS, 2), 0);
    /* Cache line size and latency timer are plain storage. */
    cf8_write(h, 0, 0, 0, PCI_CACHE_LINE_SIZE, 2, 0x4010);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_CACHE_LINE_SIZE, 2), 0x4010);
}

static void record_write(struct pci_function *fn, unsigned off, unsigned size, uint32_t val)
{
    struct harness *h = fn->opaque;
    (void)val;
    h->writes_seen++;
    h->last_write_off = off;
    h->last_write_size = size;
}

static uint32_t live_subsystem(struct pci_function *fn, unsigned off, unsigned size, uint32_t val)
{
    (void)fn;
    (void)size;
    return off == PCI_SUBSYSTEM_VENDOR_ID ? 0x00011af4 : val;
}

static void test_registered_function_and_bars(void **state)
{
    struct harness *h = *state;
    struct pci_function *fn = &h->fn;
    pci_function_init(fn, 0x1af4, 0x1041, 0x020000, 1);
    assert_int_equal(pci_function_set_bar(fn, 0, 0x1000, 0), 0);
    assert_int_equal(pci_function_set_bar(fn, 1, 0x40, PCI_BAR_IO), 0);
    assert_int_equal(pci_function_set_bar(fn, 2, 0x400000000ULL,
                                          PCI_BAR_MEM_64 | PCI_BAR_PREFETCH), 0);
    assert_int_equal(pci_function_set_bar(fn, 5, 0x1000, PCI_BAR_MEM_64), -EINVAL);
    assert_int_equal(pci_function_set_bar(fn, 4, 0x1800, 0), -EINVAL);
    assert_int_equal(pci_function_set_bar(fn, 4, 8, 0), -EINVAL);
    fn->config_write = record_write;
    fn->config_read = live_subsystem;
    fn->opaque = h;
    assert_int_equal(pci_host_register(h->host, 3, 0, fn), 0);
    assert_int_equal(pci_host_register(h->host, 3, 0, fn), -EEXIST);
    assert_int_equal(pci_host_register(h->host, 0, 0, fn), -EEXIST);
    assert_int_equal(pci_host_register(h->host, 32, 0, fn), -EINVAL);
    assert_int_equal(pci_host_register(h->host, 1, 8, fn), -EINVAL);

    assert_int_equal(ecam_read(h, 0, 3, 0, PCI_VENDOR_ID, 4), 0x10411af4);
    assert_int_equal(cf8_read(h, 0, 3, 0, PCI_VENDOR_ID, 4), 0x10411af4);
    assert_int_equal(cf8_read(h, 0, 3, 0, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00011af4);

    /* Sizing: write all ones, read back the size mask with the type bits. */
    cf8_write(h, 0, 3, 0, PCI_BAR0, 4, 0xffffffff);
    assert_int_equal(cf8_read(h, 0, 3, 0, PCI_BAR0, 4), 0xfffff000);
    assert_int_equal(h->last_write_off, PCI_BAR0);
    assert_int_equal(h->last_write_size, 4);
    cf8_write(h, 0, 3, 0, PCI_BAR0 + 4, 4, 0xffffffff);
    assert_int_equal(cf8_read(h, 0, 3, 0, PCI_BAR0 + 4, 4), 0xffffffc1);
    ecam_write(h, 0, 3, 0, PCI_BAR0 + 8, 4, 0xffffffff);
    ecam_write(h, 0, 3, 0, PCI_BAR0 + 12, 4, 0xffffffff);
    assert_int_equal(ecam_read(h, 0, 3, 0, PCI_BAR0 + 8, 4), 0x0000000c);
    assert_int_equal(ecam_read(h, 0, 3, 0, PCI_BAR0 + 12, 4), 0xfffffffc);
    /* Program addresses, as firmware or the OS does. */
    cf8_write(h, 0, 3, 0, PCI_BAR0, 4, 0xc0001234);
    cf8_write(h, 0, 3, 0, PCI_BAR0 + 4, 4, 0xc07f);
    ecam_write(h, 0, 3, 0, PCI_BAR0 + 8, 8, 0x0000000c00000000ULL);
    assert_int_equal(pci_function_bar_addr(fn, 0), 0xc0001000);
    assert_int_equal(pci_function_bar_addr(fn, 1), 0xc040);
    assert_int_equal(pci_function_bar_addr(fn, 2), 0xc00000000ULL);
    assert_int_equal(ecam_read(h, 0, 3, 0, PCI_BAR0 + 8, 4), 0x0000000c);
    /* The unused BARs and the ROM BAR stay 0. */
    cf8_write(h, 0, 3, 0, PCI_BAR0 + 16, 4, 0xffffffff);
    cf8_write(h, 0, 3, 0, PCI_ROM_ADDRESS, 4, 0xffffffff);
    assert_int_equal(cf8_read(h, 0, 3, 0, PCI_BAR0 + 16, 4), 0);
    assert_int_equal(cf8_read(h, 0, 3, 0, PCI_ROM_ADDRESS, 4), 0);
    unsigned seen = h->writes_seen;
    cf8_write(h, 0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    assert_int_equal(h->writes_seen, seen + 1);
    assert_int_equal(h->last_write_off, PCI_COMMAND);
    assert_int_equal(h->last_write_size, 2);
    assert_int_equal(ecam_read(h, 0, 3, 0, PCI_COMMAND, 2),
                     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void count_reset(struct pci_function *fn)
{
    struct harness *h = fn->opaque;
    h->writes_seen += 1000;
}

static void test_reset(void **state)
{
    struct harness *h = *state;
    struct pci_function *fn = &h->fn;
    pci_function_init(fn, 0x1af4, 0x1041, 0x020000, 1);
    assert_int_equal(pci_function_set_bar(fn, 0, 0x1000, PCI_BAR_PREFETCH), 0);
    fn->config[PCI_INTERRUPT_PIN] = 1;
    fn->reset = count_reset;
    fn->opaque = h;
    assert_int_equal(pci_host_register(h->host, 2, 0, fn), 0);
    cf8_write(h, 0, 2, 0, PCI_BAR0, 4, 0xc0000000);
    cf8_write(h, 0, 2, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cf8_write(h, 0, 2, 0, PCI_INTERRUPT_LINE, 1, 11);
    cf8_write(h, 0, 0, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    pci_host_reset(h->host);
    assert_int_equal(h->writes_seen, 1000);
    uint64_t v;
    assert_true(bus_read(&h->pio, PORT_PCI_CONFIG_ADDR, 4, &v));
    assert_int_equal(v, 0);
    assert_int_equal(ecam_read(h, 0, 2, 0, PCI_BAR0, 4), PCI_BAR_PREFETCH);
    assert_int_equal(ecam_read(h, 0, 2, 0, PCI_COMMAND, 2), 0);
    assert_int_equal(ecam_read(h, 0, 2, 0, PCI_INTERRUPT_LINE, 2), 0x0100); /* pin stays */
    assert_int_equal(ecam_read(h, 0, 2, 0, PCI_VENDOR_ID, 4), 0x10411af4);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_COMMAND, 2), 0);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_VENDOR_ID, 4), 0x00081b36);
}

static void test_multifunction_and_capabilities(void **state)
{
    struct harness *h = *state;
    struct pci_function *f0 = test_calloc(1, sizeof(*f0));
    struct pci_function *f2 = test_calloc(1, sizeof(*f2));
    pci_function_init(f0, 0x1af4, 0x1042, 0x010000, 1);
    pci_function_init(f2, 0x1af4, 0x1043, 0x078000, 1);
    assert_int_equal(pci_host_register(h->host, 7, 2, f2), 0);
    assert_int_equal(pci_host_register(h->host, 7, 0, f0), 0);
    assert_int_equal(cf8_read(h, 0, 7, 0, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_MULTIFUNCTION);
    assert_int_equal(cf8_read(h, 0, 7, 1, PCI_VENDOR_ID, 4), 0xffffffffu);
    assert_int_equal(ecam_read(h, 0, 7, 2, PCI_VENDOR_ID, 4), 0x10431af4);

    int a = pci_function_add_cap(f2, 0x09, 16);
    int b = pci_function_add_cap(f2, 0x11, 12);
    assert_int_equal(a, PCI_CAP_START);
    assert_int_equal(b, PCI_CAP_START + 16);
    assert_int_equal(cf8_read(h, 0, 7, 2, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST,
                     PCI_STATUS_CAP_LIST);
    /* Walk the list as an OS does. */
    unsigned ptr = cf8_read(h, 0, 7, 2, PCI_CAPABILITY_LIST, 1), n = 0;
    uint8_t ids[4];
    while (ptr && n < 4) {
        ids[n++] = (uint8_t)cf8_read(h, 0, 7, 2, ptr, 1);
        ptr = cf8_read(h, 0, 7, 2, ptr + 1, 1);
    }
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0x09);
    assert_int_equal(ids[1], 0x11);
    /* The legacy space fills up. */
    int last = 0;
    while ((last = pci_function_add_cap(f2, 0x09, 64)) >= 0)
        ;
    assert_int_equal(last, -ENOSPC);
    test_free(f0);
    test_free(f2);
}

/* Random guest accesses through both mechanisms: nothing read-only moves, nothing crashes. */
static void test_random_accesses(void **state)
{
    struct harness *h = *state;
    uint32_t seed = 777;
    for (unsigned i = 0; i < 200000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 4, val = seed * 0x9e3779b9u;
        unsigned size = 1u << (r & 3);
        uint64_t v;
        if (r & 4) {
            /* ECAM: bus 0 mostly, any device, any register, any width. */
            uint64_t off = ((uint64_t)((r >> 3) & 1 ? 0 : (r >> 4) & 0xff) << 20) |
                           ((r >> 12) & 0xff) << 12 | (val & 0xfff);
            if (r & 8)
                bus_write(&h->mmio, LAYOUT_ECAM_BASE + off, size, (uint64_t)val << 3 | r);
            else
                bus_read(&h->mmio, LAYOUT_ECAM_BASE + off, size, &v);
        } else {
            unsigned port = PORT_PCI_CONFIG_ADDR + ((r >> 3) & 7);
            if (port + size > PORT_PCI_CONFIG_ADDR + 8)
                size = 1;
            if (r & 0x800)
                bus_write(&h->pio, port, size, val & (r & 0x1000 ? 0x8000ffff : ~0u));
            else
                bus_read(&h->pio, port, size, &v);
        }
        assert_int_equal(h->host->config_addr & 0x7f000003u, 0);
    }
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_VENDOR_ID, 4), 0x00081b36);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_REVISION_ID, 4), PCI_CLASS_HOST_BRIDGE << 8);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_HEADER_TYPE, 1), 0);
    for (unsigned bar = 0; bar < PCI_BAR_COUNT; bar++)
        assert_int_equal(ecam_read(h, 0, 0, 0, PCI_BAR0 + 4 * bar, 4), 0);
    assert_int_equal(ecam_read(h, 0, 0, 0, PCI_STATUS, 2), 0);
    unsigned present = 0;
    for (unsigned devfn = 0; devfn < 256; devfn++)
        present += ecam_read(h, 0, devfn >> 3, devfn & 7, 0, 4) != 0xffffffffu;
    assert_int_equal(present, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enumeration_both_mechanisms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_functions_read_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_address_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_function_and_bars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multifunction_and_capabilities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_accesses, setup, teardown),
    };
    return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}
