# Listeners and connections: TCP (optionally TLS), the local Unix socket with SO_PEERCRED
# privilege, and systemd-passed sockets; the LAN guard at accept; the connection cap (a canned
# 503 and close, bounded); statistics; the access log; graceful drain on stop.
# Must not: parse HTTP or know routes; sessions (http_session, websocket) do the per-connection work.
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from gateway.app.exchange import Exchange
from gateway.http.connection import HTTPLimits
from gateway.server.http_session import HTTPSession

if TYPE_CHECKING:
    from gateway.app.application import App
    from gateway.app.contracts import ConnectionInfo as AnyConnection
    from gateway.app.contracts import ResponseSink
    from gateway.app.exchange import Endpoint
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.server.upgrade import WebSocketManager
    from gateway.settings import Settings

__all__ = ["Server", "ConnectionInfo", "serve"]

log = logging.getLogger("gateway.server")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"retry-after: 1\r\ncontent-length: 42\r\nconnection: close\r\n\r\n"
         b"Server busy: too many connections, retry\r\n")
_ESCAPE = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f, 0x22, 0x5c]}


@dataclass(slots=True)
class ConnectionInfo:
    """What the server knows about a connection when it is accepted."""

    peer: tuple[str, int] | None
    scheme: str = "http"
    privileged: bool = False
    peer_text: str = "-"


@dataclass(slots=True)
class _Listener:
    sock: trio.socket.SocketType
    kind: str  # "tcp" or "unix"
    address: Any = None


@dataclass
class _Stats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("accepted", "active", "rejected_busy", "rejected_network", "protocol_errors"), 0))


