# `io.socket` in Python: Sails virtual requests and server pushes over one Socket.IO WebSocket
# (Engine.IO v4, v3 when the server speaks it), with reconnection and a request queue as
# sails.io.js has them.
# Owns: the WebSocket (wsproto) and its reader task, the JWR, the pending acks, the queue of
# requests made while disconnected, reconnect backoff, push subscriptions.
# Must not: parse Engine.IO/Socket.IO itself (gateway.ws.engineio_client does, sans-IO).
#
# Theory of operation: open_socket() connects once (failing fast), then runs _run in a nursery:
# a reader loop per connection (WebSocket messages -> EngineIOClient events; the heartbeat on
# the session's deadlines), and on a lost connection the backoff and reconnect loop. As in
# sails.io.js: requests in flight when the connection drops fail (TransportError, 502; the
# server may or may not have run them); requests made while disconnected wait in a bounded
# queue and are sent once the socket is connected again. Each request has its own deadline
# (RequestTimeout, 501), also while queued; closing the socket fails what is left (Aborted, 503).
from __future__ import annotations

import contextlib
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from gateway.client.errors import (
    Aborted,
    ClientError,
    ConnectError,
    RequestTimeout,
    TransportError,
    error_for_status,
)
from gateway.client.pool import make_ssl_context, open_connection
from gateway.ws import engineio_client as eio
from gateway.ws.sails import VIRTUAL_REQUEST_EVENTS  # the event names Sails routes

__all__ = ["JWR", "Push", "SailsSocket", "open_socket", "SDK_QUERY"]

# What sails-hook-sockets reads from the handshake query (it refuses SDK versions < 0.11).
SDK_QUERY: Final = {
    "__sails_io_sdk_version": "1.2.1",
    "__sails_io_sdk_platform": "python",
    "__sails_io_sdk_language": "python",
}
_DEFAULT: Any = object()


class JWR:
    """A JSON WebSocket Response (sails.io.js' JWR): the reply to a virtual request.

    Attributes:
        body: the response body (a JSON value: what the route sent).
        headers: the response headers (lower-case names).
        status_code: the status.
        error: set as sails.io.js does for a status < 200 or >= 400 (the body, or the status
            when there is none), else None.
    """

    __slots__ = ("body", "headers", "status_code", "error", "url", "method", "last_error")

    def __init__(
        self, body: Any, headers: dict[str, str], status_code: int, url: str = "", method: str = ""
    ) -> None:
        self.body = body
        self.headers = headers
        self.status_code = status_code
        self.error = (
            (body if body is not None else status_code)
            if status_code < 200 or status_code >= 400
            else None
        )
        self.url = url
        self.method = method
        self.last_error = 0

    @property
    def status(self) -> int:
        """The status (same as status_code; the name the HTTP Response uses)."""
        return self.status_code

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def data(self) -> Any:
        """The body (seed 002's name)."""
        return self.body

    def raise_for_status(self) -> JWR:
        """Return self for a 2xx status, else raise the seed-002 error (504, 510, 511)."""
        if 200 <= self.status_code < 300:
            return self
        raise error_for_status(self.status_code, "", self)

    def __repr__(self) -> str:
        return f"<JWR {self.status_code} {self.method.upper()} {self.url}>"


class Push:
    """A server event (``io.socket.on(name, ...)``).

    Attributes:
        event: its name ("message" for Sails' default).
        data: its first argument (a Sails push has exactly one), or None.
        args: all its arguments.
    """

    __slots__ = ("event", "args")

    def __init__(self, event: str, args: tuple[Any, ...]) -> None:
        self.event = event
        self.args = args

    @property
    def data(self) -> Any:
        return self.args[0] if self.args else None

    def __repr__(self) -> str:
        return f"Push({self.event!r}, {self.data!r})"


class _Pending:
    __slots__ = ("method", "payload", "done", "result", "error", "ack_id", "deadline", "limit")

    def __init__(
        self, method: str, payload: dict[str, Any], deadline: float, limit: float | None
    ) -> None:
        self.method = method
        self.payload = payload
        self.done = trio.Event()
        self.result: JWR | None = None
        self.error: ClientError | None = None
        self.ack_id: int | None = None
        self.deadline = deadline
        self.limit = limit


