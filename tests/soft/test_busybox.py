"""Debian's static busybox on the software CPU (vireo-user) against the same busybox run natively:
stdout, stderr and exit status must match byte for byte."""
import glob
import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "assets"


def vireo_user() -> Path:
    path = Path(os.environ.get("VIREO_USER", ROOT / "build" / "vireo-user"))
    assert path.exists(), f"{path} is not built (make builds it; VIREO_USER overrides the path)"
    return path


def fetch_busybox() -> Path:
    """busybox-static from Debian, unpacked into the cache (never installed on the host)."""
    binary = CACHE / "busybox-static" / "bin" / "busybox"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    debs = glob.glob(str(CACHE / "busybox-static_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", "busybox-static"], cwd=CACHE, check=True,
                       capture_output=True)
        debs = glob.glob(str(CACHE / "busybox-static_*.deb"))
    subprocess.run(["dpkg-deb", "-x", debs[0], str(CACHE / "busybox-static")], check=True)
    assert binary.exists()
    return binary


@pytest.fixture(scope="module")
def busybox() -> Path:
    return fetch_busybox()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    rng = random.Random(20261127)
    (d / "random.bin").write_bytes(bytes(rng.getrandbits(8) for _ in range(300_000)))
    lines = [f"{rng.randrange(100000)} {rng.choice(['apple', 'pear', 'fig', 'kiwi'])} "
             f"{rng.random() * 1000:.3f}\n" for _ in range(20000)]
    (d / "lines.txt").write_text("".join(lines))
    (d / "calc.bc").write_text("scale=30\n2^200\n1/7\nsqrt(2)\n"
                               "define f(n) { if (n < 2) return n; return f(n-1)+f(n-2); }\n"
                               "f(20)\nquit\n")
    return d


CASES = {
    "echo": (["echo", "hi"], None),
    "sha256sum": (["sha256sum", "random.bin", "lines.txt"], None),
    "md5sum": (["md5sum", "random.bin"], None),
    "sort": (["sort", "lines.txt"], None),
    "sort-n": (["sort", "-n", "-k", "3", "lines.txt"], None),
    "awk": (["awk", "{ n[$2]++; s += $3 } END { for (k in n) printf \"%s %d\\n\", k, n[k]; "
             "printf \"%.4f %g %d\\n\", s, s / NR, int(s) % 97 }", "lines.txt"], None),
    "sed": (["sed", "-e", "s/\\(p[a-z]*\\)/<\\1>/g", "-e", "/kiwi/d", "lines.txt"], None),
    "gzip": (["gzip", "-c", "-6", "lines.txt"], None),
    "od": (["od", "-A", "x", "-t", "x1z", "-N", "4096", "random.bin"], None),
    "bc": (["bc", "-l", "calc.bc"], None),
    "wc-stdin": (["wc", "-l", "-c"], "lines.txt"),
    "sha512sum": (["sha512sum", "random.bin"], None),
    "sha3sum": (["sha3sum", "random.bin"], None),
    "base64": (["base64", "random.bin"], None),
    "printf-float": (["printf", "%f %e %g %.20f %a\\n", "3.14159", "2.5e-300", "1e100", "0.1",
                      "-7.25"], None),
    "seq-float": (["seq", "1", "0.37", "100"], None),
    "factor": (["factor", "1234567890123", "9999999967", "600851475143"], None),
    "dc": (["dc", "-e", "2 100 ^ p 20 k 1 7 / p 2 v p"], None),
    "bzip2": (["bzip2", "-c", "lines.txt"], None),
    "xz": (["xz", "-c", "lines.txt"], None),
    "od-double": (["od", "-A", "d", "-t", "f8", "-N", "1024", "random.bin"], None),
    "sort-r-k2": (["sort", "-r", "-k", "2,2", "-k", "1n", "lines.txt"], None),
    "sh-arith": (["sh", "-c", "x=0; for i in $(seq 1 200); do x=$((x + i * i % 7)); done; "
                  "echo $x; printf '%5.2f|%-6s|%x\\n' 3.14159 ab 255"], None),
    "false": (["false"], None),
    "missing-file": (["cat", "no-such-file"], None),
}


def run(cmd, cwd, stdin_name):
    stdin = open(cwd / stdin_name, "rb") if stdin_name else subprocess.DEVNULL
    try:
        return subprocess.run(cmd, cwd=cwd, stdin=stdin, capture_output=True, timeout=600)
    finally:
        if stdin_name:
            stdin.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_native(name, busybox, inputs):
    args, stdin_name = CASES[name]
    native = run([str(busybox)] + args, inputs, stdin_name)
    emulated = run([str(vireo_user()), str(busybox)] + args, inputs, stdin_name)
    assert emulated.returncode == native.returncode, emulated.stderr.decode(errors="replace")
    assert emulated.stderr == native.stderr
    assert hashlib.sha256(emulated.stdout).hexdigest() == hashlib.sha256(native.stdout).hexdigest()
    assert emulated.stdout == native.stdout


def test_guest_fault_becomes_signal(tmp_path):
    """A guest that executes UD2 dies of SIGILL, like the native program."""
    src = tmp_path / "ud2.c"
    src.write_text("void _start(void) { __asm__ volatile(\"ud2\"); }\n")
    exe = tmp_path / "ud2"
    subprocess.run(["gcc", "-static", "-nostdlib", "-O1", "-o", str(exe), str(src)], check=True)
    native = subprocess.run([str(exe)], capture_output=True)
    emulated = subprocess.run([str(vireo_user()), str(exe)], capture_output=True)
    assert native.returncode == -4
    assert emulated.returncode == native.returncode
    assert b"SIGILL" in emulated.stderr or b"Illegal instruction" in emulated.stderr


def test_static_pie(tmp_path):
    """A static-pie C program (loaded at a host-chosen base) prints what it prints natively."""
    src = tmp_path / "hello.c"
    src.write_text("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n"
                   "int main(int c, char **v) { char b[64]; double x = 0;\n"
                   "  for (int i = 1; i < 100; i++) x += 1.0 / i;\n"
                   "  snprintf(b, sizeof b, \"%s %d %.12f %zu\", v[c - 1], c, x, strlen(v[0]));\n"
                   "  puts(b); return 3; }\n")
    exe = tmp_path / "hello"
    subprocess.run(["gcc", "-static-pie", "-O2", "-o", str(exe), str(src)], check=True)
    native = subprocess.run([str(exe), "arg"], capture_output=True)
    emulated = subprocess.run([str(vireo_user()), str(exe), "arg"], capture_output=True)
    assert native.returncode == 3
    assert emulated.returncode == 3, emulated.stderr
    assert emulated.stdout == native.stdout
