/* `vireo run`: options -> a machine -> the main loop that waits for the guest's outcome while
 * pumping console input, then the exit status. */
#include "cli/run.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "accel/accel.h"
#include "accel/soft/soft_accel.h"
#include "arch/x86/layout.h"
#include "cli/exit_codes.h"
#include "util/file.h"
#include "util/log.h"
#include "util/size.h"
#include "vmm/console.h"
#include "vmm/machine.h"
#include "vmm/vm.h"

enum console_mode { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_NONE };

struct run_options {
    struct vm_config vm;
    const char *accel_name;
    enum console_mode console;
    const char *console_path;
    bool no_reboot;
    struct machine_io_config io;
    /* The split copies of --disk/--net values that io's strings point into. */
    char *io_strings[MACHINE_MAX_DISKS + MACHINE_MAX_NICS];
    unsigned nio_strings;
};

static void free_io_strings(struct run_options *o)
{
    for (unsigned i = 0; i < o->nio_strings; i++)
        free(o->io_strings[i]);
    o->nio_strings = 0;
}

static const char run_usage[] =
    "usage: vireo run --kernel PATH [options]\n"
    "  --kernel PATH          Linux bzImage or ELF with a PVH entry note\n"
    "  --initrd PATH          initial ramdisk\n"
    "  --cmdline STR          kernel command line\n"
    "  --cpus N               vCPUs, 1..255 (default 1)\n"
    "  --memory SIZE[,shared=on]  guest RAM, e.g. 512M or 4G; a bare number is MiB (default\n"
    "                         256M); shared=on: in a memfd (no huge pages on most hosts)\n"
    "  --accel auto|kvm|soft  CPU accelerator (default auto)\n"
    "  --cpu-model baseline|host  CPU features shown to the guest (default baseline)\n"
    "  --console stdio|file=PATH|none|virtio  where the console goes (default stdio); virtio:\n"
    "                         stdio through a virtio-console (hvc0) beside the serial port\n"
    "  --name NAME            VM name for logs (default vireo)\n"
    "  --no-reboot            exit when the guest reboots instead of restarting it\n"
    "  --device debug-exit    the test device at port 0xf4: a guest write ends the run\n"
    "  --disk PATH[,readonly=on][,serial=ID][,format=raw|qcow2][,cache=none|writeback]\n"
    "                         a virtio-blk disk (repeatable); cache=none bypasses the host's\n"
    "                         page cache (O_DIRECT), writeback (the default) goes through it\n"
    "  --net tap=IFNAME[,mac=MAC][,vhost=auto|on|off]\n"
    "                         a virtio-net NIC on a tap device (repeatable); frames move\n"
    "                         through the host kernel's vhost-net when /dev/vhost-net opens\n"
    "                         (auto, the default), must (on), or in Vireo (off)\n"
    "  --rng on|off           virtio-rng fed from the host's getrandom (default on)\n"
    "  --log-level err|warn|info|debug\n"
    "On a terminal, Ctrl-A x quits.\n";

/* One line on stderr naming the problem; the caller returns EXIT_USAGE. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vireo run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static int parse_console(struct run_options *o, const char *arg)
{
    if (strcmp(arg, "stdio") == 0)
        o->console = CONSOLE_STDIO;
    else if (strcmp(arg, "virtio") == 0) {
        /* stdio, with hvc0 (virtio-console) taking the input; COM1's output stays visible. */
        o->console = CONSOLE_STDIO;
        o->io.virtio_console = true;
    }
    else if (strcmp(arg, "none") == 0)
        o->console = CONSOLE_NONE;
    else if (strncmp(arg, "file=", 5) == 0 && arg[5]) {
        o->console = CONSOLE_FILE;
        o->console_path = arg + 5;
    } else
        return -EINVAL;
    return 0;
}

/* PATH[,readonly=on|off][,serial=ID][,format=raw|qcow2][,cache=none|writeback]. The string is
 * copied and split in place; the copy lives as long as the process. */
