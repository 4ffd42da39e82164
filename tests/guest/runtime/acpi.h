/* ACPI as a guest's firmware interface: find the RSDP (PVH start info, else the BIOS area scan),
 * walk the XSDT/RSDT, and read the few FADT/MADT/MCFG/DSDT facts the tests and the runtime need.
 * Tables are firmware input: every read is bounded by the table's own length. */
#ifndef GUEST_ACPI_H
#define GUEST_ACPI_H

#include <stdint.h>

struct acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
    char signature[8];
    uint8_t checksum;
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    /* revision 2 and later */
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    uint8_t reserved[3];
} __attribute__((packed));

/* A Generic Address Structure. */
struct acpi_gas {
    uint8_t space_id; /* 0 memory, 1 I/O */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} __attribute__((packed));

#define ACPI_MAX_TABLES 32
#define ACPI_MAX_CPUS   64

struct acpi_info {
    const struct acpi_rsdp *rsdp;
    const char *rsdp_source;         /* "start_info" or "scan" */
    const struct acpi_header *root;  /* XSDT, or RSDT if there is none */
    unsigned ntables;
    const struct acpi_header *tables[ACPI_MAX_TABLES];
    const struct acpi_header *fadt, *madt, *mcfg, *dsdt;
};

/* The MADT digested. */
struct acpi_madt_info {
    uint64_t lapic_addr;
    unsigned ncpus;                   /* enabled local APICs (xAPIC and x2APIC entries) */
    uint32_t apic_ids[ACPI_MAX_CPUS]; /* of the enabled ones, in table order */
    unsigned nioapics;
    uint64_t ioapic_addr;             /* the first IOAPIC */
    uint32_t ioapic_gsi_base;
};

extern struct acpi_info acpi;

/* Finds the RSDP and the tables it lists, mapping any above 4 GiB. Returns 0, or -1 with a line
 * printed saying what is missing or broken. Idempotent. */
int acpi_init(void);
/* 1 if the bytes sum to 0 mod 256. */
int acpi_checksum_ok(const void *p, uint32_t len);
/* The first table with this signature (listed in the root table), or NULL. */
const struct acpi_header *acpi_find(const char *sig);
/* Parses the MADT. Returns 0, or -1 if there is none. */
int acpi_madt(struct acpi_madt_info *out);
/* The GSI and MADT flags (polarity bits 1:0, trigger bits 3:2) for an ISA IRQ, applying any
 * interrupt source override; without one the GSI is the IRQ and the flags 0 (bus default). */
void acpi_isa_irq(unsigned irq, uint32_t *gsi, uint16_t *flags);
/* The first PCIe ECAM window (segment 0) from the MCFG. Returns 0, or -1 without one. */
int acpi_mcfg_ecam(uint64_t *base, unsigned *bus_start, unsigned *bus_end);
/* The I/O port of PM1a_CNT, or 0. */
uint16_t acpi_pm1a_cnt_port(void);
/* The I/O port of the PM timer, or 0; *bits32 says whether it counts 32 bits or 24. */
uint16_t acpi_pm_timer_port(int *bits32);
/* The FADT's CENTURY CMOS index, or 0. */
unsigned acpi_century_index(void);
/* SLP_TYPa for S5 read from the DSDT's \_S5 package, or -1 if not found. */
int acpi_s5_slp_typ(void);
/* Requests a reset through the FADT reset register if it has one (returns 0 having written it),
 * or returns -1. */
int acpi_reset(void);

#endif
