"""Many guests from one base image (issue 6, "Many from one"): 20 qcow2 overlays made by
`vireo img create -b base.raw -F raw`, 8 of them booted at the same time, each guest writing its
own marker to its disk and powering off. Afterwards the base image is byte-for-byte what it was,
and every overlay reads back as the base plus its own marker and nothing else.

The guests run Debian's kernel and the initramfs of scripts/guest-assets with their disk as the
only virtio-blk device (/dev/vda). On Vireo that needs `--accel soft` to boot Linux; with
VIREO_TEST_VMM=qemu the same test runs on QEMU TCG, which opens the overlays with its own qcow2
driver (so the images Vireo made are also checked for interoperability).

Environment (besides linuxvm.py's): VIREO_OVERLAY_GUESTS (default 8) guests booted at once,
VIREO_OVERLAY_MEMORY (default 128M) memory of each, VIREO_OVERLAY_TIMEOUT (default 3600) seconds
for all of them to power off: on a 2-core host, 8 concurrent TCG or soft-CPU guests take long.
"""

import hashlib
import os
import shutil
import subprocess
import time

import pytest

from linuxvm import BUILD, VMM, LinuxGuest, encode_cmd

MIB = 1024 * 1024
N_OVERLAYS = 20
N_GUESTS = int(os.environ.get("VIREO_OVERLAY_GUESTS", "8"))
GUEST_MEMORY = os.environ.get("VIREO_OVERLAY_MEMORY", "128M")
ALL_TIMEOUT = float(os.environ.get("VIREO_OVERLAY_TIMEOUT", "3600"))

BASE_SIZE = 64 * MIB
# The guest writes its marker into one 512-byte sector in the middle of the base's data, so the
# overlay's cluster there is a copy-on-write of base content, not a fresh cluster.
MARKER_SECTOR = 2048 + 3  # byte offset 1 MiB + 1536
MARKER_PREFIX = b"VIREO-OVERLAY-MARKER-"
BASE_TAG = b"VIREO-BASE-IMAGE-BLOCK"


def marker(n):
    return MARKER_PREFIX + b"%02d-" % n + hashlib.sha256(b"overlay%d" % n).hexdigest()[:16].encode()


def base_content():
    """64 MiB: a tagged, numbered 4 KiB block every 64 KiB, zeros between (the base has both
    data and holes, so overlays must fall through to each correctly)."""
    data = bytearray(BASE_SIZE)
    for off in range(0, BASE_SIZE, 64 * 1024):
        block = (BASE_TAG + b" %010d " % off) * 128
        data[off:off + 4096] = block[:4096]
    return bytes(data)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


class DiskGuest(LinuxGuest):
    """A LinuxGuest with one qcow2 image attached as virtio-blk."""

    def __init__(self, accel, disk, memory, cmdline):
        def add_disk(argv):
            if VMM == "vireo":
                return argv + ["--disk", f"{disk},format=qcow2"]
            return argv + ["-drive", f"file={disk},format=qcow2,if=virtio"]

        super().__init__(accel, cpus=1, memory=memory, cmdline=cmdline, argv_hook=add_disk)


def guest_script(n):
    """Runs in guest n: check that the disk shows the base's content (read through the overlay
    from the backing file), write the marker into one sector with O_DIRECT, flush, read it back."""
    m = marker(n).decode()
    return f"""
set -e
test "$(cat /sys/block/vda/size)" = {BASE_SIZE // 512}
dd if=/dev/vda bs=4096 skip=16 count=1 2>/dev/null | head -c 22 | grep -q '^{BASE_TAG.decode()}$'
echo BASE-SEEN
printf '%s' '{m}' > /tmp/m
dd if=/tmp/m of=/dev/vda bs=512 seek={MARKER_SECTOR} conv=notrunc,sync oflag=direct 2>/dev/null
sync
dd if=/dev/vda bs=512 skip={MARKER_SECTOR} count=1 iflag=direct 2>/dev/null | grep -q '{m}'
echo MARKER-WRITTEN-{n:02d}
"""


def read_as_raw(image, out):
    """The guest-visible content of an image, through `vireo img convert -O raw`."""
    subprocess.run([str(BUILD / "vireo"), "img", "convert", "-O", "raw", str(image), str(out)],
                   check=True, capture_output=True)
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


def test_many_overlays_on_one_base(accel, tmp_path):
    vireo = BUILD / "vireo"
    if not os.access(vireo, os.X_OK):
        pytest.fail(f"{vireo} is not built (run make)", pytrace=False)
    base = tmp_path / "base.raw"
    content = base_content()
    base.write_bytes(content)
    base_sum = sha256_file(base)

    overlays = []
    for n in range(N_OVERLAYS):
        ov = tmp_path / f"overlay{n}.qcow2"
        # A relative backing name, as `virt-builder`-style tooling writes them.
        r = subprocess.run([str(vireo), "img", "create", "-f", "qcow2", "-b", "base.raw", "-F",
                            "raw", str(ov)], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        overlays.append(ov)

    started = time.monotonic()
    guests = []
    try:
        for n in range(N_GUESTS):
            guests.append(DiskGuest(accel, overlays[n], GUEST_MEMORY,
                                    encode_cmd(guest_script(n))))
        for n, g in enumerate(guests):
            left = max(60.0, ALL_TIMEOUT - (time.monotonic() - started))
            g.wait_for(r"^VIREO-CMD-EXIT=\d+$", 0, left, f"guest {n}'s command to finish")
            status = g.wait_exit(120)
            out = g.describe()
            assert "BASE-SEEN" in g.text, f"guest {n} did not see the base image's data\n{out}"
            assert f"MARKER-WRITTEN-{n:02d}" in g.text, f"guest {n} did not write\n{out}"
            assert "VIREO-CMD-EXIT=0" in g.text, out
            assert status == 0, f"guest {n}: VMM exit status {status}\n{out}"
    finally:
        for g in guests:
            g.kill()
    elapsed = time.monotonic() - started
    print(f"\n{N_GUESTS} guests ({GUEST_MEMORY} each, {VMM} {accel}) booted, wrote and powered "
          f"off in {elapsed:.0f} s")

    assert sha256_file(base) == base_sum, "the base image changed"
    have_qemu_img = shutil.which("qemu-img") is not None
    for n, ov in enumerate(overlays):
        if have_qemu_img:
            chk = subprocess.run(["qemu-img", "check", "-f", "qcow2", str(ov)],
                                 capture_output=True, text=True)
            assert chk.returncode == 0, f"overlay{n}: {chk.stdout}{chk.stderr}"
        data = read_as_raw(ov, tmp_path / "view.raw")
        assert len(data) == BASE_SIZE
        want = bytearray(content)
        if n < N_GUESTS:
            sector = bytearray(512)
            m = marker(n)
            sector[:len(m)] = m
            want[MARKER_SECTOR * 512:(MARKER_SECTOR + 1) * 512] = sector
            assert data.count(MARKER_PREFIX) == 1, f"overlay{n} holds other markers"
        else:
            assert MARKER_PREFIX not in data, f"overlay{n} was never booted but has a marker"
        assert data == bytes(want), f"overlay{n} differs from base + its own marker"
        # The overlay file itself: at most its own marker, nobody else's, and not the whole
        # base (copy-on-write copies one cluster, it does not duplicate the image).
        raw_file = ov.read_bytes()
        others = [k for k in range(N_OVERLAYS) if k != n and marker(k) in raw_file]
        assert not others, f"overlay{n}'s file holds the markers of {others}"
        assert len(raw_file) < 2 * MIB, f"overlay{n} is {len(raw_file)} bytes"
