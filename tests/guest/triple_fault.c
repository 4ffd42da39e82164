/* triple_fault: loads an empty IDT, then touches an unmapped address. The #PF cannot be
 * delivered (#GP), nor can that (#DF), so the CPU shuts down: the VMM must end the run with
 * status 1 and a register dump, and must not run anything after. */
#include "runtime.h"

const char guest_name[] = "triple_fault";

int guest_main(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = { 0, 0 };

    printf("triple_fault: loading an empty IDT and reading unmapped 0x8000000000\n");
    __asm__ volatile("lidt %0" : : "m"(empty));
    /* 512 GiB: PML4 entry 1, which is never present. */
    (void)mmio_read32(0x8000000000ULL);
    test_fail("survived a fault with an empty IDT");
}
