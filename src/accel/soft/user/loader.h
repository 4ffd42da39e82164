/* vireo-user's program loader: static ELF images, the initial stack, and brk. */
#ifndef VIREO_ACCEL_SOFT_USER_LOADER_H
#define VIREO_ACCEL_SOFT_USER_LOADER_H

#include <stddef.h>
#include <stdint.h>

struct user_image {
    uint64_t entry;     /* where execution starts */
    uint64_t sp;        /* initial stack pointer (argc) */
    uint64_t brk_start, brk_cur, brk_limit;
    char exe_path[4096];
};

/* Map the static x86-64 executable at path (ET_EXEC, or ET_DYN static-pie without an
 * interpreter) into this process and build its stack with argv, envp and auxv.
 * hwcap is CPUID.1:EDX of the soft CPU. Returns 0 or -errno (ENOEXEC: not one we run). */
int user_load(struct user_image *img, const char *path, int argc, char **argv, uint32_t hwcap);
/* Whether path is a static x86-64 ELF program that user_load can run (no interpreter). */
int user_is_static_elf(const char *path);
/* The brk system call: returns the new (or unchanged) break. */
uint64_t user_brk(struct user_image *img, uint64_t want);
/* readlink("/proc/self/exe") as the guest would see it. */
int64_t user_readlink_exe(const struct user_image *img, char *buf, uint64_t size);

#endif