static int parse_disk(struct run_options *o, const char *arg)
{
    if (o->io.ndisks >= MACHINE_MAX_DISKS)
        return usage_error("--disk: at most %d disks", MACHINE_MAX_DISKS);
    char *copy = strdup(arg);
    if (!copy)
        return usage_error("out of memory");
    struct machine_disk *d = &o->io.disks[o->io.ndisks];
    *d = (struct machine_disk){0};
    char *save = NULL, *tok = strtok_r(copy, ",", &save);
    if (!tok || !*tok || arg[0] == ',') {
        free(copy);
        return usage_error("--disk %s: needs a path first", arg);
    }
    d->path = tok;
    while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
        if (strcmp(tok, "readonly=on") == 0 || strcmp(tok, "readonly") == 0)
            d->read_only = true;
        else if (strcmp(tok, "readonly=off") == 0)
            d->read_only = false;
        else if (strncmp(tok, "serial=", 7) == 0 && strlen(tok + 7) <= 20)
            d->serial = tok + 7;
        else if (strcmp(tok, "format=raw") == 0 || strcmp(tok, "format=qcow2") == 0)
            d->format = tok + 7;
        else if (strcmp(tok, "cache=none") == 0 || strcmp(tok, "cache=writeback") == 0)
            d->cache_none = strcmp(tok, "cache=none") == 0;
        else {
            usage_error("--disk %s: unknown or bad option '%s' (readonly=on, serial=ID of up to "
                        "20 characters, format=raw|qcow2, cache=none|writeback)", arg, tok);
            free(copy);
            return EXIT_USAGE;
        }
    }
    o->io.ndisks++;
    o->io_strings[o->nio_strings++] = copy;
    return 0;
}

/* SIZE[,shared=on|off]: shared=on puts RAM in a memfd (vmm/memory.h says when that is wanted). */
static int parse_memory(struct run_options *o, const char *arg)
{
    const char *comma = strchr(arg, ',');
    size_t len = comma ? (size_t)(comma - arg) : strlen(arg);
    char size_str[32];
    uint64_t size;
    if (len < sizeof(size_str)) {
        memcpy(size_str, arg, len);
        size_str[len] = '\0';
    }
    if (len >= sizeof(size_str) || size_parse(size_str, 1ULL << 20, &size) < 0 ||
        size < GUEST_MEM_MIN || size > GUEST_MEM_MAX || size % 4096)
        return usage_error("--memory %s: must be a size from 16M to 1T, e.g. 512M", arg);
    o->vm.mem_size = size;
    if (!comma)
        return 0;
    if (strcmp(comma + 1, "shared=on") == 0 || strcmp(comma + 1, "shared=off") == 0) {
        o->vm.mem_shared = strcmp(comma + 1, "shared=on") == 0;
        return 0;
    }
    return usage_error("--memory %s: unknown or bad option '%s' (shared=on|off)", arg, comma + 1);
}

static int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char end;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &end) != 6)
        return -EINVAL;
    for (unsigned i = 0; i < 6; i++)
        mac[i] = (uint8_t)v[i];
    return (mac[0] & 1) ? -EINVAL : 0; /* a NIC's own address is never multicast */
}

/* tap=IFNAME[,mac=MAC][,vhost=auto|on|off]; the copy lives as long as the process. */
static int parse_net(struct run_options *o, const char *arg)
{
    if (o->io.nnics >= MACHINE_MAX_NICS)
        return usage_error("--net: at most %d NICs", MACHINE_MAX_NICS);
    char *copy = strdup(arg);
    if (!copy)
        return usage_error("out of memory");
    struct machine_nic *nic = &o->io.nics[o->io.nnics];
    *nic = (struct machine_nic){0};
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "tap=", 4) == 0 && tok[4] && strlen(tok + 4) < 16)
            nic->ifname = tok + 4;
        else if (strncmp(tok, "mac=", 4) == 0 && parse_mac(tok + 4, nic->mac) == 0)
            nic->mac_set = true;
        else if (strcmp(tok, "vhost=auto") == 0)
            nic->vhost = MACHINE_VHOST_AUTO;
        else if (strcmp(tok, "vhost=on") == 0)
            nic->vhost = MACHINE_VHOST_ON;
        else if (strcmp(tok, "vhost=off") == 0)
            nic->vhost = MACHINE_VHOST_OFF;
        else {
            usage_error("--net %s: bad option '%s' (tap=IFNAME of up to 15 characters, "
                        "mac=52:54:00:12:34:56, vhost=auto|on|off)", arg, tok);
            free(copy);
            return EXIT_USAGE;
        }
    }
    if (!nic->ifname) {
        free(copy);
        return usage_error("--net %s: needs tap=IFNAME", arg);
    }
    o->io.nnics++;
    o->io_strings[o->nio_strings++] = copy;
    return 0;
}

