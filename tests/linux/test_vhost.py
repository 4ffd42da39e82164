"""The virtio-net tap test of tests/guest/test_virtio.py (test_virtio_net_tap), run by a Vireo that
itself runs inside a Linux guest of Vireo, so that the vhost-net backend can be tested on a host
without vhost-net.

Why nested: this host's kernel has no /dev/vhost-net and cannot load modules, but Debian's guest
kernel that these tests boot ships vhost_net.ko (and tun, tap, vhost, vhost_iotlb). So the outer
guest (the test kernel on the accelerator under test, 2 vCPUs, 1 GiB) loads those modules, gets
/dev/vhost-net and /dev/net/tun, and runs the very vireo binary of the build (the inner VMM,
`--accel soft` with VIREO_SOFT_JIT=0: only the interpreter, since compiled code pages written
inside the guest would make the outer CPU decode them again and again) on the bare-metal test
guest virtio_net.elf, with `--net tap=vt0,...` on a tap of the outer guest. A static tap_peer
(tests/tools/tap_peer.c) plays the host side there, as the Python peer does on the host. nested.py
builds the initramfs that carries all of this (the test initramfs + one more archive).

What it proves: the inner guest's frame leaves through the tap (the peer catches
"vireo-net TOKEN MAC") and the peer's reply comes back into a receive buffer with an interrupt
("received 'host-reply TOKEN'"), through
  userspace  `vhost=off`: Vireo's own tap path, checked not to touch vhost-net;
  auto       no vhost option: vhost-net, since /dev/vhost-net opens here;
  vhost      `vhost=on`: the queues served by the guest kernel's vhost-net. The outer kernel's
             trace shows it: the inner vireo's process opened /dev/vhost-net (a kprobe on
             vhost_net_open), SET_OWNER made a worker for it (task_rename to "vhost-<tid>", Linux
             6.1's worker kernel thread), and that worker ran handle_tx and handle_rx (kprobes):
             the frame out and the reply in.
Each inner run does it twice (net_rounds=2): the second time after a device reset, so vhost
must be stopped at the reset and started again on the new rings.

Time, measured on the 2-core development host with the outer guest on `--accel soft` (its block
compiler on): the outer boot to the shell 11-13 s; one inner run (tap_peer ready, then the inner
vireo interpreting the guest to PASS, 1-2 s inside the guest) 2-3 s; the whole module about 20 s.
The test guest does little (PCI set-up, two frames), so even the inner interpreter on the
emulated CPU is quick. The limits (linuxvm's boot and command timeouts, INNER_LIMIT) are far above.

Environment (besides linuxvm.py's): VIREO_NEST_TIMEOUT, seconds one inner run may take.
"""

import os
import re
import secrets
import time

import pytest

from linuxvm import BUILD, CMD_TIMEOUT, LinuxGuest
from nested import NEST, build_initrd, with_initrd

TAP = "vt0"
MAC = "52:54:00:12:34:56"
MODULES = ("tun", "tap", "vhost_iotlb", "vhost", "vhost_net")
OUTER_CPUS = 2
OUTER_MEMORY = "1G"
# One inner run takes 1-2 s inside the guest here (see the module doc): 300 s is only a cap.
INNER_LIMIT = float(os.environ.get("VIREO_NEST_TIMEOUT", "300"))

# The trace events that show what the guest kernel's vhost-net did, set up once after the
# modules are loaded: kprobes on vhost-net's open and on its transmit and receive handlers (the
# work the worker does for a kick or for a frame waiting on the tap), and the task_rename
# tracepoint, which fires when vhost's SET_OWNER names its new worker thread "vhost-<caller
# tid>" (Linux 6.1: a kernel thread, named by kthread_create in the caller's context). Each line
# carries the task's pid and, with record-tgid, its process: nothing is missed between two polls
# of /proc, however short the inner run is.
TRACE = "/sys/kernel/tracing"
TRACE_SETUP = f"""
test -e {TRACE}/trace || mount -t tracefs nodev {TRACE}
echo 'p:nest/vhost_open vhost_net:vhost_net_open' >>{TRACE}/kprobe_events
echo 'p:nest/vhost_tx vhost_net:handle_tx' >>{TRACE}/kprobe_events
echo 'p:nest/vhost_rx vhost_net:handle_rx' >>{TRACE}/kprobe_events
echo 1 >{TRACE}/options/record-tgid
echo 1 >{TRACE}/events/nest/enable
echo 1 >{TRACE}/events/task/task_rename/enable
"""

