#include "devices/serial.h"

#include <errno.h>
#include <stdlib.h>

/* Work that must happen after the lock is dropped: the callbacks may block (a console fd) or
 * call back into the UART (the I/O thread offering its pending input). */
struct serial_deferred {
    uint8_t out[SERIAL_NR_PORTS];
    size_t out_len;
    bool rx_ready;
};

static bool serial_fifo_enabled(const struct serial *s)
{
    return s->fcr & SERIAL_FCR_ENABLE;
}

/* Without FIFOs the chip behaves as a 16450: one receive holding register. */
static unsigned serial_rx_capacity(const struct serial *s)
{
    return serial_fifo_enabled(s) ? SERIAL_FIFO_SIZE : 1;
}

static unsigned serial_rx_trigger(const struct serial *s)
{
    static const uint8_t levels[4] = {1, 4, 8, 14};
    return levels[(s->fcr & SERIAL_FCR_TRIGGER) >> 6];
}

static bool serial_loopback(const struct serial *s)
{
    return s->mcr & SERIAL_MCR_LOOP;
}

static uint8_t serial_lsr(const struct serial *s)
{
    /* Transmission is instantaneous, so the holding and shift registers always read empty. */
    uint8_t lsr = s->lsr_errors | SERIAL_LSR_THRE | SERIAL_LSR_TEMT;
    if (s->rx_count)
        lsr |= SERIAL_LSR_DR;
    return lsr;
}

/* The highest-priority pending interrupt, in IIR encoding (without the FIFO bits). */
static uint8_t serial_iir_id(const struct serial *s)
{
    if ((s->ier & SERIAL_IER_ELSI) && s->lsr_errors)
        return SERIAL_IIR_RLSI;
    if ((s->ier & SERIAL_IER_ERBFI) && s->rx_count) {
        /* Below the trigger level a real chip raises the character timeout after four idle
         * character times. Input arrives here in whole batches, so the line is idle as soon as
         * the batch is in: report the timeout at once rather than run a timer. */
        if (serial_fifo_enabled(s) && s->rx_count < serial_rx_trigger(s))
            return SERIAL_IIR_TIMEOUT;
        return SERIAL_IIR_RDI;
    }
    if ((s->ier & SERIAL_IER_ETBEI) && s->thr_ipending)
        return SERIAL_IIR_THRI;
    if ((s->ier & SERIAL_IER_EDSSI) && (s->msr & 0x0f))
        return SERIAL_IIR_MSI;
    return SERIAL_IIR_NO_INT;
}

static void serial_update_irq(struct serial *s)
{
    /* On a PC the chip's INTR pin reaches the PIC through a gate driven by OUT2; in loopback
     * mode the OUT2 pin is forced inactive, which closes the gate. */
    bool gate = (s->mcr & SERIAL_MCR_OUT2) && !serial_loopback(s);
    bool level = gate && serial_iir_id(s) != SERIAL_IIR_NO_INT;
    if (level != s->irq_level) {
        s->irq_level = level;
        /* Called under the lock so that two threads cannot deliver their levels out of order. */
        irq_line_set(&s->cfg.irq, level);
    }
}

/* Recompute the modem status inputs and latch the delta bits for those that changed. */
static void serial_update_msr(struct serial *s)
{
    uint8_t lines;
    if (serial_loopback(s)) {
        lines = 0;
        if (s->mcr & SERIAL_MCR_DTR)
            lines |= SERIAL_MSR_DSR;
        if (s->mcr & SERIAL_MCR_RTS)
            lines |= SERIAL_MSR_CTS;
        if (s->mcr & SERIAL_MCR_OUT1)
            lines |= SERIAL_MSR_RI;
        if (s->mcr & SERIAL_MCR_OUT2)
            lines |= SERIAL_MSR_DCD;
    } else {
        /* A console is always "connected": carrier, data set ready and clear to send. */
        lines = SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS;
    }
    uint8_t old = s->msr & 0xf0, changed = old ^ lines, delta = 0;
    if (changed & SERIAL_MSR_CTS)
        delta |= SERIAL_MSR_DCTS;
    if (changed & SERIAL_MSR_DSR)
        delta |= SERIAL_MSR_DDSR;
    if ((old & SERIAL_MSR_RI) && !(lines & SERIAL_MSR_RI)) /* trailing edge only */
        delta |= SERIAL_MSR_TERI;
    if (changed & SERIAL_MSR_DCD)
        delta |= SERIAL_MSR_DDCD;
    s->msr = lines | (s->msr & 0x0f) | delta;
}

