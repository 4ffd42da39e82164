#include "accel/soft/pic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"

#define CASCADE_IRQ 2

/* ---- one chip (pic lock held) ---- */

/* Priority rank (0 = highest) of the highest-priority bit set in mask, 8 if none. Priorities
 * rotate: IRQ `lowest` has rank 0 after a rotation made lowest - 1 the lowest-priority IRQ. */
static unsigned best_rank(const struct pic_chip *c, uint8_t mask)
{
    for (unsigned rank = 0; rank < 8; rank++)
        if (mask & (1u << ((rank + c->lowest) & 7)))
            return rank;
    return 8;
}

static unsigned rank_irq(const struct pic_chip *c, unsigned rank)
{
    return (rank + c->lowest) & 7;
}

/* The IRQ this chip would signal to its CPU (or master), or -1. */
static int chip_pending(const struct pic_chip *c)
{
    unsigned req = best_rank(c, c->irr & ~c->imr);
    if (req == 8)
        return -1;
    uint8_t in_service = c->isr;
    /* Special mask mode: masked levels do not block lower priorities. */
    if (c->special_mask)
        in_service &= ~c->imr;
    /* Special fully nested: the cascade's in-service bit does not block more slave requests. */
    if (c->master && c->special_nested)
        in_service &= ~(1u << CASCADE_IRQ);
    return req < best_rank(c, in_service) ? (int)rank_irq(c, req) : -1;
}

static void update(struct pic *pic)
{
    struct pic_chip *m = &pic->chip[0], *s = &pic->chip[1];
    /* The slave's INT output is the master's IRQ2 input, a level. */
    if (chip_pending(s) >= 0)
        m->irr |= 1u << CASCADE_IRQ;
    else
        m->irr &= ~(1u << CASCADE_IRQ);
    bool level = chip_pending(m) >= 0;
    if (level != pic->int_level) {
        pic->int_level = level;
        if (pic->out.set_int)
            pic->out.set_int(pic->out.opaque, level);
    }
}

static void chip_set_line(struct pic_chip *c, unsigned irq, int level)
{
    uint8_t bit = (uint8_t)(1u << irq);
    if (c->elcr & bit) {
        if (level)
            c->irr |= bit;
        else
            c->irr &= ~bit;
    } else if (level && !(c->lines & bit)) {
        c->irr |= bit; /* edge: latched on the rising edge, kept until acknowledged */
    }
    if (level)
        c->lines |= bit;
    else
        c->lines &= ~bit;
}

/* Put irq in service as the INTA cycle (or a poll) does. */
static void chip_ack(struct pic_chip *c, unsigned irq)
{
    uint8_t bit = (uint8_t)(1u << irq);
    if (c->auto_eoi) {
        if (c->rotate_auto_eoi)
            c->lowest = (uint8_t)((irq + 1) & 7);
    } else {
        c->isr |= bit;
    }
    /* An edge request is consumed; a level request stays while the line is high. */
    if (!(c->elcr & bit))
        c->irr &= ~bit;
}

static void chip_reset(struct pic_chip *c)
{
    uint8_t elcr = c->elcr, elcr_mask = c->elcr_mask;
    struct pic *pic = c->pic;
    bool master = c->master;
    uint8_t lines = c->lines;
    memset(c, 0, sizeof(*c));
    c->pic = pic;
    c->master = master;
    c->elcr = elcr;
    c->elcr_mask = elcr_mask;
    c->lines = lines;
}

static void chip_command(struct pic_chip *c, uint8_t val)
{
    if (val & 0x10) { /* ICW1: start initialisation */
        chip_reset(c);
        c->init_step = 1;
        c->need_icw4 = val & 0x01;
        c->single = val & 0x02;
        return;
    }
    if (val & 0x08) { /* OCW3 */
        if (val & 0x04)
            c->poll = true;
        if (val & 0x02)
            c->read_isr = val & 0x01;
        if (val & 0x40)
            c->special_mask = val & 0x20;
        return;
    }
    /* OCW2 */
    unsigned irq = val & 7;
    switch (val >> 5) {
    case 0: /* clear rotate in auto-EOI */
    case 4: /* set rotate in auto-EOI */
        c->rotate_auto_eoi = val & 0x80;
        break;
    case 1: /* non-specific EOI */
    case 5: { /* rotate on non-specific EOI */
        unsigned rank = best_rank(c, c->isr);
        if (rank == 8)
            break;
        unsigned done = rank_irq(c, rank);
        c->isr &= ~(1u << done);
        if (val >> 5 == 5)
            c->lowest = (uint8_t)((done + 1) & 7);
        break;
    }
    case 3: /* specific EOI */
        c->isr &= ~(1u << irq);
        break;
    case 7: /* rotate on specific EOI */
        c->isr &= ~(1u << irq);
        c->lowest = (uint8_t)((irq + 1) & 7);
        break;
    case 6: /* set priority: irq becomes the lowest */
        c->lowest = (uint8_t)((irq + 1) & 7);
        break;
    default: /* 2: no operation */
        break;
    }
}

static void chip_data(struct pic_chip *c, uint8_t val)
{
    switch (c->init_step) {
    case 1: /* ICW2: vector base; the low three bits are the IRQ number */
        c->base = val & 0xf8;
        c->init_step = c->single ? (c->need_icw4 ? 3 : 0) : 2;
        break;
    case 2: /* ICW3: cascade wiring, fixed on a PC */
        c->init_step = c->need_icw4 ? 3 : 0;
        break;
    case 3: /* ICW4 */
        c->auto_eoi = val & 0x02;
        c->special_nested = val & 0x10;
        c->init_step = 0;
        break;
    default: /* OCW1 */
        c->imr = val;
        break;
    }
}

