/* Control transfer (Jcc, JMP, CALL, RET, LOOP) and the few system-flavoured instructions that
 * user code executes (SYSCALL, CPUID, RDTSC). Each of these ends a decoded block or is cheap. */
#include "accel/soft/exec.h"

static uint64_t code_addr(const struct soft_cpu *cpu, uint64_t v, unsigned osz)
{
    if (cpu->mode == 64 && osz == 8)
        return v;
    return osz == 2 ? (uint16_t)v : (uint32_t)v;
}

SOFT_HANDLER_BRANCH(soft_jcc, 0)
{
    if (soft_cond_masked(cpu, i->sub, i->imm2))
        cpu->rip = i->imm;
}

SOFT_HANDLER_BRANCH(soft_jmp_rel, 0)
{
    cpu->rip = i->imm;
}

SOFT_HANDLER_BRANCH(soft_jmp_rm, 1)
{
    cpu->rip = code_addr(cpu, soft_rm_get(cpu, i, i->osz), i->osz);
}

SOFT_HANDLER_BRANCH(soft_call_rel, 1)
{
    soft_push(cpu, i->osz, i->next_rip);
    cpu->rip = i->imm;
}

SOFT_HANDLER_BRANCH(soft_call_rm, 1)
{
    uint64_t t = code_addr(cpu, soft_rm_get(cpu, i, i->osz), i->osz);
    soft_push(cpu, i->osz, i->next_rip);
    cpu->rip = t;
}

SOFT_HANDLER_BRANCH(soft_ret, 1)
{
    uint64_t t = soft_pop(cpu, i->osz);
    if (cpu->mode == 64)
        cpu->regs[SOFT_RSP] += i->imm;
    else
        soft_stack_adjust(cpu, (int64_t)i->imm);
    cpu->rip = code_addr(cpu, t, i->osz);
}

SOFT_HANDLER(soft_loop)
{
    uint64_t c = (soft_get(cpu, SOFT_RCX, i->asz) - 1) & soft_mask(i->asz);
    soft_set(cpu, SOFT_RCX, i->asz, c);
    int take = c != 0;
    if (i->sub == 1)
        take = take && soft_cond(cpu, 4);  /* LOOPE: ZF */
    else if (i->sub == 0)
        take = take && soft_cond(cpu, 5);  /* LOOPNE: !ZF */
    if (take)
        cpu->rip = i->imm;
}

SOFT_HANDLER(soft_jrcxz)
{
    if (soft_get(cpu, SOFT_RCX, i->asz) == 0)
        cpu->rip = i->imm;
}

SOFT_HANDLER(soft_syscall)
{
    /* User mode: the owner services the call. RCX and R11 get what the kernel would leave. */
    cpu->regs[SOFT_RCX] = i->next_rip;
    cpu->regs[SOFT_R11] = soft_cpu_get_rflags(cpu);
    soft_request_exit(cpu, SOFT_EXIT_SYSCALL);
}

SOFT_HANDLER(soft_cpuid_insn)
{
    (void)i;
    uint32_t out[4];
    if (cpu->ops->cpuid)
        cpu->ops->cpuid(cpu, (uint32_t)cpu->regs[SOFT_RAX], (uint32_t)cpu->regs[SOFT_RCX], out);
    else
        soft_cpuid(cpu, (uint32_t)cpu->regs[SOFT_RAX], (uint32_t)cpu->regs[SOFT_RCX], out);
    cpu->regs[SOFT_RAX] = out[0];
    cpu->regs[SOFT_RBX] = out[1];
    cpu->regs[SOFT_RCX] = out[2];
    cpu->regs[SOFT_RDX] = out[3];
}

SOFT_HANDLER(soft_rdtsc)
{
    (void)i;
    uint64_t t = (cpu->ops->tsc ? cpu->ops->tsc(cpu) : __builtin_ia32_rdtsc()) + cpu->tsc_offset;
    cpu->regs[SOFT_RAX] = (uint32_t)t;
    cpu->regs[SOFT_RDX] = t >> 32;
}

SOFT_HANDLER(soft_rdtscp)
{
    soft_rdtsc_body(cpu, i);
    cpu->regs[SOFT_RCX] = (uint32_t)cpu->tsc_aux;
}

SOFT_HANDLER(soft_hlt)
{
    (void)i;
    if (cpu->cpl != 0)
        soft_raise(cpu, SOFT_EXC_GP, 0);
    soft_request_exit(cpu, SOFT_EXIT_HLT);
}

SOFT_HANDLER(soft_int3)
{
    (void)i;
    /* A trap: RIP stays after the instruction, and the block ends here. */
    cpu->exc_vector = SOFT_EXC_BP;
    cpu->exc_error = 0;
    soft_request_exit(cpu, SOFT_EXIT_EXCEPTION);
}

SOFT_HANDLER(soft_int_n)
{
    /* Software interrupts go through the IDT in system mode (next issue); user mode has none. */
    soft_raise(cpu, SOFT_EXC_GP, (uint32_t)((i->imm & 0xff) << 3) | 2);
}

SOFT_HANDLER(soft_gp)
{
    (void)i;
    soft_raise(cpu, SOFT_EXC_GP, 0);
}
