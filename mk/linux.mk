# Linux guests: Debian's cloud kernel + a busybox initramfs (scripts/guest-assets,
# docs/guest-assets.md) and the pytest suite that boots them (tests/linux). Not part of
# `make check` yet: the software CPU boots Debian's kernel, but not yet reliably enough for CI
# (see docs/soft-cpu.md), and this host's KVM stops early (emulation failures).
.PHONY: guest-assets linux-tests linux-tests-qemu

guest-assets:
	scripts/guest-assets

# VIREO_LINUX_ACCELS / VIREO_LINUX_CPUS choose the runs (default: soft, 1,2,4).
linux-tests: all guest-assets
	VIREO_BUILD=$(BUILD) $(PYTEST) -q tests/linux

# The same tests against QEMU TCG, to check the tests themselves.
linux-tests-qemu: guest-assets
	VIREO_TEST_VMM=qemu $(PYTEST) -q tests/linux
