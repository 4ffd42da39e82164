/* pci: bus 0 enumerated through the legacy 0xCF8/0xCFC ports and through ECAM (found via the
 * MCFG) gives the same functions with the same config headers, and a host bridge sits at
 * 00:00.0. With expect_host_bridge=VVVV:DDDD on the command line its IDs must match too. */
#include "runtime.h"

#include "pci.h"

const char guest_name[] = "pci";

#define HDR_DWORDS 16 /* the standard 64-byte header */

int guest_main(void)
{
    uint64_t ecam;
    unsigned bus_start, bus_end;

    ASSERT(pci_ecam_init(&ecam, &bus_start, &bus_end) == 0);
    printf("pci: ECAM at 0x%lx for buses %u-%u (from MCFG)\n", ecam, bus_start, bus_end);
    ASSERT(bus_start == 0);

    unsigned found = 0;
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t id_io = pci_cf8_read32(0, dev, fn, 0);
            uint32_t id_ecam = pci_ecam_read32(0, dev, fn, 0);
            ASSERT_EQ(id_io, id_ecam);
            if ((id_io & 0xffff) == 0xffff) {
                if (fn == 0)
                    break; /* no device: functions 1-7 cannot exist either */
                continue;
            }
            uint32_t hdr_io[HDR_DWORDS], hdr_ecam[HDR_DWORDS];
            for (unsigned i = 0; i < HDR_DWORDS; i++) {
                hdr_io[i] = pci_cf8_read32(0, dev, fn, i * 4);
                hdr_ecam[i] = pci_ecam_read32(0, dev, fn, i * 4);
                ASSERT_EQ(hdr_io[i], hdr_ecam[i]);
            }
            uint32_t class = hdr_io[2] >> 8;
            uint8_t htype = (uint8_t)(hdr_io[3] >> 16);
            printf("pci: 00:%02x.%u %04x:%04x class %06x header type 0x%02x\n", dev, fn,
                   id_io & 0xffff, id_io >> 16, class, htype);
            found++;
            if (dev == 0 && fn == 0) {
                /* Class 06 00 00: host bridge. */
                ASSERT_EQ(class, 0x060000);
            }
            if (fn == 0 && !(htype & 0x80))
                break; /* single-function device */
        }
    }
    ASSERT(found >= 1);
    /* Absent buses read all-ones through both mechanisms. */
    if (bus_end >= 255) {
        ASSERT_EQ(pci_cf8_read32(255, 31, 7, 0), 0xffffffffu);
        ASSERT_EQ(pci_ecam_read32(255, 31, 7, 0), 0xffffffffu);
    }

    char want[16], hex[20];
    if (cmdline_get("expect_host_bridge", want, sizeof(want)) > 0) {
        /* VVVV:DDDD in hex, as lspci prints it. */
        const char *end;
        snprintf(hex, sizeof(hex), "0x%s", want);
        uint32_t vendor = (uint32_t)strtou64(hex, &end);
        ASSERT(*end == ':');
        snprintf(hex, sizeof(hex), "0x%s", strnlen(want, sizeof(want)) > 5 ? want + 5 : "");
        uint32_t device = (uint32_t)strtou64(hex, &end);
        uint32_t id = pci_cf8_read32(0, 0, 0, 0);
        printf("pci: host bridge %04x:%04x, expected %04x:%04x\n", id & 0xffff, id >> 16, vendor,
               device);
        ASSERT_EQ(id, (device << 16) | vendor);
    }
    printf("pci: %u functions on bus 0, identical through 0xCF8 and ECAM\n", found);
    return 0;
}
