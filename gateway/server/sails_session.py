# The Socket.IO endpoint (/socket.io/, EIO=3 and EIO=4, websocket transport only) and Sails
# virtual requests: each `get/post/...` event becomes a Request through the SAME App, router and
# middleware as HTTP, answered with a JWR through the event's ack; server pushes from app.sockets.
# Owns: the connection loop (read, decode, dispatch), at most MAX_IN_FLIGHT virtual requests per
# socket, the collecting ResponseSink (capped), and the socket's bounded outbound queue.
# Must not: parse Engine.IO/Socket.IO/Sails itself (gateway.ws does) or build error replies
# (App.handle_request does, in one place).
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import trio

from gateway.app.body import BytesSource
from gateway.app.pubsub import Push, SocketHub
from gateway.app.request import Request
from gateway.app.response import Response
from gateway.errors import HTTPError, ProtocolError, WebSocketClosed
from gateway.http.target import split_target
from gateway.ws import engineio as eio
from gateway.ws import sails

if TYPE_CHECKING:
    from gateway.server.http_session import HTTPSession
    from gateway.server.upgrade import WebSocketManager
    from gateway.server.websocket import WebSocket

__all__ = ["accept", "serve", "SailsSocket", "VirtualResponse", "MAX_IN_FLIGHT"]

log = logging.getLogger("gateway.sails")

# Sails handles a socket's requests as they come; a bounded number in flight keeps one socket
# from taking every task and byte (the reader stops reading until a slot frees: backpressure).
MAX_IN_FLIGHT: Final = 8
_VISIBLE_ASCII: Final = "".join(chr(c) for c in range(0x21, 0x7F))
_DROP_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection"})
# a virtual request's data as its JSON body (one encoder: json.dumps with options builds one)
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


async def accept(manager: WebSocketManager, session: HTTPSession, req: Request,
                 res: Response) -> None:
    """Answer a request for /socket.io/: take a valid websocket handshake over, or reply 400,
    403 or 503 through App.send_error (polling is refused: websocket transport only)."""
    app = manager.server.app
    query = req.query
    version = query.get("EIO")
    transport = query.get("transport")
    try:
        if transport != "websocket" or not req.upgrade:
            raise HTTPError(400, "Socket.IO: only the websocket transport is supported "
                                 "(connect with transports: ['websocket'])")
        if version not in ("3", "4"):
            raise HTTPError(400, "Socket.IO: unsupported Engine.IO version (EIO=3 or EIO=4)")
        offer = manager.check(session, req)
    except HTTPError as exc:
        await app.send_error(req, res, exc.status, exc.message, exc.headers)
        return
    manager.take_over(session, req, res, offer, None, None, int(version))


async def serve(manager: WebSocketManager, session: HTTPSession, ws: WebSocket,
                version: Literal[3, 4]) -> None:
    """Serve an accepted Socket.IO connection until it ends (the server calls this)."""
    sock = SailsSocket(manager, session, ws, version)
    code, reason = 1000, ""
    manager.active.add(sock)
    try:
        code, reason = await sock.run()  # returns its coroutine: no frame of its own
    except Exception:
        log.exception("socket.io %s: connection failed", sock.id)
        code, reason = 1011, "internal error"
    finally:
        sock.stop()
        manager.active.discard(sock)
        sock.hub.remove(sock)
        await ws.finish(code, reason)


class VirtualResponse:
    """A ResponseSink that collects a virtual response, at most ``limit`` body bytes.

    Past the limit the body is dropped at once (memory stays bounded) and the reply becomes a
    500 JWR.
    """

    __slots__ = ("head_only", "status", "headers", "_chunks", "_size", "limit", "overflow")

    def __init__(self, limit: int, head_only: bool = False) -> None:
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self.limit = limit
        self.overflow = False

    def _add(self, data: bytes) -> None:
        if self.overflow or not data:
            return
        self._size += len(data)
        if self._size > self.limit:
            self.overflow = True
            self._chunks.clear()
        else:
            self._chunks.append(data)

    async def send_response(self, status: int, headers: list[tuple[str, str]],
                            body: bytes | None, end: bool) -> None:
        self.status = status
        self.headers = headers
        if body:
            self._add(body)

    async def send_data(self, data: bytes) -> None:
        self._add(data)

    async def end(self) -> None:
        return None

    async def send_file(self, path: str, size: int) -> None:
        if size > self.limit:
            self.overflow = True
            self._chunks.clear()
            return
        async with await trio.open_file(path, "rb") as f:
            left = size
            while left > 0 and not self.overflow:
                chunk = await f.read(min(65536, left))
                if not chunk:
                    break
                left -= len(chunk)
                self._add(chunk)

    def jwr(self) -> dict[str, Any]:
        """The JWR for what was collected: ``{body, headers, statusCode}``.

        JSON bodies are parsed back (what res.json() gave), others are text. The App's 404
        error reply becomes ``"Not Found"``, the body Sails sends for a 404.
        """
        if self.overflow:
            log.warning("virtual response over websocket.max_virtual_response_bytes (%d)",
                        self.limit)
            return sails.status_jwr(500)
        headers = [(k, v) for k, v in self.headers if k.lower() not in _DROP_HEADERS]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        body = sails.body_from_http(content_type, b"".join(self._chunks))
        if (self.status == 404 and isinstance(body, dict) and body.keys() == {"error", "status"}
                and body["status"] == 404):
            body = sails.NOT_FOUND
        return sails.jwr(self.status, headers, body)