# Runs one inner VMM in the outer guest and reports on it (copied into the initramfs, so that
# no long line goes through the console): starts tap_peer on the tap and waits for its "ready"
# (the guest sends its frame early), runs the inner vireo with a time limit, then prints every
# output and the trace of the run in sections.
# usage: run-inner.sh NETSPEC TOKEN MAC LIMIT
RUN_INNER = r"""#!/bin/sh
net=$1 token=$2 mac=$3 limit=$4
d=/tmp/nest
rm -rf $d && mkdir -p $d
echo >/sys/kernel/tracing/trace
/nest/tap_peer vt0 "$token" </dev/null >$d/peer.out 2>$d/peer.err &
peer=$!
i=0
while ! grep -q '^ready$' $d/peer.out; do
    if ! kill -0 $peer 2>/dev/null || [ $i -ge 600 ]; then
        echo "run-inner: tap_peer never got ready" >>$d/peer.err
        break
    fi
    i=$((i + 1))
    sleep 0.1
done
start=$(date +%s)
# busybox timeout execs the program in its own process: $! is the inner vireo's pid.
VIREO_SOFT_JIT=0 timeout -s KILL $limit /nest/vireo run --kernel /nest/virtio_net.elf \
    --cmdline "net_token=$token net_mac=$mac net_rounds=2" --cpus 1 --memory 128M --accel soft \
    --console stdio --device debug-exit --no-reboot --net "$net" \
    </dev/null >$d/inner.out 2>$d/inner.err &
pid=$!
wait $pid
rc=$?
end=$(date +%s)
kill $peer 2>/dev/null
wait $peer 2>/dev/null
for f in inner.out inner.err peer.out peer.err; do
    echo "== $f"
    cat $d/$f
done
echo "== trace"
grep -v '^#' /sys/kernel/tracing/trace
echo "== inner-exit $rc $((end - start)) $pid"
"""

# One line of the trace: "COMM-PID (TGID) [CPU] FLAGS TIME: EVENT: DETAILS" (COMM may hold
# dashes and blanks; the PID is the last number before the TGID).
TRACE_LINE = re.compile(r"^\s*.*-(\d+)\s+\(\s*([0-9-]+)\)\s+\[\d+\]\s+\S+\s+[\d.]+: (\w+): (.*)$")


def vhost_use(trace, inner_pid):
    """What the trace says vhost-net did for the inner vireo (process inner_pid): whether it
    opened /dev/vhost-net, the pids of the workers created for it, and how often those ran the
    transmit and receive handlers."""
    opened, workers, tx, rx = False, set(), 0, 0
    events = [m.groups() for m in map(TRACE_LINE.match, trace.splitlines()) if m]
    for pid, tgid, event, details in events:
        if tgid != inner_pid:
            continue
        if event == "vhost_open":
            opened = True
        elif event == "task_rename":
            m = re.search(r"pid=(\d+) oldcomm=.* newcomm=vhost-\d+ ", details + " ")
            if m:
                workers.add(m.group(1))
    for pid, tgid, event, details in events:
        if pid in workers:
            tx += event == "vhost_tx"
            rx += event == "vhost_rx"
    return opened, workers, tx, rx


def sections(out):
    """run-inner.sh's output as {section: text}; "exit" holds 'STATUS SECONDS'."""
    found, name = {}, None
    for line in out.split("\n"):
        if line.startswith("== inner-exit "):
            found["exit"], name = line[len("== inner-exit "):], None
        elif line.startswith("== "):
            name = line[3:]
            found[name] = ""
        elif name:
            found[name] += line + "\n"
    return found


