/* Test driver for `vireo img` until the main CLI dispatches to it: `vireo-img-test ARGS...`
 * behaves as `vireo img ARGS...`. */
#include <stdio.h>

#include "cli/img.h"

int main(int argc, char **argv)
{
    argv[0] = "img";
    int rc = img_main(argc, argv);
    fflush(stdout);
    return rc;
}
