/* `vireo img`: dispatch and the commands that inspect or reshape one image (create, info, check,
 * map, resize). Exit codes: 0 ok, 1 failure, 2 bad usage; check follows qemu-img (2 corruptions,
 * 3 leaks, 63 format without checks). */
#include "cli/img.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "block/qcow2.h"
#include "cli/exit_codes.h"
#include "block/qcow2_check.h"
#include "cli/img_copy.h"
#include "util/err.h"
#include "util/size.h"


void img_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vireo img: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int img_open(const char *path, const char *fmt, unsigned flags, struct block_dev **out)
{
    struct block_open_opts o = {.format = fmt, .flags = flags};
    int ret = block_open(path, &o, out);
    if (ret < 0)
        img_err("%s", block_last_error()[0] ? block_last_error() : strerror(-ret));
    return ret;
}

void img_progress(bool enabled, uint64_t done, uint64_t total)
{
    if (!enabled)
        return;
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    printf("    (%.2f/100%%)\r", pct);
    if (done >= total)
        printf("\n");
    fflush(stdout);
}

static bool parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "on") || !strcmp(v, "true")) {
        *out = 1;
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "false")) {
        *out = 0;
        return true;
    }
    return false;
}

int img_parse_create_opts(char *text, struct block_create_opts *o)
{
    char *save = NULL;
    for (char *kv = strtok_r(text, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (!v) {
            img_err("invalid option '%s' (expected name=value)", kv);
            return -EINVAL;
        }
        *v++ = 0;
        uint64_t n;
        if (!strcmp(kv, "cluster_size")) {
            if (size_parse(v, 1, &n) < 0 || n > (2u << 20)) {
                img_err("invalid cluster_size '%s'", v);
                return -EINVAL;
            }
            o->cluster_size = (uint32_t)n;
        } else if (!strcmp(kv, "compat")) {
            if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
                o->compat_v2 = 1;
            else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
                o->compat_v2 = 0;
            else {
                img_err("invalid compat '%s' (0.10 or 1.1)", v);
                return -EINVAL;
            }
        } else if (!strcmp(kv, "refcount_bits")) {
            if (size_parse(v, 1, &n) < 0 || n > 64) {
                img_err("invalid refcount_bits '%s'", v);
                return -EINVAL;
            }
            o->refcount_bits = (int)n;
        } else if (!strcmp(kv, "lazy_refcounts")) {
            if (!parse_bool(v, &o->lazy_refcounts)) {
                img_err("invalid lazy_refcounts '%s'", v);
                return -EINVAL;
            }
        } else if (!strcmp(kv, "backing_file")) {
            o->backing = v;
        } else if (!strcmp(kv, "backing_fmt")) {
            o->backing_format = v;
        } else if (!strcmp(kv, "size")) {
            if (size_parse(v, 1, &o->size) < 0) {
                img_err("invalid size '%s'", v);
                return -EINVAL;
            }
        } else {
            img_err("unsupported option '%s'", kv);
            return -EINVAL;
        }
    }
    return 0;
}

/* Resolve a backing name the way the image will: relative to the image's directory. */
static char *resolve_backing(const char *image, const char *name)
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

static int cmd_create(int argc, char **argv)
{
    struct block_create_opts o = {.format = "raw"};
    bool quiet = false, unsafe = false, have_fmt = false;
    int c;
    static const struct option longs[] = {{"quiet", no_argument, 0, 'q'}, {0, 0, 0, 0}};
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:b:F:o:qu", longs, NULL)) != -1) {
        switch (c) {
        case 'f':
            o.format = optarg;
            have_fmt = true;
            break;
        case 'b':
            o.backing = optarg;
            break;
        case 'F':
            o.backing_format = optarg;
            break;
        case 'o':
            if (img_parse_create_opts(optarg, &o) < 0)
                return EXIT_USAGE;
            break;
        case 'q':
            quiet = true;
            break;
        case 'u':
            unsafe = true;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    (void)have_fmt;
    if (optind >= argc || argc - optind > 2) {
        img_err("usage: create [-f FMT] [-o OPTS] [-b BACKING [-F FMT]] [-u] FILE [SIZE]");
        return EXIT_USAGE;
    }
    const char *file = argv[optind];
    bool have_size = argc - optind == 2;
    if (have_size && size_parse(argv[optind + 1], 1, &o.size) < 0) {
        img_err("invalid size '%s'", argv[optind + 1]);
        return EXIT_USAGE;
    }
    if (o.backing && strcmp(o.format, "qcow2") != 0) {
        img_err("format '%s' does not support backing files", o.format);
        return EXIT_USAGE;
    }
    char probed[16] = "";
    if (o.backing && (!unsafe || !have_size)) {
        char *path = resolve_backing(file, o.backing);
        struct block_dev *b;
        int ret = path ? img_open(path, o.backing_format, 0, &b) : -ENOMEM;
        free(path);
        if (ret < 0)
            return 1;
        if (!have_size)
            o.size = b->size;
        if (!o.backing_format) {
            snprintf(probed, sizeof(probed), "%s", block_format(b));
            o.backing_format = probed;
        }
        block_close(b);
    } else if (!have_size) {
        img_err("image size must be specified");
        return EXIT_USAGE;
    }
    if (!quiet) {
        printf("Formatting '%s', fmt=%s", file, o.format);
        if (!strcmp(o.format, "qcow2"))
            printf(" cluster_size=%u", o.cluster_size ? o.cluster_size : 65536);
        printf(" size=%llu", (unsigned long long)o.size);
        if (o.backing)
            printf(" backing_file=%s backing_fmt=%s", o.backing,
                   o.backing_format ? o.backing_format : "");
        printf("\n");
    }
    if (block_create(file, &o) < 0) {
        img_err("%s", block_last_error());
        return 1;
    }
    return 0;
}

/* ---- info ---- */

static json_object *info_json(struct block_dev *bd)
{
    json_object *j = json_object_new_object();
    const struct qcow2 *q = qcow2_state(bd);
    if (q && q->nb_snapshots) {
        json_object *arr = json_object_new_array();
        for (uint32_t i = 0; i < q->nb_snapshots; i++) {
            const struct qcow2_snapshot *s = &q->snapshots[i];
            json_object *o = json_object_new_object();
            json_object_object_add(o, "id", json_object_new_string(s->id));
            json_object_object_add(o, "name", json_object_new_string(s->name));
            json_object_object_add(o, "vm-state-size",
                                   json_object_new_int64((int64_t)s->vm_state_size));
            json_object_object_add(o, "date-sec", json_object_new_int64(s->date_sec));
            json_object_object_add(o, "date-nsec", json_object_new_int64(s->date_nsec));
            json_object_object_add(o, "vm-clock-sec",
                                   json_object_new_int64((int64_t)(s->vm_clock_nsec / 1000000000)));
            json_object_object_add(o, "vm-clock-nsec",
                                   json_object_new_int64((int64_t)(s->vm_clock_nsec % 1000000000)));
            if (s->icount != UINT64_MAX)
                json_object_object_add(o, "icount", json_object_new_int64((int64_t)s->icount));
            json_object_array_add(arr, o);
        }
        json_object_object_add(j, "snapshots", arr);
    }
    json_object_object_add(j, "virtual-size", json_object_new_int64((int64_t)bd->size));
    json_object_object_add(j, "filename", json_object_new_string(bd->filename));
    if (q)
        json_object_object_add(j, "cluster-size", json_object_new_int64((int64_t)q->cluster_size));
    json_object_object_add(j, "format", json_object_new_string(block_format(bd)));
    json_object_object_add(j, "actual-size", json_object_new_int64((int64_t)block_disk_usage(bd)));
    if (q) {
        json_object *fs = json_object_new_object(), *d = json_object_new_object();
        json_object_object_add(fs, "type", json_object_new_string("qcow2"));
        json_object_object_add(d, "compat",
                               json_object_new_string(q->version == 3 ? "1.1" : "0.10"));
        if (q->version == 3) {
            json_object_object_add(d, "compression-type",
                                   json_object_new_string(q->compression_type ? "zstd" : "zlib"));
            json_object_object_add(d, "lazy-refcounts",
                                   json_object_new_boolean(q->compat &
                                                           QCOW2_COMPAT_LAZY_REFCOUNTS));
        }
        json_object_object_add(d, "refcount-bits", json_object_new_int(1 << q->refcount_order));
        json_object_object_add(d, "corrupt",
                               json_object_new_boolean(q->incompat & QCOW2_INCOMPAT_CORRUPT));
        if (q->version == 3)
            json_object_object_add(d, "extended-l2",
                                   json_object_new_boolean(q->incompat & QCOW2_INCOMPAT_EXTL2));
        json_object_object_add(fs, "data", d);
        json_object_object_add(j, "format-specific", fs);
        if (q->backing_name) {
            char *full = resolve_backing(bd->filename, q->backing_name);
            json_object_object_add(j, "full-backing-filename",
                                   json_object_new_string(full ? full : q->backing_name));
            free(full);
            json_object_object_add(j, "backing-filename", json_object_new_string(q->backing_name));
            if (q->backing_format)
                json_object_object_add(j, "backing-filename-format",
                                       json_object_new_string(q->backing_format));
        }
    }
    json_object_object_add(j, "dirty-flag",
                           json_object_new_boolean(q && (q->incompat & QCOW2_INCOMPAT_DIRTY)));
    return j;
}

static void info_human(struct block_dev *bd)
{
    char a[32], b[32];
    const struct qcow2 *q = qcow2_state(bd);
    printf("image: %s\nfile format: %s\n", bd->filename, block_format(bd));
    printf("virtual size: %s (%llu bytes)\n", size_format(bd->size, a, sizeof(a)),
           (unsigned long long)bd->size);
    printf("disk size: %s\n", size_format(block_disk_usage(bd), b, sizeof(b)));
    if (!q)
        return;
    printf("cluster_size: %llu\n", (unsigned long long)q->cluster_size);
    if (q->backing_name) {
        printf("backing file: %s\n", q->backing_name);
        if (q->backing_format)
            printf("backing file format: %s\n", q->backing_format);
    }
    if (q->nb_snapshots) {
        printf("Snapshot list:\nID        TAG               VM SIZE                DATE"
               "     VM CLOCK"
               "     ICOUNT\n");
        for (uint32_t i = 0; i < q->nb_snapshots; i++) {
            const struct qcow2_snapshot *s = &q->snapshots[i];
            char date[32];
            time_t t = s->date_sec;
            struct tm tm;
            strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
            uint64_t secs = s->vm_clock_nsec / 1000000000;
            printf("%-9s %-17s %7s %s %02llu:%02llu:%02llu.%03llu %10llu\n", s->id, s->name,
                   size_format(s->vm_state_size, a, sizeof(a)), date,
                   (unsigned long long)(secs / 3600), (unsigned long long)(secs / 60 % 60),
                   (unsigned long long)(secs % 60),
                   (unsigned long long)(s->vm_clock_nsec % 1000000000 / 1000000),
                   (unsigned long long)(s->icount == UINT64_MAX ? 0 : s->icount));
        }
    }
    printf("Format specific information:\n    compat: %s\n", q->version == 3 ? "1.1" : "0.10");
    if (q->version == 3) {
        printf("    compression type: %s\n", q->compression_type ? "zstd" : "zlib");
        printf("    lazy refcounts: %s\n",
               q->compat & QCOW2_COMPAT_LAZY_REFCOUNTS ? "true" : "false");
    }
    printf("    refcount bits: %d\n", 1 << q->refcount_order);
    printf("    corrupt: %s\n", q->incompat & QCOW2_INCOMPAT_CORRUPT ? "true" : "false");
    if (q->version == 3)
        printf("    extended l2: %s\n", q->incompat & QCOW2_INCOMPAT_EXTL2 ? "true" : "false");
}

/* --output human|json, shared by info, check and map. */
static int parse_output(const char *arg, bool *json)
{
    *json = !strcmp(arg, "json");
    if (!*json && strcmp(arg, "human") != 0) {
        img_err("--output must be human or json");
        return -EINVAL;
    }
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    const char *fmt = NULL;
    bool json = false, chain = false;
    static const struct option longs[] = {{"output", required_argument, 0, 'O'},
                                          {"json", no_argument, 0, 'j'},
                                          {"backing-chain", no_argument, 0, 'c'},
                                          {"force-share", no_argument, 0, 'U'},
                                          {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:U", longs, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            if (parse_output(optarg, &json) < 0)
                return EXIT_USAGE;
            break;
        case 'j':
            json = true;
            break;
        case 'c':
            chain = true;
            break;
        case 'U':
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        img_err("usage: info [-f FMT] [--output human|json] [--backing-chain] FILE");
        return EXIT_USAGE;
    }
    struct block_dev *bd;
    if (img_open(argv[optind], fmt, chain ? 0 : BLOCK_OPEN_NO_BACKING, &bd) < 0)
        return 1;
    json_object *arr = chain && json ? json_object_new_array() : NULL;
    for (struct block_dev *d = bd; d; d = chain ? d->backing : NULL) {
        if (json) {
            json_object *j = info_json(d);
            if (arr) {
                json_object_array_add(arr, j);
            } else {
                printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                                     JSON_C_TO_STRING_SPACED));
                json_object_put(j);
            }
        } else {
            if (d != bd)
                printf("\n");
            info_human(d);
        }
    }
    if (arr) {
        printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_SPACED));
        json_object_put(arr);
    }
    block_close(bd);
    return 0;
}

