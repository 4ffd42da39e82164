#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "vmm/vm.h"

void vcpu_init_state(struct vcpu *vcpu, struct vm *vm, unsigned index)
{
    memset(vcpu, 0, sizeof(*vcpu));
    vcpu->vm = vm;
    vcpu->index = index;
    pthread_mutex_init(&vcpu->lock, NULL);
    pthread_cond_init(&vcpu->cond, NULL);
    vcpu->state = vcpu->requested = VCPU_STOPPED;
}

void vcpu_dump_regs(struct vcpu *vcpu)
{
    struct vcpu_regs r;
    struct vcpu_sregs s;
    const struct accel_ops *a = vcpu->vm->accel;
    if (a->get_regs(vcpu, &r) < 0 || a->get_sregs(vcpu, &s) < 0) {
        fprintf(stderr, "vcpu%u: registers unavailable\n", vcpu->index);
        return;
    }
    fprintf(stderr,
            "vcpu%u: RIP=%016llx RFLAGS=%08llx CS=%04x SS=%04x\n"
            "  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
            "  RSI=%016llx RDI=%016llx RSP=%016llx RBP=%016llx\n"
            "  R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
            "  R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
            "  CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%llx\n"
            "  GDT=%016llx/%04x IDT=%016llx/%04x\n",
            vcpu->index, (unsigned long long)r.rip, (unsigned long long)r.rflags, s.cs.selector,
            s.ss.selector, (unsigned long long)r.rax, (unsigned long long)r.rbx,
            (unsigned long long)r.rcx, (unsigned long long)r.rdx, (unsigned long long)r.rsi,
            (unsigned long long)r.rdi, (unsigned long long)r.rsp, (unsigned long long)r.rbp,
            (unsigned long long)r.r8, (unsigned long long)r.r9, (unsigned long long)r.r10,
            (unsigned long long)r.r11, (unsigned long long)r.r12, (unsigned long long)r.r13,
            (unsigned long long)r.r14, (unsigned long long)r.r15, (unsigned long long)s.cr0,
            (unsigned long long)s.cr2, (unsigned long long)s.cr3, (unsigned long long)s.cr4,
            (unsigned long long)s.efer, (unsigned long long)s.gdt.base, s.gdt.limit,
            (unsigned long long)s.idt.base, s.idt.limit);
}

/* Port I/O: rep ins/outs arrive as `count` items of `size` bytes. */
static void vcpu_handle_io(struct vcpu *vcpu, const struct vcpu_exit *e)
{
    struct vm *vm = vcpu->vm;
    for (uint32_t i = 0; i < e->io.count; i++) {
        uint8_t *p = e->io.data + (size_t)i * e->io.size;
        uint64_t v = 0;
        if (e->io.write) {
            memcpy(&v, p, e->io.size);
            if (!bus_write(&vm->pio, e->io.port, e->io.size, v))
                log_debug("vcpu%u: write to unhandled port 0x%x", vcpu->index, e->io.port);
        } else {
            if (!bus_read(&vm->pio, e->io.port, e->io.size, &v))
                log_debug("vcpu%u: read from unhandled port 0x%x", vcpu->index, e->io.port);
            memcpy(p, &v, e->io.size);
        }
    }
}

static void vcpu_handle_mmio(struct vcpu *vcpu, const struct vcpu_exit *e)
{
    struct vm *vm = vcpu->vm;
    uint64_t v = 0;
    unsigned size = e->mmio.size > 8 ? 8 : e->mmio.size;
    if (e->mmio.write) {
        memcpy(&v, e->mmio.data, size);
        if (!bus_write(&vm->mmio, e->mmio.addr, size, v))
            log_debug("vcpu%u: write to unmapped 0x%llx", vcpu->index,
                      (unsigned long long)e->mmio.addr);
    } else {
        if (!bus_read(&vm->mmio, e->mmio.addr, size, &v))
            log_debug("vcpu%u: read from unmapped 0x%llx", vcpu->index,
                      (unsigned long long)e->mmio.addr);
        memcpy(e->mmio.data, &v, size);
    }
}

/* Park while paused; returns false once asked to stop. */
static bool vcpu_check_requests(struct vcpu *vcpu)
{
    pthread_mutex_lock(&vcpu->lock);
    while (vcpu->requested == VCPU_PAUSED) {
        if (vcpu->state != VCPU_PAUSED) {
            vcpu->state = VCPU_PAUSED;
            pthread_cond_broadcast(&vcpu->cond);
        }
        pthread_cond_wait(&vcpu->cond, &vcpu->lock);
    }
    bool run = vcpu->requested == VCPU_RUNNING;
    if (run && vcpu->state != VCPU_RUNNING) {
        vcpu->state = VCPU_RUNNING;
        pthread_cond_broadcast(&vcpu->cond);
    }
    pthread_mutex_unlock(&vcpu->lock);
    return run;
}

