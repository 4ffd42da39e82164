/* code_patching: code that changes under execution runs as changed, the ways Linux changes it.
 *   1. self_modifying: a function in an RWX page is rewritten through its own address (and one
 *      rewrites its own immediate, then jumps to it, as the SDM asks); each call sees the new code.
 *   2. text_poke: a page executable at X and writable, non-executable at alias Y (Linux's
 *      text_poke()): write through Y, reload CR3, read the bytes back through X, execute X: the
 *      new code, every time. Then text_poke_bp(): int3 at X[0] (the #BP handler sees RIP X+1 and
 *      emulates the call), the new tail, the new first byte: no #BP, the new result.
 *   3. straddle: `mov $imm32, %eax` whose immediate runs into the next page (a physically
 *      unrelated one); patching the bytes in either page changes the value.
 *   4. cross_vcpu: an AP calls a function in a loop while the BSP patches its return value
 *      through the alias; the AP must see the new value within a bounded number of calls.
 * X lives in the upper half and is global with CR4.PGE, like kernel text: CR3 reloads keep its
 * TLB entries (and a software CPU's decoded blocks), as they do under Linux.
 *
 * Command-line options (the default runs steps 1-4; step 4 needs a second CPU):
 *   steps=NNN         only the steps listed (steps=123 on one CPU).
 *   remap             also: X is pointed at another physical page with INVLPG; the call must
 *                     run the new page's code. Then (step 6, remap_direct) a direct CALL from
 *                     another page into a page remapped by INVLPG (global) or a CR3 reload (not
 *                     global): a compiled exit linked into the old code must not keep using it.
 *   in_block          also: a store rewrites the next instruction of its own block, no jump.
 *   xmc_fresh         step 4 without the CR3 reloads around the BSP's writes, the AP executing
 *                     the page for the first time while the BSP still holds a write translation.
 *   no_int3           step 2's int3 is written but never executed (KVM's emulator on hosts
 *                     without VT-x fails on int3 in long mode; the harness passes it there). */
#include "runtime.h"

#include "apic.h"
#include "defs.h"
#include "smp.h"
#include "timer.h"
#include "trap.h"

const char guest_name[] = "code_patching";

#define PTE_P  0x1ULL
#define PTE_W  0x2ULL
#define PTE_G  0x100ULL
#define PTE_NX (1ULL << 63)
#define PTE_RX  (PTE_P | PTE_G)           /* kernel text */
#define PTE_RW  (PTE_P | PTE_W | PTE_NX)  /* text_poke's alias */
#define PTE_RWX (PTE_P | PTE_W)

#define CR4_PGE  (1ULL << 7)
#define EFER_NXE (1ULL << 11)

/* The scratch window: one 4 KiB page table under PML4 slot 400, in the upper half. */
#define PML4_SLOT 400
#define WINDOW    ((uint64_t)0xffff000000000000ULL | ((uint64_t)PML4_SLOT << 39))
#define VA(slot)  (WINDOW + (uint64_t)(slot) * 4096)

/* Window slots. */
enum {
    S_SMC = 0,       /* step 1: RWX */
    S_POKE_X = 2,    /* step 2: the text page, executable */
    S_STRAD_XA = 4,  /* step 3: A then B, adjacent virtually */
    S_STRAD_XB = 5,
    S_XMC_X = 7,     /* step 4 */
    S_POKE_Y = 8,    /* aliases, writable and non-executable */
    S_STRAD_YA = 9,
    S_STRAD_YB = 10,
    S_XMC_Y = 11,
    S_REMAP_X = 12,  /* the remap option */
    S_RD_A = 13, S_RD_X = 14, /* the remap option's direct-call step */
};

/* Physical pages (identity-mapped low memory). The straddle's second page comes first, so the two
 * halves of that instruction are not adjacent in guest-physical memory. */
enum {
    P_SMC, P_STRAD_B, P_POKE, P_STRAD_A, P_XMC, P_REMAP1, P_REMAP2, P_RD_A, P_RD_X1, P_RD_X2,
    NPAGES
};
static uint8_t phys[NPAGES][4096] __attribute__((aligned(4096)));
static uint64_t pt_pdpt[512] __attribute__((aligned(4096)));
static uint64_t pt_pd[512] __attribute__((aligned(4096)));
static uint64_t pt_pt[512] __attribute__((aligned(4096)));
extern uint64_t pml4[512];

typedef uint32_t (*code_fn)(void);
typedef uint32_t (*code_fn1)(uint32_t);

