"""gateway.settings: schema, search path, layering, every validation message, shipped profiles."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import (
    PER_CONNECTION_OVERHEAD_BYTES,
    HTTPSettings,
    ModeLimits,
    Settings,
    find_profile,
    format_settings,
    list_profiles,
    load_settings,
    profile_dirs,
    worst_case_bytes,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "firmware_profiles"
MiB = 1024 * 1024
BOARD_PROFILES = (
    "pi-zero-2w",
    "pi3bplus",
    "pi4-2gb",
    "pi4-8gb",
    "beaglebone-black",
    "generic-amd64",
    "generic-arm64",
    "tiny",
)
ALL_PROFILES = sorted(p.stem for p in SHIPPED.glob("*.toml"))


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ./firmware_profiles in a fresh cwd, so messages read firmware_profiles/x.toml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "firmware_profiles").mkdir()
    return tmp_path / "firmware_profiles"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(text: str, profiles: Path, **kwargs: object) -> str:
    write(profiles, "p", text)
    with pytest.raises(ConfigError) as info:
        load_settings("p", env=kwargs.pop("env", {}), **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# ---- schema and defaults ------------------------------------------------------------------------


def test_builtin_defaults_match_the_contract() -> None:
    s = Settings()
    assert s.server.host == "127.0.0.1" and s.server.port == 8080
    assert s.server.unix_allowed_uids == (0,) and s.server.backlog == 128
    assert s.server.max_connections == 1024 and s.server.shutdown_grace_s == 10.0
    assert s.server.allowed_networks[:2] == ("127.0.0.0/8", "::1/128")
    assert len(s.server.allowed_networks) == 8 and s.server.recv_buffer_bytes == 65536
    assert s.http == HTTPSettings(8192, 4096, 64, 10.0, 30.0, 30.0, 512, 30.0, 1000, 65536)
    assert s.user == ModeLimits(1 * MiB, 1 * MiB)
    assert s.privileged == ModeLimits(64 * MiB, 8 * MiB)
    assert s.memory.body_budget_bytes == 16 * MiB
    ws = s.websocket
    assert (
        ws.max_message_bytes,
        ws.max_connections,
        ws.ping_interval_s,
        ws.pong_timeout_s,
        ws.idle_timeout_s,
        ws.allowed_origins,
        ws.permessage_deflate,
        ws.send_queue_bytes,
        ws.max_virtual_response_bytes,
    ) == (MiB, 64, 25.0, 20.0, 300.0, (), False, MiB, MiB)
    sd = s.systemd
    assert (
        sd.memory_max_bytes,
        sd.memory_high_bytes,
        sd.limit_nofile,
        sd.tasks_max,
        sd.watchdog_s,
    ) == (0, 0, 2048, 64, 30.0)
    assert s.status.page_public is True and s.status.metrics_public is False
    cors = s.cors
    assert (
        cors.allowed_origins,
        cors.allowed_methods,
        cors.allowed_headers,
        cors.allow_credentials,
        cors.max_age_s,
        cors.exposed_headers,
    ) == (
        (),
        ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"),
        ("Authorization", "Content-Type"),
        False,
        600.0,
        (),
    )
    bans = s.bans
    assert (
        bans.max_failures,
        bans.window_s,
        bans.ban_s,
        bans.max_tracked_peers,
        bans.exempt_networks,
    ) == (10, 60.0, 600.0, 1024, ())
    assert s.app.handler_timeout_s == 0.0  # no handler deadline unless a profile sets one


def test_default_profile_states_exactly_the_builtin_defaults() -> None:
    loaded = load_settings("default", env={})
    base = Settings()
    for attr in (
        "server",
        "http",
        "user",
        "privileged",
        "memory",
        "websocket",
        "systemd",
        "status",
        "cors",
        "bans",
        "app",
    ):
        assert getattr(loaded, attr) == getattr(base, attr), attr
    assert loaded.profile == "default" and loaded.source == str(SHIPPED / "default.toml")


def test_settings_are_frozen_and_slotted() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.port = 1  # type: ignore[misc]
    assert not hasattr(s.server, "__dict__") and not hasattr(s, "__dict__")


def test_limits_for_picks_the_mode() -> None:
    s = load_settings("test", env={})
    assert s.limits_for(True) is s.privileged and s.limits_for(False) is s.user


# ---- shipped profiles ----------------------------------------------------------------------------


def test_every_required_profile_is_shipped() -> None:
    assert {"default", "test", *BOARD_PROFILES} <= set(ALL_PROFILES)


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_every_shipped_profile_loads(name: str) -> None:
    s = load_settings(name, env={})
    assert s.profile == name and s.description
    assert s.systemd.limit_nofile > s.server.max_connections + 32


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_every_number_in_a_shipped_profile_is_commented(name: str) -> None:
    for line in (SHIPPED / f"{name}.toml").read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            number = tomllib.loads(f"x = {value.split('#')[0]}")["x"]
        except tomllib.TOMLDecodeError:  # the first line of a multi-line array
            continue
        if isinstance(number, int | float) and not isinstance(number, bool):
            assert "#" in value, f"{name}.toml: {key.strip()} has no comment"


def test_test_profile_is_small_and_fast() -> None:
    s = load_settings("test", env={})
    assert s.server.port == 0 and not s.server.access_log
    assert s.http.max_head_bytes == 4096 and s.server.max_connections == 16
    assert s.memory.body_budget_bytes == 4 * MiB and s.http.idle_timeout_s <= 5


@pytest.mark.parametrize("name", BOARD_PROFILES)
def test_board_profile_worst_case_fits_its_backstop(name: str) -> None:
    s = load_settings(name, env={})
    assert s.ram_bytes > 0
    assert worst_case_bytes(s) <= s.systemd.memory_max_bytes < s.ram_bytes
    assert 0 < s.systemd.memory_high_bytes < s.systemd.memory_max_bytes
    assert s.server.host == "0.0.0.0"


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_worst_case_fits_wherever_a_backstop_is_set(name: str) -> None:
    s = load_settings(name, env={})
    if s.systemd.memory_max_bytes:
        assert worst_case_bytes(s) <= s.systemd.memory_max_bytes


def test_worst_case_formula() -> None:
    s = Settings()
    per_conn = 65536 + 8192 + PER_CONNECTION_OVERHEAD_BYTES
    expected = 32 * MiB + 1024 * per_conn + 64 * (MiB + MiB) + 16 * MiB
    assert worst_case_bytes(s) == expected
    assert worst_case_bytes(s, start_rss_bytes=0) == expected - 32 * MiB
    assert PER_CONNECTION_OVERHEAD_BYTES == 16 * 1024


# ---- search path ---------------------------------------------------------------------------------


def test_search_order(tmp_path: Path, profiles: Path) -> None:
    arg, env_dir = tmp_path / "arg", tmp_path / "env"
    for d, text in ((arg, "arg"), (env_dir, "env"), (profiles, "cwd")):
        d.mkdir(exist_ok=True)
        write(d, "dup", f'[profile]\ndescription = "{text}"\n')
    env = {"GATEWAY_PROFILES_DIR": str(env_dir)}
    assert load_settings("dup", profiles_dir=arg, env=env).description == "arg"
    assert load_settings("dup", env=env).description == "env"
    assert load_settings("dup", env={}).description == "cwd"
    dirs = profile_dirs(arg, env=env)
    assert dirs[:4] == [arg, env_dir, profiles, Path("/etc/gateway/profiles")]
    assert dirs[4] == SHIPPED  # a source checkout: the repository's own profiles
    assert "dup" in list_profiles(env={}) and "pi4-2gb" in list_profiles(env={})


def test_shipped_profiles_resolve_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_profile("pi4-2gb", env={}) == SHIPPED / "pi4-2gb.toml"
    assert load_settings("test", env={}).server.port == 0


def test_profile_by_path(tmp_path: Path) -> None:
    path = write(tmp_path, "custom", "[server]\nport = 9001\n")
    s = load_settings(str(path), env={})
    assert s.server.port == 9001 and s.profile == "custom" and s.source == str(path)
    assert load_settings(path, env={}).server.port == 9001  # os.PathLike too


def test_profile_from_environment_when_none(profiles: Path) -> None:
    write(profiles, "mine", "[server]\nport = 9002\n")
    assert load_settings(None, env={"GATEWAY_PROFILE": "mine"}).server.port == 9002
    assert load_settings(None, env={}).profile == "default"


def test_missing_profile_name_lists_the_available_ones(profiles: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings("nope", env={})
    msg = str(info.value)
    assert msg.startswith('profile "nope": not found in firmware_profiles, /etc/gateway/profiles')
    assert "available profiles: " in msg and "pi4-2gb" in msg and "default" in msg
    with pytest.raises(ConfigError, match='profile "../x": not found|no such profile file'):
        load_settings("../x", env={})


def test_missing_profile_path(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), env={})
    assert str(info.value).startswith(f"{path}: no such profile file; available profiles: ")


# ---- extends -------------------------------------------------------------------------------------


def test_extends_inherits_and_overrides(profiles: Path) -> None:
    write(profiles, "base", "[server]\nport = 9100\nbacklog = 7\n[http]\nmax_head_bytes = 4096\n")
    write(profiles, "mid", 'extends = "base"\n[server]\nport = 9200\n')
    write(profiles, "leaf", 'extends = "mid"\n[http]\nmax_head_bytes = 6000\n')
    s = load_settings("leaf", env={})
    assert (s.server.port, s.server.backlog, s.http.max_head_bytes) == (9200, 7, 6000)
    assert s.http.idle_timeout_s == 30.0  # untouched: the built-in default


def test_extends_default_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./firmware_profiles: "default" comes from the package
    path = write(tmp_path, "board", 'extends = "default"\n[server]\nport = 9300\n')
    s = load_settings(str(path), env={})
    assert s.server.port == 9300 and s.description == load_settings("default", env={}).description


def test_extends_by_relative_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, "base", "[server]\nbacklog = 3\n")
    path = write(tmp_path / "sub", "child", 'extends = "../base.toml"\n')
    assert load_settings(str(path), env={}).server.backlog == 3


def test_extends_errors(profiles: Path) -> None:
    write(profiles, "a", 'extends = "b"\n')
    write(profiles, "b", 'extends = "a"\n')
    with pytest.raises(ConfigError) as info:
        load_settings("a", env={})
    assert str(info.value) == (
        "firmware_profiles/a.toml: extends: expected a profile that does "
        "not extend itself, got the cycle a -> b -> a"
    )
    assert error_of("extends = 5\n", profiles) == (
        'firmware_profiles/p.toml: extends: expected a profile name such as "default", got 5'
    )
    msg = error_of('extends = "nosuch"\n', profiles)
    assert msg.startswith(
        "firmware_profiles/p.toml: extends: expected an existing profile (one of: "
    )
    assert msg.endswith('), got "nosuch"')


def test_error_in_a_parent_names_the_parent(profiles: Path) -> None:
    write(profiles, "base", "[server]\nport = 70000\n")
    assert error_of('extends = "base"\n', profiles) == (
        "firmware_profiles/base.toml: server.port: expected a port number 0-65535, got 70000"
    )


# ---- per-key validation: the exact message shape -------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[http]\nidle_timeout_s = "abc"',
            'http.idle_timeout_s: expected a number of seconds > 0, got "abc"'
            ' (a duration: seconds, or "30s", "500ms", "2m", "1h")',
        ),
        (
            "[http]\nidle_timeout_s = 0",
            "http.idle_timeout_s: expected a number of seconds > 0, got 0",
        ),
        (
            "[http]\nhead_timeout_s = -1.5",
            "http.head_timeout_s: expected a number of seconds > 0, got -1.5",
        ),
        (
            "[http]\nhead_timeout_s = inf",
            "http.head_timeout_s: expected a number of seconds > 0, got inf",
        ),
        (
            "[http]\nhead_timeout_s = true",
            "http.head_timeout_s: expected a number of seconds > 0, got true",
        ),
        (
            "[server]\nmax_connections = true",
            "server.max_connections: expected an integer > 0, got true",
        ),
        (
            "[server]\nmax_connections = 1.5",
            "server.max_connections: expected an integer > 0, got 1.5",
        ),
        ("[server]\nmax_connections = 0", "server.max_connections: expected an integer > 0, got 0"),
        ("[server]\nport = 70000", "server.port: expected a port number 0-65535, got 70000"),
        ("[server]\nport = -1", "server.port: expected a port number 0-65535, got -1"),
        ('[server]\nport = "80"', 'server.port: expected a port number 0-65535, got "80"'),
        ("[server]\nhost = 5", "server.host: expected a string, got 5"),
        ('[server]\naccess_log = "yes"', 'server.access_log: expected true or false, got "yes"'),
        (
            "[limits.user]\nmax_body_bytes = 0",
            "limits.user.max_body_bytes: expected a size in bytes > 0, got 0",
        ),
        (
            "[memory]\nbody_budget_bytes = -5",
            "memory.body_budget_bytes: expected a size in bytes > 0, got -5",
        ),
        (
            "[systemd]\nmemory_max_bytes = -1",
            "systemd.memory_max_bytes: expected a size in bytes >= 0 (0 = unset), got -1",
        ),
        (
            "[systemd]\nwatchdog_s = -1",
            "systemd.watchdog_s: expected a number of seconds >= 0 (0 = off), got -1",
        ),
        (
            "[http]\nmin_body_rate_bytes_s = -1",
            "http.min_body_rate_bytes_s: expected a rate in "
            "bytes per second >= 0 (0 = no minimum), got -1",
        ),
        (
            "[server]\nunix_allowed_uids = [-1]",
            "server.unix_allowed_uids: expected a list of integers >= 0, got [-1]",
        ),
        (
            "[server]\nunix_allowed_uids = [true]",
            "server.unix_allowed_uids: expected a list of integers >= 0, got [true]",
        ),
        (
            '[websocket]\nallowed_origins = "https://a"',
            'websocket.allowed_origins: expected a list of strings, got "https://a"',
        ),
        (
            '[server]\nallowed_networks = "10.0.0.0/8"',
            "server.allowed_networks: expected a list of "
            'CIDR networks such as "192.168.0.0/16", got "10.0.0.0/8"',
        ),
        (
            '[server]\nallowed_networks = ["10.0.0.1/8"]',
            "server.allowed_networks: expected a list of "
            'CIDR networks such as "192.168.0.0/16", got ["10.0.0.1/8"] (10.0.0.1/8 has host bits set)',
        ),
        (
            '[server]\nallowed_networks = ["lan"]',
            "server.allowed_networks: expected a list of CIDR "
            'networks such as "192.168.0.0/16", got ["lan"] (\'lan\' does not appear to be an IPv4 or '
            "IPv6 network)",
        ),
        (
            '[cors]\nallowed_origins = ["https://app.example/"]',
            "cors.allowed_origins: expected a "
            'list of origins such as "https://app.example.com" or "http://192.168.1.20:8080" '
            '(scheme://host[:port], no path), or ["*"], got ["https://app.example/"] (no trailing '
            "slash or path: an origin is scheme://host[:port])",
        ),
        (
            '[cors]\nallowed_origins = ["app.example"]',
            "cors.allowed_origins: expected a list of "
            'origins such as "https://app.example.com" or "http://192.168.1.20:8080" '
            '(scheme://host[:port], no path), or ["*"], got ["app.example"] ("app.example" is not an '
            "origin)",
        ),
        (
            '[cors]\nallowed_origins = ["null"]',
            "cors.allowed_origins: expected a list of origins "
            'such as "https://app.example.com" or "http://192.168.1.20:8080" (scheme://host[:port], no '
            'path), or ["*"], got ["null"] ("null" is not an origin)',
        ),
        (
            '[cors]\nallowed_headers = ["X Token"]',
            "cors.allowed_headers: expected a list of header "
            'or method names such as "Content-Type", got ["X Token"] ("X Token" is not a name)',
        ),
        (
            '[cors]\nallowed_methods = "GET"',
            "cors.allowed_methods: expected a list of header or "
            'method names such as "Content-Type", got "GET"',
        ),
        (
            "[cors]\nmax_age_s = -1",
            "cors.max_age_s: expected a number of seconds >= 0 (0 = not "
            "sent: browsers keep a preflight 5 s), got -1",
        ),
        (
            '[cors]\nallow_credentials = "yes"',
            'cors.allow_credentials: expected true or false, got "yes"',
        ),
        (
            "[bans]\nmax_failures = -1",
            "bans.max_failures: expected an integer >= 0 (0 = never ban), got -1",
        ),
        ("[bans]\nban_s = 0", "bans.ban_s: expected a number of seconds > 0, got 0"),
        ("[bans]\nmax_tracked_peers = 0", "bans.max_tracked_peers: expected an integer > 0, got 0"),
        (
            '[bans]\nexempt_networks = ["lan"]',
            "bans.exempt_networks: expected a list of CIDR "
            'networks such as "192.168.0.0/16", got ["lan"] (\'lan\' does not appear to be an IPv4 or '
            "IPv6 network)",
        ),
        (
            '[app]\nhandler_timeout_s = "soon"',
            "app.handler_timeout_s: expected a number of seconds >= 0 (0 = no deadline), "
            'got "soon" (a duration: seconds, or "30s", "500ms", "2m", "1h")',
        ),
        (
            "[app]\nhandler_timeout_s = -5",
            "app.handler_timeout_s: expected a number of seconds >= 0 (0 = no deadline), got -5",
        ),
        (
            "[app]\nhandler_timeout_s = true",
            "app.handler_timeout_s: expected a number of seconds >= 0 (0 = no deadline), got true",
        ),
        (
            "[profile]\nram_bytes = -1",
            "profile.ram_bytes: expected a size in bytes >= 0 (0 = not a board profile), got -1",
        ),
        ("[server]\nport = [1]", "server.port: expected a port number 0-65535, got [1]"),
        ("[server]\nhost = {a = 1}", "server.host: expected a string, got a table"),
    ],
)
def test_bad_value(toml: str, message: str, profiles: Path) -> None:
    assert error_of(toml + "\n", profiles) == f"firmware_profiles/p.toml: {message}"


def test_handler_timeout_takes_durations_and_the_environment(profiles: Path) -> None:
    write(profiles, "p", '[app]\nhandler_timeout_s = "1.5s"\n')
    assert load_settings("p", env={}).app.handler_timeout_s == 1.5
    env = {"GATEWAY_APP_HANDLER_TIMEOUT_S": "2m"}
    assert load_settings("p", env=env).app.handler_timeout_s == 120.0
    assert error_of("", profiles, env={"GATEWAY_APP_HANDLER_TIMEOUT_S": "-1s"}) == (
        "$GATEWAY_APP_HANDLER_TIMEOUT_S: app.handler_timeout_s: expected a number of seconds "
        '>= 0 (0 = no deadline), got "-1s" (a duration: seconds, or "30s", "500ms", "2m", "1h")'
    )


def test_int_accepted_for_float(profiles: Path) -> None:
    write(profiles, "p", "[http]\nidle_timeout_s = 5\n")
    value = load_settings("p", env={}).http.idle_timeout_s
    assert value == 5.0 and type(value) is float


def test_lists_become_tuples(profiles: Path) -> None:
    write(
        profiles,
        "p",
        '[server]\nallowed_networks = ["10.0.0.0/8", "::1/128"]\n'
        'unix_allowed_uids = [0, 1000]\n[websocket]\nallowed_origins = ["https://a.local"]\n',
    )
    s = load_settings("p", env={})
    assert s.server.allowed_networks == ("10.0.0.0/8", "::1/128")
    assert s.server.unix_allowed_uids == (0, 1000)
    assert s.websocket.allowed_origins == ("https://a.local",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[http]\nidle_timeout = 5",
            'http.idle_timeout: unknown key (did you mean "http.idle_timeout_s"?)',
        ),
        ("[http]\nport = 5", 'http.port: unknown key (did you mean "server.port"?)'),
        ("port = 8080", 'port: unknown key (did you mean "server.port"?)'),
        (
            "[limits]\nmax_body_bytes = 1",
            'limits.max_body_bytes: unknown key (did you mean "limits.user.max_body_bytes"?)',
        ),
        (
            "[app]\nhandler_timeout = 5",
            'app.handler_timeout: unknown key (did you mean "app.handler_timeout_s"?)',
        ),
        ("[htp]\nx = 1", "htp: unknown section (did you mean [http]?)"),
        ("[limits.users]\nx = 1", "limits.users: unknown section (did you mean [limits.user]?)"),
        ("server = 5", "server: expected a table [server], got 5"),
        ("limits = 5", "limits: expected the tables [limits.user] and [limits.privileged], got 5"),
    ],
)
def test_unknown_names(toml: str, message: str, profiles: Path) -> None:
    assert error_of(toml + "\n", profiles) == f"firmware_profiles/p.toml: {message}"


def test_unknown_key_without_a_near_match_lists_the_section(profiles: Path) -> None:
    assert error_of("[memory]\nzzz = 1\n", profiles) == (
        "firmware_profiles/p.toml: memory.zzz: unknown key; expected one of: "
        '"memory.body_budget_bytes"'
    )
    assert error_of("zzzzzz = 1\n", profiles) == (
        "firmware_profiles/p.toml: zzzzzz: unknown key (keys belong in a section: [profile], "
        "[server], [http], [limits.user], [limits.privileged], [memory], [websocket], [systemd], "
        "[status], [mqtt], [cors], [bans], [app])"
    )
    assert error_of("[qqqqqq]\n", profiles).startswith(
        "firmware_profiles/p.toml: qqqqqq: unknown section; expected one of: [profile], [server]"
    )


def test_invalid_toml_has_line_info(profiles: Path) -> None:
    assert error_of("[server]\nport = = 1\n", profiles) == (
        "firmware_profiles/p.toml: invalid TOML: Invalid value (at line 2, column 8)"
    )
    (profiles / "p.toml").write_bytes(b'[server]\nhost = "\xff"\n')
    with pytest.raises(
        ConfigError,
        match=r"^firmware_profiles/p\.toml: invalid TOML: the file "
        r"is not UTF-8 text$",
    ):
        load_settings("p", env={})


# ---- combinations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[limits.user]\nmax_body_bytes = 1000\nmax_cache_bytes = 2000",
            "limits.user.max_cache_bytes: expected <= limits.user.max_body_bytes (1000, from "
            "firmware_profiles/p.toml), got 2000 (a body is never cached beyond what is accepted)",
        ),
        (
            "[limits.user]\nmax_body_bytes = 1000",  # the cache was left at its default: blame the body
            "limits.user.max_body_bytes: expected >= limits.user.max_cache_bytes (1048576, 1 MiB, from "
            "built-in defaults), got 1000 (a body is never cached beyond what is accepted)",
        ),
        (
            "[memory]\nbody_budget_bytes = 4194304",
            "memory.body_budget_bytes: expected >= limits.privileged.max_cache_bytes (8388608, 8 MiB, "
            "from built-in defaults), got 4194304 (one cached body must fit the whole budget)",
        ),
        (
            "[limits.privileged]\nmax_cache_bytes = 33554432\nmax_body_bytes = 67108864",
            "limits.privileged.max_cache_bytes: expected <= memory.body_budget_bytes (16777216, 16 MiB, "
            "from built-in defaults), got 33554432 (one cached body must fit the whole budget)",
        ),
        (
            "[http]\nmax_request_line_bytes = 9000",
            "http.max_request_line_bytes: expected <= http.max_head_bytes (8192, 8 KiB, from built-in "
            "defaults), got 9000 (the request line is part of the head)",
        ),
        (
            '[server]\ntls_cert_file = "c.pem"',
            "server.tls_cert_file: expected server.tls_key_file to be set too (TLS needs both), "
            'got "c.pem"',
        ),
        (
            '[server]\ntls_key_file = "k.pem"',
            "server.tls_key_file: expected server.tls_cert_file to be set too (TLS needs both), "
            'got "k.pem"',
        ),
        (
            "[systemd]\nmemory_max_bytes = 100000000\nmemory_high_bytes = 200000000",
            "systemd.memory_high_bytes: expected <= systemd.memory_max_bytes (100000000, 95.4 MiB, from "
            "firmware_profiles/p.toml), got 200000000 (MemoryHigh= throttles before MemoryMax= kills)",
        ),
        (
            "[systemd]\nmemory_max_bytes = 16777216",
            "systemd.memory_max_bytes: expected > memory.body_budget_bytes (16777216, 16 MiB, from "
            "built-in defaults), got 16777216 (the process needs memory besides cached bodies)",
        ),
        (
            '[cors]\nallowed_origins = ["*"]\nallow_credentials = true',
            'cors.allowed_origins: expected no "*" together with cors.allow_credentials (true, from '
            'firmware_profiles/p.toml), got ["*"] (browsers refuse a wildcard on credentialed '
            "requests: list the origins)",
        ),
        (
            '[cors]\nallowed_origins = ["https://a.example"]\nexposed_headers = ["*"]\n'
            "allow_credentials = true",
            'cors.exposed_headers: expected no "*" together with cors.allow_credentials (true, from '
            'firmware_profiles/p.toml), got ["*"] (browsers refuse a wildcard on credentialed '
            "requests: list the header names)",
        ),
    ],
)
def test_impossible_combination(toml: str, message: str, profiles: Path) -> None:
    assert error_of(toml + "\n", profiles) == f"firmware_profiles/p.toml: {message}"


def test_possible_combinations(profiles: Path) -> None:
    write(
        profiles,
        "p",
        '[server]\ntls_cert_file = "c.pem"\ntls_key_file = "k.pem"\n'
        "[systemd]\nmemory_high_bytes = 1\n",
    )  # MemoryHigh= alone is fine
    s = load_settings("p", env={})
    assert s.server.tls_key_file == "k.pem" and s.systemd.memory_high_bytes == 1


def test_cors_and_bans_from_a_profile_and_the_environment(profiles: Path) -> None:
    write(
        profiles,
        "p",
        '[cors]\nallowed_origins = ["https://App.example:443", '
        '"http://[fe80::1]:8080", "capacitor://localhost", "*"]\nmax_age_s = "2h"\n'
        '[bans]\nexempt_networks = ["192.168.1.10/32", "fd00::/8"]\n',
    )
    s = load_settings(
        "p",
        env={
            "GATEWAY_CORS_EXPOSED_HEADERS": "ETag, X-Request-Id",
            "GATEWAY_BANS_MAX_FAILURES": "0",
        },
    )
    assert s.cors.allowed_origins == (
        "https://App.example:443",
        "http://[fe80::1]:8080",
        "capacitor://localhost",
        "*",
    )
    assert s.cors.max_age_s == 7200.0 and s.cors.exposed_headers == ("ETag", "X-Request-Id")
    assert s.bans.exempt_networks == ("192.168.1.10/32", "fd00::/8") and s.bans.max_failures == 0
    # credentials from the environment, "*" from the file: the variable is what changed
    with pytest.raises(
        ConfigError,
        match=r"^\$GATEWAY_CORS_ALLOW_CREDENTIALS: cors.allow_"
        r'credentials: expected no "\*" together with',
    ):
        load_settings("p", env={"GATEWAY_CORS_ALLOW_CREDENTIALS": "true"})


def test_combination_blames_the_layer_set_last() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings("test", env={}, overrides={"systemd.memory_max_bytes": "4MiB"})
    assert str(info.value) == (
        "override: systemd.memory_max_bytes: expected >= systemd.memory_high_bytes (50331648, "
        "48 MiB, from firmware_profiles/test.toml), got 4194304 (MemoryHigh= throttles before "
        "MemoryMax= kills)"
    )
    with pytest.raises(ConfigError, match=r"^\$GATEWAY_LIMITS_USER_MAX_CACHE_BYTES: "):
        load_settings("test", env={"GATEWAY_LIMITS_USER_MAX_CACHE_BYTES": "1MiB"})


# ---- precedence, environment, overrides ----------------------------------------------------------


def test_precedence_defaults_file_env_overrides(profiles: Path) -> None:
    write(profiles, "p", "[http]\nidle_timeout_s = 5\nbody_timeout_s = 6\nsend_timeout_s = 7\n")
    env = {"GATEWAY_HTTP_BODY_TIMEOUT_S": "16", "GATEWAY_HTTP_SEND_TIMEOUT_S": "17"}
    s = load_settings("p", env=env, overrides={"http.send_timeout_s": "27"})
    assert (
        s.http.head_timeout_s,
        s.http.idle_timeout_s,
        s.http.body_timeout_s,
        s.http.send_timeout_s,
    ) == (10.0, 5.0, 16.0, 27.0)


@pytest.mark.parametrize(
    ("var", "text", "attr", "value"),
    [
        ("GATEWAY_SERVER_PORT", "9000", ("server", "port"), 9000),
        ("GATEWAY_SERVER_HOST", "0.0.0.0", ("server", "host"), "0.0.0.0"),
        ("GATEWAY_LIMITS_USER_MAX_BODY_BYTES", "1048576", ("user", "max_body_bytes"), MiB),
        ("GATEWAY_HTTP_MAX_DRAIN_BYTES", "64KiB", ("http", "max_drain_bytes"), 65536),
        (
            "GATEWAY_LIMITS_PRIVILEGED_MAX_BODY_BYTES",
            "1GiB",
            ("privileged", "max_body_bytes"),
            1 << 30,
        ),
        (
            "GATEWAY_LIMITS_PRIVILEGED_MAX_BODY_BYTES",
            "1.5G",
            ("privileged", "max_body_bytes"),
            3 << 29,
        ),
        ("GATEWAY_MEMORY_BODY_BUDGET_BYTES", "16 MiB", ("memory", "body_budget_bytes"), 16 * MiB),
        ("GATEWAY_MEMORY_BODY_BUDGET_BYTES", "32m", ("memory", "body_budget_bytes"), 32 * MiB),
        ("GATEWAY_HTTP_IDLE_TIMEOUT_S", "2.5", ("http", "idle_timeout_s"), 2.5),
        ("GATEWAY_SERVER_ACCESS_LOG", "no", ("server", "access_log"), False),
        ("GATEWAY_SERVER_ACCESS_LOG", "TRUE", ("server", "access_log"), True),
        ("GATEWAY_WEBSOCKET_PERMESSAGE_DEFLATE", "1", ("websocket", "permessage_deflate"), True),
        (
            "GATEWAY_SERVER_ALLOWED_NETWORKS",
            "10.0.0.0/8, ::1/128",
            ("server", "allowed_networks"),
            ("10.0.0.0/8", "::1/128"),
        ),
        ("GATEWAY_SERVER_UNIX_ALLOWED_UIDS", "0,1000", ("server", "unix_allowed_uids"), (0, 1000)),
        ("GATEWAY_WEBSOCKET_ALLOWED_ORIGINS", "", ("websocket", "allowed_origins"), ()),
        ("GATEWAY_SYSTEMD_MEMORY_MAX_BYTES", "512M", ("systemd", "memory_max_bytes"), 512 * MiB),
    ],
)
def test_environment_values(var: str, text: str, attr: tuple[str, str], value: object) -> None:
    s = load_settings("default", env={var: text})
    assert getattr(getattr(s, attr[0]), attr[1]) == value


@pytest.mark.parametrize(
    ("var", "text", "message"),
    [
        (
            "GATEWAY_HTTP_IDLE_TIMEOUT_S",
            "abc",
            'http.idle_timeout_s: expected a number of seconds > 0, got "abc"'
            ' (a duration: seconds, or "30s", "500ms", "2m", "1h")',
        ),
        (
            "GATEWAY_HTTP_IDLE_TIMEOUT_S",
            "nan",
            'http.idle_timeout_s: expected a number of seconds > 0, got "nan"'
            ' (a duration: seconds, or "30s", "500ms", "2m", "1h")',
        ),
        ("GATEWAY_SERVER_PORT", "http", 'server.port: expected a port number 0-65535, got "http"'),
        ("GATEWAY_SERVER_PORT", "65536", "server.port: expected a port number 0-65535, got 65536"),
        (
            "GATEWAY_LIMITS_USER_MAX_BODY_BYTES",
            "10MB",
            "limits.user.max_body_bytes: expected a size "
            'in bytes > 0 (e.g. 1048576, 64KiB, 16MiB), got "10MB"',
        ),
        (
            "GATEWAY_LIMITS_USER_MAX_BODY_BYTES",
            "-1",
            "limits.user.max_body_bytes: expected a size "
            'in bytes > 0 (e.g. 1048576, 64KiB, 16MiB), got "-1"',
        ),
        (
            "GATEWAY_LIMITS_USER_MAX_BODY_BYTES",
            "0.5B",
            "limits.user.max_body_bytes: expected a size "
            'in bytes > 0 (e.g. 1048576, 64KiB, 16MiB), got "0.5B"',
        ),
        (
            "GATEWAY_SERVER_ACCESS_LOG",
            "maybe",
            'server.access_log: expected true or false (true/false, yes/no, 1/0), got "maybe"',
        ),
        (
            "GATEWAY_SERVER_UNIX_ALLOWED_UIDS",
            "0,root",
            'server.unix_allowed_uids: expected a list of integers >= 0, got "0,root"',
        ),
        (
            "GATEWAY_SERVER_ALLOWED_NETWORKS",
            "10.0.0.0/33",
            "server.allowed_networks: expected a list "
            'of CIDR networks such as "192.168.0.0/16", got ["10.0.0.0/33"] (\'10.0.0.0/33\' does not '
            "appear to be an IPv4 or IPv6 network)",
        ),
    ],
)
def test_bad_environment_value(var: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings("default", env={var: text})
    assert str(info.value) == f"${var}: {message}"


def test_unknown_gateway_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings("default", env={"GATEWAY_HTTP_IDLE_TIMEOUT": "5"})
    assert str(info.value) == (
        "GATEWAY_HTTP_IDLE_TIMEOUT: unknown GATEWAY_* environment variable "
        "(did you mean GATEWAY_HTTP_IDLE_TIMEOUT_S?)"
    )
    with pytest.raises(ConfigError) as info:
        load_settings("default", env={"GATEWAY_WXYZ": "5"})
    assert str(info.value) == (
        "GATEWAY_WXYZ: unknown GATEWAY_* environment variable (settings variables are "
        "GATEWAY_<SECTION>_<KEY>, e.g. GATEWAY_SERVER_PORT)"
    )
    with pytest.raises(ConfigError, match="^GATEWAY_PROFILE_DESCRIPTION: unknown"):
        load_settings("default", env={"GATEWAY_PROFILE_DESCRIPTION": "x"})


def test_reserved_and_foreign_variables_are_ignored(tmp_path: Path) -> None:
    env = {
        "GATEWAY_PROFILE": "test",
        "GATEWAY_PROFILES_DIR": str(tmp_path),
        "GATEWAY_ROOT": "/nonexistent",
        "PATH": "/bin",
        "XGATEWAY_FOO": "1",
    }
    assert load_settings("default", env=env).profile == "default"


def test_os_environ_is_the_default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SERVER_PORT", "9123")
    assert load_settings("default").server.port == 9123


def test_overrides() -> None:
    s = load_settings(
        "default",
        env={},
        overrides={
            "server.port": "9000",
            "server.backlog": 12,
            "http.idle_timeout_s": 3,
            "server.allowed_networks": ["10.0.0.0/8"],
            "server.host": None,
            "limits.user.max_body_bytes": "512KiB",
            "limits.user.max_cache_bytes": "256KiB",
        },
    )
    assert (s.server.port, s.server.backlog, s.http.idle_timeout_s) == (9000, 12, 3.0)
    assert s.server.allowed_networks == ("10.0.0.0/8",) and s.server.host == "127.0.0.1"
    assert s.user == ModeLimits(512 * 1024, 256 * 1024)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"server.port": "x"}, 'override: server.port: expected a port number 0-65535, got "x"'),
        ({"server.port": True}, "override: server.port: expected a port number 0-65535, got true"),
        ({"server.access_log": 1}, "override: server.access_log: expected true or false, got 1"),
        ({"server.prot": "1"}, 'override: server.prot: unknown key (did you mean "server.port"?)'),
        ({"http.port": 1}, 'override: http.port: unknown key (did you mean "server.port"?)'),
    ],
)
def test_bad_override(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings("default", env={}, overrides=overrides)
    assert str(info.value) == message


def test_profile_metadata_is_not_overridable() -> None:
    with pytest.raises(ConfigError, match="^override: profile.description: unknown key"):
        load_settings("default", env={}, overrides={"profile.description": "x"})


# ---- format_settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_format_settings_round_trips(name: str, tmp_path: Path) -> None:
    s = load_settings(name, env={})
    text = format_settings(s)
    assert text.startswith(f"# gateway settings, profile {name}\n# source: {s.source}\n")
    tomllib.loads(text)
    path = write(tmp_path, "again", text)
    again = load_settings(str(path), env={})
    assert dataclasses.replace(again, profile=s.profile, source=s.source) == s


def test_format_settings_round_trips_awkward_strings(tmp_path: Path) -> None:
    awkward = 'a "quoted" \\ back\nslash\ttab \x7f del \x01 é ü 🙂'
    s = load_settings(
        "default",
        env={},
        overrides={"server.credentials_file": awkward, "websocket.allowed_origins": [awkward, "x"]},
    )
    s = dataclasses.replace(s, source="/odd\npath")
    text = format_settings(s)
    assert "# source: /odd\\npath\n" in text
    again = load_settings(str(write(tmp_path, "w", text)), env={})
    assert again.server.credentials_file == awkward
    assert again.websocket.allowed_origins == (awkward, "x")


def test_format_settings_annotates_sizes() -> None:
    text = format_settings(load_settings("default", env={}))
    assert "body_budget_bytes = 16777216  # 16 MiB\n" in text
    assert "max_head_bytes = 8192  # 8 KiB\n" in text
    assert "\n[limits.user]\nmax_body_bytes = 1048576  # 1 MiB\n" in text


# ---- packaging: the profiles ship inside the package ---------------------------------------------


def test_pyproject_ships_every_package_and_the_profiles() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "gateway").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert config["package-dir"]["gateway.firmware_profiles"] == "firmware_profiles"
    assert "*.toml" in config["package-data"]["gateway.firmware_profiles"]


@pytest.mark.slow
def test_built_package_ships_and_finds_every_profile(tmp_path: Path) -> None:
    """setuptools' build_py (what a wheel is made of) from a copy of the tree, then a lookup
    by name from a directory with no firmware_profiles/: it must come from the package."""
    src, lib, elsewhere = tmp_path / "src", tmp_path / "lib", tmp_path / "elsewhere"
    src.mkdir()
    elsewhere.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    for name in ("gateway", "firmware_profiles"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "-q",
            "build_py",
            "-d",
            str(lib),
        ],
        cwd=src,
        check=True,
        capture_output=True,
    )
    shipped = lib / "gateway" / "firmware_profiles"
    assert sorted(p.stem for p in shipped.glob("*.toml")) == ALL_PROFILES
    assert (lib / "gateway" / "app" / "status_page.html").is_file()  # package data too
    code = (
        "from gateway.settings import find_profile, load_settings; "
        "print(find_profile('pi4-2gb', env={})); print(load_settings('tiny', env={}).profile)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        check=True,
        text=True,
        capture_output=True,
        env={**env, "PYTHONPATH": str(lib)},
    ).stdout
    assert out.split() == [str(shipped / "pi4-2gb.toml"), "tiny"]
