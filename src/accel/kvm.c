/* The KVM accelerator: hardware virtualization through /dev/kvm, with the in-kernel LAPIC,
 * IOAPIC, PIC and PIT. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accel/accel.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "arch/x86/msr.h"
#include "util/err.h"
#include "util/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* KVM needs three pages for the VMX real-mode TSS and one for the EPT identity map, inside guest
 * physical space but outside RAM: just below the 4 GiB boundary, in the PCI hole. */
#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

/* MSI routes live above the IOAPIC's GSIs; KVM takes up to 4096 routes, we need one per
 * MSI-X vector in use. */
#define KVM_MSI_GSI_BASE 32
#define KVM_MSI_ROUTES 512

struct kvm_msi_route {
    bool used;
    uint64_t addr;
    uint32_t data;
};

struct kvm_vm {
    int sys_fd;   /* /dev/kvm */
    int vm_fd;
    int run_size;
    struct cpuid_table supported;
    /* KVM_SET_GSI_ROUTING replaces the whole table, so we keep it: the irqchip routes that
     * kvm_setup_gsi_routing() installs, then the MSI routes devices add. */
    pthread_mutex_t route_lock;
    struct kvm_irq_routing_entry *base_routes;
    unsigned nbase_routes;
    struct kvm_msi_route msi[KVM_MSI_ROUTES];
};

struct kvm_vcpu {
    int fd;
    struct kvm_run *run;
};

const char *accel_kvm_device_path(void)
{
    const char *p = getenv("VIREO_KVM_DEVICE");
    return p && *p ? p : "/dev/kvm";
}

bool accel_host_has_hw_virt(void)
{
    return access("/sys/module/kvm_intel", F_OK) == 0 || access("/sys/module/kvm_amd", F_OK) == 0;
}

static struct kvm_vm *kvm_of(struct vm *vm) { return vm->accel_data; }
static struct kvm_vcpu *kvcpu_of(struct vcpu *vcpu) { return vcpu->accel_data; }

static int kvm_get_supported_cpuid(struct kvm_vm *k)
{
    size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, sz);
    if (!c)
        return -ENOMEM;
    c->nent = CPUID_MAX_ENTRIES;
    if (ioctl(k->sys_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        int err = -errno;
        free(c);
        return err;
    }
    k->supported.count = 0;
    for (unsigned i = 0; i < c->nent && i < CPUID_MAX_ENTRIES; i++) {
        const struct kvm_cpuid_entry2 *s = &c->entries[i];
        k->supported.entries[k->supported.count++] = (struct cpuid_entry){
            .function = s->function,
            .index = s->index,
            .flags = (s->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ? CPUID_F_SIGNIFICANT_INDEX : 0,
            .eax = s->eax, .ebx = s->ebx, .ecx = s->ecx, .edx = s->edx,
        };
    }
    free(c);
    return 0;
}

/* GSI routing as on a PC: ISA IRQs 0-15 reach the PICs (except the cascade, 2) and IOAPIC pins
 * 0-23; the timer's IRQ0 arrives on IOAPIC pin 2, matching the MADT's interrupt override. */
static int kvm_setup_gsi_routing(struct kvm_vm *k)
{
    unsigned max = 16 + IOAPIC_PINS;
    struct kvm_irq_routing *r =
        calloc(1, sizeof(*r) + max * sizeof(struct kvm_irq_routing_entry));
    if (!r)
        return -ENOMEM;
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < 16; gsi++) {
        if (gsi == 2)
            continue;
        r->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                          .pin = gsi % 8}};
    }
    for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
        r->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi == 0 ? 2 : gsi}};
    }
    r->nr = n;
    int rc = ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, r) < 0 ? -errno : 0;
    /* Kept so that MSI routes added later re-submit these with them. */
    free(k->base_routes);
    k->base_routes = calloc(n, sizeof(*k->base_routes));
    if (k->base_routes) {
        memcpy(k->base_routes, r->entries, n * sizeof(*k->base_routes));
        k->nbase_routes = n;
    }
    free(r);
    return rc;
}

