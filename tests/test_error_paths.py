# Error paths, each against the real server on 127.0.0.1 (port 0) where the path is reachable:
# the WebSocket handshake's refusals (exact status and message, and the connection still
# usable after a 4xx that does not close it), accept() failing with EMFILE/ECONNABORTED (the
# accept loop survives; a fake listener at the seam raises them), send_file's path and
# permission errors, and Engine.IO / Sails parse errors (close 1002, or a 400 JWR that keeps the
# socket). The sans-IO checks are also run directly, for the cases the router never lets reach
# them (a non-GET or Upgrade-less request never matches a ws route: 404).
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, TextMessage

import gateway.app.response as response_mod
import gateway.server.http_session as http_session_mod
from gateway import App, BadRequest, HTTPError, Request, Response, WebSocket
from gateway.server.serve import Server, _Listener
from gateway.ws import handshake
from tests.helpers import (
    bound_server,
    connect,
    exchange,
    parse_replies,
    read_all,
    request,
    running,
)
from tests.test_websocket import Client

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example key


def ws_app() -> App:
    app = App()

    @app.ws("/echo/:id")
    async def echo(ws: WebSocket, req: Request) -> None:
        async for message in ws:
            await ws.send(message)

    @app.get("/")
    async def index(req: Request, res: Response) -> None:
        await res.send("hello")

    return app


def upgrade(method: str = "GET", version: str = "1.1", **fields: str | None) -> bytes:
    """A handshake head for /echo/x; ``Field_Name=None`` drops a field, a value replaces it."""
    headers: dict[str, str] = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in fields.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return (
        f"{method} /echo/x HTTP/{version}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()


GET_INDEX = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


# -- the WebSocket handshake ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "status", "message", "closes"),
    [
        (upgrade(version="1.0"), 400, "WebSocket handshake needs GET over HTTP/1.1", True),
        (upgrade(Connection=None), 400, "WebSocket handshake needs 'Connection: Upgrade'", False),
        (
            upgrade(Connection="keep-alive"),
            400,
            "WebSocket handshake needs 'Connection: Upgrade'",
            False,
        ),
        (upgrade(Sec_WebSocket_Key=None), 400, "Malformed Sec-WebSocket-Key", False),
        (upgrade(Sec_WebSocket_Key="abc"), 400, "Malformed Sec-WebSocket-Key", False),
        (
            upgrade(Sec_WebSocket_Key="AAAAAAAAAAAAAAAAAAAA"),
            400,
            "Malformed Sec-WebSocket-Key",
            False,
        ),  # valid base64, 15 bytes: not the 16 the RFC asks for
        (
            upgrade(Sec_WebSocket_Key="!!!!!!!!!!!!!!!!!!!!!!=="),
            400,
            "Malformed Sec-WebSocket-Key",
            False,
        ),
        (upgrade(Sec_WebSocket_Version="8"), 426, "Unsupported WebSocket version: use 13", False),
        (upgrade(Sec_WebSocket_Version=None), 426, "Unsupported WebSocket version: use 13", False),
        (upgrade(Origin="http://evil.example"), 403, "WebSocket origin not allowed", False),
        (upgrade(Origin="null"), 403, "WebSocket origin not allowed", False),
        # the router: a ws route answers only a GET that asks to upgrade
        (upgrade("POST", Content_Length="0"), 404, "Cannot POST /echo/x", False),
        (upgrade(Upgrade=None), 404, "Cannot GET /echo/x", False),
        (upgrade(Upgrade="h2c"), 404, "Cannot GET /echo/x", False),
    ],
)
async def test_bad_handshake_is_refused_with_its_reason(
    raw: bytes, status: int, message: str, closes: bool
) -> None:
    method = "POST" if raw.startswith(b"POST") else "GET"
    with trio.fail_after(10):
        async with running(ws_app()) as server:
            replies = await exchange(server, raw + GET_INDEX, [method, "GET"])
            assert server.ws_active == 0
    assert replies[0].status == status
    assert replies[0].json() == {"error": message, "status": status}
    if status == 426:
        assert replies[0].headers["sec-websocket-version"] == "13"
    if closes:  # HTTP/1.0 without keep-alive: nothing after the refusal
        assert len(replies) == 1 and replies[0].headers["connection"] == "close"
    else:  # the refusal loses nothing: the next request on the connection is served
        assert [r.status for r in replies] == [status, 200] and replies[1].body == b"hello"


