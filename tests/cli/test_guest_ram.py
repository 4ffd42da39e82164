"""How guest RAM is backed, as /proc/PID/smaps of a running `vireo run` shows it: by default
private anonymous memory with MADV_HUGEPAGE, 2 MiB aligned, that gets transparent huge pages
where the host's THP setting allows (O_DIRECT and io_uring then pin one huge page per 2 MiB of a
guest buffer instead of 512 small ones); with `--memory SIZE,shared=on` a memfd mapped shared.
The guest runs on the software CPU, so no /dev/kvm is needed."""

import os
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VIREO_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
VIREO = BUILD / "vireo"
SERIAL_GUEST = BUILD / "guest" / "serial.elf"  # waits up to 30 s for a line on COM1
RAM_MIB = 64


def thp_mode(kind):
    """The bracketed word of /sys/kernel/mm/transparent_hugepage/<kind>, or None."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage", kind).read_text()
    except OSError:
        return None
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else None


def ram_mapping(pid):
    """The smaps entry of guest RAM: the one mapping of exactly RAM_MIB MiB (the RAM mapping is
    the process's only one of that size). Returns (header line, {field: value}, vmflags)."""
    entries, cur = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            cur = [line, {}, set()]
            entries.append(cur)
        elif line.startswith("VmFlags:"):
            cur[2] = set(line.split()[1:])
        else:
            key, _, val = line.partition(":")
            cur[1][key] = val.strip()
    found = [e for e in entries if e[1].get("Size") == f"{RAM_MIB * 1024} kB"]
    assert len(found) == 1, f"{len(found)} mappings of {RAM_MIB} MiB in smaps"
    return found[0]


def run_and_inspect(memory_arg):
    """Boots the serial test guest, inspects guest RAM while it waits for input, then lets it
    finish. Returns what ram_mapping() saw."""
    proc = subprocess.Popen(
        [str(VIREO), "run", "--kernel", str(SERIAL_GUEST), "--accel", "soft", "--memory",
         memory_arg, "--console", "stdio", "--device", "debug-exit", "--no-reboot"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, deadline = b"", time.monotonic() + 60
        while b"serial: ready" not in out:
            left = deadline - time.monotonic()
            assert left > 0, f"no 'serial: ready' within 60 s: {out[-400:]!r}"
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"vireo ended early: {out[-400:]!r} {proc.stderr.read()!r}"
                out += chunk
        mapping = ram_mapping(proc.pid)
        proc.stdin.write(b"done\n")
        proc.stdin.flush()
        rest, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (proc.returncode, (out + rest)[-400:], err)
        return mapping
    finally:
        proc.kill()
        proc.wait()


def test_default_ram_is_anonymous_and_asks_for_huge_pages():
    header, fields, flags = run_and_inspect(f"{RAM_MIB}M")
    start = int(header.split("-")[0], 16)
    perms = header.split()[1]
    assert perms == "rw-p", header                    # private
    assert "memfd:" not in header and "/" not in header, header  # no file behind it
    assert start % (2 << 20) == 0, header             # huge pages need 2 MiB alignment
    assert "hg" in flags, flags                       # MADV_HUGEPAGE
    if thp_mode("enabled") in ("always", "madvise"):
        # Vireo wrote the guest image and tables at the bottom of RAM, the guest its stack and
        # data: at least one 2 MiB page of that is a huge page.
        huge_kb = int(fields["AnonHugePages"].split()[0])
        assert huge_kb >= 2048, (huge_kb, fields)
        assert fields.get("THPeligible") in (None, "1"), fields


def test_shared_ram_is_a_memfd():
    header, fields, flags = run_and_inspect(f"{RAM_MIB}M,shared=on")
    assert header.split()[1] == "rw-s", header
    assert "/memfd:" in header, header
    assert "sh" in flags and "hg" in flags, flags
    assert int(header.split("-")[0], 16) % (2 << 20) == 0, header
    if thp_mode("shmem_enabled") in ("never", "deny"):
        # What the default avoids: shmem THP off, so none of the memfd's pages is huge.
        assert int(fields.get("ShmemPmdMapped", "0 kB").split()[0]) == 0, fields
