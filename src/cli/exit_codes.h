/* Exit statuses of the vireo commands (the README documents them). */
#ifndef VIREO_CLI_EXIT_CODES_H
#define VIREO_CLI_EXIT_CODES_H

#define EXIT_GUEST_OFF 0     /* guest powered off (or the user quit) */
#define EXIT_GUEST_FAILED 1  /* triple fault, emulation failure, accelerator error */
#define EXIT_USAGE 2         /* bad usage or configuration */
#define EXIT_HOST_REFUSED 3  /* the host refused a resource (KVM, memory, threads) */

#endif
