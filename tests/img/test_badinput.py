"""Malformed images: every one gives a one-line error (exit 1) and never a crash."""
import struct

import pytest

from imgutil import qemu_img


def _base(img, tmp_path):
    img.run("create", "-q", "-f", "qcow2", "good.qcow2", "64M")
    qemu_img("check", tmp_path / "good.qcow2")
    return bytearray((tmp_path / "good.qcow2").read_bytes())


def _patch(data, off, fmt, value):
    data[off:off + struct.calcsize(fmt)] = struct.pack(fmt, value)


CASES = {
    "truncated-header": (lambda d: d[:50], "too short"),
    "bad-magic": (lambda d: _patch(d, 0, ">I", 0x514649FA) or d, "bad magic"),
    "version-4": (lambda d: _patch(d, 4, ">I", 4) or d, "version"),
    "cluster-bits-8": (lambda d: _patch(d, 20, ">I", 8) or d, "cluster size"),
    "cluster-bits-22": (lambda d: _patch(d, 20, ">I", 22) or d, "cluster size"),
    "cluster-bits-huge": (lambda d: _patch(d, 20, ">I", 0xFFFFFFFF) or d, "cluster size"),
    "absurd-size": (lambda d: _patch(d, 24, ">Q", 1 << 63) or d, "size"),
    "l1-too-small": (lambda d: _patch(d, 36, ">I", 0) or d, "L1"),
    "l1-huge": (lambda d: _patch(d, 36, ">I", 0xFFFFFFFF) or d, "L1"),
    "l1-beyond-eof": (lambda d: _patch(d, 40, ">Q", 1 << 40) or d, "L1"),
    "l1-overlaps-header": (lambda d: _patch(d, 40, ">Q", 0) or d, "L1"),
    "l1-unaligned": (lambda d: _patch(d, 40, ">Q", 65536 * 3 + 8) or d, "L1"),
    "rt-beyond-eof": (lambda d: _patch(d, 48, ">Q", 1 << 40) or d, "refcount table"),
    "rt-overlaps-header": (lambda d: _patch(d, 48, ">Q", 0) or d, "refcount table"),
    "rt-zero-clusters": (lambda d: _patch(d, 56, ">I", 0) or d, "refcount table"),
    "rt-huge": (lambda d: _patch(d, 56, ">I", 0xFFFFFFFF) or d, "refcount table"),
    "rt-overlaps-l1": (lambda d: _patch(d, 48, ">Q", struct.unpack(">Q", d[40:48])[0]) or d,
                       "overlap"),
    "refcount-order-7": (lambda d: _patch(d, 96, ">I", 7) or d, "refcount order"),
    "header-length-odd": (lambda d: _patch(d, 100, ">I", 105) or d, "header length"),
    "unknown-incompat": (lambda d: _patch(d, 72, ">Q", 1 << 40) or d, "incompatible feature"),
    "extended-l2-small-clusters": (
        lambda d: (_patch(d, 72, ">Q", 1 << 4), _patch(d, 20, ">I", 12), d)[2], "extended L2"),
    "external-data-file": (lambda d: _patch(d, 72, ">Q", 1 << 2) or d, "external data file"),
    "encrypted": (lambda d: _patch(d, 32, ">I", 1) or d, "encrypted"),
    "backing-name-oob": (lambda d: (_patch(d, 8, ">Q", 65530), _patch(d, 16, ">I", 100), d)[2],
                         "backing file name"),
    "snapshots-oob": (lambda d: (_patch(d, 60, ">I", 3), _patch(d, 64, ">Q", 1 << 40), d)[2],
                      "snapshot"),
    "too-many-snapshots": (lambda d: (_patch(d, 60, ">I", 1 << 30), d)[1], "snapshot"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_header(img, tmp_path, name):
    mutate, words = CASES[name]
    data = mutate(_base(img, tmp_path))
    (tmp_path / "bad.qcow2").write_bytes(bytes(data))
    for args in (["info", "-f", "qcow2", "bad.qcow2"], ["check", "-f", "qcow2", "bad.qcow2"],
                 ["convert", "-f", "qcow2", "-O", "raw", "bad.qcow2", "out.raw"]):
        r = img.run(*args, check=False)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        if words:
            assert words.lower() in lines[0].lower(), lines[0]


def test_bad_magic_probes_as_raw(img, tmp_path):
    data = _base(img, tmp_path)
    data[0:4] = b"QFI\xfa"
    (tmp_path / "bad.qcow2").write_bytes(bytes(data))
    r = img.run("info", "bad.qcow2")
    assert "file format: raw" in r.stdout


def test_corrupt_l2_entry_is_an_io_error(img, tmp_path):
    img.run("create", "-q", "-f", "qcow2", "c.qcow2", "4M")
    (tmp_path / "d.raw").write_bytes(b"\x5a" * (1 << 20))
    img.run("convert", "-O", "qcow2", "d.raw", "c.qcow2")
    data = bytearray((tmp_path / "c.qcow2").read_bytes())
    l1 = struct.unpack(">Q", data[40:48])[0]
    l2 = struct.unpack(">Q", data[l1:l1 + 8])[0] & 0x00FFFFFFFFFFFE00
    data[l2:l2 + 8] = struct.pack(">Q", (1 << 63) | 0x12345)  # unaligned host offset
    (tmp_path / "c.qcow2").write_bytes(bytes(data))
    r = img.run("convert", "-O", "raw", "c.qcow2", "o.raw", check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "invalid L2 entry" in r.stderr
    r = img.run("check", "c.qcow2", check=False)
    assert r.returncode == 2


def test_marked_corrupt_opens_read_only_only(img, tmp_path):
    data = _base(img, tmp_path)
    _patch(data, 72, ">Q", 1 << 1)
    (tmp_path / "c.qcow2").write_bytes(bytes(data))
    assert img.run("info", "c.qcow2").returncode == 0
    r = img.run("resize", "c.qcow2", "+1M", check=False)
    assert r.returncode == 1 and "corrupt" in r.stderr
    img.run("check", "-r", "all", "c.qcow2")
    assert img.run("resize", "c.qcow2", "+1M").returncode == 0


def test_backing_loop(img, tmp_path):
    img.run("create", "-q", "-f", "qcow2", "a.qcow2", "1M")
    img.run("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2")
    img.run("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2")
    r = img.run("convert", "-O", "raw", "a.qcow2", "o.raw", check=False)
    assert r.returncode == 1 and "loop" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    img.run("rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", "a.qcow2")
    r = img.run("info", "--backing-chain", "a.qcow2", check=False)
    assert r.returncode == 1 and "loop" in r.stderr


def test_missing_backing_file(img, tmp_path):
    img.run("create", "-q", "-f", "qcow2", "a.qcow2", "1M")
    img.run("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2")
    (tmp_path / "a.qcow2").unlink()
    r = img.run("convert", "-O", "raw", "b.qcow2", "o.raw", check=False)
    assert r.returncode == 1 and "a.qcow2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = img.run("create", "-f", "qcow2", "-b", "nothere.qcow2", "-F", "qcow2", "c.qcow2",
                check=False)
    assert r.returncode == 1


def test_missing_file(img):
    r = img.run("info", "nope.qcow2", check=False)
    assert r.returncode == 1 and "nope.qcow2" in r.stderr


def test_write_into_metadata_is_refused(img, img_io, tmp_path):
    import subprocess
    (tmp_path / "d.raw").write_bytes(b"\x5a" * (1 << 20))
    img.run("convert", "-O", "qcow2", "d.raw", "m.qcow2")
    p = tmp_path / "m.qcow2"
    data = bytearray(p.read_bytes())
    l1 = struct.unpack(">Q", data[40:48])[0]
    l2 = struct.unpack(">Q", data[l1:l1 + 8])[0] & 0x00FFFFFFFFFFFE00
    # Guest cluster 1 claims to live in the L1 table's cluster, owned and writable.
    data[l2 + 8:l2 + 16] = struct.pack(">Q", (1 << 63) | l1)
    p.write_bytes(bytes(data))
    before = p.read_bytes()[l1:l1 + 65536]
    r = subprocess.run([img_io, "mark", str(p), "65536", "4096", "7"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert p.read_bytes()[l1:l1 + 65536] == before, "the L1 table was overwritten"
