"""Interop with qemu-img in both directions, and the img subcommands' behaviour."""
import json
import struct

import pytest

from imgutil import qemu_img, qemu_io, random_raw

MiB = 1 << 20


@pytest.mark.parametrize("opts", [
    "cluster_size=512", "cluster_size=4096", "cluster_size=65536", "cluster_size=2M",
    "compat=0.10", "refcount_bits=1", "refcount_bits=8", "refcount_bits=64",
    "cluster_size=512,refcount_bits=64",
])
def test_create_passes_qemu_check(img, tmp_path, opts):
    img.run("create", "-q", "-f", "qcow2", "-o", opts, "a.qcow2", "3G")
    qemu_img("check", tmp_path / "a.qcow2")
    info = json.loads(qemu_img("info", "--output", "json", tmp_path / "a.qcow2").stdout)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 3 << 30
    if "compat=0.10" in opts:
        assert info["format-specific"]["data"]["compat"] == "0.10"


@pytest.mark.parametrize("opts", ["cluster_size=65536", "cluster_size=512", "compat=0.10",
                                  "cluster_size=2M"])
@pytest.mark.parametrize("compress", [False, True])
def test_convert_raw_to_qcow2(img, tmp_path, opts, compress):
    random_raw(tmp_path / "src.raw", 6 * MiB + 12345, seed=1, zero_ranges=[(MiB, 2 * MiB)])
    args = ["convert", "-O", "qcow2", "-o", opts]
    if compress:
        args.append("-c")
    img.run(*args, "src.raw", "dst.qcow2")
    qemu_img("check", tmp_path / "dst.qcow2")
    r = qemu_img("compare", "-f", "raw", "-F", "qcow2", tmp_path / "src.raw",
                 tmp_path / "dst.qcow2")
    assert "identical" in r.stdout
    if compress:
        chk = json.loads(qemu_img("check", "--output", "json", tmp_path / "dst.qcow2").stdout)
        assert chk.get("compressed-clusters", 0) > 0


