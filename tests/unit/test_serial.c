/* The 16550A model, driven through the port-I/O bus the way a guest driver drives it. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/bus.h"
#include "devices/serial.h"
#include "util/err.h"

struct harness {
    struct bus pio;
    struct serial *uart;
    uint8_t out[256];
    size_t out_len;
    int levels[64]; /* every level the UART drove on its IRQ line, in order */
    unsigned nlevels;
    unsigned gsi_seen;
    unsigned rx_ready_calls;
};

static void h_out(void *opaque, const uint8_t *buf, size_t len)
{
    struct harness *h = opaque;
    assert_true(h->out_len + len <= sizeof(h->out));
    memcpy(h->out + h->out_len, buf, len);
    h->out_len += len;
}

static void h_set_level(void *opaque, unsigned gsi, int level)
{
    struct harness *h = opaque;
    h->gsi_seen = gsi;
    assert_true(h->nlevels < 64);
    h->levels[h->nlevels++] = level;
}

static void h_rx_ready(void *opaque)
{
    struct harness *h = opaque;
    h->rx_ready_calls++;
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    bus_init(&h->pio, "pio");
    struct serial_config cfg = {
        .irq = {.set_level = h_set_level, .opaque = h, .gsi = IRQ_COM1},
        .out = h_out,
        .rx_ready = h_rx_ready,
        .opaque = h,
    };
    h->uart = serial_create(&cfg);
    assert_non_null(h->uart);
    assert_int_equal(serial_attach(h->uart, &h->pio, PORT_COM1), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    serial_destroy(h->uart);
    test_free(h);
    return 0;
}

static uint8_t inb(struct harness *h, unsigned reg)
{
    uint64_t v;
    assert_true(bus_read(&h->pio, PORT_COM1 + reg, 1, &v));
    return (uint8_t)v;
}

static void outb(struct harness *h, unsigned reg, uint8_t v)
{
    assert_true(bus_write(&h->pio, PORT_COM1 + reg, 1, v));
}

static int irq_level(const struct harness *h)
{
    return h->nlevels ? h->levels[h->nlevels - 1] : 0;
}

static void test_power_on_state(void **state)
{
    struct harness *h = *state;
    assert_int_equal(inb(h, SERIAL_IER), 0);
    assert_int_equal(inb(h, SERIAL_IIR), SERIAL_IIR_NO_INT);
    assert_int_equal(inb(h, SERIAL_LCR), 0);
    assert_int_equal(inb(h, SERIAL_MCR), 0);
    assert_int_equal(inb(h, SERIAL_LSR), SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
    assert_int_equal(inb(h, SERIAL_MSR), SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS);
    assert_int_equal(h->nlevels, 0);
}

static void test_register_model(void **state)
{
    struct harness *h = *state;
    /* IER keeps only its four defined bits (Linux's probe checks for exactly 0x0f). */
    outb(h, SERIAL_IER, 0xff);
    assert_int_equal(inb(h, SERIAL_IER), 0x0f);
    outb(h, SERIAL_IER, 0);
    outb(h, SERIAL_SCR, 0xa5);
    assert_int_equal(inb(h, SERIAL_SCR), 0xa5);
    outb(h, SERIAL_LCR, 0x1b);
    assert_int_equal(inb(h, SERIAL_LCR), 0x1b);
    outb(h, SERIAL_MCR, 0xff);
    assert_int_equal(inb(h, SERIAL_MCR), 0x1f);
    outb(h, SERIAL_MCR, 0);
    /* The status registers ignore writes. */
    outb(h, SERIAL_LSR, 0x00);
    assert_int_equal(inb(h, SERIAL_LSR), SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
    /* IIR's FIFO bits follow FCR.0. */
    outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE);
    assert_int_equal(inb(h, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_NO_INT);
    outb(h, SERIAL_FCR, 0);
    assert_int_equal(inb(h, SERIAL_IIR), SERIAL_IIR_NO_INT);
}

static void test_divisor_latch(void **state)
{
    struct harness *h = *state;
    outb(h, SERIAL_IER, SERIAL_IER_ERBFI);
    outb(h, SERIAL_LCR, SERIAL_LCR_DLAB | 0x03);
    assert_int_equal(inb(h, SERIAL_DLL), 12);
    assert_int_equal(inb(h, SERIAL_DLM), 0);
    outb(h, SERIAL_DLL, 0x01); /* 115200 baud */
    outb(h, SERIAL_DLM, 0x02);
    assert_int_equal(inb(h, SERIAL_DLL), 0x01);
    assert_int_equal(inb(h, SERIAL_DLM), 0x02);
    assert_int_equal(h->out_len, 0); /* a DLL write is not a transmission */
    outb(h, SERIAL_LCR, 0x03);
    /* With DLAB clear the same offsets are THR and IER again, and the latch is kept. */
    assert_int_equal(inb(h, SERIAL_IER), SERIAL_IER_ERBFI);
    outb(h, SERIAL_THR, 'x');
    assert_int_equal(h->out_len, 1);
    assert_int_equal(h->out[0], 'x');
    outb(h, SERIAL_LCR, SERIAL_LCR_DLAB);
    assert_int_equal(inb(h, SERIAL_DLL), 0x01);
    assert_int_equal(inb(h, SERIAL_DLM), 0x02);
}

static void test_transmit_output(void **state)
{
    struct harness *h = *state;
    const char *msg = "hello, vireo\n";
    for (const char *p = msg; *p; p++)
        outb(h, SERIAL_THR, (uint8_t)*p);
    assert_int_equal(h->out_len, strlen(msg));
    assert_memory_equal(h->out, msg, strlen(msg));
    assert_int_equal(inb(h, SERIAL_LSR) & (SERIAL_LSR_THRE | SERIAL_LSR_TEMT),
                     SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
}

static void test_receive_fifo_and_flow_control(void **state)
{
    struct harness *h = *state;
    uint8_t data[20];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)('a' + i);

    /* 16450 mode: a single holding register. */
    assert_true(serial_can_receive(h->uart));
    assert_int_equal(serial_receive(h->uart, data, sizeof(data)), 1);
    assert_false(serial_can_receive(h->uart));
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, SERIAL_LSR_DR);
    assert_int_equal(h->rx_ready_calls, 0);
    assert_int_equal(inb(h, SERIAL_RBR), 'a');
    assert_int_equal(h->rx_ready_calls, 1); /* draining woke the waiting host side */
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, 0);

    /* FIFO mode: sixteen bytes, never an overrun from host input (it is flow-controlled). */
    outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_RX_RESET);
    assert_int_equal(serial_receive(h->uart, data, sizeof(data)), SERIAL_FIFO_SIZE);
    assert_int_equal(serial_receive(h->uart, data + 16, 4), 0);
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_OE, 0);
    unsigned calls = h->rx_ready_calls;
    assert_int_equal(inb(h, SERIAL_RBR), 'a');
    assert_int_equal(h->rx_ready_calls, calls + 1);
    assert_int_equal(serial_receive(h->uart, data + 16, 4), 1);
    for (unsigned i = 1; i < 17; i++) {
        assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, SERIAL_LSR_DR);
        assert_int_equal(inb(h, SERIAL_RBR), data[i]);
    }
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, 0);

    /* A receiver reset through FCR empties the FIFO. */
    assert_int_equal(serial_receive(h->uart, data, 3), 3);
    outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_RX_RESET);
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, 0);
}