static int parse_options(int argc, char **argv, struct run_options *o)
{
    static const struct option longopts[] = {
        {"kernel", required_argument, NULL, 'k'},   {"initrd", required_argument, NULL, 'i'},
        {"cmdline", required_argument, NULL, 'c'},  {"cpus", required_argument, NULL, 'n'},
        {"memory", required_argument, NULL, 'm'},   {"accel", required_argument, NULL, 'a'},
        {"cpu-model", required_argument, NULL, 'C'}, {"console", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, 'N'},     {"no-reboot", no_argument, NULL, 'R'},
        {"device", required_argument, NULL, 'd'},   {"log-level", required_argument, NULL, 'l'},
        {"disk", required_argument, NULL, 'D'},     {"rng", required_argument, NULL, 'G'},
        {"net", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    *o = (struct run_options){
        .vm = {.name = "vireo", .cmdline = "", .ncpus = 1, .mem_size = 256ULL << 20,
               .cpu_model = CPU_MODEL_BASELINE},
        .accel_name = "auto",
        .console = CONSOLE_STDIO,
    };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': o->vm.kernel_path = optarg; break;
        case 'i': o->vm.initrd_path = optarg; break;
        case 'c': o->vm.cmdline = optarg; break;
        case 'N':
            if (!*optarg || strlen(optarg) > 63)
                return usage_error("--name must be 1 to 63 characters");
            o->vm.name = optarg;
            break;
        case 'R': o->no_reboot = true; break;
        case 'a': o->accel_name = optarg; break;
        case 'n': {
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 1 || n > VM_MAX_CPUS)
                return usage_error("--cpus %s: must be a number from 1 to %d", optarg,
                                   VM_MAX_CPUS);
            o->vm.ncpus = (unsigned)n;
            break;
        }
        case 'm': {
            int rc = parse_memory(o, optarg);
            if (rc)
                return rc;
            break;
        }
        case 'C':
            if (cpuid_parse_model(optarg, &o->vm.cpu_model) < 0)
                return usage_error("--cpu-model %s: must be 'baseline' or 'host'", optarg);
            break;
        case 'o':
            if (parse_console(o, optarg) < 0)
                return usage_error("--console %s: must be stdio, file=PATH, none or virtio",
                                   optarg);
            break;
        case 'd':
            if (strcmp(optarg, "debug-exit") != 0)
                return usage_error("--device %s: unknown device (known: debug-exit)", optarg);
            o->vm.debug_exit = true;
            break;
        case 'D':
            if ((c = parse_disk(o, optarg)) != 0)
                return c;
            break;
        case 'E':
            if ((c = parse_net(o, optarg)) != 0)
                return c;
            break;
        case 'G':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                return usage_error("--rng %s: must be on or off", optarg);
            o->io.no_rng = strcmp(optarg, "off") == 0;
            break;
        case 'l': {
            enum log_level level;
            if (log_parse_level(optarg, &level) < 0)
                return usage_error("--log-level %s: must be err, warn, info or debug", optarg);
            log_set_level(level);
            break;
        }
        case 'h':
            fputs(run_usage, stdout);
            return -1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s' (see 'vireo run --help')", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->vm.kernel_path)
        return usage_error("--kernel is required (see 'vireo run --help')");
    return 0;
}

/* Choose the accelerator; EXIT_USAGE for a name we do not know or cannot offer. */
static int select_accel(struct run_options *o)
{
    const char *name = o->accel_name;
    /* Without VT-x/AMD-V, KVM would emulate every guest instruction far more slowly than the
     * software CPU runs them: auto picks soft there. */
    if (strcmp(name, "soft") == 0 || (strcmp(name, "auto") == 0 && !accel_host_has_hw_virt())) {
        o->vm.accel = &accel_soft_ops;
        return 0;
    }
    if (strcmp(name, "kvm") == 0 || strcmp(name, "auto") == 0) {
        o->vm.accel = &accel_kvm_ops;
        return 0;
    }
    return usage_error("--accel %s: must be auto, kvm or soft", name);
}

struct run_files {
    uint8_t *kernel, *initrd;
    size_t kernel_size, initrd_size;
};

/* Room for a one-line reason: they quote user-given paths (sometimes two), which may be long. */
#define WHY_LEN (2 * PATH_MAX)

static int read_inputs(const struct run_options *o, struct run_files *f)
{
    char why[WHY_LEN];
    if (file_read_all(o->vm.kernel_path, GUEST_MEM_MAX, &f->kernel, &f->kernel_size, why,
                      sizeof(why)) < 0)
        return usage_error("kernel '%s' %s", o->vm.kernel_path, why);
    if (boot_detect(f->kernel, f->kernel_size) == BOOT_FORMAT_UNKNOWN)
        return usage_error("kernel '%s' is neither a Linux bzImage nor an ELF with a PVH entry "
                           "note", o->vm.kernel_path);
    if (o->vm.initrd_path) {
        if (file_read_all(o->vm.initrd_path, GUEST_MEM_MAX, &f->initrd, &f->initrd_size, why,
                          sizeof(why)) < 0)
            return usage_error("initrd '%s' %s", o->vm.initrd_path, why);
        if (f->initrd_size >= o->vm.mem_size)
            return usage_error("initrd '%s' (%zu bytes) is larger than guest RAM (--memory)",
                               o->vm.initrd_path, f->initrd_size);
    }
    return 0;
}

struct run_loop {
    struct vm *vm;
    struct console console;
    int epfd, sigfd;
    bool stdin_polled;      /* stdin is in the epoll set (pipes, terminals) */
    bool stdin_always_ready; /* regular files and /dev/null cannot be polled */
    bool no_reboot;
};

static void loop_watch_stdin(struct run_loop *l, bool on)
{
    if (!l->stdin_polled || l->console.in_fd < 0)
        return;
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.fd = l->console.in_fd};
    epoll_ctl(l->epfd, EPOLL_CTL_MOD, l->console.in_fd, &ev);
}

