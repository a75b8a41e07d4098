# A response of the HTTP client: its head, its body read once (buffered up to a cap, or
# streamed: chunks, JSON-seq/NDJSON values, to a file) and the return of its connection.
# Owns: Headers, Response, the body iterators, reading under the request's deadline, giving the
# connection back (pooled only when its exchange ended cleanly) or discarding it.
# Must not: send requests (gateway.client.http does) or know about handlers and events.
from __future__ import annotations

import json as _json
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import IO, Any, Final

import trio

import gateway.client.jsonseq as jsonseq
from gateway.client.errors import (
    ClientError,
    InvalidJSON,
    RequestTimeout,
    ResponseTooLarge,
    TransportError,
    error_for_status,
)
from gateway.client.pool import Connection, Pool
from gateway.http.parser import h11  # h11 or h11_mypyc: one module for events and errors

__all__ = ["Response", "Headers", "ProgressCallback"]

_CHUNK: Final = 65536

# on_upload / on_download: (bytes so far, total or None)
ProgressCallback = Callable[[int, "int | None"], Any]


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive, in order, repeated names kept (``get_all``).

    ``headers[name]`` and ``get(name)`` join repeated fields with ", " (as HTTP allows),
    except Set-Cookie, whose values are joined with "\\n" (use ``get_all``).
    """

    __slots__ = ("raw", "_map")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        # h11's own (lower-case names), kept as it is: most callers never look at them
        self.raw: Iterable[tuple[bytes, bytes]] = raw
        self._map: dict[str, str] | None = None

    def _build(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            if key in out:
                out[key] += ("\n" if key == "set-cookie" else ", ") + text
            else:
                out[key] = text
        self._map = out
        return out

    def __getitem__(self, name: str) -> str:
        m = self._map if self._map is not None else self._build()
        return m[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        m = self._map if self._map is not None else self._build()
        return m.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of a field, in order."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.raw if n.lower() == key]

    def __iter__(self) -> Any:
        m = self._map if self._map is not None else self._build()
        return iter(m)

    def __len__(self) -> int:
        m = self._map if self._map is not None else self._build()
        return len(m)

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


def _media_type(value: str | None) -> str:
    return value.partition(";")[0].strip().lower() if value else ""


def _charset(value: str | None) -> str:
    if value:
        for param in value.split(";")[1:]:
            key, _, val = param.partition("=")
            if key.strip().lower() == "charset":
                return val.strip().strip('"') or "utf-8"
    return "utf-8"


class _NoScope:
    """Stands in for a cancel scope when the pool's watchdog keeps the deadline."""

    __slots__ = ()
    cancelled_caught = False

    def __enter__(self) -> _NoScope:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SCOPE: Final = _NoScope()


# ---------------------------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------------------------


