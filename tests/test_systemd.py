# Tests for gateway.server.systemd: sd_notify messages captured on a real NOTIFY_SOCKET (a path
# and an abstract name), the watchdog loop on trio's mock clock, and socket activation through
# a child process (an exec shim that does what PID 1 does, and the real systemd-socket-activate).
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from gateway.errors import ConfigError
from gateway.server.systemd import (
    Notifier,
    listen_fds,
    listen_fds_with_names,
    watchdog_interval_s,
    watchdog_loop,
)
from tests.peers import require_tool

REPO = Path(__file__).resolve().parent.parent


# --- sd_notify --------------------------------------------------------------------------------


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> list[str]:
    # AF_UNIX datagrams are queued on the receiver by sendto() itself: nothing to wait for.
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture(params=["path", "abstract"])
def notify(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Notifier, socket.socket]]:
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@gateway-test-{uuid.uuid4().hex}"
    receiver = _receiver(address)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
    with receiver, notifier:
        yield notifier, receiver


def test_messages_exact(notify: tuple[Notifier, socket.socket]) -> None:
    notifier, receiver = notify
    assert notifier.enabled
    assert notifier.ready("serving on 127.0.0.1:8080")
    assert notifier.ready()
    assert notifier.status("3 connections")
    assert notifier.stopping("draining 2 connections")
    assert notifier.stopping()
    assert notifier.watchdog()
    assert notifier.extend_timeout(1.5)
    assert notifier.mainpid(4242)
    assert notifier.send("FDSTORE=1\nFDNAME=http")
    assert _drain(receiver) == [
        "READY=1\nSTATUS=serving on 127.0.0.1:8080",
        "READY=1",
        "STATUS=3 connections",
        "STOPPING=1\nSTATUS=draining 2 connections",
        "STOPPING=1",
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=1500000",
        "MAINPID=4242",
        "FDSTORE=1\nFDNAME=http",
    ]


def test_reloading_monotonic_usec(notify: tuple[Notifier, socket.socket]) -> None:
    notifier, receiver = notify
    before = time.monotonic_ns() // 1000
    assert notifier.reloading()
    after = time.monotonic_ns() // 1000
    (message,) = _drain(receiver)
    reloading, usec = message.split("\n")
    assert reloading == "RELOADING=1"
    name, _, value = usec.partition("=")
    assert name == "MONOTONIC_USEC"
    assert before <= int(value) <= after  # systemd compares it with its own CLOCK_MONOTONIC


def test_status_cannot_inject_fields(notify: tuple[Notifier, socket.socket]) -> None:
    notifier, receiver = notify
    notifier.status("bad\nREADY=1\r\nMAINPID=1\x00x")
    notifier.ready("line1\nline2")
    notifier.reloading("a\nSTOPPING=1")
    status, ready, reloading = _drain(receiver)
    assert status == "STATUS=bad READY=1 MAINPID=1 x"
    assert ready == "READY=1\nSTATUS=line1 line2"
    assert reloading.split("\n")[2] == "STATUS=a STOPPING=1"
    assert reloading.count("\n") == 2


def test_bad_field_name_is_a_caller_bug(notify: tuple[Notifier, socket.socket]) -> None:
    notifier, receiver = notify
    with pytest.raises(ValueError, match="field name"):
        notifier.send(**{"READY=1\nX": 1})
    with pytest.raises(ValueError, match="field name"):
        notifier.send(ready=1)
    with pytest.raises(ValueError):
        notifier.extend_timeout(-1)
    with pytest.raises(ValueError):
        notifier.mainpid(0)
    assert _drain(receiver) == []


def test_noop_without_notify_socket() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.address is None
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.reloading()
    assert notifier._sock is None  # no socket is even opened
    notifier.close()


def test_from_environ_unset() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "OTHER": "1"}
    notifier = Notifier.from_environ(env, unset=True)
    assert notifier.enabled and notifier.address == "/run/systemd/notify"
    assert env == {"OTHER": "1"}


def test_unsupported_address_disables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gateway.server.systemd"):
        notifier = Notifier("vsock:2:1234")
    assert not notifier.enabled
    assert not notifier.ready()
    assert "not a path" in caplog.text


def test_send_failure_never_raises_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = str(tmp_path / "later.sock")
    with Notifier(address) as notifier, caplog.at_level(logging.WARNING, "gateway.server.systemd"):
        assert not notifier.ready()  # nobody listening yet: ENOENT
        assert not notifier.watchdog()
        assert not notifier.status("x")
        assert len(caplog.records) == 1
        assert "sd_notify" in caplog.records[0].getMessage()
        with _receiver(address) as receiver:  # the manager (re)appears
            assert notifier.watchdog()
            assert _drain(receiver) == ["WATCHDOG=1"]
        assert not notifier.watchdog()  # gone again: a new streak logs again
        assert len(caplog.records) == 2


