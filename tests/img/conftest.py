"""Fixtures for the disk image tests: where `vireo img` and the I/O workload tool live."""
import os
import subprocess
from pathlib import Path

import pytest

from imgutil import Img

ROOT = Path(__file__).resolve().parents[2]


def _build_dir():
    # Absolute, because the tests run tools from their temporary directories.
    build = Path(os.environ.get("VIREO_BUILD", "build"))
    return build if build.is_absolute() else ROOT / build


@pytest.fixture(scope="session")
def img_cmd():
    """The command prefix for `vireo img`: the real CLI once it dispatches `img`, else the test
    driver built by mk/img.mk."""
    build = _build_dir()
    vireo = build / "vireo"
    if vireo.exists():
        r = subprocess.run([str(vireo), "img", "--help"], capture_output=True, text=True)
        if r.returncode == 0 and "convert" in (r.stdout + r.stderr):
            return [str(vireo), "img"]
    driver = build / "vireo-img-test"
    assert driver.exists(), f"{driver} missing: run make {driver}"
    return [str(driver)]


@pytest.fixture(scope="session")
def img_io():
    tool = _build_dir() / "vireo-img-io"
    assert tool.exists(), f"{tool} missing: run make {tool}"
    return str(tool)


@pytest.fixture
def img(img_cmd, tmp_path):
    return Img(img_cmd, tmp_path)
