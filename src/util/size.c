#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int size_parse(const char *text, uint64_t default_unit, uint64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    uint64_t unit = default_unit;
    if (*end) {
        static const char suffixes[] = "KMGTP";
        const char *s = strchr(suffixes, toupper((unsigned char)*end));
        if (!s)
            return -EINVAL;
        unit = 1ULL << (10 * (s - suffixes + 1));
        end++;
        if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0)
            end += strlen(end);
        if (*end)
            return -EINVAL;
    }
    if (value && unit > UINT64_MAX / value)
        return -ERANGE;
    *out = value * unit;
    return 0;
}

char *size_format(uint64_t bytes, char *buf, unsigned len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned i = 0;
    double v = (double)bytes;
    while (v >= 1024 && i + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        i++;
    }
    if (i == 0 || v == (double)(uint64_t)v)
        snprintf(buf, len, "%.0f %s", v, units[i]);
    else
        snprintf(buf, len, "%.1f %s", v, units[i]);
    return buf;
}
