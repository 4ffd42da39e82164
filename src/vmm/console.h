/* The serial console on the host side: the terminal (raw mode, restored on every exit path, the
 * Ctrl-A x escape) and the input pump from stdin into the guest's UART. */
#ifndef VIREO_VMM_CONSOLE_H
#define VIREO_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct console {
    int in_fd;              /* -1: no input */
    bool is_tty;
    bool escape_pending;    /* Ctrl-A seen, waiting for the command key */
    bool quit;              /* the user typed Ctrl-A x */
    uint8_t pending[256];   /* input the UART had no room for yet */
    size_t pending_len;
};

/* Take input from in_fd (stdin); on a terminal switch it to raw mode until console_restore() or
 * process exit, including exits by fatal signal. */
void console_init(struct console *c, int in_fd);
/* Put the terminal back as it was. Idempotent; safe from signal handlers. */
void console_restore(void);

/* Read what in_fd has and filter the escape sequence; returns bytes now pending for the guest,
 * 0 on EOF (further input is ignored: in_fd is set to -1), or -errno. */
int console_read(struct console *c);

/* Drop the first n pending bytes (the guest took them). */
void console_consume(struct console *c, size_t n);

#define CONSOLE_ESCAPE_CHAR 0x01 /* Ctrl-A */

#endif