class Response:
    """One response. Its body is read once: buffered (``content``, ``text``, ``json()``, after
    ``await read()`` or from ``Client.request``) or streamed (``aiter_bytes()``, ``values()``,
    ``save()``) from ``Client.stream``.

    Attributes:
        status: the HTTP status code.
        reason: the reason phrase.
        headers: a Headers mapping.
        url: the final URL (after redirects).
        method: the method of the last request sent.
        history: (status, url) of each redirect followed, in order (a tuple).
        http_version: "1.1" or "1.0".
        data, type, last_error, errors: seed 002's fields, filled by the request object.
        conn: the connection the body is still to be read from; None once it is read or the
            response is closed. Internal to the client package (gateway.client.http sets it).
    """

    __slots__ = (
        "status",
        "_reason",
        "_raw_headers",
        "_headers",
        "url",
        "method",
        "history",
        "_version",
        "_content",
        "conn",
        "_pool",
        "_deadline",
        "_on_download",
        "_received",
        "_max_body",
        "_timeout_s",
        "_started",
        "_watched",
        "data",
        "type",
        "last_error",
        "errors",
        "__weakref__",
    )

    def __init__(
        self,
        status: int,
        reason: str | bytes,
        headers: Any,
        url: str,
        method: str,
        http_version: str | bytes = "1.1",
    ) -> None:
        # reason, version and headers stay as h11 gave them until someone asks
        self.status = status
        self._reason = reason
        self._raw_headers = headers
        self._headers: Headers | None = headers if isinstance(headers, Headers) else None
        self.url = url
        self.method = method
        self.history: tuple[tuple[int, str], ...] = ()
        self._version = http_version
        self._content: bytes | None = None
        self.conn: Connection | None = None
        self._pool: Pool | None = None
        self._deadline = math.inf
        self._on_download: ProgressCallback | None = None
        self._received = 0
        self._max_body = 0
        self._timeout_s: float | None = None
        self._started = 0.0  # trio clock when the request began
        self._watched = False  # the pool's watchdog keeps the deadline (no scope per read)
        # Filled by the seeds' request object (gateway.client.request), as seed 002's response:
        self.data: Any = None  # the parsed body: JSON value, text, bytes ({} for a JSON stream)
        self.type = ""  # "json" or "blob"
        self.last_error = 0  # 0, or the seed-002 code of the error it came with
        self.errors: list[ClientError] = []  # JSON-seq records skipped (InvalidJSON, 520)

    def attach(
        self,
        pool: Pool,
        watched: bool,
        started: float,
        deadline: float,
        timeout_s: float | None,
        on_download: ProgressCallback | None,
        max_body: int,
    ) -> None:
        """Tie the unread body to the request that made it (gateway.client.http, once the head
        is in; internal to the client package).

        Args:
            pool: the pool ``conn`` goes back to once the body is read.
            watched: the pool's watchdog keeps the deadline (no cancel scope per read).
            started: the trio clock when the request began (the pool's figures).
            deadline: the request's total deadline (trio clock; inf for none).
            timeout_s: the total timeout, for the RequestTimeout message.
            on_download: the progress callback, or None.
            max_body: the cap of a buffered body (``read()`` without a cap).
        """
        self._pool = pool
        self._watched = watched
        self._started = started
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._on_download = on_download
        self._max_body = max_body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} {self.url}>"

    @property
    def reason(self) -> str:
        """The reason phrase."""
        r = self._reason
        return r.decode("latin-1") if isinstance(r, bytes) else r

    @property
    def http_version(self) -> str:
        """ "1.1" or "1.0"."""
        v = self._version
        return v.decode("ascii") if isinstance(v, bytes) else v

    @property
    def headers(self) -> Headers:
        """The response headers (a case-insensitive Headers mapping)."""
        h = self._headers
        if h is None:
            h = self._headers = Headers(self._raw_headers)
        return h

    # -- status ----------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def raise_for_status(self) -> Response:
        """Return self for a 2xx status, else raise the seed-002 error.

        Raises:
            Forbidden (510), NotFound (511), StatusError (504).
        """
        if 200 <= self.status < 300:
            return self
        raise error_for_status(self.status, self.reason, self)

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters ("" when absent)."""
        return _media_type(self.headers.get("content-type"))

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as a number, or None."""
        value = self.headers.get("content-length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def bytes_received(self) -> int:
        """Body bytes read so far."""
        return self._received

    # -- buffered --------------------------------------------------------------------------

    @property
    def content(self) -> bytes:
        """The whole body (raises RuntimeError on a streamed response not read yet)."""
        if self._content is None:
            raise RuntimeError("the body was not read: await response.read() first")
        return self._content

    @property
    def text(self) -> str:
        """The body decoded with the Content-Type's charset (UTF-8 by default)."""
        return self.content.decode(_charset(self.headers.get("content-type")), "replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            InvalidJSON: code 520.
        """
        try:
            return _json.loads(self.content)
        except (ValueError, RecursionError) as exc:
            raise InvalidJSON(
                f"invalid JSON in the response: {exc}",
                self,
                self.content[:200].decode("utf-8", "replace"),
            ) from None

    async def read(self, max_bytes: int | None = None) -> bytes:
        """Read the rest of the body into memory (once; later calls return it again).

        Args:
            max_bytes: the cap (default: the client's max_body_bytes).

        Returns:
            The body.

        Raises:
            ResponseTooLarge: over the cap (the connection is discarded).
            RequestTimeout, TransportError.
        """
        if self._content is not None:
            return self._content
        cap = self._max_body if max_bytes is None else max_bytes
        conn = self.conn
        parts = []
        size = 0
        if conn is not None and self._on_download is None:
            # the common case without a coroutine per chunk: h11 events read here directly
            h = conn.h11
            try:
                while True:
                    ev = h.next_event()
                    kind = type(ev)
                    if kind is h11.Data:
                        data = ev.data  # type: ignore[union-attr]
                        size += len(data)
                        if size > cap:
                            raise ResponseTooLarge(f"response body over the {cap}-byte cap", self)
                        parts.append(data)
                    elif kind is h11.EndOfMessage:
                        break
                    elif ev is h11.NEED_DATA:
                        await self._receive(conn)
                    else:
                        raise TransportError("the connection closed before the body ended", self)
            except h11.RemoteProtocolError as exc:
                self._abandon(conn)
                raise TransportError(f"bad response body: {exc}", self) from None
            except BaseException:
                self._abandon(conn)
                raise
            self._received = size
            self.conn = None
            try:
                h.start_next_cycle()  # both sides DONE: keep it (no Connection: close)
            except h11.LocalProtocolError:
                if self._pool is not None:
                    self._pool.release(conn, False)
                else:
                    conn.discard()
            else:
                if self._pool is not None:
                    self._pool.release(conn, True, self._started)
                else:
                    conn.discard()
        else:
            while (chunk := await self.next_chunk()) is not None:
                size += len(chunk)
                if size > cap:
                    await self.aclose()
                    raise ResponseTooLarge(f"response body over the {cap}-byte cap", self)
                parts.append(chunk)
        self._content = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        return self._content

    # -- streamed --------------------------------------------------------------------------

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (once). Leaving the loop early is fine: closing
        the response (the ``stream`` block's end) discards the connection.

        Raises:
            RequestTimeout: the request's deadline passed.
            TransportError: the connection broke, or the body was cut short.
        """
        return _Chunks(self)

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end (the connection then goes back)."""
        conn = self.conn
        if conn is None:
            return None
        h = conn.h11
        try:
            while True:
                ev = h.next_event()
                if ev is h11.NEED_DATA:
                    await self._receive(conn)
                    continue
                kind = type(ev)
                if kind is h11.Data:
                    data = bytes(ev.data)  # type: ignore[union-attr]
                    self._received += len(data)
                    if self._on_download is not None:
                        _call(self._on_download, self._received, self.content_length)
                    return data
                if kind is h11.EndOfMessage:
                    self.conn = None
                    self._release(conn, True)
                    return None
                raise TransportError("the connection closed before the body ended", self)
        except h11.RemoteProtocolError as exc:
            self._abandon(conn)
            raise TransportError(f"bad response body: {exc}", self) from None
        except BaseException:
            self._abandon(conn)
            raise

    def _abandon(self, conn: Connection) -> None:
        if self.conn is conn:
            self.conn = None
            self._release(conn, False)

    def values(
        self,
        *,
        max_record_bytes: int = 1 << 20,
        on_invalid: Callable[[InvalidJSON], Any] | None = None,
    ) -> AsyncIterator[Any]:
        """JSON values from the body as they arrive: one per record for application/json-seq
        (RFC 7464) and NDJSON, the single value of any other (JSON) body.

        Args:
            max_record_bytes: the largest record held (a larger one is reported and skipped).
            on_invalid: called with an InvalidJSON (code 520) for each record skipped; without
                it, an invalid record raises InvalidJSON after the values before it.

        Raises:
            InvalidJSON: a bad record (without on_invalid) or a bad single JSON body.
        """
        ctype = self.content_type
        decoder: jsonseq.JSONSeqDecoder | jsonseq.NDJSONDecoder | None = None
        if ctype in jsonseq.SEQ_TYPES:
            decoder = jsonseq.JSONSeqDecoder(max_record_bytes)
        elif ctype in jsonseq.NDJSON_TYPES:
            decoder = jsonseq.NDJSONDecoder(max_record_bytes)
        return _Values(self, decoder, on_invalid)

    def _invalid(
        self, item: jsonseq.InvalidRecord, on_invalid: Callable[[InvalidJSON], Any] | None
    ) -> None:
        err = InvalidJSON(f"record {item.index}: {item.reason}", self, item.text)
        if on_invalid is None:
            raise err
        _call(on_invalid, err)

    async def save(self, file: str | os.PathLike[str] | IO[bytes]) -> int:
        """Stream the body to a file (a path is created/truncated); memory stays one chunk.

        Returns:
            Bytes written.
        """
        if isinstance(file, (str, os.PathLike)):
            f = await trio.open_file(file, "wb")
            try:
                n = 0
                async for chunk in self.aiter_bytes():
                    await f.write(chunk)
                    n += len(chunk)
                return n
            finally:
                await f.aclose()
        n = 0
        async for chunk in self.aiter_bytes():
            await trio.to_thread.run_sync(file.write, chunk)
            n += len(chunk)
        return n

    async def aclose(self) -> None:
        """Stop reading: an unread body's connection is discarded (never pooled half-read)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self._release(conn, False)
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------------

    async def _receive(self, conn: Connection) -> None:
        with (
            _NO_SCOPE
            if self._watched or self._deadline == math.inf
            else trio.CancelScope(deadline=self._deadline)
        ) as scope:
            try:
                data = await conn.stream.receive_some(_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                if conn.timed_out:
                    raise RequestTimeout(
                        f"no whole response within {self._timeout_s:g} s", self
                    ) from None
                raise TransportError(
                    f"connection broken while reading the body: {exc}", self
                ) from None
            # bytes: the compiled h11_mypyc refuses a bytearray
            conn.h11.receive_data(data if type(data) is bytes else bytes(data))
            return
        if scope.cancelled_caught:
            raise RequestTimeout(f"no whole response within {self._timeout_s:g} s", self)

    def _release(self, conn: Connection, finished: bool) -> None:
        pool = self._pool
        h = conn.h11
        reusable = finished and h.our_state is h11.DONE and h.their_state is h11.DONE
        if reusable:
            h.start_next_cycle()
        if pool is not None:
            pool.release(conn, reusable, self._started)
        else:
            conn.discard()


class _Chunks:
    """``Response.aiter_bytes()``: a plain async iterator (no async generator to finalize)."""

    __slots__ = ("resp", "first")

    def __init__(self, resp: Response) -> None:
        self.resp = resp
        self.first = True

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        resp = self.resp
        if resp._content is not None:  # already read: the whole body once
            if self.first and resp._content:
                self.first = False
                return resp._content
            raise StopAsyncIteration
        chunk = await resp.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _Values:
    """``Response.values()``: records decoded as they arrive."""

    __slots__ = ("resp", "decoder", "on_invalid", "pending", "done")

    def __init__(
        self,
        resp: Response,
        decoder: jsonseq.JSONSeqDecoder | jsonseq.NDJSONDecoder | None,
        on_invalid: Callable[[InvalidJSON], Any] | None,
    ) -> None:
        self.resp = resp
        self.decoder = decoder
        self.on_invalid = on_invalid
        self.pending: deque[Any] = deque()
        self.done = False

    def __aiter__(self) -> _Values:
        return self

    async def __anext__(self) -> Any:
        resp = self.resp
        pending = self.pending
        while True:
            while pending:
                item = pending.popleft()
                if type(item) is jsonseq.InvalidRecord:
                    resp._invalid(item, self.on_invalid)
                else:
                    return item
            if self.done:
                raise StopAsyncIteration
            decoder = self.decoder
            if decoder is None:  # a single JSON body
                self.done = True
                await resp.read()
                return resp.json()
            chunk = await resp.next_chunk()
            if chunk is None:
                self.done = True
                pending.extend(decoder.close())
            else:
                pending.extend(decoder.feed(chunk))


def _call(fn: Callable[..., Any], *args: Any) -> None:
    # progress callbacks are plain functions; a coroutine function here would be a bug
    fn(*args)
