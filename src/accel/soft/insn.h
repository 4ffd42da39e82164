/* Internal contract between the decoder and the executors: the pre-decoded instruction and the
 * inline helpers every handler uses (register access, memory through the soft TLB, lazy flags,
 * exceptions). Not for use outside src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_INSN_H
#define VIREO_ACCEL_SOFT_INSN_H

#include "accel/soft/cpu.h"
#include "accel/soft/flags.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct soft_insn;
typedef void (*soft_exec_fn)(struct soft_cpu *cpu, const struct soft_insn *i);

/* Opcode maps folded into insn.op. */
#define SOFT_OP_0F 0x100
#define SOFT_OP_0F38 0x200
#define SOFT_OP_0F3A 0x300

/* Mandatory-prefix index of SSE forms. */
enum { SOFT_PFX_NONE, SOFT_PFX_66, SOFT_PFX_F3, SOFT_PFX_F2 };

/* Byte registers AH..BH are encoded as 0x20 | (0..3) when no REX prefix is present. */
#define SOFT_HIGH8 0x20

struct soft_insn {
    soft_exec_fn fn;
    uint64_t imm;      /* immediate, sign- or zero-extended as the form defines */
    uint64_t disp;     /* displacement; RIP-relative forms have the absolute target here */
    uint64_t next_rip; /* address of the following instruction */
    uint16_t op;       /* opcode with its map (SOFT_OP_*) */
    uint8_t len;
    uint8_t osz;       /* operand size in bytes */
    uint8_t asz;       /* address size in bytes */
    uint8_t reg;       /* ModRM.reg with REX.R, or the register in the opcode */
    uint8_t rm;        /* ModRM.rm with REX.B when the operand is a register */
    uint8_t mem;       /* operand is in memory */
    uint8_t base, index, scale, seg;
    uint8_t rep;       /* 0, 2 = F3 (REP/REPE), 3 = F2 (REPNE) */
    uint8_t lock;
    uint8_t pfx;       /* mandatory prefix index (SOFT_PFX_*) */
    uint8_t sub;       /* ModRM.reg digit or operation selector */
    uint8_t rex;
    uint8_t flags_live; /* the arithmetic flags are read after this instruction (see
                           soft_flags_prune; 1 outside 64-bit mode) */
    uint16_t imm2;     /* ENTER's nesting level, far pointers' selector */
};

/* --- exceptions --------------------------------------------------------------------------- */

/* Abandon the current instruction with a guest exception; state is as before the instruction. */
void soft_raise(struct soft_cpu *cpu, int vector, uint32_t error) __attribute__((noreturn));
void soft_exec_ud(struct soft_cpu *cpu, const struct soft_insn *i);

/* --- registers ---------------------------------------------------------------------------- */

static inline uint64_t soft_mask(unsigned osz)
{
    return osz == 8 ? ~0ull : (1ull << (osz * 8)) - 1;
}

static inline uint64_t soft_sext(uint64_t v, unsigned osz)
{
    switch (osz) {
    case 1: return (uint64_t)(int64_t)(int8_t)v;
    case 2: return (uint64_t)(int64_t)(int16_t)v;
    case 4: return (uint64_t)(int64_t)(int32_t)v;
    default: return v;
    }
}

static inline uint64_t soft_get(const struct soft_cpu *cpu, unsigned r, unsigned osz)
{
    switch (osz) {
    case 1:
        if (r & SOFT_HIGH8)
            return (cpu->regs[r & 3] >> 8) & 0xff;
        return cpu->regs[r] & 0xff;
    case 2: return cpu->regs[r] & 0xffff;
    case 4: return (uint32_t)cpu->regs[r];
    default: return cpu->regs[r];
    }
}

/* Writes follow x86 rules: 32-bit writes zero the upper half, 8/16-bit writes merge. */
static inline void soft_set(struct soft_cpu *cpu, unsigned r, unsigned osz, uint64_t v)
{
    switch (osz) {
    case 1:
        if (r & SOFT_HIGH8)
            cpu->regs[r & 3] = (cpu->regs[r & 3] & ~0xff00ull) | ((v & 0xff) << 8);
        else
            cpu->regs[r] = (cpu->regs[r] & ~0xffull) | (v & 0xff);
        break;
    case 2: cpu->regs[r] = (cpu->regs[r] & ~0xffffull) | (v & 0xffff); break;
    case 4: cpu->regs[r] = (uint32_t)v; break;
    default: cpu->regs[r] = v; break;
    }
}

/* --- memory ------------------------------------------------------------------------------- */

