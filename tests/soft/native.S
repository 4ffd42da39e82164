/* Runs one test sequence natively: loads the general registers (RSP too: diff.c points it into
 * the memory window), RFLAGS and XMM0-15 from a struct diff_regs, jumps to the code page, and on
 * the jump back saves them all.
 * The code page ends with "jmp *diff_return_addr", landing on diff_native_return. */
        .text
        .globl  diff_run_native
        .type   diff_run_native, @function
diff_run_native:
        push    %rbx
        push    %rbp
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, diff_saved_rsp(%rip)
        mov     %rdi, diff_saved_state(%rip)
        mov     %rsi, diff_target(%rip)
        movdqu  136(%rdi), %xmm0
        movdqu  152(%rdi), %xmm1
        movdqu  168(%rdi), %xmm2
        movdqu  184(%rdi), %xmm3
        movdqu  200(%rdi), %xmm4
        movdqu  216(%rdi), %xmm5
        movdqu  232(%rdi), %xmm6
        movdqu  248(%rdi), %xmm7
        movdqu  264(%rdi), %xmm8
        movdqu  280(%rdi), %xmm9
        movdqu  296(%rdi), %xmm10
        movdqu  312(%rdi), %xmm11
        movdqu  328(%rdi), %xmm12
        movdqu  344(%rdi), %xmm13
        movdqu  360(%rdi), %xmm14
        movdqu  376(%rdi), %xmm15
        pushq   128(%rdi)
        popfq
        mov     0(%rdi), %rax
        mov     8(%rdi), %rcx
        mov     16(%rdi), %rdx
        mov     24(%rdi), %rbx
        mov     40(%rdi), %rbp
        mov     48(%rdi), %rsi
        mov     64(%rdi), %r8
        mov     72(%rdi), %r9
        mov     80(%rdi), %r10
        mov     88(%rdi), %r11
        mov     96(%rdi), %r12
        mov     104(%rdi), %r13
        mov     112(%rdi), %r14
        mov     120(%rdi), %r15
        mov     32(%rdi), %rsp          /* a stack in the memory window (diff.c) */
        mov     56(%rdi), %rdi
        jmp     *diff_target(%rip)

        .globl  diff_native_return
diff_native_return:
        xchg    %rdi, diff_saved_state(%rip)
        mov     %rsp, 32(%rdi)          /* before anything touches the guest's stack */
        mov     diff_saved_rsp(%rip), %rsp
        pushfq
        popq    128(%rdi)
        cld                             /* the C code after us assumes DF clear */
        mov     %rax, 0(%rdi)
        mov     %rcx, 8(%rdi)
        mov     %rdx, 16(%rdi)
        mov     %rbx, 24(%rdi)
        mov     %rbp, 40(%rdi)
        mov     %rsi, 48(%rdi)
        mov     %r8, 64(%rdi)
        mov     %r9, 72(%rdi)
        mov     %r10, 80(%rdi)
        mov     %r11, 88(%rdi)
        mov     %r12, 96(%rdi)
        mov     %r13, 104(%rdi)
        mov     %r14, 112(%rdi)
        mov     %r15, 120(%rdi)
        mov     diff_saved_state(%rip), %rax
        mov     %rax, 56(%rdi)
        movdqu  %xmm0, 136(%rdi)
        movdqu  %xmm1, 152(%rdi)
        movdqu  %xmm2, 168(%rdi)
        movdqu  %xmm3, 184(%rdi)
        movdqu  %xmm4, 200(%rdi)
        movdqu  %xmm5, 216(%rdi)
        movdqu  %xmm6, 232(%rdi)
        movdqu  %xmm7, 248(%rdi)
        movdqu  %xmm8, 264(%rdi)
        movdqu  %xmm9, 280(%rdi)
        movdqu  %xmm10, 296(%rdi)
        movdqu  %xmm11, 312(%rdi)
        movdqu  %xmm12, 328(%rdi)
        movdqu  %xmm13, 344(%rdi)
        movdqu  %xmm14, 360(%rdi)
        movdqu  %xmm15, 376(%rdi)
        mov     diff_saved_rsp(%rip), %rsp
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret
        .size   diff_run_native, . - diff_run_native


