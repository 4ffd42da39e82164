#include "devices/i8042.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "arch/x86/layout.h"

static void i8042_power_on(struct i8042 *kbc)
{
    /* As PC firmware leaves it: self-test passed (SYS), keyboard interrupt and scancode
     * translation enabled, reset line high and A20 enabled. */
    kbc->status = I8042_STS_SYS | I8042_STS_UNLOCKED;
    kbc->ctr = I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE;
    kbc->outp = I8042_OUTP_RESET | I8042_OUTP_A20;
    kbc->out_data = 0;
    kbc->pending_cmd = 0;
}

static void i8042_put_output(struct i8042 *kbc, uint8_t byte)
{
    kbc->out_data = byte;
    kbc->status |= I8042_STS_OBF;
}

/* Returns true when the command asks for a machine reset. */
static bool i8042_command(struct i8042 *kbc, uint8_t cmd)
{
    kbc->pending_cmd = 0;
    switch (cmd) {
    case I8042_CMD_READ_CTR:
        i8042_put_output(kbc, kbc->ctr);
        break;
    case I8042_CMD_WRITE_CTR:
    case I8042_CMD_WRITE_OUTP:
    case I8042_CMD_WRITE_KBD_OUTBUF:
        kbc->pending_cmd = cmd;
        break;
    case I8042_CMD_AUX_DIS:
        kbc->ctr |= I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_EN:
        kbc->ctr &= (uint8_t)~I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_SELF_TEST:
        kbc->status |= I8042_STS_SYS;
        i8042_put_output(kbc, 0x55);
        break;
    case I8042_CMD_KBD_TEST:
        i8042_put_output(kbc, 0x00); /* no clock or data line fault */
        break;
    case I8042_CMD_KBD_DIS:
        kbc->ctr |= I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_KBD_EN:
        kbc->ctr &= (uint8_t)~I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_READ_OUTP:
        i8042_put_output(kbc, kbc->outp);
        break;
    case I8042_CMD_A20_OFF:
        kbc->outp &= (uint8_t)~I8042_OUTP_A20;
        break;
    case I8042_CMD_A20_ON:
        kbc->outp |= I8042_OUTP_A20;
        break;
    default:
        /* 0xf0..0xff pulse the output port bits whose mask bit is 0; bit 0 is the reset line.
         * Other commands (keyboard and mouse traffic) have no device behind them. */
        if (cmd >= 0xf0 && !(cmd & I8042_OUTP_RESET))
            return true;
        break;
    }
    return false;
}

/* A byte on the data port: a command's parameter, or keyboard traffic (dropped: no keyboard).
 * Returns true when it asks for a machine reset. */
static bool i8042_data(struct i8042 *kbc, uint8_t val)
{
    uint8_t cmd = kbc->pending_cmd;
    kbc->pending_cmd = 0;
    switch (cmd) {
    case I8042_CMD_WRITE_CTR:
        kbc->ctr = val;
        /* The command byte's system flag is what the status register reports. */
        kbc->status = (uint8_t)((kbc->status & ~I8042_STS_SYS) | (val & I8042_CTR_SYS));
        break;
    case I8042_CMD_WRITE_OUTP:
        kbc->outp = val;
        return !(val & I8042_OUTP_RESET);
    case I8042_CMD_WRITE_KBD_OUTBUF:
        i8042_put_output(kbc, val);
        break;
    default:
        break;
    }
    return false;
}

static uint64_t i8042_data_read(void *opaque, uint64_t offset, unsigned size)
{
    struct i8042 *kbc = opaque;
    (void)offset;
    (void)size;
    pthread_mutex_lock(&kbc->lock);
    kbc->status &= (uint8_t)~I8042_STS_OBF;
    uint8_t val = kbc->out_data;
    pthread_mutex_unlock(&kbc->lock);
    return val;
}

static void i8042_data_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct i8042 *kbc = opaque;
    (void)offset;
    (void)size;
    pthread_mutex_lock(&kbc->lock);
    kbc->status &= (uint8_t)~I8042_STS_CMD;
    bool reset = i8042_data(kbc, (uint8_t)data);
    pthread_mutex_unlock(&kbc->lock);
    /* Outside the lock: the machine may reset this very device while handling the request. */
    if (reset)
        power_request(&kbc->power, POWER_RESET, 0);
}

static uint64_t i8042_cmd_read(void *opaque, uint64_t offset, unsigned size)
{
    struct i8042 *kbc = opaque;
    (void)offset;
    (void)size;
    pthread_mutex_lock(&kbc->lock);
    uint8_t val = kbc->status;
    pthread_mutex_unlock(&kbc->lock);
    return val;
}

static void i8042_cmd_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct i8042 *kbc = opaque;
    (void)offset;
    (void)size;
    pthread_mutex_lock(&kbc->lock);
    kbc->status |= I8042_STS_CMD;
    bool reset = i8042_command(kbc, (uint8_t)data);
    pthread_mutex_unlock(&kbc->lock);
    if (reset)
        power_request(&kbc->power, POWER_RESET, 0);
}

const struct bus_dev_ops i8042_data_ops = {
    .read = i8042_data_read,
    .write = i8042_data_write,
};

const struct bus_dev_ops i8042_cmd_ops = {
    .read = i8042_cmd_read,
    .write = i8042_cmd_write,
};

struct i8042 *i8042_create(const struct power_ctl *power)
{
    struct i8042 *kbc = calloc(1, sizeof(*kbc));
    if (!kbc)
        return NULL;
    int err = pthread_mutex_init(&kbc->lock, NULL);
    if (err) {
        free(kbc);
        errno = err;
        return NULL;
    }
    if (power)
        kbc->power = *power;
    i8042_power_on(kbc);
    return kbc;
}

void i8042_destroy(struct i8042 *kbc)
{
    if (!kbc)
        return;
    pthread_mutex_destroy(&kbc->lock);
    free(kbc);
}

int i8042_attach(struct i8042 *kbc, struct bus *pio)
{
    int ret = bus_register(pio, PORT_I8042_DATA, 1, &i8042_data_ops, kbc, "i8042-data");
    if (ret < 0)
        return ret;
    return bus_register(pio, PORT_I8042_CMD, 1, &i8042_cmd_ops, kbc, "i8042-cmd");
}

void i8042_reset(struct i8042 *kbc)
{
    pthread_mutex_lock(&kbc->lock);
    i8042_power_on(kbc);
    pthread_mutex_unlock(&kbc->lock);
}
