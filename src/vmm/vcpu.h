/* A vCPU: one host thread running the accelerator's run loop, dispatching port and MMIO exits to
 * the device buses, with a running/paused/stopped state machine that pause, snapshot and
 * migration drive from other threads. */
#ifndef VIREO_VMM_VCPU_H
#define VIREO_VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>

#include "accel/accel.h"

struct vm;

enum vcpu_run_state { VCPU_RUNNING, VCPU_PAUSED, VCPU_STOPPED };

struct vcpu {
    struct vm *vm;
    unsigned index;          /* also its APIC ID */
    void *accel_data;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum vcpu_run_state state;     /* what the thread is doing now */
    enum vcpu_run_state requested; /* what others asked for */
};

/* Initialise the bookkeeping (no thread yet). */
void vcpu_init_state(struct vcpu *vcpu, struct vm *vm, unsigned index);
/* Start the thread in the running state. */
int vcpu_start(struct vcpu *vcpu);
/* Ask the vCPU to enter `state` and wait until it has (STOPPED also joins the thread). */
void vcpu_set_state(struct vcpu *vcpu, enum vcpu_run_state state);
/* Print the registers to stderr in one short block, for failure reports. */
void vcpu_dump_regs(struct vcpu *vcpu);

#endif
