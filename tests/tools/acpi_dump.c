/* acpi-dump: build the machine's ACPI tables and write each one to DIR/<signature>.dat, found
 * the way a guest finds them (RSDP -> XSDT -> tables, FADT -> DSDT and FACS), so that
 * `iasl -d` can check every table on its own.
 * Usage: acpi-dump [--cpus N] [--mmio64-size BYTES] [--pci-intx-gsi GSI] DIR */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"

static uint8_t blob[LAYOUT_ACPI_SIZE];
static int blob_len;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The blob offset of guest address gpa holding len bytes, or -1 if it lies outside. */
static long gpa_off(uint64_t gpa, uint64_t len)
{
    if (gpa < LAYOUT_ACPI_BASE || gpa - LAYOUT_ACPI_BASE > (uint64_t)blob_len ||
        len > (uint64_t)blob_len - (gpa - LAYOUT_ACPI_BASE))
        return -1;
    return (long)(gpa - LAYOUT_ACPI_BASE);
}

static int write_table(const char *dir, const char *sig, const uint8_t *p, size_t len)
{
    char name[4096], lower[5] = { 0 };

    for (int i = 0; i < 4 && sig[i]; i++)
        lower[i] = (char)tolower((unsigned char)(sig[i] == ' ' ? '_' : sig[i]));
    snprintf(name, sizeof(name), "%s/%s.dat", dir, lower);
    FILE *f = fopen(name, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "acpi-dump: %s: %s\n", name, strerror(errno));
        return -1;
    }
    printf("%s\n", name);
    return 0;
}

/* Write the table at gpa, whose length is in its header. */
static int dump_at(const char *dir, uint64_t gpa)
{
    long off = gpa_off(gpa, 8);
    if (off < 0) {
        fprintf(stderr, "acpi-dump: table pointer 0x%llx outside the tables\n",
                (unsigned long long)gpa);
        return -1;
    }
    uint32_t len = get32(blob + off + 4);
    if (gpa_off(gpa, len) < 0) {
        fprintf(stderr, "acpi-dump: table at 0x%llx overruns\n", (unsigned long long)gpa);
        return -1;
    }
    char sig[5] = { 0 };
    memcpy(sig, blob + off, 4);
    return write_table(dir, sig, blob + off, len);
}

int main(int argc, char **argv)
{
    struct acpi_config cfg = {
        .ncpus = 4,
        .ecam_base = LAYOUT_ECAM_BASE,
        .mmio32_base = LAYOUT_MMIO32_BASE,
        .mmio32_size = LAYOUT_MMIO32_SIZE,
        .mmio64_base = LAYOUT_HIGH_RAM_BASE + (4ULL << 30),
        .mmio64_size = LAYOUT_MMIO64_SIZE,
    };
    const char *dir = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpus") && i + 1 < argc)
            cfg.ncpus = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--mmio64-size") && i + 1 < argc)
            cfg.mmio64_size = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--pci-intx-gsi") && i + 1 < argc)
            cfg.pci_intx_gsi_base = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            dir = NULL, i = argc;
    }
    if (!dir) {
        fprintf(stderr, "usage: acpi-dump [--cpus N] [--mmio64-size BYTES] [--pci-intx-gsi GSI] "
                        "DIR\n");
        return 2;
    }
    blob_len = acpi_build(&cfg, blob, sizeof(blob), LAYOUT_ACPI_BASE);
    if (blob_len < 0) {
        fprintf(stderr, "acpi-dump: acpi_build: %s\n", strerror(-blob_len));
        return 1;
    }

    const uint8_t *rsdp = blob;
    uint64_t xsdt = get64(rsdp + 24);
    if (write_table(dir, "rsdp", rsdp, get32(rsdp + 20)) < 0 || dump_at(dir, xsdt) < 0)
        return 1;
    long xoff = gpa_off(xsdt, 36);
    if (xoff < 0)
        return 1;
    uint32_t xlen = get32(blob + xoff + 4);
    for (uint32_t e = 36; e + 8 <= xlen; e += 8) {
        uint64_t gpa = get64(blob + xoff + e);
        if (dump_at(dir, gpa) < 0)
            return 1;
        long toff = gpa_off(gpa, 148);
        if (toff >= 0 && !memcmp(blob + toff, "FACP", 4)) {
            /* FADT: X_FIRMWARE_CTRL and X_DSDT. */
            if (dump_at(dir, get64(blob + toff + 132)) < 0 ||
                dump_at(dir, get64(blob + toff + 140)) < 0)
                return 1;
        }
    }
    return 0;
}
