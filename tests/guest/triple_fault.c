/* triple_fault: loads an empty IDT, then touches an unmapped address. The #PF cannot be
 * delivered (#GP), nor can that (#DF), so the CPU shuts down: the VMM must end the run with
 * status 1 and a register dump, and must not run anything after.
 *
 * Option idt_on_device: the IDT is instead a full one at a device address (an unassigned part
 * of the PCI window), which the CPU cannot use as descriptors: the same shutdown, and the VMM
 * must not take the device's guest-physical address for memory of its own. */
#include "runtime.h"

const char guest_name[] = "triple_fault";

int guest_main(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = { 0, 0 }, on_device = { 0xfff, 0xdff00000ULL };

    if (cmdline_get("idt_on_device", NULL, 0) >= 0) {
        printf("triple_fault: loading an IDT at device address 0xdff00000 and reading unmapped "
               "0x8000000000\n");
        __asm__ volatile("lidt %0" : : "m"(on_device));
    } else {
        printf("triple_fault: loading an empty IDT and reading unmapped 0x8000000000\n");
        __asm__ volatile("lidt %0" : : "m"(empty));
    }
    /* 512 GiB: PML4 entry 1, which is never present. */
    (void)mmio_read32(0x8000000000ULL);
    test_fail("survived a fault with an empty IDT");
}
