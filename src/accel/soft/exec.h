/* Instruction handlers, grouped by the file that implements them. The decoder picks one per
 * instruction; each reads its operands from struct soft_insn. Internal to src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_EXEC_H
#define VIREO_ACCEL_SOFT_EXEC_H

#include "accel/soft/cache.h"
#include "accel/soft/insn.h"

/* Declaration of a handler defined with SOFT_HANDLER. */
#define SOFT_DECL(name) void name(struct soft_cpu *cpu, const struct soft_insn *i)

/* Threaded dispatch: every handler ends by jumping to the next instruction of its block (a
 * sibling call), and each block ends with soft_block_end, which returns to the run loop. This
 * spreads the indirect branches over the handlers, where the host predicts them far better than
 * at one call site in a loop. */
void soft_block_end(struct soft_cpu *cpu, const struct soft_insn *i);

static inline void soft_next(struct soft_cpu *cpu, const struct soft_insn *i)
{
    const struct soft_insn *n = i + 1;
    n->fn(cpu, n);
}

/* Stop chaining after the current block: the run loop then returns with exit_reason. An
 * exit request spends the chain budget instead of being tested on its own, so soft_chain()
 * has one counter to check per block; the next block end returns to the loop, which sees
 * exit_reason. */
static inline void soft_request_exit(struct soft_cpu *cpu, enum soft_exit reason)
{
    cpu->exit_reason = reason;
    cpu->chain_budget = 1;
}

/* soft_chain()'s continuation into a successor block on another page: checks that the page
 * still maps the code the block was decoded from. Out of line, so that the common same-page
 * chain needs no stack frame (the check may call into the TLB slow path). */
void soft_chain_other_page(struct soft_cpu *cpu, struct soft_block *b, struct soft_block *n);

/* The end of a block, whose terminator entry is t: chain straight into the next block when it
 * is one of this block's two remembered successors, otherwise (or when the chain budget is
 * spent, or the block asked to exit) return to the run loop. Branch handlers, always the last
 * instruction of their block, run this themselves instead of dispatching to the terminator:
 * that saves an indirect jump per block, and spreads the jump into the next block over many
 * sites, which the host predicts better than the single one in soft_block_end. Only a return
 * to the loop records the block (cpu->last_block), as the place the loop chains from. Always
 * inlined: a shared out-of-line copy would put the jump into the next block back in one place. */
static inline __attribute__((always_inline)) void soft_chain(struct soft_cpu *cpu,
                                                            const struct soft_insn *t)
{
    struct soft_block *b = (struct soft_block *)(uintptr_t)t->imm;
    cpu->insn_count += b->n;
    if (--cpu->chain_budget == 0)
        goto back_to_loop; /* also after soft_request_exit() */
    uint64_t pc = cpu->rip;
    struct soft_block *n;
    if (b->succ_pc[0] == pc)
        n = b->succ[0];
    else if (b->succ_pc[1] == pc)
        n = b->succ[1];
    else
        goto back_to_loop;
    if (n->pc != pc)
        goto back_to_loop; /* invalidated since it was linked */
    if ((n->pc ^ b->pc) >> 12) {
        soft_chain_other_page(cpu, b, n);
        return;
    }
    cpu->rip = n->end_rip;
    n->insns->fn(cpu, n->insns);
    return;
back_to_loop:
    cpu->last_block = b;
}

#define SOFT_HANDLER_DEF(qual, name, mayfault)                                                 \
    SOFT_HANDLER_DEF_THEN(qual, name, mayfault, soft_next(cpu, i))

