# The switch from HTTP to WebSocket: UpgradeSink (what a ws route's accept goes through, after
# middleware and privilege checks), the handshake checks (headers, Origin by gateway.app.cors's
# policy, connection count),
# the 101 and the socket's lifetime (_Upgrade.serve), and WebSocketManager: the one ticker task
# for every socket's ping, pong and idle timers, and a nursery for short helper tasks.
# Must not: parse frames or hold per-message state (gateway.server.websocket), or build error
# replies (App does; checks raise HTTPError before any 101 is sent).
from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import trio
from wsproto.extensions import Extension

from gateway.app.cors import socket_allowed
from gateway.errors import Forbidden, HTTPError, ServiceUnavailable, WebSocketClosed
from gateway.server.websocket import WebSocket
from gateway.ws import handshake

if TYPE_CHECKING:
    from gateway.app.application import App
    from gateway.app.contracts import ResponseSink
    from gateway.app.exchange import Endpoint, Exchange
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.server.http_session import HTTPSession
    from gateway.settings import Settings

__all__ = ["WebSocketManager", "UpgradeSink", "UpgradeHost"]

log = logging.getLogger("gateway.websocket")

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\ncontent-length: 30\r\nconnection: close\r\n\r\n"
    b"Too many WebSocket connections"
)
Handler = Callable[..., Awaitable[None]]


# The handshake's own fields, read without building req.headers: the request lives as long as
# the socket, and a decoded copy of every header costs ~0.7 KiB per idle socket.
_FIELDS = frozenset(
    (
        b"upgrade",
        b"connection",
        b"sec-websocket-version",
        b"sec-websocket-key",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
        b"origin",
        b"host",
    )
)


class UpgradeHost(Protocol):
    """What the WebSocket layer needs of the server (gateway.server.serve.Server)."""

    ws_active: int  # open WebSockets (plain and Socket.IO): the connection cap counts them

    @property
    def settings(self) -> Settings: ...

    @property
    def app(self) -> App: ...

    @property
    def exchange(self) -> Exchange: ...

    @property
    def draining(self) -> bool: ...

    def closing_scope(self) -> AbstractContextManager[trio.CancelScope]: ...


