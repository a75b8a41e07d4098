# An open WebSocket over an upgraded connection: the object ws route handlers use (receive,
# async for, send, close), reading (pull: whoever calls receive() reads the socket, so an echo
# costs one wake-up and one send), sending (one write per message, serialised, bounded by the
# send timeout), the limits (1009, 1007, 1002) and the closing handshake. Must not: parse HTTP,
# choose routes, or parse frames itself (gateway.ws.connection does; we only build outgoing data
# frames when no extension is active, byte for byte what wsproto would send).
#
# Theory of operation. States follow wsproto's: OPEN -> LOCAL_CLOSING (we sent Close: 1009,
# 1002, close()) or REMOTE_CLOSING (answered at once) -> CLOSED; `_finished` when the closing
# handshake completed or the connection was lost. Input that cannot be parsed fails the
# connection (our Close, no answer awaited: the parser is dead), but only once the messages
# received before it are taken, so that their answers go out first. If no task has read for a
# whole tick, the server's ticker (gateway.server.upgrade) starts a background reader (for
# handlers that only send), which hands the socket back as soon as receive() is called. Timers:
# the ticker pings after ping_interval_s without input and expires the socket (close code +
# cancelling the connection's scope) on pong or idle timeout; a send blocked past
# send_timeout_s is caught by the server's reaper through session.deadline. A TCP or Unix
# socket is read and written with os.read/os.write on its descriptor and trio's wait_readable/
# wait_writable (see _recv for why); the HTTP session still owns the stream and closes TCP.
from __future__ import annotations

import logging
import math
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import trio
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import Extension

from gateway.errors import WebSocketClosed
from gateway.ws.connection import ConnectionState, ServerWebSocket

if TYPE_CHECKING:
    from gateway.app.request import Request
    from gateway.settings import Settings

__all__ = ["WebSocket", "SocketHost", "Deadline"]

log = logging.getLogger("gateway.websocket")

_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")
_SPLIT_BYTES = 65536  # larger payloads go out as head + payload (two writes, no copy)
# Socket reads and writes that completed without waiting (so without a schedule point) in a
# row before one checkpoint: a peer that floods a handler that echoes, or a reader that keeps
# up with a handler that only sends, must not keep the other tasks from running.
_SPIN_LIMIT = 16


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


class Deadline(Protocol):
    """The upgraded connection's phase deadline and cancel scope (the HTTP session's): a send
    blocked past its deadline is caught by the server's reaper, which cancels the scope."""

    deadline: float

    @property
    def scope(self) -> trio.CancelScope: ...


