# Tests for the systemd units and gateway.units: exact drop-in text from small Settings doubles,
# then the real checker: `systemd-analyze verify` must print nothing for gateway.service,
# gateway.socket and every profile's drop-ins attached to them, and
# `systemd-analyze security --offline=true` must rate the service at exposure <= 2.0.
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings
from gateway.units import render_dropin, render_socket_dropin
from tests.peers import missing, require_tool

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "systemd"
PROFILES = sorted(p.stem for p in (REPO / "firmware_profiles").glob("*.toml"))
ANALYZE = shutil.which("systemd-analyze")
INSTALL_PREFIX = "/opt/gateway/current/bin/gateway"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.usefixtures("systemd_analyze")


@pytest.fixture
def systemd_analyze() -> str:
    """systemd-analyze, or the test fails naming its package (scripts/system-deps.sh)."""
    return require_tool("systemd-analyze", "systemd")


# --- Settings doubles: the same attribute names and defaults as docs/CONTRACTS.md -------------


@dataclass(frozen=True)
class FakeSystemd:
    memory_max_bytes: int = 0
    memory_high_bytes: int = 0
    limit_nofile: int = 1024
    tasks_max: int = 64
    watchdog_s: float = 30.0


@dataclass(frozen=True)
class FakeServer:
    host: str = "127.0.0.1"
    port: int = 8080
    unix_path: str = ""
    unix_allowed_uids: tuple[int, ...] = (0,)
    backlog: int = 128
    shutdown_grace_s: float = 10.0
    credentials_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""


@dataclass(frozen=True)
class FakeSettings:
    profile: str = "test"
    source: str = "firmware_profiles/test.toml"
    server: FakeServer = field(default_factory=FakeServer)
    systemd: FakeSystemd = field(default_factory=FakeSystemd)


def _settings(**changes: object) -> FakeSettings:
    server = {k[7:]: v for k, v in changes.items() if k.startswith("server_")}
    sd = {k[8:]: v for k, v in changes.items() if k.startswith("systemd_")}
    top = {k: v for k, v in changes.items() if not k.startswith(("server_", "systemd_"))}
    return FakeSettings(
        server=dataclasses.replace(FakeServer(), **server),  # type: ignore[arg-type]
        systemd=dataclasses.replace(FakeSystemd(), **sd),  # type: ignore[arg-type]
        **top,  # type: ignore[arg-type]
    )


# A profile that uses everything the drop-ins can express.
FULL = _settings(
    profile="pi4-2gb",
    source="/opt/gateway/current/firmware_profiles/pi4-2gb.toml",
    systemd_memory_max_bytes=512 << 20,
    systemd_memory_high_bytes=384 << 20,
    systemd_limit_nofile=4096,
    systemd_tasks_max=128,
    systemd_watchdog_s=2.5,
    server_shutdown_grace_s=12.5,
    server_credentials_file="/etc/gateway/credentials",
    server_tls_cert_file="/etc/gateway/tls/cert.pem",
    server_tls_key_file="/etc/gateway/tls/100%key.pem",
    server_host="0.0.0.0, [::]",
    server_port=80,
    server_unix_path="/run/gateway/gateway.sock",
    server_unix_allowed_uids=(0, 1000),
    server_backlog=64,
)


# --- rendering (pure) ---------------------------------------------------------------------------


def test_dropin_defaults_exact() -> None:
    assert render_dropin(FakeSettings()) == (
        "# Profile 'test' (firmware_profiles/test.toml).\n"
        "# Rendered by gateway.units; regenerate it rather than editing it by hand.\n"
        "# Install as /etc/systemd/system/gateway.service.d/50-profile.conf, then: "
        "systemctl daemon-reload\n"
        "\n"
        "[Service]\n"
        "Environment=GATEWAY_PROFILE=test\n"
        "LimitNOFILE=1024\n"
        "TasksMax=64\n"
        "WatchdogSec=30s\n"
        "TimeoutStopSec=15s\n"
    )


def test_dropin_full_exact() -> None:
    body = render_dropin(FULL).split("\n\n", 1)[1]
    assert body == (
        "[Service]\n"
        "Environment=GATEWAY_PROFILE=pi4-2gb\n"
        "MemoryHigh=384M\n"
        "MemoryMax=512M\n"
        "LimitNOFILE=4096\n"
        "TasksMax=128\n"
        "WatchdogSec=2500ms\n"
        "TimeoutStopSec=18s\n"
        "PrivateUsers=no\n"
        "LoadCredential=credentials:/etc/gateway/credentials\n"
        "Environment=GATEWAY_SERVER_CREDENTIALS_FILE=%d/credentials\n"
        "LoadCredential=tls-cert:/etc/gateway/tls/cert.pem\n"
        "Environment=GATEWAY_SERVER_TLS_CERT_FILE=%d/tls-cert\n"
        "LoadCredential=tls-key:/etc/gateway/tls/100%%key.pem\n"
        "Environment=GATEWAY_SERVER_TLS_KEY_FILE=%d/tls-key\n"
    )


