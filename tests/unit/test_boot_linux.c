/* The Linux bzImage loader against synthetic images: the zero page (setup header, loader fields,
 * command line, initrd placement, e820, RSDP), the 64-bit entry state and its identity page
 * tables, for several RAM sizes; and every refusal with its errno and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

/* What a synthetic bzImage declares in its setup header. */
struct bz_spec {
    uint16_t version;
    uint16_t xloadflags;
    uint8_t setup_sects;
    uint32_t init_size;
    uint32_t initrd_addr_max;
    uint32_t cmdline_size;
    uint64_t pref_address;
    size_t kernel_bytes; /* protected-mode part after the setup sectors */
};

static struct bz_spec bz_default(void)
{
    return (struct bz_spec){
        .version = 0x020f, .xloadflags = 0x1 | 0x2 /* 64-bit entry, loadable above 4G */,
        .setup_sects = 27, .init_size = 8 * MIB, .initrd_addr_max = 0x7fffffff,
        .cmdline_size = 2047, .pref_address = 16 * MIB, .kernel_bytes = 256 * 1024,
    };
}

/* End of the 2.15 setup header (kernel_info_offset is its last field, at 0x268). */
#define HDR_END 0x26c

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static size_t bz_setup_size(const struct bz_spec *s)
{
    return ((size_t)(s->setup_sects ? s->setup_sects : 4) + 1) * 512;
}

/* Build the image laid out as the kernel's build does: boot sector + setup sectors holding the
 * header, then the protected-mode kernel. Fields the loader should copy carry distinctive
 * values. */
static uint8_t *bz_build(const struct bz_spec *s, size_t *size_out)
{
    size_t setup = bz_setup_size(s);
    size_t size = setup + s->kernel_bytes;
    uint8_t *img = test_calloc(1, size);
    img[0x1f1] = s->setup_sects;
    put16(img + 0x1f2, 1);              /* root_flags */
    put32(img + 0x1f4, (uint32_t)(s->kernel_bytes / 16)); /* syssize */
    put16(img + 0x1fa, 0xffff);         /* vid_mode */
    img[0x1fe] = 0x55;
    img[0x1ff] = 0xaa;
    img[0x200] = 0xeb; /* jmp short to just past the header */
    img[0x201] = HDR_END - 0x202;
    memcpy(img + 0x202, "HdrS", 4);
    put16(img + 0x206, s->version);
    put16(img + 0x20e, 0x3c0);          /* kernel_version string offset */
    img[0x211] = 0x01;                  /* loadflags: LOADED_HIGH, as a bzImage says */
    put32(img + 0x214, 0x100000);       /* code32_start */
    put32(img + 0x22c, s->initrd_addr_max);
    put32(img + 0x230, 0x200000);       /* kernel_alignment */
    img[0x234] = 1;                     /* relocatable_kernel */
    img[0x235] = 21;                    /* min_alignment */
    put16(img + 0x236, s->xloadflags);
    put32(img + 0x238, s->cmdline_size);
    put32(img + 0x248, 0x3a5);          /* payload_offset */
    put32(img + 0x24c, 0x1234567);      /* payload_length */
    put64(img + 0x258, s->pref_address);
    put32(img + 0x260, s->init_size);
    put32(img + 0x264, 0x190);          /* handover_offset */
    put32(img + 0x268, 0x4a0);          /* kernel_info_offset */
    /* Past the header: setup code the loader must not copy into the zero page. */
    memset(img + HDR_END, 0xcc, setup - HDR_END);
    for (size_t i = 0; i < s->kernel_bytes; i++)
        img[setup + i] = (uint8_t)(i * 7 + 3);
    *size_out = size;
    return img;
}

static uint8_t *pattern_alloc(size_t n, uint8_t seed)
{
    uint8_t *p = test_malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 13 + (i >> 12));
    return p;
}

/* Walk the guest's 4-level page tables; returns the physical address or UINT64_MAX. Every level
 * must be present and writable: the kernel writes to its own image before it has its own tables. */
