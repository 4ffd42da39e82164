"""virtio-pci devices from inside the test guests: feature negotiation, queues, MSI-X, reset
(virtio_rng), and a virtio-blk round trip against a host file the test checks (virtio_blk).
Each runs on every accelerator in VIREO_TEST_ACCELS."""

import os
import secrets
import shutil
import subprocess
import sys

import pytest

from guestrun import VMM, GuestRun, check_accel, debug_exit_status, guest_argv

PASS = debug_exit_status(0)
FAIL = debug_exit_status(1)
SECTOR = 512


def disk_args(path, serial=None, readonly=False, fmt=None):
    """The VMM's options for one virtio-blk disk."""
    if VMM == "vireo":
        spec = str(path)
        if readonly:
            spec += ",readonly=on"
        if serial:
            spec += f",serial={serial}"
        if fmt:
            spec += f",format={fmt}"
        return ["--disk", spec]
    drive = f"file={path},if=none,id=d{abs(hash(str(path))) % 1000},format={fmt or 'raw'}"
    if readonly:
        drive += ",readonly=on"
    dev = f"virtio-blk-pci,drive={drive.split('id=')[1].split(',')[0]},disable-legacy=on"
    if serial:
        dev += f",serial={serial}"
    return ["-drive", drive, "-device", dev]


def rng_args():
    return [] if VMM == "vireo" else ["-device", "virtio-rng-pci,disable-legacy=on"]


@pytest.fixture
def run_with(accel):
    """run_with(name, extra_argv, cmdline="", cpus=1) -> finished GuestRun."""
    check_accel(accel)
    runs = []

    def start(name, extra, cmdline="", cpus=1):
        run = GuestRun(guest_argv(name, accel, cmdline, cpus, "128M", False) + extra, False)
        runs.append(run)
        return run.wait()

    yield start
    for run in runs:
        run.kill()


def make_disk(path, size=1 << 20):
    with open(path, "wb") as f:
        f.write(b"host wrote sector zero".ljust(SECTOR, b"\0"))
        f.write(b"\0" * SECTOR)
        f.write(b"\xaa" * SECTOR)
        f.truncate(size)


def read_sector(path, n):
    with open(path, "rb") as f:
        f.seek(n * SECTOR)
        return f.read(SECTOR)


def test_virtio_rng(run_with):
    strict = VMM == "vireo"
    run = run_with("virtio_rng", rng_args(), "strict_version1" if strict else "")
    if strict:
        assert "FEATURES_OK refused without VERSION_1" in run.stdout, run.describe()
    run.expect(PASS, "direct buffers filled",
               "indirect buffers filled", "delivered on unmask", "PASS: virtio_rng")
    if strict:
        assert "malformed chain -> NEEDS_RESET, config interrupt" in run.stdout, run.describe()
        assert "works again after reset" in run.stdout, run.describe()
        # The hostile chain was refused with one warning, and the VMM kept running.
        assert run.stderr.count("buffer outside RAM") == 1, run.describe()


def test_virtio_after_machine_reset(accel):
    """A machine reset rebuilds the accelerator's VM: the device must come back reset, and its
    interrupt routes and notifications must work again once the guest sets it up anew."""
    check_accel(accel)
    run = GuestRun(guest_argv("virtio_rng", accel, "reboot_test", 1, "128M", True) + rng_args(),
                   False)
    try:
        run.wait()
        run.expect(PASS, "first boot served a request", "works after a machine reset",
                   "PASS: virtio_rng")
    finally:
        run.kill()


@pytest.mark.skipif(VMM != "vireo", reason="a Vireo option")
def test_virtio_rng_off(run_with):
    """--rng off really removes the device: the guest then cannot find it."""
    run = run_with("virtio_rng", ["--rng", "off"])
    run.expect(FAIL, "FAIL: virtio_rng")


def test_virtio_blk_round_trip(run_with, tmp_path):
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    token = secrets.token_hex(6)
    serial = "VIREO-" + secrets.token_hex(3)
    run = run_with("virtio_blk", disk_args(disk, serial=serial),
                   f"blk_serial={serial} blk_token={token} blk_sectors={(1 << 20) // SECTOR}")
    run.expect(PASS, f"serial '{serial}'", "sector 0: 'host wrote sector zero'",
               "sector 1 written, flushed and read back", "write-zeroes cleared sector 2",
               "read past the end refused", "PASS: virtio_blk")
    assert read_sector(disk, 1).rstrip(b"\0") == f"guest wrote {token}".encode()
    assert read_sector(disk, 2) == b"\0" * SECTOR
    assert read_sector(disk, 0).startswith(b"host wrote sector zero")


