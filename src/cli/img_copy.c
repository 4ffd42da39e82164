/* `vireo img convert|commit|rebase`: the commands that copy guest data between images. Zero
 * ranges are never written, so targets stay sparse. */
#include "cli/img_copy.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "cli/exit_codes.h"
#include "util/err.h"

#define COPY_CHUNK (2u << 20)

static bool is_zero(const uint8_t *p, uint64_t n)
{
    static const uint8_t zeros[4096];
    while (n) {
        uint64_t k = MIN(n, sizeof(zeros));
        if (memcmp(p, zeros, k))
            return false;
        p += k;
        n -= k;
    }
    return true;
}

/* Whether [off, off+n) of src reads as zeros by what the image says, without reading it: a hole
 * in a raw file (SEEK_DATA), or zero / unallocated clusters of a qcow2 image with no backing
 * file. Lets convert skip the empty half of a typical image instead of reading and scanning
 * zeros. Any doubt (an error, a format that cannot tell) answers false: the data is then read. */
static bool src_range_is_zero(struct block_dev *src, uint64_t off, uint64_t n)
{
    if (!strcmp(block_format(src), "raw")) {
        off_t data = lseek(src->fd, (off_t)off, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO; /* no data at or after off */
        return (uint64_t)data >= off + n;
    }
    if (src->backing)
        return false;
    for (uint64_t done = 0; done < n;) {
        struct block_extent e;
        if (block_map(src, off + done, n - done, &e) < 0 || e.length == 0)
            return false;
        if (e.kind != BLOCK_EXT_ZERO && e.kind != BLOCK_EXT_UNALLOC)
            return false;
        done += e.length;
    }
    return true;
}

static char *resolve_rel(const char *image, const char *name)
{
    if (name[0] == '/')
        return strdup(name);
    const char *slash = strrchr(image, '/');
    char *out;
    if (!slash)
        return strdup(name);
    if (asprintf(&out, "%.*s/%s", (int)(slash - image), image, name) < 0)
        return NULL;
    return out;
}

int img_convert(int argc, char **argv)
{
    const char *src_fmt = NULL;
    struct block_create_opts o = {.format = "raw"};
    bool compress = false, progress = false, no_create = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:O:co:pqnB:F:U", NULL, NULL)) != -1) {
        switch (c) {
        case 'f':
            src_fmt = optarg;
            break;
        case 'O':
            o.format = optarg;
            break;
        case 'c':
            compress = true;
            break;
        case 'o':
            if (img_parse_create_opts(optarg, &o) < 0)
                return EXIT_USAGE;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            progress = false;
            break;
        case 'n':
            no_create = true;
            break;
        case 'B':
            o.backing = optarg;
            break;
        case 'F':
            o.backing_format = optarg;
            break;
        case 'U':
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 2) {
        img_err("usage: convert [-f FMT] [-O FMT] [-c] [-p] [-o OPTS] [-B BACKING] SRC DST");
        return EXIT_USAGE;
    }
    const char *src_path = argv[optind], *dst_path = argv[optind + 1];
    if (compress && strcmp(o.format, "qcow2") != 0) {
        img_err("compression needs -O qcow2");
        return EXIT_USAGE;
    }
    struct block_dev *src, *dst, *base = NULL;
    if (img_open(src_path, src_fmt, 0, &src) < 0)
        return 1;
    if (o.backing) {
        char *p = resolve_rel(dst_path, o.backing);
        int ret = p ? img_open(p, o.backing_format, 0, &base) : -ENOMEM;
        free(p);
        if (ret < 0) {
            block_close(src);
            return 1;
        }
        if (!o.backing_format)
            o.backing_format = block_format(base);
    }
    o.size = src->size;
    if (!no_create && block_create(dst_path, &o) < 0) {
        img_err("%s", block_last_error());
        block_close(src);
        block_close(base);
        return 1;
    }
    if (img_open(dst_path, o.format, BLOCK_OPEN_RDWR | BLOCK_OPEN_NO_BACKING, &dst) < 0) {
        block_close(src);
        block_close(base);
        return 1;
    }
    uint64_t chunk = COPY_CHUNK;
    uint64_t gran = 65536;
    const struct qcow2 *dq = qcow2_state(dst);
    block_set_error("%s", "");
    if (dq) {
        gran = dq->cluster_size;
        chunk = MAX(chunk, gran);
    }
    uint8_t *buf = malloc(chunk), *bbuf = base ? malloc(chunk) : NULL;
    int ret = buf && (!base || bbuf) ? 0 : -ENOMEM;
    uint64_t size = MIN(src->size, dst->size);
    img_progress(progress, 0, size);
    for (uint64_t off = 0; ret == 0 && off < size; off += chunk) {
        uint64_t n = MIN(chunk, size - off);
        /* A fresh target reads as zeros already; with -B, zeros may differ from the base. */
        if (!base && src_range_is_zero(src, off, n)) {
            img_progress(progress, off + n, size);
            continue;
        }
        ret = block_pread(src, off, buf, n);
        if (ret < 0) {
            img_err("error reading '%s' at offset %llu: %s%s%s", src_path,
                    (unsigned long long)off, strerror(-ret), block_last_error()[0] ? ": " : "",
                    block_last_error());
            break;
        }
        uint64_t bn = 0;
        if (base && off < base->size) {
            bn = MIN(n, base->size - off);
            ret = block_pread(base, off, bbuf, bn);
            if (ret < 0)
                break;
        }
        /* Clusters to write that follow one another go out as one write: [run, run + run_len)
         * of the chunk. One request instead of one per cluster (32 in a 2 MiB chunk) saves
         * the ring round trips and lets qcow2 allocate the run in one go. */
        uint64_t run = 0, run_len = 0;
        for (uint64_t k = 0; ret == 0 && k < n; k += gran) {
            uint64_t m = MIN(gran, n - k);
            bool zero = is_zero(buf + k, m), skip;
            if (base) {
                /* Only what differs from the new backing file goes into the overlay. */
                bool in_base = k < bn;
                skip = in_base ? m <= bn - k && memcmp(buf + k, bbuf + k, m) == 0 : zero;
            } else {
                skip = zero;
            }
            if (!skip && compress) {
                ret = qcow2_write_compressed(dst, off + k, buf + k, m);
                skip = ret == 0;
                if (ret < 0)
                    break;
                ret = 0; /* > 0: it does not shrink, so it is written as it is */
            }
            if (!skip && run_len && run + run_len == k) {
                run_len += m;
                continue;
            }
            if (run_len)
                ret = block_pwrite(dst, off + run, buf + run, run_len);
            run = k;
            run_len = skip ? 0 : m;
        }
        if (ret == 0 && run_len)
            ret = block_pwrite(dst, off + run, buf + run, run_len);
        if (ret < 0) {
            img_err("error writing '%s': %s", dst_path, strerror(-ret));
            break;
        }
        img_progress(progress, off + n, size);
    }
    if (ret == 0)
        ret = block_flush(dst);
    free(buf);
    free(bbuf);
    block_close(dst);
    block_close(src);
    block_close(base);
    return ret < 0 ? 1 : 0;
}

int img_commit(int argc, char **argv)
{
    const char *fmt = NULL;
    bool keep = false, progress = false, quiet = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:dpq", NULL, NULL)) != -1) {
        if (c == 'f')
            fmt = optarg;
        else if (c == 'd')
            keep = true;
        else if (c == 'p')
            progress = true;
        else if (c == 'q')
            quiet = true;
        else
            return EXIT_USAGE;
    }
    if (optind != argc - 1) {
        img_err("usage: commit [-f FMT] [-d] [-p] FILE");
        return EXIT_USAGE;
    }
    struct block_dev *top, *base;
    if (img_open(argv[optind], fmt, 0, &top) < 0)
        return 1;
    if (!top->backing) {
        img_err("image '%s' has no backing file to commit into", argv[optind]);
        block_close(top);
        return 1;
    }
    if (img_open(top->backing->filename, block_format(top->backing), BLOCK_OPEN_RDWR, &base) < 0) {
        block_close(top);
        return 1;
    }
    int ret = 0;
    if (base->size < top->size)
        ret = block_truncate(base, top->size);
    uint8_t *buf = malloc(COPY_CHUNK);
    if (!buf)
        ret = -ENOMEM;
    img_progress(progress, 0, top->size);
    for (uint64_t off = 0; ret == 0 && off < top->size;) {
        struct block_extent e;
        ret = block_map(top, off, MIN(COPY_CHUNK, top->size - off), &e);
        if (ret < 0)
            break;
        uint64_t n = e.length;
        if (e.kind == BLOCK_EXT_DATA || e.kind == BLOCK_EXT_COMPRESSED) {
            ret = block_pread(top, off, buf, n);
            if (ret == 0)
                ret = block_pwrite(base, off, buf, n);
        } else if (e.kind == BLOCK_EXT_ZERO) {
            ret = block_discard(base, off, n, true);
        }
        off += n;
        img_progress(progress, off, top->size);
    }
    free(buf);
    if (ret == 0)
        ret = block_flush(base);
    block_close(base);
    block_close(top);
    if (ret == 0 && !keep && !strcmp(fmt ? fmt : block_probe(argv[optind]), "qcow2")) {
        ret = img_open(argv[optind], "qcow2", BLOCK_OPEN_RDWR | BLOCK_OPEN_NO_BACKING, &top);
        if (ret < 0)
            return 1;
        ret = qcow2_make_empty(top);
        block_close(top);
    }
    if (ret < 0) {
        img_err("commit of '%s' failed: %s", argv[optind], strerror(-ret));
        return 1;
    }
    if (!quiet)
        printf("Image committed.\n");
    return 0;
}