#define OP_MOV_EAX 0xb8
#define OP_RET     0xc3
#define OP_NOP     0x90
#define OP_INT3    0xcc

static uint64_t pa(const void *p)
{
    return (uint64_t)(uintptr_t)p; /* low memory is identity-mapped */
}

static void map(unsigned slot, unsigned page, uint64_t flags)
{
    pt_pt[slot] = pa(phys[page]) | flags;
    invlpg(VA(slot));
}

static uint32_t call(uint64_t va)
{
    return ((code_fn)va)();
}

/* `mov $imm, %eax; ret` at p (6 bytes). */
static void put_mov_ret(volatile uint8_t *p, uint32_t imm)
{
    p[0] = OP_MOV_EAX;
    for (int k = 0; k < 4; k++)
        p[1 + k] = (uint8_t)(imm >> (8 * k));
    p[5] = OP_RET;
}

static void step_ok(const char *n, const char *name, const char *detail)
{
    printf("code_patching: step %s %s: ok%s%s\n", n, name, *detail ? ": " : "", detail);
}

/* --- 1. plain self-modifying code ----------------------------------------------------------- */

static void step_self_modifying(void)
{
    volatile uint8_t *s = (volatile uint8_t *)VA(S_SMC);
    put_mov_ret(s, 0x5e1f0001);
    ASSERT_EQ(call(VA(S_SMC)), 0x5e1f0001);
    /* Rewrite the immediate through the address it runs at, several times. */
    for (uint32_t v = 0x5e1f0002; v < 0x5e1f0006; v++) {
        *(volatile uint32_t *)(s + 1) = v;
        ASSERT_EQ(call(VA(S_SMC)), v);
    }
    /* Rewrite the whole instruction: `xor %eax, %eax; dec %eax; ret` returns ~0. */
    s[0] = 0x31, s[1] = 0xc0, s[2] = 0xff, s[3] = 0xc8, s[4] = OP_RET;
    ASSERT_EQ(call(VA(S_SMC)), 0xffffffffu);

    /* A function that stores its argument into its own next instruction's immediate, then
     * jumps to it (the SDM's portable self-modification):
     *   +0  89 3d 03 00 00 00   mov %edi, 3(%rip)     ; the imm32 at +9
     *   +6  eb 00               jmp +8
     *   +8  b8 xx xx xx xx      mov $imm32, %eax
     *   +13 c3                  ret */
    volatile uint8_t *f = s + 0x100;
    const uint8_t self_patch[] = {0x89, 0x3d, 0x03, 0x00, 0x00, 0x00, 0xeb, 0x00,
                                  OP_MOV_EAX, 0x00, 0x00, 0x00, 0x00, OP_RET};
    for (unsigned k = 0; k < sizeof(self_patch); k++)
        f[k] = self_patch[k];
    code_fn1 fn = (code_fn1)(VA(S_SMC) + 0x100);
    for (uint32_t v = 0xa1; v < 0xa5; v++)
        ASSERT_EQ(fn(v * 0x01010101u), v * 0x01010101u);
    step_ok("1", "self_modifying", "rewritten through its own address: each call ran the new code");
}

/* The same without the jump: the store rewrites the immediate of the very next instruction.
 *   +0  89 3d 01 00 00 00   mov %edi, 1(%rip)     ; the imm32 at +7
 *   +6  b8 xx xx xx xx      mov $imm32, %eax
 *   +11 c3                  ret
 * Processors since the P6 see the new bytes (the SDM: a write to a prefetched instruction
 * invalidates the prefetch queue); only the jump form is promised for all of them. */
static void step_self_modifying_in_block(void)
{
    volatile uint8_t *f = (volatile uint8_t *)VA(S_SMC) + 0x200;
    const uint8_t code[] = {0x89, 0x3d, 0x01, 0x00, 0x00, 0x00, OP_MOV_EAX, 0, 0, 0, 0, OP_RET};
    for (unsigned k = 0; k < sizeof(code); k++)
        f[k] = code[k];
    code_fn1 fn = (code_fn1)(VA(S_SMC) + 0x200);
    for (uint32_t v = 0xb1; v < 0xb5; v++) {
        uint32_t got = fn(v * 0x01010101u);
        if (got != v * 0x01010101u)
            printf("code_patching: in_block: returned 0x%x, not 0x%x\n", got, v * 0x01010101u);
        ASSERT_EQ(got, v * 0x01010101u);
    }
    step_ok("1b", "self_modifying_in_block", "a store into the next instruction, no jump");
}

