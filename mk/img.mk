# Disk images (issue 6): a stand-alone `vireo img` driver for tests until src/cli/main.c
# dispatches to img_main(), an I/O workload tool, the qcow2 fuzzer, and the tests/img suite.
IMG_TEST_BIN := $(BUILD)/vireo-img-test
IMG_IO_BIN   := $(BUILD)/vireo-img-io

$(IMG_TEST_BIN): tests/img/img_driver.c $(LIBVIREO)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBVIREO) $(LDLIBS)

$(IMG_IO_BIN): tests/img/img_io.c $(LIBVIREO)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBVIREO) $(LDLIBS)

.PHONY: img-tools
img-tools: $(IMG_TEST_BIN) $(IMG_IO_BIN)

CHECK_DEPS += $(IMG_TEST_BIN) $(IMG_IO_BIN)
PYTEST_DIRS += tests/img
# tests/img/conftest.py finds the binaries through this.
export VIREO_BUILD := $(BUILD)

# libFuzzer target for the qcow2 parsers (clang). `make fuzz-qcow2` runs it for FUZZ_TIME
# seconds from seed images made with the test driver.
FUZZ_TIME ?= 60
FUZZ_QCOW2 := $(BUILD)/fuzz/fuzz_qcow2
FUZZ_QCOW2_SRCS := tests/fuzz/fuzz_qcow2.c $(wildcard src/block/*.c) src/util/log.c src/util/iov.c

$(FUZZ_QCOW2): $(FUZZ_QCOW2_SRCS) $(wildcard src/block/*.h)
	@mkdir -p $(dir $@)
	clang -std=gnu17 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
		-o $@ $(FUZZ_QCOW2_SRCS) -luring -lz -lzstd

.PHONY: fuzz-qcow2
CHECK_TARGETS += fuzz-qcow2
fuzz-qcow2: $(FUZZ_QCOW2) $(IMG_TEST_BIN)
	@rm -rf $(BUILD)/fuzz/seeds-qcow2 && mkdir -p $(BUILD)/fuzz/seeds-qcow2 $(BUILD)/fuzz/corpus-qcow2
	@cd $(BUILD)/fuzz/seeds-qcow2 && \
	head -c 20000 /dev/zero | tr '\0' 'v' > data.raw && \
	$(abspath $(IMG_TEST_BIN)) create -q -f qcow2 -o cluster_size=512 empty.qcow2 64k && \
	$(abspath $(IMG_TEST_BIN)) convert -O qcow2 -o cluster_size=512 data.raw data.qcow2 && \
	$(abspath $(IMG_TEST_BIN)) convert -c -O qcow2 -o cluster_size=512 data.raw comp.qcow2 && \
	$(abspath $(IMG_TEST_BIN)) convert -O qcow2 -o cluster_size=512,compat=0.10 data.raw v2.qcow2 && \
	$(abspath $(IMG_TEST_BIN)) create -q -f qcow2 -o cluster_size=512,refcount_bits=1 \
		-b data.qcow2 -F qcow2 ov.qcow2 && rm data.raw
	$(FUZZ_QCOW2) -max_total_time=$(FUZZ_TIME) -max_len=16384 -timeout=10 \
		$(BUILD)/fuzz/corpus-qcow2 $(BUILD)/fuzz/seeds-qcow2