@pytest.fixture(scope="module")
def nest_guest(accel, tmp_path_factory):
    """The outer guest, booted to its shell with the vhost modules loaded and tap vt0 up."""
    vireo = BUILD / "vireo"
    for path, target in ((vireo, "all"), (BUILD / "guest" / "virtio_net.elf", "guests"),
                         (BUILD / "tools" / "tap_peer", str(BUILD / "tools" / "tap_peer"))):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is not built (make {target})", pytrace=False)
    initrd = tmp_path_factory.mktemp("nest") / "initrd.img"
    files = {f"/{NEST}/virtio_net.elf": BUILD / "guest" / "virtio_net.elf",
             f"/{NEST}/tap_peer": BUILD / "tools" / "tap_peer",
             f"/{NEST}/run-inner.sh": RUN_INNER.encode()}
    modules = build_initrd(initrd, files, MODULES, vireo=vireo)
    guest = LinuxGuest(accel, cpus=OUTER_CPUS, memory=OUTER_MEMORY,
                       argv_hook=with_initrd(initrd))
    try:
        guest.boot_seconds = guest.wait_init()
        guest.start_shell()

        def setup(cmd):
            status, out = guest.run(cmd)
            assert status == 0, f"{cmd!r} exited {status}:\n{out}\n{guest.describe(40)}"
            return out

        for mod in modules:
            status, out = guest.run(f"insmod {mod} 2>&1")
            # "File exists": built in or loaded already, as for /init's own modules.
            assert status == 0 or "File exists" in out, \
                f"insmod {mod} exited {status}:\n{out}\n{guest.describe(40)}"
        setup("test -c /dev/vhost-net && test -c /dev/net/tun")
        # busybox has no `ip tuntap`; tunctl makes the tap persistent (IFF_TAP | IFF_NO_PI), and
        # the inner vireo attaches to it with its own flags (IFF_VNET_HDR is per attachment).
        setup(f"tunctl -t {TAP} >/dev/null && ip link set {TAP} up")
        setup(TRACE_SETUP.strip().replace("\n", " && "))
        yield guest
        if guest.proc.poll() is None:
            guest.poweroff()
    finally:
        guest.kill()


# userspace: vhost=off; vhost: vhost=on; auto: no option, which must pick vhost-net here, where
# /dev/vhost-net opens.
@pytest.mark.parametrize("backend", ["userspace", "auto", "vhost"])
def test_virtio_net_tap_nested(nest_guest, backend):
    guest = nest_guest
    net = f"tap={TAP},mac={MAC}" + {"userspace": ",vhost=off", "auto": "",
                                    "vhost": ",vhost=on"}[backend]
    want_vhost = backend != "userspace"
    token = secrets.token_hex(6)
    began = time.monotonic()
    status, out = guest.run(f"/{NEST}/run-inner.sh {net} {token} {MAC} {INNER_LIMIT:.0f}",
                            timeout=INNER_LIMIT + CMD_TIMEOUT)
    took = time.monotonic() - began
    s = sections(out)
    context = (f"run-inner.sh {net} ({took:.0f} s) exited {status}:\n{out}\n"
               f"--- outer guest ---\n{guest.describe(40)}")
    assert status == 0 and "exit" in s, context
    rc, seconds, inner_pid = s["exit"].split()
    print(f"\n{backend}: outer boot {getattr(guest, 'boot_seconds', 0):.0f} s, "
          f"inner run {seconds} s (inside the guest), {took:.0f} s in all")
    inner = s.get("inner.out", "")
    assert rc == "0", f"the inner vireo exited {rc}\n{context}"
    for line in (f"mac {MAC}, status 0x1", "sent frame", f"received 'host-reply {token}'",
                 f"received 'host-reply {token}' after a reset", "PASS: virtio_net"):
        assert line in inner, f"missing {line!r} in the inner output\n{context}"
    assert f"caught vireo-net {token} {MAC}" in s.get("peer.out", ""), context
    opened, workers, tx, rx = vhost_use(s.get("trace", ""), inner_pid)
    print(f"{backend}: /dev/vhost-net opened: {opened}, workers {sorted(workers)}, "
          f"handle_tx {tx}, handle_rx {rx}")
    if want_vhost:
        assert opened, f"the inner vireo never opened /dev/vhost-net\n{context}"
        assert workers, f"no vhost worker was created for the inner vireo\n{context}"
        # The frame out and the reply in went through the worker.
        assert tx and rx, f"the vhost worker ran handle_tx {tx}, handle_rx {rx} times\n{context}"
    else:
        # Any vhost-net event at all, whoever the trace says it came from: nothing else in the
        # guest uses vhost-net.
        used = re.search(r": vhost_(open|tx|rx): |newcomm=vhost-", s.get("trace", ""))
        assert not used, f"{net} used vhost-net\n{context}"
