# Request bodies: one pull-based stream behind `async for chunk in req`, the EdgerOS events
# (data, end, close, error), the body cache (enable_cache/read) and the process-wide MemoryBudget.
# Events are emitted by the same iterator that `async for` uses, so there is one code path.
# Must not: touch sockets or clocks; bytes come from a BodySource the server (or a WebSocket
# virtual request) provides, one chunk at a time, which is what gives backpressure.
#
# Theory of operation: a BodyStream is UNREAD until the first pull, STREAMING while chunks flow,
# then DONE (all bytes arrived, `end` fired) or FAILED (`error` fired with the BodyError).
# `close` fires exactly once when the server finishes the exchange (finish()), and every byte
# reserved from the MemoryBudget is released there too, on every path.
from __future__ import annotations

import enum
import inspect
import json as _json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from gateway.errors import (
    BadRequest,
    BodyError,
    BodyTooLarge,
    BudgetExceeded,
    ClientDisconnected,
)

__all__ = ["BodySource", "BodyStream", "MemoryBudget", "EmptySource", "BytesSource"]

log = logging.getLogger("gateway.body")

Listener = Callable[..., Awaitable[None] | None]


class BodySource(Protocol):
    """Where body bytes come from: the HTTP session, or a virtual request's data."""

    def expected_length(self) -> int | None:
        """Content-Length when known (only used to reject early), else None."""
        ...

    async def receive_chunk(self) -> bytes | None:
        """The next chunk, or None at the end. Raises BodyError subclasses."""
        ...


class EmptySource:
    """A request without a body."""

    __slots__ = ()

    def expected_length(self) -> int | None:
        return 0

    async def receive_chunk(self) -> bytes | None:
        return None


