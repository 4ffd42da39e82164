/* Exception and interrupt delivery through the IVT/IDT (see excp.h). */
#include "accel/soft/excp.h"

#include "accel/soft/insn.h"
#include "accel/soft/mmu.h"

#include <string.h>


/* Segment attribute bits (descriptor bits 40..55 as struct soft_segment keeps them). */
#define ATTR_CODE      0x0008u /* type bit 3: code */
#define ATTR_CONFORM   0x0004u /* code: conforming */
#define ATTR_WRITABLE  0x0002u /* data: writable */
#define ATTR_S         0x0010u /* code/data, not system */
#define ATTR_P         0x0080u
#define ATTR_L         0x2000u
#define ATTR_DB        0x4000u

/* RFLAGS bits delivery clears. */
#define RFL_TF 0x00100ull
#define RFL_IF 0x00200ull
#define RFL_NT 0x04000ull
#define RFL_RF 0x10000ull
#define RFL_VM 0x20000ull
#define RFL_AC 0x40000ull

static int fail(struct soft_cpu *cpu, unsigned vector, uint32_t error)
{
    cpu->exc_error = error;
    return -(int)vector;
}

static int sys_copy(struct soft_cpu *cpu, uint64_t lin, void *buf, unsigned len, bool write)
{
    uint8_t *b = buf;
    int access = write ? SOFT_ACC_WRITE : SOFT_ACC_READ;
    uint8_t saved = cpu->sys_access;
    int r = 0;
    /* Descriptor tables, the TSS and delivery stacks are supervisor accesses whatever the CPL;
     * the owner's tlb_fill checks them so, and they go through the supervisor TLB bank, whose
     * entries grant what supervisor accesses may do (an interrupt from user mode reads the
     * IDT, GDT and TSS and pushes its frame: without the bank, each is a page walk). */
    cpu->sys_access = 1;
    while (len) {
        unsigned chunk = 4096 - (unsigned)(lin & 0xfff);
        if (chunk > len)
            chunk = len;
        uint64_t page = lin & ~0xfffull;
        struct soft_tlb_entry *te = &cpu->tlbs[0][(lin >> 12) & (SOFT_TLB_SIZE - 1)];
        struct soft_tlb_entry e = *te;
        if ((write ? e.tag_write : e.tag_read) != page) {
            e = (struct soft_tlb_entry){~0ull, ~0ull, ~0ull, 0};
            r = cpu->ops->tlb_fill(cpu, lin, access, &e);
            if (r == 0 && (write ? e.tag_write : e.tag_read) != page) {
                cpu->cr2 = lin;
                r = fail(cpu, SOFT_EXC_PF, write ? SOFT_PF_W : 0);
            }
            if (r < 0)
                break;
            if (r == 1) { /* a device page: not RAM the delivery can use */
                cpu->cr2 = lin;
                r = fail(cpu, SOFT_EXC_PF, write ? SOFT_PF_W : 0);
                break;
            }
            soft_tlb_install(cpu, te, &e);
        }
        void *host = (void *)(uintptr_t)(lin + e.addend);
        if (write)
            memcpy(host, b, chunk);
        else
            memcpy(b, host, chunk);
        lin += chunk;
        b += chunk;
        len -= chunk;
    }
    cpu->sys_access = saved;
    return r;
}

int soft_sys_read(struct soft_cpu *cpu, uint64_t lin, void *buf, unsigned len)
{
    return sys_copy(cpu, lin, buf, len, false);
}

int soft_sys_write(struct soft_cpu *cpu, uint64_t lin, const void *buf, unsigned len)
{
    return sys_copy(cpu, lin, (void *)(uintptr_t)buf, len, true);
}

