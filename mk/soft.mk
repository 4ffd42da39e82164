# Software CPU tools: vireo-user (static Linux programs on the interpreter) and the
# differential tests against the host CPU. The library code itself is globbed by the top
# Makefile (src/accel/soft/*.c); src/accel/soft/user/ holds the runner, which is not library code.

SOFT_USER_SRCS := $(wildcard src/accel/soft/user/*.c)
SOFT_USER_OBJS := $(SOFT_USER_SRCS:%.c=$(BUILD)/%.o)

all: $(BUILD)/vireo-user

$(BUILD)/vireo-user: $(SOFT_USER_OBJS) $(LIBVIREO)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Differential tests against the host CPU (tests/soft/diff*.c + the native runner in native.S),
# in 64-bit, 32-bit (compatibility mode) and 16-bit code (an LDT code segment).
SOFT_DIFF := $(BUILD)/soft/diff
SOFT_TEST_CFLAGS := $(filter-out -MMD -MP,$(CFLAGS))

SOFT_DIFF_SRCS := tests/soft/diff.c tests/soft/diff_gen.c tests/soft/diff_gen_legacy.c \
                  tests/soft/diff_gen_jit.c \
                  tests/soft/native.S

$(SOFT_DIFF): $(SOFT_DIFF_SRCS) tests/soft/diff_gen.h $(LIBVIREO)
	@mkdir -p $(dir $@)
	$(CC) $(SOFT_TEST_CFLAGS) $(LDFLAGS) -o $@ $(SOFT_DIFF_SRCS) $(LIBVIREO) $(LDLIBS)

.PHONY: soft-check
soft-check: $(SOFT_DIFF)
	$(SOFT_DIFF)

CHECK_DEPS += $(BUILD)/vireo-user
CHECK_TARGETS += soft-check

# Busybox under vireo-user compared with native runs (fetches busybox-static into .cache/assets).
export VIREO_USER := $(abspath $(BUILD)/vireo-user)
PYTEST_DIRS += tests/soft

# Regenerate the opcode coverage table in docs/soft-cpu.md from a differential run.
.PHONY: soft-coverage
soft-coverage: $(SOFT_DIFF)
	$(SOFT_DIFF) --coverage -n 4000 | sed '$$d' > $(BUILD)/soft/coverage.md
	awk -v f=$(BUILD)/soft/coverage.md \
	    '/<!-- coverage:begin -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next } \
	     /<!-- coverage:end -->/ { skip = 0 } !skip' docs/soft-cpu.md > $(BUILD)/soft/doc.md
	cp $(BUILD)/soft/doc.md docs/soft-cpu.md

# The test guests on the software CPU (tests/guest stays accelerator-blind; the suite is
# parametrized by VIREO_TEST_ACCELS).
.PHONY: soft-guest-tests
soft-guest-tests: $(BUILD)/vireo $(GUEST_ELFS)
	VIREO_BUILD=$(BUILD) VIREO_TEST_ACCELS=soft $(PYTEST) -q $(GUEST_SRC_DIR)

CHECK_TARGETS += soft-guest-tests