class _Link:
    """One live connection: the stream, its WebSocket and its Engine.IO session."""

    __slots__ = ("stream", "ws", "session", "closed")

    def __init__(
        self, stream: trio.abc.Stream, ws: WSConnection, session: eio.EngineIOClient
    ) -> None:
        self.stream = stream
        self.ws = ws
        self.session = session
        self.closed = False


class _Subscription:
    __slots__ = ("names", "send", "dropped")

    def __init__(self, names: frozenset[str], send: trio.MemorySendChannel[Push]) -> None:
        self.names = names
        self.send = send
        self.dropped = 0


class SailsSocket:
    """A Sails socket client. Made and run by ``open_socket``.

    Args:
        url: the server, "http://host:port" (or https; ws/wss are accepted too).
        headers: sent with every virtual request (``io.sails.headers``); a request's own win.
        initial_headers: sent with the WebSocket handshake only (``initialConnectionHeaders``),
            e.g. a Cookie.
        token: a bearer token, sent with the handshake and every request.
        eio: the Engine.IO version asked for (4; 3 is used when the server answers as v3 or
            refuses 4).
        reconnect: reconnect after a lost connection (with backoff); queued requests are sent
            once connected again.
        reconnect_delay, reconnect_delay_max: first and largest wait between attempts (the wait
            doubles, with +-50% jitter, as socket.io-client).
        reconnect_attempts: give up after this many failed attempts in a row (None: never).
        request_timeout: default deadline of a request, queue time included (None: none).
        connect_timeout: the cap on TCP + TLS + WebSocket + Engine.IO handshakes.
        max_queue: requests that may wait for a connection (more: TransportError).
        max_message_bytes: the largest message accepted from the server.
        verify, ca_file: TLS (as Client).
        path: the Socket.IO endpoint ("/socket.io/").
        query: extra handshake query parameters.
        origin: an Origin header for the handshake (servers with allowed-origin lists).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        initial_headers: Mapping[str, str] | None = None,
        token: str | None = None,
        eio: int = 4,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        reconnect_delay_max: float = 5.0,
        reconnect_attempts: int | None = None,
        request_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        max_queue: int = 1000,
        max_message_bytes: int = 16 << 20,
        verify: bool = True,
        ca_file: str | None = None,
        path: str = "/socket.io/",
        query: Mapping[str, str] | None = None,
        origin: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        scheme = {"http": "http", "ws": "http", "https": "https", "wss": "https"}.get(
            parts.scheme.lower()
        )
        if scheme is None or not parts.hostname:
            raise ValueError(f"not an http(s)/ws(s) URL: {url!r}")
        if eio not in (3, 4):
            raise ValueError("eio must be 3 or 4")
        self.url = url
        self._scheme = scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if scheme == "https" else 80)
        default_port = self._port == (443 if scheme == "https" else 80)
        name = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = name if default_port else f"{name}:{self._port}"
        self._path = path
        self._query = {**SDK_QUERY, **(query or {})}
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self._initial = {k.lower(): v for k, v in (initial_headers or {}).items()}
        if token:
            self.headers.setdefault("authorization", f"Bearer {token}")
            self._initial.setdefault("authorization", f"Bearer {token}")
        if origin:
            self._initial["origin"] = origin
        self.eio = eio
        self.version = 0  # the version spoken on the current (or last) connection
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.reconnect_attempts = reconnect_attempts
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_queue = max_queue
        self.max_message_bytes = max_message_bytes
        self._ssl = make_ssl_context(verify, ca_file) if scheme == "https" else None
        self.socket_id = ""
        self.reconnects = 0  # successful reconnections
        self._link: _Link | None = None
        self._acks: dict[int, _Pending] = {}
        self._queue: deque[_Pending] = deque()
        self._send_lock = trio.Lock()
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._subs: list[_Subscription] = []
        self._connected = trio.Event()
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._wake_at = math.inf  # when the timer task looks next
        self._wake: trio.Event | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while "/" is connected."""
        link = self._link
        return link is not None and link.session.connected

    @property
    def closed(self) -> bool:
        """True after aclose() (or after reconnecting gave up)."""
        return self._closed

    async def wait_connected(self) -> None:
        """Wait until the socket is connected (at once if it is)."""
        while not self.connected:
            if self._closed:
                raise Aborted("the socket is closed")
            await self._connected.wait()

    def statistics(self) -> dict[str, int]:
        """In flight, queued, reconnections, subscriptions and pushes they dropped."""
        return {
            "in_flight": len(self._acks),
            "queued": len(self._queue),
            "reconnects": self.reconnects,
            "subscriptions": len(self._subs),
            "dropped": sum(s.dropped for s in self._subs),
        }

    # -- virtual requests --------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = _DEFAULT,  # noqa: ASYNC109 (per request)
    ) -> JWR:
        """Send a virtual request (``io.socket.request``) and wait for its JWR.

        Args:
            method: get, post, put, patch, delete, options or head (any case).
            url: the path (and query), e.g. "/user/3?full=1".
            data: the body / parameters (a JSON value; ``{}`` when None, as sails.io.js).
            headers: this request's headers (over the socket's ``headers``).
            timeout: this request's deadline in seconds (default: request_timeout).

        Returns:
            The JWR, any status (``raise_for_status()`` for the seed-002 errors).

        Raises:
            RequestTimeout (501): no reply in time (a late reply is ignored).
            TransportError (502): the connection dropped while it was in flight, or the queue
                is full, or reconnecting gave up.
            Aborted (503): the socket was closed.
            ValueError: an unknown method or a URL that is not a path.
        """
        verb = method.lower()
        if verb not in VIRTUAL_REQUEST_EVENTS:
            raise ValueError(f"not a Sails virtual request method: {method!r}")
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a non-empty string")
        if self._closed:
            raise Aborted(f"{verb} {url}: the socket is closed")
        hdrs = dict(self.headers)
        if headers:
            hdrs.update({k.lower(): str(v) for k, v in headers.items()})
        payload = {
            "method": verb,
            "headers": hdrs,
            "data": {} if data is None else data,
            "url": url,
        }
        limit = self.request_timeout if timeout is _DEFAULT else timeout
        deadline = math.inf if limit is None else trio.current_time() + limit
        pending = _Pending(verb, payload, deadline, limit)
        if deadline < self._wake_at and self._wake is not None:
            self._wake.set()  # sooner than the timer task planned to look (a short timeout)
        link = self._link
        if link is not None and link.session.connected and not self._queue:
            await self._emit(link, pending)
        else:
            if len(self._queue) >= self.max_queue:
                raise TransportError(
                    f"{verb} {url}: {self.max_queue} requests already wait for the connection"
                )
            self._queue.append(pending)
        if self._wake is None and deadline != math.inf:
            # no timer task (a socket not run by open_socket): a scope keeps the deadline
            with trio.move_on_at(deadline):
                await pending.done.wait()
            if not pending.done.is_set():
                self._expire(pending)
        else:
            try:
                await pending.done.wait()  # the timer task ends it at its deadline
            except BaseException:  # the caller's own cancellation: forget the request
                self._forget(pending)
                raise
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def get(self, url: str, data: Any = None, **kw: Any) -> JWR:
        """``request("get", url, data)`` (sails.io.js: data become the query)."""
        return await self.request("get", url, data, **kw)

    async def post(self, url: str, data: Any = None, **kw: Any) -> JWR:
        """``request("post", url, data)``."""
        return await self.request("post", url, data, **kw)

    async def put(self, url: str, data: Any = None, **kw: Any) -> JWR:
        """``request("put", url, data)``."""
        return await self.request("put", url, data, **kw)

    async def patch(self, url: str, data: Any = None, **kw: Any) -> JWR:
        """``request("patch", url, data)``."""
        return await self.request("patch", url, data, **kw)

    async def delete(self, url: str, data: Any = None, **kw: Any) -> JWR:
        """``request("delete", url, data)``."""
        return await self.request("delete", url, data, **kw)

    # -- server events ------------------------------------------------------------------------

    def on(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(*args)`` for each ``event`` the server sends (``io.socket.on``).

        Handlers run in the reader task: a plain function must not block; an async one is
        started as its own task.

        Returns:
            fn (usable as a decorator's result).
        """
        self._handlers.setdefault(event, []).append(fn)
        return fn

    def off(self, event: str, fn: Callable[..., Any] | None = None) -> None:
        """Remove one handler of ``event``, or all of them."""
        if fn is None:
            self._handlers.pop(event, None)
        else:
            handlers = self._handlers.get(event, [])
            if fn in handlers:
                handlers.remove(fn)

    @asynccontextmanager
    async def events(
        self, *names: str, max_buffer: int = 256
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Push]]:
        """Subscribe to server events: ``async with io.events("message") as pushes: async for
        push in pushes: ...`` (no names: every event).

        Args:
            names: the event names.
            max_buffer: pushes held for a slow consumer; beyond it new ones are dropped (and
                counted in statistics()["dropped"]) so that replies are never held up.
        """
        send, receive = trio.open_memory_channel[Push](max_buffer)
        sub = _Subscription(frozenset(names), send)
        self._subs.append(sub)
        try:
            async with receive:
                yield receive
        finally:
            self._subs.remove(sub)
            send.close()

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Leave "/" and close the WebSocket; what is in flight or queued fails (Aborted)."""
        if self._closed:
            return
        self._closed = True
        link = self._link
        self._fail_all(Aborted("the socket was closed"), queued=True)
        if link is not None and not link.closed:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                try:
                    frames = link.session.close_frames()
                    data = b"".join(link.ws.send(TextMessage(data=f)) for f in frames)
                    data += link.ws.send(CloseConnection(code=1000))
                    async with self._send_lock:
                        await link.stream.send_all(data)
                except (
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    OSError,
                    LocalProtocolError,
                ):
                    pass
            self._drop(link)
        self._connected.set()
        for sub in self._subs:
            sub.send.close()

    # -- the machinery --------------------------------------------------------------------------

    async def _emit(self, link: _Link, pending: _Pending) -> None:
        try:
            frame, ack_id = link.session.emit(pending.method, pending.payload)
        except (TypeError, ValueError) as exc:
            pending.error = TransportError(f"cannot send the request: {exc}")
            pending.done.set()
            return
        assert ack_id is not None
        pending.ack_id = ack_id
        self._acks[ack_id] = pending
        try:
            async with self._send_lock:
                await link.stream.send_all(link.ws.send(TextMessage(data=frame)))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            # the reader notices the loss too; this request fails like any other in flight
            self._acks.pop(ack_id, None)
            pending.error = TransportError(
                f"{pending.method} {pending.payload['url']}: connection lost while sending: {exc}"
            )
            pending.done.set()

    async def _connect(self) -> _Link:
        """One connection attempt: TCP (+TLS), the WebSocket handshake, the Engine.IO open and
        CONNECT. v4 first; a refused v4 handshake (HTTP 400) is retried as v3."""
        version = self.eio
        while True:
            try:
                with trio.fail_after(self.connect_timeout):
                    return await self._open(version)
            except trio.TooSlowError:
                raise RequestTimeout(
                    f"connect to {self.url}: no Socket.IO session within {self.connect_timeout:g} s"
                ) from None
            except _Refused as exc:
                if exc.status == 400 and version == 4:
                    version = 3
                    continue
                raise ConnectError(
                    f"{self.url}: the WebSocket handshake was refused: "
                    f"HTTP {exc.status} {exc.body[:200]!r}"
                ) from None

    async def _open(self, version: int) -> _Link:
        origin = (self._scheme, self._host, self._port, "")
        conn = await open_connection(origin, self._ssl, None, 16384, math.inf)
        stream = conn.stream
        ok = False
        try:
            ws = WSConnection(ConnectionType.CLIENT)
            query = urlencode({**self._query, "EIO": str(version), "transport": "websocket"})
            extra = [(k.encode(), v.encode()) for k, v in self._initial.items()]
            await stream.send_all(
                ws.send(
                    Request(
                        host=self._host_header, target=f"{self._path}?{query}", extra_headers=extra
                    )
                )
            )
            session = eio.EngineIOClient(version, self.max_message_bytes)
            link = _Link(stream, ws, session)
            rejected: _Refused | None = None
            while not session.connected:
                data = await self._receive(link)
                if not data:
                    if rejected is not None:  # the refusal's body was cut short: still refused
                        raise rejected
                    raise ConnectError(
                        f"{self.url}: the server closed the connection during the handshake"
                    )
                ws.receive_data(data)
                for ev in ws.events():
                    if isinstance(ev, RejectConnection):
                        rejected = _Refused(ev.status_code)
                        if not ev.has_body:
                            raise rejected
                    elif isinstance(ev, RejectData):
                        assert rejected is not None
                        if len(rejected.body) < 1024:
                            rejected.body += ev.data
                        if ev.body_finished:
                            raise rejected
                    elif isinstance(ev, AcceptConnection):
                        continue
                    else:
                        await self._on_ws_event(link, ev)
                        if link.closed:
                            raise ConnectError(
                                f"{self.url}: the Socket.IO session ended during the handshake"
                            )
            self.version = session.version
            self.socket_id = session.socket_id
            ok = True
            return link
        except (RemoteProtocolError, LocalProtocolError) as exc:
            raise ConnectError(f"{self.url}: bad WebSocket handshake: {exc}") from None
        except (trio.BrokenResourceError, OSError) as exc:
            raise ConnectError(
                f"{self.url}: connection broken during the handshake: {exc}"
            ) from None
        finally:
            if not ok:
                conn.discard()

    async def _receive(self, link: _Link) -> bytes:
        try:
            return bytes(await link.stream.receive_some(65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return b""

    async def _send_frames(self, link: _Link, frames: list[str]) -> None:
        if not frames or link.closed:
            return
        data = b"".join(link.ws.send(TextMessage(data=f)) for f in frames)
        try:
            async with self._send_lock:
                await link.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._drop(link)

    async def _on_ws_event(self, link: _Link, ev: Any) -> None:
        session = link.session
        now = trio.current_time()
        if isinstance(ev, TextMessage):
            if not ev.message_finished:
                raise TransportError("fragmented messages are not supported")  # pragma: no cover
            events = session.receive_text(ev.data, now)
        elif isinstance(ev, BytesMessage):
            events = session.receive_bytes(bytes(ev.data), now)
        elif isinstance(ev, Ping):
            await self._send_raw(link, link.ws.send(ev.response()))
            return
        elif isinstance(ev, CloseConnection):
            try:
                await self._send_raw(link, link.ws.send(ev.response()))
            except LocalProtocolError:
                pass
            events = session.connection_lost(f"WebSocket closed ({ev.code})")
        else:
            return
        for event in events:
            kind = type(event)
            if kind is eio.ServerAck:
                pending = self._acks.pop(event.id, None)  # type: ignore[union-attr]
                if pending is not None:
                    pending.result = _jwr(event.args, pending)  # type: ignore[union-attr]
                    pending.done.set()
            elif kind is eio.ServerEvent:
                self._dispatch(Push(event.name, event.args))  # type: ignore[union-attr]
            elif kind is eio.ClientDisconnected:
                self._drop(link)
        await self._send_frames(link, session.frames_to_send())

    async def _send_raw(self, link: _Link, data: bytes) -> None:
        try:
            async with self._send_lock:
                await link.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._drop(link)

    def _dispatch(self, push: Push) -> None:
        for fn in self._handlers.get(push.event, ()):
            result = fn(*push.args)
            if hasattr(result, "__await__") and self._nursery is not None:

                async def run(coro: Any = result) -> None:
                    await coro

                self._nursery.start_soon(run)
        for sub in self._subs:
            if not sub.names or push.event in sub.names:
                try:
                    sub.send.send_nowait(push)
                except trio.WouldBlock:
                    sub.dropped += 1
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

    def _drop(self, link: _Link) -> None:
        """The connection is over: close it and fail what was in flight on it."""
        if link.closed:
            return
        link.closed = True
        link.session.connection_lost()
        try:
            link.stream.socket.close()  # type: ignore[attr-defined]
        except AttributeError:
            link.stream.transport_stream.socket.close()  # type: ignore[attr-defined]
        if self._link is link:
            self._link = None
            self._connected = trio.Event()
        self._fail_all(
            TransportError("the socket disconnected before the request completed"), queued=False
        )

    def _fail_all(self, error: ClientError, queued: bool) -> None:
        acks, self._acks = self._acks, {}
        waiting = list(acks.values())
        if queued:
            waiting += list(self._queue)
            self._queue.clear()
        for pending in waiting:
            if not pending.done.is_set():
                pending.error = type(error)(
                    f"{pending.method} {pending.payload['url']}: {error.message}"
                )
                pending.done.set()

    def _forget(self, pending: _Pending) -> None:
        if pending.ack_id is not None:
            self._acks.pop(pending.ack_id, None)
        try:
            self._queue.remove(pending)
        except ValueError:
            pass

    def _expire(self, pending: _Pending) -> None:
        """A request past its deadline: a late reply will be dropped."""
        self._forget(pending)
        if not pending.done.is_set():
            pending.error = RequestTimeout(
                f"{pending.method} {pending.payload['url']}: no reply within {pending.limit:g} s"
            )
            pending.done.set()

    async def _timer(self, tick_s: float = 30.0) -> None:
        """One task for every clock on the socket: requests' deadlines (no cancel scope per
        request: a scope costs about what a virtual request does) and the session's
        heartbeat. It sleeps until the earliest of them, or ``tick_s``."""
        while not self._closed:
            now = trio.current_time()
            nearest = now + tick_s
            for pending in [*self._acks.values(), *self._queue]:
                if pending.deadline <= now:
                    self._expire(pending)
                elif pending.deadline < nearest:
                    nearest = pending.deadline
            link = self._link
            if link is not None and not link.closed:
                session = link.session
                due = session.next_deadline()
                if due is not None and due <= now:
                    gone = session.poll(now)
                    await self._send_frames(link, session.frames_to_send())
                    if gone is not None:
                        self._drop(link)
                    due = session.next_deadline()
                if due is not None and due < nearest:
                    nearest = due
            self._wake_at = nearest
            self._wake = trio.Event()
            with trio.move_on_at(nearest):
                await self._wake.wait()

    async def _serve(self, link: _Link) -> None:
        """Read one connection until it ends (the timer task keeps its heartbeat)."""
        ws = link.ws
        while not link.closed:
            data = await self._receive(link)
            if not data:
                self._drop(link)
                break
            try:
                ws.receive_data(data)
                for ev in ws.events():
                    await self._on_ws_event(link, ev)
            except (RemoteProtocolError, LocalProtocolError, TransportError):
                self._drop(link)

    async def _flush_queue(self, link: _Link) -> None:
        while self._queue and link is self._link and link.session.connected:
            pending = self._queue.popleft()
            if not pending.done.is_set():
                await self._emit(link, pending)

    def _adopt(self, link: _Link) -> None:
        self._link = link
        self._connected.set()
        if self._wake is not None:
            self._wake.set()  # a new session: the timer task takes its heartbeat on

    async def _run(self, link: _Link) -> None:
        """Serve connections until closed: read, and after a loss reconnect with backoff."""
        while not self._closed:
            self._adopt(link)
            if self._queue:
                assert self._nursery is not None
                self._nursery.start_soon(self._flush_queue, link)
            await self._serve(link)
            if self._closed or not self.reconnect:
                break
            failures = 0
            while not self._closed:
                delay = min(self.reconnect_delay_max, self.reconnect_delay * 2**failures)
                await trio.sleep(delay * random.uniform(0.5, 1.5))
                try:
                    link = await self._connect()
                    self.reconnects += 1
                    break
                except (ConnectError, RequestTimeout, TransportError):
                    failures += 1
                    if self.reconnect_attempts is not None and failures >= self.reconnect_attempts:
                        self._fail_all(TransportError("reconnecting gave up"), queued=True)
                        self._closed = True
                        self._connected.set()
                        return
        self._fail_all(TransportError("the socket is not connected"), queued=True)


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
        self.body = b""


def _jwr(args: tuple[Any, ...], pending: _Pending) -> JWR:
    reply = args[0] if args else None
    url = pending.payload["url"]
    if not isinstance(reply, dict):
        return JWR(reply, {}, 500, url, pending.method)
    status = reply.get("statusCode")
    headers = reply.get("headers")
    return JWR(
        reply.get("body"),
        {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {},
        status if isinstance(status, int) else 200,
        url,
        pending.method,
    )


class _SocketContext:
    """``async with open_socket(...)``: connect, run the socket's task, close on exit (the
    block's exception propagates as it is, not inside an exception group)."""

    __slots__ = ("sock", "stack")

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.sock = SailsSocket(url, **options)
        self.stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> SailsSocket:
        sock = self.sock
        link = await sock._connect()
        sock._adopt(link)
        stack = contextlib.AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        sock._nursery = nursery
        nursery.start_soon(sock._run, link)
        nursery.start_soon(sock._timer)
        self.stack = stack
        return sock

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.sock.aclose()
        finally:
            stack, self.stack = self.stack, None
            if stack is not None and self.sock._nursery is not None:
                self.sock._nursery.cancel_scope.cancel()
                await stack.__aexit__(None, None, None)


def open_socket(url: str, **options: Any) -> _SocketContext:
    """Connect a Sails socket and keep it (reconnecting) for the block.

    ``async with open_socket("http://board.local:8080") as io: jwr = await io.get("/x")``

    Args:
        url: the server.
        **options: SailsSocket's options.

    Returns:
        An async context manager giving the connected socket.

    Raises:
        ConnectError (502) / RequestTimeout (501): the first connection failed (on entry).
    """
    return _SocketContext(url, options)
