"""pytest wiring for the test guests: every test taking `accel` runs once per accelerator in
VIREO_TEST_ACCELS, and `run_guest` starts guests (see guestrun.py for the environment knobs)."""

import pytest

from guestrun import ACCELS, GuestRun, check_accel, guest_argv


def pytest_generate_tests(metafunc):
    if "accel" in metafunc.fixturenames:
        metafunc.parametrize("accel", ACCELS)



@pytest.fixture
def run_guest(accel):
    """run_guest(name, cmdline="", cpus=1, memory="128M", reboot=False, stdin_pipe=False)
    starts a guest and returns its GuestRun (call .wait() unless you interact first). Runs still
    alive at the end of the test are killed."""
    check_accel(accel)
    runs = []

    def start(name, cmdline="", cpus=1, memory="128M", reboot=False, stdin_pipe=False):
        run = GuestRun(guest_argv(name, accel, cmdline, cpus, memory, reboot), stdin_pipe)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()
