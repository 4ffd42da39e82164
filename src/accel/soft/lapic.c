#include "accel/soft/lapic.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "accel/soft/ioapic.h"
#include "arch/x86/layout.h"
#include "util/log.h"

enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR };

/* Bits software may set in each LVT entry; delivery status and remote IRR are read-only. */
static const uint32_t lvt_writable[LAPIC_LVT_COUNT] = {
    [LVT_TIMER] = 0xff | LVT_MASKED | LVT_TIMER_MODE_MASK,
    [LVT_THERMAL] = 0xff | 0x700 | LVT_MASKED,
    [LVT_PERF] = 0xff | 0x700 | LVT_MASKED,
    [LVT_LINT0] = 0xff | 0x700 | 0x2000 | LVT_LEVEL | LVT_MASKED,
    [LVT_LINT1] = 0xff | 0x700 | 0x2000 | LVT_LEVEL | LVT_MASKED,
    [LVT_ERROR] = 0xff | LVT_MASKED,
};

/* What a register access asks to be done once the LAPIC lock is dropped: sending an IPI or
 * telling the IOAPIC about an EOI takes other locks, which must never nest inside ours.
 * kick: the access lowered the processor priority (EOI, TPR) below a vector already waiting
 * in IRR. The vCPU looks for deliverable interrupts only when it is kicked, and the kick that
 * came with that vector found it blocked, so without a new one it would wait for the next
 * unrelated interrupt (which, being higher, can block it again: a timer tick every time). */
struct lapic_after {
    bool send;
    struct apic_msg msg;
    int eoi_vector;
    bool kick;
};

/* Guest-triggered warnings are printed once per process, not once per access. */
static void warn_once(atomic_bool *done, const char *what, uint64_t offset)
{
    if (!atomic_exchange(done, true))
        log_warn("lapic: %s at offset 0x%llx ignored (reported once)", what,
                 (unsigned long long)offset);
}

/* ---- 256-bit vector registers ---- */

static bool vec_test(const uint32_t *r, unsigned v)
{
    return r[v >> 5] & (1u << (v & 31));
}

static void vec_set(uint32_t *r, unsigned v)
{
    r[v >> 5] |= 1u << (v & 31);
}

static void vec_clear(uint32_t *r, unsigned v)
{
    r[v >> 5] &= ~(1u << (v & 31));
}

static int vec_highest(const uint32_t *r)
{
    for (int i = 7; i >= 0; i--)
        if (r[i])
            return i * 32 + 31 - __builtin_clz(r[i]);
    return -1;
}

/* ---- state helpers (lock held) ---- */

static bool is_x2apic(const struct lapic *l)
{
    return l->apic_base & APIC_BASE_EXTD;
}

static bool hw_enabled(const struct lapic *l)
{
    return l->apic_base & APIC_BASE_ENABLE;
}

static bool sw_enabled(const struct lapic *l)
{
    return l->svr & LAPIC_SVR_ENABLE;
}

static uint32_t ppr_locked(const struct lapic *l)
{
    int isrv = vec_highest(l->isr);
    uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
    return (l->tpr & 0xf0) >= isr_class ? l->tpr & 0xff : isr_class;
}

static uint32_t x2apic_ldr(uint32_t id)
{
    return ((id >> 4) << 16) | (1u << (id & 0xf));
}

static uint64_t now_ns(const struct lapic *l)
{
    return soft_clock_now(&l->clock);
}

/* Put a local interrupt (timer, error, LINT fixed) into IRR. Vectors 0-15 are reserved for
 * exceptions: they raise the receive-illegal-vector error instead. */
static bool local_accept(struct lapic *l, uint32_t vector, bool level);

static void set_error(struct lapic *l, uint32_t bits)
{
    l->esr_pending |= bits;
    uint32_t lvt = l->lvt[LVT_ERROR];
    /* An illegal error vector must not recurse into another error. */
    if (!(lvt & LVT_MASKED) && (lvt & 0xff) >= 16)
        local_accept(l, lvt & 0xff, false);
}

static bool local_accept(struct lapic *l, uint32_t vector, bool level)
{
    if (vector < 16) {
        set_error(l, LAPIC_ESR_RECV_ILLEGAL);
        return false;
    }
    vec_set(l->irr, vector);
    if (level)
        vec_set(l->tmr, vector);
    else
        vec_clear(l->tmr, vector);
    return true;
}

