# The Socket.IO endpoint (/socket.io/, EIO=3 and EIO=4, websocket transport only) and Sails
# virtual requests: each `get/post/...` event becomes a Request through the SAME App, router and
# middleware as HTTP, answered with a JWR through the event's ack; server pushes from app.sockets.
# Owns: the connection loop (read, decode, dispatch), at most MAX_IN_FLIGHT virtual requests per
# socket, the JWR-making ValueSink (capped), and the socket's bounded outbound queue. It is an
# adapter: a virtual request becomes a head + already-parsed body + sink for gateway.app.exchange.
# Must not: parse Engine.IO/Socket.IO/Sails itself (gateway.ws does) or build error replies
# (the exchange does, in one place; the Sails parse-error packet is the codec's).
from __future__ import annotations

import logging
import secrets
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from urllib.parse import quote

import trio

from gateway.app.cors import same_origin
from gateway.app.pubsub import Push, SocketHub
from gateway.app.response import NO_BODY
from gateway.body.stream import ValueSource
from gateway.errors import HandlerTimeout, HTTPError, RemoteProtocolError, WebSocketClosed
from gateway.http.target import split_target
from gateway.server.websocket import SocketHost
from gateway.ws import engineio as eio
from gateway.ws import sails

if TYPE_CHECKING:
    from gateway.app.application import App
    from gateway.app.contracts import ConnectionInfo
    from gateway.app.exchange import Exchange
    from gateway.server.websocket import WebSocket

__all__ = ["serve", "SailsSocket", "SocketManager", "VirtualResponse", "MAX_IN_FLIGHT"]

log = logging.getLogger("gateway.sails")

# Sails handles a socket's requests as they come; a bounded number in flight keeps one socket
# from taking every task and byte (the reader stops reading until a slot frees: backpressure).
# Memory: a virtual request's data is not charged to the body budget; it is bounded by this
# many WebSocket messages (websocket.max_message_bytes each) per socket.
MAX_IN_FLIGHT: Final = 8
_VISIBLE_ASCII: Final = "".join(chr(c) for c in range(0x21, 0x7F))
_VIRTUAL: Final = sails.VIRTUAL_REQUEST_EVENTS


class SocketManager(SocketHost, Protocol):
    """What a Socket.IO connection needs of the server's WebSocket layer (the manager)."""

    @property
    def app(self) -> App: ...

    @property
    def exchange(self) -> Exchange: ...

    @property
    def active(self) -> set[Any]:
        """The sockets the layer's timer ticks (Engine.IO heartbeats, idle timeout)."""
        ...


async def serve(
    manager: SocketManager, info: ConnectionInfo, ws: WebSocket, version: Literal[3, 4]
) -> None:
    """Serve an accepted Socket.IO connection until it ends (the server calls this).

    Args:
        manager: the WebSocket layer.
        info: the upgraded connection.
        ws: the open WebSocket.
        version: Engine.IO protocol version (3: sails.io.js 1.x; 4: socket.io-client 4).
    """
    sock = SailsSocket(manager, info, ws, version)
    code, reason = 1000, ""
    manager.active.add(sock)
    try:
        await sock.open()
        # the socket's nursery is opened here, not in a method of its own: one coroutine frame
        # less for as long as the socket is open
        async with trio.open_nursery() as nursery:
            await sock.run(nursery)
        code, reason = sock.result
    except Exception:
        log.exception("socket.io %s: connection failed", sock.id)
        code, reason = 1011, "internal error"
    finally:
        sock.stop()
        manager.active.discard(sock)
        sock.hub.remove(sock)
        await ws.finish(code, reason)


