/* ACPI table generation (ACPI 6.x chapter 5). All tables are laid out one after another in the
 * caller's buffer: RSDP at offset 0, then XSDT, FACS, DSDT, FADT, MADT and MCFG. */
#include "arch/x86/acpi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/rtc.h"

#define ACPI_HEADER_LEN 36
#define RSDP_LEN        36
#define RSDP_V1_LEN     20
#define FACS_LEN        64
#define FADT_LEN        276 /* ACPI 6.0 and later: up to Hypervisor Vendor Identity */
#define MADT_HEADER_LEN 44
#define MCFG_LEN        60

#define XSDT_ENTRIES 3 /* FADT, MADT, MCFG */

#define CREATOR_ID  "VIRO"
#define CREATOR_REV 1
#define OEM_REV     1

/* Generic Address Structure address space ids and access sizes. */
#define GAS_SYSTEM_IO    1
#define GAS_ACCESS_BYTE  1
#define GAS_ACCESS_WORD  2
#define GAS_ACCESS_DWORD 3

/* FADT flags (table 5-35 of ACPI 6.3). */
#define FADT_F_WBINVD        (1u << 0)
#define FADT_F_PROC_C1       (1u << 2)
#define FADT_F_SLP_BUTTON    (1u << 5)
#define FADT_F_TMR_VAL_EXT   (1u << 8)
#define FADT_F_RESET_REG_SUP (1u << 10)

/* IA-PC boot architecture flags. */
#define BOOT_ARCH_LEGACY_DEVICES (1u << 0)
#define BOOT_ARCH_8042           (1u << 1)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)

/* MADT. */
#define MADT_PCAT_COMPAT   1u
#define MADT_LAPIC         0
#define MADT_IOAPIC        1
#define MADT_ISO           2
#define MADT_LAPIC_NMI     4
#define MADT_LAPIC_LEN     8
#define MADT_IOAPIC_LEN    12
#define MADT_ISO_LEN       10
#define MADT_LAPIC_NMI_LEN 6
#define MADT_ENABLED       1u
/* MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3. */
#define MPS_INTI_CONFORMS     0x0
#define MPS_INTI_ACTIVE_HIGH  0x1
#define MPS_INTI_EDGE         0x4
#define MPS_INTI_LEVEL        0xc
/* IOAPIC IDs are a namespace apart from local APIC IDs (xAPIC and later). 0 is what the IOAPIC's
 * ID register holds after reset (KVM's in-kernel one too), as on PC firmware; "ncpus" would not
 * fit the 4-bit ID field of 82093-style IOAPICs beyond 15 CPUs. */
#define IOAPIC_ID 0

#define PCI_SLOTS     32
#define PCI_INTX_PINS 4

#define ECAM_BUSES   256
#define ECAM_BUS_LEN (1ULL << 20)
#define FOUR_GIB     (1ULL << 32)

_Static_assert(ECAM_BUSES * ECAM_BUS_LEN == LAYOUT_ECAM_SIZE, "MCFG covers the layout's ECAM");
_Static_assert(PORT_ACPI_PM_BASE + ACPI_PM_IO_LEN == PORT_ACPI_PM_TMR + ACPI_PM_TMR_LEN,
               "the PM ports reserved in the DSDT end with the timer");

/* The output cursor. Tables are allocated in order; running out of room is sticky. */
struct acpi_out {
    uint8_t *buf;
    size_t len;
    size_t pos;
    uint64_t base;
    int err;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t sum = 0;

    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)-sum;
}

/* Reserve n zeroed bytes at the next offset aligned to align; returns the offset or SIZE_MAX. */
static size_t out_alloc(struct acpi_out *o, size_t n, size_t align)
{
    if (o->err)
        return SIZE_MAX;
    size_t off = (o->pos + align - 1) & ~(align - 1);
    if (off > o->len || n > o->len - off) {
        o->err = -ENOSPC;
        return SIZE_MAX;
    }
    memset(o->buf + o->pos, 0, off + n - o->pos);
    o->pos = off + n;
    return off;
}

static uint64_t out_gpa(const struct acpi_out *o, size_t off)
{
    return o->base + off;
}

static void header_fill(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    put32(t + 4, len);
    t[8] = rev;
    t[9] = 0; /* checksum, filled last */
    memcpy(t + 10, ACPI_OEM_ID, 6);
    memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
    put32(t + 24, OEM_REV);
    memcpy(t + 28, CREATOR_ID, 4);
    put32(t + 32, CREATOR_REV);
}

