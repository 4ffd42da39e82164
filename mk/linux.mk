# Linux guests: Debian's cloud kernel + a busybox initramfs (scripts/guest-assets,
# docs/guest-assets.md) and the pytest suite that boots them (tests/linux), part of `make check`
# on the software CPU (on a host without VT-x, KVM's instruction emulator needs 13+ minutes per
# boot: VIREO_LINUX_ACCELS=kvm runs them there on hosts that have it).
.PHONY: guest-assets linux-tests linux-tests-qemu

guest-assets:
	scripts/guest-assets

# VIREO_LINUX_ACCELS / VIREO_LINUX_CPUS choose the runs (default: soft, 1,2,4).
linux-tests: all guest-assets
	VIREO_BUILD=$(BUILD) $(PYTEST) -q tests/linux

CHECK_TARGETS += linux-tests

# The same tests against QEMU TCG, to check the tests themselves.
linux-tests-qemu: guest-assets
	VIREO_TEST_VMM=qemu $(PYTEST) -q tests/linux
