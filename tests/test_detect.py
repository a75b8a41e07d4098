"""gateway.detect against fixture trees in tests/fixtures/boards/<name>/ (one per board/case)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.detect import (
    PROFILE_MIN_USABLE_BYTES,
    Detection,
    decode_pi_revision,
    detect,
    format_detection,
)
from gateway.settings import find_profile, load_settings

BOARDS = Path(__file__).resolve().parent / "fixtures" / "boards"
MiB = 1024 * 1024
GiB = 1024 * MiB


def tree(tmp_path: Path, fixture: str) -> Path:
    """A writable copy of a fixture tree, for variants."""
    root = tmp_path / fixture
    shutil.copytree(BOARDS / fixture, root)
    return root


def put(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


# (fixture, profile, revision, board_ram, cgroup version, cgroup limit, memory controller)
CASES = [
    ("pi-zero-2w", "pi-zero-2w", "902120", 512 * MiB, 2, None, True),
    ("pi3bplus", "pi3bplus", "a020d3", 1 * GiB, 2, None, True),
    ("pi4-2gb", "pi4-2gb", "b03114", 2 * GiB, 2, None, True),
    ("pi4-4gb", "pi4-8gb", "c03114", 4 * GiB, 2, None, True),
    ("pi4-8gb", "pi4-8gb", "d03114", 8 * GiB, 2, None, True),
    ("beaglebone-black", "beaglebone-black", None, None, 2, None, True),
    ("tiny", "tiny", "0012", 256 * MiB, 2, None, False),
    ("generic-arm64", "generic-arm64", None, None, 2, None, True),
    ("generic-amd64", "generic-amd64", None, None, 2, None, True),
    ("cgroup-v2-limited", "tiny", "c03114", 4 * GiB, 2, 256 * MiB, True),
    ("cgroup-v1", "pi-zero-2w", "a020d3", 1 * GiB, 1, 512 * MiB, True),
    ("no-memory-controller", "pi4-2gb", "b03115", 2 * GiB, 2, None, False),
]


@pytest.mark.parametrize(
    ("fixture", "profile", "revision", "board_ram", "version", "limit", "controller"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_fixture(
    fixture: str,
    profile: str,
    revision: str | None,
    board_ram: int | None,
    version: int,
    limit: int | None,
    controller: bool,
) -> None:
    d = detect(BOARDS / fixture)
    assert d.profile == profile, d.reasons
    assert (d.revision, d.board_ram_bytes) == (revision, board_ram)
    assert (d.cgroup_version, d.cgroup_limit_bytes, d.memory_controller) == (
        version,
        limit,
        controller,
    )
    assert d.usable_bytes == (min(d.ram_bytes, limit) if limit else d.ram_bytes)
    assert d.reasons[-1].startswith(f"profile {profile}: ")
    find_profile(d.profile, env={})  # every answer is a shipped profile


def test_fixture_covers_every_board_profile() -> None:
    assert {c[1] for c in CASES} == set(PROFILE_MIN_USABLE_BYTES)
    assert all((BOARDS / c[0]).is_dir() for c in CASES)


def test_pi4_details() -> None:
    d = detect(BOARDS / "pi4-4gb")
    assert d.model == "Raspberry Pi 4 Model B Rev 1.4"
    assert d.compatible == ("raspberrypi,4-model-b", "brcm,bcm2711")
    assert d.board == "Raspberry Pi 4B rev 1.4 (BCM2711, 4 GB)"
    assert (d.arch, d.cores, d.ram_bytes) == ("aarch64", 4, 3884328 * 1024)
    assert "revision c03114: Raspberry Pi 4B, BCM2711, 4 GiB, made by Sony UK" in d.reasons


def test_beaglebone_revision_0000_is_not_a_pi_code() -> None:
    d = detect(BOARDS / "beaglebone-black")
    assert d.revision is None and d.model == "TI AM335x BeagleBone Black"
    assert d.compatible == ("ti,am335x-bone-black", "ti,am335x-bone", "ti,am33xx")
    assert (d.arch, d.cores) == ("armv7l", 1)


def test_unknown_x86_box_uses_dmi_and_cpu_flags() -> None:
    d = detect(BOARDS / "generic-amd64")
    assert d.model == "Intel(R) Client Systems NUC7CJYH" and d.compatible == ()
    assert (d.arch, d.cores, d.revision) == ("x86_64", 2, None)
    assert any("no board profile" in r and "generic-amd64" in r for r in d.reasons)


def test_pi1_is_armv6_and_tiny() -> None:
    d = detect(BOARDS / "tiny")
    assert d.arch == "armv6l" and d.board.startswith("Raspberry Pi A+")


def test_cgroup_v2_limit_on_the_service() -> None:
    d = detect(BOARDS / "cgroup-v2-limited")
    assert "cgroup v2 memory.max 256 MiB on /system.slice/gateway.service" in d.reasons
    assert "profile pi4-8gb: needs 3 GiB usable, have 256 MiB" in d.reasons


def test_cgroup_v1_container_limit() -> None:
    d = detect(BOARDS / "cgroup-v1")
    assert "cgroup v1 memory.limit_in_bytes 512 MiB (536870912)" in d.reasons
    assert "profile pi3bplus: needs 768 MiB usable, have 512 MiB" in d.reasons


def test_memory_controller_disabled_is_reported() -> None:
    d = detect(BOARDS / "no-memory-controller")
    warning = next(r for r in d.reasons if "controller disabled" in r)
    assert "cgroup_disable=memory on the kernel command line" in warning
    assert "cgroup_enable=memory" in warning
    assert "memory controller DISABLED" in format_detection(d)


def test_cgroup_v2_ancestor_limit_is_tighter(tmp_path: Path) -> None:
    root = tree(tmp_path, "pi4-8gb")
    put(root, "sys/fs/cgroup/system.slice/gateway.service/memory.max", "4294967296\n")
    put(root, "sys/fs/cgroup/system.slice/memory.max", "1073741824\n")
    d = detect(root)
    assert d.cgroup_limit_bytes == 1 * GiB and d.usable_bytes == 1 * GiB
    assert d.profile == "pi3bplus"  # the Pi family's 1 GB class, not generic


def test_container_v2_at_the_cgroup_root(tmp_path: Path) -> None:
    root = tmp_path / "container"
    put(root, "proc/meminfo", "MemTotal:       16315612 kB\n")
    put(root, "proc/cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu lm sse\n")
    put(root, "proc/self/cgroup", "0::/\n")
    put(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    put(root, "sys/fs/cgroup/memory.max", "805306368\n")
    d = detect(root)
    assert (d.cgroup_limit_bytes, d.usable_bytes) == (768 * MiB, 768 * MiB)
    assert d.profile == "tiny"  # 768 MiB < generic-amd64's 1.5 GiB
    assert "cgroup v2 memory.max 768 MiB on /" in d.reasons


def test_cgroup_v1_unlimited_and_own_path(tmp_path: Path) -> None:
    root = tree(tmp_path, "cgroup-v1")
    put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    d = detect(root)
    assert d.cgroup_version == 1 and d.cgroup_limit_bytes is None and d.profile == "pi3bplus"
    own = (
        "sys/fs/cgroup/memory/docker/"
        + "3f2a9c1d0b7e4a5f8c6d2e1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"
    )
    put(root, f"{own}/memory.limit_in_bytes", "268435456\n")
    assert detect(root).cgroup_limit_bytes == 256 * MiB


def test_pi4_with_1gb_gets_the_1gb_class(tmp_path: Path) -> None:
    root = tree(tmp_path, "pi4-2gb")
    cpuinfo = (root / "proc/cpuinfo").read_text().replace("b03114", "a03111")
    put(root, "proc/cpuinfo", cpuinfo)
    put(root, "proc/meminfo", "MemTotal:         944084 kB\n")
    d = detect(root)
    assert d.board_ram_bytes == 1 * GiB and d.profile == "pi3bplus"


def test_pi5_uses_the_pi4_class(tmp_path: Path) -> None:
    root = tree(tmp_path, "pi4-8gb")
    put(root, "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0")
    put(root, "proc/device-tree/compatible", "raspberrypi,5-model-b\0brcm,bcm2712\0")
    put(root, "proc/cpuinfo", (root / "proc/cpuinfo").read_text().replace("d03114", "d04170"))
    d = detect(root)
    assert d.board.startswith("Raspberry Pi 5 rev 1.0 (BCM2712, 8 GB)")
    assert d.profile == "pi4-8gb"


def test_revision_from_the_device_tree_when_cpuinfo_has_none(tmp_path: Path) -> None:
    root = tree(tmp_path, "pi4-2gb")
    lines = (root / "proc/cpuinfo").read_text().splitlines(keepends=True)
    put(root, "proc/cpuinfo", "".join(x for x in lines if not x.startswith("Revision")))
    put(root, "proc/device-tree/system/linux,revision", (0xB03114).to_bytes(4, "big"))
    assert detect(root).revision == "b03114"


def test_pi_without_revision_uses_compatible(tmp_path: Path) -> None:
    root = tree(tmp_path, "pi-zero-2w")
    lines = (root / "proc/cpuinfo").read_text().splitlines(keepends=True)
    put(root, "proc/cpuinfo", "".join(x for x in lines if not x.startswith("Revision")))
    d = detect(root)
    assert d.revision is None and d.profile == "pi-zero-2w"
    assert d.board == "Raspberry Pi Zero 2 W Rev 1.0"


def test_empty_root_is_tiny(tmp_path: Path) -> None:
    d = detect(tmp_path)
    assert (d.profile, d.ram_bytes, d.usable_bytes, d.arch) == ("tiny", 0, 0, "unknown")
    assert (d.cgroup_version, d.memory_controller, d.model) == (None, False, "")
    assert "RAM: unknown" in d.reasons


def test_no_meminfo_falls_back_to_the_revision_ram(tmp_path: Path) -> None:
    root = tree(tmp_path, "pi3bplus")
    (root / "proc/meminfo").unlink()
    d = detect(root)
    assert d.ram_bytes == 1 * GiB and d.profile == "pi3bplus"


def test_this_machine() -> None:
    d = detect()
    assert isinstance(d, Detection) and d.profile in PROFILE_MIN_USABLE_BYTES
    assert d.arch != "unknown"


@pytest.mark.parametrize(
    ("code", "model", "cpu", "ram", "pcb", "maker"),
    [
        ("c03114", "4B", "BCM2711", 4 * GiB, "1.4", "Sony UK"),
        ("a03111", "4B", "BCM2711", 1 * GiB, "1.1", "Sony UK"),
        ("d03114", "4B", "BCM2711", 8 * GiB, "1.4", "Sony UK"),
        ("a020d3", "3B+", "BCM2837", 1 * GiB, "1.3", "Sony UK"),
        ("902120", "Zero 2 W", "BCM2837", 512 * MiB, "1.0", "Sony UK"),
        ("9000c1", "Zero W", "BCM2835", 512 * MiB, "1.1", "Sony UK"),
        ("a22082", "3B", "BCM2837", 1 * GiB, "1.2", "Embest"),
        ("c03130", "400", "BCM2711", 4 * GiB, "1.0", "Sony UK"),
        ("d04170", "5", "BCM2712", 8 * GiB, "1.0", "Sony UK"),
        ("0012", "A+", "BCM2835", 256 * MiB, "", ""),
        ("1000000e", "B", "BCM2835", 512 * MiB, "", ""),  # over-volted old-style code
    ],
)
def test_decode_pi_revision(
    code: str, model: str, cpu: str, ram: int, pcb: str, maker: str
) -> None:
    rev = decode_pi_revision(code)
    assert rev is not None
    assert (rev.model, rev.processor, rev.ram_bytes, rev.pcb, rev.maker) == (
        model,
        cpu,
        ram,
        pcb,
        maker,
    )


@pytest.mark.parametrize("code", ["0000", "zz", "", "0001", "ff03114", "c0f114"])
def test_decode_pi_revision_rejects(code: str) -> None:
    assert decode_pi_revision(code) is None


def test_format_detection() -> None:
    text = format_detection(detect(BOARDS / "cgroup-v2-limited"))
    assert text.startswith("board:      Raspberry Pi 4B rev 1.4 (BCM2711, 4 GB)\n")
    assert "\ncgroup:     v2, memory controller enabled, limit 256 MiB\n" in text
    assert "\nusable:     256 MiB\nprofile:    tiny\nwhy:\n  - model: " in text
    assert text.endswith("picked when nothing else fits\n")


# ---- detection and profiles agree -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROFILE_MIN_USABLE_BYTES))
def test_a_picked_profile_fits_the_memory_it_was_picked_for(name: str) -> None:
    s = load_settings(name, env={})
    need = PROFILE_MIN_USABLE_BYTES[name]
    if name == "tiny":  # the floor: picked for anything, sized for a 256 MB board
        assert s.systemd.memory_max_bytes < s.ram_bytes == 256 * MiB
    else:
        assert s.systemd.memory_max_bytes <= need < s.ram_bytes


@pytest.mark.parametrize(
    ("fixture", "profile"), [("pi4-2gb", "pi4-2gb"), ("cgroup-v2-limited", "tiny")]
)
def test_load_settings_auto(fixture: str, profile: str) -> None:
    s = load_settings("auto", env={"GATEWAY_ROOT": str(BOARDS / fixture)})
    assert s.profile == profile
