# Listeners and connections: TCP (optionally TLS), the local Unix socket with SO_PEERCRED
# privilege, and systemd-passed sockets; the LAN guard at accept; the connection cap (a canned
# 503 and close, bounded); statistics; the access log; profile reloads (one transaction: all
# built and checked, then swapped at once); the drain on stop (one deadline for everything).
# Must not: parse HTTP or know routes; sessions (http_session, websocket) do the per-connection work.
from __future__ import annotations

import errno
import ipaddress
import logging
import math
import os
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from gateway.app.exchange import Exchange
from gateway.body.budget import release_free_memory
from gateway.errors import ClientDisconnected, ConfigError, HandlerTimeout
from gateway.http.connection import HTTPLimits
from gateway.http.parser import LABEL as PARSER_LABEL
from gateway.server.http_session import HTTPSession

if TYPE_CHECKING:
    import ssl

    from gateway.app.application import App
    from gateway.app.contracts import ConnectionInfo as AnyConnection
    from gateway.app.contracts import ResponseSink
    from gateway.app.exchange import Endpoint
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.server.mqtt_bridge import Bridge
    from gateway.server.upgrade import WebSocketManager
    from gateway.settings import Settings

__all__ = ["Server", "ConnectionInfo", "load_tls_context", "serve"]

log = logging.getLogger("gateway.server")
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\ncontent-length: 42\r\nconnection: close\r\n\r\n"
    b"Server busy: too many connections, retry\r\n"
)
_ESCAPE = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, 0x22, 0x5C]}


@dataclass(slots=True)
class ConnectionInfo:
    """What the server knows about a connection when it is accepted."""

    peer: tuple[str, int] | None
    scheme: str = "http"
    privileged: bool = False
    peer_text: str = "-"


@dataclass(slots=True)
class _Listener:
    raw: socket.socket  # accepted from directly (_accept_loop); `sock` wraps the same socket
    sock: trio.socket.SocketType
    kind: str  # "tcp" or "unix"
    address: Any = None


@dataclass(frozen=True, slots=True)
class _Profile:
    """What a profile sets in the Server itself, built and checked before any of it is used."""

    settings: Settings
    http_limits: HTTPLimits
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@dataclass
class _Stats:
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("accepted", "active", "rejected_busy", "rejected_network", "protocol_errors"), 0
        )
    )