static void vcpu_fail(struct vcpu *vcpu, const char *what)
{
    log_err("vcpu%u: %s", vcpu->index, what);
    vcpu_dump_regs(vcpu);
    vm_set_outcome(vcpu->vm, VM_OUTCOME_FAILED, 1);
}

/* After the guest is dead or halted for good, wait quietly until told to stop. */
static void vcpu_idle_until_stopped(struct vcpu *vcpu)
{
    pthread_mutex_lock(&vcpu->lock);
    while (vcpu->requested != VCPU_STOPPED) {
        /* Still answer pause/resume so that whoever waits on the state machine is not stuck. */
        if (vcpu->state != vcpu->requested) {
            vcpu->state = vcpu->requested;
            pthread_cond_broadcast(&vcpu->cond);
        }
        pthread_cond_wait(&vcpu->cond, &vcpu->lock);
    }
    pthread_mutex_unlock(&vcpu->lock);
}

/* A device may have just ended the run (poweroff, reset, debug-exit): the guest must not execute
 * one more instruction after the write that did it, as on hardware. */
static void vcpu_check_outcome(struct vcpu *vcpu)
{
    if (__atomic_load_n(&vcpu->vm->outcome, __ATOMIC_ACQUIRE) != VM_OUTCOME_NONE)
        vcpu_idle_until_stopped(vcpu);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *vcpu = arg;
    const struct accel_ops *accel = vcpu->vm->accel;
    char name[16];
    snprintf(name, sizeof(name), "vcpu%u", vcpu->index);
    pthread_setname_np(pthread_self(), name);
    /* Kicks arrive as SIGUSR1; only vCPU threads take it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    struct vcpu_exit exit;
    while (vcpu_check_requests(vcpu)) {
        int rc = accel->vcpu_run(vcpu, &exit);
        if (rc < 0) {
            char what[96];
            snprintf(what, sizeof(what), "run failed: %s", strerror(-rc));
            vcpu_fail(vcpu, what);
            vcpu_idle_until_stopped(vcpu);
            break;
        }
        switch (exit.reason) {
        case VCPU_EXIT_IO:
            vcpu_handle_io(vcpu, &exit);
            vcpu_check_outcome(vcpu);
            break;
        case VCPU_EXIT_MMIO:
            vcpu_handle_mmio(vcpu, &exit);
            vcpu_check_outcome(vcpu);
            break;
        case VCPU_EXIT_INTR:
            break;
        case VCPU_EXIT_HLT:
            /* Halted with nothing that can wake it: the machine has stopped here. */
            log_info("vcpu%u halted for good", vcpu->index);
            vcpu_idle_until_stopped(vcpu);
            break;
        case VCPU_EXIT_SHUTDOWN:
            vcpu_fail(vcpu, "triple fault: the guest reset itself after an unhandled exception");
            vcpu_idle_until_stopped(vcpu);
            break;
        case VCPU_EXIT_FAILED:
            vcpu_fail(vcpu, exit.error.desc);
            vcpu_idle_until_stopped(vcpu);
            break;
        }
    }
    pthread_mutex_lock(&vcpu->lock);
    vcpu->state = VCPU_STOPPED;
    pthread_cond_broadcast(&vcpu->cond);
    pthread_mutex_unlock(&vcpu->lock);
    return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
    vcpu->requested = VCPU_RUNNING;
    /* Block SIGUSR1 while creating the thread so that only the vCPU thread ever unblocks it. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int rc = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    vcpu->thread_started = true;
    return 0;
}

void vcpu_set_state(struct vcpu *vcpu, enum vcpu_run_state state)
{
    if (!vcpu->thread_started)
        return;
    pthread_mutex_lock(&vcpu->lock);
    vcpu->requested = state;
    pthread_cond_broadcast(&vcpu->cond);
    pthread_mutex_unlock(&vcpu->lock);
    if (state != VCPU_RUNNING)
        vcpu->vm->accel->vcpu_kick(vcpu);
    /* One kick is enough: the request is recorded before it, and the thread checks the request
     * each time the accelerator returns, which the kick guarantees happens soon. */
    pthread_mutex_lock(&vcpu->lock);
    while (vcpu->state != state)
        pthread_cond_wait(&vcpu->cond, &vcpu->lock);
    pthread_mutex_unlock(&vcpu->lock);
    if (state == VCPU_STOPPED) {
        pthread_join(vcpu->thread, NULL);
        vcpu->thread_started = false;
    }
}
