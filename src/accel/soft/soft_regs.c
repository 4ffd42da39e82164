/* Register state of a software vCPU in and out of the accelerator-neutral structures
 * (struct vcpu_regs / vcpu_sregs), for boot, snapshot and migration. */
#include "accel/soft/soft_machine.h"

#include "accel/soft/excp.h"
#include "accel/soft/lapic.h"
#include "arch/x86/msr.h"

static void seg_out(struct vcpu_segment *d, const struct soft_segment *s)
{
    uint16_t a = s->attr;
    *d = (struct vcpu_segment){
        .base = s->base, .limit = s->limit, .selector = s->selector,
        .type = a & 0xf, .s = (a >> 4) & 1, .dpl = (a >> 5) & 3, .present = (a >> 7) & 1,
        .avl = (a >> 12) & 1, .l = (a >> 13) & 1, .db = (a >> 14) & 1, .g = (a >> 15) & 1,
        .unusable = !((a >> 7) & 1),
    };
}

static void seg_in(struct soft_segment *d, const struct vcpu_segment *s)
{
    d->base = s->base;
    d->limit = s->limit;
    d->selector = s->selector;
    d->attr = (uint16_t)((s->type & 0xf) | (s->s & 1) << 4 | (s->dpl & 3) << 5 |
                         (s->present & 1) << 7 | (s->avl & 1) << 12 | (s->l & 1) << 13 |
                         (s->db & 1) << 14 | (s->g & 1) << 15);
    if (s->unusable)
        d->attr &= (uint16_t)~0x80u;
}

int soft_get_regs(struct vcpu *vcpu, struct vcpu_regs *r)
{
    struct soft_cpu *c = &sv_of(vcpu)->cpu;
    *r = (struct vcpu_regs){c->regs[SOFT_RAX], c->regs[SOFT_RBX], c->regs[SOFT_RCX],
                            c->regs[SOFT_RDX], c->regs[SOFT_RSI], c->regs[SOFT_RDI],
                            c->regs[SOFT_RSP], c->regs[SOFT_RBP], c->regs[SOFT_R8],
                            c->regs[SOFT_R9], c->regs[SOFT_R10], c->regs[SOFT_R11],
                            c->regs[SOFT_R12], c->regs[SOFT_R13], c->regs[SOFT_R14],
                            c->regs[SOFT_R15], c->rip, soft_cpu_get_rflags(c)};
    return 0;
}

int soft_set_regs(struct vcpu *vcpu, const struct vcpu_regs *r)
{
    struct soft_cpu *c = &sv_of(vcpu)->cpu;
    c->regs[SOFT_RAX] = r->rax, c->regs[SOFT_RBX] = r->rbx, c->regs[SOFT_RCX] = r->rcx;
    c->regs[SOFT_RDX] = r->rdx, c->regs[SOFT_RSI] = r->rsi, c->regs[SOFT_RDI] = r->rdi;
    c->regs[SOFT_RSP] = r->rsp, c->regs[SOFT_RBP] = r->rbp, c->regs[SOFT_R8] = r->r8;
    c->regs[SOFT_R9] = r->r9, c->regs[SOFT_R10] = r->r10, c->regs[SOFT_R11] = r->r11;
    c->regs[SOFT_R12] = r->r12, c->regs[SOFT_R13] = r->r13, c->regs[SOFT_R14] = r->r14;
    c->regs[SOFT_R15] = r->r15;
    c->rip = r->rip;
    soft_cpu_set_rflags(c, r->rflags);
    return 0;
}

int soft_get_sregs(struct vcpu *vcpu, struct vcpu_sregs *r)
{
    struct soft_vcpu *sv = sv_of(vcpu);
    struct soft_cpu *c = &sv->cpu;
    seg_out(&r->cs, &c->seg[SOFT_CS]);
    seg_out(&r->ds, &c->seg[SOFT_DS]);
    seg_out(&r->es, &c->seg[SOFT_ES]);
    seg_out(&r->fs, &c->seg[SOFT_FS]);
    seg_out(&r->gs, &c->seg[SOFT_GS]);
    seg_out(&r->ss, &c->seg[SOFT_SS]);
    seg_out(&r->tr, &c->tr);
    seg_out(&r->ldt, &c->ldtr);
    r->gdt = (struct vcpu_dtable){c->gdtr.base, c->gdtr.limit};
    r->idt = (struct vcpu_dtable){c->idtr.base, c->idtr.limit};
    r->cr0 = c->cr0, r->cr2 = c->cr2, r->cr3 = c->cr3, r->cr4 = c->cr4, r->cr8 = c->cr8;
    r->efer = c->efer;
    uint64_t base = 0;
    lapic_msr_read(sv->lapic, MSR_IA32_APIC_BASE, &base);
    r->apic_base = base;
    return 0;
}

int soft_set_sregs(struct vcpu *vcpu, const struct vcpu_sregs *r)
{
    struct soft_vcpu *sv = sv_of(vcpu);
    struct soft_cpu *c = &sv->cpu;
    seg_in(&c->seg[SOFT_CS], &r->cs);
    seg_in(&c->seg[SOFT_DS], &r->ds);
    seg_in(&c->seg[SOFT_ES], &r->es);
    seg_in(&c->seg[SOFT_FS], &r->fs);
    seg_in(&c->seg[SOFT_GS], &r->gs);
    seg_in(&c->seg[SOFT_SS], &r->ss);
    seg_in(&c->tr, &r->tr);
    seg_in(&c->ldtr, &r->ldt);
    c->gdtr = (struct soft_dtable){r->gdt.base, r->gdt.limit};
    c->idtr = (struct soft_dtable){r->idt.base, r->idt.limit};
    c->cr0 = r->cr0, c->cr2 = r->cr2, c->cr3 = r->cr3, c->cr4 = r->cr4, c->cr8 = r->cr8;
    c->efer = r->efer;
    c->cpl = (c->cr0 & SOFT_CR0_PE) ? (uint8_t)(r->cs.selector & 3) : 0;
    c->mode = soft_cs_mode(c, &c->seg[SOFT_CS]);
    if (r->apic_base)
        lapic_msr_write(sv->lapic, MSR_IA32_APIC_BASE, r->apic_base);
    /* A state set from outside (boot, restore) is a new vCPU: an AP given a state runs it. */
    sv->wait_sipi = false;
    soft_cpu_flush_tlb(c);
    return 0;
}
