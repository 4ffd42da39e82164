/* The 8259A pair: Linux's initialisation and probe, vectoring through the INTA cycle, priority,
 * cascade, EOI flavours, rotation, poll, IRR/ISR reads, ELCR level triggering, special mask. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "accel/soft/pic.h"
#include "arch/x86/layout.h"
#include "devices/bus.h"

struct harness {
    struct pic *pic;
    struct bus pio;
    int int_level;
    unsigned int_changes;
};

static void h_set_int(void *opaque, int level)
{
    struct harness *h = opaque;
    h->int_level = level;
    h->int_changes++;
}

static void outb(struct harness *h, uint16_t port, uint8_t v)
{
    assert_true(bus_write(&h->pio, port, 1, v));
}

static uint8_t inb(struct harness *h, uint16_t port)
{
    uint64_t v;
    assert_true(bus_read(&h->pio, port, 1, &v));
    return (uint8_t)v;
}

/* What Linux's init_8259A() does (vectors 0x30 and 0x38, normal EOI), masks restored last. */
static void linux_init(struct harness *h, bool auto_eoi)
{
    outb(h, 0x21, 0xff);
    outb(h, 0xa1, 0xff);
    outb(h, 0x20, 0x11);             /* ICW1: edge, cascade, ICW4 follows */
    outb(h, 0x21, 0x30);             /* ICW2: IRQ0-7 at 0x30 */
    outb(h, 0x21, 0x04);             /* ICW3: slave on IR2 */
    outb(h, 0x21, auto_eoi ? 3 : 1); /* ICW4: x86 mode */
    outb(h, 0xa0, 0x11);
    outb(h, 0xa1, 0x38);
    outb(h, 0xa1, 0x02);
    outb(h, 0xa1, 0x01);
    outb(h, 0x21, 0x00);
    outb(h, 0xa1, 0x00);
}

static int setup(void **state)
{
    struct harness *h = test_calloc(1, sizeof(*h));
    struct pic_output out = {.set_int = h_set_int, .opaque = h};
    h->pic = pic_create(&out);
    assert_non_null(h->pic);
    bus_init(&h->pio, "pio");
    assert_int_equal(pic_attach(h->pic, &h->pio), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct harness *h = *state;
    pic_destroy(h->pic);
    test_free(h);
    return 0;
}

static void pulse(struct harness *h, unsigned irq)
{
    pic_set_irq(h->pic, irq, 1);
    pic_set_irq(h->pic, irq, 0);
}

static void test_linux_init_and_probe(void **state)
{
    struct harness *h = *state;
    /* probe_8259A(): the mask register reads back what was written. */
    outb(h, 0x21, 0xff);
    assert_int_equal(inb(h, 0x21), 0xff);
    outb(h, 0x21, 0x5a);
    assert_int_equal(inb(h, 0x21), 0x5a);
    linux_init(h, false);
    assert_int_equal(inb(h, 0x21), 0x00);
    assert_int_equal(inb(h, 0xa1), 0x00);
    assert_int_equal(h->pic->chip[0].base, 0x30);
    assert_int_equal(h->pic->chip[1].base, 0x38);
    assert_false(h->int_level);
    /* ICW1 clears the mask and any latched request. */
    outb(h, 0x21, 0xff);
    pulse(h, 1);
    outb(h, 0x20, 0x11);
    assert_int_equal(inb(h, 0x20), 0); /* IRR, the default read */
    assert_int_equal(inb(h, 0x21), 0);
}

static void test_vectoring_priority_and_eoi(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    pulse(h, 5);
    assert_true(h->int_level);
    pulse(h, 3);
    assert_int_equal(pic_get_vector(h->pic), 0x33);
    /* IRQ5 is of lower priority than IRQ3, which is in service: INT drops. */
    assert_false(h->int_level);
    /* IRQ1 outranks it and nests. */
    pulse(h, 1);
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x31);
    outb(h, 0x20, 0x0b); /* OCW3: read ISR */
    assert_int_equal(inb(h, 0x20), 0x0a);
    outb(h, 0x20, 0x20); /* non-specific EOI: the highest, IRQ1 */
    assert_int_equal(inb(h, 0x20), 0x08);
    outb(h, 0x20, 0x63); /* specific EOI of IRQ3 */
    assert_int_equal(inb(h, 0x20), 0x00);
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x35);
    outb(h, 0x20, 0x0a); /* back to reading IRR */
    assert_int_equal(inb(h, 0x20), 0x00);
    outb(h, 0x20, 0x20);
    /* Masked requests stay latched and do not interrupt until unmasked. */
    outb(h, 0x21, 0x40);
    pulse(h, 6);
    assert_false(h->int_level);
    assert_int_equal(inb(h, 0x20), 0x40);
    outb(h, 0x21, 0x00);
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x36);
}

static void test_cascade(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    pulse(h, 10);
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x3a);
    assert_int_equal(h->pic->chip[0].isr, 1u << 2);
    assert_int_equal(h->pic->chip[1].isr, 1u << 2);
    /* The slave's requests wait behind the cascade in service (not special fully nested). */
    pulse(h, 8);
    assert_false(h->int_level);
    outb(h, 0xa0, 0x20);
    outb(h, 0x20, 0x20);
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x38);
    /* Masking the cascade silences the whole slave. */
    outb(h, 0xa0, 0x20);
    outb(h, 0x20, 0x20);
    outb(h, 0x21, 0x04);
    pulse(h, 9);
    assert_false(h->int_level);
    outb(h, 0x21, 0x00);
    assert_int_equal(pic_get_vector(h->pic), 0x39);
    /* IRQ2 itself is the cascade, not an input. */
    outb(h, 0xa0, 0x20);
    outb(h, 0x20, 0x20);
    pic_set_irq(h->pic, 2, 1);
    pic_set_irq(h->pic, 16, 1);
    assert_false(h->int_level);
}

