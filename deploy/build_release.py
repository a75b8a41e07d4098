#!/usr/bin/env python3
"""Build the offline release tarball gateway-<version>.tar.gz.

Contents (one top directory, gateway-<version>/):
    install.sh gwinstall.py   the installer and its Python half (run with the release's venv)
    VERSION                   the version, one line
    wheels/*.whl              our wheel and every dependency, all pure Python (py3-none-any):
                              a board of any CPU architecture installs with --no-index
    systemd/                  gateway.service, gateway.socket, examples/ (drop-ins to adapt)
    profiles/*.toml           the board profiles (also inside our wheel; here for reading)
    gateway.env               the default /etc/gateway/gateway.env
    README.md                 deploy/README.md
    APP                       with --app only: the app's MODULE:ATTR, distribution and version
    app-requirements.txt      with --app-requirements only: the app's requirement lines
    SHA256SUMS                of every file above

The source tree is copied to a temporary directory first, so a build never writes into the
work tree (setuptools' build/ and *.egg-info) and --version can set another version there.
Dependencies are resolved for each of --python-versions (pure wheels only: pip is told the
target is platform "any", so a package without a pure wheel fails the resolution), and the
build fails if any wheel's tag is not <py3>-none-any.

With --app, the device developer's app (a module file, a package directory, a project directory,
a wheel or a requirement; appwheel.py packs it as one wheel) and its requirements are resolved
together with our wheel into the same wheels/, pure wheels only unless --app-platform names the
board's platform. The release is then gateway-<gateway version>-<app>-<app version>: the app
and the gateway it runs on are installed, upgraded and rolled back as one.

Usage: python3 deploy/build_release.py [--out DIR] [--version V] [--source DIR]
           [--app PATH_OR_REQUIREMENT [--app-spec MODULE:ATTR] [--app-version V]
            [--app-requirements FILE] [--find-links DIR]... [--app-platform TAG]...]
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
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# appwheel.py lives beside this script (also when a test loads this file by its path).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import appwheel  # noqa: E402

REPO = HERE.parent
DEFAULT_PYTHONS = ("3.11", "3.12", "3.13")
# What never goes into the copied source tree.
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "*.log",
)
WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<ver>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
    r"-(?P<plat>[^-]+)\.whl$"
)
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*([abc]|rc|\.dev|\.post)?[0-9]*(\+[A-Za-z0-9.]+)?$")


class BuildError(Exception):
    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output  # the failed command's own output, for callers that read it


@dataclass
class AppOptions:
    """--app and the options that go with it."""

    app: str
    spec: str | None = None
    version: str | None = None
    requirements: Path | None = None
    find_links: list[Path] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)


def _run(argv: list[str], **kw: object) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw
    )  # type: ignore[call-overload]
    if proc.returncode != 0:
        out = f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        raise BuildError(f"{' '.join(argv)} failed ({proc.returncode}):\n{out}", out)


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


def app_wheel_problem(filename: str, platforms: list[str]) -> str | None:
    """Why a wheel of the app's dependencies does not fit the release, or None if it does:
    pure wheels always fit; platform wheels only for the CPU of an --app-platform."""
    why = pure_wheel_problem(filename)
    if why is None or not platforms or not why.startswith("platform-specific"):
        return why
    m = WHEEL_NAME.match(filename)
    assert m is not None  # pure_wheel_problem said it is a wheel name
    archs = {appwheel.wheel_arch(p) for p in platforms} - {None}
    if m["plat"] == "any" or any(appwheel.wheel_arch(t) in archs for t in m["plat"].split(".")):
        return None
    return f"{why}, not for {' or '.join(platforms)}"


def set_version(pyproject: Path, version: str) -> None:
    text = pyproject.read_text()
    new, n = re.subn(r'(?m)^version\s*=\s*"[^"]*"', f'version = "{version}"', text, count=1)
    if n != 1:
        raise BuildError(f'{pyproject}: no version = "..." line to set')
    pyproject.write_text(new)


def _pip_target(py: str, platforms: list[str]) -> list[str]:
    """pip download's options for what a board runs: pure wheels, or the given platforms."""
    if not platforms:
        # "--platform any" with --only-binary makes pip accept pure wheels only, whatever
        # this machine is.
        return [
            "--platform",
            "any",
            "--implementation",
            "py",
            "--abi",
            "none",
            "--python-version",
            py,
        ]
    return [a for p in platforms for a in ("--platform", p)] + [
        "--implementation",
        "cp",
        "--python-version",
        py,
    ]


