/* Shared state of the block compiler while it translates one block: jit.c owns the block's
 * frame (entry, interpreter calls, exits, TLB miss paths), jit_insn.c translates instructions
 * with the helpers below. Internal to src/accel/soft/. */
#ifndef VIREO_ACCEL_SOFT_JIT_CTX_H
#define VIREO_ACCEL_SOFT_JIT_CTX_H

#include "accel/soft/cache.h"
#include "accel/soft/jit_x86.h"

#include <stddef.h>

/* Host register holding the struct soft_cpu pointer in compiled code (callee-saved, so the
 * interpreter handlers and C helpers it calls keep it). */
#define JIT_CPU JX_RBX

/* Which guest flags the host's EFLAGS hold right now: after a translated flag producer they
 * equal the guest's (its lazy record is stored with MOVs, which leave them alone), until
 * host code that changes them runs. A condition can then be a host Jcc/SETcc/CMOVcc. */
enum jit_flags { JIT_FLAGS_NONE, JIT_FLAGS_ALL, JIT_FLAGS_NO_CF };

enum jit_slow_kind { JIT_SLOW_PTR, JIT_SLOW_STORE, JIT_SLOW_STORE16 };

/* An out-of-line TLB miss path, emitted after the block. */
struct jit_slow {
    uint8_t *jne;    /* rel32 of the branch to it */
    uint8_t *resume; /* where the inline path continues */
    const struct soft_insn *i;
    uint8_t kind, size, access;
    int32_t src; /* JIT_SLOW_STORE16: offset in struct soft_cpu of the 16 bytes to store */
};

/* The mapping generations in the code buffer's data page (see soft_jit_mappings_changed). */
enum { JIT_GEN_ALL, JIT_GEN_GLOBAL };

#define JIT_MAX_SLOW (2 * SOFT_BLOCK_MAX)
#define JIT_MAX_FIXUPS 8

struct jit_ctx {
    struct jx_buf b;
    struct soft_block *blk;
    bool user;          /* vireo-user: host faults are guest faults, so cur is always set */
    bool dry;           /* only ask the translators whether they take an instruction */
    unsigned cpl;       /* the privilege the block runs at (part of its key) */
    int32_t tlb_off;    /* offset in struct soft_cpu of the block's TLB bank */
    uint64_t *run_op;   /* counters of executed interpreted instructions by opcode, or NULL */
    enum jit_flags fv;  /* host flags valid after the instructions emitted so far */
    enum jit_flags fv_in; /* ... before the current instruction */
    /* The lazy record as translated code last wrote it in this block (SOFT_CC_* + size
     * index), or -1 when unknown (block start, after interpreted code). */
    int last_cc;
    bool ends;          /* the current instruction ended the block (RIP set, chain emitted) */
    struct jit_slow slow[JIT_MAX_SLOW];
    unsigned nslow;
    uint8_t *body;      /* where the block's body starts (see soft_block.jit_body) */
    uint8_t *link[2];   /* rel32 of the static exits' jumps */
    /* For an exit to another page (system mode): the generation immediate of its guard and
     * the rel32 of the guard's branch to the link path (see emit_gen_check); else NULL. */
    uint8_t *link_gen[2], *link_stale[2];
    unsigned nlinks;
    const uint64_t *gen; /* (writable view) the mapping generations the guards compare */
    /* Jumps to the shared tail: the generic chain and the return to the run loop. */
    uint8_t *to_chain[JIT_MAX_FIXUPS], *to_loop[JIT_MAX_FIXUPS];
    unsigned nto_chain, nto_loop;
};

#define JIT_CPU_OFF(field) ((int32_t)offsetof(struct soft_cpu, field))

/* The guest register r at operand size size, in struct soft_cpu (AH..BH are byte 1). */
static inline struct jx_rm jit_greg(unsigned r, unsigned size)
{
    int32_t off = JIT_CPU_OFF(regs) + 8 * (int32_t)(r & 0x1f);
    if (size == 1 && (r & SOFT_HIGH8))
        off = JIT_CPU_OFF(regs) + 8 * (int32_t)(r & 3) + 1;
    return jx_m(JIT_CPU, off);
}