async def test_good_handshake_with_a_list_in_connection_is_accepted() -> None:
    with trio.fail_after(10):
        async with running(ws_app()) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(upgrade(Connection="keep-alive, Upgrade"))
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive_some(4096)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    # RFC 6455 1.3: the accept value for the example key
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head


@pytest.mark.parametrize(
    ("method", "version", "fields", "error", "status", "message"),
    [
        ("POST", "1.1", {}, BadRequest, 400, "WebSocket handshake needs GET over HTTP/1.1"),
        ("GET", "1.0", {}, BadRequest, 400, "WebSocket handshake needs GET over HTTP/1.1"),
        (
            "GET",
            "1.1",
            {"upgrade": None},
            BadRequest,
            400,
            "WebSocket handshake needs 'Upgrade: websocket'",
        ),
        (
            "GET",
            "1.1",
            {"upgrade": "h2c, foo"},
            BadRequest,
            400,
            "WebSocket handshake needs 'Upgrade: websocket'",
        ),
        (
            "GET",
            "1.1",
            {"connection": None},
            BadRequest,
            400,
            "WebSocket handshake needs 'Connection: Upgrade'",
        ),
        (
            "GET",
            "1.1",
            {"sec-websocket-key": "a" * 24},
            BadRequest,
            400,
            "Malformed Sec-WebSocket-Key",
        ),
        (
            "GET",
            "1.1",
            {"sec-websocket-version": "14"},
            HTTPError,
            426,
            "Unsupported WebSocket version: use 13",
        ),
    ],
)
def test_check_upgrade_refusals(
    method: str,
    version: str,
    fields: dict[str, str | None],
    error: type[HTTPError],
    status: int,
    message: str,
) -> None:
    headers: dict[str, str | None] = {
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": "13",
    }
    headers.update(fields)
    with pytest.raises(error) as info:
        handshake.check_upgrade(
            method, version, {k: v for k, v in headers.items() if v is not None}
        )
    assert (info.value.status, info.value.message) == (status, message)


def test_check_upgrade_accepts_tokens_in_any_case_and_lists() -> None:
    offer = handshake.check_upgrade(
        "GET",
        "1.1",
        {
            "upgrade": "foo, WebSocket",
            "connection": "keep-alive, UPGRADE",
            "sec-websocket-key": f" {KEY} ",
            "sec-websocket-version": " 13 ",
            "sec-websocket-protocol": "a, b",
            "sec-websocket-extensions": "permessage-deflate",
        },
    )
    assert offer == handshake.Offer(KEY, ("a", "b"), ("permessage-deflate",))


# -- accept() errors ------------------------------------------------------------------------------
class FlakyListener:
    """A listening socket whose first accept() calls fail with the given errnos, then the
    real one's (the seam the accept loop uses: it waits for ``fileno()`` to be readable, then
    calls ``accept()`` until the backlog is empty)."""

    def __init__(self, real: socket.socket, errnos: list[int]) -> None:
        self.real = real
        self.errnos = list(errnos)
        self.calls = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> Any:
        self.calls += 1
        if self.errnos:
            code = self.errnos.pop(0)
            raise OSError(code, os.strerror(code))
        return self.real.accept()


async def _serve_with(server: Server, flaky: FlakyListener, nursery: trio.Nursery) -> None:
    sock = trio.socket.from_stdlib_socket(flaky.real)
    server.listeners = [_Listener(flaky, sock, "tcp", flaky.real.getsockname())]  # type: ignore[arg-type]
    await nursery.start(server.serve)


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _queue_a_client(flaky: FlakyListener) -> socket.socket:
    """A connection waiting in the listener's backlog: what makes accept() be called."""
    client = socket.socket()
    client.connect(flaky.real.getsockname())  # the kernel completes it: no accept needed
    return client


@pytest.mark.parametrize(
    "errnos",
    [
        [errno.EMFILE],
        [errno.ENFILE, errno.ENOBUFS, errno.ENOMEM],
        [errno.ECONNABORTED],
        [errno.EPROTO, errno.EPERM, errno.ECONNABORTED],
    ],
)
async def test_accept_loop_survives_transient_errors(errnos: list[int], caplog: Any) -> None:
    server = bound_server(ws_app())
    flaky = FlakyListener(_listening(), errnos)
    resource = [e for e in errnos if e in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS)]
    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="gateway.server"):
        async with trio.open_nursery() as nursery:
            started = time.monotonic()
            await _serve_with(server, flaky, nursery)
            reply = await request(server, "GET", "/")
            elapsed = time.monotonic() - started
            nursery.cancel_scope.cancel()
    assert reply.status == 200 and reply.body == b"hello"
    assert flaky.calls >= len(errnos) + 1 and flaky.errnos == []
    assert server.stats["accepted"] == 1
    # out of descriptors/memory: logged and paused 100 ms each (no busy loop); a connection
    # that died in the backlog is skipped silently
    assert [r.getMessage() for r in caplog.records] == [
        f"accept: {os.strerror(e)}; pausing 100 ms" for e in resource
    ]
    assert elapsed >= 0.1 * len(resource)