static void test_fifo_overrun(void **state)
{
    struct harness *h = *state;
    /* Loopback turns the transmitter into a source the receiver cannot refuse: the 17th byte
     * overruns, is lost, and the FIFO keeps the first sixteen. */
    outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE);
    outb(h, SERIAL_MCR, SERIAL_MCR_LOOP);
    for (unsigned i = 0; i < 17; i++)
        outb(h, SERIAL_THR, (uint8_t)(0x30 + i));
    uint8_t lsr = inb(h, SERIAL_LSR);
    assert_int_equal(lsr & (SERIAL_LSR_OE | SERIAL_LSR_DR), SERIAL_LSR_OE | SERIAL_LSR_DR);
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_OE, 0); /* reading LSR clears OE */
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(inb(h, SERIAL_RBR), 0x30 + i);
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, 0);
    assert_int_equal(h->out_len, 0); /* nothing reached the wire */

    /* Without FIFOs the second byte already overruns. */
    outb(h, SERIAL_FCR, 0);
    outb(h, SERIAL_THR, 1);
    outb(h, SERIAL_THR, 2);
    assert_int_equal(inb(h, SERIAL_LSR) & (SERIAL_LSR_OE | SERIAL_LSR_DR),
                     SERIAL_LSR_OE | SERIAL_LSR_DR);
    assert_int_equal(inb(h, SERIAL_RBR), 1);
}

