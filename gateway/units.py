# Renders the per-profile systemd drop-ins from Settings: resource limits, watchdog, stop timeout
# and secrets for gateway.service, the listener address for gateway.socket. Pure functions
# (text in, text out); installing them is the operator's or the image build's job.
# Typed against small Protocols of the fields used, not gateway.settings, so any object with
# those attributes (the frozen Settings dataclasses, a test double) renders the same text.
from __future__ import annotations

import ipaddress
import math
import re
from typing import Protocol

from gateway.errors import ConfigError

__all__ = [
    "DROPIN_PATH",
    "SOCKET_DROPIN_PATH",
    "STOP_MARGIN_S",
    "CREDENTIALS",
    "MQTT_CREDENTIALS",
    "render_dropin",
    "render_socket_dropin",
]

DROPIN_PATH = "/etc/systemd/system/gateway.service.d/50-profile.conf"
SOCKET_DROPIN_PATH = "/etc/systemd/system/gateway.socket.d/50-profile.conf"

#: Seconds added to server.shutdown_grace_s for TimeoutStopSec=: the grace period covers the
#: connections draining, the margin covers interpreter exit before systemd sends SIGKILL.
STOP_MARGIN_S = 5.0

#: Secret files handed over with LoadCredential=: (ServerSettings attribute, credential id,
#: the GATEWAY_ variable that points the server at the copy in $CREDENTIALS_DIRECTORY).
CREDENTIALS: tuple[tuple[str, str, str], ...] = (
    ("credentials_file", "credentials", "GATEWAY_SERVER_CREDENTIALS_FILE"),
    ("tls_cert_file", "tls-cert", "GATEWAY_SERVER_TLS_CERT_FILE"),
    ("tls_key_file", "tls-key", "GATEWAY_SERVER_TLS_KEY_FILE"),
)

#: The same for the MQTT bridge's files ([mqtt] attribute, credential id, variable), handed
#: over only when [mqtt] url is set (a LoadCredential= of a missing file stops the unit).
MQTT_CREDENTIALS: tuple[tuple[str, str, str], ...] = (
    ("credentials_file", "mqtt-credentials", "GATEWAY_MQTT_CREDENTIALS_FILE"),
    ("tls_ca_file", "mqtt-tls-ca", "GATEWAY_MQTT_TLS_CA_FILE"),
    ("tls_cert_file", "mqtt-tls-cert", "GATEWAY_MQTT_TLS_CERT_FILE"),
    ("tls_key_file", "mqtt-tls-key", "GATEWAY_MQTT_TLS_KEY_FILE"),
)

# Where the sandboxed service may create a Unix socket: RuntimeDirectory= and StateDirectory=.
_WRITABLE_DIRS = ("/run/gateway/", "/var/lib/gateway/")

# What may appear unquoted in Environment=NAME=value without escaping or specifier expansion.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._+-]+\Z")


class SystemdFields(Protocol):
    """The [systemd] settings the service drop-in uses."""

    @property
    def memory_max_bytes(self) -> int: ...
    @property
    def memory_high_bytes(self) -> int: ...
    @property
    def limit_nofile(self) -> int: ...
    @property
    def tasks_max(self) -> int: ...
    @property
    def watchdog_s(self) -> float: ...


