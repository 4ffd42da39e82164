"""`vireo run` refuses bad input with one clear line on stderr, the documented exit status
(2: bad usage or configuration, 3: the host refused a resource), no core dump, and the terminal
left as it was."""

import os
import pty
import subprocess
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VIREO_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
VIREO = BUILD / "vireo"
GUEST = BUILD / "guest" / "quick_exit.elf"
EXIT_USAGE, EXIT_HOST = 2, 3


def run(args, env=None, timeout=30):
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run([str(VIREO), "run", *args], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env=full_env, timeout=timeout)
    return p


def assert_one_line_error(p, code, *words):
    lines = [l for l in p.stderr.splitlines() if "warning:" not in l]
    assert p.returncode == code, (p.returncode, p.stderr)
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert p.returncode >= 0  # a negative code would be a signal: a crash


@pytest.fixture
def tmp_files(tmp_path):
    files = {}
    files["empty"] = tmp_path / "empty"
    files["empty"].write_bytes(b"")
    files["random"] = tmp_path / "random"
    files["random"].write_bytes(bytes((i * 7919 + 13) % 251 for i in range(8192)))
    # A bzImage's setup header survives, the rest is cut off.
    bz = bytearray(0x300)
    bz[0x1fe:0x200] = b"\x55\xaa"
    bz[0x202:0x206] = b"HdrS"
    bz[0x206:0x208] = (0x020f).to_bytes(2, "little")
    bz[0x1f1] = 30                                        # setup sectors: 15 KiB, cut at 768 B
    bz[0x236:0x238] = (1).to_bytes(2, "little")           # XLF_KERNEL_64
    files["truncated_bz"] = tmp_path / "truncated.bzImage"
    files["truncated_bz"].write_bytes(bytes(bz))
    # A real ELF (this host's /bin/true) with no PVH note.
    files["elf_no_pvh"] = Path("/bin/true")
    files["big_initrd"] = tmp_path / "initrd"
    with open(files["big_initrd"], "wb") as f:
        f.truncate(64 << 20)
    return files


def test_missing_kernel_file():
    p = run(["--kernel", "/nonexistent/kernel"])
    assert_one_line_error(p, EXIT_USAGE, "/nonexistent/kernel", "No such file")


def test_kernel_is_a_directory(tmp_path):
    p = run(["--kernel", str(tmp_path)])
    assert_one_line_error(p, EXIT_USAGE, "is a directory")


def test_empty_kernel(tmp_files):
    p = run(["--kernel", str(tmp_files["empty"])])
    assert_one_line_error(p, EXIT_USAGE, "is empty")


def test_random_bytes_kernel(tmp_files):
    p = run(["--kernel", str(tmp_files["random"])])
    assert_one_line_error(p, EXIT_USAGE, "neither a Linux bzImage nor an ELF")


def test_truncated_bzimage(tmp_files):
    p = run(["--kernel", str(tmp_files["truncated_bz"]), "--accel", "kvm"])
    assert_one_line_error(p, EXIT_USAGE, "truncated bzImage")


def test_elf_without_pvh_note(tmp_files):
    p = run(["--kernel", str(tmp_files["elf_no_pvh"]), "--accel", "kvm"])
    # /bin/true's segments sit at address 0; either refusal names the problem in one line.
    assert_one_line_error(p, EXIT_USAGE, "kernel")
    assert "PVH" in p.stderr or "outside usable guest RAM" in p.stderr


def test_elf_without_pvh_note_loadable(tmp_path):
    """A well-formed ELF loadable at 1 MiB but with its note stripped."""
    elf = bytearray(GUEST.read_bytes())
    idx = elf.find(b"Xen\0")
    assert idx > 0
    elf[idx:idx + 4] = b"Nox\0"
    path = tmp_path / "nopvh.elf"
    path.write_bytes(bytes(elf))
    p = run(["--kernel", str(path), "--accel", "kvm"])
    assert_one_line_error(p, EXIT_USAGE, "without a PVH entry note")


def test_initrd_larger_than_ram(tmp_files):
    p = run(["--kernel", str(GUEST), "--initrd", str(tmp_files["big_initrd"]), "--memory", "32M"])
    assert_one_line_error(p, EXIT_USAGE, "initrd", "larger than guest RAM")


@pytest.mark.parametrize("size", ["0", "1K", "999T", "12Q", "-5", "abc", "64M,", "64M,shared=maybe",
                                  "64M,shared=on,shared=on", ",shared=on", "1" * 40 + ",shared=on"])
def test_bad_memory_sizes(size):
    p = run(["--kernel", str(GUEST), "--memory", size])
    assert_one_line_error(p, EXIT_USAGE, "--memory")


@pytest.mark.parametrize("cpus", ["0", "10000", "-1", "two"])
def test_bad_cpu_counts(cpus):
    p = run(["--kernel", str(GUEST), "--cpus", cpus])
    assert_one_line_error(p, EXIT_USAGE, "--cpus")


@pytest.mark.parametrize("args,word", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--accel", "warp"], "--accel"),
    (["--cpu-model", "pentium"], "--cpu-model"),
    (["--console", "tcp"], "--console"),
    (["--device", "gpu"], "--device"),
    (["--memory"], "needs a value"),
    (["extra-arg"], "unexpected argument"),
])
def test_bad_options(args, word):
    p = run(["--kernel", str(GUEST), *args])
    assert_one_line_error(p, EXIT_USAGE, word)


def test_no_kernel_given():
    p = run([])
    assert_one_line_error(p, EXIT_USAGE, "--kernel is required")


def test_kvm_device_missing():
    p = run(["--kernel", str(GUEST), "--accel", "kvm"],
            env={"VIREO_KVM_DEVICE": "/nonexistent/kvm"})
    assert_one_line_error(p, EXIT_HOST, "/nonexistent/kvm")


def test_terminal_left_as_it_was():
    """On a terminal, vireo switches to raw mode and restores it even when it fails."""
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        for args in (["--kernel", "/nonexistent"],
                     ["--kernel", str(GUEST), "--device", "debug-exit", "--accel", "kvm"]):
            subprocess.run([str(VIREO), "run", *args], stdin=slave, stdout=slave, stderr=slave,
                           timeout=30)
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
