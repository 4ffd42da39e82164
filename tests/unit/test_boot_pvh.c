/* The PVH loader against synthetic ELF64 and ELF32 images: segments loaded and bss cleared, the
 * hvm_start_info it builds (command line, RSDP, memory map, initrd module), the 32-bit entry
 * state; and the refusals for malformed images, each with its errno and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "vmm/memory.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

#define PVH_ENTRY 0x100040u
#define MAX_SEGS 4

struct seg {
    uint32_t type;
    uint64_t offset, paddr, filesz, memsz;
};

/* A description of the ELF file, serialised by elf_build(); refusal tests bend one field. */
struct elf_spec {
    bool is64;
    uint16_t machine;
    uint8_t data; /* ELFDATA2LSB */
    uint64_t phoff;
    uint16_t phnum, phentsize;
    struct seg segs[MAX_SEGS];
    uint64_t note_off;
    uint8_t note[256];
    size_t note_len;
    size_t file_size;
};

static size_t note_add(uint8_t *p, const char *name, uint32_t namesz, uint32_t type,
                       const void *desc, uint32_t descsz)
{
    size_t pos = 0;
    memcpy(p + pos, &namesz, 4);
    memcpy(p + pos + 4, &descsz, 4);
    memcpy(p + pos + 8, &type, 4);
    pos += 12;
    memcpy(p + pos, name, namesz);
    pos += (namesz + 3) & ~3u;
    memcpy(p + pos, desc, descsz);
    pos += (descsz + 3) & ~3u;
    return pos;
}

/* Notes as a real kernel has them: a GNU build ID and another Xen note before the PVH entry. */
static size_t notes_default(uint8_t *p, bool is64)
{
    static const uint8_t build_id[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                         11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    size_t n = note_add(p, "GNU", 4, 3, build_id, sizeof(build_id));
    const char loader[] = "generic";
    n += note_add(p + n, "Xen", 4, 8 /* XEN_ELFNOTE_LOADER */, loader, sizeof(loader));
    uint64_t entry = PVH_ENTRY;
    n += note_add(p + n, "Xen", 4, 18, &entry, is64 ? 8 : 4);
    return n;
}

static struct elf_spec spec_default(bool is64)
{
    struct elf_spec s = {
        .is64 = is64, .machine = is64 ? EM_X86_64 : EM_386, .data = ELFDATA2LSB,
        .phoff = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr), .phnum = 3,
        .phentsize = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr), .note_off = 0x300,
        .file_size = 0x5000,
    };
    s.note_len = notes_default(s.note, is64);
    s.segs[0] = (struct seg){PT_NOTE, s.note_off, 0, s.note_len, s.note_len};
    s.segs[1] = (struct seg){PT_LOAD, 0x1000, 0x100000, 0x3000, 0x3000};       /* text */
    s.segs[2] = (struct seg){PT_LOAD, 0x4000, 0x200000, 0x800, 0x10000};      /* data + bss */
    return s;
}

static uint8_t file_byte(size_t off)
{
    return (uint8_t)(off * 31 + (off >> 8) + 1);
}

