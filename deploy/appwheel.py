# The app half of build_release.py: turns a device developer's app (a module file, a package
# directory, a project directory with a pyproject.toml, a wheel, or a requirement pip can fetch)
# into exactly one wheel plus what install.sh needs to know about it (distribution, version,
# MODULE:ATTR), reads its requirements file, and explains pip's "no matching distribution" as
# "this package has no pure-Python wheel". It must not resolve dependencies or write the
# tarball (build_release.py does), and never imports the app (install.sh checks it on the board).
from __future__ import annotations

import ast
import base64
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# MODULE[.SUB...][:ATTR]: what `gateway serve` takes (install.sh re-checks it in shell).
SPEC_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$", re.ASCII)
# A PEP 440 version as it may appear in a release directory name (no epoch "!").
APP_VERSION_RE = re.compile(
    r"^[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?"
    r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?$",
    re.ASCII | re.IGNORECASE,
)
DIST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", re.ASCII)
# What is not copied from a project directory before pip builds it.
PROJECT_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    ".hypothesis",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
)
# Files of a package directory that never go into its wheel.
SKIP_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis"}
SKIP_SUFFIXES = (".pyc", ".pyo")
# Where a wheel's platform tag names the CPU: manylinux2014_aarch64, manylinux_2_17_armv7l,
# musllinux_1_1_x86_64, linux_armv7l.
ARCH_RE = re.compile(r"^(?:many|musl)?linux(?:1|2010|2014|_\d+_\d+)?_(?P<arch>\w+)$")


class AppError(Exception):
    """The app cannot be packed (exit 1 of build_release.py, message on stderr)."""


@dataclass(frozen=True)
class AppWheel:
    """The app, packed: its wheel and what install.sh needs to install and serve it."""

    wheel: Path
    dist: str
    version: str
    spec: str
    top_level: frozenset[str]


def wheel_file_name(dist: str, version: str, tag: str = "py3-none-any") -> str:
    """The file name of a wheel (PEP 427: runs of -_. in the name become _)."""
    return f"{re.sub(r'[-_.]+', '_', dist)}-{version.replace('-', '_')}-{tag}.whl"


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines.

    Raises:
        AppError: the file is missing, or a line is an option (``-r``, ``-e``, ``--index-url``,
            ...): an offline release resolves from its own wheels only, so where packages come
            from is said on build_release.py's command line (``--find-links``) instead.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise AppError(f"--app-requirements {path}: {exc.strerror or exc}") from None
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-") or " -" in line:
            raise AppError(
                f"{path}:{n}: {line!r}: options are not supported in an app's "
                "requirements (give --find-links DIR to build_release.py instead)"
            )
        if "://" in line or line.startswith((".", "/")):
            raise AppError(
                f"{path}:{n}: {line!r}: expected a requirement like 'name>=1.0' "
                "(put a local wheel in a --find-links directory and name it)"
            )
        out.append(line)
    return out


def missing_binaries(pip_output: str) -> list[str]:
    """The projects pip could not find an acceptable wheel of, from its error output."""
    found = re.findall(r"No matching distribution found for ([A-Za-z0-9._-]+)", pip_output)
    return list(dict.fromkeys(found))


def explain_missing(
    names: Iterable[str], pythons: Iterable[str], platforms: Iterable[str], pip_tail: str
) -> str:
    """Why the app's dependencies could not be resolved, and what to do about it."""
    names, platforms = list(names), list(platforms)
    which = ", ".join(names)
    py = ", ".join(pythons)
    if platforms:
        return (
            f"no wheel of {which} for platform {' or '.join(platforms)} (CPython {py}) was "
            "found. Build one for the board (pip wheel on the board, or a cross build) and "
            "give its directory with --find-links DIR, or check the platform tag "
            f"(e.g. manylinux2014_aarch64, linux_armv7l).\n{pip_tail}"
        )
    return (
        f"{which} has no pure-Python wheel (py3-none-any) for Python {py}, so a board of "
        "another CPU could not install it offline. Either build the release for the "
        "board's platform: --app-platform manylinux2014_aarch64 (64-bit Raspberry Pi OS; "
        "armv7l boards: linux_armv7l wheels from a --find-links directory, e.g. built on "
        "the board with `pip wheel`) and --python-versions set to the board's Python; or "
        f"use a pure-Python alternative.\n{pip_tail}"
    )


def wheel_arch(tag: str) -> str | None:
    """The CPU a platform tag names (``manylinux_2_17_aarch64`` -> ``aarch64``), or None."""
    m = ARCH_RE.match(tag)
    return m["arch"] if m else None


