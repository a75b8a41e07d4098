# Typed Settings from a hardware profile: firmware_profiles/<name>.toml -> frozen dataclasses.
# Owns the schema, the profile search path, the layering (defaults < profile < GATEWAY_* env <
# overrides) and every startup check on configuration; each failure is a ConfigError naming the
# source, the dotted key and what was expected. Must not import trio or any other gateway layer:
# everything else imports settings. (Longer than ~400 lines because schema, loader and checks
# must agree key for key; splitting them would spread one table over three modules.)
from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeVar

from gateway.errors import ConfigError
from gateway.tomlfile import TOMLError
from gateway.tomlfile import parse as parse_toml

__all__ = [
    "AppSettings",
    "BansSettings",
    "CorsSettings",
    "HTTPSettings",
    "MQTTSettings",
    "MemorySettings",
    "ModeLimits",
    "PER_CONNECTION_OVERHEAD_BYTES",
    "ServerSettings",
    "Settings",
    "check_value",
    "StatusSettings",
    "SystemdSettings",
    "WebSocketSettings",
    "find_profile",
    "format_settings",
    "list_profiles",
    "load_settings",
    "mqtt_address",
    "profile_dirs",
    "worst_case_bytes",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB

# Python objects behind one open connection that no Settings value bounds: the trio task and
# its cancel scope, the SocketStream, the h11.Connection and its bookkeeping, the Request and
# Response objects and their header lists. Measured at ~9-12 KiB on CPython 3.11 (64-bit);
# 16 KiB leaves headroom. Kernel socket buffers are not in here: the kernel bounds them.
PER_CONNECTION_OVERHEAD_BYTES: Final = 16 * KiB

_T = TypeVar("_T")


def _c(default: _T, check: str, zero: str = "") -> _T:
    """A field default with a check ("gt0", "ge0", "port", "cidr", "origin", "token") and
    0's meaning."""
    return field(default=default, metadata={"check": check, "zero": zero})


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """[server]: listeners, connection cap, access control, TLS."""

    host: str = "127.0.0.1"
    port: int = _c(8080, "port")
    unix_path: str = ""
    unix_allowed_uids: tuple[int, ...] = _c((0,), "ge0")
    backlog: int = _c(128, "gt0")
    max_connections: int = _c(1024, "gt0")
    shutdown_grace_s: float = _c(10.0, "ge0", "close at once")
    access_log: bool = True
    allowed_networks: tuple[str, ...] = _c(
        (
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "fe80::/10",
            "fc00::/7",
        ),
        "cidr",
    )
    tls_cert_file: str = ""
    tls_key_file: str = ""
    credentials_file: str = ""
    recv_buffer_bytes: int = _c(65536, "gt0")


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    """[http]: head limits and timeouts of the HTTP/1.1 connection."""

    max_head_bytes: int = _c(8192, "gt0")
    max_request_line_bytes: int = _c(4096, "gt0")
    max_header_count: int = _c(64, "gt0")
    head_timeout_s: float = _c(10.0, "gt0")
    idle_timeout_s: float = _c(30.0, "gt0")
    body_timeout_s: float = _c(30.0, "gt0")
    min_body_rate_bytes_s: int = _c(512, "ge0", "no minimum")
    send_timeout_s: float = _c(30.0, "gt0")
    max_requests_per_connection: int = _c(1000, "gt0")
    max_drain_bytes: int = _c(65536, "ge0", "never drain")


@dataclass(frozen=True, slots=True)
class ModeLimits:
    """[limits.user] / [limits.privileged]: reject above max_body, cache up to max_cache."""

    max_body_bytes: int = _c(1 * MiB, "gt0")
    max_cache_bytes: int = _c(1 * MiB, "gt0")


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """[memory]: the process-wide budget for cached request bodies."""

    body_budget_bytes: int = _c(16 * MiB, "gt0")


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """[websocket]: message, queue and connection limits, keep-alive."""

    max_message_bytes: int = _c(1 * MiB, "gt0")
    max_connections: int = _c(64, "gt0")
    ping_interval_s: float = _c(25.0, "gt0")
    pong_timeout_s: float = _c(20.0, "gt0")
    idle_timeout_s: float = _c(300.0, "gt0")
    allowed_origins: tuple[str, ...] = ()
    permessage_deflate: bool = False
    send_queue_bytes: int = _c(1 * MiB, "gt0")
    max_virtual_response_bytes: int = _c(1 * MiB, "gt0")


@dataclass(frozen=True, slots=True)
class SystemdSettings:
    """[systemd]: values for the unit file (MemoryMax=, MemoryHigh=, LimitNOFILE=, ...)."""

    memory_max_bytes: int = _c(0, "ge0", "unset")
    memory_high_bytes: int = _c(0, "ge0", "unset")
    limit_nofile: int = _c(2048, "gt0")
    tasks_max: int = _c(64, "gt0")
    watchdog_s: float = _c(30.0, "ge0", "off")


@dataclass(frozen=True, slots=True)
class StatusSettings:
    """[status]: who may read what the gateway says about itself (/_gateway/ and metrics)."""

    page_public: bool = True
    metrics_public: bool = False


@dataclass(frozen=True, slots=True)
class MQTTSettings:
    """[mqtt]: the optional MQTT 5 bridge (gateway.server.mqtt_bridge); an empty url is off."""

    url: str = ""
    topic_prefix: str = "gateway"
    device_id: str = ""
    credentials_file: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    rooms: tuple[str, ...] = ()
    max_in_flight: int = _c(16, "gt0")
    keepalive_s: float = _c(30.0, "gt0")
    reconnect_max_s: float = _c(60.0, "gt0")


@dataclass(frozen=True, slots=True)
class CorsSettings:
    """[cors]: which other origins' pages may call the gateway (HTTP, sockets, virtual
    requests); empty ``allowed_origins``: same-origin only, and no CORS headers at all."""

    allowed_origins: tuple[str, ...] = _c((), "origin")
    allowed_methods: tuple[str, ...] = _c(
        ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"), "token"
    )
    allowed_headers: tuple[str, ...] = _c(("Authorization", "Content-Type"), "token")
    allow_credentials: bool = False
    max_age_s: float = _c(600.0, "ge0", "not sent: browsers keep a preflight 5 s")
    exposed_headers: tuple[str, ...] = _c((), "token")


@dataclass(frozen=True, slots=True)
class BansSettings:
    """[bans]: peers that present wrong credentials too often get 429 for a while."""

    max_failures: int = _c(10, "ge0", "never ban")
    window_s: float = _c(60.0, "gt0")
    ban_s: float = _c(600.0, "gt0")
    max_tracked_peers: int = _c(1024, "gt0")
    exempt_networks: tuple[str, ...] = _c((), "cidr")


@dataclass(frozen=True, slots=True)
class AppSettings:
    """[app]: what the gateway does around the app's handlers, whatever the transport."""

    # seconds a request's handlers (middleware included) may take before they are cancelled
    # and the client gets 504; a route's ``timeout=`` option overrides it
    handler_timeout_s: float = _c(0.0, "ge0", "no deadline")


@dataclass(frozen=True, slots=True)
class _ProfileInfo:
    """[profile]: what the profile is for (schema only; flattened into Settings)."""

    description: str = ""
    ram_bytes: int = _c(0, "ge0", "not a board profile")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of one gateway process, resolved and checked.

    ``ram_bytes`` is the board RAM the profile is sized for ([profile] ram_bytes, 0 if none).
    """

    profile: str = "(built-in)"
    source: str = "(built-in defaults)"
    description: str = ""
    server: ServerSettings = field(default_factory=ServerSettings)
    http: HTTPSettings = field(default_factory=HTTPSettings)
    user: ModeLimits = field(default_factory=ModeLimits)
    privileged: ModeLimits = field(
        default_factory=lambda: ModeLimits(max_body_bytes=64 * MiB, max_cache_bytes=8 * MiB)
    )
    memory: MemorySettings = field(default_factory=MemorySettings)
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    systemd: SystemdSettings = field(default_factory=SystemdSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    mqtt: MQTTSettings = field(default_factory=MQTTSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    bans: BansSettings = field(default_factory=BansSettings)
    app: AppSettings = field(default_factory=AppSettings)
    ram_bytes: int = 0

    def limits_for(self, privileged: bool) -> ModeLimits:
        """The body limits of a caller's mode.

        Args:
            privileged: True for a privileged (admin/system) caller.

        Returns:
            ``self.privileged`` or ``self.user``.
        """
        return self.privileged if privileged else self.user


# ---- schema table: one row per dotted key, built once from the dataclasses above --------------


class _Field(NamedTuple):
    key: str  # dotted TOML key, e.g. "limits.user.max_body_bytes"
    section: str  # "limits.user"
    name: str  # "max_body_bytes"
    kind: str  # annotation text: "int", "float", "bool", "str", "tuple[str, ...]"
    check: str
    zero: str


# TOML section -> (dataclass, attribute of Settings); "profile" is flattened into Settings.
_SECTIONS: Final = (
    ("profile", _ProfileInfo, ""),
    ("server", ServerSettings, "server"),
    ("http", HTTPSettings, "http"),
    ("limits.user", ModeLimits, "user"),
    ("limits.privileged", ModeLimits, "privileged"),
    ("memory", MemorySettings, "memory"),
    ("websocket", WebSocketSettings, "websocket"),
    ("systemd", SystemdSettings, "systemd"),
    ("status", StatusSettings, "status"),
    ("mqtt", MQTTSettings, "mqtt"),
    ("cors", CorsSettings, "cors"),
    ("bans", BansSettings, "bans"),
    ("app", AppSettings, "app"),
)
_FIELDS: Final = MappingProxyType(
    {
        f"{sect}.{f.name}": _Field(
            f"{sect}.{f.name}",
            sect,
            f.name,
            str(f.type),
            f.metadata.get("check", ""),
            f.metadata.get("zero", ""),
        )
        for sect, cls, _ in _SECTIONS
        for f in dataclasses.fields(cls)
    }
)
# Environment variable -> dotted key; [profile] is metadata, not overridable from outside.
_ENV_KEYS: Final = MappingProxyType(
    {
        "GATEWAY_" + key.replace(".", "_").upper(): key
        for key in _FIELDS
        if not key.startswith("profile.")
    }
)
# read by gateway.cli (app, log level), gateway.detect (root) and gateway.http.parser (which
# parser, chosen once at import, before any profile is read), not settings
_RESERVED_ENV: Final = frozenset(
    {
        "GATEWAY_PROFILE",
        "GATEWAY_PROFILES_DIR",
        "GATEWAY_ROOT",
        "GATEWAY_APP",
        "GATEWAY_LOG_LEVEL",
        "GATEWAY_HTTP_PARSER",
    }
)
_DEFAULTS_LABEL: Final = "built-in defaults"
_SIZE_HINT: Final = 'a size: bytes, or "64KiB", "16MiB", "1.5GiB"'
_DURATION_HINT: Final = 'a duration: seconds, or "30s", "500ms", "2m", "1h"'
_SIZE_RE: Final = re.compile(r"(\d+)(?:\.(\d+))?\s*([KMGT](?:iB)?|B)?", re.IGNORECASE)
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# an origin as browsers serialise it: scheme://host[:port], nothing after (RFC 6454 section 6.1)
ORIGIN_RE: Final = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(:[0-9]{1,5})?"
)
# a header or method name (an RFC 9110 token)
TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
ORIGIN_HINT: Final = (
    'a list of origins such as "https://app.example.com" or '
    '"http://192.168.1.20:8080" (scheme://host[:port], no path), or ["*"]'
)


def _expected(f: _Field) -> str:
    """What a key accepts, in words: the middle of every 'expected ..., got ...'."""
    if f.check == "port":
        return "a port number 0-65535"
    if f.kind == "bool":
        return "true or false"
    if f.kind == "str":
        return "a string"
    if f.check == "cidr":
        return 'a list of CIDR networks such as "192.168.0.0/16"'
    if f.check == "origin":
        return ORIGIN_HINT
    if f.check == "token":
        return 'a list of header or method names such as "Content-Type"'
    if f.kind == "tuple[str, ...]":
        return "a list of strings"
    if f.kind == "tuple[int, ...]":
        return "a list of integers >= 0"
    if f.name.endswith("_bytes_s"):
        noun = "a rate in bytes per second"
    elif f.name.endswith("_bytes"):
        noun = "a size in bytes"
    elif f.name.endswith("_s"):
        noun = "a number of seconds"
    else:
        noun = "a number" if f.kind == "float" else "an integer"
    text = f"{noun} {'> 0' if f.check == 'gt0' else '>= 0'}"
    return f"{text} (0 = {f.zero})" if f.zero else text


def _toml(value: object) -> str:
    """A value as TOML source (also how values are quoted in error messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch < " " or ch == "\x7f":
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return repr(value) if isinstance(value, float) else str(value)


def _human(n: int) -> str:
    """16777216 -> '16 MiB' (exact) or '1.5 GiB' (rounded); '' below 1 KiB."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n // size} {unit}" if n % size == 0 else f"{n / size:.1f} {unit}"
    return ""


def _bad(where: str, key: str, expected: str, got: object, detail: str = "") -> ConfigError:
    extra = f" ({detail})" if detail else ""
    return ConfigError(f"{where}: {key}: expected {expected}, got {_toml(got)}{extra}")


def _coerce(f: _Field, value: object, where: str) -> Any:
    """Check a typed value (from TOML, an override, or parsed text) against its field."""
    exp, original = _expected(f), value
    if isinstance(value, str) and _is_duration(f):  # "30s" in a profile
        try:
            value = _parse_duration(value)
        except ValueError:
            raise _bad(where, f.key, exp, original, _DURATION_HINT) from None
    elif isinstance(value, str) and f.kind == "int" and f.name.endswith("_bytes"):  # "1MiB"
        try:
            value = _parse_size(value)
        except ValueError:
            raise _bad(where, f.key, exp, original, _SIZE_HINT) from None
    if f.kind == "bool":
        ok = isinstance(value, bool)
    elif f.kind == "int":  # bool is an int subclass, never a number here
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif f.kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif f.kind == "str":
        ok = isinstance(value, str)
    else:
        item = int if f.kind == "tuple[int, ...]" else str
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        )
        value = tuple(value) if ok else value  # type: ignore[arg-type]
    if not ok:
        raise _bad(where, f.key, exp, original)
    numbers = value if isinstance(value, tuple) else (value,)
    if f.check == "port" and not 0 <= value <= 65535:  # type: ignore[operator]
        raise _bad(where, f.key, exp, original)
    if (f.check == "gt0" and any(v <= 0 for v in numbers)) or (
        f.check == "ge0" and any(v < 0 for v in numbers)
    ):
        raise _bad(where, f.key, exp, original)
    if f.check == "cidr":
        for net in numbers:
            try:
                ipaddress.ip_network(net)
            except ValueError as exc:
                raise _bad(where, f.key, exp, original, str(exc)) from None
    elif f.check == "origin":
        for origin in numbers:
            if origin != "*" and not ORIGIN_RE.fullmatch(origin):
                detail = (
                    "no trailing slash or path: an origin is scheme://host[:port]"
                    if ORIGIN_RE.match(origin)
                    else f"{_toml(origin)} is not an origin"
                )
                raise _bad(where, f.key, exp, original, detail)
    elif f.check == "token":
        for name in numbers:
            if name != "*" and not TOKEN_RE.fullmatch(name):
                raise _bad(where, f.key, exp, original, f"{_toml(name)} is not a name")
    return value


def check_value(key: str, value: object, where: str) -> Any:
    """Check one value given in code (a route's ``cors`` option) as the profile's would be.

    Args:
        key: the dotted key whose rules apply, e.g. "cors.allowed_origins".
        value: the value (lists, numbers, booleans, strings as in TOML).
        where: what the error names instead of a file.

    Returns:
        The value as Settings holds it (a list becomes a tuple).

    Raises:
        ConfigError: an unknown key, or a value the key does not accept.
    """
    f = _FIELDS.get(key)
    if f is None or key.startswith("profile."):
        raise ConfigError(f"{where}: {key}: unknown key")
    return _coerce(f, value, where)


_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?", re.IGNORECASE)
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _is_duration(f: _Field) -> bool:
    return f.kind == "float" and f.name.endswith("_s") and not f.name.endswith("_bytes_s")


def _parse_duration(text: str) -> float:
    """'30', '30s', '1.5s', '500ms', '2m', '1h' -> seconds (as systemd writes durations)."""
    m = _DURATION_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]


def _parse_size(text: str) -> int:
    """'1048576', '64KiB', '16M', '1.5GiB' -> bytes (binary units, as systemd reads them)."""
    m = _SIZE_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(text)
    whole, frac, unit = m.groups()
    from fractions import Fraction  # only for human-written sizes ("1.5MiB"): rare, lazy

    n = Fraction(f"{whole}.{frac or 0}") * 1024 ** "BKMGT".index((unit or "B")[0].upper())
    if n.denominator != 1:
        raise ValueError(text)
    return int(n)


def _parse_text(f: _Field, text: str, where: str) -> Any:
    """Parse an environment/override string per field type, then check it like TOML."""
    try:
        value: object
        if f.kind == "int":
            value = _parse_size(text) if f.name.endswith("_bytes") else int(text.strip(), 10)
        elif f.kind == "float":
            value = _parse_duration(text) if _is_duration(f) else float(text)
        elif f.kind == "bool":
            words = {
                "true": True,
                "1": True,
                "yes": True,
                "on": True,
                "false": False,
                "0": False,
                "no": False,
                "off": False,
            }
            value = words[text.strip().lower()]
        elif f.kind == "str":
            value = text
        else:
            items = [s.strip() for s in text.split(",") if s.strip()]
            value = [int(s, 10) for s in items] if f.kind == "tuple[int, ...]" else items
    except (ValueError, KeyError):
        hint = " (e.g. 1048576, 64KiB, 16MiB)" if f.name.endswith("_bytes") else ""
        hint = " (true/false, yes/no, 1/0)" if f.kind == "bool" else hint
        if _is_duration(f):
            raise _bad(where, f.key, _expected(f), text, _DURATION_HINT) from None
        raise _bad(where, f.key, _expected(f) + hint, text) from None
    return _coerce(f, value, where)


def _suggest(word: str, candidates: list[str]) -> str | None:
    """The nearest known name: one with the same last component first, then difflib's."""
    tail = word.rsplit(".", 1)[-1]
    same = [c for c in candidates if c != word and c.rsplit(".", 1)[-1] == tail]
    import difflib  # error path only

    close = same or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(
    where: str,
    key: str,
    what: str,
    candidates: list[str],
    fmt: str = '"{}"',
    pool: list[str] | None = None,
) -> ConfigError:
    """'unknown key' naming the nearest name in pool (default: candidates), else candidates."""
    near = _suggest(key, candidates if pool is None else pool)
    if near is not None:
        return ConfigError(f"{where}: {key}: unknown {what} (did you mean {fmt.format(near)}?)")
    return ConfigError(
        f"{where}: {key}: unknown {what}; expected one of: "
        + ", ".join(fmt.format(c) for c in candidates)
    )


# ---- profile files: search path, extends, flattening ------------------------------------------


def _display(path: Path) -> str:
    """A path as users typed it: relative to the cwd when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _shipped_dir() -> Path:
    """Profiles inside the installed package, or firmware_profiles/ of a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "firmware_profiles"
    return packaged if packaged.is_dir() else here.parent / "firmware_profiles"


def profile_dirs(
    profiles_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[Path]:
    """The directories searched for ``<name>.toml``, first match wins.

    Args:
        profiles_dir: searched first when given.
        env: environment to read ``GATEWAY_PROFILES_DIR`` from (default ``os.environ``).

    Returns:
        profiles_dir, $GATEWAY_PROFILES_DIR, ./firmware_profiles, /etc/gateway/profiles and the
        copy shipped with the package, without duplicates (some may not exist).
    """
    env = os.environ if env is None else env
    dirs = [Path(profiles_dir)] if profiles_dir is not None else []
    if env.get("GATEWAY_PROFILES_DIR"):
        dirs.append(Path(env["GATEWAY_PROFILES_DIR"]))
    dirs += [Path.cwd() / "firmware_profiles", Path("/etc/gateway/profiles"), _shipped_dir()]
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def list_profiles(
    profiles_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[str]:
    """Names of every profile on the search path.

    Args:
        profiles_dir: an extra directory searched first.
        env: environment for ``GATEWAY_PROFILES_DIR`` (default ``os.environ``).

    Returns:
        Sorted, unique profile names (file stems).
    """
    names = {
        p.stem for d in profile_dirs(profiles_dir, env=env) if d.is_dir() for p in d.glob("*.toml")
    }
    return sorted(names)


def _is_path(profile: str) -> bool:
    return profile.endswith(".toml") or "/" in profile or os.sep in profile


def find_profile(
    name: str,
    profiles_dir: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Resolve a profile name (or a path to a .toml file) to its file.

    Args:
        name: "pi4-2gb", or a path such as "./my.toml".
        profiles_dir: an extra directory searched first.
        env: environment for ``GATEWAY_PROFILES_DIR`` (default ``os.environ``).

    Returns:
        The path of the profile file.

    Raises:
        ConfigError: no such file; the message lists the places searched and the profiles found.
    """
    if _is_path(name) and Path(name).is_file():
        return Path(name)
    if not _is_path(name) and _NAME_RE.fullmatch(name):
        for d in profile_dirs(profiles_dir, env=env):
            if (d / f"{name}.toml").is_file():
                return d / f"{name}.toml"
    available = ", ".join(list_profiles(profiles_dir, env=env)) or "none"
    if _is_path(name):
        raise ConfigError(f"{name}: no such profile file; available profiles: {available}")
    searched = ", ".join(_display(d) for d in profile_dirs(profiles_dir, env=env))
    raise ConfigError(
        f'profile "{name}": not found in {searched}; available profiles: '
        f'{available} (or "auto" to detect the board)'
    )


def _read_toml(path: Path) -> dict[str, Any]:
    where = _display(path)
    try:
        return parse_toml(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read profile: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: invalid TOML: the file is not UTF-8 text") from None
    except TOMLError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None


def _flatten(
    doc: dict[str, Any], where: str, errors: list[ConfigError]
) -> tuple[str | None, dict[str, Any]]:
    """Check one parsed file; return its ``extends`` and its checked values by dotted key.

    Every bad section or key is added to ``errors`` and the rest is still checked, so that one
    run reports all of a file's problems, not the first one.
    """
    sections = [s for s, _, _ in _SECTIONS]
    tables: list[tuple[str, object]] = []
    extends = doc.get("extends")
    if extends is not None and (not isinstance(extends, str) or not extends):
        raise _bad(where, "extends", 'a profile name such as "default"', extends)
    for name, val in doc.items():
        if name == "limits":
            if not isinstance(val, dict):
                raise _bad(where, name, "the tables [limits.user] and [limits.privileged]", val)
            tables += [(f"limits.{sub}", subval) for sub, subval in val.items()]
        elif name != "extends":
            tables.append((name, val))
    out: dict[str, Any] = {}
    for sect, table in tables:
        try:
            out.update(_flatten_table(sect, table, where, sections, errors))
        except ConfigError as exc:
            errors.append(exc)
    return extends, out


def _flatten_table(
    sect: str, table: object, where: str, sections: list[str], errors: list[ConfigError]
) -> dict[str, Any]:
    """One section's checked values; a structural error ends this section only."""
    if sect not in sections:
        if isinstance(table, dict):
            raise _unknown(where, sect, "section", sections, "[{}]")
        near = _suggest(sect, list(_FIELDS))  # a stray key: maybe one of some section
        raise ConfigError(
            f"{where}: {sect}: unknown key "
            + (
                f'(did you mean "{near}"?)'
                if near
                else "(keys belong in a section: " + ", ".join(f"[{s}]" for s in sections) + ")"
            )
        )
    if not isinstance(table, dict):
        raise _bad(where, sect, f"a table [{sect}]", table)
    known = [k for k in _FIELDS if k.startswith(sect + ".")]
    out: dict[str, Any] = {}
    for name, val in table.items():
        key = f"{sect}.{name}"
        try:
            if key not in _FIELDS:
                raise _unknown(where, key, "key", known, pool=list(_FIELDS))
            out[key] = _coerce(_FIELDS[key], val, where)
        except ConfigError as exc:
            errors.append(exc)
    return out


def _file_layers(
    path: Path, dirs: list[Path], errors: list[ConfigError], chain: tuple[Path, ...] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """(where, values) of a profile and the profiles it extends, base first."""
    where = _display(path)
    if path.resolve() in chain:
        cycle = " -> ".join(p.stem for p in (*chain, path.resolve()))
        raise ConfigError(
            f"{where}: extends: expected a profile that does not extend itself, "
            f"got the cycle {cycle}"
        )
    extends, values = _flatten(_read_toml(path), where, errors)
    layers: list[tuple[str, dict[str, Any]]] = []
    if extends is not None:
        # a sibling first, so a directory of profiles can carry its own base
        if _is_path(extends):
            found = [path.parent / extends]
        else:
            found = [
                d / f"{extends}.toml" for d in (path.parent, *dirs) if _NAME_RE.fullmatch(extends)
            ]
        parent = next((p for p in found if p.is_file()), None)
        if parent is None:
            raise _bad(
                where,
                "extends",
                "an existing profile (one of: "
                + ", ".join(list_profiles(path.parent, env={}))
                + ")",
                extends,
            )
        layers = _file_layers(parent, dirs, errors, (*chain, path.resolve()))
    return [*layers, (where, values)]


# ---- layering and cross-field checks -----------------------------------------------------------


def _flat_defaults() -> dict[str, Any]:
    base = Settings()
    out: dict[str, Any] = {
        "profile.description": base.description,
        "profile.ram_bytes": base.ram_bytes,
    }
    for sect, cls, attr in _SECTIONS[1:]:
        obj = getattr(base, attr)
        out.update({f"{sect}.{f.name}": getattr(obj, f.name) for f in dataclasses.fields(cls)})
    return out


def _cross_check(v: Mapping[str, Any], origin: Mapping[str, str]) -> None:
    """Combinations no single key can catch; blames the one of two keys that was set last."""

    def ref(key: str) -> str:
        size = _human(v[key]) if isinstance(v[key], int) else ""
        return f"{key} ({_toml(v[key])}{', ' + size if size else ''}, from {origin[key]})"

    def rank(key: str) -> int:
        where = origin[key]
        return (
            0
            if where == _DEFAULTS_LABEL
            else 3
            if where == "override"
            else 2
            if where.startswith("$")
            else 1
        )

    def need(small: str, big: str, strict: bool = False, why: str = "") -> None:
        if v[small] < v[big] or (v[small] == v[big] and not strict):
            return
        if rank(big) > rank(small):  # blame the value set last: that is what changed
            raise _bad(origin[big], big, f"{'>' if strict else '>='} {ref(small)}", v[big], why)
        raise _bad(origin[small], small, f"{'<' if strict else '<='} {ref(big)}", v[small], why)

    for mode in ("user", "privileged"):
        need(
            f"limits.{mode}.max_cache_bytes",
            f"limits.{mode}.max_body_bytes",
            why="a body is never cached beyond what is accepted",
        )
        need(
            f"limits.{mode}.max_cache_bytes",
            "memory.body_budget_bytes",
            why="one cached body must fit the whole budget",
        )
    need(
        "http.max_request_line_bytes",
        "http.max_head_bytes",
        why="the request line is part of the head",
    )
    creds = "cors.allow_credentials"
    if v[creds]:
        for key in ("cors.allowed_origins", "cors.exposed_headers"):
            if "*" in v[key]:  # browsers refuse "*" on a credentialed request (Fetch)
                blame, other = (key, creds) if rank(key) >= rank(creds) else (creds, key)
                what = "origins" if key.endswith("origins") else "header names"
                raise _bad(
                    origin[blame],
                    blame,
                    f'no "*" together with {ref(other)}',
                    v[blame],
                    f"browsers refuse a wildcard on credentialed requests: list the {what}",
                )
    cert, key = "server.tls_cert_file", "server.tls_key_file"
    if bool(v[cert]) != bool(v[key]):
        have, missing = (cert, key) if v[cert] else (key, cert)
        raise _bad(origin[have], have, f"{missing} to be set too (TLS needs both)", v[have])
    if v["systemd.memory_max_bytes"]:
        if v["systemd.memory_high_bytes"]:
            need(
                "systemd.memory_high_bytes",
                "systemd.memory_max_bytes",
                why="MemoryHigh= throttles before MemoryMax= kills",
            )
        need(
            "memory.body_budget_bytes",
            "systemd.memory_max_bytes",
            strict=True,
            why="the process needs memory besides cached bodies",
        )
    _check_mqtt(v, origin)


# MQTT topic levels: a name must not hold a wildcard (+ #) or NUL, and a prefix or device id
# no level separator either (a device id with "/" would answer another device's topics)
_TOPIC_LEVEL: Final = re.compile(r"[^/+#\x00]+")
_TOPIC_NAME: Final = re.compile(r"[^+#\x00]+")


def mqtt_address(url: str) -> tuple[bool, str, int]:
    """(tls, host, port) of an ``[mqtt] url``: ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``.

    Args:
        url: the url (IPv6 hosts in brackets).

    Returns:
        Whether the connection uses TLS, the host and the port.

    Raises:
        ValueError: another scheme, no host, a path/query/user part, or a bad port.
    """
    from urllib.parse import urlsplit  # only with a bridge configured

    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError("the scheme must be mqtt:// or mqtts://")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("only a host and a port (credentials go in mqtt.credentials_file)")
    port = parts.port  # ValueError when out of range or not a number
    if not parts.hostname:
        raise ValueError("no host")
    tls = parts.scheme == "mqtts"
    return tls, parts.hostname, port if port is not None else (8883 if tls else 1883)


def _check_mqtt(v: Mapping[str, Any], origin: Mapping[str, str]) -> None:
    """[mqtt]: the url, the names that become topic levels, and TLS files that need TLS."""

    def bad(key: str, expected: str) -> ConfigError:
        return _bad(origin[key], key, expected, v[key])

    url = v["mqtt.url"]
    if not url:
        return  # no bridge: nothing else in [mqtt] is used
    try:
        tls, _, _ = mqtt_address(url)
    except ValueError as exc:
        raise _bad(
            origin["mqtt.url"],
            "mqtt.url",
            'a broker url such as "mqtt://host:1883" or "mqtts://host:8883"',
            url,
            str(exc),
        ) from None
    for key in ("mqtt.topic_prefix", "mqtt.device_id"):
        if v[key] and not _TOPIC_LEVEL.fullmatch(v[key]):
            raise bad(key, "one MQTT topic level (no '/', '+', '#' or NUL)")
    if not v["mqtt.topic_prefix"]:
        raise bad("mqtt.topic_prefix", "a non-empty topic level")
    if v["mqtt.device_id"] == "all":
        raise bad("mqtt.device_id", 'a device id other than "all" (the fleet-wide topics)')
    for room in v["mqtt.rooms"]:
        if not _TOPIC_NAME.fullmatch(room):
            raise _bad(
                origin["mqtt.rooms"],
                "mqtt.rooms",
                "room names that can be topic levels (non-empty; no '+', '#' or NUL)",
                v["mqtt.rooms"],
            )
    for key in ("mqtt.tls_ca_file", "mqtt.tls_cert_file", "mqtt.tls_key_file"):
        if v[key] and not tls:
            raise bad(key, "an mqtts:// url (TLS files without TLS would be ignored)")
    cert, key = "mqtt.tls_cert_file", "mqtt.tls_key_file"
    if bool(v[cert]) != bool(v[key]):
        have, missing = (cert, key) if v[cert] else (key, cert)
        raise bad(have, f"{missing} to be set too (a client certificate needs both)")


def _env_items(env: Mapping[str, str]) -> Iterator[tuple[str, str, str]]:
    """(where, dotted key, text) for every settings variable; unknown GATEWAY_* fail."""
    for name in sorted(env):
        if not name.startswith("GATEWAY_") or name in _RESERVED_ENV:
            continue
        if name not in _ENV_KEYS:
            near = _suggest(name, sorted(_ENV_KEYS))
            hint = (
                f"did you mean {near}?"
                if near
                else "settings variables are GATEWAY_<SECTION>_<KEY>, e.g. GATEWAY_SERVER_PORT"
            )
            raise ConfigError(f"{name}: unknown GATEWAY_* environment variable ({hint})")
        yield f"${name}", _ENV_KEYS[name], env[name]


def load_settings(
    profile: str | os.PathLike[str] | None = "default",
    *,
    profiles_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Load and check a profile: defaults < profile file(s) < environment < overrides.

    Args:
        profile: a profile name, a path to a .toml file, "auto" (detect the board below
            ``$GATEWAY_ROOT``, default "/"), or None for ``$GATEWAY_PROFILE`` or "default".
        profiles_dir: a directory searched before the standard ones (see ``profile_dirs``).
        env: the environment (default ``os.environ``); ``GATEWAY_<SECTION>_<KEY>`` variables
            override the file, e.g. ``GATEWAY_LIMITS_USER_MAX_BODY_BYTES=2MiB``.
        overrides: "section.key" -> a string (parsed like the environment) or a typed value,
            e.g. ``{"server.port": "9000"}``; None values are skipped (unset CLI flags).

    Returns:
        The checked, frozen Settings.

    Raises:
        ConfigError: missing or invalid profile, unknown key or variable, wrong type, value
            out of range or an impossible combination; the message names the source, the
            dotted key and what was expected.
    """
    env = os.environ if env is None else env
    name = os.fspath(profile) if profile is not None else env.get("GATEWAY_PROFILE") or "default"
    if name == "auto":
        from gateway.detect import detect  # only "auto" needs the hardware probe

        name = detect(env.get("GATEWAY_ROOT") or "/").profile
    path = find_profile(name, profiles_dir, env=env)
    values = _flat_defaults()
    origin = dict.fromkeys(values, _DEFAULTS_LABEL)
    errors: list[ConfigError] = []
    for where, layer in _file_layers(path, profile_dirs(profiles_dir, env=env), errors):
        values.update(layer)
        origin.update(dict.fromkeys(layer, where))
    try:
        for where, key, text in _env_items(env):
            try:
                values[key], origin[key] = _parse_text(_FIELDS[key], text, where), where
            except ConfigError as exc:
                errors.append(exc)
    except ConfigError as exc:  # an unknown GATEWAY_* variable
        errors.append(exc)
    for key, val in (overrides or {}).items():
        if val is None:
            continue
        try:
            if key not in _FIELDS or key.startswith("profile."):
                raise _unknown("override", key, "key", [k for k in _FIELDS if "profile." not in k])
            f = _FIELDS[key]
            values[key] = (
                _parse_text(f, val, "override")
                if isinstance(val, str)
                else _coerce(f, val, "override")
            )
            origin[key] = "override"
        except ConfigError as exc:
            errors.append(exc)
    if not errors:  # combinations are judged on values that are each valid
        try:
            _cross_check(values, origin)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigError.of(errors)

    def section(sect: str, cls: Any) -> Any:
        return cls(**{f.name: values[f"{sect}.{f.name}"] for f in dataclasses.fields(cls)})

    return Settings(
        profile=path.stem,
        source=str(path.resolve()),
        description=values["profile.description"],
        ram_bytes=values["profile.ram_bytes"],
        **{attr: section(sect, cls) for sect, cls, attr in _SECTIONS[1:]},
    )


def format_settings(settings: Settings) -> str:
    """Resolved settings as TOML that ``load_settings`` reads back (for ``gateway settings``).

    Args:
        settings: what ``load_settings`` returned.

    Returns:
        TOML text: a comment header naming the profile and its source, then every section
        with every key; sizes carry a human-readable comment.
    """

    def comment(text: str) -> str:
        return text.replace("\r", "\\r").replace("\n", "\\n")

    lines = [
        f"# gateway settings, profile {comment(settings.profile)}",
        f"# source: {comment(settings.source)}",
        "# resolved: built-in defaults < profile < GATEWAY_* environment < overrides",
    ]
    for sect, cls, attr in _SECTIONS:
        obj: object = settings if sect == "profile" else getattr(settings, attr)
        lines += ["", f"[{sect}]"]
        for f in dataclasses.fields(cls):
            value = getattr(obj, f.name)
            size = _human(value) if "bytes" in f.name and isinstance(value, int) else ""
            lines.append(f"{f.name} = {_toml(value)}" + (f"  # {size}" if size else ""))
    return "\n".join(lines) + "\n"


def worst_case_bytes(settings: Settings, start_rss_bytes: int = 32 * MiB) -> int:
    """Upper bound of the process's memory when every Settings ceiling is reached at once.

    start RSS + max_connections x (recv buffer + max head + PER_CONNECTION_OVERHEAD_BYTES)
    + websocket.max_connections x (send queue + max message) + the body cache budget.
    Compare it with ``systemd.memory_max_bytes``: the backstop must never be the limit that
    normal full load hits.

    Args:
        settings: resolved settings.
        start_rss_bytes: RSS after start-up with the app loaded (CPython + trio + h11 +
            wsproto + the app measure ~25-30 MiB on 64-bit ARM).

    Returns:
        The bound in bytes.
    """
    s, h, ws = settings.server, settings.http, settings.websocket
    per_connection = s.recv_buffer_bytes + h.max_head_bytes + PER_CONNECTION_OVERHEAD_BYTES
    per_websocket = ws.send_queue_bytes + ws.max_message_bytes
    return (
        start_rss_bytes
        + s.max_connections * per_connection
        + ws.max_connections * per_websocket
        + settings.memory.body_budget_bytes
    )
