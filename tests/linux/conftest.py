"""pytest wiring for the Linux guest tests (see linuxvm.py for the environment knobs).

Fixtures:
  shared_guest  one guest per (accel, cpus) and test module, booted to its shell and powered
                off at the end; for tests that only look (nproc, meminfo, dmesg, ...)
  boot          boot(cpus=1, memory="512M", cmdline="", reboot=False) starts a fresh guest that
                the test owns (poweroff, reboot, panic); anything left running is killed
Every test taking `accel` runs once per accelerator in VIREO_LINUX_ACCELS; `cpus` runs once per
count in VIREO_LINUX_CPUS.
"""

import pytest

from linuxvm import ACCELS, CPUS, SHARED_MEMORY, LinuxGuest


def pytest_generate_tests(metafunc):
    # Module scope so that the shared guest of one (accel, cpus) pair serves all its tests.
    if "accel" in metafunc.fixturenames:
        metafunc.parametrize("accel", ACCELS, scope="module")
    if "cpus" in metafunc.fixturenames:
        metafunc.parametrize("cpus", CPUS, scope="module", ids=[f"cpus{c}" for c in CPUS])



@pytest.fixture(scope="module")
def shared_guest(accel, cpus):
    guest = LinuxGuest(accel, cpus=cpus, memory=SHARED_MEMORY)
    try:
        guest.boot_seconds = guest.wait_init()
        guest.start_shell()
        yield guest
        # A test may have stopped it already; otherwise leave the way a user would.
        if guest.proc.poll() is None:
            guest.poweroff()
    finally:
        guest.kill()


@pytest.fixture
def boot(accel):
    guests = []

    def start(cpus=1, memory="512M", cmdline="", reboot=False):
        guest = LinuxGuest(accel, cpus=cpus, memory=memory, cmdline=cmdline, reboot=reboot)
        guests.append(guest)
        return guest

    yield start
    for guest in guests:
        guest.kill()
