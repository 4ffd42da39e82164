"""Guest-run helpers for the test-guest harness (conftest.py, test_guests.py): runs a guest ELF
under Vireo (or QEMU, to check the guests themselves) and hands back its exit status and output.

Environment:
  VIREO_BUILD        build directory holding vireo and guest/*.elf (default: build)
  VIREO_TEST_VMM     "vireo" (default) or "qemu" (qemu-system-x86_64 -M q35)
  VIREO_TEST_ACCELS  comma-separated accelerators to run every test on
                     (default: "kvm" for vireo, "tcg" for qemu)
  VIREO_ALLOW_NO_KVM 1: skip, rather than fail, KVM runs when /dev/kvm is unusable
  VIREO_TEST_TIMEOUT seconds one guest run may take before it counts as hung (default 120)
"""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VIREO_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
GUEST_DIR = BUILD / "guest"
VMM = os.environ.get("VIREO_TEST_VMM", "vireo")
DEFAULT_ACCELS = "kvm" if VMM == "vireo" else "tcg"
ACCELS = [a.strip() for a in os.environ.get("VIREO_TEST_ACCELS", DEFAULT_ACCELS).split(",")
          if a.strip()]
TIMEOUT = float(os.environ.get("VIREO_TEST_TIMEOUT", "120"))
QEMU = "qemu-system-x86_64"

if VMM not in ("vireo", "qemu"):
    raise pytest.UsageError(f"VIREO_TEST_VMM must be vireo or qemu, not {VMM!r}")


def debug_exit_status(status):
    """The process exit status a guest's write of `status` to port 0xf4 produces."""
    return status if VMM == "vireo" else ((status << 1) | 1) & 0xff


def check_accel(accel):
    """Fails (or with VIREO_ALLOW_NO_KVM=1 skips) a KVM run on a host without usable /dev/kvm."""
    if accel != "kvm":
        return
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        return
    why = "/dev/kvm is missing or not accessible: KVM guest tests cannot run"
    if os.environ.get("VIREO_ALLOW_NO_KVM") == "1":
        pytest.skip(why + " (VIREO_ALLOW_NO_KVM=1)")
    pytest.fail(why + " (set VIREO_ALLOW_NO_KVM=1 to skip them)", pytrace=False)


class GuestRun:
    """One running guest. Output lines are collected with their arrival time by reader
    threads, so a test can wait for a line, type on stdin, and compare clocks."""

    def __init__(self, argv, stdin_pipe):
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.lines = []          # (arrival time, text) from stdout
        self.err_chunks = []
        self.cond = threading.Condition()
        self.readers = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.readers:
            t.start()
        self.status = None
        self.timed_out = False

    def _read_out(self):
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", "")
            with self.cond:
                self.lines.append((time.time(), text))
                self.cond.notify_all()

    def _read_err(self):
        for raw in self.proc.stderr:
            self.err_chunks.append(raw.decode("utf-8", "replace"))

    @property
    def stdout(self):
        with self.cond:
            return "\n".join(text for _, text in self.lines)

    @property
    def stderr(self):
        return "".join(self.err_chunks)

    def wait_for_line(self, needle, timeout=TIMEOUT):
        """Waits until a stdout line contains needle; returns (time, line) or fails."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for when, text in self.lines[seen:]:
                    if needle in text:
                        return when, text
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._reader_alive():
                    break
                self.cond.wait(min(left, 0.5))
        self.kill()
        pytest.fail(f"guest never printed {needle!r}\n{self.describe()}", pytrace=False)

    def _reader_alive(self):
        return self.readers[0].is_alive()

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def wait(self, timeout=TIMEOUT):
        try:
            self.status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.kill()
            self.status = self.proc.returncode
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        for t in self.readers:
            t.join(5)
        return self

    def describe(self):
        killed = " (killed after timeout)" if self.timed_out else ""
        return (f"command: {' '.join(map(str, self.argv))}\n"
                f"exit status: {self.proc.poll()}{killed}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")

    def expect(self, status, *needles):
        """Asserts the exit status and that every needle is in stdout."""
        assert not self.timed_out, \
            f"guest hung (no exit within {TIMEOUT:.0f} s)\n{self.describe()}"
        assert self.status == status, f"expected exit status {status}\n{self.describe()}"
        for n in needles:
            assert n in self.stdout, f"missing {n!r} in the output\n{self.describe()}"


def guest_argv(name, accel, cmdline, cpus, memory, reboot):
    elf = GUEST_DIR / f"{name}.elf"
    if not elf.is_file():
        pytest.fail(f"{elf} is not built (run make guests)", pytrace=False)
    if VMM == "vireo":
        vireo = BUILD / "vireo"
        if not os.access(vireo, os.X_OK):
            pytest.fail(f"{vireo} is not built (run make)", pytrace=False)
        argv = [str(vireo), "run", "--kernel", str(elf), "--cmdline", cmdline,
                "--cpus", str(cpus), "--memory", memory, "--accel", accel,
                "--console", "stdio", "--device", "debug-exit"]
        if not reboot:
            argv.append("--no-reboot")
        return argv
    argv = [QEMU, "-M", "q35", "-accel", accel, "-display", "none", "-nodefaults",
            "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-device", "pvpanic", "-action", "panic=exit-failure",
            "-kernel", str(elf), "-append", cmdline, "-smp", str(cpus), "-m", memory]
    if not reboot:
        argv.append("-no-reboot")
    return argv
