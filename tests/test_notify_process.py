# The sd_notify protocol through the REAL `gateway serve` process (the console script of .venv),
# with the test standing in for PID 1: it owns the NOTIFY_SOCKET datagram socket, sets
# WATCHDOG_USEC, sends the signals systemd sends, and for socket activation runs the process
# under the real `systemd-socket-activate`. Every wait is bounded; every process is killed (by
# its own pid) on every path.
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.peers import missing, require_tool

REPO = Path(__file__).resolve().parent.parent
GATEWAY = Path(sys.executable).parent / "gateway"  # the console script: it execs Python itself
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
STARTUP_S = 20.0  # import + bind on a slow CI machine; READY=1 normally arrives in < 1 s


@pytest.fixture(autouse=True)
def _gateway_script() -> None:
    if not GATEWAY.exists():
        missing(str(GATEWAY), "the project's console script: `make venv` (pip install -e .)")


Message = dict[str, str]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment minus anything systemd or the gateway would read."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_", "GATEWAY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # As gateway.service sets them: CLI variables that settings must not take for its own.
    env["GATEWAY_LOG_LEVEL"] = "INFO"
    env["GATEWAY_APP"] = "gateway.demo:app"
    env.update(extra)
    return env


class Manager:
    """The part of PID 1 the gateway talks to: a NOTIFY_SOCKET and the process it supervises."""

    def __init__(self, workdir: Path, notify: bool = True) -> None:
        self.dir = workdir
        self.sock: socket.socket | None = None
        self.path = workdir / "notify.sock"
        if notify:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(str(self.path))
        self.log_path = workdir / "gateway.log"
        self.messages: list[Message] = []
        self.proc: subprocess.Popen[bytes] | None = None

    # -- the process --------------------------------------------------------------------------
    def start(self, argv: list[str], env: dict[str, str]) -> None:
        if self.sock is not None:
            env = {**env, "NOTIFY_SOCKET": str(self.path)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, signum: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m:
                return m
            assert self.proc is None or self.proc.poll() is None, (
                f"exited {self.proc.returncode} before logging {pattern!r}:\n{self.log()}"
            )
            assert time.monotonic() < deadline, f"no {pattern!r} in {timeout}s:\n{self.log()}"
            time.sleep(0.05)

    # -- notifications ------------------------------------------------------------------------
    def _receive(self, deadline: float) -> Message | None:
        assert self.sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.sock.settimeout(min(remaining, 0.25))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        msg: Message = {}
        for line in data.decode().split("\n"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"bad field {line!r} in {data!r}"
            msg[key] = value
        self.messages.append(msg)
        return msg

    def wait_for(
        self, pred: Callable[[Message], bool], what: str, timeout: float = 10.0
    ) -> Message:
        """The next message (after those already read) for which ``pred`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self._receive(deadline)
            if msg is not None and pred(msg):
                return msg
            if msg is None and self.proc is not None and self.proc.poll() is not None:
                break
        rc = self.proc.poll() if self.proc else None
        raise AssertionError(
            f"no {what} within {timeout}s (exit={rc}); got {self.messages[-8:]}\n{self.log()}"
        )

    def drain(self, seconds: float) -> list[Message]:
        """Every message that arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        out = []
        while time.monotonic() < deadline:
            msg = self._receive(deadline)
            if msg is not None:
                out.append(msg)
        return out

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.sock is not None:
            self.sock.close()


@pytest.fixture
def manager() -> Iterator[Manager]:
    # A short directory: AF_UNIX paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="gwn-") as d:
        m = Manager(Path(d))
        try:
            yield m
        finally:
            m.close()


def request(
    port: int,
    method: str = "GET",
    path: str = "/_gateway/health",
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def upload_status(port: int, size: int) -> int:
    return request(port, "POST", "/upload", b"x" * size)[0]


def serve_argv(profile: str | Path, port: int, *extra: str) -> list[str]:
    return [
        str(GATEWAY),
        "serve",
        "gateway.demo:app",
        "--profile",
        str(profile),
        "--port",
        str(port),
        *extra,
    ]


def _names_listener(status: str, port: int) -> bool:
    # "serving on 127.0.0.1:PORT (profile ...)"
    return re.search(rf"serving on 127\.0\.0\.1:{port}\b", status) is not None


def _is_ready(m: Message) -> bool:
    return m.get("READY") == "1"


# --- start-up, watchdog, reload -----------------------------------------------------------------


def test_ready_status_watchdog_and_reload(manager: Manager) -> None:
    profile = manager.dir / "board.toml"
    shutil.copy(REPO / "firmware_profiles" / "test.toml", profile)
    port = _free_port()
    manager.start(serve_argv(profile, port), _clean_env(WATCHDOG_USEC="400000"))

    ready = manager.wait_for(_is_ready, "READY=1", STARTUP_S)
    assert _names_listener(ready["STATUS"], port) and "board" in ready["STATUS"], ready
    # READY=1 is sent once listening: HTTP answers right away.
    status, body = request(port)
    assert status == 200 and json.loads(body)["status"] == "ok"

    # WATCHDOG_USEC=400 ms: pings every 200 ms from the trio loop, for as long as it runs.
    pings = [m for m in manager.drain(1.5) if m == {"WATCHDOG": "1"}]
    assert 4 <= len(pings) <= 12, pings
    assert upload_status(port, 4096) == 200  # the test profile's user limit is 256 KiB

    # A valid edit + SIGHUP: RELOADING=1 with MONOTONIC_USEC (close to our CLOCK_MONOTONIC),
    # then READY=1; a new connection gets the new limit.
    text = profile.read_text()
    text = re.sub(
        r"(?m)^(\[limits\.user\]\n)max_body_bytes = \d+.*\nmax_cache_bytes = \d+",
        r"\1max_body_bytes = 2048\nmax_cache_bytes = 1024",
        text,
    )
    assert "max_body_bytes = 2048" in text
    profile.write_text(text)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    manager.signal(signal.SIGHUP)
    reloading = manager.wait_for(lambda m: m.get("RELOADING") == "1", "RELOADING=1")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after, (before, reloading, after)
    done = manager.wait_for(_is_ready, "READY=1 after the reload")
    assert "reloaded" in done["STATUS"], done
    assert upload_status(port, 4096) == 413
    assert upload_status(port, 1000) == 200
    manager.wait_log(r"reloaded profile board")

    # An invalid profile: refused, logged, READY=1 with a STATUS saying so; old limits stay.
    profile.write_text(text.replace("max_body_bytes = 2048", "max_body_bytes = -5"))
    manager.signal(signal.SIGHUP)
    manager.wait_for(lambda m: m.get("RELOADING") == "1", "RELOADING=1 (invalid profile)")
    refused = manager.wait_for(_is_ready, "READY=1 after a refused reload")
    assert refused["STATUS"].startswith("reload refused"), refused
    assert "max_body_bytes" in refused["STATUS"], refused
    manager.wait_log(r"ERROR gateway: reload refused, keeping the running profile: .*max_body")
    assert upload_status(port, 4096) == 413
    assert upload_status(port, 1000) == 200
    # Still pinging after both reloads.
    manager.wait_for(lambda m: m == {"WATCHDOG": "1"}, "WATCHDOG=1 after reloads", 2.0)

    manager.signal(signal.SIGTERM)
    manager.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
    assert manager.wait_exit(15) == 0


def test_a_refused_reload_leaves_the_running_profile_whole(manager: Manager) -> None:
    # The reload of a profile whose credentials file other users can read is refused: the body
    # budget must not change either (it once did, with its peak and rejections reset).
    creds = manager.dir / "credentials"
    creds.write_text("sha256:" + hashlib.sha256(b"tok").hexdigest() + " admin\n")
    creds.chmod(0o600)
    profile = manager.dir / "board.toml"
    profile.write_text(
        f'extends = "test"\n[server]\ncredentials_file = "{creds}"\n'
        "[memory]\nbody_budget_bytes = 4194304\n"
    )
    port = _free_port()
    manager.start(serve_argv(profile, port), _clean_env())
    manager.wait_for(_is_ready, "READY=1", STARTUP_S)

    def budget_total() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/_gateway/stats", headers={"Authorization": "Bearer tok"})
            resp = conn.getresponse()
            assert resp.status == 200
            return int(json.loads(resp.read())["memory"]["body_budget"]["total_bytes"])
        finally:
            conn.close()

    assert budget_total() == 4194304
    profile.write_text(profile.read_text().replace("4194304", "8388608"))
    creds.chmod(0o644)
    manager.signal(signal.SIGHUP)
    manager.wait_for(lambda m: m.get("RELOADING") == "1", "RELOADING=1")
    refused = manager.wait_for(_is_ready, "READY=1 after a refused reload")
    assert "must not be accessible by other users" in refused["STATUS"], refused
    assert budget_total() == 4194304  # the running profile, whole: budget and credentials

    creds.chmod(0o600)  # fixed: the same edit now applies
    manager.signal(signal.SIGHUP)
    done = manager.wait_for(_is_ready, "READY=1 after the reload")
    assert done["STATUS"] == "reloaded profile board", done
    assert budget_total() == 8388608
    manager.signal(signal.SIGTERM)
    assert manager.wait_exit(15) == 0


def test_watchdog_off_without_watchdog_usec(manager: Manager) -> None:
    port = _free_port()
    manager.start(serve_argv("test", port), _clean_env())
    manager.wait_for(_is_ready, "READY=1", STARTUP_S)
    assert not [m for m in manager.drain(1.0) if "WATCHDOG" in m]
    manager.signal(signal.SIGTERM)
    assert manager.wait_exit(15) == 0


# --- graceful stop ------------------------------------------------------------------------------


def test_sigterm_sends_stopping_and_drains_an_inflight_request(manager: Manager) -> None:
    port = _free_port()
    manager.start(serve_argv("test", port, "--set", "server.shutdown_grace_s=15"), _clean_env())
    manager.wait_for(_is_ready, "READY=1", STARTUP_S)

    body = b"y" * 10000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:4000]
        )
        time.sleep(0.2)  # the request is now in flight inside the server
        manager.signal(signal.SIGTERM)
        stopping = manager.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        assert "drain" in stopping.get("STATUS", ""), stopping
        # New connections are refused while the in-flight one finishes.
        with pytest.raises(OSError):
            request(port, timeout=2)
        assert manager.proc is not None and manager.proc.poll() is None
        conn.sendall(body[4000:])
        reply = b""
        while b"}" not in reply:
            chunk = conn.recv(65536)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert b'"bytes":10000' in reply.replace(b" ", b""), reply
    assert manager.wait_exit(15) == 0
    assert "draining in-flight requests" in manager.log()


# --- without a service manager ------------------------------------------------------------------


def test_no_notify_socket_is_a_silent_noop(tmp_path: Path) -> None:
    m = Manager(tmp_path, notify=False)
    try:
        port = _free_port()
        m.start(serve_argv("test", port), _clean_env(WATCHDOG_USEC="200000"))
        m.wait_log(r"serving on \S*127\.0\.0\.1", STARTUP_S)
        assert request(port)[0] == 200
        m.signal(signal.SIGHUP)
        m.wait_log(r"reloaded profile test")
        assert request(port)[0] == 200
        time.sleep(0.5)  # watchdog "pings" with nowhere to go must not log or fail
        m.signal(signal.SIGTERM)
        assert m.wait_exit(15) == 0
        log = m.log()
        assert "sd_notify" not in log and "Traceback" not in log, log
    finally:
        m.close()


# --- socket activation ----------------------------------------------------------------------------


@pytest.mark.systemd
def test_socket_activation_under_systemd_socket_activate(manager: Manager) -> None:
    require_tool("systemd-socket-activate", "systemd")
    assert SOCKET_ACTIVATE is not None
    port = _free_port()
    # The profile says port 0 (and --port 0): had the gateway bound its own listener it
    # would be a second TCP listener on some other port.
    # systemd-socket-activate passes on only the variables named with -E (as PID 1 would).
    argv = [
        SOCKET_ACTIVATE,
        "-l",
        f"127.0.0.1:{port}",
        "--fdname=http",
        "-E",
        f"NOTIFY_SOCKET={manager.path}",
        "-E",
        "WATCHDOG_USEC=1000000",
        str(GATEWAY),
        "serve",
        "gateway.demo:app",
        "--profile",
        "test",
        "--port",
        "0",
    ]
    manager.start(argv, _clean_env())
    manager.wait_log(r"Listening on 127\.0\.0\.1:\d+ as 3", 10)
    # systemd-socket-activate execs the gateway (same pid) at the first connection.
    status, body = request(port)
    assert status == 200 and json.loads(body)["status"] == "ok"
    ready = manager.wait_for(_is_ready, "READY=1", STARTUP_S)
    assert _names_listener(ready["STATUS"], port), ready
    manager.wait_for(lambda m: m == {"WATCHDOG": "1"}, "WATCHDOG=1", 3)

    proc = psutil.Process(manager.pid)
    assert Path(proc.cmdline()[1]).name == "gateway", proc.cmdline()
    listening = [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert [(c.fd, c.laddr.port) for c in listening] == [(3, port)], listening
    for _ in range(3):
        assert request(port)[0] == 200

    manager.signal(signal.SIGTERM)
    manager.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
    assert manager.wait_exit(15) == 0


def test_gateway_reload_waits_for_the_outcome(manager: Manager) -> None:
    """ExecReload=`gateway reload --pid $MAINPID`: returns once the server has applied (0) or
    refused (78, with the reason) the profile, so `systemctl reload` means it is done."""
    profile = manager.dir / "board.toml"
    shutil.copy(REPO / "firmware_profiles" / "test.toml", profile)
    runtime = manager.dir / "run"
    runtime.mkdir()
    port = _free_port()
    env = _clean_env(RUNTIME_DIRECTORY=str(runtime))
    manager.start(serve_argv(profile, port), env)
    manager.wait_for(_is_ready, "READY=1", STARTUP_S)
    assert upload_status(port, 4096) == 200

    def reload() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(GATEWAY), "reload", "--pid", str(manager.pid), "--timeout", "20"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    text = profile.read_text()
    text = re.sub(
        r"(?m)^(\[limits\.user\]\n)max_body_bytes = \d+.*\nmax_cache_bytes = \d+",
        r"\1max_body_bytes = 2048\nmax_cache_bytes = 1024",
        text,
    )
    profile.write_text(text)
    done = reload()
    assert done.returncode == 0 and done.stdout == "reloaded profile board\n", done
    assert upload_status(port, 4096) == 413  # applied before `gateway reload` returned
    assert (runtime / "reload-status").read_text() == "1 ok board\n"

    profile.write_text(text.replace("max_body_bytes = 2048", "max_body_bytes = -5"))
    refused = reload()
    assert refused.returncode == 78, refused
    assert "reload refused, the old profile stays" in refused.stderr
    assert "max_body_bytes" in refused.stderr
    assert upload_status(port, 4096) == 413

    gone = subprocess.run(
        [str(GATEWAY), "reload", "--pid", "999999999"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert gone.returncode == 1 and "cannot signal process 999999999" in gone.stderr

    manager.signal(signal.SIGTERM)
    assert manager.wait_exit(15) == 0
