/* panic: behaves like a kernel that panics with the pvpanic driver loaded: finds the QEMU0001
 * port (0x505 on Vireo), checks it advertises PANICKED, and writes it. The run must end with
 * status 1 and say why; nothing after the write may run. */
#include "runtime.h"

const char guest_name[] = "panic";

#define PVPANIC_PORT 0x505
#define PVPANIC_PANICKED 1

int guest_main(void)
{
    uint8_t events = inb(PVPANIC_PORT);
    printf("panic: pvpanic advertises events 0x%x\n", events);
    ASSERT(events & PVPANIC_PANICKED);
    printf("panic: reporting a panic\n");
    outb(PVPANIC_PANICKED, PVPANIC_PORT);
    test_fail("still running after the pvpanic write");
}
