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
    /* Create the interrupt controllers and timers (LAPICs, IOAPIC, PIC, PIT) and their
     * routing. Called once guest RAM is mapped and before any vCPU exists. */
    int (*irqchip_init)(struct vm *vm, char *why, unsigned why_len);
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

    /* Paravirtual I/O fast paths (virtio). Each is optional: NULL or -ENOSYS means the backend
     * has no such shortcut, and the device takes the slow path (the bus handler signals the
     * eventfd itself; the device calls signal_msi). A software CPU implements them in
     * userspace: its bus writes check the ioeventfd table, its APIC consumes MSI messages. */

    /* Signal eventfd fd, instead of exiting to the bus, when the guest writes len bytes (any
     * size when len is 0) at MMIO address addr. assign=false removes that registration. */
    int (*ioeventfd)(struct vm *vm, uint64_t addr, unsigned len, int fd, bool assign);
    /* Deliver one MSI (address/data as programmed in an MSI-X table entry) now. Any thread. */
    int (*signal_msi)(struct vm *vm, uint64_t addr, uint32_t data);
    /* Allocate an MSI route for (addr, data); returns a route handle >= 0 or -errno. */
    int (*msi_route_add)(struct vm *vm, uint64_t addr, uint32_t data);
    /* Re-point a route at a new message (the guest rewrote its MSI-X table entry). */
    int (*msi_route_update)(struct vm *vm, int route, uint64_t addr, uint32_t data);
    /* Free a route (and any irqfd still bound to it). */
    void (*msi_route_remove)(struct vm *vm, int route);
    /* Bind (assign) or unbind eventfd fd to a route: each write to fd then delivers the route's
     * MSI without a system call on the device's side beyond the eventfd write. */
    int (*irqfd)(struct vm *vm, int route, int fd, bool assign);
};

extern const struct accel_ops accel_kvm_ops;

/* Where the KVM device node is; VIREO_KVM_DEVICE overrides "/dev/kvm" (used by tests). */
const char *accel_kvm_device_path(void);
/* True when the host CPU has VT-x or AMD-V enabled for KVM (kvm_intel or kvm_amd loaded). */
bool accel_host_has_hw_virt(void);

#endif
