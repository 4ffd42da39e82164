/* Test-guest entry: the PVH ELF note, the 32-bit PVH entry point, the climb to long mode (shared by
 * the boot CPU and the APs), the real-mode AP trampoline and the 256 interrupt stubs.
 *
 * PVH hands us 32-bit protected mode, paging off, flat segments, interrupts off, and the physical
 * address of struct hvm_start_info in %ebx. Nothing else is assumed: we load our own GDT, zero our
 * own .bss and build our own page tables (identity map of the low 4 GiB in 2 MiB pages; the top
 * GiB, where the MMIO lives, uncached). */
#include "defs.h"

/* ---- PVH note: Xen's XEN_ELFNOTE_PHYS32_ENTRY (type 18), name "Xen", a 32-bit entry address */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32

/* ---- descriptor tables used before C runs */
    .section .data
    .balign 16
    .globl gdt64
gdt64:
    .quad 0
    .quad 0x00af9b000000ffff    /* SEL_CODE64: long-mode code, accessed bit preset */
    .quad 0x00cf93000000ffff    /* SEL_DATA: flat data */
    .quad 0x00cf9b000000ffff    /* SEL_CODE32: flat 32-bit code, for PVH entry and APs */
gdt64_end:
    .balign 8
gdt64_desc:
    .word gdt64_end - gdt64 - 1
    .quad gdt64

    .globl pvh_start_info_paddr
pvh_start_info_paddr:
    .long 0
    /* Set by smp.c before each SIPI: the stack the next AP starts on. */
    .globl ap_stack_top
ap_stack_top:
    .quad 0

    .section .bss
    .balign 4096
    .globl pml4, pdpt_low, pd_low
pml4:
    .skip 4096
pdpt_low:
    .skip 4096
pd_low:                         /* four page directories: 0-4 GiB */
    .skip 4 * 4096
    .balign 16
boot_stack:
    .skip BOOT_STACK_SIZE
boot_stack_top:

/* ---- 32-bit entry of the boot CPU */
    .section .text.entry, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi
    lgdt gdt64_desc
    ljmp $SEL_CODE32, $1f
1:  mov $SEL_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %esp

    /* Zero .bss ourselves: the loader should have, but a guest that trusts it tests nothing. */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
    mov %esi, pvh_start_info_paddr

    /* 2048 2 MiB pages for 0-4 GiB; the last 512 (3-4 GiB: PCI hole, ECAM, IOAPIC, LAPIC)
     * with PCD|PWT so MMIO is never cached. */
    mov $pd_low, %edi
    mov $0x83, %eax             /* present, writable, 2 MiB page */
    mov $1536, %ecx
2:  mov %eax, (%edi)
    add $8, %edi
    add $0x200000, %eax
    dec %ecx
    jnz 2b
    or $0x18, %eax
    mov $512, %ecx
3:  mov %eax, (%edi)
    add $8, %edi
    add $0x200000, %eax
    dec %ecx
    jnz 3b

    mov $pdpt_low, %edi
    mov $pd_low + 3, %eax
    mov $4, %ecx
4:  mov %eax, (%edi)
    add $8, %edi
    add $4096, %eax
    dec %ecx
    jnz 4b
    movl $pdpt_low + 3, pml4

    mov $bsp_start64, %ebp
    jmp enter_long_mode

/* APs arrive here from the trampoline in 32-bit protected mode with paging off. */
    .globl ap_start32
ap_start32:
    mov $SEL_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $ap_start64, %ebp
    /* fall through */

/* Common to all CPUs: %ebp = 64-bit continuation (rdmsr/wrmsr clobber %edx). */
enter_long_mode:
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $(CR0_PG | CR0_PE), %eax
    mov %eax, %cr0
    ljmp $SEL_CODE64, $long_entry

    .code64
long_entry:
    mov $SEL_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov %ebp, %ebp              /* the upper half is undefined after the mode switch */
    jmp *%rbp

bsp_start64:
    mov $boot_stack_top, %rsp
    mov pvh_start_info_paddr(%rip), %edi
    call runtime_start
    jmp halt_forever

ap_start64:
    mov ap_stack_top(%rip), %rsp
    call ap_runtime_entry
    /* fall through */

    .globl halt_forever
halt_forever:
    cli
5:  hlt
    jmp 5b

/* ---- real-mode AP trampoline, copied to TRAMPOLINE_BASE by smp.c. A SIPI starts the AP at
 * CS = TRAMPOLINE_BASE >> 4, IP = 0; everything here must be position independent. */
    .section .rodata
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl %ds:(tramp_gdt_desc - ap_trampoline_start)
    mov %cr0, %eax
    or $CR0_PE, %eax
    mov %eax, %cr0
    ljmpl $SEL_CODE32, $ap_start32
    .balign 8
tramp_gdt_desc:
    .word gdt64_end - gdt64 - 1
    .long gdt64
ap_trampoline_end:

/* ---- interrupt stubs: 16 bytes each, so stub N is at isr_stubs + 16 * N. Vectors without a CPU
 * error code push a zero so every frame has the same shape. */
    .code64
    .section .text
    .balign 16
    .globl isr_stubs
isr_stubs:
    .altmacro
    .macro isr_stub vec
    .balign 16
    .if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || \
        (\vec == 29) || (\vec == 30)
    .else
    pushq $0
    .endif
    pushq $\vec
    jmp isr_common
    .endm
    .set vec, 0
    .rept 256
    isr_stub %vec
    .set vec, vec + 1
    .endr
    .noaltmacro

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi              /* 5 CPU words + 2 + 15 = 176 bytes: %rsp stays 16-aligned */
    call trap_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

    .section .note.GNU-stack, "", @progbits