int soft_desc_read(struct soft_cpu *cpu, uint16_t selector, uint64_t *desc)
{
    uint64_t base;
    uint32_t limit;
    if (selector & 4) {
        if (!(cpu->ldtr.attr & ATTR_P) || (cpu->ldtr.selector & ~3u) == 0)
            return fail(cpu, SOFT_EXC_GP, selector & 0xfffcu);
        base = cpu->ldtr.base;
        limit = cpu->ldtr.limit;
    } else {
        base = cpu->gdtr.base;
        limit = cpu->gdtr.limit;
    }
    if ((uint32_t)(selector & ~7u) + 7 > limit)
        return fail(cpu, SOFT_EXC_GP, selector & 0xfffcu);
    return soft_sys_read(cpu, base + (selector & ~7u), desc, 8);
}

void soft_desc_to_seg(uint64_t desc, uint16_t selector, struct soft_segment *seg)
{
    uint32_t limit = (uint32_t)((desc & 0xffff) | ((desc >> 32) & 0xf0000));
    if (desc & (1ull << 55))
        limit = (limit << 12) | 0xfff;
    seg->selector = selector;
    seg->base = ((desc >> 16) & 0xffffff) | ((desc >> 32) & 0xff000000);
    seg->limit = limit;
    seg->attr = (uint16_t)((desc >> 40) & 0xf0ff);
}

uint8_t soft_cs_mode(const struct soft_cpu *cpu, const struct soft_segment *cs)
{
    if (!(cpu->cr0 & SOFT_CR0_PE))
        return 16;
    if ((cpu->efer & SOFT_EFER_LMA) && (cs->attr & ATTR_L))
        return 64;
    return cs->attr & ATTR_DB ? 32 : 16;
}

bool soft_excp_has_error(unsigned vector)
{
    switch (vector) {
    case 8: case 10: case 11: case 12: case 13: case 14: case 17: case 21:
        return true;
    default:
        return false;
    }
}

static bool contributory(unsigned v)
{
    return v == 0 || (v >= 10 && v <= 13);
}

unsigned soft_excp_combine(unsigned first, unsigned second)
{
    bool serious = contributory(second) || second == SOFT_EXC_PF;
    if (first == SOFT_EXC_DF && serious)
        return SOFT_EXC_TRIPLE;
    if (contributory(first) && contributory(second))
        return SOFT_EXC_DF;
    if (first == SOFT_EXC_PF && serious)
        return SOFT_EXC_DF;
    return second;
}

/* Real mode: the IVT's 4-byte CS:IP vectors, a 16-bit FLAGS/CS/IP frame. */
static int deliver_real(struct soft_cpu *cpu, unsigned vector)
{
    uint16_t ivt[2];
    if (vector * 4 + 3 > cpu->idtr.limit)
        return fail(cpu, SOFT_EXC_GP, 0);
    int r = soft_sys_read(cpu, cpu->idtr.base + vector * 4, ivt, 4);
    if (r < 0)
        return r;
    uint64_t rfl = soft_cpu_get_rflags(cpu);
    uint16_t frame[3] = {(uint16_t)cpu->rip, cpu->seg[SOFT_CS].selector, (uint16_t)rfl};
    uint16_t sp = (uint16_t)(cpu->regs[SOFT_RSP] - 6);
    r = soft_sys_write(cpu, cpu->seg[SOFT_SS].base + sp, frame, 6);
    if (r < 0)
        return r;
    soft_set(cpu, SOFT_RSP, 2, sp);
    cpu->seg[SOFT_CS].selector = ivt[1];
    cpu->seg[SOFT_CS].base = (uint64_t)ivt[1] << 4;
    cpu->rip = ivt[0];
    soft_cpu_set_rflags(cpu, rfl & ~(RFL_TF | RFL_IF | RFL_AC | RFL_RF));
    return 0;
}

