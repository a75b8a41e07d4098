# What a new user sees when start-up goes wrong: an app that does not import (syntax error,
# a missing dependency, an exception at import), a port already taken, several profile mistakes
# at once, durations written as "30s". Each must name the file/line, the dependency, the address
# or every bad key, and exit with the code systemd's unit expects (78: no restart loop).
from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.settings import load_settings


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch directory as the current directory (where `gateway serve` imports apps from)."""
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:  # the scratch apps must not leak into other tests
        del sys.modules[name]


def test_a_syntax_error_in_the_app_names_file_and_line_and_exits_78(
    app_dir: Path, capsys: Any
) -> None:
    (app_dir / "broken_app.py").write_text("from gateway import App\napp = App(\n\nx = = 1\n")
    assert main(["check", "broken_app:app", "--profile", "test"]) == 78
    err = capsys.readouterr().err
    assert f"{app_dir / 'broken_app.py'}:" in err and "syntax error" in err
    assert "Traceback" not in err


def test_a_missing_dependency_of_the_app_is_named_not_the_app(app_dir: Path, capsys: Any) -> None:
    (app_dir / "needs_dep.py").write_text(
        "from gateway import App\nimport no_such_dependency_q7\napp = App()\n"
    )
    assert main(["check", "needs_dep:app", "--profile", "test"]) == 78
    err = capsys.readouterr().err
    assert "imports 'no_such_dependency_q7', which is not installed" in err
    assert f"{app_dir / 'needs_dep.py'}:2" in err
    assert "cannot import module 'needs_dep'" not in err


def test_a_missing_app_module_says_where_it_was_looked_for(app_dir: Path, capsys: Any) -> None:
    assert main(["check", "not_here_z3:app", "--profile", "test"]) == 78
    err = capsys.readouterr().err
    assert "cannot import module 'not_here_z3'" in err and str(app_dir) in err


def test_an_exception_at_import_names_its_line(app_dir: Path, capsys: Any) -> None:
    (app_dir / "raises_app.py").write_text(
        "from gateway import App\napp = App()\nlimit = int('ten')\n"
    )
    assert main(["check", "raises_app:app", "--profile", "test"]) == 78
    err = capsys.readouterr().err
    assert f"{app_dir / 'raises_app.py'}:3" in err
    assert "ValueError: invalid literal for int()" in err


def test_a_taken_port_is_named_with_its_address(capsys: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(
            [
                "serve",
                "tests.test_cli:app",
                "--profile",
                "test",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
        )
    assert code == 71
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err


def test_every_profile_mistake_is_reported_in_one_run(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[http]\nidle_timeout_s = "soon"\nmax_head_bytes = -1\n'
        "[server]\nprot = 80\n[websockets]\nx = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(str(profile), env={"GATEWAY_SERVER_PORT": "http"})
    text = str(info.value)
    assert text.startswith("5 problems:\n")
    for key in (
        "http.idle_timeout_s",
        "http.max_head_bytes",
        "server.prot",
        "websockets",
        "server.port",
    ):
        assert key in text, key


def test_durations_take_units_like_sizes(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[http]\nidle_timeout_s = "2m"\nhead_timeout_s = "500ms"\n'
        'body_timeout_s = 12\n[server]\nshutdown_grace_s = "1.5s"\n'
    )
    s = load_settings(str(profile), env={"GATEWAY_WEBSOCKET_PING_INTERVAL_S": "1h"})
    assert (s.http.idle_timeout_s, s.http.head_timeout_s, s.http.body_timeout_s) == (
        120.0,
        0.5,
        12.0,
    )
    assert s.server.shutdown_grace_s == 1.5
    assert s.websocket.ping_interval_s == 3600.0
    # a rate is not a duration: "30s" there is still an error
    profile.write_text('[http]\nmin_body_rate_bytes_s = "30s"\n')
    with pytest.raises(ConfigError, match="min_body_rate_bytes_s"):
        load_settings(str(profile), env={})


def test_token_file_is_created_0600_and_the_server_accepts_its_token(
    tmp_path: Path, capsys: Any
) -> None:
    from gateway.app.auth import Credentials

    path = tmp_path / "creds"
    assert main(["token", "--name", "admin", "--file", str(path)]) == 0
    assert main(["token", "--name", "ops", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    tokens = [line.split()[1] for line in out.splitlines() if line.startswith("token: ")]
    assert len(tokens) == 2 and f"server.credentials_file={path}" in out
    assert path.stat().st_mode & 0o777 == 0o600
    creds = Credentials.load(str(path))
    assert [creds.verify(t) for t in tokens] == ["admin", "ops"]
    path.chmod(0o644)  # a file others can read is refused, as the server refuses it
    assert main(["token", "--file", str(path)]) == 78
    assert "must not be accessible by other users" in capsys.readouterr().err


def test_sizes_in_a_profile_take_units_too(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[limits.user]\nmax_body_bytes = "256KiB"\nmax_cache_bytes = "64KiB"\n')
    s = load_settings(str(profile), env={})
    assert (s.user.max_body_bytes, s.user.max_cache_bytes) == (262144, 65536)
    profile.write_text('[limits.user]\nmax_body_bytes = "lots"\n')
    with pytest.raises(
        ConfigError,
        match="max_body_bytes: expected a size in bytes > 0, got "
        '"lots" \\(a size: bytes, or "64KiB"',
    ):
        load_settings(str(profile), env={})
