#!/usr/bin/env python3
"""Build the offline release tarball gateway-<version>.tar.gz.

Contents (one top directory, gateway-<version>/):
    install.sh gwinstall.py   the installer and its Python half (run with the release's venv)
    VERSION                   the version, one line
    wheels/*.whl              our wheel and every dependency, all pure Python (py3-none-any):
                              a board of any CPU architecture installs with --no-index
    systemd/                  gateway.service, gateway.socket
    profiles/*.toml           the board profiles (also inside our wheel; here for reading)
    gateway.env               the default /etc/gateway/gateway.env
    README.md                 deploy/README.md
    SHA256SUMS                of every file above

The source tree is copied to a temporary directory first, so a build never writes into the
work tree (setuptools' build/ and *.egg-info) and --version can set another version there.
Dependencies are resolved for each of --python-versions (pure wheels only: pip is told the
target is platform "any", so a package without a pure wheel fails the resolution), and the
build fails if any wheel's tag is not <py3>-none-any.

Usage: python3 deploy/build_release.py [--out DIR] [--version V] [--source DIR]
Exit status: 0 built (the tarball's path on stdout), 1 failed (why on stderr).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_PYTHONS = ("3.11", "3.12", "3.13")
# What never goes into the copied source tree.
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".hypothesis", "node_modules", "build", "dist", "*.egg-info", "*.log")
WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<ver>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
    r"-(?P<plat>[^-]+)\.whl$")
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*([abc]|rc|\.dev|\.post)?[0-9]*(\+[A-Za-z0-9.]+)?$")


class BuildError(Exception):
    pass


def _run(argv: list[str], **kw: object) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def pure_wheel_problem(filename: str) -> str | None:
    """Why a wheel file is not installable on any CPU architecture, or None if it is."""
    m = WHEEL_NAME.match(filename)
    if not m:
        return "not a wheel file name"
    pys = m["py"].split(".")
    if m["abi"] != "none" or m["plat"] != "any":
        return f"platform-specific ({m['py']}-{m['abi']}-{m['plat']})"
    if not any(p == "py3" or re.fullmatch(r"py3\d+", p) for p in pys):
        return f"not for Python 3 ({m['py']})"
    return None


def set_version(pyproject: Path, version: str) -> None:
    text = pyproject.read_text()
    new, n = re.subn(r'(?m)^version\s*=\s*"[^"]*"', f'version = "{version}"', text, count=1)
    if n != 1:
        raise BuildError(f"{pyproject}: no version = \"...\" line to set")
    pyproject.write_text(new)


def build(out: Path, source: Path, version: str | None, pythons: tuple[str, ...]) -> Path:
    if version is not None and not VERSION_RE.match(version):
        raise BuildError(f"--version {version!r}: expected a PEP 440 version like 1.2.3")
    with tempfile.TemporaryDirectory(prefix="gateway-release-") as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "src"
        shutil.copytree(source, src, ignore=IGNORE, symlinks=True)
        if version is not None:
            set_version(src / "pyproject.toml", version)
        with open(src / "pyproject.toml", "rb") as f:
            version = str(tomllib.load(f)["project"]["version"])

        top = f"gateway-{version}"
        stage = tmp / top
        wheels = stage / "wheels"
        wheels.mkdir(parents=True)
        ours = tmp / "ours"
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(ours),
              str(src)])
        built = sorted(ours.glob("gateway-*.whl"))
        if len(built) != 1:
            raise BuildError(f"expected one gateway wheel, got {[p.name for p in built]}")
        wheel = built[0]
        shutil.copy2(wheel, wheels / wheel.name)
        # Our dependencies, for every Python a board may have. "--platform any" with
        # --only-binary makes pip accept pure wheels only, whatever this machine is.
        for py in pythons:
            _run([sys.executable, "-m", "pip", "download", "--only-binary=:all:",
                  "--platform", "any", "--implementation", "py", "--abi", "none",
                  "--python-version", py, "--dest", str(wheels), str(wheel)])
        bad = {p.name: why for p in wheels.iterdir()
               if (why := pure_wheel_problem(p.name)) is not None}
        if bad:
            raise BuildError("not pure-Python wheels (a board of another CPU could not install "
                             "them): " + "; ".join(f"{n}: {w}" for n, w in sorted(bad.items())))

        shutil.copy2(HERE / "install.sh", stage / "install.sh")
        shutil.copy2(HERE / "gwinstall.py", stage / "gwinstall.py")
        shutil.copy2(HERE / "gateway.env", stage / "gateway.env")
        shutil.copy2(HERE / "README.md", stage / "README.md")
        os.chmod(stage / "install.sh", 0o755)
        (stage / "systemd").mkdir()
        for unit in ("gateway.service", "gateway.socket"):
            shutil.copy2(src / "systemd" / unit, stage / "systemd" / unit)
        (stage / "profiles").mkdir()
        for prof in sorted((src / "firmware_profiles").glob("*.toml")):
            shutil.copy2(prof, stage / "profiles" / prof.name)
        (stage / "VERSION").write_text(version + "\n")

        files = sorted(p for p in stage.rglob("*") if p.is_file())
        sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  "
                       f"{p.relative_to(stage)}\n" for p in files)
        (stage / "SHA256SUMS").write_text(sums)

        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{top}.tar.gz"
        partial = out / f".{top}.tar.gz.partial"
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None

        def normalize(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if epoch is not None:
                ti.mtime = epoch
            return ti

        with tarfile.open(partial, "w:gz") as tar:
            tar.add(stage, arcname=top, recursive=False, filter=normalize)
            for p in sorted(stage.rglob("*")):
                tar.add(p, arcname=f"{top}/{p.relative_to(stage)}", recursive=False,
                        filter=normalize)
        partial.replace(target)
        return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (dist/)")
    p.add_argument("--version", help="build this version instead of pyproject.toml's")
    p.add_argument("--source", type=Path, default=REPO, help="the source tree (this one)")
    p.add_argument("--python-versions", default=",".join(DEFAULT_PYTHONS),
                   help="Python versions boards may run, for dependency markers "
                        f"(default {','.join(DEFAULT_PYTHONS)})")
    args = p.parse_args(argv)
    pythons = tuple(v.strip() for v in args.python_versions.split(",") if v.strip())
    try:
        print(build(args.out.resolve(), args.source.resolve(), args.version, pythons))
    except BuildError as exc:
        print(f"build-release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
