/* Random instruction generators of the differential tests: one per family, each producing the
 * bytes of a test sequence and what to compare (tests/soft/diff.c runs them). */
#ifndef VIREO_TESTS_SOFT_DIFF_GEN_H
#define VIREO_TESTS_SOFT_DIFF_GEN_H

#include <stdint.h>

#define MEMSZ 512
#define F_CF 0x1u
#define F_PF 0x4u
#define F_AF 0x10u
#define F_ZF 0x40u
#define F_SF 0x80u
#define F_OF 0x800u
#define F_ALL (F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)
#define F_DF 0x400u

struct rng {
    uint64_t s;
};

/* xorshift64*: the whole run is reproducible from the seed. */
uint64_t rnd(struct rng *r);
unsigned rn(struct rng *r, unsigned n);
/* Random integers biased towards edge values; random double / float bit patterns. */
uint64_t rval(struct rng *r);
uint64_t rdouble(struct rng *r);
uint32_t rfloat(struct rng *r);

/* One generated test: code bytes plus what to compare. */
struct gen {
    uint8_t code[256];
    unsigned len;
    uint32_t fmask;  /* flags compared */
    int string;      /* RSI/RDI point into memory, RCX small */
    int fp;          /* 0 int, 1 double lanes, 2 float lanes in XMM/memory */
    int x87;         /* sequence uses the x87 stack: start it empty, end it empty */
    const char *what;
    int cl;          /* CL value the instruction needs (shift counts), or -1 */
    int small_rdx;   /* divisions: often make the high half small so that they fit */
    int bt_reg;      /* BT with memory: this register holds a small bit offset (+1) */
    int fsw_only;    /* compare AX only in the FPU condition bits (after FNSTSW AX) */
    int mode;        /* 64, 32 or 16: the code size it runs in (set before the generator) */
    unsigned addr_size; /* 32/16-bit code with memory operands: their address size (4 or 2);
                           BX BP SI DI then hold small offsets into the memory window */
    int ss_bits;     /* 32/16-bit code: SS is a 32-bit (B=1) or 16-bit segment; 0: as the code */
    int sse;         /* SSE in 32/16-bit code: no 0x66 for the operand size */
    int align16;     /* 32/16-bit code: those offsets are multiples of 16 (SSE alignment) */
    int addr_wrap;   /* ... except that 1: BX/BP + SI/DI wraps around the address size;
                        2: EBX EBP ESI EDI sit just below 4 GiB, so that segment base +
                        offset wraps to just below the window */
    int ds_limit;    /* 32/16-bit code: DS is one of the LDT's limited segments (1..5, see
                        diff.c: expand-up or expand-down, B=0 or 1); 0: the 4 GiB one */
    int block;       /* the interpreter runs the sequence as decoded blocks (soft_cpu_run, not
                        instruction by instruction), so that the passes over a whole block
                        (dead flags, fusion) apply; every path must end at the sequence's end */
    int smc;         /* stores into the code page: the interpreter watches it (diff.c) */
    int jit_regs;    /* the jit family's register roles (diff_gen_jit.c): pointers into the
                        memory window, small index values, RSP at a random stack offset */
};

/* 64-bit code: where the harness maps the memory window (RBX and the jit family's pointers
 * point into it; below 2 GiB, so that absolute disp32 forms reach it) and the code page (for
 * RIP-relative forms); GS has the base diff_mem_addr + JIT_GS_OFF, FS the host's own (its
 * TCB, only read by the tests). Set by diff.c before the generators run. */
extern uint64_t diff_mem_addr, diff_code_addr;
#define JIT_GS_OFF 256u
#define JIT_STACK_OFF 1024u /* RSP of 64-bit code: the window + this (jit: - 8 * 0..15) */

struct family {
    const char *name;
    void (*gen)(struct rng *, struct gen *);
    const char *opcodes; /* for the coverage table */
    int mode;            /* 32 or 16 for 32/16-bit code; 0 means 64 */
    int no_block;        /* 64-bit: not also run as a block through soft_cpu_run (why: comment) */
    const char *known_bug; /* not run unless named: the interpreter bug that makes it fail */
};

/* Encoding helpers shared by the generator files (diff_gen.c, diff_gen_legacy.c). */
/* Operand size choice: 1 = byte form, else 2/4/8 selected by 66 or REX.W. */
struct ops {
    unsigned osz;
    unsigned reg;  /* 0..15 */
    unsigned rm;   /* 0..15 for register form */
    int mem;       /* memory form: [rbx + disp8] (32/16-bit code: see aform) */
    unsigned disp;
    int rex_force; /* emit a REX even when no bit needs it */
    unsigned asz;  /* 32/16-bit code: address size of the memory form (0x67 when not default) */
    unsigned aform; /* 32/16-bit code: which base/index registers the memory form uses
                       (bits 0-5) and which segment override it has (6-7: none ES SS DS) */
};

void emit(struct gen *g, unsigned b);
void emit_n(struct gen *g, uint64_t v, unsigned n);
/* Operands for the mode of g: 64-bit code picks REX registers and sizes up to 8 and
 * [rbx+disp8]; 32/16-bit code registers 0-7, sizes 1/2/4 and 16/32-bit memory forms. */
void pick_ops(const struct gen *g, struct rng *r, struct ops *o, int byteop, int allow_mem);
/* Prefixes, opcode bytes op[0..nop), ModRM (digit or o->reg) and displacement. */
void emit_modrm_insn(struct gen *g, const struct ops *o, const uint8_t *op, unsigned nop,
                     int digit, int mand_pfx);
unsigned imm_size(unsigned osz);
/* CMOVcc r, r/m (cmov != 0) or SETcc r/m8 with a random condition, on the operands of o. */
void emit_cmov_setcc(struct rng *r, struct gen *g, struct ops *o, int cmov);

/* Families shared by several modes, and the 32/16-bit ones (diff_gen_legacy.c). */
void gen_alu(struct rng *r, struct gen *g);
void gen_unary(struct rng *r, struct gen *g);
void gen_bit(struct rng *r, struct gen *g);
void gen_sse_int(struct rng *r, struct gen *g);
void gen_sse_fp(struct rng *r, struct gen *g);
void gen_x87(struct rng *r, struct gen *g);
void gen_l_sse_int(struct rng *r, struct gen *g);
void gen_l_sse_fp(struct rng *r, struct gen *g);
void gen_l_x87(struct rng *r, struct gen *g);
void gen_l_alu(struct rng *r, struct gen *g);
void gen_l_cond(struct rng *r, struct gen *g);
void gen_l_mov(struct rng *r, struct gen *g);
void gen_l_string(struct rng *r, struct gen *g);
void gen_l_stack(struct rng *r, struct gen *g);
void gen_l_stack_other_ss(struct rng *r, struct gen *g);
void gen_l_wrap(struct rng *r, struct gen *g);
void gen_l_limit(struct rng *r, struct gen *g);
void gen_l_pusha(struct rng *r, struct gen *g);
void gen_l_bit(struct rng *r, struct gen *g);
void gen_l_bcd(struct rng *r, struct gen *g);
void gen_l_bound(struct rng *r, struct gen *g);
void gen_jit(struct rng *r, struct gen *g);
void gen_smc(struct rng *r, struct gen *g);
/* For the jit family's initial state: the values of its pointer and index registers. */
void jit_init_regs(struct rng *r, uint64_t regs[16]);

extern const struct family families[];
extern const unsigned nfamilies;

#endif
