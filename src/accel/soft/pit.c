#include "accel/soft/pit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"

#define PIT_CONTROL 3

/* Port 0x61 bit 4 toggles with every DRAM refresh, every 15.085 us on a PC; old delay loops
 * count its edges. */
#define REFRESH_PERIOD_NS 15085ULL

/* ---- time (lock held) ---- */

/* PIT ticks from the clock's origin to ns: both ends of a stretch use this, so rounding never
 * makes a counter run backwards. */
static uint64_t tick_at(uint64_t ns)
{
    return (uint64_t)((unsigned __int128)ns * PIT_HZ / 1000000000ULL);
}

/* First nanosecond at which tick_at() reaches tick. */
static uint64_t ns_of_tick(uint64_t tick)
{
    unsigned __int128 ns = ((unsigned __int128)tick * 1000000000ULL + PIT_HZ - 1) / PIT_HZ;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/* Ticks counted by the channel since its count was loaded (or last reloaded by the gate). */
static uint64_t elapsed(const struct pit_channel *c, uint64_t now)
{
    if (!c->counting || now < c->start_ns)
        return c->base_ticks;
    return c->base_ticks + tick_at(now) - tick_at(c->start_ns);
}

static bool gate_triggered_mode(const struct pit_channel *c)
{
    return c->mode == 1 || c->mode == 5;
}

/* The level of the channel's OUT pin. */
static bool channel_out(const struct pit_channel *c, uint64_t now)
{
    if (!c->loaded)
        return c->mode != 0; /* after the control word: low in mode 0, high otherwise */
    uint64_t d = elapsed(c, now), n = c->count;
    switch (c->mode) {
    case 0:
        return d >= n;
    case 1:
        return !c->counting || d >= n;
    case 2:
        return !c->gate || d % n != n - 1;
    case 3:
        return !c->gate || d % n < (n + 1) / 2;
    case 4:
        return d != n;
    default: /* 5 */
        return !c->counting || d != n;
    }
}

/* The counting element as a latch or read sees it. */
static uint16_t channel_counter(const struct pit_channel *c, uint64_t now)
{
    if (!c->loaded)
        return (uint16_t)c->count;
    uint64_t d = elapsed(c, now), n = c->count;
    switch (c->mode) {
    case 2:
        return (uint16_t)(n - d % n);
    case 3: /* counts down by two, twice per period */
        return (uint16_t)(n - (2 * (d % n)) % n);
    default: /* 0, 1, 4, 5 wrap around after the terminal count and keep counting */
        return (uint16_t)(n - d);
    }
}

/* The counted tick of the first OUT rising edge after tick d, UINT64_MAX if none comes. */
static uint64_t next_rising_edge(const struct pit_channel *c, uint64_t d)
{
    if (!c->loaded || !c->counting)
        return UINT64_MAX;
    uint64_t n = c->count;
    switch (c->mode) {
    case 2:
    case 3:
        return (d / n + 1) * n;
    case 0:
    case 1:
        return d < n ? n : UINT64_MAX;
    default: /* 4, 5: OUT is low for the one tick at n */
        return d < n + 1 ? n + 1 : UINT64_MAX;
    }
}

static void update_irq_next(struct pit *pit, uint64_t now)
{
    struct pit_channel *c = &pit->ch[0];
    c->irq_next = next_rising_edge(c, elapsed(c, now));
}

/* ---- programming ---- */

static void channel_load(struct pit *pit, struct pit_channel *c, uint32_t count, uint64_t now)
{
    c->count = count ? count : 0x10000;
    c->loaded = true;
    c->null_count = false;
    c->base_ticks = 0;
    c->start_ns = now;
    /* Modes 1 and 5 wait for a rising gate edge; the others count while the gate is high. */
    c->counting = !gate_triggered_mode(c) && c->gate;
    if (c == &pit->ch[0])
        update_irq_next(pit, now);
}

static void channel_set_gate(struct pit *pit, struct pit_channel *c, bool gate, uint64_t now)
{
    if (gate == c->gate)
        return;
    c->gate = gate;
    if (!c->loaded)
        return;
    if (!gate) {
        /* Modes 0, 2, 3, 4 suspend counting; 1 and 5 ignore a falling gate. */
        if (!gate_triggered_mode(c) && c->counting) {
            c->base_ticks = elapsed(c, now);
            c->counting = false;
        }
    } else if (c->mode == 0 || c->mode == 4) {
        c->start_ns = now; /* resume where it stopped */
        c->counting = true;
    } else {
        c->base_ticks = 0; /* 1, 5: trigger; 2, 3: reload and restart */
        c->start_ns = now;
        c->counting = true;
    }
    if (c == &pit->ch[0])
        update_irq_next(pit, now);
}

static void latch_count(struct pit_channel *c, uint64_t now)
{
    if (c->count_latched)
        return; /* a second latch before the read is ignored */
    c->count_latched = true;
    c->latch_high = false;
    c->latched_count = channel_counter(c, now);
}

static void latch_status(struct pit_channel *c, uint64_t now)
{
    if (c->status_latched)
        return;
    c->status_latched = true;
    c->latched_status = (uint8_t)((channel_out(c, now) ? 0x80 : 0) | (c->null_count ? 0x40 : 0) |
                                  (c->rw << 4) | (c->mode << 1) | (c->bcd ? 1 : 0));
}

static void control_write(struct pit *pit, uint8_t val, uint64_t now)
{
    unsigned sel = val >> 6;
    if (sel == 3) { /* read-back: bits 1-3 select channels; 0 in bits 5/4 latches count/status */
        for (unsigned i = 0; i < 3; i++) {
            if (!(val & (2u << i)))
                continue;
            if (!(val & 0x20))
                latch_count(&pit->ch[i], now);
            if (!(val & 0x10))
                latch_status(&pit->ch[i], now);
        }
        return;
    }
    struct pit_channel *c = &pit->ch[sel];
    unsigned rw = (val >> 4) & 3;
    if (rw == 0) {
        latch_count(c, now);
        return;
    }
    unsigned mode = (val >> 1) & 7;
    c->mode = (uint8_t)(mode > 5 ? mode - 4 : mode); /* 6 and 7 are aliases of 2 and 3 */
    c->rw = (uint8_t)rw;
    c->bcd = val & 1;
    c->loaded = c->counting = false;
    c->null_count = true;
    c->write_high = c->read_high = false;
    c->count_latched = c->status_latched = false;
    if (sel == 0)
        c->irq_next = UINT64_MAX;
}

static void count_write(struct pit *pit, struct pit_channel *c, uint8_t val, uint64_t now)
{
    switch (c->rw) {
    case 1:
        channel_load(pit, c, val, now);
        break;
    case 2:
        channel_load(pit, c, (uint32_t)val << 8, now);
        break;
    case 3:
        if (!c->write_high) {
            c->low_written = val;
            c->write_high = true;
            /* Mode 0 stops counting when the first byte of a new count arrives. */
            if (c->mode == 0 && c->loaded) {
                c->base_ticks = elapsed(c, now);
                c->counting = false;
                if (c == &pit->ch[0])
                    c->irq_next = UINT64_MAX;
            }
        } else {
            c->write_high = false;
            channel_load(pit, c, c->low_written | ((uint32_t)val << 8), now);
        }
        break;
    default: /* never programmed: the write has nowhere to go */
        break;
    }
}

static uint8_t count_read(struct pit_channel *c, uint64_t now)
{
    if (c->status_latched) {
        c->status_latched = false;
        return c->latched_status;
    }
    uint16_t v;
    bool high;
    if (c->count_latched) {
        v = c->latched_count;
        high = c->rw == 2 || (c->rw == 3 && c->latch_high);
        if (c->rw == 3 && !c->latch_high)
            c->latch_high = true;
        else
            c->count_latched = false;
    } else {
        v = channel_counter(c, now);
        high = c->rw == 2 || (c->rw == 3 && c->read_high);
        if (c->rw == 3)
            c->read_high = !c->read_high;
    }
    return high ? (uint8_t)(v >> 8) : (uint8_t)v;
}

/* ---- ports ---- */

static uint64_t pit_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pit *pit = opaque;
    (void)size;
    if (offset >= PIT_CONTROL)
        return 0xff; /* the control register is write-only */
    pthread_mutex_lock(&pit->lock);
    uint8_t v = count_read(&pit->ch[offset], soft_clock_now(&pit->clock));
    pthread_mutex_unlock(&pit->lock);
    return v;
}

