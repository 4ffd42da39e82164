/* The software accelerator: struct accel_ops over the interpreter (cpu.c), its MMU (mmu.c),
 * exception delivery (excp.c) and the userspace interrupt controllers (irq.c, lapic.c).
 *
 * Threads: each vCPU thread runs its soft_cpu; a per-VM timer thread ticks the PIT and every
 * LAPIC timer and kicks vCPUs whose LAPIC got something to deliver. A halted vCPU sleeps on its
 * condition variable until kicked. Port I/O leaves vcpu_run as VCPU_EXIT_IO for the generic loop;
 * MMIO is dispatched on the vCPU thread during the instruction (its own LAPIC page, then the
 * VM's MMIO bus), so the bus stays the only way to devices. Those callbacks are in
 * soft_sysops.c, register state in soft_regs.c, the shared structures in soft_machine.h. */
#include "accel/soft/soft_accel.h"
#include "accel/soft/soft_machine.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "accel/soft/cpu.h"
#include "accel/soft/excp.h"
#include "accel/soft/jit.h"
#include "accel/soft/irq.h"
#include "accel/soft/lapic.h"
#include "accel/soft/mmu.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/msr.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* The timer thread sleeps until the earliest deadline, and never longer than this: a safety
 * net only, as every write that programs a timer pokes it (soft_timer_poke()). An idle guest
 * then costs a wake-up every 100 ms, where the thread once woke every millisecond to look for
 * new deadlines (2.4% of a host core per idle VM). */
#define TIMER_MAX_SLEEP_NS 100000000ull

static void wake_vcpu(struct soft_vcpu *sv)
{
    __atomic_or_fetch(&sv->cpu.intr_request, SOFT_INTR_KICK, __ATOMIC_RELEASE);
    pthread_mutex_lock(&sv->lock);
    pthread_cond_signal(&sv->wake);
    pthread_mutex_unlock(&sv->lock);
}

/* --- APIC bus callbacks (any thread) ------------------------------------------------------ */

static void bus_kick(void *opaque, unsigned cpu)
{
    struct vm *vm = opaque;
    if (cpu < vm->ncpus && vm->vcpus[cpu].accel_data)
        wake_vcpu(sv_of(&vm->vcpus[cpu]));
}

static void bus_on_init(void *opaque, unsigned cpu)
{
    struct vm *vm = opaque;
    if (cpu >= vm->ncpus || !vm->vcpus[cpu].accel_data)
        return;
    struct soft_vcpu *sv = sv_of(&vm->vcpus[cpu]);
    __atomic_store_n(&sv->init_pending, true, __ATOMIC_RELEASE);
    wake_vcpu(sv);
}

static void bus_on_sipi(void *opaque, unsigned cpu, uint8_t vector)
{
    struct vm *vm = opaque;
    if (cpu >= vm->ncpus || !vm->vcpus[cpu].accel_data)
        return;
    struct soft_vcpu *sv = sv_of(&vm->vcpus[cpu]);
    __atomic_store_n(&sv->sipi_vector, vector, __ATOMIC_RELEASE);
    wake_vcpu(sv);
}

/* --- the machine timer thread -------------------------------------------------------------- */

