/* Data movement: MOV forms, zero/sign extension, LEA, XCHG, the stack, CMOVcc/SETcc. */
#include "accel/soft/exec.h"

SOFT_HANDLER(soft_mov_rm_reg)
{
    soft_rm_set(cpu, i, i->osz, soft_get(cpu, i->reg, i->osz));
}

SOFT_HANDLER(soft_mov_reg_rm)
{
    soft_set(cpu, i->reg, i->osz, soft_rm_get(cpu, i, i->osz));
}

SOFT_HANDLER(soft_mov_rm_imm)
{
    soft_rm_set(cpu, i, i->osz, i->imm);
}

SOFT_HANDLER(soft_mov_reg_imm)
{
    soft_set(cpu, i->reg, i->osz, i->imm);
}

static uint64_t moffs(struct soft_cpu *cpu, const struct soft_insn *i)
{
    return soft_seg_linear(cpu, i->seg, soft_addr_trunc(i->disp, i->asz), i->osz);
}

SOFT_HANDLER(soft_mov_moffs_load)
{
    soft_set(cpu, SOFT_RAX, i->osz, soft_ld(cpu, moffs(cpu, i), i->osz));
}

SOFT_HANDLER(soft_mov_moffs_store)
{
    soft_st(cpu, moffs(cpu, i), i->osz, soft_get(cpu, SOFT_RAX, i->osz));
}

SOFT_HANDLER(soft_movzx)
{
    soft_set(cpu, i->reg, i->osz, soft_rm_get(cpu, i, i->sub));
}

SOFT_HANDLER(soft_movsx)
{
    soft_set(cpu, i->reg, i->osz, soft_sext(soft_rm_get(cpu, i, i->sub), i->sub));
}

SOFT_HANDLER(soft_lea)
{
    uint64_t a = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
    soft_set(cpu, i->reg, i->osz, soft_addr_trunc(a, i->asz));
}

SOFT_HANDLER(soft_xchg_rm_reg)
{
    unsigned osz = i->osz;
    uint64_t r = soft_get(cpu, i->reg, osz);
    if (!i->mem) {
        uint64_t v = soft_get(cpu, i->rm, osz);
        soft_set(cpu, i->rm, osz, r);
        soft_set(cpu, i->reg, osz, v);
        return;
    }
    /* XCHG with memory is always locked. */
    void *p = soft_mem(cpu, soft_ea(cpu, i, osz), osz, SOFT_ACC_WRITE);
    uint64_t v;
    do {
        v = soft_ldp(p, osz);
    } while (!soft_casp(p, osz, v, r));
    soft_set(cpu, i->reg, osz, v);
}

SOFT_HANDLER(soft_push_reg)
{
    soft_push(cpu, i->osz, soft_get(cpu, i->reg, i->osz));
}

SOFT_HANDLER(soft_pop_reg)
{
    uint64_t v = soft_pop(cpu, i->osz);
    soft_set(cpu, i->reg, i->osz, v);
}

SOFT_HANDLER(soft_push_imm)
{
    soft_push(cpu, i->osz, i->imm);
}

SOFT_HANDLER(soft_push_rm)
{
    soft_push(cpu, i->osz, soft_rm_get(cpu, i, i->osz));
}

SOFT_HANDLER(soft_pop_rm)
{
    uint64_t old = cpu->regs[SOFT_RSP];
    uint64_t v = soft_pop(cpu, i->osz);
    if (!i->mem) {
        soft_set(cpu, i->rm, i->osz, v);
        return;
    }
    /* The address uses RSP after the pop; the limit check and the store may fault, so undo
     * RSP until it lands. */
    uint64_t off = soft_ea_offset(cpu, i);
    uint64_t newsp = cpu->regs[SOFT_RSP];
    cpu->regs[SOFT_RSP] = old;
    soft_st(cpu, soft_seg_linear(cpu, i->seg, off, i->osz), i->osz, v);
    cpu->regs[SOFT_RSP] = newsp;
}

SOFT_HANDLER(soft_cmov)
{
    uint64_t v = soft_rm_get(cpu, i, i->osz);
    if (soft_cond_masked(cpu, i->sub, i->imm2))
        soft_set(cpu, i->reg, i->osz, v);
    else if (i->osz == 4)
        cpu->regs[i->reg] = (uint32_t)cpu->regs[i->reg]; /* 32-bit CMOV always zero-extends */
}

