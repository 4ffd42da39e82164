"""Boots Debian's cloud kernel with the busybox initramfs of scripts/guest-assets under Vireo (or
QEMU, the peer) and drives the guest over its serial console.

Environment:
  VIREO_BUILD               build directory holding vireo (default: build)
  VIREO_TEST_VMM            "vireo" (default) or "qemu" (qemu-system-x86_64, to check the tests)
  VIREO_LINUX_ACCELS        comma-separated accelerators (default: "soft" for vireo, "tcg" for qemu)
  VIREO_LINUX_CPUS          comma-separated vCPU counts for the shared guests (default: 1,2,4)
  VIREO_QEMU_MACHINE        QEMU machine type (default: q35; microvm lacks pvpanic and the PM timer)
  VIREO_LINUX_CMDLINE       extra kernel command line words for every boot
  VIREO_LINUX_BOOT_TIMEOUT  seconds from exec to the init marker (default 600)
  VIREO_LINUX_CMD_TIMEOUT   seconds one shell command may take (default 120)
  VIREO_ASSETS              asset directory (default: .cache/assets; filled by scripts/guest-assets)

The guest side (the initramfs /init) prints INIT_MARKER once it has loaded its modules, then runs
the base64 command of `vireo.cmd=` and powers off, or starts a shell on the console.
"""

import base64
import codecs
import os
import re
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
VMM = os.environ.get("VIREO_TEST_VMM", "vireo")
if VMM not in ("vireo", "qemu"):
    raise pytest.UsageError(f"VIREO_TEST_VMM must be vireo or qemu, not {VMM!r}")
ACCELS = [a.strip() for a in
          os.environ.get("VIREO_LINUX_ACCELS", "soft" if VMM == "vireo" else "tcg").split(",")
          if a.strip()]
CPUS = [int(c) for c in os.environ.get("VIREO_LINUX_CPUS", "1,2,4").split(",") if c.strip()]
QEMU_MACHINE = os.environ.get("VIREO_QEMU_MACHINE", "q35")
EXTRA_CMDLINE = os.environ.get("VIREO_LINUX_CMDLINE", "")
BOOT_TIMEOUT = float(os.environ.get("VIREO_LINUX_BOOT_TIMEOUT", "600"))
CMD_TIMEOUT = float(os.environ.get("VIREO_LINUX_CMD_TIMEOUT", "120"))
ASSETS = Path(os.environ.get("VIREO_ASSETS", ROOT / ".cache" / "assets"))

INIT_MARKER = "VIREO-INIT-READY"
CMD_EXIT_RE = re.compile(r"^VIREO-CMD-EXIT=(\d+)$", re.M)
BASE_CMDLINE = "console=ttyS0"
SHARED_MEMORY = "512M"  # of the shared guests (conftest.py)


class Assets:
    """Paths of the kernel and initramfs, built by scripts/guest-assets when missing."""

    def __init__(self, vmlinuz, initramfs, release):
        self.vmlinuz = vmlinuz
        self.initramfs = initramfs
        self.release = release


_assets = None


def assets():
    """Runs scripts/guest-assets once per session (it returns at once on a warm cache)."""
    global _assets
    if _assets is None:
        env = dict(os.environ, VIREO_ASSETS=str(ASSETS))
        proc = subprocess.run([str(ROOT / "scripts" / "guest-assets")], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"scripts/guest-assets failed:\n{proc.stdout}{proc.stderr}", pytrace=False)
        _assets = Assets(ASSETS / "vmlinuz", ASSETS / "initramfs.cpio.gz",
                         (ASSETS / "kernel-release").read_text().strip())
    return _assets


def encode_cmd(script):
    """The kernel command line word that makes /init run `script` (sh syntax) and power off."""
    return "vireo.cmd=" + base64.b64encode(script.encode()).decode()


def vmm_argv(accel, cpus=1, memory="512M", cmdline="", reboot=False):
    """The command line that boots the test kernel on the configured VMM."""
    a = assets()
    full = " ".join(w for w in (BASE_CMDLINE, EXTRA_CMDLINE, cmdline) if w)
    if VMM == "vireo":
        vireo = BUILD / "vireo"
        if not os.access(vireo, os.X_OK):
            pytest.fail(f"{vireo} is not built (run make)", pytrace=False)
        argv = [str(vireo), "run", "--accel", accel, "--kernel", str(a.vmlinuz),
                "--initrd", str(a.initramfs), "--cmdline", full, "--cpus", str(cpus),
                "--memory", memory, "--console", "stdio"]
        if not reboot:
            argv.append("--no-reboot")
        return argv
    argv = ["qemu-system-x86_64", "-M", QEMU_MACHINE, "-accel", accel, "-m", memory,
            "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-kernel", str(a.vmlinuz), "-initrd", str(a.initramfs),
            "-append", full]
    if QEMU_MACHINE != "microvm":
        # What "a guest panic exits 1" means for QEMU: pvpanic, reported as a failure exit.
        argv += ["-device", "pvpanic", "-action", "panic=exit-failure"]
    if not reboot:
        argv.append("-no-reboot")
    return argv


def check_accel(accel):
    """KVM runs need a usable /dev/kvm; without it they fail with the reason."""
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.fail("/dev/kvm is missing or not accessible", pytrace=False)


