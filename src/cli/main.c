/* vireo: the command-line front end. Each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli/exit_codes.h"
#include "cli/img.h"
#include "cli/run.h"

#define VIREO_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f, "usage: vireo COMMAND [OPTIONS]\n"
               "\n"
               "commands:\n"
               "  run      boot a guest (vireo run --help)\n"
               "  img      create, inspect, check and convert disk images (vireo img --help)\n"
               "  version  print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "img") == 0)
        return img_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("vireo %s\n", VIREO_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "vireo: unknown command '%s' (try 'vireo help')\n", cmd);
    return EXIT_USAGE;
}
