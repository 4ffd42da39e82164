/* ACPI table discovery and the handful of fields the tests read. */
#include "acpi.h"

#include "console.h"
#include "io.h"
#include "paging.h"
#include "pvh.h"
#include "string.h"

struct acpi_info acpi;

/* FADT field offsets (ACPI 6.x, section 5.2.9). */
#define FADT_DSDT          40
#define FADT_PM1A_CNT_BLK  64
#define FADT_PM_TMR_BLK    76
#define FADT_CENTURY       108
#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_X_DSDT        140
#define FADT_X_PM1A_CNT    172
#define FADT_X_PM_TMR      208
#define FADT_F_TMR_VAL_EXT (1u << 8)
#define FADT_F_RESET_REG   (1u << 10)

int acpi_checksum_ok(const void *p, uint32_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;

    for (uint32_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + b[i]);
    return sum == 0;
}

static uint8_t rd8(const struct acpi_header *t, uint32_t off)
{
    return off < t->length ? ((const uint8_t *)t)[off] : 0;
}

static uint32_t rd32(const struct acpi_header *t, uint32_t off)
{
    uint32_t v = 0;

    if (off + 4 <= t->length)
        memcpy(&v, (const uint8_t *)t + off, 4);
    return v;
}

static uint64_t rd64(const struct acpi_header *t, uint32_t off)
{
    uint64_t v = 0;

    if (off + 8 <= t->length)
        memcpy(&v, (const uint8_t *)t + off, 8);
    return v;
}

static struct acpi_gas rd_gas(const struct acpi_header *t, uint32_t off)
{
    struct acpi_gas g;

    memset(&g, 0, sizeof(g));
    if (off + sizeof(g) <= t->length)
        memcpy(&g, (const uint8_t *)t + off, sizeof(g));
    return g;
}

/* Makes [addr, addr+len) addressable; the low 4 GiB always is. */
static int reach(uint64_t addr, uint64_t len)
{
    if (addr + len <= 0x100000000ULL)
        return 0;
    return paging_map_identity(addr, len, 0);
}

static const struct acpi_rsdp *rsdp_check(uint64_t addr)
{
    const struct acpi_rsdp *r = (const struct acpi_rsdp *)(uintptr_t)addr;

    if (memcmp(r->signature, "RSD PTR ", 8) || !acpi_checksum_ok(r, 20))
        return NULL;
    if (r->revision >= 2 && (r->length < 36 || r->length > 4096 ||
                             !acpi_checksum_ok(r, r->length)))
        return NULL;
    return r;
}

static const struct acpi_rsdp *rsdp_scan(uint64_t start, uint64_t end)
{
    for (uint64_t a = start; a + 20 <= end; a += 16) {
        const struct acpi_rsdp *r = rsdp_check(a);
        if (r)
            return r;
    }
    return NULL;
}

/* Maps a table's header, then all of it. NULL if out of reach or implausibly long. */
static const struct acpi_header *table_at(uint64_t addr)
{
    if (!addr || reach(addr, sizeof(struct acpi_header)))
        return NULL;
    const struct acpi_header *t = (const struct acpi_header *)(uintptr_t)addr;
    if (t->length < sizeof(*t) || t->length > (16u << 20) || reach(addr, t->length))
        return NULL;
    return t;
}