def test_send_does_not_block_when_manager_queue_full(tmp_path: Path) -> None:
    # A manager that stopped reading fills its queue; sends must fail fast, not block the loop.
    address = str(tmp_path / "full.sock")
    with _receiver(address) as receiver, Notifier(address) as notifier:
        sent = 0
        while notifier.watchdog():  # net.unix.max_dgram_qlen (512 by default) bounds this
            sent += 1
            assert sent < 1_000_000, "the queue never filled"
        assert sent > 0
        assert len(_drain(receiver)) == sent
        assert notifier.watchdog()  # drained: sending works again


# --- watchdog -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "me"}, None),
        ({"WATCHDOG_USEC": "500"}, 0.00025),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


async def test_watchdog_loop_rejects_bad_interval() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            await watchdog_loop(Notifier(None), bad)


async def _record_pings(sock: trio.socket.SocketType, times: list[float]) -> None:
    while True:
        data = await sock.recv(4096)
        assert data == b"WATCHDOG=1"
        times.append(trio.current_time())


async def test_watchdog_cadence_and_stall(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The receiver plays systemd: it timestamps each WATCHDOG=1 on trio's clock. WATCHDOG_USEC
    # of 20 s gives a 10 s ping interval; systemd would kill us after a 20 s gap.
    address = str(tmp_path / "wd.sock")
    interval = watchdog_interval_s({"WATCHDOG_USEC": "20000000"})
    assert interval == 10.0
    times: list[float] = []
    # Bound synchronously: trio.socket's bind() of an AF_UNIX path runs in a worker thread,
    # and the autojump clock would treat that wait as idle time and jump to the deadline.
    receiver = trio.socket.from_stdlib_socket(_receiver(address))
    with trio.fail_after(1000), Notifier(address) as notifier, receiver:
        async with trio.open_nursery() as nursery:
            # No wait_all_tasks_blocked() here: it would race the autojump clock. Datagrams
            # queue on the receiver anyway, and it reads them without the clock moving.
            nursery.start_soon(_record_pings, receiver, times)
            start = trio.current_time()
            nursery.start_soon(watchdog_loop, notifier, interval)
            await trio.sleep(25)
            # Cadence: one ping at once, then one per interval.
            assert [t - start for t in times] == [0, 10, 20]

            # Stall: this task hogs the loop for 100 s without a checkpoint (what a blocking
            # call in a handler does). MockClock.jump() stands in for the 100 s of wall time a
            # time.sleep(100) would take, deterministically. No task runs meanwhile, so no
            # ping can be sent: the pings come from the loop, not from a thread or timer.
            autojump_clock.jump(100)
            assert times[-1] - start == 20
            await trio.lowlevel.checkpoint()  # the loop runs again
            await trio.sleep(25)
            nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # The stall shows as one 105 s gap (> the 20 s watchdog: systemd would restart us),
    # followed by a single catch-up ping and the normal cadence (no burst of missed pings).
    assert [t - start for t in times] == [0, 10, 20, 125, 135, 145]
    assert max(gaps) == 105


async def test_watchdog_loop_noop_when_disabled(autojump_clock: trio.testing.MockClock) -> None:
    with trio.move_on_after(100) as scope:
        await watchdog_loop(Notifier(None), 1.0)
    assert scope.cancelled_caught


# --- socket activation: environment handling (in-process) ----------------------------------


def test_listen_fds_not_for_us() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "X": "1"}
    assert listen_fds(env) == []
    assert env == {"X": "1"}  # unset even when the fds were for someone else (like sd_listen_fds)


def test_listen_fds_absent_and_keep_env() -> None:
    assert listen_fds({}) == []
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}
    assert listen_fds(env, unset=False) == []
    assert env == {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}


