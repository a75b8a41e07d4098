# One HTTP/1.1 connection: one trio task that reads heads, runs the app, writes responses.
# Owns: the connection's phase deadlines (a plain float per phase: idle keep-alive, request head,
# sending; the server's reaper cancels the connection's one scope when it passes, so the hot path
# never re-arms a trio deadline), body reads with their timeout and minimum rate, 100-continue,
# draining an unread body, keep-alive/close decisions; reading and writing a plain TCP/Unix
# socket directly (see _receive), any other stream (TLS) through its trio methods.
# Must not: parse HTTP itself (gateway.http.connection does) or know routes (gateway.app does).
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from gateway.app.request import Request
from gateway.body.stream import EmptySource
from gateway.errors import (
    BodyError,
    BodyTimeout,
    ClientDisconnected,
    HandlerTimeout,
    RemoteProtocolError,
)
from gateway.http.connection import Cycle, ServerConnection
from gateway.http.connection import Request as Head
from gateway.http.dates import http_date
from gateway.http.events import NEED_DATA, Data, EndOfMessage
from gateway.http.parser import ParserUnavailable

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Protocol

    from gateway.app.contracts import ConnectionInfo, ResponseSink
    from gateway.app.exchange import Endpoint, Exchange
    from gateway.http.connection import HTTPLimits
    from gateway.settings import Settings

    # for the type checker only, as gateway.app.contracts: no class to build at start-up
    class SessionHost(Protocol):
        """What a session needs of its server (gateway.server.serve.Server)."""

        @property
        def settings(self) -> Settings: ...

        @property
        def http_limits(self) -> HTTPLimits: ...

        @property
        def exchange(self) -> Exchange: ...

        @property
        def stats(self) -> dict[str, int]: ...

        @property
        def draining(self) -> bool: ...

        def closing_scope(self) -> AbstractContextManager[trio.CancelScope]:
            """A shielded scope for last words, bounded by the drain's deadline."""
            ...

        def upgrade_route(
            self, session: HTTPSession, req: Request
        ) -> tuple[ResponseSink, Endpoint | None]:
            """The sink and endpoint of an Upgrade or /socket.io request."""
            ...


__all__ = ["HTTPSession"]

log = logging.getLogger("gateway.http")
_INF = math.inf
# Socket reads and writes that completed without waiting (so without a schedule point) in a row
# before one checkpoint: a client that uploads as fast as the handler reads, or a handler that
# streams into a socket that never fills, must not keep the other connections from running.
_SPIN_LIMIT = 16
# Heads in a row that were not there when looked for after the between-requests checkpoint:
# from this many on, the client is taken to answer only after the server has gone back to
# waiting (a LAN client, a person, a device polling), and the checkpoint is skipped: the wait
# for its next head is the schedule point, made before any read (a read of an empty socket costs
# an exception). Every _PROBE_EVERY-th request looks after a checkpoint again, and a head found
# there ends the mode. Under wrk's 50 connections 0.8-4% of heads are not there after the
# checkpoint (bench/head_waits.py), so two in a row on one connection are rare.
_LATE_HEADS = 2
_PROBE_EVERY = 8


