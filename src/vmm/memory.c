#include "vmm/memory.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/layout.h"

#define HUGE_PAGE (2ULL << 20)

/* Map `size` bytes of RAM (anonymous, or the memfd `fd`) at a 2 MiB boundary. Huge pages need it:
 * a 2 MiB page fills an aligned 2 MiB of the address space, and the kernel does not always align
 * anonymous mappings (not before 6.7, nor sizes that are not whole 2 MiB). So reserve 2 MiB more
 * than needed, map RAM over the first aligned address in it and give back the rest.
 * Guest-physical 0 and 4 GiB then sit on huge-page boundaries of the host mapping too, which KVM
 * needs to map guest RAM with 2 MiB pages. */
static void *map_ram_aligned(uint64_t size, int fd)
{
    uint64_t span = size + HUGE_PAGE;
    uint8_t *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED)
        return MAP_FAILED;
    uint8_t *base = (uint8_t *)(((uintptr_t)res + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    int flags = MAP_FIXED | MAP_NORESERVE | (fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS);
    if (mmap(base, size, PROT_READ | PROT_WRITE, flags, fd, 0) == MAP_FAILED) {
        int err = errno;
        munmap(res, span);
        errno = err;
        return MAP_FAILED;
    }
    if (base > res)
        munmap(res, (size_t)(base - res));
    if (res + span > base + size)
        munmap(base + size, (size_t)(res + span - (base + size)));
    return base;
}

static int mem_create(struct guest_mem *mem, uint64_t size, const char *name, bool shared)
{
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
    if (size < GUEST_MEM_MIN || size > GUEST_MEM_MAX || size % 4096)
        return -EINVAL;
    int fd = -1;
    if (shared) {
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        if (ftruncate(fd, (off_t)size) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
    }
    void *base = map_ram_aligned(size, fd);
    if (base == MAP_FAILED) {
        int err = -errno;
        if (fd >= 0)
            close(fd);
        return err;
    }
    /* Ask for transparent huge pages (see memory.h for why). With THP `enabled` = madvise, the
     * usual setting, anonymous memory gets them only when asked; a memfd gets them where the
     * host's `shmem_enabled` allows. Where THP is off this does nothing, and that is fine. */
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

int guest_mem_create(struct guest_mem *mem, uint64_t size, const char *name)
{
    return mem_create(mem, size, name, false);
}

int guest_mem_create_shared(struct guest_mem *mem, uint64_t size, const char *name)
{
    return mem_create(mem, size, name, true);
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