static void serial_rx_clear(struct serial *s)
{
    s->rx_head = 0;
    s->rx_count = 0;
}

/* Room appeared in the receive FIFO: wake the host side if it is waiting. */
static void serial_rx_room(struct serial *s, struct serial_deferred *d)
{
    if (s->rx_blocked && !serial_loopback(s) && s->rx_count < serial_rx_capacity(s)) {
        s->rx_blocked = false;
        d->rx_ready = true;
    }
}

/* One received character from the shift register: into the FIFO, or an overrun if it is full
 * (the FIFO keeps its contents and the new character is lost, as on the 16550A). */
static void serial_rx_push(struct serial *s, uint8_t byte)
{
    if (s->rx_count >= serial_rx_capacity(s)) {
        s->lsr_errors |= SERIAL_LSR_OE;
        return;
    }
    s->rx_fifo[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = byte;
    s->rx_count++;
}

static uint8_t serial_rx_pop(struct serial *s)
{
    if (!s->rx_count)
        return s->rbr_last;
    uint8_t byte = s->rx_fifo[s->rx_head];
    s->rx_head = (uint8_t)((s->rx_head + 1) % SERIAL_FIFO_SIZE);
    s->rx_count--;
    s->rbr_last = byte;
    return byte;
}

static void serial_power_on(struct serial *s)
{
    s->ier = 0;
    s->lcr = 0;
    s->mcr = 0;
    s->lsr_errors = 0;
    s->scr = 0;
    s->fcr = 0;
    s->dll = 12; /* 9600 baud from the 1.8432 MHz clock, what PC firmware leaves behind */
    s->dlm = 0;
    s->rbr_last = 0;
    serial_rx_clear(s);
    s->thr_ipending = false;
    s->msr = 0;
    serial_update_msr(s);
    s->msr &= 0xf0; /* no changes are pending at power-on */
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg, struct serial_deferred *d)
{
    bool dlab = s->lcr & SERIAL_LCR_DLAB;
    uint8_t val;

    switch (reg) {
    case SERIAL_RBR:
        if (dlab)
            return s->dll;
        val = serial_rx_pop(s);
        serial_rx_room(s, d);
        return val;
    case SERIAL_IER:
        return dlab ? s->dlm : s->ier;
    case SERIAL_IIR:
        val = serial_iir_id(s);
        /* Reading IIR acknowledges a THR-empty interrupt when that is the one it reports. */
        if (val == SERIAL_IIR_THRI)
            s->thr_ipending = false;
        return val | (serial_fifo_enabled(s) ? SERIAL_IIR_FIFO : 0);
    case SERIAL_LCR:
        return s->lcr;
    case SERIAL_MCR:
        return s->mcr;
    case SERIAL_LSR:
        val = serial_lsr(s);
        s->lsr_errors = 0;
        return val;
    case SERIAL_MSR:
        val = s->msr;
        s->msr &= 0xf0;
        return val;
    default:
        return s->scr;
    }
}

static void serial_transmit(struct serial *s, uint8_t byte, struct serial_deferred *d)
{
    /* Drop the THRE interrupt while the byte is "in flight" and raise it again when it has
     * gone: edge-triggered interrupt controllers then see a fresh edge for every byte. */
    s->thr_ipending = false;
    serial_update_irq(s);
    if (serial_loopback(s))
        serial_rx_push(s, byte); /* the transmitter feeds the receiver; the line stays idle */
    else if (d->out_len < sizeof(d->out))
        d->out[d->out_len++] = byte;
    s->thr_ipending = true;
}

static void serial_write_fcr(struct serial *s, uint8_t val, struct serial_deferred *d)
{
    /* Switching the FIFOs on or off empties them, as does an explicit receiver reset. */
    if (((val ^ s->fcr) & SERIAL_FCR_ENABLE) || (val & SERIAL_FCR_RX_RESET))
        serial_rx_clear(s);
    /* A transmitter reset changes nothing here: the THR is always already empty. */
    s->fcr = val & (SERIAL_FCR_ENABLE | SERIAL_FCR_DMA | SERIAL_FCR_TRIGGER);
    if (!(s->fcr & SERIAL_FCR_ENABLE))
        s->fcr = 0; /* the other bits only exist while the FIFOs are enabled */
    serial_rx_room(s, d);
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t val,
                             struct serial_deferred *d)
{
    bool dlab = s->lcr & SERIAL_LCR_DLAB;

    switch (reg) {
    case SERIAL_THR:
        if (dlab)
            s->dll = val;
        else
            serial_transmit(s, val, d);
        break;
    case SERIAL_IER:
        if (dlab) {
            s->dlm = val;
        } else {
            /* Enabling ETBEI while the THR is empty raises the interrupt: Linux's 8250 driver
             * tests for exactly this edge at startup and kicks transmission with it. */
            if ((val & SERIAL_IER_ETBEI) && !(s->ier & SERIAL_IER_ETBEI))
                s->thr_ipending = true;
            s->ier = val & 0x0f;
        }
        break;
    case SERIAL_FCR:
        serial_write_fcr(s, val, d);
        break;
    case SERIAL_LCR:
        s->lcr = val;
        break;
    case SERIAL_MCR:
        s->mcr = val & 0x1f;
        serial_update_msr(s);
        serial_rx_room(s, d); /* leaving loopback reconnects the external input */
        break;
    case SERIAL_LSR:
    case SERIAL_MSR:
        break; /* writes to the status registers are for factory tests only; ignore them */
    default:
        s->scr = val;
        break;
    }
}

/* Output leaves in order for any one vCPU; bytes from two vCPUs racing on THR may swap, which
 * a guest prevents anyway by serialising its console writers. */
static void serial_run_deferred(struct serial *s, const struct serial_deferred *d)
{
    if (d->out_len && s->cfg.out)
        s->cfg.out(s->cfg.opaque, d->out, d->out_len);
    if (d->rx_ready && s->cfg.rx_ready)
        s->cfg.rx_ready(s->cfg.opaque);
}

/* A wider access to this byte-wide chip is split into byte cycles, as the ISA bus does. */
static uint64_t serial_bus_read(void *opaque, uint64_t offset, unsigned size)
{
    struct serial *s = opaque;
    struct serial_deferred d = {0};
    uint64_t val = 0;

    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < size; i++) {
        uint64_t reg = offset + i;
        uint8_t byte = reg < SERIAL_NR_PORTS ? serial_read_reg(s, (unsigned)reg, &d) : 0xff;
        val |= (uint64_t)byte << (8 * i);
    }
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    serial_run_deferred(s, &d);
    return val;
}

