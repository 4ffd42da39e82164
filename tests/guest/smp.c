/* smp: starts every other CPU the MADT lists with INIT/SIPI/SIPI; each AP climbs from real mode
 * to long mode through the runtime's trampoline and reports in with its APIC ID. All of them
 * must arrive, match the MADT and, with cpus=N on the command line, number N. */
#include "runtime.h"

#include "acpi.h"
#include "apic.h"
#include "defs.h"
#include "smp.h"

const char guest_name[] = "smp";

static volatile unsigned reported;
static volatile uint32_t reported_ids[MAX_CPUS];

static void ap_main(unsigned cpu, uint32_t apic_id)
{
    uint64_t efer = rdmsr(MSR_EFER);

    printf("smp: cpu %u (APIC ID %u) up, EFER 0x%lx\n", cpu, apic_id, efer);
    if (!(efer & EFER_LMA))
        test_fail("AP not in long mode");
    unsigned slot = __atomic_fetch_add(&reported, 1, __ATOMIC_ACQ_REL);
    if (slot < MAX_CPUS)
        reported_ids[slot] = apic_id;
}

int guest_main(void)
{
    struct acpi_madt_info m;

    ASSERT(acpi_init() == 0);
    ASSERT(acpi_madt(&m) == 0);
    ASSERT(lapic_init() == 0);
    uint32_t self = lapic_id();
    printf("smp: MADT lists %u enabled CPUs; BSP APIC ID %u\n", m.ncpus, self);
    int bsp_listed = 0;
    for (unsigned i = 0; i < m.ncpus && i < ACPI_MAX_CPUS; i++)
        bsp_listed |= m.apic_ids[i] == self;
    ASSERT(bsp_listed);

    int started = smp_start_aps(ap_main, 5000000);
    ASSERT(started >= 0);
    printf("smp: %d APs reported in, %u CPUs in all\n", started, reported + 1);
    ASSERT_EQ(reported, (unsigned)started);
    ASSERT_EQ(reported + 1, m.ncpus);

    /* Each AP is a distinct MADT CPU other than the BSP. */
    for (unsigned i = 0; i < reported; i++) {
        int listed = 0;
        ASSERT(reported_ids[i] != self);
        for (unsigned j = 0; j < m.ncpus && j < ACPI_MAX_CPUS; j++)
            listed |= m.apic_ids[j] == reported_ids[i];
        ASSERT(listed);
        for (unsigned j = 0; j < i; j++)
            ASSERT(reported_ids[i] != reported_ids[j]);
    }
    uint64_t cpus;
    if (cmdline_get_size("cpus", &cpus) == 0)
        ASSERT_EQ(reported + 1, cpus);
    return 0;
}
