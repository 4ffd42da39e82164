"""Debian's stock virtio drivers on Vireo's virtio-pci devices (issue 5's Linux-level checks):
ext4 on a virtio disk checked from the host after poweroff, a read-only disk, two disks and their
serials, fstrim freeing host blocks, a 64 GiB sparse disk, an address, ping and 100 MB each way
over TCP through a tap in a private network namespace, hvc0 both ways, /dev/hwrng.

Boots: one shared guest per accelerator (disks, NIC, rng; a shell on ttyS0) for most checks, and
one guest of its own for the poweroff / hvc0 test (hvc0 takes the VMM's stdin). The shared
guest's disks use the default cache mode (writeback, the host page cache); the poweroff guest's
raw ext4 disk and its qcow2 disk use cache=none (O_DIRECT), so data round-trips through both.
Device options are mapped to QEMU's in virtiovm.py for VIREO_TEST_VMM=qemu."""

import hashlib
import os
import random
import re
import subprocess

import pytest

from linuxvm import BUILD, CMD_TIMEOUT, encode_cmd
from virtiovm import Disk, NetNs, TcpPeer, VirtioGuest

MIB = 1024 * 1024
GIB = 1024 * MIB
DATA_SIZE = 1 * GIB
RO_SIZE = 16 * MIB
BIG_SIZE = 64 * GIB
TCP_BYTES = 100 * MIB
LONG = max(CMD_TIMEOUT, 900)  # for commands that move 100 MB through an emulated CPU
SHARED_CPUS = int(os.environ.get("VIREO_VIRTIO_CPUS", "2"))


def sparse_file(path, size, fill=b""):
    with open(path, "wb") as f:
        f.write(fill)
        f.truncate(size)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("virtio")
    ro_data = random.Random(5).randbytes(RO_SIZE)
    return {
        "data": sparse_file(d / "data.raw", DATA_SIZE),
        "ro": sparse_file(d / "ro.raw", RO_SIZE, ro_data),
        "ro_sha": hashlib.sha256(ro_data).hexdigest(),
        "big": sparse_file(d / "big.raw", BIG_SIZE),
    }


@pytest.fixture(scope="module")
def netns():
    ns = NetNs()
    yield ns
    ns.close()


@pytest.fixture(scope="module")
def vguest(accel, images, netns):
    disks = [Disk(images["data"], "vireo-data"), Disk(images["ro"], "vireo-ro", readonly=True),
             Disk(images["big"], "vireo-big")]
    guest = VirtioGuest(accel, cpus=SHARED_CPUS, memory="1G", disks=disks, netns=netns)
    try:
        guest.wait_init()
        guest.start_shell()
        yield guest
        if guest.proc.poll() is None:
            guest.poweroff()
    finally:
        guest.kill()


def disk_by_serial(guest):
    """{serial: (device name, size in bytes)} for every virtio disk the guest sees."""
    out = guest.check("for d in /sys/block/vd*; do echo ${d##*/} $(cat $d/serial) "
                      "$(blockdev --getsize64 /dev/${d##*/}); done")
    found = {}
    for line in out.splitlines():
        name, serial, size = line.split()
        found[serial] = (name, int(size))
    return found


# --- the shared guest ----------------------------------------------------------------------

def test_disks_serials_and_sizes(vguest):
    found = disk_by_serial(vguest)
    assert {s: size for s, (_, size) in found.items()} == {
        "vireo-data": DATA_SIZE, "vireo-ro": RO_SIZE, "vireo-big": BIG_SIZE}, found
    # In PCI slot order, as given on the command line.
    assert [found[s][0] for s in ("vireo-data", "vireo-ro", "vireo-big")] == ["vda", "vdb", "vdc"]
    # One request queue per vCPU (Vireo's contract; QEMU >= 5.2 does the same on PCI).
    out = vguest.check("ls /sys/block/vda/mq | wc -l")
    assert int(out) == SHARED_CPUS, out


