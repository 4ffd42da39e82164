"""Seeded random read/write workloads through the async block API, qcow2 versus raw."""
import shutil
import subprocess

import pytest

from imgutil import qemu_img, random_raw

MiB = 1 << 20


def _workload(img_io, cwd, seed, steps, image, ref, discard=True):
    args = [img_io, "workload", str(seed), str(steps), image, ref]
    if discard:
        args.append("discard")
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("opts,seed", [
    ("cluster_size=65536", 1), ("cluster_size=512", 2), ("cluster_size=4096", 3),
    ("cluster_size=2M", 4), ("compat=0.10", 5), ("refcount_bits=1,cluster_size=512", 6),
    ("refcount_bits=64,cluster_size=1024", 7),
])
def test_fresh_image_matches_raw(img, img_io, tmp_path, opts, seed):
    img.run("create", "-q", "-f", "qcow2", "-o", opts, "w.qcow2", "24M")
    with open(tmp_path / "w.raw", "wb") as f:
        f.truncate(24 * MiB)
    _workload(img_io, tmp_path, seed, 40, "w.qcow2", "w.raw")
    qemu_img("check", tmp_path / "w.qcow2")
    assert "identical" in qemu_img("compare", tmp_path / "w.qcow2", tmp_path / "w.raw").stdout


@pytest.mark.parametrize("compat", ["1.1", "0.10"])
def test_overlay_matches_raw(img, img_io, tmp_path, compat):
    random_raw(tmp_path / "base.raw", 20 * MiB, seed=11)
    qemu_img("convert", "-O", "qcow2", tmp_path / "base.raw", tmp_path / "base.qcow2")
    img.run("create", "-q", "-f", "qcow2", "-o", f"compat={compat}", "-b", "base.qcow2",
            "-F", "qcow2", "ov.qcow2")
    shutil.copy(tmp_path / "base.raw", tmp_path / "ov.raw")
    _workload(img_io, tmp_path, 12, 40, "ov.qcow2", "ov.raw", discard=(compat == "1.1"))
    qemu_img("check", tmp_path / "ov.qcow2")
    assert "identical" in qemu_img("compare", tmp_path / "ov.qcow2", tmp_path / "ov.raw").stdout
    assert (tmp_path / "base.raw").read_bytes() == random_raw(
        tmp_path / "again.raw", 20 * MiB, seed=11), "base untouched"


def test_compressed_and_snapshot_image_matches_raw(img, img_io, tmp_path):
    random_raw(tmp_path / "src.raw", 16 * MiB, seed=13, zero_ranges=[(4 * MiB, 3 * MiB)])
    qemu_img("convert", "-c", "-O", "qcow2", tmp_path / "src.raw", tmp_path / "c.qcow2")
    qemu_img("snapshot", "-c", "before", tmp_path / "c.qcow2")
    shutil.copy(tmp_path / "src.raw", tmp_path / "c.raw")
    _workload(img_io, tmp_path, 14, 40, "c.qcow2", "c.raw")
    qemu_img("check", tmp_path / "c.qcow2")
    assert "identical" in qemu_img("compare", tmp_path / "c.qcow2", tmp_path / "c.raw").stdout
    # The snapshot still holds the original data.
    qemu_img("snapshot", "-a", "before", tmp_path / "c.qcow2")
    assert "identical" in qemu_img("compare", tmp_path / "c.qcow2", tmp_path / "src.raw").stdout


def test_many_overlays_on_one_base(img, img_io, tmp_path):
    """20 overlays on one base; 8 writers at a time each put their own marker in theirs."""
    random_raw(tmp_path / "base.raw", 8 * MiB, seed=15)
    base_data = (tmp_path / "base.raw").read_bytes()
    qemu_img("convert", "-O", "qcow2", tmp_path / "base.raw", tmp_path / "base.qcow2")
    before = (tmp_path / "base.qcow2").read_bytes()
    for i in range(20):
        img.run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", f"o{i}.qcow2")
    for group in (range(0, 8), range(8, 16), range(16, 20)):
        procs = [subprocess.Popen([img_io, "mark", str(tmp_path / f"o{i}.qcow2"),
                                   str(i * 65536 + 1000), "4096", str(i + 1)],
                                  stderr=subprocess.PIPE, text=True) for i in group]
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
    assert (tmp_path / "base.qcow2").read_bytes() == before
    for i in range(20):
        qemu_img("check", tmp_path / f"o{i}.qcow2")
        m = qemu_img("map", "--output", "json", tmp_path / f"o{i}.qcow2").stdout
        assert m.count('"depth": 0, "present": true') == 1, m
        img.run("convert", "-O", "raw", f"o{i}.qcow2", f"o{i}.raw")
        data = (tmp_path / f"o{i}.raw").read_bytes()
        start = i * 65536 + 1000
        expect = bytearray(base_data)
        expect[start:start + 4096] = bytes([i + 1]) * 4096
        assert data == bytes(expect), f"overlay {i} holds more than its own marker"