/* Hand pending input to the UART; pause reading stdin while the guest is not draining it. */
static void loop_pump_console(struct run_loop *l)
{
    if (l->console.pending_len) {
        size_t took = machine_console_input(l->vm, l->console.pending, l->console.pending_len);
        console_consume(&l->console, took);
    }
    loop_watch_stdin(l, l->console.pending_len == 0);
}

static void loop_read_stdin(struct run_loop *l)
{
    int fd = l->console.in_fd;
    int rc = console_read(&l->console);
    if (l->console.in_fd < 0 && fd >= 0 && l->stdin_polled)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    if (rc < 0)
        l->console.in_fd = -1;
    if (l->console.quit)
        vm_set_outcome(l->vm, VM_OUTCOME_QUIT, 0);
    loop_pump_console(l);
}

static int loop_add(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int loop_init(struct run_loop *l, struct vm *vm, enum console_mode mode, bool no_reboot)
{
    memset(l, 0, sizeof(*l));
    l->vm = vm;
    l->no_reboot = no_reboot;
    console_init(&l->console, mode == CONSOLE_STDIO ? STDIN_FILENO : -1);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    l->sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (l->epfd < 0 || l->sigfd < 0)
        return -errno;
    int rc;
    if ((rc = loop_add(l->epfd, vm->event_fd)) < 0 ||
        (rc = loop_add(l->epfd, machine_console_wake_fd(vm))) < 0 ||
        (rc = loop_add(l->epfd, l->sigfd)) < 0)
        return rc;
    if (l->console.in_fd >= 0) {
        fcntl(l->console.in_fd, F_SETFL, fcntl(l->console.in_fd, F_GETFL) | O_NONBLOCK);
        rc = loop_add(l->epfd, l->console.in_fd);
        if (rc == -EPERM)
            l->stdin_always_ready = true;
        else if (rc < 0)
            return rc;
        else
            l->stdin_polled = true;
    }
    return 0;
}

static void drain_fd(int fd)
{
    uint64_t buf[16];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

/* Wait for the guest's outcome; reboots happen here. Returns the exit status. */
static int loop_run(struct run_loop *l)
{
    struct vm *vm = l->vm;
    for (;;) {
        bool busy = l->stdin_always_ready && l->console.in_fd >= 0 && !l->console.pending_len;
        struct epoll_event evs[8];
        int n = epoll_wait(l->epfd, evs, 8, busy ? 0 : -1);
        if (n < 0 && errno != EINTR)
            return EXIT_HOST_REFUSED;
        if (busy)
            loop_read_stdin(l);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l->console.in_fd)
                loop_read_stdin(l);
            else if (fd == machine_console_wake_fd(vm)) {
                drain_fd(fd);
                loop_pump_console(l);
            } else if (fd == l->sigfd) {
                drain_fd(fd);
                /* Said on stderr so that a run ended from outside is told apart from a guest
                 * that powered off (both exit 0). */
                log_warn("stopped by a signal");
                vm_set_outcome(vm, VM_OUTCOME_QUIT, 0);
            } else {
                drain_fd(fd);
            }
        }
        pthread_mutex_lock(&vm->lock);
        enum vm_outcome outcome = vm->outcome;
        int status = vm->exit_status;
        pthread_mutex_unlock(&vm->lock);
        switch (outcome) {
        case VM_OUTCOME_NONE:
            continue;
        case VM_OUTCOME_RESET:
            if (l->no_reboot) {
                log_warn("guest reset: --no-reboot, stopping");
                return EXIT_GUEST_OFF;
            }
            log_info("guest reset: rebooting");
            char why[WHY_LEN];
            if (vm_reboot(vm, why, sizeof(why)) < 0) {
                log_err("reboot failed: %s", why);
                return EXIT_HOST_REFUSED;
            }
            continue;
        case VM_OUTCOME_POWEROFF:
        case VM_OUTCOME_QUIT:
            return EXIT_GUEST_OFF;
        case VM_OUTCOME_EXIT_STATUS:
            return status;
        case VM_OUTCOME_FAILED:
            return EXIT_GUEST_FAILED;
        }
    }
}

