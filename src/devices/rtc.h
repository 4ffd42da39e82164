/* The PC's CMOS real-time clock (a Motorola MC146818 at PORT_CMOS_INDEX/PORT_CMOS_DATA) and its
 * 128 bytes of battery-backed NVRAM.
 *
 * The time registers are computed from the host's UTC clock at the moment they are read, plus an
 * offset the guest creates by setting the clock. Register B chooses BCD or binary (DM) and 12- or
 * 24-hour (24/12) presentation; the default is BCD and 24-hour, as PC firmware leaves it. The
 * century lives at index RTC_CENTURY (what the FADT's CENTURY field must name). Periodic, alarm
 * and update-ended interrupts are not generated (there is no IRQ 8 line): register C reads 0.
 *
 * The NVRAM survives guest resets because nothing resets it: the object lives as long as the
 * machine, like a battery. */
#ifndef VIREO_DEVICES_RTC_H
#define VIREO_DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "devices/bus.h"

#define RTC_NVRAM_SIZE 128

#define RTC_SECONDS      0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES      0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS        0x04
#define RTC_HOURS_ALARM  0x05
#define RTC_DAY_OF_WEEK  0x06 /* 1 = Sunday */
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH        0x08
#define RTC_YEAR         0x09 /* two digits; the hundreds are in RTC_CENTURY */
#define RTC_REG_A        0x0a
#define RTC_REG_B        0x0b
#define RTC_REG_C        0x0c
#define RTC_REG_D        0x0d
#define RTC_CENTURY      0x32

#define RTC_A_UIP       0x80 /* an update is in progress: time registers are about to change */
#define RTC_A_DV_NORMAL 0x20 /* divider bits 6..4 = 010: 32.768 kHz time base, running */
#define RTC_B_SET       0x80 /* updates stopped so the guest can write the time */
#define RTC_B_PIE       0x40
#define RTC_B_AIE       0x20
#define RTC_B_UIE       0x10
#define RTC_B_SQWE      0x08
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H       0x02
#define RTC_B_DSE       0x01
#define RTC_D_VRT       0x80 /* "valid RAM and time": the battery is good */

#define RTC_INDEX_NMI_DISABLE 0x80 /* bit 7 of the index port; ignored */

/* Where the RTC reads the host's UTC time. Tests inject their own. */
struct rtc_clock {
    void (*now)(void *opaque, struct timespec *ts); /* NULL: clock_gettime(CLOCK_REALTIME) */
    void *opaque;
};

/* The calendar as the RTC counts it, in plain numbers. */
struct rtc_time {
    int sec, min, hour; /* 0..59, 0..59, 0..23 */
    int mday, mon, year; /* 1..31, 1..12, full year (2026) */
    int wday;            /* 1..7, 1 = Sunday */
};

/* Device state; all but lock and clock is saved by a snapshot as is. */
struct rtc {
    pthread_mutex_t lock;
    struct rtc_clock clock;
    uint8_t index;
    uint8_t cmos[RTC_NVRAM_SIZE]; /* NVRAM, plus registers A, B and the alarms in place */
    int64_t offset;               /* guest time minus host time, in seconds */
    struct rtc_time frozen;       /* the time the guest is editing while register B has SET */
};

/* Allocate the RTC with empty NVRAM and the guest clock equal to the host's. clock may be NULL.
 * Returns NULL with errno set. */
struct rtc *rtc_create(const struct rtc_clock *clock);
/* Free it; it must no longer be reachable from a bus. */
void rtc_destroy(struct rtc *rtc);
/* Register the index and data ports (PORT_CMOS_INDEX, 2 ports). Returns 0 or -errno. */
int rtc_attach(struct rtc *rtc, struct bus *pio);

/* The port-I/O handlers (offset 0: index, 1: data; opaque: struct rtc). */
extern const struct bus_dev_ops rtc_ops;

#endif
