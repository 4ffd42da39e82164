/* The guest-physical and I/O-port map of Vireo's x86 machine. Boot code, ACPI, devices and the
 * test guests' expectations all derive from these constants; change them here only. */
#ifndef VIREO_ARCH_X86_LAYOUT_H
#define VIREO_ARCH_X86_LAYOUT_H

/* Low memory used by the direct-boot loaders (all below 1 MiB, inside RAM). */
#define LAYOUT_BOOT_GDT       0x5000ULL  /* flat GDT the entry state refers to */
#define LAYOUT_PVH_INFO       0x6000ULL  /* struct hvm_start_info, memmap right after it */
#define LAYOUT_BOOT_PARAMS    0x7000ULL  /* Linux zero page */
#define LAYOUT_PAGE_TABLES    0x9000ULL  /* PML4, PDPT, 4 PDs: identity map of the low 4 GiB */
#define LAYOUT_CMDLINE        0x20000ULL
#define LAYOUT_CMDLINE_MAX    0x10000ULL
#define LAYOUT_EBDA           0x9fc00ULL /* RAM below this is usable; up to 1 MiB is reserved */
#define LAYOUT_ACPI_BASE      0xe0000ULL /* RSDP first (legacy scan area), tables after it */
#define LAYOUT_ACPI_SIZE      0x20000ULL
#define LAYOUT_HIGH_RAM_START 0x100000ULL /* kernels load at 1 MiB */

/* The 32-bit hole: RAM stops at 3 GiB; the rest of guest memory continues at 4 GiB. */
#define LAYOUT_LOW_RAM_MAX    0xc0000000ULL
#define LAYOUT_MMIO32_BASE    0xc0000000ULL /* PCI 32-bit BAR window */
#define LAYOUT_MMIO32_SIZE    0x20000000ULL
#define LAYOUT_ECAM_BASE      0xe0000000ULL /* PCIe ECAM, buses 0..255 */
#define LAYOUT_ECAM_SIZE      0x10000000ULL
#define LAYOUT_IOAPIC_BASE    0xfec00000ULL
#define LAYOUT_LAPIC_BASE     0xfee00000ULL
#define LAYOUT_HIGH_RAM_BASE  0x100000000ULL
#define LAYOUT_MMIO64_SIZE    0x800000000ULL /* 32 GiB 64-bit BAR window above the end of RAM */

/* I/O ports. */
#define PORT_PIC_MASTER  0x20
#define PORT_PIT         0x40
#define PORT_I8042_DATA  0x60
#define PORT_I8042_CMD   0x64
#define PORT_CMOS_INDEX  0x70
#define PORT_CMOS_DATA   0x71
#define PORT_PIC_SLAVE   0xa0
#define PORT_DEBUG_EXIT  0xf4   /* 4 bytes, as QEMU's isa-debug-exit used by kvm-unit-tests */
#define PORT_PVPANIC     0x505  /* 1 byte: the guest kernel reports a panic (ACPI QEMU0001) */
#define PORT_COM1        0x3f8
#define PORT_PCI_CONFIG_ADDR 0xcf8
#define PORT_PCI_CONFIG_DATA 0xcfc
#define PORT_ACPI_PM_BASE 0x600 /* PM1a_EVT (4 bytes), PM1a_CNT at +4 (2), PM_TMR at +8 (4) */
#define PORT_ACPI_PM1_EVT (PORT_ACPI_PM_BASE + 0)
#define PORT_ACPI_PM1_CNT (PORT_ACPI_PM_BASE + 4)
#define PORT_ACPI_PM_TMR  (PORT_ACPI_PM_BASE + 8)
#define PORT_ACPI_RESET   0x610 /* FADT RESET_REG: write ACPI_RESET_VALUE to reset */
#define ACPI_RESET_VALUE  0x1

/* Interrupt lines (GSIs on the IOAPIC; ISA IRQ n is GSI n except the timer: IRQ0 -> GSI2). */
#define IRQ_I8042_KBD 1
#define IRQ_COM1 4
#define IRQ_SCI  9
#define IOAPIC_PINS 24

/* ACPI sleep type that _S5 advertises and PM1a_CNT recognises as "power off". */
#define ACPI_S5_SLP_TYP 5

#endif