static int open_console_out(const struct run_options *o)
{
    switch (o->console) {
    case CONSOLE_STDIO:
        return STDOUT_FILENO;
    case CONSOLE_NONE:
        return -1;
    case CONSOLE_FILE:
        return open(o->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    return -1;
}

static int run_parsed(const struct run_options *parsed);

int run_main(int argc, char **argv)
{
    struct run_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc == 0)
        rc = run_parsed(&o);
    else if (rc < 0)
        rc = 0; /* --help */
    free_io_strings(&o);
    return rc;
}

/* Everything after option parsing; run_main() frees what the options own on every path. */
static int run_parsed(const struct run_options *parsed)
{
    struct run_options o = *parsed;
    int rc;
    log_set_name(o.vm.name);
    if ((rc = select_accel(&o)) != 0)
        return rc;
    struct run_files files = {0};
    if ((rc = read_inputs(&o, &files)) != 0) {
        free(files.kernel);
        free(files.initrd);
        return rc;
    }
    o.vm.console_out_fd = open_console_out(&o);
    if (o.console == CONSOLE_FILE && o.vm.console_out_fd < 0) {
        free(files.kernel);
        free(files.initrd);
        return usage_error("--console file=%s: %s", o.console_path, strerror(errno));
    }
    /* Signals become events of the main loop; vCPU threads inherit the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct boot_input boot = {
        .kernel = files.kernel, .kernel_size = files.kernel_size,
        .initrd = files.initrd, .initrd_size = files.initrd_size,
        .cmdline = o.vm.cmdline, .rsdp_gpa = LAYOUT_ACPI_BASE,
    };
    o.vm.io = &o.io;
    struct vm vm;
    char why[WHY_LEN];
    int status;
    rc = vm_create(&vm, &o.vm, &boot, why, sizeof(why));
    if (rc < 0) {
        fprintf(stderr, "vireo run: %s\n", why);
        status = rc == -EINVAL ? EXIT_USAGE : EXIT_HOST_REFUSED;
    } else {
        struct run_loop loop;
        if (loop_init(&loop, &vm, o.console, o.no_reboot) < 0 || vm_start(&vm) < 0) {
            fprintf(stderr, "vireo run: cannot start the machine: %s\n", strerror(errno));
            status = EXIT_HOST_REFUSED;
        } else {
            status = loop_run(&loop);
        }
        console_restore();
    }
    vm_destroy(&vm);
    free(files.kernel);
    free(files.initrd);
    return status;
}
