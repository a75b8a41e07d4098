# The client's connections: opening them (TCP, TLS, Unix socket), one h11 client state machine
# each, and a bounded keep-alive pool per origin.
# Owns: connect/TLS timeouts, the per-origin limit and its waiters, idle expiry, the check that a
# pooled connection was not closed by the server before it is reused, and discarding a
# connection (never pooled unless its last exchange ended cleanly on both sides).
# Also the deadline watchdog: a request's total deadline without a cancel scope per request (a
# scope costs ~8% of a keep-alive request): the task sleeps until the earliest deadline of the
# connections in use and closes the ones past it under their requests, whose blocked read or
# write then fails and is reported as RequestTimeout.
# Must not: build requests or read responses (gateway.client.http does), or retry.
from __future__ import annotations

import math
import socket
import ssl
from typing import Final

import trio

from gateway.client.errors import ConnectError, RequestTimeout
from gateway.http.parser import h11  # h11 or h11_mypyc: one module for events and errors

__all__ = ["Origin", "Connection", "Pool", "make_ssl_context"]

# (scheme, host, port, unix path); the unix path replaces host and port for the connection but
# the request still names host:port.
Origin = tuple[str, str, int, str]
_PEEK: Final = socket.MSG_PEEK | socket.MSG_DONTWAIT


