/* How a system-mode vCPU of the software CPU reaches the machine (struct soft_cpu_ops): TLB
 * fills through the guest's page tables with the dirty log and self-modifying-code tracking,
 * MMIO to its LAPIC page or the VM's bus, the LAPIC's MSRs and IA32_ARCH_CAPABILITIES, CPUID
 * from the vCPU's model, and the TSC. */
#include "accel/soft/soft_machine.h"

#include <errno.h>
#include <string.h>

#include "accel/soft/cache.h"
#include "accel/soft/lapic.h"
#include "arch/x86/msr.h"
#include "devices/bus.h"

/* The bitmap word and bit of gpa's page in bitmaps (one per RAM slot), or NULL. */
static uint64_t *page_bit(struct soft_vm *s, uint64_t *const *maps, uint64_t gpa, uint64_t *bit)
{
    for (unsigned k = 0; k < s->phys.n; k++) {
        const struct soft_ram_region *r = &s->phys.region[k];
        if (gpa >= r->gpa && gpa - r->gpa < r->size && maps[k]) {
            uint64_t pfn = (gpa - r->gpa) >> 12;
            *bit = 1ull << (pfn % 64);
            return &maps[k][pfn / 64];
        }
    }
    return NULL;
}

void soft_request_flush_all(struct soft_vm *s)
{
    struct vm *vm = s->vm;
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct soft_vcpu *o = vm->vcpus[i].accel_data;
        if (o) {
            __atomic_store_n(&o->flush_req, true, __ATOMIC_RELEASE);
            __atomic_or_fetch(&o->cpu.intr_request, SOFT_INTR_KICK, __ATOMIC_RELEASE);
        }
    }
}

/* Other vCPUs drop their TLBs (a page became code: their write tags must go). */
static void request_flush_tlbs(struct soft_vm *s, struct soft_vcpu *self)
{
    struct vm *vm = s->vm;
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct soft_vcpu *o = vm->vcpus[i].accel_data;
        if (o && o != self && vm->ncpus > 1) {
            __atomic_store_n(&o->flush_req, true, __ATOMIC_RELEASE);
            __atomic_or_fetch(&o->cpu.intr_request, SOFT_INTR_KICK, __ATOMIC_RELEASE);
        }
    }
}

/* Forget write permission for every TLB entry (of both privileges) that reaches host page
 * host. */
static void drop_write_tags(struct soft_cpu *cpu, const uint8_t *host)
{
    for (unsigned k = 0; k < 2 * SOFT_TLB_SIZE; k++) {
        struct soft_tlb_entry *t = &cpu->tlbs[0][0] + k;
        if (t->tag_write != ~0ull && t->tag_write + t->addend == (uint64_t)(uintptr_t)host)
            t->tag_write = ~0ull;
    }
}

/* Forget fetch permission likewise: the next decode from the page fills again and marks it as
 * holding code again. */
static void drop_exec_tags(struct soft_cpu *cpu, const uint8_t *host)
{
    for (unsigned k = 0; k < 2 * SOFT_TLB_SIZE; k++) {
        struct soft_tlb_entry *t = &cpu->tlbs[0][0] + k;
        if (t->tag_exec != ~0ull && t->tag_exec + t->addend == (uint64_t)(uintptr_t)host)
            t->tag_exec = ~0ull;
    }
}

