# Server-sent events (WHATWG HTML, "Server-sent events"): `async with res.sse() as events:
# await events.send(data, event=..., id=...)`. Owns the event framing (one `data:` line per
# line of text), a heartbeat comment while the handler is quiet (proxies and NAT tables drop
# silent connections), one writer at a time on the response, and ending the stream when the
# server drains (a stream never ends by itself; it must not hold a restart up for the grace).
# Uses trio (a timer task beside the handler): the one app/ module that does, loaded on first use.
# Must not: touch the transport except through Response.write/end, or import gateway.app.response
# (which loads this on first use; the Response is seen as contracts.EventTarget).
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from gateway.app.jsontext import dumps as _dumps  # the one JSON encoder of every response
from gateway.errors import ClientDisconnected

if TYPE_CHECKING:
    from gateway.app.contracts import EventTarget

__all__ = ["EventStream", "open_event_stream", "format_event"]

_LINES = re.compile(r"\r\n|\r|\n")
_KEEPALIVE = b": keepalive\n\n"


def format_event(
    data: Any, event: str | None = None, id: str | None = None, retry_ms: int | None = None
) -> bytes:
    """One event in the text/event-stream format.

    Args:
        data: a str is sent as it is; anything else as its JSON text. Each line of it becomes
            a ``data:`` line (the client joins them with LF again).
        event: the event type (the client's ``addEventListener(type)``); None: "message".
        id: the event id, which the client sends back as ``Last-Event-ID`` when it reconnects.
        retry_ms: how long the client waits before reconnecting, in milliseconds.

    Returns:
        The event's bytes, ending in the blank line that dispatches it.

    Raises:
        ValueError: ``event`` or ``id`` holds CR or LF (or ``id`` NUL), or ``retry_ms`` < 0:
            either would change the stream's framing.
        TypeError: ``data`` is not a str and not JSON-serialisable.
    """
    if not isinstance(data, str):
        data = _dumps(data).decode()
    out = []
    if event is not None:
        if "\r" in event or "\n" in event:
            raise ValueError("an event type cannot hold CR or LF")
        out.append(f"event: {event}\n")
    if id is not None:
        if "\r" in id or "\n" in id or "\0" in id:
            raise ValueError("an event id cannot hold CR, LF or NUL")
        out.append(f"id: {id}\n")
    if retry_ms is not None:
        if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
            raise ValueError(f"retry_ms must be an integer >= 0, got {retry_ms!r}")
        out.append(f"retry: {retry_ms}\n")
    out.extend(f"data: {line}\n" for line in _LINES.split(data))
    out.append("\n")
    return "".join(out).encode()


class EventStream:
    """The writer ``res.sse()`` gives: events, comments, and the client's Last-Event-ID.

    Attributes:
        last_event_id: the ``Last-Event-ID`` header of the request (the id of the last event
            a reconnecting client saw), or None.
    """

    __slots__ = (
        "_res",
        "_lock",
        "_last_write",
        "last_event_id",
        "_heartbeat_s",
        "_gone",
        "_head_only",
    )

    def __init__(self, res: EventTarget, heartbeat_s: float) -> None:
        self._res = res
        req = res.req
        self.last_event_id: str | None = req.get("last-event-id") if req is not None else None
        self._head_only = req is not None and req.method == "HEAD"
        self._heartbeat_s = heartbeat_s
        self._lock = trio.Lock()  # the heartbeat and the handler never write at once
        self._last_write = trio.current_time()
        self._gone = False

    async def send(
        self,
        data: Any,
        *,
        event: str | None = None,
        id: str | None = None,
        retry_ms: int | None = None,
    ) -> None:
        """Send one event and wait until the transport has taken it (see format_event).

        Raises:
            ClientDisconnected: the client went away (or asked with HEAD: nobody reads).
            ValueError, TypeError: the event cannot be framed (nothing was sent).
        """
        await self._write(format_event(data, event, id, retry_ms))

    async def comment(self, text: str = "") -> None:
        """Send a comment line (``: text``): clients ignore it; it keeps the connection busy.

        Raises:
            ClientDisconnected: the client went away.
            ValueError: ``text`` holds CR or LF.
        """
        if "\r" in text or "\n" in text:
            raise ValueError("a comment cannot hold CR or LF")
        await self._write(f": {text}\n\n".encode())

    async def _write(self, data: bytes) -> None:
        res = self._res
        if self._gone or self._head_only or res.finished:
            raise ClientDisconnected()
        async with self._lock:
            try:
                await res.write(data)
            except ClientDisconnected:
                self._gone = True
                raise
            self._last_write = trio.current_time()

    async def _heartbeat(self, stop: Callable[[], None]) -> None:
        interval = self._heartbeat_s
        while True:
            await trio.sleep_until(self._last_write + interval)
            if trio.current_time() < self._last_write + interval:
                continue  # an event went out meanwhile: it kept the connection busy
            try:
                await self._write(_KEEPALIVE)
            except ClientDisconnected:
                stop()  # the handler may be waiting on something else: end it here
                return

    async def aclose(self) -> None:
        """End the response (once; later calls do nothing)."""
        res = self._res
        if not res.finished and not self._gone:
            async with self._lock:
                await res.end()


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a nursery wrapped (the handler's), or the group itself."""
    return group.exceptions[0] if len(group.exceptions) == 1 else group


@asynccontextmanager
async def open_event_stream(
    res: EventTarget, heartbeat_s: float = 15.0
) -> AsyncIterator[EventStream]:
    """What ``res.sse()`` returns: sends the head, yields the EventStream, ends the response.

    The body of the ``async with`` runs beside a heartbeat task (none for a virtual request:
    it has no connection of its own to keep busy). It is cancelled when the client is found
    gone (ClientDisconnected is raised after the block: the connection ends quietly) or when
    the server starts draining (the response ends cleanly and the code after the block runs).
    An exception from the block leaves the response unterminated, which tells the client the
    stream broke, as with ``res.json_seq()``.

    Args:
        res: the response (nothing sent yet).
        heartbeat_s: a ``: keepalive`` comment after this many seconds without a write;
            0 turns it off.
    """
    stream = EventStream(res, heartbeat_s)
    req = res.req
    app = req.app if req is not None else None
    headers = (
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    )  # nginx: pass each event on, don't buffer
    for name, value in headers:
        if res.get(name) is None:
            res.set(name, value)
    await res.write(b"")  # the head goes out now: the client's EventSource opens
    if stream._head_only:
        await res.end()
    try:
        async with trio.open_nursery() as nursery:
            stop = nursery.cancel_scope.cancel
            if heartbeat_s > 0 and not (req is not None and req.is_socket):
                nursery.start_soon(stream._heartbeat, stop)
            if app is not None:
                app.drain_hooks.add(stop)
                if app.draining:
                    stop()  # the server is stopping: the block ends at its first wait
            try:
                yield stream
            finally:
                if app is not None:
                    app.drain_hooks.discard(stop)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _single(group) from None
    if stream._gone:
        raise ClientDisconnected()
    await stream.aclose()