class Server:
    """A running gateway for one App and one Settings.

    Args:
        app: the application (already bound to ``settings``).
        settings: the resolved profile.
        sockets: already-listening sockets (systemd socket activation); if given, no new TCP
            listener is opened.
    """

    def __init__(
        self, app: App, settings: Settings, sockets: list[socket.socket] | None = None
    ) -> None:
        self.app = app
        self._apply(_prepare(settings))
        self._passed = sockets or []
        self.listeners: list[_Listener] = []
        self.stats = _Stats().counts
        self.draining = False
        self._sessions: set[HTTPSession] = set()
        self._rejecting = 0
        self._nursery: trio.Nursery | None = None
        self._accept_scope = trio.CancelScope()
        self._listeners_closed = False
        self._unix_bound = ""  # the socket file we created (never one systemd passed)
        self._tls: ssl.SSLContext | None = None
        self._access: list[str] | None = [] if settings.server.access_log else None
        self._websockets: WebSocketManager | None = None
        self.mqtt: Bridge | None = None  # the MQTT adapter, when [mqtt] url is set
        self.ws_active = 0
        self.stopped = trio.Event()
        # the drain: its deadline (set by shutdown()) and the shielded closing scopes it bounds
        self.drain_deadline = math.inf
        self._closing: set[trio.CancelScope] = set()
        # every connection's requests run through this one lifecycle
        self.exchange = Exchange(app, self)  # counts every request (metrics), logs if on
        app.stats_provider = self  # its statistics() join /_gateway/stats
        app.clock = trio.current_time  # bans expire on the server's clock (tests: autojump)
        # the clock of the access log's durations: the run's own once serving (one call, where
        # trio.current_time() is three deep)
        self.now: Callable[[], float] = trio.current_time
        if app.bans is not None:
            app.bans.clock = app.clock
        self._observe = app.metrics.observe  # every finished request is counted (log_access)
        app.draining = False  # an App served again after a stop streams again

    def _apply(self, profile: _Profile) -> None:
        """What new connections take from the profile: head limits and the LAN guard."""
        self.settings = profile.settings
        self.http_limits = profile.http_limits
        self._networks = profile.networks

    def reload(self, settings: Settings) -> None:
        """Apply a new profile, whole or not at all.

        Everything the profile changes is built and checked first: the Server's part (head
        limits, LAN guard), the App's (credentials file; see App.prepare_bind) and, with TLS,
        a new context from the certificate files (read again even under the same names:
        renewing a certificate in place is what a reload is for). Only then is it all swapped,
        without waiting in between, so no connection sees half of it. New connections get the
        new profile; open ones keep what they started with, except the memory budget, which
        is resized in place with every body in flight still charged to it. Listeners stay as
        they are (a new address needs a restart).

        Args:
            settings: the new profile.

        Raises:
            ConfigError: the profile cannot be applied (credentials file missing or unsafe,
                certificate or key unreadable); nothing was changed.
        """
        profile = _prepare(settings)
        binding = self.app.prepare_bind(settings)
        tls = load_tls_context(settings) if settings.server.tls_cert_file else None
        old = self.settings
        # the commit: nothing below can fail or wait
        self.app.commit_bind(binding)
        self._apply(profile)
        self._tls = tls
        _warn_unapplied(old, settings)

    # -- listening ---------------------------------------------------------------------------
    async def open_listeners(self) -> None:
        s = self.settings.server
        if s.tls_cert_file:
            self._tls = load_tls_context(self.settings)
        if self.settings.mqtt.url and self.mqtt is None:
            # imported only when configured: paho and the bridge cost ~1.5 MiB of RSS
            from gateway.server.mqtt_bridge import Bridge

            self.mqtt = Bridge(self)  # ConfigError: credentials or TLS files
        for raw in self._passed:
            sock = trio.socket.from_stdlib_socket(raw)
            kind = "unix" if raw.family == socket.AF_UNIX else "tcp"
            self.listeners.append(_Listener(raw, sock, kind, raw.getsockname()))
        if not self._passed:
            for family, addr in _tcp_addresses(s.host, s.port):
                raw = socket.socket(family, socket.SOCK_STREAM)
                sock = trio.socket.from_stdlib_socket(raw)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await _bind(sock, addr, f"{_host_text(addr[0])}:{addr[1]}")
                sock.listen(s.backlog)
                self.listeners.append(_Listener(raw, sock, "tcp", sock.getsockname()))
        if s.unix_path:
            try:
                os.unlink(s.unix_path)
            except FileNotFoundError:
                pass
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock = trio.socket.from_stdlib_socket(raw)
            await _bind(sock, s.unix_path, f"unix:{s.unix_path}")
            self._unix_bound = s.unix_path
            os.chmod(s.unix_path, 0o666)  # who gets privilege is decided by SO_PEERCRED
            sock.listen(s.backlog)
            self.listeners.append(_Listener(raw, sock, "unix", s.unix_path))

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
    async def serve(
        self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, accept and serve until cancelled or ``shutdown()`` has drained."""
        if not self.listeners:
            await self.open_listeners()
        self.now = trio.lowlevel.current_clock().current_time
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.reaper)
                if self._websockets is not None:
                    nursery.start_soon(self._websockets.run)  # WebSocket pings and timeouts
                if self._access is not None:
                    nursery.start_soon(self._flush_access_log)
                if self.mqtt is not None:
                    nursery.start_soon(self.mqtt.run, name="mqtt bridge")
                for fn in self.app.background_tasks:
                    nursery.start_soon(self._background, fn, name=getattr(fn, "__name__", fn))
                with self._accept_scope:
                    async with trio.open_nursery() as accept_nursery:
                        for lst in self.listeners:
                            accept_nursery.start_soon(self._accept_loop, lst, nursery)
                        task_status.started(self)
                # accepting stopped (shutdown): wait for in-flight sessions until the drain's
                # deadline; then everything still open is cancelled, and its closing scopes
                # (WebSocket close handshakes, lingering closes) end at that same deadline
                deadline = self.drain_deadline
                if deadline == math.inf:
                    deadline = trio.current_time() + self.settings.server.shutdown_grace_s
                with trio.move_on_at(deadline):
                    while self._sessions or (  # noqa: ASYNC110 (polled within the grace)
                        self.mqtt is not None and self.mqtt.busy
                    ):
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._flush_access()
            self.stopped.set()
            self.close_listeners()

    async def _background(self, fn: Callable[[App], Awaitable[None]]) -> None:
        """One of the app's background tasks: its failure ends it, never the server."""
        try:
            await fn(self.app)
        except Exception:
            self.app.background_failures += 1
            log.exception(
                "background task %s failed (the server keeps serving)", getattr(fn, "__name__", fn)
            )

    def close_listeners(self) -> None:
        if self._listeners_closed:
            return  # once: a second unlink could remove the socket file of a new instance
        self._listeners_closed = True
        for lst in self.listeners:
            lst.sock.close()
        if self._unix_bound:  # the file we bound, whatever a reload says unix_path is now
            try:
                os.unlink(self._unix_bound)
            except OSError:
                pass

    async def reaper(self) -> None:
        """Close connections whose phase deadline (idle, head, send) has passed.

        One task scanning every session a few times per timeout period replaces a trio deadline
        re-armed on every phase change of every connection (the hot-path cost that profiling
        showed in other trio servers). Resolution: a quarter of the shortest timeout.
        """
        while True:
            h = self.settings.http  # read each pass: a reload may change the timeouts
            await trio.sleep(
                min(1.0, max(0.05, min(h.head_timeout_s, h.idle_timeout_s, h.send_timeout_s) / 4))
            )
            now = trio.current_time()
            for session in self._sessions:
                if session.deadline <= now:
                    session.scope.cancel()

    def shutdown(self) -> None:
        """Stop accepting and drain: idle keep-alive connections close now, busy ones after
        their reply, WebSockets and Socket.IO sockets get a Close (1001) now.

        The drain has ONE deadline, server.shutdown_grace_s from now, for everything: requests
        in flight, close handshakes (also those already under way) and lingering closes.
        What is still open then is closed hard, so the process exits within the grace (the
        unit's TimeoutStopSec= allows the grace plus a margin before SIGKILL).
        """
        if not self.draining:
            deadline = self.drain_deadline = (
                trio.current_time() + self.settings.server.shutdown_grace_s
            )
            for scope in self._closing:
                scope.deadline = min(scope.deadline, deadline)
        self.draining = True
        self.app.begin_drain()  # event streams end now, not at the drain's deadline
        self._accept_scope.cancel()  # aborts the blocked accepts at once, before the close below
        self.close_listeners()  # new connects are refused, not left waiting in the backlog
        for session in list(self._sessions):
            if session.phase == "idle":
                session.scope.cancel()
            else:
                session.close_after = True  # its reply says Connection: close
        if self._websockets is not None:
            self._websockets.expire_all(1001, "server shutting down")

    @contextmanager
    def closing_scope(self) -> Iterator[trio.CancelScope]:
        """A shielded scope for a connection's last words (a WebSocket close handshake, a
        lingering close): the cancellation that ended the connection does not cut them short,
        but the drain's deadline does, also when shutdown() sets it while they run.

        Returns:
            (a context manager giving) the scope; ``cancel_called`` says the deadline passed,
            and whatever it covered may not have happened (close the stream hard).
        """
        with trio.CancelScope(shield=True, deadline=self.drain_deadline) as scope:
            self._closing.add(scope)
            try:
                yield scope
            finally:
                self._closing.discard(scope)

    async def _accept_loop(self, lst: _Listener, nursery: trio.Nursery) -> None:
        # Every connection already queued is taken at one wake-up (up to the backlog's worth),
        # as asyncio and nginx's multi_accept do: trio's accept() takes one per scheduler round,
        # so under load a burst of clients (wrk's 50, a browser's 6, a fleet reconnecting) waited
        # up to one round per connection before it was even accepted.
        raw = lst.raw
        while True:
            if raw.fileno() < 0:
                return  # closed by shutdown(), maybe before this task first ran
            await trio.lowlevel.wait_readable(raw)
            for _ in range(self.settings.server.backlog):
                try:
                    conn, addr = raw.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
                        log.error("accept: %s; pausing 100 ms", os.strerror(exc.errno))
                        await trio.sleep(0.1)
                        break
                    if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                        continue
                    raise
                self._accepted(trio.socket.from_stdlib_socket(conn), addr, lst, nursery)

    def _accepted(
        self, conn: trio.socket.SocketType, addr: Any, lst: _Listener, nursery: trio.Nursery
    ) -> None:
        info = self._admit(conn, addr, lst)
        if info is None:
            conn.close()
            return
        self.stats["accepted"] += 1
        if self.stats["active"] >= self.settings.server.max_connections:
            self.stats["rejected_busy"] += 1
            if self._rejecting < 64:
                nursery.start_soon(self._reject_busy, conn)
            else:
                conn.close()
            return
        # (trio.SocketStream sets TCP_NODELAY itself, and ignores the OSError a connection
        # already reset can give: set here, that error would have stopped the accept loop)
        # counted now, not when the task starts: a burst of accepts must see the cap
        self.stats["active"] += 1
        nursery.start_soon(self._run_session, trio.SocketStream(conn), info, True)

    def _admit(
        self, conn: trio.socket.SocketType, addr: Any, lst: _Listener
    ) -> ConnectionInfo | None:
        if lst.kind == "unix":
            # struct ucred: pid_t (signed), uid_t and gid_t (unsigned: a uid above 2**31-1,
            # as user namespaces hand out, must not read as negative and miss its entry)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
            pid, uid, gid = struct.unpack("iII", creds)
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
        return ConnectionInfo(
            (host, port), "https" if self._tls else "http", False, f"{host}:{port}"
        )

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

    async def _run_session(
        self, stream: trio.abc.Stream, info: ConnectionInfo, counted: bool = False
    ) -> None:
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
            release_free_memory()  # what the import freed (see gateway.http.parser.load)
            if self._nursery is not None:
                self._nursery.start_soon(manager.run)  # WebSocket pings and timeouts
        return manager

    def upgrade_route(
        self, session: HTTPSession, req: Request
    ) -> tuple[ResponseSink, Endpoint | None]:
        """The sink and endpoint of an Upgrade or /socket.io request (the WebSocket layer's)."""
        return self.websockets.route(session, req)

    # -- statistics and access log -----------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "connections": dict(self.stats),
            "websockets": self.ws_active,
            "sockets": (
                self.app.sockets.statistics()
                if self.app.has_sockets
                else {"sockets": 0, "rooms": 0, "pushes": 0, "dropped": 0}
            ),
            "draining": self.draining,
            "http_parser": PARSER_LABEL,  # e.g. "h11_mypyc 0.17.0 (compiled)": chosen at start
        }
        if self.mqtt is not None:
            stats["mqtt"] = self.mqtt.statistics()
        return stats

    def log_access(
        self,
        info: AnyConnection,
        req: Request,
        res: Response,
        started: float,
        failure: BaseException | None = None,
    ) -> None:
        """Count a finished request (gateway.app.metrics) and write its access line (the
        exchange calls this when a request is over, HTTP or virtual).

        The line says what the client really got: the status sent, or ``-`` when no response
        head went out; and, when the exchange ended early, how (``no-response`` or
        ``incomplete``, then why: ``client-gone``, ``cancelled`` for a shutdown or a timeout,
        ``handler-timeout`` for a handler deadline, or the error's type).
        """
        seconds = self.now() - started
        stream = req.body_stream
        transport = req.transport
        self._observe(
            req.method,
            res.status_code,
            req.privileged,
            transport,
            seconds,
            0 if stream is None else stream.received,
            res.bytes_sent,
            req.path,
        )
        buf = self._access
        if buf is None:
            return
        ms = seconds * 1000
        path = req.original_url
        if not path.isprintable() or '"' in path or "\\" in path:
            path = path.translate(_ESCAPE)  # nothing a client sends can start a new log line
        # a virtual request names its transport where an HTTP request names its version
        proto = (
            "HTTP/" + req.http_version
            if transport == "http"
            else "socket.io"
            if transport == "socket"
            else transport
        )
        status = res.status_code if res.headers_sent else "-"
        end = "\n" if failure is None and res.finished else _early_end(res, failure)
        buf.append(
            f'{info.peer_text} "{req.method} {path} {proto}" '
            f"{status} {res.bytes_sent} {ms:.1f}ms {req.mode}{end}"
        )
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