class ServerFields(Protocol):
    """The [server] settings the drop-ins use."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def unix_path(self) -> str: ...
    @property
    def unix_allowed_uids(self) -> tuple[int, ...]: ...
    @property
    def backlog(self) -> int: ...
    @property
    def shutdown_grace_s(self) -> float: ...
    @property
    def credentials_file(self) -> str: ...
    @property
    def tls_cert_file(self) -> str: ...
    @property
    def tls_key_file(self) -> str: ...


class UnitSettings(Protocol):
    """The part of gateway.settings.Settings that the drop-ins are rendered from."""

    @property
    def profile(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def server(self) -> ServerFields: ...
    @property
    def systemd(self) -> SystemdFields: ...


def _comment(text: str) -> str:
    # A profile's name or path must not end the comment line and start a directive.
    return " ".join(text.split())


def _header(settings: UnitSettings, path: str) -> list[str]:
    return [
        f"# Profile {_comment(settings.profile)!r} ({_comment(settings.source) or 'defaults'}).",
        "# Rendered by gateway.units; regenerate it rather than editing it by hand.",
        f"# Install as {path}, then: systemctl daemon-reload",
    ]


def _size(nbytes: int) -> str:
    # systemd reads K/M/G as powers of 1024; use the largest exact one so it reads well.
    for suffix, unit in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


def _timespan(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _unit_path(value: str, key: str) -> str:
    if not value.startswith("/") or any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(
            f"{key}={value!r}: expected an absolute path without spaces "
            "or control characters (it goes into a systemd unit)"
        )
    return value.replace("%", "%%")  # '%' starts a unit-file specifier


def render_dropin(settings: UnitSettings) -> str:
    """Render the gateway.service drop-in for one profile (see DROPIN_PATH).

    It pins GATEWAY_PROFILE (an /etc/gateway/gateway.env setting still wins: EnvironmentFile=
    overrides Environment=), sets MemoryHigh=/MemoryMax= (omitted when 0), LimitNOFILE=,
    TasksMax=, WatchdogSec= and TimeoutStopSec= (shutdown_grace_s + STOP_MARGIN_S), turns
    PrivateUsers= off when server.unix_allowed_uids names a non-root uid (SO_PEERCRED inside a
    user namespace could not see it), and for
    each secret file set in [server] (and in [mqtt], when its url is set) a LoadCredential=
    plus the GATEWAY_* variable that points the server at systemd's private copy (%d is
    $CREDENTIALS_DIRECTORY).

    Args:
        settings: the resolved settings (gateway.settings.Settings or anything shaped like it).

    Returns:
        The drop-in text, ending in a newline.

    Raises:
        ConfigError: a value cannot be expressed in a unit file or is out of range, or
            server.unix_path is outside the directories the sandbox lets the service write
            (the message names the key and what was expected).
    """
    sd = settings.systemd
    if not _SAFE_VALUE.match(settings.profile):
        raise ConfigError(
            f"profile name {settings.profile!r}: expected letters, digits, "
            "'.', '_', '+' or '-' (it goes into Environment=)"
        )
    for key, value in (
        ("memory_max_bytes", sd.memory_max_bytes),
        ("memory_high_bytes", sd.memory_high_bytes),
    ):
        if value < 0:
            raise ConfigError(f"systemd.{key}={value}: expected bytes >= 0 (0 = no limit)")
    if sd.memory_max_bytes and sd.memory_high_bytes > sd.memory_max_bytes:
        raise ConfigError(
            f"systemd.memory_high_bytes={sd.memory_high_bytes}: expected at most "
            f"systemd.memory_max_bytes={sd.memory_max_bytes} (High throttles "
            "before Max kills)"
        )
    for key, count in (("limit_nofile", sd.limit_nofile), ("tasks_max", sd.tasks_max)):
        if count < 1:
            raise ConfigError(f"systemd.{key}={count}: expected an integer >= 1")
    if not (sd.watchdog_s >= 0 and math.isfinite(sd.watchdog_s)):
        raise ConfigError(
            f"systemd.watchdog_s={sd.watchdog_s}: expected seconds >= 0 (0 = watchdog off)"
        )
    grace = settings.server.shutdown_grace_s
    if not (grace >= 0 and math.isfinite(grace)):
        raise ConfigError(f"server.shutdown_grace_s={grace}: expected seconds >= 0")

    unix = settings.server.unix_path
    if unix and not unix.startswith(_WRITABLE_DIRS):
        raise ConfigError(
            f"server.unix_path={unix!r}: expected a path under "
            f"{' or '.join(_WRITABLE_DIRS)} (the sandbox makes every other path read-only)"
        )
    lines = _header(settings, DROPIN_PATH)
    lines += ["", "[Service]", f"Environment=GATEWAY_PROFILE={settings.profile}"]
    if sd.memory_high_bytes:
        lines.append(f"MemoryHigh={_size(sd.memory_high_bytes)}")
    if sd.memory_max_bytes:
        lines.append(f"MemoryMax={_size(sd.memory_max_bytes)}")
    lines.append(f"LimitNOFILE={sd.limit_nofile}")
    lines.append(f"TasksMax={sd.tasks_max}")
    # WatchdogSec=0 turns the watchdog off; the server then sees no WATCHDOG_USEC.
    lines.append(f"WatchdogSec={_timespan(sd.watchdog_s) if sd.watchdog_s else '0'}")
    lines.append(f"TimeoutStopSec={_timespan(math.ceil(grace + STOP_MARGIN_S))}")
    if unix and set(settings.server.unix_allowed_uids) - {0}:
        # With PrivateUsers=yes only root and the service's own uid are mapped: SO_PEERCRED
        # would report every other allowed uid as 65534 and its privilege would be lost.
        lines.append("PrivateUsers=no")
    for attr, cred_id, env in CREDENTIALS:
        path = str(getattr(settings.server, attr))
        if path:
            lines.append(f"LoadCredential={cred_id}:{_unit_path(path, 'server.' + attr)}")
            lines.append(f"Environment={env}=%d/{cred_id}")
    mqtt = getattr(settings, "mqtt", None)  # [mqtt]: read if the settings have it
    if mqtt is not None and mqtt.url:
        for attr, cred_id, env in MQTT_CREDENTIALS:
            path = str(getattr(mqtt, attr))
            if path:
                lines.append(f"LoadCredential={cred_id}:{_unit_path(path, 'mqtt.' + attr)}")
                lines.append(f"Environment={env}=%d/{cred_id}")
    return "\n".join(lines) + "\n"


def _listen_addresses(host: str, port: int) -> list[str]:
    if not 0 < port < 65536:
        raise ConfigError(
            f"server.port={port}: expected 1-65535 for a socket unit "
            "(port 0 cannot be socket-activated)"
        )
    # The same reading as gateway.server.serve: comma-separated, empty means loopback.
    hosts = [h.strip() for h in host.split(",") if h.strip()] or ["127.0.0.1"]
    out = []
    for h in hosts:
        try:
            addr = ipaddress.ip_address(h.strip("[]"))
        except ValueError:
            raise ConfigError(
                f"server.host={host!r}: expected IP addresses, comma-separated "
                f"(ListenStream= takes no host names like {h!r})"
            ) from None
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
            # systemd's address parser has no "%zone" (and '%' starts a specifier).
            raise ConfigError(
                f"server.host={host!r}: a scoped IPv6 address ({h!r}) cannot be a ListenStream=; "
                "listen on [::] and let server.allowed_networks filter"
            )
        out.append(f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}")
    return out


def render_socket_dropin(settings: UnitSettings) -> str:
    """Render the gateway.socket drop-in for one profile (see SOCKET_DROPIN_PATH).

    It replaces the unit's ListenStream= with one per address of server.host (comma-separated,
    IPv6 in brackets, empty = 127.0.0.1, as the server itself reads it) on server.port, makes
    IPv6 listeners IPv6-only like the server's own, and sets Backlog= from server.backlog.
    server.unix_path is not included: the server binds it itself (in RuntimeDirectory=), also
    when socket-activated.

    Args:
        settings: the resolved settings.

    Returns:
        The drop-in text, ending in a newline.

    Raises:
        ConfigError: a host is not an IP literal (or is a scoped IPv6 one), the port is 0 or
            out of range, or the backlog is not positive.
    """
    server = settings.server
    if server.backlog < 1:
        raise ConfigError(f"server.backlog={server.backlog}: expected an integer >= 1")
    lines = _header(settings, SOCKET_DROPIN_PATH)
    lines += [
        "",
        "[Socket]",
        "# An empty ListenStream= drops the unit's own listeners before adding the profile's.",
        "ListenStream=",
    ]
    lines += [f"ListenStream={addr}" for addr in _listen_addresses(server.host, server.port)]
    lines.append("BindIPv6Only=ipv6-only")
    lines.append(f"Backlog={server.backlog}")
    return "\n".join(lines) + "\n"