def test_virtio_blk_read_only(run_with, tmp_path):
    disk = tmp_path / "ro.raw"
    make_disk(disk)
    before = disk.read_bytes()
    run = run_with("virtio_blk", disk_args(disk, readonly=True), "blk_readonly=1")
    run.expect(PASS, "write refused on a read-only disk", "PASS: virtio_blk")
    assert disk.read_bytes() == before


@pytest.mark.skipif(VMM != "vireo", reason="checks Vireo's queue count")
def test_virtio_blk_queue_per_cpu(run_with, tmp_path):
    disk = tmp_path / "mq.raw"
    make_disk(disk)
    run = run_with("virtio_blk", disk_args(disk), "blk_token=mq", cpus=2)
    run.expect(PASS, "2 queues", "PASS: virtio_blk")
    assert read_sector(disk, 1).rstrip(b"\0") == b"guest wrote mq"


@pytest.mark.skipif(VMM != "vireo", reason="Vireo's --disk")
def test_virtio_blk_two_disks_serials(run_with, tmp_path):
    """Two disks, each with its serial, in the order given; the guest uses the second."""
    a, b = tmp_path / "a.raw", tmp_path / "b.raw"
    make_disk(a)
    make_disk(b)
    run = run_with("virtio_blk", disk_args(a, serial="DISK-A") + disk_args(b, serial="DISK-B"),
                   "blk_nth=1 blk_serial=DISK-B blk_token=second")
    run.expect(PASS, "serial 'DISK-B'", "PASS: virtio_blk")
    assert read_sector(b, 1).rstrip(b"\0") == b"guest wrote second"
    assert read_sector(a, 1) == b"\0" * SECTOR


@pytest.mark.skipif(VMM != "vireo", reason="Vireo's --disk")
def test_virtio_blk_64g_sparse(run_with, tmp_path):
    """A 64 GiB sparse raw file is a 64 GiB disk in the guest, and stays sparse."""
    disk = tmp_path / "big.raw"
    make_disk(disk, size=64 << 30)
    run = run_with("virtio_blk", disk_args(disk), f"blk_sectors={(64 << 30) // SECTOR} "
                   "blk_token=big")
    run.expect(PASS, f"{(64 << 30) // SECTOR} sectors", "PASS: virtio_blk")
    assert os.stat(disk).st_blocks * 512 < (16 << 20)


@pytest.mark.skipif(VMM != "vireo", reason="Vireo's --disk")
def test_virtio_blk_discard_frees_blocks(run_with, tmp_path):
    """DISCARD punches a hole in a raw file: the host gets the blocks back."""
    disk = tmp_path / "trim.raw"
    make_disk(disk, size=4 << 20)
    with open(disk, "r+b") as f:
        f.seek(8 * SECTOR)
        f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())
    before = os.stat(disk).st_blocks
    run = run_with("virtio_blk", disk_args(disk), "blk_discard=1 blk_token=trim")
    run.expect(PASS, "discarded sectors 8..2055", "PASS: virtio_blk")
    after = os.stat(disk).st_blocks
    assert before - after >= (1 << 20) // 512 - 16, (before, after)


@pytest.mark.skipif(VMM != "vireo", reason="a Vireo option")
def test_virtio_blk_missing_file(run_with, tmp_path):
    run = run_with("virtio_blk", disk_args(tmp_path / "nope.raw"))
    assert run.status == 2, run.describe()  # a usage error, before the guest starts
    assert "nope.raw" in run.stderr, run.describe()


# The host side of the net test, run inside the test's network namespace: catch the guest's
# frame on the tap (EtherType 0x88b5), print it, and answer it until killed.
TAP_PEER = r"""
import socket, sys, time
ifname, token = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
s.bind((ifname, 0))
s.settimeout(60)
print("ready", flush=True)
frame = s.recv(2048)
src = frame[6:12]
print("caught", frame[14:14 + 32].rstrip(b"\0").decode(), src.hex(":"), flush=True)
payload = f"host-reply {token}".encode().ljust(46, b"\0")
reply = src + bytes.fromhex("020000000001") + b"\x88\xb5" + payload
for _ in range(300):
    s.send(reply)
    time.sleep(0.1)
"""


