/* Captures what the PVH loader handed over. Everything is copied at once because the SMP test
 * writes its trampoline into low memory, where loaders like to put these structures. */
#include "pvh.h"

#include "defs.h"
#include "string.h"

struct pvh_boot pvh_boot;

void pvh_capture(uint32_t info_paddr)
{
    pvh_boot.info_paddr = info_paddr;
    if (!info_paddr)
        return;
    memcpy(&pvh_boot.info, (const void *)(uintptr_t)info_paddr, sizeof(pvh_boot.info));
    pvh_boot.valid = pvh_boot.info.magic == PVH_MAGIC;
    if (!pvh_boot.valid)
        return;
    if (pvh_boot.info.version < 1) {
        /* Version 0 ends before the memory map fields. */
        pvh_boot.info.memmap_paddr = 0;
        pvh_boot.info.memmap_entries = 0;
    }
    uint64_t cmd = pvh_boot.info.cmdline_paddr;
    if (cmd && cmd < 0x100000000ULL) {
        const char *src = (const char *)(uintptr_t)cmd;
        size_t n = strnlen(src, PVH_CMDLINE_MAX - 1);
        memcpy(pvh_boot.cmdline, src, n);
        pvh_boot.cmdline[n] = '\0';
    }
    uint64_t mm = pvh_boot.info.memmap_paddr;
    unsigned n = pvh_boot.info.memmap_entries;
    if (mm && mm < 0x100000000ULL) {
        if (n > PVH_MAX_MEMMAP)
            n = PVH_MAX_MEMMAP;
        memcpy(pvh_boot.memmap, (const void *)(uintptr_t)mm, n * sizeof(pvh_boot.memmap[0]));
        pvh_boot.memmap_entries = n;
    }
}

int cmdline_get(const char *key, char *out, unsigned outlen)
{
    size_t klen = strlen(key);
    const char *p = pvh_boot.cmdline;

    while (*p) {
        while (*p == ' ')
            p++;
        const char *tok = p;
        while (*p && *p != ' ')
            p++;
        size_t tlen = (size_t)(p - tok);
        if (tlen < klen || strncmp(tok, key, klen))
            continue;
        if (tlen == klen) {
            if (outlen)
                out[0] = '\0';
            return 0;
        }
        if (tok[klen] != '=')
            continue;
        size_t vlen = tlen - klen - 1;
        if (outlen) {
            size_t c = vlen < outlen - 1 ? vlen : outlen - 1;
            memcpy(out, tok + klen + 1, c);
            out[c] = '\0';
        }
        return (int)vlen;
    }
    return -1;
}

int cmdline_get_size(const char *key, uint64_t *val)
{
    char buf[32];
    const char *end;

    if (cmdline_get(key, buf, sizeof(buf)) <= 0)
        return -1;
    if (buf[0] < '0' || buf[0] > '9')
        return -1;
    uint64_t v = strtou64(buf, &end);
    switch (*end) {
    case 'T': case 't': v <<= 10; /* fall through */
    case 'G': case 'g': v <<= 10; /* fall through */
    case 'M': case 'm': v <<= 10; /* fall through */
    case 'K': case 'k': v <<= 10; end++; break;
    case '\0': break;
    default: return -1;
    }
    if (*end)
        return -1;
    *val = v;
    return 0;
}