static void timer_wake(struct soft_vm *s)
{
    __atomic_fetch_add(&s->timer_seq, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &s->timer_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The protocol with the timer thread: the thread clears timer_until and reads timer_seq before
 * it reads any deadline, publishes timer_until after, and sleeps only while timer_seq is
 * unchanged. A poker stores its deadline, then reads timer_until: if the thread read the old
 * deadline, the poker sees either 0 (still looking: it must wake it) or the published time,
 * and bumps timer_seq when its deadline is earlier, which ends or prevents the sleep. */
void soft_timer_poke(struct soft_vm *s, uint64_t deadline_ns)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t until = __atomic_load_n(&s->timer_until, __ATOMIC_SEQ_CST);
    if (until != 0 && deadline_ns >= until)
        return;
    timer_wake(s);
}

static void *timer_thread(void *arg)
{
    struct soft_vm *s = arg;
    struct vm *vm = s->vm;
    pthread_setname_np(pthread_self(), "soft-timer");
    while (!s->timer_stop) {
        __atomic_store_n(&s->timer_until, 0, __ATOMIC_SEQ_CST);
        uint32_t seq = __atomic_load_n(&s->timer_seq, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->timer_stop, __ATOMIC_SEQ_CST))
            break; /* asked after the loop's test, before seq was read */
        uint64_t now = soft_now_ns();
        soft_irq_tick(s->irq, now);
        uint64_t next = soft_irq_next_deadline_ns(s->irq);
        for (unsigned i = 0; i < vm->ncpus; i++) {
            struct lapic *l = apic_bus_lapic(&s->irq->apic, i);
            if (!l)
                continue;
            if (lapic_tick(l, now) && vm->vcpus[i].accel_data)
                wake_vcpu(sv_of(&vm->vcpus[i]));
            uint64_t d = lapic_next_deadline_ns(l);
            if (d < next)
                next = d;
        }
        uint64_t until = now + TIMER_MAX_SLEEP_NS;
        if (next < until)
            until = next;
        __atomic_store_n(&s->timer_until, until, __ATOMIC_SEQ_CST);
        now = soft_now_ns();
        if (until > now) {
            struct timespec rel = {(time_t)((until - now) / 1000000000ull),
                                   (long)((until - now) % 1000000000ull)};
            /* Returns at the timeout, on a poke, or at once if one came since seq was read. */
            syscall(SYS_futex, &s->timer_seq, FUTEX_WAIT_PRIVATE, seq, &rel, NULL, 0);
        }
    }
    return NULL;
}

/* The guest programmed the PIT. */
static void pit_programmed(void *opaque)
{
    soft_timer_poke(svm_of(opaque), 0);
}

/* --- VM ------------------------------------------------------------------------------------ */

/* What the interpreter implements, as a "supported" CPUID table for cpuid_build(). */
static void soft_supported_cpuid(struct soft_cpu *cpu, struct cpuid_table *t)
{
    static const uint32_t leaves[] = {0, 1, 0x80000000, 0x80000001, 0x80000002, 0x80000003,
                                      0x80000004, 0x80000008};
    memset(t, 0, sizeof(*t));
    for (unsigned k = 0; k < sizeof(leaves) / sizeof(leaves[0]); k++) {
        uint32_t o[4];
        soft_cpuid(cpu, leaves[k], 0, o);
        struct cpuid_entry *e = &t->entries[t->count++];
        *e = (struct cpuid_entry){.function = leaves[k], .eax = o[0], .ebx = o[1], .ecx = o[2],
                                  .edx = o[3]};
        /* Up to 0x16 whatever the host has: cpuid_build() then states the TSC frequency in
         * 0x15/0x16 and Linux neither calibrates it against the PIT nor distrusts it. Leaves the
         * interpreter does not implement (XSAVE in 0xd) are not taken from this table. */
        if (leaves[k] == 0)
            e->eax = 0x16;
        if (leaves[k] == 1) {
            /* System features: PSE, TSC, MSR, PAE, CX8, APIC, MTRR, PGE, PAT, CLFLUSH... */
            e->edx |= (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 9) |
                      (1u << 12) | (1u << 13) | (1u << 16) | (1u << 19) | (1u << 23);
            e->ecx |= CPUID_1_ECX_X2APIC | CPUID_1_ECX_TSC_DEADLINE;
        }
        if (leaves[k] == 0x80000001)
            e->edx |= (1u << 11) | (1u << 20) | (1u << 27) | (1u << 29);
    }
    struct cpuid_entry *e7 = &t->entries[t->count++];
    *e7 = (struct cpuid_entry){.function = 7, .flags = CPUID_F_SIGNIFICANT_INDEX};
    uint32_t o[4];
    soft_cpuid(cpu, 7, 0, o);
    e7->ebx = o[1] | CPUID_7_EBX_TSC_ADJUST;
    /* The TSC is the host's monotonic clock scaled to a fixed rate: invariant. */
    struct cpuid_entry *e87 = &t->entries[t->count++];
    *e87 = (struct cpuid_entry){.function = 0x80000007, .edx = 1u << 8};
}

static int soft_vm_init(struct vm *vm, char *why, unsigned why_len)
{
    struct soft_vm *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(why, why_len, "soft: out of memory");
        return -ENOMEM;
    }
    s->vm = vm;
    s->tsc_khz = SOFT_TSC_KHZ_DEFAULT;
    vm->accel_data = s;
    return 0;
}

