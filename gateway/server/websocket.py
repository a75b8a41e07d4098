# WebSockets over an upgraded HTTP connection: the WebSocket object handlers use, the Upgrade
# hand-over from the router (UpgradeSink.accept_websocket), and WebSocketManager (one ticker
# task for every socket's ping, pong and idle timers; the connection count; helper tasks).
# Must not: parse HTTP (the session did) or frames (wsproto does: we only build outgoing data
# frames ourselves when no extension is active, which is byte-for-byte what wsproto would send).
#
# Theory of operation. No task per socket besides the connection's own: whoever calls
# receive() reads the socket (pull), so an echo costs one wake-up and one send, as in a bare
# wsproto loop. If nobody has read for a whole tick the ticker starts a background reader (for
# handlers that only send), which hands the socket back as soon as receive() is called again.
# Timers: the ticker pings after ping_interval_s without input and expires the socket (close
# code + cancelling the connection's scope) on pong timeout, idle timeout or shutdown; a send
# that blocks past send_timeout_s is caught by the server's reaper through session.deadline.
# Closing: a Close is always answered, our Close is always followed by waiting (bounded) for
# the peer's, and the TCP connection is closed afterwards by the HTTP session.
from __future__ import annotations

import functools
import logging
import math
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from gateway.errors import ServiceUnavailable, WebSocketClosed
from gateway.ws import handshake

if TYPE_CHECKING:
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.server.http_session import HTTPSession
    from gateway.server.serve import Server

__all__ = ["WebSocket", "WebSocketManager", "UpgradeSink"]

log = logging.getLogger("gateway.websocket")

_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")
_SPLIT_BYTES = 65536  # larger payloads go out as head + payload (two writes, no copy)
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"retry-after: 1\r\ncontent-length: 30\r\nconnection: close\r\n\r\n"
         b"Too many WebSocket connections")
Handler = Callable[..., Awaitable[None]]


def _payload(message: str | bytes) -> tuple[int, bytes]:
    if isinstance(message, str):
        return 0x81, message.encode()
    if isinstance(message, (bytes, bytearray, memoryview)):
        return 0x82, bytes(message)
    raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")


def _head(op: int, n: int) -> bytes:
    # An unmasked server frame head, FIN set, no RSV bits: what wsproto writes without extensions.
    if n < 126:
        return bytes((op, n))
    if n < 65536:
        return _H16.pack(op, 126, n)
    return _H64.pack(op, 127, n)


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


