/* The software accelerator's machine state, shared by its parts: soft_accel.c (VM and vCPU life,
 * the run loop, the timer thread), soft_sysops.c (how the interpreter reaches memory, devices,
 * MSRs and CPUID) and soft_regs.c (register state in and out). Private to src/accel/soft. */
#ifndef VIREO_ACCEL_SOFT_SOFT_MACHINE_H
#define VIREO_ACCEL_SOFT_SOFT_MACHINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "accel/soft/cpu.h"
#include "accel/soft/mmu.h"
#include "arch/x86/cpuid.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

struct soft_irq;
struct lapic;

#define SOFT_MAX_SLOTS SOFT_PHYS_MAX_REGIONS
/* CPUID bits the software CPU adds to its model (soft_accel.c) and answers for (soft_sysops.c). */
#define CPUID_7_EDX_ARCH_CAPABILITIES (1u << 29)
#define CPUID_7_EBX_TSC_ADJUST (1u << 1)

struct soft_vm {
    struct soft_phys phys;
    uint64_t *dirty[SOFT_MAX_SLOTS]; /* one bit per 4 KiB page written */
    uint64_t *code[SOFT_MAX_SLOTS];  /* one bit per 4 KiB page that decoded blocks came from */
    struct soft_irq *irq;
    struct cpuid_table supported;
    uint32_t tsc_khz;
    struct vm *vm;
    pthread_t timer;
    bool timer_started;
    volatile bool timer_stop;
    uint32_t timer_seq;   /* futex word: bumped to wake the timer thread before its time */
    uint64_t timer_until; /* when the timer thread looks next (0 while it is looking) */
};

/* A timer of the VM may now expire at deadline_ns (clock of soft_now_ns(); 0 if unknown):
 * wakes the timer thread if it sleeps past that. Any thread. */
void soft_timer_poke(struct soft_vm *s, uint64_t deadline_ns);

struct soft_vcpu {
    struct soft_cpu cpu;
    struct vcpu *vcpu;
    struct soft_vm *svm;
    struct lapic *lapic;
    struct cpuid_table cpuid;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool halted;
    bool wait_sipi;      /* an AP before its start-up IPI */
    int sipi_vector;     /* -1 or the vector of a start-up IPI not yet acted on */
    bool init_pending;   /* INIT received: reset and wait for SIPI */
    bool vmm_kick;       /* vcpu_kick: return VCPU_EXIT_INTR */
    bool in_pending;     /* an IN waits for its data in iobuf */
    bool flush_req;      /* drop TLB and decoded blocks before running again (another vCPU
                            wrote code, or the dirty log was collected) */
    uint64_t last_cr8;
    int64_t lapic_tsc_offset;
    uint8_t iobuf[8];
};


static inline struct soft_vm *svm_of(struct vm *vm) { return vm->accel_data; }
static inline struct soft_vcpu *sv_of(struct vcpu *vcpu) { return vcpu->accel_data; }

static inline uint64_t soft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* soft_sysops.c: the callbacks of every system-mode vCPU. */
extern const struct soft_cpu_ops soft_sys_ops;
/* Every vCPU drops its TLB and decoded blocks before its next block (code changed under it,
 * or the dirty log was collected). */
void soft_request_flush_all(struct soft_vm *s);

/* soft_regs.c: accel_ops register state. */
int soft_get_regs(struct vcpu *vcpu, struct vcpu_regs *r);
int soft_set_regs(struct vcpu *vcpu, const struct vcpu_regs *r);
int soft_get_sregs(struct vcpu *vcpu, struct vcpu_sregs *r);
int soft_set_sregs(struct vcpu *vcpu, const struct vcpu_sregs *r);

#endif