def _early_end(res: Response, failure: BaseException | None) -> str:
    """The access line's tail for an exchange that did not end with its whole response."""
    what = "incomplete" if res.headers_sent else "no-response"
    if failure is None:
        return f" {what}\n"
    if isinstance(failure, ClientDisconnected):
        why = "client-gone"
    elif isinstance(failure, trio.Cancelled):
        why = "cancelled"
    elif isinstance(failure, HandlerTimeout):
        why = "handler-timeout"
    else:
        why = type(failure).__name__
    return f" {what}:{why}\n"


async def _bind(sock: trio.socket.SocketType, addr: Any, text: str) -> None:
    """Bind, or raise an OSError that names the address (the bare errno names nothing)."""
    try:
        await sock.bind(addr)
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another process listens there: stop it, or choose --port / server.port)"
        elif exc.errno == errno.EACCES:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        raise OSError(exc.errno, f"cannot listen on {text}: {exc.strerror}{hint}") from None


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _prepare(settings: Settings) -> _Profile:
    """The Server's part of a profile, built without changing anything.

    Raises:
        ConfigError: an allowed network that does not parse (load_settings checks them).
    """
    try:
        networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.server.allowed_networks
        )
    except ValueError as exc:
        raise ConfigError(f"{settings.source}: server.allowed_networks: {exc}") from None
    return _Profile(
        settings,
        HTTPLimits(
            max_head_bytes=settings.http.max_head_bytes,
            max_request_line_bytes=settings.http.max_request_line_bytes,
            max_header_count=settings.http.max_header_count,
        ),
        networks,
    )