class BytesSource:
    """A body that is already in memory (a virtual request's JSON-encoded data)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def expected_length(self) -> int | None:
        return len(self._data) if self._data is not None else 0

    async def receive_chunk(self) -> bytes | None:
        data, self._data = self._data, None
        return data or None


class MemoryBudget:
    """The process-wide byte budget for cached and parsed bodies.

    Reservations are synchronous and never wait: when the budget is short the caller gets
    BudgetExceeded (503 + Retry-After) at once, which is what a client can act on.

    Args:
        total_bytes: the budget (profile memory.body_budget_bytes).
    """

    __slots__ = ("total", "used", "peak", "rejections")

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.used = 0
        self.peak = 0
        self.rejections = 0

    def reserve(self, nbytes: int) -> None:
        """Take nbytes from the budget.

        Raises:
            BudgetExceeded: fewer than nbytes are free.
        """
        used = self.used + nbytes
        if used > self.total:
            self.rejections += 1
            raise BudgetExceeded()
        self.used = used
        if used > self.peak:
            self.peak = used

    def release(self, nbytes: int) -> None:
        self.used -= nbytes

    def statistics(self) -> dict[str, int]:
        return {
            "total_bytes": self.total,
            "used_bytes": self.used,
            "peak_bytes": self.peak,
            "rejections": self.rejections,
        }


class State(enum.Enum):
    UNREAD = "unread"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


class BodyStream:
    """The body of one request.

    Args:
        source: where the bytes come from.
        max_body_bytes: per-request limit for the body as it arrives (413 above it).
        max_cache_bytes: per-request limit for a cached/read body (413 above it).
        budget: the process-wide budget charged for cached or parsed bytes.
    """

    __slots__ = (
        "_source",
        "_max_body",
        "_max_cache",
        "_budget",
        "state",
        "received",
        "_listeners",
        "_cache",
        "_cached",
        "_reserved",
        "_error",
        "_closed",
        "_data_listeners",
    )

    def __init__(
        self, source: BodySource, max_body_bytes: int, max_cache_bytes: int, budget: MemoryBudget
    ) -> None:
        self._source = source
        self._max_body = max_body_bytes
        self._max_cache = max_cache_bytes
        self._budget = budget
        self.state = State.UNREAD
        self.received = 0
        self._listeners: dict[str, list[Listener]] | None = None
        self._data_listeners = False
        self._cache: list[bytes] | None = None
        self._cached: bytes | None = None
        self._reserved = 0
        self._error: BodyError | None = None
        self._closed = False

    # -- events ---------------------------------------------------------------------------------
    def on(self, event: str, callback: Listener) -> None:
        """Register an EdgerOS-style listener: data(chunk), end(), close(), error(err)."""
        if event not in ("data", "end", "close", "error"):
            raise ValueError(f"unknown request event {event!r}: expected data, end, close, error")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(event, []).append(callback)
        if event == "data":
            self._data_listeners = True

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    async def _emit(self, event: str, *args: Any) -> None:
        if not self._listeners:
            return
        for cb in self._listeners.get(event, ()):
            result = cb(*args)
            if inspect.isawaitable(result):
                await result

    # -- cache ----------------------------------------------------------------------------------
    def enable_cache(self) -> None:
        """Keep the body as it arrives (EdgerOS input.enableCache()).

        Raises:
            RuntimeError: the body has already been (partly) read.
        """
        if self.state is not State.UNREAD:
            raise RuntimeError("enable_cache() must be called before the body is read")
        if self._cache is None:
            self._cache = []
            length = self._source.expected_length()
            if length is not None and length > self._max_cache:
                raise BodyTooLarge(None, _too_large(self._max_cache))

    @property
    def cached(self) -> bytes | None:
        """The cached body once complete, else None."""
        if self._cached is None and self._cache is not None and self.state is State.DONE:
            self._cached = b"".join(self._cache)
            self._cache = [self._cached]
        return self._cached

    def reserve(self, nbytes: int) -> None:
        """Charge nbytes more to the memory budget until this request finishes."""
        self._budget.reserve(nbytes)
        self._reserved += nbytes

    # -- reading --------------------------------------------------------------------------------
    def check_length(self) -> None:
        """Reject early from Content-Length alone (413 without reading a byte)."""
        length = self._source.expected_length()
        if length is not None and length > self._max_body:
            raise BodyTooLarge(None, _too_large(self._max_body))

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body's chunks, once, firing data/end/error as they happen."""
        if self.state is State.DONE or self.state is State.FAILED:
            if self._error is not None:
                raise self._error
            if self._cache is not None:
                for chunk in self._cache:
                    yield chunk
                return
            raise RuntimeError("the request body has already been read")
        if self.state is State.STREAMING:
            raise RuntimeError("the request body is already being read")
        self.state = State.STREAMING
        source = self._source
        cache = self._cache
        try:
            self.check_length()
            while True:
                chunk = await source.receive_chunk()
                if chunk is None:
                    break
                received = self.received + len(chunk)
                if received > self._max_body:
                    raise BodyTooLarge(None, _too_large(self._max_body))
                self.received = received
                if cache is not None:
                    if received > self._max_cache:
                        raise BodyTooLarge(None, _too_large(self._max_cache))
                    self.reserve(len(chunk))
                    cache.append(chunk)
                if self._data_listeners:
                    await self._emit("data", chunk)
                yield chunk
        except BodyError as exc:
            await self._fail(exc)
            raise
        self.state = State.DONE
        await self._emit("end")

    async def _fail(self, exc: BodyError) -> None:
        self.state = State.FAILED
        self._error = exc
        if self._cache is not None:  # a broken body is not kept
            self._cache = None
        await self._emit("error", exc)

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, kept (a second call returns the same bytes).

        Args:
            limit: a lower per-call cap than the mode's cache limit.
        Raises:
            BodyTooLarge, BudgetExceeded, BodyTimeout, ClientDisconnected, BodyError.
        """
        if self.state is State.UNREAD:
            if limit is not None and limit < self._max_cache:
                self._max_cache = limit
            self.enable_cache()
        elif self._cache is None and self._error is None:
            raise RuntimeError("the request body has already been streamed without the cache")
        async for _ in self.chunks():
            pass
        cached = self.cached
        assert cached is not None
        if limit is not None and len(cached) > limit:
            raise BodyTooLarge(None, _too_large(limit))
        return cached

    async def pump(self) -> None:
        """Drive the stream for listeners registered by a handler that did not read itself."""
        if self.state is State.UNREAD and self._listeners:
            try:
                async for _ in self.chunks():
                    pass
            except BodyError:
                pass  # already delivered through the error event

    async def finish(self, *, disconnected: bool = False) -> None:
        """End of the exchange: fire close once, release every reservation."""
        if self._reserved:
            self._budget.release(self._reserved)
            self._reserved = 0
        self._cache = None if self._cached is None else self._cache
        if self._closed:
            return
        self._closed = True
        if disconnected and self.state is State.STREAMING:
            await self._fail(ClientDisconnected())
        try:
            await self._emit("close")
        except Exception:  # a listener's bug must not break the connection's cleanup
            log.exception("request close listener failed")

    def release_now(self) -> None:
        """Synchronous release for cancellation paths (no events)."""
        if self._reserved:
            self._budget.release(self._reserved)
            self._reserved = 0


async def read_text(stream: BodyStream, charset: str = "utf-8") -> str:
    data = await stream.read()
    try:
        return data.decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise BadRequest(None, f"Request body is not valid {charset}") from None


async def read_json(stream: BodyStream) -> Any:
    data = await stream.read()
    try:
        return _json.loads(data)
    except _json.JSONDecodeError as exc:
        raise BadRequest(
            None,
            f"Invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}",
        ) from None
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(None, f"Invalid JSON: {type(exc).__name__}") from None


def _too_large(limit: int) -> str:
    return f"Payload too large: limit {limit} bytes"
