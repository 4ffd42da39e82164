/* The MC146818-style CMOS: RTC registers and battery-backed NVRAM bytes. */
#ifndef GUEST_CMOS_H
#define GUEST_CMOS_H

#include <stdint.h>

struct rtc_time {
    unsigned year, month, day, hour, minute, second;
};

uint8_t cmos_read(uint8_t index);
void cmos_write(uint8_t index, uint8_t val);
/* Reads the date and time consistently (outside an update, twice equal), decoding BCD and 12-hour
 * mode as register B says. century_index is the FADT CENTURY register (0: assume 20xx). Returns
 * 0, or -1 if the RTC never held still or read garbage. */
int rtc_read(struct rtc_time *t, unsigned century_index);

#endif