class _DateCache:
    """The Date header, formatted once per second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = http_date(now)
        return self.value


_DATE = _DateCache()


class HTTPSession:
    """Serve one connection until it closes, times out, or the server drains.

    Args:
        server: the server (settings, the exchange, statistics, upgrades).
        stream: the connected byte stream (TCP, TLS or Unix).
        info: peer address, transport scheme and privilege of the connection.
    """

    carries_values = False  # a ResponseSink of bytes

    __slots__ = (
        "server",
        "stream",
        "info",
        "conn",
        "cycle",
        "scope",
        "phase",
        "recv_size",
        "http",
        "requests",
        "close_after",
        "_body_start",
        "head_only",
        "req",
        "upgrade_handler",
        "_status",
        "_started",
        "deadline",
        "_linger",
        "_sock",
        "_spins",
        "_waits",
        "_late",
        "_now",
    )

    def __init__(self, server: SessionHost, stream: trio.abc.Stream, info: ConnectionInfo) -> None:
        self.server = server
        self.stream = stream
        self.info = info
        self.http = server.settings.http
        self.conn = ServerConnection(server.http_limits)
        # framing and keep-alive of the current request/response (the sans-IO layer decides)
        self.cycle = Cycle(self.conn, self.http.max_drain_bytes)
        self.scope = trio.CancelScope()
        self.phase = "idle"
        self.recv_size = server.settings.server.recv_buffer_bytes
        self.requests = 0
        self.close_after = False
        self._body_start = 0.0
        self.head_only = False
        self.req: Request | None = None
        self.upgrade_handler: Callable[..., Any] | None = None
        self._status = 0
        self._started = 0.0
        # the run's clock, read directly (trio.current_time() is three calls deep)
        self._now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self.deadline = self._now() + self.http.head_timeout_s
        self._linger = False
        # a plain TCP/Unix socket is read and written directly (see _receive); None for TLS
        self._sock = stream.socket if type(stream) is trio.SocketStream else None
        self._spins = 0
        self._waits = 0  # reads of the plain socket that waited for it (heads and bodies)
        self._late = 0  # heads in a row not there after the checkpoint (see _LATE_HEADS)

    # -- the connection loop -----------------------------------------------------------------
    async def run(self) -> None:
        conn = self.conn
        http = self.http
        recv_size = self.recv_size
        sock = self._sock
        wait_first = False  # a late client's head: waited for, not read first (_LATE_HEADS)
        try:
            with self.scope:
                while True:
                    # the next head (inline: a coroutine less per request)
                    waits = self._waits
                    event = conn.next_event()
                    while event is NEED_DATA:
                        try:
                            if wait_first:  # a read now would fail (an exception): wait first
                                wait_first = False
                                assert sock is not None  # only a plain socket's waits count
                                data = await self._read_when_ready(sock, recv_size)
                            else:
                                data = await self._receive(recv_size)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            return  # gone between requests, or mid-head: nobody to answer
                        if self.phase == "idle" and data:
                            # the first byte of a head starts its deadline (slowloris: the
                            # whole head)
                            self.phase = "head"
                            deadline = self._now() + http.head_timeout_s
                            if deadline < self.deadline:
                                self.deadline = deadline
                        conn.receive_data(data)
                        del data  # the connection keeps what it needs; this frame lives on
                        event = conn.next_event()
                    if type(event) is not Head:
                        return  # the peer closed between requests
                    if self._waits == waits:
                        self._late = 0
                    else:
                        self._late += 1
                    self.requests += 1
                    await self._serve_one(event)
                    if self.upgrade_handler is not None:
                        self.deadline = _INF
                        del event, conn  # the HTTP state must not live as long as the socket
                        await self.upgrade_handler()
                        return
                    if not self.cycle.reusable(self.close_after) or self.server.draining:
                        return
                    conn.start_next_cycle()
                    # an idle keep-alive connection holds no request (nor its head event)
                    self.req = event = None
                    self.phase = "idle"
                    self.deadline = self._now() + http.idle_timeout_s
                    if self._late < _LATE_HEADS or not self.requests % _PROBE_EVERY:
                        # the one schedule point of a request served without waiting: the other
                        # connections run, and the client's next request has time to arrive
                        wait_first = False
                        self._spins = 0
                        await trio.lowlevel.checkpoint()
                    else:
                        # a late client: the wait for its head is the schedule point (and no
                        # read is tried before it: it would fail). A head already buffered
                        # (pipelined) needs no wait: the next write makes the checkpoint it owes
                        # (_spun).
                        wait_first = True
                        self._spins = _SPIN_LIMIT
            if self.scope.cancelled_caught and self.phase == "head":
                await self._reply_error(408, "Request timeout: the request head took too long")
        except RemoteProtocolError as exc:  # the peer's fault: a 4xx; ours (Local) is logged below
            await self._reply_error(exc.status_hint, exc.message)
        except (ClientDisconnected, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except HandlerTimeout:
            pass  # after the response head: the body stays incomplete (logged where it passed)
        except ParserUnavailable as exc:
            # the forced HTTP parser, imported at the first head not read without it, is
            # broken (gateway.http.parser.load): ours, not the peer's; said once per request
            log.error("%s: %s", self.info.peer_text, exc)
            await self._reply_error(
                500, "Internal Server Error: the HTTP parser cannot be loaded", peer_fault=False
            )
        except Exception:
            # e.g. a handler failing after its response head went out (the App re-raises: there
            # is no reply left to give). Abort this connection only; never the server.
            log.exception("%s: connection aborted", self.info.peer_text)
        finally:
            await self._close()

    async def _receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` from the peer (b"" at its end of stream), waiting for them.

        A plain socket is read directly: trio's SocketStream adds a schedule point to every
        successful read and write (two scheduler round trips per request, more than the rest of
        the loop's own cost), where one per request is enough (the run loop's, between
        requests, or for a late client the wait for its head: see _LATE_HEADS). The read is
        tried first and waits only when nothing is there; reads and writes that do not wait
        give a checkpoint every _SPIN_LIMIT of them.

        Raises:
            trio.BrokenResourceError: the connection broke (reset).
            trio.ClosedResourceError: the stream was closed (by another task).
        """
        sock = self._sock
        if sock is None:
            got = await self.stream.receive_some(max_bytes)
            return got if type(got) is bytes else bytes(got)
        data = self._read_now(sock, max_bytes)
        if data is None:
            return await self._read_when_ready(sock, max_bytes)
        if self._spun():
            await trio.lowlevel.checkpoint()
        return data

    async def _read_when_ready(self, sock: trio.socket.SocketType, max_bytes: int) -> bytes:
        """Wait until the socket has bytes (or its end), then read them (a schedule point).

        Raises:
            trio.BrokenResourceError, trio.ClosedResourceError: as _receive.
        """
        self._waits += 1
        if sock.fileno() < 0:  # closed meanwhile (trio would raise ValueError for fd -1)
            raise trio.ClosedResourceError("the connection was closed")
        while True:
            await trio.lowlevel.wait_readable(sock)
            self._spins = 0
            data = self._read_now(sock, max_bytes)
            if data is not None:
                return data

    def _read_now(self, sock: trio.socket.SocketType, max_bytes: int) -> bytes | None:
        """What the socket holds now (b"" at end of stream), or None when it holds nothing.

        Raises:
            trio.BrokenResourceError, trio.ClosedResourceError: as _receive.
        """
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the connection was closed")
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise trio.BrokenResourceError(f"connection broke: {exc}") from None

    def _spun(self) -> bool:
        """Count a read or write that did not wait: True every _SPIN_LIMIT-th, when the caller
        owes the other tasks a checkpoint (a plain method: this is twice per request)."""
        spins = self._spins + 1
        if spins > _SPIN_LIMIT:
            self._spins = 0
            return True
        self._spins = spins
        return False

    async def _serve_one(self, event: Head) -> None:
        server = self.server
        self.phase = "handler"
        started = self._started = self._now()
        self.deadline = _INF
        # split_target's result, checked with the head (RFC 9112 3.2.2: an absolute-form
        # target's authority is the host)
        url, path, query, host = self.conn.target
        method = event.method.decode("ascii")
        cycle = self.cycle
        cycle.begin(event)  # framing, keep-alive, Authorization, Upgrade: one pass
        has_body = cycle.has_body
        if not has_body:
            self.conn.next_event()  # the EndOfMessage ready for a bodiless request
        self.head_only = method == "HEAD"
        exchange = server.exchange
        info = self.info
        auth = cycle.authorization
        req = self.req = exchange.request(
            info,
            method,
            url,
            path,
            query,
            event.headers,
            self if has_body else _EMPTY,
            event.http_version.decode("ascii"),
            None if auth is None else auth.decode("latin-1"),
            host,
            cycle.ws_upgrade and method == "GET",
        )
        self._status = 0
        if self.requests >= self.http.max_requests_per_connection or server.draining:
            self.close_after = True
        if cycle.upgrade or path.startswith("/socket.io"):
            sink, endpoint = server.upgrade_route(self, req)
            await exchange.run(info, req, sink, endpoint, started)
        else:
            await exchange.run(info, req, self, None, started)
        if self.upgrade_handler is None and not cycle.body_done:
            if self.close_after or not cycle.keep_alive:
                # closing anyway: don't wait for a body (a client waiting for 100-continue never
                # sends it), but linger so unread bytes don't reset the connection under our reply
                self._linger = True
            else:
                await self._drain()

    def release_http_state(self) -> None:
        """Drop the HTTP parser and writer after a protocol switch (about 1 KiB per WebSocket).

        Only the stream, scope, deadline and info stay in use for the upgraded connection.
        """
        del self.conn, self.cycle
        self.req = None

    # -- BodySource ---------------------------------------------------------------------------
    def expected_length(self) -> int | None:
        """The current request's Content-Length (None for chunked), read once with its head."""
        return self.cycle.length

    async def receive_chunk(self) -> bytes | None:
        """The next body chunk (None at the end); the BodySource of gateway.body.stream.

        Content-Length bodies: once the connection has handed out what it buffered with the
        head, the rest is read straight from the stream (Cycle.go_direct). Chunked bodies go
        through the connection's chunked reader.

        Raises:
            BodyTimeout: 408, no bytes within body_timeout_s, or below min_body_rate_bytes_s.
            ClientDisconnected: the peer closed or reset the connection mid-body.
            BodyError: 400, malformed chunked encoding (the message says what).
        """
        cycle = self.cycle
        if cycle.body_done:
            return None
        if not cycle.reading:
            self._body_start = self._now()
            if cycle.start_body():
                await self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if cycle.direct:
            return await self._receive_direct()
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._body_failed()
                raise BodyError(exc.status_hint, f"Malformed request body: {exc.message}") from None
            if type(event) is Data:
                cycle.body_received(len(event.data))
                return bytes(event.data)
            if type(event) is EndOfMessage:
                cycle.body_ended()
                return None
            if event is NEED_DATA:
                if cycle.go_direct():
                    return await self._receive_direct()
                conn.receive_data(await self._receive_body_bytes(self.recv_size))
                continue
            cycle.body_ended()
            raise ClientDisconnected()

    async def _receive_direct(self) -> bytes | None:
        cycle = self.cycle
        left = cycle.body_left() or 0
        if left <= 0:
            cycle.body_ended()
            return None
        data = await self._receive_body_bytes(min(self.recv_size, left))
        cycle.body_received(len(data))
        return data

    async def _receive_body_bytes(self, max_bytes: int) -> bytes:
        http = self.http
        now = self._now()
        elapsed = now - self._body_start
        # minimum average rate, judged once the body had a full read timeout to get going
        if (
            elapsed > http.body_timeout_s
            and self.cycle.body_bytes < http.min_body_rate_bytes_s * elapsed
        ):
            self._body_failed()
            raise BodyTimeout(None, "Request timeout: body arriving below the minimum rate")
        try:
            sock = self._sock
            # Bytes already there need no timeout scope (entering one costs more than the rest
            # of a 64 KiB read; a busy upload skips it): a plain socket is tried first
            data = None if sock is None else self._read_now(sock, max_bytes)
            if data is not None:
                if self._spun():
                    await trio.lowlevel.checkpoint()
            else:
                with trio.move_on_at(now + http.body_timeout_s) as cs:
                    data = await (
                        self._receive(max_bytes)
                        if sock is None
                        else self._read_when_ready(sock, max_bytes)  # (tried just above)
                    )
                if cs.cancelled_caught:
                    self._body_failed()
                    raise BodyTimeout(
                        None, f"Request timeout: no body data within {http.body_timeout_s:g} s"
                    )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._body_failed()
            raise ClientDisconnected() from None
        if not data:
            self._body_failed()
            raise ClientDisconnected()
        return data

    def _body_failed(self) -> None:
        self.cycle.body_ended()
        self.close_after = True

    async def _drain(self) -> None:
        """Read and drop what the handler left of the body, up to max_drain_bytes."""
        limit = self.http.max_drain_bytes
        drained = 0
        try:
            while drained <= limit:
                chunk = await self.receive_chunk()
                if chunk is None:
                    return
                drained += len(chunk)
        except (BodyError, ClientDisconnected):
            pass
        else:
            self._linger = True  # gave up on a body the client is still sending
        self.close_after = True
        self.cycle.body_ended()

    # -- ResponseSink -------------------------------------------------------------------------
    async def send_response(
        self, status: int, headers: list[tuple[str, str]], body: bytes | None, end: bool
    ) -> None:
        self._status = status
        cycle = self.cycle
        data = cycle.response_head(
            status, headers, head_request=self.head_only, closing=self.close_after, date=_DATE.get()
        )
        if body:
            data += cycle.data(body)
        if end:
            data += cycle.end()
        await self._send(data)

    async def send_data(self, data: bytes) -> None:
        out = self.cycle.data(data)
        if out:
            await self._send(out)

    async def end(self) -> None:
        out = self.cycle.end()
        if out:
            await self._send(out)

    async def send_file(self, path: str, size: int) -> None:
        writer = self.cycle
        async with await trio.open_file(path, "rb") as f:
            left = size
            while left > 0:
                chunk = await f.read(min(65536, left))
                if not chunk:
                    break
                left -= len(chunk)
                await self._send(writer.data(chunk))
        out = writer.end()
        if out:
            await self._send(out)

    async def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is not None:
            # directly (see _receive): a write that takes it all needs no deadline
            try:
                sent = os.write(sock.fileno(), data)
            except BlockingIOError:
                sent = 0
            except OSError:  # reset, or closed (fd -1)
                raise ClientDisconnected() from None
            if sent == len(data):
                if self._spun():
                    await trio.lowlevel.checkpoint()
                return
        else:
            sent = -1
        saved = self.deadline
        self.deadline = self._now() + self.http.send_timeout_s
        try:
            if sock is None:
                await self.stream.send_all(data)
                return
            # the socket is full: the rest as it drains, under the send deadline (the server's
            # reaper closes a connection blocked past it)
            view = memoryview(data)[sent:]
            while view:
                await trio.lowlevel.wait_writable(sock)
                try:
                    view = view[os.write(sock.fileno(), view) :]
                except BlockingIOError:
                    pass
            self._spins = 0
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise ClientDisconnected() from None
        finally:
            self.deadline = saved

    # -- errors and closing -------------------------------------------------------------------
    async def _reply_error(self, status: int, message: str, *, peer_fault: bool = True) -> None:
        """Answer a request that could not be read (malformed head, head timeout), then close.

        The reply itself is the exchange's error reply; this only makes the connection ready
        for it (a fresh response head, Connection: close) and bounds the send. ``peer_fault``:
        counted as a protocol error (not when the fault is ours).
        """
        cycle = self.cycle
        if self.phase == "handler" or cycle.started and not cycle.done:
            return  # a response is under way (or was sent): nothing more can be said
        if peer_fault:
            self.server.stats["protocol_errors"] += 1
        self.close_after = True
        cycle.reset()  # a fresh response head, closing (HTTP/1.1: we could not read the head)
        cycle.http10 = False
        cycle.body_ended()
        self.head_only = False
        with trio.move_on_after(1.0):
            try:
                await self.server.exchange.refuse(self, status, message)
            except ClientDisconnected:
                pass
        log.info("%s: %d %s", self.info.peer_text, status, message)

    async def _close(self) -> None:
        # shielded, but never past the server's drain deadline; past it, the close is hard
        with self.server.closing_scope() as scope:
            stream = self.stream
            if self._linger and isinstance(stream, trio.abc.HalfCloseableStream):
                # lingering close (as nginx): FIN first, then drop what the peer still sends for
                # a moment; closing with unread input would send a RST that can destroy our reply
                with trio.move_on_after(1.0):
                    try:
                        await stream.send_eof()
                        while await stream.receive_some(self.recv_size):
                            pass
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
            with trio.move_on_after(1.0):
                try:
                    await self.stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        if scope.cancel_called:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    @property
    def status(self) -> int:
        return self._status

    @property
    def started(self) -> float:
        return self._started

    @property
    def body_bytes(self) -> int:
        return self.cycle.body_bytes


_EMPTY = EmptySource()
