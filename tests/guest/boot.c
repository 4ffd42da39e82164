/* boot: the runtime reached long mode from the PVH entry; the start info is well-formed and the
 * command line the VMM was given is visible. */
#include "runtime.h"

#include "defs.h"

const char guest_name[] = "boot";

int guest_main(void)
{
    const struct hvm_start_info *si = &pvh_boot.info;

    extern const char __image_start[];
    printf("boot: image at %p, start_info at 0x%x\n", (const void *)__image_start,
           pvh_boot.info_paddr);
    uint64_t efer = rdmsr(MSR_EFER);
    printf("boot: EFER 0x%lx CR0 0x%lx CR4 0x%lx CR3 0x%lx\n", efer, read_cr0(), read_cr4(),
           read_cr3());
    ASSERT(efer & EFER_LMA);
    ASSERT(read_cr0() & CR0_PG);
    ASSERT(read_cr4() & CR4_PAE);

    uint32_t a, b, c, d;
    char vendor[13];
    cpuid(0, 0, &a, &b, &c, &d);
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    printf("boot: CPUID max leaf %u vendor %s\n", a, vendor);
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    ASSERT(d & (1u << 29)); /* long mode advertised, as we are in it */

    ASSERT(pvh_boot.info_paddr != 0);
    ASSERT((pvh_boot.info_paddr & 7) == 0);
    printf("boot: start_info magic 0x%x version %u flags 0x%x nr_modules %u\n", si->magic,
           si->version, si->flags, si->nr_modules);
    ASSERT_EQ(si->magic, PVH_MAGIC);
    ASSERT(pvh_boot.valid);
    printf("boot: cmdline_paddr 0x%lx rsdp_paddr 0x%lx memmap_paddr 0x%lx memmap_entries %u\n",
           si->cmdline_paddr, si->rsdp_paddr, si->memmap_paddr, si->memmap_entries);
    ASSERT(si->cmdline_paddr != 0);
    if (si->version >= 1) {
        ASSERT(si->memmap_paddr != 0);
        ASSERT(si->memmap_entries > 0);
    }
    if (si->nr_modules)
        ASSERT(si->modlist_paddr != 0);

    printf("boot: cmdline \"%s\"\n", pvh_boot.cmdline);
    /* The harness puts boot_token=<random> on the command line and compares the echo. */
    char token[64];
    ASSERT(cmdline_get("boot_token", token, sizeof(token)) > 0);
    printf("boot: boot_token %s\n", token);
    return 0;
}
