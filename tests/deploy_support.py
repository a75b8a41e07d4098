# Shared by the deployment tests (test_install, test_nspawn, test_fleet): build release tarballs
# with the real deploy/build_release.py (once per version and source per test session) and
# unpack them.
from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tarfile
import tempfile
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


def build_release(version: str | None = None, source: Path | None = None,
                  timeout: float = 300) -> Path:
    """The tarball of ``version`` (pyproject's when None) built from ``source`` (this tree)."""
    key = (version, str(source or REPO))
    if key not in _cache:
        out = _dir() / f"build-{len(_cache)}"
        argv = [sys.executable, str(BUILD), "--out", str(out)]
        if version:
            argv += ["--version", version]
        if source:
            argv += ["--source", str(source)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"build_release failed:\n{proc.stdout}\n{proc.stderr}"
        _cache[key] = Path(proc.stdout.strip().splitlines()[-1])
    return _cache[key]


def unpack(tarball: Path, dest: Path) -> Path:
    """Unpack a release; returns its gateway-<version>/ directory."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="tar")
    (top,) = [p for p in dest.iterdir() if p.is_dir() and p.name.startswith("gateway-")
              and tarball.name.startswith(p.name)]
    return top


def broken_release(version: str) -> Path:
    """A release whose app cannot even be imported (so the service never becomes healthy)."""
    key = (version, "broken")
    if key not in _cache:
        src = _dir() / f"broken-src-{version}"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "__pycache__", ".*_cache", ".hypothesis", "build",
            "dist", "*.egg-info"))
        demo = src / "gateway/demo.py"
        demo.write_text(demo.read_text() + '\nraise RuntimeError("a deliberately broken release")\n')
        _cache[key] = build_release(version, source=src)
    return _cache[key]
