"""The harness's own rules: a KVM run on a host without /dev/kvm fails unless skipping was
asked for, and debug-exit statuses map as each VMM reports them."""

import os

import pytest

import guestrun


def no_kvm(monkeypatch):
    real = os.access
    monkeypatch.setattr(guestrun.os, "access",
                        lambda path, mode: False if str(path) == "/dev/kvm" else real(path, mode))


def test_missing_kvm_fails(monkeypatch):
    no_kvm(monkeypatch)
    monkeypatch.delenv("VIREO_ALLOW_NO_KVM", raising=False)
    with pytest.raises(pytest.fail.Exception, match="/dev/kvm"):
        guestrun.check_accel("kvm")


def test_missing_kvm_skips_when_allowed(monkeypatch):
    no_kvm(monkeypatch)
    monkeypatch.setenv("VIREO_ALLOW_NO_KVM", "1")
    with pytest.raises(pytest.skip.Exception, match="/dev/kvm"):
        guestrun.check_accel("kvm")


def test_other_accels_do_not_need_kvm(monkeypatch):
    no_kvm(monkeypatch)
    monkeypatch.delenv("VIREO_ALLOW_NO_KVM", raising=False)
    guestrun.check_accel("soft")
    guestrun.check_accel("tcg")


def test_debug_exit_status(monkeypatch):
    monkeypatch.setattr(guestrun, "VMM", "vireo")
    assert [guestrun.debug_exit_status(s) for s in (0, 1, 42)] == [0, 1, 42]
    monkeypatch.setattr(guestrun, "VMM", "qemu")
    assert [guestrun.debug_exit_status(s) for s in (0, 1, 42)] == [1, 3, 85]