def make_ssl_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context: certificates and host names checked unless ``verify`` is False.

    Args:
        verify: check the server's certificate chain and name (leave on outside tests).
        ca_file: a PEM file of CA certificates to trust (a device's own CA), in place of the
            system's.

    Returns:
        The context (ALPN http/1.1).

    Raises:
        OSError, ssl.SSLError: the CA file cannot be read.
    """
    if ca_file:
        ctx = ssl.create_default_context(cafile=ca_file)
    else:
        ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Connection:
    """One open connection and its h11 client state (one exchange at a time, no pipelining).

    Attributes:
        origin: where it goes.
        stream: the trio stream (SocketStream or SSLStream over one).
        h11: the h11 client connection.
        reused: it served an exchange before this one.
        idle_since: trio clock time it went back to the pool.
        requests: exchanges it has carried.
    """

    __slots__ = (
        "origin",
        "stream",
        "sock",
        "_raw",
        "h11",
        "reused",
        "idle_since",
        "requests",
        "closed",
        "deadline",
        "timed_out",
    )

    def __init__(
        self,
        origin: Origin,
        stream: trio.abc.Stream,
        sock: trio.socket.SocketType,
        max_head_bytes: int,
    ) -> None:
        self.origin = origin
        self.stream = stream
        self.sock = sock
        # trio's socket methods are all async; the liveness peek needs the plain one it wraps
        self._raw: socket.socket = getattr(sock, "_sock", sock)  # type: ignore[arg-type]
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_bytes)
        self.reused = False
        self.idle_since = 0.0
        self.requests = 0
        self.closed = False
        self.deadline = math.inf  # of the request using it (the watchdog's)
        self.timed_out = False  # the watchdog closed it: its request is past its deadline

    def server_closed(self) -> bool:
        """True when the server closed (or reset) the connection, or sent bytes nobody asked
        for (a 408 before closing): either way it cannot carry another request.

        One non-blocking peek at the socket; for TLS the raw socket (a close_notify is bytes).
        """
        try:
            data = self._raw.recv(1, _PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        del data  # b"": closed; bytes: a reply nobody asked for. Either way: not reusable.
        return True

    def discard(self) -> None:
        """Close now, without a TLS close_notify or a checkpoint (an abort, a broken exchange,
        an expired or unusable idle connection). Safe to call twice."""
        if not self.closed:
            self.closed = True
            self.sock.close()


async def open_connection(
    origin: Origin,
    ssl_context: ssl.SSLContext | None,
    connect_timeout_s: float | None,
    max_head_bytes: int,
    deadline: float,
) -> Connection:
    """Connect (TCP or Unix socket), and for https do the TLS handshake.

    Args:
        origin: (scheme, host, port, unix_path).
        ssl_context: for https.
        connect_timeout_s: the cap on connect + handshake (None: only the deadline).
        max_head_bytes: the largest response head accepted.
        deadline: the request's total deadline (trio clock; inf for none).

    Returns:
        The connection.

    Raises:
        ConnectError: refused, unreachable, name not resolved, TLS failure.
        RequestTimeout: the connect timeout passed (the total deadline, when it is the earlier,
            is left to the caller's scope).
    """
    scheme, host, port, unix_path = origin
    limit = math.inf if connect_timeout_s is None else trio.current_time() + connect_timeout_s
    with trio.CancelScope(deadline=min(limit, deadline)) as scope:
        try:
            stream: trio.abc.Stream
            if unix_path:
                sstream = await trio.open_unix_socket(unix_path)
            else:
                sstream = await trio.open_tcp_stream(host, port)
            stream = sstream
            if scheme == "https":
                if ssl_context is None:
                    raise ConnectError("https needs a TLS context")
                tls = trio.SSLStream(
                    sstream, ssl_context, server_hostname=host, https_compatible=True
                )
                try:
                    await tls.do_handshake()
                except BaseException:
                    sstream.socket.close()
                    raise
                stream = tls
            return Connection(origin, stream, sstream.socket, max_head_bytes)
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {_where(origin)}: {_reason(exc)}") from exc
    if scope.cancelled_caught and limit <= deadline:
        raise RequestTimeout(f"connect to {_where(origin)} timed out after {connect_timeout_s:g} s")
    raise RequestTimeout(f"connect to {_where(origin)}: the deadline passed")


def _where(origin: Origin) -> str:
    scheme, host, port, unix_path = origin
    return unix_path if unix_path else f"{host}:{port}"


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__


class _Slots:
    __slots__ = ("idle", "count", "lot", "waiting")

    def __init__(self) -> None:
        self.idle: list[Connection] = []
        self.count = 0  # open connections: in use + idle
        self.lot = trio.lowlevel.ParkingLot()
        self.waiting = 0  # tasks parked in lot (len(lot) is a Python call per release)


class Pool:
    """Keep-alive connections per origin, at most ``max_per_origin`` open to each.

    Args:
        max_per_origin: open connections per origin (in use + idle); more requests wait.
        idle_timeout_s: an idle connection older than this is closed instead of reused.
        max_idle_per_origin: idle connections kept per origin (the rest are closed).
    """

    __slots__ = (
        "max_per_origin",
        "idle_timeout_s",
        "max_idle_per_origin",
        "_slots",
        "busy",
        "watching",
        "_wake_at",
        "_wake",
    )

    def __init__(
        self, max_per_origin: int = 10, idle_timeout_s: float = 30.0, max_idle_per_origin: int = 10
    ) -> None:
        if max_per_origin < 1 or max_idle_per_origin < 0 or idle_timeout_s < 0:
            raise ValueError("pool limits must be positive")
        self.max_per_origin = max_per_origin
        self.idle_timeout_s = idle_timeout_s
        self.max_idle_per_origin = max_idle_per_origin
        self._slots: dict[Origin, _Slots] = {}
        self.busy: set[Connection] = set()  # in use with a deadline (watched)
        self.watching = False  # a watchdog task runs
        self._wake_at = math.inf
        self._wake: trio.Event | None = None

    # -- deadlines ------------------------------------------------------------------------------

    def watch(self, conn: Connection, deadline: float) -> None:
        """Put a connection's request under the watchdog until the connection is released.

        Args:
            conn: the connection the request uses.
            deadline: its total deadline (trio clock).
        """
        conn.deadline = deadline
        self.busy.add(conn)
        if deadline < self._wake_at and self._wake is not None:
            self._wake.set()  # earlier than the watchdog's next look (rare: a short timeout)

    async def watchdog(
        self, tick_s: float = 30.0, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the deadline watchdog until cancelled (Client runs it in its nursery).

        It wakes at the earliest deadline of the busy connections (or every ``tick_s`` when
        none is due sooner), closes those past their deadline (``timed_out``), and closes idle
        connections past the idle timeout.
        """
        self.watching = True
        task_status.started()
        try:
            while True:
                now = trio.current_time()
                nearest = now + tick_s
                for conn in list(self.busy):
                    if conn.deadline <= now:
                        self.busy.discard(conn)
                        conn.timed_out = True
                        conn.discard()
                    elif conn.deadline < nearest:
                        nearest = conn.deadline
                nearest = min(nearest, self.next_expiry())
                if self.next_expiry() <= now:
                    self.close_idle(self.idle_timeout_s)
                    nearest = min(now + tick_s, self.next_expiry())
                self._wake_at = nearest
                self._wake = trio.Event()
                with trio.move_on_at(nearest):
                    await self._wake.wait()
        finally:
            self.watching = False
            self._wake = None
            self._wake_at = math.inf

    def take(self, origin: Origin, now: float) -> Connection | bool:
        """Without waiting: a live idle connection, True (a slot is reserved: open one), or
        False (the origin is at its limit: ``await acquire``).

        Args:
            origin: where to.
            now: trio.current_time(), which the caller has at hand.
        """
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = _Slots()
        idle = slots.idle
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= self.idle_timeout_s:
                try:  # Connection.server_closed(), inlined: once per reused connection
                    conn._raw.recv(1, _PEEK)
                except BlockingIOError:
                    return conn
                except OSError:
                    pass
            conn.discard()
            slots.count -= 1
        if slots.count < self.max_per_origin:
            slots.count += 1
            return True
        return False

    async def acquire(self, origin: Origin) -> Connection | None:
        """A pooled connection to reuse, or None: the caller may open a new one (and must
        ``release``/``forget`` it). Waits while the origin is at its limit.

        Returns:
            A live idle connection, or None (a slot is reserved for a new one).
        """
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = _Slots()
        while True:
            idle = slots.idle
            if idle:
                conn = idle.pop()
                if (
                    trio.current_time() - conn.idle_since <= self.idle_timeout_s
                    and not conn.server_closed()
                ):
                    return conn
                conn.discard()
                slots.count -= 1
                continue
            if slots.count < self.max_per_origin:
                slots.count += 1
                return None
            slots.waiting += 1
            try:
                await slots.lot.park()
            finally:
                slots.waiting -= 1

    def release(self, conn: Connection, reusable: bool, since: float | None = None) -> None:
        """Give a connection back: kept idle if ``reusable`` (and there is room), else closed.
        Synchronous, so it also runs in a cancelled scope.

        Args:
            conn: the connection.
            reusable: its last exchange ended cleanly on both sides.
            since: idle since when (trio clock); the caller may pass the time its request
                began (at hand, and earlier, so the connection expires no later than due).
        """
        slots = self._slots[conn.origin]
        self.busy.discard(conn)
        if reusable and not conn.closed and len(slots.idle) < self.max_idle_per_origin:
            conn.reused = True
            conn.idle_since = trio.current_time() if since is None else since
            slots.idle.append(conn)
            if conn.idle_since + self.idle_timeout_s < self._wake_at and self._wake is not None:
                self._wake.set()  # the watchdog must close it sooner than it planned to look
        else:
            conn.discard()
            slots.count -= 1
        if slots.waiting:
            slots.lot.unpark()

    def forget(self, origin: Origin) -> None:
        """A reserved slot whose connection could not be opened."""
        slots = self._slots[origin]
        slots.count -= 1
        if slots.waiting:
            slots.lot.unpark()

    def close_idle(self, older_than_s: float = 0.0) -> int:
        """Close idle connections idle for longer than ``older_than_s``.

        Returns:
            How many were closed.
        """
        now = trio.current_time()
        closed = 0
        for slots in self._slots.values():
            keep = []
            for conn in slots.idle:
                if now - conn.idle_since >= older_than_s:
                    conn.discard()
                    slots.count -= 1
                    closed += 1
                else:
                    keep.append(conn)
            slots.idle = keep
            slots.lot.unpark_all()
        return closed

    def next_expiry(self) -> float:
        """When the oldest idle connection expires (trio clock), or inf."""
        oldest = min((c.idle_since for s in self._slots.values() for c in s.idle), default=math.inf)
        return oldest + self.idle_timeout_s

    def statistics(self) -> dict[str, int]:
        """Open and idle connections over all origins, and the origins known."""
        return {
            "origins": len(self._slots),
            "open": sum(s.count for s in self._slots.values()),
            "idle": sum(len(s.idle) for s in self._slots.values()),
        }
