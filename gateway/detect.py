# Board detection: reads the device tree, /proc/cpuinfo (Raspberry Pi revision code),
# /proc/meminfo and the cgroup memory limit below a root directory, and picks the hardware
# profile whose memory needs fit what the process may really use. Only reads files (tests point
# `root` at fixture trees); must not import trio, settings or any other gateway layer, so that
# `gateway detect` works even when a profile is broken.
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

__all__ = [
    "Detection",
    "PROFILE_MIN_USABLE_BYTES",
    "PiRevision",
    "decode_pi_revision",
    "detect",
    "format_detection",
]

MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB

# The usable memory (min of RAM and cgroup limit) a profile needs before detect() picks it. Each
# is at least the profile's systemd.memory_max_bytes (tests/test_detect.py checks), so the
# backstop always fits inside what the process may use, and just below the MemTotal a board of
# that class reports (a 1 GB Pi 3B+ shows ~0.9 GiB: the GPU and kernel keep the rest).
PROFILE_MIN_USABLE_BYTES: Final = MappingProxyType(
    {
        "pi4-8gb": 3 * GiB,  # 4 GB Pi 4 reports ~3.7 GiB
        "generic-amd64": 1536 * MiB,  # small x86 boxes and VMs start at 2 GB
        "pi4-2gb": 1536 * MiB,  # 2 GB Pi 4 reports ~1.8 GiB
        "pi3bplus": 768 * MiB,  # 1 GB Pi 3B+ reports ~0.9 GiB
        "generic-arm64": 768 * MiB,  # arm64 boards start at 1 GB
        "pi-zero-2w": 384 * MiB,  # 512 MB Zero 2 W reports ~430 MiB
        "beaglebone-black": 384 * MiB,  # 512 MB BeagleBone Black reports ~495 MiB
        "tiny": 0,  # the floor: chosen when nothing else fits
    }
)

# Raspberry Pi revision codes (new style: bit 23 set). Fields, low bit first: revision (4),
# type (8), processor (4), manufacturer (4), memory size (3), new-style flag (1).
_PI_TYPES: Final = MappingProxyType(
    {
        0x00: "A",
        0x01: "B",
        0x02: "A+",
        0x03: "B+",
        0x04: "2B",
        0x06: "CM1",
        0x08: "3B",
        0x09: "Zero",
        0x0A: "CM3",
        0x0C: "Zero W",
        0x0D: "3B+",
        0x0E: "3A+",
        0x10: "CM3+",
        0x11: "4B",
        0x12: "Zero 2 W",
        0x13: "400",
        0x14: "CM4",
        0x15: "CM4S",
        0x17: "5",
        0x18: "CM5",
        0x19: "500",
        0x1A: "CM5 Lite",
    }
)
_PI_CPUS: Final = ("BCM2835", "BCM2836", "BCM2837", "BCM2711", "BCM2712")
_PI_MAKERS: Final = ("Sony UK", "Egoman", "Embest", "Sony Japan", "Embest", "Stadium")
# Old-style codes 0002-0015 (Pi 1 and CM1): type and RAM in MiB.
_PI_OLD: Final = MappingProxyType(
    {
        **dict.fromkeys((0x2, 0x3, 0x4, 0x5, 0x6), ("B", 256)),
        **dict.fromkeys((0x7, 0x8, 0x9), ("A", 256)),
        **dict.fromkeys((0xD, 0xE, 0xF), ("B", 512)),
        0x10: ("B+", 512),
        0x11: ("CM1", 512),
        0x12: ("A+", 256),
        0x13: ("B+", 512),
        0x14: ("CM1", 512),
        0x15: ("A+", 256),
    }
)

# Board family -> profiles to try, best first; generic-<arch> and tiny always follow.
_PI4_LADDER: Final = ("pi4-8gb", "pi4-2gb", "pi3bplus", "pi-zero-2w")
_PI3_LADDER: Final = ("pi3bplus", "pi-zero-2w")
_ZERO2_LADDER: Final = ("pi-zero-2w",)
_BCM2835_LADDER: Final = ("tiny",)  # single-core ARMv6: the smallest profile whatever the RAM
_UNLIMITED: Final = 1 << 60  # cgroup v1 writes "no limit" as ~2**63