static void serial_bus_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct serial *s = opaque;
    struct serial_deferred d = {0};

    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < size; i++) {
        uint64_t reg = offset + i;
        if (reg < SERIAL_NR_PORTS)
            serial_write_reg(s, (unsigned)reg, (uint8_t)(data >> (8 * i)), &d);
    }
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    serial_run_deferred(s, &d);
}

const struct bus_dev_ops serial_ops = {
    .read = serial_bus_read,
    .write = serial_bus_write,
};

struct serial *serial_create(const struct serial_config *cfg)
{
    struct serial *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    int err = pthread_mutex_init(&s->lock, NULL);
    if (err) {
        free(s);
        errno = err;
        return NULL;
    }
    if (cfg)
        s->cfg = *cfg;
    serial_power_on(s);
    return s;
}

void serial_destroy(struct serial *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int serial_attach(struct serial *s, struct bus *pio, uint16_t base)
{
    return bus_register(pio, base, SERIAL_NR_PORTS, &serial_ops, s, "serial");
}

void serial_reset(struct serial *s)
{
    struct serial_deferred d = {0};

    pthread_mutex_lock(&s->lock);
    serial_power_on(s);
    serial_rx_room(s, &d);
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    serial_run_deferred(s, &d);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    if (!serial_loopback(s)) {
        while (n < len && s->rx_count < serial_rx_capacity(s))
            serial_rx_push(s, buf[n++]);
    }
    if (n < len)
        s->rx_blocked = true;
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool serial_can_receive(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    bool room = !serial_loopback(s) && s->rx_count < serial_rx_capacity(s);
    if (!room)
        s->rx_blocked = true;
    pthread_mutex_unlock(&s->lock);
    return room;
}
