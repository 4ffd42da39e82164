/* The 8254 PIT and port 0x61 against an injected clock: the sequences Linux uses to calibrate
 * (channel 2, OUT2, MSB polling), channel 0's IRQ0 in periodic and one-shot modes, latch and
 * read-back commands, access modes, gate 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "accel/soft/pit.h"
#include "devices/bus.h"

/* A start time at which the PIT's tick count is a whole number, so that tick k after it falls
 * at T0 + ns_at(k) exactly. */
#define T0 1000000000ULL

struct harness {
    struct pit *pit;
    struct bus pio;
    uint64_t now;
    int level;
    unsigned rises;
};

static uint64_t h_now(void *opaque)
{
    return ((struct harness *)opaque)->now;
}

static void h_irq(void *opaque, unsigned gsi, int level)
{
    struct harness *h = opaque;
    assert_int_equal(gsi, 0);
    if (level && !h->level)
        h->rises++;
    h->level = level;
}

/* First nanosecond after T0 at which k ticks have elapsed. */
static uint64_t ns_at(uint64_t k)
{
    return (k * 1000000000ULL + PIT_HZ - 1) / PIT_HZ;
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    h->now = T0;
    struct soft_clock clock = {.now_ns = h_now, .opaque = h};
    struct irq_line irq = {.set_level = h_irq, .opaque = h, .gsi = 0};
    h->pit = pit_create(&clock, &irq);
    assert_non_null(h->pit);
    bus_init(&h->pio, "pio");
    assert_int_equal(pit_attach(h->pit, &h->pio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    pit_destroy(h->pit);
    test_free(h);
    return 0;
}

static void outb(struct harness *h, uint16_t port, uint8_t v)
{
    assert_true(bus_write(&h->pio, port, 1, v));
}

static uint8_t inb(struct harness *h, uint16_t port)
{
    uint64_t v;
    assert_true(bus_read(&h->pio, port, 1, &v));
    return (uint8_t)v;
}

static uint16_t read_word(struct harness *h, uint16_t port)
{
    uint8_t lo = inb(h, port);
    return (uint16_t)(lo | (inb(h, port) << 8));
}

/* pit_calibrate_tsc(): gate 2 on, speaker off, mode 0 with a 10 ms count, poll OUT2. */
static void test_linux_out2_calibration(void **state)
{
    struct harness *h = *state;
    const uint16_t latch = 11932;
    outb(h, 0x61, (inb(h, 0x61) & ~PORT61_SPEAKER) | PORT61_GATE2);
    outb(h, 0x43, 0xb0);
    outb(h, 0x42, latch & 0xff);
    assert_false(inb(h, 0x61) & PORT61_OUT2); /* mode 0: OUT low from the control word */
    outb(h, 0x42, latch >> 8);
    h->now = T0 + ns_at(latch) - 1;
    assert_false(inb(h, 0x61) & PORT61_OUT2);
    h->now = T0 + ns_at(latch);
    assert_true(inb(h, 0x61) & PORT61_OUT2);
    assert_true(inb(h, 0x61) & PORT61_GATE2);
    h->now += 1000000000ULL; /* stays high after the terminal count */
    assert_true(inb(h, 0x61) & PORT61_OUT2);
    assert_int_equal(h->rises, 0); /* channel 2 drives no IRQ */
}

/* quick_pit_calibrate(): mode 0 from 0xffff, reading LSB then MSB of the live counter. */
static void test_linux_msb_polling(void **state)
{
    struct harness *h = *state;
    outb(h, 0x61, (inb(h, 0x61) & ~PORT61_SPEAKER) | PORT61_GATE2);
    outb(h, 0x43, 0xb0);
    outb(h, 0x42, 0xff);
    outb(h, 0x42, 0xff);
    assert_int_equal(read_word(h, 0x42), 0xffff);
    h->now = T0 + ns_at(256);
    assert_int_equal(read_word(h, 0x42), 0xffff - 256);
    h->now = T0 + ns_at(256 * 10 + 5);
    inb(h, 0x42);
    assert_int_equal(inb(h, 0x42), 0xff - 10);
    /* Past zero the counter wraps and keeps counting down. */
    h->now = T0 + ns_at(0xffff + 3);
    assert_int_equal(read_word(h, 0x42), 0xfffd);
}

static void test_channel0_periodic_irq(void **state)
{
    struct harness *h = *state;
    const uint16_t latch = 1193; /* ~1 kHz, what Linux's PIT clockevent programs for HZ=1000 */
    assert_int_equal(pit_next_deadline_ns(h->pit), UINT64_MAX);
    outb(h, 0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2 */
    assert_int_equal(pit_next_deadline_ns(h->pit), UINT64_MAX); /* no count yet */
    outb(h, 0x40, latch & 0xff);
    outb(h, 0x40, latch >> 8);
    assert_int_equal(pit_next_deadline_ns(h->pit), T0 + ns_at(latch));
    pit_tick(h->pit, T0 + ns_at(latch) - 1);
    assert_int_equal(h->rises, 0);
    pit_tick(h->pit, T0 + ns_at(latch));
    assert_int_equal(h->rises, 1);
    assert_int_equal(h->level, 0); /* a pulse: the line is low again */
    assert_int_equal(pit_next_deadline_ns(h->pit), T0 + ns_at(2 * latch));
    /* Three periods late: one pulse, and the next one stays on the period grid. */
    pit_tick(h->pit, T0 + ns_at(5 * latch) + 10);
    assert_int_equal(h->rises, 2);
    assert_int_equal(pit_next_deadline_ns(h->pit), T0 + ns_at(6 * latch));
    pit_tick(h->pit, T0 + ns_at(5 * latch) + 20);
    assert_int_equal(h->rises, 2);
    /* The counter reloads each period. */
    h->now = T0 + ns_at(7 * latch + 100);
    outb(h, 0x43, 0x00); /* latch channel 0 */
    assert_int_equal(read_word(h, 0x40), latch - 100);
}

static void test_channel0_one_shot(void **state)
{
    struct harness *h = *state;
    outb(h, 0x43, 0x38); /* channel 0, lobyte/hibyte, mode 4: Linux's one-shot clockevent */
    outb(h, 0x40, 100);
    outb(h, 0x40, 0);
    /* Mode 4's OUT dips for one tick at the terminal count; the IRQ is its rising edge. */
    assert_int_equal(pit_next_deadline_ns(h->pit), T0 + ns_at(101));
    pit_tick(h->pit, T0 + ns_at(101));
    assert_int_equal(h->rises, 1);
    assert_int_equal(pit_next_deadline_ns(h->pit), UINT64_MAX);
    pit_tick(h->pit, T0 + ns_at(1000000));
    assert_int_equal(h->rises, 1);
    /* Mode 0 interrupts once at the terminal count too. */
    h->now = T0 + ns_at(2000);
    outb(h, 0x43, 0x30);
    outb(h, 0x40, 50);
    outb(h, 0x40, 0);
    assert_int_equal(pit_next_deadline_ns(h->pit), T0 + ns_at(2050));
    pit_tick(h->pit, T0 + ns_at(3000));
    assert_int_equal(h->rises, 2);
    assert_int_equal(pit_next_deadline_ns(h->pit), UINT64_MAX);
    /* Reprogramming with the control word stops it. */
    outb(h, 0x43, 0x34);
    assert_int_equal(pit_next_deadline_ns(h->pit), UINT64_MAX);
}

static void test_latch_and_readback(void **state)
{
    struct harness *h = *state;
    outb(h, 0x43, 0x34);
    assert_int_equal(inb(h, 0x43), 0xff); /* write-only */
    /* Status of a channel whose count has not been written: null count set. */
    outb(h, 0x43, 0xe2); /* read-back: status only (bit 5 set), channel 0 */
    assert_int_equal(inb(h, 0x40), 0x80 | 0x40 | 0x34); /* mode 2: OUT high already */
    outb(h, 0x40, 0x00);
    outb(h, 0x40, 0x10); /* 4096 */
    h->now = T0 + ns_at(96);
    outb(h, 0x43, 0x00); /* counter latch */
    h->now = T0 + ns_at(1000);
    outb(h, 0x43, 0x00); /* a second latch before reading is ignored */
    assert_int_equal(read_word(h, 0x40), 4000);
    assert_int_equal(read_word(h, 0x40), 4096 - 1000); /* live again */
    /* Read-back of count and status: status comes first. Mode 2's OUT is high here. */
    outb(h, 0x43, 0xc2);
    assert_int_equal(inb(h, 0x40), 0x80 | 0x34);
    assert_int_equal(read_word(h, 0x40), 4096 - 1000);
    /* Low-byte-only and high-byte-only access. */
    outb(h, 0x43, 0x90); /* channel 2, low byte, mode 0 */
    outb(h, 0x42, 0x80);
    outb(h, 0x61, PORT61_GATE2);
    h->now += ns_at(16);
    assert_int_equal(inb(h, 0x42), 0x70);
    assert_int_equal(inb(h, 0x42), 0x70); /* no flip-flop in this mode */
    outb(h, 0x43, 0xa0); /* channel 2, high byte */
    outb(h, 0x42, 0x02); /* 0x200 */
    h->now += ns_at(0x100);
    assert_int_equal(inb(h, 0x42), 0x01);
    /* BCD is stored and reported, counting stays binary. */
    outb(h, 0x43, 0xb1);
    outb(h, 0x43, 0xe8); /* read-back status of channel 2 */
    assert_int_equal(inb(h, 0x42), 0x40 | 0x31);
    /* A channel never programmed ignores count writes. */
    outb(h, 0x41, 0x12);
    assert_int_equal(h->pit->ch[1].loaded, false);
}

static void test_gate_and_square_wave(void **state)
{
    struct harness *h = *state;
    /* Mode 0 on channel 2 with the gate low: loaded but not counting. */
    outb(h, 0x61, 0);
    outb(h, 0x43, 0xb0);
    outb(h, 0x42, 0x00);
    outb(h, 0x42, 0x01); /* 256 */
    h->now += ns_at(1000);
    assert_int_equal(read_word(h, 0x42), 256);
    uint64_t t = h->now;
    outb(h, 0x61, PORT61_GATE2);
    h->now = t + ns_at(100);
    assert_int_equal(read_word(h, 0x42), 156);
    outb(h, 0x61, 0); /* suspend... */
    h->now += ns_at(5000);
    assert_int_equal(read_word(h, 0x42), 156);
    t = h->now;
    outb(h, 0x61, PORT61_GATE2); /* ...and resume where it stopped */
    h->now = t + ns_at(56);
    assert_int_equal(read_word(h, 0x42), 100);

    /* Mode 3: OUT2 high for the first half of each period, low for the second. */
    outb(h, 0x43, 0xb6);
    t = h->now;
    outb(h, 0x42, 100);
    outb(h, 0x42, 0);
    h->now = t + ns_at(49);
    assert_true(inb(h, 0x61) & PORT61_OUT2);
    h->now = t + ns_at(50);
    assert_false(inb(h, 0x61) & PORT61_OUT2);
    h->now = t + ns_at(100);
    assert_true(inb(h, 0x61) & PORT61_OUT2);
    h->now = t + ns_at(10);
    assert_int_equal(read_word(h, 0x42), 80); /* counts down by two */
    /* Gate low forces OUT high and a rising gate restarts the period. */
    h->now = t + ns_at(170);
    assert_false(inb(h, 0x61) & PORT61_OUT2);
    outb(h, 0x61, 0);
    assert_true(inb(h, 0x61) & PORT61_OUT2);
    t = h->now;
    outb(h, 0x61, PORT61_GATE2);
    h->now = t + ns_at(60);
    assert_false(inb(h, 0x61) & PORT61_OUT2);
}

static void test_port61(void **state)
{
    struct harness *h = *state;
    assert_int_equal(inb(h, 0x61) & (PORT61_GATE2 | PORT61_SPEAKER), 0);
    outb(h, 0x61, PORT61_SPEAKER | PORT61_GATE2 | 0xc0);
    assert_int_equal(inb(h, 0x61) & 0xcf, PORT61_SPEAKER | PORT61_GATE2);
    /* The refresh bit toggles with time. */
    h->now = 0;
    uint8_t a = inb(h, 0x61) & PORT61_REFRESH;
    h->now = 15085;
    uint8_t b = inb(h, 0x61) & PORT61_REFRESH;
    assert_int_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_linux_out2_calibration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linux_msb_polling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel0_periodic_irq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel0_one_shot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latch_and_readback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_and_square_wave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port61, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
