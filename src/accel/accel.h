/* The accelerator interface: what the machine asks of a CPU backend. KVM (hardware VT-x/AMD-V)
 * and the software CPU implement it; boot code, devices, migration and the control plane never
 * ask which one runs. vCPU state crosses it in the structures below, so a snapshot taken on one
 * accelerator restores on the other. */
#ifndef VIREO_ACCEL_ACCEL_H
#define VIREO_ACCEL_ACCEL_H

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vcpu;

struct vcpu_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};

struct vcpu_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct vcpu_dtable {
    uint64_t base;
    uint16_t limit;
};

struct vcpu_sregs {
    struct vcpu_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct vcpu_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

enum vcpu_exit_reason {
    VCPU_EXIT_IO,          /* port I/O: handled by the device bus, then run again */
    VCPU_EXIT_MMIO,        /* MMIO outside RAM: likewise */
    VCPU_EXIT_HLT,         /* halted with interrupts off, or no in-kernel irqchip to wake it */
    VCPU_EXIT_SHUTDOWN,    /* triple fault */
    VCPU_EXIT_INTR,        /* kicked by another thread (pause, stop) */
    VCPU_EXIT_FAILED,      /* emulation failure, internal or entry error: see exit.error */
};

struct vcpu_exit {
    enum vcpu_exit_reason reason;
    union {
        struct {
            uint16_t port;
            uint8_t size;     /* 1, 2 or 4 */
            bool write;
            uint32_t count;   /* > 1 for rep ins/outs: count items of size bytes at data */
            uint8_t *data;
        } io;
        struct {
            uint64_t addr;
            uint8_t size;     /* 1..8 */
            bool write;
            uint8_t *data;
        } mmio;
        struct {
            char desc[160];   /* one line: what the backend reported */
        } error;
    };
};

struct accel_ops {
    const char *name;
    /* Create the backend's VM: interrupt controllers, timers, GSI routing. On failure `why`
     * says in one line what the host refused. */
    int (*vm_init)(struct vm *vm, char *why, unsigned why_len);
    void (*vm_destroy)(struct vm *vm);
    /* Make [gpa, gpa+size) guest RAM backed by host memory at host. */
    int (*map_ram)(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host);
    /* Create vCPU vcpu->index with its CPUID model and reset state (APs wait for INIT/SIPI). */
    int (*vcpu_init)(struct vcpu *vcpu);
    void (*vcpu_destroy)(struct vcpu *vcpu);
    /* Run until the next exit the VMM must handle. Returns 0 with *exit filled, or -errno. */
    int (*vcpu_run)(struct vcpu *vcpu, struct vcpu_exit *exit);
    /* Make a concurrent or the next vcpu_run return VCPU_EXIT_INTR soon; any thread may call. */
    void (*vcpu_kick)(struct vcpu *vcpu);
    int (*get_regs)(struct vcpu *vcpu, struct vcpu_regs *regs);
    int (*set_regs)(struct vcpu *vcpu, const struct vcpu_regs *regs);
    int (*get_sregs)(struct vcpu *vcpu, struct vcpu_sregs *sregs);
    int (*set_sregs)(struct vcpu *vcpu, const struct vcpu_sregs *sregs);
    /* Drive interrupt line gsi (IOAPIC pin; ISA IRQs also reach the PIC) to level. */
    int (*set_irq)(struct vm *vm, unsigned gsi, int level);
    /* Copy and clear the dirty bitmap (one bit per 4 KiB page) of a RAM slot. */
    int (*get_dirty_log)(struct vm *vm, unsigned slot, uint64_t *bitmap);
};

extern const struct accel_ops accel_kvm_ops;

/* Where the KVM device node is; VIREO_KVM_DEVICE overrides "/dev/kvm" (used by tests). */
const char *accel_kvm_device_path(void);
/* True when the host CPU has VT-x or AMD-V enabled for KVM (kvm_intel or kvm_amd loaded). */
bool accel_host_has_hw_virt(void);

#endif