static uint64_t walk(const struct guest_mem *mem, uint64_t cr3, uint64_t va)
{
    const uint64_t addr_mask = 0x000ffffffffff000ULL;
    uint64_t table = cr3 & addr_mask;
    for (int level = 3; level >= 0; level--) {
        const uint64_t *t = gpa_ptr(mem, table, 4096);
        if (!t)
            return UINT64_MAX;
        uint64_t e = t[(va >> (12 + 9 * level)) & 511];
        if ((e & 3) != 3)
            return UINT64_MAX;
        if (level > 0 && level < 3 && (e & 0x80)) {
            uint64_t page = 1ULL << (12 + 9 * level);
            return (e & addr_mask & ~(page - 1)) | (va & (page - 1));
        }
        table = e & addr_mask;
    }
    return table | (va & 0xfff);
}

/* Which pages the page tables occupy (root, PDPT, page directories), for overlap checks. */
static unsigned table_pages(const struct guest_mem *mem, uint64_t cr3, uint64_t *pages,
                            unsigned max)
{
    unsigned n = 0;
    uint64_t root = cr3 & ~0xfffULL;
    pages[n++] = root;
    const uint64_t *pml4 = gpa_ptr(mem, root, 4096);
    for (unsigned i = 0; i < 512 && pml4; i++) {
        if (!(pml4[i] & 1))
            continue;
        uint64_t pdpt_addr = pml4[i] & 0x000ffffffffff000ULL;
        if (n < max)
            pages[n++] = pdpt_addr;
        const uint64_t *pdpt = gpa_ptr(mem, pdpt_addr, 4096);
        for (unsigned j = 0; j < 512 && pdpt; j++)
            if ((pdpt[j] & 1) && !(pdpt[j] & 0x80) && n < max)
                pages[n++] = pdpt[j] & 0x000ffffffffff000ULL;
    }
    return n;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

struct load_result {
    int rc;
    char why[160];
    struct boot_entry entry;
};

static struct load_result load(const struct guest_mem *mem, const uint8_t *img, size_t size,
                               const uint8_t *initrd, size_t initrd_size, const char *cmdline)
{
    struct boot_input in = {
        .kernel = img, .kernel_size = size, .initrd = initrd, .initrd_size = initrd_size,
        .cmdline = cmdline, .rsdp_gpa = LAYOUT_ACPI_BASE,
    };
    struct load_result r;
    memset(&r, 0, sizeof(r));
    r.why[0] = 0;
    r.rc = boot_linux_load(mem, &in, &r.entry, r.why, sizeof(r.why));
    return r;
}

/* Load a synthetic kernel with an initrd and a command line into `ram` bytes of guest RAM and
 * check everything the boot protocol promises the kernel. */
static void check_boot(uint64_t ram, struct bz_spec spec, size_t initrd_size)
{
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, ram, "boot"), 0);
    /* Stale bytes where the loader writes: it must clear what it does not set. */
    memset(gpa_ptr(&mem, 0, LAYOUT_EBDA), 0x5a, LAYOUT_EBDA);

    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    uint8_t *initrd = pattern_alloc(initrd_size, 0x42);
    const char *cmdline = "console=ttyS0 root=/dev/vda rw quiet loglevel=8 vireo.test=\"a b\"";
    struct load_result r = load(&mem, img, size, initrd, initrd_size, cmdline);
    if (r.rc != 0)
        fail_msg("boot_linux_load: %d (%s)", r.rc, r.why);

    /* The protected-mode kernel is at 1 MiB, byte for byte. */
    size_t setup = bz_setup_size(&spec);
    const uint8_t *kernel = gpa_ptr(&mem, LAYOUT_HIGH_RAM_START, spec.kernel_bytes);
    assert_non_null(kernel);
    assert_memory_equal(kernel, img + setup, spec.kernel_bytes);

    const uint8_t *bp = gpa_ptr(&mem, LAYOUT_BOOT_PARAMS, 4096);
    /* Loader-owned fields. */
    assert_int_equal(bp[0x210], 0xff); /* type_of_loader: undefined ID */
    assert_int_equal(bp[0x211] & 0x01, 0x01); /* LOADED_HIGH */
    assert_int_equal(bp[0x211] & 0x80, 0x80); /* CAN_USE_HEAP */
    assert_int_not_equal(get16(bp + 0x224), 0); /* heap_end_ptr, meaningful with CAN_USE_HEAP */
    assert_int_equal(get32(bp + 0x228), LAYOUT_CMDLINE);
    assert_int_equal(get32(bp + 0x0c8), 0); /* ext_cmd_line_ptr: the command line is below 4G */
    assert_string_equal((const char *)gpa_ptr(&mem, LAYOUT_CMDLINE, strlen(cmdline) + 1), cmdline);
    assert_int_equal(get64(bp + 0x070), LAYOUT_ACPI_BASE);

    /* initrd: page aligned, its last byte at or below initrd_addr_max, inside low RAM, clear of
     * the area the kernel decompresses into, as high as it can be, and its bytes intact. */
    uint64_t rd = get32(bp + 0x218);
    assert_int_equal(get32(bp + 0x21c), initrd_size);
    assert_int_equal(get32(bp + 0x0c0), 0); /* ext_ramdisk_image */
    assert_int_equal(get32(bp + 0x0c4), 0); /* ext_ramdisk_size */
    assert_int_equal(rd % 4096, 0);
    assert_true(rd + initrd_size - 1 <= spec.initrd_addr_max);
    assert_true(rd + initrd_size <= guest_mem_low_end(&mem));
    uint64_t kernel_end = LAYOUT_HIGH_RAM_START +
                          (spec.init_size > spec.kernel_bytes ? spec.init_size : spec.kernel_bytes);
    uint64_t decompress_end = spec.pref_address + spec.init_size;
    assert_true(rd >= kernel_end);
    assert_true(rd >= decompress_end);
    uint64_t top = (uint64_t)spec.initrd_addr_max + 1;
    if (top > guest_mem_low_end(&mem))
        top = guest_mem_low_end(&mem);
    assert_true(rd + initrd_size + 4096 > top);
    assert_memory_equal(gpa_ptr(&mem, rd, initrd_size), initrd, initrd_size);

    /* e820 in the zero page is e820_build()'s map. */
    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(&mem, map);
    assert_int_equal(bp[0x1e8], n);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = bp + 0x2d0 + 20 * i;
        assert_int_equal(get64(e), map[i].addr);
        assert_int_equal(get64(e + 8), map[i].size);
        assert_int_equal(get32(e + 16), map[i].type);
    }

    /* Every other byte: the image's setup header where it has one, zero elsewhere. */
    static uint8_t loader_owned[4096];
    memset(loader_owned, 0, sizeof(loader_owned));
    memset(loader_owned + 0x070, 1, 8);
    loader_owned[0x1e8] = 1;
    loader_owned[0x210] = loader_owned[0x211] = 1;
    memset(loader_owned + 0x218, 1, 8);
    memset(loader_owned + 0x224, 1, 2);
    memset(loader_owned + 0x228, 1, 4);
    memset(loader_owned + 0x2d0, 1, 20 * n);
    for (unsigned off = 0; off < 4096; off++) {
        if (loader_owned[off])
            continue;
        uint8_t want = off >= 0x1f1 && off < HDR_END ? img[off] : 0;
        if (bp[off] != want)
            fail_msg("zero page byte %#x is %#x, expected %#x", off, bp[off], want);
    }

    /* Entry state: 64-bit code segment __BOOT_CS (0x10), data __BOOT_DS (0x18), paging on. */
    const struct vcpu_sregs *s = &r.entry.sregs;
    const struct vcpu_regs *g = &r.entry.regs;
    assert_int_equal(g->rip, LAYOUT_HIGH_RAM_START + 0x200);
    assert_int_equal(g->rsi, LAYOUT_BOOT_PARAMS);
    assert_int_equal(g->rflags & (1u << 9), 0); /* interrupts off */
    assert_int_equal(g->rflags & 2, 2);
    assert_int_equal(s->cs.selector, 0x10);
    assert_int_equal(s->cs.l, 1);
    assert_int_equal(s->cs.db, 0);
    assert_int_equal(s->cs.present, 1);
    assert_int_equal(s->cs.s, 1);
    assert_int_equal(s->cs.type & 0x8, 0x8); /* code */
    assert_int_equal(s->cs.dpl, 0);
    assert_int_equal(s->ds.selector, 0x18);
    assert_int_equal(s->ss.selector, 0x18);
    assert_int_equal(s->ds.type & 0xa, 0x2); /* writable data */
    assert_int_equal(s->apic_base, LAYOUT_LAPIC_BASE | (1u << 11) | (1u << 8));
    /* A usable TR is what VM entry demands of any 64-bit guest. */
    assert_int_equal(s->tr.present, 1);
    assert_int_equal(s->tr.type, 0xb);
    assert_int_equal(s->cr0 & 1, 1);
    assert_int_equal(s->cr0 & (1ULL << 31), 1ULL << 31);
    assert_int_equal(s->cr4 & (1ULL << 5), 1ULL << 5);
    assert_int_equal(s->efer & ((1ULL << 8) | (1ULL << 10)), (1ULL << 8) | (1ULL << 10));
    /* The GDT in guest memory agrees with the cached segments. */
    const uint64_t *gdt = gpa_ptr(&mem, s->gdt.base, s->gdt.limit + 1ULL);
    assert_non_null(gdt);
    assert_true(s->gdt.limit >= 0x1f);
    uint64_t cs_desc = gdt[0x10 / 8], ds_desc = gdt[0x18 / 8];
    assert_true(cs_desc & (1ULL << 47));  /* present */
    assert_true(cs_desc & (1ULL << 53));  /* L */
    assert_false(cs_desc & (1ULL << 54)); /* D must be clear with L */
    assert_true(cs_desc & (1ULL << 43));  /* code */
    assert_true(ds_desc & (1ULL << 47));
    assert_false(ds_desc & (1ULL << 43)); /* data */
    assert_true(ds_desc & (1ULL << 41));  /* writable */

    /* The identity map covers what the kernel touches first and the local APIC. */
    static const uint64_t probes[] = {
        0x0, 0x7000, 0x20000, 0x100000, 0x100200, 0x12345000, 0x12345678, 0x3fffffff,
        0xbffff000, 0xfec00000, 0xfee00000, 0xfee000f0, 0xfffff000, 0xffffffff,
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        uint64_t pa = walk(&mem, s->cr3, probes[i]);
        if (pa != probes[i])
            fail_msg("va %#llx maps to %#llx", (unsigned long long)probes[i],
                     (unsigned long long)pa);
    }
    assert_true(walk(&mem, s->cr3, rd + initrd_size - 1) == rd + initrd_size - 1);
    assert_true(walk(&mem, s->cr3, decompress_end - 1) == decompress_end - 1);
    /* The tables sit in low RAM, clear of the zero page, GDT, command line, kernel and initrd. */
    uint64_t pages[16];
    unsigned np = table_pages(&mem, s->cr3, pages, 16);
    assert_true(np >= 3);
    for (unsigned i = 0; i < np; i++) {
        assert_true(pages[i] + 4096 <= LAYOUT_EBDA);
        assert_false(overlaps(pages[i], 4096, LAYOUT_BOOT_PARAMS, 4096));
        assert_false(overlaps(pages[i], 4096, s->gdt.base, s->gdt.limit + 1ULL));
        assert_false(overlaps(pages[i], 4096, LAYOUT_CMDLINE, strlen(cmdline) + 1));
        for (unsigned j = 0; j < i; j++)
            assert_int_not_equal(pages[i], pages[j]);
    }
    assert_false(overlaps(s->gdt.base, s->gdt.limit + 1ULL, LAYOUT_BOOT_PARAMS, 4096));

    test_free(initrd);
    test_free(img);
    guest_mem_destroy(&mem);
}

