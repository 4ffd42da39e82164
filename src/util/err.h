/* Error conventions shared by every module.
 * Functions return 0 or a positive value on success and -errno on failure; functions returning
 * pointers return NULL with errno set, or an ERR_PTR(-errno) where the reason matters. */
#ifndef VIREO_UTIL_ERR_H
#define VIREO_UTIL_ERR_H

#include <errno.h>
#include <stdint.h>

#define MAX_ERRNO 4095

static inline void *ERR_PTR(long err) { return (void *)err; }
static inline long PTR_ERR(const void *p) { return (long)p; }
static inline int IS_ERR(const void *p) { return (uintptr_t)p >= (uintptr_t)-MAX_ERRNO; }

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
