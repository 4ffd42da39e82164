/* The PC's pair of 8259A programmable interrupt controllers: master at PORT_PIC_MASTER (0x20),
 * slave at PORT_PIC_SLAVE (0xa0) cascaded on the master's IRQ2, and the edge/level control
 * registers (ELCR) at 0x4d0/0x4d1.
 *
 * Modelled: ICW1-ICW4 initialisation, OCW1 (mask), OCW2 (non-specific, specific and rotating
 * EOI, set priority), OCW3 (read IRR/ISR, poll, special mask), auto-EOI and rotate-on-auto-EOI,
 * special fully nested mode on the master, edge or level triggering per ELCR. Not modelled:
 * 8080/8085 mode (ICW1.IC4 = 0 leaves x86 mode with normal EOI, as on every PC), buffered mode.
 *
 * The master's INT output is a level handed to the owner's callback (the BSP's LINT0); the CPU
 * side of the INTA cycle is pic_get_vector().
 *
 * Threading: one lock for the pair. The output callback runs under it, so it must not call back
 * into the PIC (lapic_set_lint() does not). */
#ifndef VIREO_ACCEL_SOFT_PIC_H
#define VIREO_ACCEL_SOFT_PIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

#define PORT_PIC_ELCR 0x4d0

struct pic;

struct pic_chip {
    struct pic *pic;
    bool master;
    uint8_t irr;          /* requests latched (edge) or present (level) */
    uint8_t isr;          /* in service */
    uint8_t imr;          /* masked */
    uint8_t lines;        /* current input levels, for edge detection */
    uint8_t elcr, elcr_mask;
    uint8_t base;         /* ICW2: vector of IRQ0 of this chip */
    uint8_t lowest;       /* rotation: the IRQ with the lowest priority is lowest - 1 */
    uint8_t init_step;    /* 0: operational; 1..3: waiting for ICW2..ICW4 */
    bool need_icw4, single, auto_eoi, rotate_auto_eoi, special_nested, special_mask;
    bool read_isr, poll;
};

/* Where the master's INT output goes. */
struct pic_output {
    void (*set_int)(void *opaque, int level);
    void *opaque;
};

struct pic {
    pthread_mutex_t lock;
    struct pic_chip chip[2]; /* master, slave */
    struct pic_output out;
    bool int_level;
};

/* Allocate the pair in its power-on state (uninitialised, nothing masked, all edge). out may be
 * NULL. Returns NULL with errno set. */
struct pic *pic_create(const struct pic_output *out);
/* Free it; it must no longer be reachable from a bus. */
void pic_destroy(struct pic *pic);
/* Back to the power-on state (uninitialised, all edge); input levels stay as the wires are. */
void pic_reset(struct pic *pic);
/* Register 0x20-0x21, 0xa0-0xa1 and 0x4d0-0x4d1. Returns 0 or -errno. */
int pic_attach(struct pic *pic, struct bus *pio);

/* Drive ISA IRQ irq (0..15; 2 is the cascade and ignored) to level. */
void pic_set_irq(struct pic *pic, unsigned irq, int level);
/* The interrupt acknowledge cycle: the vector of the highest-priority request, which goes in
 * service; the IRQ7 (or IRQ15) vector as a spurious interrupt when the request went away. */
int pic_get_vector(struct pic *pic);
/* The master's INT output right now. */
bool pic_int_level(struct pic *pic);

/* Port handlers: chip registers (offset 0: command, 1: data; opaque: struct pic_chip) and the
 * ELCR pair (opaque: struct pic). */
extern const struct bus_dev_ops pic_chip_ops;
extern const struct bus_dev_ops pic_elcr_ops;

#endif