class TimedListener(FlakyListener):
    """A FlakyListener that records the (virtual) time of each accept() call."""

    def __init__(self, real: Any, errnos: list[int]) -> None:
        super().__init__(real, errnos)
        self.times: list[float] = []

    def accept(self) -> Any:
        self.times.append(trio.current_time())
        return super().accept()


async def test_each_resource_error_pauses_the_accept_loop_exactly_100_ms(
    mock_clock: trio.testing.MockClock,
) -> None:
    # the pause is what keeps an out-of-descriptors server from spinning; longer, and every
    # such error would shut the door for that long
    server = bound_server(ws_app())
    flaky = TimedListener(_listening(), [errno.EMFILE, errno.ENOBUFS])
    client = _queue_a_client(flaky)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await _serve_with(server, flaky, nursery)
            await trio.testing.wait_all_tasks_blocked()
            t0 = flaky.times[0]
            # paused 100 ms after each error, not 99: then the client is taken, and a fourth
            # call finds the backlog empty
            for calls_before, calls_after in ((1, 2), (2, 4)):
                mock_clock.jump(0.099)
                await trio.testing.wait_all_tasks_blocked()
                assert len(flaky.times) == calls_before
                mock_clock.jump(0.001)
                await trio.testing.wait_all_tasks_blocked()
                assert len(flaky.times) == calls_after
            assert server.stats["accepted"] == 1
            nursery.cancel_scope.cancel()
    client.close()
    assert [round(t - t0, 6) for t in flaky.times] == [0.0, 0.1, 0.2, 0.2]


class TickedListener(FlakyListener):
    """A FlakyListener that records, at each accept() call, how many scheduler rounds the
    test's ticker task has seen."""

    def __init__(self, real: Any, errnos: list[int]) -> None:
        super().__init__(real, errnos)
        self.ticks = 0
        self.seen: list[int] = []

    def accept(self) -> Any:
        self.seen.append(self.ticks)
        return super().accept()

    async def tick(self) -> None:
        while True:
            self.ticks += 1
            await trio.lowlevel.checkpoint()


async def test_queued_connections_are_accepted_at_one_wake_up() -> None:
    # A burst of clients (a browser's 6, wrk's 50, a fleet reconnecting) is taken from the
    # backlog in one go, not one per scheduler round: under load a round is every busy
    # connection's request, and the last of a burst used to wait that long per client before
    # it was even accepted.
    # A connection that died in the backlog (ECONNABORTED) is skipped without ending the burst.
    server = bound_server(ws_app())
    flaky = TickedListener(_listening(), [errno.ECONNABORTED])
    clients = [_queue_a_client(flaky) for _ in range(10)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flaky.tick)
            await _serve_with(server, flaky, nursery)
            for _ in range(10_000):  # bounded: the ticker never lets the run go idle
                if server.stats["accepted"] == 10:
                    break
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
    assert server.stats["accepted"] == 10
    for client in clients:
        client.close()
    # the aborted one, ten accepted and a call that found the backlog empty: one task step
    assert len(flaky.seen) == 12 and len(set(flaky.seen)) == 1


async def test_accept_error_that_is_not_transient_stops_the_server() -> None:
    server = bound_server(ws_app())
    flaky = FlakyListener(_listening(), [errno.EBADF])
    client = _queue_a_client(flaky)
    with (
        trio.fail_after(10),
        pytest.RaisesGroup(
            pytest.RaisesExc(OSError, check=lambda e: e.errno == errno.EBADF),
            flatten_subgroups=True,
        ),
    ):
        async with trio.open_nursery() as nursery:
            await _serve_with(server, flaky, nursery)
    client.close()
    assert server.stopped.is_set()


# -- send_file ------------------------------------------------------------------------------------
@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "page.txt").write_text("page text")
    os.mkfifo(root / "fifo")
    return root


def file_app(www: Path) -> App:
    app = App()

    @app.get("/rooted/*path")
    async def rooted(req: Request, res: Response) -> None:
        await res.send_file("/".join(req.params["path"]), root=str(www))

    @app.get("/abs")
    async def absolute(req: Request, res: Response) -> None:
        await res.send_file(req.query["p"])

    @app.get("/after")
    async def after(req: Request, res: Response) -> None:
        await res.send("still serving")

    return app


