/* exit_status: writes 42 to the debug-exit port; the run must end with exactly that status
 * (QEMU's isa-debug-exit: 85). Nothing after the write may run. */
#include "runtime.h"

const char guest_name[] = "exit_status";

int guest_main(void)
{
    printf("exit_status: writing 42 to port 0xf4\n");
    outl(42, 0xf4);
    test_fail("still running after the debug-exit write");
}