class UpgradeSink:
    """The ResponseSink of a WebSocket Upgrade request.

    HTTP replies (401, 403, 404, 503, ...) go to the HTTP session unchanged;
    ``accept_websocket`` is the capability a ws route uses (called by the router).
    """

    carries_values = False

    __slots__ = ("_session", "_manager", "head_only")

    def __init__(self, session: HTTPSession, manager: WebSocketManager) -> None:
        self._session = session
        self._manager = manager
        self.head_only = session.head_only

    async def send_response(
        self, status: int, headers: list[tuple[str, str]], body: bytes | None, end: bool
    ) -> None:
        await self._session.send_response(status, headers, body, end)

    async def send_data(self, data: bytes) -> None:
        await self._session.send_data(data)

    async def end(self) -> None:
        await self._session.end()

    async def send_file(self, path: str, size: int) -> None:
        await self._session.send_file(path, size)

    async def accept_websocket(
        self, req: Request, res: Response, handler: Handler, options: dict[str, Any]
    ) -> None:
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
        server: the server (settings, app, exchange, ``ws_active`` counter, draining flag).
    """

    def __init__(self, server: UpgradeHost) -> None:
        self.server = server
        self.active: set[Ticking] = set()
        self._nursery: trio.Nursery | None = None

    # what the sockets read of the server (gateway.server.websocket.SocketHost and more)
    @property
    def settings(self) -> Settings:
        return self.server.settings

    @property
    def draining(self) -> bool:
        return self.server.draining

    def closing_scope(self) -> AbstractContextManager[trio.CancelScope]:
        """The server's shielded scope for last words, bounded by the drain's deadline."""
        return self.server.closing_scope()

    @property
    def app(self) -> App:
        return self.server.app

    @property
    def exchange(self) -> Exchange:
        return self.server.exchange

    # -- upgrades -----------------------------------------------------------------------------
    def route(self, session: HTTPSession, req: Request) -> tuple[ResponseSink, Endpoint | None]:
        """The sink and endpoint of an Upgrade or /socket.io request: /socket.io is answered by
        the Engine.IO endpoint (before the app), a WebSocket upgrade gets an UpgradeSink so
        that the router's ws routes can accept it (after middleware); anything else is plain
        HTTP."""
        if req.path in ("/socket.io/", "/socket.io"):
            return session, partial(self.accept_socketio, session)
        if req.upgrade:  # a GET with Upgrade: websocket (flagged by the HTTP session)
            return UpgradeSink(session, self), None
        return session, None

    async def accept_socketio(self, session: HTTPSession, req: Request, res: Response) -> None:
        """The /socket.io/ endpoint: take a valid websocket handshake over (Engine.IO and the
        Sails socket load when the first one starts: ~250 KiB an app without such clients
        never pays).

        Raises:
            HTTPError: 400 (polling, or an unsupported Engine.IO version: websocket transport
                only), 403 (origin), 503 (too many WebSockets); the exchange replies with it.
        """
        query = req.query
        version = query.get("EIO")
        if query.get("transport") != "websocket" or not req.upgrade:
            raise HTTPError(
                400,
                "Socket.IO: only the websocket transport is supported "
                "(connect with transports: ['websocket'])",
            )
        if version not in ("3", "4"):
            raise HTTPError(400, "Socket.IO: unsupported Engine.IO version (EIO=3 or EIO=4)")
        offer = self.check(session, req)
        self.take_over(session, req, res, offer, None, None, int(version))

    def check(self, session: HTTPSession, req: Request) -> handshake.Offer:
        """The checks before any 101: handshake headers, Origin, connection count.

        Raises:
            HTTPError: 400/426, 403, 503.
        """
        server = self.server
        ws = server.settings.websocket
        headers = req.header_fields(_FIELDS)
        offer = handshake.check_upgrade(req.method, req.http_version, headers)
        app = server.app
        # the one origin policy ([cors], the ws route's cors option), same-origin pages always
        if not socket_allowed(
            app.cors_policies,
            app,
            ws.allowed_origins,
            headers.get("origin"),
            headers.get("host"),
            req.base_url + req.path,
        ):
            raise Forbidden(None, "WebSocket origin not allowed")
        if server.ws_active >= ws.max_connections:
            raise ServiceUnavailable(None, "Too many WebSocket connections", {"Retry-After": "1"})
        return offer

    def accept(
        self,
        session: HTTPSession,
        req: Request,
        res: Response,
        handler: Handler,
        options: dict[str, Any],
    ) -> None:
        """Accept a ws route's handshake: the 101 and the handler run when the request ends.

        Raises:
            HTTPError: see check().
        """
        offer = self.check(session, req)
        subprotocol = handshake.choose_subprotocol(offer.subprotocols, options.get("subprotocols"))
        self.take_over(session, req, res, offer, subprotocol, handler)

    def take_over(
        self,
        session: HTTPSession,
        req: Request,
        res: Response,
        offer: handshake.Offer,
        subprotocol: str | None,
        handler: Handler | None,
        version: int = 0,
    ) -> None:
        """Arrange for the session to switch protocols once the HTTP exchange is over: a ws
        route's ``handler(ws, req)``, or (handler None) Engine.IO ``version``."""
        exts: list[Extension] = []
        ext_value = None
        if self.server.settings.websocket.permessage_deflate:
            exts, ext_value = handshake.negotiate_deflate(offer.extensions)
        head = handshake.accept_response(offer.key, subprotocol, ext_value)
        up = _Upgrade(self, session, req, head, exts, subprotocol, handler, version)
        session.upgrade_handler = up.serve
        res.status_code = 101
        res.headers_sent = True
        res.finished = True

    # -- the timer task -----------------------------------------------------------------------
    def interval(self) -> float:
        ws = self.server.settings.websocket
        return min(
            1.0, max(0.02, min(ws.ping_interval_s, ws.pong_timeout_s, ws.idle_timeout_s) / 4)
        )

    async def run(self) -> None:
        """Tick every socket a few times per timeout period until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                while True:
                    await trio.sleep(self.interval())
                    if self.server.draining:  # also a socket upgraded after shutdown()
                        self.expire_all(1001, "server shutting down")
                        continue
                    now = trio.current_time()
                    for conn in list(self.active):
                        conn.tick(now)
            finally:
                self._nursery = None

    def expire_all(self, code: int, reason: str) -> None:
        """End every socket from outside (the server's drain): each closes with ``code``."""
        for conn in list(self.active):
            conn.expire(code, reason)

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run a short helper task (ping, background read, flush); False if not serving."""
        nursery = self._nursery  # the timer task's (its ticks are what spawn helpers)
        if nursery is None:
            return False
        nursery.start_soon(fn)
        return True


class _Upgrade:
    """A switch of protocols the HTTP session runs (``session.upgrade_handler = up.serve``)
    after the request: the 101, then the WebSocket for its whole life. One coroutine frame
    for the lot: every frame stays allocated for as long as the socket is open."""

    __slots__ = ("manager", "session", "req", "head", "exts", "subprotocol", "handler", "version")

    def __init__(
        self,
        manager: WebSocketManager,
        session: HTTPSession,
        req: Request,
        head: bytes,
        exts: list[Extension],
        subprotocol: str | None,
        handler: Handler | None,
        version: int,
    ) -> None:
        self.manager = manager
        self.session = session
        self.req = req
        self.head = head
        self.exts = exts
        self.subprotocol = subprotocol
        self.handler = handler
        self.version = version

    async def serve(self) -> None:
        manager = self.manager
        server = manager.server
        session = self.session
        stream = session.stream
        if server.ws_active >= server.settings.websocket.max_connections:
            with trio.move_on_after(1.0):
                await stream.send_all(_BUSY)  # lost a race with another handshake
            return
        trailing = bytes(session.conn.trailing_data[0])
        session.release_http_state()
        session.deadline = trio.current_time() + server.settings.http.send_timeout_s
        try:
            await stream.send_all(self.head)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            session.deadline = math.inf
        req = self.req
        req.compact_headers()  # it lives as long as the socket
        ws = WebSocket(
            stream,
            session,
            self.req,
            manager=manager,
            extensions=self.exts,
            subprotocol=self.subprotocol,
            trailing=trailing,
        )
        handler = self.handler
        self.req = self.head = None  # type: ignore[assignment]
        server.ws_active += 1
        if server.draining:  # shutdown() came during the 101: closed with the rest, at once
            ws.expire(1001, "server shutting down")
        try:
            if handler is None:
                from gateway.server import sails_session

                await sails_session.serve(manager, session.info, ws, 3 if self.version == 3 else 4)
                return
            code, reason = 1000, ""
            manager.active.add(ws)
            try:
                await handler(ws, ws.request)
            except WebSocketClosed:
                pass
            except Exception:
                log.exception("websocket %s: unhandled error in handler", ws.request.path)
                code, reason = 1011, "internal error"
            finally:
                manager.active.discard(ws)
                await ws.finish(code, reason)
        finally:
            server.ws_active -= 1