static void test_iir_priorities(void **state)
{
    struct harness *h = *state;
    outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE);
    outb(h, SERIAL_MCR, SERIAL_MCR_LOOP);
    inb(h, SERIAL_MSR); /* drop the deltas entering loopback caused */
    outb(h, SERIAL_IER, 0x0f);
    /* Only THR empty (raised by enabling ETBEI). */
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_THRI);
    /* ...which that read acknowledged. */
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_NO_INT);

    /* Modem status: lowest priority. */
    outb(h, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_RTS);
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_MSI);
    /* THR empty outranks it (the THR write re-arms THRE; the byte loops back into RX). */
    outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_TRIGGER); /* trigger at 14 */
    outb(h, SERIAL_THR, 'A');
    /* One byte below the trigger level: the character timeout, above THR empty. */
    assert_int_equal(inb(h, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_TIMEOUT);
    /* Fill to the trigger level: received data available. */
    for (unsigned i = 1; i < 14; i++)
        outb(h, SERIAL_THR, (uint8_t)('A' + i));
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_RDI);
    /* Overrun: line status is the highest priority. */
    outb(h, SERIAL_THR, 'O');
    outb(h, SERIAL_THR, 'P');
    outb(h, SERIAL_THR, 'Q');
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_RLSI);
    inb(h, SERIAL_LSR);
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_RDI);
    /* Drain the FIFO: THR empty comes back, then modem status once THRE is acknowledged. */
    while (inb(h, SERIAL_LSR) & SERIAL_LSR_DR)
        inb(h, SERIAL_RBR);
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_THRI);
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_MSI);
    assert_int_equal(inb(h, SERIAL_MSR) & 0x0f, SERIAL_MSR_DCTS);
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_NO_INT);
}

static void test_trigger_levels(void **state)
{
    struct harness *h = *state;
    static const struct { uint8_t fcr; unsigned level; } cases[] = {
        {0x00, 1}, {0x40, 4}, {0x80, 8}, {0xc0, 14}};
    uint8_t data[16] = {0};
    outb(h, SERIAL_IER, SERIAL_IER_ERBFI);
    for (unsigned c = 0; c < 4; c++) {
        outb(h, SERIAL_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_RX_RESET | cases[c].fcr);
        if (cases[c].level > 1) {
            serial_receive(h->uart, data, cases[c].level - 1);
            assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_TIMEOUT);
        }
        serial_receive(h->uart, data, 1);
        assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_RDI);
    }
}

static void test_irq_line_levels(void **state)
{
    struct harness *h = *state;
    const uint8_t byte = 'k';
    outb(h, SERIAL_IER, SERIAL_IER_ERBFI);
    serial_receive(h->uart, &byte, 1);
    /* OUT2 clear: the PC's gate keeps the line low even though IIR reports data. */
    assert_int_equal(inb(h, SERIAL_IIR) & 0x0f, SERIAL_IIR_RDI);
    assert_int_equal(h->nlevels, 0);
    outb(h, SERIAL_MCR, SERIAL_MCR_OUT2 | SERIAL_MCR_DTR | SERIAL_MCR_RTS);
    assert_int_equal(h->nlevels, 1);
    assert_int_equal(irq_level(h), 1);
    assert_int_equal(h->gsi_seen, IRQ_COM1);
    /* Reading the byte lowers the line. */
    assert_int_equal(inb(h, SERIAL_RBR), 'k');
    assert_int_equal(h->nlevels, 2);
    assert_int_equal(irq_level(h), 0);
    /* Masking in IER lowers it too. */
    serial_receive(h->uart, &byte, 1);
    assert_int_equal(irq_level(h), 1);
    outb(h, SERIAL_IER, 0);
    assert_int_equal(irq_level(h), 0);
    outb(h, SERIAL_IER, SERIAL_IER_ERBFI);
    assert_int_equal(irq_level(h), 1);
    /* Loopback forces the OUT2 pin inactive, which closes the gate. */
    outb(h, SERIAL_MCR, SERIAL_MCR_OUT2 | SERIAL_MCR_LOOP);
    assert_int_equal(irq_level(h), 0);
    outb(h, SERIAL_MCR, SERIAL_MCR_OUT2);
    assert_int_equal(irq_level(h), 1);
    inb(h, SERIAL_RBR);
    assert_int_equal(irq_level(h), 0);
}

