# Shared by the deployment tests (test_install, test_nspawn, test_fleet): build release tarballs
# with the real deploy/build_release.py (once per version and source per test session) and
# unpack them; and a device app for `build_release.py --app` (gwtestapp, with a requirement,
# gwtest_sensorlib, shipped as a wheel made here: no index is needed for either).
from __future__ import annotations

import atexit
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
BUILD = DEPLOY / "build_release.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # what a Debian board has; the venvs are built with it

_cache: dict[tuple[str | None, str], Path] = {}
_cache_dir: Path | None = None


def _dir() -> Path:
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = Path(tempfile.mkdtemp(prefix="gateway-releases-"))
        atexit.register(shutil.rmtree, _cache_dir, True)
    return _cache_dir


def project_version() -> str:
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def build_release(
    version: str | None = None, source: Path | None = None, timeout: float = 300
) -> Path:
    """The tarball of ``version`` (pyproject's when None) built from ``source`` (this tree)."""
    key = (version, str(source or REPO))
    if key not in _cache:
        out = _dir() / f"build-{len(_cache)}"
        argv = [sys.executable, str(BUILD), "--out", str(out)]
        if version:
            argv += ["--version", version]
        if source:
            argv += ["--source", str(source)]
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        assert proc.returncode == 0, f"build_release failed:\n{proc.stdout}\n{proc.stderr}"
        _cache[key] = Path(proc.stdout.strip().splitlines()[-1])
    return _cache[key]


def unpack(tarball: Path, dest: Path) -> Path:
    """Unpack a release; returns its gateway-<version>/ directory."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="tar")
    (top,) = [
        p
        for p in dest.iterdir()
        if p.is_dir() and p.name.startswith("gateway-") and tarball.name.startswith(p.name)
    ]
    return top


def broken_release(version: str) -> Path:
    """A release whose demo app imports (so install.sh's `gateway check` passes) but fails
    when served, so the service never becomes healthy."""
    key = (version, "broken")
    if key not in _cache:
        src = _dir() / f"broken-src-{version}"
        shutil.copytree(
            REPO,
            src,
            ignore=shutil.ignore_patterns(
                ".git",
                ".venv",
                "node_modules",
                "__pycache__",
                ".*_cache",
                ".hypothesis",
                "build",
                "dist",
                "*.egg-info",
            ),
        )
        demo = src / "gateway/demo.py"
        demo.write_text(
            demo.read_text() + '\nimport sys\nif sys.argv[1:2] == ["serve"]:\n'
            '    raise RuntimeError("a deliberately broken release")\n'
        )
        _cache[key] = build_release(version, source=src)
    return _cache[key]


# --- a device app -------------------------------------------------------------------------------

APP_DIST = "gwtestapp"
SENSORLIB = "gwtest_sensorlib"
SENSOR_NODE = "/dev/gwsensor0"  # what the runtime-broken app opens when it is bound

APP_TEMPLATE = """\
# gwtestapp: a device app for the deployment tests. A route using its requirement
# (gwtest_sensorlib), a WebSocket echo, a privileged route, and a route that opens a device
# node and reports the errno (how the device-access drop-in is seen from inside).
import errno
import os

import gwtest_sensorlib

from gateway import App

__version__ = "{version}"
{app_line}


@app.get("/app/hello")
async def hello(req, res):
    await res.json({{"app": "gwtestapp", "version": __version__,
                    "sensor": gwtest_sensorlib.read()}})


@app.get("/app/device")
async def device(req, res):
    path = req.query.get("path", "")
    if not path.startswith("/dev/") or ".." in path:
        await res.status(400).send("path: a /dev node")
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        await res.json({{"path": path, "ok": False, "errno": errno.errorcode.get(exc.errno)}})
        return
    os.close(fd)
    await res.json({{"path": path, "ok": True}})


@app.post("/app/config", privileged=True)
async def config(req, res):
    await res.json({{"saved": True}})


@app.ws("/app/live")
async def live(ws, req):
    async for message in ws:
        await ws.send(message)
{extra}"""
# An app whose device is opened when the server binds it to its settings (not at import, so
# install.sh's check passes): without the node it never serves (a runtime failure).
NEEDS_DEVICE = f'''\
class SensorApp(App):
    def bind(self, settings):
        os.close(os.open("{SENSOR_NODE}", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
        super().bind(settings)


app = SensorApp()'''


def app_source(version: str, extra: str = "", needs_device: bool = False) -> str:
    """gwtestapp's module source at ``version`` (``extra``: code appended at the end)."""
    return APP_TEMPLATE.format(
        version=version, extra=extra, app_line=NEEDS_DEVICE if needs_device else "app = App()"
    )


def make_wheel(
    dest: Path, dist: str, version: str, files: dict[str, str], tag: str = "py3-none-any"
) -> Path:
    """A wheel made with zipfile alone (independent of build_release's own wheel builder)."""
    info = f"{dist}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    members[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: tests\n"
        f"Root-Is-Purelib: {'true' if tag.endswith('-any') else 'false'}"
        f"\nTag: {tag}\n"
    )
    record = []
    for name, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    members[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return wheel


def app_inputs(
    version: str, extra: str = "", needs_device: bool = False, broken: str = ""
) -> tuple[Path, Path, Path]:
    """(gwtestapp.py, its requirements file, a --find-links directory with gwtest_sensorlib)
    for one version of the app; ``broken``: a line appended that fails at import."""
    tag = hashlib.sha256(repr((extra, needs_device, broken)).encode()).hexdigest()[:8]
    d = _dir() / f"app-{version}-{tag}"
    links = _dir() / "links"
    if not (links / f"{SENSORLIB}-1.0-py3-none-any.whl").exists():
        make_wheel(
            links, SENSORLIB, "1.0", {f"{SENSORLIB}.py": 'def read():\n    return "sensor-42"\n'}
        )
    d.mkdir(parents=True, exist_ok=True)
    module = d / f"{APP_DIST}.py"
    module.write_text(
        app_source(version, extra, needs_device) + (f"\n{broken}\n" if broken else "")
    )
    reqs = d / "requirements.txt"
    reqs.write_text(f"# the app's own requirements\n{SENSORLIB}==1.0\n")
    return module, reqs, links


def build_app_release(
    version: str,
    extra: str = "",
    needs_device: bool = False,
    broken: str = "",
    args: tuple[str, ...] = (),
    timeout: float = 300,
) -> Path:
    """The tarball of the gateway (pyproject's version) with gwtestapp ``version``."""
    key = (f"app-{version}-{extra}-{needs_device}-{broken}-{args}", str(REPO))
    if key not in _cache:
        module, reqs, links = app_inputs(version, extra, needs_device, broken)
        out = _dir() / f"build-{len(_cache)}"
        argv = [
            sys.executable,
            str(BUILD),
            "--out",
            str(out),
            "--app",
            str(module),
            "--app-requirements",
            str(reqs),
            "--find-links",
            str(links),
            *args,
        ]
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        assert proc.returncode == 0, f"build_release failed:\n{proc.stdout}\n{proc.stderr}"
        _cache[key] = Path(proc.stdout.strip().splitlines()[-1])
    return _cache[key]
