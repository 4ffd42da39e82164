/* rtc: reads the CMOS clock (BCD or binary, 12- or 24-hour, as register B says; century from
 * the FADT's CENTURY index when it has one) and prints it as ISO 8601 UTC. The harness compares
 * it with the host's clock. */
#include "runtime.h"

#include "acpi.h"
#include "cmos.h"

const char guest_name[] = "rtc";

int guest_main(void)
{
    struct rtc_time t;
    unsigned century = 0;

    if (acpi_init() == 0)
        century = acpi_century_index();
    uint8_t rega = cmos_read(0x0a), regb = cmos_read(0x0b);
    printf("rtc: register A 0x%02x B 0x%02x (%s, %s), century index 0x%02x\n", rega, regb,
           regb & 4 ? "binary" : "BCD", regb & 2 ? "24h" : "12h", century);
    ASSERT(rtc_read(&t, century) == 0);
    ASSERT(t.year >= 2020 && t.year < 2100);
    printf("rtc: time %04u-%02u-%02uT%02u:%02u:%02uZ\n", t.year, t.month, t.day, t.hour,
           t.minute, t.second);
    return 0;
}