class VirtualResponse:
    """The ValueSink of one virtual request: the reply becomes a JWR, encoded at once as the
    ack frame (``frame``) that the socket sends when the exchange is over.

    ``res.json(obj)`` / ``res.send(text)`` reach ``send_value`` as the values themselves, with
    only the headers the app set (Sails' JWR). Streamed bodies and files arrive as bytes
    (capped at ``limit``: past it the bytes are dropped at once) and become text, or the value
    again when their Content-Type is JSON. A reply whose ack frame would be over ``limit`` is
    refused (HTTPError 500) before anything is sent, so the exchange answers with its error
    reply instead.

    A HEAD request's JWR carries the body too, as Sails' does (``head_only`` is always False:
    a JWR is not HTTP framing, and Sails answers HEAD with what GET's route sends).

    Args:
        session: the socket's Engine.IO session (encodes the ack).
        ack_id: the request's ack id; None: no reply is wanted (nothing is encoded).
        limit: websocket.max_virtual_response_bytes.
    """

    carries_values = True
    head_only = False

    __slots__ = ("limit", "frame", "_session", "_ack_id", "_status", "_headers", "_chunks", "_size")

    def __init__(self, session: eio.EngineIOSession, ack_id: int | None, limit: int) -> None:
        self.limit = limit
        self.frame: str | None = None
        self._session = session
        self._ack_id = ack_id
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._chunks: list[bytes] | None = []
        self._size = 0

    async def send_value(self, status: int, headers: list[tuple[str, str]], value: Any) -> int:
        body = sails.NO_BODY if value is NO_BODY else value  # the app's marker -> the codec's
        return self._reply(status, headers, body)

    def _reply(self, status: int, headers: list[tuple[str, str]], body: Any) -> int:
        ack_id = self._ack_id
        session = self._session
        if ack_id is None or not session.connected:
            return 0  # nobody to answer
        # ValueError/TypeError: not JSON-able
        frame = session.send_ack_text(ack_id, sails.jwr_text(status, headers, body))
        n = len(frame)
        limit = self.limit
        # characters, and UTF-8 bytes only when they could be over (up to 4 per character)
        if n > limit or (n * 4 > limit and len(frame.encode()) > limit):
            raise _too_large(limit)
        self.frame = frame
        return len(frame)

    # the byte path (res.write()/end(), res.send_file()): collected, then one JWR at the end
    def _add(self, data: bytes) -> None:
        chunks = self._chunks
        if chunks is None or not data:
            return
        self._size += len(data)
        if self._size > self.limit:
            self._chunks = None  # over the cap: dropped now, refused at the end
        else:
            chunks.append(data)

    async def send_response(
        self, status: int, headers: list[tuple[str, str]], body: bytes | None, end: bool
    ) -> None:
        self._status = status
        self._headers = headers
        if body:
            self._add(body)
        if end:
            await self.end()

    async def send_data(self, data: bytes) -> None:
        self._add(data)

    async def end(self) -> None:
        chunks = self._chunks
        if chunks is None:
            raise _too_large(self.limit)
        # Content-Length described bytes that a JWR does not carry
        headers = [(k, v) for k, v in self._headers if k.lower() != "content-length"]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        body = sails.body_from_http(content_type, b"".join(chunks))
        self._chunks = []
        self._reply(self._status, headers, body)

    async def send_file(self, path: str, size: int) -> None:
        if size > self.limit:
            self._chunks = None
        else:
            async with await trio.open_file(path, "rb") as f:
                left = size
                while left > 0 and self._chunks is not None:
                    chunk = await f.read(min(65536, left))
                    if not chunk:
                        break
                    left -= len(chunk)
                    self._add(chunk)
        await self.end()


def _late_status(exc: Exception) -> int:
    """The status of a virtual reply that failed after it had started: 504 for a handler
    deadline, else 500."""
    return exc.status if isinstance(exc, HandlerTimeout) else 500


def _too_large(limit: int) -> HTTPError:
    log.warning("virtual response over websocket.max_virtual_response_bytes (%d)", limit)
    return HTTPError(500, "virtual response too large")