static uint8_t *elf_build(const struct elf_spec *s)
{
    uint8_t *f = test_malloc(s->file_size);
    for (size_t i = 0; i < s->file_size; i++)
        f[i] = file_byte(i);
    size_t ehsize = s->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    memset(f, 0, ehsize);
    memcpy(f, ELFMAG, SELFMAG);
    f[EI_CLASS] = s->is64 ? ELFCLASS64 : ELFCLASS32;
    f[EI_DATA] = s->data;
    f[EI_VERSION] = EV_CURRENT;
    if (s->is64) {
        Elf64_Ehdr eh = {.e_type = ET_EXEC, .e_machine = s->machine, .e_version = EV_CURRENT,
                         .e_entry = 0xffffffff81000000ULL, .e_phoff = s->phoff,
                         .e_ehsize = sizeof(Elf64_Ehdr), .e_phentsize = s->phentsize,
                         .e_phnum = s->phnum};
        memcpy(eh.e_ident, f, EI_NIDENT);
        memcpy(f, &eh, sizeof(eh));
        for (unsigned i = 0; i < s->phnum && i < MAX_SEGS; i++) {
            Elf64_Phdr ph = {.p_type = s->segs[i].type, .p_offset = s->segs[i].offset,
                             .p_vaddr = 0xffffffff80000000ULL + s->segs[i].paddr,
                             .p_paddr = s->segs[i].paddr, .p_filesz = s->segs[i].filesz,
                             .p_memsz = s->segs[i].memsz, .p_flags = PF_R, .p_align = 4096};
            uint64_t at = s->phoff + i * sizeof(ph);
            if (at <= s->file_size && sizeof(ph) <= s->file_size - at)
                memcpy(f + at, &ph, sizeof(ph));
        }
    } else {
        Elf32_Ehdr eh = {.e_type = ET_EXEC, .e_machine = s->machine, .e_version = EV_CURRENT,
                         .e_entry = 0xc1000000u, .e_phoff = (uint32_t)s->phoff,
                         .e_ehsize = sizeof(Elf32_Ehdr), .e_phentsize = s->phentsize,
                         .e_phnum = s->phnum};
        memcpy(eh.e_ident, f, EI_NIDENT);
        memcpy(f, &eh, sizeof(eh));
        for (unsigned i = 0; i < s->phnum && i < MAX_SEGS; i++) {
            Elf32_Phdr ph = {.p_type = s->segs[i].type, .p_offset = (uint32_t)s->segs[i].offset,
                             .p_vaddr = (uint32_t)s->segs[i].paddr,
                             .p_paddr = (uint32_t)s->segs[i].paddr,
                             .p_filesz = (uint32_t)s->segs[i].filesz,
                             .p_memsz = (uint32_t)s->segs[i].memsz, .p_flags = PF_R,
                             .p_align = 4096};
            uint64_t at = s->phoff + i * sizeof(ph);
            if (at <= s->file_size && sizeof(ph) <= s->file_size - at)
                memcpy(f + at, &ph, sizeof(ph));
        }
    }
    if (s->note_off + s->note_len <= s->file_size)
        memcpy(f + s->note_off, s->note, s->note_len);
    return f;
}

struct load_result {
    int rc;
    char why[160];
    struct boot_entry entry;
};