/* --- 2. text_poke and text_poke_bp ---------------------------------------------------------- */

/* Linux's text_poke(): switch to the poking mm (a CR3 write), write through the writable alias,
 * switch back (another), then check the bytes through the executable mapping. */
static void text_poke(uint64_t x, uint64_t y, const uint8_t *bytes, unsigned len)
{
    uint64_t cr3 = read_cr3();
    write_cr3(cr3);
    for (unsigned k = 0; k < len; k++)
        ((volatile uint8_t *)y)[k] = bytes[k];
    write_cr3(cr3);
    for (unsigned k = 0; k < len; k++)
        ASSERT_EQ(((volatile uint8_t *)x)[k], bytes[k]); /* a data read through X */
}

#define BP_EMULATED 0xb9b9b9b9u

static volatile unsigned bp_hits;
static volatile uint64_t bp_rip, bp_expect_rip;

/* #BP on the patched function: emulate a call that returns BP_EMULATED (pop the return address),
 * as poke_int3_handler() emulates the instruction under the int3. */
static void on_bp(struct trap_frame *f)
{
    bp_hits++;
    bp_rip = f->rip;
    if (f->rip != bp_expect_rip)
        return; /* reported by the caller */
    f->rip = *(uint64_t *)(uintptr_t)f->rsp;
    f->rsp += 8;
    f->rax = BP_EMULATED;
}

static void imm_bytes(uint8_t *out, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        out[k] = (uint8_t)(v >> (8 * k));
}

static void step_text_poke(void)
{
    uint64_t x = VA(S_POKE_X), y = VA(S_POKE_Y);
    uint8_t code[6] = {OP_MOV_EAX, 0, 0, 0, 0, OP_RET};

    imm_bytes(code + 1, 0x7e470001);
    text_poke(x, y, code, sizeof(code));
    ASSERT_EQ(call(x), 0x7e470001);
    /* Execute, read through X, write through Y, execute: each round must run the new bytes. */
    for (uint32_t v = 0x7e470002; v < 0x7e470006; v++) {
        ASSERT_EQ(((volatile uint8_t *)x)[1], code[1]);
        imm_bytes(code + 1, v);
        text_poke(x + 1, y + 1, code + 1, 4);
        uint32_t got = call(x);
        if (got != v)
            printf("code_patching: text_poke: X returned 0x%x after the poke of 0x%x\n", got, v);
        ASSERT_EQ(got, v);
    }
    step_ok("2a", "text_poke", "write through the alias, read through X, execute X: new code x4");

    /* text_poke_bp(): int3 first, then the tail, then the first byte. With no_int3 (KVM's
     * emulator on hosts without VT-x stops at an int3 in long mode with an emulation failure),
     * the same pokes, but X runs only at the end. */
    int no_int3 = cmdline_get("no_int3", NULL, 0) >= 0;
    trap_set_handler(3, on_bp);
    bp_expect_rip = x + 1;
    const uint8_t int3 = OP_INT3;
    text_poke(x, y, &int3, 1);
    uint8_t tail[5];
    imm_bytes(tail, 0x7e47bbbb);
    tail[4] = OP_RET;
    const uint8_t first = OP_MOV_EAX;
    uint32_t got;
    if (no_int3) {
        text_poke(x + 1, y + 1, tail, sizeof(tail));
        text_poke(x, y, &first, 1);
        got = call(x);
        printf("code_patching: text_poke_bp: no_int3: X not run while the int3 was in place; "
               "result 0x%x\n", got);
        ASSERT_EQ(bp_hits, 0);
        ASSERT_EQ(got, 0x7e47bbbb);
        trap_set_handler(3, NULL);
        step_ok("2b", "text_poke_bp", "int3, tail, first byte (no int3 executed): the new code");
        return;
    }
    got = call(x);
    printf("code_patching: text_poke_bp: int3 written: #BP %u at RIP 0x%lx, result 0x%x\n",
           bp_hits, bp_rip, got);
    ASSERT_EQ(bp_hits, 1);
    ASSERT_EQ(bp_rip, x + 1);
    ASSERT_EQ(got, BP_EMULATED);

    text_poke(x + 1, y + 1, tail, sizeof(tail));
    got = call(x); /* the int3 is still there */
    ASSERT_EQ(bp_hits, 2);
    ASSERT_EQ(bp_rip, x + 1);
    ASSERT_EQ(got, BP_EMULATED);

    text_poke(x, y, &first, 1);
    got = call(x);
    printf("code_patching: text_poke_bp: first byte written: #BP %u, result 0x%x\n", bp_hits, got);
    ASSERT_EQ(bp_hits, 2);
    ASSERT_EQ(got, 0x7e47bbbb);
    trap_set_handler(3, NULL);
    step_ok("2b", "text_poke_bp", "int3, tail, first byte: #BP at X+1 twice, then the new code");
}

