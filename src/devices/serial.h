/* A 16550A UART (the PC's COM port), modelled at register level so that Linux's 8250 driver,
 * firmware-style polling code and the test guests all see the chip they expect.
 *
 * Threading: vCPU threads reach the registers through the bus; the I/O thread feeds input with
 * serial_receive(). Both take the device's own lock. The output and rx_ready callbacks run
 * without that lock held, so they may call back into the device. */
#ifndef VIREO_DEVICES_SERIAL_H
#define VIREO_DEVICES_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/platform.h"

#define SERIAL_NR_PORTS  8   /* I/O ports decoded from the base */
#define SERIAL_FIFO_SIZE 16

/* Register offsets from the base port (DLAB selects DLL/DLM at 0 and 1). */
#define SERIAL_RBR 0 /* read: receive buffer; write: THR */
#define SERIAL_THR 0
#define SERIAL_DLL 0
#define SERIAL_IER 1
#define SERIAL_DLM 1
#define SERIAL_IIR 2 /* read: interrupt identification; write: FCR */
#define SERIAL_FCR 2
#define SERIAL_LCR 3
#define SERIAL_MCR 4
#define SERIAL_LSR 5
#define SERIAL_MSR 6
#define SERIAL_SCR 7

#define SERIAL_IER_ERBFI 0x01 /* received data available */
#define SERIAL_IER_ETBEI 0x02 /* transmitter holding register empty */
#define SERIAL_IER_ELSI  0x04 /* receiver line status */
#define SERIAL_IER_EDSSI 0x08 /* modem status */

#define SERIAL_IIR_NO_INT  0x01
#define SERIAL_IIR_MSI     0x00
#define SERIAL_IIR_THRI    0x02
#define SERIAL_IIR_RDI     0x04
#define SERIAL_IIR_RLSI    0x06
#define SERIAL_IIR_TIMEOUT 0x0c
#define SERIAL_IIR_FIFO    0xc0 /* both bits read 1 while the FIFOs are enabled */

#define SERIAL_FCR_ENABLE   0x01
#define SERIAL_FCR_RX_RESET 0x02
#define SERIAL_FCR_TX_RESET 0x04
#define SERIAL_FCR_DMA      0x08
#define SERIAL_FCR_TRIGGER  0xc0

#define SERIAL_LCR_DLAB 0x80

#define SERIAL_MCR_DTR  0x01
#define SERIAL_MCR_RTS  0x02
#define SERIAL_MCR_OUT1 0x04
#define SERIAL_MCR_OUT2 0x08 /* gates the IRQ line on PC hardware */
#define SERIAL_MCR_LOOP 0x10

#define SERIAL_LSR_DR   0x01
#define SERIAL_LSR_OE   0x02
#define SERIAL_LSR_PE   0x04
#define SERIAL_LSR_FE   0x08
#define SERIAL_LSR_BI   0x10
#define SERIAL_LSR_THRE 0x20
#define SERIAL_LSR_TEMT 0x40
#define SERIAL_LSR_FIFOE 0x80

#define SERIAL_MSR_DCTS 0x01
#define SERIAL_MSR_DDSR 0x02
#define SERIAL_MSR_TERI 0x04
#define SERIAL_MSR_DDCD 0x08
#define SERIAL_MSR_CTS  0x10
#define SERIAL_MSR_DSR  0x20
#define SERIAL_MSR_RI   0x40
#define SERIAL_MSR_DCD  0x80

struct serial_config {
    struct irq_line irq; /* IRQ_COM1 for the first port; level-triggered semantics */
    /* Bytes the guest transmits. Called once per transmitted byte run, outside the device lock.
     * Whatever happens to the bytes (a full or closed console), the UART carries on. */
    void (*out)(void *opaque, const uint8_t *buf, size_t len);
    /* Called (outside the lock) when the receive FIFO has room again after serial_receive()
     * accepted less than it was offered or serial_can_receive() said no. May be NULL. */
    void (*rx_ready)(void *opaque);
    void *opaque;
};

/* Device state. Fields other than lock and cfg are the chip's registers: a snapshot saves them
 * as they are. */
struct serial {
    pthread_mutex_t lock;
    struct serial_config cfg;

    uint8_t ier, lcr, mcr, lsr_errors, msr, scr, fcr;
    uint8_t dll, dlm;
    uint8_t rbr_last;           /* what RBR reads when the FIFO is empty */
    uint8_t rx_fifo[SERIAL_FIFO_SIZE];
    uint8_t rx_head, rx_count;
    bool thr_ipending;          /* THR-empty interrupt latched, cleared by IIR read/THR write */
    bool rx_blocked;            /* the host has input waiting for FIFO room */
    bool irq_level;             /* level currently driven on the line */
};

/* Allocate a UART in its power-on state. Returns NULL with errno set on failure. */
struct serial *serial_create(const struct serial_config *cfg);
/* Free the UART. It must no longer be reachable from any bus. */
void serial_destroy(struct serial *s);
/* Register the UART's 8 ports at base (PORT_COM1 for the first one). Returns 0 or -errno. */
int serial_attach(struct serial *s, struct bus *pio, uint16_t base);
/* Put the registers back in their power-on state (guest reset). Input waiting in the FIFO is
 * dropped, as a real reset does; the configuration and callbacks stay. */
void serial_reset(struct serial *s);

/* Feed host input to the receiver. Accepts as many bytes as the receive FIFO has room for and
 * returns that count; the rest must be offered again after cfg.rx_ready fires. While the guest
 * holds the UART in loopback mode the external input is disconnected and nothing is accepted. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);
/* True when serial_receive() would accept at least one byte now. When it returns false,
 * cfg.rx_ready is called once room appears. */
bool serial_can_receive(struct serial *s);

/* The port-I/O handlers (opaque is the struct serial), for callers that register by hand. */
extern const struct bus_dev_ops serial_ops;

#endif