/* ---- timer (lock held) ---- */

static uint32_t timer_mode(const struct lapic *l)
{
    return l->lvt[LVT_TIMER] & LVT_TIMER_MODE_MASK;
}

/* Divide configuration: bits 0, 1 and 3 encode 2^(n+1), with 0b111 meaning 1. */
static uint64_t timer_divisor(const struct lapic *l)
{
    uint32_t n = (l->timer_divide & 3) | ((l->timer_divide >> 1) & 4);
    return 1ull << ((n + 1) & 7);
}

/* Nanoseconds per timer tick equal the divisor because the input clock is 1 GHz. */
_Static_assert(SOFT_APIC_BUS_HZ == 1000000000ULL, "LAPIC timer math assumes a 1 GHz bus");

static uint64_t timer_period_ns(const struct lapic *l)
{
    uint64_t p = (uint64_t)l->timer_initial * timer_divisor(l);
    if (timer_mode(l) == LVT_TIMER_PERIODIC && p < LAPIC_MIN_PERIOD_NS)
        p = LAPIC_MIN_PERIOD_NS;
    return p;
}

static void timer_stop(struct lapic *l)
{
    l->timer_next_ns = UINT64_MAX;
}

static void timer_start(struct lapic *l, uint64_t now)
{
    l->timer_start_ns = now;
    if (l->timer_initial == 0 || timer_mode(l) == LVT_TIMER_TSC_DEADLINE)
        timer_stop(l);
    else
        l->timer_next_ns = now + timer_period_ns(l);
}

static uint32_t timer_current(const struct lapic *l, uint64_t now)
{
    if (l->timer_initial == 0 || timer_mode(l) == LVT_TIMER_TSC_DEADLINE)
        return 0;
    uint64_t elapsed = now > l->timer_start_ns ? now - l->timer_start_ns : 0;
    if (timer_mode(l) == LVT_TIMER_PERIODIC)
        elapsed %= timer_period_ns(l);
    uint64_t ticks = elapsed / timer_divisor(l);
    return ticks >= l->timer_initial ? 0 : l->timer_initial - (uint32_t)ticks;
}

static void timer_set_deadline(struct lapic *l, uint64_t tsc)
{
    l->tsc_deadline = tsc;
    if (tsc == 0) {
        timer_stop(l);
        return;
    }
    uint64_t now = now_ns(l);
    uint64_t guest_now = soft_tsc_from_ns(l->tsc_khz, now) + (uint64_t)l->tsc_offset;
    int64_t ahead = (int64_t)(tsc - guest_now);
    l->timer_next_ns = ahead <= 0 ? now : now + soft_ns_from_tsc(l->tsc_khz, (uint64_t)ahead);
}

/* ---- reset ---- */

static void reset_registers(struct lapic *l, bool power_on)
{
    l->tpr = 0;
    l->ldr = is_x2apic(l) ? x2apic_ldr(l->id) : 0;
    l->dfr = 0xffffffffu;
    l->svr = 0xff;
    l->esr = l->esr_pending = 0;
    l->icr_low = l->icr_high = 0;
    for (unsigned i = 0; i < LAPIC_LVT_COUNT; i++)
        l->lvt[i] = LVT_MASKED;
    /* What firmware leaves, and what the KVM backend programs too (accel/kvm.c): LINT0 as ExtINT
     * (virtual wire: the 8259 reaches the CPU before the guest programs its APIC) and LINT1 as
     * NMI, as the MADT describes it. Only the BSP's LINT0 is wired to the 8259. */
    if (power_on) {
        l->lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
        l->lvt[LVT_LINT1] = APIC_DM_NMI << 8;
    }
    memset(l->isr, 0, sizeof(l->isr));
    memset(l->irr, 0, sizeof(l->irr));
    memset(l->tmr, 0, sizeof(l->tmr));
    l->nmi_pending = false;
    l->timer_initial = l->timer_divide = 0;
    l->tsc_deadline = 0;
    timer_stop(l);
}

int lapic_init(struct lapic *lapic, struct apic_bus *bus, unsigned index,
               const struct soft_clock *clock, uint32_t tsc_khz)
{
    memset(lapic, 0, sizeof(*lapic));
    int rc = pthread_mutex_init(&lapic->lock, NULL);
    if (rc)
        return -rc;
    lapic->bus = bus;
    lapic->index = index;
    if (clock)
        lapic->clock = *clock;
    lapic->tsc_khz = tsc_khz ? tsc_khz : SOFT_TSC_KHZ_DEFAULT;
    lapic_reset(lapic);
    return 0;
}