static int kvm_vm_init(struct vm *vm, char *why, unsigned why_len)
{
    struct kvm_vm *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->vm_fd = -1;
    pthread_mutex_init(&k->route_lock, NULL);
    vm->accel_data = k;
    const char *dev = accel_kvm_device_path();
    k->sys_fd = open(dev, O_RDWR | O_CLOEXEC);
    if (k->sys_fd < 0) {
        int err = errno;
        snprintf(why, why_len, "cannot open %s: %s (is the kvm module loaded?)", dev,
                 strerror(err));
        return -err;
    }
    int version = ioctl(k->sys_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        snprintf(why, why_len, "%s does not speak the KVM API (version %d)", dev, version);
        return -ENOTSUP;
    }
    k->run_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (k->run_size <= 0)
        return -ENOTSUP;
    do {
        k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
    } while (k->vm_fd < 0 && errno == EINTR);
    const char *step = "KVM_CREATE_VM";
    int rc = k->vm_fd < 0 ? -errno : 0;
    if (rc == 0 && (rc = kvm_get_supported_cpuid(k)) < 0)
        step = "KVM_GET_SUPPORTED_CPUID";
    uint64_t ident = KVM_IDENTITY_MAP_ADDR;
    if (rc == 0 && ioctl(k->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
        rc = -errno, step = "KVM_SET_TSS_ADDR";
    if (rc == 0 && ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
        rc = -errno, step = "KVM_SET_IDENTITY_MAP_ADDR";
    if (rc < 0)
        snprintf(why, why_len, "KVM refused to create the VM: %s: %s", step, strerror(-rc));
    return rc;
}

/* The in-kernel LAPIC/IOAPIC/PIC, the PIT and the GSI routing. Created after guest RAM is mapped:
 * once they exist, every memslot change waits for an SRCU grace period (measured here: 5-10 ms
 * for the first RAM slot), which would be most of the VMM's start-up time. */
static int kvm_irqchip_init(struct vm *vm, char *why, unsigned why_len)
{
    struct kvm_vm *k = kvm_of(vm);
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    const char *step = NULL;
    int rc = 0;
    if (rc == 0 && ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        rc = -errno, step = "KVM_CREATE_IRQCHIP";
    if (rc == 0 && ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        rc = -errno, step = "KVM_CREATE_PIT2";
    if (rc == 0 && (rc = kvm_setup_gsi_routing(k)) < 0)
        step = "KVM_SET_GSI_ROUTING";
    if (rc < 0)
        snprintf(why, why_len, "KVM refused to create the interrupt controllers: %s: %s", step,
                 strerror(-rc));
    return rc;
}

static void kvm_vm_destroy(struct vm *vm)
{
    struct kvm_vm *k = kvm_of(vm);
    if (!k)
        return;
    if (k->vm_fd >= 0)
        close(k->vm_fd);
    if (k->sys_fd >= 0)
        close(k->sys_fd);
    pthread_mutex_destroy(&k->route_lock);
    free(k->base_routes);
    free(k);
    vm->accel_data = NULL;
}

static int kvm_map_ram(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host)
{
    struct kvm_userspace_memory_region region = {
        .slot = slot, .guest_phys_addr = gpa, .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    return ioctl(kvm_of(vm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0 ? -errno : 0;
}

static int kvm_set_cpuid(struct vcpu *vcpu, struct kvm_vm *k, struct kvm_vcpu *kv)
{
    uint32_t tsc_khz = 0;
    int khz = ioctl(kv->fd, KVM_GET_TSC_KHZ, 0);
    if (khz > 0)
        tsc_khz = (uint32_t)khz;
    struct cpuid_table *model = malloc(sizeof(*model));
    size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, sz);
    int rc = -ENOMEM;
    if (!model || !c)
        goto out;
    rc = cpuid_build(&k->supported, vcpu->vm->cfg.cpu_model, vcpu->vm->ncpus, vcpu->index,
                     tsc_khz, model);
    if (rc < 0)
        goto out;
    c->nent = model->count;
    for (unsigned i = 0; i < model->count; i++) {
        const struct cpuid_entry *e = &model->entries[i];
        c->entries[i] = (struct kvm_cpuid_entry2){
            .function = e->function, .index = e->index,
            .flags = (e->flags & CPUID_F_SIGNIFICANT_INDEX) ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
            .eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx,
        };
    }
    rc = ioctl(kv->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
out:
    free(model);
    free(c);
    return rc;
}

/* What firmware would leave behind: LINT0 as ExtINT (the PIC's line) and LINT1 as NMI. */
static int kvm_set_lapic_lints(struct kvm_vcpu *kv)
{
    struct kvm_lapic_state lapic;
    if (ioctl(kv->fd, KVM_GET_LAPIC, &lapic) < 0)
        return -errno;
    uint32_t lvt0 = 7u << 8, lvt1 = 4u << 8;
    memcpy(&lapic.regs[0x350], &lvt0, 4);
    memcpy(&lapic.regs[0x360], &lvt1, 4);
    return ioctl(kv->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

static int kvm_set_boot_msrs(struct kvm_vcpu *kv)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[MSR_BOOT_COUNT];
    } m = {0};
    const struct msr_value *boot = msr_boot_values();
    for (unsigned i = 0; i < MSR_BOOT_COUNT; i++)
        m.e[i] = (struct kvm_msr_entry){.index = boot[i].index, .data = boot[i].value};
    m.hdr.nmsrs = MSR_BOOT_COUNT;
    int n = ioctl(kv->fd, KVM_SET_MSRS, &m);
    return n == MSR_BOOT_COUNT ? 0 : (n < 0 ? -errno : -EINVAL);
}

static void kvm_kick_handler(int sig) { (void)sig; }

static int kvm_vcpu_init(struct vcpu *vcpu)
{
    struct kvm_vm *k = kvm_of(vcpu->vm);
    struct kvm_vcpu *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    kv->fd = -1;
    vcpu->accel_data = kv;
    kv->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)vcpu->index);
    if (kv->fd < 0)
        return -errno;
    kv->run = mmap(NULL, (size_t)k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, kv->fd, 0);
    if (kv->run == MAP_FAILED) {
        kv->run = NULL;
        return -errno;
    }
    int rc = kvm_set_cpuid(vcpu, k, kv);
    if (rc == 0)
        rc = kvm_set_boot_msrs(kv);
    if (rc == 0)
        rc = kvm_set_lapic_lints(kv);
    /* A no-op handler: the signal only needs to interrupt KVM_RUN. */
    struct sigaction sa = {.sa_handler = kvm_kick_handler};
    sigaction(SIGUSR1, &sa, NULL);
    return rc;
}

static void kvm_vcpu_destroy(struct vcpu *vcpu)
{
    struct kvm_vcpu *kv = kvcpu_of(vcpu);
    if (!kv)
        return;
    if (kv->run)
        munmap(kv->run, (size_t)kvm_of(vcpu->vm)->run_size);
    if (kv->fd >= 0)
        close(kv->fd);
    free(kv);
    vcpu->accel_data = NULL;
}

static void kvm_describe_internal_error(const struct kvm_run *run, struct vcpu_exit *exit)
{
    static const char *const sub[] = {
        [KVM_INTERNAL_ERROR_EMULATION] = "emulation failure",
        [KVM_INTERNAL_ERROR_SIMUL_EX] = "exception while delivering an exception",
        [KVM_INTERNAL_ERROR_DELIVERY_EV] = "event delivery failed",
    };
    unsigned s = run->internal.suberror;
    const char *what = s < ARRAY_SIZE(sub) && sub[s] ? sub[s] : "unknown";
    int n = snprintf(exit->error.desc, sizeof(exit->error.desc), "KVM internal error: %s (suberror %u)",
                     what, s);
    if (s == KVM_INTERNAL_ERROR_EMULATION && run->internal.ndata >= 1 && n > 0 &&
        (size_t)n < sizeof(exit->error.desc))
        snprintf(exit->error.desc + n, sizeof(exit->error.desc) - (size_t)n,
                 "; the host has no hardware virtualization, so KVM emulates guest code");
}

static int kvm_vcpu_run(struct vcpu *vcpu, struct vcpu_exit *exit)
{
    struct kvm_vcpu *kv = kvcpu_of(vcpu);
    struct kvm_run *run = kv->run;
    for (;;) {
        int rc = ioctl(kv->fd, KVM_RUN, 0);
        int err = errno;
        run->immediate_exit = 0;
        if (rc < 0) {
            if (err == EINTR || err == EAGAIN) {
                exit->reason = VCPU_EXIT_INTR;
                return 0;
            }
            return -err;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            exit->reason = VCPU_EXIT_IO;
            exit->io.port = run->io.port;
            exit->io.size = run->io.size;
            exit->io.write = run->io.direction == KVM_EXIT_IO_OUT;
            exit->io.count = run->io.count;
            exit->io.data = (uint8_t *)run + run->io.data_offset;
            return 0;
        case KVM_EXIT_MMIO:
            exit->reason = VCPU_EXIT_MMIO;
            exit->mmio.addr = run->mmio.phys_addr;
            exit->mmio.size = (uint8_t)run->mmio.len;
            exit->mmio.write = run->mmio.is_write;
            exit->mmio.data = run->mmio.data;
            return 0;
        case KVM_EXIT_HLT:
            exit->reason = VCPU_EXIT_HLT;
            return 0;
        case KVM_EXIT_SHUTDOWN:
            exit->reason = VCPU_EXIT_SHUTDOWN;
            return 0;
        case KVM_EXIT_INTR:
            exit->reason = VCPU_EXIT_INTR;
            return 0;
        case KVM_EXIT_INTERNAL_ERROR:
            exit->reason = VCPU_EXIT_FAILED;
            kvm_describe_internal_error(run, exit);
            return 0;
        case KVM_EXIT_FAIL_ENTRY:
            exit->reason = VCPU_EXIT_FAILED;
            snprintf(exit->error.desc, sizeof(exit->error.desc),
                     "KVM entry failed: hardware reason 0x%llx",
                     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return 0;
        case KVM_EXIT_SYSTEM_EVENT:
            exit->reason = run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN
                               ? VCPU_EXIT_SHUTDOWN : VCPU_EXIT_FAILED;
            snprintf(exit->error.desc, sizeof(exit->error.desc), "KVM system event %u",
                     run->system_event.type);
            return 0;
        default:
            exit->reason = VCPU_EXIT_FAILED;
            snprintf(exit->error.desc, sizeof(exit->error.desc), "unexpected KVM exit reason %u",
                     run->exit_reason);
            return 0;
        }
    }
}

static void kvm_vcpu_kick(struct vcpu *vcpu)
{
    struct kvm_vcpu *kv = kvcpu_of(vcpu);
    if (!kv || !kv->run)
        return;
    __atomic_store_n(&kv->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (vcpu->thread_started)
        pthread_kill(vcpu->thread, SIGUSR1);
}

static int kvm_get_regs(struct vcpu *vcpu, struct vcpu_regs *r)
{
    struct kvm_regs k;
    if (ioctl(kvcpu_of(vcpu)->fd, KVM_GET_REGS, &k) < 0)
        return -errno;
    *r = (struct vcpu_regs){k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp,
                            k.r8,  k.r9,  k.r10, k.r11, k.r12, k.r13, k.r14, k.r15,
                            k.rip, k.rflags};
    return 0;
}

static int kvm_set_regs(struct vcpu *vcpu, const struct vcpu_regs *r)
{
    struct kvm_regs k = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp,
                         r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
                         r->rip, r->rflags};
    return ioctl(kvcpu_of(vcpu)->fd, KVM_SET_REGS, &k) < 0 ? -errno : 0;
}

static void seg_from_kvm(struct vcpu_segment *d, const struct kvm_segment *s)
{
    *d = (struct vcpu_segment){s->base, s->limit, s->selector, s->type, s->present, s->dpl,
                               s->db, s->s, s->l, s->g, s->avl, s->unusable};
}

static void seg_to_kvm(struct kvm_segment *d, const struct vcpu_segment *s)
{
    *d = (struct kvm_segment){.base = s->base, .limit = s->limit, .selector = s->selector,
                              .type = s->type, .present = s->present, .dpl = s->dpl, .db = s->db,
                              .s = s->s, .l = s->l, .g = s->g, .avl = s->avl,
                              .unusable = s->unusable};
}

static int kvm_get_sregs(struct vcpu *vcpu, struct vcpu_sregs *r)
{
    struct kvm_sregs k;
    if (ioctl(kvcpu_of(vcpu)->fd, KVM_GET_SREGS, &k) < 0)
        return -errno;
    seg_from_kvm(&r->cs, &k.cs);
    seg_from_kvm(&r->ds, &k.ds);
    seg_from_kvm(&r->es, &k.es);
    seg_from_kvm(&r->fs, &k.fs);
    seg_from_kvm(&r->gs, &k.gs);
    seg_from_kvm(&r->ss, &k.ss);
    seg_from_kvm(&r->tr, &k.tr);
    seg_from_kvm(&r->ldt, &k.ldt);
    r->gdt = (struct vcpu_dtable){k.gdt.base, k.gdt.limit};
    r->idt = (struct vcpu_dtable){k.idt.base, k.idt.limit};
    r->cr0 = k.cr0;
    r->cr2 = k.cr2;
    r->cr3 = k.cr3;
    r->cr4 = k.cr4;
    r->cr8 = k.cr8;
    r->efer = k.efer;
    r->apic_base = k.apic_base;
    return 0;
}

static int kvm_set_sregs(struct vcpu *vcpu, const struct vcpu_sregs *r)
{
    struct kvm_sregs k;
    int fd = kvcpu_of(vcpu)->fd;
    /* Start from the current state so the pending-interrupt bitmap is kept. */
    if (ioctl(fd, KVM_GET_SREGS, &k) < 0)
        return -errno;
    seg_to_kvm(&k.cs, &r->cs);
    seg_to_kvm(&k.ds, &r->ds);
    seg_to_kvm(&k.es, &r->es);
    seg_to_kvm(&k.fs, &r->fs);
    seg_to_kvm(&k.gs, &r->gs);
    seg_to_kvm(&k.ss, &r->ss);
    seg_to_kvm(&k.tr, &r->tr);
    seg_to_kvm(&k.ldt, &r->ldt);
    k.gdt.base = r->gdt.base;
    k.gdt.limit = r->gdt.limit;
    k.idt.base = r->idt.base;
    k.idt.limit = r->idt.limit;
    k.cr0 = r->cr0;
    k.cr2 = r->cr2;
    k.cr3 = r->cr3;
    k.cr4 = r->cr4;
    k.cr8 = r->cr8;
    k.efer = r->efer;
    k.apic_base = r->apic_base;
    return ioctl(fd, KVM_SET_SREGS, &k) < 0 ? -errno : 0;
}

static int kvm_set_irq(struct vm *vm, unsigned gsi, int level)
{
    struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};
    return ioctl(kvm_of(vm)->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

static int kvm_get_dirty_log(struct vm *vm, unsigned slot, uint64_t *bitmap)
{
    struct kvm_dirty_log log = {.slot = slot, .dirty_bitmap = bitmap};
    return ioctl(kvm_of(vm)->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

static int kvm_ioeventfd(struct vm *vm, uint64_t addr, unsigned len, int fd, bool assign)
{
    struct kvm_ioeventfd io = {
        .addr = addr, .len = len, .fd = fd, .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
    };
    return ioctl(kvm_of(vm)->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static int kvm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
    struct kvm_msi msi = {
        .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data,
    };
    /* 0 means the guest's APIC refused it (masked or disabled): not our error. */
    return ioctl(kvm_of(vm)->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

/* Submit the base routes plus every MSI route in use. Called with route_lock held. */
static int kvm_commit_routes(struct kvm_vm *k)
{
    unsigned max = k->nbase_routes + KVM_MSI_ROUTES;
    struct kvm_irq_routing *r = calloc(1, sizeof(*r) + max * sizeof(struct kvm_irq_routing_entry));
    if (!r)
        return -ENOMEM;
    unsigned n = k->nbase_routes;
    memcpy(r->entries, k->base_routes, n * sizeof(r->entries[0]));
    for (unsigned i = 0; i < KVM_MSI_ROUTES; i++) {
        if (!k->msi[i].used)
            continue;
        r->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = KVM_MSI_GSI_BASE + i, .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = {.address_lo = (uint32_t)k->msi[i].addr,
                      .address_hi = (uint32_t)(k->msi[i].addr >> 32), .data = k->msi[i].data}};
    }
    r->nr = n;
    int rc = ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, r) < 0 ? -errno : 0;
    free(r);
    return rc;
}

static int kvm_msi_route_add(struct vm *vm, uint64_t addr, uint32_t data)
{
    struct kvm_vm *k = kvm_of(vm);
    pthread_mutex_lock(&k->route_lock);
    int rc = -ENOSPC;
    for (unsigned i = 0; i < KVM_MSI_ROUTES; i++) {
        if (k->msi[i].used)
            continue;
        k->msi[i] = (struct kvm_msi_route){true, addr, data};
        rc = kvm_commit_routes(k);
        if (rc < 0)
            k->msi[i].used = false;
        else
            rc = (int)i;
        break;
    }
    pthread_mutex_unlock(&k->route_lock);
    return rc;
}

static int kvm_msi_route_update(struct vm *vm, int route, uint64_t addr, uint32_t data)
{
    struct kvm_vm *k = kvm_of(vm);
    if (route < 0 || route >= KVM_MSI_ROUTES)
        return -EINVAL;
    pthread_mutex_lock(&k->route_lock);
    int rc = -ENOENT;
    struct kvm_msi_route *m = &k->msi[route];
    if (m->used) {
        rc = 0;
        if (m->addr != addr || m->data != data) {
            m->addr = addr;
            m->data = data;
            rc = kvm_commit_routes(k);
        }
    }
    pthread_mutex_unlock(&k->route_lock);
    return rc;
}

static void kvm_msi_route_remove(struct vm *vm, int route)
{
    struct kvm_vm *k = kvm_of(vm);
    if (route < 0 || route >= KVM_MSI_ROUTES)
        return;
    pthread_mutex_lock(&k->route_lock);
    if (k->msi[route].used) {
        k->msi[route].used = false;
        int rc = kvm_commit_routes(k);
        if (rc < 0)
            log_warn("kvm: cannot remove MSI route %d: %s", route, strerror(-rc));
    }
    pthread_mutex_unlock(&k->route_lock);
}

static int kvm_irqfd(struct vm *vm, int route, int fd, bool assign)
{
    if (route < 0 || route >= KVM_MSI_ROUTES)
        return -EINVAL;
    struct kvm_irqfd irqfd = {
        .fd = (uint32_t)fd, .gsi = KVM_MSI_GSI_BASE + (uint32_t)route,
        .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
    };
    return ioctl(kvm_of(vm)->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

const struct accel_ops accel_kvm_ops = {
    .name = "kvm",
    .vm_init = kvm_vm_init,
    .vm_destroy = kvm_vm_destroy,
    .irqchip_init = kvm_irqchip_init,
    .map_ram = kvm_map_ram,
    .vcpu_init = kvm_vcpu_init,
    .vcpu_destroy = kvm_vcpu_destroy,
    .vcpu_run = kvm_vcpu_run,
    .vcpu_kick = kvm_vcpu_kick,
    .get_regs = kvm_get_regs,
    .set_regs = kvm_set_regs,
    .get_sregs = kvm_get_sregs,
    .set_sregs = kvm_set_sregs,
    .set_irq = kvm_set_irq,
    .get_dirty_log = kvm_get_dirty_log,
    .ioeventfd = kvm_ioeventfd,
    .signal_msi = kvm_signal_msi,
    .msi_route_add = kvm_msi_route_add,
    .msi_route_update = kvm_msi_route_update,
    .msi_route_remove = kvm_msi_route_remove,
    .irqfd = kvm_irqfd,
};