static void test_thre_interrupt(void **state)
{
    struct harness *h = *state;
    outb(h, SERIAL_MCR, SERIAL_MCR_OUT2);
    /* Linux's startup test: enabling ETBEI with an empty THR raises the interrupt, every time. */
    outb(h, SERIAL_IER, SERIAL_IER_ETBEI);
    assert_int_equal(irq_level(h), 1);
    assert_int_equal(inb(h, SERIAL_IIR), SERIAL_IIR_THRI);
    assert_int_equal(irq_level(h), 0); /* the IIR read acknowledged it */
    outb(h, SERIAL_IER, 0);
    outb(h, SERIAL_IER, SERIAL_IER_ETBEI);
    assert_int_equal(inb(h, SERIAL_IIR), SERIAL_IIR_THRI);
    /* Every transmitted byte re-raises it, as a low-to-high edge. */
    unsigned before = h->nlevels;
    outb(h, SERIAL_THR, 'z');
    assert_int_equal(h->nlevels, before + 1);
    assert_int_equal(irq_level(h), 1);
    before = h->nlevels;
    outb(h, SERIAL_THR, 'y');
    assert_int_equal(h->nlevels, before + 2);
    assert_int_equal(h->levels[before], 0);
    assert_int_equal(h->levels[before + 1], 1);
    assert_int_equal(h->out_len, 2);
    /* Disabling ETBEI masks it. */
    outb(h, SERIAL_IER, 0);
    assert_int_equal(irq_level(h), 0);
}

static void test_loopback(void **state)
{
    struct harness *h = *state;
    /* Linux's probe: loopback with RTS|OUT2 must read back CTS|DCD in MSR. */
    outb(h, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_RTS | SERIAL_MCR_OUT2);
    assert_int_equal(inb(h, SERIAL_MSR) & 0xf0, SERIAL_MSR_CTS | SERIAL_MSR_DCD);
    outb(h, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_DTR | SERIAL_MCR_OUT1);
    uint8_t msr = inb(h, SERIAL_MSR);
    assert_int_equal(msr & 0xf0, SERIAL_MSR_DSR | SERIAL_MSR_RI);
    assert_int_equal(msr & 0x0f, SERIAL_MSR_DCTS | SERIAL_MSR_DDSR | SERIAL_MSR_DDCD);
    assert_int_equal(inb(h, SERIAL_MSR) & 0x0f, 0); /* reading MSR cleared the deltas */
    outb(h, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_DTR);
    assert_int_equal(inb(h, SERIAL_MSR) & 0x0f, SERIAL_MSR_TERI); /* RI went 1 -> 0 */

    /* Transmitted bytes come back to the receiver, not to the console. */
    outb(h, SERIAL_THR, 0x5a);
    assert_int_equal(h->out_len, 0);
    assert_int_equal(inb(h, SERIAL_LSR) & SERIAL_LSR_DR, SERIAL_LSR_DR);
    assert_int_equal(inb(h, SERIAL_RBR), 0x5a);

    /* The external input is disconnected meanwhile; it is accepted after loopback ends. */
    const uint8_t in = 'q';
    assert_false(serial_can_receive(h->uart));
    assert_int_equal(serial_receive(h->uart, &in, 1), 0);
    unsigned calls = h->rx_ready_calls;
    outb(h, SERIAL_MCR, SERIAL_MCR_DTR | SERIAL_MCR_RTS | SERIAL_MCR_OUT2);
    assert_int_equal(h->rx_ready_calls, calls + 1);
    assert_int_equal(serial_receive(h->uart, &in, 1), 1);
    assert_int_equal(inb(h, SERIAL_RBR), 'q');
    assert_int_equal(inb(h, SERIAL_MSR) & 0xf0,
                     SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS);
}

