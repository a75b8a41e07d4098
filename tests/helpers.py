# Test helpers: a real gateway on 127.0.0.1 port 0, an in-memory connection to the same session
# code, and small raw HTTP clients that parse responses with h11 (never with our own parser).
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h11
import trio
import trio.testing

from gateway import App
from gateway.server.serve import ConnectionInfo, Server
from gateway.settings import Settings, load_settings


def make_settings(**overrides: Any) -> Settings:
    """The `test` profile with overrides given as section__key=value."""
    return load_settings(
        "test", overrides={k.replace("__", "."): v for k, v in overrides.items()}, env={}
    )


def bound_server(app: App, settings: Settings | None = None, **overrides: Any) -> Server:
    """A Server for ``app``, bound to ``settings`` (default: the test profile with ``overrides``),
    not yet listening."""
    settings = settings or make_settings(**overrides)
    app.bind(settings)
    return Server(app, settings)


@asynccontextmanager
async def running(
    app: App, settings: Settings | None = None, **overrides: Any
) -> AsyncIterator[Server]:
    """Serve ``app`` on 127.0.0.1:0 for the duration of the block."""
    server = bound_server(app, settings, **overrides)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


async def connect(server: Server) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", server.port)


async def read_all(stream: trio.abc.ReceiveStream, limit: int = 1 << 24) -> bytes:
    """Everything until the peer closes (a reset after the data counts as a close)."""
    out = bytearray()
    while len(out) < limit:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not data:
            break
        out += data
    return bytes(out)


class Reply:
    """A parsed response."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        http_version: bytes = b"1.1",
    ) -> None:
        self.status = status
        self.header_list = [(k.decode().lower(), v.decode()) for k, v in headers]
        self.headers = dict(self.header_list)
        self.body = body
        self.http_version = http_version

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.headers} {self.body[:80]!r}>"


def parse_replies(data: bytes, methods: list[str] | None = None) -> list[Reply]:
    """Parse back-to-back responses (pipelining) with h11 as a client would."""
    replies: list[Reply] = []
    methods = list(methods or [])
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    conn.receive_data(b"")
    while True:
        method = methods.pop(0) if methods else "GET"
        conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        status, headers, body, version = 0, [], bytearray(), b"1.1"
        while True:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError:
                return replies
            if isinstance(ev, h11.InformationalResponse):
                continue
            if isinstance(ev, h11.Response):
                status, headers, version = ev.status_code, list(ev.headers), ev.http_version
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                replies.append(Reply(status, headers, bytes(body), version))
                break
            else:  # NEED_DATA at EOF, ConnectionClosed, PAUSED
                return replies
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return replies
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return replies


async def exchange(server: Server, raw: bytes, methods: list[str] | None = None) -> list[Reply]:
    """Send raw bytes, half-close, read everything, parse the responses."""
    stream = await connect(server)
    async with stream:
        await stream.send_all(raw)
        await stream.send_eof()
        data = await read_all(stream)
    return parse_replies(data, methods)


async def request(
    server: Server,
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Reply:
    """One request on a fresh connection (Connection: close), parsed."""
    hdrs = [("host", "127.0.0.1"), ("connection", "close"), *(headers or [])]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
        hdrs.append(("content-length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    replies = await exchange(server, head.encode() + body, [method])
    assert replies, "no response"
    return replies[0]


def memory_session(
    app: App, settings: Settings | None = None, *, privileged: bool = False
) -> tuple[Server, trio.testing.StapledStream[Any, Any], Any]:
    """A Server (no listener) and an in-memory stream pair; start ``run`` in a nursery.

    Returns (server, client_stream, run) where ``await run()`` serves the server side.
    """
    server = bound_server(app, settings)
    client, server_side = trio.testing.memory_stream_pair()
    info = ConnectionInfo(("127.0.0.1", 40000), "http", privileged, "127.0.0.1:40000")

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.reaper)
            await server._run_session(server_side, info)
            nursery.cancel_scope.cancel()

    return server, client, run


class Client:
    """A keep-alive HTTP/1.1 client over one stream (h11 on the client side), one exchange at a
    time: ``await send(...)`` then ``await response()``; ``await closed()`` says whether the
    server closed the connection without sending anything more."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.informational: list[int] = []

    async def send(
        self,
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        end: bool = True,
        http_version: str = "1.1",
    ) -> None:
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        hdrs = [("host", "127.0.0.1"), *(headers or [])]
        if end and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
            hdrs.append(("content-length", str(len(body))))
        data = conn.send(
            h11.Request(method=method, target=target, headers=hdrs, http_version=http_version)
        )
        if body:
            data += conn.send(h11.Data(data=body))
        if end:
            data += conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)

    async def send_body(self, data: bytes = b"", *, end: bool = False) -> None:
        out = self.h11.send(h11.Data(data=data)) if data else b""
        if end:
            out += self.h11.send(h11.EndOfMessage())
        await self.stream.send_all(out)

    async def _event(self) -> Any:
        conn = self.h11
        while True:
            ev = conn.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            conn.receive_data(data)

    async def interim(self) -> int:
        """Wait for an informational (1xx) response; its status."""
        ev = await self._event()
        assert isinstance(ev, h11.InformationalResponse), ev
        self.informational.append(ev.status_code)
        return int(ev.status_code)

    async def response(self) -> Reply:
        """The next final response, whole (1xx responses are recorded in ``informational``)."""
        status, headers, body, version = 0, [], bytearray(), b"1.1"
        while True:
            ev = await self._event()
            if isinstance(ev, h11.InformationalResponse):
                self.informational.append(ev.status_code)
            elif isinstance(ev, h11.Response):
                status, headers, version = ev.status_code, list(ev.headers), ev.http_version
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return Reply(status, headers, bytes(body), version)
            else:
                raise AssertionError(f"connection closed before a whole response: {ev!r}")

    async def closed(self) -> bool:
        """True when the server closes (or resets) the connection with nothing more sent."""
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            return True
        return data == b""

    async def aclose(self) -> None:
        await self.stream.aclose()
