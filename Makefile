# Vireo build. `make` builds build/vireo; `make check` runs every test; `make demo` boots a guest.
# Modules add their own rules in mk/*.mk (test guests, the software CPU's tools, fuzzers) so that
# independent work does not collide here.

CC      ?= gcc
BUILD   ?= build
SAN     ?=
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CFLAGS  := -std=gnu17 $(OPT) -g $(WARN) -D_GNU_SOURCE -Isrc -MMD -MP $(EXTRA_CFLAGS)
LDLIBS  := -lpthread -luring -ljson-c -lz -lzstd -lm
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

# Every .c under src/ is library code except the program entry points listed here.
MAIN_SRCS := src/cli/main.c
LIB_SRCS  := $(filter-out $(MAIN_SRCS),$(wildcard src/*/*.c src/*/*/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBVIREO  := $(BUILD)/libvireo.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

PYTEST    := /usr/bin/python3 -m pytest

.DEFAULT_GOAL := all
include $(wildcard mk/*.mk)

.PHONY: all check unit unit-asan guest-tests demo bench clean deps
all: $(BUILD)/vireo

# V=1 shows the full compiler command lines.
Q := $(if $(V),,@)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "CC $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIBVIREO): $(LIB_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/vireo: $(BUILD)/src/cli/main.o $(LIBVIREO)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The host side of the tap test as a static program: tests/linux/test_vhost.py runs it inside a
# busybox guest, where there is no Python and no shared library but the ones it brings. Not
# $(CFLAGS): a sanitizer build (SAN=1) cannot link statically.
TAP_PEER := $(BUILD)/tools/tap_peer
$(TAP_PEER): tests/tools/tap_peer.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu17 $(OPT) -g $(WARN) -D_GNU_SOURCE -static -o $@ $<

CHECK_DEPS += $(TAP_PEER)
linux-tests: $(TAP_PEER) $(GUEST_OUT)/virtio_net.elf

$(BUILD)/unit/%: tests/unit/%.c $(LIBVIREO)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "CCLD $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBVIREO) -lcmocka $(LDLIBS)

# Unit tests: each binary prints cmocka's own summary; any failure fails the target.
unit: $(UNIT_BINS)
	@rc=0; for t in $(abspath $(UNIT_BINS)); do $$t || rc=1; done; exit $$rc

unit-asan:
	$(MAKE) BUILD=build/asan SAN=1 OPT=-O1 unit

# mk/*.mk fragments append to CHECK_DEPS (things to build first), CHECK_TARGETS (extra test
# targets to run) and PYTEST_DIRS (pytest directories).
PYTEST_DIRS += tests/cli
# The VMM-level suites run twice: on the normal build and on the ASan+UBSan one.
ASAN_PYTEST_DIRS ?= tests/guest tests/cli
check: all unit unit-asan $(CHECK_DEPS) $(CHECK_TARGETS)
	$(PYTEST) -q $(PYTEST_DIRS)
	$(MAKE) BUILD=build/asan SAN=1 OPT=-O1 all guests
	VIREO_BUILD=build/asan $(PYTEST) -q $(ASAN_PYTEST_DIRS)

deps:
	scripts/install-deps

demo: deps all guests $(DEMO_DEPS)
	scripts/demo

bench: all $(BENCH_DEPS)
	bench/run-all

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
