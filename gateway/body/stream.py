# Request bodies: one pull-based stream behind `async for chunk in req`, the EdgerOS events
# (data, end, close, error), the body cache (enable_cache/read) and the process-wide MemoryBudget.
# Events are fired by the same pull that `async for` makes, so there is one code path and one
# kind of backpressure: the next chunk is asked of the source only when the previous one was taken.
# Must not: touch sockets, tasks or clocks; bytes come from a BodySource the server (or a
# WebSocket virtual request) provides one chunk at a time. Never imports trio.
#
# Theory of operation: a BodyStream is UNREAD until the first pull, STREAMING while chunks flow,
# then DONE (every byte arrived, `end` fired) or FAILED (`error` fired with the BodyError). Only
# pulls move it (`__anext__`, read(), pump()). `close` fires exactly once, from finish(), which
# the transport calls when the exchange ends on any path (reply sent, error, disconnect, trio
# cancellation); finish() first releases every byte this request reserved from the MemoryBudget,
# synchronously, before anything that could be cancelled. After finish() the stream refuses to
# pull: its source may already be serving the next request on the connection.
from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from gateway.body.budget import MemoryBudget, tune_allocator
from gateway.errors import BodyError, BodyTooLarge, ClientDisconnected
from gateway.jsoncodec import make_encoder

if TYPE_CHECKING:
    from gateway.app.contracts import BodySource

__all__ = [
    "EVENTS",
    "BodyStream",
    "BytesSource",
    "EmptySource",
    "MemoryBudget",
    "ValueSource",
    "State",
    "too_large",
    "tune_allocator",
]

log = logging.getLogger("gateway.body")

Listener = Callable[..., Awaitable[None] | None]
EVENTS = ("data", "end", "close", "error")


class EmptySource:
    """A request without a body."""

    __slots__ = ()

    def expected_length(self) -> int | None:
        return 0

    async def receive_chunk(self) -> bytes | None:
        return None


