/* IDT construction and the default "unexpected trap" report. */
#include "trap.h"

#include "apic.h"
#include "console.h"
#include "defs.h"
#include "io.h"
#include "runtime.h"

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t zero;
} __attribute__((packed));

struct idt_desc {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

extern const char isr_stubs[];

static struct idt_gate idt[256] __attribute__((aligned(16)));
static trap_handler_fn handlers[256];

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP",
    "#SS", "#GP", "#PF", "?15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void trap_load(void)
{
    struct idt_desc d = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };

    __asm__ volatile("lidt %0" : : "m"(d));
}

void trap_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)(isr_stubs + 16 * v);

        idt[v].offset_lo = (uint16_t)a;
        idt[v].selector = SEL_CODE64;
        idt[v].ist = 0;
        idt[v].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate (IF cleared) */
        idt[v].offset_mid = (uint16_t)(a >> 16);
        idt[v].offset_hi = (uint32_t)(a >> 32);
        idt[v].zero = 0;
    }
    trap_load();
}

void trap_set_handler(unsigned vector, trap_handler_fn fn)
{
    if (vector < 256)
        handlers[vector] = fn;
}

void trap_dispatch(struct trap_frame *f)
{
    unsigned v = (unsigned)f->vector;

    if (v < 256 && handlers[v]) {
        handlers[v](f);
        return;
    }
    /* A LAPIC spurious interrupt is normal (an interrupt withdrawn before acceptance) and takes
     * no EOI. */
    if (v == APIC_SPURIOUS_VECTOR)
        return;
    console_break_lock();
    if (v < 32) {
        const char *name = exception_names[v] ? exception_names[v] : "reserved";
        printf("EXCEPTION: vector %u (%s) error 0x%lx at RIP 0x%lx CS 0x%lx RFLAGS 0x%lx "
               "RSP 0x%lx CR2 0x%lx\n",
               v, name, f->error, f->rip, f->cs, f->rflags, f->rsp, read_cr2());
        printf("  rax 0x%lx rbx 0x%lx rcx 0x%lx rdx 0x%lx rsi 0x%lx rdi 0x%lx\n", f->rax, f->rbx,
               f->rcx, f->rdx, f->rsi, f->rdi);
    } else {
        printf("UNEXPECTED INTERRUPT: vector %u at RIP 0x%lx\n", v, f->rip);
    }
    test_fail("unexpected trap");
}