int acpi_init(void)
{
    if (acpi.rsdp)
        return 0;
    uint64_t hint = pvh_boot.valid ? pvh_boot.info.rsdp_paddr : 0;
    if (hint && hint < 0x100000000ULL) {
        acpi.rsdp = rsdp_check(hint);
        acpi.rsdp_source = "start_info";
        if (!acpi.rsdp)
            printf("acpi: start_info.rsdp_paddr 0x%lx holds no valid RSDP\n", hint);
    }
    if (!acpi.rsdp) {
        uint64_t ebda = (uint64_t)(*(volatile uint16_t *)0x40e) << 4;
        if (ebda >= 0x80000 && ebda < 0xa0000)
            acpi.rsdp = rsdp_scan(ebda, ebda + 1024);
        if (!acpi.rsdp)
            acpi.rsdp = rsdp_scan(0xe0000, 0x100000);
        acpi.rsdp_source = "scan";
    }
    if (!acpi.rsdp) {
        printf("acpi: no RSDP found\n");
        return -1;
    }
    int xsdt = acpi.rsdp->revision >= 2 && acpi.rsdp->xsdt_address;
    acpi.root = table_at(xsdt ? acpi.rsdp->xsdt_address : acpi.rsdp->rsdt_address);
    if (!acpi.root || memcmp(acpi.root->signature, xsdt ? "XSDT" : "RSDT", 4)) {
        printf("acpi: root table missing or mislabelled\n");
        acpi.rsdp = NULL;
        return -1;
    }
    unsigned esize = xsdt ? 8 : 4;
    unsigned n = (acpi.root->length - (unsigned)sizeof(struct acpi_header)) / esize;
    for (unsigned i = 0; i < n && acpi.ntables < ACPI_MAX_TABLES; i++) {
        uint32_t off = (uint32_t)sizeof(struct acpi_header) + i * esize;
        uint64_t a = xsdt ? rd64(acpi.root, off) : rd32(acpi.root, off);
        const struct acpi_header *t = table_at(a);
        if (!t) {
            printf("acpi: root entry %u (0x%lx) is not a table\n", i, a);
            continue;
        }
        if (!acpi_checksum_ok(t, t->length))
            printf("acpi: table %.4s at 0x%lx has a bad checksum\n", t->signature, a);
        acpi.tables[acpi.ntables++] = t;
    }
    acpi.fadt = acpi_find("FACP");
    acpi.madt = acpi_find("APIC");
    acpi.mcfg = acpi_find("MCFG");
    if (acpi.fadt) {
        uint64_t d = acpi.fadt->length >= FADT_X_DSDT + 8 ? rd64(acpi.fadt, FADT_X_DSDT) : 0;
        if (!d)
            d = rd32(acpi.fadt, FADT_DSDT);
        acpi.dsdt = table_at(d);
    }
    return 0;
}

const struct acpi_header *acpi_find(const char *sig)
{
    for (unsigned i = 0; i < acpi.ntables; i++) {
        if (!memcmp(acpi.tables[i]->signature, sig, 4))
            return acpi.tables[i];
    }
    return NULL;
}

int acpi_madt(struct acpi_madt_info *out)
{
    const struct acpi_header *m = acpi.madt;

    memset(out, 0, sizeof(*out));
    if (!m)
        return -1;
    out->lapic_addr = rd32(m, 36);
    for (uint32_t off = 44; off + 2 <= m->length;) {
        uint8_t type = rd8(m, off), len = rd8(m, off + 1);
        if (len < 2 || off + len > m->length)
            break;
        if (type == 0 && len >= 8 && (rd32(m, off + 4) & 1)) {
            if (out->ncpus < ACPI_MAX_CPUS)
                out->apic_ids[out->ncpus] = rd8(m, off + 3);
            out->ncpus++;
        } else if (type == 9 && len >= 16 && (rd32(m, off + 8) & 1)) {
            if (out->ncpus < ACPI_MAX_CPUS)
                out->apic_ids[out->ncpus] = rd32(m, off + 4);
            out->ncpus++;
        } else if (type == 1 && len >= 12) {
            if (!out->nioapics++) {
                out->ioapic_addr = rd32(m, off + 4);
                out->ioapic_gsi_base = rd32(m, off + 8);
            }
        } else if (type == 5 && len >= 12) {
            out->lapic_addr = rd64(m, off + 4);
        }
        off += len;
    }
    return 0;
}