static void header_checksum(uint8_t *t)
{
    uint32_t len = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 |
                   (uint32_t)t[7] << 24;
    t[9] = 0;
    t[9] = checksum(t, len);
}

/* Generic Address Structure. */
static void gas_fill(uint8_t *p, uint8_t space, uint8_t bit_width, uint8_t access, uint64_t addr)
{
    p[0] = space;
    p[1] = bit_width;
    p[2] = 0; /* bit offset */
    p[3] = access;
    put64(p + 4, addr);
}

/* _PRT: one entry per slot and pin, each Package {address, pin, source, source index}. With no
 * link device (source 0) the index is the GSI itself. */
static void dsdt_pci0_prt(struct aml *a, unsigned gsi_base)
{
    aml_name(a, "_PRT");
    aml_package_begin(a, PCI_SLOTS * PCI_INTX_PINS);
    for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
        for (unsigned pin = 0; pin < PCI_INTX_PINS; pin++) {
            aml_package_begin(a, 4);
            aml_integer(a, (uint64_t)slot << 16 | 0xffff); /* any function of the slot */
            aml_integer(a, pin);
            aml_integer(a, 0);
            aml_integer(a, gsi_base + (slot + pin) % PCI_INTX_PINS);
            aml_end(a);
        }
    }
    aml_end(a);
}

static void dsdt_pci0(struct aml *a, const struct acpi_config *cfg)
{
    struct aml_res r;

    aml_device_begin(a, "PCI0");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0A08");
    aml_name(a, "_CID");
    aml_eisaid(a, "PNP0A03");
    aml_name(a, "_SEG");
    aml_integer(a, 0);
    aml_name(a, "_BBN");
    aml_integer(a, 0);
    aml_name(a, "_UID");
    aml_integer(a, 0);

    aml_res_init(&r);
    aml_res_word_bus(&r, 0, ECAM_BUSES - 1);
    /* The configuration ports are the bridge's own; every other port is forwarded to PCI. */
    aml_res_io(&r, PORT_PCI_CONFIG_ADDR, PORT_PCI_CONFIG_ADDR, 1, 8);
    aml_res_word_io(&r, 0x0000, PORT_PCI_CONFIG_ADDR - 1);
    aml_res_word_io(&r, PORT_PCI_CONFIG_ADDR + 8, 0xffff);
    if (cfg->mmio32_size)
        aml_res_dword_memory(&r, (uint32_t)cfg->mmio32_base,
                             (uint32_t)(cfg->mmio32_base + cfg->mmio32_size - 1), false);
    if (cfg->mmio64_size)
        aml_res_qword_memory(&r, cfg->mmio64_base, cfg->mmio64_base + cfg->mmio64_size - 1,
                             true);
    aml_name(a, "_CRS");
    aml_resource_template(a, &r);
    if (cfg->pci_intx_gsi_base)
        dsdt_pci0_prt(a, cfg->pci_intx_gsi_base);
    aml_end(a);
}

/* Motherboard resources: ranges the OS must leave alone. Linux only trusts the MCFG region once
 * it finds it here (or reserved in e820). */
static void dsdt_motherboard(struct aml *a, const struct acpi_config *cfg)
{
    struct aml_res r;

    aml_device_begin(a, "MBRS");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0C02");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_res_init(&r);
    aml_res_memory32_fixed(&r, (uint32_t)cfg->ecam_base, (uint32_t)(ECAM_BUSES * ECAM_BUS_LEN));
    aml_res_io(&r, PORT_ACPI_PM_BASE, PORT_ACPI_PM_BASE, 1, ACPI_PM_IO_LEN);
    aml_res_io(&r, PORT_ACPI_RESET, PORT_ACPI_RESET, 1, 1);
    aml_name(a, "_CRS");
    aml_resource_template(a, &r);
    aml_end(a);
}

/* A fixed platform device: _HID (an EISA ID such as PNP0501, or a string ID such as QEMU0001),
 * _UID unless uid < 0, _STA "present, enabled, shown, functioning", and r as its _CRS. */
static void dsdt_fixed_device(struct aml *a, const char *name, const char *hid, int uid,
                              const struct aml_res *r)
{
    aml_device_begin(a, name);
    aml_name(a, "_HID");
    if (strlen(hid) == 7)
        aml_eisaid(a, hid);
    else
        aml_string(a, hid);
    if (uid >= 0) {
        aml_name(a, "_UID");
        aml_integer(a, (uint64_t)uid);
    }
    aml_method_begin(a, "_STA", 0, false);
    aml_return(a);
    aml_integer(a, 0x0f);
    aml_end(a);
    aml_name(a, "_CRS");
    aml_resource_template(a, r);
    aml_end(a);
}