void lapic_destroy(struct lapic *lapic)
{
    pthread_mutex_destroy(&lapic->lock);
}

void lapic_reset(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    __atomic_store_n(&lapic->apic_base,
                     LAYOUT_LAPIC_BASE | APIC_BASE_ENABLE | (lapic->index == 0 ? APIC_BASE_BSP : 0),
                     __ATOMIC_RELAXED);
    lapic->id = lapic->index;
    reset_registers(lapic, true);
    pthread_mutex_unlock(&lapic->lock);
}

/* ---- registers ---- */

/* Read register reg (16-byte aligned offset). -EINVAL: no such register. */
static int reg_read(struct lapic *l, uint32_t reg, uint32_t *out)
{
    if (reg >= LAPIC_ISR && reg < LAPIC_ISR + 0x80) {
        *out = l->isr[(reg - LAPIC_ISR) >> 4];
        return 0;
    }
    if (reg >= LAPIC_TMR && reg < LAPIC_TMR + 0x80) {
        *out = l->tmr[(reg - LAPIC_TMR) >> 4];
        return 0;
    }
    if (reg >= LAPIC_IRR && reg < LAPIC_IRR + 0x80) {
        *out = l->irr[(reg - LAPIC_IRR) >> 4];
        return 0;
    }
    if (reg >= LAPIC_LVT_TIMER && reg <= LAPIC_LVT_ERROR) {
        *out = l->lvt[(reg - LAPIC_LVT_TIMER) >> 4];
        return 0;
    }
    switch (reg) {
    case LAPIC_ID:
        *out = is_x2apic(l) ? l->id : l->id << 24;
        return 0;
    case LAPIC_VERSION:
        *out = LAPIC_VERSION_VALUE;
        return 0;
    case LAPIC_TPR:
        *out = l->tpr;
        return 0;
    case LAPIC_APR: /* arbitration priority: not modelled, like KVM */
    case LAPIC_EOI:
    case LAPIC_RRD:
        *out = 0;
        return 0;
    case LAPIC_PPR:
        *out = ppr_locked(l);
        return 0;
    case LAPIC_LDR:
        *out = l->ldr;
        return 0;
    case LAPIC_DFR:
        *out = l->dfr;
        return 0;
    case LAPIC_SVR:
        *out = l->svr;
        return 0;
    case LAPIC_ESR:
        *out = l->esr;
        return 0;
    case LAPIC_ICR_LOW:
        *out = l->icr_low;
        return 0;
    case LAPIC_ICR_HIGH:
        *out = l->icr_high;
        return 0;
    case LAPIC_TIMER_INITIAL:
        *out = l->timer_initial;
        return 0;
    case LAPIC_TIMER_CURRENT:
        *out = timer_current(l, now_ns(l));
        return 0;
    case LAPIC_TIMER_DIVIDE:
        *out = l->timer_divide;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Turn the ICR into a message. Invalid requests set errors and send nothing. */
static void icr_send(struct lapic *l, struct lapic_after *after)
{
    uint32_t lo = l->icr_low;
    struct apic_msg m = {
        .vector = lo & 0xff,
        .mode = (lo >> 8) & 7,
        .logical = lo & (1u << 11),
        .assert = lo & (1u << 14),
        .level_trig = lo & (1u << 15),
        .shorthand = (lo >> 18) & 3,
    };
    if (is_x2apic(l))
        m.dest = l->icr_high;
    else
        m.dest = (l->icr_high >> 24) == 0xff ? APIC_DEST_BROADCAST : l->icr_high >> 24;
    switch (m.mode) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        if (m.vector < 16) {
            set_error(l, LAPIC_ESR_SEND_ILLEGAL);
            return;
        }
        /* Lowest priority to oneself or to everyone is undefined; deliver it as fixed. */
        if (m.mode == APIC_DM_LOWEST &&
            (m.shorthand == APIC_SH_SELF || m.shorthand == APIC_SH_ALL))
            m.mode = APIC_DM_FIXED;
        break;
    case APIC_DM_NMI:
    case APIC_DM_INIT:
    case APIC_DM_SIPI:
        break;
    default: /* SMI (no SMM here), ExtINT and the reserved encodings */
        return;
    }
    after->send = true;
    after->msg = m;
}

static bool apic_deliverable(const struct lapic *l);

static void eoi_locked(struct lapic *l, struct lapic_after *after)
{
    int v = vec_highest(l->isr);
    if (v < 0)
        return;
    vec_clear(l->isr, (unsigned)v);
    if (vec_test(l->tmr, (unsigned)v))
        after->eoi_vector = v;
    after->kick = apic_deliverable(l);
}

static void lvt_write(struct lapic *l, unsigned idx, uint32_t val)
{
    if (!sw_enabled(l))
        val |= LVT_MASKED;
    val &= lvt_writable[idx];
    if (idx == LVT_TIMER) {
        if ((val & LVT_TIMER_MODE_MASK) == LVT_TIMER_MODE_MASK)
            val &= ~LVT_TIMER_MODE_MASK; /* reserved mode: keep one-shot */
        /* A mode change stops the timer, as on hardware. */
        if ((val & LVT_TIMER_MODE_MASK) != timer_mode(l)) {
            l->timer_initial = 0;
            l->tsc_deadline = 0;
            timer_stop(l);
        }
    }
    l->lvt[idx] = (l->lvt[idx] & ~lvt_writable[idx]) | val;
    if (idx == LVT_LINT0 || idx == LVT_LINT1) /* remote IRR only means something for level */
        l->lvt[idx] &= (val & LVT_LEVEL) ? ~0u : ~LVT_REMOTE_IRR;
}

/* Write register reg. -EINVAL: no such register, or not writable (x2APIC raises #GP for it;
 * xAPIC ignores read-only registers). */
static int reg_write(struct lapic *l, uint32_t reg, uint32_t val, struct lapic_after *after)
{
    bool x2 = is_x2apic(l);
    if (reg >= LAPIC_LVT_TIMER && reg <= LAPIC_LVT_ERROR) {
        lvt_write(l, (reg - LAPIC_LVT_TIMER) >> 4, val);
        return 0;
    }
    switch (reg) {
    case LAPIC_ID:
        if (x2)
            return -EINVAL;
        l->id = val >> 24;
        return 0;
    case LAPIC_TPR:
        l->tpr = val & 0xff;
        after->kick = apic_deliverable(l);
        return 0;
    case LAPIC_EOI:
        eoi_locked(l, after);
        return 0;
    case LAPIC_LDR:
        if (x2)
            return -EINVAL;
        l->ldr = val & 0xff000000u;
        return 0;
    case LAPIC_DFR:
        if (x2)
            return -EINVAL;
        l->dfr = val | 0x0fffffffu;
        return 0;
    case LAPIC_SVR:
        /* Bit 12 (suppress EOI broadcast) is not offered: the IOAPIC has no EOI register. */
        l->svr = val & 0x3ff;
        if (!sw_enabled(l))
            for (unsigned i = 0; i < LAPIC_LVT_COUNT; i++)
                l->lvt[i] |= LVT_MASKED;
        return 0;
    case LAPIC_ESR:
        l->esr = l->esr_pending;
        l->esr_pending = 0;
        return 0;
    case LAPIC_ICR_LOW:
        l->icr_low = val & ~(1u << 12); /* delivery is instantaneous: never "send pending" */
        icr_send(l, after);
        return 0;
    case LAPIC_ICR_HIGH:
        if (x2)
            return -EINVAL;
        l->icr_high = val & 0xff000000u;
        return 0;
    case LAPIC_TIMER_INITIAL:
        if (timer_mode(l) == LVT_TIMER_TSC_DEADLINE)
            return 0; /* ignored in TSC-deadline mode */
        l->timer_initial = val;
        timer_start(l, now_ns(l));
        return 0;
    case LAPIC_TIMER_DIVIDE: {
        /* Keep the current count where it is and let it run on at the new rate. */
        uint64_t now = now_ns(l);
        uint32_t cur = timer_current(l, now);
        bool running = l->timer_next_ns != UINT64_MAX;
        l->timer_divide = val & 0xb;
        if (running && timer_mode(l) != LVT_TIMER_TSC_DEADLINE) {
            uint64_t done = (uint64_t)(l->timer_initial - cur) * timer_divisor(l);
            l->timer_start_ns = now - done;
            l->timer_next_ns = l->timer_start_ns + timer_period_ns(l);
            if (timer_mode(l) == LVT_TIMER_PERIODIC && l->timer_next_ns < now)
                l->timer_next_ns = now;
        }
        return 0;
    }
    case LAPIC_SELF_IPI:
        if (!x2)
            return -EINVAL;
        local_accept(l, val & 0xff, false);
        return 0;
    case LAPIC_VERSION:
    case LAPIC_APR:
    case LAPIC_PPR:
    case LAPIC_RRD:
    case LAPIC_TIMER_CURRENT:
        return -EINVAL;
    default:
        if (reg >= LAPIC_ISR && reg < LAPIC_IRR + 0x80)
            return -EINVAL; /* ISR, TMR, IRR are read-only */
        set_error(l, LAPIC_ESR_ILLEGAL_REG);
        return -EINVAL;
    }
}

static void kick_self(struct lapic *l)
{
    if (l->bus && l->bus->ops.kick)
        l->bus->ops.kick(l->bus->ops.opaque, l->index);
}

/* Do what a register access left for after the unlock. */
static void run_after(struct lapic *l, const struct lapic_after *after)
{
    if (after->send && l->bus)
        apic_bus_deliver(l->bus, &after->msg, l);
    if (after->eoi_vector >= 0 && l->bus && l->bus->ioapic)
        ioapic_eoi(l->bus->ioapic, (uint8_t)after->eoi_vector);
    if (after->kick)
        kick_self(l);
}

uint64_t lapic_mmio_base(struct lapic *lapic)
{
    /* Asked on every soft-TLB fill and MMIO access: an atomic read, not the lock (its writers,
     * reset and APIC_BASE writes, store it atomically under the lock). */
    uint64_t base = __atomic_load_n(&lapic->apic_base, __ATOMIC_RELAXED);
    if (!(base & APIC_BASE_ENABLE) || (base & APIC_BASE_EXTD))
        return UINT64_MAX;
    return base & APIC_BASE_ADDR_MASK;
}

uint64_t lapic_mmio_read(struct lapic *lapic, uint64_t offset, unsigned size)
{
    static atomic_bool warned;
    uint64_t mask = size >= 8 ? UINT64_MAX : (1ull << (size * 8)) - 1;
    offset &= 0xfff;
    uint32_t reg = (uint32_t)offset & ~0xfu, sub = (uint32_t)offset & 0xf;
    uint32_t val = 0;
    pthread_mutex_lock(&lapic->lock);
    if (!hw_enabled(lapic) || is_x2apic(lapic)) {
        pthread_mutex_unlock(&lapic->lock);
        return mask; /* not the APIC's page any more: open bus */
    }
    if (reg == LAPIC_SELF_IPI || reg_read(lapic, reg, &val) < 0) {
        set_error(lapic, LAPIC_ESR_ILLEGAL_REG);
        val = 0;
    }
    pthread_mutex_unlock(&lapic->lock);
    /* Registers are 32 bits at the start of each 16-byte slot; the rest of the slot reads 0. */
    if (sub >= 4) {
        warn_once(&warned, "read outside a register", offset);
        return 0;
    }
    return ((uint64_t)val >> (sub * 8)) & mask;
}

void lapic_mmio_write(struct lapic *lapic, uint64_t offset, uint64_t value, unsigned size)
{
    static atomic_bool warned;
    offset &= 0xfff;
    if (size != 4 || (offset & 0xf)) {
        warn_once(&warned, "write that is not 32-bit aligned", offset);
        return;
    }
    struct lapic_after after = {.eoi_vector = -1};
    pthread_mutex_lock(&lapic->lock);
    if (hw_enabled(lapic) && !is_x2apic(lapic)) {
        if (offset == LAPIC_SELF_IPI)
            set_error(lapic, LAPIC_ESR_ILLEGAL_REG);
        else
            reg_write(lapic, (uint32_t)offset, (uint32_t)value, &after);
    }
    pthread_mutex_unlock(&lapic->lock);
    run_after(lapic, &after);
}

/* APIC_BASE: the mode transitions the SDM allows (disabled <-> xAPIC -> x2APIC -> disabled). */
static int base_write(struct lapic *l, uint64_t val)
{
    const uint64_t valid = APIC_BASE_BSP | APIC_BASE_EXTD | APIC_BASE_ENABLE | APIC_BASE_ADDR_MASK;
    if (val & ~valid)
        return -EINVAL;
    uint64_t old = l->apic_base;
    uint64_t mode_old = old & (APIC_BASE_ENABLE | APIC_BASE_EXTD);
    uint64_t mode_new = val & (APIC_BASE_ENABLE | APIC_BASE_EXTD);
    if (mode_new == APIC_BASE_EXTD)
        return -EINVAL; /* x2APIC without the global enable */
    if (mode_old == (APIC_BASE_ENABLE | APIC_BASE_EXTD) && mode_new == APIC_BASE_ENABLE)
        return -EINVAL; /* x2APIC -> xAPIC must pass through disabled */
    if (mode_old == 0 && mode_new == (APIC_BASE_ENABLE | APIC_BASE_EXTD))
        return -EINVAL; /* disabled -> x2APIC must pass through xAPIC */
    __atomic_store_n(&l->apic_base, (val & ~APIC_BASE_BSP) | (old & APIC_BASE_BSP),
                     __ATOMIC_RELAXED);
    if (mode_new == 0 && mode_old != 0) {
        /* Disabled: the APIC forgets its state; it comes back as after reset. */
        l->id = l->index;
        reset_registers(l, false);
    } else if (mode_new != mode_old && (mode_new & APIC_BASE_EXTD)) {
        l->id = l->index; /* the x2APIC ID is the initial APIC ID */
        l->ldr = x2apic_ldr(l->id);
    }
    return 0;
}

int lapic_msr_read(struct lapic *lapic, uint32_t msr, uint64_t *value)
{
    int rc = 0;
    pthread_mutex_lock(&lapic->lock);
    if (msr == MSR_IA32_APIC_BASE) {
        *value = lapic->apic_base;
    } else if (msr == MSR_IA32_TSC_DEADLINE) {
        *value = timer_mode(lapic) == LVT_TIMER_TSC_DEADLINE ? lapic->tsc_deadline : 0;
    } else if (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST) {
        uint32_t reg = (msr - MSR_X2APIC_FIRST) << 4, v = 0;
        if (!is_x2apic(lapic) || !hw_enabled(lapic)) {
            rc = -EINVAL;
        } else if (reg == LAPIC_ICR_LOW) {
            *value = ((uint64_t)lapic->icr_high << 32) | lapic->icr_low;
        } else if (reg == LAPIC_APR || reg == LAPIC_EOI || reg == LAPIC_RRD ||
                   reg == LAPIC_DFR || reg == LAPIC_ICR_HIGH || reg == LAPIC_SELF_IPI) {
            rc = -EINVAL; /* absent or write-only in x2APIC mode */
        } else if ((rc = reg_read(lapic, reg, &v)) == 0) {
            *value = v;
        }
    } else {
        rc = -ENOENT;
    }
    pthread_mutex_unlock(&lapic->lock);
    return rc;
}

int lapic_msr_write(struct lapic *lapic, uint32_t msr, uint64_t value)
{
    int rc = 0;
    struct lapic_after after = {.eoi_vector = -1};
    pthread_mutex_lock(&lapic->lock);
    if (msr == MSR_IA32_APIC_BASE) {
        rc = base_write(lapic, value);
    } else if (msr == MSR_IA32_TSC_DEADLINE) {
        /* Writes outside TSC-deadline mode are ignored (SDM 10.5.4.1). */
        if (timer_mode(lapic) == LVT_TIMER_TSC_DEADLINE)
            timer_set_deadline(lapic, value);
    } else if (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST) {
        uint32_t reg = (msr - MSR_X2APIC_FIRST) << 4;
        if (!is_x2apic(lapic) || !hw_enabled(lapic)) {
            rc = -EINVAL;
        } else if (reg == LAPIC_ICR_LOW) {
            /* One 64-bit write: destination in the high half, and it sends. The reserved bits
             * are those KVM also refuses (bits 12, delivery status, is tolerated). */
            if (value & 0xfff32000ULL)
                rc = -EINVAL;
            else {
                lapic->icr_high = (uint32_t)(value >> 32);
                lapic->icr_low = (uint32_t)value;
                icr_send(lapic, &after);
            }
        } else if (value >> 32) {
            rc = -EINVAL;
        } else if ((reg == LAPIC_EOI || reg == LAPIC_ESR) && value != 0) {
            rc = -EINVAL;
        } else {
            rc = reg_write(lapic, reg, (uint32_t)value, &after);
        }
    } else {
        rc = -ENOENT;
    }
    pthread_mutex_unlock(&lapic->lock);
    run_after(lapic, &after);
    return rc;
}

uint64_t lapic_get_cr8(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    uint64_t v = (lapic->tpr >> 4) & 0xf;
    pthread_mutex_unlock(&lapic->lock);
    return v;
}

void lapic_set_cr8(struct lapic *lapic, uint64_t cr8)
{
    pthread_mutex_lock(&lapic->lock);
    lapic->tpr = (uint32_t)(cr8 & 0xf) << 4;
    pthread_mutex_unlock(&lapic->lock);
}

void lapic_set_tsc_offset(struct lapic *lapic, int64_t offset)
{
    pthread_mutex_lock(&lapic->lock);
    lapic->tsc_offset = offset;
    /* An armed deadline is in guest TSC units: recompute when it falls due. */
    if (timer_mode(lapic) == LVT_TIMER_TSC_DEADLINE && lapic->tsc_deadline)
        timer_set_deadline(lapic, lapic->tsc_deadline);
    pthread_mutex_unlock(&lapic->lock);
}

/* ---- interrupt acknowledge ---- */

/* ExtINT: the 8259's INT reaches the CPU through LINT0 programmed as ExtINT, or directly while
 * the APIC is disabled (the PC wiring of the "virtual wire"). */
static bool extint_pending(const struct lapic *l)
{
    if (!l->lint_level[0])
        return false;
    if (!hw_enabled(l))
        return true;
    uint32_t lvt = l->lvt[LVT_LINT0];
    return !(lvt & LVT_MASKED) && ((lvt >> 8) & 7) == APIC_DM_EXTINT;
}

static bool apic_deliverable(const struct lapic *l)
{
    if (!hw_enabled(l))
        return false;
    int v = vec_highest(l->irr);
    return v >= 0 && ((uint32_t)v & 0xf0) > (ppr_locked(l) & 0xf0);
}

bool lapic_has_interrupt(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    bool r = extint_pending(lapic) || apic_deliverable(lapic);
    pthread_mutex_unlock(&lapic->lock);
    return r;
}

int lapic_get_interrupt(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    if (extint_pending(lapic)) {
        pthread_mutex_unlock(&lapic->lock);
        /* The INTA cycle goes to the 8259 without our lock: it may change LINT0 meanwhile. */
        struct apic_bus *bus = lapic->bus;
        if (bus && bus->ops.extint_ack)
            return bus->ops.extint_ack(bus->ops.extint_opaque);
        return -1;
    }
    int v = -1;
    if (apic_deliverable(lapic)) {
        v = vec_highest(lapic->irr);
        vec_clear(lapic->irr, (unsigned)v);
        vec_set(lapic->isr, (unsigned)v);
    }
    pthread_mutex_unlock(&lapic->lock);
    return v;
}

bool lapic_take_nmi(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    bool r = lapic->nmi_pending;
    lapic->nmi_pending = false;
    pthread_mutex_unlock(&lapic->lock);
    return r;
}

/* ---- timer ---- */

uint64_t lapic_next_deadline_ns(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    uint64_t t = lapic->timer_next_ns;
    pthread_mutex_unlock(&lapic->lock);
    return t;
}

bool lapic_tick(struct lapic *lapic, uint64_t now_ns)
{
    bool pending = false;
    pthread_mutex_lock(&lapic->lock);
    if (lapic->timer_next_ns != UINT64_MAX && now_ns >= lapic->timer_next_ns) {
        uint32_t lvt = lapic->lvt[LVT_TIMER];
        if (!(lvt & LVT_MASKED))
            pending = local_accept(lapic, lvt & 0xff, false);
        switch (timer_mode(lapic)) {
        case LVT_TIMER_PERIODIC: {
            uint64_t period = timer_period_ns(lapic);
            uint64_t missed = (now_ns - lapic->timer_next_ns) / period + 1;
            lapic->timer_next_ns += missed * period;
            break;
        }
        case LVT_TIMER_TSC_DEADLINE:
            lapic->tsc_deadline = 0;
            timer_stop(lapic);
            break;
        default:
            timer_stop(lapic);
        }
    }
    pthread_mutex_unlock(&lapic->lock);
    return pending;
}

/* ---- pins and the bus side ---- */

void lapic_set_lint(struct lapic *lapic, unsigned pin, int level)
{
    if (pin > 1)
        return;
    bool kick = false;
    pthread_mutex_lock(&lapic->lock);
    bool rising = level && !lapic->lint_level[pin];
    lapic->lint_level[pin] = level != 0;
    uint32_t lvt = lapic->lvt[LVT_LINT0 + pin];
    if (pin == 0 && extint_pending(lapic)) {
        kick = true;
    } else if (!hw_enabled(lapic)) {
        /* Without an APIC, LINT1 is the CPU's NMI pin. */
        if (pin == 1 && rising)
            kick = lapic->nmi_pending = true;
    } else if (!(lvt & LVT_MASKED)) {
        switch ((lvt >> 8) & 7) {
        case APIC_DM_FIXED:
            if (rising || (level && (lvt & LVT_LEVEL)))
                kick = local_accept(lapic, lvt & 0xff, lvt & LVT_LEVEL);
            break;
        case APIC_DM_NMI:
            if (rising)
                kick = lapic->nmi_pending = true;
            break;
        default:
            break;
        }
    }
    pthread_mutex_unlock(&lapic->lock);
    if (kick)
        kick_self(lapic);
}

bool lapic_accept(struct lapic *lapic, const struct apic_msg *msg)
{
    struct apic_bus *bus = lapic->bus;
    bool kick = false;
    pthread_mutex_lock(&lapic->lock);
    if (!hw_enabled(lapic)) {
        pthread_mutex_unlock(&lapic->lock);
        return false;
    }
    switch (msg->mode) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        /* A software-disabled APIC drops fixed interrupts (as KVM's does). */
        if (sw_enabled(lapic))
            kick = local_accept(lapic, msg->vector, msg->level_trig);
        break;
    case APIC_DM_NMI:
        kick = lapic->nmi_pending = true;
        break;
    case APIC_DM_INIT:
        if (!msg->assert && msg->level_trig)
            break; /* INIT level de-assert: only synchronises arbitration IDs */
        reset_registers(lapic, false);
        pthread_mutex_unlock(&lapic->lock);
        if (bus && bus->ops.on_init)
            bus->ops.on_init(bus->ops.opaque, lapic->index);
        return true;
    case APIC_DM_SIPI:
        pthread_mutex_unlock(&lapic->lock);
        if (bus && bus->ops.on_sipi)
            bus->ops.on_sipi(bus->ops.opaque, lapic->index, msg->vector);
        return true;
    default: /* SMI, ExtINT messages: not modelled */
        break;
    }
    pthread_mutex_unlock(&lapic->lock);
    return kick;
}

