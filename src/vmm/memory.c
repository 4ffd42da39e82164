#include "vmm/memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/layout.h"

int guest_mem_create(struct guest_mem *mem, uint64_t size, const char *name)
{
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
    if (size < GUEST_MEM_MIN || size > GUEST_MEM_MAX || size % 4096)
        return -EINVAL;
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED) {
        int err = -errno;
        close(fd);
        return err;
    }
    /* Guest RAM is plentiful and sparse; transparent huge pages cut TLB misses for the guest. */
    madvise(base, size, MADV_HUGEPAGE);
    mem->fd = fd;
    mem->size = size;
    mem->base = base;
    uint64_t low = size < LAYOUT_LOW_RAM_MAX ? size : LAYOUT_LOW_RAM_MAX;
    mem->regions[0] = (struct mem_region){0, low, mem->base, 0};
    mem->nregions = 1;
    if (size > low) {
        mem->regions[1] = (struct mem_region){LAYOUT_HIGH_RAM_BASE, size - low, mem->base + low, low};
        mem->nregions = 2;
    }
    return 0;
}

void guest_mem_destroy(struct guest_mem *mem)
{
    if (mem->base)
        munmap(mem->base, mem->size);
    if (mem->fd >= 0)
        close(mem->fd);
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
}

void *gpa_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct mem_region *r = &mem->regions[i];
        /* Written so that no sum can overflow: gpa and len are guest-controlled. */
        if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
            return r->host + (gpa - r->gpa);
    }
    return NULL;
}

uint64_t guest_mem_low_end(const struct guest_mem *mem)
{
    return mem->regions[0].size;
}

uint64_t guest_mem_high_end(const struct guest_mem *mem)
{
    return mem->nregions > 1 ? mem->regions[1].gpa + mem->regions[1].size : 0;
}