def add_app(
    opts: AppOptions, gateway_wheel: Path, wheels: Path, tmp: Path, pythons: tuple[str, ...]
) -> tuple[appwheel.AppWheel, list[str]]:
    """Pack the app and resolve it, its requirements and our wheel together into ``wheels``.

    Returns:
        the packed app and its requirement lines (for app-requirements.txt)

    Raises:
        BuildError: the app cannot be packed or resolved (which package, and what to do).
    """
    try:
        reqs = (
            appwheel.read_requirements(opts.requirements) if opts.requirements is not None else []
        )
        app = appwheel.pack_app(
            opts.app,
            opts.spec,
            opts.version,
            opts.find_links,
            tmp / "app",
            _run,
            _pip_target(pythons[0], opts.platforms),
        )
    except appwheel.AppError as exc:
        raise BuildError(str(exc)) from None
    ours = {appwheel.normalize(p.name.split("-", 1)[0]) for p in wheels.glob("*.whl")}
    if appwheel.normalize(app.dist) in ours:
        raise BuildError(
            f"the app's distribution name {app.dist!r} is also the name of the "
            "gateway or one of its dependencies: rename the app"
        )
    taken = set().union(*(appwheel.top_level_names(p) for p in wheels.glob("*.whl")))
    if clash := sorted(app.top_level & taken):
        raise BuildError(
            f"the app's module(s) {clash} would shadow the gateway's own or a "
            "dependency's: rename them"
        )
    shutil.copy2(app.wheel, wheels / app.wheel.name)
    req_file = tmp / "app-requirements.txt"
    req_file.write_text("".join(f"{r}\n" for r in reqs))
    # One resolution with our wheel, so that the app's requirements and ours agree.
    for py in pythons:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            *_pip_target(py, opts.platforms),
            "--dest",
            str(wheels),
            "--find-links",
            str(wheels),
        ]
        for d in opts.find_links:
            argv += ["--find-links", str(d.resolve())]
        try:
            _run([*argv, str(gateway_wheel), str(wheels / app.wheel.name), "-r", str(req_file)])
        except BuildError as exc:
            missing = appwheel.missing_binaries(exc.output)
            if not missing:
                raise
            raise BuildError(
                appwheel.explain_missing(missing, [py], opts.platforms, exc.output[-1500:])
            ) from None
    return app, reqs