def top_level_names(wheel: Path) -> frozenset[str]:
    """The importable top-level names a wheel installs (modules and packages)."""
    names = set()
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            first = member.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in member:
                names.add(first)
            elif first.endswith(".py"):
                names.add(first[:-3])
            elif first.endswith((".so", ".pyd")):
                names.add(first.split(".", 1)[0])
    return frozenset(names)


def wheel_metadata(wheel: Path) -> tuple[str, str]:
    """The Name and Version of a wheel's METADATA.

    Raises:
        AppError: it is not a readable wheel.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            meta = [
                n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(meta) != 1:
                raise AppError(f"{wheel.name}: not a wheel (no single *.dist-info/METADATA)")
            text = zf.read(meta[0]).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile) as exc:
        raise AppError(f"{wheel}: not a wheel ({exc})") from None
    head = text.split("\n\n", 1)[0]
    fields = dict(re.findall(r"(?m)^(Name|Version):\s*(\S+)\s*$", head))
    if "Name" not in fields or "Version" not in fields:
        raise AppError(f"{wheel.name}: METADATA has no Name or Version")
    return fields["Name"], fields["Version"]


def _module_version(source: Path) -> str | None:
    """A literal ``__version__ = "..."`` at the top level of a module, without importing it."""
    try:
        tree = ast.parse(source.read_text(), str(source))
    except (OSError, SyntaxError, ValueError):
        return None  # a broken module is install.sh's check to report, on the board
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "__version__"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def _files_of(src: Path) -> list[tuple[str, Path]]:
    """(archive name, file) for a module file or every file of a package directory."""
    if src.is_file():
        return [(src.name, src)]
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SKIP_SUFFIXES):
                continue
            path = Path(dirpath) / name
            out.append((f"{src.name}/{path.relative_to(src).as_posix()}", path))
    return out


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_module_wheel(src: Path, version: str | None, out_dir: Path) -> tuple[Path, str, str]:
    """Pack a bare module file or package directory as a pure wheel, by hand (a wheel is a
    zip with a dist-info), reproducibly (SOURCE_DATE_EPOCH, or 1980, for every timestamp).

    Args:
        src: ``myapp.py`` or a directory with an ``__init__.py``.
        version: the app's version; None: its ``__version__`` literal, else ``0+<hash>`` of its
            files (so changed code always makes a new release).
        out_dir: where the wheel goes.

    Returns:
        (the wheel, the distribution name, the version)

    Raises:
        AppError: not a module or package, a name that is not importable, a bad version.
    """
    if src.is_file():
        if src.suffix != ".py":
            raise AppError(
                f"--app {src}: expected a .py module, a package directory, a "
                "project directory with a pyproject.toml, or a .whl"
            )
        module, version_source = src.stem, src
    else:
        module, version_source = src.name, src / "__init__.py"
    if not re.fullmatch(r"[A-Za-z_]\w*", module, re.ASCII):
        raise AppError(f"--app {src}: {module!r} is not an importable module name")
    files = _files_of(src)
    if version is None:
        version = _module_version(version_source)
    if version is None:
        h = hashlib.sha256()
        for arc, path in files:
            h.update(arc.encode() + b"\0" + path.read_bytes() + b"\0")
        version = f"0+{h.hexdigest()[:12]}"
    if not APP_VERSION_RE.match(version):
        raise AppError(
            f"app version {version!r}: expected a version like 1.2.3 "
            "(--app-version, or __version__ in the module)"
        )
    dist = module
    info = f"{re.sub(r'[-_.]+', '_', dist)}-{version}.dist-info"
    meta = {
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
            f"Summary: {dist}, packed for gateway by build_release.py\n"
        ),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: gateway build_release.py\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": f"{module}\n",
    }
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or 315532800  # 1980-01-01
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / wheel_file_name(dist, version)
    record = []

    def add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        zi = zipfile.ZipInfo(name, date_time=stamp)
        zi.external_attr = 0o644 << 16
        zi.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(zi, data)
        record.append(f"{name},{_record_hash(data)},{len(data)}")

    with zipfile.ZipFile(wheel, "w") as zf:
        for arc, path in files:
            add(zf, arc, path.read_bytes())
        for name, text in meta.items():
            add(zf, name, text.encode())
        record.append(f"{info}/RECORD,,")
        zi = zipfile.ZipInfo(f"{info}/RECORD", date_time=stamp)
        zi.external_attr = 0o644 << 16
        zf.writestr(zi, "\n".join(record) + "\n")
    return wheel, dist, version


def pack_app(
    app: str,
    spec: str | None,
    version: str | None,
    find_links: list[Path],
    out_dir: Path,
    run: Callable[[list[str]], None],
    pip_target: list[str],
) -> AppWheel:
    """The app as one wheel in ``out_dir``, with its distribution, version and MODULE:ATTR.

    Args:
        app: a ``.py`` file, a package directory, a project directory (pyproject.toml), a
            ``.whl``, or else a requirement (``myapp==1.2``) fetched with pip.
        spec: MODULE:ATTR; None: ``<the app's only top-level module>:app``.
        version: only for a bare module or package (a project or wheel has its own).
        find_links: directories pip may take wheels from (for a requirement).
        out_dir: an empty temporary directory.
        run: runs a command, raising on failure (build_release's, with pip's environment).
        pip_target: the --platform/--implementation/--abi/--python-version options the
            dependencies are resolved with (for a requirement fetched with pip).

    Raises:
        AppError: anything that keeps the app from being packed, said plainly.
    """
    path = Path(app)
    is_project = path.is_dir() and (path / "pyproject.toml").is_file()
    is_source = (path.is_file() and path.suffix == ".py") or (path.is_dir() and not is_project)
    looks_like_path = "/" in app or app.endswith((".py", ".whl")) or app in (".", "..")
    if not path.exists() and looks_like_path:
        raise AppError(f"--app {app}: no such file or directory")
    if path.is_file() and path.suffix not in (".py", ".whl"):
        raise AppError(
            f"--app {app}: expected a .py module, a package directory, a project "
            "directory with a pyproject.toml, a .whl, or a requirement"
        )
    if version is not None and not is_source:
        raise AppError(
            "--app-version applies to a bare module or package; a project, a "
            "wheel or a requirement carries its own version"
        )
    if is_source:
        if path.is_dir() and not (path / "__init__.py").is_file():
            raise AppError(
                f"--app {app}: a directory must be a package (with __init__.py) "
                "or a project (with pyproject.toml)"
            )
        wheel, dist, version = build_module_wheel(path.resolve(), version, out_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="gateway-app-") as tmp_s:
            tmp = wheel_dir = Path(tmp_s)
            if is_project:
                # pip's own build (isolated, with the project's declared build backend), from a
                # copy: a build never writes build/ or *.egg-info into the developer's tree.
                src = tmp / "src"
                shutil.copytree(path, src, symlinks=True, ignore=PROJECT_IGNORE)
                run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "wheel",
                        "--no-deps",
                        "--wheel-dir",
                        str(tmp / "built"),
                        str(src),
                    ]
                )
                wheel_dir = tmp / "built"
            elif path.is_file():
                shutil.copy2(path, tmp / path.name)
            else:
                argv = [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    *pip_target,
                    "--dest",
                    str(tmp),
                ]
                for d in find_links:
                    argv += ["--find-links", str(d)]
                run([*argv, app])
            built = sorted(wheel_dir.glob("*.whl"))
            if len(built) != 1:
                raise AppError(
                    f"--app {app}: expected one wheel, got {[p.name for p in built] or 'none'}"
                )
            out_dir.mkdir(parents=True, exist_ok=True)
            wheel = out_dir / built[0].name
            shutil.copy2(built[0], wheel)
        dist, version = wheel_metadata(wheel)
        if not APP_VERSION_RE.match(version):
            raise AppError(
                f"{wheel.name}: version {version!r} cannot name a release "
                "(expected a PEP 440 version without an epoch)"
            )
    if not DIST_RE.match(dist):
        raise AppError(f"app distribution name {dist!r}: expected [A-Za-z0-9._-]")
    top = top_level_names(wheel)
    if spec is None:
        if len(top) != 1:
            raise AppError(
                f"{wheel.name} installs {sorted(top) or 'no modules'}: say which "
                "app to serve with --app-spec MODULE:ATTR"
            )
        spec = f"{next(iter(top))}:app"
    if not SPEC_RE.match(spec):
        raise AppError(f"--app-spec {spec!r}: expected MODULE:ATTR, e.g. myapp:app")
    if ":" not in spec:
        spec += ":app"
    module = spec.split(":", 1)[0].split(".", 1)[0]
    if module not in top:
        raise AppError(
            f"--app-spec {spec}: {wheel.name} has no module {module!r} (it "
            f"installs {sorted(top) or 'nothing importable'})"
        )
    return AppWheel(wheel=wheel, dist=dist, version=version, spec=spec, top_level=top)
