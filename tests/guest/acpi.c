/* acpi: the RSDP is found (from the PVH start info, or the BIOS-area scan), every table the
 * root table lists has a right checksum, FADT, DSDT, MADT and MCFG are there, and the MADT lists
 * as many enabled CPUs as the cmdline's cpus=N. */
#include "runtime.h"

#include "acpi.h"

const char guest_name[] = "acpi";

static void show(const struct acpi_header *t, const char *what)
{
    char sig[5], oem[7];

    memcpy(sig, t->signature, 4);
    sig[4] = '\0';
    memcpy(oem, t->oem_id, 6);
    oem[6] = '\0';
    int ok = acpi_checksum_ok(t, t->length);
    printf("acpi: %s %s at %p length %u revision %u OEM \"%s\" checksum %s\n", what, sig,
           (const void *)t, t->length, t->revision, oem, ok ? "ok" : "BAD");
    ASSERT(ok);
}

int guest_main(void)
{
    ASSERT(acpi_init() == 0);
    const struct acpi_rsdp *r = acpi.rsdp;
    printf("acpi: RSDP at %p (via %s) revision %u RSDT 0x%x XSDT 0x%lx\n", (const void *)r,
           acpi.rsdp_source, r->revision, r->rsdt_address,
           r->revision >= 2 ? r->xsdt_address : 0UL);
    ASSERT(acpi_checksum_ok(r, 20));
    if (r->revision >= 2)
        ASSERT(acpi_checksum_ok(r, r->length));
    if (pvh_boot.valid && pvh_boot.info.rsdp_paddr)
        ASSERT_EQ((uintptr_t)r, pvh_boot.info.rsdp_paddr);

    show(acpi.root, "root");
    for (unsigned i = 0; i < acpi.ntables; i++)
        show(acpi.tables[i], "table");
    ASSERT(acpi.fadt);
    ASSERT(acpi.dsdt);
    ASSERT(!memcmp(acpi.dsdt->signature, "DSDT", 4));
    show(acpi.dsdt, "FADT->");
    ASSERT(acpi.madt);
    ASSERT(acpi.mcfg);

    struct acpi_madt_info m;
    ASSERT(acpi_madt(&m) == 0);
    printf("acpi: MADT: LAPIC at 0x%lx, %u enabled CPUs, %u IOAPIC(s), first at 0x%lx GSI %u\n",
           m.lapic_addr, m.ncpus, m.nioapics, m.ioapic_addr, m.ioapic_gsi_base);
    ASSERT(m.nioapics >= 1);
    ASSERT(m.lapic_addr != 0);
    uint64_t cpus;
    ASSERT(cmdline_get_size("cpus", &cpus) == 0);
    ASSERT_EQ(m.ncpus, cpus);

    uint32_t gsi;
    uint16_t flags;
    acpi_isa_irq(4, &gsi, &flags);
    printf("acpi: COM1 IRQ 4 -> GSI %u flags 0x%x; PM1a_CNT port 0x%x; _S5 SLP_TYP %d\n", gsi,
           flags, acpi_pm1a_cnt_port(), acpi_s5_slp_typ());
    ASSERT(acpi_pm1a_cnt_port() != 0);
    ASSERT(acpi_s5_slp_typ() >= 0);
    return 0;
}
