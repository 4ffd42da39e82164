/* tlb: what the guest's TLB maintenance promises, it gets. A window of virtual pages in the
 * upper half is pointed at one physical page, read (so a TLB may cache it), re-pointed at
 * another without a flush, then flushed the way Linux does it:
 *   1. cr3_nonglobal   a non-global page: a CR3 write drops it; the new page is read.
 *   2. invlpg_global   a global page (CR4.PGE): INVLPG of its address drops it.
 *   3. pge_toggle      a global page: clearing and setting CR4.PGE drops it (Linux's
 *                      __flush_tlb_global without INVPCID).
 *   4. invlpg_large    a 2 MiB page read at two 4 KiB offsets; its PDE re-pointed; INVLPG at the
 *                      first offset must drop the whole translation: the second offset reads
 *                      the new large page too (a software TLB holding 4 KiB pieces of it must
 *                      drop all of them).
 *   5. invlpg_other    INVLPG of one page leaves a neighbour's new mapping visible after that
 *                      neighbour's own INVLPG (each flush reaches the page it names).
 *   6. invlpg_large_after_cr3  a global 2 MiB page cached, a CR3 write (which keeps it), its
 *                      PDE re-pointed: INVLPG at another of its addresses drops all of it.
 * Each physical page holds a distinct marker in every 8-byte word, so a stale translation shows
 * as the old marker. */
#include "runtime.h"

#include "defs.h"

const char guest_name[] = "tlb";

#define PTE_P  0x1ULL
#define PTE_W  0x2ULL
#define PTE_PS 0x80ULL
#define PTE_G  0x100ULL
#define CR4_PGE (1ULL << 7)

#define PML4_SLOT 401
#define WINDOW    ((uint64_t)0xffff000000000000ULL | ((uint64_t)PML4_SLOT << 39))
#define VA(slot)  (WINDOW + (uint64_t)(slot) * 4096)
/* The large page: PD entry 1 of the window's PDPT entry 0, at WINDOW + 2 MiB. */
#define LARGE_VA  (WINDOW + (2ULL << 20))

enum { P_A, P_B, P_C, P_D, NPAGES };
static uint64_t phys[NPAGES][512] __attribute__((aligned(4096)));
static uint64_t pt_pdpt[512] __attribute__((aligned(4096)));
static uint64_t pt_pd[512] __attribute__((aligned(4096)));
static uint64_t pt_pt[512] __attribute__((aligned(4096)));
/* Step 6's large page: PD entry 1 of the window's PDPT entry FAR_SLOT. */
#define FAR_SLOT 37
#define FAR_VA   (WINDOW + ((uint64_t)FAR_SLOT << 30) + (2ULL << 20))
static uint64_t pt_pd_far[512] __attribute__((aligned(4096)));
extern uint64_t pml4[512];

static uint64_t pa(const void *p)
{
    return (uint64_t)(uintptr_t)p; /* low memory is identity-mapped */
}

static uint64_t marker(unsigned page)
{
    return 0x71b0000000000000ull | ((uint64_t)page << 32) | 0x5a5a;
}

static uint64_t peek(uint64_t va)
{
    return *(volatile uint64_t *)va;
}

static void expect(const char *step, uint64_t va, unsigned page)
{
    uint64_t got = peek(va);
    if (got != marker(page)) {
        printf("tlb: %s: read 0x%lx at 0x%lx, want page %u's 0x%lx\n", step, got, va, page,
               marker(page));
        test_fail(step);
    }
}

/* Point slot at page without any flush: the TLB may still hold the old translation. */
static void repoint(unsigned slot, unsigned page, uint64_t flags)
{
    pt_pt[slot] = pa(phys[page]) | PTE_P | PTE_W | flags;
    __asm__ volatile("" ::: "memory");
}

static void step_ok(const char *name)
{
    printf("tlb: step %s: ok\n", name);
}

/* Two 2 MiB-aligned physical blocks for the large-page step. */
static uint64_t large[2][(2u << 20) / 8] __attribute__((aligned(2u << 20)));

static uint8_t *large_block(unsigned which)
{
    return (uint8_t *)large[which];
}

static void mark_large(unsigned which, unsigned page)
{
    for (unsigned k = 0; k < (2u << 20) / 8; k++)
        large[which][k] = marker(page);
}

