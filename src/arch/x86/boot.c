#include "arch/x86/boot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "util/err.h"

#define GDT_CODE32 0x08
#define GDT_DATA   0x18
#define GDT_CODE64 0x10

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

enum boot_format boot_detect(const uint8_t *image, size_t size)
{
    if (size >= 4 && memcmp(image, "\x7f" "ELF", 4) == 0)
        return BOOT_FORMAT_ELF;
    if (size >= 0x206 && image[0x1fe] == 0x55 && image[0x1ff] == 0xaa &&
        memcmp(image + 0x202, "HdrS", 4) == 0)
        return BOOT_FORMAT_BZIMAGE;
    return BOOT_FORMAT_UNKNOWN;
}

int boot_load(const struct guest_mem *mem, const struct boot_input *in, struct boot_entry *entry,
              char *why, size_t why_len)
{
    switch (boot_detect(in->kernel, in->kernel_size)) {
    case BOOT_FORMAT_BZIMAGE:
        return boot_linux_load(mem, in, entry, why, why_len);
    case BOOT_FORMAT_ELF:
        return boot_pvh_load(mem, in, entry, why, why_len);
    default:
        snprintf(why, why_len, "is neither a Linux bzImage nor an ELF with a PVH entry note");
        return -ENOEXEC;
    }
}

/* The GDT both protocols expect: the Linux boot protocol wants __BOOT_CS at 0x10 and __BOOT_DS at
 * 0x18; PVH guests load their own, but a valid table at entry costs nothing. */
static void boot_write_gdt(const struct guest_mem *mem)
{
    static const uint64_t gdt[4] = {
        0,
        0x00cf9b000000ffffULL, /* 0x08: 32-bit code, flat */
        0x00af9b000000ffffULL, /* 0x10: 64-bit code */
        0x00cf93000000ffffULL, /* 0x18: data, flat */
    };
    memcpy(gpa_ptr(mem, LAYOUT_BOOT_GDT, sizeof(gdt)), gdt, sizeof(gdt));
}

static struct vcpu_segment flat_segment(uint16_t selector, bool code, bool long_mode)
{
    return (struct vcpu_segment){
        .base = 0, .limit = 0xffffffff, .selector = selector,
        .type = code ? 0xb : 0x3, .present = 1, .dpl = 0, .db = long_mode && code ? 0 : 1,
        .s = 1, .l = long_mode && code, .g = 1,
    };
}

static void boot_set_segments(struct boot_entry *e, uint16_t cs, bool long_mode)
{
    struct vcpu_sregs *s = &e->sregs;
    s->cs = flat_segment(cs, true, long_mode);
    s->ds = s->es = s->fs = s->gs = s->ss = flat_segment(GDT_DATA, false, long_mode);
    s->gdt = (struct vcpu_dtable){LAYOUT_BOOT_GDT, 4 * 8 - 1};
    s->idt = (struct vcpu_dtable){0, 0};
    /* A busy 64-bit TSS and an unusable LDT: what VMX entry checks require of any guest. */
    s->tr = (struct vcpu_segment){.limit = 0x67, .type = 0xb, .present = 1};
    s->ldt = (struct vcpu_segment){.type = 0x2, .present = 1, .unusable = 1};
    s->apic_base = LAYOUT_LAPIC_BASE | (1u << 11) | (1u << 8); /* enabled, BSP */
    e->regs.rflags = 0x2;
}

void boot_setup_protected32(const struct guest_mem *mem, struct boot_entry *entry)
{
    boot_write_gdt(mem);
    boot_set_segments(entry, GDT_CODE32, false);
    entry->sregs.cr0 = CR0_PE | CR0_ET;
}

void boot_setup_long64(const struct guest_mem *mem, struct boot_entry *entry)
{
    boot_write_gdt(mem);
    /* Identity-map the low 4 GiB with 2 MiB pages: PML4 -> PDPT -> four page directories. */
    uint64_t *pml4 = gpa_ptr(mem, LAYOUT_PAGE_TABLES, 6 * 4096);
    memset(pml4, 0, 6 * 4096);
    uint64_t *pdpt = pml4 + 512;
    uint64_t *pd = pml4 + 1024;
    pml4[0] = (LAYOUT_PAGE_TABLES + 0x1000) | 0x3;
    for (unsigned i = 0; i < 4; i++)
        pdpt[i] = (LAYOUT_PAGE_TABLES + 0x2000 + i * 0x1000ULL) | 0x3;
    for (unsigned i = 0; i < 4 * 512; i++)
        pd[i] = ((uint64_t)i << 21) | 0x83; /* present, writable, 2 MiB page */
    boot_set_segments(entry, GDT_CODE64, true);
    entry->sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
    entry->sregs.cr3 = LAYOUT_PAGE_TABLES;
    entry->sregs.cr4 = CR4_PAE;
    entry->sregs.efer = EFER_LME | EFER_LMA;
}

uint64_t boot_place_initrd(const struct guest_mem *mem, const struct boot_input *in,
                           uint64_t floor, uint64_t limit, char *why, size_t why_len)
{
    uint64_t top = MIN(limit, guest_mem_low_end(mem));
    if (in->initrd_size > top || ALIGN_DOWN(top - in->initrd_size, 4096) < floor) {
        snprintf(why, why_len, "initrd of %zu bytes does not fit in guest RAM below 0x%llx",
                 in->initrd_size, (unsigned long long)top);
        return 0;
    }
    uint64_t addr = ALIGN_DOWN(top - in->initrd_size, 4096);
    memcpy(gpa_ptr(mem, addr, in->initrd_size), in->initrd, in->initrd_size);
    return addr;
}
