/* What a platform device may ask of the machine: raise an interrupt line, or end/restart the
 * run. Kept as small callback structs so devices stay testable without a VM or an accelerator. */
#ifndef VIREO_DEVICES_PLATFORM_H
#define VIREO_DEVICES_PLATFORM_H

/* An interrupt line wired to a GSI of the machine's interrupt controllers. */
struct irq_line {
    void (*set_level)(void *opaque, unsigned gsi, int level);
    void *opaque;
    unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *line, int level)
{
    if (line->set_level)
        line->set_level(line->opaque, line->gsi, level);
}

enum power_event {
    POWER_OFF,        /* ACPI S5: the run ends with status 0 */
    POWER_RESET,      /* i8042 pulse or ACPI reset register: the guest restarts */
    POWER_EXIT_STATUS, /* debug-exit port: the run ends with the given status */
    POWER_PANIC        /* pvpanic: the guest kernel panicked; the run ends as a failure */
};

/* The machine's power control, as devices see it. Safe to call from any vCPU thread. */
struct power_ctl {
    void (*request)(void *opaque, enum power_event event, int status);
    void *opaque;
};

static inline void power_request(const struct power_ctl *ctl, enum power_event event, int status)
{
    if (ctl->request)
        ctl->request(ctl->opaque, event, status);
}

#endif