def test_64g_sparse_disk_ends_where_the_file_ends(vguest, images):
    dev = "/dev/" + disk_by_serial(vguest)["vireo-big"][0]
    token = "vireo-last-block-%d" % os.getpid()
    last = BIG_SIZE // 4096 - 1
    vguest.check(f"printf '{token}' | dd of={dev} bs=4096 seek={last} conv=sync,fsync 2>/dev/null")
    with open(images["big"], "rb") as f:
        f.seek(BIG_SIZE - 4096)
        assert f.read(len(token)).decode() == token
    assert os.path.getsize(images["big"]) == BIG_SIZE
    # One block past the end is refused by the guest kernel (the disk is exactly 64 GiB).
    _, out = vguest.run(f"dd if={dev} of=/dev/null bs=4096 skip={last + 1} count=1 2>&1 "
                             f"| grep -c '^1+0 records in'")
    assert out.strip() == "0", out
    assert vguest.check(f"dd if={dev} bs=4096 skip={last} count=1 2>/dev/null | head -c "
                        f"{len(token)}") == token


def test_readonly_disk_refuses_writes(vguest, images):
    dev = "/dev/" + disk_by_serial(vguest)["vireo-ro"][0]
    assert vguest.check(f"cat /sys/block/{dev[5:]}/ro").strip() == "1"
    assert vguest.check(f"sha256sum {dev}").split()[0] == images["ro_sha"]
    status, out = vguest.run(f"dd if=/dev/zero of={dev} bs=4096 count=1 conv=fsync 2>&1")
    assert status != 0, f"a write to the read-only disk succeeded:\n{out}"
    with open(images["ro"], "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == images["ro_sha"]


def host_bytes(path):
    return os.stat(path).st_blocks * 512


def test_fstrim_frees_host_blocks(vguest, images):
    dev = "/dev/" + disk_by_serial(vguest)["vireo-data"][0]
    # nodiscard: mkfs must not trim by itself, fstrim is what is tested.
    vguest.check(f"mkfs.ext4 -q -F -E nodiscard {dev} && mkdir -p /mnt/data && "
                 f"mount -o nodiscard {dev} /mnt/data", timeout=LONG)
    vguest.check("dd if=/dev/urandom of=/mnt/data/fill bs=1M count=64 2>/dev/null && sync",
                 timeout=LONG)
    before = host_bytes(images["data"])
    assert before >= 64 * MIB, f"only {before} bytes allocated on the host after 64 MiB"
    out = vguest.check("rm /mnt/data/fill && sync && fstrim -v /mnt/data", timeout=LONG)
    assert re.search(r"\d+ bytes trimmed", out) or "trimmed" in out, out
    after = host_bytes(images["data"])
    assert after <= before - 56 * MIB, f"host blocks: {before} bytes before fstrim, {after} after"
    vguest.check("umount /mnt/data")


def test_drivers_reload_and_devices_come_back(vguest, images):
    # rmmod resets each device (status 0); insmod negotiates again from scratch.
    for mod in ("virtio_blk", "virtio_rng"):
        path = vguest.check(f"find /lib/modules -name '{mod.replace('_', '?')}.ko*'").split()
        assert len(path) == 1, path
        vguest.check(f"rmmod {mod} && insmod {path[0]}")
    vguest.check("sleep 1")
    found = disk_by_serial(vguest)
    assert sorted(found) == ["vireo-big", "vireo-data", "vireo-ro"], found
    ro = "/dev/" + found["vireo-ro"][0]
    assert vguest.check(f"sha256sum {ro}").split()[0] == images["ro_sha"]


def test_hwrng_gives_bytes(vguest):
    current = vguest.check("cat /sys/class/misc/hw_random/rng_current").strip()
    assert current.startswith("virtio_rng"), current
    out = vguest.check("dd if=/dev/hwrng bs=64 count=4 2>/dev/null | od -An -tx1 -v | tr -d ' \\n'")
    assert len(out) == 512, out
    blocks = {out[i:i + 128] for i in range(0, 512, 128)}
    assert len(blocks) == 4, "repeated 64-byte blocks from /dev/hwrng"


def test_net_address_and_ping(vguest, netns):
    out = vguest.check("ls /sys/class/net")
    assert "eth0" in out.split(), out
    driver = vguest.check("basename $(readlink /sys/class/net/eth0/device/driver)").strip()
    assert driver == "virtio_net", driver
    vguest.check(f"ip link set eth0 up && ip addr add {netns.GUEST_ADDR}/{netns.PREFIX} dev eth0")
    assert vguest.check("cat /sys/class/net/eth0/carrier").strip() == "1"
    out = vguest.check(f"ping -c 3 -W 5 {netns.HOST_ADDR}", timeout=LONG)
    assert re.search(r"3 packets transmitted, 3 (packets )?received", out), out


def test_net_tcp_100mb_guest_to_host(vguest, netns):
    vguest.run(f"ip link set eth0 up; ip addr add {netns.GUEST_ADDR}/{netns.PREFIX} dev eth0 "
               "2>/dev/null")
    vguest.check(f"dd if=/dev/urandom of=/tmp/tx bs=1M count={TCP_BYTES // MIB} 2>/dev/null",
                 timeout=LONG)
    guest_sum = vguest.check("sha256sum /tmp/tx", timeout=LONG).split()[0]
    peer = TcpPeer(netns, "recv", 5001, TCP_BYTES, timeout=LONG)
    try:
        vguest.check(f"nc {netns.HOST_ADDR} 5001 < /tmp/tx", timeout=LONG)
        got, host_sum, _ = peer.result(timeout=LONG)
    finally:
        peer.kill()
        vguest.run("rm -f /tmp/tx")
    assert got == TCP_BYTES
    assert host_sum == guest_sum


def test_net_tcp_100mb_host_to_guest(vguest, netns):
    vguest.run(f"ip link set eth0 up; ip addr add {netns.GUEST_ADDR}/{netns.PREFIX} dev eth0 "
               "2>/dev/null")
    peer = TcpPeer(netns, "send", 5002, TCP_BYTES, seed=9, timeout=LONG)
    try:
        out = vguest.check(f"nc {netns.HOST_ADDR} 5002 </dev/null | sha256sum", timeout=LONG)
        sent, host_sum, _ = peer.result(timeout=LONG)
    finally:
        peer.kill()
    assert sent == TCP_BYTES
    assert out.split()[0] == host_sum


# --- a guest of its own: ext4 checked from the host after poweroff, hvc0 both ways ---------

EXT4_FILES = {"a.bin": 1, "dir/b.bin": 7, "dir/sub/c.bin": 33}  # MiB each
# On the qcow2 disk: 2.5 MiB from sector 1001, so both ends are partial 64 KiB clusters
# (copy-on-write from zeros) and the middle allocates whole clusters.
QCOW2_SECTOR, QCOW2_SECTORS = 1001, 5120


def odirect_dir(tmp_path):
    """tmp_path if its filesystem takes O_DIRECT (cache=none), else a directory in the build
    tree (tmpfs refused O_DIRECT before Linux 6.6)."""
    probe = tmp_path / "odirect-probe"
    try:
        os.close(os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644))
        probe.unlink()
        return tmp_path
    except OSError:
        d = BUILD / "tmp-odirect" / tmp_path.name
        d.mkdir(parents=True, exist_ok=True)
        return d