class BytesSource:
    """A body that is already in memory as bytes."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def expected_length(self) -> int | None:
        return len(self._data) if self._data is not None else 0

    async def receive_chunk(self) -> bytes | None:
        data, self._data = self._data, None
        return data or None


class ValueSource:
    """A body that arrived already parsed: a Sails virtual request's ``data`` (a ParsedBody).

    The request gets ``value`` as ``req.body`` (and ``req.json()``) with no parser involved.
    Byte reads (``async for``, ``read()``, ``text()``) get its JSON text, encoded on the first
    read only: most virtual requests never ask. Memory: the value is not charged to the body
    budget; it was bounded as the WebSocket message it arrived in (max_message_bytes, with at
    most MAX_IN_FLIGHT such messages per socket). JSON text a handler reads is charged like any
    cached body, once.
    """

    __slots__ = ("value", "_sent")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._sent = False

    def expected_length(self) -> int | None:
        return None  # unknown until encoded; the limits are checked as the bytes arrive

    async def receive_chunk(self) -> bytes | None:
        if self._sent:
            return None
        self._sent = True
        value = self.value
        if type(value) is dict and not value:
            return b"{}"  # what most virtual requests carry (a GET's data)
        return _value_json(value).encode()


# the JSON text of a virtual request's data, as JSONEncoder(separators=(",", ":"),
# ensure_ascii=False) writes it (the Socket.IO decoder refuses NaN, but 1e400 is an infinity)
_value_json = make_encoder(ensure_ascii=False, allow_nan=True)


def too_large(limit: int) -> BodyTooLarge:
    """The one 413 of every body limit: stream, cache, parser and decoded-size limits alike.

    Args:
        limit: the limit that was exceeded, in bytes.

    Returns:
        A BodyTooLarge whose message names the limit (Express body-parser's wording).
    """
    return BodyTooLarge(None, f"request entity too large: limit {limit} bytes")


_ENDED = EmptySource()  # the source of a stream whose exchange has ended


def _ended() -> RuntimeError:
    return RuntimeError("the request has ended: its body can no longer be read")


class State(enum.Enum):
    UNREAD = "unread"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


# The members as module names: on Python 3.11 `State.DONE` is an attribute lookup through the
# enum's metaclass (some 60 ns, five times a plain class attribute), and a body's reads compare
# states a dozen times.
_UNREAD: Final = State.UNREAD
_STREAMING: Final = State.STREAMING
_DONE: Final = State.DONE
_FAILED: Final = State.FAILED


class _Replay:
    """Iterates a cached body again (``async for`` after the body was read with the cache on)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _Replay:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if not data:
            raise StopAsyncIteration
        return data


class _CacheStore:
    """Where a cached body accumulates until it is complete.

    With a declared length: one buffer of that size, filled in place as chunks arrive, so each
    receive buffer is freed at once and the heap is not cut up by many long-lived chunks of
    many requests (measured: that fragmentation cost more RSS than the budget it served). A
    body that arrives as one chunk is kept as that chunk (no copy at all). Without a declared
    length (chunked): the chunks, joined once at the end.
    """

    __slots__ = ("_length", "_buf", "_pos", "_chunks")

    def __init__(self) -> None:
        self._length = 0
        self._buf: bytearray | None = None
        self._pos = 0
        self._chunks: list[bytes] = []

    def expect(self, length: int) -> None:
        self._length = length

    def append(self, chunk: bytes) -> None:
        buf = self._buf
        if buf is None:
            if not self._length or self._chunks or len(chunk) >= self._length:
                self._chunks.append(chunk)
                return
            buf = self._buf = bytearray(self._length)
        end = self._pos + len(chunk)
        if end > len(buf):  # more than declared (not from an HTTP source): keep it all
            self._chunks.append(bytes(memoryview(buf)[: self._pos]))
            self._chunks.append(chunk)
            self._buf = None
            return
        buf[self._pos : end] = chunk
        self._pos = end

    def value(self) -> bytes:
        """The whole body (a transient second copy while a buffer is turned into bytes)."""
        buf = self._buf
        if buf is not None:
            return bytes(buf) if self._pos == len(buf) else bytes(memoryview(buf)[: self._pos])
        chunks = self._chunks
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def clear(self) -> None:
        """Free the bytes now (a traceback or a caller may still hold this object)."""
        if self._buf is not None:
            self._buf.clear()
            self._buf = None
        self._chunks.clear()


class BodyStream:
    """The body of one request; ``async for chunk in stream`` pulls it chunk by chunk.

    Args:
        source: where the bytes come from.
        max_body_bytes: limit for the body as it arrives (413 above it).
        max_cache_bytes: limit for a cached/read body (413 above it).
        budget: the process-wide budget charged for cached or parsed bytes.
    """

    __slots__ = (
        "_source",
        "max_body_bytes",
        "max_cache_bytes",
        "_budget",
        "state",
        "received",
        "_listeners",
        "_data_listeners",
        "_caching",
        "_store",
        "_cache_bytes",
        "_pledge",
        "_cached",
        "_reserved",
        "_error",
        "_closed",
        "_pulling",
        "on_cached",
        "on_finished",
    )

    def __init__(
        self, source: BodySource, max_body_bytes: int, max_cache_bytes: int, budget: MemoryBudget
    ) -> None:
        self._source = source
        self.max_body_bytes = max_body_bytes
        self.max_cache_bytes = max_cache_bytes
        self._budget = budget
        self.state = _UNREAD
        self.received = 0
        self._listeners: dict[str, list[Listener]] | None = None
        self._data_listeners = False
        self._caching = False
        self._store: _CacheStore | None = None
        self._cache_bytes = 0
        self._pledge = 0  # what is left of this body's pledge on the budget
        self._cached: bytes | None = None
        self._reserved = 0
        self._error: BodyError | ClientDisconnected | None = None
        self._closed = False
        self._pulling = False
        # called with the whole body when a cached body is complete (Request stores req.body)
        self.on_cached: Callable[[bytes], None] | None = None
        # called once the exchange has ended and the stream let go of the body (see finish())
        self.on_finished: Callable[[], None] | None = None

    # -- events ---------------------------------------------------------------------------------
    def on(self, event: str, callback: Listener) -> None:
        """Register an EdgerOS-style listener (plain function or coroutine function).

        Args:
            event: ``data`` (chunk), ``end`` (), ``close`` () or ``error`` (err).
            callback: called in order of registration; an async one is awaited before the next
                chunk is pulled (that is the backpressure of event-style readers).

        Raises:
            ValueError: an unknown event name.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown request event {event!r}: expected data, end, close, error")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(event, []).append(callback)
        if event == "data":
            self._data_listeners = True

    def listener_count(self, event: str) -> int:
        """How many listeners ``event`` has (Node's emitter.listenerCount)."""
        return len(self._listeners.get(event, ())) if self._listeners else 0

    async def _emit(self, event: str, *args: Any) -> None:
        listeners = self._listeners
        if not listeners or event not in listeners:
            return
        for cb in tuple(listeners[event]):  # a listener may register others
            result = cb(*args)
            if inspect.isawaitable(result):
                await result

    # -- cache and budget -----------------------------------------------------------------------
    @property
    def cache_enabled(self) -> bool:
        """True once enable_cache() (or read()) has switched caching on."""
        return self._caching

    def enable_cache(self) -> None:
        """Keep the body as it arrives (EdgerOS input.enableCache()); idempotent.

        The limits (max_cache_bytes: 413; the memory budget: 503) are checked at the first
        pull, from Content-Length when there is one, then as every chunk arrives.

        Raises:
            RuntimeError: the body has already been (partly) read: a programming error, which
                the App answers with a 500 and a traceback in the log.
        """
        if self._caching:
            return
        if self.state is not _UNREAD:
            raise RuntimeError(
                "enable_cache() must be called before the request body is read "
                f"(the body is {self.state.value})"
            )
        self._caching = True
        self._store = _CacheStore()

    @property
    def cached(self) -> bytes | None:
        """The cached body once it has fully arrived, else None."""
        return self._cached

    def reserve(self, nbytes: int) -> None:
        """Charge nbytes more to the memory budget until this request finishes.

        Raises:
            BudgetExceeded: the budget is exhausted (503).
            RuntimeError: the request has already finished (a task kept it too long).
        """
        if self._closed:
            raise RuntimeError("the request has ended: nothing more can be reserved for it")
        self._budget.reserve(nbytes)
        self._reserved += nbytes

    @property
    def reserved(self) -> int:
        """Bytes this request holds of the memory budget now."""
        return self._reserved

    # -- reading --------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate the body: live chunks, or the cached body again once it was read whole.

        Raises:
            BodyError: the body already failed (the same error again).
            RuntimeError: the body was already read without the cache, or the exchange ended.
        """
        if self._closed:
            raise _ended()
        state = self.state
        if state is _DONE:
            if self._cached is not None:
                return _Replay(self._cached)
            raise RuntimeError(
                "the request body has already been read "
                "(call req.enable_cache() before reading to keep it)"
            )
        if state is _FAILED:
            assert self._error is not None
            raise self._error
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._pull()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def _pull(self) -> bytes | None:
        """One chunk from the source (None at the end), with every limit and event applied."""
        if self._closed:
            raise _ended()
        state = self.state
        if state is _DONE:
            return None
        if state is _FAILED:
            assert self._error is not None
            raise self._error
        if self._pulling:
            raise RuntimeError("another task is already reading this request body")
        self._pulling = True
        try:
            if state is _UNREAD:
                self.state = _STREAMING
                self._check_declared_length()
            chunk = await self._source.receive_chunk()
            if chunk is None:
                self._complete()
                if self._listeners:
                    await self._emit("end")
                return None
            received = self.received + len(chunk)
            if received > self.max_body_bytes:
                raise too_large(self.max_body_bytes)
            self.received = received
            store = self._store
            if store is not None:
                if received > self.max_cache_bytes:
                    raise too_large(self.max_cache_bytes)
                self._keep(len(chunk))
                store.append(chunk)
            if self._data_listeners:
                await self._emit("data", chunk)
            return chunk
        except (BodyError, ClientDisconnected) as exc:
            # The error's traceback keeps this frame (and its locals) alive for as long as the
            # error lives, possibly in a reference cycle: hold no body bytes in it.
            chunk = store = None
            if self.state is _STREAMING:
                await self._fail(exc)
            raise
        finally:
            self._pulling = False

    def _check_declared_length(self) -> None:
        # Content-Length only rejects early; the real checks are made as the bytes arrive.
        length = self._source.expected_length()
        if length is None:
            return
        if length > self.max_body_bytes:
            raise too_large(self.max_body_bytes)
        if self._caching:
            if length > self.max_cache_bytes:
                raise too_large(self.max_cache_bytes)
            self._budget.pledge(length)
            self._pledge = length
            if self._store is not None:
                self._store.expect(length)

    def _keep(self, nbytes: int) -> None:
        # a cached chunk: redeemed from this body's pledge, or reserved when it has none
        if self._closed:
            raise _ended()
        pledged = min(nbytes, self._pledge)
        if pledged:
            self._budget.redeem(pledged)
            self._pledge -= pledged
            self._reserved += pledged
        if nbytes > pledged:
            self.reserve(nbytes - pledged)
        self._cache_bytes += nbytes

    def _complete(self) -> None:
        store = self._store
        if store is not None:
            try:
                # the copy into bytes is made synchronously: one such transient copy at most
                # exists in the process at any time (the slack above the budget covers it)
                self._cached = store.value()
            except MemoryError:
                raise self._budget.reject() from None
            store.clear()
            self._store = None
        self._unpledge()
        self.state = _DONE
        if self._cached is not None and self.on_cached is not None:
            self.on_cached(self._cached)

    async def _fail(self, exc: BodyError | ClientDisconnected) -> None:
        self.state = _FAILED
        self._error = exc
        self._drop_cache()  # a broken body is not kept: its bytes go back to the budget now
        if self._listeners:
            await self._emit("error", exc)

    def _drop_cache(self) -> None:
        self._clear_chunks()
        self._unpledge()
        if self._cache_bytes:
            self._budget.release(self._cache_bytes)
            self._reserved -= self._cache_bytes
            self._cache_bytes = 0

    def _unpledge(self) -> None:
        if self._pledge:
            self._budget.unpledge(self._pledge)
            self._pledge = 0

    def _clear_chunks(self) -> None:
        if self._store is not None:
            self._store.clear()
            self._store = None

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, kept (a second call returns the same bytes); switches caching on.

        Args:
            limit: a lower cap than the mode's max_cache_bytes for this read.

        Returns:
            The raw body bytes (as received: any Content-Encoding is not decoded here).

        Raises:
            BodyTooLarge: 413, over max_body_bytes, max_cache_bytes or ``limit``.
            BudgetExceeded: 503, the memory budget is exhausted.
            BodyTimeout, ClientDisconnected, BodyError: the body broke while arriving.
            RuntimeError: the body was already (partly) streamed without the cache, or the
                exchange has ended.
        """
        if self._closed:
            raise _ended()
        cached = self._cached
        if cached is None:
            if self.state is _FAILED:
                assert self._error is not None
                raise self._error
            if not self._caching:
                if self.state is not _UNREAD:
                    raise RuntimeError(
                        "the request body was already streamed without the cache: "
                        "call req.enable_cache() before reading it, or use only req.read()"
                    )
                self.enable_cache()
            if limit is not None and limit < self.max_cache_bytes:
                self.max_cache_bytes = limit
            while await self._pull() is not None:
                pass
            cached = self._cached
            assert cached is not None
        if limit is not None and len(cached) > limit:
            raise too_large(limit)
        return cached

    async def pump(self) -> None:
        """Drive the body for listeners registered by a handler that returned without reading.

        An error is re-raised when no ``error`` listener took it (as Node's emitter throws an
        unhandled 'error'), so the App replies with its status; ClientDisconnected is always
        re-raised: there is nobody left to answer.
        """
        if self.state is _DONE or self._closed or not self._listeners:
            return
        if not (self._data_listeners or "end" in self._listeners or "error" in self._listeners):
            return
        try:
            while await self._pull() is not None:
                pass
        except ClientDisconnected:
            raise
        except BodyError:
            if not self.listener_count("error"):
                raise

    async def finish(self, *, disconnected: bool = False) -> None:
        """End of the exchange: release every reservation, fire ``close`` once, let go.

        Safe on every path, including trio cancellation: the release happens synchronously
        before the first checkpoint. A close listener's exception is logged, not raised.

        Letting go: after the close listeners, the stream drops the body and everything that
        could keep it alive (listeners, which are closures over req/res; its source, which is
        the connection; a body error, whose traceback holds the frames that read the body) and
        calls ``on_finished`` (the Request sets ``req.body`` back to ``{}``). The budget has
        just been told these bytes are free; dropping the references makes that true at once,
        even when the request sits in a reference cycle that only a later cyclic collection
        would free (large bytes objects do not even count towards triggering one).

        Args:
            disconnected: the client went away; a body still arriving fails with
                ClientDisconnected (``error``) before ``close``.
        """
        self.release_now()
        if self._closed:
            return
        self._closed = True
        try:
            if disconnected and self.state in (_UNREAD, _STREAMING):
                self.state = _FAILED
                self._error = ClientDisconnected()
                if self.listener_count("error"):
                    try:
                        await self._emit("error", self._error)
                    except Exception:
                        log.exception("request error listener failed")
            close = self._listeners.get("close", ()) if self._listeners else ()
            for cb in close:
                try:
                    result = cb()
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # a listener's bug must not break the connection's cleanup
                    log.exception("request close listener failed")
        finally:
            self._let_go()

    def _let_go(self) -> None:
        self._listeners = None
        self._data_listeners = False
        self._source = _ENDED
        self._cached = None
        self._error = None
        self.on_cached = None
        hook, self.on_finished = self.on_finished, None
        if hook is not None:
            hook()

    def release_now(self) -> None:
        """Give every reserved and pledged byte back (synchronous; finish() starts with it)."""
        self._clear_chunks()
        self._unpledge()
        self._cache_bytes = 0
        if self._reserved:
            self._budget.release(self._reserved)
            self._reserved = 0