/* ---- check ---- */

static void check_summary(const struct qcow2_check_result *r)
{
    if (!r->corruptions && !r->leaks) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions)
            printf("\n%llu errors were found on the image.\nData may be corrupted, or further "
                   "writes to the image may corrupt it.\n", (unsigned long long)r->corruptions);
        if (r->leaks)
            printf("\n%llu leaked clusters were found on the image.\nThis means waste of disk "
                   "space, but no harm to data.\n", (unsigned long long)r->leaks);
    }
    if (r->total_clusters && r->allocated_clusters)
        printf("%llu/%llu = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
               (unsigned long long)r->allocated_clusters, (unsigned long long)r->total_clusters,
               100.0 * (double)r->allocated_clusters / (double)r->total_clusters,
               100.0 * (double)r->fragmented_clusters / (double)r->allocated_clusters,
               100.0 * (double)r->compressed_clusters / (double)r->allocated_clusters);
    printf("Image end offset: %llu\n", (unsigned long long)r->image_end);
}

static int cmd_check(int argc, char **argv)
{
    const char *fmt = NULL;
    int repair = 0;
    bool json = false, quiet = false;
    static const struct option longs[] = {{"output", required_argument, 0, 'O'},
                                          {"repair", required_argument, 0, 'r'},
                                          {"force-share", no_argument, 0, 'U'},
                                          {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:r:qU", longs, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'r':
            if (!strcmp(optarg, "leaks"))
                repair = QCOW2_REPAIR_LEAKS;
            else if (!strcmp(optarg, "all"))
                repair = QCOW2_REPAIR_ALL;
            else {
                img_err("-r must be 'leaks' or 'all'");
                return EXIT_USAGE;
            }
            break;
        case 'O':
            if (parse_output(optarg, &json) < 0)
                return EXIT_USAGE;
            break;
        case 'q':
            quiet = true;
            break;
        case 'U':
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        img_err("usage: check [-f FMT] [-r leaks|all] [--output human|json] FILE");
        return EXIT_USAGE;
    }
    struct block_dev *bd;
    unsigned flags = BLOCK_OPEN_NO_BACKING | BLOCK_OPEN_REPAIR | (repair ? BLOCK_OPEN_RDWR : 0);
    if (img_open(argv[optind], fmt, flags, &bd) < 0)
        return 1;
    if (!qcow2_state(bd)) {
        img_err("This image format does not support checks");
        block_close(bd);
        return 63;
    }
    FILE *log = quiet || json ? NULL : stdout;
    struct qcow2_check_result r;
    int ret = qcow2_check(bd, repair, &r, log);
    if (ret == 0 && (r.leaks_fixed || r.corruptions_fixed)) {
        if (log)
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %llu leaked clusters\n    %llu corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   (unsigned long long)r.leaks_fixed, (unsigned long long)r.corruptions_fixed);
        ret = qcow2_check(bd, 0, &r, log);
    }
    if (ret < 0) {
        img_err("check of '%s' could not complete: %s", argv[optind], strerror(-ret));
        block_close(bd);
        return 1;
    }
    if (json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "image-end-offset", json_object_new_int64((int64_t)r.image_end));
        json_object_object_add(j, "total-clusters",
                               json_object_new_int64((int64_t)r.total_clusters));
        json_object_object_add(j, "check-errors", json_object_new_int(0));
        if (r.leaks)
            json_object_object_add(j, "leaks", json_object_new_int64((int64_t)r.leaks));
        if (r.corruptions)
            json_object_object_add(j, "corruptions", json_object_new_int64((int64_t)r.corruptions));
        json_object_object_add(j, "allocated-clusters",
                               json_object_new_int64((int64_t)r.allocated_clusters));
        json_object_object_add(j, "fragmented-clusters",
                               json_object_new_int64((int64_t)r.fragmented_clusters));
        json_object_object_add(j, "compressed-clusters",
                               json_object_new_int64((int64_t)r.compressed_clusters));
        json_object_object_add(j, "filename", json_object_new_string(bd->filename));
        json_object_object_add(j, "format", json_object_new_string("qcow2"));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_SPACED));
        json_object_put(j);
    } else if (!quiet) {
        check_summary(&r);
    }
    block_close(bd);
    if (r.corruptions)
        return 2;
    if (r.leaks)
        return 3;
    return 0;
}