class Server:
    """A running gateway for one App and one Settings.

    Args:
        app: the application (already bound to ``settings``).
        settings: the resolved profile.
        sockets: already-listening sockets (systemd socket activation); if given, no new TCP
            listener is opened.
    """

    def __init__(self, app: App, settings: Settings,
                 sockets: list[socket.socket] | None = None) -> None:
        self.app = app
        self._apply(settings)
        self._passed = sockets or []
        self.listeners: list[_Listener] = []
        self.stats = _Stats().counts
        self.draining = False
        self._sessions: set[HTTPSession] = set()
        self._rejecting = 0
        self._nursery: trio.Nursery | None = None
        self._accept_scope = trio.CancelScope()
        self._listeners_closed = False
        self._tls: Any = None
        self._access: list[str] | None = [] if settings.server.access_log else None
        self._websockets: WebSocketManager | None = None
        self.ws_active = 0
        self.stopped = trio.Event()
        # every connection's requests run through this one lifecycle
        self.exchange = Exchange(app, self if self._access is not None else None)
        app.stats_provider = self  # its statistics() join /_gateway/stats

    def _apply(self, settings: Settings) -> None:
        """What new connections take from the profile: head limits and the LAN guard."""
        self.settings = settings
        self.http_limits = HTTPLimits(
            max_head_bytes=settings.http.max_head_bytes,
            max_request_line_bytes=settings.http.max_request_line_bytes,
            max_header_count=settings.http.max_header_count,
        )
        self._networks = [ipaddress.ip_network(n, strict=False)
                          for n in settings.server.allowed_networks]

    def reload(self, settings: Settings) -> None:
        """Apply a new profile: new connections get its limits; listeners stay as they are.

        Raises:
            ConfigError: the new profile's credentials file is unsafe (the old one stays).
        """
        old = self.settings.server
        self.app.bind(settings)
        self._apply(settings)
        if (old.host, old.port, old.unix_path) != (settings.server.host, settings.server.port,
                                                   settings.server.unix_path):
            log.warning("reload: listener address changes need a restart")

    # -- listening ---------------------------------------------------------------------------
    async def open_listeners(self) -> None:
        s = self.settings.server
        if s.tls_cert_file:
            import ssl  # only when TLS is used: it costs ~2 MiB of RSS

            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file)
            self._tls = ctx
        for raw in self._passed:
            sock = trio.socket.from_stdlib_socket(raw)
            kind = "unix" if raw.family == socket.AF_UNIX else "tcp"
            self.listeners.append(_Listener(sock, kind, raw.getsockname()))
        if not self._passed:
            for family, addr in _tcp_addresses(s.host, s.port):
                sock = trio.socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(addr)
                sock.listen(s.backlog)
                self.listeners.append(_Listener(sock, "tcp", sock.getsockname()))
        if s.unix_path:
            try:
                os.unlink(s.unix_path)
            except FileNotFoundError:
                pass
            sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            await sock.bind(s.unix_path)
            os.chmod(s.unix_path, 0o666)  # who gets privilege is decided by SO_PEERCRED
            sock.listen(s.backlog)
            self.listeners.append(_Listener(sock, "unix", s.unix_path))

    @property
    def addresses(self) -> list[Any]:
        return [lst.address for lst in self.listeners]

    @property
    def port(self) -> int:
        for lst in self.listeners:
            if lst.kind == "tcp":
                return int(lst.address[1])
        raise RuntimeError("no TCP listener")

    # -- serving -----------------------------------------------------------------------------
    async def serve(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Listen, accept and serve until cancelled or ``shutdown()`` has drained."""
        if not self.listeners:
            await self.open_listeners()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.reaper)
                if self._websockets is not None:
                    nursery.start_soon(self._websockets.run)  # WebSocket pings and timeouts
                if self._access is not None:
                    nursery.start_soon(self._flush_access_log)
                with self._accept_scope:
                    async with trio.open_nursery() as accept_nursery:
                        for lst in self.listeners:
                            accept_nursery.start_soon(self._accept_loop, lst, nursery)
                        task_status.started(self)
                # accepting stopped (shutdown): wait for in-flight sessions, within the grace
                with trio.move_on_after(self.settings.server.shutdown_grace_s):
                    while self._sessions:  # noqa: ASYNC110 (polled within the grace period)
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._flush_access()
            self.stopped.set()
            self.close_listeners()

    def close_listeners(self) -> None:
        if self._listeners_closed:
            return  # once: a second unlink could remove the socket file of a new instance
        self._listeners_closed = True
        for lst in self.listeners:
            lst.sock.close()
        if self.settings.server.unix_path and any(x.kind == "unix" for x in self.listeners):
            try:
                os.unlink(self.settings.server.unix_path)
            except OSError:
                pass

    async def reaper(self) -> None:
        """Close connections whose phase deadline (idle, head, send) has passed.

        One task scanning every session a few times per timeout period replaces a trio deadline
        re-armed on every phase change of every connection (the hot-path cost that profiling
        showed in other trio servers). Resolution: a quarter of the shortest timeout.
        """
        h = self.settings.http
        interval = min(1.0, max(0.05, min(h.head_timeout_s, h.idle_timeout_s,
                                          h.send_timeout_s) / 4))
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for session in self._sessions:
                if session.deadline <= now:
                    session.scope.cancel()

    def shutdown(self) -> None:
        """Stop accepting; idle keep-alive connections close now, busy ones after their reply."""
        self.draining = True
        self._accept_scope.cancel()  # aborts the blocked accepts at once, before the close below
        self.close_listeners()  # new connects are refused, not left waiting in the backlog
        for session in list(self._sessions):
            if session.phase == "idle":
                session.scope.cancel()
            else:
                session.close_after = True  # its reply says Connection: close

    async def _accept_loop(self, lst: _Listener, nursery: trio.Nursery) -> None:
        sock = lst.sock
        while True:
            try:
                conn, addr = await sock.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
                    log.error("accept: %s; pausing 100 ms", os.strerror(exc.errno))
                    await trio.sleep(0.1)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                raise
            info = self._admit(conn, addr, lst)
            if info is None:
                conn.close()
                continue
            self.stats["accepted"] += 1
            if self.stats["active"] >= self.settings.server.max_connections:
                self.stats["rejected_busy"] += 1
                if self._rejecting < 64:
                    nursery.start_soon(self._reject_busy, conn)
                else:
                    conn.close()
                continue
            if lst.kind == "tcp":
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # counted now, not when the task starts: a burst of accepts must see the cap
            self.stats["active"] += 1
            nursery.start_soon(self._run_session, trio.SocketStream(conn), info, True)

    def _admit(self, conn: trio.socket.SocketType, addr: Any, lst: _Listener
               ) -> ConnectionInfo | None:
        if lst.kind == "unix":
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            pid, uid, gid = struct.unpack("3i", creds)
            priv = uid in self.settings.server.unix_allowed_uids
            return ConnectionInfo(("unix", uid), "http", priv, f"unix:uid={uid}")
        host, port = addr[0], addr[1]
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not any(ip in net for net in self._networks):
            self.stats["rejected_network"] += 1
            log.warning("refused connection from %s: not in server.allowed_networks", host)
            return None
        return ConnectionInfo((host, port), "https" if self._tls else "http", False,
                              f"{host}:{port}")

    async def _reject_busy(self, conn: trio.socket.SocketType) -> None:
        self._rejecting += 1
        try:
            with trio.move_on_after(1.0):
                await conn.send(_BUSY)
        except OSError:
            pass
        finally:
            self._rejecting -= 1
            conn.close()

    async def _run_session(self, stream: trio.abc.Stream, info: ConnectionInfo,
                           counted: bool = False) -> None:
        if not counted:
            self.stats["active"] += 1
        try:
            if self._tls is not None:
                stream = trio.SSLStream(stream, self._tls, server_side=True)
                handshake_ok = False
                with trio.move_on_after(self.settings.http.head_timeout_s):
                    try:
                        await stream.do_handshake()
                        handshake_ok = True
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # not TLS, or a TLS error: the peer gets the close, not HTTP
                if not handshake_ok:
                    await trio.aclose_forcefully(stream)
                    return
            session = HTTPSession(self, stream, info)
            self._sessions.add(session)
            try:
                await session.run()
            finally:
                self._sessions.discard(session)
        finally:
            self.stats["active"] -= 1

    # -- upgrades (WebSocket, Engine.IO) -------------------------------------------------------
    @property
    def websockets(self) -> WebSocketManager:
        """The WebSocket layer, loaded with the first upgrade or /socket.io request: a server
        that never sees one does not carry its code (wsproto's connection, the handshake, the
        manager and its timer task; about 0.2 MiB of RSS)."""
        manager = self._websockets
        if manager is None:
            from gateway.server.upgrade import WebSocketManager

            manager = self._websockets = WebSocketManager(self)
            if self._nursery is not None:
                self._nursery.start_soon(manager.run)  # WebSocket pings and timeouts
        return manager

    def upgrade_route(self, session: HTTPSession, req: Request
                      ) -> tuple[ResponseSink, Endpoint | None]:
        """The sink and endpoint of an Upgrade or /socket.io request (the WebSocket layer's)."""
        return self.websockets.route(session, req)

    # -- statistics and access log -----------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return {"connections": dict(self.stats), "websockets": self.ws_active,
                "sockets": (self.app.sockets.statistics() if self.app.has_sockets
                            else {"sockets": 0, "rooms": 0, "pushes": 0, "dropped": 0}),
                "draining": self.draining}

    def log_access(self, info: AnyConnection, req: Request, res: Response,
                   started: float) -> None:
        """One access line (the exchange calls this when a request is over)."""
        buf = self._access
        if buf is None:
            return
        ms = (trio.current_time() - started) * 1000
        path = req.original_url
        if not path.isprintable() or '"' in path or "\\" in path:
            path = path.translate(_ESCAPE)  # nothing a client sends can start a new log line
        # a virtual request names its transport where an HTTP request names its version
        proto = "socket.io" if req.is_socket else "HTTP/" + req.http_version
        buf.append(f'{info.peer_text} "{req.method} {path} {proto}" '
                   f"{res.status_code} {res.bytes_sent} {ms:.1f}ms {req.mode}\n")
        if len(buf) >= 64:
            self._flush_access()

    def _flush_access(self) -> None:
        buf = self._access
        if buf:
            try:
                sys.stderr.write("".join(buf))
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            buf.clear()

    async def _flush_access_log(self) -> None:
        while True:
            await trio.sleep(0.5)
            self._flush_access()


def _tcp_addresses(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    out: list[tuple[int, tuple[Any, ...]]] = []
    for h in [x.strip() for x in host.split(",") if x.strip()] or ["127.0.0.1"]:
        if ":" in h:
            out.append((socket.AF_INET6, (h.strip("[]"), port, 0, 0)))
        else:
            out.append((socket.AF_INET, (h, port)))
    return out


async def serve(app: App, settings: Settings, *,
                task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
                sockets: list[socket.socket] | None = None) -> None:
    """Bind ``app`` to ``settings`` and serve until cancelled. ``nursery.start(serve, ...)``
    returns the Server (its ``port``/``addresses`` are the bound ones, port 0 included)."""
    app.bind(settings)
    server = Server(app, settings, sockets)
    await server.open_listeners()
    await server.serve(task_status=task_status)


