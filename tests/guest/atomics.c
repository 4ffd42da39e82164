/* atomics: LOCKed read-modify-write instructions are atomic across vCPUs. The BSP and an AP run
 * the same loop at the same time, each round doing one of every form on shared memory:
 *   LOCK CMPXCHG16B   a 16-byte pair {n, n} becomes {n + 1, n + 1} (Linux's SLUB keeps a slab's
 *                     freelist and counters this way)
 *   LOCK CMPXCHG      an 8-byte counter, by a compare-and-swap loop
 *   LOCK CMPXCHG8B    a 4+4-byte pair, the same way
 *   LOCK XADD, LOCK INC, LOCK ADD, LOCK BTS/BTR
 *   XCHG              a spinlock around a plain increment (XCHG with memory locks implicitly)
 * Every count must come out at exactly rounds x CPUs, and the pairs must still be equal halves:
 * a form that is only read-compare-write loses updates when two vCPU threads interleave.
 *
 * Command line: rounds=N (default 20000) per CPU; no_cmpxchg16b leaves that form out (KVM's
 * instruction emulator, which serves KVM on hosts without VT-x, fails on it). Needs 2 CPUs. */
#include "runtime.h"

#include "apic.h"
#include "smp.h"
#include "timer.h"
#include "trap.h"

const char guest_name[] = "atomics";

struct pair16 {
    uint64_t lo, hi;
} __attribute__((aligned(16)));

static struct pair16 pair16;
static uint64_t pair8 __attribute__((aligned(8)));
static uint64_t cas_count, xadd_count, inc_count, add_count, locked_count, bit_count;
static uint64_t bits;
static uint32_t spin;

static volatile uint64_t rounds = 20000;
static volatile uint32_t ap_apic_id;
static volatile int ap_up, go, ap_done, with16 = 1;

static int cas16(struct pair16 *p, struct pair16 old, struct pair16 new)
{
    uint64_t lo = old.lo, hi = old.hi;
    uint8_t ok;
    __asm__ volatile("lock cmpxchg16b %1; setz %0"
                     : "=q"(ok), "+m"(*p), "+a"(lo), "+d"(hi)
                     : "b"(new.lo), "c"(new.hi)
                     : "memory", "cc");
    return ok;
}

static int cas8b(uint64_t *p, uint64_t old, uint64_t new)
{
    uint32_t lo = (uint32_t)old, hi = (uint32_t)(old >> 32);
    uint8_t ok;
    __asm__ volatile("lock cmpxchg8b %1; setz %0"
                     : "=q"(ok), "+m"(*p), "+a"(lo), "+d"(hi)
                     : "b"((uint32_t)new), "c"((uint32_t)(new >> 32))
                     : "memory", "cc");
    return ok;
}

static int cas(uint64_t *p, uint64_t old, uint64_t new)
{
    uint8_t ok;
    __asm__ volatile("lock cmpxchg %3, %1; setz %0"
                     : "=q"(ok), "+m"(*p), "+a"(old)
                     : "r"(new)
                     : "memory", "cc");
    return ok;
}

static void one_round(unsigned bit)
{
    struct pair16 o;
    do {
        if (!with16)
            break;
        o.lo = __atomic_load_n(&pair16.lo, __ATOMIC_RELAXED);
        o.hi = __atomic_load_n(&pair16.hi, __ATOMIC_RELAXED);
    } while (!cas16(&pair16, o, (struct pair16){o.lo + 1, o.hi + 1}));

    uint64_t v;
    do
        v = __atomic_load_n(&cas_count, __ATOMIC_RELAXED);
    while (!cas(&cas_count, v, v + 1));

    do
        v = __atomic_load_n(&pair8, __ATOMIC_RELAXED);
    while (!cas8b(&pair8, v, v + 0x100000001ull));

    uint64_t one = 1;
    __asm__ volatile("lock xaddq %0, %1" : "+r"(one), "+m"(xadd_count) : : "memory", "cc");
    __asm__ volatile("lock incq %0" : "+m"(inc_count) : : "memory", "cc");
    __asm__ volatile("lock addq $1, %0" : "+m"(add_count) : : "memory", "cc");

    /* Each CPU owns one bit: set it (it must have been clear), then clear it. */
    uint8_t was;
    __asm__ volatile("lock btsq %2, %1; setc %0" : "=q"(was), "+m"(bits) : "r"((uint64_t)bit)
                     : "memory", "cc");
    if (!was)
        __asm__ volatile("lock incq %0" : "+m"(bit_count) : : "memory", "cc");
    __asm__ volatile("lock btrq %1, %0" : "+m"(bits) : "r"((uint64_t)bit) : "memory", "cc");

    uint32_t taken;
    do {
        taken = 1;
        __asm__ volatile("xchgl %0, %1" : "+r"(taken), "+m"(spin) : : "memory");
    } while (taken);
    locked_count++; /* a plain read-modify-write, safe only under the lock */
    __asm__ volatile("movl $0, %0" : "=m"(spin) : : "memory");
}

static void run_rounds(unsigned bit)
{
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
        cpu_relax();
    for (uint64_t n = 0; n < rounds; n++)
        one_round(bit);
}

static void ap_main(unsigned cpu, uint32_t apic_id)
{
    (void)cpu;
    ap_apic_id = apic_id;
    ap_up = 1;
    /* smp_start_aps() waits for this to return; the BSP's NMI then brings the halted AP into
     * ap_work() to run its rounds beside the BSP's. */
}

static void ap_work(struct trap_frame *f)
{
    (void)f;
    run_rounds(1);
    __atomic_store_n(&ap_done, 1, __ATOMIC_RELEASE);
}

static void expect(const char *what, uint64_t got, uint64_t want)
{
    printf("atomics: %s %lu of %lu\n", what, got, want);
    if (got != want)
        test_fail(what);
}

int guest_main(void)
{
    uint64_t n;
    if (cmdline_get_size("rounds", &n) == 0 && n > 0)
        rounds = n;
    with16 = cmdline_get("no_cmpxchg16b", NULL, 0) < 0;
    ASSERT(lapic_init() == 0);
    int started = smp_start_aps(ap_main, 5000000);
    ASSERT(started >= 1); /* run with --cpus 2 */
    ASSERT(ap_up);
    trap_set_handler(2, ap_work);
    ASSERT(lapic_send_ipi(ap_apic_id, 0x400 /* NMI */) == 0);
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    run_rounds(0);
    uint64_t end = timer_now_us() + 600000000ull;
    while (!__atomic_load_n(&ap_done, __ATOMIC_ACQUIRE)) {
        if (timer_now_us() > end)
            test_fail("the AP did not finish its rounds");
        cpu_relax();
    }
    uint64_t want = 2 * rounds;
    if (with16) {
        expect("cmpxchg16b", pair16.lo, want);
        expect("cmpxchg16b high half", pair16.hi, want);
    }
    expect("cmpxchg", cas_count, want);
    expect("cmpxchg8b low half", (uint32_t)pair8, (uint32_t)want);
    expect("cmpxchg8b high half", pair8 >> 32, (uint32_t)want);
    expect("xadd", xadd_count, want);
    expect("lock inc", inc_count, want);
    expect("lock add", add_count, want);
    expect("lock bts found its bit clear", bit_count, want);
    expect("xchg spinlock", locked_count, want);
    ASSERT_EQ(bits, 0);
    return 0;
}
