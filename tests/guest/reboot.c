/* reboot: the first boot stores a marker in CMOS NVRAM (byte 0x7e, which survives a reset) and
 * resets the machine (FADT reset register, else the i8042 pulse); the second boot finds the
 * marker, clears it and passes. The harness checks both boots printed. */
#include "runtime.h"

#include "acpi.h"
#include "cmos.h"
#include "timer.h"

const char guest_name[] = "reboot";

#define NVRAM_INDEX 0x7e
#define MARKER      0xa5

int guest_main(void)
{
    uint8_t v = cmos_read(NVRAM_INDEX);

    if (v == MARKER) {
        printf("reboot: second boot: NVRAM[0x%x] = 0x%02x\n", NVRAM_INDEX, v);
        cmos_write(NVRAM_INDEX, 0);
        ASSERT_EQ(cmos_read(NVRAM_INDEX), 0);
        return 0;
    }
    printf("reboot: first boot: NVRAM[0x%x] = 0x%02x, setting 0x%02x and resetting\n",
           NVRAM_INDEX, v, MARKER);
    cmos_write(NVRAM_INDEX, MARKER);
    ASSERT_EQ(cmos_read(NVRAM_INDEX), MARKER);
    int have_acpi = acpi_init() == 0 && timer_init() == 0;
    if (have_acpi && acpi_reset() == 0) {
        printf("reboot: FADT reset register written\n");
        timer_delay_us(1000000);
        printf("reboot: still running; trying the i8042\n");
    }
    outb(0xfe, 0x64);
    if (have_acpi)
        timer_delay_us(1000000);
    test_fail("no reset happened");
}