def _no_password(*_: object) -> bytes:
    # never OpenSSL's prompt on the terminal: it would block the server (and the reload)
    raise ValueError("the TLS key is encrypted; the gateway needs an unencrypted key file")


def load_tls_context(settings: Settings) -> ssl.SSLContext:
    """A server TLS context from the profile's certificate and key files (at start, on each
    reload, and in ``gateway check``, which ExecReload= runs before the SIGHUP).

    Args:
        settings: the profile (server.tls_cert_file and tls_key_file are set).

    Returns:
        The context.

    Raises:
        ConfigError: a file is missing or unreadable, not PEM, the key does not match the
            certificate, or the key is encrypted.
    """
    import ssl  # only when TLS is used: it costs ~2 MiB of RSS

    s = settings.server
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file, password=_no_password)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(
            f"{s.tls_cert_file}, {s.tls_key_file}: server.tls_cert_file/"
            f"tls_key_file: cannot load the certificate and key ({exc})"
        ) from None
    return ctx


def _warn_unapplied(old: Settings, new: Settings) -> None:
    """Log what a reload changed that only a restart applies, and a TLS switch."""
    o, n = old.server, new.server
    if (o.host, o.port, o.unix_path, o.backlog) != (n.host, n.port, n.unix_path, n.backlog):
        log.warning("reload: listener changes (host, port, unix_path, backlog) need a restart")
    if o.access_log != n.access_log:
        log.warning("reload: server.access_log changes need a restart")
    if old.mqtt != new.mqtt:
        log.warning("reload: [mqtt] changes need a restart")
    if bool(o.tls_cert_file) != bool(n.tls_cert_file):
        log.warning(
            "reload: TLS turned %s: new connections on the same listeners use %s",
            "on" if n.tls_cert_file else "off",
            "HTTPS" if n.tls_cert_file else "HTTP",
        )


def _tcp_addresses(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    out: list[tuple[int, tuple[Any, ...]]] = []
    for h in [x.strip() for x in host.split(",") if x.strip()] or ["127.0.0.1"]:
        if ":" in h:
            out.append((socket.AF_INET6, (h.strip("[]"), port, 0, 0)))
        else:
            out.append((socket.AF_INET, (h, port)))
    return out


async def serve(
    app: App,
    settings: Settings,
    *,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Bind ``app`` to ``settings`` and serve until cancelled. ``nursery.start(serve, ...)``
    returns the Server (its ``port``/``addresses`` are the bound ones, port 0 included)."""
    app.bind(settings)
    server = Server(app, settings, sockets)
    await server.open_listeners()
    await server.serve(task_status=task_status)