static void soft_vm_destroy(struct vm *vm)
{
    struct soft_vm *s = svm_of(vm);
    if (!s)
        return;
    if (s->timer_started) {
        s->timer_stop = true;
        timer_wake(s);
        pthread_join(s->timer, NULL);
    }
    /* s->irq stays: the buses still point at it (see machine_irqs). */
    for (unsigned k = 0; k < SOFT_MAX_SLOTS; k++) {
        free(s->dirty[k]);
        free(s->code[k]);
    }
    free(s);
    vm->accel_data = NULL;
}

/* The buses have no way to unregister a device, and a reboot rebuilds the accelerator's VM but
 * not the buses: the interrupt controllers registered on them therefore live as long as the
 * machine, and a reboot resets them instead of creating new ones. */
#define SOFT_MAX_MACHINES 8
static struct {
    struct vm *vm;
    struct soft_irq *irq;
} machine_irqs[SOFT_MAX_MACHINES];
static pthread_mutex_t machine_irqs_lock = PTHREAD_MUTEX_INITIALIZER;

static struct soft_irq *machine_irq_find(struct vm *vm)
{
    struct soft_irq *irq = NULL;
    pthread_mutex_lock(&machine_irqs_lock);
    for (unsigned k = 0; k < SOFT_MAX_MACHINES; k++)
        if (machine_irqs[k].vm == vm)
            irq = machine_irqs[k].irq;
    pthread_mutex_unlock(&machine_irqs_lock);
    return irq;
}

static int machine_irq_add(struct vm *vm, struct soft_irq *irq)
{
    int rc = -ENOSPC;
    pthread_mutex_lock(&machine_irqs_lock);
    for (unsigned k = 0; k < SOFT_MAX_MACHINES && rc; k++) {
        if (!machine_irqs[k].vm) {
            machine_irqs[k].vm = vm;
            machine_irqs[k].irq = irq;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&machine_irqs_lock);
    return rc;
}

static int soft_irqchip_init(struct vm *vm, char *why, unsigned why_len)
{
    struct soft_vm *s = svm_of(vm);
    s->irq = machine_irq_find(vm);
    if (s->irq) {
        soft_irq_reset(s->irq); /* a reboot: the same controllers, back to power-on state */
        goto start_timer;
    }
    struct soft_irq_config cfg = {
        .ncpus = vm->ncpus, .tsc_khz = s->tsc_khz, .kick = bus_kick, .on_init = bus_on_init,
        .on_sipi = bus_on_sipi, .timer_programmed = pit_programmed, .opaque = vm,
    };
    s->irq = soft_irq_create(&cfg);
    if (!s->irq) {
        int err = errno ? errno : ENOMEM;
        snprintf(why, why_len, "soft: cannot create the interrupt controllers: %s",
                 strerror(err));
        return -err;
    }
    int rc = soft_irq_attach(s->irq, &vm->pio, &vm->mmio);
    if (rc == 0)
        rc = machine_irq_add(vm, s->irq);
    if (rc < 0) {
        snprintf(why, why_len, "soft: cannot attach the interrupt controllers: %s",
                 strerror(-rc));
        return rc;
    }
start_timer:
    rc = pthread_create(&s->timer, NULL, timer_thread, s);
    if (rc) {
        snprintf(why, why_len, "soft: cannot start the timer thread: %s", strerror(rc));
        return -rc;
    }
    s->timer_started = true;
    return 0;
}

static int soft_map_ram(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host)
{
    struct soft_vm *s = svm_of(vm);
    if (slot != s->phys.n || slot >= SOFT_MAX_SLOTS)
        return -EINVAL; /* slots arrive in order, once each */
    uint64_t pages = (size + 4095) / 4096;
    s->dirty[slot] = calloc((pages + 63) / 64, sizeof(uint64_t));
    s->code[slot] = calloc((pages + 63) / 64, sizeof(uint64_t));
    if (!s->dirty[slot] || !s->code[slot])
        return -ENOMEM;
    return soft_phys_add(&s->phys, gpa, size, host);
}

static int soft_get_dirty_log(struct vm *vm, unsigned slot, uint64_t *bitmap)
{
    struct soft_vm *s = svm_of(vm);
    if (slot >= s->phys.n)
        return -EINVAL;
    uint64_t words = (s->phys.region[slot].size / 4096 + 63) / 64;
    for (uint64_t k = 0; k < words; k++)
        bitmap[k] = __atomic_exchange_n(&s->dirty[slot][k], 0, __ATOMIC_RELAXED);
    /* TLB entries granting writes must be refilled so that new writes are logged again. */
    soft_request_flush_all(s);
    return 0;
}

static int soft_set_irq(struct vm *vm, unsigned gsi, int level)
{
    return soft_irq_set_level(svm_of(vm)->irq, gsi, level);
}

static int soft_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
    int r = apic_bus_deliver_msi(&svm_of(vm)->irq->apic, addr, data);
    return r < 0 ? r : 0;
}