static void pit_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pit *pit = opaque;
    (void)size;
    if (offset > PIT_CONTROL)
        return;
    pthread_mutex_lock(&pit->lock);
    uint64_t now = soft_clock_now(&pit->clock);
    if (offset == PIT_CONTROL)
        control_write(pit, (uint8_t)data, now);
    else
        count_write(pit, &pit->ch[offset], (uint8_t)data, now);
    pthread_mutex_unlock(&pit->lock);
    if (pit->programmed)
        pit->programmed(pit->programmed_opaque);
}

void pit_set_programmed(struct pit *pit, void (*fn)(void *opaque), void *opaque)
{
    pit->programmed = fn;
    pit->programmed_opaque = opaque;
}

static uint64_t port61_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pit *pit = opaque;
    (void)offset;
    (void)size;
    pthread_mutex_lock(&pit->lock);
    uint64_t now = soft_clock_now(&pit->clock);
    uint8_t v = (pit->ch[2].gate ? PORT61_GATE2 : 0) | (pit->speaker ? PORT61_SPEAKER : 0) |
                ((now / REFRESH_PERIOD_NS) & 1 ? PORT61_REFRESH : 0) |
                (channel_out(&pit->ch[2], now) ? PORT61_OUT2 : 0);
    pthread_mutex_unlock(&pit->lock);
    return v;
}

