# The release tarball (deploy/build_release.py) and the installer (deploy/install.sh), staged into
# temporary roots with --root: layout, venv built at its real path, idempotence, keep-N pruning,
# configuration preservation, uninstall, and the rollback logic (a fake systemctl records the
# calls; GATEWAY_INSTALL_HEALTH_CMD plays the health check). The same install.sh against a real
# systemd is tests/test_nspawn.py.
from __future__ import annotations

import hashlib
import importlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.deploy_support import (
    APP_DIST,
    DEPLOY,
    REPO,
    SENSORLIB,
    SYSTEM_PYTHON,
    build_app_release,
    build_release,
    make_wheel,
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
        missing(
            str(SYSTEM_PYTHON),
            "Debian packages python3 and python3-venv "
            "(`make test` installs them: scripts/system-deps.sh)",
        )


def _deploy_module(name: str):  # type: ignore[no-untyped-def]
    """deploy/<name>.py as a module (deploy/ is not a package; build_release.py imports
    appwheel.py from beside itself the same way)."""
    if str(DEPLOY) not in sys.path:
        sys.path.insert(0, str(DEPLOY))
    return importlib.import_module(name)


def _build_module():  # type: ignore[no-untyped-def]
    return _deploy_module("build_release")


def install(
    release: Path, root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PIP_", "VIRTUAL_ENV"))
    }
    full_env.update(env or {})
    return subprocess.run(
        [
            "sh",
            str(release / "install.sh"),
            "--root",
            str(root),
            "--python",
            str(SYSTEM_PYTHON),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


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
    assert {
        "gateway",
        "trio",
        "h11",
        "wsproto",
        "attrs",
        "sortedcontainers",
        "idna",
        "outcome",
        "sniffio",
    } <= dists, wheels
    assert f"gateway-{V0}-py3-none-any.whl" in wheels
    assert all(w.endswith("-none-any.whl") for w in wheels), wheels
    assert (rel0 / "VERSION").read_text() == f"{V0}\n"
    assert os.access(rel0 / "install.sh", os.X_OK)
    for unit in ("gateway.service", "gateway.socket", "examples/device-access.conf"):
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


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("trio-0.27.0-py3-none-any.whl", None),
        ("outcome-1.3.0.post0-py2.py3-none-any.whl", None),
        ("foo-1.0-py311-none-any.whl", None),
        ("foo-1.0-1-py3-none-any.whl", None),
        ("cffi-1.17.1-cp311-cp311-manylinux_2_17_x86_64.whl", "platform-specific"),
        ("foo-1.0-py3-abi3-any.whl", "platform-specific"),
        ("foo-1.0-py2-none-any.whl", "not for Python 3"),
        ("foo.tar.gz", "not a wheel"),
    ],
)
def test_pure_wheel_check(name: str, problem: str | None) -> None:
    why = _build_module().pure_wheel_problem(name)
    assert (why is None) if problem is None else (why is not None and problem in why), why


def test_build_refuses_a_bad_version(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(DEPLOY / "build_release.py"),
            "--out",
            str(tmp_path),
            "--version",
            "1.0; rm -rf /",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "PEP 440" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_install_sh_is_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    proc = subprocess.run(
        [shellcheck, "-s", "sh", str(DEPLOY / "install.sh"), str(DEPLOY / "build-release.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )
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
    rendered = subprocess.run(
        [str(REPO / ".venv/bin/gateway"), "render-units", "--profile", "pi4-2gb"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
    )
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
        return {
            p: p.stat().st_mtime_ns
            for p in rel.rglob("*")
            if not p.is_symlink()
            and "share" not in p.relative_to(rel).parts
            and p.name != ".complete"
        }

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
    script = (
        'mount -t tmpfs t /opt && mkdir /opt/gateway && mount --bind "$1" /opt/gateway '
        "&& cd / && env -i PATH=/usr/bin:/bin GATEWAY_APP=gateway.demo:app "
        "/opt/gateway/current/bin/gateway check --profile tiny gateway.demo:app"
    )
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(root / "opt/gateway"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "ok: profile tiny" in proc.stdout, proc.stderr


@needs_staging
def test_keep_n_prunes_old_releases(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    versions = [V0, f"{V0}.post1", f"{V0}.post2"]
    rels = [
        _rel(tmp_path_factory, v) if v != V0 else unpack(build_release(), tmp_path / "r0")
        for v in versions
    ]
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
    assert (
        "LoadCredential=credentials:/etc/gateway/credentials"
        in (root / "etc/systemd/system/gateway.service.d/50-profile.conf").read_text()
    )

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
    assert (root / "etc/gateway/gateway.env.new").read_bytes() == (
        rel0 / "gateway.env"
    ).read_bytes()
    assert "kept your edited /etc/gateway/gateway.env" in out.stderr
    assert cred_file.read_text() == "sha256:" + "0" * 64 + " admin\n"
    # The env file's settings are rendered too (the service reads it): port 9090 on the socket.
    assert (
        "ListenStream=127.0.0.1:9090"
        in (root / "etc/systemd/system/gateway.socket.d/50-profile.conf").read_text()
    )


@needs_staging
def test_bad_profile_changes_nothing(
    rel0: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
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
        "console=serial0,115200 root=PARTUUID=1-02 rootwait cgroup_disable=memory quiet\n"
    )
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
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n'
        'case "$1" in is-failed) echo active; exit 1 ;; esac\nexit 0\n'
    )
    script.chmod(0o755)
    return script, log


@needs_staging
def test_unhealthy_release_is_rolled_back(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, fake_systemctl: tuple[Path, Path]
) -> None:
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
    rel0: Path, tmp_path: Path, fake_systemctl: tuple[Path, Path]
) -> None:
    systemctl, _ = fake_systemctl
    root = tmp_path / "root"
    root.mkdir()
    proc = install(
        rel0,
        root,
        "--start",
        "--profile",
        "default",
        "--health-timeout",
        "1",
        env={"SYSTEMCTL": str(systemctl), "GATEWAY_INSTALL_HEALTH_CMD": "false"},
    )
    assert proc.returncode == 4 and "no previous release" in proc.stderr, proc.stderr
    assert current(root) == f"releases/{V0}"


# --- your app on a device: build_release.py --app, install.sh, --devices ------------------------

APP_V1, APP_V2 = "1.0", "2.0"
APP_REL1 = f"{V0}-{APP_DIST}-{APP_V1}"
APP_REL2 = f"{V0}-{APP_DIST}-{APP_V2}"
V2_ROUTE = """

@app.get("/app/v2")
async def v2(req, res):
    await res.send("new in 2.0")
"""


@pytest.fixture(scope="module")
def app_rel1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(build_app_release(APP_V1), tmp_path_factory.mktemp("app1"))


def _no_run(argv: list[str]) -> None:
    raise AssertionError(f"not expected to run {argv}")


def test_app_wheel_of_a_bare_module_and_a_package(tmp_path: Path) -> None:
    aw = _deploy_module("appwheel")
    mod = tmp_path / "src" / "myapp.py"
    mod.parent.mkdir()
    mod.write_text('from gateway import App\n__version__ = "1.2"\napp = App()\n')
    wheel, dist, version = aw.build_module_wheel(mod, None, tmp_path / "a")
    assert (wheel.name, dist, version) == ("myapp-1.2-py3-none-any.whl", "myapp", "1.2")
    again, _, _ = aw.build_module_wheel(mod, None, tmp_path / "b")
    assert again.read_bytes() == wheel.read_bytes()  # reproducible
    assert aw.wheel_metadata(wheel) == ("myapp", "1.2")
    assert aw.top_level_names(wheel) == {"myapp"}
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("myapp.py") == mod.read_bytes()
        assert "Tag: py3-none-any" in zf.read("myapp-1.2.dist-info/WHEEL").decode()
        record = zf.read("myapp-1.2.dist-info/RECORD").decode().splitlines()
        assert sorted(r.split(",")[0] for r in record) == sorted(zf.namelist())
    # No __version__: a hash of the files, which changes with them.
    mod.write_text("from gateway import App\napp = App()\n")
    _, _, v1 = aw.build_module_wheel(mod, None, tmp_path / "c")
    mod.write_text("from gateway import App\napp = App()  # changed\n")
    _, _, v2 = aw.build_module_wheel(mod, None, tmp_path / "d")
    assert v1.startswith("0+") and v2.startswith("0+") and v1 != v2
    # A package directory: every file but caches, under the package's name.
    pkg = tmp_path / "sensorapp"
    (pkg / "drivers").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__init__.py").write_text("from gateway import App\napp = App()\n")
    (pkg / "drivers" / "bme280.py").write_text("ADDRESS = 0x76\n")
    (pkg / "drivers" / "table.json").write_text("{}\n")
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    wheel, dist, version = aw.build_module_wheel(pkg, "3.0", tmp_path / "e")
    with zipfile.ZipFile(wheel) as zf:
        files = {n for n in zf.namelist() if ".dist-info/" not in n}
    assert files == {
        "sensorapp/__init__.py",
        "sensorapp/drivers/bme280.py",
        "sensorapp/drivers/table.json",
    }
    assert (dist, version) == ("sensorapp", "3.0")


def test_pack_app_says_what_is_wrong(tmp_path: Path) -> None:
    aw = _deploy_module("appwheel")
    mod = tmp_path / "myapp.py"
    mod.write_text("app = None\n")

    def pack(app: str, spec: str | None = None, version: str | None = None) -> str:
        with pytest.raises(aw.AppError) as err:
            aw.pack_app(app, spec, version, [], tmp_path / "out", _no_run, [])
        return str(err.value)

    assert "has no module 'other'" in pack(str(mod), "other:app")
    assert "expected MODULE:ATTR" in pack(str(mod), "my app")
    assert "no such file" in pack(str(tmp_path / "missing.py"))
    (tmp_path / "notes.txt").write_text("x")
    assert "expected a .py module" in pack(str(tmp_path / "notes.txt"))
    (tmp_path / "plain").mkdir()
    assert "must be a package" in pack(str(tmp_path / "plain"))
    assert "version '1.0; rm'" in pack(str(mod), version="1.0; rm")
    two = make_wheel(tmp_path / "w", "two", "1.0", {"a.py": "", "b/__init__.py": ""})
    assert "--app-spec MODULE:ATTR" in pack(str(two))
    assert "carries its own version" in pack(str(two), "a:app", "2.0")
    packed = aw.pack_app(str(two), "b", None, [], tmp_path / "ok", _no_run, [])
    assert (packed.dist, packed.version, packed.spec) == ("two", "1.0", "b:app")
    ok = aw.pack_app(str(mod), None, "1.0", [], tmp_path / "ok2", _no_run, [])
    assert (ok.dist, ok.spec, ok.wheel.name) == ("myapp", "myapp:app", "myapp-1.0-py3-none-any.whl")


def test_pack_app_builds_a_project(tmp_path: Path) -> None:
    # A project directory is built by pip with its own backend, as our own wheel is.
    aw = _deploy_module("appwheel")
    proj = tmp_path / "proj"
    (proj / "src/sensorapp").mkdir(parents=True)
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "sensor-app"\nversion = "0.3.0"\n'
        '[tool.setuptools]\npackages = ["sensorapp"]\npackage-dir = {"" = "src"}\n'
    )
    (proj / "src/sensorapp/__init__.py").write_text("from gateway import App\napp = App()\n")
    packed = aw.pack_app(str(proj), None, None, [], tmp_path / "out", _build_module()._run, [])
    assert (aw.normalize(packed.dist), packed.version, packed.spec) == (
        "sensor-app",
        "0.3.0",
        "sensorapp:app",
    )
    assert packed.wheel.name.startswith("sensor_app-0.3.0-py3-none-any")
    # Built from a copy: the developer's tree gets no build/ or *.egg-info.
    assert sorted(str(q.relative_to(proj)) for q in proj.rglob("*")) == [
        "pyproject.toml",
        "src",
        "src/sensorapp",
        "src/sensorapp/__init__.py",
    ]


def test_app_requirements_are_requirements_only(tmp_path: Path) -> None:
    aw = _deploy_module("appwheel")
    req = tmp_path / "requirements.txt"
    req.write_text("# sensors\nsmbus2>=0.4  # I2C\n\npyserial==3.5; python_version >= '3.8'\n")
    assert aw.read_requirements(req) == ["smbus2>=0.4", "pyserial==3.5; python_version >= '3.8'"]
    for line in (
        "--index-url https://example.org/simple",
        "-e .",
        "-r other.txt",
        "pkg==1 --hash=sha256:00",
        "./wheels/x.whl",
        "https://example.org/x.whl",
    ):
        req.write_text(f"{line}\n")
        with pytest.raises(aw.AppError, match="requirements.txt:1"):
            aw.read_requirements(req)


def test_app_release_contents(app_rel1: Path) -> None:
    tarball = build_app_release(APP_V1)
    assert tarball.name == f"gateway-{APP_REL1}.tar.gz"
    assert (app_rel1 / "VERSION").read_text() == f"{APP_REL1}\n"
    app = dict(
        line.split("=", 1)
        for line in (app_rel1 / "APP").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert app == {
        "SPEC": f"{APP_DIST}:app",
        "DIST": APP_DIST,
        "VERSION": APP_V1,
        "GATEWAY_VERSION": V0,
        "PLATFORMS": "",
    }
    assert (app_rel1 / "app-requirements.txt").read_text() == f"{SENSORLIB}==1.0\n"
    wheels = sorted(p.name for p in (app_rel1 / "wheels").iterdir())
    assert f"{APP_DIST}-{APP_V1}-py3-none-any.whl" in wheels
    assert f"{SENSORLIB}-1.0-py3-none-any.whl" in wheels
    assert f"gateway-{V0}-py3-none-any.whl" in wheels and any(w.startswith("trio-") for w in wheels)
    assert all(w.endswith("-none-any.whl") for w in wheels), wheels
    listed = {}
    for line in (app_rel1 / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    for name in (
        "APP",
        "app-requirements.txt",
        f"wheels/{APP_DIST}-{APP_V1}-py3-none-any.whl",
        f"wheels/{SENSORLIB}-1.0-py3-none-any.whl",
    ):
        assert hashlib.sha256((app_rel1 / name).read_bytes()).hexdigest() == listed[name], name
    present = {str(p.relative_to(app_rel1)) for p in app_rel1.rglob("*") if p.is_file()}
    assert present - set(listed) == {"SHA256SUMS"}


def test_compiled_dependency_needs_the_boards_platform(rel0: Path, tmp_path: Path) -> None:
    br = _build_module()
    links = tmp_path / "links"
    native = make_wheel(
        links,
        "gwtest_native",
        "1.0",
        {"gwtest_native.py": ""},
        tag="cp311-cp311-manylinux2014_aarch64",
    )
    (tmp_path / "nativeapp.py").write_text("import gwtest_native\n")
    (tmp_path / "req.txt").write_text("gwtest_native==1.0\n")

    def add(platforms: list[str], name: str) -> Path:
        wheels = tmp_path / name / "wheels"
        shutil.copytree(rel0 / "wheels", wheels)
        opts = br.AppOptions(
            str(tmp_path / "nativeapp.py"),
            version="1.0",
            requirements=tmp_path / "req.txt",
            find_links=[links],
            platforms=platforms,
        )
        br.add_app(
            opts, wheels / f"gateway-{V0}-py3-none-any.whl", wheels, tmp_path / name, ("3.11",)
        )
        return wheels

    with pytest.raises(br.BuildError) as err:
        add([], "pure")
    assert "gwtest_native has no pure-Python wheel" in str(err.value)
    assert "--app-platform manylinux2014_aarch64" in str(err.value)
    wheels = add(["manylinux2014_aarch64"], "aarch64")
    assert (wheels / native.name).is_file()
    assert br.app_wheel_problem(native.name, ["manylinux2014_aarch64"]) is None
    assert br.app_wheel_problem(native.name, ["manylinux_2_17_aarch64"]) is None
    assert "not for linux_armv7l" in br.app_wheel_problem(native.name, ["linux_armv7l"])
    assert "platform-specific" in br.app_wheel_problem(native.name, [])


def test_device_items(tmp_path: Path) -> None:
    gw = _deploy_module("gwinstall")
    assert gw.parse_devices("serial, /dev/i2c-1,serial") == ["serial", "/dev/i2c-1"]
    assert gw.parse_devices("none") == [] and gw.parse_devices("") == []
    for bad in (
        "usb",
        "/dev/../etc/shadow",
        "/etc/passwd",
        "/dev/serial/by-path/a:b",
        "/dev/tty%i",
        "dev/ttyS0",
    ):
        with pytest.raises(gw.DeviceError, match="expected serial"):
            gw.parse_devices(bad)


def test_device_dropins(tmp_path: Path) -> None:
    gw = _deploy_module("gwinstall")
    groups = {"root": 0, "dialout": 20, "i2c": 998, "gpio": 997}

    def unseen(path: str) -> os.stat_result | None:
        return None

    # Nodes by path: the private /dev stays, with only those nodes bound into it.
    text, warnings = gw.render_devices(["/dev/i2c-1", "/dev/ttyAMA0"], groups, unseen)
    lines = text.splitlines()
    assert "PrivateDevices=yes" in lines and "PrivateDevices=no" not in lines
    assert {
        "BindPaths=-/dev/i2c-1",
        "BindPaths=-/dev/ttyAMA0",
        "DeviceAllow=/dev/i2c-1 rw",
        "DeviceAllow=/dev/ttyAMA0 rw",
        "DevicePolicy=closed",
        "SupplementaryGroups=i2c dialout",
    } <= set(lines)
    assert warnings == []
    # Classes: nodes that come and go; the device cgroup confines instead of a private /dev.
    cls, _ = gw.render_devices(["serial", "gpio"], groups, unseen)
    lines = cls.splitlines()
    assert "PrivateDevices=no" in lines and not any(ln.startswith("BindPaths=") for ln in lines)
    assert {
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyS rw",
        "DeviceAllow=char-ttyUSB rw",
        "DeviceAllow=char-ttyACM rw",
        "DeviceAllow=char-ttyAMA rw",
        "DeviceAllow=char-gpiochip rw",
        "SupplementaryGroups=dialout gpio",
    } <= set(lines)
    assert "Wants=modprobe@usbserial.service modprobe@cdc_acm.service" in lines
    # A node seen here: its own group; one anybody may open needs none; root-only is refused.
    node = tmp_path / "node"
    node.write_text("")

    def seen(mode: int, gid: int) -> object:
        st = os.stat(node)
        fake = os.stat_result((stat.S_IFCHR | mode, *tuple(st)[1:5], gid, *tuple(st)[6:]))
        return lambda path: fake

    text, _ = gw.render_devices(["/dev/gwsensor0"], groups, seen(0o660, 997))
    assert "SupplementaryGroups=gpio" in text.splitlines()
    text, _ = gw.render_devices(["/dev/gwsensor0"], groups, seen(0o666, 0))
    assert "SupplementaryGroups" not in text
    with pytest.raises(gw.DeviceError, match="only root can open it"):
        gw.render_devices(["/dev/gwsensor0"], groups, seen(0o600, 0))
    with pytest.raises(gw.DeviceError, match="no group spi"):
        gw.render_devices(["spi"], groups, unseen)
    _, warnings = gw.render_devices(["/dev/watchdog0"], groups, unseen)
    assert "do not know its group" in warnings[0]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian: systemd)",
)
def test_device_dropins_verify_and_keep_the_sandbox(tmp_path: Path) -> None:
    from tests.test_units import _exposure, _stage, _verify

    gw = _deploy_module("gwinstall")
    groups = {"dialout": 20, "i2c": 998, "gpio": 997, "spi": 996}
    (tmp_path / "base").mkdir()
    base = _exposure(_stage(tmp_path / "base"))
    for n, items in enumerate(
        (
            ["/dev/i2c-1", "/dev/serial/by-id/usb-FTDI_A5-if00-port0"],
            ["serial", "i2c", "spi", "gpio", "/dev/ttyAMA0"],
        )
    ):
        text, _ = gw.render_devices(items, groups, lambda path: None)
        (tmp_path / str(n)).mkdir()
        units = _stage(tmp_path / str(n), "[Service]\n")
        (units / "gateway.service.d/70-devices.conf").write_text(text)
        assert _verify(units) == ""
        # Nodes by path cost nothing; classes give up the private /dev only.
        assert _exposure(units) <= (base if n == 0 else base + 0.3), text
    # The hand-written example (systemd/examples, shipped in the release) is valid as it is.
    (tmp_path / "example").mkdir()
    units = _stage(tmp_path / "example", "[Service]\n")
    shutil.copy(
        REPO / "systemd/examples/device-access.conf",
        units / "gateway.service.d/80-devices-local.conf",
    )
    assert _verify(units) == ""
    assert _exposure(units) <= base


def _in_staged(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run a shell command where the staged /opt/gateway is at its real path (a private mount
    namespace whose /opt is a tmpfs holding only the staged tree), from /, with a bare env."""
    script = (
        'mount -t tmpfs t /opt && mkdir /opt/gateway && mount --bind "$1" /opt/gateway '
        f"&& cd / && env -i PATH=/usr/bin:/bin sh -c {shlex.quote(command)}"
    )
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(root / "opt/gateway"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _site(root: Path, release: str) -> Path:
    return next((root / "opt/gateway/releases" / release / "lib").glob("python3.*/site-packages"))


@needs_staging
def test_stage_an_app_release_upgrade_it_and_refuse_a_broken_one(
    rel0: Path, app_rel1: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ok(install(app_rel1, root, "--profile", "tiny"))
    assert current(root) == f"releases/{APP_REL1}"
    dropins = root / "etc/systemd/system/gateway.service.d"
    app_conf = (dropins / "60-app.conf").read_text()
    assert f"\nEnvironment=GATEWAY_APP={APP_DIST}:app\n" in app_conf
    site = _site(root, APP_REL1)
    dists = {p.name for p in site.glob("*.dist-info")}
    assert {
        f"{APP_DIST}-{APP_V1}.dist-info",
        f"{SENSORLIB}-1.0.dist-info",
        f"gateway-{V0}.dist-info",
    } <= dists, dists
    # The staged venv imports the app (and its requirement) at the device's path, as the
    # unit's ExecStartPre= does.
    proc = _in_staged(
        root,
        f"/opt/gateway/current/bin/gateway check --profile tiny "
        f"{APP_DIST}:app && /opt/gateway/current/bin/python -c "
        f"'import {APP_DIST}; print({APP_DIST}.__file__, "
        f"{APP_DIST}.gwtest_sensorlib.read())'",
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok: profile tiny" in proc.stdout
    assert f"/opt/gateway/releases/{APP_REL1}/lib/" in proc.stdout and "sensor-42" in proc.stdout

    # A broken app: refused with 78 before anything changed (its venv is not kept).
    broken = unpack(
        build_app_release("1.1", broken='raise RuntimeError("a deliberately broken app")'),
        tmp_path / "broken",
    )
    before = {p: p.read_bytes() for p in dropins.iterdir()}
    proc = install(broken, root)
    assert proc.returncode == 78, proc.stderr
    assert "RuntimeError: a deliberately broken app" in proc.stderr
    assert f"{APP_DIST}.py:" in proc.stderr  # where: the file and line (gateway check's format)
    assert "nothing changed" in proc.stderr
    assert current(root) == f"releases/{APP_REL1}" and releases(root) == [APP_REL1]
    assert {p: p.read_bytes() for p in dropins.iterdir()} == before
    # The env file's GATEWAY_APP wins over the release's (as EnvironmentFile= does): checked too.
    env_file = root / "etc/gateway/gateway.env"
    env_file.write_text(f"GATEWAY_APP={APP_DIST}:nope\n")
    proc = install(app_rel1, root)
    assert proc.returncode == 78 and "has no attribute 'nope'" in proc.stderr, proc.stderr
    assert f"sets GATEWAY_APP={APP_DIST}:nope, which wins" in proc.stderr
    env_file.write_text("")

    # Upgrade: a new version of the app, in a new release with its own venv.
    app_rel2 = unpack(build_app_release(APP_V2, extra=V2_ROUTE), tmp_path / "app2")
    ok(install(app_rel2, root))
    assert current(root) == f"releases/{APP_REL2}"
    assert (_site(root, APP_REL2) / f"{APP_DIST}-{APP_V2}.dist-info").is_dir()
    assert "/app/v2" in (_site(root, APP_REL2) / f"{APP_DIST}.py").read_text()
    assert (dropins / "60-app.conf").read_text() == app_conf
    # A release without an app: the unit's default app again (no 60-app.conf).
    ok(install(rel0, root))
    assert not (dropins / "60-app.conf").exists()
    assert sorted(releases(root)) == sorted([V0, APP_REL1, APP_REL2])


@needs_staging
def test_stage_device_access(rel0: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\ni2c:x:998:\n")
    ok(install(rel0, root, "--profile", "default", "--devices", "serial,/dev/i2c-1"))
    conf = root / "etc/systemd/system/gateway.service.d/70-devices.conf"
    lines = conf.read_text().splitlines()
    assert {
        "PrivateDevices=no",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyUSB rw",
        "DeviceAllow=/dev/i2c-1 rw",
        "SupplementaryGroups=dialout i2c",
    } <= set(lines)
    assert "DEVICES=serial,/dev/i2c-1" in (root / "opt/gateway/state/install.conf").read_text()
    text = conf.read_text()
    ok(install(rel0, root))  # remembered
    assert conf.read_text() == text
    # A group this system does not have: refused, nothing changed.
    proc = install(rel0, root, "--devices", "gpio")
    assert proc.returncode == 78 and "no group gpio" in proc.stderr, proc.stderr
    assert conf.read_text() == text
    proc = install(rel0, root, "--devices", "/dev/tty S0")
    assert proc.returncode == 2, proc.stderr
    ok(install(rel0, root, "--devices", "/dev/ttyS1"))
    assert "BindPaths=-/dev/ttyS1" in conf.read_text().splitlines()
    ok(install(rel0, root, "--devices", "none"))
    assert not conf.exists()
    ok(install(rel0, root, "--uninstall"))
    assert not (root / "etc/systemd/system/gateway.service.d").exists()


@needs_staging
def test_rollback_takes_the_app_and_devices_back(
    rel0: Path, app_rel1: Path, tmp_path: Path, fake_systemctl: tuple[Path, Path]
) -> None:
    systemctl, _ = fake_systemctl
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    health = f'! readlink {root}/opt/gateway/current | grep -q "{APP_DIST}"'
    env = {"SYSTEMCTL": str(systemctl), "GATEWAY_INSTALL_HEALTH_CMD": health}
    ok(install(rel0, root, "--start", "--profile", "default", env=env))
    dropins = root / "etc/systemd/system/gateway.service.d"
    before = {p.name: p.read_bytes() for p in dropins.iterdir()}
    assert set(before) == {"50-profile.conf"}
    proc = install(
        app_rel1, root, "--start", "--devices", "/dev/ttyS9", "--health-timeout", "2", env=env
    )
    assert proc.returncode == 3, proc.stderr
    assert f"app {APP_DIST}:app, devices /dev/ttyS9" in proc.stderr  # it was current
    assert current(root) == f"releases/{V0}" and releases(root) == [V0]
    assert {p.name: p.read_bytes() for p in dropins.iterdir()} == before
    assert "DEVICES=\n" in (root / "opt/gateway/state/install.conf").read_text()
