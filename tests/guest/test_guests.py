"""The test guests, each run on every accelerator in VIREO_TEST_ACCELS: exit status and output.
What each guest checks from inside is described at the top of its .c file."""

import datetime
import os
import re
import secrets
import time
from pathlib import Path

import pytest

from guestrun import VMM, debug_exit_status

PASS = debug_exit_status(0)
FAIL = debug_exit_status(1)


def test_boot(run_guest):
    token = secrets.token_hex(6)
    cmdline = f"boot_token={token} console=ttyS0 some.option=with,commas"
    run = run_guest("boot", cmdline=cmdline).wait()
    run.expect(PASS, f'boot: cmdline "{cmdline}"', f"boot: boot_token {token}", "PASS: boot")


@pytest.mark.parametrize("memory", ["128M", "5G"])
def test_memmap(run_guest, memory):
    run = run_guest("memmap", cmdline=f"mem_expect={memory}", memory=memory).wait()
    run.expect(PASS, "PASS: memmap")
    if memory == "5G":
        assert "wrote and read back" in run.stdout, run.describe()


def test_memmap_detects_wrong_size(run_guest):
    """The guest is not a rubber stamp: told to expect more RAM than it has, it fails."""
    run = run_guest("memmap", cmdline="mem_expect=256M", memory="128M").wait()
    run.expect(FAIL, "FAIL: memmap")


def test_serial(run_guest):
    line = f"vireo serial {secrets.token_hex(8)} 0123456789"
    run = run_guest("serial", stdin_pipe=True)
    run.wait_for_line("serial: ready")
    run.send(line + "\n")
    run.wait()
    run.expect(PASS, f"serial: echo: {line}", "PASS: serial")