/* Slow path of soft_mem: fills the TLB, handles page-crossing accesses; raises on faults.
 * Reads that cross into another host page or hit MMIO come back in cpu->bounce. */
void *soft_mem_slow(struct soft_cpu *cpu, uint64_t addr, unsigned size, int access);
/* Slow path of soft_st: a store that crosses pages or reaches a device (both pages are checked
 * before any byte is written). */
void soft_st_slow(struct soft_cpu *cpu, uint64_t addr, unsigned size, uint64_t v);
/* Copies of up to 4 KiB between guest linear memory and buf for wide operands (SSE stores,
 * FXSAVE/FXRSTOR, x87 environments): pages may be non-adjacent on the host or devices; both
 * pages are checked before any byte moves. */
void soft_mem_read_bytes(struct soft_cpu *cpu, uint64_t addr, void *buf, unsigned len);
void soft_mem_write_bytes(struct soft_cpu *cpu, uint64_t addr, const void *buf, unsigned len);

/* Whether a size-byte access at addr hits the soft TLB for access (SOFT_ACC_READ or
 * SOFT_ACC_WRITE) and stays within that page; if so, *host is its host address. One compare
 * covers both: the entry is picked by addr's page but compared with the page of the access's
 * last byte, which can only match when both pages are the same (an access crossing into the
 * next page would need the entry one slot further on). Hot callers branch on this answer
 * rather than on soft_tlb_hit()'s pointer: testing that for NULL costs a compare more, as the
 * compiler cannot know that a hit never maps to host address 0. */
static inline bool soft_tlb_try(const struct soft_cpu *cpu, uint64_t addr, unsigned size,
                                int access, void **host)
{
    /* The entry's byte offset straight from the address (entries are 32 bytes): two host
     * instructions instead of extracting the index and scaling it. */
    _Static_assert(sizeof(struct soft_tlb_entry) == 32, "TLB entry size");
    const struct soft_tlb_entry *e =
        (const struct soft_tlb_entry *)((const char *)cpu->tlbs[cpu->cpl == 3] +
                                        ((addr >> (12 - 5)) & ((SOFT_TLB_SIZE - 1) << 5)));
    uint64_t tag = access == SOFT_ACC_WRITE ? e->tag_write : e->tag_read;
    *host = (void *)(uintptr_t)(addr + e->addend);
    return __builtin_expect(tag == ((addr + size - 1) & ~0xfffull), 1);
}

/* The host address of the access when soft_tlb_try() hits, NULL otherwise. */
static inline void *soft_tlb_hit(const struct soft_cpu *cpu, uint64_t addr, unsigned size,
                                 int access)
{
    void *p;
    return soft_tlb_try(cpu, addr, size, access, &p) ? p : NULL;
}

static inline void *soft_mem(struct soft_cpu *cpu, uint64_t addr, unsigned size, int access)
{
    void *p = soft_tlb_hit(cpu, addr, size, access);
    if (__builtin_expect(p != NULL, 1))
        return p;
    return soft_mem_slow(cpu, addr, size, access);
}