static void test_auto_eoi_and_spurious(void **state)
{
    struct harness *h = *state;
    linux_init(h, true);
    pulse(h, 4);
    assert_int_equal(pic_get_vector(h->pic), 0x34);
    assert_int_equal(h->pic->chip[0].isr, 0);
    pulse(h, 6);
    assert_int_equal(pic_get_vector(h->pic), 0x36); /* nothing in service blocks it */
    /* An INTA with nothing requested answers IRQ7. */
    assert_int_equal(pic_get_vector(h->pic), 0x37);
}

static void test_rotation(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    pulse(h, 3);
    assert_int_equal(pic_get_vector(h->pic), 0x33);
    outb(h, 0x20, 0xa0); /* rotate on non-specific EOI: IRQ3 becomes the lowest */
    pulse(h, 1);
    pulse(h, 4);
    assert_int_equal(pic_get_vector(h->pic), 0x34);
    outb(h, 0x20, 0x20);
    assert_int_equal(pic_get_vector(h->pic), 0x31);
    outb(h, 0x20, 0x20);
    /* Set priority: IRQ5 lowest, so IRQ6 is highest and IRQ5 last. */
    outb(h, 0x20, 0xc5);
    pulse(h, 5);
    pulse(h, 0);
    pulse(h, 6);
    assert_int_equal(pic_get_vector(h->pic), 0x36);
    outb(h, 0x20, 0x20);
    assert_int_equal(pic_get_vector(h->pic), 0x30);
    outb(h, 0x20, 0x20);
    assert_int_equal(pic_get_vector(h->pic), 0x35);
    /* Rotate on specific EOI. */
    outb(h, 0x20, 0xe0 | 5);
    assert_int_equal(h->pic->chip[0].isr, 0);
    assert_int_equal(h->pic->chip[0].lowest, 6);
}

static void test_poll(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    outb(h, 0x20, 0x0c);
    assert_int_equal(inb(h, 0x20), 0x00); /* nothing pending */
    pulse(h, 7);
    outb(h, 0x20, 0x0c);
    assert_int_equal(inb(h, 0x20), 0x87);
    assert_int_equal(h->pic->chip[0].isr, 0x80);
    assert_false(h->int_level);
    /* Only the read right after the command polls. */
    assert_int_equal(inb(h, 0x20), 0x00);
}

static void test_elcr_level(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    /* IRQ 0-2 and 8, 13 cannot be level. */
    outb(h, 0x4d0, 0xff);
    outb(h, 0x4d1, 0xff);
    assert_int_equal(inb(h, 0x4d0), 0xf8);
    assert_int_equal(inb(h, 0x4d1), 0xde);
    outb(h, 0x4d0, 0x00);
    outb(h, 0x4d1, 0x02); /* IRQ9, the SCI */
    pic_set_irq(h->pic, 9, 1);
    assert_int_equal(pic_get_vector(h->pic), 0x39);
    outb(h, 0xa0, 0x20);
    outb(h, 0x20, 0x20);
    /* Still asserted: requested again after the EOI. */
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x39);
    outb(h, 0xa0, 0x20);
    outb(h, 0x20, 0x20);
    /* A level input that drops takes its request (and INT) with it. */
    assert_true(h->int_level);
    pic_set_irq(h->pic, 9, 0);
    assert_false(h->int_level);
    outb(h, 0x4d0, 0x20); /* IRQ5 level */
    pic_set_irq(h->pic, 5, 1);
    assert_true(h->int_level);
    /* An edge input held high interrupts once. */
    pic_set_irq(h->pic, 5, 0);
    outb(h, 0x4d0, 0x00);
    pic_set_irq(h->pic, 4, 1);
    assert_int_equal(pic_get_vector(h->pic), 0x34);
    outb(h, 0x20, 0x20);
    pic_set_irq(h->pic, 4, 1);
    assert_false(h->int_level);
}

static void test_spurious_slave(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    outb(h, 0x4d1, 0x02);
    pic_set_irq(h->pic, 9, 1);
    /* The master sees IRQ2; the slave's request leaves just before the INTA. Model that by
     * masking it on the slave after the master latched its cascade input. */
    h->pic->chip[1].imr = 0x02;
    assert_int_equal(pic_get_vector(h->pic), 0x3f);
}

static void test_special_mask(void **state)
{
    struct harness *h = *state;
    linux_init(h, false);
    pulse(h, 3);
    assert_int_equal(pic_get_vector(h->pic), 0x33);
    pulse(h, 5);
    assert_false(h->int_level);
    /* Special mask mode: masking the in-service IRQ3 lets lower priorities through. */
    outb(h, 0x21, 0x08);
    outb(h, 0x20, 0x68);
    assert_true(h->int_level);
    assert_int_equal(pic_get_vector(h->pic), 0x35);
    outb(h, 0x20, 0x48); /* leave special mask mode */
    outb(h, 0x20, 0x65);
    outb(h, 0x21, 0x00);
    pulse(h, 6);
    assert_false(h->int_level); /* IRQ3 blocks it again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_linux_init_and_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vectoring_priority_and_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_eoi_and_spurious, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elcr_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spurious_slave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_mask, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
