"""Virtio devices for the Linux guests of linuxvm.py: one description of a guest's disks, NICs,
hvc0 and rng, turned into Vireo's options or the equivalent QEMU ones, plus a private network
namespace with a tap for the NICs. Used by test_virtio.py and bench/virtio.

QEMU mapping (the issue's peer configuration):
  --disk P[,readonly=on][,serial=S][,format=F][,cache=C]
                                     -drive if=none,file=P,format=F (raw),cache=none,
                                     aio=io_uring,discard=unmap[,readonly=on]
                                     -device virtio-blk-pci,serial=S
                                     (QEMU always gets cache=none, the issue's peer set-up;
                                     Vireo gets cache=C when the Disk names one, else its default)
  --net tap=IF                       -netdev tap,ifname=IF,script=no,downscript=no
                                     -device virtio-net-pci
  --console virtio                   stdio multiplexed between the serial port and a virtconsole
                                     (QEMU gives input to the last front end: hvc0, as Vireo does)
  --rng on                           -device virtio-rng-pci
"""

import os
import subprocess

from linuxvm import VMM, LinuxGuest


class Disk:
    """A virtio disk; format None is raw for QEMU and probed by Vireo; cache None is Vireo's
    default (writeback), "none" is O_DIRECT."""

    def __init__(self, path, serial=None, readonly=False, format=None, cache=None):
        self.path, self.serial, self.readonly = str(path), serial, readonly
        self.format, self.cache = format, cache


def device_argv(argv, disks=(), taps=(), hvc=False, rng=True):
    """`argv` (from vmm_argv) with the devices added, for the configured VMM."""
    argv = list(argv)
    if VMM == "vireo":
        for d in disks:
            spec = d.path + (",readonly=on" if d.readonly else "")
            spec += f",serial={d.serial}" if d.serial else ""
            spec += f",format={d.format}" if d.format else ""
            spec += f",cache={d.cache}" if d.cache else ""
            argv += ["--disk", spec]
        for tap in taps:
            argv += ["--net", f"tap={tap}"]
        if hvc:
            i = argv.index("--console")
            argv[i + 1] = "virtio"
        argv += ["--rng", "on" if rng else "off"]
        return argv
    for i, d in enumerate(disks):
        drive = (f"if=none,id=disk{i},file={d.path},format={d.format or 'raw'},cache=none,"
                 "aio=io_uring,"
                 "discard=unmap" + (",readonly=on" if d.readonly else ""))
        dev = f"virtio-blk-pci,drive=disk{i},disable-legacy=on"
        dev += f",serial={d.serial}" if d.serial else ""
        argv += ["-drive", drive, "-device", dev]
    for i, tap in enumerate(taps):
        argv += ["-netdev", f"tap,id=net{i},ifname={tap},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev=net{i},disable-legacy=on,"
                 f"mac=52:54:00:12:34:{0x56 + i:02x}"]
    if hvc:
        i = argv.index("-serial")
        argv[i:i + 2] = ["-chardev", "stdio,id=con0,mux=on", "-serial", "chardev:con0",
                         "-device", "virtio-serial-pci,disable-legacy=on",
                         "-device", "virtconsole,chardev=con0"]
    if rng:
        argv += ["-device", "virtio-rng-pci,disable-legacy=on"]
    return argv


class NetNs:
    """A network namespace holding one tap with HOST_ADDR; the VMM runs inside it, so the guest
    reaches only that tap (no route out, no other host interface)."""

    HOST_ADDR = "10.77.0.1"
    GUEST_ADDR = "10.77.0.2"
    PREFIX = 24

    def __init__(self, tag="vt", tap="vtap0"):
        self.name = f"vireo-{tag}{os.getpid()}"
        self.tap = tap
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            for cmd in (["link", "set", "lo", "up"],
                        ["tuntap", "add", "dev", tap, "mode", "tap"],
                        ["addr", "add", f"{self.HOST_ADDR}/{self.PREFIX}", "dev", tap],
                        ["link", "set", tap, "up"]):
                subprocess.run(["ip", "-n", self.name] + cmd, check=True)
        except BaseException:
            self.close()
            raise

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class VirtioGuest(LinuxGuest):
    """A LinuxGuest whose VMM has the given virtio devices and runs inside `netns` (if any)."""

    def __init__(self, accel, cpus=1, memory="512M", cmdline="", disks=(), netns=None,
                 hvc=False, rng=True):
        def extend(argv):
            argv = device_argv(argv, disks, [netns.tap] if netns else (), hvc, rng)
            return (netns.prefix() if netns else []) + argv

        super().__init__(accel, cpus, memory, cmdline, argv_hook=extend)


# The host end of a TCP transfer, run inside the namespace: it listens, prints LISTENING, then
# either sends N pseudo-random bytes (seeded) or reads exactly N, and prints the SHA-256 and
# the seconds the transfer took from the first byte.
TCP_PEER = r"""
import hashlib, random, socket, sys, time
mode, port, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(1)
srv.settimeout(float(sys.argv[5]))
print("LISTENING", flush=True)
conn, _ = srv.accept()
conn.settimeout(float(sys.argv[5]))
h = hashlib.sha256()
if mode == "send":
    data = random.Random(seed).randbytes(n)
    h.update(data)
    t0 = time.monotonic()
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)  # the guest closing: everything arrived
    secs = time.monotonic() - t0
else:
    got, t0 = 0, None
    while got < n:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        t0 = t0 or time.monotonic()
        h.update(chunk)
        got += len(chunk)
    secs = time.monotonic() - (t0 or time.monotonic())
    n = got
conn.close()
print("DONE", n, h.hexdigest(), f"{secs:.6f}", flush=True)
"""


class TcpPeer:
    """Starts TCP_PEER in `netns`; ready when it listens; result() gives (bytes, sha256, secs)."""

    def __init__(self, netns, mode, port, nbytes, seed=1, timeout=600):
        self.proc = subprocess.Popen(
            netns.prefix() + ["/usr/bin/python3", "-c", TCP_PEER, mode, str(port), str(nbytes),
                              str(seed), str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "LISTENING":
            self.proc.kill()
            raise RuntimeError(f"TCP peer did not start: {line!r} {self.proc.stderr.read()}")

    def result(self, timeout=600):
        out, err = self.proc.communicate(timeout=timeout)
        words = out.split()
        if self.proc.returncode != 0 or len(words) != 4 or words[0] != "DONE":
            raise RuntimeError(f"TCP peer failed ({self.proc.returncode}): {out} {err}")
        return int(words[1]), words[2], float(words[3])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