/* jit.c: helpers for the translators. */
/* RSI = the linear address of i's memory operand (64-bit mode: FS/GS bases added). Leaves the
 * host flags alone when with_seg is false (LEA). */
void jit_emit_ea(struct jit_ctx *c, const struct soft_insn *i, bool with_seg);
/* RSI = host pointer for a size-byte access at the linear address in RSI (RMW forms ask for
 * SOFT_ACC_WRITE); a miss calls soft_mem_slow() out of line. Clobbers RAX, RCX, RDX, RDI and
 * every caller-saved register on a miss, so nothing else may be live. */
void jit_emit_ptr(struct jit_ctx *c, const struct soft_insn *i, unsigned size, int access);
/* Store the low size bytes of RAX to the linear address in RSI; a miss goes through
 * soft_st_slow() (devices, page crossings, code pages) and leaves the block if that
 * invalidated it. */
void jit_emit_store(struct jit_ctx *c, const struct soft_insn *i, unsigned size);
/* Store the 16 bytes at [cpu + src] to the linear address in RSI; a miss goes through
 * soft_mem_write_bytes() (devices, page crossings, code pages), as jit_emit_store's. */
void jit_emit_store16(struct jit_ctx *c, const struct soft_insn *i, int32_t src);
/* Record the lazy flags: cc_op = op + size index, cc_res = res, and cc_a / cc_b from host
 * registers (JX_NONE: the immediate instead; both JX_NONE and no immediates for logic). */
void jit_emit_cc(struct jit_ctx *c, unsigned op, unsigned size, int res, int a, uint64_t a_imm,
                 int b, uint64_t b_imm);
/* The block's end after a translated branch whose target is only known at run time
 * (cpu->rip holds it): count the block and chain into the successor like soft_chain(). */
void jit_emit_chain(struct jit_ctx *c);
/* An exit to a target known now (set_rip: store it; otherwise RIP already holds it): count
 * the block and go on, through a jump that is linked straight into the successor's compiled
 * body once both exist (at most two per block). */
void jit_emit_exit(struct jit_ctx *c, bool set_rip, uint64_t target);
/* Raise exception vector (error code 0) at i, as its handler would: the state is as before i. */
void jit_emit_raise(struct jit_ctx *c, const struct soft_insn *i, int vector);
/* mov [cpu->rip], v */
void jit_emit_set_rip(struct jit_ctx *c, uint64_t v);
/* Call a C helper with the CPU as first argument (other arguments already in RSI, RDX...). */
void jit_emit_call(struct jit_ctx *c, const void *fn);

/* jit_insn.c: translate i; false (having emitted nothing) when it cannot. With c->dry set it
 * only answers, and the answer does not depend on what was emitted before. */
bool jit_translate(struct jit_ctx *c, const struct soft_insn *i);

/* Helpers the compiled code calls. */
uint64_t soft_jit_carry(struct soft_cpu *cpu);
/* The six arithmetic flags of the lazy record, at their EFLAGS positions. */
uint64_t soft_jit_flags(struct soft_cpu *cpu);
/* Condition cc (as numbered in Jcc) of the lazy flags: 0 or 1. */
uint64_t soft_jit_cond(struct soft_cpu *cpu, unsigned cc);
/* An unlinked exit k of b was taken (cpu->rip = its target): link it to the successor's
 * body when that is compiled and on the same page, and return the body to jump to; NULL
 * sends the exit through the generic chain. */
const uint8_t *soft_jit_link_exit(struct soft_cpu *cpu, struct soft_block *b, unsigned k);
/* The generic chain found neither remembered successor of b for cpu->rip: the decoded block
 * there if the cache has one that may run now (RIP then set to its end, as entering it needs),
 * else NULL (the run loop looks further, decoding if it must). */
struct soft_block *soft_jit_find_next(struct soft_cpu *cpu, struct soft_block *b);

#endif
