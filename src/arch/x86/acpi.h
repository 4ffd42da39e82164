/* The ACPI tables of Vireo's x86 machine, generated at start-up from the machine's shape.
 * Debian's kernel has no MP-table support, so SMP, interrupt routing, PCI and power-off all rest
 * on what these tables say. Addresses and ports come from arch/x86/layout.h; the PM block's
 * register sizes and timer width from devices/acpi_pm.h, the CMOS century index from
 * devices/rtc.h, so that the FADT always describes the devices that are there. */
#ifndef VIREO_ARCH_X86_ACPI_H
#define VIREO_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* APIC IDs 0..254 fit the MADT's xAPIC entries (255 is the broadcast ID). */
#define ACPI_MAX_CPUS 255

#define ACPI_OEM_ID       "VIREO "   /* 6 bytes */
#define ACPI_OEM_TABLE_ID "VIREOVM " /* 8 bytes */

struct acpi_config {
    unsigned ncpus;                    /* 1..ACPI_MAX_CPUS; APIC IDs 0..ncpus-1 */
    uint64_t ecam_base;                /* MCFG for buses 0..255; must end below 4 GiB */
    uint64_t mmio32_base, mmio32_size; /* PCI root bridge _CRS windows; below 4 GiB */
    uint64_t mmio64_base, mmio64_size; /* 64-bit window (size 0: omit) */
    /* First of four IOAPIC inputs that PCI INTA..INTD of bus 0 are wired to, rotated by slot
     * as PCI bridges do (slot s, pin p -> base + (s + p) % 4), listed in \_SB.PCI0._PRT; level,
     * active low. 0: no _PRT (devices use MSI/MSI-X only). */
    unsigned pci_intx_gsi_base;
};

/* Build RSDP, XSDT, FADT, FACS, DSDT, MADT and MCFG into buf, which the guest sees at
 * guest-physical base_gpa (LAYOUT_ACPI_BASE). The RSDP is at offset 0, so a base in the
 * 0xe0000-0xfffff legacy area lets the guest find it by scanning. Returns the bytes used,
 * -ENOSPC if len is too small, or -EINVAL for a configuration the tables cannot describe. */
int acpi_build(const struct acpi_config *cfg, uint8_t *buf, size_t len, uint64_t base_gpa);

#endif
