# WebSockets against the real gateway (127.0.0.1, port 0) with a wsproto client: echo, params,
# subprotocols, Origin and privilege refusals before the handshake, limits (1009 / 1007 / 1002
# each followed by a completed closing handshake AND the TCP connection closed), ping/pong,
# idle timeout, the connection cap, a slow reader, and close codes reaching the handler.
from __future__ import annotations

import os
import struct
from typing import Any

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from gateway import App, Forbidden, WebSocket, WebSocketClosed
from gateway.app.cors import same_origin
from gateway.app.request import Request as HTTPRequest
from tests.helpers import running


class Client:
    """A wsproto client over a real TCP connection; every read is capped by the test's
    fail_after."""

    opened: list[trio.SocketStream] = []

    def __init__(self, stream: trio.SocketStream) -> None:
        Client.opened.append(stream)
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.eof = False

    @classmethod
    async def open(
        cls,
        port: int,
        target: str,
        *,
        subprotocols: list[str] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[Client, Event]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = cls(stream)
        await stream.send_all(
            client.ws.send(
                Request(
                    host=f"127.0.0.1:{port}",
                    target=target,
                    subprotocols=subprotocols or [],
                    extra_headers=[(k.encode(), v.encode()) for k, v in headers or []],
                )
            )
        )
        return client, await client.event()

    async def event(self) -> Event:
        while True:
            for event in self.ws.events():
                return event
            data = await self.read()
            self.ws.receive_data(data or None)

    async def message(self) -> str | bytes:
        """The next whole message (wsproto gives a long one in parts)."""
        parts: list[Any] = []
        while True:
            event = await self.event()
            assert isinstance(event, (TextMessage, BytesMessage)), event
            parts.append(event.data)
            if event.message_finished:
                return ("" if isinstance(event, TextMessage) else b"").join(parts)

    async def read(self) -> bytes:
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.eof = True
        return data

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def reject_body(self) -> tuple[int, bytes]:
        event = await self.event()
        assert isinstance(event, RejectConnection), event
        body = b""
        while event.has_body:
            data = await self.event()
            assert isinstance(data, RejectData)
            body += data.data
            if data.body_finished:
                break
        return event.status_code, body

    async def until_eof(self) -> int:
        """Read and drop everything until the server closes TCP; the byte count."""
        n = 0
        while data := await self.read():
            n += len(data)
        return n

    async def expect_close_ignoring_pings(self) -> CloseConnection:
        """Never answer anything; the server's Close, then EOF."""
        while True:
            event = await self.event()
            if isinstance(event, CloseConnection):
                await self.until_eof()
                return event

    async def expect_close(self) -> CloseConnection:
        """The server's Close frame (answered), then the TCP connection closed by the server."""
        event = await self.event()
        while isinstance(event, (TextMessage, BytesMessage, Ping, Pong)):
            event = await self.event()
        assert isinstance(event, CloseConnection), event
        try:
            await self.send(event.response())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self.until_eof()
        assert self.eof
        return event


@pytest.fixture(autouse=True)
async def _close_clients() -> Any:
    yield
    for stream in Client.opened:
        await stream.aclose()
    Client.opened.clear()


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """A client frame built by hand, for the protocol-violation tests."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, (0x80 if mask else 0) | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def echo_app() -> tuple[App, dict[str, Any]]:
    app = App()
    seen: dict[str, Any] = {"closed": trio.Event()}

    @app.ws("/echo/:room")
    async def echo(ws: WebSocket, req: HTTPRequest) -> None:
        seen["subprotocol"] = ws.subprotocol
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.send(message)
                else:
                    await ws.send(f"{req.params['room']}:{req.query.get('q', '')}:{message}")
        finally:
            seen["code"], seen["reason"] = ws.close_code, ws.close_reason
            seen["closed"].set()

    @app.ws("/chat", subprotocols=["chat", "superchat"])
    async def chat(ws: WebSocket, req: HTTPRequest) -> None:
        await ws.send(ws.subprotocol or "none")
        await ws.close()

    @app.ws("/admin", privileged=True)
    async def admin(ws: WebSocket, req: HTTPRequest) -> None:
        await ws.send("admin")

    return app, seen


async def test_echo_text_binary_params_query() -> None:
    app, seen = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client, event = await Client.open(server.port, "/echo/r1?q=x")
            assert isinstance(event, AcceptConnection)
            await client.send(TextMessage("héllo"))
            assert await client.event() == TextMessage("r1:x:héllo")
            await client.send(BytesMessage(b"\x00\xff" * 1000))
            got = await client.event()
            assert isinstance(got, BytesMessage) and got.data == b"\x00\xff" * 1000
            # a fragmented message arrives whole
            await client.raw(frame(0x1, b"frag", fin=False) + frame(0x0, b"mented"))
            assert await client.event() == TextMessage("r1:x:fragmented")
            await client.send(CloseConnection(4001, "bye"))
            event = await client.event()
            assert isinstance(event, CloseConnection) and event.code == 4001
            await client.until_eof()
            await seen["closed"].wait()
            assert (seen["code"], seen["reason"]) == (4001, "bye")  # close code reaches handler
            assert server.ws_active == 0


async def test_subprotocol_is_first_client_offer_we_support() -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client, event = await Client.open(
                server.port, "/chat", subprotocols=["x", "superchat", "chat"]
            )
            assert isinstance(event, AcceptConnection) and event.subprotocol == "superchat"
            assert await client.event() == TextMessage("superchat")
            assert (await client.expect_close()).code == 1000
            client, event = await Client.open(server.port, "/chat", subprotocols=["x"])
            assert isinstance(event, AcceptConnection) and event.subprotocol is None
            assert await client.event() == TextMessage("none")


@pytest.mark.parametrize("key", ["cors__allowed_origins", "websocket__allowed_origins"])
@pytest.mark.parametrize(
    ("allowed", "origin", "status"),
    [
        ((), "http://evil.example", 403),
        ((), "http://127.0.0.1:{port}", 101),  # same origin
        ((), "null", 403),
        ((), None, 101),  # not a browser: no hijacking possible
        (("https://app.example",), "https://app.example", 101),
        (("https://app.example",), "HTTPS://App.Example:443", 101),  # as browsers normalise
        (("https://app.example",), "http://127.0.0.1:{port}", 101),  # same origin: always
        (("https://app.example",), "https://app.example.evil", 403),
    ],
)
async def test_origin_policy(
    key: str, allowed: tuple[str, ...], origin: str | None, status: int
) -> None:
    # [cors] allowed_origins is the one list; the old [websocket] key still admits sockets
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app, **{key: list(allowed)}) as server:
            headers = [] if origin is None else [("Origin", origin.format(port=server.port))]
            client, event = await Client.open(server.port, "/echo/o", headers=headers)
            if status == 101:
                assert isinstance(event, AcceptConnection)
            else:
                assert isinstance(event, RejectConnection) and event.status_code == 403


async def test_a_wildcard_origin_never_admits_a_socket() -> None:
    # a handshake carries the browser's cookies: a credentialed request, for which "*" never
    # counts (gateway.app.cors); same-origin pages still connect
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app, cors__allowed_origins=["*"]) as server:
            _, other = await Client.open(
                server.port, "/echo/o", headers=[("Origin", "https://any.example")]
            )
            _, own = await Client.open(
                server.port, "/echo/o", headers=[("Origin", f"http://127.0.0.1:{server.port}")]
            )
    assert isinstance(other, RejectConnection) and other.status_code == 403
    assert isinstance(own, AcceptConnection)


async def test_same_origin_rules() -> None:
    same = same_origin
    assert same("http://dev.local", "dev.local:80")  # default port on either side
    assert same("https://dev.local:443", "dev.local")
    assert not same("https://dev.local:8443", "dev.local")
    assert not same("http://dev.local.evil", "dev.local")
    assert not same("null", "dev.local") and not same("http://dev.local", None)
    assert not same("http://dev.local/path", "dev.local")


async def test_privileged_route_refused_before_handshake() -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client, event = await Client.open(server.port, "/admin")
            assert isinstance(event, RejectConnection) and event.status_code == 401
            client, event = await Client.open(
                server.port, "/admin", headers=[("Authorization", "Bearer wrong")]
            )
            assert isinstance(event, RejectConnection) and event.status_code == 403


async def test_middleware_runs_before_handshake_and_unknown_path_is_404() -> None:
    app = App()

    @app.use
    async def gate(req: HTTPRequest, res: Any, next: Any) -> None:
        if req.query.get("token") != "t":
            raise Forbidden(None, "no token")
        await next()

    @app.ws("/live")
    async def live(ws: WebSocket, req: HTTPRequest) -> None:
        await ws.send("ok")

    with trio.fail_after(10):
        async with running(app) as server:
            client, event = await Client.open(server.port, "/live")
            assert isinstance(event, RejectConnection) and event.status_code == 403
            client, event = await Client.open(server.port, "/live?token=t")
            assert isinstance(event, AcceptConnection)
            assert await client.event() == TextMessage("ok")
            assert (await client.expect_close()).code == 1000
            client, event = await Client.open(server.port, "/nope?token=t")
            assert isinstance(event, RejectConnection) and event.status_code == 404


async def test_bad_version_is_426() -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            Client.opened.append(stream)
            await stream.send_all(
                b"GET /echo/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
            )
            data = await stream.receive_some(4096)
            assert data.startswith(b"HTTP/1.1 426 ")
            assert b"sec-websocket-version: 13" in data.lower()


@pytest.mark.parametrize("fragmented", [False, True])
async def test_message_too_big_1009_then_close_and_eof(fragmented: bool) -> None:
    app, seen = echo_app()
    with trio.fail_after(10):
        async with running(app, websocket__max_message_bytes=1000) as server:
            client, _ = await Client.open(server.port, "/echo/big")
            if fragmented:  # no single frame is over the limit; the message is
                await client.raw(frame(0x2, b"a" * 600, fin=False))
                await client.raw(frame(0x0, b"b" * 600, fin=False))
            else:
                await client.raw(frame(0x2, b"a" * 1001))
            close = await client.expect_close()  # Close received, answered, TCP closed by server
            assert close.code == 1009
            await seen["closed"].wait()
            assert seen["code"] == 1009


async def test_exactly_max_message_is_fine() -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app, websocket__max_message_bytes=1000) as server:
            client, _ = await Client.open(server.port, "/echo/big")
            await client.send(BytesMessage(b"z" * 1000))
            assert await client.event() == BytesMessage(b"z" * 1000)
            await client.send(TextMessage("é" * 500))  # 1000 bytes of UTF-8
            assert await client.event() == TextMessage("big::" + "é" * 500)


async def test_invalid_utf8_is_1007() -> None:
    app, seen = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await Client.open(server.port, "/echo/u")
            await client.raw(frame(0x1, b"ok \xc3\x28 bad"))
            assert (await client.expect_close()).code == 1007
            await seen["closed"].wait()
            assert seen["code"] == 1007


@pytest.mark.parametrize(
    "bad",
    [
        frame(0x1, b"x", rsv=0x40),  # reserved bit without an extension
        frame(0x1, b"x", mask=False),  # unmasked client frame
        frame(0x3, b"x"),  # reserved opcode
        frame(0x9, b"p", fin=False),  # fragmented control frame
        frame(0x0, b"x"),  # continuation without a start
    ],
)
async def test_protocol_error_is_1002_with_close_frame(bad: bytes) -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await Client.open(server.port, "/echo/p")
            await client.raw(bad)
            assert (await client.expect_close()).code == 1002
            assert await _wait_ws_active(server) == 0


async def _wait_ws_active(server: Any, n: int = 0, within_s: float = 5.0) -> int:
    """Poll (bounded) until at most ``n`` WebSockets are active; the count seen at the end.

    The caller asserts on the result: a server that never releases the slot fails the assert
    with the count, instead of passing vacuously or hanging until the test's own cap.
    """
    with trio.move_on_after(within_s):
        while server.ws_active > n:  # noqa: ASYNC110 (a counter, not an event, is what we watch)
            await trio.sleep(0.01)
    return int(server.ws_active)


async def test_client_ping_gets_pong_and_server_pings_idle_client() -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(
            app, websocket__ping_interval_s=0.2, websocket__pong_timeout_s=1.0
        ) as server:
            client, _ = await Client.open(server.port, "/echo/p")
            await client.send(Ping(b"hi"))
            assert await client.event() == Pong(b"hi")
            event = await client.event()  # quiet for ping_interval: the server pings
            assert isinstance(event, Ping)
            await client.send(event.response())
            assert isinstance(await client.event(), Ping)  # and again later: still open


async def test_pong_timeout_closes() -> None:
    app, seen = echo_app()
    with trio.fail_after(10):
        async with running(
            app, websocket__ping_interval_s=0.1, websocket__pong_timeout_s=0.3
        ) as server:
            client, _ = await Client.open(server.port, "/echo/p")
            # never answer a ping: the server gives up after pong_timeout_s
            close = await client.expect_close_ignoring_pings()
            assert close.code == 1011
            await seen["closed"].wait()


async def test_idle_timeout_closes_1001() -> None:
    app, seen = echo_app()
    with trio.fail_after(10):
        async with running(
            app,
            websocket__idle_timeout_s=0.3,
            websocket__ping_interval_s=0.1,
            websocket__pong_timeout_s=1.0,
        ) as server:
            client, _ = await Client.open(server.port, "/echo/i")
            await client.send(TextMessage("a"))
            assert await client.event() == TextMessage("i::a")
            while True:  # pings are answered (by wsproto's client) but do not count as activity
                event = await client.event()
                if isinstance(event, Ping):
                    await client.send(event.response())
                    continue
                break
            assert isinstance(event, CloseConnection) and event.code == 1001
            await client.send(event.response())
            await client.until_eof()
            await seen["closed"].wait()


async def test_max_concurrent_is_503() -> None:
    app, _ = echo_app()
    with trio.fail_after(10):
        async with running(app, websocket__max_connections=2) as server:
            clients = [await Client.open(server.port, "/echo/c") for _ in range(2)]
            assert all(isinstance(e, AcceptConnection) for _, e in clients)
            third, event = await Client.open(server.port, "/echo/c")
            assert isinstance(event, RejectConnection) and event.status_code == 503
            assert dict(event.headers).get(b"retry-after") == b"1"
            # a slot frees when one closes
            first = clients[0][0]
            await first.send(CloseConnection(1000))
            await first.until_eof()
            assert await _wait_ws_active(server, 1) == 1
            again, event = await Client.open(server.port, "/echo/c")
            assert isinstance(event, AcceptConnection)


async def test_slow_reader_is_bounded_then_closed() -> None:
    app = App()
    sent = [0]
    done = trio.Event()

    @app.ws("/flood")
    async def flood(ws: WebSocket, req: HTTPRequest) -> None:
        try:
            chunk = b"x" * 65536
            while True:
                await ws.send(chunk)
                sent[0] += len(chunk)
        finally:
            done.set()

    with trio.fail_after(15):
        async with running(app, http__send_timeout_s=0.5) as server:
            client, _ = await Client.open(server.port, "/flood")
            await done.wait()  # the handler was stopped: the client never read
            # what the server wrote is what the kernel buffers took: bounded, nothing queued
            assert sent[0] < 64 * 1024 * 1024
            received = await client.until_eof()  # and the connection is closed
            assert received <= sent[0] + 65536 + 1024
            assert await _wait_ws_active(server) == 0


async def test_handler_error_closes_1011_and_return_closes_1000() -> None:
    app = App()

    @app.ws("/boom")
    async def boom(ws: WebSocket, req: HTTPRequest) -> None:
        await ws.receive()
        raise RuntimeError("bug")

    @app.ws("/bye")
    async def bye(ws: WebSocket, req: HTTPRequest) -> None:
        await ws.send("bye")

    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await Client.open(server.port, "/boom")
            await client.send(TextMessage("x"))
            assert (await client.expect_close()).code == 1011
            client, _ = await Client.open(server.port, "/bye")
            assert await client.event() == TextMessage("bye")
            assert (await client.expect_close()).code == 1000


async def test_send_only_handler_sees_client_close() -> None:
    # Nobody calls receive(): the background reader answers the client's Close, and the
    # handler's next send raises WebSocketClosed with the client's code.
    app = App()
    result: dict[str, Any] = {}
    done = trio.Event()

    @app.ws("/ticks")
    async def ticks(ws: WebSocket, req: HTTPRequest) -> None:
        try:
            while True:
                await ws.send("tick")
                await trio.sleep(0.02)
        except WebSocketClosed as exc:
            result["code"] = exc.code
        finally:
            done.set()

    with trio.fail_after(10):
        async with running(
            app, websocket__ping_interval_s=0.2, websocket__pong_timeout_s=1.0
        ) as server:
            client, _ = await Client.open(server.port, "/ticks")
            assert await client.event() == TextMessage("tick")
            await client.send(CloseConnection(4002, "enough"))
            event = await client.event()
            while not isinstance(event, CloseConnection):
                event = await client.event()
            assert event.code == 4002
            await client.until_eof()
            await done.wait()
            assert result["code"] == 4002


async def test_pipelined_first_frame_and_concurrent_receivers() -> None:
    app = App()

    @app.ws("/two")
    async def two(ws: WebSocket, req: HTTPRequest) -> None:
        first = await ws.receive()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws.receive)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await ws.receive()
            nursery.cancel_scope.cancel()
        await ws.send(f"first={first}")

    with trio.fail_after(10):
        async with running(app) as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = Client(stream)
            # the handshake and a first frame in one write: the frame rides in h11's
            # trailing data and must not be lost
            head = client.ws.send(Request(host="127.0.0.1", target="/two"))
            await stream.send_all(head + frame(0x1, b"early"))
            assert isinstance(await client.event(), AcceptConnection)
            assert await client.event() == TextMessage("first=early")


async def test_messages_before_a_bad_frame_are_answered_before_the_close() -> None:
    # Autobahn 3.2 / 4.1.3 / 5.15 strict: a message and a bad frame in one write; the echo of
    # the message goes out, then our Close 1002 (the Ping after the bad frame is never read).
    app, seen = echo_app()
    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await Client.open(server.port, "/echo/s")
            await client.raw(
                frame(0x2, b"first") + frame(0x1, b"x", rsv=0x20) + frame(0x9, b"never")
            )
            assert await client.event() == BytesMessage(b"first")
            close = await client.event()
            assert isinstance(close, CloseConnection) and close.code == 1002
            await client.until_eof()
            await seen["closed"].wait()
            assert seen["code"] == 1002


async def test_a_burst_of_messages_in_one_write_is_echoed_in_order() -> None:
    app, _ = echo_app()
    sizes = [0, 1, 125, 126, 65535, 65536, 70000] + list(range(300))
    with trio.fail_after(20):
        async with running(app, websocket__max_message_bytes=1 << 20) as server:
            client, _ = await Client.open(server.port, "/echo/b")
            await client.raw(b"".join(frame(0x2, bytes([n % 251]) * n) for n in sizes))
            for n in sizes:
                assert await client.message() == bytes([n % 251]) * n


async def test_a_handler_reading_a_flood_still_lets_other_tasks_run() -> None:
    # Reads that never wait (the data is already there: 64-byte reads of ~14 KB) give a
    # schedule point now and then: another task's counter moves while the handler reads.
    app = App()
    ticks = [0]
    seen: list[int] = []
    done = trio.Event()

    @app.ws("/flood")
    async def flood(ws: WebSocket, req: HTTPRequest) -> None:
        async for _ in ws:
            seen.append(ticks[0])
            if len(seen) == 200:
                done.set()

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with running(app, server__recv_buffer_bytes=64) as server:
            client, _ = await Client.open(server.port, "/flood")
            async with trio.open_nursery() as nursery:
                await client.raw(b"".join(frame(0x1, b"%03d" % i * 16) for i in range(200)))
                nursery.start_soon(ticker)
                await done.wait()
                nursery.cancel_scope.cancel()
    assert len(seen) == 200
    assert len(set(seen)) > 1, "the handler read 200 messages without one schedule point"


async def test_echo_over_a_unix_socket(tmp_path: Any) -> None:
    # the same direct socket I/O as TCP: a message, a long one (written in parts), a close
    app, seen = echo_app()
    path = str(tmp_path / "gw.sock")
    with trio.fail_after(10):
        async with running(app, server__unix_path=path) as server:
            stream = await trio.open_unix_socket(path)
            client = Client(stream)
            await stream.send_all(client.ws.send(Request(host="localhost", target="/echo/u?q=1")))
            assert isinstance(await client.event(), AcceptConnection)
            await client.send(TextMessage("over unix"))
            assert await client.message() == "u:1:over unix"
            big = os.urandom(60000)
            await client.send(BytesMessage(big))
            assert await client.message() == big
            await client.send(CloseConnection(1000))
            assert await client.event() == CloseConnection(1000, "")  # the answer
            await client.until_eof()
            await seen["closed"].wait()
            assert seen["code"] == 1000
            assert await _wait_ws_active(server) == 0
