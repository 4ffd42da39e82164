/* quick_exit: the smallest PVH guest, for the startup benchmark. It writes status 0 to the
 * debug-exit port from the 32-bit entry, before any runtime set-up, so the time a run takes is
 * the VMM's own. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start32

    .section .text.entry, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    xor %eax, %eax
    out %eax, $0xf4
1:  cli
    hlt
    jmp 1b

    .section .bss
    .globl __bss_start, __bss_end
    .section .note.GNU-stack, "", @progbits