int img_rebase(int argc, char **argv)
{
    const char *fmt = NULL, *backing = NULL, *bfmt = NULL;
    bool unsafe = false, progress = false, have_b = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:b:F:upqU", NULL, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'b':
            backing = optarg;
            have_b = true;
            break;
        case 'F':
            bfmt = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
        case 'U':
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !have_b) {
        img_err("usage: rebase -b BACKING [-F FMT] [-u] [-p] FILE");
        return EXIT_USAGE;
    }
    const char *file = argv[optind];
    if (backing && !backing[0])
        backing = NULL;
    struct block_dev *top, *nb = NULL;
    if (img_open(file, fmt, BLOCK_OPEN_RDWR | (unsafe ? BLOCK_OPEN_NO_BACKING : 0), &top) < 0)
        return 1;
    if (!qcow2_state(top)) {
        img_err("format '%s' has no backing file to change", block_format(top));
        block_close(top);
        return 1;
    }
    int ret = 0;
    if (backing && (!unsafe || !bfmt)) {
        char *p = resolve_rel(file, backing);
        ret = p ? img_open(p, bfmt, 0, &nb) : -ENOMEM;
        free(p);
        if (ret < 0) {
            block_close(top);
            return 1;
        }
        if (!bfmt)
            bfmt = block_format(nb);
    }
    if (!unsafe) {
        const struct qcow2 *q = qcow2_state(top);
        uint64_t cs = q->cluster_size;
        uint8_t *a = malloc(cs), *b = malloc(cs);
        if (!a || !b)
            ret = -ENOMEM;
        for (uint64_t off = 0; ret == 0 && off < top->size;) {
            struct block_extent e;
            ret = block_map(top, off, MIN(COPY_CHUNK, top->size - off), &e);
            if (ret < 0)
                break;
            if (e.kind != BLOCK_EXT_UNALLOC) {
                off += e.length;
                continue;
            }
            /* Unallocated here: whatever the old chain showed must still show after. */
            uint64_t end = off + e.length;
            for (; ret == 0 && off < end;) {
                uint64_t n = MIN(cs - (off & (cs - 1)), end - off);
                ret = block_pread(top, off, a, n);
                memset(b, 0, n);
                if (ret == 0 && nb && off < nb->size)
                    ret = block_pread(nb, off, b, MIN(n, nb->size - off));
                if (ret == 0 && memcmp(a, b, n) != 0)
                    ret = block_pwrite(top, off, a, n);
                off += n;
            }
            img_progress(progress, off, top->size);
        }
        free(a);
        free(b);
    }
    if (ret == 0)
        ret = qcow2_set_backing(top, backing, backing ? bfmt : NULL);
    if (ret == 0)
        ret = block_flush(top);
    block_close(nb);
    block_close(top);
    if (ret < 0) {
        img_err("rebase of '%s' failed: %s", file, strerror(-ret));
        return 1;
    }
    return 0;
}