static void test_boot_64m(void **state)
{
    (void)state;
    check_boot(64 * MIB, bz_default(), 3 * MIB + 123);
}

static void test_boot_1g(void **state)
{
    (void)state;
    struct bz_spec s = bz_default();
    s.init_size = 40 * MIB;
    check_boot(GIB, s, 20 * MIB);
}

static void test_boot_3g(void **state)
{
    (void)state;
    /* initrd_addr_max above the end of low RAM: the initrd goes under 3 GiB. */
    struct bz_spec s = bz_default();
    s.initrd_addr_max = 0xffffffff;
    check_boot(3 * GIB, s, 5 * MIB + 1);
}

static void test_boot_5g(void **state)
{
    (void)state;
    /* RAM above 4 GiB is in the map, but the initrd stays under initrd_addr_max (2 GiB). */
    struct bz_spec s = bz_default();
    s.version = 0x020c;
    s.setup_sects = 0; /* means 4 */
    check_boot(5 * GIB, s, 4096);
}

static void test_detect_and_dispatch(void **state)
{
    (void)state;
    struct bz_spec spec = bz_default();
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    assert_int_equal(boot_detect(img, size), BOOT_FORMAT_BZIMAGE);
    assert_int_equal(boot_detect(img, 0x205), BOOT_FORMAT_UNKNOWN);
    struct guest_mem mem;
    assert_int_equal(guest_mem_create(&mem, 64 * MIB, "boot"), 0);
    struct boot_input in = {.kernel = img, .kernel_size = size, .cmdline = ""};
    struct boot_entry entry;
    char why[160] = "";
    assert_int_equal(boot_load(&mem, &in, &entry, why, sizeof(why)), 0);
    assert_int_equal(entry.regs.rip, LAYOUT_HIGH_RAM_START + 0x200);
    /* No initrd: the zero page says so. */
    const uint8_t *bp = gpa_ptr(&mem, LAYOUT_BOOT_PARAMS, 4096);
    assert_int_equal(get32(bp + 0x218), 0);
    assert_int_equal(get32(bp + 0x21c), 0);
    assert_int_equal(*(const char *)gpa_ptr(&mem, LAYOUT_CMDLINE, 1), 0);
    /* Without the boot signature it is not a bzImage. */
    img[0x1fe] = 0;
    assert_int_equal(boot_detect(img, size), BOOT_FORMAT_UNKNOWN);
    assert_int_equal(boot_load(&mem, &in, &entry, why, sizeof(why)), -ENOEXEC);
    assert_true(strlen(why) > 0);
    guest_mem_destroy(&mem);
    test_free(img);
}

