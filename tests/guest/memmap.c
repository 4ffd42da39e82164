/* memmap: the PVH memory map is sane and its RAM adds up to the --memory the VMM was given
 * (passed as mem_expect=SIZE on the command line). RAM above 4 GiB is mapped, written with a
 * pattern and read back, so "there" means usable, not just listed. */
#include "runtime.h"

#include "acpi.h"
#include "paging.h"

const char guest_name[] = "memmap";

#define GiB (1UL << 30)
#define MiB (1UL << 20)

static const char *type_name(uint32_t t)
{
    switch (t) {
    case E820_RAM: return "RAM";
    case E820_RESERVED: return "reserved";
    case E820_ACPI: return "ACPI";
    case E820_NVS: return "NVS";
    case E820_UNUSABLE: return "unusable";
    default: return "other";
    }
}

/* Writes an address-dependent pattern at points spread over the range, then reads all back:
 * catches ranges that alias each other as well as ones that are not there. */
static void check_ram(uint64_t start, uint64_t len)
{
    enum { POINTS = 16 };
    uint64_t step = (len / POINTS) & ~7ULL;
    uint64_t addrs[POINTS + 1];
    unsigned n = 0;

    for (unsigned i = 0; i < POINTS && step; i++)
        addrs[n++] = start + i * step;
    addrs[n++] = (start + len - 8) & ~7ULL;
    for (unsigned i = 0; i < n; i++)
        mmio_write64(addrs[i], addrs[i] ^ 0x5a5aa5a5c3c33c3cULL);
    for (unsigned i = 0; i < n; i++) {
        uint64_t got = mmio_read64(addrs[i]);
        if (got != (addrs[i] ^ 0x5a5aa5a5c3c33c3cULL)) {
            printf("memmap: RAM at 0x%lx read back 0x%lx\n", addrs[i], got);
            ASSERT(!"RAM pattern mismatch");
        }
    }
    printf("memmap: wrote and read back %u words in 0x%lx-0x%lx\n", n, start, start + len - 1);
}

int guest_main(void)
{
    uint64_t expect;
    unsigned n = pvh_boot.memmap_entries;

    ASSERT(cmdline_get_size("mem_expect", &expect) == 0);
    printf("memmap: mem_expect=%lu MiB, %u map entries\n", expect / MiB, n);
    ASSERT(n > 0);

    uint64_t ram = 0, ram_high = 0, prev_end = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct hvm_memmap_table_entry *e = &pvh_boot.memmap[i];
        printf("memmap: [%2u] 0x%016lx-0x%016lx %s\n", i, e->addr, e->addr + e->size - 1,
               type_name(e->type));
        ASSERT(e->size > 0);
        ASSERT(e->addr + e->size > e->addr);
        /* Sorted and non-overlapping, as every OS expects of an e820 map it does not sanitize. */
        ASSERT(i == 0 || e->addr >= prev_end);
        prev_end = e->addr + e->size;
        if (e->type != E820_RAM)
            continue;
        ram += e->size;
        if (e->addr + e->size > 4 * GiB)
            ram_high += e->addr + e->size - (e->addr > 4 * GiB ? e->addr : 4 * GiB);
        /* RAM never covers the IOAPIC/LAPIC/BIOS-flash top of the 32-bit space. */
        ASSERT(e->addr + e->size <= 0xfec00000ULL || e->addr >= 4 * GiB);
    }
    printf("memmap: RAM total %lu KiB (%lu KiB above 4 GiB)\n", ram >> 10, ram_high >> 10);

    /* The map may keep up to the legacy 640K-1M window out of RAM; nothing else is missing. */
    ASSERT(ram <= expect);
    ASSERT(ram + MiB >= expect);

    /* Our image is in RAM. */
    extern const char __image_start[], __image_end[];
    int image_in_ram = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct hvm_memmap_table_entry *e = &pvh_boot.memmap[i];
        if (e->type == E820_RAM && e->addr <= (uintptr_t)__image_start &&
            e->addr + e->size >= (uintptr_t)__image_end)
            image_in_ram = 1;
    }
    ASSERT(image_in_ram);

    /* The 32-bit hole pushes some RAM above 4 GiB once memory passes 3 GiB (QEMU's q35 and
     * Vireo start the hole at or below 3 GiB). */
    if (expect > 3 * GiB)
        ASSERT(ram_high > 0);
    for (unsigned i = 0; i < n; i++) {
        const struct hvm_memmap_table_entry *e = &pvh_boot.memmap[i];
        if (e->type != E820_RAM || e->addr + e->size <= 4 * GiB)
            continue;
        uint64_t start = e->addr > 4 * GiB ? e->addr : 4 * GiB;
        uint64_t len = e->addr + e->size - start;
        ASSERT(paging_map_identity(start, len, 0) == 0);
        check_ram(start, len);
    }
    return 0;
}