static struct load_result load(const struct guest_mem *mem, const struct elf_spec *s,
                               const uint8_t *initrd, size_t initrd_size, const char *cmdline)
{
    uint8_t *f = elf_build(s);
    struct boot_input in = {
        .kernel = f, .kernel_size = s->file_size, .initrd = initrd, .initrd_size = initrd_size,
        .cmdline = cmdline, .rsdp_gpa = LAYOUT_ACPI_BASE,
    };
    struct load_result r;
    memset(&r, 0, sizeof(r));
    r.rc = boot_pvh_load(mem, &in, &r.entry, r.why, sizeof(r.why));
    test_free(f);
    return r;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static void check_boot(uint64_t ram, bool is64, size_t initrd_size)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, ram, "pvh"), 0);
    /* Stale bytes everywhere the loader writes, and around the segments. */
    memset(gpa_ptr(&mem, 0, 4 * MIB), 0xaa, 4 * MIB);

    struct elf_spec s = spec_default(is64);
    uint8_t *initrd = NULL;
    if (initrd_size) {
        initrd = test_malloc(initrd_size);
        for (size_t i = 0; i < initrd_size; i++)
            initrd[i] = (uint8_t)(i ^ (i >> 9));
    }
    const char *cmdline = "console=ttyS0 pvh.test=1";
    struct load_result r = load(&mem, &s, initrd, initrd_size, cmdline);
    if (r.rc != 0)
        fail_msg("boot_pvh_load: %d (%s)", r.rc, r.why);

    /* Segments: file bytes at p_paddr, bss zeroed, nothing written past p_memsz. */
    uint8_t *f = elf_build(&s);
    for (unsigned i = 0; i < s.phnum; i++) {
        const struct seg *g = &s.segs[i];
        if (g->type != PT_LOAD)
            continue;
        const uint8_t *p = gpa_ptr(&mem, g->paddr, g->memsz + 16);
        assert_memory_equal(p, f + g->offset, g->filesz);
        for (uint64_t k = g->filesz; k < g->memsz; k++)
            if (p[k] != 0)
                fail_msg("bss byte %#llx of segment %u is %#x", (unsigned long long)k, i, p[k]);
        for (uint64_t k = g->memsz; k < g->memsz + 16; k++)
            assert_int_equal(p[k], 0xaa);
    }
    test_free(f);

    /* Entry: 32-bit protected mode, flat segments, no paging, EBX -> start info. */
    const struct vcpu_sregs *sr = &r.entry.sregs;
    const struct vcpu_regs *g = &r.entry.regs;
    assert_int_equal(g->rip, PVH_ENTRY);
    assert_int_equal(g->rbx, LAYOUT_PVH_INFO);
    assert_int_equal(g->rflags & (1u << 9), 0);
    /* The PVH ABI: CR0.PE set and every other writable bit clear (ET is read-only, 1). */
    assert_int_equal(sr->cr0 & 1, 1);
    assert_int_equal(sr->cr0 & ~0x11ULL, 0);
    /* EFLAGS: IF, TF and VM clear. */
    assert_int_equal(g->rflags & ((1u << 8) | (1u << 17)), 0);
    /* TR: an active 32-bit TSS with base 0 and limit 0x67. */
    assert_int_equal(sr->tr.present, 1);
    assert_int_equal(sr->tr.type, 0xb);
    assert_int_equal(sr->tr.base, 0);
    assert_int_equal(sr->tr.limit, 0x67);
    /* The boot CPU's local APIC: enabled, BSP, at the architectural address. */
    assert_int_equal(sr->apic_base, LAYOUT_LAPIC_BASE | (1u << 11) | (1u << 8));
    assert_int_equal(sr->cr4, 0);
    assert_int_equal(sr->efer, 0);
    assert_int_equal(sr->cs.l, 0);
    assert_int_equal(sr->cs.db, 1);
    assert_int_equal(sr->cs.base, 0);
    assert_int_equal(sr->cs.limit, 0xffffffff);
    assert_int_equal(sr->cs.g, 1);
    assert_int_equal(sr->cs.present, 1);
    assert_int_equal(sr->cs.type & 0xa, 0xa); /* code, readable */
    const struct vcpu_segment *data[] = {&sr->ds, &sr->es, &sr->ss, &sr->fs, &sr->gs};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(data[i]->base, 0);
        assert_int_equal(data[i]->limit, 0xffffffff);
        assert_int_equal(data[i]->type & 0xa, 0x2); /* data, writable */
        assert_int_equal(data[i]->db, 1);
        assert_int_equal(data[i]->present, 1);
    }
    /* The GDT in memory matches the cached CS: a 32-bit flat code segment. */
    const uint64_t *gdt = gpa_ptr(&mem, sr->gdt.base, sr->gdt.limit + 1ULL);
    assert_non_null(gdt);
    assert_true((unsigned)sr->cs.selector / 8 * 8 + 8 <= sr->gdt.limit + 1u);
    uint64_t cs_desc = gdt[sr->cs.selector / 8];
    assert_true(cs_desc & (1ULL << 47));
    assert_true(cs_desc & (1ULL << 54)); /* D: 32-bit */
    assert_false(cs_desc & (1ULL << 53));
    assert_true(cs_desc & (1ULL << 43));

    /* hvm_start_info. */
    const struct hvm_start_info *si = gpa_ptr(&mem, g->rbx, sizeof(*si));
    assert_non_null(si);
    assert_int_equal(si->magic, HVM_START_MAGIC);
    assert_int_equal(si->version, 1);
    assert_int_equal(si->flags, 0);
    assert_int_equal(si->reserved, 0);
    assert_int_equal(si->rsdp_paddr, LAYOUT_ACPI_BASE);
    assert_string_equal((const char *)gpa_ptr(&mem, si->cmdline_paddr, strlen(cmdline) + 1),
                        cmdline);

    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(&mem, map);
    assert_int_equal(si->memmap_entries, n);
    const struct hvm_memmap_table_entry *mm = gpa_ptr(&mem, si->memmap_paddr, n * sizeof(*mm));
    assert_non_null(mm);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(mm[i].addr, map[i].addr);
        assert_int_equal(mm[i].size, map[i].size);
        assert_int_equal(mm[i].type, map[i].type);
        assert_int_equal(mm[i].reserved, 0);
    }
    /* Start info, memory map, command line and GDT are disjoint and in usable low RAM. */
    struct { uint64_t a, len; } areas[] = {
        {g->rbx, sizeof(*si)},
        {si->memmap_paddr, n * sizeof(*mm)},
        {si->cmdline_paddr, strlen(cmdline) + 1},
        {sr->gdt.base, sr->gdt.limit + 1ULL},
        {si->modlist_paddr, si->nr_modules * sizeof(struct hvm_modlist_entry)},
    };
    for (size_t i = 0; i < 5; i++) {
        assert_true(areas[i].a + areas[i].len <= LAYOUT_EBDA);
        for (size_t j = 0; j < i; j++)
            assert_false(overlaps(areas[i].a, areas[i].len, areas[j].a, areas[j].len));
    }

    if (initrd_size) {
        assert_int_equal(si->nr_modules, 1);
        const struct hvm_modlist_entry *mod = gpa_ptr(&mem, si->modlist_paddr, sizeof(*mod));
        assert_non_null(mod);
        assert_int_equal(mod->size, initrd_size);
        assert_int_equal(mod->paddr % 4096, 0);
        assert_int_equal(mod->cmdline_paddr, 0);
        assert_int_equal(mod->reserved, 0);
        /* Above the image (bss included), below 4 GiB where a 32-bit entry can reach it. */
        assert_true(mod->paddr >= 0x200000 + 0x10000);
        assert_true(mod->paddr + initrd_size <= guest_mem_low_end(&mem));
        assert_memory_equal(gpa_ptr(&mem, mod->paddr, initrd_size), initrd, initrd_size);
        test_free(initrd);
    } else {
        assert_int_equal(si->nr_modules, 0);
        assert_int_equal(si->modlist_paddr, 0);
    }
    guest_mem_destroy(&mem);
}

