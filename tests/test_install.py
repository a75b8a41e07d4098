# The release tarball (deploy/build_release.py) and the installer (deploy/install.sh), staged into
# temporary roots with --root: layout, venv built at its real path, idempotence, keep-N pruning,
# configuration preservation, uninstall, and the rollback logic (a fake systemctl records the
# calls; GATEWAY_INSTALL_HEALTH_CMD plays the health check). The same install.sh against a real
# systemd is tests/test_nspawn.py.
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.deploy_support import (
    DEPLOY,
    REPO,
    SYSTEM_PYTHON,
    build_release,
    project_version,
    unpack,
)
from tests.peers import missing, require_root, require_tool

V0 = project_version()

needs_staging = pytest.mark.usefixtures("staging_tools")


@pytest.fixture
def staging_tools() -> None:
    """Staging builds the venv in a private mount namespace: root, unshare and /usr/bin/python3
    with venv; a missing one fails the test, naming it."""
    require_root("staging mounts a private namespace")
    require_tool("unshare", "util-linux")
    if not SYSTEM_PYTHON.exists():
        missing(str(SYSTEM_PYTHON), "Debian packages python3 and python3-venv "
                                    "(`make test` installs them: scripts/system-deps.sh)")


def _build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_release", DEPLOY / "build_release.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def install(release: Path, root: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("GATEWAY_", "PIP_", "VIRTUAL_ENV"))}
    full_env.update(env or {})
    return subprocess.run(
        ["sh", str(release / "install.sh"), "--root", str(root),
         "--python", str(SYSTEM_PYTHON), *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def current(root: Path) -> str:
    return os.readlink(root / "opt/gateway/current")


def releases(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "opt/gateway/releases").iterdir())


@pytest.fixture(scope="module")
def rel0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(build_release(), tmp_path_factory.mktemp("rel0"))


def _rel(tmp_path_factory: pytest.TempPathFactory, version: str) -> Path:
    return unpack(build_release(version), tmp_path_factory.mktemp(f"rel-{version}"))


# --- the tarball --------------------------------------------------------------------------------


def test_tarball_contents(rel0: Path) -> None:
    tarball = build_release()
    assert tarball.name == f"gateway-{V0}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        assert all(n == f"gateway-{V0}" or n.startswith(f"gateway-{V0}/") for n in names)
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())
    wheels = sorted(p.name for p in (rel0 / "wheels").iterdir())
    dists = {w.split("-")[0].lower() for w in wheels}
    assert {"gateway", "trio", "h11", "wsproto", "attrs", "sortedcontainers", "idna",
            "outcome", "sniffio"} <= dists, wheels
    assert f"gateway-{V0}-py3-none-any.whl" in wheels
    assert all(w.endswith("-none-any.whl") for w in wheels), wheels
    assert (rel0 / "VERSION").read_text() == f"{V0}\n"
    assert os.access(rel0 / "install.sh", os.X_OK)
    for unit in ("gateway.service", "gateway.socket"):
        assert (rel0 / "systemd" / unit).read_bytes() == (REPO / "systemd" / unit).read_bytes()
    profiles = {p.name for p in (rel0 / "profiles").iterdir()}
    assert profiles == {p.name for p in (REPO / "firmware_profiles").glob("*.toml")}
    sums = (rel0 / "SHA256SUMS").read_text().splitlines()
    listed = set()
    for line in sums:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((rel0 / name).read_bytes()).hexdigest() == digest, name
        listed.add(name)
    present = {str(p.relative_to(rel0)) for p in rel0.rglob("*") if p.is_file()}
    assert present - listed == {"SHA256SUMS"}


@pytest.mark.parametrize(("name", "problem"), [
    ("trio-0.27.0-py3-none-any.whl", None),
    ("outcome-1.3.0.post0-py2.py3-none-any.whl", None),
    ("foo-1.0-py311-none-any.whl", None),
    ("foo-1.0-1-py3-none-any.whl", None),
    ("cffi-1.17.1-cp311-cp311-manylinux_2_17_x86_64.whl", "platform-specific"),
    ("foo-1.0-py3-abi3-any.whl", "platform-specific"),
    ("foo-1.0-py2-none-any.whl", "not for Python 3"),
    ("foo.tar.gz", "not a wheel"),
])
def test_pure_wheel_check(name: str, problem: str | None) -> None:
    why = _build_module().pure_wheel_problem(name)
    assert (why is None) if problem is None else (why is not None and problem in why), why