def vmm_thread_switches(pid):
    """{thread name: voluntary + involuntary context switches} of the VMM's threads."""
    counts = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        n = sum(int(line.split()[1]) for line in status.splitlines()
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        counts[f"{name}/{tid}"] = n
    return counts


@pytest.mark.skipif(VMM != "vireo", reason="tells vCPU threads apart by Vireo's thread names")
def test_vmm_threads_sleep_while_guest_waits(run_guest):
    # While the guest waits for a line on the serial port, the VMM's own threads (everything
    # but the vCPUs: main loop, I/O thread, the software CPU's timer thread) sleep until there
    # is something to do: no polling. A context-switch count, not a time: the software CPU's
    # timer thread once woke every millisecond (about 2000 switches in these 2 s); now it wakes
    # only for deadlines, plus a 100 ms safety net.
    run = run_guest("serial", stdin_pipe=True)
    run.wait_for_line("serial: ready")
    before = vmm_thread_switches(run.proc.pid)
    time.sleep(2)
    after = vmm_thread_switches(run.proc.pid)
    run.send("done\n")
    run.wait()
    run.expect(PASS, "PASS: serial")
    deltas = {k: after[k] - before.get(k, 0) for k in after if not k.startswith("vcpu")}
    assert sum(deltas.values()) < 60, f"VMM threads woke too often: {deltas}\n{run.describe()}"


def test_pci(run_guest):
    # Vireo's host bridge is QEMU's generic PCIe host bridge ID; QEMU's q35 has Intel's.
    cmdline = "expect_host_bridge=1b36:0008" if VMM == "vireo" else ""
    run = run_guest("pci", cmdline=cmdline).wait()
    run.expect(PASS, "pci: 00:00.0", "PASS: pci")


def test_rtc(run_guest):
    run = run_guest("rtc").wait()
    run.expect(PASS, "PASS: rtc")
    for when, text in run.lines:
        m = re.search(r"rtc: time (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z", text)
        if m:
            break
    else:
        pytest.fail(f"no rtc time line\n{run.describe()}")
    guest = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    # The RTC counts whole seconds, so the guest's reading trails the host by up to one second
    # plus the time the line took to reach us.
    assert abs(when - guest) <= 2, f"guest RTC {m.group(1)}Z, host {when:.1f}\n{run.describe()}"


@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_acpi(run_guest, cpus):
    run = run_guest("acpi", cmdline=f"cpus={cpus}", cpus=cpus).wait()
    run.expect(PASS, f"{cpus} enabled CPUs", "PASS: acpi")
    assert "checksum BAD" not in run.stdout and "bad checksum" not in run.stdout, run.describe()


@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_smp(run_guest, cpus):
    run = run_guest("smp", cmdline=f"cpus={cpus}", cpus=cpus).wait()
    run.expect(PASS, f"{cpus - 1} APs reported in", "PASS: smp")
    ups = re.findall(r"smp: cpu \d+ \(APIC ID (\d+)\) up", run.stdout)
    assert len(ups) == cpus - 1 and len(set(ups)) == cpus - 1, run.describe()


def test_poweroff(run_guest):
    run = run_guest("poweroff").wait()
    run.expect(0, "poweroff: writing")
    assert "FAIL" not in run.stdout, run.describe()


@pytest.mark.parametrize("idt", ["empty", "on_device"])
def test_triple_fault(run_guest, idt):
    # on_device: the IDT lies at an unassigned address of the PCI window; a VMM that took the
    # page's guest-physical address as a host offset copied from or to a bogus host address.
    run = run_guest("triple_fault", cmdline="idt_on_device" if idt == "on_device" else "").wait()
    what = "an IDT at device address" if idt == "on_device" else "an empty IDT"
    assert f"triple_fault: loading {what}" in run.stdout, run.describe()
    assert "FAIL" not in run.stdout and "PASS" not in run.stdout, run.describe()
    if VMM == "vireo":
        run.expect(1)
        assert "RIP" in run.stderr, f"no register dump on stderr\n{run.describe()}"
    else:
        run.expect(0)  # QEMU -no-reboot treats the shutdown like a reset: exits 0


def test_reboot(run_guest):
    run = run_guest("reboot", reboot=True).wait()
    run.expect(PASS, "reboot: second boot: NVRAM[0x7e] = 0xa5", "PASS: reboot")
    assert run.stdout.count("reboot: first boot") == 1, run.describe()
    first = run.stdout.index("reboot: first boot")
    assert first < run.stdout.index("reboot: second boot"), run.describe()


def test_exit_status(run_guest):
    run = run_guest("exit_status").wait()
    run.expect(debug_exit_status(42), "exit_status: writing 42")
    assert "FAIL" not in run.stdout, run.describe()


def test_pvpanic_ends_the_run_as_a_failure(run_guest):
    run = run_guest("panic").wait()
    # Vireo ends the run with status 1, as for any guest failure (QEMU does with
    # -action panic=exit-failure, which the harness gives it).
    run.expect(1, "panic: reporting a panic")
    if VMM == "vireo":
        assert "panicked" in run.stderr, run.describe()
    assert "FAIL" not in run.stdout, run.describe()


def test_exceptions(run_guest):
    run = run_guest("exceptions").wait()
    run.expect(PASS, "exceptions: non-canonical address: vector 13", "PASS: exceptions")


def test_unhandled_exception_is_reported(run_guest):
    run = run_guest("exceptions", cmdline="unhandled").wait()
    run.expect(FAIL, "EXCEPTION: vector 14 (#PF) error 0x0 at RIP", "CR2 0x8000000000",
               "FAIL: exceptions: unexpected trap")


def test_quick_exit(run_guest):
    run_guest("quick_exit").wait().expect(PASS)


def test_pio_loop(run_guest):
    run = run_guest("pio_loop").wait()
    run.expect(PASS, "pio_loop: 100000 outs to port 0x510", "PASS: pio_loop")


def test_apic_priority(run_guest):
    # Self-IPIs: a lower vector waits for the EOI of a higher class and for TPR to drop, then
    # arrives with nothing else to wake the CPU.
    run = run_guest("apic_priority").wait()
    run.expect(PASS, "apic_priority: step eoi: ok", "apic_priority: order: 0x45 0x41 0x30",
               "apic_priority: step tpr: ok", "PASS: apic_priority")


def kvm_is_emulated(accel):
    """KVM served by kvm_pvm (no VT-x/AMD-V) runs kernel-mode guest code in its instruction
    emulator, which lacks some instructions."""
    sysmod = Path("/sys/module")
    return (accel == "kvm" and (sysmod / "kvm_pvm").exists()
            and not (sysmod / "kvm_intel").exists() and not (sysmod / "kvm_amd").exists())


@pytest.mark.parametrize("cpus", [1, 2])
def test_code_patching(run_guest, accel, cpus):
    # With 2 vCPUs a software CPU drops every decoded block on any write to code (other vCPUs
    # may run it), which hides a missed per-page invalidation: steps 1-3 run on 1 vCPU too.
    # KVM's instruction emulator stops at an int3 in long mode ("emulation failure"): there the
    # guest writes text_poke_bp's int3 but never executes it.
    emulated_kvm = kvm_is_emulated(accel)
    # remap: blocks are keyed by virtual address, and one whose page was remapped must not run.
    # in_block: a store into the next instruction of its own block (P6 and later see it).
    steps = ["1 self_modifying", "1b self_modifying_in_block", "2a text_poke", "2b text_poke_bp",
             "3 straddle", "5 remap", "6 remap_direct"]
    cmdline = f"cpus={cpus} remap in_block" + (" steps=123" if cpus == 1 else "")
    if cpus > 1:
        steps.append("4 cross_vcpu")
    if emulated_kvm:
        cmdline += " no_int3"
    run = run_guest("code_patching", cmdline=cmdline, cpus=cpus).wait()
    run.expect(PASS, *[f"code_patching: step {s}: ok" for s in steps], "PASS: code_patching")
    if not emulated_kvm:
        # The int3 trapped twice with RIP just past it, then the patched code ran without one.
        assert "text_poke_bp: int3 written: #BP 1 at RIP 0xffffc80000002001" in run.stdout, \
            run.describe()
        assert "text_poke_bp: first byte written: #BP 2, result 0x7e47bbbb" in run.stdout, \
            run.describe()


def test_atomics(run_guest, accel):
    # Two vCPUs run LOCKed read-modify-writes on shared counters at once; none may lose an
    # update. The software CPU gets enough rounds that a non-atomic form loses some (its
    # CMPXCHG16B once did, in most runs of a million rounds); KVM's instruction emulator is
    # slow and cannot run CMPXCHG16B at all.
    cmdline = "cpus=2 " + ("rounds=1000000" if accel == "soft" else "rounds=20000")
    if kvm_is_emulated(accel):
        cmdline += " no_cmpxchg16b"
    run = run_guest("atomics", cmdline=cmdline, cpus=2).wait()
    want = 2 * (1000000 if accel == "soft" else 20000)
    run.expect(PASS, f"atomics: xadd {want} of {want}", f"atomics: xchg spinlock {want} of {want}",
               "PASS: atomics")
    if not kvm_is_emulated(accel):
        assert f"atomics: cmpxchg16b {want} of {want}" in run.stdout, run.describe()


def test_tlb(run_guest):
    # Each flush the way Linux does it reaches what it must: CR3 writes non-global pages,
    # INVLPG a global page and every 4 KiB piece of a 2 MiB page, a CR4.PGE toggle everything.
    run = run_guest("tlb").wait()
    run.expect(PASS, "tlb: step 1 cr3_nonglobal: ok", "tlb: step 2 invlpg_global: ok",
               "tlb: step 3 pge_toggle: ok", "tlb: step 4 invlpg_large: ok",
               "tlb: step 5 invlpg_other: ok", "tlb: step 6 invlpg_large_after_cr3: ok",
               "PASS: tlb")
