r"""Every ACPI table Vireo generates must pass through iasl (acpica-tools) cleanly.

For each table: `iasl -d` disassembles it with exit status 0 and no error, warning or bad-checksum
report, and compiling the disassembly back gives the same bytes (apart from the header's checksum
and compiler id/revision, which iasl fills in itself). iasl 20200925 cannot disassemble a bare
RSDP, so the RSDP is instead written as iasl data-table source with zero checksums, compiled, and
must come out identical: iasl computes both checksums and the layout from its own definition.

Then acpiexec loads FADT, DSDT, MADT and MCFG into ACPICA (the interpreter Linux uses) and
evaluates \_S5, _STA, _UID and every _CRS, which must parse and convert back without complaint.

The tables come from the acpi-dump tool (mk/acpi.mk), which `make check` builds first and names
in VIREO_ACPI_DUMP; run alone, this test builds it with make.
"""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLES = ["xsdt", "facp", "facs", "dsdt", "apic", "mcfg"]
PROBLEM = re.compile(r"error|warning|incorrect|invalid|unknown|could not|failed", re.I)
SUMMARY = re.compile(r"(\d+) Errors?, (\d+) Warnings?, (\d+) Remarks?")
# Header bytes iasl rewrites when it compiles: checksum, then compiler id and revision.
IASL_OWNED = {9} | set(range(28, 36))

CONFIGS = {
    "1cpu": ["--cpus", "1"],
    "2cpus": ["--cpus", "2"],
    "64cpus": ["--cpus", "64"],
    "255cpus": ["--cpus", "255"],
    "no64bit-window": ["--cpus", "4", "--mmio64-size", "0"],
    "pci-intx": ["--cpus", "4", "--pci-intx-gsi", "16"],
}


@pytest.fixture(scope="module")
def iasl():
    path = shutil.which("iasl")
    if not path:
        pytest.fail("iasl not found: apt-get install acpica-tools")
    return path


@pytest.fixture(scope="module")
def acpi_dump():
    path = os.environ.get("VIREO_ACPI_DUMP")
    if not path:
        subprocess.run(["make", "-s", "build/acpi-dump"], cwd=ROOT, check=True)
        path = str(ROOT / "build" / "acpi-dump")
    assert os.access(path, os.X_OK), f"{path} is not built"
    return path


def run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout


def dump(acpi_dump, args, outdir):
    rc, out = run([acpi_dump, *args, str(outdir)], outdir)
    assert rc == 0, out
    files = sorted(p.name for p in outdir.glob("*.dat"))
    assert files == sorted(f"{t}.dat" for t in TABLES + ["rsdp"])


def assert_same_except_iasl_fields(ours, theirs, name, header=True):
    assert len(ours) == len(theirs), f"{name}: {len(ours)} bytes, iasl made {len(theirs)}"
    skip = IASL_OWNED if header else set()
    diff = [i for i in range(len(ours)) if i not in skip and ours[i] != theirs[i]]
    assert not diff, f"{name}: differs from iasl's recompilation at offsets {diff[:16]}"


def compile_clean(iasl, src, cwd, prefix):
    rc, out = run([iasl, "-p", prefix, src], cwd)
    assert rc == 0, out
    m = SUMMARY.search(out)
    assert m and m.groups() == ("0", "0", "0"), out
    return (cwd / f"{prefix}.aml").read_bytes()


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_tables_disassemble_and_recompile(iasl, acpi_dump, tmp_path, config):
    dump(acpi_dump, config, tmp_path)
    for table in TABLES:
        dat = tmp_path / f"{table}.dat"
        rc, out = run([iasl, "-d", dat.name], tmp_path)
        assert rc == 0, f"iasl -d {table}: exit {rc}\n{out}"
        assert not PROBLEM.search(out), f"iasl -d {table}:\n{out}"
        dsl = (tmp_path / f"{table}.dsl").read_text()
        bad = [line for line in dsl.splitlines() if PROBLEM.search(line)]
        assert not bad, f"{table}.dsl:\n" + "\n".join(bad)
        again = compile_clean(iasl, f"{table}.dsl", tmp_path, f"re-{table}")
        assert_same_except_iasl_fields(dat.read_bytes(), again, table, header=table != "facs")


def test_rsdp_matches_iasl(iasl, acpi_dump, tmp_path):
    dump(acpi_dump, ["--cpus", "2"], tmp_path)
    rsdp = (tmp_path / "rsdp.dat").read_bytes()
    assert len(rsdp) == 36
    le = lambda b: int.from_bytes(b, "little")
    src = "\n".join([
        '[0008] Signature : "RSD PTR "',
        "[0001] Checksum : 00",
        f'[0006] Oem ID : "{rsdp[9:15].decode("ascii")}"',
        f"[0001] Revision : {rsdp[15]:02X}",
        f"[0004] RSDT Address : {le(rsdp[16:20]):08X}",
        f"[0004] Length : {le(rsdp[20:24]):08X}",
        f"[0008] XSDT Address : {le(rsdp[24:32]):016X}",
        "[0001] Extended Checksum : 00",
        "[0003] Reserved : 000000",
        "",
    ])
    (tmp_path / "rsdp.asl").write_text(src)
    theirs = compile_clean(iasl, "rsdp.asl", tmp_path, "re-rsdp")
    assert_same_except_iasl_fields(rsdp, theirs, "rsdp", header=False)
    assert rsdp[15] == 2 and le(rsdp[24:32]) != 0