/* --- 3. an instruction across a page boundary ------------------------------------------------ */

static void step_straddle(void)
{
    /* At A+0xff8: six nops, then `mov $imm32, %eax` with its opcode and imm byte 0 in A and imm
     * bytes 1..3 in B, then `ret` at B+3. */
    volatile uint8_t *ya = (volatile uint8_t *)VA(S_STRAD_YA);
    volatile uint8_t *yb = (volatile uint8_t *)VA(S_STRAD_YB);
    for (unsigned k = 0xff8; k < 0xffe; k++)
        ya[k] = OP_NOP;
    ya[0xffe] = OP_MOV_EAX;
    ya[0xfff] = 0x11;
    yb[0] = 0x22, yb[1] = 0x33, yb[2] = 0x44, yb[3] = OP_RET;
    uint64_t fn = VA(S_STRAD_XA) + 0xff8;
    ASSERT_EQ(call(fn), 0x44332211);

    /* The immediate's bytes in the second page. */
    yb[0] = 0xaa, yb[1] = 0xbb, yb[2] = 0xcc;
    uint32_t got = call(fn);
    printf("code_patching: straddle: bytes in the second page patched: 0x%x\n", got);
    ASSERT_EQ(got, 0xccbbaa11);
    /* And the byte in the first page. */
    ya[0xfff] = 0x99;
    got = call(fn);
    printf("code_patching: straddle: byte in the first page patched: 0x%x\n", got);
    ASSERT_EQ(got, 0xccbbaa99);
    step_ok("3", "straddle", "both halves of a page-crossing immediate patched through aliases");
}

/* --- 4. cross-vCPU modification --------------------------------------------------------------- */

#define XMC_OLD        0x0c0d0001u
#define XMC_NEW        0x0c0d0002u
#define XMC_WARMUP     100     /* AP calls before the BSP patches */
#define XMC_MAX_STALE  2000    /* calls after seeing the patch that may return the old value */
#define XMC_MAX_CALLS  2000000 /* the AP gives up after this many calls in all */

static volatile uint32_t ap_apic_id;
static volatile int ap_up;
static volatile unsigned xmc_patched;  /* BSP: the new code is written */
static volatile uint64_t xmc_calls;    /* AP: calls made so far */
static volatile uint64_t xmc_stale;    /* AP: calls after seeing xmc_patched that returned old */
static volatile uint32_t xmc_last;     /* AP: the last value seen */
static volatile unsigned xmc_done;

static void ap_main(unsigned cpu, uint32_t apic_id)
{
    (void)cpu;
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE); /* page tables have NX bits */
    ap_apic_id = apic_id;
    ap_up = 1;
    /* smp_start_aps() waits for this to return; the AP then halts with interrupts off, and the
     * BSP's NMI brings it into ap_spin() (the NMI handler) for the loop. */
}

/* The AP's loop, run from the NMI handler: call X until it returns the new value. */
static void ap_spin(struct trap_frame *f)
{
    (void)f;
    uint64_t x = VA(S_XMC_X);
    uint64_t stale = 0;
    uint32_t v = 0;
    int serialized = 0;
    for (uint64_t n = 1; n <= XMC_MAX_CALLS; n++) {
        unsigned patched = __atomic_load_n(&xmc_patched, __ATOMIC_ACQUIRE);
        if (patched && !serialized) {
            /* The SDM's cross-modifying protocol: a serializing instruction once the writer says
             * it is done. */
            uint32_t a, b, c, d;
            cpuid(0, 0, &a, &b, &c, &d);
            serialized = 1;
        }
        v = call(x);
        __atomic_store_n(&xmc_calls, n, __ATOMIC_RELEASE);
        if (v != XMC_OLD || (patched && ++stale > XMC_MAX_STALE))
            break;
    }
    xmc_stale = stale;
    xmc_last = v;
    __atomic_store_n(&xmc_done, 1, __ATOMIC_RELEASE);
}

