/* PVH direct boot: an ELF kernel whose XEN_ELFNOTE_PHYS32_ENTRY note gives a 32-bit protected-mode
 * entry point, started with %ebx pointing at struct hvm_start_info (Xen's
 * include/public/arch-x86/hvm/start_info.h, the protocol QEMU and Firecracker also use). */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "util/err.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* An ELF read through bounds checks only: every offset and size in it is untrusted. */
struct elf_view {
    const uint8_t *data;
    size_t size;
    bool is64;
};

static const void *elf_at(const struct elf_view *elf, uint64_t off, uint64_t len)
{
    if (off > elf->size || len > elf->size - off)
        return NULL;
    return elf->data + off;
}

struct elf_segment {
    uint32_t type;
    uint64_t offset, paddr, filesz, memsz;
};

static bool elf_segment(const struct elf_view *elf, unsigned i, struct elf_segment *seg)
{
    /* e_phoff is the image's choice and may be odd: copy the entry out rather than read it
     * through a misaligned pointer. */
    if (elf->is64) {
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf->data;
        Elf64_Phdr ph;
        const void *p = elf_at(elf, eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (!p || eh->e_phentsize != sizeof(ph))
            return false;
        memcpy(&ph, p, sizeof(ph));
        *seg = (struct elf_segment){ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz};
    } else {
        const Elf32_Ehdr *eh = (const Elf32_Ehdr *)elf->data;
        Elf32_Phdr ph;
        const void *p = elf_at(elf, eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (!p || eh->e_phentsize != sizeof(ph))
            return false;
        memcpy(&ph, p, sizeof(ph));
        *seg = (struct elf_segment){ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz};
    }
    return true;
}

/* Walk the notes of one PT_NOTE segment for Xen's PHYS32_ENTRY; 0 if absent. */
static uint64_t elf_find_pvh_entry(const struct elf_view *elf, const struct elf_segment *seg)
{
    const uint8_t *p = elf_at(elf, seg->offset, seg->filesz);
    if (!p)
        return 0;
    uint64_t pos = 0;
    while (seg->filesz - pos >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, p + pos, 4);
        memcpy(&descsz, p + pos + 4, 4);
        memcpy(&type, p + pos + 8, 4);
        uint64_t name_off = pos + 12;
        uint64_t desc_off = name_off + ALIGN_UP((uint64_t)namesz, 4);
        uint64_t next = desc_off + ALIGN_UP((uint64_t)descsz, 4);
        if (next > seg->filesz)
            return 0;
        if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && memcmp(p + name_off, "Xen", 4) == 0 &&
            (descsz == 4 || descsz == 8)) {
            uint64_t entry = 0;
            memcpy(&entry, p + desc_off, descsz);
            return entry ? entry : 0;
        }
        pos = next;
    }
    return 0;
}

static int elf_open(struct elf_view *elf, const uint8_t *data, size_t size, char *why,
                    size_t why_len)
{
    *elf = (struct elf_view){data, size, false};
    if (size < EI_NIDENT || (data[EI_CLASS] != ELFCLASS64 && data[EI_CLASS] != ELFCLASS32)) {
        snprintf(why, why_len, "is not a valid ELF file");
        return -ENOEXEC;
    }
    elf->is64 = data[EI_CLASS] == ELFCLASS64;
    size_t ehsize = elf->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    uint16_t machine;
    if (size < ehsize) {
        snprintf(why, why_len, "is a truncated ELF file (%zu bytes)", size);
        return -ENOEXEC;
    }
    memcpy(&machine, data + 18, 2);
    if (data[EI_DATA] != ELFDATA2LSB || (machine != EM_X86_64 && machine != EM_386)) {
        snprintf(why, why_len, "is an ELF file for another architecture");
        return -ENOEXEC;
    }
    return 0;
}

static unsigned elf_phnum(const struct elf_view *elf)
{
    return elf->is64 ? ((const Elf64_Ehdr *)elf->data)->e_phnum
                     : ((const Elf32_Ehdr *)elf->data)->e_phnum;
}