/* --- vCPU ---------------------------------------------------------------------------------- */

/* Power-on / INIT state: real mode at F000:FFF0 (an AP's SIPI then sets CS:IP). */
static void cpu_reset_state(struct soft_cpu *cpu)
{
    memset(cpu->regs, 0, sizeof(cpu->regs));
    cpu->rip = 0xfff0;
    soft_cpu_set_rflags(cpu, 2);
    for (int i = 0; i < SOFT_NSEGS; i++)
        cpu->seg[i] = (struct soft_segment){0, 0, 0xffff, 0x93};
    cpu->seg[SOFT_CS] = (struct soft_segment){0xf000, 0xffff0000, 0xffff, 0x9b};
    cpu->ldtr = (struct soft_segment){0, 0, 0xffff, 0x82};
    cpu->tr = (struct soft_segment){0, 0, 0xffff, 0x8b};
    cpu->gdtr = (struct soft_dtable){0, 0xffff};
    cpu->idtr = (struct soft_dtable){0, 0xffff};
    cpu->cr0 = 0x60000010;
    cpu->cr2 = cpu->cr3 = cpu->cr4 = cpu->cr8 = 0;
    cpu->efer = 0;
    cpu->cpl = 0;
    cpu->mode = 16;
    cpu->regs[SOFT_RDX] = 0x600; /* family 6 */
    cpu->irq_shadow = 0;
    soft_cpu_flush_tlb(cpu);
}

static int soft_vcpu_init(struct vcpu *vcpu)
{
    struct soft_vm *s = svm_of(vcpu->vm);
    struct soft_vcpu *sv = calloc(1, sizeof(*sv));
    if (!sv)
        return -ENOMEM;
    sv->vcpu = vcpu;
    sv->svm = s;
    sv->sipi_vector = -1;
    pthread_mutex_init(&sv->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sv->wake, &ca);
    pthread_condattr_destroy(&ca);
    int rc = soft_cpu_init(&sv->cpu, &soft_sys_ops, sv, 16);
    if (rc < 0) {
        free(sv);
        return rc;
    }
    vcpu->accel_data = sv;
    sv->cpu.system = 1;
    sv->lapic = apic_bus_lapic(&s->irq->apic, vcpu->index);
    if (!sv->lapic)
        return -EINVAL;
    if (s->supported.count == 0)
        soft_supported_cpuid(&sv->cpu, &s->supported);
    rc = cpuid_build(&s->supported, vcpu->vm->cfg.cpu_model, vcpu->vm->ncpus, vcpu->index,
                     s->tsc_khz, &sv->cpuid);
    if (rc < 0)
        return rc;
    /* Both CPU models get ARCH_CAPABILITIES: what it declares is a fact of this backend, as
     * KVM's own value is of the host (a guest moved between the two sees each one's truth).
     * TSC_ADJUST too (baseline hides leaf 7): with an invariant TSC and TSC_ADJUST, Linux
     * trusts the TSC without its clocksource watchdog, which otherwise compares it with
     * jiffies early in boot, and jiffies lag whenever the host delays the vCPU thread past a
     * PIT tick (two ticks due at once arrive as one). */
    struct cpuid_entry *e7 = (struct cpuid_entry *)cpuid_find(&sv->cpuid, 7, 0);
    if (e7) {
        e7->edx |= CPUID_7_EDX_ARCH_CAPABILITIES;
        e7->ebx |= CPUID_7_EBX_TSC_ADJUST;
    }
    cpu_reset_state(&sv->cpu);
    const struct msr_value *boot = msr_boot_values();
    for (unsigned i = 0; i < MSR_BOOT_COUNT; i++) {
        if (boot[i].index == MSR_IA32_MISC_ENABLE)
            sv->cpu.misc_enable = boot[i].value;
        else if (boot[i].index == MSR_MTRR_DEF_TYPE)
            sv->cpu.mtrr_def = boot[i].value;
    }
    sv->cpu.pat = 0x0007040600070406ull;
    sv->wait_sipi = vcpu->index != 0;
    return 0;
}