class WebSocket:
    """One open WebSocket, as a route handler sees it: ``async def handler(ws, req)``.

    ``receive()`` / ``async for message in ws`` give whole messages (str for text, bytes for
    binary); ``send()`` waits for the socket (backpressure); ``close()`` runs the closing
    handshake. After the peer closed, ``close_code`` / ``close_reason`` say how.

    Attributes:
        request: the Upgrade request (params, query, cookies, headers).
        subprotocol: the negotiated subprotocol, or None.
        close_code: None while open; then the close code (the peer's, or ours if we closed;
            1006 when the connection was lost without a Close frame).
        close_reason: the close reason text ("" while open).
    """

    __slots__ = (
        "request", "subprotocol", "close_code", "close_reason", "_stream", "_session",
        "_conn", "_fast", "_max", "_recv_size", "_send_timeout", "_inbox", "_inbox_bytes",
        "_parts", "_parts_bytes", "_pending", "_reading", "_bg", "_bg_stop", "_bg_done",
        "_sending", "_lot", "_finished", "_closed_ev", "_torn", "_resync", "_reads", "_msgs",
        "_seen_reads", "_last_read", "_seen_msgs", "_last_active", "_ping_at", "_idle_reads",
        "_expired", "_manager",
    )

    def __init__(self, stream: trio.abc.Stream, session: HTTPSession, request: Request, *,
                 manager: WebSocketManager, extensions: list[Extension] | None = None,
                 subprotocol: str | None = None, trailing: bytes = b"") -> None:
        s = manager.server.settings
        self.request = request
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.close_reason = ""
        self._stream = stream
        self._session = session
        self._conn = Connection(ConnectionType.SERVER, extensions)
        self._fast = not extensions
        self._max = s.websocket.max_message_bytes
        self._recv_size = s.server.recv_buffer_bytes
        self._send_timeout = s.http.send_timeout_s
        self._inbox: deque[Any] = deque()  # str | bytes
        self._inbox_bytes = 0
        self._parts: list[Any] = []
        self._parts_bytes = 0
        self._pending = trailing
        self._reading = False
        self._bg: trio.CancelScope | None = None
        self._bg_stop = False
        self._bg_done: trio.Event | None = None
        self._sending = False
        self._lot: trio.lowlevel.ParkingLot | None = None
        self._finished = False
        self._closed_ev: trio.Event | None = None
        self._torn = False
        self._resync: FrameProtocol | None = None
        now = trio.current_time()
        self._reads = self._msgs = self._seen_reads = self._seen_msgs = self._idle_reads = 0
        self._last_read = self._last_active = now
        self._ping_at: float | None = None
        self._expired: tuple[int, str] | None = None
        self._manager = manager

    # -- receiving ------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once no more messages can be sent (a Close was sent or received)."""
        return self._conn.state is not _OPEN

    async def receive(self) -> str | bytes:
        """The next whole message: str (text) or bytes (binary).

        Returns:
            The message; messages that arrived before a Close are still delivered.

        Raises:
            WebSocketClosed: the connection is closed (``code``/``reason`` say how).
            trio.BusyResourceError: another task of the handler is already in receive().
        """
        inbox = self._inbox
        while not inbox:
            if self._conn.state is not _OPEN or self._finished:
                raise WebSocketClosed(self.close_code or 1006, self.close_reason)
            if self._reading:
                if self._bg_done is None:
                    raise trio.BusyResourceError("another task is already receiving")
                await self._stop_background()
                continue
            self._reading = True
            try:
                await self._read_once()
            finally:
                self._reading = False
        message: str | bytes = inbox.popleft()
        self._inbox_bytes -= len(message)
        return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def _recv(self) -> bytes:
        data = self._pending
        if data:
            self._pending = b""
            return data
        try:
            got = await self._stream.receive_some(self._recv_size)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""
        return got if type(got) is bytes else bytes(got)

    async def _read_once(self) -> None:
        await self._process(await self._recv())

    async def _process(self, data: bytes) -> None:
        self._reads += 1
        conn = self._conn
        if self._resync is not None:
            self._resync_feed(data)
            return
        if conn.state is _CLOSED:
            self._done()
            return
        conn.receive_data(data or None)
        for event in conn.events():
            cls = event.__class__
            if cls is TextMessage or cls is BytesMessage:
                if conn.state is _OPEN:
                    await self._on_data(event)  # type: ignore[arg-type]
            elif cls is Ping:
                if conn.state is _OPEN:
                    await self._send_raw(conn.send(event.response()))  # type: ignore[attr-defined]
            elif cls is Pong:
                self._ping_at = None
            else:
                await self._on_close(event)  # type: ignore[arg-type]

    async def _on_data(self, event: TextMessage | BytesMessage) -> None:
        data = event.data
        size = len(data)
        total = self._parts_bytes + size
        if event.__class__ is TextMessage and total * 4 > self._max:
            size = len(data.encode())  # type: ignore[union-attr]
            total = self._parts_bytes + size
        if total > self._max:
            self._parts = []
            self._parts_bytes = 0
            await self._fail(1009, f"message over {self._max} bytes")
            return
        if event.message_finished:
            parts = self._parts
            if parts:
                parts.append(data)
                data = ("" if event.__class__ is TextMessage else b"").join(parts)
                self._parts = []
            self._parts_bytes = 0
            self._inbox.append(data)
            self._inbox_bytes += len(data)
            self._msgs += 1
        else:
            self._parts.append(data)
            self._parts_bytes = total

    async def _on_close(self, event: CloseConnection) -> None:
        conn = self._conn
        state = conn.state
        if state is _REMOTE_CLOSING:  # the peer started the closing handshake: answer it
            self._set_closed(event.code, event.reason or "")
            try:
                await self._send_raw(conn.send(event.response()))
            except WebSocketClosed:
                pass
            self._done()
        elif state is _CLOSED:  # the answer to our Close, or the connection was lost (1006)
            self._set_closed(event.code, event.reason or "")
            self._done()
        else:  # wsproto could not parse the input (it leaves the state alone): fail it
            if state is _OPEN:
                await self._fail(event.code, event.reason or "protocol error")
            self._resync = FrameProtocol(False, [])

    def _resync_feed(self, data: bytes) -> None:
        # After a parse failure wsproto's parser is dead; the peer's answer to our Close comes
        # in a later read, so a fresh parser finds it (garbage before it: try the next read).
        if not data:
            self._set_closed(1006, "connection lost")
            self._done()
            return
        parser = self._resync
        assert parser is not None
        parser.receive_bytes(data)
        try:
            for frame in parser.received_frames():
                if frame.opcode is Opcode.CLOSE:
                    self._done()
                    return
        except ParseFailed:
            self._resync = FrameProtocol(False, [])

    def _set_closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = int(code)
            self.close_reason = reason

    def _done(self) -> None:
        self._finished = True
        ev = self._closed_ev
        if ev is not None:
            ev.set()

    async def _fail(self, code: int, reason: str) -> None:
        """Start the closing handshake because of the peer (1002, 1007, 1009)."""
        if self._conn.state is _OPEN:
            log.info("websocket %s: closing %d: %s", self.request.path, code, reason)
            self._set_closed(code, reason)
            try:
                await self._send_raw(self._conn.send(CloseConnection(code, reason[:120])))
            except WebSocketClosed:
                self._done()

    # -- sending ------------------------------------------------------------------------------
    def encode(self, message: str | bytes) -> bytes:
        """The wire frame for one whole message (no I/O; see send_frame()).

        Raises:
            TypeError: not str or bytes.
        """
        if not self._fast:
            event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
            return bytes(self._conn.send(event))
        op, payload = _payload(message)
        return _head(op, len(payload)) + payload

    async def send(self, message: str | bytes) -> None:
        """Send one message (str: text frame, bytes: binary frame), waiting for the socket.

        A peer that does not read makes this wait; past http.send_timeout_s the connection is
        closed (memory stays bounded: nothing is queued beyond the kernel's socket buffer).

        Raises:
            WebSocketClosed: the connection is closing or closed.
            TypeError: not str or bytes.
        """
        if self._conn.state is not _OPEN:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        self._msgs += 1
        if not self._fast:
            await self._send_raw(self.encode(message))
            return
        op, payload = _payload(message)
        n = len(payload)
        if n < _SPLIT_BYTES:
            await self._send_raw(_head(op, n) + payload)
        else:
            await self._send_raw(_head(op, n), payload)

    async def send_frame(self, frame: bytes) -> None:
        """Send bytes made by encode() (or several joined), in order with every other send.

        Raises:
            WebSocketClosed: the connection is closing or closed.
        """
        if self._conn.state is not _OPEN:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        await self._send_raw(frame)

    async def _send_raw(self, data: bytes | bytearray, more: bytes | None = None) -> None:
        if self._sending:
            lot = self._lot
            if lot is None:
                lot = self._lot = trio.lowlevel.ParkingLot()
            while self._sending:
                await lot.park()
        self._sending = True
        session = self._session
        saved = session.deadline
        session.deadline = trio.current_time() + self._send_timeout
        try:
            await self._stream.send_all(data)
            if more is not None:
                await self._stream.send_all(more)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._set_closed(1006, "connection lost")
            self._done()
            raise WebSocketClosed(1006, "connection lost") from None
        except BaseException:
            self._torn = True  # cancelled mid-frame: the stream can carry nothing more
            raise
        finally:
            session.deadline = saved
            self._sending = False
            lot = self._lot
            if lot is not None and lot:
                lot.unpark()

    # -- closing ------------------------------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: send a Close frame (if none was sent) and wait for the peer's answer.

        The wait is bounded by websocket.pong_timeout_s; messages arriving meanwhile are
        dropped. Safe to call more than once.

        Args:
            code: 1000 (normal), 1001, 1003, 1007-1014 or an application code 3000-4999.
            reason: a short text (cut to 120 bytes).

        Raises:
            ValueError: a code that may not be sent.
        """
        if not _valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        conn = self._conn
        timeout = self._manager.server.settings.websocket.pong_timeout_s
        with trio.move_on_after(timeout):
            if conn.state is _OPEN and not self._torn:
                self._set_closed(code, reason)
                try:
                    await self._send_raw(conn.send(CloseConnection(code, reason[:120])))
                except WebSocketClosed:
                    return
            await self._wait_closed()

    async def _wait_closed(self) -> None:
        while not self._finished and not self._torn:
            if self._reading:
                ev = self._closed_ev
                if ev is None:
                    ev = self._closed_ev = trio.Event()
                await ev.wait()
                return
            self._reading = True
            try:
                await self._read_once()
            finally:
                self._reading = False

    def expire(self, code: int, reason: str) -> None:
        """End the connection from outside (timers, shutdown, slow consumer): the connection's
        scope is cancelled and the session closes with ``code`` on its way out."""
        if self._expired is None:
            self._expired = (code, reason)
            log.info("websocket %s: %s", self.request.path, reason)
        self._session.scope.cancel()

    # -- the background reader and the timers (driven by WebSocketManager) ----------------------
    async def _background(self) -> None:
        if self._reading or self._finished:
            return
        self._reading = True
        self._bg_stop = False
        done = self._bg_done = trio.Event()
        try:
            while not self._finished and not self._bg_stop and self._inbox_bytes <= self._max:
                with trio.CancelScope() as scope:
                    self._bg = scope
                    data = await self._recv()
                self._bg = None
                if scope.cancelled_caught:
                    break
                await self._process(data)
        except WebSocketClosed:
            pass
        except Exception:
            log.exception("websocket %s: background reader failed", self.request.path)
        finally:
            self._bg = None
            self._bg_done = None
            self._reading = False
            done.set()

    async def _stop_background(self) -> None:
        done = self._bg_done
        if done is None:
            return
        self._bg_stop = True
        if self._bg is not None:
            self._bg.cancel()
        await done.wait()

    async def _send_ping(self) -> None:
        try:
            if self._conn.state is _OPEN:
                await self._send_raw(self._conn.send(Ping(b"")))
        except WebSocketClosed:
            pass

    def tick(self, now: float) -> None:
        """One ticker pass: idle and pong timeouts, a ping when the peer has been quiet,
        and a background reader when no task has read since the previous tick."""
        if self._finished or self._conn.state is not _OPEN:
            return
        ws = self._manager.server.settings.websocket
        reads = self._reads
        if reads != self._seen_reads:  # any input proves the peer alive
            self._seen_reads = reads
            self._last_read = now
            self._ping_at = None
        msgs = self._msgs
        if msgs != self._seen_msgs:
            self._seen_msgs = msgs
            self._last_active = now
        elif now - self._last_active >= ws.idle_timeout_s:
            self.expire(1001, "idle timeout")
            return
        if self._ping_at is not None:
            if now - self._ping_at >= ws.pong_timeout_s:
                self.expire(1011, "ping timeout")
                return
        elif now - self._last_read >= ws.ping_interval_s:
            self._ping_at = now
            self._manager.spawn(self._send_ping)
        if not self._reading and reads == self._idle_reads and self._inbox_bytes <= self._max:
            self._manager.spawn(self._background)
        self._idle_reads = reads

    async def finish(self, code: int = 1000, reason: str = "") -> None:
        """Complete the close (shielded, bounded) whatever happened; used by the server."""
        with trio.CancelScope(shield=True):
            if self._expired is not None:
                code, reason = self._expired
            elif self._manager.server.draining:
                code, reason = 1001, "server shutting down"
            try:
                await self._stop_background()
                if not self._torn:
                    await self.close(code, reason)
            except Exception:
                log.exception("websocket %s: close failed", self.request.path)
            self._done()


class UpgradeSink:
    """The ResponseSink of a WebSocket Upgrade request.

    HTTP replies (401, 403, 404, 503, ...) go to the HTTP session unchanged;
    ``accept_websocket`` is the capability a ws route uses (called by the router).
    """

    __slots__ = ("_session", "_manager", "head_only")

    def __init__(self, session: HTTPSession, manager: WebSocketManager) -> None:
        self._session = session
        self._manager = manager
        self.head_only = session.head_only

    async def send_response(self, status: int, headers: list[tuple[str, str]],
                            body: bytes | None, end: bool) -> None:
        await self._session.send_response(status, headers, body, end)

    async def send_data(self, data: bytes) -> None:
        await self._session.send_data(data)

    async def end(self) -> None:
        await self._session.end()

    async def send_file(self, path: str, size: int) -> None:
        await self._session.send_file(path, size)

    async def accept_websocket(self, req: Request, res: Response, handler: Handler,
                               options: dict[str, Any]) -> None:
        """Check the handshake and take the connection over once the request is done.

        Raises:
            HTTPError: 400/426 bad handshake, 403 origin, 503 too many WebSockets.
        """
        self._manager.accept(self._session, req, res, handler, options)


class Ticking(Protocol):
    def tick(self, now: float) -> None: ...

    def expire(self, code: int, reason: str) -> None: ...


class WebSocketManager:
    """Every WebSocket of a Server: upgrades, the connection count and the one timer task.

    Args:
        server: the Server (settings, app, ``ws_active`` counter, draining flag).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.active: set[Ticking] = set()
        self._nursery: trio.Nursery | None = None

    # -- upgrades -----------------------------------------------------------------------------
    async def route(self, server: Server, session: HTTPSession, req: Request,
                    res: Response) -> None:
        """Server.upgrade_router: /socket.io goes to Engine.IO, WebSocket upgrades get an
        UpgradeSink so that the router's ws routes can accept them (after middleware)."""
        if req.path in ("/socket.io/", "/socket.io"):
            from gateway.server import sails_session

            await sails_session.accept(self, session, req, res)
        elif "websocket" in req.headers.get("upgrade", "").lower():
            res._sink = UpgradeSink(session, self)

    def check(self, session: HTTPSession, req: Request) -> handshake.Offer:
        """The checks before any 101: handshake headers, Origin, connection count.

        Raises:
            HTTPError: 400/426, 403, 503.
        """
        ws = self.server.settings.websocket
        offer = handshake.check_upgrade(req.method, req.http_version, req.headers)
        handshake.check_origin(req.headers.get("origin"), req.headers.get("host"),
                               ws.allowed_origins)
        if self.server.ws_active >= ws.max_connections:
            raise ServiceUnavailable(None, "Too many WebSocket connections",
                                     {"Retry-After": "1"})
        return offer

    def accept(self, session: HTTPSession, req: Request, res: Response, handler: Handler,
               options: dict[str, Any]) -> None:
        """Accept a ws route's handshake: the 101 and the handler run when the request ends.

        Raises:
            HTTPError: see check().
        """
        offer = self.check(session, req)
        subprotocol = handshake.choose_subprotocol(offer.subprotocols, options.get("subprotocols"))
        self.take_over(session, req, res, offer, subprotocol,
                       functools.partial(self._run_route, handler))

    def take_over(self, session: HTTPSession, req: Request, res: Response,
                  offer: handshake.Offer, subprotocol: str | None,
                  run: Callable[[WebSocket], Awaitable[None]]) -> None:
        """Arrange for ``run(ws)`` to serve the connection once the HTTP exchange is over."""
        exts: list[Extension] = []
        ext_value = None
        if self.server.settings.websocket.permessage_deflate:
            exts, ext_value = handshake.negotiate_deflate(offer.extensions)
        head = handshake.accept_response(offer.key, subprotocol, ext_value)
        session.upgrade_handler = functools.partial(
            self._serve, session, req, head, exts, subprotocol, run)
        res.status_code = 101
        res.headers_sent = True
        res.finished = True

    async def _serve(self, session: HTTPSession, req: Request, head: bytes,
                     exts: list[Extension], subprotocol: str | None,
                     run: Callable[[WebSocket], Awaitable[None]]) -> None:
        server = self.server
        stream = session.stream
        if server.ws_active >= server.settings.websocket.max_connections:
            with trio.move_on_after(1.0):
                await stream.send_all(_BUSY)  # lost a race with another handshake
            return
        trailing = bytes(session.conn.h11.trailing_data[0])
        session.deadline = trio.current_time() + server.settings.http.send_timeout_s
        try:
            await stream.send_all(head)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            session.deadline = math.inf
        ws = WebSocket(stream, session, req, manager=self, extensions=exts,
                       subprotocol=subprotocol, trailing=trailing)
        server.ws_active += 1
        try:
            await run(ws)
        finally:
            server.ws_active -= 1

    async def _run_route(self, handler: Handler, ws: WebSocket) -> None:
        code, reason = 1000, ""
        self.active.add(ws)
        try:
            await handler(ws, ws.request)
        except WebSocketClosed:
            pass
        except Exception:
            log.exception("websocket %s: unhandled error in handler", ws.request.path)
            code, reason = 1011, "internal error"
        finally:
            self.active.discard(ws)
            await ws.finish(code, reason)

    # -- the timer task -----------------------------------------------------------------------
    def interval(self) -> float:
        ws = self.server.settings.websocket
        return min(1.0, max(0.02, min(ws.ping_interval_s, ws.pong_timeout_s,
                                      ws.idle_timeout_s) / 4))

    async def run(self) -> None:
        """Tick every socket a few times per timeout period until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                while True:
                    await trio.sleep(self.interval())
                    now = trio.current_time()
                    draining = self.server.draining
                    for conn in list(self.active):
                        if draining:
                            conn.expire(1001, "server shutting down")
                        else:
                            conn.tick(now)
            finally:
                self._nursery = None

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run a short helper task (ping, background read, flush); False if not serving."""
        nursery = self._nursery
        if nursery is None:
            return False
        nursery.start_soon(fn)
        return True
