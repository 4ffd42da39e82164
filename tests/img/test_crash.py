"""Crash safety: kill -9 a writer at random moments; the image must stay free of corruption
(leaks allowed) and hold everything flushed before the kill."""
import random
import shutil
import subprocess
import time

import pytest

from imgutil import qemu_img, random_raw

MiB = 1 << 20


def _kill_runs(img, img_io, tmp_path, runs, prepare, rnd):
    image = tmp_path / "crash.qcow2"
    for i in range(runs):
        base = prepare(image)
        seed = 1000 + i
        p = subprocess.Popen([img_io, "writer", str(seed), str(image)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(rnd.uniform(0.01, 0.25))
        p.kill()
        out, err = p.communicate()
        assert p.returncode == -9, f"writer ended by itself: {err}"
        flushed = [int(line.split()[1]) for line in out.splitlines() if line.startswith("flushed")]
        n = flushed[-1] if flushed else 0
        r = qemu_img("check", image, check=False)
        assert r.returncode in (0, 3), f"run {i}: {r.stdout}{r.stderr}"
        v = subprocess.run([img_io, "verify", str(seed), str(n), str(image)] +
                           ([str(base)] if base else []), capture_output=True, text=True)
        assert v.returncode == 0, f"run {i} after {n} flushed ops: {v.stderr}"
        if r.returncode == 3:
            rep = img.run("check", "-r", "leaks", image.name, check=False)
            assert rep.returncode == 0, rep.stdout
            qemu_img("check", image)


@pytest.mark.parametrize("opts", ["cluster_size=65536", "cluster_size=512,refcount_bits=8"])
def test_kill_writer_fresh_image(img, img_io, tmp_path, opts):
    def prepare(image):
        img.run("create", "-q", "-f", "qcow2", "-o", opts, image.name, "32M")
        return None
    _kill_runs(img, img_io, tmp_path, 20, prepare, random.Random(2024))


def test_kill_writer_overlay(img, img_io, tmp_path):
    random_raw(tmp_path / "base.raw", 32 * MiB, seed=31)

    def prepare(image):
        img.run("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", image.name)
        return tmp_path / "base.raw"
    _kill_runs(img, img_io, tmp_path, 5, prepare, random.Random(7))


def test_kill_writer_with_snapshot(img, img_io, tmp_path):
    random_raw(tmp_path / "src.raw", 32 * MiB, seed=32)
    qemu_img("convert", "-O", "qcow2", tmp_path / "src.raw", tmp_path / "orig.qcow2")
    qemu_img("snapshot", "-c", "keep", tmp_path / "orig.qcow2")

    def prepare(image):
        shutil.copy(tmp_path / "orig.qcow2", image)
        return tmp_path / "src.raw"
    _kill_runs(img, img_io, tmp_path, 5, prepare, random.Random(8))
    # The snapshot still holds the original data after all that copy-on-write.
    qemu_img("snapshot", "-a", "keep", tmp_path / "crash.qcow2")
    assert "identical" in qemu_img("compare", tmp_path / "crash.qcow2",
                                   tmp_path / "src.raw").stdout