static inline uint64_t soft_ld(struct soft_cpu *cpu, uint64_t addr, unsigned osz)
{
    const void *p = soft_mem(cpu, addr, osz, SOFT_ACC_READ);
    switch (osz) {
    case 1: return *(const uint8_t *)p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline void soft_st(struct soft_cpu *cpu, uint64_t addr, unsigned osz, uint64_t v)
{
    void *p = soft_tlb_hit(cpu, addr, osz, SOFT_ACC_WRITE);
    if (__builtin_expect(p == NULL, 0)) {
        soft_st_slow(cpu, addr, osz, v);
        return;
    }
    switch (osz) {
    case 1: *(uint8_t *)p = (uint8_t)v; break;
    case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

/* Raw host-pointer access for read-modify-write forms that resolved their address once. */
static inline uint64_t soft_ldp(const void *p, unsigned osz)
{
    switch (osz) {
    case 1: return *(const uint8_t *)p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline void soft_stp(void *p, unsigned osz, uint64_t v)
{
    switch (osz) {
    case 1: *(uint8_t *)p = (uint8_t)v; break;
    case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

/* CMPXCHG16B's 16-byte compare-and-swap as the host's own LOCK CMPXCHG16B (every x86-64 host
 * that runs the block compiler has it): one atomic access, as other vCPU threads must see it.
 * Returns nonzero on success; *old becomes what memory held either way. */
static inline int soft_cas16(unsigned __int128 *p, unsigned __int128 *old, unsigned __int128 v)
{
    uint64_t lo = (uint64_t)*old, hi = (uint64_t)(*old >> 64);
    bool ok;
    __asm__ volatile("lock cmpxchg16b %1"
                     : "=@ccz"(ok), "+m"(*p), "+a"(lo), "+d"(hi)
                     : "b"((uint64_t)v), "c"((uint64_t)(v >> 64))
                     : "memory");
    *old = ((unsigned __int128)hi << 64) | lo;
    return ok;
}

/* Host-atomic compare-and-swap for LOCKed forms; returns nonzero if *p was old and is now v. */
static inline int soft_casp(void *p, unsigned osz, uint64_t old, uint64_t v)
{
    switch (osz) {
    case 1: { uint8_t o = (uint8_t)old;
        return __atomic_compare_exchange_n((uint8_t *)p, &o, (uint8_t)v, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST); }
    case 2: { uint16_t o = (uint16_t)old;
        return __atomic_compare_exchange_n((uint16_t *)p, &o, (uint16_t)v, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST); }
    case 4: { uint32_t o = (uint32_t)old;
        return __atomic_compare_exchange_n((uint32_t *)p, &o, (uint32_t)v, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST); }
    default: { uint64_t o = old;
        return __atomic_compare_exchange_n((uint64_t *)p, &o, v, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST); }
    }
}

static inline uint64_t soft_addr_trunc(uint64_t a, unsigned asz)
{
    return asz == 8 ? a : asz == 4 ? (uint32_t)a : (uint16_t)a;
}

/* Segment attribute bits (struct soft_segment.attr holds descriptor bits 40..55). */
#define SOFT_SEG_EXPDOWN 0x0004u /* data: expand-down (code: conforming) */
#define SOFT_SEG_CODE    0x0008u
#define SOFT_SEG_S       0x0010u /* code or data, not a system descriptor */
#define SOFT_SEG_DB      0x4000u /* D/B: 32-bit code, stack or expand-down upper bound */

/* Outside 64-bit mode every byte of a data access must lie within its segment: offsets up to
 * the limit in an expand-up segment, above the limit and up to 64 KiB or 4 GiB (by the B bit)
 * in an expand-down one. Otherwise #SS(0) for SS, #GP(0) for the others. The limit is a byte
 * limit (the G bit already applied when the descriptor was loaded). Type checks (writes to
 * read-only segments, null selectors) are not made. */
static inline void soft_seg_check(struct soft_cpu *cpu, unsigned seg, uint64_t off,
                                  unsigned size)
{
    const struct soft_segment *s = &cpu->seg[seg];
    uint64_t last = off + size - 1;
    if (__builtin_expect((s->attr & (SOFT_SEG_S | SOFT_SEG_CODE | SOFT_SEG_EXPDOWN)) !=
                             (SOFT_SEG_S | SOFT_SEG_EXPDOWN), 1)) {
        if (__builtin_expect(last <= s->limit, 1))
            return;
    } else if (off > s->limit && last <= ((s->attr & SOFT_SEG_DB) ? 0xffffffffull : 0xffff)) {
        return;
    }
    soft_raise(cpu, seg == SOFT_SS ? SOFT_EXC_SS : SOFT_EXC_GP, 0);
}

/* Offset of the ModRM memory operand within its segment, at the address size. */
static inline uint64_t soft_ea_offset(const struct soft_cpu *cpu, const struct soft_insn *i)
{
    uint64_t a = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
    return soft_addr_trunc(a, i->asz);
}

/* Linear address of a size-byte access at offset off in segment seg. Outside 64-bit mode the
 * offset is checked against the segment's limit and linear addresses have 32 bits, so base +
 * offset wraps at 4 GiB; 64-bit mode checks no limits (the fast handlers of fast_mem.h, which
 * run only there, skip this function altogether). */
static inline uint64_t soft_seg_linear(struct soft_cpu *cpu, unsigned seg, uint64_t off,
                                       unsigned size)
{
    uint64_t lin = off + cpu->seg[seg].base;
    if (__builtin_expect(cpu->mode == 64, 1))
        return lin;
    soft_seg_check(cpu, seg, off, size);
    return (uint32_t)lin;
}

/* Effective (linear) address of the ModRM memory operand, for an access of size bytes there
 * (the whole operand: both halves of a far pointer or a BOUND pair, 16 bytes of an XMM...). */
static inline uint64_t soft_ea(struct soft_cpu *cpu, const struct soft_insn *i, unsigned size)
{
    return soft_seg_linear(cpu, i->seg, soft_ea_offset(cpu, i), size);
}

/* Read/write the ModRM r/m operand (register or memory) of size osz. */
static inline uint64_t soft_rm_get(struct soft_cpu *cpu, const struct soft_insn *i, unsigned osz)
{
    if (i->mem)
        return soft_ld(cpu, soft_ea(cpu, i, osz), osz);
    return soft_get(cpu, i->rm, osz);
}

static inline void soft_rm_set(struct soft_cpu *cpu, const struct soft_insn *i, unsigned osz,
                               uint64_t v)
{
    if (i->mem)
        soft_st(cpu, soft_ea(cpu, i, osz), osz, v);
    else
        soft_set(cpu, i->rm, osz, v);
}

/* Stack: the stack-address size is 64 bits in 64-bit mode and otherwise SS.B's (SP or ESP),
 * whatever the code size. */
static inline unsigned soft_stack_size(const struct soft_cpu *cpu)
{
    if (cpu->mode == 64)
        return 8;
    return (cpu->seg[SOFT_SS].attr & SOFT_SEG_DB) ? 4 : 2;
}

/* Linear address of a size-byte stack access at stack offset sp (already at the stack size). */
static inline uint64_t soft_stack_linear(struct soft_cpu *cpu, uint64_t sp, unsigned size)
{
    return soft_seg_linear(cpu, SOFT_SS, sp, size);
}

/* RSP/ESP/SP += delta at the stack size (the bits above SP stay). */
static inline void soft_stack_adjust(struct soft_cpu *cpu, int64_t delta)
{
    unsigned ssz = soft_stack_size(cpu);
    soft_set(cpu, SOFT_RSP, ssz, soft_get(cpu, SOFT_RSP, ssz) + (uint64_t)delta);
}

static inline void soft_push(struct soft_cpu *cpu, unsigned osz, uint64_t v)
{
    if (__builtin_expect(cpu->mode == 64, 1)) {
        uint64_t sp = cpu->regs[SOFT_RSP] - osz;
        soft_st(cpu, sp + cpu->seg[SOFT_SS].base, osz, v);
        cpu->regs[SOFT_RSP] = sp;
        return;
    }
    unsigned ssz = soft_stack_size(cpu);
    uint64_t sp = soft_addr_trunc(cpu->regs[SOFT_RSP] - osz, ssz);
    soft_st(cpu, soft_stack_linear(cpu, sp, osz), osz, v);
    soft_set(cpu, SOFT_RSP, ssz, sp);
}

static inline uint64_t soft_pop(struct soft_cpu *cpu, unsigned osz)
{
    if (__builtin_expect(cpu->mode == 64, 1)) {
        uint64_t sp = cpu->regs[SOFT_RSP];
        uint64_t v = soft_ld(cpu, sp + cpu->seg[SOFT_SS].base, osz);
        cpu->regs[SOFT_RSP] = sp + osz;
        return v;
    }
    unsigned ssz = soft_stack_size(cpu);
    uint64_t sp = soft_get(cpu, SOFT_RSP, ssz);
    uint64_t v = soft_ld(cpu, soft_stack_linear(cpu, sp, osz), osz);
    soft_set(cpu, SOFT_RSP, ssz, sp + osz);
    return v;
}

/* --- lazy flags --------------------------------------------------------------------------- */

static inline unsigned soft_szidx(unsigned osz)
{
    return (unsigned)__builtin_ctz(osz);
}

static inline void soft_cc(struct soft_cpu *cpu, unsigned op, unsigned osz, uint64_t res,
                           uint64_t a, uint64_t b)
{
    cpu->cc_op = op + soft_szidx(osz);
    cpu->cc_res = res;
    cpu->cc_a = a;
    cpu->cc_b = b;
}

/* Set the arithmetic flags directly (non-lazy instructions such as MUL, BT, SAHF). */
static inline void soft_flags_store(struct soft_cpu *cpu, uint32_t flags)
{
    cpu->cc_op = SOFT_CC_EFLAGS;
    cpu->cc_res = flags & SOFT_ARITH_FLAGS;
}
/* CF alone (INC/DEC keep it, ADC/SBB read it): computed directly after the common operations
 * instead of building all six flags. */
static inline int soft_carry(const struct soft_cpu *cpu)
{
    unsigned op = cpu->cc_op & ~3u;
    uint64_t m = soft_cc_mask(cpu->cc_op & 3);
    if (op == SOFT_CC_SUB)
        return (cpu->cc_a & m) < (cpu->cc_b & m);
    if (op == SOFT_CC_LOGIC)
        return 0;
    if (op == SOFT_CC_INC || op == SOFT_CC_DEC)
        return (int)(cpu->cc_b & SOFT_CF);
    if (op == SOFT_CC_ADD)
        return (cpu->cc_res & m) < (cpu->cc_a & m);
    return soft_flags_arith(cpu) & SOFT_CF;
}

#endif