/* The same for 32-bit (compatibility mode) and 16-bit code: diff_run_native_legacy(state,
 * far, data_sel). far holds the entry as a far pointer (bits 0-31 offset, 32-47 code selector:
 * 0x23 for Linux's flat 32-bit user code, or a 16-bit code segment of the LDT); data_sel
 * holds the selectors loaded into DS (bits 0-15), ES (16-31) and SS (32-47) before the jump,
 * so memory operands and the stack are offsets from those segments' bases. RSP comes from the state too. The code page ends with a far jump to
 * 0x33 (64-bit user code) and a trampoline to diff_native_return_legacy, which saves the state
 * (RSP included) before it touches the stack, and puts the segment registers back. */
        .text
        .globl  diff_run_native_legacy
        .type   diff_run_native_legacy, @function
diff_run_native_legacy:
        push    %rbx
        push    %rbp
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, diff_saved_rsp(%rip)
        mov     %rdi, diff_saved_state(%rip)
        mov     %rsi, diff_far(%rip)
        mov     %ds, diff_saved_ds(%rip)
        mov     %es, diff_saved_es(%rip)
        mov     %ss, diff_saved_ss(%rip)
        movdqu  136(%rdi), %xmm0
        movdqu  152(%rdi), %xmm1
        movdqu  168(%rdi), %xmm2
        movdqu  184(%rdi), %xmm3
        movdqu  200(%rdi), %xmm4
        movdqu  216(%rdi), %xmm5
        movdqu  232(%rdi), %xmm6
        movdqu  248(%rdi), %xmm7
        mov     %dx, %ds
        shr     $16, %rdx
        mov     %dx, %es
        shr     $16, %rdx
        mov     %dx, %ss
        pushq   128(%rdi)
        popfq
        mov     0(%rdi), %rax
        mov     8(%rdi), %rcx
        mov     16(%rdi), %rdx
        mov     24(%rdi), %rbx
        mov     40(%rdi), %rbp
        mov     48(%rdi), %rsi
        mov     32(%rdi), %rsp
        mov     56(%rdi), %rdi
        ljmpl   *diff_far(%rip)

        .globl  diff_native_return_legacy
diff_native_return_legacy:
        xchg    %rdi, diff_saved_state(%rip)
        mov     %rsp, 32(%rdi)
        mov     diff_saved_rsp(%rip), %rsp
        pushfq
        popq    128(%rdi)
        cld
        mov     %rax, 0(%rdi)
        mov     %rcx, 8(%rdi)
        mov     %rdx, 16(%rdi)
        mov     %rbx, 24(%rdi)
        mov     %rbp, 40(%rdi)
        mov     %rsi, 48(%rdi)
        mov     diff_saved_state(%rip), %rax
        mov     %rax, 56(%rdi)
        movdqu  %xmm0, 136(%rdi)
        movdqu  %xmm1, 152(%rdi)
        movdqu  %xmm2, 168(%rdi)
        movdqu  %xmm3, 184(%rdi)
        movdqu  %xmm4, 200(%rdi)
        movdqu  %xmm5, 216(%rdi)
        movdqu  %xmm6, 232(%rdi)
        movdqu  %xmm7, 248(%rdi)
        mov     diff_saved_ss(%rip), %ss
        mov     diff_saved_ds(%rip), %ds
        mov     diff_saved_es(%rip), %es
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret
        .size   diff_run_native_legacy, . - diff_run_native_legacy

        .bss
        .align  8
diff_saved_rsp:   .quad 0
diff_saved_state: .quad 0
diff_target:      .quad 0
diff_far:         .quad 0
diff_saved_ds:    .word 0
diff_saved_es:    .word 0
diff_saved_ss:    .word 0
        .section .note.GNU-stack, "", @progbits
