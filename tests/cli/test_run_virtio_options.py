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
    (["--disk", "x.raw,cache=unsafe"], ["cache=unsafe", "cache=none|writeback"]),
    (["--disk", ",readonly=on"], ["--disk", "path"]),
    (["--net", "tap=t0,mac=01:00:00:00:00:01"], ["mac="]),  # multicast
    (["--net", "tap=t0,mac=zz:00:00:00:00:01"], ["mac="]),
    (["--net", "mac=02:00:00:00:00:01"], ["tap=IFNAME"]),
    (["--net", "tap=" + "n" * 16], ["tap="]),
    (["--net", "tap=t0,vhost=yes"], ["vhost=yes", "vhost=auto|on|off"]),
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


def refuses_odirect(d):
    """True when the filesystem of directory d refuses O_DIRECT opens."""
    probe = Path(d) / f"vireo-odirect-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


def test_cache_none_where_the_filesystem_refuses_odirect(tmp_path):
    """cache=none on a filesystem without O_DIRECT: one line naming the option and the file,
    exit status 2 (the user's choice of option does not fit the disk; cache=writeback works).
    tmpfs refused O_DIRECT before Linux 6.6; where it accepts it, a ramfs (which never does) is
    mounted in a private mount namespace for the run."""
    image = "/dev/shm/vireo-cache-none-%d.raw" % os.getpid()
    argv = [str(VIREO), "run", "--kernel", str(GUEST), "--disk", f"{image},cache=none"]
    if refuses_odirect("/dev/shm"):
        script = f"truncate -s 1M {image} && exec \"$@\""
    else:
        if os.geteuid() != 0:
            pytest.fail("tmpfs accepts O_DIRECT on this kernel, and the ramfs this test mounts "
                        "instead needs root (run the suite as root, as CI does)", pytrace=False)
        image = str(tmp_path / "ramfs" / "disk.raw")
        argv[-1] = f"{image},cache=none"
        (tmp_path / "ramfs").mkdir()
        script = (f"mount -t ramfs none {tmp_path / 'ramfs'} && truncate -s 1M {image} && "
                  "exec \"$@\"")
    try:
        pre = [] if image.startswith("/dev/shm") else ["unshare", "--mount", "--propagation",
                                                       "private"]
        p = subprocess.run(pre + ["sh", "-c", script, "sh"] + argv, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        if image.startswith("/dev/shm") and os.path.exists(image):
            os.unlink(image)
    lines = [l for l in p.stderr.splitlines() if "warning:" not in l]
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert len(lines) == 1, p.stderr
    assert "cache=none" in lines[0] and image in lines[0], lines[0]
    assert "O_DIRECT" in lines[0], lines[0]


def test_cache_none_refuses_small_qcow2_clusters(tmp_path):
    """A qcow2 image with 512-byte clusters cannot be written with O_DIRECT safely (its metadata
    shares 4 KiB blocks with data): refused at start for writing, naming the option."""
    # The check happens at open, so the image must sit where O_DIRECT works (as on a real
    # host); /var/tmp is disk-backed where /tmp may be a tmpfs that refuses it.
    where = next((d for d in (tmp_path, Path("/var/tmp")) if not refuses_odirect(d)), None)
    if where is None:
        pytest.fail(f"neither {tmp_path} nor /var/tmp accepts O_DIRECT: nothing here can test "
                    "cache=none", pytrace=False)
    image = Path(where) / f"vireo-small-{os.getpid()}.qcow2"
    cleanup = image if where != tmp_path else None
    r = subprocess.run([str(VIREO), "img", "create", "-f", "qcow2", "-o", "cluster_size=512",
                        str(image), "1M"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        p = run(["--disk", f"{image},cache=none"])
    finally:
        if cleanup:
            cleanup.unlink(missing_ok=True)
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert "cache=none" in p.stderr and "512-byte clusters" in p.stderr, p.stderr