async def test_send_file_path_errors(www: Path, caplog: Any) -> None:
    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="gateway.app"):
        async with running(file_app(www)) as server:
            got = {
                name: await request(server, "GET", target)
                for name, target in [
                    ("ok", f"/abs?p={www}/page.txt"),
                    ("dir", f"/abs?p={www}"),
                    ("fifo", "/rooted/fifo"),
                    ("device", "/abs?p=/dev/null"),
                    ("under-a-file", "/rooted/page.txt/x"),
                    ("missing", f"/abs?p={www}/nope"),
                    ("nul", f"/abs?p={www}/page.txt%00"),
                    ("dotdot", f"/abs?p={www}/../www/page.txt"),
                    ("relative", "/abs?p=page.txt"),
                ]
            }
    assert got["ok"].status == 200 and got["ok"].body == b"page text"
    for name in ("dir", "fifo", "device", "under-a-file", "missing"):
        assert (name, got[name].status) == (name, 404)
    for name in ("nul", "dotdot"):
        assert (name, got[name].status) == (name, 403)
        assert b"page text" not in got[name].body
    # a relative path without a root is the handler's bug: 500, and the log says why
    assert got["relative"].status == 500
    assert "send_file needs an absolute path or a root" in caplog.text


async def test_send_file_permission_denied_at_stat_is_403(
    www: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root (as the tests run) ignores mode bits, so the kernel's EACCES is played at the seam
    target = str(www / "page.txt")
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", target)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(response_mod.os, "stat", stat)
    with trio.fail_after(10):
        async with running(file_app(www)) as server:
            denied = await request(server, "GET", "/rooted/page.txt")
            after = await request(server, "GET", "/after")
    assert denied.status == 403 and b"page text" not in denied.body
    assert after.body == b"still serving"


@pytest.mark.parametrize("failure", ["open", "shrink"])
async def test_send_file_failing_after_the_head_closes_the_connection(
    www: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    # the head (200, Content-Length) is out before the file is opened and read: a later failure
    # can only be told by closing the connection short of Content-Length, never by a hang or
    # by bytes that are not the file's
    real_open = trio.open_file

    async def open_file(path: Any, *args: Any, **kwargs: Any) -> Any:
        if failure == "open":
            raise PermissionError(errno.EACCES, "Permission denied", path)
        os.truncate(path, 4)  # the file shrank between stat and read
        return await real_open(path, *args, **kwargs)

    monkeypatch.setattr(http_session_mod.trio, "open_file", open_file)
    with trio.fail_after(10):
        async with running(file_app(www)) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET /rooted/page.txt HTTP/1.1\r\nHost: a\r\n\r\n")
                raw = await read_all(stream)  # returns: the server closed the connection
            monkeypatch.setattr(http_session_mod.trio, "open_file", real_open)
            after = await request(server, "GET", "/after")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 9\r\n" in head
    assert body == (b"" if failure == "open" else b"page")
    assert parse_replies(raw) == []  # no whole response: a client sees the truncation
    assert after.body == b"still serving"


# -- Engine.IO and Sails parse errors -------------------------------------------------------------
def sails_app() -> App:
    app = App()

    @app.get("/x")
    async def x(req: Request, res: Response) -> None:
        await res.json({"ok": True})

    return app


async def _eio(port: int, version: int) -> Client:
    client, event = await Client.open(port, f"/socket.io/?EIO={version}&transport=websocket")
    assert isinstance(event, AcceptConnection)
    opened = await client.event()
    assert isinstance(opened, TextMessage) and opened.data.startswith("0{")
    if version == 4:
        await client.send(TextMessage("40"))
    connected = await client.event()
    assert isinstance(connected, TextMessage) and connected.data.startswith("40")
    return client


async def _until_sockets_gone(app: App, server: Server) -> tuple[int, int]:
    with trio.move_on_after(5):
        while len(app.sockets) or server.ws_active:  # noqa: ASYNC110 (counters, not events)
            await trio.sleep(0.01)
    return len(app.sockets), server.ws_active


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (4, ""),
        (4, "9"),
        (4, "4x"),
        (4, "42["),
        (4, '42"a"'),
        (4, "42[]"),
        (4, '42["connect"]'),
        (4, "43"),
        (4, "45-1"),
        (4, "0"),
        (4, "2"),
        (4, b"\x00binary"),
        (3, "9"),
        (3, "42["),
        (3, "3"),
        (3, b"\x04binary"),
    ],
)
async def test_engineio_parse_error_closes_1002_and_frees_the_socket(
    version: int, message: str | bytes
) -> None:
    app = sails_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client = await _eio(server.port, version)
            async with client.stream:
                await client.send(
                    BytesMessage(message) if isinstance(message, bytes) else TextMessage(message)
                )
                close = await client.expect_close()
                assert (close.code, close.reason) == (1002, "parse error")
                await client.until_eof()
            assert await _until_sockets_gone(app, server) == (0, 0)
            again = await _eio(server.port, version)  # the server is unharmed
            async with again.stream:
                await again.send(TextMessage('421["get",{"url":"/x"}]'))
                reply = await again.event()
    assert isinstance(reply, TextMessage) and reply.data.startswith("431[")
    assert json.loads(reply.data[3:])[0]["body"] == {"ok": True}


