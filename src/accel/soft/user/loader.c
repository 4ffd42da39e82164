/* Loading a static ELF program for vireo-user. The image is mapped at its own addresses (or a
 * host-chosen base for static-pie) in this process; segments keep their read/write permissions
 * so that stray guest writes fault like they would natively. */
#include "accel/soft/user/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

#define STACK_SIZE (8ull << 20)
#define BRK_RESERVE (1ull << 30)

static uint64_t page_down(uint64_t v) { return v & ~0xfffull; }
static uint64_t page_up(uint64_t v) { return (v + 0xfff) & ~0xfffull; }

static int read_all(int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -ENOEXEC;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int map_segments(int fd, const Elf64_Ehdr *eh, const Elf64_Phdr *ph, uint64_t *bias_out,
                        uint64_t *end_out)
{
    uint64_t lo = ~0ull, hi = 0;
    for (int k = 0; k < eh->e_phnum; k++) {
        if (ph[k].p_type == PT_INTERP)
            return -ENOEXEC; /* dynamically linked: not supported */
        if (ph[k].p_type != PT_LOAD)
            continue;
        if (ph[k].p_vaddr < lo)
            lo = ph[k].p_vaddr;
        if (ph[k].p_vaddr + ph[k].p_memsz > hi)
            hi = ph[k].p_vaddr + ph[k].p_memsz;
    }
    if (lo >= hi)
        return -ENOEXEC;
    lo = page_down(lo);
    hi = page_up(hi);
    uint64_t bias = 0;
    void *want = (void *)(uintptr_t)lo;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (eh->e_type == ET_EXEC)
        flags |= MAP_FIXED_NOREPLACE;
    else
        want = NULL;
    void *base = mmap(want, hi - lo, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    if (eh->e_type == ET_EXEC && (uint64_t)(uintptr_t)base != lo)
        return -EEXIST;
    bias = (uint64_t)(uintptr_t)base - lo;
    for (int k = 0; k < eh->e_phnum; k++) {
        if (ph[k].p_type != PT_LOAD || ph[k].p_filesz == 0)
            continue;
        int r = read_all(fd, (void *)(uintptr_t)(ph[k].p_vaddr + bias), ph[k].p_filesz,
                         (off_t)ph[k].p_offset);
        if (r < 0)
            return r;
    }
    for (int k = 0; k < eh->e_phnum; k++) {
        if (ph[k].p_type != PT_LOAD)
            continue;
        uint64_t s = page_down(ph[k].p_vaddr + bias), e = page_up(ph[k].p_vaddr + bias +
                                                                   ph[k].p_memsz);
        int prot = PROT_READ | ((ph[k].p_flags & PF_W) ? PROT_WRITE : 0);
        mprotect((void *)(uintptr_t)s, e - s, prot);
    }
    *bias_out = bias;
    *end_out = hi + bias;
    return 0;
}

/* Push helpers for building the initial stack downwards. */
static uint64_t push_bytes(uint64_t *sp, const void *data, size_t len)
{
    *sp -= len;
    memcpy((void *)(uintptr_t)*sp, data, len);
    return *sp;
}

static uint64_t push_str(uint64_t *sp, const char *s)
{
    return push_bytes(sp, s, strlen(s) + 1);
}

int user_load(struct user_image *img, const char *path, int argc, char **argv, uint32_t hwcap)
{
    memset(img, 0, sizeof(*img));
    if (!realpath(path, img->exe_path))
        return -errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    Elf64_Ehdr eh;
    int r = read_all(fd, &eh, sizeof(eh), 0);
    if (r < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_machine != EM_X86_64 || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64) {
        close(fd);
        return r < 0 ? r : -ENOEXEC;
    }
    Elf64_Phdr ph[64];
    r = read_all(fd, ph, sizeof(Elf64_Phdr) * eh.e_phnum, (off_t)eh.e_phoff);
    uint64_t bias = 0, end = 0;
    if (r == 0)
        r = map_segments(fd, &eh, ph, &bias, &end);
    close(fd);
    if (r < 0)
        return r;

    uint64_t phdr = 0;
    for (int k = 0; k < eh.e_phnum; k++) {
        if (ph[k].p_type == PT_PHDR)
            phdr = ph[k].p_vaddr + bias;
    }
    for (int k = 0; !phdr && k < eh.e_phnum; k++) {
        if (ph[k].p_type == PT_LOAD && ph[k].p_offset <= eh.e_phoff &&
            eh.e_phoff < ph[k].p_offset + ph[k].p_filesz)
            phdr = ph[k].p_vaddr + bias + (eh.e_phoff - ph[k].p_offset);
    }
    img->entry = eh.e_entry + bias;

    /* brk: a reserved, inaccessible range right after the image, opened up as it grows. */
    img->brk_start = img->brk_cur = end;
    void *br = mmap((void *)(uintptr_t)end, BRK_RESERVE, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    img->brk_limit = br == MAP_FAILED ? end : end + BRK_RESERVE;

    void *stk = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stk == MAP_FAILED)
        return -errno;
    uint64_t sp = (uint64_t)(uintptr_t)stk + STACK_SIZE;
    uint8_t rnd[16];
    for (int k = 0; k < 16; k++)
        rnd[k] = (uint8_t)(random() >> 7);
    uint64_t at_random = push_bytes(&sp, rnd, 16);
    uint64_t at_platform = push_str(&sp, "x86_64");
    uint64_t at_execfn = push_str(&sp, img->exe_path);
    int envc = 0;
    while (environ[envc])
        envc++;
    uint64_t *argp = calloc((size_t)argc + 1, 8), *envp = calloc((size_t)envc + 1, 8);
    if (!argp || !envp)
        return -ENOMEM;
    for (int k = argc - 1; k >= 0; k--)
        argp[k] = push_str(&sp, argv[k]);
    for (int k = envc - 1; k >= 0; k--)
        envp[k] = push_str(&sp, environ[k]);
    uint64_t auxv[][2] = {
        {AT_PHDR, phdr}, {AT_PHENT, sizeof(Elf64_Phdr)}, {AT_PHNUM, eh.e_phnum},
        {AT_PAGESZ, 4096}, {AT_BASE, 0}, {AT_FLAGS, 0}, {AT_ENTRY, img->entry},
        {AT_UID, getuid()}, {AT_EUID, geteuid()}, {AT_GID, getgid()}, {AT_EGID, getegid()},
        {AT_SECURE, 0}, {AT_RANDOM, at_random}, {AT_HWCAP, hwcap}, {AT_HWCAP2, 0},
        {AT_CLKTCK, (uint64_t)sysconf(_SC_CLK_TCK)}, {AT_PLATFORM, at_platform},
        {AT_EXECFN, at_execfn}, {AT_NULL, 0},
    };
    size_t words = 1 + (size_t)argc + 1 + (size_t)envc + 1 + 2 * (sizeof(auxv) / 16);
    sp = (sp - words * 8) & ~15ull;
    uint64_t *w = (uint64_t *)(uintptr_t)sp;
    *w++ = (uint64_t)argc;
    for (int k = 0; k < argc; k++)
        *w++ = argp[k];
    *w++ = 0;
    for (int k = 0; k < envc; k++)
        *w++ = envp[k];
    *w++ = 0;
    memcpy(w, auxv, sizeof(auxv));
    free(argp);
    free(envp);
    img->sp = sp;
    return 0;
}

uint64_t user_brk(struct user_image *img, uint64_t want)
{
    if (want < img->brk_start || want > img->brk_limit)
        return img->brk_cur;
    uint64_t old_top = page_up(img->brk_cur), new_top = page_up(want);
    if (new_top > old_top) {
        if (mprotect((void *)(uintptr_t)old_top, new_top - old_top, PROT_READ | PROT_WRITE))
            return img->brk_cur;
    } else if (new_top < old_top) {
        /* Give the memory back and make it inaccessible again, as the kernel would. */
        mmap((void *)(uintptr_t)new_top, old_top - new_top, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    }
    img->brk_cur = want;
    return want;
}

int64_t user_readlink_exe(const struct user_image *img, char *buf, uint64_t size)
{
    size_t n = strlen(img->exe_path);
    if (n > size)
        n = size;
    memcpy(buf, img->exe_path, n);
    return (int64_t)n;
}

int user_is_static_elf(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    Elf64_Ehdr eh;
    Elf64_Phdr ph[64];
    int ok = read_all(fd, &eh, sizeof(eh), 0) == 0 && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
             eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64 &&
             eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum > 0 && eh.e_phnum <= 64 &&
             read_all(fd, ph, sizeof(Elf64_Phdr) * eh.e_phnum, (off_t)eh.e_phoff) == 0;
    for (int k = 0; ok && k < eh.e_phnum; k++) {
        if (ph[k].p_type == PT_INTERP)
            ok = 0;
    }
    close(fd);
    return ok;
}