static void test_wide_access_and_reset(void **state)
{
    struct harness *h = *state;
    uint64_t v;
    /* A 16-bit write at LCR covers LCR and MCR; a 16-bit read returns both. */
    assert_true(bus_write(&h->pio, PORT_COM1 + SERIAL_LCR, 2, 0x0b03));
    assert_true(bus_read(&h->pio, PORT_COM1 + SERIAL_LCR, 2, &v));
    assert_int_equal(v, 0x0b03);
    outb(h, SERIAL_SCR, 0x77);
    outb(h, SERIAL_IER, SERIAL_IER_ERBFI);
    const uint8_t b = 1;
    serial_receive(h->uart, &b, 1);
    assert_int_equal(irq_level(h), 1);
    serial_reset(h->uart);
    assert_int_equal(irq_level(h), 0);
    assert_int_equal(inb(h, SERIAL_LCR), 0);
    assert_int_equal(inb(h, SERIAL_MCR), 0);
    assert_int_equal(inb(h, SERIAL_SCR), 0);
    assert_int_equal(inb(h, SERIAL_LSR), SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
}

/* Random guest accesses of every width and offset, interleaved with host input: the model's
 * invariants hold throughout (FIFO bounds, the IRQ line matching IIR and the OUT2 gate). */
static void test_random_accesses_keep_invariants(void **state)
{
    struct harness *h = *state;
    uint32_t seed = 12345;
    for (unsigned i = 0; i < 200000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        unsigned size = 1u << (r & 3), reg = (r >> 2) & 7;
        uint64_t v;
        if (reg + size > SERIAL_NR_PORTS)
            size = 1;
        if ((r >> 5) & 1) {
            assert_true(bus_read(&h->pio, PORT_COM1 + reg, size, &v));
        } else if (((r >> 6) & 7) == 0) {
            uint8_t in[20] = {0};
            serial_receive(h->uart, in, (r >> 9) % sizeof(in));
        } else {
            assert_true(bus_write(&h->pio, PORT_COM1 + reg, size, (uint64_t)r * 0x9e3779b9u));
        }
        if (h->out_len > sizeof(h->out) / 2)
            h->out_len = 0;
        h->nlevels = h->nlevels > 32 ? 1 : h->nlevels;
        struct serial *s = h->uart;
        assert_true(s->rx_count <= SERIAL_FIFO_SIZE);
        assert_true(s->rx_head < SERIAL_FIFO_SIZE);
        assert_true(s->ier <= 0x0f && s->mcr <= 0x1f);
        /* Any enabled, pending source asserts the line (priority only matters for IIR). */
        int pending = ((s->ier & SERIAL_IER_ELSI) && s->lsr_errors) ||
                      ((s->ier & SERIAL_IER_ERBFI) && s->rx_count) ||
                      ((s->ier & SERIAL_IER_ETBEI) && s->thr_ipending) ||
                      ((s->ier & SERIAL_IER_EDSSI) && (s->msr & 0x0f));
        int gate = (s->mcr & SERIAL_MCR_OUT2) && !(s->mcr & SERIAL_MCR_LOOP);
        assert_int_equal(s->irq_level, pending && gate);
    }
}

/* The I/O-thread protocol under real concurrency: a feeder thread offers a long stream, waits
 * for rx_ready whenever the FIFO is full, and the "vCPU" drains through the ports. Every byte
 * must arrive once and in order, whatever the interleaving. */
struct feeder {
    struct serial *uart;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned wakeups;
    uint8_t data[4096];
};

static void feeder_rx_ready(void *opaque)
{
    struct feeder *f = opaque;
    pthread_mutex_lock(&f->lock);
    f->wakeups++;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void *feeder_main(void *arg)
{
    struct feeder *f = arg;
    size_t done = 0;
    while (done < sizeof(f->data)) {
        pthread_mutex_lock(&f->lock);
        unsigned seen = f->wakeups;
        pthread_mutex_unlock(&f->lock);
        size_t n = serial_receive(f->uart, f->data + done, MIN(sizeof(f->data) - done, 100));
        done += n;
        if (n == 0) {
            /* Wait for the wakeup the refusal armed (it may already have come). */
            pthread_mutex_lock(&f->lock);
            while (f->wakeups == seen)
                pthread_cond_wait(&f->cond, &f->lock);
            pthread_mutex_unlock(&f->lock);
        }
    }
    return NULL;
}

static void test_threaded_flow_control(void **state)
{
    (void)state;
    struct feeder *f = test_calloc(1, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    for (unsigned i = 0; i < sizeof(f->data); i++)
        f->data[i] = (uint8_t)(i * 7 + i / 256);
    struct serial_config cfg = {.rx_ready = feeder_rx_ready, .opaque = f};
    f->uart = serial_create(&cfg);
    assert_non_null(f->uart);
    struct bus pio;
    bus_init(&pio, "pio");
    assert_int_equal(serial_attach(f->uart, &pio, PORT_COM1), 0);
    assert_true(bus_write(&pio, PORT_COM1 + SERIAL_FCR, 1, SERIAL_FCR_ENABLE));

    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, feeder_main, f), 0);
    unsigned got = 0;
    while (got < sizeof(f->data)) {
        uint64_t lsr, byte;
        assert_true(bus_read(&pio, PORT_COM1 + SERIAL_LSR, 1, &lsr));
        assert_int_equal(lsr & SERIAL_LSR_OE, 0);
        if (!(lsr & SERIAL_LSR_DR)) {
            sched_yield();
            continue;
        }
        assert_true(bus_read(&pio, PORT_COM1 + SERIAL_RBR, 1, &byte));
        assert_int_equal(byte, f->data[got]);
        got++;
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_true(f->wakeups > 0);
    serial_destroy(f->uart);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    test_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_fifo_and_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_overrun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iir_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trigger_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_irq_line_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wide_access_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_accesses_keep_invariants, setup, teardown),
        cmocka_unit_test(test_threaded_flow_control),
    };
    return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