/* A poll command turns the next read into an acknowledge without an INTA cycle. */
static uint8_t chip_poll(struct pic *pic, struct pic_chip *c)
{
    int irq = chip_pending(c);
    if (irq < 0)
        return 0;
    chip_ack(c, (unsigned)irq);
    if (c->master && irq == CASCADE_IRQ) {
        /* The slave's request is what the master saw: acknowledge it there too. */
        int sirq = chip_pending(&pic->chip[1]);
        if (sirq >= 0)
            chip_ack(&pic->chip[1], (unsigned)sirq);
    }
    return (uint8_t)(0x80 | irq);
}

static uint64_t pic_chip_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pic_chip *c = opaque;
    struct pic *pic = c->pic;
    uint8_t val;
    (void)size;
    pthread_mutex_lock(&pic->lock);
    if (c->poll) {
        c->poll = false;
        val = chip_poll(pic, c);
        update(pic);
    } else if (offset == 0) {
        val = c->read_isr ? c->isr : c->irr;
    } else {
        val = c->imr;
    }
    pthread_mutex_unlock(&pic->lock);
    return val;
}

static void pic_chip_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pic_chip *c = opaque;
    struct pic *pic = c->pic;
    (void)size;
    pthread_mutex_lock(&pic->lock);
    if (offset == 0)
        chip_command(c, (uint8_t)data);
    else
        chip_data(c, (uint8_t)data);
    update(pic);
    pthread_mutex_unlock(&pic->lock);
}

static uint64_t pic_elcr_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pic *pic = opaque;
    (void)size;
    pthread_mutex_lock(&pic->lock);
    uint8_t v = pic->chip[offset & 1].elcr;
    pthread_mutex_unlock(&pic->lock);
    return v;
}

static void pic_elcr_write(void *opaque, uint64_t offset, uint64_t data, unsigned size)
{
    struct pic *pic = opaque;
    (void)size;
    pthread_mutex_lock(&pic->lock);
    struct pic_chip *c = &pic->chip[offset & 1];
    c->elcr = (uint8_t)data & c->elcr_mask;
    update(pic);
    pthread_mutex_unlock(&pic->lock);
}

const struct bus_dev_ops pic_chip_ops = {.read = pic_chip_read, .write = pic_chip_write};
const struct bus_dev_ops pic_elcr_ops = {.read = pic_elcr_read, .write = pic_elcr_write};

struct pic *pic_create(const struct pic_output *out)
{
    struct pic *pic = calloc(1, sizeof(*pic));
    if (!pic)
        return NULL;
    int rc = pthread_mutex_init(&pic->lock, NULL);
    if (rc) {
        free(pic);
        errno = rc;
        return NULL;
    }
    if (out)
        pic->out = *out;
    for (unsigned i = 0; i < 2; i++) {
        pic->chip[i].pic = pic;
        pic->chip[i].master = i == 0;
    }
    /* The timer, keyboard and cascade (IRQ 0-2) and the RTC and FPU (IRQ 8, 13) are wired as
     * edge on a PC chipset; their ELCR bits cannot be set. */
    pic->chip[0].elcr_mask = 0xf8;
    pic->chip[1].elcr_mask = 0xde;
    return pic;
}

void pic_destroy(struct pic *pic)
{
    if (!pic)
        return;
    pthread_mutex_destroy(&pic->lock);
    free(pic);
}

void pic_reset(struct pic *pic)
{
    pthread_mutex_lock(&pic->lock);
    for (unsigned i = 0; i < 2; i++) {
        chip_reset(&pic->chip[i]);
        pic->chip[i].elcr = 0;
    }
    update(pic);
    pthread_mutex_unlock(&pic->lock);
}

int pic_attach(struct pic *pic, struct bus *pio)
{
    int rc = bus_register(pio, PORT_PIC_MASTER, 2, &pic_chip_ops, &pic->chip[0], "pic-master");
    if (rc == 0)
        rc = bus_register(pio, PORT_PIC_SLAVE, 2, &pic_chip_ops, &pic->chip[1], "pic-slave");
    if (rc == 0)
        rc = bus_register(pio, PORT_PIC_ELCR, 2, &pic_elcr_ops, pic, "pic-elcr");
    return rc;
}

void pic_set_irq(struct pic *pic, unsigned irq, int level)
{
    if (irq >= 16 || irq == CASCADE_IRQ)
        return;
    pthread_mutex_lock(&pic->lock);
    chip_set_line(&pic->chip[irq >> 3], irq & 7, level);
    update(pic);
    pthread_mutex_unlock(&pic->lock);
}

int pic_get_vector(struct pic *pic)
{
    struct pic_chip *m = &pic->chip[0], *s = &pic->chip[1];
    int vector;
    pthread_mutex_lock(&pic->lock);
    int irq = chip_pending(m);
    if (irq < 0) {
        /* The request went away between INT and INTA: the 8259 answers with IRQ7. */
        vector = m->base | 7;
    } else {
        chip_ack(m, (unsigned)irq);
        if (irq == CASCADE_IRQ) {
            int sirq = chip_pending(s);
            if (sirq >= 0) {
                chip_ack(s, (unsigned)sirq);
                vector = s->base | sirq;
            } else {
                vector = s->base | 7;
            }
        } else {
            vector = m->base | irq;
        }
    }
    update(pic);
    pthread_mutex_unlock(&pic->lock);
    return vector;
}

bool pic_int_level(struct pic *pic)
{
    pthread_mutex_lock(&pic->lock);
    bool r = pic->int_level;
    pthread_mutex_unlock(&pic->lock);
    return r;
}