def build(
    out: Path,
    source: Path,
    version: str | None,
    pythons: tuple[str, ...],
    app_opts: AppOptions | None = None,
) -> Path:
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

        gateway_version = version
        stage = tmp / "stage"
        wheels = stage / "wheels"
        wheels.mkdir(parents=True)
        ours = tmp / "ours"
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(ours), str(src)]
        )
        built = sorted(ours.glob("gateway-*.whl"))
        if len(built) != 1:
            raise BuildError(f"expected one gateway wheel, got {[p.name for p in built]}")
        wheel = built[0]
        shutil.copy2(wheel, wheels / wheel.name)
        # Our dependencies, for every Python a board may have: pure wheels only.
        for py in pythons:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--only-binary=:all:",
                    *_pip_target(py, []),
                    "--dest",
                    str(wheels),
                    str(wheel),
                ]
            )
        bad = {
            p.name: why for p in wheels.iterdir() if (why := pure_wheel_problem(p.name)) is not None
        }
        if bad:
            raise BuildError(
                "not pure-Python wheels (a board of another CPU could not install "
                "them): " + "; ".join(f"{n}: {w}" for n, w in sorted(bad.items()))
            )
        app: appwheel.AppWheel | None = None
        if app_opts is not None:
            app, reqs = add_app(app_opts, wheel, wheels, tmp, pythons)
            bad = {
                p.name: why
                for p in wheels.iterdir()
                if (why := app_wheel_problem(p.name, app_opts.platforms)) is not None
            }
            if bad:
                raise BuildError(
                    "wheels a board could not install (pure-Python wheels install on any CPU; "
                    "others need --app-platform for the board's CPU): "
                    + "; ".join(f"{n}: {w}" for n, w in sorted(bad.items()))
                )
            version = f"{gateway_version}-{app.dist}-{app.version}"
            if reqs:
                (stage / "app-requirements.txt").write_text("".join(f"{r}\n" for r in reqs))
            (stage / "APP").write_text(
                "# The app this release carries (build_release.py --app); install.sh installs\n"
                "# DIST==VERSION with gateway==GATEWAY_VERSION and serves SPEC.\n"
                f"SPEC={app.spec}\nDIST={app.dist}\nVERSION={app.version}\n"
                f"GATEWAY_VERSION={gateway_version}\n"
                f"PLATFORMS={' '.join(app_opts.platforms)}\n"
            )
        top = f"gateway-{version}"

        shutil.copy2(HERE / "install.sh", stage / "install.sh")
        shutil.copy2(HERE / "gwinstall.py", stage / "gwinstall.py")
        shutil.copy2(HERE / "gateway.env", stage / "gateway.env")
        shutil.copy2(HERE / "README.md", stage / "README.md")
        os.chmod(stage / "install.sh", 0o755)
        (stage / "systemd").mkdir()
        for unit in ("gateway.service", "gateway.socket"):
            shutil.copy2(src / "systemd" / unit, stage / "systemd" / unit)
        # Hand-written drop-in examples (device access), for the admin on the board.
        shutil.copytree(src / "systemd" / "examples", stage / "systemd" / "examples")
        (stage / "profiles").mkdir()
        for prof in sorted((src / "firmware_profiles").glob("*.toml")):
            shutil.copy2(prof, stage / "profiles" / prof.name)
        (stage / "VERSION").write_text(version + "\n")
        stage = stage.rename(tmp / top)

        files = sorted(p for p in stage.rglob("*") if p.is_file())
        sums = "".join(
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(stage)}\n" for p in files
        )
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
                tar.add(
                    p, arcname=f"{top}/{p.relative_to(stage)}", recursive=False, filter=normalize
                )
        partial.replace(target)
        return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (dist/)")
    p.add_argument("--version", help="build this version instead of pyproject.toml's")
    p.add_argument("--source", type=Path, default=REPO, help="the source tree (this one)")
    p.add_argument(
        "--python-versions",
        default=",".join(DEFAULT_PYTHONS),
        help="Python versions boards may run, for dependency markers "
        f"(default {','.join(DEFAULT_PYTHONS)})",
    )
    a = p.add_argument_group("your app (deploy/README.md, 'Your app on a device')")
    a.add_argument(
        "--app",
        metavar="PATH_OR_REQUIREMENT",
        help="the app to ship: myapp.py, a package directory, a project directory "
        "(pyproject.toml), a .whl, or a requirement such as myapp==1.2",
    )
    a.add_argument(
        "--app-spec",
        metavar="MODULE:ATTR",
        help="what the service serves (default: <the app's module>:app)",
    )
    a.add_argument(
        "--app-version",
        help="the version of a bare module or package (default: "
        "its __version__, else 0+<hash of its files>)",
    )
    a.add_argument(
        "--app-requirements",
        type=Path,
        metavar="FILE",
        help="the app's requirements (name>=1.0 lines), shipped as wheels",
    )
    a.add_argument(
        "--find-links",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also take the app's wheels from DIR (repeatable)",
    )
    a.add_argument(
        "--app-platform",
        action="append",
        default=[],
        metavar="TAG",
        help="allow compiled wheels for this platform, e.g. manylinux2014_aarch64 "
        "(repeatable); the release then installs on that CPU only",
    )
    args = p.parse_args(argv)
    pythons = tuple(v.strip() for v in args.python_versions.split(",") if v.strip())
    app_opts = None
    if args.app is not None:
        app_opts = AppOptions(
            args.app,
            args.app_spec,
            args.app_version,
            args.app_requirements,
            list(args.find_links),
            list(args.app_platform),
        )
    elif (
        args.app_spec
        or args.app_version
        or args.app_requirements
        or args.find_links
        or args.app_platform
    ):
        p.error(
            "--app-spec, --app-version, --app-requirements, --find-links and "
            "--app-platform go with --app"
        )
    try:
        print(build(args.out.resolve(), args.source.resolve(), args.version, pythons, app_opts))
    except BuildError as exc:
        print(f"build-release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
