#include "devices/rtc.h"

#include <errno.h>
#include <stdlib.h>

#include "arch/x86/layout.h"

/* The MC146818 raises UIP this long (244 us) before the registers change each second. */
#define RTC_UIP_NS 244000L

static void rtc_host_now(const struct rtc *rtc, struct timespec *ts)
{
    if (rtc->clock.now)
        rtc->clock.now(rtc->clock.opaque, ts);
    else
        clock_gettime(CLOCK_REALTIME, ts);
}

static bool rtc_binary(const struct rtc *rtc)
{
    return rtc->cmos[RTC_REG_B] & RTC_B_DM_BINARY;
}

static bool rtc_set_mode(const struct rtc *rtc)
{
    return rtc->cmos[RTC_REG_B] & RTC_B_SET;
}

static uint8_t rtc_encode(const struct rtc *rtc, int v)
{
    if (v < 0)
        v = 0;
    if (rtc_binary(rtc))
        return (uint8_t)v;
    v %= 100;
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* Guest-written digits are untrusted: a BCD nibble above 9 just yields an out-of-range number,
 * which the calendar arithmetic below normalises like any other. */
static int rtc_decode(const struct rtc *rtc, uint8_t v)
{
    if (rtc_binary(rtc))
        return v;
    return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_encode_hour(const struct rtc *rtc, int hour)
{
    if (rtc->cmos[RTC_REG_B] & RTC_B_24H)
        return rtc_encode(rtc, hour);
    int h12 = hour % 12 == 0 ? 12 : hour % 12;
    return (uint8_t)(rtc_encode(rtc, h12) | (hour >= 12 ? 0x80 : 0));
}

static int rtc_decode_hour(const struct rtc *rtc, uint8_t v)
{
    if (rtc->cmos[RTC_REG_B] & RTC_B_24H)
        return rtc_decode(rtc, v);
    int h = rtc_decode(rtc, v & 0x7f) % 12; /* 12 AM is hour 0, 12 PM is hour 12 */
    return (v & 0x80) ? h + 12 : h;
}

static void rtc_time_from_epoch(int64_t t, struct rtc_time *out)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm)) {
        tt = 0;
        gmtime_r(&tt, &tm);
    }
    out->sec = tm.tm_sec;
    out->min = tm.tm_min;
    out->hour = tm.tm_hour;
    out->mday = tm.tm_mday;
    out->mon = tm.tm_mon + 1;
    out->year = tm.tm_year + 1900;
    out->wday = tm.tm_wday + 1;
}

static int64_t rtc_time_to_epoch(const struct rtc_time *t)
{
    /* Keep the year where every libc can convert it; timegm() normalises the other fields
     * (a 61st second or a 13th month roll over as the chip's counters would not, but sanely). */
    int year = t->year < 1900 ? 1900 : t->year > 9999 ? 9999 : t->year;
    struct tm tm = {
        .tm_sec = t->sec, .tm_min = t->min, .tm_hour = t->hour,
        .tm_mday = t->mday, .tm_mon = t->mon - 1, .tm_year = year - 1900,
    };
    return (int64_t)timegm(&tm);
}

/* The guest's current time: frozen while SET is on, host time plus offset otherwise. */
static void rtc_guest_time(const struct rtc *rtc, struct rtc_time *out, long *nsec)
{
    if (rtc_set_mode(rtc)) {
        *out = rtc->frozen;
        *nsec = 0;
        return;
    }
    struct timespec ts;
    rtc_host_now(rtc, &ts);
    rtc_time_from_epoch((int64_t)ts.tv_sec + rtc->offset, out);
    *nsec = ts.tv_nsec;
}

/* Make t the guest's time from now on. */
static void rtc_commit(struct rtc *rtc, const struct rtc_time *t)
{
    struct timespec ts;
    rtc_host_now(rtc, &ts);
    rtc->offset = rtc_time_to_epoch(t) - (int64_t)ts.tv_sec;
}

static uint8_t rtc_read_reg(struct rtc *rtc, uint8_t idx)
{
    struct rtc_time t;
    long nsec;

    switch (idx) {
    case RTC_SECONDS:
    case RTC_MINUTES:
    case RTC_HOURS:
    case RTC_DAY_OF_WEEK:
    case RTC_DAY_OF_MONTH:
    case RTC_MONTH:
    case RTC_YEAR:
    case RTC_CENTURY:
        rtc_guest_time(rtc, &t, &nsec);
        switch (idx) {
        case RTC_SECONDS: return rtc_encode(rtc, t.sec);
        case RTC_MINUTES: return rtc_encode(rtc, t.min);
        case RTC_HOURS: return rtc_encode_hour(rtc, t.hour);
        case RTC_DAY_OF_WEEK: return rtc_encode(rtc, t.wday);
        case RTC_DAY_OF_MONTH: return rtc_encode(rtc, t.mday);
        case RTC_MONTH: return rtc_encode(rtc, t.mon);
        case RTC_YEAR: return rtc_encode(rtc, t.year % 100);
        default: return rtc_encode(rtc, t.year / 100);
        }
    case RTC_REG_A: {
        uint8_t a = rtc->cmos[RTC_REG_A] & 0x7f;
        /* UIP is set during the last 244 us of each second, so polling code that waits for
         * its edge (older Linux, firmware) sees one within a second. */
        if (!rtc_set_mode(rtc) && (a & 0x70) == RTC_A_DV_NORMAL) {
            rtc_guest_time(rtc, &t, &nsec);
            if (nsec >= 1000000000L - RTC_UIP_NS)
                a |= RTC_A_UIP;
        }
        return a;
    }
    case RTC_REG_C:
        return 0; /* no interrupt source is ever flagged */
    case RTC_REG_D:
        return RTC_D_VRT;
    default:
        return rtc->cmos[idx];
    }
}

