/* `vireo run`: build one machine from command-line options, run it, exit with its outcome. */
#ifndef VIREO_CLI_RUN_H
#define VIREO_CLI_RUN_H

/* argv[0] is "run". Returns the process exit status (cli/exit_codes.h). */
int run_main(int argc, char **argv);

#endif
