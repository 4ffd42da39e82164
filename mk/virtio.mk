# virtio (issue 5): the virtqueue fuzzer. `make fuzz-virtq` runs it for FUZZ_VIRTQ_TIME seconds.
FUZZ_VIRTQ_TIME ?= 60
FUZZ_VIRTQ := $(BUILD)/fuzz/fuzz_virtq
FUZZ_VIRTQ_SRCS := tests/fuzz/fuzz_virtq.c src/virtio/queue.c src/vmm/memory.c src/util/log.c

$(FUZZ_VIRTQ): $(FUZZ_VIRTQ_SRCS) src/virtio/queue.h src/vmm/memory.h
	@mkdir -p $(dir $@)
	clang -std=gnu17 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $(FUZZ_VIRTQ_SRCS)

.PHONY: fuzz-virtq
fuzz-virtq: $(FUZZ_VIRTQ)
	@mkdir -p $(BUILD)/fuzz/corpus-virtq
	@$(FUZZ_VIRTQ) -max_total_time=$(FUZZ_VIRTQ_TIME) -max_len=4096 -timeout=10 -print_final_stats=1 \
		$(BUILD)/fuzz/corpus-virtq > $(BUILD)/fuzz/fuzz_virtq.log 2>&1; rc=$$?; \
		tail -n 5 $(BUILD)/fuzz/fuzz_virtq.log; exit $$rc

# The same for virtio-blk's request parser behind the queue (links the block layer); the seeds
# directory keeps inputs that once found bugs (overlapping rings that made the queue loop).
FUZZ_VBLK_TIME ?= 30
FUZZ_VBLK := $(BUILD)/fuzz/fuzz_virtio_blk
FUZZ_VBLK_SRCS := tests/fuzz/fuzz_virtio_blk.c src/virtio/blk.c src/virtio/virtio.c \
                  src/virtio/queue.c src/vmm/memory.c src/vmm/event.c src/util/log.c \
                  src/util/iov.c $(wildcard src/block/*.c)

$(FUZZ_VBLK): $(FUZZ_VBLK_SRCS) $(wildcard src/virtio/*.h src/block/*.h)
	@mkdir -p $(dir $@)
	clang -std=gnu17 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $(FUZZ_VBLK_SRCS) -luring -lz -lzstd -lpthread

.PHONY: fuzz-virtio-blk
fuzz-virtio-blk: $(FUZZ_VBLK)
	@mkdir -p $(BUILD)/fuzz/corpus-virtio-blk
	@$(FUZZ_VBLK) -max_total_time=$(FUZZ_VBLK_TIME) -max_len=4096 -timeout=10 \
		-print_final_stats=1 $(BUILD)/fuzz/corpus-virtio-blk tests/fuzz/seeds-virtio-blk \
		> $(BUILD)/fuzz/fuzz_virtio_blk.log 2>&1; rc=$$?; \
		tail -n 5 $(BUILD)/fuzz/fuzz_virtio_blk.log; exit $$rc

# And for virtio-net's frame handling behind its two queues, the tap being a socket pair.
FUZZ_VNET_TIME ?= 30
FUZZ_VNET := $(BUILD)/fuzz/fuzz_virtio_net
FUZZ_VNET_SRCS := tests/fuzz/fuzz_virtio_net.c src/virtio/net.c src/virtio/vhost_net.c \
                  src/virtio/virtio.c \
                  src/virtio/queue.c src/vmm/memory.c src/vmm/event.c src/util/log.c \
                  src/util/iov.c

$(FUZZ_VNET): $(FUZZ_VNET_SRCS) $(wildcard src/virtio/*.h)
	@mkdir -p $(dir $@)
	clang -std=gnu17 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $(FUZZ_VNET_SRCS) -lpthread

.PHONY: fuzz-virtio-net
fuzz-virtio-net: $(FUZZ_VNET)
	@mkdir -p $(BUILD)/fuzz/corpus-virtio-net
	@$(FUZZ_VNET) -max_total_time=$(FUZZ_VNET_TIME) -max_len=4096 -timeout=10 \
		-print_final_stats=1 $(BUILD)/fuzz/corpus-virtio-net tests/fuzz/seeds-virtio-net \
		> $(BUILD)/fuzz/fuzz_virtio_net.log 2>&1; rc=$$?; \
		tail -n 5 $(BUILD)/fuzz/fuzz_virtio_net.log; exit $$rc

CHECK_TARGETS += fuzz-virtq fuzz-virtio-blk fuzz-virtio-net
