/* `vireo img` commands that copy data between images (convert, commit, rebase), and the helpers
 * the img_*.c files share. */
#ifndef VIREO_CLI_IMG_COPY_H
#define VIREO_CLI_IMG_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

/* One line "vireo img: ..." on stderr. */
void img_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Open an image for a command; prints the error itself. */
int img_open(const char *path, const char *fmt, unsigned flags, struct block_dev **out);
/* Parse "-o a=b,c=d" into opts (create/convert). Returns 0 or -EINVAL (message printed). */
int img_parse_create_opts(char *text, struct block_create_opts *opts);
/* Progress line "    (xx.xx/100%)" on stdout when enabled. */
void img_progress(bool enabled, uint64_t done, uint64_t total);

int img_convert(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_rebase(int argc, char **argv);

#endif