static void test_elf64_64m(void **state)
{
    (void)state;
    check_boot(64 * MIB, true, 2 * MIB + 5);
}

static void test_elf64_5g(void **state)
{
    (void)state;
    check_boot(5 * GIB, true, 4096);
}

static void test_elf32_64m(void **state)
{
    (void)state;
    check_boot(64 * MIB, false, 12345);
}

static void test_elf32_no_initrd(void **state)
{
    (void)state;
    check_boot(256 * MIB, false, 0);
}

static void test_detect_and_dispatch(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 64 * MIB, "pvh"), 0);
    struct elf_spec s = spec_default(true);
    uint8_t *f = elf_build(&s);
    assert_int_equal(boot_detect(f, s.file_size), BOOT_FORMAT_ELF);
    assert_int_equal(boot_detect(f, 3), BOOT_FORMAT_UNKNOWN);
    struct boot_input in = {.kernel = f, .kernel_size = s.file_size, .cmdline = ""};
    struct boot_entry entry;
    char why[160] = "";
    assert_int_equal(boot_load(&mem, &in, &entry, why, sizeof(why)), 0);
    assert_int_equal(entry.regs.rip, PVH_ENTRY);
    /* Random bytes are neither format. */
    for (size_t i = 0; i < s.file_size; i++)
        f[i] = (uint8_t)(i * 131 + 7);
    assert_int_equal(boot_detect(f, s.file_size), BOOT_FORMAT_UNKNOWN);
    assert_int_equal(boot_load(&mem, &in, &entry, why, sizeof(why)), -ENOEXEC);
    assert_true(strlen(why) > 0);
    test_free(f);
    guest_mem_destroy(&mem);
}

/* Refusal tests share a 64 MiB guest. */
static int setup_64m(void **state)
{
    struct guest_mem *mem = test_malloc(sizeof(*mem));
    if (guest_mem_create(mem, 64 * MIB, "pvh") < 0) {
        test_free(mem);
        return -1;
    }
    *state = mem;
    return 0;
}

static int teardown_mem(void **state)
{
    struct guest_mem *mem = *state;
    guest_mem_destroy(mem);
    test_free(mem);
    return 0;
}