def test_convert_with_backing_writes_only_the_differences(img, tmp_path):
    """-B: the overlay holds what differs from its new backing file, and reads as the source.
    The source changes some of the base's clusters (a run of several, one alone, some zeroed),
    and is longer than the base (the tail is in the overlay only where it is not zero)."""
    random_raw(tmp_path / "base.raw", 4 * MiB, seed=3)
    qemu_img("convert", "-O", "qcow2", tmp_path / "base.raw", tmp_path / "base.qcow2")
    data = bytearray((tmp_path / "base.raw").read_bytes())
    data[MiB:MiB + 5 * 65536] = bytes(range(256)) * (5 * 65536 // 256)  # a run of 5 clusters
    data[3 * MiB + 65536:3 * MiB + 65536 + 100] = b"x" * 100            # one cluster
    data[2 * MiB:2 * MiB + 2 * 65536] = bytes(2 * 65536)                 # zeroed in the source
    tail = bytearray(2 * MiB)
    tail[MiB:MiB + 65536] = b"t" * 65536                                 # past the base's end
    (tmp_path / "src.raw").write_bytes(bytes(data) + bytes(tail))
    img.run("convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", "src.raw", "ov.qcow2")
    qemu_img("check", tmp_path / "ov.qcow2")
    r = qemu_img("compare", "-f", "raw", "-F", "qcow2", tmp_path / "src.raw",
                 tmp_path / "ov.qcow2")
    assert "identical" in r.stdout
    info = json.loads(qemu_img("info", "--output", "json", tmp_path / "ov.qcow2").stdout)
    assert info["backing-filename"] == "base.qcow2"
    m = json.loads(qemu_img("map", "--output", "json", tmp_path / "ov.qcow2").stdout)
    in_overlay = sorted((e["start"], e["length"]) for e in m
                        if e["depth"] == 0 and e["data"])
    assert in_overlay[0] == (MiB, 5 * 65536)
    assert (3 * MiB + 65536, 65536) in in_overlay
    assert (4 * MiB + MiB, 65536) in in_overlay
    # The two zeroed clusters must be in the overlay as well (or the base's data would show,
    # which compare rules out); nothing else is.
    assert sum(n for _, n in in_overlay) == 9 * 65536, m


def _qemu_made(tmp_path, kind):
    src = tmp_path / "src.raw"
    random_raw(src, 5 * MiB, seed=2, zero_ranges=[(3 * MiB, MiB)])
    out = tmp_path / "q.qcow2"
    if kind.startswith("opts:"):
        qemu_img("convert", "-O", "qcow2", "-o", kind[5:], src, out)
    elif kind.startswith("compressed:"):
        qemu_img("convert", "-c", "-O", "qcow2", "-o", kind[11:], src, out)
    elif kind == "zero-clusters":
        qemu_img("convert", "-O", "qcow2", src, out)
        qemu_io(out, "write -z 0 192k", "write -z -u 1M 1M", "write -P 0x5a 4000 1000")
    elif kind == "snapshots":
        qemu_img("convert", "-O", "qcow2", src, out)
        qemu_img("snapshot", "-c", "one", out)
        qemu_io(out, "write -P 0x11 0 1M")
        qemu_img("snapshot", "-c", "two", out)
        qemu_io(out, "write -P 0x22 512k 1M", "discard 4M 64k")
    elif kind == "chain3":
        base, mid = tmp_path / "base.qcow2", tmp_path / "mid.qcow2"
        qemu_img("convert", "-O", "qcow2", src, base)
        qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid)
        qemu_io(mid, "write -P 0x33 100k 300k", "write -z 2M 64k")
        qemu_img("create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", out, "6M")
        qemu_io(out, "write -P 0x44 200k 64k", "write -P 0x45 5500k 100k")
    elif kind == "raw-backing":
        qemu_img("create", "-f", "qcow2", "-b", "src.raw", "-F", "raw", out)
        qemu_io(out, "write -P 0x66 1M 7k")
    return out


@pytest.mark.parametrize("kind", [
    "opts:compat=0.10", "opts:compat=1.1", "opts:cluster_size=512", "opts:cluster_size=4096",
    "opts:cluster_size=2M", "opts:refcount_bits=1", "opts:refcount_bits=64",
    "compressed:compat=1.1", "compressed:compat=0.10", "compressed:cluster_size=4096",
    "compressed:compression_type=zstd", "zero-clusters", "snapshots", "chain3", "raw-backing",
])
def test_qemu_images_read_back(img, tmp_path, kind):
    image = _qemu_made(tmp_path, kind)
    qemu_img("convert", "-O", "raw", image, tmp_path / "expect.raw")
    img.run("convert", "-O", "raw", image.name, "got.raw")
    assert (tmp_path / "got.raw").read_bytes() == (tmp_path / "expect.raw").read_bytes()


def test_info_matches_qemu(img, tmp_path):
    image = _qemu_made(tmp_path, "snapshots")
    ours = json.loads(img.run("info", "--output", "json", image.name).stdout)
    theirs = json.loads(qemu_img("info", "--output", "json", image).stdout)
    for key in ("virtual-size", "cluster-size", "format", "dirty-flag"):
        assert ours[key] == theirs[key], key
    assert ours["format-specific"]["data"] == theirs["format-specific"]["data"]
    assert [s["name"] for s in ours["snapshots"]] == ["one", "two"]
    human = img.run("info", image.name).stdout
    assert "Snapshot list:" in human and "file format: qcow2" in human


def test_info_backing_chain(img, tmp_path):
    image = _qemu_made(tmp_path, "chain3")
    chain = json.loads(img.run("info", "--output", "json", "--backing-chain", image.name).stdout)
    assert [c["filename"].split("/")[-1] for c in chain] == ["q.qcow2", "mid.qcow2", "base.qcow2"]
    assert chain[0]["backing-filename"] == "mid.qcow2"
    assert chain[0]["backing-filename-format"] == "qcow2"