/* The new stack of a 32-bit privilege change: SS:ESP for ring ncpl from the 32-bit TSS. */
static int tss32_stack(struct soft_cpu *cpu, unsigned ncpl, uint32_t ext,
                       struct soft_segment *ss, uint64_t *rsp)
{
    uint32_t slot = 4 + 8 * ncpl;
    uint32_t tss_err = (cpu->tr.selector & 0xfffcu) | ext;
    if (slot + 5 > cpu->tr.limit)
        return fail(cpu, SOFT_EXC_TS, tss_err);
    uint32_t esp;
    uint16_t sel;
    int r = soft_sys_read(cpu, cpu->tr.base + slot, &esp, 4);
    if (r == 0)
        r = soft_sys_read(cpu, cpu->tr.base + slot + 4, &sel, 2);
    if (r < 0)
        return r;
    uint32_t sel_err = (sel & 0xfffcu) | ext;
    if ((sel & ~3u) == 0 || (sel & 3) != ncpl)
        return fail(cpu, SOFT_EXC_TS, sel_err);
    uint64_t d;
    r = soft_desc_read(cpu, sel, &d);
    if (r < 0)
        return r == -SOFT_EXC_GP ? fail(cpu, SOFT_EXC_TS, sel_err) : r;
    soft_desc_to_seg(d, sel, ss);
    if ((ss->attr & (ATTR_S | ATTR_CODE | ATTR_WRITABLE)) != (ATTR_S | ATTR_WRITABLE) ||
        ((ss->attr >> 5) & 3) != ncpl)
        return fail(cpu, SOFT_EXC_TS, sel_err);
    if (!(ss->attr & ATTR_P))
        return fail(cpu, SOFT_EXC_SS, sel_err);
    *rsp = esp;
    return 0;
}