static void soft_vcpu_destroy(struct vcpu *vcpu)
{
    struct soft_vcpu *sv = sv_of(vcpu);
    if (!sv)
        return;
    const char *stats = getenv("VIREO_SOFT_JIT_STATS");
    if (stats && stats[0] == '1' && soft_cache_jit(&sv->cpu))
        soft_jit_print_stats(soft_cache_jit(&sv->cpu), stderr);
    soft_cpu_destroy(&sv->cpu);
    pthread_cond_destroy(&sv->wake);
    pthread_mutex_destroy(&sv->lock);
    free(sv);
    vcpu->accel_data = NULL;
}

static void soft_vcpu_kick(struct vcpu *vcpu)
{
    struct soft_vcpu *sv = sv_of(vcpu);
    if (!sv)
        return;
    __atomic_store_n(&sv->vmm_kick, true, __ATOMIC_RELEASE);
    wake_vcpu(sv);
}

/* Sleep until kicked or until deadline (clock ns; UINT64_MAX: no deadline). */
static void vcpu_sleep(struct soft_vcpu *sv, uint64_t deadline)
{
    pthread_mutex_lock(&sv->lock);
    if (!(__atomic_load_n(&sv->cpu.intr_request, __ATOMIC_ACQUIRE) & SOFT_INTR_KICK)) {
        if (deadline == UINT64_MAX) {
            pthread_cond_wait(&sv->wake, &sv->lock);
        } else {
            struct timespec ts = {(time_t)(deadline / 1000000000ull),
                                  (long)(deadline % 1000000000ull)};
            pthread_cond_timedwait(&sv->wake, &sv->lock, &ts);
        }
    }
    pthread_mutex_unlock(&sv->lock);
}

/* Deliver an event, escalating faults raised by the delivery itself (#DF, triple fault).
 * Returns false on a triple fault. */
static bool deliver(struct soft_cpu *cpu, unsigned vector, enum soft_event_kind kind,
                    bool has_error, uint32_t error)
{
    for (;;) {
        int r = soft_excp_deliver(cpu, vector, kind, has_error, error);
        if (r == 0)
            return true;
        unsigned second = (unsigned)-r;
        unsigned next = soft_excp_combine(kind == SOFT_EVENT_FAULT ? vector : 0x20, second);
        if (next == SOFT_EXC_TRIPLE)
            return false;
        vector = next;
        kind = SOFT_EVENT_FAULT;
        has_error = soft_excp_has_error(vector);
        error = vector == SOFT_EXC_DF ? 0 : cpu->exc_error;
    }
}

