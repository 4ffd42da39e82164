/* pio_loop: 100000 one-byte `out`s to an I/O port, then exit 0; the startup benchmark subtracts
 * quick_exit's time to get the cost of one port-I/O exit round trip.
 * The port is 0x510 by default (pio_port= overrides it, pio_count= the count). On Vireo nothing
 * decodes 0x510, so each write is a bare exit; on QEMU it is the fw_cfg selector register, whose
 * write is a register store, so both VMMs do next to no work per exit. */
#include "runtime.h"

const char guest_name[] = "pio_loop";

int guest_main(void)
{
    uint64_t port = 0x510, count = 100000;

    cmdline_get_size("pio_port", &port);
    cmdline_get_size("pio_count", &count);
    ASSERT(port <= 0xffff);
    printf("pio_loop: %lu outs to port 0x%lx\n", count, port);
    uint16_t p = (uint16_t)port;
    for (uint64_t i = 0; i < count; i++)
        outb((uint8_t)i, p);
    printf("pio_loop: done\n");
    return 0;
}