class LinuxGuest:
    """One running guest and everything it printed. The console text is kept whole (CR dropped),
    so a test can wait for a pattern after any earlier point and a failure can show it all."""

    def __init__(self, accel, cpus=1, memory="512M", cmdline="", reboot=False, argv_hook=None):
        """argv_hook(argv) -> argv lets a subclass add devices or a wrapper (ip netns exec)."""
        check_accel(accel)
        self.accel, self.cpus, self.memory = accel, cpus, memory
        self.argv = vmm_argv(accel, cpus, memory, cmdline, reboot)
        if argv_hook:
            self.argv = argv_hook(self.argv)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.text = ""
        self.err = ""
        self.cond = threading.Condition()
        self.eof = False
        self.seq = 0
        self.shell_ready = False
        self.readers = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.readers:
            t.start()

    def _read_out(self):
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            text = dec.decode(chunk, final=not chunk).replace("\r", "")
            with self.cond:
                self.text += text
                if not chunk:
                    self.eof = True
                self.cond.notify_all()
            if not chunk:
                return

    def _read_err(self):
        for raw in self.proc.stderr:
            self.err += raw.decode("utf-8", "replace")

    # --- waiting and talking -------------------------------------------------------------

    def wait_for(self, pattern, start=0, timeout=CMD_TIMEOUT, what=None):
        """Waits until `pattern` (a regex, multi-line mode) matches the console text at or after
        offset `start`; returns the match. Fails the test on timeout or if the VMM exits."""
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        pos = start
        with self.cond:
            while True:
                m = rx.search(self.text, pos)
                if m:
                    return m
                # Next time, only rescan the tail a match could still begin in (the patterns
                # are short), so a megabyte of output is not searched again on every chunk.
                pos = max(start, len(self.text) - 4096)
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    break
                self.cond.wait(min(left, 1.0))
        why = "the VMM exited" if self.eof else f"no match within {timeout:.0f} s"
        self.kill()
        pytest.fail(f"guest never printed {what or rx.pattern!r} ({why})\n{self.describe()}",
                    pytrace=False)

    def mark(self):
        """The current end of the console text: wait_for(..., start=mark) sees only newer text."""
        with self.cond:
            return len(self.text)

    def send(self, text):
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pytest.fail(f"the VMM closed its console input\n{self.describe()}", pytrace=False)

    def wait_init(self, timeout=BOOT_TIMEOUT):
        """Waits for /init's marker; returns seconds from exec to the marker."""
        self.wait_for(INIT_MARKER, 0, timeout)
        return time.monotonic() - self.started

    def start_shell(self, start=0, timeout=BOOT_TIMEOUT):
        """Waits for the console shell (after console offset `start`: a reboot starts a new one)
        and makes it machine-friendly: no echo, no prompts, kernel messages off the console
        (dmesg still has them)."""
        self.shell_ready = False
        at = self.wait_for(INIT_MARKER, start, timeout).end()
        # "/ # ", then busybox's line editor asks the terminal for its cursor position (ESC[6n);
        # nobody answers and it goes on.
        self.wait_for(r"# ", at, CMD_TIMEOUT, "the shell prompt")
        at = self.mark()
        self.send("stty -echo; PS1=''; PS2=''; dmesg -n 1; echo VIREO-SYNC-$((6*7))\n")
        # The tty still echoes this line once, with the unexpanded arithmetic: only the shell's
        # own output has 42.
        self.wait_for(r"^VIREO-SYNC-42$", at, CMD_TIMEOUT, "the shell set-up")
        self.shell_ready = True

    def run(self, cmd, stdin_text=None, timeout=CMD_TIMEOUT):
        """Runs `cmd` in the guest shell; returns (exit status, output). Text in `stdin_text` is
        typed after the command line, for commands that read the console."""
        if not self.shell_ready:
            self.start_shell()
        self.seq += 1
        n = self.seq
        at = self.mark()
        # The braces keep `cmd` in this shell (cd, variables stick); the newline before the
        # closing brace lets `cmd` end in a comment. The end marker starts with its own newline,
        # so that it is found even after output without a final newline; that newline is not
        # part of the output.
        self.send(f"echo VIREO-BEGIN-{n}; {{ {cmd}\n}}; printf '\\nVIREO-END-{n}-%d\\n' $?\n")
        if stdin_text is not None:
            self.send(stdin_text)
        begin = self.wait_for(rf"^VIREO-BEGIN-{n}\n", at, timeout, f"the start of {cmd!r}")
        end = self.wait_for(rf"\nVIREO-END-{n}-(\d+)$", begin.end(), timeout,
                            f"the end of {cmd!r}")
        return int(end.group(1)), self.text[begin.end():end.start()]

    def check(self, cmd, **kw):
        """run() that fails the test unless the command exits 0; returns its output."""
        status, out = self.run(cmd, **kw)
        assert status == 0, f"{cmd!r} exited {status}:\n{out}"
        return out

    def wait_exit(self, timeout=CMD_TIMEOUT):
        """Waits for the VMM to exit; returns its status (None after killing it on timeout)."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        for t in self.readers:
            t.join(10)
        return status

    def poweroff(self, timeout=CMD_TIMEOUT):
        """Asks the guest to power off from its shell; returns the VMM's exit status."""
        if not self.shell_ready:
            self.start_shell()
        self.send("poweroff\n")
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for pipe in (self.proc.stdin,):
            try:
                pipe.close()
            except (OSError, BrokenPipeError):
                pass

    def describe(self, tail=120):
        with self.cond:
            lines = self.text.splitlines()
        shown = "\n".join(lines[-tail:])
        cut = f"(last {tail} of {len(lines)} lines)\n" if len(lines) > tail else ""
        return (f"command: {' '.join(self.argv)}\n"
                f"exit status: {self.proc.poll()}\n"
                f"--- console {cut}---\n{shown}\n--- stderr ---\n{self.err}")