void acpi_isa_irq(unsigned irq, uint32_t *gsi, uint16_t *flags)
{
    const struct acpi_header *m = acpi.madt;

    *gsi = irq;
    *flags = 0;
    if (!m)
        return;
    for (uint32_t off = 44; off + 2 <= m->length;) {
        uint8_t type = rd8(m, off), len = rd8(m, off + 1);
        if (len < 2 || off + len > m->length)
            break;
        if (type == 2 && len >= 10 && rd8(m, off + 2) == 0 && rd8(m, off + 3) == irq) {
            *gsi = rd32(m, off + 4);
            *flags = (uint16_t)(rd8(m, off + 8) | (rd8(m, off + 9) << 8));
        }
        off += len;
    }
}

int acpi_mcfg_ecam(uint64_t *base, unsigned *bus_start, unsigned *bus_end)
{
    const struct acpi_header *m = acpi.mcfg;

    if (!m)
        return -1;
    for (uint32_t off = 44; off + 16 <= m->length; off += 16) {
        if ((rd8(m, off + 8) | (rd8(m, off + 9) << 8)) != 0)
            continue;
        *base = rd64(m, off);
        *bus_start = rd8(m, off + 10);
        *bus_end = rd8(m, off + 11);
        return 0;
    }
    return -1;
}

/* An I/O port from an X_ GAS if it names one, else from the legacy 32-bit field. */
static uint16_t fadt_port(uint32_t legacy_off, uint32_t gas_off)
{
    const struct acpi_header *f = acpi.fadt;

    if (!f)
        return 0;
    struct acpi_gas g = rd_gas(f, gas_off);
    if (g.space_id == 1 && g.address && g.address <= 0xffff)
        return (uint16_t)g.address;
    uint32_t p = rd32(f, legacy_off);
    return p <= 0xffff ? (uint16_t)p : 0;
}

uint16_t acpi_pm1a_cnt_port(void)
{
    return fadt_port(FADT_PM1A_CNT_BLK, FADT_X_PM1A_CNT);
}

uint16_t acpi_pm_timer_port(int *bits32)
{
    *bits32 = acpi.fadt && (rd32(acpi.fadt, FADT_FLAGS) & FADT_F_TMR_VAL_EXT);
    return fadt_port(FADT_PM_TMR_BLK, FADT_X_PM_TMR);
}

unsigned acpi_century_index(void)
{
    return acpi.fadt ? rd8(acpi.fadt, FADT_CENTURY) : 0;
}

int acpi_s5_slp_typ(void)
{
    const struct acpi_header *d = acpi.dsdt;

    if (!d)
        return -1;
    const uint8_t *b = (const uint8_t *)d;
    /* The AML is `Name (_S5, Package () { typ_a, typ_b, ... })`: NameOp, "_S5_", PackageOp,
     * PkgLength (1-4 bytes), NumElements, then typ_a as a ByteConst or Zero/One. */
    for (uint32_t i = 36; i + 4 + 4 < d->length; i++) {
        if (memcmp(b + i, "_S5_", 4))
            continue;
        uint32_t p = i + 4;
        if (b[p] != 0x12)
            continue;
        p += 1 + 1 + (b[p + 1] >> 6); /* PackageOp, PkgLength lead byte + follow bytes */
        p += 1;                         /* NumElements */
        if (p + 2 > d->length)
            return -1;
        switch (b[p]) {
        case 0x0a: return b[p + 1];
        case 0x00: return 0;
        case 0x01: return 1;
        default: return -1;
        }
    }
    return -1;
}

int acpi_reset(void)
{
    const struct acpi_header *f = acpi.fadt;

    if (!f || f->length < FADT_RESET_VALUE + 1 || !(rd32(f, FADT_FLAGS) & FADT_F_RESET_REG))
        return -1;
    struct acpi_gas g = rd_gas(f, FADT_RESET_REG);
    uint8_t v = rd8(f, FADT_RESET_VALUE);
    if (g.space_id == 1 && g.address && g.address <= 0xffff) {
        outb(v, (uint16_t)g.address);
        return 0;
    }
    if (g.space_id == 0 && g.address && !reach(g.address, 1)) {
        mmio_write8(g.address, v);
        return 0;
    }
    return -1;
}
