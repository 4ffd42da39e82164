# Test guests (tests/guest): freestanding PVH ELFs linked at 1 MiB, built to $(BUILD)/guest/*.elf
# and run by tests/guest/test_guests.py. They are x86-64 guest code, not host code: built with gcc
# whatever $(CC) is, baseline instructions only (no SSE, no CET endbr, no red zone), because an
# instruction emulator (KVM's, or Vireo's software CPU) may execute every one of them.

GUEST_SRC_DIR := tests/guest
GUEST_OUT     := $(BUILD)/guest
GUEST_CC      ?= gcc
# -fno-tree-loop-distribute-patterns: GCC would turn memset()'s own loop into a call to memset.
# --param=min-pagesize=0: the guests do read low addresses (BIOS data area) on purpose.
GUEST_CFLAGS  := -std=gnu17 -O2 -g $(WARN) -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
                 -fcf-protection=none -fno-asynchronous-unwind-tables \
                 -fno-tree-loop-distribute-patterns -mgeneral-regs-only -mno-red-zone \
                 -march=x86-64 -mtune=generic -mcmodel=small --param=min-pagesize=0 \
                 -I$(GUEST_SRC_DIR)/runtime -MMD -MP
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,$(GUEST_SRC_DIR)/guest.ld -Wl,--build-id=none \
                 -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

# Guests in C use the runtime; quick_exit is three instructions of assembly with nothing else, so
# the startup benchmark measures the VMM, not the runtime.
GUEST_C_NAMES   := boot memmap serial pci rtc acpi smp exceptions poweroff triple_fault reboot \
                   exit_status panic pio_loop virtio_rng virtio_blk virtio_net \
                   virtio_console code_patching apic_priority atomics tlb
GUEST_ASM_NAMES := quick_exit
GUEST_ELFS      := $(patsubst %,$(GUEST_OUT)/%.elf,$(GUEST_C_NAMES) $(GUEST_ASM_NAMES))

GUEST_RT_SRCS := $(wildcard $(GUEST_SRC_DIR)/runtime/*.c) $(GUEST_SRC_DIR)/runtime/entry.S
GUEST_RT_OBJS := $(patsubst $(GUEST_SRC_DIR)/%,$(GUEST_OUT)/obj/%.o,$(GUEST_RT_SRCS))

# The flags are long and the same for every file: print one short line per step instead.
$(GUEST_OUT)/obj/%.c.o: $(GUEST_SRC_DIR)/%.c
	@mkdir -p $(dir $@)
	@echo "GUEST-CC $<"
	@$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_OUT)/obj/%.S.o: $(GUEST_SRC_DIR)/%.S
	@mkdir -p $(dir $@)
	@echo "GUEST-AS $<"
	@$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(patsubst %,$(GUEST_OUT)/%.elf,$(GUEST_C_NAMES)): $(GUEST_OUT)/%.elf: $(GUEST_OUT)/obj/%.c.o \
		$(GUEST_RT_OBJS) $(GUEST_SRC_DIR)/guest.ld
	@echo "GUEST-LD $@"
	@$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_RT_OBJS)

$(patsubst %,$(GUEST_OUT)/%.elf,$(GUEST_ASM_NAMES)): $(GUEST_OUT)/%.elf: $(GUEST_OUT)/obj/%.S.o \
		$(GUEST_SRC_DIR)/guest.ld
	@echo "GUEST-LD $@"
	@$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $<

.PHONY: guests
guests: $(GUEST_ELFS)

# `make guest-tests`: only the guest tests (pytest reads VIREO_BUILD to find the binaries).
guest-tests: all $(GUEST_ELFS)
	VIREO_BUILD=$(BUILD) $(PYTEST) -q $(GUEST_SRC_DIR)

CHECK_DEPS  += $(GUEST_ELFS)
PYTEST_DIRS += $(GUEST_SRC_DIR)
# The check target's pytest run finds the guests and vireo in this build directory.
export VIREO_BUILD := $(BUILD)