static int cpu_tlb_fill(struct soft_cpu *cpu, uint64_t vaddr, int access,
                        struct soft_tlb_entry *e)
{
    struct soft_vcpu *sv = cpu->opaque;
    struct soft_vm *s = sv->svm;
    uint64_t va = vaddr;
    if (!(cpu->efer & SOFT_EFER_LMA)) {
        va = (uint32_t)va;
    } else if ((uint64_t)((int64_t)(va << 16) >> 16) != va) {
        cpu->exc_error = 0;
        return -SOFT_EXC_GP; /* non-canonical: #GP(0), not a page fault */
    }
    bool user = cpu->cpl == 3 && !cpu->sys_access;
    struct soft_walk w;
    uint32_t err;
    int r = soft_mmu_walk(cpu, &s->phys, va, access, user, &w, &err);
    if (r < 0) {
        cpu->cr2 = vaddr;
        cpu->exc_error = err;
        return r;
    }
    uint64_t gpage = w.gpa & ~0xfffull;
    uint64_t vpage = vaddr & ~0xfffull;
    uint8_t *host = soft_phys_ptr(&s->phys, gpage, 4096);
    uint64_t apic = lapic_mmio_base(sv->lapic);
    if (!host || gpage == apic) {
        e->addend = gpage;
        return 1;
    }
    e->addend = (uint64_t)(uintptr_t)host - vpage;
    e->tag_read = vpage;
    cpu->fill_attr = (uint8_t)((w.global ? SOFT_TLB_GLOBAL : 0) |
                               (w.page_size > 4096 ? SOFT_TLB_LARGE : 0));
    uint64_t bit;
    uint64_t *code = page_bit(s, s->code, gpage, &bit);
    if (access == SOFT_ACC_EXEC && w.exec) {
        /* Only a fetch fill grants fetches: it is what marks the page as holding decoded code.
         * An exec tag left by a read or write fill would let the decoder use the page while
         * its code bit is clear, and later writes would then not invalidate the blocks (Linux's
         * text_poke() reads the text, then rewrites an int3 through another mapping: the
         * stale int3 looped forever). */
        e->tag_exec = vpage;
        if (code && !(__atomic_load_n(code, __ATOMIC_ACQUIRE) & bit)) {
            /* The page now holds decoded code: writes to it must come back here, so no TLB
             * may keep a write tag for it. */
            __atomic_or_fetch(code, bit, __ATOMIC_ACQ_REL);
            drop_write_tags(cpu, host);
            request_flush_tlbs(s, sv);
        }
    }
    if (access == SOFT_ACC_WRITE) {
        uint64_t *dirty = page_bit(s, s->dirty, gpage, &bit);
        if (dirty)
            __atomic_or_fetch(dirty, bit, __ATOMIC_RELAXED);
        code = page_bit(s, s->code, gpage, &bit);
        if (code && (__atomic_fetch_and(code, ~bit, __ATOMIC_ACQ_REL) & bit)) {
            /* Self- or cross-modifying code: blocks are keyed by virtual address and the page
             * may be mapped at several, so every vCPU drops all its blocks. */
            soft_cache_invalidate_host_page(cpu, (uintptr_t)host);
            drop_exec_tags(cpu, host);
            cpu->chain_budget = 1;
            if (s->vm->ncpus > 1)
                soft_request_flush_all(s);
        }
        /* Writes are granted once the walk has set D; the page is in the dirty log. */
        if (w.write && w.dirty)
            e->tag_write = vpage;
    }
    return 0;
}

static void cpu_mmio_read(struct soft_cpu *cpu, uint64_t gpa, unsigned size, void *data)
{
    struct soft_vcpu *sv = cpu->opaque;
    uint64_t v = 0;
    uint64_t apic = lapic_mmio_base(sv->lapic);
    if ((gpa & ~0xfffull) == apic)
        v = lapic_mmio_read(sv->lapic, gpa & 0xfff, size);
    else if (!bus_read(&sv->vcpu->vm->mmio, gpa, size, &v))
        v = ~0ull; /* nothing there: the bus floats high */
    memcpy(data, &v, size);
}

static void cpu_mmio_write(struct soft_cpu *cpu, uint64_t gpa, unsigned size, const void *data)
{
    struct soft_vcpu *sv = cpu->opaque;
    uint64_t v = 0;
    memcpy(&v, data, size);
    uint64_t apic = lapic_mmio_base(sv->lapic);
    if ((gpa & ~0xfffull) == apic) {
        lapic_mmio_write(sv->lapic, gpa & 0xfff, v, size);
        soft_timer_poke(sv->svm, lapic_next_deadline_ns(sv->lapic));
        cpu->chain_budget = 1; /* an EOI or TPR write may make an interrupt deliverable */
    } else {
        bus_write(&sv->vcpu->vm->mmio, gpa, size, v);
    }
}