static void expect_refusal_with(const struct guest_mem *mem, const struct elf_spec *s,
                                const uint8_t *initrd, size_t initrd_size, const char *cmdline,
                                int want_rc, const char *want_word)
{
    struct load_result r = load(mem, s, initrd, initrd_size, cmdline);
    if (r.rc != want_rc)
        fail_msg("rc %d, expected %d (why: \"%s\")", r.rc, want_rc, r.why);
    assert_true(strlen(r.why) > 0);
    if (!strstr(r.why, want_word))
        fail_msg("reason \"%s\" does not mention \"%s\"", r.why, want_word);
}

static void expect_refusal(const struct guest_mem *mem, const struct elf_spec *s, int want_rc,
                           const char *want_word)
{
    expect_refusal_with(mem, s, NULL, 0, "", want_rc, want_word);
}

static void test_refuse_no_note(void **state)
{
    struct guest_mem *mem = *state;
    for (int c = 0; c < 2; c++) {
        bool is64 = c == 0;
        /* No PT_NOTE at all. */
        struct elf_spec s = spec_default(is64);
        s.segs[0].type = PT_NULL;
        expect_refusal(mem, &s, -ENOEXEC, "PVH");
        /* Notes, but not the PVH one: other Xen notes, or type 18 under another name. */
        s = spec_default(is64);
        uint64_t entry = PVH_ENTRY;
        s.note_len = note_add(s.note, "Xen", 4, 1 /* XEN_ELFNOTE_ENTRY */, &entry, 8);
        s.note_len += note_add(s.note + s.note_len, "Xe", 3, 18, &entry, 8);
        s.note_len += note_add(s.note + s.note_len, "XenX", 5, 18, &entry, 8);
        s.segs[0].filesz = s.segs[0].memsz = s.note_len;
        expect_refusal(mem, &s, -ENOEXEC, "PVH");
        /* The right note with an unusable descriptor size. */
        s = spec_default(is64);
        s.note_len = note_add(s.note, "Xen", 4, 18, &entry, 2);
        s.segs[0].filesz = s.segs[0].memsz = s.note_len;
        expect_refusal(mem, &s, -ENOEXEC, "PVH");
        /* The note lies in the file but no PT_NOTE points at it. */
        s = spec_default(is64);
        s.segs[0].offset = 0x280;
        s.segs[0].filesz = 0x40;
        expect_refusal(mem, &s, -ENOEXEC, "PVH");
    }
}

static void test_refuse_note_past_segment(void **state)
{
    struct guest_mem *mem = *state;
    /* The PT_NOTE ends before the PVH note's descriptor does. */
    struct elf_spec s = spec_default(true);
    s.segs[0].filesz = s.note_len - 4;
    expect_refusal(mem, &s, -ENOEXEC, "PVH");
    /* A descriptor size that runs far past the segment (and the file). */
    s = spec_default(true);
    uint64_t entry = PVH_ENTRY;
    size_t n = note_add(s.note, "Xen", 4, 18, &entry, 8);
    uint32_t huge = 0xfffffff0u;
    memcpy(s.note + 4, &huge, 4);
    s.note_len = n;
    s.segs[0].filesz = s.segs[0].memsz = n;
    expect_refusal(mem, &s, -ENOEXEC, "PVH");
    /* A name size of 2^32 - 1: aligning it must not wrap to a small value. */
    huge = 0xffffffffu;
    s = spec_default(true);
    n = note_add(s.note, "Xen", 4, 18, &entry, 8);
    memcpy(s.note, &huge, 4);
    s.note_len = n;
    s.segs[0].filesz = s.segs[0].memsz = n;
    expect_refusal(mem, &s, -ENOEXEC, "PVH");
    /* The PT_NOTE segment itself runs past the end of the file. */
    s = spec_default(true);
    s.segs[0].filesz = s.file_size;
    expect_refusal(mem, &s, -ENOEXEC, "PVH");
    s.segs[0].offset = UINT64_MAX - 8;
    s.segs[0].filesz = 64;
    expect_refusal(mem, &s, -ENOEXEC, "PVH");
}