static void dsdt_com1(struct aml *a)
{
    struct aml_res r;

    aml_res_init(&r);
    aml_res_io(&r, PORT_COM1, PORT_COM1, 1, 8);
    aml_res_irq_noflags(&r, IRQ_COM1);
    dsdt_fixed_device(a, "COM1", "PNP0501", 1, &r);
}

/* The i8042 with its keyboard port only. Described, Linux takes the controller from ACPI and,
 * finding no PS/2 mouse device (PNP0F13) beside it, leaves the AUX port alone; undescribed, it
 * probes the controller directly and waits out a timeout on each AUX command this i8042 does
 * not implement (about a second of boot). */
static void dsdt_keyboard(struct aml *a)
{
    struct aml_res r;

    aml_res_init(&r);
    aml_res_io(&r, PORT_I8042_DATA, PORT_I8042_DATA, 1, 1);
    aml_res_io(&r, PORT_I8042_CMD, PORT_I8042_CMD, 1, 1);
    aml_res_irq_noflags(&r, IRQ_I8042_KBD);
    dsdt_fixed_device(a, "KBD_", "PNP0303", -1, &r);
}

/* The panic notifier: Linux's pvpanic driver binds to QEMU0001 and writes to its port when the
 * kernel panics, so the VMM can end the run as a failure instead of waiting for a reboot. */
static void dsdt_pvpanic(struct aml *a)
{
    struct aml_res r;

    aml_res_init(&r);
    aml_res_io(&r, PORT_PVPANIC, PORT_PVPANIC, 1, 1);
    dsdt_fixed_device(a, "PEVT", "QEMU0001", 0, &r);
}

/* Processor devices; _UID matches the MADT's ACPI Processor UID. */
static void dsdt_cpus(struct aml *a, unsigned ncpus)
{
    char name[12];

    for (unsigned i = 0; i < ncpus; i++) {
        snprintf(name, sizeof(name), "CP%02X", i & 0xffu); /* i < 256 */
        aml_device_begin(a, name);
        aml_name(a, "_HID");
        aml_string(a, "ACPI0007");
        aml_name(a, "_UID");
        aml_integer(a, i);
        aml_end(a);
    }
}

/* Returns the AML's length, or -errno. */
static int dsdt_body(const struct acpi_config *cfg, uint8_t *buf, size_t cap)
{
    struct aml a;

    aml_init(&a, buf, cap);
    /* \_S5: the sleep type values PM1a_CNT.SLP_TYP takes for soft-off (PM1b is unused). */
    aml_name(&a, "_S5");
    aml_package_begin(&a, 4);
    aml_integer(&a, ACPI_S5_SLP_TYP);
    aml_integer(&a, ACPI_S5_SLP_TYP);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_end(&a);

    aml_scope_begin(&a, "_SB");
    dsdt_pci0(&a, cfg);
    dsdt_motherboard(&a, cfg);
    dsdt_com1(&a);
    dsdt_keyboard(&a);
    dsdt_pvpanic(&a);
    dsdt_cpus(&a, cfg->ncpus);
    aml_end(&a);
    return aml_finish(&a);
}

static void build_dsdt(struct acpi_out *o, const struct acpi_config *cfg, size_t *off_out)
{
    size_t off = out_alloc(o, ACPI_HEADER_LEN, 16);
    if (off == SIZE_MAX)
        return;
    int n = dsdt_body(cfg, o->buf + o->pos, o->len - o->pos);
    if (n < 0) {
        o->err = n;
        return;
    }
    o->pos += (size_t)n;
    /* Revision 2: integers in the AML are 64 bits wide. */
    header_fill(o->buf + off, "DSDT", (uint32_t)(ACPI_HEADER_LEN + n), 2);
    header_checksum(o->buf + off);
    *off_out = off;
}

static void build_facs(struct acpi_out *o, size_t *off_out)
{
    /* The FACS has to be 64-byte aligned; it carries no checksum. */
    size_t off = out_alloc(o, FACS_LEN, 64);
    if (off == SIZE_MAX)
        return;
    uint8_t *t = o->buf + off;
    memcpy(t, "FACS", 4);
    put32(t + 4, FACS_LEN);
    t[32] = 2; /* version */
    *off_out = off;
}