bool lapic_match_dest(struct lapic *lapic, const struct apic_msg *msg)
{
    bool r;
    pthread_mutex_lock(&lapic->lock);
    if (!hw_enabled(lapic)) {
        r = false;
    } else if (msg->dest == APIC_DEST_BROADCAST) {
        r = true;
    } else if (!msg->logical) {
        r = is_x2apic(lapic) ? lapic->id == msg->dest : (lapic->id & 0xff) == msg->dest;
    } else if (is_x2apic(lapic)) {
        r = (msg->dest >> 16) == (lapic->ldr >> 16) && (msg->dest & lapic->ldr & 0xffff);
    } else if ((lapic->dfr >> 28) == 0xf) { /* flat: one bit per APIC */
        r = ((lapic->ldr >> 24) & msg->dest & 0xff) != 0;
    } else {                                /* cluster: 4-bit cluster, 4-bit member mask */
        r = (lapic->ldr >> 28) == ((msg->dest >> 4) & 0xf) &&
            ((lapic->ldr >> 24) & msg->dest & 0xf);
    }
    pthread_mutex_unlock(&lapic->lock);
    return r;
}

uint32_t lapic_get_ppr(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    uint32_t p = ppr_locked(lapic);
    pthread_mutex_unlock(&lapic->lock);
    return p;
}

bool lapic_enabled(struct lapic *lapic)
{
    pthread_mutex_lock(&lapic->lock);
    bool r = hw_enabled(lapic);
    pthread_mutex_unlock(&lapic->lock);
    return r;
}