def test_ext4_files_survive_poweroff_and_hvc0(accel, tmp_path):
    d = odirect_dir(tmp_path)
    image = sparse_file(d / "ext4.raw", 256 * MIB)
    qimage = d / "data.qcow2"
    r = subprocess.run([str(BUILD / "vireo"), "img", "create", "-f", "qcow2", str(qimage),
                        "64M"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    writes = " && ".join(
        f"dd if=/dev/urandom of=/mnt/{name} bs=1M count={mib} 2>/dev/null"
        for name, mib in EXT4_FILES.items())
    script = (
        "set -e; mkfs.ext4 -q -F /dev/vda; mount /dev/vda /mnt; mkdir -p /mnt/dir/sub; "
        f"{writes}; cd /mnt; sha256sum {' '.join(EXT4_FILES)} | sed 's/^/SUM /'; cd /; "
        # The qcow2 disk: write, read back through the device, print both checksums.
        f"dd if=/dev/urandom of=/tmp/q bs=512 count={QCOW2_SECTORS} 2>/dev/null; "
        f"dd if=/tmp/q of=/dev/vdb bs=512 seek={QCOW2_SECTOR} oflag=direct conv=notrunc "
        "2>/dev/null; echo QSRC $(sha256sum </tmp/q); "
        f"echo QDEV $(dd if=/dev/vdb bs=512 skip={QCOW2_SECTOR} count={QCOW2_SECTORS} "
        "iflag=direct 2>/dev/null | sha256sum); sync; "
        # hvc0: open it, say so on the serial port, read one line from it and answer on it.
        "exec 3<>/dev/hvc0; echo HVC-READY; read -r line <&3; echo \"HVC-GOT:$line\" >&3")
    guest = VirtioGuest(accel, cpus=1, memory="512M", cmdline=encode_cmd(script),
                        disks=[Disk(image, "vireo-ext4", cache="none"),
                               Disk(qimage, "vireo-qcow2", format="qcow2", cache="none")],
                        hvc=True)
    try:
        guest.wait_init()
        guest.wait_for(r"^HVC-READY$", timeout=LONG)
        payload = "hello-hvc0-%d" % random.Random(3).randrange(10**9)
        guest.send(payload + "\n")
        guest.wait_for(rf"HVC-GOT:{payload}$", timeout=CMD_TIMEOUT)
        status = guest.wait_exit(timeout=CMD_TIMEOUT)
        assert status == 0, guest.describe()
        assert "VIREO-CMD-EXIT=0" in guest.text, guest.describe()
    finally:
        guest.kill()
    sums = dict(reversed(m.groups()) for m in re.finditer(r"^SUM ([0-9a-f]{64})  (\S+)$",
                                                           guest.text, re.M))
    assert set(sums) == set(EXT4_FILES), guest.describe()
    # The guest powered off without unmounting: e2fsck replays the journal (status 1: fixed),
    # then a second, read-only check must find nothing.
    fix = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, text=True)
    assert fix.returncode in (0, 1), fix.stdout + fix.stderr
    chk = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    for name, mib in EXT4_FILES.items():
        out = tmp_path / "out.bin"
        subprocess.run(["debugfs", "-R", f"dump /{name} {out}", str(image)], check=True,
                       capture_output=True)
        data = out.read_bytes()
        assert len(data) == mib * MIB, name
        assert hashlib.sha256(data).hexdigest() == sums[name], name
    # The qcow2 disk: what the guest wrote and read back, and zeros around it.
    qsrc = re.search(r"^QSRC ([0-9a-f]{64})", guest.text, re.M)
    qdev = re.search(r"^QDEV ([0-9a-f]{64})", guest.text, re.M)
    assert qsrc and qdev and qsrc.group(1) == qdev.group(1), guest.describe()
    chk = subprocess.run([str(BUILD / "vireo"), "img", "check", str(qimage)],
                         capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    flat = tmp_path / "qcow2.raw"
    subprocess.run([str(BUILD / "vireo"), "img", "convert", "-O", "raw", str(qimage), str(flat)],
                   check=True, capture_output=True)
    data = flat.read_bytes()
    lo, hi = QCOW2_SECTOR * 512, (QCOW2_SECTOR + QCOW2_SECTORS) * 512
    assert hashlib.sha256(data[lo:hi]).hexdigest() == qsrc.group(1)
    assert data[:lo].count(0) == lo and data[hi:].count(0) == len(data) - hi
