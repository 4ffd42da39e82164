#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/vcpu.h"

void vm_set_outcome(struct vm *vm, enum vm_outcome outcome, int status)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->outcome == VM_OUTCOME_NONE) {
        vm->exit_status = status;
        __atomic_store_n(&vm->outcome, outcome, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&vm->lock);
    uint64_t one = 1;
    if (write(vm->event_fd, &one, sizeof(one)) < 0)
        log_warn("cannot wake the main loop: %s", strerror(errno));
}

void vm_set_irq(struct vm *vm, unsigned gsi, int level)
{
    int rc = vm->accel->set_irq(vm, gsi, level);
    if (rc < 0)
        log_warn("interrupt line %u: %s", gsi, strerror(-rc));
}

static void vm_power_request(void *opaque, enum power_event event, int status)
{
    struct vm *vm = opaque;
    switch (event) {
    case POWER_OFF:
        vm_set_outcome(vm, VM_OUTCOME_POWEROFF, 0);
        break;
    case POWER_RESET:
        vm_set_outcome(vm, VM_OUTCOME_RESET, 0);
        break;
    case POWER_EXIT_STATUS:
        vm_set_outcome(vm, VM_OUTCOME_EXIT_STATUS, status);
        break;
    case POWER_PANIC:
        log_err("the guest kernel panicked (pvpanic)");
        vm_set_outcome(vm, VM_OUTCOME_FAILED, 1);
        break;
    }
}

/* The parts rebuilt on every (re)boot: the accelerator's VM, its vCPUs and the loaded kernel.
 * RAM, devices and their battery-backed state (CMOS NVRAM) live across a reset. */
static int vm_boot(struct vm *vm, const struct boot_input *boot, char *why, unsigned why_len)
{
    int rc = vm->accel->vm_init(vm, why, why_len);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        const struct mem_region *r = &vm->mem.regions[i];
        rc = vm->accel->map_ram(vm, i, r->gpa, r->size, r->host);
        if (rc < 0) {
            snprintf(why, why_len, "%s: cannot map guest RAM: %s", vm->accel->name, strerror(-rc));
            return rc;
        }
    }
    if ((rc = vm->accel->irqchip_init(vm, why, why_len)) < 0)
        return rc;
    for (unsigned i = 0; i < vm->ncpus; i++) {
        vcpu_init_state(&vm->vcpus[i], vm, i);
        rc = vm->accel->vcpu_init(&vm->vcpus[i]);
        if (rc < 0) {
            snprintf(why, why_len, "%s: cannot create vCPU %u: %s", vm->accel->name, i,
                     strerror(-rc));
            return rc;
        }
    }
    struct boot_entry entry;
    char load_why[160];
    rc = boot_load(&vm->mem, boot, &entry, load_why, sizeof(load_why));
    if (rc < 0) {
        snprintf(why, why_len, "kernel '%s' %s", vm->cfg.kernel_path, load_why);
        return -EINVAL; /* the user's input, not the host, is at fault */
    }
    struct vcpu *bsp = &vm->vcpus[0];
    if ((rc = vm->accel->set_sregs(bsp, &entry.sregs)) < 0 ||
        (rc = vm->accel->set_regs(bsp, &entry.regs)) < 0) {
        snprintf(why, why_len, "%s: cannot set the boot CPU state: %s", vm->accel->name,
                 strerror(-rc));
        return rc;
    }
    return 0;
}

static void vm_unboot(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++)
        if (vm->vcpus[i].vm)
            vm->accel->vcpu_destroy(&vm->vcpus[i]);
    vm->accel->vm_destroy(vm);
}

int vm_create(struct vm *vm, const struct vm_config *cfg, const struct boot_input *boot, char *why,
              unsigned why_len)
{
    memset(vm, 0, sizeof(*vm));
    vm->cfg = *cfg;
    vm->accel = cfg->accel;
    vm->ncpus = cfg->ncpus;
    vm->event_fd = -1;
    vm->mem.fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    vm->power = (struct power_ctl){vm_power_request, vm};
    vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->event_fd < 0) {
        snprintf(why, why_len, "eventfd: %s", strerror(errno));
        return -errno;
    }
    int rc = cfg->mem_shared ? guest_mem_create_shared(&vm->mem, cfg->mem_size, cfg->name)
                             : guest_mem_create(&vm->mem, cfg->mem_size, cfg->name);
    if (rc < 0) {
        snprintf(why, why_len, "cannot allocate %llu MiB of guest RAM: %s",
                 (unsigned long long)(cfg->mem_size >> 20), strerror(-rc));
        return rc;
    }
    vm->vcpus = calloc(cfg->ncpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    rc = machine_create(vm, why, why_len);
    if (rc < 0)
        return rc;
    vm->boot = *boot;
    return vm_boot(vm, boot, why, why_len);
}

int vm_start(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        int rc = vcpu_start(&vm->vcpus[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void vm_stop(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_set_state(&vm->vcpus[i], VCPU_STOPPED);
}

void vm_pause(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_set_state(&vm->vcpus[i], VCPU_PAUSED);
}

void vm_resume(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_set_state(&vm->vcpus[i], VCPU_RUNNING);
}

int vm_reboot(struct vm *vm, char *why, unsigned why_len)
{
    vm_stop(vm);
    /* The I/O thread may signal interrupts into the accelerator's VM: park it while the VM is
     * rebuilt. */
    machine_io_pause(vm);
    vm_unboot(vm);
    machine_reset(vm);
    pthread_mutex_lock(&vm->lock);
    vm->outcome = VM_OUTCOME_NONE;
    vm->exit_status = 0;
    pthread_mutex_unlock(&vm->lock);
    int rc = vm_boot(vm, &vm->boot, why, why_len);
    machine_io_resume(vm);
    return rc < 0 ? rc : vm_start(vm);
}

void vm_destroy(struct vm *vm)
{
    if (vm->vcpus) {
        vm_stop(vm);
        if (vm->accel_data)
            vm_unboot(vm);
        free(vm->vcpus);
        vm->vcpus = NULL;
    }
    machine_destroy(vm);
    guest_mem_destroy(&vm->mem);
    if (vm->event_fd >= 0)
        close(vm->event_fd);
    vm->event_fd = -1;
}