static void build_fadt(struct acpi_out *o, uint64_t facs_gpa, uint64_t dsdt_gpa, size_t *off_out)
{
    size_t off = out_alloc(o, FADT_LEN, 16);
    if (off == SIZE_MAX)
        return;
    uint8_t *t = o->buf + off;
    uint32_t flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP;

    if (ACPI_PM_TMR_32BIT)
        flags |= FADT_F_TMR_VAL_EXT;
    header_fill(t, "FACP", FADT_LEN, 6);
    /* The 32-bit FIRMWARE_CTRL and DSDT stay 0: ACPI 5.0 wants them zero once X_FIRMWARE_CTRL
     * and X_DSDT are set, and firmware test suites flag tables that fill both. */
    t[45] = 0;                /* preferred PM profile: unspecified */
    put16(t + 46, IRQ_SCI);
    /* SMI_CMD, ACPI_ENABLE and ACPI_DISABLE stay 0: the machine is always in ACPI mode. */
    put32(t + 56, PORT_ACPI_PM1_EVT);
    put32(t + 64, PORT_ACPI_PM1_CNT);
    put32(t + 76, PORT_ACPI_PM_TMR);
    t[88] = ACPI_PM1_EVT_LEN;
    t[89] = ACPI_PM1_CNT_LEN;
    t[91] = ACPI_PM_TMR_LEN;
    put16(t + 96, 101);       /* P_LVL2_LAT > 100: no C2 */
    put16(t + 98, 1001);      /* P_LVL3_LAT > 1000: no C3 */
    t[108] = RTC_CENTURY;     /* CMOS index of the century, which Linux adds to the year */
    put16(t + 109, BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042 | BOOT_ARCH_VGA_NOT_PRESENT);
    put32(t + 112, flags);
    gas_fill(t + 116, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, PORT_ACPI_RESET);
    t[128] = ACPI_RESET_VALUE;
    t[131] = 0;               /* FADT minor version: 6.0 */
    put64(t + 132, facs_gpa);
    put64(t + 140, dsdt_gpa);
    gas_fill(t + 148, GAS_SYSTEM_IO, 8 * ACPI_PM1_EVT_LEN, GAS_ACCESS_WORD, PORT_ACPI_PM1_EVT);
    gas_fill(t + 172, GAS_SYSTEM_IO, 8 * ACPI_PM1_CNT_LEN, GAS_ACCESS_WORD, PORT_ACPI_PM1_CNT);
    gas_fill(t + 208, GAS_SYSTEM_IO, 8 * ACPI_PM_TMR_LEN, GAS_ACCESS_DWORD, PORT_ACPI_PM_TMR);
    header_checksum(t);
    *off_out = off;
}

static void build_madt(struct acpi_out *o, const struct acpi_config *cfg, size_t *off_out)
{
    size_t len = MADT_HEADER_LEN + (size_t)cfg->ncpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN +
                 2 * MADT_ISO_LEN + MADT_LAPIC_NMI_LEN;
    size_t off = out_alloc(o, len, 16);
    if (off == SIZE_MAX)
        return;
    uint8_t *t = o->buf + off;
    uint8_t *p = t + MADT_HEADER_LEN;

    header_fill(t, "APIC", (uint32_t)len, 4);
    put32(t + 36, (uint32_t)LAYOUT_LAPIC_BASE);
    put32(t + 40, MADT_PCAT_COMPAT); /* the 8259 pair exists and must be masked */

    for (unsigned i = 0; i < cfg->ncpus; i++, p += MADT_LAPIC_LEN) {
        p[0] = MADT_LAPIC;
        p[1] = MADT_LAPIC_LEN;
        p[2] = (uint8_t)i; /* ACPI processor UID */
        p[3] = (uint8_t)i; /* APIC ID */
        put32(p + 4, MADT_ENABLED);
    }

    p[0] = MADT_IOAPIC;
    p[1] = MADT_IOAPIC_LEN;
    p[2] = IOAPIC_ID;
    put32(p + 4, (uint32_t)LAYOUT_IOAPIC_BASE);
    put32(p + 8, 0); /* GSI base */
    p += MADT_IOAPIC_LEN;

    /* The PIT's IRQ0 arrives on IOAPIC pin 2, as on PC hardware. */
    p[0] = MADT_ISO;
    p[1] = MADT_ISO_LEN;
    p[2] = 0; /* ISA */
    p[3] = 0;
    put32(p + 4, 2);
    put16(p + 8, MPS_INTI_CONFORMS);
    p += MADT_ISO_LEN;

    /* The SCI is level-triggered. The PM device drives it active high, as PC chipsets wire it
     * to the IOAPIC, so the default of an active-low SCI has to be overridden. */
    p[0] = MADT_ISO;
    p[1] = MADT_ISO_LEN;
    p[2] = 0;
    p[3] = IRQ_SCI;
    put32(p + 4, IRQ_SCI);
    put16(p + 8, MPS_INTI_ACTIVE_HIGH | MPS_INTI_LEVEL);
    p += MADT_ISO_LEN;

    /* NMIs reach every CPU through LINT1. */
    p[0] = MADT_LAPIC_NMI;
    p[1] = MADT_LAPIC_NMI_LEN;
    p[2] = 0xff; /* all processors */
    put16(p + 3, MPS_INTI_ACTIVE_HIGH | MPS_INTI_EDGE);
    p[5] = 1;

    header_checksum(t);
    *off_out = off;
}

