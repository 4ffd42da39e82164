"""Helpers for the disk image tests (kept out of conftest.py so that test modules can import
them whatever other conftest.py files pytest has loaded)."""
import subprocess
from pathlib import Path


class Img:
    def __init__(self, prefix, cwd):
        self.prefix = prefix
        self.cwd = cwd

    def run(self, *args, check=True):
        r = subprocess.run(self.prefix + [str(a) for a in args], cwd=self.cwd,
                           capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"vireo img {' '.join(map(str, args))} -> {r.returncode}\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r


def qemu_img(*args, cwd=None, check=True):
    r = subprocess.run(["qemu-img"] + [str(a) for a in args], cwd=cwd, capture_output=True,
                       text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"qemu-img {' '.join(map(str, args))} -> {r.returncode}\n"
                             f"{r.stdout}\n{r.stderr}")
    return r


def qemu_io(image, *cmds, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    r = subprocess.run(args + [str(image)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "error" not in r.stdout.lower(), r.stdout + r.stderr
    return r


def random_raw(path, size, seed, zero_ranges=()):
    """A raw file of size bytes: seeded random data with some zero and repetitive stretches."""
    import random
    rnd = random.Random(seed)
    data = bytearray(rnd.randbytes(size))
    for start, length in zero_ranges:
        data[start:start + length] = bytes(length)
    # repetitive (compressible) quarter
    q = size // 4
    data[q:2 * q] = (b"vireo-" * (q // 6 + 1))[:q]
    Path(path).write_bytes(bytes(data))
    return bytes(data)