def test_checker_catches_a_bad_checksum(iasl, acpi_dump, tmp_path):
    """The iasl output really reports problems of the kind the test above looks for."""
    dump(acpi_dump, ["--cpus", "2"], tmp_path)
    dat = tmp_path / "apic.dat"
    data = bytearray(dat.read_bytes())
    data[9] ^= 0xff
    dat.write_bytes(data)
    rc, out = run([iasl, "-d", dat.name], tmp_path)
    assert PROBLEM.search(out + (tmp_path / "apic.dsl").read_text())


# acpiexec (acpica-tools) runs ACPICA, the interpreter Linux uses, on the tables. Its built-in
# self-tests report on hardware this machine leaves out on purpose: lines matching these are
# expected, each with the number of times it must appear.
ACPIEXEC_EXPECTED = [
    # No GPE block in the FADT: every GPE call fails.
    (re.compile(r"^Unexpected AE_BAD_PARAMETER from Acpi\w*Gpe\w* \(aetests-\d+\)$"), None),
    # ARB_DISABLE lives in the optional PM2 control block, which is absent: exactly one write
    # and one read fail; PM1 status/enable/control accesses must all succeed.
    (re.compile(r"^Unexpected AE_BAD_ADDRESS from AcpiWriteBitRegister \(aetests-\d+\)$"), 1),
    (re.compile(r"^Unexpected AE_BAD_ADDRESS from AcpiReadBitRegister \(aetests-\d+\)$"), 1),
    # Resources are fixed: no _SRS.
    (re.compile(r"^AcpiSetCurrentResources failed: AE_NOT_FOUND$"), 3),
]
ACPIEXEC_PROBLEM = re.compile(r"error|warning|mismatch|fail|AE_", re.I)


@pytest.mark.parametrize("ncpus,intx", [(2, False), (255, True)])
def test_acpica_interprets_tables(acpi_dump, tmp_path, ncpus, intx):
    acpiexec = shutil.which("acpiexec")
    if not acpiexec:
        pytest.fail("acpiexec not found: apt-get install acpica-tools")
    dump(acpi_dump, ["--cpus", str(ncpus)] + (["--pci-intx-gsi", "16"] if intx else []),
         tmp_path)
    last_cpu = f"CP{ncpus - 1:02X}"
    cmds = ["evaluate \\_S5", "evaluate \\_SB.COM1._STA", f"evaluate \\_SB.{last_cpu}._UID",
            "resources \\_SB.PCI0", "resources \\_SB.MBRS", "resources \\_SB.COM1"]
    if intx:
        cmds.append("evaluate \\_SB.PCI0._PRT")
    rc, out = run([acpiexec, "-b", "; ".join(cmds),
                   "facp.dat", "dsdt.dat", "apic.dat", "mcfg.dat"], tmp_path)
    assert rc == 0, out

    counts = [0] * len(ACPIEXEC_EXPECTED)
    for line in out.splitlines():
        for i, (pattern, _) in enumerate(ACPIEXEC_EXPECTED):
            if pattern.match(line.strip()):
                counts[i] += 1
                break
        else:
            assert not ACPIEXEC_PROBLEM.search(line), f"acpiexec: {line}\n{out}"
    for (pattern, want), got in zip(ACPIEXEC_EXPECTED, counts):
        assert want is None or got == want, f"{pattern.pattern}: {got} times, expected {want}"

    text = re.sub(r"\s+", " ", out)
    assert ("[Package] Contains 4 Elements: [Integer] = 0000000000000005 "
            "[Integer] = 0000000000000005 [Integer] = 0000000000000000 "
            "[Integer] = 0000000000000000") in text
    assert "Evaluation of \\_SB.COM1._STA returned" in text
    assert "[Integer] = 000000000000000F" in text
    assert f"[Integer] = {ncpus - 1:016X}" in text
    # The ECAM window MCFG names is a motherboard resource, as Linux requires.
    assert ("32-Bit Fixed Memory Range Resource Write Protect : ReadWrite "
            "Address : E0000000 Address Length : 10000000") in text
    assert "Address Minimum : 0CF8 Address Maximum : 0CF8 Alignment : 01 Address Length : 08" \
        in text
    assert "Interrupt List : 4" in text
    assert text.count("EndTag Resource") == 3
    if intx:
        # The last entry: slot 31, INTD -> 16 + (31 + 3) % 4.
        assert "[Package] Contains 128 Elements:" in text
        assert ("[Package] Contains 4 Elements: [Integer] = 00000000001FFFFF "
                "[Integer] = 0000000000000003 [Integer] = 0000000000000000 "
                "[Integer] = 0000000000000012") in text