/* ---- map ---- */

struct map_ext {
    uint64_t start, length, offset;
    int depth;
    bool present, zero, data, has_offset;
    const char *file;
};

/* Raw layers: holes in the file read as zeros (what qemu-img map reports too). */
static int map_raw(struct block_dev *d, uint64_t off, uint64_t len, int depth, struct map_ext *m)
{
    off_t data = lseek(d->fd, (off_t)off, SEEK_DATA);
    bool hole;
    uint64_t end;
    if (data < 0 && errno == ENXIO) { /* only a hole until the end of the file */
        hole = true;
        end = off + len;
    } else if (data < 0) { /* no SEEK_DATA here: call it all data */
        hole = false;
        end = off + len;
    } else if ((uint64_t)data > off) {
        hole = true;
        end = (uint64_t)data;
    } else {
        off_t h = lseek(d->fd, (off_t)off, SEEK_HOLE);
        hole = false;
        end = h < 0 ? off + len : (uint64_t)h;
    }
    *m = (struct map_ext){off, MIN(end, off + len) - off, off, depth, true, hole, !hole, true,
                          d->filename};
    return 0;
}

/* Where guest bytes at off come from, walking down the chain. */
static int map_one(struct block_dev *bd, uint64_t off, uint64_t len, struct map_ext *m)
{
    int depth = 0;
    for (struct block_dev *d = bd; d; d = d->backing, depth++) {
        if (off >= d->size) {
            /* Past the end of a backing layer: zeros, owned by the layer above (as qemu-img). */
            *m = (struct map_ext){off, len, 0, depth ? depth - 1 : 0, false, true, false, false,
                                  d->filename};
            return 0;
        }
        len = MIN(len, d->size - off);
        if (!strcmp(block_format(d), "raw"))
            return map_raw(d, off, len, depth, m);
        struct block_extent e;
        int ret = block_map(d, off, len, &e);
        if (ret < 0)
            return ret;
        len = e.length;
        *m = (struct map_ext){off, len, 0, depth, true, false, false, false, d->filename};
        switch (e.kind) {
        case BLOCK_EXT_DATA:
            m->data = true;
            m->has_offset = true;
            m->offset = e.host_offset;
            return 0;
        case BLOCK_EXT_COMPRESSED:
            m->data = true;
            return 0;
        case BLOCK_EXT_ZERO:
            m->zero = true;
            return 0;
        case BLOCK_EXT_UNALLOC:
            if (!d->backing) {
                m->present = false;
                m->zero = true;
                return 0;
            }
            break;
        }
    }
    return -EIO;
}

