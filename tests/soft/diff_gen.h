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
    uint8_t code[64];
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
};

struct family {
    const char *name;
    void (*gen)(struct rng *, struct gen *);
    const char *opcodes; /* for the coverage table */
};

extern const struct family families[];
extern const unsigned nfamilies;

#endif