#define SOFT_HANDLER_DEF_THEN(qual, name, mayfault, then)                                      \
    static inline __attribute__((always_inline)) void name##_body(                            \
        struct soft_cpu *cpu __attribute__((unused)),                                          \
        const struct soft_insn *i __attribute__((unused)));                                    \
    qual void name(struct soft_cpu *cpu, const struct soft_insn *i)                            \
    {                                                                                          \
        if (mayfault)                                                                          \
            cpu->cur = i; /* for precise faults */                                             \
        name##_body(cpu, i);                                                                   \
        then;                                                                                  \
    }                                                                                          \
    static inline __attribute__((always_inline)) void name##_body(                            \
        struct soft_cpu *cpu __attribute__((unused)),                                          \
        const struct soft_insn *i __attribute__((unused)))

/* Define a handler: the body runs, then execution continues with the next instruction. */
#define SOFT_HANDLER(name) SOFT_HANDLER_DEF(, name, 1)
#define SOFT_HANDLER_STATIC(name) SOFT_HANDLER_DEF(static, name, 1)
/* For handlers that can never fault (register-only forms): they skip recording cpu->cur. */
#define SOFT_HANDLER_NOFAULT_STATIC(name) SOFT_HANDLER_DEF(static, name, 0)
/* For branches, which always end their block: the block's terminator follows them. */
#define SOFT_HANDLER_BRANCH(name, mayfault)                                                    \
    SOFT_HANDLER_DEF_THEN(, name, mayfault, soft_chain(cpu, i + 1))

/* exec_alu.c: arithmetic, logic, shifts, bit operations, multiply/divide, atomics. */
SOFT_DECL(soft_alu_rm_reg);
SOFT_DECL(soft_alu_reg_rm);
SOFT_DECL(soft_alu_rm_imm);
SOFT_DECL(soft_test_rm_reg);
SOFT_DECL(soft_test_rm_imm);
SOFT_DECL(soft_incdec_rm);
SOFT_DECL(soft_not_rm);
SOFT_DECL(soft_neg_rm);
SOFT_DECL(soft_mul_rm);
SOFT_DECL(soft_imul1_rm);
SOFT_DECL(soft_div_rm);
SOFT_DECL(soft_idiv_rm);
SOFT_DECL(soft_imul_reg_rm);
SOFT_DECL(soft_imul_reg_rm_imm);
SOFT_DECL(soft_shift_rm_imm);
SOFT_DECL(soft_shift_rm_cl);
SOFT_DECL(soft_shxd);
SOFT_DECL(soft_bt_rm_reg);
SOFT_DECL(soft_bt_rm_imm);
SOFT_DECL(soft_bsf);
SOFT_DECL(soft_bsr);
SOFT_DECL(soft_tzcnt);
SOFT_DECL(soft_lzcnt);
SOFT_DECL(soft_popcnt);
SOFT_DECL(soft_bswap);
SOFT_DECL(soft_xadd);
SOFT_DECL(soft_cmpxchg);
SOFT_DECL(soft_cmpxchg8b16b);
SOFT_DECL(soft_cbw);
SOFT_DECL(soft_cwd);
SOFT_DECL(soft_lahf);
SOFT_DECL(soft_sahf);
SOFT_DECL(soft_flagop);
SOFT_DECL(soft_movbe);

/* exec_mov.c: data movement, stack, conditional moves. */
SOFT_DECL(soft_mov_rm_reg);
SOFT_DECL(soft_mov_reg_rm);
SOFT_DECL(soft_mov_rm_imm);
SOFT_DECL(soft_mov_reg_imm);
SOFT_DECL(soft_mov_moffs_load);
SOFT_DECL(soft_mov_moffs_store);
SOFT_DECL(soft_movzx);
SOFT_DECL(soft_movsx);
SOFT_DECL(soft_lea);
SOFT_DECL(soft_xchg_rm_reg);
SOFT_DECL(soft_push_reg);
SOFT_DECL(soft_pop_reg);
SOFT_DECL(soft_push_imm);
SOFT_DECL(soft_push_rm);
SOFT_DECL(soft_pop_rm);
SOFT_DECL(soft_cmov);
SOFT_DECL(soft_setcc);
SOFT_DECL(soft_mov_rm_sreg);
SOFT_DECL(soft_pushf);
SOFT_DECL(soft_popf);
SOFT_DECL(soft_leave);
SOFT_DECL(soft_enter);
SOFT_DECL(soft_nop);
SOFT_DECL(soft_xlat);

