#include "arch/x86/msr.h"

const struct msr_value *msr_boot_values(void)
{
    static const struct msr_value values[MSR_BOOT_COUNT] = {
        /* Fast strings on, as every BIOS leaves it; Linux warns when it is off. */
        {MSR_IA32_MISC_ENABLE, 1},
        /* MTRRs enabled with write-back as the default type: all RAM cacheable. Without this
         * Linux sees uncached memory and disables PAT. */
        {MSR_MTRR_DEF_TYPE, (1u << 11) | 6},
    };
    return values;
}
