/* `vireo img`: create, inspect, check, convert, commit, rebase, resize and map disk images.
 * Flags, output and exit codes follow qemu-img's for the same commands. */
#ifndef VIREO_CLI_IMG_H
#define VIREO_CLI_IMG_H

/* Run `vireo img ...`: argv[0] is "img", argv[1] the subcommand. Returns the process exit code:
 * 0 success, 1 failure, 2 bad usage (check: 2 corruptions, 3 leaks, 63 unsupported format). */
int img_main(int argc, char **argv);

#endif