static void port61_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pit *pit = opaque;
    (void)offset;
    (void)size;
    pthread_mutex_lock(&pit->lock);
    pit->speaker = data & PORT61_SPEAKER;
    channel_set_gate(pit, &pit->ch[2], data & PORT61_GATE2, soft_clock_now(&pit->clock));
    pthread_mutex_unlock(&pit->lock);
}

const struct bus_dev_ops pit_ops = {.read = pit_read, .write = pit_write};
const struct bus_dev_ops pit_port61_ops = {.read = port61_read, .write = port61_write};

/* ---- life cycle and timer ---- */

struct pit *pit_create(const struct soft_clock *clock, const struct irq_line *irq0)
{
    struct pit *pit = calloc(1, sizeof(*pit));
    if (!pit)
        return NULL;
    int rc = pthread_mutex_init(&pit->lock, NULL);
    if (rc) {
        free(pit);
        errno = rc;
        return NULL;
    }
    if (clock)
        pit->clock = *clock;
    if (irq0)
        pit->irq0 = *irq0;
    pit_reset(pit);
    return pit;
}

void pit_reset(struct pit *pit)
{
    pthread_mutex_lock(&pit->lock);
    memset(pit->ch, 0, sizeof(pit->ch));
    for (unsigned i = 0; i < 3; i++) {
        pit->ch[i].irq_next = UINT64_MAX;
        pit->ch[i].count = 0x10000;
    }
    /* Channels 0 and 1 have their gates tied high; channel 2's is port 0x61 bit 0, low at
     * power-on. */
    pit->ch[0].gate = pit->ch[1].gate = true;
    pit->speaker = false;
    pthread_mutex_unlock(&pit->lock);
}

void pit_destroy(struct pit *pit)
{
    if (!pit)
        return;
    pthread_mutex_destroy(&pit->lock);
    free(pit);
}

int pit_attach(struct pit *pit, struct bus *pio)
{
    int rc = bus_register(pio, PORT_PIT, PIT_NR_PORTS, &pit_ops, pit, "pit");
    if (rc == 0)
        rc = bus_register(pio, PORT_SYSTEM_CONTROL_B, 1, &pit_port61_ops, pit, "port61");
    return rc;
}

uint64_t pit_next_deadline_ns(struct pit *pit)
{
    pthread_mutex_lock(&pit->lock);
    struct pit_channel *c = &pit->ch[0];
    uint64_t t = UINT64_MAX;
    if (c->irq_next != UINT64_MAX && c->counting)
        t = ns_of_tick(tick_at(c->start_ns) + (c->irq_next - c->base_ticks));
    pthread_mutex_unlock(&pit->lock);
    return t;
}

void pit_tick(struct pit *pit, uint64_t now_ns)
{
    pthread_mutex_lock(&pit->lock);
    struct pit_channel *c = &pit->ch[0];
    if (c->irq_next != UINT64_MAX && c->counting) {
        uint64_t d = elapsed(c, now_ns);
        if (d >= c->irq_next) {
            c->irq_next = next_rising_edge(c, d);
            /* An edge for the 8259 and the IOAPIC: the line rises and falls again. */
            irq_line_set(&pit->irq0, 1);
            irq_line_set(&pit->irq0, 0);
        }
    }
    pthread_mutex_unlock(&pit->lock);
}