class SailsSocket:
    """One Socket.IO connection: Engine.IO session, virtual requests, pushes, timers.

    Args:
        manager: the server's WebSocket layer.
        info: the upgraded connection.
        ws: the open WebSocket (its ``request`` is the handshake).
        version: Engine.IO protocol version (3: sails.io.js 1.x; 4: socket.io-client 4).
    """

    __slots__ = (
        "id",
        "ws",
        "eio",
        "manager",
        "app",
        "hub",
        "info",
        "handshake",
        "exchange",
        "_outbox",
        "_outbox_bytes",
        "_flushing",
        "_dead",
        "_nursery",
        "_reading",
        "_pending",
        "_readers",
        "_workers",
        "_result",
        "_msgs",
        "_seen_msgs",
        "_last_active",
        "_registered",
        "_handshake_merge",
        "_reply_limit",
        "_now",
    )

    def __init__(
        self, manager: SocketManager, info: ConnectionInfo, ws: WebSocket, version: Literal[3, 4]
    ) -> None:
        settings = manager.settings.websocket
        self.id = secrets.token_urlsafe(15)
        self.ws = ws
        self.eio = eio.EngineIOSession(
            version,
            self.id,
            ping_interval_s=settings.ping_interval_s,
            ping_timeout_s=settings.pong_timeout_s,
            max_payload_bytes=settings.max_message_bytes,
        )
        self.manager = manager
        self.app = manager.app
        self.hub: SocketHub = self.app.sockets
        self.exchange = manager.exchange
        # the socket's requests have the handshake's privilege (a bearer token on the upgrade,
        # or the local socket); their req.protocol is the socket's, "ws" or "wss" (Sails: "ws")
        scheme = "wss" if info.scheme == "https" else "ws"
        self.info = _SocketInfo(info.peer, scheme, ws.request.privileged, info.peer_text)
        self.handshake = ws.request
        # what merge_headers takes from the handshake (cookie, origin, nosession), joined once
        # per socket instead of scanning every handshake header on every virtual request
        self._handshake_merge: sails.HandshakeFields | None = None
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._flushing = False
        self._dead = False
        self._nursery: trio.Nursery | None = None  # the socket's own, while it is served
        self._reading: trio.Lock | None = None  # held by the worker that reads (from 2 workers)
        self._pending: list[eio.Event] = []  # requests decoded, not yet taken by a worker
        self._readers = 0  # workers not running a request (reading, waiting to, or starting)
        self._workers = 0  # workers in the nursery: at most MAX_IN_FLIGHT
        self._result: tuple[int, str] | None = None  # how the session ended
        self._msgs = self._seen_msgs = 0
        # the run's clock, one call deep (trio.current_time() is three)
        self._now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self._last_active = self._now()
        self._registered = False
        # a socket keeps the profile it opened with, as every connection does over a reload
        self._reply_limit = settings.max_virtual_response_bytes

    # -- the connection loop ------------------------------------------------------------------
    # Theory of operation (leader/followers). Every task of a socket is a worker in the
    # socket's own nursery, the serve task included. One worker at a time has the reader's
    # role (it holds the `_reading` lock, once there is more than one worker): it reads until
    # it has a virtual request and runs the request itself, as an HTTP request runs in its
    # connection's task. While its requests finish without suspending (a handler that awaits
    # nothing slow, a reply the socket takes at once) it keeps the role and reads on: a request
    # costs no hand-off and no other task step. The first time one suspends (`_eager`), the
    # role goes to another worker at once (the lock is released to a worker waiting for it, or
    # a worker is started), so the socket is still read, pinged and closed while a handler is
    # slow. Requests a read decoded beyond the first (a burst: messages already received) wait
    # in `_pending`: the reader takes them in turn, and when one of its requests suspends, a
    # worker is started for each, so they run together; a worker takes a pending request
    # without the lock. At most MAX_IN_FLIGHT workers exist: when every one of them runs a
    # handler, nobody reads until one returns (the capacity limit, and the backpressure: the
    # client's frames wait in the kernel). A worker whose request is done waits to read again,
    # unless another is already waiting (then it ends: one spare per socket). When the session
    # ends (the client left or closed, a Disconnect), the worker that saw it cancels the
    # nursery: the socket's handlers and its push flusher end with it; an expiry cancels the
    # connection's scope, which holds the nursery.
    async def open(self) -> None:
        """Send the Engine.IO open packet (and, for EIO=3, the CONNECT of "/")."""
        await self._send(self.eio.open_frames(self._now()))

    def run(self, nursery: trio.Nursery) -> Awaitable[None]:
        """Serve in ``nursery`` (the socket's own) until the client leaves or the session
        ends; then ``result`` says how. The caller's task becomes the first worker.

        Returns:
            (awaitable) None.
        """
        self._nursery = nursery
        self._register()
        self._workers = self._readers = 1
        return self._work()  # its coroutine: no frame of our own

    def stop(self) -> None:
        """The socket's nursery is gone: pushes from now on are only queued."""
        self._nursery = None

    @property
    def result(self) -> tuple[int, str]:
        """The close code and reason the session ended with."""
        return self._result or (1000, "")

    async def _work(self) -> None:
        # one worker; whoever started it counted it in _workers and _readers
        pending = self._pending
        while True:
            if pending:  # decoded by an earlier read: taken without the reader's role
                self._readers -= 1
                await _eager(self._virtual(pending.pop(0)), self._start_workers)
            else:
                lock = self._reading  # None while there is one worker: nobody to exclude
                if lock is not None:
                    await lock.acquire()
                try:
                    while True:  # the reader's role, kept while its requests do not suspend
                        event = pending.pop(0) if pending else await self._next_request()
                        self._readers -= 1
                        if event is None:
                            return  # the session is over (the nursery is cancelled)
                        if await _eager(self._virtual(event), self._hand_off):
                            break  # it suspended: another worker took over reading
                        self._readers += 1
                finally:
                    # still held unless a request handed the role off (or it was cancelled
                    # after that)
                    if lock is not None and lock.statistics().owner is trio.lowlevel.current_task():
                        lock.release()
            if self._readers >= 2:
                self._workers -= 1
                return  # one reading and one waiting to: enough
            self._readers += 1

    def _hand_off(self) -> None:
        # the reader's request suspended (a slow handler, a full socket): the role goes to a
        # worker waiting for the lock, or to one started now, while the request waits
        lock = self._reading
        if lock is not None:
            lock.release()
        self._start_workers()

    def _start_workers(self) -> None:
        # a worker for each request already decoded, and one to go on reading, as far as
        # MAX_IN_FLIGHT allows (workers not yet started count as ready)
        wanted = len(self._pending) + 1 - self._readers
        if wanted > 0 and self._workers < MAX_IN_FLIGHT:
            nursery = self._nursery
            assert nursery is not None
            if self._reading is None:
                self._reading = trio.Lock()
            while wanted > 0 and self._workers < MAX_IN_FLIGHT:
                self._workers += 1
                self._readers += 1
                nursery.start_soon(self._work, name="socket.io worker")
                wanted -= 1

    def _end(self, code: int, reason: str) -> None:
        if self._result is None:
            self._result = (code, reason)
        nursery = self._nursery
        if nursery is not None:
            nursery.cancel_scope.cancel()  # the socket's other workers and its flusher end

    async def _next_request(self) -> eio.Event | None:
        """Read and decode until a virtual request is there (None: the session ended).

        Messages already received (``ws.buffered``: no wait) are decoded too, while the
        requests they hold fit in MAX_IN_FLIGHT, so that a burst starts together; the rest
        wait in ``_pending``.
        """
        pending = self._pending
        ws = self.ws
        session = self.eio
        while True:
            if pending and not (
                ws.buffered and self._workers - self._readers + len(pending) < MAX_IN_FLIGHT
            ):
                return pending.pop(0)
            try:
                message = await ws.receive()
            except WebSocketClosed:
                session.connection_lost()
                self._end(1000, "")
                return None
            now = self._now()
            if isinstance(message, str):
                events = session.receive_text(message, now)
            else:
                events = session.receive_bytes(message, now)
            if not self._registered:
                self._register()  # before the CONNECT reply goes out: pushes reach it
            out = session.frames_to_send()
            if out:
                await self._send(out)
            for event in events:
                if type(event) is eio.Event:
                    if event.name in _VIRTUAL:  # sails.is_virtual_request
                        self._msgs += 1
                        pending.append(event)
                elif type(event) is eio.Disconnected:
                    if event.detail:
                        log.info("socket.io %s: %s (%s)", self.id, event.reason, event.detail)
                    self._end(event.close_code, event.reason)
                    return None

    def _register(self) -> None:
        if self.eio.connected and not self._registered:
            self._registered = True
            self.hub.add(self)

    # -- a virtual request through the exchange --------------------------------------------------
    async def _virtual(self, event: eio.Event) -> None:
        """Run one virtual request through the exchange (the App, as for HTTP) and send its
        reply: the ack frame carrying the JWR (``{body, headers, statusCode}``), unless no
        reply is wanted (no ack id, or the socket is no longer connected).

        The request carries the client's headers merged with the handshake's as
        sails-hook-sockets does, and its ``data`` as ``req.body``, already parsed.
        """
        try:
            try:
                vreq = sails.parse_virtual_request(event.name, event.args, event.ack_id)
            except sails.SailsParseError as exc:
                if self.eio.connected:
                    await self._send(
                        [
                            eio.encode_eio(
                                eio.EIOType.MESSAGE,
                                eio.encode_sio(sails.parse_error_reply(exc, event.ack_id)),
                            )
                        ]
                    )
                return
            exchange = self.exchange
            limit = self._reply_limit
            started = self._now()
            sink = VirtualResponse(self.eio, vreq.ack_id, limit)
            try:
                target, path, query = _target(vreq.url)
            except RemoteProtocolError as exc:
                await exchange.refuse(sink, exc.status_hint, exc.message)
            else:
                base = self._handshake_merge
                if base is None:
                    handshake = self.handshake.headers
                    base = self._handshake_merge = sails.handshake_fields(handshake)
                    # the socket's requests meet their routes' CORS policy when its page
                    # came from another origin (gateway.app.cors)
                    origin = base.get("origin")
                    self.info.cross_origin = origin is not None and not same_origin(
                        origin, handshake.get("host")
                    )
                headers = sails.merge_headers(vreq.headers, base)
                info = self.info
                req = exchange.request(
                    info,
                    vreq.method,
                    target,
                    path,
                    query,
                    (),
                    ValueSource(vreq.data),
                    authorization=headers.get("authorization"),
                    headers=headers,
                    body=vreq.data,
                )
                self.hub.bind_request(req, self.id)
                try:
                    await exchange.run(info, req, sink, None, started)
                except WebSocketClosed:
                    raise
                except Exception as exc:
                    # failed after the reply had started (a stream left broken, an oversized
                    # streamed body, a handler deadline): nothing went out yet over a socket,
                    # so an error reply can
                    sink = VirtualResponse(self.eio, vreq.ack_id, limit)
                    await exchange.refuse(sink, _late_status(exc), "")
                finally:
                    self.hub.unbind_request(req)
            if sink.frame is not None:
                await self._send([sink.frame])
        except WebSocketClosed:
            pass
        except Exception:
            log.exception("socket.io %s: virtual request failed", self.id)

    # -- sending: acks and pushes share one bounded, ordered queue --------------------------------
    async def _send(self, texts: list[str]) -> None:
        ws = self.ws
        frame = ws.encode(texts[0]) if len(texts) == 1 else b"".join(ws.encode(t) for t in texts)
        if self._flushing:
            self._queue(frame)
            return
        self._flushing = True
        try:
            await ws.send_frame(frame)
            if self._outbox:  # pushes queued while it was sent
                await self._drain()
        finally:
            self._flushing = False

    async def _drain(self) -> None:
        while self._outbox and not self._dead:
            data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
            self._outbox.clear()
            self._outbox_bytes = 0
            await self.ws.send_frame(data)

    async def _flush_task(self) -> None:
        try:
            await self._drain()
        except WebSocketClosed:
            pass
        finally:
            self._flushing = False

    def _queue(self, frame: bytes) -> None:
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)
        limit = self.manager.settings.websocket.send_queue_bytes
        # one frame may exceed the limit on its own (messages have their own ceiling)
        if self._outbox_bytes > limit and len(self._outbox) > 1 and not self._dead:
            log.warning(
                "socket.io %s: dropped a slow consumer: %d bytes queued "
                "(websocket.send_queue_bytes = %d)",
                self.id,
                self._outbox_bytes,
                limit,
            )
            self._dead = True
            self._outbox.clear()
            self._outbox_bytes = 0
            self.hub.remove(self)
            self.ws.expire(1008, "send queue full")

    def _push_frame(self, frame: bytes) -> None:
        self._queue(frame)
        nursery = self._nursery
        if nursery is not None and not self._flushing and not self._dead:
            # without a nursery (not served yet, or over) the frame waits for the next _send
            self._flushing = True
            nursery.start_soon(self._flush_task, name="socket.io flush")

    def deliver(self, push: Push) -> bool:
        """Queue a server push (``42["event",data]``) without waiting (the hub calls this).

        Returns:
            False if the socket is not connected or was dropped as a slow consumer.

        Raises:
            ValueError, TypeError: the event name is reserved or the data is not JSON-able.
        """
        if self._dead or not self.eio.connected:
            return False
        ws = self.ws
        frame = push.frame if ws.shareable_frames else None
        if frame is None:
            text = push.text
            if text is None:
                text = push.text = self.eio.send_event(push.event, push.data)
            frame = ws.encode(text)
            if ws.shareable_frames:
                push.frame = frame
        self._msgs += 1
        self._push_frame(frame)
        return not self._dead

    # -- timers (WebSocketManager's ticker) ------------------------------------------------------
    def tick(self, now: float) -> None:
        """Engine.IO heartbeats (poll at next_deadline) and the idle timeout."""
        session = self.eio
        deadline = session.next_deadline()
        if deadline is not None and now >= deadline:
            ended = session.poll(now)
            for text in session.frames_to_send():
                self._push_frame(self.ws.encode(text))
            if ended is not None:
                self.expire(ended.close_code, ended.reason)
                return
        if self._msgs != self._seen_msgs:
            self._seen_msgs = self._msgs
            self._last_active = now
        elif now - self._last_active >= self.manager.settings.websocket.idle_timeout_s:
            self.expire(1001, "idle timeout")

    def expire(self, code: int, reason: str) -> None:
        """End the connection from outside (timer, shutdown, slow consumer)."""
        self.ws.expire(code, reason)


