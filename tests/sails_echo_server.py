# Test-only Sails/Socket.IO server: trio + wsproto + gateway.ws.engineio/sails and a canned
# router, so the stock Node clients can be checked against our sans-IO layer before the real
# server exists. Records every frame per connection (the wire transcript). Loopback only;
# not part of the gateway (no limits beyond the session's, no HTTP besides the upgrade).
from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from gateway.ws import engineio as eio
from gateway.ws import sails


@dataclass
class Conn:
    """One client connection as the tests see it."""

    target: str
    headers: dict[str, str]
    version: int = 0
    session: eio.EngineIOSession | None = None
    frames: list[tuple[str, str]] = field(default_factory=list)  # ("C>S" | "S>C", frame)
    rooms: set[str] = field(default_factory=set)
    disconnected: eio.Disconnected | None = None
    auth: dict[str, Any] | None = None  # v4 CONNECT payload
    send_lock: trio.Lock = field(default_factory=trio.Lock)
    stream: trio.SocketStream | None = None
    ws: WSConnection | None = None
    done: trio.Event = field(default_factory=trio.Event)


@dataclass
class EchoServer:
    """The running server: its port and every connection it saw."""

    port: int = 0
    ping_interval_s: float = 25.0
    ping_timeout_s: float = 20.0
    conns: list[Conn] = field(default_factory=list)
    room_joined: trio.Event = field(default_factory=trio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- routing (a tiny Sails app) ------------------------------------------------------------

    async def route(self, conn: Conn, req: sails.VirtualRequest) -> dict[str, Any]:
        headers = sails.merge_headers(req.headers, conn.headers)
        parts = [p for p in urlsplit(req.url).path.split("/") if p]
        if req.method == "GET" and len(parts) == 2 and parts[0] == "user":
            return sails.jwr(
                200,
                [
                    ("Content-Type", "application/json"),
                    ("Set-Cookie", "sid=secret"),
                    ("X-Served-By", "echo"),
                ],
                {"id": int(parts[1]) if parts[1].isdigit() else parts[1]},
            )
        if parts[:1] == ["echo"]:
            body = {"method": req.method, "url": req.url, "headers": headers, "data": req.data}
            return sails.jwr(200, {}, body)
        if parts[:1] == ["status"] and len(parts) == 2:
            return sails.jwr(int(parts[1]), {}, {"status": int(parts[1])})
        if req.method == "GET" and parts == ["text"]:
            return sails.jwr(200, {"Content-Type": "text/plain"}, "plain text")
        if req.method == "GET" and parts == ["empty"]:
            return sails.jwr(204, {})
        if req.method == "POST" and parts == ["push"]:  # push to the caller itself
            data = req.data if isinstance(req.data, dict) else {}
            await self.push(conn, str(data.get("event", "message")), data.get("data"))
            return sails.jwr(200, {}, {"pushed": True})
        if req.method == "POST" and parts == ["blast"]:
            data = req.data if isinstance(req.data, dict) else {}
            for other in list(self.conns):
                await self.push(other, str(data.get("event", "message")), data.get("data"))
            return sails.jwr(200, {}, {"blasted": True})
        if req.method == "POST" and len(parts) == 3 and parts[0] == "rooms":
            room, action = parts[1], parts[2]
            if action == "join":
                conn.rooms.add(room)
                self.room_joined.set()
                return sails.jwr(200, {}, {"joined": room})
            if action == "leave":
                conn.rooms.discard(room)
                return sails.jwr(200, {}, {"left": room})
            if action == "broadcast":
                for other in list(self.conns):
                    if room in other.rooms:
                        await self.push(other, "message", req.data)
                return sails.jwr(200, {}, {"broadcast": room})
        if req.method == "POST" and parts == ["kick"]:  # server-side disconnect, after the ack
            return sails.jwr(200, {}, {"kicked": True})
        return sails.status_jwr(404)

    # -- wire ------------------------------------------------------------------------------

    async def push(self, conn: Conn, event: str, data: Any) -> None:
        if conn.session is None or not conn.session.connected:
            return
        await self.send(conn, [conn.session.send_event(event, data)])

    async def send(self, conn: Conn, frames: list[str]) -> None:
        if not frames or conn.stream is None or conn.ws is None:
            return
        async with conn.send_lock:
            for frame in frames:
                conn.frames.append(("S>C", frame))
                try:
                    await conn.stream.send_all(conn.ws.send(TextMessage(data=frame)))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async def close(self, conn: Conn, code: int) -> None:
        assert conn.ws is not None and conn.stream is not None
        async with conn.send_lock:
            if conn.ws.state is not ConnectionState.OPEN:
                return  # the peer closed first, or we already did
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await conn.stream.send_all(conn.ws.send(CloseConnection(code=code)))

    async def handle(self, stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        conn: Conn | None = None
        text_parts: list[str] = []
        async with stream, trio.open_nursery() as nursery:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, Request):
                        conn = await self._accept(stream, ws, event, nursery)
                    elif conn is None or conn.session is None:
                        continue
                    elif isinstance(event, TextMessage):
                        text_parts.append(event.data)
                        if event.message_finished:
                            text = "".join(text_parts)
                            text_parts.clear()
                            conn.frames.append(("C>S", text))
                            await self._events(
                                conn, conn.session.receive_text(text, trio.current_time())
                            )
                    elif isinstance(event, BytesMessage):
                        conn.frames.append(("C>S", "<binary>"))
                        await self._events(
                            conn, conn.session.receive_bytes(bytes(event.data), trio.current_time())
                        )
                    elif isinstance(event, Ping):
                        await stream.send_all(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        await self._events(conn, conn.session.connection_lost())
                        if ws.state is ConnectionState.REMOTE_CLOSING:
                            with contextlib.suppress(
                                trio.BrokenResourceError, trio.ClosedResourceError
                            ):
                                await stream.send_all(ws.send(event.response()))
                if not data or (conn is not None and conn.done.is_set()):
                    if conn is not None and conn.session is not None:
                        await self._events(conn, conn.session.connection_lost())
                    nursery.cancel_scope.cancel()
                    return

    async def _accept(
        self, stream: trio.SocketStream, ws: WSConnection, request: Request, nursery: trio.Nursery
    ) -> Conn | None:
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.extra_headers
        }
        headers["host"] = request.host
        conn = Conn(request.target, headers, stream=stream, ws=ws)
        self.conns.append(conn)
        url = urlsplit(request.target)
        query = parse_qs(url.query)
        version = query.get("EIO", [""])[0]
        if (
            url.path != "/socket.io/"
            or version not in ("3", "4")
            or query.get("transport") != ["websocket"]
        ):
            await stream.send_all(ws.send(RejectConnection(status_code=400)))
            conn.done.set()
            return conn
        await stream.send_all(ws.send(AcceptConnection()))
        conn.version = int(version)
        conn.session = eio.EngineIOSession(
            3 if version == "3" else 4,
            secrets.token_urlsafe(15),
            ping_interval_s=self.ping_interval_s,
            ping_timeout_s=self.ping_timeout_s,
        )
        await self.send(conn, conn.session.open_frames(trio.current_time()))
        nursery.start_soon(self._timers, conn)
        return conn

    async def _timers(self, conn: Conn) -> None:
        assert conn.session is not None
        while (deadline := conn.session.next_deadline()) is not None:
            await trio.sleep_until(deadline)
            ended = conn.session.poll(trio.current_time())
            await self.send(conn, conn.session.frames_to_send())
            if ended is not None:
                await self._events(conn, [ended])

    async def _events(self, conn: Conn, events: list[eio.SessionEvent]) -> None:
        session = conn.session
        assert session is not None
        await self.send(conn, session.frames_to_send())
        for event in events:
            if isinstance(event, eio.Event) and sails.is_virtual_request(event.name):
                await self._virtual_request(conn, event)
            elif isinstance(event, eio.Event) and event.ack_id is not None:
                await self.send(conn, [session.send_ack(event.ack_id, [event.name, *event.args])])
            elif isinstance(event, eio.Connected):
                conn.auth = event.auth
            elif isinstance(event, eio.Disconnected):
                conn.disconnected = event
                await self.close(conn, event.close_code)
                conn.done.set()

    async def _virtual_request(self, conn: Conn, event: eio.Event) -> None:
        session = conn.session
        assert session is not None
        try:
            req = sails.parse_virtual_request(event.name, event.args, event.ack_id)
        except sails.SailsParseError as exc:
            packet = sails.parse_error_reply(exc, event.ack_id)
            await self.send(conn, ["4" + eio.encode_sio(packet)])
            return
        reply = await self.route(conn, req)
        if req.ack_id is not None:
            await self.send(conn, [session.send_ack(req.ack_id, [reply])])
        if req.method == "POST" and req.url == "/kick":
            await self.send(conn, session.close_frames())
            conn.disconnected = eio.Disconnected("server namespace disconnect")
            await self.close(conn, 1000)
            conn.done.set()


async def serve_echo(
    server: EchoServer, *, task_status: trio.TaskStatus[EchoServer] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; ``task_status.started`` hands back the server with its port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server.port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(server)
        await trio.serve_listeners(server.handle, listeners, handler_nursery=nursery)
