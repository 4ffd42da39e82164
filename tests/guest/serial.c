/* serial: the harness waits for the "ready" line, then types a line on the VMM's stdin; the
 * guest receives it through the UART's RX-data interrupt, routed ISA IRQ 4 -> IOAPIC (pin and
 * polarity from the MADT) -> this CPU's LAPIC, and echoes it back. So this checks input, the
 * UART's interrupt logic and the interrupt controllers in one go. */
#include "runtime.h"

#include "acpi.h"
#include "apic.h"
#include "timer.h"
#include "trap.h"

const char guest_name[] = "serial";

#define RX_VECTOR 0x34
#define LINE_MAX  128

static char line[LINE_MAX];
static volatile unsigned line_len;
static volatile int line_done;
static volatile unsigned rx_irqs;

static void rx_interrupt(struct trap_frame *f)
{
    (void)f;
    rx_irqs++;
    while (inb(COM1_BASE + UART_LSR) & UART_LSR_DR) {
        char c = (char)inb(COM1_BASE + UART_RBR);
        if (line_done)
            continue;
        if (c == '\n' || c == '\r') {
            line_done = line_len > 0;
            continue;
        }
        if (line_len < LINE_MAX - 1)
            line[line_len++] = c;
    }
    lapic_eoi();
}

int guest_main(void)
{
    struct acpi_madt_info m;
    uint32_t gsi;
    uint16_t flags;

    ASSERT(acpi_init() == 0);
    ASSERT(acpi_madt(&m) == 0);
    ASSERT(m.nioapics >= 1);
    ASSERT(lapic_init() == 0);
    ASSERT(timer_init() == 0);
    acpi_isa_irq(4, &gsi, &flags);
    ASSERT(gsi >= m.ioapic_gsi_base);
    uint32_t maxpin = (ioapic_read(m.ioapic_addr, 1) >> 16) & 0xff;
    unsigned pin = gsi - m.ioapic_gsi_base;
    printf("serial: COM1 IRQ 4 -> GSI %u (flags 0x%x) -> IOAPIC at 0x%lx pin %u of %u\n", gsi,
           flags, m.ioapic_addr, pin, maxpin + 1);
    ASSERT(pin <= maxpin);

    /* The 8259s stay out of the way: mask every line. */
    outb(0xff, 0x21);
    outb(0xff, 0xa1);
    lapic_enable();
    trap_set_handler(RX_VECTOR, rx_interrupt);
    ioapic_route(m.ioapic_addr, pin, RX_VECTOR, lapic_id(), flags);

    /* Drain anything typed before we were listening, then let the UART interrupt. */
    while (inb(COM1_BASE + UART_LSR) & UART_LSR_DR)
        (void)inb(COM1_BASE + UART_RBR);
    outb(0x0b, COM1_BASE + UART_MCR); /* DTR, RTS, OUT2 (the PC's IRQ gate) */
    outb(UART_IER_RDA, COM1_BASE + UART_IER);
    printf("serial: ready for a line on COM1 (RX interrupt on vector 0x%x)\n", RX_VECTOR);

    irq_enable();
    uint64_t deadline = timer_now_us() + 30000000;
    while (!line_done) {
        if (timer_now_us() > deadline)
            break;
    }
    irq_disable();
    outb(0, COM1_BASE + UART_IER);
    ioapic_mask(m.ioapic_addr, pin);
    if (!line_done) {
        uint8_t lsr = inb(COM1_BASE + UART_LSR), iir = inb(COM1_BASE + UART_IIR);
        printf("serial: no full line after 30 s: %u interrupts, %u chars, LSR 0x%02x IIR 0x%02x\n",
               rx_irqs, line_len, lsr, iir);
        test_fail("no line received");
    }
    line[line_len] = '\0';
    printf("serial: %u RX interrupts\n", rx_irqs);
    printf("serial: echo: %s\n", line);
    ASSERT(rx_irqs > 0);
    return 0;
}