int soft_excp_deliver(struct soft_cpu *cpu, unsigned vector, enum soft_event_kind kind,
                      bool has_error, uint32_t error)
{
    if (!(cpu->cr0 & SOFT_CR0_PE))
        return deliver_real(cpu, vector);

    /* EXT: the nested fault happened while delivering something the program did not ask for. */
    uint32_t ext = kind == SOFT_EVENT_SOFTINT ? 0 : 1;
    uint32_t idt_err = (vector << 3) | 2 | ext;
    bool lm = (cpu->efer & SOFT_EFER_LMA) != 0;
    unsigned gsz = lm ? 16 : 8;
    if (vector * gsz + gsz - 1 > cpu->idtr.limit)
        return fail(cpu, SOFT_EXC_GP, idt_err);
    uint64_t g[2] = {0, 0};
    int r = soft_sys_read(cpu, cpu->idtr.base + vector * gsz, g, gsz);
    if (r < 0)
        return r;
    unsigned type = (g[0] >> 40) & 0xf, gdpl = (g[0] >> 45) & 3;
    /* Task gates (type 5) are not implemented: no guest we run uses hardware task switching. */
    bool valid = type == 0xe || type == 0xf || (!lm && (type == 0x6 || type == 0x7));
    if (!valid)
        return fail(cpu, SOFT_EXC_GP, idt_err);
    if (kind == SOFT_EVENT_SOFTINT && gdpl < cpu->cpl)
        return fail(cpu, SOFT_EXC_GP, idt_err);
    if (!((g[0] >> 47) & 1))
        return fail(cpu, SOFT_EXC_NP, idt_err);

    uint16_t sel = (uint16_t)(g[0] >> 16);
    uint64_t target = (g[0] & 0xffff) | ((g[0] >> 32) & 0xffff0000);
    if (lm)
        target |= g[1] << 32;
    else if (!(type & 8))
        target &= 0xffff;
    unsigned ist = lm ? (unsigned)(g[0] >> 32) & 7 : 0;

    if ((sel & ~3u) == 0)
        return fail(cpu, SOFT_EXC_GP, ext);
    uint32_t sel_err = (sel & 0xfffcu) | ext;
    uint64_t cd;
    r = soft_desc_read(cpu, sel, &cd);
    if (r < 0)
        return r == -SOFT_EXC_GP ? fail(cpu, SOFT_EXC_GP, sel_err) : r;
    struct soft_segment cs;
    soft_desc_to_seg(cd, sel, &cs);
    unsigned cdpl = (cs.attr >> 5) & 3;
    if ((cs.attr & (ATTR_S | ATTR_CODE)) != (ATTR_S | ATTR_CODE) || cdpl > cpu->cpl)
        return fail(cpu, SOFT_EXC_GP, sel_err);
    if (lm && (!(cs.attr & ATTR_L) || (cs.attr & ATTR_DB)))
        return fail(cpu, SOFT_EXC_GP, sel_err);
    if (!(cs.attr & ATTR_P))
        return fail(cpu, SOFT_EXC_NP, sel_err);
    unsigned ncpl = (cs.attr & ATTR_CONFORM) ? cpu->cpl : cdpl;
    bool switch_stack = ncpl < cpu->cpl;

    uint64_t rfl = soft_cpu_get_rflags(cpu);
    struct soft_segment ss = cpu->seg[SOFT_SS];
    uint64_t old_rsp = cpu->regs[SOFT_RSP], rsp = old_rsp;
    uint64_t frame[6];
    unsigned n = 0;

    if (lm) {
        if (switch_stack || ist) {
            uint32_t slot = ist ? 0x24 + 8 * (ist - 1) : 4 + 8 * ncpl;
            if (slot + 7 > cpu->tr.limit)
                return fail(cpu, SOFT_EXC_TS, (cpu->tr.selector & 0xfffcu) | ext);
            r = soft_sys_read(cpu, cpu->tr.base + slot, &rsp, 8);
            if (r < 0)
                return r;
        }
        if (switch_stack) {
            /* Long mode loads SS with a null selector whose RPL is the new CPL. */
            ss = (struct soft_segment){.selector = (uint16_t)ncpl, .attr = (uint16_t)(ncpl << 5)};
        }
        rsp &= ~0xfull;
        if (has_error)
            frame[n++] = error;
        frame[n++] = cpu->rip;
        frame[n++] = cpu->seg[SOFT_CS].selector;
        frame[n++] = rfl;
        frame[n++] = old_rsp;
        frame[n++] = cpu->seg[SOFT_SS].selector;
        rsp -= n * 8;
        r = soft_sys_write(cpu, rsp, frame, n * 8);
        if (r < 0)
            return r;
    } else {
        if (switch_stack) {
            r = tss32_stack(cpu, ncpl, ext, &ss, &rsp);
            if (r < 0)
                return r;
        }
        unsigned w = (type & 8) ? 4 : 2;
        uint8_t buf[6 * 4];
        uint32_t vals[6];
        if (has_error)
            vals[n++] = error;
        vals[n++] = (uint32_t)cpu->rip;
        vals[n++] = cpu->seg[SOFT_CS].selector;
        vals[n++] = (uint32_t)rfl;
        if (switch_stack) {
            vals[n++] = (uint32_t)old_rsp;
            vals[n++] = cpu->seg[SOFT_SS].selector;
        }
        for (unsigned k = 0; k < n; k++)
            memcpy(buf + k * w, &vals[k], w);
        bool big = (ss.attr & ATTR_DB) != 0;
        uint64_t sp = rsp - n * w;
        sp = big ? (uint32_t)sp : (uint16_t)sp;
        r = soft_sys_write(cpu, (uint32_t)(ss.base + sp), buf, n * w);
        if (r < 0)
            return r;
        rsp = big ? sp : ((rsp & ~0xffffull) | sp);
    }

    cs.selector = (uint16_t)((sel & ~3u) | ncpl);
    cpu->seg[SOFT_CS] = cs;
    cpu->seg[SOFT_SS] = ss;
    cpu->regs[SOFT_RSP] = rsp;
    cpu->cpl = (uint8_t)ncpl;
    cpu->mode = soft_cs_mode(cpu, &cs);
    cpu->rip = target;
    rfl &= ~(RFL_TF | RFL_NT | RFL_RF | RFL_VM);
    if (!(type & 1))
        rfl &= ~RFL_IF; /* interrupt gate, not trap gate */
    soft_cpu_set_rflags(cpu, rfl);
    return 0; /* the new privilege has its own TLB bank (soft_tlb()) */
}