static void build_mcfg(struct acpi_out *o, const struct acpi_config *cfg, size_t *off_out)
{
    size_t off = out_alloc(o, MCFG_LEN, 16);
    if (off == SIZE_MAX)
        return;
    uint8_t *t = o->buf + off;

    header_fill(t, "MCFG", MCFG_LEN, 1);
    /* 8 reserved bytes, then one allocation: base, segment, first and last bus. */
    put64(t + 44, cfg->ecam_base);
    put16(t + 52, 0);
    t[54] = 0;
    t[55] = ECAM_BUSES - 1;
    header_checksum(t);
    *off_out = off;
}

static int config_check(const struct acpi_config *cfg, uint64_t base_gpa, size_t len)
{
    if (cfg->ncpus < 1 || cfg->ncpus > ACPI_MAX_CPUS)
        return -EINVAL;
    if (cfg->ecam_base % ECAM_BUS_LEN || cfg->ecam_base + ECAM_BUSES * ECAM_BUS_LEN > FOUR_GIB)
        return -EINVAL;
    if (cfg->mmio32_size &&
        (cfg->mmio32_base >= FOUR_GIB || cfg->mmio32_size > FOUR_GIB - cfg->mmio32_base))
        return -EINVAL;
    if (cfg->mmio64_size && cfg->mmio64_size - 1 > UINT64_MAX - cfg->mmio64_base)
        return -EINVAL;
    /* PCI interrupts need IOAPIC inputs of their own, above the 16 ISA ones. */
    if (cfg->pci_intx_gsi_base &&
        (cfg->pci_intx_gsi_base < 16 || cfg->pci_intx_gsi_base + PCI_INTX_PINS > IOAPIC_PINS))
        return -EINVAL;
    if (len > UINT64_MAX - base_gpa || len > INT32_MAX)
        return -EINVAL;
    return 0;
}

int acpi_build(const struct acpi_config *cfg, uint8_t *buf, size_t len, uint64_t base_gpa)
{
    struct acpi_out o = { .buf = buf, .len = len, .base = base_gpa };
    size_t rsdp = 0, xsdt = 0, facs = 0, dsdt = 0, fadt = 0, madt = 0, mcfg = 0;
    int err = config_check(cfg, base_gpa, len);

    if (err)
        return err;
    rsdp = out_alloc(&o, RSDP_LEN, 16);
    xsdt = out_alloc(&o, ACPI_HEADER_LEN + 8 * XSDT_ENTRIES, 16);
    build_facs(&o, &facs);
    build_dsdt(&o, cfg, &dsdt);
    build_fadt(&o, out_gpa(&o, facs), out_gpa(&o, dsdt), &fadt);
    build_madt(&o, cfg, &madt);
    build_mcfg(&o, cfg, &mcfg);
    if (o.err)
        return o.err;

    uint8_t *x = buf + xsdt;
    header_fill(x, "XSDT", ACPI_HEADER_LEN + 8 * XSDT_ENTRIES, 1);
    put64(x + 36, out_gpa(&o, fadt));
    put64(x + 44, out_gpa(&o, madt));
    put64(x + 52, out_gpa(&o, mcfg));
    header_checksum(x);

    uint8_t *r = buf + rsdp;
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, ACPI_OEM_ID, 6);
    r[15] = 2;           /* revision: ACPI 2.0+ layout with the XSDT */
    put32(r + 16, 0);    /* no RSDT: every table is reached through the XSDT */
    put32(r + 20, RSDP_LEN);
    put64(r + 24, out_gpa(&o, xsdt));
    r[8] = checksum(r, RSDP_V1_LEN);
    r[32] = checksum(r, RSDP_LEN);
    return (int)o.pos;
}