@types.coroutine
def _eager(
    coro: Coroutine[Any, Any, None], on_suspend: Callable[[], None]
) -> Generator[Any, Any, bool]:
    """Await ``coro`` in the calling task, and call ``on_suspend`` (synchronously, in this
    task) the first time it suspends the task: before its first trap goes to trio. A
    coroutine that finishes without suspending costs no callback at all.

    After the first trap, what trio sends or throws in is passed on to ``coro``, as
    ``yield from`` does (PEP 380), which cannot be used here: ``coro`` has already started.

    Returns:
        (awaited) True if ``coro`` suspended the task.
    """
    try:
        trap = coro.send(None)
    except StopIteration:
        return False
    try:
        on_suspend()
    except BaseException:
        coro.close()
        raise
    while True:
        try:
            sent = yield trap
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # trio's Cancelled or an error delivered to the task
            try:
                trap = coro.throw(exc)
            except StopIteration:
                return True
        else:
            try:
                trap = coro.send(sent)
            except StopIteration:
                return True


class _SocketInfo:
    """The connection as a socket's virtual requests see it (a ConnectionInfo), and whether
    the handshake came from a page of another origin (``cross_origin``, read by the CORS
    check of gateway.app.cors)."""

    __slots__ = ("peer", "scheme", "privileged", "peer_text", "cross_origin")

    def __init__(
        self, peer: tuple[str, int] | None, scheme: str, privileged: bool, peer_text: str
    ) -> None:
        self.peer = peer
        self.scheme = scheme
        self.privileged = privileged
        self.peer_text = peer_text
        self.cross_origin = False


def _target(url: str) -> tuple[str, str, str]:
    """(target, path, query) of a virtual request's url; non-ASCII is percent-encoded as a
    browser would, then the target is checked like an HTTP request-target.

    Raises:
        RemoteProtocolError: (400) not a valid request-target; (404, "Not Found") a path
            without its leading "/" (``echo``): Sails routes it to nothing (every route path
            starts with "/") and answers 404, so no handler or middleware sees it here either.
    """
    visible = url.isascii() and url.isprintable() and " " not in url
    if url[:1] == "/":
        if visible:  # origin-form, as split_target() splits it, without bytes and back
            h = url.find("#")
            path, _, query = (url if h < 0 else url[:h]).partition("?")
            return url, path, query
    elif "://" not in url:
        raise RemoteProtocolError("Not Found", 404)
    if visible:
        raw = url.encode("ascii")  # already visible ASCII: quote() would not change it
    else:
        raw = quote(url, safe=_VISIBLE_ASCII).encode("ascii")
    url, path, query, _ = split_target(raw)
    return url, path, query