static void test_refuse_segment_outside_file(void **state)
{
    struct guest_mem *mem = *state;
    struct elf_spec s = spec_default(true);
    s.segs[2].filesz = s.file_size - s.segs[2].offset + 1;
    s.segs[2].memsz = 0x10000;
    expect_refusal(mem, &s, -ENOEXEC, "outside the file");
    s = spec_default(true);
    s.segs[1].offset = s.file_size + 0x1000;
    expect_refusal(mem, &s, -ENOEXEC, "outside the file");
    /* offset + filesz wraps around 2^64. */
    s = spec_default(true);
    s.segs[1].offset = UINT64_MAX - 0xfff;
    s.segs[1].filesz = 0x2000;
    s.segs[1].memsz = 0x2000;
    expect_refusal(mem, &s, -ENOEXEC, "outside the file");
    /* More file bytes than memory bytes. */
    s = spec_default(true);
    s.segs[2].filesz = 0x800;
    s.segs[2].memsz = 0x7ff;
    expect_refusal(mem, &s, -ENOEXEC, "segment");
    /* The same in ELF32. */
    s = spec_default(false);
    s.segs[1].filesz = 0x10000;
    s.segs[1].memsz = 0x10000;
    expect_refusal(mem, &s, -ENOEXEC, "outside the file");
}

static void test_refuse_segment_below_1m(void **state)
{
    struct guest_mem *mem = *state;
    /* Low memory holds the start info, GDT and ACPI tables: no segment may land there. */
    static const uint64_t low[] = {0, LAYOUT_PVH_INFO, 0x8000, LAYOUT_ACPI_BASE, 0xff000};
    for (size_t i = 0; i < sizeof(low) / sizeof(low[0]); i++) {
        struct elf_spec s = spec_default(true);
        s.segs[1].paddr = low[i];
        expect_refusal(mem, &s, -ENOEXEC, "below 1 MiB");
    }
    /* Starting just below 1 MiB and running into it. */
    struct elf_spec s = spec_default(false);
    s.segs[2].paddr = 0xff800;
    expect_refusal(mem, &s, -ENOEXEC, "below 1 MiB");
}

static void test_refuse_segment_beyond_ram(void **state)
{
    struct guest_mem *mem = *state;
    struct elf_spec s = spec_default(true);
    s.segs[2].paddr = 64 * MIB - 0x8000; /* bss runs past the end of RAM */
    expect_refusal(mem, &s, -E2BIG, "RAM");
    s.segs[2].paddr = 64 * MIB;
    expect_refusal(mem, &s, -E2BIG, "RAM");
    s.segs[2].paddr = 0xfee00000;
    expect_refusal(mem, &s, -E2BIG, "RAM");
    /* A memory size that wraps the guest-physical address space. */
    s = spec_default(true);
    s.segs[2].memsz = UINT64_MAX - 0x1000;
    expect_refusal(mem, &s, -E2BIG, "RAM");
    /* A segment straddling the PCI hole of a large guest. */
    struct guest_mem big;
    assert_int_equal(guest_mem_create(&big, 5 * GIB, "pvh"), 0);
    s = spec_default(true);
    s.segs[2].paddr = LAYOUT_LOW_RAM_MAX - 0x8000;
    expect_refusal(&big, &s, -E2BIG, "RAM");
    guest_mem_destroy(&big);
}

static void test_refuse_phdrs_outside_file(void **state)
{
    struct guest_mem *mem = *state;
    struct elf_spec s = spec_default(true);
    s.phoff = s.file_size - 10;
    expect_refusal(mem, &s, -ENOEXEC, "program header");
    s.phoff = UINT64_MAX - 0x10;
    expect_refusal(mem, &s, -ENOEXEC, "program header");
    /* The table starts inside but its last entries do not fit. */
    s = spec_default(true);
    s.phoff = s.file_size - 2 * sizeof(Elf64_Phdr);
    s.phnum = 3;
    expect_refusal(mem, &s, -ENOEXEC, "program header");
    s = spec_default(true);
    s.phnum = 0xffff;
    expect_refusal(mem, &s, -ENOEXEC, "program header");
    /* Entries of the wrong size would be misread. */
    s = spec_default(true);
    s.phentsize = sizeof(Elf32_Phdr);
    expect_refusal(mem, &s, -ENOEXEC, "program header");
    s = spec_default(false);
    s.phoff = 0xfffffff0u;
    expect_refusal(mem, &s, -ENOEXEC, "program header");
}

