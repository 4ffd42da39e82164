/* PCI configuration space through the legacy 0xCF8/0xCFC ports and through ECAM (MCFG). */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include <stdint.h>

/* Reads a dword of function bus:dev.fn at a dword-aligned offset below 256 via 0xCF8/0xCFC. */
uint32_t pci_cf8_read32(unsigned bus, unsigned dev, unsigned fn, unsigned off);
void pci_cf8_write32(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint32_t val);
/* Finds the ECAM window of segment 0 in the MCFG and maps it. Returns 0, or -1 without one. */
int pci_ecam_init(uint64_t *base, unsigned *bus_start, unsigned *bus_end);
/* Reads a dword through ECAM (after pci_ecam_init); offsets up to 4 KiB. All-ones outside the
 * window's bus range. */
uint32_t pci_ecam_read32(unsigned bus, unsigned dev, unsigned fn, unsigned off);

#endif