class PiRevision(NamedTuple):
    """A decoded Raspberry Pi revision code."""

    code: str  # as in /proc/cpuinfo, e.g. "c03114"
    model: str  # "4B", "3B+", "Zero 2 W", ...
    processor: str  # "BCM2711"
    ram_bytes: int
    pcb: str  # "1.4"
    maker: str


@dataclass(frozen=True, slots=True)
class Detection:
    """What detect() found and the profile it picked; ``reasons`` says why, in order."""

    model: str  # device-tree (or DMI) model, "" if none
    compatible: tuple[str, ...]  # device-tree compatible strings, most specific first
    revision: str | None  # Raspberry Pi revision code, None on other boards
    board: str  # what detect() made of it, e.g. "Raspberry Pi 4B rev 1.4"
    arch: str  # "aarch64", "armv7l", "x86_64", ... or "unknown"
    cores: int  # processors in /proc/cpuinfo, 0 if unknown
    ram_bytes: int  # MemTotal, else the revision code's RAM, else 0
    board_ram_bytes: int | None  # RAM fitted to the board (from the revision code)
    cgroup_version: int | None  # 1, 2, or None when no cgroup fs is mounted
    cgroup_limit_bytes: int | None  # the tightest memory limit over our cgroup, None if none
    memory_controller: bool  # False: MemoryMax= in a unit file does nothing
    usable_bytes: int  # min(ram_bytes, cgroup_limit_bytes)
    profile: str
    reasons: tuple[str, ...]


def decode_pi_revision(code: str) -> PiRevision | None:
    """Decode a Raspberry Pi revision code from /proc/cpuinfo.

    Args:
        code: hex text such as "c03114" (new style) or "000e" / "1000000e" (old style, with
            the over-voltage prefix).

    Returns:
        The decoded revision, or None if the code is not a known Raspberry Pi code.
    """
    try:
        value = int(code, 16)
    except ValueError:
        return None
    if value & (1 << 23):
        model = _PI_TYPES.get((value >> 4) & 0xFF)
        cpu, maker, mem = (value >> 12) & 0xF, (value >> 16) & 0xF, (value >> 20) & 0x7
        if model is None or cpu >= len(_PI_CPUS) or mem > 6:
            return None
        maker_name = _PI_MAKERS[maker] if maker < len(_PI_MAKERS) else f"maker {maker}"
        return PiRevision(
            code, model, _PI_CPUS[cpu], (256 * MiB) << mem, f"1.{value & 0xF}", maker_name
        )
    old = _PI_OLD.get(value & 0xFFFFFF)
    if old is None:
        return None
    return PiRevision(code, old[0], "BCM2835", old[1] * MiB, "", "")


def _read(root: Path, rel: str) -> bytes | None:
    try:
        return (root / rel).read_bytes()
    except OSError:
        return None


def _text(root: Path, rel: str) -> str:
    data = _read(root, rel)
    return data.decode("utf-8", "replace").strip("\0\n ") if data else ""


def _human(n: int | None) -> str:
    if n is None:
        return "none"
    unit, size = ("GiB", GiB) if n >= GiB else ("MiB", MiB)
    return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"


