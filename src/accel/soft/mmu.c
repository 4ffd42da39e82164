/* Guest-physical RAM lookup and the page-table walk of the software CPU (see mmu.h). */
#include "accel/soft/mmu.h"

#include <errno.h>
#include <stddef.h>

/* Physical-address bits of an entry in the 64-bit formats. Bits between the CPU's MAXPHYADDR
 * and 51 are reserved on hardware; the walk does not police them (no guest relies on the
 * fault, and CPUID reports the host's width, which differs between hosts). */
#define ADDR_MASK_64 0x000ffffffffff000ull
#define ADDR_MASK_32 0xfffff000ull

int soft_phys_add(struct soft_phys *phys, uint64_t gpa, uint64_t size, void *host)
{
    if (!size || gpa + size < gpa)
        return -EINVAL;
    for (unsigned k = 0; k < phys->n; k++) {
        const struct soft_ram_region *r = &phys->region[k];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size)
            return -EINVAL;
    }
    if (phys->n == SOFT_PHYS_MAX_REGIONS)
        return -ENOSPC;
    phys->region[phys->n++] = (struct soft_ram_region){gpa, size, host};
    return 0;
}

void *soft_phys_ptr(const struct soft_phys *phys, uint64_t gpa, uint64_t len)
{
    for (unsigned k = 0; k < phys->n; k++) {
        const struct soft_ram_region *r = &phys->region[k];
        /* Written so that no sum can wrap: gpa - r->gpa is only formed once gpa >= r->gpa. */
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
            return r->host + (gpa - r->gpa);
    }
    return NULL;
}

static uint64_t entry_load(const void *p, unsigned esz)
{
    if (esz == 8)
        return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}

/* A locked OR, as hardware's A/D updates are: a concurrent guest CAS on the entry must see
 * either the old or the new value, never a torn or lost update. */
static void entry_set(void *p, unsigned esz, uint64_t bits)
{
    if (esz == 8)
        __atomic_fetch_or((uint64_t *)p, bits, __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_or((uint32_t *)p, (uint32_t)bits, __ATOMIC_SEQ_CST);
}

static int walk_fault(uint32_t *error, uint32_t code)
{
    *error = code;
    return -SOFT_EXC_PF;
}

int soft_mmu_walk(const struct soft_cpu *cpu, const struct soft_phys *phys, uint64_t va,
                  int access, bool user, struct soft_walk *w, uint32_t *error)
{
    bool wr = access == SOFT_ACC_WRITE, fetch = access == SOFT_ACC_EXEC;
    bool nxe = (cpu->efer & SOFT_EFER_NXE) != 0;
    uint32_t code = (wr ? SOFT_PF_W : 0) | (user ? SOFT_PF_U : 0) | (fetch && nxe ? SOFT_PF_I : 0);

    if (!(cpu->cr0 & SOFT_CR0_PG)) {
        *w = (struct soft_walk){.gpa = va, .page_size = 4096, .user = true, .write = true,
                                .exec = true, .dirty = true};
        return 0;
    }

    unsigned shifts[4], nlevels, esz;
    uint64_t table, addr_mask;
    if (cpu->cr4 & SOFT_CR4_PAE) {
        esz = 8;
        addr_mask = ADDR_MASK_64;
        if (cpu->efer & SOFT_EFER_LMA) {
            table = cpu->cr3 & ADDR_MASK_64;
            shifts[0] = 39, shifts[1] = 30, shifts[2] = 21, shifts[3] = 12;
            nlevels = 4;
        } else {
            /* PAE: four PDPTEs at CR3[31:5]. They carry no permissions and no A bit. */
            const void *p = soft_phys_ptr(phys, (cpu->cr3 & 0xffffffe0u) + ((va >> 30) & 3) * 8, 8);
            uint64_t e = p ? entry_load(p, 8) : 0;
            if (!(e & SOFT_PTE_P))
                return walk_fault(error, code);
            if (e & (0x1e6ull | SOFT_PTE_NX))
                return walk_fault(error, code | SOFT_PF_P | SOFT_PF_RSVD);
            table = e & ADDR_MASK_64;
            shifts[0] = 21, shifts[1] = 12;
            nlevels = 2;
        }
    } else {
        esz = 4;
        addr_mask = ADDR_MASK_32;
        table = cpu->cr3 & ADDR_MASK_32;
        shifts[0] = 22, shifts[1] = 12;
        nlevels = 2;
    }

    void *path[4];
    uint64_t seen[4]; /* each level's entry as loaded */
    unsigned depth = 0;
    bool u_ok = true, w_ok = true, nx = false;
    uint64_t e = 0, page_size = 4096, frame = 0;
    for (unsigned l = 0; l < nlevels; l++) {
        unsigned shift = shifts[l];
        uint64_t idx = (va >> shift) & (esz == 8 ? 511 : 1023);
        void *p = soft_phys_ptr(phys, table + idx * esz, esz);
        /* A table outside RAM reads as not present rather than as device registers. */
        e = p ? entry_load(p, esz) : 0;
        if (!(e & SOFT_PTE_P))
            return walk_fault(error, code);
        bool last = l == nlevels - 1;
        bool large = !last && (e & SOFT_PTE_PS);
        uint64_t rsvd = esz == 8 && !nxe ? SOFT_PTE_NX : 0;
        if (large) {
            if (esz == 4 && !(cpu->cr4 & SOFT_CR4_PSE))
                large = false; /* PS is ignored in a 32-bit PDE without CR4.PSE */
            else if (shift == 39 || (shift == 30 && !cpu->model.pdpe1gb))
                rsvd |= SOFT_PTE_PS;
            else if (esz == 8)
                rsvd |= ((1ull << shift) - 1) & ~0x1fffull; /* frame below the page size */
        }
        if (e & rsvd)
            return walk_fault(error, code | SOFT_PF_P | SOFT_PF_RSVD);
        if (!(e & SOFT_PTE_W))
            w_ok = false;
        if (!(e & SOFT_PTE_U))
            u_ok = false;
        if (esz == 8 && nxe && (e & SOFT_PTE_NX))
            nx = true;
        path[depth] = p;
        seen[depth++] = e;
        if (large || last) {
            page_size = 1ull << shift;
            frame = e & addr_mask & ~(page_size - 1);
            break;
        }
        table = e & addr_mask;
    }

    /* Supervisor writes ignore R/W unless CR0.WP; without SMEP/SMAP (not advertised)
     * supervisor code may read and run user pages. */
    bool w_eff = user ? (u_ok && w_ok) : (w_ok || !(cpu->cr0 & SOFT_CR0_WP));
    if ((user && !u_ok) || (wr && !w_eff) || (fetch && nx))
        return walk_fault(error, code | SOFT_PF_P);

    /* Only a walk that grants the access marks the entries, as on hardware; an entry that
     * already has its bits is left alone (a locked write per level per walk was half the cost
     * of a walk, and hardware does not write set bits either). */
    for (unsigned k = 0; k < depth; k++) {
        uint64_t bits = SOFT_PTE_A;
        if (k == depth - 1 && wr)
            bits |= SOFT_PTE_D;
        if ((seen[k] & bits) != bits)
            entry_set(path[k], esz, bits);
    }

    w->gpa = frame | (va & (page_size - 1));
    w->page_size = page_size;
    w->user = u_ok;
    w->write = w_eff;
    w->exec = !nx;
    w->dirty = wr || (e & SOFT_PTE_D);
    w->global = (e & SOFT_PTE_G) && (cpu->cr4 & SOFT_CR4_PGE);
    return 0;
}