def test_map_matches_qemu(img, tmp_path):
    image = _qemu_made(tmp_path, "chain3")
    ours = json.loads(img.run("map", "--output", "json", image.name).stdout)
    theirs = json.loads(qemu_img("map", "--output", "json", image.name, cwd=tmp_path).stdout)
    assert ours == theirs


def test_create_with_backing_and_overlay_reads(img, tmp_path):
    random_raw(tmp_path / "base.raw", 4 * MiB, seed=3)
    img.run("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "ov.qcow2")
    info = json.loads(qemu_img("info", "--output", "json", tmp_path / "ov.qcow2").stdout)
    assert info["backing-filename"] == "base.raw"
    assert info["backing-filename-format"] == "raw"
    assert info["virtual-size"] == 4 * MiB
    qemu_io(tmp_path / "ov.qcow2", "write -P 0x77 1000 70000")
    qemu_img("check", tmp_path / "ov.qcow2")
    qemu_img("convert", "-O", "raw", tmp_path / "ov.qcow2", tmp_path / "expect.raw")
    img.run("convert", "-O", "raw", "ov.qcow2", "got.raw")
    assert (tmp_path / "got.raw").read_bytes() == (tmp_path / "expect.raw").read_bytes()


def test_commit(img, tmp_path):
    random_raw(tmp_path / "src.raw", 4 * MiB, seed=4)
    qemu_img("convert", "-O", "qcow2", tmp_path / "src.raw", tmp_path / "base.qcow2")
    img.run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2")
    qemu_io(tmp_path / "top.qcow2", "write -P 0x99 100k 300k", "write -z 3M 64k")
    qemu_img("convert", "-O", "raw", tmp_path / "top.qcow2", tmp_path / "expect.raw")
    r = img.run("commit", "top.qcow2")
    assert "Image committed." in r.stdout
    for f in ("base.qcow2", "top.qcow2"):
        qemu_img("check", tmp_path / f)
        assert "identical" in qemu_img("compare", tmp_path / f, tmp_path / "expect.raw").stdout
    top_map = json.loads(qemu_img("map", "--output", "json", tmp_path / "top.qcow2").stdout)
    assert all(e["depth"] == 1 for e in top_map), "commit leaves the overlay empty"


def test_rebase_safe_unsafe_and_flatten(img, tmp_path):
    image = _qemu_made(tmp_path, "chain3")
    qemu_img("convert", "-O", "raw", image, tmp_path / "expect.raw")
    img.run("rebase", "-b", "base.qcow2", "-F", "qcow2", image.name)
    info = json.loads(qemu_img("info", "--output", "json", image).stdout)
    assert info["backing-filename"] == "base.qcow2"
    qemu_img("check", image)
    assert "identical" in qemu_img("compare", image, tmp_path / "expect.raw").stdout
    img.run("rebase", "-b", "", image.name)
    assert "backing-filename" not in json.loads(
        qemu_img("info", "--output", "json", image).stdout)
    assert "identical" in qemu_img("compare", image, tmp_path / "expect.raw").stdout
    img.run("rebase", "-u", "-b", "mid.qcow2", "-F", "qcow2", image.name)
    assert json.loads(qemu_img("info", "--output", "json", image).stdout)[
        "backing-filename"] == "mid.qcow2"


def test_resize_grow_and_shrink(img, tmp_path):
    img.run("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "r.qcow2", "1M")
    qemu_io(tmp_path / "r.qcow2", "write -P 3 0 1M")
    assert "Image resized." in img.run("resize", "r.qcow2", "+3G").stdout
    qemu_img("check", tmp_path / "r.qcow2")
    assert json.loads(qemu_img("info", "--output", "json", tmp_path / "r.qcow2").stdout)[
        "virtual-size"] == (3 << 30) + MiB
    qemu_io(tmp_path / "r.qcow2", "read -P 3 0 1M", "read -P 0 1M 1M")
    r = img.run("resize", "r.qcow2", "64k", check=False)
    assert r.returncode == 1 and "--shrink" in r.stderr
    img.run("resize", "--shrink", "r.qcow2", "100000")
    img.run("resize", "r.qcow2", "1M")
    qemu_img("check", tmp_path / "r.qcow2")
    qemu_io(tmp_path / "r.qcow2", "read -P 3 0 99840", "read -P 0 100352 948224")
    img.run("create", "-q", "-f", "raw", "r.raw", "1M")
    img.run("resize", "-f", "raw", "r.raw", "2M")
    assert (tmp_path / "r.raw").stat().st_size == 2 * MiB


def _refblock(path):
    data = path.read_bytes()
    rt = struct.unpack(">Q", data[48:56])[0]
    rb = struct.unpack(">Q", data[rt:rt + 8])[0]
    return data, rb


def test_check_exit_codes_and_repair(img, tmp_path):
    random_raw(tmp_path / "src.raw", MiB, seed=5)
    img.run("convert", "-O", "qcow2", "src.raw", "c.qcow2")
    p = tmp_path / "c.qcow2"
    assert img.run("check", "c.qcow2").returncode == 0
    data, rb = _refblock(p)
    # A leak: one more cluster at the end of the file, with refcount 1 but no user.
    b = bytearray(data)
    nclusters = len(b) // 65536
    b += bytes(65536)
    b[rb + 2 * nclusters:rb + 2 * nclusters + 2] = b"\x00\x01"
    p.write_bytes(bytes(b))
    r = img.run("check", "c.qcow2", check=False)
    assert r.returncode == 3 and "1 leaked clusters were found" in r.stdout
    assert qemu_img("check", p, check=False).returncode == 3
    r = img.run("check", "-r", "leaks", "c.qcow2", check=False)
    assert r.returncode == 0 and "No errors were found" in r.stdout
    qemu_img("check", p)
    # A corruption: the L1 table's cluster claims refcount 0.
    l1 = struct.unpack(">Q", p.read_bytes()[40:48])[0]
    b = bytearray(p.read_bytes())
    idx = l1 // 65536
    b[rb + 2 * idx:rb + 2 * idx + 2] = b"\x00\x00"
    p.write_bytes(bytes(b))
    r = img.run("check", "c.qcow2", check=False)
    assert r.returncode == 2 and "errors were found" in r.stdout
    assert qemu_img("check", p, check=False).returncode == 2
    img.run("check", "-r", "all", "c.qcow2")
    qemu_img("check", p)
    assert "identical" in qemu_img("compare", p, tmp_path / "src.raw").stdout
    img.run("create", "-q", "-f", "raw", "x.raw", "1M")
    assert img.run("check", "-f", "raw", "x.raw", check=False).returncode == 63
    js = json.loads(img.run("check", "--output", "json", "c.qcow2").stdout)
    assert js["format"] == "qcow2" and js["check-errors"] == 0


def test_probe_never_takes_raw_for_qcow2(img, tmp_path):
    # A raw image whose content is not a qcow2 header stays raw; one that starts with the magic
    # is only opened as qcow2 when probing (no format given).
    random_raw(tmp_path / "d.raw", MiB, seed=6)
    info = json.loads(img.run("info", "--output", "json", "d.raw").stdout)
    assert info["format"] == "raw"
    img.run("create", "-q", "-f", "qcow2", "q.qcow2", "1M")
    info = json.loads(img.run("info", "--output", "json", "-f", "raw", "q.qcow2").stdout)
    assert info["format"] == "raw"


def test_usage_errors_exit_2(img):
    for args in (["frobnicate"], ["create", "-f", "qcow2", "x.qcow2"], ["info"],
                 ["check", "-r", "bogus", "x"], ["create", "x", "12Q"],
                 ["info", "--output", "xml", "x"], ["check", "--output", "xml", "x"],
                 ["map", "--output", "xml", "x"]):
        r = img.run(*args, check=False)
        assert r.returncode == 2, args
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_dirty_lazy_refcounts_image_is_repaired_on_write_open(img, tmp_path):
    import subprocess
    p = tmp_path / "lazy.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", "lazy_refcounts=on", p, "4M")
    # qemu-io killed mid-session leaves the dirty bit and stale refcounts behind.
    subprocess.run(["qemu-io", "-c", "write -P 4 0 1M", "-c", "sigraise 9", str(p)],
                   capture_output=True)
    assert json.loads(img.run("info", "--output", "json", "lazy.qcow2").stdout)["dirty-flag"]
    import shutil
    shutil.copy(p, tmp_path / "lazy2.qcow2")
    img.run("resize", "lazy.qcow2", "+1M")
    assert not json.loads(img.run("info", "--output", "json", "lazy.qcow2").stdout)["dirty-flag"]
    qemu_img("check", p)
    qemu_io(p, "read -P 4 0 1M")
    # check -r all rebuilds the refcounts of the dirty copy and clears the bit.
    assert img.run("check", "lazy2.qcow2", check=False).returncode == 2
    img.run("check", "-r", "all", "lazy2.qcow2")
    assert not json.loads(img.run("info", "--output", "json", "lazy2.qcow2").stdout)[
        "dirty-flag"]
    qemu_img("check", tmp_path / "lazy2.qcow2")


@pytest.mark.parametrize("cs", ["16k", "64k", "2M"])
def test_extended_l2_read_only(img, tmp_path, cs):
    qemu_img("create", "-f", "qcow2", tmp_path / "b.qcow2", "8M")
    qemu_io(tmp_path / "b.qcow2", "write -P 9 0 8M")
    x = tmp_path / "x.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"extended_l2=on,cluster_size={cs}", "-b",
             "b.qcow2", "-F", "qcow2", x)
    qemu_io(x, "write -P 1 4k 4k", "write -P 2 100k 3k", "write -z 300k 64k",
            "write -P 3 1M 1M", "write -z 3M 7k")
    qemu_img("convert", "-O", "raw", x, tmp_path / "expect.raw")
    img.run("convert", "-O", "raw", "x.qcow2", "got.raw")
    assert (tmp_path / "got.raw").read_bytes() == (tmp_path / "expect.raw").read_bytes()
    assert img.run("check", "x.qcow2").returncode == 0
    r = img.run("resize", "x.qcow2", "+1M", check=False)
    assert r.returncode == 1 and "extended L2" in r.stderr


def test_convert_progress(img, tmp_path):
    random_raw(tmp_path / "s.raw", 3 * MiB, seed=21)
    r = img.run("convert", "-p", "-O", "qcow2", "s.raw", "d.qcow2")
    assert "(100.00/100%)" in r.stdout
    assert "identical" in qemu_img("compare", tmp_path / "s.raw", tmp_path / "d.qcow2").stdout


def test_map_raw_and_raw_backing_match_qemu(img, tmp_path):
    with open(tmp_path / "sp.raw", "wb") as f:
        f.truncate(MiB)
        f.seek(200000)
        f.write(b"abc")
    ours = json.loads(img.run("map", "--output", "json", "-f", "raw", "sp.raw").stdout)
    theirs = json.loads(qemu_img("map", "--output", "json", "-f", "raw", "sp.raw",
                                 cwd=tmp_path).stdout)
    assert ours == theirs
    image = _qemu_made(tmp_path, "raw-backing")
    ours = json.loads(img.run("map", "--output", "json", image.name).stdout)
    theirs = json.loads(qemu_img("map", "--output", "json", image.name, cwd=tmp_path).stdout)
    assert ours == theirs