class SocketHost(Protocol):
    """What a WebSocket needs of the server's WebSocket layer (gateway.server.upgrade)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def draining(self) -> bool: ...

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run a short helper task (ping, background read); False if not serving."""
        ...

    def closing_scope(self) -> AbstractContextManager[trio.CancelScope]:
        """The server's shielded scope for a close handshake, bounded by the drain deadline."""
        ...


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
        "request",
        "subprotocol",
        "close_code",
        "close_reason",
        "_stream",
        "_session",
        "_conn",
        "_fast",
        "_sock",
        "_spins",
        "_eager",
        "_failure",
        "_max",
        "_recv_size",
        "_send_timeout",
        "_inbox",
        "_inbox_bytes",
        "_parts",
        "_parts_bytes",
        "_pending",
        "_reading",
        "_bg",
        "_bg_stop",
        "_bg_done",
        "_sending",
        "_lot",
        "_finished",
        "_closed_ev",
        "_torn",
        "_reads",
        "_msgs",
        "_seen_reads",
        "_last_read",
        "_seen_msgs",
        "_last_active",
        "_ping_at",
        "_idle_reads",
        "_expired",
        "_manager",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        session: Deadline,
        request: Request,
        *,
        manager: SocketHost,
        extensions: list[Extension] | None = None,
        subprotocol: str | None = None,
        trailing: bytes = b"",
    ) -> None:
        s = manager.settings
        self.request = request
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.close_reason = ""
        self._stream = stream
        self._session = session
        self._max = s.websocket.max_message_bytes
        self._conn = ServerWebSocket(extensions, self._max)
        self._fast = not extensions
        # A TCP or Unix socket is read and written directly (see _recv); other streams (TLS,
        # in-memory) through their own methods.
        self._sock = stream.socket if type(stream) is trio.SocketStream else None
        self._spins = 0
        self._eager = True  # the first read may find the first frames already there
        self._failure: tuple[int, str] | None = None  # a parse failure behind queued messages
        self._recv_size = s.server.recv_buffer_bytes
        self._send_timeout = s.http.send_timeout_s
        self._inbox: list[Any] = []  # str | bytes, usually 0 or 1 of them
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
        now = trio.current_time()
        self._reads = self._msgs = self._seen_reads = self._seen_msgs = self._idle_reads = 0
        self._last_read = self._last_active = now
        self._ping_at: float | None = None
        self._expired: tuple[int, str] | None = None
        self._manager = manager

    # -- receiving ------------------------------------------------------------------------
    @property
    def shareable_frames(self) -> bool:
        """True when encode() depends on the message alone (no extension state), so one frame
        may be sent to many sockets (pub/sub pushes are encoded once)."""
        return self._fast

    @property
    def closed(self) -> bool:
        """True once no more messages can be sent (a Close was sent or received)."""
        return self._conn.state is not _OPEN

    def receive(self) -> Awaitable[str | bytes]:
        """The next whole message: str (text) or bytes (binary).

        Returns:
            (awaitable) The message; messages that arrived before a Close are still delivered,
            and so are those before input that cannot be parsed (the connection fails with
            1002/1007 when they have been taken, so that answers to them go out first).

        Raises:
            WebSocketClosed: the connection is closed (``code``/``reason`` say how).
            trio.BusyResourceError: another task of the handler is already in receive().
        """
        return self._receive(False)  # not async itself: one coroutine frame less per socket

    @property
    def buffered(self) -> bool:
        """True when a message is already received: ``receive()`` would not wait."""
        return bool(self._inbox)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self

    def __anext__(self) -> Awaitable[str | bytes]:
        return self._receive(True)

    async def _receive(self, iterating: bool) -> str | bytes:
        inbox = self._inbox
        while not inbox:
            if self._failure is not None:  # the messages before it are delivered: fail now
                await self._apply_failure()
            if self._conn.state is not _OPEN or self._finished:
                if iterating:
                    raise StopAsyncIteration
                raise WebSocketClosed(self.close_code or 1006, self.close_reason)
            if self._reading:
                if self._bg_done is None:
                    raise trio.BusyResourceError("another task is already receiving")
                await self._stop_background()
                continue
            self._reading = True
            try:
                await self._process(await self._recv())
            finally:
                self._reading = False
        message: str | bytes = inbox.pop(0)
        self._inbox_bytes -= len(message)
        return message

    async def _recv(self) -> bytes:
        """The next bytes from the peer; b"" at EOF or when the connection broke or closed."""
        data = self._pending
        if data:
            self._pending = b""
            return data
        sock = self._sock
        if sock is None:
            try:
                got = await self._stream.receive_some(self._recv_size)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
            return got if type(got) is bytes else bytes(got)
        # Directly on the socket: trio's SocketStream adds two scheduler round trips to every
        # message (a cancel-shielded checkpoint after each successful recv and send), which
        # cost more than the rest of an echo together. The read waits for the socket first
        # (a schedule point) unless the previous read filled the buffer: a peer that answers
        # our last message has not done so yet, and a read that fails costs a system call and
        # an exception. Reads that do not wait give a checkpoint every _SPIN_LIMIT operations.
        fd = sock.fileno()
        if fd < 0:  # the stream was closed
            return b""
        size = self._recv_size
        eager = self._eager
        spins = self._spins
        if eager:
            spins += 1
            if spins > _SPIN_LIMIT:
                spins = 0
                await trio.lowlevel.checkpoint()
        while True:
            if not eager:
                try:
                    await trio.lowlevel.wait_readable(fd)
                except trio.ClosedResourceError:  # another task closed the stream
                    return b""
                spins = 0
            try:
                data = os.read(fd, size)
            except BlockingIOError:
                eager = False
                continue
            except OSError:  # reset
                data = b""
            self._spins = spins
            self._eager = len(data) == size
            return data

    async def _read_once(self) -> None:
        await self._process(await self._recv())

    async def _process(self, data: bytes) -> None:
        self._reads += 1
        conn = self._conn
        if conn.state is _CLOSED:
            self._done()
            return
        for item in conn.receive(data):
            cls = item.__class__
            if cls is str or cls is bytes:  # a whole message
                if conn.state is _OPEN:
                    self._inbox.append(item)
                    self._inbox_bytes += len(item)
                    self._msgs += 1
            elif cls is TextMessage or cls is BytesMessage:  # a part of one
                if conn.state is _OPEN:
                    await self._on_data(item)
            elif cls is Ping:
                if conn.state is _OPEN:
                    await self._send_raw(conn.send(item.response()))
            elif cls is Pong:
                self._ping_at = None
            elif conn.state is _OPEN and self._inbox:
                # Input that cannot be parsed, after messages not yet taken: the connection
                # fails once they are (their answers go out before our Close).
                self._failure = (item.code, item.reason or "protocol error")
            else:
                await self._on_close(item)

    async def _apply_failure(self) -> None:
        failure = self._failure
        if failure is not None:
            self._failure = None
            await self._fail(*failure)
            self._done()

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
        else:  # the input could not be parsed: fail the connection (RFC 6455 7.1.7): our
            # Close goes out, then the TCP connection closes. The stream may be mid-frame (a
            # broken head, a control frame over 125 bytes, a malformed Close): nothing the peer
            # sends after it can be read reliably, so no answer is waited for.
            if state is _OPEN:
                await self._fail(event.code, event.reason or "protocol error")
            self._done()

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
        if type(message) is str:  # the usual one (every Socket.IO frame): no helper calls
            payload = message.encode()
            n = len(payload)
            if n < 126:
                return bytes((0x81, n)) + payload
            return _head(0x81, n) + payload
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
        if message.__class__ is str:
            op, payload = 0x81, message.encode()
        else:
            op, payload = _payload(message)
        n = len(payload)
        if n >= _SPLIT_BYTES:
            await self._send_raw(_head(op, n), payload)
            return
        frame = (bytes((op, n)) if n < 126 else _H16.pack(op, 126, n)) + payload
        sock = self._sock
        if sock is not None and not self._sending and self._spins < _SPIN_LIMIT:
            # the common case, without a coroutine more: the whole frame fits the socket
            self._spins += 1
            try:
                sent = os.write(sock.fileno(), frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                raise self._lost() from None
            if sent == len(frame):
                return
            if sent:  # a part went: the rest, waiting (and torn if cancelled meanwhile)
                self._sending = True
                try:
                    await self._write(sock.fileno(), frame[sent:])
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    raise self._lost() from None
                except BaseException:
                    self._torn = True
                    raise
                finally:
                    self._unlock()
                return
        await self._send_raw(frame)

    async def send_frame(self, frame: bytes) -> None:
        """Send bytes made by encode() (or several joined), in order with every other send.

        Raises:
            WebSocketClosed: the connection is closing or closed.
        """
        if self._conn.state is not _OPEN:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        await self._send_raw(frame)

    async def _send_raw(self, data: bytes | bytearray, more: bytes | None = None) -> None:
        sock = self._sock
        if sock is not None:
            spins = self._spins + 1
            if spins > _SPIN_LIMIT:  # see _recv
                spins = 0
                await trio.lowlevel.checkpoint()
            self._spins = spins
        if self._sending:
            lot = self._lot
            if lot is None:
                lot = self._lot = trio.lowlevel.ParkingLot()
            while self._sending:
                await lot.park()
        self._sending = True
        try:
            if sock is not None:
                fd = sock.fileno()
                await self._write(fd, data)
                if more is not None:
                    await self._write(fd, more)
            else:
                session = self._session
                saved = session.deadline
                session.deadline = trio.current_time() + self._send_timeout
                try:
                    await self._stream.send_all(data)
                    if more is not None:
                        await self._stream.send_all(more)
                finally:
                    session.deadline = saved
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._lost() from None
        except BaseException:
            self._torn = True  # cancelled mid-frame: the stream can carry nothing more
            raise
        finally:
            self._unlock()

    async def _write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        """All of ``data`` to the socket; while it is full, wait under the send deadline (the
        server's reaper closes a connection blocked past it).

        Raises:
            OSError: the connection broke (or the stream was closed: fd -1).
            trio.ClosedResourceError: another task closed the stream meanwhile.
        """
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        session = self._session
        saved = session.deadline
        session.deadline = trio.current_time() + self._send_timeout
        view = memoryview(data)[sent:]
        try:
            while view:
                await trio.lowlevel.wait_writable(fd)
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    pass
        finally:
            session.deadline = saved

    def _unlock(self) -> None:
        self._sending = False
        lot = self._lot
        if lot is not None and lot:
            lot.unpark()

    def _lost(self) -> WebSocketClosed:
        self._set_closed(1006, "connection lost")
        self._done()
        return WebSocketClosed(1006, "connection lost")

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
        timeout = self._manager.settings.websocket.pong_timeout_s
        with trio.move_on_after(timeout):
            if self._failure is not None:  # the peer's input failed first: its close code
                await self._apply_failure()
                return
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
            # nobody takes the messages in front of a failure: it need not wait for them
            await self._apply_failure()
            while not self._finished and not self._bg_stop and self._inbox_bytes <= self._max:
                with trio.CancelScope() as scope:
                    self._bg = scope
                    data = await self._recv()
                self._bg = None
                if scope.cancelled_caught:
                    break
                await self._process(data)
                await self._apply_failure()
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
        ws = self._manager.settings.websocket
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
        """Complete the close (shielded, bounded) whatever happened; used by the server.

        Bounded by websocket.pong_timeout_s and, while the server drains, by the drain's
        deadline: past it the close handshake is abandoned and the connection closed hard.
        """
        # Cancelled from outside (the server itself is being stopped, not drained): a Close is
        # still sent, but the peer's answer gets only a moment.
        stopping = (
            trio.current_effective_deadline() == -math.inf and not self._session.scope.cancel_called
        )
        with self._manager.closing_scope():
            if self._expired is not None:
                code, reason = self._expired
            elif self._manager.draining or stopping:
                code, reason = 1001, "server shutting down"
            try:
                await self._stop_background()
                if not self._torn:
                    with trio.move_on_after(0.25 if stopping else math.inf):
                        await self.close(code, reason)
            except Exception:
                log.exception("websocket %s: close failed", self.request.path)
        self._done()