def test_dropin_sizes_and_watchdog_off() -> None:
    text = render_dropin(
        _settings(
            systemd_memory_max_bytes=(1 << 30) + 1,
            systemd_memory_high_bytes=3 << 10,
            systemd_watchdog_s=0.0,
        )
    )
    assert "MemoryMax=1073741825\n" in text
    assert "MemoryHigh=3K\n" in text
    assert "WatchdogSec=0\n" in text


def test_dropin_private_users_only_off_for_non_root_unix_peers() -> None:
    sock = "/run/gateway/gateway.sock"
    assert "PrivateUsers" not in render_dropin(_settings(server_unix_path=sock))
    assert "PrivateUsers" not in render_dropin(_settings(server_unix_allowed_uids=(1000,)))
    text = render_dropin(_settings(server_unix_path=sock, server_unix_allowed_uids=(0, 1000)))
    assert "\nPrivateUsers=no\n" in text


def test_dropin_header_cannot_inject_directives() -> None:
    text = render_dropin(_settings(source="x.toml\n[Service]\nExecStart=/bin/sh"))
    directives = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert directives.count("[Service]") == 1
    assert not any(ln.startswith("ExecStart") for ln in directives)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"profile": "pi 4"}, "profile name"),
        ({"profile": "%n"}, "profile name"),
        ({"systemd_memory_max_bytes": -1}, "memory_max_bytes"),
        ({"systemd_memory_max_bytes": 100, "systemd_memory_high_bytes": 200}, "memory_high"),
        ({"systemd_limit_nofile": 0}, "limit_nofile"),
        ({"systemd_tasks_max": 0}, "tasks_max"),
        ({"systemd_watchdog_s": -1.0}, "watchdog_s"),
        ({"systemd_watchdog_s": float("inf")}, "watchdog_s"),
        ({"server_shutdown_grace_s": float("nan")}, "shutdown_grace_s"),
        ({"server_credentials_file": "credentials"}, "server.credentials_file"),
        ({"server_tls_key_file": "/etc/gateway/my key.pem"}, "server.tls_key_file"),
        ({"server_unix_path": "/tmp/gateway.sock"}, "server.unix_path"),
        ({"server_unix_path": "/run/gateway-other.sock"}, "server.unix_path"),
    ],
)
def test_dropin_rejects(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        render_dropin(_settings(**changes))


@pytest.mark.parametrize(
    ("host", "port", "listen"),
    [
        ("127.0.0.1", 8080, ["127.0.0.1:8080"]),
        ("", 8080, ["127.0.0.1:8080"]),  # the server's reading: empty means loopback
        ("0.0.0.0", 80, ["0.0.0.0:80"]),
        ("::", 8080, ["[::]:8080"]),
        ("[::1]", 443, ["[::1]:443"]),
        ("127.0.0.1, ::1,", 8080, ["127.0.0.1:8080", "[::1]:8080"]),
    ],
)
def test_socket_dropin_addresses(host: str, port: int, listen: list[str]) -> None:
    text = render_socket_dropin(_settings(server_host=host, server_port=port))
    assert text.split("\n\n", 1)[1] == (
        "[Socket]\n"
        "# An empty ListenStream= drops the unit's own listeners before adding the profile's.\n"
        "ListenStream=\n"
        + "".join(f"ListenStream={addr}\n" for addr in listen)
        + "BindIPv6Only=ipv6-only\n"
        "Backlog=128\n"
    )


def test_socket_dropin_leaves_unix_path_to_the_server() -> None:
    text = render_socket_dropin(FULL)
    assert "ListenStream=0.0.0.0:80\nListenStream=[::]:80\nBindIPv6Only" in text
    assert "/run/gateway" not in text
    assert text.endswith("Backlog=64\n")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"server_host": "localhost"}, "server.host"),
        ({"server_host": "127.0.0.1,gateway.local"}, "server.host"),
        ({"server_host": "fe80::1%eth0"}, "scoped"),
        ({"server_port": 0}, "server.port"),
        ({"server_port": 70000}, "server.port"),
        ({"server_backlog": 0}, "server.backlog"),
    ],
)
def test_socket_dropin_rejects(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        render_socket_dropin(_settings(**changes))


# --- systemd-analyze ----------------------------------------------------------------------------


def _vendor_unit_dir() -> str:
    for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        if os.path.exists(os.path.join(d, "sysinit.target")):
            return d
    missing(
        "a systemd vendor unit directory with sysinit.target",
        "Debian package systemd (`make test` installs it: scripts/system-deps.sh, as root)",
    )


def _stage(tmp_path: Path, service_dropin: str = "", socket_dropin: str = "") -> Path:
    """Copy the units into tmp_path/units, with the drop-ins in gateway.*.d/ beside them.

    verify fails on an ExecStart= binary that does not exist, and --root= wants a whole OS tree
    (sysinit.target, ...). So the one thing changed is the install prefix, which becomes a stub
    executable; every directive, path and option is otherwise checked verbatim.
    """
    stub = tmp_path / "bin" / "gateway"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for name in ("gateway.service", "gateway.socket"):
        text = (UNITS / name).read_text()
        (units / name).write_text(text.replace(INSTALL_PREFIX, str(stub)))
    assert INSTALL_PREFIX in (UNITS / "gateway.service").read_text()
    for unit, dropin in (("gateway.service", service_dropin), ("gateway.socket", socket_dropin)):
        if dropin:
            (units / f"{unit}.d").mkdir()
            (units / f"{unit}.d" / "50-profile.conf").write_text(dropin)
    return units


def _analyze(units: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    # Only our directory and the vendor units: verify reads drop-ins from every directory of
    # the unit path, so a host's own /etc/systemd/system/gateway.service.d must not leak in.
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:{_vendor_unit_dir()}")
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def _verify(units: Path) -> str:
    # verify exits 0 on many problems (unknown keys, bad values are "ignored"): any output at
    # all is a failure.
    proc = _analyze(units, "verify", str(units / "gateway.service"), str(units / "gateway.socket"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 or out, "verify failed without saying why"
    return out


def _exposure(units: Path) -> float:
    proc = _analyze(units, "security", "--offline=true", str(units / "gateway.service"))
    match = re.search(r"Overall exposure level for gateway\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


@pytest.mark.systemd
@needs_analyze
def test_units_verify_clean(tmp_path: Path) -> None:
    assert _verify(_stage(tmp_path)) == ""


@pytest.mark.systemd
@needs_analyze
def test_verify_sees_dropins(tmp_path: Path) -> None:
    # The harness would be worthless if the drop-in were not read: a bad one must be reported.
    units = _stage(tmp_path, "[Service]\nMemoryMax=lots\nNoSuchKey=1\n", "[Socket]\nBacklog=x\n")
    out = _verify(units)
    assert "gateway.service.d/50-profile.conf:2" in out
    assert "gateway.service.d/50-profile.conf:3" in out
    assert "gateway.socket.d/50-profile.conf:2" in out


@pytest.mark.systemd
@needs_analyze
@pytest.mark.parametrize("settings", [FakeSettings(), FULL], ids=["defaults", "full"])
def test_rendered_dropins_verify_clean(tmp_path: Path, settings: FakeSettings) -> None:
    units = _stage(tmp_path, render_dropin(settings), render_socket_dropin(settings))
    assert _verify(units) == ""
    assert _exposure(units) <= MAX_EXPOSURE


@pytest.mark.systemd
@needs_analyze
def test_service_exposure(tmp_path: Path) -> None:
    assert _exposure(_stage(tmp_path)) <= MAX_EXPOSURE


@pytest.mark.systemd
@needs_analyze
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_dropins_verify_clean(tmp_path: Path, profile: str) -> None:
    settings = load_settings(profile, profiles_dir=REPO / "firmware_profiles", env={})
    service_dropin = render_dropin(settings)
    assert f"Environment=GATEWAY_PROFILE={settings.profile}\n" in service_dropin
    if settings.server.port == 0:
        # An ephemeral port (the test profile) cannot be socket-activated: refused, by name.
        with pytest.raises(ConfigError, match="server.port"):
            render_socket_dropin(settings)
        socket_dropin = ""
    else:
        socket_dropin = render_socket_dropin(settings)
    units = _stage(tmp_path, service_dropin, socket_dropin)
    assert _verify(units) == ""
    assert _exposure(units) <= MAX_EXPOSURE


def test_dropin_hands_the_mqtt_files_over_only_with_a_broker() -> None:
    from gateway.settings import load_settings

    files = {
        "mqtt.credentials_file": "/etc/gateway/mqtt.credentials",
        "mqtt.tls_ca_file": "/etc/gateway/mqtt-ca.pem",
    }
    off = load_settings("test", env={}, overrides=files)
    assert "LoadCredential=mqtt" not in render_dropin(off)  # no url: the files are unused
    on = load_settings("test", env={}, overrides={**files, "mqtt.url": "mqtts://broker"})
    text = render_dropin(on)
    assert text.endswith(
        "LoadCredential=mqtt-credentials:/etc/gateway/mqtt.credentials\n"
        "Environment=GATEWAY_MQTT_CREDENTIALS_FILE=%d/mqtt-credentials\n"
        "LoadCredential=mqtt-tls-ca:/etc/gateway/mqtt-ca.pem\n"
        "Environment=GATEWAY_MQTT_TLS_CA_FILE=%d/mqtt-tls-ca\n"
    )
    # the variables point the server at systemd's copies: they load back as settings
    env = {"GATEWAY_MQTT_CREDENTIALS_FILE": "/run/credentials/gateway.service/mqtt-credentials"}
    assert load_settings("test", env=env).mqtt.credentials_file.endswith("/mqtt-credentials")
