/* COM1 output and formatting. Output polls LSR.THRE rather than trusting a FIFO depth, so it is
 * correct on any 8250-compatible model. */
#include "console.h"

#include <stdint.h>

#include "io.h"
#include "string.h"

static volatile int console_lock;

void console_init(void)
{
    outb(0x00, COM1_BASE + UART_IER);
    outb(0x80, COM1_BASE + UART_LCR); /* DLAB: divisor 1 = 115200 baud */
    outb(0x01, COM1_BASE + 0);
    outb(0x00, COM1_BASE + 1);
    outb(0x03, COM1_BASE + UART_LCR); /* 8N1, DLAB off */
    outb(0x07, COM1_BASE + UART_FCR); /* FIFOs on and cleared, RX trigger at 1 byte */
    outb(0x03, COM1_BASE + UART_MCR); /* DTR, RTS; OUT2 (IRQ gate) only when a test wants IRQs */
}

static void uart_put(char c)
{
    /* Bounded: a UART that never drains must not hang the guest silently forever. */
    for (unsigned spins = 0; spins < 1000000; spins++) {
        if (inb(COM1_BASE + UART_LSR) & UART_LSR_THRE)
            break;
    }
    outb((uint8_t)c, COM1_BASE + UART_THR);
}

void console_putc(char c)
{
    if (c == '\n')
        uart_put('\r');
    uart_put(c);
}

static void lock(void)
{
    while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE))
        cpu_relax();
}

static void unlock(void)
{
    __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

void console_break_lock(void)
{
    unlock();
}

struct outbuf {
    char *buf;
    size_t size;
    size_t len;
};

static void out_char(struct outbuf *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void out_number(struct outbuf *o, uint64_t v, unsigned base, int upper, int width,
                       char pad, int left, int negative)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (negative && pad == '0') {
        out_char(o, '-');
        width--;
        negative = 0;
    }
    int total = n + negative;
    if (!left) {
        for (; width > total; width--)
            out_char(o, pad);
    }
    if (negative)
        out_char(o, '-');
    while (n)
        out_char(o, tmp[--n]);
    for (; width > total; width--)
        out_char(o, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct outbuf o = { buf, size, 0 };

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_char(&o, *fmt);
            continue;
        }
        fmt++;
        int left = 0, width = 0, lng = 0;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int prec = -1;
        if (*fmt == '.') {
            prec = 0;
            for (fmt++; *fmt >= '0' && *fmt <= '9'; fmt++)
                prec = prec * 10 + (*fmt - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        if (left)
            pad = ' ';
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            out_number(&o, mag, 10, 0, width, pad, left, v < 0);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            out_number(&o, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', width, pad, left, 0);
            break;
        }
        case 'p':
            out_char(&o, '0');
            out_char(&o, 'x');
            out_number(&o, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, 0, width, pad, left, 0);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int len = (int)(prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s));
            if (!left)
                for (; width > len; width--)
                    out_char(&o, ' ');
            for (int i = 0; i < len; i++)
                out_char(&o, s[i]);
            for (; width > len; width--)
                out_char(&o, ' ');
            break;
        }
        case 'c':
            out_char(&o, (char)va_arg(ap, int));
            break;
        case '%':
            out_char(&o, '%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            out_char(&o, '%');
            out_char(&o, *fmt);
            break;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int printf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    lock();
    for (const char *p = buf; *p; p++)
        console_putc(*p);
    unlock();
    return n;
}