def _cpuinfo(root: Path) -> tuple[dict[str, str], int]:
    """First value of each /proc/cpuinfo key, and the number of processors."""
    fields: dict[str, str] = {}
    cores = 0
    for line in _text(root, "proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            key = key.strip()
            cores += key == "processor"
            fields.setdefault(key, value.strip())
    return fields, cores


def _arch(root: Path, cpu: dict[str, str]) -> str:
    arch = _text(root, "proc/sys/kernel/arch")
    if arch:
        return arch
    if "vendor_id" in cpu:
        return "x86_64" if " lm " in f" {cpu.get('flags', '')} " else "i686"
    if "ARMv6" in cpu.get("model name", ""):
        return "armv6l"
    if cpu.get("CPU architecture") in ("7", "8"):
        return {"7": "armv7l", "8": "aarch64"}[cpu["CPU architecture"]]
    if cpu.get("isa", "").startswith("rv64"):
        return "riscv64"
    if root.resolve() == Path("/"):  # our own machine: the interpreter knows
        return platform.machine() or "unknown"
    return "unknown"


def _meminfo_bytes(root: Path) -> int:
    for line in _text(root, "proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else 0
    return 0


def _cgroup(root: Path, reasons: list[str]) -> tuple[int | None, bool, int | None]:
    """(version, memory controller enabled, tightest memory limit) for this process."""
    base = root / "sys/fs/cgroup"
    own: dict[str, str] = {}  # "" -> v2 path, "memory" -> v1 memory path
    for line in _text(root, "proc/self/cgroup").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    controllers_file = _read(root, "sys/fs/cgroup/cgroup.controllers")
    if controllers_file is not None:
        enabled = "memory" in controllers_file.decode("ascii", "replace").split()
        limits = []
        rel = Path(own.get("", "/").strip("/"))
        for d in (rel, *rel.parents):  # our cgroup and every ancestor limit us
            text = _text(root, str(Path("sys/fs/cgroup") / d / "memory.max"))
            if text.isdigit():
                limits.append(int(text))
                where = "/" if str(d) == "." else f"/{d}"
                reasons.append(f"cgroup v2 memory.max {_human(int(text))} on {where}")
        return 2, enabled, min(limits) if limits else None
    if (base / "memory").is_dir():
        rel_v1 = own.get("memory", "/").strip("/")
        for f in (
            f"sys/fs/cgroup/memory/{rel_v1}/memory.limit_in_bytes",
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
        ):
            text = _text(root, f.replace("//", "/"))
            if text.isdigit():
                limit = int(text) if int(text) < _UNLIMITED else None
                reasons.append(f"cgroup v1 memory.limit_in_bytes {_human(limit)} ({text})")
                return 1, True, limit
        return 1, True, None
    return None, False, None


def _family(
    rev: PiRevision | None, compatible: tuple[str, ...], model: str
) -> tuple[str, tuple[str, ...]]:
    """(board description, profile ladder) from the revision code or the device tree."""
    compat = set(compatible)
    if rev is not None:
        ram = f"{rev.ram_bytes // MiB} MB" if rev.ram_bytes < GiB else f"{rev.ram_bytes // GiB} GB"
        name = f"Raspberry Pi {rev.model}" + (f" rev {rev.pcb}" if rev.pcb else "")
        name += f" ({rev.processor}, {ram})"
        if rev.model == "Zero 2 W":
            return name, _ZERO2_LADDER
        cpu = rev.processor
    elif any(c.startswith("raspberrypi,") for c in compat) or model.startswith("Raspberry Pi"):
        name = model or "Raspberry Pi"
        if "raspberrypi,model-zero-2-w" in compat:
            return name, _ZERO2_LADDER
        cpu = next(
            (
                c.removeprefix("brcm,").upper()
                for c in compatible
                if c.removeprefix("brcm,").upper() in _PI_CPUS
            ),
            "",
        )
    elif any(c.startswith("ti,am335x") for c in compat):
        return model or "TI AM335x BeagleBone", ("beaglebone-black",)
    else:
        return model or "unknown", ()
    if cpu in ("BCM2711", "BCM2712"):
        return name, _PI4_LADDER
    if cpu in ("BCM2836", "BCM2837"):
        return name, _PI3_LADDER
    return name, _BCM2835_LADDER if cpu == "BCM2835" else ()


def detect(root: str | os.PathLike[str] = "/") -> Detection:
    """Detect the board and pick the profile whose memory needs fit the usable memory.

    Args:
        root: the directory that stands for "/" (tests point it at a fixture tree).

    Returns:
        A Detection; ``profile`` is a profile name (``find_profile`` resolves it) and
        ``reasons`` explains each step. Unknown hardware is no error: it gets generic-<arch>
        or tiny.
    """
    top = Path(root)
    reasons: list[str] = []
    dt = next(
        (p for p in ("proc/device-tree", "sys/firmware/devicetree/base") if (top / p).is_dir()),
        None,
    )
    model = _text(top, f"{dt}/model") if dt else ""
    raw = (_read(top, f"{dt}/compatible") or b"") if dt else b""
    compatible = tuple(c.decode("ascii", "replace") for c in raw.split(b"\0") if c)
    if not model:
        dmi = [_text(top, f"sys/class/dmi/id/{f}") for f in ("sys_vendor", "product_name")]
        model = " ".join(p for p in dmi if p)
    reasons.append(f"model: {model or 'unknown'}")
    cpu, cores = _cpuinfo(top)
    rev = None
    is_pi = (
        any(c.startswith("raspberrypi,") for c in compatible)
        or model.startswith("Raspberry Pi")
        or cpu.get("Hardware", "").startswith("BCM")
    )
    code = cpu.get("Revision", "")
    if not code and is_pi:  # arm64 kernels without the Revision line: the device tree has it
        data = _read(top, "proc/device-tree/system/linux,revision") or b""
        code = f"{int.from_bytes(data, 'big'):x}" if len(data) == 4 else ""
    if is_pi and code:
        rev = decode_pi_revision(code)
        reasons.append(
            f"revision {code}: "
            + (
                f"Raspberry Pi {rev.model}, {rev.processor}, {_human(rev.ram_bytes)}"
                + (f", made by {rev.maker}" if rev.maker else "")
                if rev
                else "not a known code"
            )
        )
    board, ladder = _family(rev, compatible, model)
    arch = _arch(top, cpu)
    ram = _meminfo_bytes(top)
    board_ram = rev.ram_bytes if rev else None
    reasons.append(
        f"RAM: MemTotal {_human(ram)}"
        if ram
        else f"RAM: no /proc/meminfo; using the board's {_human(board_ram)}"
        if board_ram
        else "RAM: unknown"
    )
    ram = ram or board_ram or 0
    version, controller, limit = _cgroup(top, reasons)
    if version is not None and not controller:
        cmdline = _text(top, "proc/cmdline").split()
        why = (
            " (cgroup_disable=memory on the kernel command line)"
            if ("cgroup_disable=memory" in cmdline)
            else ""
        )
        reasons.append(
            f"memory cgroup controller disabled{why}: systemd MemoryMax=/MemoryHigh="
            " are not enforced; add cgroup_enable=memory cgroup_memory=1 to "
            "cmdline.txt to enable the backstop"
        )
    usable = min(ram, limit) if ram and limit is not None else (ram or limit or 0)
    reasons.append(
        f"usable memory: {_human(usable)}"
        + (f" = min(RAM {_human(ram)}, cgroup limit {_human(limit)})" if limit is not None else "")
    )
    generic = "generic-amd64" if arch in ("x86_64", "amd64", "i686", "i386") else "generic-arm64"
    if not ladder:
        reasons.append(f"no board profile for {board!r}; arch {arch}: trying {generic}")
    profile = "tiny"
    for name in dict.fromkeys((*ladder, generic, "tiny")):
        need = PROFILE_MIN_USABLE_BYTES[name]
        if usable >= need:
            profile = name
            reasons.append(
                f"profile {name}: needs {_human(need)} usable, fits"
                if need
                else f"profile {name}: the smallest profile, picked when nothing else fits"
            )
            break
        reasons.append(f"profile {name}: needs {_human(need)} usable, have {_human(usable)}")
    return Detection(
        model,
        compatible,
        rev.code if rev else None,
        board,
        arch,
        cores,
        ram,
        board_ram,
        version,
        limit,
        controller,
        usable,
        profile,
        tuple(reasons),
    )


def format_detection(d: Detection) -> str:
    """Detection as text for ``gateway detect``.

    Args:
        d: what ``detect`` returned.

    Returns:
        Aligned "field: value" lines, then the reasons as a bullet list.
    """
    cgroup = (
        "none"
        if d.cgroup_version is None
        else f"v{d.cgroup_version}, memory controller "
        f"{'enabled' if d.memory_controller else 'DISABLED'}, "
        f"limit {_human(d.cgroup_limit_bytes)}"
    )
    rows = [
        ("board", d.board),
        ("model", d.model or "unknown"),
        ("compatible", ", ".join(d.compatible) or "none"),
        ("revision", d.revision or "none"),
        ("arch", d.arch),
        ("cores", str(d.cores or "unknown")),
        ("RAM", _human(d.ram_bytes)),
        ("cgroup", cgroup),
        ("usable", _human(d.usable_bytes)),
        ("profile", d.profile),
    ]
    lines = [f"{k + ':':<12}{v}" for k, v in rows]
    return "\n".join([*lines, "why:", *(f"  - {r}" for r in d.reasons)]) + "\n"