/* IA32_ARCH_CAPABILITIES: the interpreter executes nothing speculatively, so it declares itself
 * immune to the speculation and data-sampling attacks that Linux otherwise defends against at
 * a high price here: page-table isolation switches CR3 (and flushes the TLB) on every system
 * call, MDS buffer clearing runs VERW on every return to user space. Spectre v1/v2 defences
 * cannot be turned off this way and stay. */
#define MSR_IA32_ARCH_CAPABILITIES 0x10a
#define SOFT_ARCH_CAPABILITIES                                                                    \
    ((1ull << 0) /* RDCL_NO: no Meltdown */ | (1ull << 4) /* SSB_NO */ |                          \
     (1ull << 5) /* MDS_NO */ | (1ull << 6) /* IF_PSCHANGE_MC_NO */ | (1ull << 8) /* TAA_NO */ | \
     (1ull << 13) /* SBDR_SSDP_NO */ | (1ull << 14) /* FBSDP_NO */ | (1ull << 15) /* PSDP_NO */ | \
     (1ull << 20) /* BHI_NO */ | (1ull << 24) /* PBRSB_NO */ | (1ull << 26) /* GDS_NO */ |        \
     (1ull << 27) /* RFDS_NO */ | (1ull << 62) /* ITS_NO */)

static int cpu_msr_read(struct soft_cpu *cpu, uint32_t msr, uint64_t *value)
{
    struct soft_vcpu *sv = cpu->opaque;
    if (msr == MSR_IA32_ARCH_CAPABILITIES) {
        const struct cpuid_entry *e7 = cpuid_find(&sv->cpuid, 7, 0);
        if (!e7 || !(e7->edx & CPUID_7_EDX_ARCH_CAPABILITIES))
            return -ENOENT;
        *value = SOFT_ARCH_CAPABILITIES;
        return 0;
    }
    int r = lapic_msr_read(sv->lapic, msr, value);
    return r == 0 ? 0 : -ENOENT;
}

static int cpu_msr_write(struct soft_cpu *cpu, uint32_t msr, uint64_t value)
{
    struct soft_vcpu *sv = cpu->opaque;
    int r = lapic_msr_write(sv->lapic, msr, value);
    soft_timer_poke(sv->svm, lapic_next_deadline_ns(sv->lapic)); /* TSC deadline, x2APIC timer */
    cpu->chain_budget = 1;
    return r == 0 ? 0 : -ENOENT;
}

static void cpu_cpuid(struct soft_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    struct soft_vcpu *sv = cpu->opaque;
    const struct cpuid_entry *e = cpuid_find(&sv->cpuid, leaf, subleaf);
    if (!e) {
        memset(out, 0, 4 * sizeof(uint32_t));
        return;
    }
    out[0] = e->eax;
    out[1] = e->ebx;
    out[2] = e->ecx;
    out[3] = e->edx;
    if (leaf == 1 && (cpu->cr4 & (1u << 18)))
        out[2] |= 1u << 27; /* OSXSAVE mirrors CR4 (never set: XSAVE is not advertised) */
}

static uint64_t cpu_tsc(struct soft_cpu *cpu)
{
    struct soft_vcpu *sv = cpu->opaque;
    return soft_tsc_from_ns(sv->svm->tsc_khz, soft_now_ns());
}

const struct soft_cpu_ops soft_sys_ops = {
    .tlb_fill = cpu_tlb_fill,
    .mmio_read = cpu_mmio_read,
    .mmio_write = cpu_mmio_write,
    .msr_read = cpu_msr_read,
    .msr_write = cpu_msr_write,
    .cpuid = cpu_cpuid,
    .tsc = cpu_tsc,
};