@pytest.fixture
def netns(accel):
    """A network namespace holding an up tap device; yields (namespace, tap name)."""
    if VMM != "vireo":
        pytest.skip("the tap test drives Vireo's --net")
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("the tap test needs root and iproute2 (ip netns)", pytrace=False)
    ns = "vireo-t" + secrets.token_hex(4)
    tap = "vtap0"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev", tap, "mode",
                        "tap", "vnet_hdr"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", tap, "up"], check=True)
        yield ns, tap
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_virtio_net_tap(accel, netns):
    check_accel(accel)
    ns, tap = netns
    token = secrets.token_hex(6)
    mac = "52:54:00:12:34:56"
    peer = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", TAP_PEER, tap,
                             token], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = None
    try:
        # The guest sends its one frame early (on the software CPU within milliseconds): the
        # peer must already be listening, or the frame is lost and no reply ever comes.
        assert peer.stdout.readline().strip() == "ready", peer.stderr.read()
        # Two rounds: the second after a device reset, on fresh rings.
        argv = guest_argv("virtio_net", accel, f"net_token={token} net_mac={mac} net_rounds=2",
                          1, "128M", False) + ["--net", f"tap={tap},mac={mac}"]
        run = GuestRun(["ip", "netns", "exec", ns] + argv, False).wait()
        run.expect(PASS, f"mac {mac}, status 0x1", "sent frame",
                   f"received 'host-reply {token}'",
                   f"received 'host-reply {token}' after a reset", "PASS: virtio_net")
    finally:
        peer.kill()
        out, err = peer.communicate()
        if run:
            run.kill()
    assert f"caught vireo-net {token} {mac}" in out, (out, err)


def test_virtio_net_vhost_on(accel, netns):
    """vhost=on: where the host has /dev/vhost-net the frame goes through it; where it does not
    (this CI host), the run stops before the guest with one line naming what is missing and the
    usage exit status. tests/linux/test_vhost.py runs the first case inside a Linux guest."""
    check_accel(accel)
    ns, tap = netns
    token = secrets.token_hex(6)
    argv = guest_argv("virtio_net", accel, f"net_token={token} net_rounds=2", 1, "128M", False)
    argv += ["--net", f"tap={tap},vhost=on"]
    if os.path.exists("/dev/vhost-net"):
        peer = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", TAP_PEER, tap,
                                 token], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        run = None
        try:
            assert peer.stdout.readline().strip() == "ready", peer.stderr.read()
            run = GuestRun(["ip", "netns", "exec", ns] + argv, False).wait()
            run.expect(PASS, "sent frame", f"received 'host-reply {token}' after a reset")
        finally:
            peer.kill()
            peer.communicate()
            if run:
                run.kill()
        return
    run = GuestRun(["ip", "netns", "exec", ns] + argv, False).wait()
    assert run.status == 2, run.describe()
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, run.describe()
    assert f"--net tap={tap},vhost=on: vhost-net: /dev/vhost-net: " in lines[0], run.describe()
    assert "virtio_net:" not in run.stdout, run.describe()  # the guest never started


@pytest.mark.skipif(VMM != "vireo", reason="Vireo's MAC derivation")
def test_virtio_net_default_mac_is_stable(accel, netns):
    """Without mac=, the address comes from the VM name: the same on every run, and a
    locally administered unicast one."""
    check_accel(accel)
    ns, tap = netns
    macs = []
    for _ in range(2):
        argv = guest_argv("virtio_net", accel, "net_token=x", 1, "128M", False)
        argv += ["--net", f"tap={tap}", "--name", "stable-mac-vm"]
        run = GuestRun(["ip", "netns", "exec", ns] + argv, False)
        _, line = run.wait_for_line("virtio_net: mac ")
        run.kill()
        macs.append(line.split("mac ")[1].split(",")[0])
    assert macs[0] == macs[1]
    first = int(macs[0].split(":")[0], 16)
    assert first & 2 and not first & 1, macs


@pytest.mark.skipif(VMM != "vireo", reason="Vireo's --console virtio")
def test_virtio_console(accel):
    """--console virtio: hvc0 output reaches stdout, and typed input reaches hvc0."""
    check_accel(accel)
    token = secrets.token_hex(6)
    argv = guest_argv("virtio_console", accel, f"con_token={token}", 1, "128M", False)
    argv = [a if a != "stdio" else "virtio" for a in argv]  # --console stdio -> virtio
    run = GuestRun(argv, True)
    try:
        run.wait_for_line("virtio_console: ready")
        text = f"typed {secrets.token_hex(4)}"
        run.send(text + "\n")
        run.wait()
        run.expect(PASS, f"hvc0 says {token}", f"hvc0 got: {text}", "PASS: virtio_console")
    finally:
        run.kill()
