/* Direct kernel boot: load a Linux bzImage (64-bit boot protocol) or an ELF with a PVH entry
 * note into guest RAM, and say in what CPU state the boot vCPU starts. */
#ifndef VIREO_ARCH_X86_BOOT_H
#define VIREO_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "accel/accel.h"
#include "vmm/memory.h"

struct boot_input {
    const uint8_t *kernel;
    size_t kernel_size;
    const uint8_t *initrd;   /* NULL: none */
    size_t initrd_size;
    const char *cmdline;
    uint64_t rsdp_gpa;       /* where the ACPI RSDP is */
};

struct boot_entry {
    struct vcpu_regs regs;
    struct vcpu_sregs sregs;
};

enum boot_format { BOOT_FORMAT_UNKNOWN, BOOT_FORMAT_BZIMAGE, BOOT_FORMAT_ELF };

/* Which loader a kernel image needs, from its first bytes. */
enum boot_format boot_detect(const uint8_t *image, size_t size);

/* Load kernel (and initrd, cmdline, boot tables) into mem and fill the boot vCPU's entry state.
 * Returns 0, or -EINVAL/-ENOEXEC/-E2BIG/-ENOSPC with a one-line reason in `why`. */
int boot_load(const struct guest_mem *mem, const struct boot_input *in, struct boot_entry *entry,
              char *why, size_t why_len);

/* The individual loaders, same contract. */
int boot_linux_load(const struct guest_mem *mem, const struct boot_input *in,
                    struct boot_entry *entry, char *why, size_t why_len);
int boot_pvh_load(const struct guest_mem *mem, const struct boot_input *in,
                  struct boot_entry *entry, char *why, size_t why_len);

/* Shared by the loaders: write the flat boot GDT into RAM and set segments for 32-bit protected
 * mode (PVH) or 64-bit long mode with identity-mapped low 4 GiB (Linux). */
void boot_setup_protected32(const struct guest_mem *mem, struct boot_entry *entry);
void boot_setup_long64(const struct guest_mem *mem, struct boot_entry *entry);

/* Place the initrd as high as possible below `limit` (exclusive) and above `floor`, 4 KiB
 * aligned. Returns its address, or 0 (with `why`) if it does not fit. */
uint64_t boot_place_initrd(const struct guest_mem *mem, const struct boot_input *in,
                           uint64_t floor, uint64_t limit, char *why, size_t why_len);

#endif