static int wait_until(volatile uint64_t *counter, uint64_t at_least, uint64_t timeout_us)
{
    uint64_t end = timer_now_us() + timeout_us;
    while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < at_least) {
        if (__atomic_load_n(&xmc_done, __ATOMIC_ACQUIRE) || timer_now_us() > end)
            return -1;
        cpu_relax();
    }
    return 0;
}

static void step_cross_vcpu(int fresh)
{
    uint64_t x = VA(S_XMC_X), y = VA(S_XMC_Y);
    uint8_t code[6] = {OP_MOV_EAX, 0, 0, 0, 0, OP_RET};
    imm_bytes(code + 1, XMC_OLD);
    if (fresh) {
        /* Plain stores through the alias, and the AP is the first to execute the page. */
        for (unsigned k = 0; k < sizeof(code); k++)
            ((volatile uint8_t *)y)[k] = code[k];
    } else {
        text_poke(x, y, code, sizeof(code));
        ASSERT_EQ(call(x), XMC_OLD);
    }

    ASSERT(timer_init() == 0);
    int started = smp_start_aps(ap_main, 5000000);
    ASSERT(started >= 1); /* run with --cpus 2 */
    ASSERT(ap_up);
    trap_set_handler(2, ap_spin);
    ASSERT(lapic_send_ipi(ap_apic_id, 0x400 /* NMI */) == 0);
    if (fresh) {
        /* Patch as soon as the AP has run the code once, from a loop without port I/O (which
         * would take a software CPU back to its run loop, where it drops stale translations). */
        for (uint64_t n = 0; n < 2000000000 && !__atomic_load_n(&xmc_calls, __ATOMIC_ACQUIRE);
             n++)
            cpu_relax();
    } else if (wait_until(&xmc_calls, XMC_WARMUP, 10000000)) {
        printf("code_patching: cross_vcpu: AP made %lu calls, last 0x%x\n", xmc_calls, xmc_last);
        test_fail("the AP did not run the original code");
    }
    imm_bytes(code + 1, XMC_NEW);
    if (fresh) {
        for (unsigned k = 1; k < 5; k++)
            ((volatile uint8_t *)y)[k] = code[k];
    } else {
        text_poke(x + 1, y + 1, code + 1, 4);
    }
    uint64_t at_patch = __atomic_load_n(&xmc_calls, __ATOMIC_ACQUIRE);
    __atomic_store_n(&xmc_patched, 1, __ATOMIC_RELEASE);
    uint64_t end = timer_now_us() + 10000000;
    while (!__atomic_load_n(&xmc_done, __ATOMIC_ACQUIRE) && timer_now_us() < end)
        cpu_relax();
    printf("code_patching: cross_vcpu: AP calls %lu (%lu when patched), last 0x%x, "
           "old value seen %lu times after the patch was announced\n",
           xmc_calls, at_patch, xmc_last, xmc_stale);
    ASSERT(xmc_done);
    ASSERT_EQ(xmc_last, XMC_NEW);
    ASSERT(xmc_stale <= XMC_MAX_STALE);
    step_ok("4", fresh ? "cross_vcpu_fresh" : "cross_vcpu",
            "the AP ran the BSP's new code within the bound");
}

/* --- extra: the executable mapping moves to another page ------------------------------------- */

static void step_remap(void)
{
    put_mov_ret(phys[P_REMAP1], 0x4e3a0001);
    put_mov_ret(phys[P_REMAP2], 0x4e3a0002);
    map(S_REMAP_X, P_REMAP1, PTE_RX);
    ASSERT_EQ(call(VA(S_REMAP_X)), 0x4e3a0001);
    map(S_REMAP_X, P_REMAP2, PTE_RX); /* INVLPG */
    uint32_t got = call(VA(S_REMAP_X));
    printf("code_patching: remap: after INVLPG X runs 0x%x\n", got);
    ASSERT_EQ(got, 0x4e3a0002);
    step_ok("5", "remap", "X pointed at another page: its code ran");
}

/* A direct CALL rel32 from page A into X (another page), X remapped: via INVLPG (global X),
 * via a CR3 reload (non-global X). Each time the new page's code must run. */
static void put_call_ret(volatile uint8_t *p, int32_t rel)
{
    p[0] = 0xe8;
    for (int k = 0; k < 4; k++)
        p[1 + k] = (uint8_t)((uint32_t)rel >> (8 * k));
    p[5] = OP_RET;
}

