/* CMOS access through ports 0x70/0x71 (bit 7 of the index, NMI masking, left clear). */
#include "cmos.h"

#include "io.h"

#define RTC_SEC   0x00
#define RTC_MIN   0x02
#define RTC_HOUR  0x04
#define RTC_DAY   0x07
#define RTC_MONTH 0x08
#define RTC_YEAR  0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_A_UIP 0x80
#define RTC_B_24H 0x02
#define RTC_B_BIN 0x04

uint8_t cmos_read(uint8_t index)
{
    outb(index & 0x7f, 0x70);
    return inb(0x71);
}

void cmos_write(uint8_t index, uint8_t val)
{
    outb(index & 0x7f, 0x70);
    outb(val, 0x71);
}

struct raw_time {
    uint8_t sec, min, hour, day, month, year, century;
};

static int raw_read(struct raw_time *r, unsigned century_index)
{
    for (unsigned i = 0; i < 100000; i++) {
        if (!(cmos_read(RTC_REG_A) & RTC_A_UIP))
            break;
        if (i == 99999)
            return -1;
    }
    r->sec = cmos_read(RTC_SEC);
    r->min = cmos_read(RTC_MIN);
    r->hour = cmos_read(RTC_HOUR);
    r->day = cmos_read(RTC_DAY);
    r->month = cmos_read(RTC_MONTH);
    r->year = cmos_read(RTC_YEAR);
    r->century = century_index ? cmos_read((uint8_t)century_index) : 0;
    return 0;
}

static int same_time(const struct raw_time *a, const struct raw_time *b)
{
    return a->sec == b->sec && a->min == b->min && a->hour == b->hour && a->day == b->day &&
           a->month == b->month && a->year == b->year && a->century == b->century;
}

static int bcd_ok(uint8_t v)
{
    return (v & 0x0f) <= 9 && (v >> 4) <= 9;
}

static unsigned from_bcd(uint8_t v)
{
    return (v >> 4) * 10u + (v & 0x0f);
}

int rtc_read(struct rtc_time *t, unsigned century_index)
{
    struct raw_time a, b;
    int stable = 0;

    if (raw_read(&a, century_index))
        return -1;
    for (int tries = 0; tries < 10; tries++) {
        if (raw_read(&b, century_index))
            return -1;
        if (same_time(&a, &b)) {
            stable = 1;
            break;
        }
        a = b;
    }
    if (!stable)
        return -1;
    uint8_t regb = cmos_read(RTC_REG_B);
    int pm = !(regb & RTC_B_24H) && (a.hour & 0x80);
    a.hour &= 0x7f;
    if (!(regb & RTC_B_BIN)) {
        if (!bcd_ok(a.sec) || !bcd_ok(a.min) || !bcd_ok(a.hour) || !bcd_ok(a.day) ||
            !bcd_ok(a.month) || !bcd_ok(a.year) || (century_index && !bcd_ok(a.century)))
            return -1;
        a.sec = (uint8_t)from_bcd(a.sec);
        a.min = (uint8_t)from_bcd(a.min);
        a.hour = (uint8_t)from_bcd(a.hour);
        a.day = (uint8_t)from_bcd(a.day);
        a.month = (uint8_t)from_bcd(a.month);
        a.year = (uint8_t)from_bcd(a.year);
        a.century = (uint8_t)from_bcd(a.century);
    }
    if (!(regb & RTC_B_24H)) {
        /* 12-hour clock: 12 AM is 0, 12 PM is 12. */
        a.hour = (uint8_t)(a.hour % 12 + (pm ? 12 : 0));
    }
    unsigned century = century_index && a.century ? a.century : 20;
    t->year = century * 100 + a.year;
    t->month = a.month;
    t->day = a.day;
    t->hour = a.hour;
    t->minute = a.min;
    t->second = a.sec;
    if (t->month < 1 || t->month > 12 || t->day < 1 || t->day > 31 || t->hour > 23 ||
        t->minute > 59 || t->second > 59)
        return -1;
    return 0;
}
