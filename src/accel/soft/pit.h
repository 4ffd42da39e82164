/* The 8254 programmable interval timer at PORT_PIT (0x40-0x43) and the PC's port 0x61 (system
 * control port B: channel 2's gate, speaker enable, OUT2, refresh toggle).
 *
 * Counting is computed from the clock, never by ticking: a channel remembers when it started
 * and the count it had then, so reading a counter costs the same whether the guest polls it
 * every microsecond or once a second. Channel 0's OUT rising edges pulse ISA IRQ0 (raise, then
 * lower the line); the owner calls pit_tick() no later than pit_next_deadline_ns() and missed
 * periods are coalesced into one pulse (Linux uses the PIT only until its LAPIC timer and TSC
 * are set up, and a tickless kernel copes with a late tick).
 *
 * Modelled: channels 0-2 (channel 1 counts but drives nothing), modes 0-5, lobyte/hibyte/word
 * access, the counter latch command, the read-back command (count and status), gate 2 through
 * port 0x61. Binary counting only: the BCD bit is stored and read back but counts stay binary.
 *
 * Threading: one lock. The IRQ line is driven under it (lock order: PIT before the router). */
#ifndef VIREO_ACCEL_SOFT_PIT_H
#define VIREO_ACCEL_SOFT_PIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "accel/soft/irq.h"
#include "devices/bus.h"
#include "devices/platform.h"

#define PIT_HZ 1193182ULL          /* the 14.31818 MHz crystal divided by 12 */
#define PIT_NR_PORTS 4
#define PORT_SYSTEM_CONTROL_B 0x61 /* not in arch/x86/layout.h yet */

#define PORT61_GATE2   0x01
#define PORT61_SPEAKER 0x02
#define PORT61_REFRESH 0x10
#define PORT61_OUT2    0x20

struct pit_channel {
    uint8_t mode;          /* 0..5 */
    uint8_t rw;            /* 1: low byte, 2: high byte, 3: low then high */
    bool bcd;
    bool gate;
    bool loaded;           /* a count has been written since the control word */
    bool counting;         /* ticks advance (gate open, or triggered in modes 1 and 5) */
    bool null_count;       /* status bit 6 */
    uint32_t count;        /* reload value, 1..0x10000 */
    uint64_t base_ticks;   /* ticks counted before start_ns */
    uint64_t start_ns;     /* when the current stretch of counting began */
    uint64_t irq_next;     /* tick (as counted) of the next OUT rising edge, UINT64_MAX: none */
    uint8_t low_written;   /* first byte of a two-byte count */
    bool write_high, read_high;
    bool count_latched, status_latched, latch_high;
    uint16_t latched_count;
    uint8_t latched_status;
};

struct pit {
    pthread_mutex_t lock;
    struct soft_clock clock;
    struct irq_line irq0;
    struct pit_channel ch[3];
    bool speaker;
    void (*programmed)(void *opaque); /* see pit_set_programmed() */
    void *programmed_opaque;
};

/* Allocate the PIT in its power-on state (no channel programmed); irq0 is pulsed on channel 0's
 * OUT rising edges (may be NULL). Returns NULL with errno set. */
struct pit *pit_create(const struct soft_clock *clock, const struct irq_line *irq0);
/* Free it; it must no longer be reachable from a bus. */
void pit_destroy(struct pit *pit);
/* Back to the power-on state: no channel programmed, gate 2 low, speaker off. */
void pit_reset(struct pit *pit);
/* fn(opaque) runs after every write to the PIT's ports (outside its lock), so that whoever
 * sleeps until pit_next_deadline_ns() can look again. */
void pit_set_programmed(struct pit *pit, void (*fn)(void *opaque), void *opaque);
/* Register 0x40-0x43 and 0x61. Returns 0 or -errno. */
int pit_attach(struct pit *pit, struct bus *pio);

/* When channel 0 next raises IRQ0 (clock nanoseconds), UINT64_MAX if it will not. */
uint64_t pit_next_deadline_ns(struct pit *pit);
/* Pulse IRQ0 if channel 0's OUT rose by now. */
void pit_tick(struct pit *pit, uint64_t now_ns);

/* Port handlers (opaque: struct pit): the four PIT ports, and port 0x61. */
extern const struct bus_dev_ops pit_ops;
extern const struct bus_dev_ops pit_port61_ops;

#endif