int boot_pvh_load(const struct guest_mem *mem, const struct boot_input *in,
                  struct boot_entry *entry, char *why, size_t why_len)
{
    struct elf_view elf;
    int rc = elf_open(&elf, in->kernel, in->kernel_size, why, why_len);
    if (rc < 0)
        return rc;
    uint64_t pvh_entry = 0, image_end = 0;
    unsigned phnum = elf_phnum(&elf);
    for (unsigned i = 0; i < phnum; i++) {
        struct elf_segment seg;
        if (!elf_segment(&elf, i, &seg)) {
            snprintf(why, why_len, "has a program header table outside the file");
            return -ENOEXEC;
        }
        if (seg.type == PT_NOTE && !pvh_entry)
            pvh_entry = elf_find_pvh_entry(&elf, &seg);
        if (seg.type != PT_LOAD)
            continue;
        const uint8_t *src = elf_at(&elf, seg.offset, seg.filesz);
        uint8_t *dst = gpa_ptr(mem, seg.paddr, seg.memsz);
        if (!src || seg.filesz > seg.memsz) {
            snprintf(why, why_len, "has a segment outside the file");
            return -ENOEXEC;
        }
        if (seg.paddr < LAYOUT_HIGH_RAM_START) {
            /* Low memory holds the boot tables: no amount of RAM makes this image loadable. */
            snprintf(why, why_len, "has a segment at 0x%llx, below 1 MiB where PVH kernels "
                     "cannot load", (unsigned long long)seg.paddr);
            return -ENOEXEC;
        }
        if (!dst) {
            snprintf(why, why_len, "has a segment at 0x%llx+0x%llx outside guest RAM",
                     (unsigned long long)seg.paddr, (unsigned long long)seg.memsz);
            return -E2BIG;
        }
        memcpy(dst, src, seg.filesz);
        memset(dst + seg.filesz, 0, seg.memsz - seg.filesz);
        image_end = MAX(image_end, seg.paddr + seg.memsz);
    }
    if (!pvh_entry) {
        snprintf(why, why_len, "is an ELF without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
        return -ENOEXEC;
    }
    if (pvh_entry > UINT32_MAX) {
        snprintf(why, why_len, "has a PVH entry point above 4 GiB (0x%llx): a 32-bit entry "
                 "cannot reach it", (unsigned long long)pvh_entry);
        return -ENOEXEC;
    }

    struct pvh_layout layout;
    pvh_layout_init(&layout, LAYOUT_PVH_INFO);
    struct hvm_start_info *si = gpa_ptr(mem, layout.start_info, PVH_INFO_AREA_SIZE);
    memset(si, 0, PVH_INFO_AREA_SIZE);
    si->magic = HVM_START_MAGIC;
    si->version = 1;
    si->rsdp_paddr = in->rsdp_gpa;

    size_t cmdline_len = strlen(in->cmdline);
    if (cmdline_len >= LAYOUT_CMDLINE_MAX) {
        snprintf(why, why_len, "command line too long (%zu bytes, at most %llu)", cmdline_len,
                 LAYOUT_CMDLINE_MAX - 1);
        return -E2BIG;
    }
    memcpy(gpa_ptr(mem, LAYOUT_CMDLINE, cmdline_len + 1), in->cmdline, cmdline_len + 1);
    si->cmdline_paddr = LAYOUT_CMDLINE;

    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(mem, map);
    struct hvm_memmap_table_entry *mm = gpa_ptr(mem, layout.memmap, n * sizeof(*mm));
    for (unsigned i = 0; i < n; i++)
        mm[i] = (struct hvm_memmap_table_entry){map[i].addr, map[i].size, map[i].type, 0};
    si->memmap_paddr = layout.memmap;
    si->memmap_entries = n;

    if (in->initrd) {
        uint64_t addr = boot_place_initrd(mem, in, ALIGN_UP(image_end, 4096),
                                          LAYOUT_LOW_RAM_MAX, why, why_len);
        if (!addr)
            return -E2BIG;
        struct hvm_modlist_entry *mod = gpa_ptr(mem, layout.modlist, sizeof(*mod));
        *mod = (struct hvm_modlist_entry){addr, in->initrd_size, 0, 0};
        si->modlist_paddr = layout.modlist;
        si->nr_modules = 1;
    }

    memset(entry, 0, sizeof(*entry));
    boot_setup_protected32(mem, entry);
    entry->regs.rip = pvh_entry;
    entry->regs.rbx = layout.start_info;
    return 0;
}
