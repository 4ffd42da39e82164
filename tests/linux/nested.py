"""Nesting Vireo inside a Linux guest of linuxvm.py: an extra initramfs archive that carries the
host's vireo binary (with every shared library it loads and the dynamic loader, at the paths
`ldd` names), test-guest ELFs, static tools and more of the guest kernel's modules, appended to
the test initramfs. The kernel unpacks concatenated archives in order, later files on top of
earlier ones, so the test initramfs is used as it is and stays the same for the other tests.

Used by test_vhost.py: the host has no /dev/vhost-net, the guest kernel has vhost_net.ko, so
the vhost-net backend is tested by running Vireo (the inner VMM) in a guest of Vireo.

In the guest:
  /nest/...                       the files given to build_initrd (vireo, guests, tools, scripts)
  /lib/..., /lib64/..., /usr/...  vireo's shared libraries and loader, where the host has them
  /lib/modules/<release>/...      the modules asked for, at their packaged paths; build_initrd
                                  returns their load order
"""

import gzip
import lzma
import os
import re
import subprocess
from pathlib import Path

import pytest

from linuxvm import assets

NEST = "nest"  # the guest's /nest


class Newc:
    """A writer of the cpio "newc" format the kernel's initramfs unpacker reads: per entry a
    110-byte header of "070701" and 13 eight-digit hex fields, the name with its NUL padded to a
    multiple of 4, then the data padded to a multiple of 4; "TRAILER!!!" ends the archive.
    Parent directories are written before their files (the unpacker creates none by itself)."""

    def __init__(self):
        self.parts = []
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b""):
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % f for f in fields) + name_b
        self.parts += [head, b"\0" * (-len(head) % 4), data, b"\0" * (-len(data) % 4)]

    def mkdirs(self, path):
        """Directory entries for `path` and its parents (an existing directory is kept: the
        unpacker only sets its mode again)."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, 0o040755)

    def file(self, path, data, mode=0o644):
        path = path.strip("/")
        if "/" in path:
            self.mkdirs(path.rsplit("/", 1)[0])
        self._entry(path, 0o100000 | mode, data)

    def bytes(self):
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def shared_libs(binary):
    """{path in the guest: host file} for every library `binary` loads and its loader, from
    ldd on the host (the guest gets the very files the host runs it with)."""
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"ldd {binary} failed:\n{proc.stdout}{proc.stderr}", pytrace=False)
    libs = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            pytest.fail(f"ldd {binary}: {line}", pytrace=False)
        m = re.match(r"\S+ => (/\S+) \(0x", line) or re.match(r"(/\S+) \(0x", line)
        if m:  # linux-vdso.so.1 has no file
            libs[m.group(1)] = os.path.realpath(m.group(1))
    if not any("ld-linux" in p for p in libs):
        pytest.fail(f"ldd {binary} names no dynamic loader:\n{proc.stdout}", pytrace=False)
    return libs


def module_order(names):
    """The guest paths (under /lib/modules/<release>) and host files of `names` and of the
    modules they depend on, each after its dependencies: what insmod must load in order. The
    dependencies come from each module's own .modinfo ("depends=a,b"), as in
    scripts/guest-assets (the packaged kernel ships no modules.dep)."""
    a = assets()
    moddir = a.vmlinuz.parent / "kernel" / "lib" / "modules" / a.release
    found = {}
    for p in sorted((moddir / "kernel").rglob("*.ko*")):
        if p.name.endswith((".ko", ".ko.xz")):
            found[p.name.split(".ko")[0].replace("-", "_")] = p
    builtin = set()
    if (moddir / "modules.builtin").is_file():
        for rel in (moddir / "modules.builtin").read_text().split():
            builtin.add(rel.rsplit("/", 1)[-1].split(".ko")[0].replace("-", "_"))
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in found:
            pytest.fail(f"kernel {a.release} has no module {name} under {moddir}", pytrace=False)
        data = read_module(found[name])
        m = re.search(rb"\0depends=([^\0]*)\0", b"\0" + data)
        for dep in (m.group(1).decode().split(",") if m else []):
            if dep:
                visit(dep)
        order.append(found[name])

    for n in names:
        visit(n)
    # .ko.xz goes in unpacked (busybox insmod may lack xz): the guest path ends in .ko.
    return [(f"/lib/modules/{a.release}/" + str(p.relative_to(moddir)).removesuffix(".xz"), p)
            for p in order]


def read_module(path):
    data = Path(path).read_bytes()
    return lzma.decompress(data) if str(path).endswith(".xz") else data


def build_initrd(out, files, modules=(), vireo=None):
    """Writes `out`: the test initramfs followed by one gzipped newc archive holding `files`
    ({guest path: host path or bytes}; executables keep their mode), vireo's libraries when
    `vireo` (a host path, also put at /nest/vireo) is given, and `modules` with their
    dependencies. Returns the guest paths of the modules in load order."""
    arc = Newc()
    if vireo is not None:
        files = dict(files, **{f"/{NEST}/vireo": vireo})
        for guest_path, host_file in shared_libs(vireo).items():
            arc.file(guest_path, Path(host_file).read_bytes(), 0o755)
    for guest_path, src in files.items():
        if isinstance(src, bytes):
            arc.file(guest_path, src, 0o755)
            continue
        src = Path(src)
        if not src.is_file():
            pytest.fail(f"{src} is missing (run make)", pytrace=False)
        arc.file(guest_path, src.read_bytes(), 0o755 if os.access(src, os.X_OK) else 0o644)
    mods = module_order(modules)
    for guest_path, host_file in mods:
        arc.file(guest_path, read_module(host_file))
    base = assets().initramfs.read_bytes()
    # Level 1: the guest unpacks this on an emulated CPU, where a smaller file saves little.
    out.write_bytes(base + gzip.compress(arc.bytes(), compresslevel=1, mtime=0))
    return [g for g, _ in mods]


def with_initrd(path):
    """An argv_hook for LinuxGuest: the VMM's initrd option names `path` instead."""
    def hook(argv):
        argv = list(argv)
        for opt in ("--initrd", "-initrd"):  # Vireo's, QEMU's
            if opt in argv:
                argv[argv.index(opt) + 1] = str(path)
                return argv
        raise AssertionError(f"no initrd option in {argv}")
    return hook
