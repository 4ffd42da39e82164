#include "vmm/console.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved_termios;
static volatile sig_atomic_t termios_saved;
static int saved_fd = -1;

void console_restore(void)
{
    if (termios_saved) {
        tcsetattr(saved_fd, TCSANOW, &saved_termios);
        termios_saved = 0;
    }
}

/* A crash must not leave the user's terminal raw: restore it, then die of the same signal. */
static void console_fatal_signal(int sig)
{
    console_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

void console_init(struct console *c, int in_fd)
{
    memset(c, 0, sizeof(*c));
    c->in_fd = in_fd;
    c->is_tty = in_fd >= 0 && isatty(in_fd);
    if (!c->is_tty)
        return;
    if (tcgetattr(in_fd, &saved_termios) < 0) {
        c->is_tty = false;
        return;
    }
    saved_fd = in_fd;
    termios_saved = 1;
    atexit(console_restore);
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (unsigned i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        signal(fatal[i], console_fatal_signal);
    struct termios raw = saved_termios;
    cfmakeraw(&raw);
    /* Keep output post-processing off too: the guest sends its own CR LF. */
    tcsetattr(in_fd, TCSANOW, &raw);
}

int console_read(struct console *c)
{
    if (c->in_fd < 0)
        return 0;
    uint8_t buf[sizeof(c->pending)];
    size_t room = sizeof(c->pending) - c->pending_len;
    if (room == 0)
        return (int)c->pending_len;
    ssize_t n = read(c->in_fd, buf, room);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? (int)c->pending_len : -errno;
    if (n == 0) {
        c->in_fd = -1; /* EOF on a pipe or /dev/null is not an error: the guest runs on */
        return 0;
    }
    for (ssize_t i = 0; i < n; i++) {
        uint8_t ch = buf[i];
        if (c->is_tty && c->escape_pending) {
            c->escape_pending = false;
            if (ch == 'x' || ch == 'X') {
                c->quit = true;
                return (int)c->pending_len;
            }
            if (ch != CONSOLE_ESCAPE_CHAR)
                continue; /* unknown command: swallowed */
        } else if (c->is_tty && ch == CONSOLE_ESCAPE_CHAR) {
            c->escape_pending = true;
            continue;
        }
        c->pending[c->pending_len++] = ch;
    }
    return (int)c->pending_len;
}

void console_consume(struct console *c, size_t n)
{
    if (n >= c->pending_len) {
        c->pending_len = 0;
        return;
    }
    memmove(c->pending, c->pending + n, c->pending_len - n);
    c->pending_len -= n;
}