static void map_print(const struct map_ext *e, bool json, bool *first)
{
    if (!json) {
        if (e->data && e->has_offset)
            printf("%#-16llx%#-16llx%#-16llx%s\n", (unsigned long long)e->start,
                   (unsigned long long)e->length, (unsigned long long)e->offset, e->file);
        return;
    }
    printf("%s{ \"start\": %llu, \"length\": %llu, \"depth\": %d, \"present\": %s, "
           "\"zero\": %s, \"data\": %s", *first ? "[" : ",\n", (unsigned long long)e->start,
           (unsigned long long)e->length, e->depth, e->present ? "true" : "false",
           e->zero ? "true" : "false", e->data ? "true" : "false");
    if (e->has_offset)
        printf(", \"offset\": %llu", (unsigned long long)e->offset);
    printf("}");
    *first = false;
}

static int cmd_map(int argc, char **argv)
{
    const char *fmt = NULL;
    bool json = false;
    static const struct option longs[] = {{"output", required_argument, 0, 'O'},
                                          {"force-share", no_argument, 0, 'U'},
                                          {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+f:U", longs, NULL)) != -1) {
        if (c == 'f')
            fmt = optarg;
        else if (c == 'O') {
            if (parse_output(optarg, &json) < 0)
                return EXIT_USAGE;
        } else if (c != 'U')
            return EXIT_USAGE;
    }
    if (optind != argc - 1) {
        img_err("usage: map [-f FMT] [--output human|json] FILE");
        return EXIT_USAGE;
    }
    struct block_dev *bd;
    if (img_open(argv[optind], fmt, 0, &bd) < 0)
        return 1;
    if (!json)
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    struct map_ext cur = {0}, m;
    bool have = false, first = true;
    int ret = 0;
    for (uint64_t off = 0; off < bd->size; off += m.length) {
        ret = map_one(bd, off, bd->size - off, &m);
        if (ret < 0)
            break;
        if (have && cur.depth == m.depth && cur.present == m.present && cur.zero == m.zero &&
            cur.data == m.data && cur.has_offset == m.has_offset &&
            (!m.has_offset || cur.offset + cur.length == m.offset)) {
            cur.length += m.length;
            continue;
        }
        if (have)
            map_print(&cur, json, &first);
        cur = m;
        have = true;
    }
    if (ret == 0 && have)
        map_print(&cur, json, &first);
    if (json)
        printf("%s\n", first ? "[]" : "]");
    block_close(bd);
    if (ret < 0) {
        img_err("map failed: %s", strerror(-ret));
        return 1;
    }
    return 0;
}

/* ---- resize ---- */

static int cmd_resize(int argc, char **argv)
{
    const char *fmt = NULL;
    bool shrink = false, quiet = false;
    static const struct option longs[] = {{"shrink", no_argument, 0, 's'}, {0, 0, 0, 0}};
    int c;
    optind = 0;
    /* A leading '-' on the size ("-1G") is not an option: stop at the first non-option. */
    while ((c = getopt_long(argc, argv, "+f:q", longs, NULL)) != -1) {
        if (c == 'f')
            fmt = optarg;
        else if (c == 'q')
            quiet = true;
        else if (c == 's')
            shrink = true;
        else
            return EXIT_USAGE;
    }
    if (optind != argc - 2) {
        img_err("usage: resize [-f FMT] [--shrink] FILE [+|-]SIZE");
        return EXIT_USAGE;
    }
    const char *s = argv[optind + 1];
    int sign = 0;
    if (*s == '+' || *s == '-')
        sign = *s++ == '+' ? 1 : -1;
    uint64_t n;
    if (size_parse(s, 1, &n) < 0) {
        img_err("invalid size '%s'", argv[optind + 1]);
        return EXIT_USAGE;
    }
    struct block_dev *bd;
    if (img_open(argv[optind], fmt, BLOCK_OPEN_RDWR, &bd) < 0)
        return 1;
    uint64_t size = sign > 0 ? bd->size + n : sign < 0 ? bd->size - n : n;
    if (sign < 0 && n > bd->size) {
        img_err("new size would be negative");
        block_close(bd);
        return 1;
    }
    if (size < bd->size && !shrink) {
        img_err("use the --shrink option to shrink an image (data past the new end is lost)");
        block_close(bd);
        return 1;
    }
    int ret = block_truncate(bd, size);
    block_close(bd);
    if (ret < 0) {
        img_err("could not resize '%s': %s", argv[optind], strerror(-ret));
        return 1;
    }
    if (!quiet)
        printf("Image resized.\n");
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: vireo img create|info|check|convert|commit|rebase|resize|map ...\n");
}

int img_main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (!strcmp(cmd, "create"))
        return cmd_create(argc, argv);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "map"))
        return cmd_map(argc, argv);
    if (!strcmp(cmd, "resize"))
        return cmd_resize(argc, argv);
    if (!strcmp(cmd, "convert"))
        return img_convert(argc, argv);
    if (!strcmp(cmd, "commit"))
        return img_commit(argc, argv);
    if (!strcmp(cmd, "rebase"))
        return img_rebase(argc, argv);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage();
        return 0;
    }
    img_err("unknown command '%s'", cmd);
    return EXIT_USAGE;
}