static void test_unaligned_phdrs(void **state)
{
    struct guest_mem *mem = *state;
    /* e_phoff is the image's to choose: an odd offset must be read byte-wise, not through a
     * misaligned struct pointer. */
    for (int c = 0; c < 2; c++) {
        struct elf_spec s = spec_default(c == 0);
        s.phoff = 0x101;
        struct load_result r = load(mem, &s, NULL, 0, "");
        if (r.rc != 0)
            fail_msg("rc %d (%s)", r.rc, r.why);
        assert_int_equal(r.entry.regs.rip, PVH_ENTRY);
        assert_int_equal(*(const uint8_t *)gpa_ptr(mem, 0x100000, 1), file_byte(0x1000));
    }
}

static void test_refuse_wrong_machine(void **state)
{
    struct guest_mem *mem = *state;
    struct elf_spec s = spec_default(true);
    s.machine = EM_AARCH64;
    expect_refusal(mem, &s, -ENOEXEC, "architecture");
    s = spec_default(false);
    s.machine = EM_ARM;
    expect_refusal(mem, &s, -ENOEXEC, "architecture");
    s = spec_default(true);
    s.data = ELFDATA2MSB;
    expect_refusal(mem, &s, -ENOEXEC, "architecture");
}

static void test_refuse_truncated_or_not_elf(void **state)
{
    struct guest_mem *mem = *state;
    struct elf_spec s = spec_default(true);
    uint8_t *f = elf_build(&s);
    struct boot_entry entry;
    char why[160];
    /* Cut inside the ELF header. */
    struct boot_input in = {.kernel = f, .kernel_size = 40, .cmdline = ""};
    why[0] = 0;
    assert_int_equal(boot_pvh_load(mem, &in, &entry, why, sizeof(why)), -ENOEXEC);
    assert_true(strlen(why) > 0);
    in.kernel_size = 8;
    why[0] = 0;
    assert_int_equal(boot_pvh_load(mem, &in, &entry, why, sizeof(why)), -ENOEXEC);
    assert_true(strlen(why) > 0);
    /* An unknown ELF class. */
    f[EI_CLASS] = 3;
    in.kernel_size = s.file_size;
    why[0] = 0;
    assert_int_equal(boot_pvh_load(mem, &in, &entry, why, sizeof(why)), -ENOEXEC);
    assert_true(strlen(why) > 0);
    test_free(f);
}

static void test_refuse_initrd_and_cmdline(void **state)
{
    struct guest_mem *mem = *state;
    struct elf_spec s = spec_default(true);
    /* An initrd larger than RAM, then one that fits only below the image. */
    uint8_t *initrd = test_calloc(1, 64 * MIB);
    expect_refusal_with(mem, &s, initrd, 64 * MIB, "", -E2BIG, "initrd");
    expect_refusal_with(mem, &s, initrd, 64 * MIB - 0x200000, "", -E2BIG, "initrd");
    /* All the room above the image (it ends at 2 MiB + 64 KiB). */
    struct load_result r = load(mem, &s, initrd, 64 * MIB - 0x210000, "");
    assert_int_equal(r.rc, 0);
    test_free(initrd);
    /* A command line longer than the buffer for it. */
    char *longline = test_malloc(LAYOUT_CMDLINE_MAX + 1);
    memset(longline, 'y', LAYOUT_CMDLINE_MAX);
    longline[LAYOUT_CMDLINE_MAX] = 0;
    expect_refusal_with(mem, &s, NULL, 0, longline, -E2BIG, "command line");
    test_free(longline);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elf64_64m),
        cmocka_unit_test(test_elf64_5g),
        cmocka_unit_test(test_elf32_64m),
        cmocka_unit_test(test_elf32_no_initrd),
        cmocka_unit_test(test_detect_and_dispatch),
#define T(f) cmocka_unit_test_setup_teardown(f, setup_64m, teardown_mem)
        T(test_refuse_no_note),
        T(test_refuse_note_past_segment),
        T(test_refuse_segment_outside_file),
        T(test_refuse_segment_below_1m),
        T(test_refuse_segment_beyond_ram),
        T(test_refuse_phdrs_outside_file),
        T(test_unaligned_phdrs),
        T(test_refuse_wrong_machine),
        T(test_refuse_truncated_or_not_elf),
        T(test_refuse_initrd_and_cmdline),
#undef T
    };
    return cmocka_run_group_tests_name("boot_pvh", tests, NULL, NULL);
}