SOFT_HANDLER(soft_setcc)
{
    soft_rm_set(cpu, i, 1, (uint64_t)soft_cond_masked(cpu, i->sub, i->imm2));
}

SOFT_HANDLER(soft_mov_rm_sreg)
{
    uint64_t v = cpu->seg[i->sub].selector;
    if (i->mem)
        soft_st(cpu, soft_ea(cpu, i, 2), 2, v);
    else
        soft_set(cpu, i->rm, i->osz == 2 ? 2 : 4, v);
}

SOFT_HANDLER(soft_pushf)
{
    soft_push(cpu, i->osz, soft_cpu_get_rflags(cpu) & ~0x30000ull);
}

SOFT_HANDLER(soft_popf)
{
    uint64_t v = soft_pop(cpu, i->osz);
    /* What CPL 3 may change: arithmetic flags, TF, DF, NT, AC, ID (not IF or IOPL). */
    uint64_t allowed = 0x244dd5;
    if (cpu->cpl == 0)
        allowed |= 0x3200; /* IF and IOPL */
    if (i->osz == 2)
        allowed &= 0xffff;
    uint64_t cur = soft_cpu_get_rflags(cpu);
    soft_cpu_set_rflags(cpu, (cur & ~allowed) | (v & allowed));
}

SOFT_HANDLER(soft_leave)
{
    unsigned ssz = soft_stack_size(cpu);
    uint64_t bp = soft_get(cpu, SOFT_RBP, ssz);
    uint64_t v = soft_ld(cpu, soft_stack_linear(cpu, bp, i->osz), i->osz);
    soft_set(cpu, SOFT_RSP, ssz, bp + i->osz);
    soft_set(cpu, SOFT_RBP, i->osz, v);
}

SOFT_HANDLER(soft_enter)
{
    unsigned osz = i->osz, level = i->imm2 & 31, ssz = soft_stack_size(cpu);
    uint64_t old_sp = cpu->regs[SOFT_RSP];
    uint64_t bp = soft_get(cpu, SOFT_RBP, ssz);
    soft_push(cpu, osz, cpu->regs[SOFT_RBP]);
    uint64_t frame = cpu->regs[SOFT_RSP]; /* the whole ESP, even with a 16-bit stack */
    for (unsigned k = 1; k < level; k++) {
        bp = soft_addr_trunc(bp - osz, ssz);
        soft_push(cpu, osz, soft_ld(cpu, soft_stack_linear(cpu, bp, osz), osz));
    }
    if (level)
        soft_push(cpu, osz, frame);
    uint64_t sp = soft_addr_trunc(soft_get(cpu, SOFT_RSP, ssz) - i->imm, ssz);
    /* Touch the new stack top so that a fault happens before any register changes stick
     * (the pushes above moved RSP: a fault restores it). */
    uint64_t pushed = cpu->regs[SOFT_RSP];
    cpu->regs[SOFT_RSP] = old_sp;
    soft_mem(cpu, soft_stack_linear(cpu, sp, 1), 1, SOFT_ACC_WRITE);
    cpu->regs[SOFT_RSP] = pushed;
    soft_set(cpu, SOFT_RBP, osz, frame);
    soft_set(cpu, SOFT_RSP, ssz, sp);
}

/* PAUSE: a spin-wait hint. The host's own PAUSE gives a spinning guest about the delay a real
 * CPU has and lets the sibling thread (another vCPU, the I/O thread) run; spin-count timeouts
 * in guests then last about as long as on hardware. */
SOFT_HANDLER(soft_pause)
{
    for (int k = 0; k < 4; k++)
        __builtin_ia32_pause();
}

SOFT_HANDLER(soft_nop)
{
    (void)cpu;
    (void)i;
}

SOFT_HANDLER(soft_xlat)
{
    uint64_t a = soft_addr_trunc(cpu->regs[SOFT_RBX] + (cpu->regs[SOFT_RAX] & 0xff), i->asz);
    soft_set(cpu, SOFT_RAX, 1, soft_ld(cpu, soft_seg_linear(cpu, i->seg, a, 1), 1));
}
