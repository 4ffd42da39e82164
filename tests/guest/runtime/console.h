/* Polled output on COM1 and a small printf. Every CPU may print: lines are serialised by a
 * spinlock so APs reporting in at once do not interleave mid-line. */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

#define COM1_BASE 0x3f8
#define UART_RBR 0 /* receive buffer (read, DLAB=0) */
#define UART_THR 0 /* transmit holding (write, DLAB=0) */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_DR   0x01
#define UART_LSR_THRE 0x20
#define UART_IER_RDA  0x01
#define UART_MCR_OUT2 0x08

/* Programs COM1 for 115200 8N1 with FIFOs and no interrupts. */
void console_init(void);
/* Writes one character, waiting for THRE first; '\n' goes out as "\r\n". */
void console_putc(char c);
/* Formats like printf: %d %i %u %x %X %p %s %c %%, flags '-' '0', a width, a precision (for %s
 * only), and the l, ll, z length modifiers. Returns the number of characters the full result has. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints to COM1 (at most 255 characters a call) under the console lock. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Drops the console lock: for the fatal-error path, which may interrupt a printing CPU. */
void console_break_lock(void);

#endif
