/* poweroff: enters ACPI S5 the way an OS does: SLP_TYPa from the DSDT's \_S5 package, written
 * with SLP_EN to the FADT's PM1a_CNT. The run must end with status 0; if the guest is still
 * running afterwards, it fails. */
#include "runtime.h"

#include "acpi.h"
#include "timer.h"

const char guest_name[] = "poweroff";

int guest_main(void)
{
    ASSERT(acpi_init() == 0);
    uint16_t port = acpi_pm1a_cnt_port();
    int typ = acpi_s5_slp_typ();
    printf("poweroff: PM1a_CNT at port 0x%x, S5 SLP_TYP %d\n", port, typ);
    ASSERT(port != 0);
    ASSERT(typ >= 0 && typ <= 7);
    ASSERT(timer_init() == 0);
    uint16_t v = (uint16_t)((typ << 10) | (1 << 13));
    printf("poweroff: writing 0x%04x\n", v);
    outw((uint16_t)(inw(port) & ~0x3c00u) | v, port);
    timer_delay_us(2000000);
    test_fail("still running 2 s after the S5 request");
}