@pytest.mark.parametrize(
    "env",
    [
        {"LISTEN_PID": "self", "LISTEN_FDS": "1"},
        {"LISTEN_PID": "{pid}", "LISTEN_FDS": "one"},
        {"LISTEN_PID": "{pid}", "LISTEN_FDS": "-1"},
        {"LISTEN_PID": "{pid}", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http"},
    ],
)
def test_listen_fds_malformed(env: dict[str, str]) -> None:
    env = {k: v.format(pid=os.getpid()) for k, v in env.items()}
    with pytest.raises(ConfigError, match="socket activation"):
        listen_fds_with_names(env)
    assert env == {}


# --- socket activation: real fds in a child process ----------------------------------------

# The child takes its sockets with listen_fds_with_names(), answers one connection on each with
# a JSON report, and exits. It reports what the parent cannot see from outside.
CHILD = textwrap.dedent(
    """
    import fcntl, json, os, socket
    from gateway.server.systemd import listen_fds_with_names

    taken = listen_fds_with_names()
    for name, sock in taken:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(json.dumps({
                "name": name,
                "fd": sock.fileno(),
                "family": sock.family.name,
                "type": sock.type.name,
                "cloexec": bool(fcntl.fcntl(sock.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
                "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
                "count": len(taken),
            }).encode())
        sock.close()
    """
)

# What PID 1 does between fork and exec: move the sockets to fds 3.., set LISTEN_PID to the
# (post-exec) pid, exec the service. exec keeps the pid, so LISTEN_PID matches in the child.
SHIM = textwrap.dedent(
    """
    import os, sys
    fds = [int(x) for x in sys.argv[1].split(",")]
    for i, fd in enumerate(fds):
        os.dup2(fd, 3 + i)  # dup2 makes the target inheritable
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(sys.executable, [sys.executable, sys.argv[2]])
    """
)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


async def _ask(family: socket.AddressFamily, address: str | tuple[str, int]) -> dict[str, object]:
    with trio.socket.socket(family, socket.SOCK_STREAM) as client:
        await client.connect(address)
        data = b""
        while chunk := await client.recv(4096):
            data += chunk
    report = json.loads(data)
    assert isinstance(report, dict)
    return report


async def test_listen_fds_in_child_via_exec_shim(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    shim = tmp_path / "shim.py"
    shim.write_text(SHIM)
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = str(tmp_path / "s.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    unix.listen()
    env = _child_env()
    env["LISTEN_FDNAMES"] = "http:local"
    with tcp, unix, trio.fail_after(30):
        fds = f"{tcp.fileno()},{unix.fileno()}"
        async with trio.open_nursery() as nursery:
            run = partial(
                trio.run_process,
                [sys.executable, str(shim), fds, str(child)],
                pass_fds=(tcp.fileno(), unix.fileno()),
                env=env,
                check=True,
            )
            proc: trio.Process = await nursery.start(run)
            # The listeners exist before the child starts: connecting needs no waiting.
            first = await _ask(socket.AF_INET, tcp.getsockname())
            second = await _ask(socket.AF_UNIX, unix_path)
    assert proc.returncode == 0
    assert first == {
        "name": "http",
        "fd": 3,
        "family": "AF_INET",
        "type": "SOCK_STREAM",
        "cloexec": True,
        "env_left": [],
        "count": 2,
    }
    assert second == {
        "name": "local",
        "fd": 4,
        "family": "AF_UNIX",
        "type": "SOCK_STREAM",
        "cloexec": True,
        "env_left": [],
        "count": 2,
    }


async def test_listen_fds_rejects_a_non_socket_fd(tmp_path: Path) -> None:
    # fd 3 a listening socket, fd 4 a pipe (a FIFO unit could pass one): a ConfigError naming
    # fd 4, and fd 3 is handed back open (detached), not closed behind the caller's back.
    child = tmp_path / "child.py"
    child.write_text(
        textwrap.dedent(
            """
            import os
            from gateway.errors import ConfigError
            from gateway.server.systemd import listen_fds
            try:
                listen_fds()
            except ConfigError as exc:
                os.fstat(3)  # still open
                print(exc)
            """
        )
    )
    shim = tmp_path / "shim.py"
    shim.write_text(SHIM)
    read_end, write_end = os.pipe()
    with socket.create_server(("127.0.0.1", 0)) as tcp, trio.fail_after(30):
        try:
            fds = f"{tcp.fileno()},{read_end}"
            proc = await trio.run_process(
                [sys.executable, str(shim), fds, str(child)],
                pass_fds=(tcp.fileno(), read_end),
                env=_child_env(),
                capture_stdout=True,
            )
        finally:
            os.close(read_end)
            os.close(write_end)
    assert proc.stdout.decode().startswith("socket activation: fd 4 ('unknown') is not a usable")


SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.systemd
@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_listen_fds_under_systemd_socket_activate(tmp_path: Path, kind: str) -> None:
    require_tool("systemd-socket-activate", "systemd")
    assert SOCKET_ACTIVATE is not None
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    family: socket.AddressFamily
    address: str | tuple[str, int]
    if kind == "unix":
        family, address = socket.AF_UNIX, str(tmp_path / "act.sock")
        listen = address
    else:
        # systemd-socket-activate needs a fixed port: borrow a free one from the kernel.
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        family, address = socket.AF_INET, ("127.0.0.1", port)
        listen = f"127.0.0.1:{port}"
    env = _child_env()
    argv = [
        SOCKET_ACTIVATE,
        "-l",
        listen,
        "--fdname=web",
        "-E",
        f"PYTHONPATH={REPO}",
        sys.executable,
        str(child),
    ]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            run = partial(trio.run_process, argv, env=env, stderr=subprocess.PIPE, check=False)
            proc: trio.Process = await nursery.start(run)
            assert proc.stderr is not None
            # It prints "Listening on ADDR as 3." once bound, then waits for a connection
            # before exec'ing the child (same pid, so LISTEN_PID matches).
            seen = b""
            while b"Listening on" not in seen:
                chunk = await proc.stderr.receive_some()
                assert chunk, f"systemd-socket-activate exited early: {seen!r}"
                seen += chunk
            report = await _ask(family, address)
            async for _ in proc.stderr:  # drain until exit so the pipe never fills
                pass
    assert proc.returncode == 0
    assert report == {
        "name": "web",
        "fd": 3,
        "family": family.name,
        "type": "SOCK_STREAM",
        "cloexec": True,
        "env_left": [],
        "count": 1,
    }