int guest_main(void)
{
    for (unsigned p = 0; p < NPAGES; p++)
        for (unsigned k = 0; k < 512; k++)
            phys[p][k] = marker(p);
    ASSERT(!(pml4[PML4_SLOT] & PTE_P));
    pt_pdpt[0] = pa(pt_pd) | PTE_P | PTE_W;
    pt_pd[0] = pa(pt_pt) | PTE_P | PTE_W;
    pml4[PML4_SLOT] = pa(pt_pdpt) | PTE_P | PTE_W;
    write_cr3(read_cr3());
    write_cr4(read_cr4() | CR4_PGE);

    /* 1. A CR3 write drops non-global translations. */
    repoint(0, P_A, 0);
    invlpg(VA(0));
    expect("cr3_nonglobal (before)", VA(0), P_A);
    repoint(0, P_B, 0);
    write_cr3(read_cr3());
    expect("cr3_nonglobal", VA(0), P_B);
    step_ok("1 cr3_nonglobal");

    /* 2. INVLPG drops a global translation. */
    repoint(1, P_A, PTE_G);
    invlpg(VA(1));
    expect("invlpg_global (before)", VA(1), P_A);
    write_cr3(read_cr3()); /* keeps it, or not: either is allowed, nothing to check */
    repoint(1, P_C, PTE_G);
    invlpg(VA(1));
    expect("invlpg_global", VA(1), P_C);
    step_ok("2 invlpg_global");

    /* 3. Toggling CR4.PGE drops global translations. */
    repoint(2, P_A, PTE_G);
    invlpg(VA(2));
    expect("pge_toggle (before)", VA(2), P_A);
    repoint(2, P_D, PTE_G);
    uint64_t cr4 = read_cr4();
    write_cr4(cr4 & ~CR4_PGE);
    write_cr4(cr4);
    expect("pge_toggle", VA(2), P_D);
    step_ok("3 pge_toggle");

    /* 4. INVLPG at one address of a 2 MiB page drops all of it. */
    mark_large(0, 10);
    mark_large(1, 11);
    pt_pd[1] = pa(large_block(0)) | PTE_P | PTE_W | PTE_PS | PTE_G;
    invlpg(LARGE_VA);
    expect("invlpg_large (before, first page)", LARGE_VA, 10);
    expect("invlpg_large (before, another page)", LARGE_VA + 0x5000, 10);
    expect("invlpg_large (before, last page)", LARGE_VA + 0x1ff000, 10);
    pt_pd[1] = pa(large_block(1)) | PTE_P | PTE_W | PTE_PS | PTE_G;
    invlpg(LARGE_VA);
    expect("invlpg_large (first page)", LARGE_VA, 11);
    expect("invlpg_large (another page)", LARGE_VA + 0x5000, 11);
    expect("invlpg_large (last page)", LARGE_VA + 0x1ff000, 11);
    step_ok("4 invlpg_large");

    /* 5. Two neighbours, each flushed by its own INVLPG. */
    repoint(3, P_A, 0);
    repoint(4, P_A, 0);
    invlpg(VA(3));
    invlpg(VA(4));
    expect("invlpg_other (before, 3)", VA(3), P_A);
    expect("invlpg_other (before, 4)", VA(4), P_A);
    repoint(3, P_B, 0);
    repoint(4, P_C, 0);
    invlpg(VA(3));
    expect("invlpg_other (3)", VA(3), P_B);
    invlpg(VA(4));
    expect("invlpg_other (4)", VA(4), P_C);
    step_ok("5 invlpg_other");

    /* 6. A global 2 MiB page survives a CR3 write, and INVLPG at another of its addresses
     * than before still drops all of it afterwards. It lies in a 1 GiB region of its own, 37
     * GiB into the window (a software TLB may keep track of large pages by region; the
     * runtime's own mappings are in the low regions). */
    mark_large(0, 12);
    mark_large(1, 13);
    pt_pdpt[FAR_SLOT] = pa(pt_pd_far) | PTE_P | PTE_W;
    pt_pd_far[1] = pa(large_block(0)) | PTE_P | PTE_W | PTE_PS | PTE_G;
    invlpg(FAR_VA);
    expect("invlpg_large_after_cr3 (before)", FAR_VA, 12);
    expect("invlpg_large_after_cr3 (before, another page)", FAR_VA + 0x7000, 12);
    write_cr3(read_cr3());
    expect("invlpg_large_after_cr3 (after the CR3 write)", FAR_VA + 0x7000, 12);
    expect("invlpg_large_after_cr3 (after the CR3 write, first page)", FAR_VA, 12);
    pt_pd_far[1] = pa(large_block(1)) | PTE_P | PTE_W | PTE_PS | PTE_G;
    invlpg(FAR_VA + 0x3000);
    expect("invlpg_large_after_cr3 (first page)", FAR_VA, 13);
    expect("invlpg_large_after_cr3 (another page)", FAR_VA + 0x7000, 13);
    step_ok("6 invlpg_large_after_cr3");
    return 0;
}
