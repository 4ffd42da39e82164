"""`vireo run`'s virtio options (--disk, --net, --rng, --console virtio) refuse bad values with
one line on stderr and exit status 2, before any guest runs."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VIREO_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
VIREO = BUILD / "vireo"
GUEST = BUILD / "guest" / "quick_exit.elf"
EXIT_USAGE = 2


def run(args):
    return subprocess.run([str(VIREO), "run", "--kernel", str(GUEST), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("args,words", [
    (["--disk", "x.raw,bogus=1"], ["--disk", "bogus=1"]),
    (["--disk", "x.raw,serial=" + "s" * 21], ["serial="]),
    (["--disk", "x.raw,format=vmdk"], ["format=vmdk"]),
    (["--disk", ",readonly=on"], ["--disk", "path"]),
    (["--net", "tap=t0,mac=01:00:00:00:00:01"], ["mac="]),  # multicast
    (["--net", "tap=t0,mac=zz:00:00:00:00:01"], ["mac="]),
    (["--net", "mac=02:00:00:00:00:01"], ["tap=IFNAME"]),
    (["--net", "tap=" + "n" * 16], ["tap="]),
    (["--rng", "maybe"], ["--rng"]),
])
def test_bad_virtio_option(args, words):
    p = run(args)
    lines = [l for l in p.stderr.splitlines() if "warning:" not in l]
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_missing_disk_names_it(tmp_path):
    p = run(["--disk", str(tmp_path / "absent.raw")])
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert "absent.raw" in p.stderr


def test_too_many_disks(tmp_path):
    args = []
    for i in range(9):
        args += ["--disk", str(tmp_path / f"d{i}.raw")]
    p = run(args)
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert "at most 8" in p.stderr