/* A refusal: the errno, and a reason that names the problem. */
static void expect_refusal(const struct guest_mem *mem, const uint8_t *img, size_t size,
                           const uint8_t *initrd, size_t initrd_size, const char *cmdline,
                           int want_rc, const char *want_word)
{
    struct load_result r = load(mem, img, size, initrd, initrd_size, cmdline);
    if (r.rc != want_rc)
        fail_msg("rc %d, expected %d (why: \"%s\")", r.rc, want_rc, r.why);
    assert_true(strlen(r.why) > 0);
    if (!strstr(r.why, want_word))
        fail_msg("reason \"%s\" does not mention \"%s\"", r.why, want_word);
}

static int setup_64m(void **state)
{
    struct guest_mem *mem = test_malloc(sizeof(*mem));
    if (guest_mem_create(mem, 64 * MIB, "boot") < 0) {
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

static void test_refuse_truncated(void **state)
{
    struct guest_mem *mem = *state;
    struct bz_spec spec = bz_default();
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    /* Cut inside the setup header (init_size is its last field the loader needs). */
    expect_refusal(mem, img, 0x263, NULL, 0, "", -ENOEXEC, "truncated");
    expect_refusal(mem, img, 0x206, NULL, 0, "", -ENOEXEC, "truncated");
    expect_refusal(mem, img, 0, NULL, 0, "", -ENOEXEC, "truncated");
    /* The whole header but no protected-mode kernel after the setup sectors. */
    expect_refusal(mem, img, bz_setup_size(&spec), NULL, 0, "", -ENOEXEC, "truncated");
    expect_refusal(mem, img, bz_setup_size(&spec) - 1, NULL, 0, "", -ENOEXEC, "truncated");
    test_free(img);
}

static void test_refuse_old_protocol(void **state)
{
    struct guest_mem *mem = *state;
    /* 2.11 has no xloadflags, so it cannot declare a 64-bit entry, even if the bits are set. */
    struct bz_spec spec = bz_default();
    spec.version = 0x020b;
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -ENOEXEC, "2.11");
    test_free(img);
    spec.version = 0x0200;
    img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -ENOEXEC, "64-bit");
    test_free(img);
}