/* exec_legacy.c: instructions of 32/16-bit code only (#UD in 64-bit mode). */
SOFT_DECL(soft_pusha);
SOFT_DECL(soft_popa);
SOFT_DECL(soft_bound);
SOFT_DECL(soft_daa_das);
SOFT_DECL(soft_aaa_aas);
SOFT_DECL(soft_aam_aad);

/* exec_ctl.c: control transfer and system-ish instructions allowed in user mode. */
SOFT_DECL(soft_jcc);
SOFT_DECL(soft_jmp_rel);
SOFT_DECL(soft_jmp_rm);
SOFT_DECL(soft_call_rel);
SOFT_DECL(soft_call_rm);
SOFT_DECL(soft_ret);
SOFT_DECL(soft_loop);
SOFT_DECL(soft_jrcxz);
SOFT_DECL(soft_syscall);
SOFT_DECL(soft_cpuid_insn);
SOFT_DECL(soft_rdtsc);
SOFT_DECL(soft_rdtscp);
SOFT_DECL(soft_hlt);
SOFT_DECL(soft_int3);
SOFT_DECL(soft_int_n);
SOFT_DECL(soft_gp);

/* exec_string.c: MOVS/CMPS/STOS/LODS/SCAS with REP prefixes. */
SOFT_DECL(soft_movs);
SOFT_DECL(soft_cmps);
SOFT_DECL(soft_stos);
SOFT_DECL(soft_lods);
SOFT_DECL(soft_scas);

/* sse.c: picks the handler of an SSE/SSE2 form (0F map with mandatory prefix in i->pfx, or the
 * 0F38/0F3A maps); returns 0, or -1 if the form is undefined for the CPU model. */
int soft_sse_select(const struct soft_cpu *cpu, struct soft_insn *i);
/* Whether an SSE form (i->op) takes an 8-bit immediate. */
int soft_sse_has_imm8(unsigned op);

/* x87.c: picks the handler of an x87 escape (D8..DF, ModRM in i); 0 or -1 (undefined). */
int soft_x87_select(struct soft_insn *i, uint8_t modrm);
SOFT_DECL(soft_fwait);

/* exec_sys.c: system instructions (control registers, descriptor tables, MSRs, I/O, segment
 * loads and far transfers, SYSCALL/SYSRET in system mode). */
SOFT_DECL(soft_pause); /* exec_mov.c */
SOFT_DECL(soft_mov_from_cr);
SOFT_DECL(soft_mov_to_cr);
SOFT_DECL(soft_mov_from_dr);
SOFT_DECL(soft_mov_to_dr);
SOFT_DECL(soft_clts);
SOFT_DECL(soft_smsw);
SOFT_DECL(soft_lmsw);
SOFT_DECL(soft_invlpg);
SOFT_DECL(soft_cache_nop);
SOFT_DECL(soft_sgdt_sidt);
SOFT_DECL(soft_lgdt_lidt);
SOFT_DECL(soft_sldt_str);
SOFT_DECL(soft_lldt_ltr);
SOFT_DECL(soft_verr_verw);
SOFT_DECL(soft_rdmsr);
SOFT_DECL(soft_wrmsr);
SOFT_DECL(soft_cli_sti);
SOFT_DECL(soft_port_io);
SOFT_DECL(soft_syscall_sys);
SOFT_DECL(soft_sysret);
SOFT_DECL(soft_swapgs);
SOFT_DECL(soft_int_sys);
SOFT_DECL(soft_mov_sreg_rm);
SOFT_DECL(soft_far_direct);
SOFT_DECL(soft_far_indirect);
SOFT_DECL(soft_retf);
SOFT_DECL(soft_iret);

#endif