static void rtc_write_time_reg(struct rtc *rtc, uint8_t idx, uint8_t val)
{
    struct rtc_time t;
    long nsec;
    rtc_guest_time(rtc, &t, &nsec);
    switch (idx) {
    case RTC_SECONDS: t.sec = rtc_decode(rtc, val); break;
    case RTC_MINUTES: t.min = rtc_decode(rtc, val); break;
    case RTC_HOURS: t.hour = rtc_decode_hour(rtc, val); break;
    case RTC_DAY_OF_WEEK: t.wday = rtc_decode(rtc, val); break;
    case RTC_DAY_OF_MONTH: t.mday = rtc_decode(rtc, val); break;
    case RTC_MONTH: t.mon = rtc_decode(rtc, val); break;
    case RTC_YEAR: t.year = t.year / 100 * 100 + rtc_decode(rtc, val) % 100; break;
    default: t.year = rtc_decode(rtc, val) * 100 + t.year % 100; break; /* century */
    }
    if (rtc_set_mode(rtc)) {
        /* Updates are stopped: keep the fields as written (the day of week included) until the
         * guest clears SET. */
        rtc->frozen = t;
    } else {
        /* Written while running: the chip takes the field at once and keeps counting. The day
         * of the week follows from the date here. */
        rtc_commit(rtc, &t);
    }
}

static void rtc_write_reg(struct rtc *rtc, uint8_t idx, uint8_t val)
{
    switch (idx) {
    case RTC_SECONDS:
    case RTC_MINUTES:
    case RTC_HOURS:
    case RTC_DAY_OF_WEEK:
    case RTC_DAY_OF_MONTH:
    case RTC_MONTH:
    case RTC_YEAR:
    case RTC_CENTURY:
        rtc_write_time_reg(rtc, idx, val);
        break;
    case RTC_REG_A:
        rtc->cmos[RTC_REG_A] = val & 0x7f; /* UIP is read-only */
        break;
    case RTC_REG_B: {
        bool was_set = rtc_set_mode(rtc), set = val & RTC_B_SET;
        if (set && !was_set) {
            long nsec;
            rtc_guest_time(rtc, &rtc->frozen, &nsec);
        }
        if (set)
            val &= (uint8_t)~RTC_B_UIE; /* the chip clears UIE whenever SET is written as 1 */
        rtc->cmos[RTC_REG_B] = val;
        if (was_set && !set)
            rtc_commit(rtc, &rtc->frozen); /* the clock restarts from what the guest wrote */
        break;
    }
    case RTC_REG_C:
    case RTC_REG_D:
        break; /* read-only */
    default:
        rtc->cmos[idx] = val;
        break;
    }
}

static uint64_t rtc_bus_read(void *opaque, uint64_t offset, unsigned size)
{
    struct rtc *rtc = opaque;
    uint64_t val = 0;

    pthread_mutex_lock(&rtc->lock);
    for (unsigned i = 0; i < size; i++) {
        /* The index port is write-only: reads float. */
        uint8_t byte = offset + i == 1 ? rtc_read_reg(rtc, rtc->index) : 0xff;
        val |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&rtc->lock);
    return val;
}

static void rtc_bus_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct rtc *rtc = opaque;

    pthread_mutex_lock(&rtc->lock);
    for (unsigned i = 0; i < size; i++) {
        uint8_t byte = (uint8_t)(data >> (8 * i));
        if (offset + i == 0)
            rtc->index = byte & (RTC_NVRAM_SIZE - 1); /* bit 7 gates NMI on PCs: ignored */
        else if (offset + i == 1)
            rtc_write_reg(rtc, rtc->index, byte);
    }
    pthread_mutex_unlock(&rtc->lock);
}

const struct bus_dev_ops rtc_ops = {
    .read = rtc_bus_read,
    .write = rtc_bus_write,
};

struct rtc *rtc_create(const struct rtc_clock *clock)
{
    struct rtc *rtc = calloc(1, sizeof(*rtc));
    if (!rtc)
        return NULL;
    int err = pthread_mutex_init(&rtc->lock, NULL);
    if (err) {
        free(rtc);
        errno = err;
        return NULL;
    }
    if (clock)
        rtc->clock = *clock;
    rtc->cmos[RTC_REG_A] = RTC_A_DV_NORMAL | 0x06; /* 1024 Hz periodic rate, as firmware sets */
    rtc->cmos[RTC_REG_B] = RTC_B_24H;
    return rtc;
}

void rtc_destroy(struct rtc *rtc)
{
    if (!rtc)
        return;
    pthread_mutex_destroy(&rtc->lock);
    free(rtc);
}

int rtc_attach(struct rtc *rtc, struct bus *pio)
{
    return bus_register(pio, PORT_CMOS_INDEX, 2, &rtc_ops, rtc, "rtc");
}