class SailsSocket:
    """One Socket.IO connection: Engine.IO session, virtual requests, pushes, timers.

    Args:
        manager: the server's WebSocketManager.
        session: the HTTP session that was upgraded (handshake request, privilege, scope).
        ws: the open WebSocket.
        version: Engine.IO protocol version (3: sails.io.js 1.x; 4: socket.io-client 4).
    """

    __slots__ = ("id", "ws", "eio", "manager", "app", "hub", "info", "handshake",
                 "_privileged", "_outbox", "_outbox_bytes", "_flushing", "_dead", "_in_flight",
                 "_slot_free", "_work", "_idle", "_lot", "_stopping", "_msgs", "_reader", "_result",
                 "_ended",
                 "_seen_msgs", "_last_active",
                 "_registered", "_handshake_merge")

    def __init__(self, manager: WebSocketManager, session: HTTPSession, ws: WebSocket,
                 version: Literal[3, 4]) -> None:
        settings = manager.server.settings.websocket
        self.id = secrets.token_urlsafe(15)
        self.ws = ws
        self.eio = eio.EngineIOSession(
            version, self.id, ping_interval_s=settings.ping_interval_s,
            ping_timeout_s=settings.pong_timeout_s, max_payload_bytes=settings.max_message_bytes)
        self.manager = manager
        self.app = manager.server.app
        self.hub: SocketHub = self.app.sockets
        self.info = session.info
        self.handshake = ws.request
        # what merge_headers takes from the handshake (cookie, host, origin), joined once per
        # socket instead of scanning every handshake header on every virtual request
        self._handshake_merge: dict[str, str] | None = None
        self._privileged = ws.request.privileged
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._flushing = False
        self._dead = False
        self._in_flight = 0
        self._slot_free: trio.Event | None = None
        self._work: list[eio.Event] = []
        self._idle = 0  # parked tasks
        self._reader = False  # a task holds the reading role
        self._result: tuple[int, str] | None = None  # how the session ended
        self._ended: trio.Event | None = None  # made when the serve task stops reading
        self._lot: trio.lowlevel.ParkingLot | None = None  # made with the first spare
        self._stopping = False
        self._msgs = self._seen_msgs = 0
        self._last_active = trio.current_time()
        self._registered = False

    # -- the connection loop ------------------------------------------------------------------
    def run(self) -> Awaitable[tuple[int, str]]:
        """Serve until the client leaves or the session ends; then call stop().

        The socket's tasks (reader, request runners, one spare) and the push flusher run in
        the manager's nursery, not one of our own: a nursery per socket costs ~1 KiB that an
        idle socket would keep for nothing.

        Returns:
            (awaitable) The close code and reason.
        """
        return self._loop()

    def stop(self) -> None:
        """The socket is over: requests in flight finish (replies dropped); idle tasks go."""
        self._stopping = True
        if self._lot is not None:
            self._lot.unpark_all()

    # Theory of operation. One task at a time holds the reading role (`_reader`): it reads and
    # decodes until a read leaves virtual requests in `_work`, then gives the role up and runs
    # the first request itself while a parked task (or a new one) takes the role over: the
    # request costs no hand-off round of its own, as an HTTP request in its connection's task,
    # and the socket is still read, pinged and closed while a handler is slow. More requests
    # from the same read go to more tasks, MAX_IN_FLIGHT at most (then the reader waits: that
    # is the backpressure). The serve task reads until the first request and then only waits
    # for the end: handlers must not run in it (an expired socket's scope is cancelled, and
    # the close handshake must not wait for a handler). A task that finishes a request takes
    # the role if it is free, else runs queued work, else parks (one spare per socket) or ends.
    async def _loop(self) -> tuple[int, str]:
        await self._send(self.eio.open_frames(trio.current_time()))
        self._register()
        self._reader = True
        while await self._read():
            self._reader = False
            self._ended = trio.Event()  # before any other task can end the session
            if self._wake(len(self._work) + 1):
                break
            self._reader = True  # no task nursery (not serving): the requests run in line
            while self._work:
                await self._virtual(self._work.pop(0))
        else:
            # the session ended: requests read before its end still run (replies dropped)
            if self._work and not self._wake(len(self._work)):
                while self._work:
                    await self._virtual(self._work.pop(0))
            return self._result or (1000, "")
        while self._result is None:
            await self._ended.wait()
        return self._result

    async def _task(self) -> None:
        # a task of the socket's, in the manager's nursery: reader, request runner or spare
        try:
            while True:
                if not self._reader and self._result is None and not self._stopping:
                    self._reader = True
                    if not await self._read():
                        self._wake(len(self._work))  # the session ended: queued work runs
                    else:
                        self._reader = False
                        event = self._work.pop(0)
                        if not self._wake(len(self._work) + 1):
                            self._reader = True  # not serving any more: no more reading
                            self._end(1001, "server shutting down")
                        await self._virtual(event)
                elif self._work:
                    await self._virtual(self._work.pop(0))
                elif self._idle or self._stopping or self._result is not None:
                    return  # one parked task per socket is enough
                else:
                    self._idle += 1
                    if self._lot is None:
                        self._lot = trio.lowlevel.ParkingLot()
                    await self._lot.park()
        except Exception:
            log.exception("socket.io %s: socket task failed", self.id)
            self._reader = False
            self._end(1011, "internal error")

    def _wake(self, n: int) -> bool:
        # n more tasks: parked ones first ("handing work to a parked task costs about half of
        # spawning one"). False if the manager's nursery is gone (not serving).
        for _ in range(n):
            if self._idle and self._lot is not None:
                self._idle -= 1
                self._lot.unpark()
            elif not self.manager.spawn(self._task):
                return False
        return True

    def _end(self, code: int, reason: str) -> None:
        if self._result is None:
            self._result = (code, reason)
        if self._ended is not None:
            self._ended.set()

    async def _read(self) -> bool:
        """Read and decode as the holder of the reading role.

        Returns:
            True when requests wait in ``_work`` (no more input is buffered, or MAX_IN_FLIGHT
            are taken); False when the session is over (``_result`` says how) or stopping.
        """
        ws = self.ws
        session = self.eio
        work = self._work
        while True:
            while self._in_flight >= MAX_IN_FLIGHT and not self._stopping:
                ev = self._slot_free = self._slot_free or trio.Event()
                await ev.wait()
            if self._stopping or self._result is not None:
                return False  # serve() is closing the WebSocket: it reads what is left
            try:
                message = await ws.receive()
            except WebSocketClosed:
                session.connection_lost()
                self._end(1000, "")
                return False
            if self._stopping or self._result is not None:
                return False
            now = trio.current_time()
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
                    if sails.is_virtual_request(event.name):
                        self._in_flight += 1
                        self._msgs += 1
                        work.append(event)
                elif type(event) is eio.Disconnected:
                    if event.detail:
                        log.info("socket.io %s: %s (%s)", self.id, event.reason, event.detail)
                    self._end(event.close_code, event.reason)
                    return False
            # messages already read (ws.receive() would not wait) join this batch of work
            if work and (not ws.buffered or self._in_flight >= MAX_IN_FLIGHT):
                return True

    def _register(self) -> None:
        if self.eio.connected and not self._registered:
            self._registered = True
            self.hub.add(self)

    async def _virtual(self, event: eio.Event) -> None:
        try:
            reply = await self._reply(event)
            if reply is not None:
                await self._send([reply])
        except WebSocketClosed:
            pass
        except Exception:
            log.exception("socket.io %s: virtual request failed", self.id)
        finally:
            self._in_flight -= 1
            ev = self._slot_free
            if ev is not None:
                self._slot_free = None
                ev.set()

    async def _reply(self, event: eio.Event) -> str | None:
        try:
            vreq = sails.parse_virtual_request(event.name, event.args, event.ack_id)
        except sails.SailsParseError as exc:
            if not self.eio.connected:
                return None
            return eio.encode_eio(eio.EIOType.MESSAGE,
                                  eio.encode_sio(sails.parse_error_reply(exc, event.ack_id)))
        reply = await self.dispatch(vreq)
        if vreq.ack_id is None or not self.eio.connected:
            return None
        try:
            return self.eio.send_ack(vreq.ack_id, [reply])
        except (ValueError, TypeError):
            return self.eio.send_ack(vreq.ack_id, [sails.status_jwr(500)])

    # -- a virtual request through the App ------------------------------------------------------
    async def dispatch(self, vreq: sails.VirtualRequest) -> dict[str, Any]:
        """Run one virtual request through the App and return its JWR.

        Args:
            vreq: the parsed request.

        Returns:
            The JWR (``{body, headers, statusCode}``).
        """
        app = self.app
        settings = self.manager.server.settings
        try:
            target, path, query = _target(vreq.url)
        except ProtocolError as exc:
            return sails.jwr(400, {}, exc.message)
        base = self._handshake_merge
        if base is None:
            hs = sails.merge_headers({}, self.handshake.headers)
            base = self._handshake_merge = {k: v for k, v in hs.items()
                                            if k in ("cookie", "host", "origin")}
        message_headers = vreq.headers
        # without message headers the merge is the handshake's part as it is
        headers = sails.merge_headers(message_headers, base) if message_headers else base.copy()
        data = vreq.data
        if type(data) is dict and not data:
            body = b"{}"  # what most virtual requests carry (a GET's data)
        else:
            body = _JSON.encode(data).encode()
        privileged, auth_failed = self._privileged, False
        if not privileged and "authorization" in headers:
            privileged, auth_failed = app.credentials.check_authorization(headers["authorization"])
        if message_headers and not all(v.isascii() for v in message_headers.values()):
            # names are tokens (checked by the parser); values as an HTTP client sends them
            headers = {k: _latin1(v) for k, v in headers.items()}
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        # the headers as Request would decode them from an HTTP request's bytes, without bytes
        req = Request(
            app, vreq.method, target, path, query, (),
            protocol=self.info.scheme, client=self.info.peer, source=BytesSource(body),
            budget=app.budget, limits=settings.privileged if privileged else settings.user,
            privileged=privileged, is_socket=True, auth_failed=auth_failed, headers=headers)
        sink = VirtualResponse(settings.websocket.max_virtual_response_bytes,
                               vreq.method == "HEAD")
        res = Response(sink)
        self.hub.bind_request(req, self.id)
        started = trio.current_time()
        try:
            await app.handle_request(req, res)
            if res.headers_sent and not res.finished:
                await res.end()
        finally:
            self.hub.unbind_request(req)
            stream = req._stream
            if stream is not None:
                await stream.finish()
            # counted as an HTTP request is in Server.log_access, with its transport
            app.metrics.observe(req.method, res.status_code, req.privileged, "socket",
                                trio.current_time() - started, len(body), res.bytes_sent,
                                req.path)
        return sink.jwr()

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
        limit = self.manager.server.settings.websocket.send_queue_bytes
        # one frame may exceed the limit on its own (messages have their own ceiling)
        if self._outbox_bytes > limit and len(self._outbox) > 1 and not self._dead:
            log.warning("socket.io %s: dropped a slow consumer: %d bytes queued "
                        "(websocket.send_queue_bytes = %d)", self.id, self._outbox_bytes, limit)
            self._dead = True
            self._outbox.clear()
            self._outbox_bytes = 0
            self.hub.remove(self)
            self.ws.expire(1008, "send queue full")

    def _push_frame(self, frame: bytes) -> None:
        self._queue(frame)
        if not self._flushing and not self._dead:
            self._flushing = self.manager.spawn(self._flush_task)

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
        elif now - self._last_active >= self.manager.server.settings.websocket.idle_timeout_s:
            self.expire(1001, "idle timeout")

    def expire(self, code: int, reason: str) -> None:
        """End the connection from outside (timer, shutdown, slow consumer)."""
        self.ws.expire(code, reason)


def _latin1(text: str) -> str:
    # What Request would decode (latin-1) from the header's bytes: the text itself when
    # latin-1 can encode it, else its UTF-8 bytes (as an HTTP client would send them).
    # surrogatepass: JSON can carry lone surrogates ("\ud800"); they must not raise here (the
    # request would be lost, unanswered), so they go through as their 3-byte encoding.
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _target(url: str) -> tuple[str, str, str]:
    """(target, path, query) of a virtual request's url; non-ASCII is percent-encoded as a
    browser would, then the target is checked like an HTTP request-target.

    Raises:
        ProtocolError: (400) not a valid request-target.
    """
    if not url.startswith("/") and "://" not in url:
        url = "/" + url
    if url.isascii() and url.isprintable() and " " not in url:
        raw = url.encode("ascii")  # already visible ASCII: quote() would not change it
    else:
        raw = quote(url, safe=_VISIBLE_ASCII).encode("ascii")
    url, path, query, _ = split_target(raw)
    return url, path, query