def test_build_refuses_a_bad_version(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(DEPLOY / "build_release.py"), "--out", str(tmp_path),
                           "--version", "1.0; rm -rf /"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "PEP 440" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_install_sh_is_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    proc = subprocess.run([shellcheck, "-s", "sh", str(DEPLOY / "install.sh"),
                           str(DEPLOY / "build-release.sh")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and not proc.stdout, proc.stdout


# --- staging: layout and idempotence ------------------------------------------------------------


@needs_staging
def test_stage_layout_and_idempotence(rel0: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = ok(install(rel0, root, "--profile", "pi4-2gb"))
    assert "installing the files only" not in first.stderr  # --root alone means staging
    rel = root / "opt/gateway/releases" / V0
    assert current(root) == f"releases/{V0}"  # relative: valid inside the image
    # Built in place: every path inside the venv is the device's, not the staging root's.
    shebang = (rel / "bin/gateway").read_text().splitlines()[0]
    assert shebang == f"#!/opt/gateway/releases/{V0}/bin/python", shebang
    assert f"/opt/gateway/releases/{V0}" in (rel / "pyvenv.cfg").read_text()
    assert str(root) not in (rel / "pyvenv.cfg").read_text()
    assert os.readlink(rel / "bin/python3") in (str(SYSTEM_PYTHON), "python3", "python")
    assert (rel / "share/doc/gateway/README.md").is_file()  # the unit's Documentation=
    site = next((rel / "lib").glob("python3.*/site-packages"))
    assert (site / "gateway/firmware_profiles/pi4-2gb.toml").is_file()
    installed = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info"))
    assert installed[:1] and "gateway" in installed and "trio" in installed, installed

    units = root / "etc/systemd/system"
    for unit in ("gateway.service", "gateway.socket"):
        assert (units / unit).read_bytes() == (REPO / "systemd" / unit).read_bytes()
    dropin = (units / "gateway.service.d/50-profile.conf").read_text()
    # The drop-in is exactly what `gateway render-units` prints for the profile.
    rendered = subprocess.run([str(REPO / ".venv/bin/gateway"), "render-units", "--profile",
                               "pi4-2gb"], capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in os.environ.items()
                                   if not k.startswith("GATEWAY_")})
    strip = [ln for ln in dropin.splitlines() if not ln.startswith("#")]
    assert strip == [ln for ln in rendered.stdout.splitlines() if not ln.startswith("#")]
    assert "Environment=GATEWAY_PROFILE=pi4-2gb" in dropin and "MemoryMax=" in dropin
    sock = (units / "gateway.socket.d/50-profile.conf").read_text()
    assert "ListenStream=0.0.0.0:8080" in sock
    wants = units / "multi-user.target.wants/gateway.service"
    assert os.readlink(wants) == "/etc/systemd/system/gateway.service"
    assert not (units / "sockets.target.wants/gateway.socket").exists()
    env_file = root / "etc/gateway/gateway.env"
    assert env_file.read_bytes() == (rel0 / "gateway.env").read_bytes()
    assert "PROFILE=pi4-2gb" in (root / "opt/gateway/state/install.conf").read_text()

    # Again: the venv is not rebuilt (only the drop-ins are rendered again, the same), nothing
    # changes; the profile is remembered.
    def venv_files() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in rel.rglob("*")
                if not p.is_symlink() and "share" not in p.relative_to(rel).parts
                and p.name != ".complete"}

    snapshot = venv_files()
    again = ok(install(rel0, root))
    assert "already built" in again.stderr
    assert venv_files() == snapshot
    assert (units / "gateway.service.d/50-profile.conf").read_text() == dropin
    assert releases(root) == [V0]


@needs_staging
def test_staged_venv_runs_at_its_real_path(rel0: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ok(install(rel0, root, "--profile", "tiny", "--socket"))
    assert (root / "etc/systemd/system/sockets.target.wants/gateway.socket").is_symlink()
    # What the unit runs, with /opt/gateway where the device has it (a private mount namespace
    # whose /opt is a tmpfs holding only the staged tree).
    script = ('mount -t tmpfs t /opt && mkdir /opt/gateway && mount --bind "$1" /opt/gateway '
              '&& cd / && env -i PATH=/usr/bin:/bin GATEWAY_APP=gateway.demo:app '
              '/opt/gateway/current/bin/gateway check --profile tiny gateway.demo:app')
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", str(root / "opt/gateway")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "ok: profile tiny" in proc.stdout, proc.stderr


@needs_staging
def test_keep_n_prunes_old_releases(tmp_path_factory: pytest.TempPathFactory,
                                    tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    versions = [V0, f"{V0}.post1", f"{V0}.post2"]
    rels = [_rel(tmp_path_factory, v) if v != V0 else unpack(build_release(), tmp_path / "r0")
            for v in versions]
    for v, rel in zip(versions, rels, strict=True):
        ok(install(rel, root, "--profile", "default", "--keep", "2"))
        assert current(root) == f"releases/{v}"
    assert releases(root) == sorted(versions[1:])
    # The default keeps 3: a reinstall of an older release adds it back without pruning.
    ok(install(rels[0], root))
    assert current(root) == f"releases/{V0}"
    assert releases(root) == sorted(versions)
    out = ok(install(rels[0], root, "--keep", "1"))
    # --keep 1 still never removes the current and the previous release (the rollback target).
    assert releases(root) == sorted([V0, versions[2]]), out.stderr


# --- configuration is the admin's -----------------------------------------------------------------


@needs_staging
def test_config_never_overwritten(rel0: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    creds = "/etc/gateway/credentials"
    profile = tmp_path / "board.toml"
    profile.write_text(f'extends = "default"\n[server]\ncredentials_file = "{creds}"\n')
    ok(install(rel0, root, "--profile", str(profile)))
    env_file = root / "etc/gateway/gateway.env"
    cred_file = root / creds.lstrip("/")
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    assert "LoadCredential=credentials:/etc/gateway/credentials" in (
        root / "etc/systemd/system/gateway.service.d/50-profile.conf").read_text()

    # A new default for an unedited file replaces it.
    new_default = rel0.parent / "new-default"
    shutil.copytree(rel0, new_default)
    (new_default / "gateway.env").write_text("# a newer default\n")
    ok(install(new_default, root))
    assert env_file.read_text() == "# a newer default\n"

    # An edited file is kept; the new default goes beside it.
    env_file.write_text("GATEWAY_SERVER_PORT=9090\n")
    cred_file.write_text("sha256:" + "0" * 64 + " admin\n")
    out = ok(install(rel0, root))
    assert env_file.read_text() == "GATEWAY_SERVER_PORT=9090\n"
    assert (root / "etc/gateway/gateway.env.new").read_bytes() == (rel0 / "gateway.env").read_bytes()
    assert "kept your edited /etc/gateway/gateway.env" in out.stderr
    assert cred_file.read_text() == "sha256:" + "0" * 64 + " admin\n"
    # The env file's settings are rendered too (the service reads it): port 9090 on the socket.
    assert "ListenStream=127.0.0.1:9090" in (
        root / "etc/systemd/system/gateway.socket.d/50-profile.conf").read_text()


@needs_staging
def test_bad_profile_changes_nothing(rel0: Path, tmp_path_factory: pytest.TempPathFactory,
                                     tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ok(install(rel0, root, "--profile", "default"))
    dropin = (root / "etc/systemd/system/gateway.service.d/50-profile.conf").read_text()
    rel1 = _rel(tmp_path_factory, f"{V0}.post1")
    proc = install(rel1, root, "--profile", "no-such-board")
    assert proc.returncode == 78, proc.stderr
    assert "no-such-board" in proc.stderr
    assert current(root) == f"releases/{V0}" and releases(root) == [V0]
    assert (root / "etc/systemd/system/gateway.service.d/50-profile.conf").read_text() == dropin
    # A broken profile file given by path: refused before it replaces the installed one.
    good = tmp_path / "board.toml"
    good.write_text('extends = "default"\n')
    ok(install(rel0, root, "--profile", str(good)))
    installed = root / "etc/gateway/profiles/board.toml"
    bad = tmp_path / "bad" / "board.toml"
    bad.parent.mkdir()
    bad.write_text('extends = "default"\n[limits.user]\nmax_body_bytes = -1\n')
    proc = install(rel0, root, "--profile", str(bad))
    assert proc.returncode == 78 and "max_body_bytes" in proc.stderr, proc.stderr
    assert installed.read_text() == 'extends = "default"\n'
    # Staging cannot detect the board it is not running on.
    proc = install(rel0, root, "--profile", "auto")
    assert proc.returncode == 78 and "name the board's profile" in proc.stderr


@needs_staging
def test_memory_controller_warning(rel0: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot/firmware").mkdir(parents=True)
    (root / "boot/firmware/cmdline.txt").write_text(
        "console=serial0,115200 root=PARTUUID=1-02 rootwait cgroup_disable=memory quiet\n")
    proc = ok(install(rel0, root, "--profile", "pi-zero-2w"))
    assert "memory cgroup controller is missing" in proc.stderr
    assert "MemoryMax= (this profile:" in proc.stderr
    (root / "boot/firmware/cmdline.txt").write_text("console=serial0,115200 rootwait\n")
    assert "memory cgroup" not in ok(install(rel0, root)).stderr


@needs_staging
def test_uninstall_keeps_config_unless_purged(rel0: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ok(install(rel0, root, "--profile", "default", "--socket"))
    (root / "etc/gateway/gateway.env").write_text("GATEWAY_SERVER_PORT=9090\n")
    (root / "etc/systemd/system/gateway.service.d/90-admin.conf").write_text("[Service]\n")
    ok(install(rel0, root, "--uninstall"))
    units = root / "etc/systemd/system"
    assert not (root / "opt/gateway").exists()
    assert not (units / "gateway.service").exists() and not (units / "gateway.socket").exists()
    assert not (units / "multi-user.target.wants/gateway.service").exists()
    assert not (units / "sockets.target.wants/gateway.socket").exists()
    assert not (units / "gateway.socket.d").exists()
    assert (units / "gateway.service.d/90-admin.conf").exists()  # not ours: kept
    assert (root / "etc/gateway/gateway.env").read_text() == "GATEWAY_SERVER_PORT=9090\n"
    ok(install(rel0, root, "--uninstall", "--purge"))
    assert not (root / "etc/gateway").exists()


# --- rollback logic (fake systemctl, health command) ------------------------------------------


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "systemctl.log"
    script = tmp_path / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                      'case "$1" in is-failed) echo active; exit 1 ;; esac\nexit 0\n')
    script.chmod(0o755)
    return script, log


@needs_staging
def test_unhealthy_release_is_rolled_back(tmp_path_factory: pytest.TempPathFactory,
                                          tmp_path: Path,
                                          fake_systemctl: tuple[Path, Path]) -> None:
    systemctl, log = fake_systemctl
    root = tmp_path / "root"
    root.mkdir()
    rel0 = unpack(build_release(), tmp_path / "r0")
    v1 = f"{V0}.post1"
    rel1 = _rel(tmp_path_factory, v1)
    # Healthy unless release v1 is current.
    health = f'! readlink {root}/opt/gateway/current | grep -q "{v1}$"'
    env = {"SYSTEMCTL": str(systemctl), "GATEWAY_INSTALL_HEALTH_CMD": health}
    ok(install(rel0, root, "--start", "--profile", "default", env=env))
    calls = log.read_text().splitlines()
    assert "daemon-reload" in calls and "enable --quiet gateway.service" in calls
    assert "restart gateway.service" in calls
    dropin0 = (root / "etc/systemd/system/gateway.service.d/50-profile.conf").read_text()
    log.write_text("")

    proc = install(rel1, root, "--start", "--profile", "tiny", "--health-timeout", "2", env=env)
    assert proc.returncode == 3, proc.stderr
    assert f"rolling back to {V0}" in proc.stderr
    assert current(root) == f"releases/{V0}"
    assert releases(root) == [V0]  # the broken release is removed
    # The previous release's drop-in (profile default, not tiny) and choices are back.
    assert (root / "etc/systemd/system/gateway.service.d/50-profile.conf").read_text() == dropin0
    assert "PROFILE=default" in (root / "opt/gateway/state/install.conf").read_text()
    calls = log.read_text().splitlines()
    assert calls.count("restart gateway.service") == 2, calls
    assert calls.count("daemon-reload") == 2, calls

    # Neither healthy: exit 4, and the previous release stays current.
    env["GATEWAY_INSTALL_HEALTH_CMD"] = "false"
    proc = install(rel1, root, "--start", "--health-timeout", "1", env=env)
    assert proc.returncode == 4, proc.stderr
    assert current(root) == f"releases/{V0}"


@needs_staging
def test_unhealthy_first_install_has_nothing_to_roll_back(
        rel0: Path, tmp_path: Path, fake_systemctl: tuple[Path, Path]) -> None:
    systemctl, _ = fake_systemctl
    root = tmp_path / "root"
    root.mkdir()
    proc = install(rel0, root, "--start", "--profile", "default", "--health-timeout", "1",
                   env={"SYSTEMCTL": str(systemctl), "GATEWAY_INSTALL_HEALTH_CMD": "false"})
    assert proc.returncode == 4 and "no previous release" in proc.stderr, proc.stderr
    assert current(root) == f"releases/{V0}"