static void test_refuse_no_64bit_entry(void **state)
{
    struct guest_mem *mem = *state;
    struct bz_spec spec = bz_default();
    spec.xloadflags = 0x2; /* loadable above 4G, but no 64-bit entry */
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -ENOEXEC, "64-bit");
    test_free(img);
}

static void test_cmdline_size_limit(void **state)
{
    struct guest_mem *mem = *state;
    struct bz_spec spec = bz_default();
    spec.cmdline_size = 16;
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    /* cmdline_size excludes the terminating NUL: 16 characters fit, 17 do not. */
    struct load_result r = load(mem, img, size, NULL, 0, "0123456789abcdef");
    assert_int_equal(r.rc, 0);
    assert_string_equal(gpa_ptr(mem, LAYOUT_CMDLINE, 17), "0123456789abcdef");
    expect_refusal(mem, img, size, NULL, 0, "0123456789abcdefg", -E2BIG, "16");
    test_free(img);

    /* A kernel that accepts more than Vireo's command-line buffer: the buffer is the limit, and
     * the reason names it rather than the kernel's. */
    spec.cmdline_size = 0xffffffff;
    img = bz_build(&spec, &size);
    char *longline = test_malloc(LAYOUT_CMDLINE_MAX + 1);
    memset(longline, 'x', LAYOUT_CMDLINE_MAX);
    longline[LAYOUT_CMDLINE_MAX] = 0;
    char limit[32];
    snprintf(limit, sizeof(limit), "%llu", LAYOUT_CMDLINE_MAX - 1);
    expect_refusal(mem, img, size, NULL, 0, longline, -E2BIG, limit);
    longline[LAYOUT_CMDLINE_MAX - 1] = 0;
    r = load(mem, img, size, NULL, 0, longline);
    assert_int_equal(r.rc, 0);
    assert_int_equal(strlen(gpa_ptr(mem, LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX)),
                     LAYOUT_CMDLINE_MAX - 1);
    test_free(longline);
    test_free(img);
}

