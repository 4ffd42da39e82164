/* The machine: guest RAM, the device buses, the vCPUs and the accelerator that runs them, and
 * the run's outcome. One process runs one VM. */
#ifndef VIREO_VMM_VM_H
#define VIREO_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "accel/accel.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpuid.h"
#include "devices/bus.h"
#include "devices/platform.h"
#include "vmm/memory.h"

struct vcpu;
struct machine_devices;
struct machine_io_config;

#define VM_MAX_CPUS 255

struct vm_config {
    const char *name;
    const char *kernel_path;
    const char *initrd_path;    /* NULL: none */
    const char *cmdline;        /* "" if none */
    unsigned ncpus;
    uint64_t mem_size;
    bool mem_shared;            /* RAM in a memfd instead of anonymous memory (memory.h) */
    enum cpu_model cpu_model;
    const struct accel_ops *accel;
    bool debug_exit;            /* the isa-debug-exit style port at 0xf4 */
    int console_out_fd;         /* serial output goes here; -1 discards it */
    /* The virtio devices (disks, NICs, rng, virtio console); NULL: only virtio-rng. Must stay
     * valid, strings included, until the machine is destroyed. */
    const struct machine_io_config *io;
};

/* Why a run ended. */
enum vm_outcome {
    VM_OUTCOME_NONE,
    VM_OUTCOME_POWEROFF,    /* guest powered off: exit 0 */
    VM_OUTCOME_RESET,       /* guest asked to reboot */
    VM_OUTCOME_EXIT_STATUS, /* debug-exit port: exit with vm->exit_status */
    VM_OUTCOME_FAILED,      /* triple fault, emulation failure: exit 1 */
    VM_OUTCOME_QUIT,        /* the user quit (Ctrl-A x, signal): exit 0 */
};

struct vm {
    struct vm_config cfg;
    const struct accel_ops *accel;
    void *accel_data;
    struct guest_mem mem;
    struct bus pio, mmio;
    struct machine_devices *devices;
    struct vcpu *vcpus;
    unsigned ncpus;
    struct power_ctl power;
    struct boot_input boot;     /* kept for reboots: the caller owns the buffers */

    pthread_mutex_t lock;
    enum vm_outcome outcome;    /* first reported outcome wins */
    int exit_status;
    int event_fd;               /* signalled when outcome is set, for the main loop */
};

/* Build the machine (RAM, accelerator VM, devices, ACPI, vCPUs) and load the kernel.
 * Returns 0 or -errno (-EINVAL: the user's input is at fault; others: the host refused);
 * `why` gets a one-line explanation on failure. vm_destroy() cleans up either way. */
int vm_create(struct vm *vm, const struct vm_config *cfg, const struct boot_input *boot, char *why,
              unsigned why_len);
/* Start the vCPU threads. */
int vm_start(struct vm *vm);
/* Stop and join every vCPU thread (the machine stays built). */
void vm_stop(struct vm *vm);
/* Park every vCPU (state kept) / let them run again. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Guest reset: stop, rebuild the accelerator's VM and vCPUs, reset devices, reload the kernel
 * and start again. RAM contents and CMOS NVRAM survive, as on a warm reset. */
int vm_reboot(struct vm *vm, char *why, unsigned why_len);
/* Tear it all down. */
void vm_destroy(struct vm *vm);
/* Record an outcome (first one wins) and wake the main loop. Any thread. */
void vm_set_outcome(struct vm *vm, enum vm_outcome outcome, int status);
/* Raise or lower an interrupt line. Any thread. */
void vm_set_irq(struct vm *vm, unsigned gsi, int level);

#endif
