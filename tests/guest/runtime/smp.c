/* AP start-up, following the universal start-up algorithm of the Intel SDM (vol. 3, 9.4.4):
 * INIT, 10 ms, SIPI, 200 us, second SIPI only if the AP has not arrived yet. */
#include "smp.h"

#include "acpi.h"
#include "apic.h"
#include "console.h"
#include "defs.h"
#include "pvh.h"
#include "string.h"
#include "timer.h"
#include "trap.h"

extern const char ap_trampoline_start[], ap_trampoline_end[];
extern uint64_t ap_stack_top;

static uint8_t ap_stacks[MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static smp_ap_fn ap_fn;
static volatile unsigned ap_cpu;      /* index the arriving AP takes */
static volatile unsigned ap_arrived;  /* set by the AP once it is running C */
static volatile unsigned ap_done;     /* set by the AP after fn returned */

void ap_runtime_entry(void)
{
    unsigned cpu = ap_cpu;

    trap_load();
    __atomic_store_n(&ap_arrived, 1, __ATOMIC_RELEASE);
    if (ap_fn)
        ap_fn(cpu, lapic_id());
    __atomic_store_n(&ap_done, 1, __ATOMIC_RELEASE);
}

/* The trampoline page must be RAM per the memory map (when we have one). */
static int trampoline_in_ram(void)
{
    uint64_t lo = TRAMPOLINE_BASE, hi = TRAMPOLINE_BASE + 4096;

    if (!pvh_boot.memmap_entries)
        return 1;
    for (unsigned i = 0; i < pvh_boot.memmap_entries; i++) {
        const struct hvm_memmap_table_entry *e = &pvh_boot.memmap[i];
        if (e->type == E820_RAM && e->addr <= lo && e->addr + e->size >= hi)
            return 1;
    }
    return 0;
}

static int wait_flag(volatile unsigned *flag, uint64_t timeout_us)
{
    uint64_t end = timer_now_us() + timeout_us;

    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        if (timer_now_us() > end)
            return -1;
    }
    return 0;
}

int smp_start_aps(smp_ap_fn fn, uint64_t timeout_us)
{
    struct acpi_madt_info m;

    if (acpi_init() || acpi_madt(&m) || lapic_init() || timer_init())
        return -1;
    if (!trampoline_in_ram()) {
        printf("smp: trampoline page 0x%x is not RAM in the memory map\n", TRAMPOLINE_BASE);
        return -1;
    }
    size_t tlen = (size_t)(ap_trampoline_end - ap_trampoline_start);
    memcpy((void *)(uintptr_t)TRAMPOLINE_BASE, ap_trampoline_start, tlen);
    ap_fn = fn;
    lapic_enable();

    uint32_t self = lapic_id();
    int started = 0;
    unsigned n = m.ncpus < ACPI_MAX_CPUS ? m.ncpus : ACPI_MAX_CPUS;
    for (unsigned i = 0; i < n; i++) {
        uint32_t id = m.apic_ids[i];
        if (id == self)
            continue;
        if (id > 254) {
            printf("smp: APIC ID %u needs x2APIC; not started\n", id);
            continue;
        }
        if ((unsigned)started + 1 >= MAX_CPUS) {
            printf("smp: more than %d CPUs; APIC ID %u not started\n", MAX_CPUS, id);
            continue;
        }
        ap_cpu = (unsigned)started + 1;
        ap_stack_top = (uint64_t)(uintptr_t)(ap_stacks[started + 1] + AP_STACK_SIZE);
        __atomic_store_n(&ap_arrived, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&ap_done, 0, __ATOMIC_RELEASE);

        if (lapic_send_ipi(id, ICR_INIT | ICR_ASSERT))
            printf("smp: INIT to APIC ID %u stayed pending\n", id);
        timer_delay_us(10000);
        for (int sipi = 0; sipi < 2 && !ap_arrived; sipi++) {
            if (lapic_send_ipi(id, ICR_STARTUP | (TRAMPOLINE_BASE >> 12)))
                printf("smp: SIPI to APIC ID %u stayed pending\n", id);
            timer_delay_us(200);
        }
        if (wait_flag(&ap_arrived, timeout_us) || wait_flag(&ap_done, timeout_us)) {
            printf("smp: APIC ID %u did not report in\n", id);
            continue;
        }
        started++;
    }
    return started;
}
