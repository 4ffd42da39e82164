"""The console on a terminal: raw mode while the guest runs (keys reach the guest unprocessed),
Ctrl-A x quits with status 0, and the terminal is restored on every exit path."""

import os
import pty
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VIREO_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
VIREO = BUILD / "vireo"
SERIAL_GUEST = BUILD / "guest" / "serial.elf"


def require_kvm():
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        return
    why = "/dev/kvm is missing or not accessible: console tests boot a guest on KVM"
    if os.environ.get("VIREO_ALLOW_NO_KVM") == "1":
        pytest.skip(why)
    pytest.fail(why, pytrace=False)


def read_until(fd, needle, timeout=60):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {buf[-400:]!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


def start_on_pty():
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(
        [str(VIREO), "run", "--kernel", str(SERIAL_GUEST), "--accel", "kvm", "--memory", "64M",
         "--console", "stdio", "--device", "debug-exit", "--no-reboot"],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    return master, slave, before, proc


def test_raw_mode_and_typing_reach_the_guest():
    require_kvm()
    master, slave, before, proc = start_on_pty()
    try:
        read_until(master, b"serial: ready")
        now = termios.tcgetattr(slave)
        assert not (now[3] & termios.ICANON), "the terminal is not in raw mode while running"
        assert not (now[3] & termios.ECHO)
        os.write(master, b"typed on a terminal\r")
        out = read_until(master, b"PASS: serial")
        assert b"serial: echo: typed on a terminal" in out
        assert proc.wait(timeout=60) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        proc.kill()
        os.close(master)
        os.close(slave)


def test_ctrl_a_x_quits_and_restores_the_terminal():
    require_kvm()
    master, slave, before, proc = start_on_pty()
    try:
        read_until(master, b"serial: ready")
        os.write(master, b"\x01x")
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert termios.tcgetattr(slave) == before
    finally:
        proc.kill()
        os.close(master)
        os.close(slave)


def test_sigterm_restores_the_terminal():
    require_kvm()
    master, slave, before, proc = start_on_pty()
    try:
        read_until(master, b"serial: ready")
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        proc.kill()
        os.close(master)
        os.close(slave)
