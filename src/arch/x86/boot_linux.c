/* The Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry: the VMM does what
 * the real-mode setup code would, fills the zero page and jumps to startup_64. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "util/err.h"

/* Offsets in the image and in the zero page (struct boot_params). */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_JUMP 0x200
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define BP_SIZE 4096

#define LOADFLAG_LOADED_HIGH 0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01
#define MIN_PROTOCOL 0x020c /* 2.12: the first with xloadflags, so a 64-bit entry is declared */

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

int boot_linux_load(const struct guest_mem *mem, const struct boot_input *in,
                    struct boot_entry *entry, char *why, size_t why_len)
{
    const uint8_t *img = in->kernel;
    size_t size = in->kernel_size;
    if (size < HDR_INIT_SIZE + 4) {
        snprintf(why, why_len, "is a truncated bzImage (%zu bytes, setup header cut off)", size);
        return -ENOEXEC;
    }
    uint16_t version = rd16(img + HDR_VERSION);
    if (version < MIN_PROTOCOL || !(rd16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
        snprintf(why, why_len, "is a bzImage without a 64-bit entry point (boot protocol %u.%02u)",
                 version >> 8, version & 0xff);
        return -ENOEXEC;
    }
    unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
    size_t setup_size = (setup_sects + 1) * 512ULL;
    if (setup_size >= size) {
        snprintf(why, why_len, "is a truncated bzImage (%zu bytes, no protected-mode kernel)",
                 size);
        return -ENOEXEC;
    }
    size_t kernel_size = size - setup_size;
    uint64_t load = LAYOUT_HIGH_RAM_START;
    uint64_t init_size = rd32(img + HDR_INIT_SIZE);
    uint64_t pref = 0;
    memcpy(&pref, img + HDR_PREF_ADDRESS, 8);
    /* The kernel decompresses into init_size bytes at the load address or at its preferred one;
     * both must be RAM, and the initrd must stay clear of them. */
    uint64_t kernel_end = MAX(load + MAX(init_size, kernel_size), pref + init_size);
    if (pref > guest_mem_low_end(mem) || kernel_end > guest_mem_low_end(mem)) {
        snprintf(why, why_len, "needs %llu MiB of RAM below 3 GiB to decompress; give --memory more",
                 (unsigned long long)(kernel_end >> 20) + 1);
        return -E2BIG;
    }
    memcpy(gpa_ptr(mem, load, kernel_size), img + setup_size, kernel_size);

    uint8_t *bp = gpa_ptr(mem, LAYOUT_BOOT_PARAMS, BP_SIZE);
    memset(bp, 0, BP_SIZE);
    /* The setup header runs from 0x1f1 to the end given by the jump at 0x200. */
    size_t hdr_end = 0x202 + img[HDR_JUMP + 1];
    if (hdr_end > size || hdr_end > BP_SIZE)
        hdr_end = MIN(size, (size_t)BP_SIZE);
    memcpy(bp + HDR_SETUP_SECTS, img + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
    bp[HDR_TYPE_OF_LOADER] = 0xff; /* a boot loader without an assigned ID */
    bp[HDR_LOADFLAGS] |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
    bp[HDR_HEAP_END_PTR] = 0x00;
    bp[HDR_HEAP_END_PTR + 1] = 0xfe;

    size_t cmdline_len = strlen(in->cmdline);
    uint64_t cmdline_max = version >= 0x0206 ? rd32(img + HDR_CMDLINE_SIZE) : 255;
    /* Our buffer may be smaller than what the kernel accepts: report the limit that applies. */
    cmdline_max = MIN(cmdline_max, LAYOUT_CMDLINE_MAX - 1);
    if (cmdline_len > cmdline_max) {
        snprintf(why, why_len, "accepts a command line of at most %llu bytes (%zu given)",
                 (unsigned long long)cmdline_max, cmdline_len);
        return -E2BIG;
    }
    memcpy(gpa_ptr(mem, LAYOUT_CMDLINE, cmdline_len + 1), in->cmdline, cmdline_len + 1);
    wr32(bp + HDR_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE);

    if (in->initrd) {
        uint64_t limit = (uint64_t)rd32(img + HDR_INITRD_ADDR_MAX) + 1;
        uint64_t addr = boot_place_initrd(mem, in, ALIGN_UP(kernel_end, 4096), limit, why, why_len);
        if (!addr)
            return -E2BIG;
        wr32(bp + HDR_RAMDISK_IMAGE, (uint32_t)addr);
        wr32(bp + HDR_RAMDISK_SIZE, (uint32_t)in->initrd_size);
    }

    struct e820_entry map[E820_MAX_ENTRIES];
    unsigned n = e820_build(mem, map);
    bp[BP_E820_ENTRIES] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = bp + BP_E820_TABLE + i * 20;
        wr64(e, map[i].addr);
        wr64(e + 8, map[i].size);
        wr32(e + 16, map[i].type);
    }
    wr64(bp + BP_ACPI_RSDP_ADDR, in->rsdp_gpa);

    memset(entry, 0, sizeof(*entry));
    boot_setup_long64(mem, entry);
    entry->regs.rip = load + 0x200; /* startup_64 */
    entry->regs.rsi = LAYOUT_BOOT_PARAMS;
    return 0;
}
