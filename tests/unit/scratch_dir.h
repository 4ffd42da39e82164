/* A scratch directory for unit tests that work on files: made once for the group, removed at the
 * end, with scratch_path() naming files in it. Header-only: each unit test is its own program. */
#ifndef VIREO_TESTS_UNIT_SCRATCH_DIR_H
#define VIREO_TESTS_UNIT_SCRATCH_DIR_H

#include <stdio.h>
#include <stdlib.h>

static char scratch_dir[256];

/* Create base/NAME-XXXXXX; returns 0 or -1. */
static inline int scratch_make(const char *base, const char *name)
{
    snprintf(scratch_dir, sizeof(scratch_dir), "%s/%s-XXXXXX", base, name);
    return mkdtemp(scratch_dir) ? 0 : -1;
}

static inline int scratch_remove(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* scratch_dir/name, in one of four rotating buffers (a test may hold a few at once). */
static inline char *scratch_path(const char *name)
{
    static char buf[4][300];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", scratch_dir, name);
    return buf[i];
}

#endif
