#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level current_level = LOG_WARN;
static char vm_name[64] = "vireo";

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }

void log_set_name(const char *name)
{
    snprintf(vm_name, sizeof(vm_name), "%s", name);
}

int log_parse_level(const char *name, enum log_level *out)
{
    static const char *const names[] = {"err", "warn", "info", "debug"};
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"error", "warning", "info", "debug"};
    if (level > current_level)
        return;
    /* Build the whole line first so concurrent vCPU threads never interleave within a line. */
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s: %s: ", vm_name, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
