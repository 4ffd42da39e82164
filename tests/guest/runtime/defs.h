/* Constants shared by the runtime's assembly and C: segment selectors, where the AP trampoline
 * goes, stack sizes. Kept free of C so entry.S can include it. */
#ifndef GUEST_DEFS_H
#define GUEST_DEFS_H

#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_CODE32 0x18

/* The AP trampoline must sit below 1 MiB on a 4 KiB boundary (the SIPI vector is its page
 * number). 0x8000 is usable RAM in both Vireo's and QEMU's low memory map; the runtime copies the
 * PVH start info away before anything is written there. */
#define TRAMPOLINE_BASE 0x8000

#define BOOT_STACK_SIZE 0x4000
#define AP_STACK_SIZE   0x2000
#define MAX_CPUS        16

#define MSR_EFER      0xc0000080
#define EFER_LME      (1 << 8)
#define EFER_LMA      (1 << 10)
#define CR0_PE        (1 << 0)
#define CR0_PG        (1 << 31)
#define CR4_PAE       (1 << 5)

#define PVH_MAGIC 0x336ec578

#endif