static void step_remap_direct(void)
{
    put_call_ret(phys[P_RD_A], (int32_t)(VA(S_RD_X) - (VA(S_RD_A) + 5)));
    put_mov_ret(phys[P_RD_X1], 0x7d000001);
    put_mov_ret(phys[P_RD_X2], 0x7d000002);
    map(S_RD_A, P_RD_A, PTE_RX);
    map(S_RD_X, P_RD_X1, PTE_RX);
    for (int k = 0; k < 5; k++)
        ASSERT_EQ(call(VA(S_RD_A)), 0x7d000001);
    map(S_RD_X, P_RD_X2, PTE_RX); /* INVLPG of a global page */
    for (int k = 0; k < 5; k++)
        ASSERT_EQ(call(VA(S_RD_A)), 0x7d000002);
    map(S_RD_X, P_RD_X1, PTE_RX);
    for (int k = 0; k < 5; k++)
        ASSERT_EQ(call(VA(S_RD_A)), 0x7d000001);
    /* Non-global X: a CR3 reload must drop it. */
    map(S_RD_X, P_RD_X2, PTE_P);
    for (int k = 0; k < 5; k++)
        ASSERT_EQ(call(VA(S_RD_A)), 0x7d000002);
    pt_pt[S_RD_X] = pa(phys[P_RD_X1]) | PTE_P;
    write_cr3(read_cr3());
    for (int k = 0; k < 5; k++)
        ASSERT_EQ(call(VA(S_RD_A)), 0x7d000001);
    pt_pt[S_RD_X] = pa(phys[P_RD_X2]) | PTE_P;
    write_cr3(read_cr3());
    ASSERT_EQ(call(VA(S_RD_A)), 0x7d000002);
    /* Global X, remapped without INVLPG, then a CR3 reload: either page may run; then INVLPG. */
    map(S_RD_X, P_RD_X1, PTE_RX);
    ASSERT_EQ(call(VA(S_RD_A)), 0x7d000001);
    pt_pt[S_RD_X] = pa(phys[P_RD_X2]) | PTE_RX;
    write_cr3(read_cr3());
    uint32_t either = call(VA(S_RD_A));
    ASSERT(either == 0x7d000001 || either == 0x7d000002);
    invlpg(VA(S_RD_X));
    ASSERT_EQ(call(VA(S_RD_A)), 0x7d000002);
    step_ok("6", "remap_direct", "a direct call into a remapped page ran the new code");
}

/* steps=134 runs only those steps (default: all). */
static int want(char step)
{
    char sel[16];
    if (cmdline_get("steps", sel, sizeof(sel)) < 0)
        return 1;
    for (const char *p = sel; *p; p++)
        if (*p == step)
            return 1;
    return 0;
}

int guest_main(void)
{
    uint32_t a, b, c, d;
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    ASSERT(d & (1u << 20)); /* NX */
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    cpuid(1, 0, &a, &b, &c, &d);
    ASSERT(d & (1u << 13)); /* PGE */
    write_cr4(read_cr4() | CR4_PGE);

    ASSERT(!(pml4[PML4_SLOT] & PTE_P));
    pt_pdpt[0] = pa(pt_pd) | PTE_P | PTE_W;
    pt_pd[0] = pa(pt_pt) | PTE_P | PTE_W;
    pml4[PML4_SLOT] = pa(pt_pdpt) | PTE_P | PTE_W;
    map(S_SMC, P_SMC, PTE_RWX);
    map(S_POKE_X, P_POKE, PTE_RX);
    map(S_POKE_Y, P_POKE, PTE_RW);
    map(S_STRAD_XA, P_STRAD_A, PTE_RX);
    map(S_STRAD_XB, P_STRAD_B, PTE_RX);
    map(S_STRAD_YA, P_STRAD_A, PTE_RW);
    map(S_STRAD_YB, P_STRAD_B, PTE_RW);
    map(S_XMC_X, P_XMC, PTE_RX);
    map(S_XMC_Y, P_XMC, PTE_RW);
    write_cr3(read_cr3());
    printf("code_patching: window at 0x%lx, pages at 0x%lx\n", VA(0), pa(phys));

    if (want('1'))
        step_self_modifying();
    if (cmdline_get("in_block", NULL, 0) >= 0)
        step_self_modifying_in_block();
    if (want('2'))
        step_text_poke();
    if (want('3'))
        step_straddle();
    if (cmdline_get("remap", NULL, 0) >= 0) {
        step_remap();
        step_remap_direct();
    }
    if (want('4'))
        step_cross_vcpu(cmdline_get("xmc_fresh", NULL, 0) >= 0);
    return 0;
}