static int soft_vcpu_run(struct vcpu *vcpu, struct vcpu_exit *exit)
{
    struct soft_vcpu *sv = sv_of(vcpu);
    struct soft_cpu *cpu = &sv->cpu;
    if (sv->in_pending) {
        memcpy(&cpu->io.data, sv->iobuf, cpu->io.size);
        soft_cpu_finish_in(cpu);
        sv->in_pending = false;
    }
    for (;;) {
        __atomic_and_fetch(&cpu->intr_request, ~SOFT_INTR_KICK, __ATOMIC_ACQ_REL);
        if (__atomic_exchange_n(&sv->vmm_kick, false, __ATOMIC_ACQ_REL)) {
            exit->reason = VCPU_EXIT_INTR;
            return 0;
        }
        if (__atomic_exchange_n(&sv->init_pending, false, __ATOMIC_ACQ_REL)) {
            cpu_reset_state(cpu);
            sv->halted = false;
            sv->wait_sipi = true;
        }
        if (sv->wait_sipi) {
            int v = __atomic_exchange_n(&sv->sipi_vector, -1, __ATOMIC_ACQ_REL);
            if (v < 0) {
                vcpu_sleep(sv, UINT64_MAX);
                continue;
            }
            cpu->seg[SOFT_CS] = (struct soft_segment){(uint16_t)(v << 8), (uint64_t)v << 12,
                                                      0xffff, 0x9b};
            cpu->rip = 0;
            sv->wait_sipi = false;
        }
        if (__atomic_exchange_n(&sv->flush_req, false, __ATOMIC_ACQ_REL))
            soft_cpu_flush_tlb(cpu);
        if (cpu->tsc_offset != (uint64_t)sv->lapic_tsc_offset) {
            sv->lapic_tsc_offset = (int64_t)cpu->tsc_offset;
            lapic_set_tsc_offset(sv->lapic, sv->lapic_tsc_offset);
            soft_timer_poke(sv->svm, lapic_next_deadline_ns(sv->lapic));
        }
        if (cpu->cr8 != sv->last_cr8)
            lapic_set_cr8(sv->lapic, cpu->cr8); /* MOV CR8 in the last run */
        if (lapic_take_nmi(sv->lapic)) {
            sv->halted = false;
            if (!deliver(cpu, SOFT_EXC_NMI, SOFT_EVENT_EXTINT, false, 0)) {
                exit->reason = VCPU_EXIT_SHUTDOWN;
                return 0;
            }
        }
        bool pending = lapic_has_interrupt(sv->lapic);
        if (pending && (cpu->rflags & SOFT_IF) && !cpu->irq_shadow) {
            int v = lapic_get_interrupt(sv->lapic);
            sv->halted = false;
            if (v >= 0 && !deliver(cpu, (unsigned)v, SOFT_EVENT_EXTINT, false, 0)) {
                exit->reason = VCPU_EXIT_SHUTDOWN;
                return 0;
            }
            pending = lapic_has_interrupt(sv->lapic);
        }
        if (pending)
            __atomic_or_fetch(&cpu->intr_request, SOFT_INTR_PENDING, __ATOMIC_RELEASE);
        else
            __atomic_and_fetch(&cpu->intr_request, ~SOFT_INTR_PENDING, __ATOMIC_RELEASE);
        if (sv->halted) {
            if (pending && (cpu->rflags & SOFT_IF)) {
                sv->halted = false;
                continue;
            }
            vcpu_sleep(sv, UINT64_MAX); /* the timer thread kicks us at deadlines */
            continue;
        }
        int r = soft_cpu_run(cpu);
        cpu->cr8 = sv->last_cr8 = lapic_get_cr8(sv->lapic); /* TPR written through MMIO */
        switch (r) {
        case SOFT_EXIT_IO:
            exit->reason = VCPU_EXIT_IO;
            exit->io.port = cpu->io.port;
            exit->io.size = cpu->io.size;
            exit->io.write = cpu->io.write;
            exit->io.count = 1;
            memcpy(sv->iobuf, &cpu->io.data, sizeof(cpu->io.data));
            exit->io.data = sv->iobuf;
            sv->in_pending = !cpu->io.write;
            return 0;
        case SOFT_EXIT_HLT:
            /* Even with IF = 0 the CPU sleeps: an NMI or INIT may still wake it, and poweroff
             * or reset arrive through devices, not through this CPU. */
            sv->halted = true;
            continue;
        case SOFT_EXIT_EXCEPTION: {
            unsigned v = cpu->exc_vector;
            bool soft = cpu->exc_softint || v == SOFT_EXC_BP;
            bool ok = deliver(cpu, v, soft ? SOFT_EVENT_SOFTINT : SOFT_EVENT_FAULT,
                              !soft && soft_excp_has_error(v), cpu->exc_error);
            if (!ok) {
                exit->reason = VCPU_EXIT_SHUTDOWN;
                return 0;
            }
            continue;
        }
        case SOFT_EXIT_IRQ:
            continue;
        default:
            exit->reason = VCPU_EXIT_FAILED;
            snprintf(exit->error.desc, sizeof(exit->error.desc),
                     "soft: unexpected CPU exit %d at RIP %#llx", r,
                     (unsigned long long)cpu->rip);
            return 0;
        }
    }
}

const struct accel_ops accel_soft_ops = {
    .name = "soft",
    .vm_init = soft_vm_init,
    .vm_destroy = soft_vm_destroy,
    .irqchip_init = soft_irqchip_init,
    .map_ram = soft_map_ram,
    .vcpu_init = soft_vcpu_init,
    .vcpu_destroy = soft_vcpu_destroy,
    .vcpu_run = soft_vcpu_run,
    .vcpu_kick = soft_vcpu_kick,
    .get_regs = soft_get_regs,
    .set_regs = soft_set_regs,
    .get_sregs = soft_get_sregs,
    .set_sregs = soft_set_sregs,
    .set_irq = soft_set_irq,
    .get_dirty_log = soft_get_dirty_log,
    .signal_msi = soft_signal_msi,
};