@pytest.mark.parametrize(
    "request_", ['"nope"', '{"url":5}', "{}", '{"url":"/x","headers":5}', '{"url":"/x\\u0000"}']
)
async def test_bad_virtual_request_is_a_400_jwr_and_the_socket_stays(request_: str) -> None:
    app = sails_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client = await _eio(server.port, 4)
            async with client.stream:
                await client.send(TextMessage(f'421["get",{request_}]'))
                bad = await client.event()
                await client.send(TextMessage('422["get",{"url":"/x"}]'))
                good = await client.event()
    assert isinstance(bad, TextMessage) and bad.data.startswith("431[")
    jwr = json.loads(bad.data[3:])[0]
    assert jwr["statusCode"] == 400
    assert jwr["body"]["code"] == "SAILS:HOOK:SOCKETS_PARSE_VIRTUAL_REQ"
    assert isinstance(good, TextMessage) and good.data.startswith("432[")
    assert json.loads(good.data[3:])[0] == {
        "body": {"ok": True},
        "statusCode": 200,
        "headers": {},
    }  # a JWR carries only the headers the app set (as Sails' does)


async def test_lone_surrogate_in_a_virtual_request_header_is_answered() -> None:
    # JSON can carry "\ud800" (no UTF-8 form): the request is still served, not lost to an
    # encoding error on the way to the router
    app = sails_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client = await _eio(server.port, 4)
            async with client.stream:
                await client.send(
                    TextMessage('421["get",{"url":"/x","headers":{"X-Odd":"a\\ud800b"}}]')
                )
                reply = await client.event()
    assert isinstance(reply, TextMessage) and reply.data.startswith("431[")
    assert json.loads(reply.data[3:])[0]["body"] == {"ok": True}


async def test_close_of_engineio_session_by_client_is_not_an_error() -> None:
    app = sails_app()
    with trio.fail_after(10):
        async with running(app) as server:
            for message, reason in (
                ("41", "client namespace disconnect"),
                ("1", "transport close"),
            ):
                client = await _eio(server.port, 4)
                async with client.stream:
                    await client.send(TextMessage(message))
                    close = await client.expect_close()
                assert isinstance(close, CloseConnection)
                assert (close.code, close.reason) == (1000, reason)
            assert await _until_sockets_gone(app, server) == (0, 0)


async def test_a_forced_parser_that_breaks_after_start_is_a_500_not_a_dropped_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # the parser is imported at the first head the gateway does not read itself; a forced one
    # whose install broke after the start (gateway check, the ExecStartPre, imports it) is our
    # fault: a 500 that says so, an error in the log, no protocol error counted, and the server
    # goes on serving what it reads without it
    import gateway.http.parser as parser_mod

    def broken() -> Any:
        raise parser_mod.ParserUnavailable(
            "$GATEWAY_HTTP_PARSER=h11_mypyc: h11_mypyc cannot be imported (broken)"
        )

    monkeypatch.setattr(parser_mod, "load", broken)
    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="gateway.http"):
        async with running(ws_app()) as server:
            chunked = [("transfer-encoding", "chunked")]
            reply = await request(server, "POST", "/", headers=chunked, body=b"0\r\n\r\n")
            assert reply.status == 500
            assert b"the HTTP parser cannot be loaded" in reply.body
            assert server.stats["protocol_errors"] == 0
            ok = await request(server, "GET", "/")
            assert (ok.status, ok.body) == (200, b"hello")
    assert "h11_mypyc cannot be imported (broken)" in caplog.text
    assert "Traceback" not in caplog.text
