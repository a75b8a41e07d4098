# The `gateway` command: settings round-trip, configuration errors exit 78 with a useful
# message, and one real `gateway serve` process started, probed and stopped with SIGTERM.
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway import App
from gateway.cli import main
from gateway.errors import ConfigError
from gateway.settings import load_settings
from tests.helpers import make_settings

ROOT = Path(__file__).resolve().parent.parent

# the app `gateway serve tests.test_cli:app` serves in test_serve_process
app = App()


@app.get("/hello")
async def hello(req, res):  # type: ignore[no-untyped-def]
    await res.json({"hello": "cli"})


def test_settings_prints_toml_that_loads_back(capsys: Any, tmp_path: Path) -> None:
    assert main(["settings", "--profile", "test"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "resolved.toml"
    path.write_text(out)
    again = load_settings(str(path), env={})
    original = make_settings()
    for section in ("server", "http", "user", "privileged", "memory", "websocket", "systemd"):
        if hasattr(original, section):
            assert dataclasses.asdict(getattr(again, section)) == dataclasses.asdict(
                getattr(original, section)
            ), section
    assert again.server.port == 0 and again.http.max_head_bytes == 4096


def test_check_unknown_profile_exits_78_naming_what_exists(capsys: Any) -> None:
    assert main(["check", "--profile", "nonexistent"]) == 78
    err = capsys.readouterr().err
    assert "nonexistent" in err and "test" in err and "default" in err


def test_check_a_good_profile_and_app(capsys: Any) -> None:
    assert main(["check", "tests.test_cli:app", "--profile", "test"]) == 0
    assert "ok: profile test" in capsys.readouterr().out


def test_check_and_serve_load_the_tls_certificate_and_key(
    capsys: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    # `systemctl reload` runs `gateway check` before the SIGHUP: a key that cannot load must
    # fail it there, and fail a start with exit 78 (no restart loop), not 71
    import trustme

    from gateway.server import runner

    monkeypatch.setattr(runner, "tune_allocator", lambda: False)  # not in the test process

    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls = ["--set", f"server.tls_cert_file={cert_file}", "--set", f"server.tls_key_file={key_file}"]
    assert main(["check", "--profile", "test", *tls]) == 0
    key_file.write_text("not a key\n")
    assert main(["check", "--profile", "test", *tls]) == 78
    assert "server.tls_cert_file/tls_key_file: cannot load" in capsys.readouterr().err
    assert main(["serve", "tests.test_cli:app", "--profile", "test", *tls]) == 78
    assert str(key_file) in capsys.readouterr().err


def test_serve_with_a_bad_app_spec_exits_78(capsys: Any) -> None:
    assert main(["serve", "no_such_module_xyz:app", "--profile", "test"]) == 78
    assert "no_such_module_xyz" in capsys.readouterr().err
    assert main(["serve", "tests.test_cli:nothing", "--profile", "test"]) == 78
    assert main(["serve", "tests.test_cli:ROOT", "--profile", "test"]) == 78


def test_bad_override_exits_78(capsys: Any) -> None:
    assert main(["check", "--profile", "test", "--set", "http.no_such_key=1"]) == 78
    assert "no_such_key" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_process_answers_and_stops_on_sigterm() -> None:
    port = _free_port()
    env = {**os.environ, "GATEWAY_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "tests.test_cli:app",
            "--profile",
            "test",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        health = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_gateway/health", timeout=2
                ) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert health == {"status": "ok", "mode": "user"}, proc.stderr.read1().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=2) as r:
            assert json.loads(r.read()) == {"hello": "cli"}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = err.decode()
    assert "serving on" in text and str(port) in text
    assert "stopping" in text


def test_cli_variables_do_not_break_settings(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("GATEWAY_APP", "tests.test_cli:app")
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "WARNING")
    assert main(["check", "--profile", "test"]) == 0
    assert "ok: profile test" in capsys.readouterr().out


def test_settings_accept_the_cli_variables() -> None:
    cli_env = {"GATEWAY_APP": "tests.test_cli:app", "GATEWAY_LOG_LEVEL": "INFO"}
    # the CLI's variables are neither refused nor read as settings: the result is the profile
    assert load_settings("test", env=cli_env) == load_settings("test", env={})
    # while the same environment is really read: a settings variable beside them still applies,
    # and a misspelt GATEWAY_* variable beside them is still refused
    port = load_settings("test", env={**cli_env, "GATEWAY_SERVER_PORT": "9123"}).server.port
    assert port == 9123
    with pytest.raises(ConfigError, match="GATEWAY_APPS: unknown GATEWAY_"):
        load_settings("test", env={**cli_env, "GATEWAY_APPS": "x"})


def test_command_line_forms(monkeypatch: Any) -> None:
    from gateway.cli import parse_args

    monkeypatch.delenv("GATEWAY_PROFILE", raising=False)
    monkeypatch.setenv("GATEWAY_APP", "pkg.mod:app")
    # positional before or after options, --opt VALUE and --opt=VALUE, --set repeatable
    for argv in (
        ["serve", "m:a", "--profile", "tiny", "--set=a.b=1", "--set", "c.d=2"],
        ["serve", "--profile=tiny", "--set", "a.b=1", "m:a", "--set=c.d=2"],
    ):
        args = parse_args(argv)
        assert args is not None
        assert (args.command, args.app, args.profile, args.set) == (
            "serve",
            "m:a",
            "tiny",
            ["a.b=1", "c.d=2"],
        )
        assert (args.host, args.port, args.unix) == (None, None, None)
    args = parse_args(["serve", "--port", "0"])
    assert args is not None and (args.app, args.profile, args.port) == (
        "pkg.mod:app",
        "default",
        "0",
    )
    args = parse_args(["check", "--", "-odd:app"])
    assert args is not None and args.app == "-odd:app"
    args = parse_args(["check"])
    assert args is not None and args.app is None
    args = parse_args(["token", "--name", "ops"])
    assert args is not None and args.name == "ops"


def test_usage_errors_exit_2_and_say_what(capsys: Any) -> None:
    for argv, said in (
        (["serve", "--bogus"], "unknown option '--bogus'"),
        (["serve", "--port"], "--port needs a value (PORT)"),
        (["serve", "a:b", "c:d"], "unexpected argument 'c:d'"),
        (["settings", "x"], "unexpected argument 'x'"),
        (["detect", "--profile", "x"], "unknown option '--profile'"),
        (["launch"], "unknown command 'launch'"),
        ([], "a command is required"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"gateway: error: {said}" in err and err.startswith("usage: gateway "), (argv, err)


def test_help_exits_0_and_describes_each_command(capsys: Any) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(
        name in out for name in ("serve", "settings", "check", "detect", "render-units", "token")
    )
    assert main(["serve", "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gateway serve [APP]") and "--set SECTION.KEY=VALUE" in out


def test_start_up_leaves_what_a_request_may_never_need_unloaded() -> None:
    # The server's RSS after start is a benchmark target (<= 1.05x the bare trio+h11 loop). The
    # WebSocket layer, Socket.IO pub/sub, content negotiation and argparse load on first use;
    # importing them at start kept ~0.9 MiB for the server's whole life. So do the status page,
    # its event stream and the metrics text (first /_gateway/ request), CORS (a policy in the
    # profile or a route) and the brute-force table (the first wrong token), the handler
    # deadline (a profile's or a route's). The MQTT bridge (paho and our adapter, ~1.5 MiB)
    # only with an [mqtt] url. The profile's TOML is parsed in a forked child, so tomllib and
    # the datetime it imports (~0.25 MiB) never load (gateway.tomlfile). Nor does the HTTP
    # parser: the gateway reads plain heads itself, and h11 (or h11_mypyc, ~0.2-0.6 MiB) loads
    # at the first head of another shape (gateway.http.parser.load).
    code = (
        "import sys, trio, gateway.cli, gateway.server.runner, bench.app\n"
        "from gateway.settings import load_settings\n"
        "from gateway.server.serve import Server\n"
        "st = load_settings('default', env={})\n"
        "bench.app.app.bind(st)\n"
        "server = Server(bench.app.app, st)\n"
        "print(sorted({'argparse', 'gettext', 'wsproto.connection', 'gateway.server.upgrade',\n"
        "              'gateway.server.websocket', 'gateway.ws.handshake', 'gateway.app.pubsub',\n"
        "              'gateway.app.negotiation', 'gateway.app.status', 'gateway.app.sse',\n"
        "              'gateway.discovery', 'gateway.detect', 'importlib.metadata',\n"
        "              'paho', 'paho.mqtt.client', 'gateway.server.mqtt_bridge',\n"
        "              'gateway.server.mqtt_link', 'gateway.app.cors', 'gateway.app.bans',\n"
        "              'gateway.app.deadline', 'tomllib', 'datetime', '_datetime',\n"
        "              'h11', 'h11_mypyc', 'gateway.client.http'}\n"
        "             & set(sys.modules)))\n"
        "print(server.statistics()['sockets'], server.mqtt)\n"
        "import gateway.server.serve as serve_module\n"
        "trims = []\n"
        "serve_module.release_free_memory = lambda: trims.append(1)\n"
        "server.websockets\n"  # the layer loads on demand (first upgrade)
        "server.websockets\n"  # and what its import freed is given back to the OS, once
        "print('gateway.server.upgrade' in sys.modules, bench.app.app.has_sockets, len(trims))\n"
    )
    # not measured by coverage, which imports tomllib at start-up to read pyproject.toml
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    ).stdout.splitlines()
    assert out == [
        "[]",
        "{'sockets': 0, 'rooms': 0, 'pushes': 0, 'dropped': 0} None",
        "True False 1",
    ]
