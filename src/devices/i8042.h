/* The i8042 keyboard controller, reduced to what guests use it for without a keyboard: the
 * status port, the command byte, the self-tests, the A20 commands (harmless: long-mode guests
 * have no A20 gate), and the reset line that command 0xFE pulses (Linux's "reboot=k").
 * Keyboard and mouse bytes are not modelled: data written for the keyboard is dropped and
 * nothing is ever received, and no IRQ 1 or 12 is raised. */
#ifndef VIREO_DEVICES_I8042_H
#define VIREO_DEVICES_I8042_H

#include <pthread.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/platform.h"

#define I8042_STS_OBF      0x01 /* output buffer full: a byte waits at the data port */
#define I8042_STS_IBF      0x02
#define I8042_STS_SYS      0x04 /* system flag: self-test passed */
#define I8042_STS_CMD      0x08 /* the last write went to the command port */
#define I8042_STS_UNLOCKED 0x10 /* keyboard not inhibited */

#define I8042_CMD_READ_CTR   0x20
#define I8042_CMD_WRITE_CTR  0x60
#define I8042_CMD_AUX_DIS    0xa7
#define I8042_CMD_AUX_EN     0xa8
#define I8042_CMD_SELF_TEST  0xaa
#define I8042_CMD_KBD_TEST   0xab
#define I8042_CMD_KBD_DIS    0xad
#define I8042_CMD_KBD_EN     0xae
#define I8042_CMD_READ_OUTP  0xd0
#define I8042_CMD_WRITE_OUTP 0xd1
#define I8042_CMD_WRITE_KBD_OUTBUF 0xd2
#define I8042_CMD_A20_OFF    0xdd
#define I8042_CMD_A20_ON     0xdf
#define I8042_CMD_PULSE_RESET 0xfe

#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_SYS    0x04
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE  0x40

#define I8042_OUTP_RESET 0x01 /* reset line, active low: writing 0 here resets the machine */
#define I8042_OUTP_A20   0x02

/* Device state; everything but lock and power is the controller's own and saved as is. */
struct i8042 {
    pthread_mutex_t lock;
    struct power_ctl power;
    uint8_t status;
    uint8_t ctr;         /* command byte */
    uint8_t outp;        /* output port */
    uint8_t out_data;    /* output buffer, valid while status has OBF */
    uint8_t pending_cmd; /* command waiting for its parameter on the data port, or 0 */
};

/* Allocate a controller in its post-firmware state. Returns NULL with errno set. */
struct i8042 *i8042_create(const struct power_ctl *power);
/* Free it; it must no longer be reachable from a bus. */
void i8042_destroy(struct i8042 *kbc);
/* Register its data and command ports (PORT_I8042_DATA, PORT_I8042_CMD). Returns 0 or -errno. */
int i8042_attach(struct i8042 *kbc, struct bus *pio);
/* Back to the post-firmware state (guest reset). */
void i8042_reset(struct i8042 *kbc);

/* Port-I/O handlers for the data port and the status/command port (opaque: struct i8042). */
extern const struct bus_dev_ops i8042_data_ops;
extern const struct bus_dev_ops i8042_cmd_ops;

#endif