static void test_refuse_initrd_too_big(void **state)
{
    struct guest_mem *mem = *state;
    struct bz_spec spec = bz_default();
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    /* Larger than RAM. */
    uint8_t *initrd = test_calloc(1, 80 * MIB);
    expect_refusal(mem, img, size, initrd, 80 * MIB, "", -E2BIG, "initrd");
    /* Smaller than RAM, but not between the decompressed kernel (24 MiB) and the top. */
    expect_refusal(mem, img, size, initrd, 40 * MIB + 1, "", -E2BIG, "initrd");
    /* Exactly the room there is. */
    struct load_result r = load(mem, img, size, initrd, 40 * MIB, "");
    assert_int_equal(r.rc, 0);
    const uint8_t *bp = gpa_ptr(mem, LAYOUT_BOOT_PARAMS, 4096);
    assert_int_equal(get32(bp + 0x218), 24 * MIB);
    test_free(img);

    /* Fits in RAM, but not below the kernel's initrd_addr_max. */
    spec.initrd_addr_max = 32 * MIB - 1;
    img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, initrd, 8 * MIB + 1, "", -E2BIG, "initrd");
    r = load(mem, img, size, initrd, 8 * MIB, "");
    assert_int_equal(r.rc, 0);
    assert_int_equal(get32(bp + 0x218), 24 * MIB);
    test_free(initrd);
    test_free(img);
}

static void test_refuse_init_size_beyond_ram(void **state)
{
    struct guest_mem *mem = *state;
    struct bz_spec spec = bz_default();
    spec.init_size = 128 * MIB;
    size_t size;
    uint8_t *img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -E2BIG, "RAM");
    test_free(img);
    /* Fits from 1 MiB but not from the preferred address the kernel decompresses to. */
    spec.init_size = 60 * MIB;
    img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -E2BIG, "RAM");
    test_free(img);
    /* A preferred address beyond RAM. */
    spec.init_size = MIB;
    spec.pref_address = 0x100000000ULL;
    img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -E2BIG, "RAM");
    test_free(img);
    /* init_size near 4 GiB with a preferred address near 2^64 must not wrap into "fits". */
    spec.init_size = 0xfffff000;
    spec.pref_address = UINT64_MAX - 0xfff;
    img = bz_build(&spec, &size);
    expect_refusal(mem, img, size, NULL, 0, "", -E2BIG, "RAM");
    test_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_64m),
        cmocka_unit_test(test_boot_1g),
        cmocka_unit_test(test_boot_3g),
        cmocka_unit_test(test_boot_5g),
        cmocka_unit_test(test_detect_and_dispatch),
        cmocka_unit_test_setup_teardown(test_refuse_truncated, setup_64m, teardown_mem),
        cmocka_unit_test_setup_teardown(test_refuse_old_protocol, setup_64m, teardown_mem),
        cmocka_unit_test_setup_teardown(test_refuse_no_64bit_entry, setup_64m, teardown_mem),
        cmocka_unit_test_setup_teardown(test_cmdline_size_limit, setup_64m, teardown_mem),
        cmocka_unit_test_setup_teardown(test_refuse_initrd_too_big, setup_64m, teardown_mem),
        cmocka_unit_test_setup_teardown(test_refuse_init_size_beyond_ram, setup_64m,
                                        teardown_mem),
    };
    return cmocka_run_group_tests_name("boot_linux", tests, NULL, NULL);
}
