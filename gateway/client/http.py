# The HTTP/1.1 client: requests over pooled h11 connections, with a total deadline, redirects,
# retries on connection failures, bodies from bytes/files/iterators, streamed responses and
# progress callbacks.
# Owns: URL resolution, request heads and bodies, one exchange on one connection, the redirect
# and retry loops (Response and its body: gateway.client.response).
# Must not: open sockets itself (gateway.client.pool does) or know about handlers and events
# (gateway.client.request builds the seeds' request object on top of this).
#
# Theory of operation: Client.open runs the redirect loop around the retry loop around one
# exchange (send the head and body, read the response head), all in one coroutine (one frame
# to resume per suspension; the rare paths are helpers). It returns a Response
# whose body is unread and which holds the connection; reading the body to its end gives the
# connection back to the pool when both sides of h11 are DONE; anything else (an error, a
# cancellation, aclose() before the end) discards it. Every read runs under the request's
# deadline (trio clock), so a total deadline covers the body too.
from __future__ import annotations

import contextlib
import inspect
import json as _json
import math
import os
import ssl
import stat
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlencode, urljoin, urlsplit

import trio

from gateway.client.errors import (
    ClientError,
    ConnectError,
    RequestTimeout,
    TooManyRedirects,
    TransportError,
)
from gateway.client.pool import Connection, Origin, Pool, make_ssl_context, open_connection
from gateway.client.response import _NO_SCOPE, Headers, ProgressCallback, Response
from gateway.http.parser import h11  # h11 or h11_mypyc: one module for events and errors

__all__ = ["Client", "Response", "Headers", "ProgressCallback", "USER_AGENT", "IDEMPOTENT"]

USER_AGENT: Final = "gateway-client/1"  # a suggested value for Client(user_agent=...)
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 65536
_MAX_DRAIN: Final = 65536  # a redirect's body read to keep its connection; more: discard it
_DEFAULT: Any = object()
_NO_NAMES: Final[frozenset[str]] = frozenset()
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class _Retryable(Exception):
    """A transport failure before any response byte arrived (internal)."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(error.message)
        self.error = error


# ---------------------------------------------------------------------------------------------
# URLs and headers
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _resolve(url: str, unix_path: str) -> tuple[Origin, str, str]:
    """(origin, target, host header) of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    name = f"[{host}]" if ":" in host else host
    host_header = name if default else f"{name}:{port}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return (scheme, host, port, unix_path), target, host_header


def _origin_key(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or (443 if scheme == "https" else 80)


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------


class _Body:
    """What to send: bytes, a file, or an (async) iterable of bytes; replayable or not."""

    __slots__ = ("data", "file", "start", "chunks", "length", "consumed")

    def __init__(self, content: Any) -> None:
        self.data: bytes | None = None
        self.file: Any = None
        self.start = 0
        self.chunks: Any = None
        self.length: int | None = None
        self.consumed = False
        if content is None:
            self.data, self.length = b"", 0
        elif isinstance(content, (bytes, bytearray, memoryview)):
            self.data = bytes(content)
            self.length = len(self.data)
        elif isinstance(content, str):
            self.data = content.encode("utf-8")
            self.length = len(self.data)
        elif hasattr(content, "read"):
            self.file = content
            sync = getattr(content, "wrapped", content)  # trio's async file wraps a plain one
            try:
                self.start = sync.tell()
                st = os.fstat(sync.fileno())
                if stat.S_ISREG(st.st_mode):
                    self.length = st.st_size - self.start
            except (OSError, AttributeError, ValueError):
                self.length = None
        elif hasattr(content, "__aiter__") or isinstance(content, Iterable):
            self.chunks = content
        else:
            raise TypeError(
                f"cannot send a {type(content).__name__} as a body (bytes, str, a "
                "binary file, or an iterable of bytes)"
            )

    @property
    def replayable(self) -> bool:
        """It can be sent again (a retry or a 307/308 redirect)."""
        if self.data is not None:
            return True
        if self.file is not None:
            try:
                return bool(getattr(self.file, "wrapped", self.file).seekable())
            except (AttributeError, OSError, ValueError):
                return False
        return not self.consumed

    def rewind(self) -> None:
        if self.file is not None and self.consumed:
            getattr(self.file, "wrapped", self.file).seek(self.start)
        self.consumed = False

    async def chunks_iter(self) -> AsyncIterator[bytes]:
        self.consumed = True
        if self.file is not None:
            f = self.file
            read = f.read
            if inspect.iscoroutinefunction(read):
                while chunk := await read(_CHUNK):
                    yield bytes(chunk)
            else:
                while True:
                    chunk = await trio.to_thread.run_sync(read, _CHUNK)
                    if not chunk:
                        break
                    yield bytes(chunk)
        elif hasattr(self.chunks, "__aiter__"):
            async for chunk in self.chunks:
                yield bytes(chunk)
        else:
            for chunk in self.chunks:
                yield bytes(chunk)


_NO_BODY: Final = _Body(None)  # shared: an empty body has no state to change

# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------


class Client:
    """An HTTP/1.1 client on trio with a keep-alive pool per origin.

    Use ``async with Client(...) as client`` (or ``await client.aclose()``).

    Args:
        base_url: prefix for relative URLs ("http://board.local:8080").
        headers: sent with every request (a request's own headers win).
        token: a bearer token (``Authorization: Bearer ...``), sent only to the origin of
            base_url (or, without one, of each request) and never across a redirect to another.
        timeout: the total deadline of a request in seconds, body included (None: none).
        connect_timeout: the cap on connect + TLS handshake.
        verify: check TLS certificates (on by default).
        ca_file: PEM CA certificates to trust instead of the system's.
        unix_socket: connect every request to this Unix socket (the gateway's local,
            privileged socket); URLs still name the host.
        max_connections: open connections per origin; more requests wait for one.
        idle_timeout: seconds an unused pooled connection is kept.
        retries: extra attempts after a connection failure (see ``request``).
        retry_backoff: first wait before a retry, doubled each time.
        follow_redirects: follow 301/302/303/307/308.
        max_redirects: redirects followed before TooManyRedirects.
        max_body_bytes: cap of a buffered response body (ResponseTooLarge beyond).
        max_head_bytes: cap of a response head.
        user_agent: a User-Agent header for every request (none by default: a LAN peer
            rarely needs one, and each header costs a validation per request).

    Raises:
        ValueError: a bad limit or base_url.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float | None = 10.0,
        verify: bool = True,
        ca_file: str | None = None,
        unix_socket: str | None = None,
        max_connections: int = 10,
        idle_timeout: float = 30.0,
        retries: int = 2,
        retry_backoff: float = 0.1,
        follow_redirects: bool = True,
        max_redirects: int = 10,
        max_body_bytes: int = 64 << 20,
        max_head_bytes: int = 64 << 10,
        user_agent: str | None = None,
    ) -> None:
        if base_url:
            _resolve(base_url.rstrip("/") + "/", "")
        if retries < 0 or max_redirects < 0 or max_body_bytes < 0 or max_head_bytes < 1024:
            raise ValueError(
                "retries, max_redirects and max_body_bytes must be >= 0, max_head_bytes >= 1024"
            )
        self.base_url = base_url.rstrip("/")
        self.headers: list[tuple[str, str]] = [(k.lower(), v) for k, v in (headers or {}).items()]
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.unix_socket = unix_socket or ""
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.max_body_bytes = max_body_bytes
        self.max_head_bytes = max_head_bytes
        self._head0: list[tuple[str, str]] = [("user-agent", user_agent)] if user_agent else []
        # the origin a token is sent to: base_url's (None: each request's own)
        self._token_origin = _resolve(self.base_url + "/", "")[0][:3] if base_url else None
        self.pool = Pool(max_connections, idle_timeout, max_connections)
        self._verify = verify
        self._ca_file = ca_file
        self._ssl: ssl.SSLContext | None = None
        self._closed = False
        self._stack: contextlib.AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    async def __aenter__(self) -> Client:
        # the pool's watchdog (deadlines, idle expiry) runs for the block's duration
        stack = contextlib.AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(self.pool.watchdog)
        self._stack, self._nursery = stack, nursery
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.aclose()
        finally:
            stack, self._stack = self._stack, None
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
                self._nursery = None
            if stack is not None:
                # the block's own exception is not the nursery's: it propagates unwrapped
                # (the watchdog raises nothing but its cancellation)
                await stack.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Close every pooled connection; the client refuses new requests after it."""
        self._closed = True
        self.pool.close_idle()
        await trio.lowlevel.checkpoint()

    def url(self, url: str) -> str:
        """An absolute URL for ``url`` (relative ones are joined to base_url)."""
        if url.startswith(("http://", "https://", "HTTP://", "HTTPS://")):
            return url
        if not self.base_url:
            raise ValueError(f"relative URL {url!r} without a base_url")
        return self.base_url + (url if url.startswith("/") else "/" + url)

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context (made on first use)."""
        if self._ssl is None:
            self._ssl = make_ssl_context(self._verify, self._ca_file)
        return self._ssl

    # -- the API -------------------------------------------------------------------------

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        """Send a request and read the whole response body (up to max_body_bytes).

        Args:
            method: the HTTP method.
            url: absolute, or relative to base_url.
            **kwargs: see ``stream`` (params, headers, content, json, data, timeout,
                follow_redirects, on_upload, on_download, max_body_bytes).

        Returns:
            The response, any status (``raise_for_status()`` turns non-2xx into errors).

        Raises:
            RequestTimeout (501), TransportError/ConnectError/ResponseTooLarge/
            TooManyRedirects (502). Cancelling the caller's scope aborts the request.
        """
        max_body = kwargs.pop("max_body_bytes", None)
        resp = await self.open(method, url, **kwargs)
        if resp.conn is not None:
            await resp.read(self.max_body_bytes if max_body is None else max_body)
        return resp

    def stream(self, method: str, url: str, **kwargs: Any) -> _StreamContext:
        """Send a request; the body is read by the caller (``async with``).

        ``async with client.stream("GET", "/log") as resp: async for value in resp.values()``

        Args:
            method: the HTTP method.
            url: absolute, or relative to base_url.
            params: query parameters added to the URL (mapping or pairs).
            headers: request headers (mapping or pairs).
            content: the body: bytes, str, a binary file (sync or trio), or an (async)
                iterable of bytes (sent chunked unless a Content-Length header is given).
            json: a value sent as JSON.
            data: a mapping sent as an urlencoded form.
            timeout: the total deadline for this request (default: the client's).
            follow_redirects: default: the client's.
            on_upload: called (bytes sent, total or None) as the body goes out.
            on_download: called (bytes received, total or None) as the body comes in.

        Returns:
            An async context manager giving the Response (closed on exit).
        """
        return _StreamContext(self, method, url, kwargs)

    async def get(self, url: str, **kwargs: Any) -> Response:
        """``request("GET", url, ...)``."""
        max_body = kwargs.pop("max_body_bytes", None)
        resp = await self.open("GET", url, **kwargs)
        if resp.conn is not None:
            await resp.read(self.max_body_bytes if max_body is None else max_body)
        return resp

    async def head(self, url: str, **kwargs: Any) -> Response:
        """``request("HEAD", url, ...)``."""
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> Response:
        """``request("OPTIONS", url, ...)``."""
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        """``request("POST", url, ...)``."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> Response:
        """``request("PUT", url, ...)``."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> Response:
        """``request("PATCH", url, ...)``."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Response:
        """``request("DELETE", url, ...)``."""
        return await self.request("DELETE", url, **kwargs)

    def new(self, method: str, url: str) -> Any:
        """A seed-style request object (gateway.client.request.Request) bound to this client:
        ``await client.new("GET", "/x").json().notify(404, handler)``."""
        from gateway.client.request import Request

        return Request(self, method, url)

    def statistics(self) -> dict[str, int]:
        """Pool figures: origins, open and idle connections."""
        return self.pool.statistics()

    # -- the machinery -------------------------------------------------------------------

    async def open(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content: Any = None,
        json: Any = _DEFAULT,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = _DEFAULT,  # noqa: ASYNC109 (a per-request deadline, as httpx)
        follow_redirects: bool | None = None,
        on_upload: ProgressCallback | None = None,
        on_download: ProgressCallback | None = None,
    ) -> Response:
        """Send a request and read its response head, leaving the body unread: what
        ``request``, ``stream`` and the seed-style request object build on. The caller reads
        the body or closes the response (which gives back or discards its connection).

        Args:
            method, url and the keywords: as ``stream``.

        Returns:
            The response, any status, its body unread (``conn`` set while there is one).

        Raises:
            RequestTimeout (501), TransportError/ConnectError/TooManyRedirects (502).
        """
        # One function on purpose: the redirect loop, the retry loop and the exchange used to
        # be three coroutines, and every suspension resumed each of them (a tenth of a
        # keep-alive request's CPU). The exchange's rare paths live in helpers.
        if self._closed:
            raise RuntimeError("the client is closed")
        method = method.upper()
        full = self.base_url + url if url[:1] == "/" and self.base_url else self.url(url)
        if params:
            full += ("&" if "?" in full else "?") + urlencode(
                list(params.items()) if isinstance(params, Mapping) else list(params), doseq=True
            )
        hdrs = self.headers  # copied below before any change
        if headers:
            own = [
                (k.lower(), str(v))
                for k, v in (headers.items() if isinstance(headers, Mapping) else headers)
            ]
            names = {k for k, _ in own}
            hdrs = [h for h in hdrs if h[0] not in names] + own
        ctype: str | None = None
        if json is not _DEFAULT:
            content = _json.dumps(
                json, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
            ctype = "application/json"
        elif data is not None:
            content = urlencode(list(data.items()), doseq=True).encode("ascii")
            ctype = "application/x-www-form-urlencoded"
        if ctype is not None and not any(k == "content-type" for k, _ in hdrs):
            hdrs = [*hdrs, ("content-type", ctype)]
        body = _NO_BODY if content is None else _Body(content)
        timeout_s = self.timeout if timeout is _DEFAULT else timeout
        now = trio.current_time()
        deadline = math.inf if timeout_s is None else now + timeout_s
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: tuple[tuple[int, str], ...] = ()
        pool = self.pool
        # With the pool's watchdog running (async with Client), a deadline needs no cancel
        # scope: waits without a connection get one of their own, the rest is watched.
        watched = pool.watching and deadline != math.inf
        with (
            _NO_SCOPE if watched or deadline == math.inf else trio.CancelScope(deadline=deadline)
        ) as scope:
            while True:  # redirects
                origin, target, host_header = _resolve(full, self.unix_socket)
                if hdrs or self.token or body is not _NO_BODY or method in _BODY_METHODS:
                    head = self._head(origin, host_header, hdrs, body, method, full)
                else:
                    head = [("host", host_header), *self._head0]
                attempt = 0
                while True:  # retries
                    got = pool.take(origin, now)
                    if got is False:
                        with trio.move_on_at(deadline):
                            got = await pool.acquire(origin) or True
                        if got is False:
                            raise RequestTimeout(
                                f"{method} {full}: no connection free within {timeout_s:g} s"
                            )
                    if got is True:
                        try:
                            conn = await open_connection(
                                origin,
                                self.ssl_context if origin[0] == "https" else None,
                                self.connect_timeout,
                                self.max_head_bytes,
                                deadline,
                            )
                        except TransportError as exc:
                            pool.forget(origin)
                            if attempt < self.retries:
                                attempt += 1
                                await _backoff(
                                    self.retry_backoff * 2 ** (attempt - 1),
                                    deadline,
                                    method,
                                    full,
                                    timeout_s,
                                )
                                continue
                            raise ConnectError(f"{method} {full}: {exc.message}") from exc
                        except BaseException:
                            pool.forget(origin)
                            raise
                    else:
                        conn = got
                    if watched:
                        pool.watch(conn, deadline)
                    reused = conn.reused
                    try:
                        h = conn.h11
                        try:
                            out = h.send(h11.Request(method=method, target=target, headers=head))
                            data_ = body.data
                            if data_ is not None and (on_upload is None or not data_):
                                if data_:
                                    out += h.send(h11.Data(data=data_))
                                await conn.stream.send_all(out + h.send(h11.EndOfMessage()))
                                if on_upload is not None and data_:
                                    on_upload(len(data_), len(data_))
                            else:
                                await _send_body(conn, out, body, on_upload)
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                            if conn.timed_out:
                                raise _timeout(method, full, timeout_s) from None
                            resp = await _early_response(conn, full, method, exc)
                        except h11.LocalProtocolError as exc:
                            raise ValueError(
                                f"{method} {full}: cannot send the request: {exc}"
                            ) from None
                        else:
                            conn.requests += 1
                            # the response head, read here (the common case)
                            received = False
                            while True:
                                try:
                                    ev = h.next_event()
                                except h11.RemoteProtocolError as exc:
                                    raise TransportError(
                                        f"{method} {full}: bad response: {exc}"
                                    ) from None
                                kind = type(ev)
                                if kind is h11.Response:
                                    resp = Response(
                                        ev.status_code,  # type: ignore[union-attr]
                                        ev.reason,  # type: ignore[union-attr]
                                        ev.headers,  # type: ignore[union-attr]
                                        full,
                                        method,
                                        ev.http_version,  # type: ignore[union-attr]
                                    )
                                    resp.conn = conn
                                    break
                                if ev is h11.NEED_DATA:
                                    try:
                                        got_data = await conn.stream.receive_some(_CHUNK)
                                    except (
                                        trio.BrokenResourceError,
                                        trio.ClosedResourceError,
                                        OSError,
                                    ) as exc:
                                        if conn.timed_out:
                                            raise _timeout(method, full, timeout_s) from None
                                        err = TransportError(
                                            f"{method} {full}: connection broken: {_why(exc)}"
                                        )
                                        if received:
                                            raise err from None
                                        raise _Retryable(err) from None
                                    if not got_data and not received:
                                        raise _Retryable(
                                            TransportError(
                                                f"{method} {full}: the server closed the "
                                                "connection without a response"
                                            )
                                        )
                                    received = True
                                    # bytes: the compiled h11_mypyc refuses a bytearray
                                    h.receive_data(
                                        got_data if type(got_data) is bytes else bytes(got_data)
                                    )
                                elif kind is not h11.InformationalResponse:
                                    raise TransportError(
                                        f"{method} {full}: the connection closed before a response"
                                    )
                    except _Retryable as exc:
                        pool.release(conn, False)
                        if attempt < self.retries and method in IDEMPOTENT and body.replayable:
                            attempt += 1
                            body.rewind()
                            if not reused:  # a stale pooled connection is retried at once
                                await _backoff(
                                    self.retry_backoff * 2 ** (attempt - 1),
                                    deadline,
                                    method,
                                    full,
                                    timeout_s,
                                )
                            continue
                        raise exc.error from None
                    except BaseException:
                        pool.release(conn, False)
                        raise
                    break
                resp.attach(
                    pool, watched, now, deadline, timeout_s, on_download, self.max_body_bytes
                )
                if not follow or resp.status not in REDIRECTS:
                    resp.history = history
                    return resp
                location = resp.headers.get("location")
                if not location:
                    resp.history = history
                    return resp
                if len(history) >= self.max_redirects:
                    await resp.aclose()
                    raise TooManyRedirects(
                        f"more than {self.max_redirects} redirects (last to {location})", resp
                    )
                status = resp.status
                if status in (307, 308) and not body.replayable:
                    resp.history = history
                    return resp  # the body cannot be sent again: the caller sees the 307/308
                await _drain(resp)
                history += ((status, full),)
                target_url = urljoin(full, location)
                if _origin_key(target_url) != _origin_key(full):
                    # credentials stay with the origin they were given for
                    hdrs = [h_ for h_ in hdrs if h_[0] not in ("authorization", "cookie")]
                if (status == 303 and method != "HEAD") or (
                    status in (301, 302) and method == "POST"
                ):
                    method = "GET"
                    body = _NO_BODY
                    hdrs = [
                        h_
                        for h_ in hdrs
                        if h_[0] not in ("content-type", "content-length", "transfer-encoding")
                    ]
                else:
                    body.rewind()
                full = target_url
                now = trio.current_time()
        if scope.cancelled_caught:
            raise _timeout(method, full, timeout_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def _head(
        self,
        origin: Origin,
        host_header: str,
        hdrs: list[tuple[str, str]],
        body: _Body,
        method: str,
        full: str,
    ) -> list[tuple[str, str]]:
        """The request's header list: Host first, then ours, the token, the framing."""
        head = [("host", host_header), *self._head0]
        if hdrs:
            head += hdrs
            names: frozenset[str] = frozenset(k for k, _ in hdrs)
        else:
            names = _NO_NAMES
        if (
            self.token
            and "authorization" not in names
            and origin[:3] == (self._token_origin or _resolve(full, "")[0][:3])
        ):
            head.append(("authorization", f"Bearer {self.token}"))
        if body.length is None:
            if "content-length" not in names and "transfer-encoding" not in names:
                head.append(("transfer-encoding", "chunked"))
        elif body.length or method in ("POST", "PUT", "PATCH"):
            if "content-length" not in names:
                head.append(("content-length", str(body.length)))
        return head


def _timeout(method: str, url: str, timeout_s: float | None) -> RequestTimeout:
    return RequestTimeout(f"{method} {url}: no whole response within {timeout_s:g} s")


async def _backoff(
    delay: float, deadline: float, method: str, url: str, timeout_s: float | None
) -> None:
    """Sleep before a retry, never past the deadline (which ends the request)."""
    now = trio.current_time()
    if now + delay >= deadline:
        await trio.sleep_until(deadline)
        raise _timeout(method, url, timeout_s)
    await trio.sleep(delay)


async def _send_body(
    conn: Connection, out: bytes, body: _Body, on_upload: ProgressCallback | None
) -> None:
    """Send the head and a body that is large (with progress), a file or an iterator."""
    h = conn.h11
    stream = conn.stream
    data = body.data
    await stream.send_all(out)
    if data is not None:
        view = memoryview(data)
        for i in range(0, len(data), _CHUNK):
            piece = bytes(view[i : i + _CHUNK])
            await stream.send_all(h.send(h11.Data(data=piece)))
            if on_upload is not None:
                on_upload(min(i + _CHUNK, len(data)), len(data))
    else:
        sent = 0
        async for chunk in body.chunks_iter():
            if chunk:
                await stream.send_all(h.send(h11.Data(data=chunk)))
                sent += len(chunk)
                if on_upload is not None:
                    on_upload(sent, body.length)
    await stream.send_all(h.send(h11.EndOfMessage()))


async def _early_response(conn: Connection, url: str, method: str, exc: BaseException) -> Response:
    """Sending failed: the server may have answered early (a 413) and closed. Read what it
    sent; without a response the failure is retryable (nothing came back)."""
    h = conn.h11
    broken = _Retryable(
        TransportError(f"{method} {url}: connection broken while sending: {_why(exc)}")
    )
    if h.their_state is not h11.SEND_RESPONSE and h.their_state is not h11.IDLE:
        raise broken
    while True:
        try:
            ev = h.next_event()
        except h11.RemoteProtocolError:
            raise broken from None
        if ev is h11.NEED_DATA:
            try:
                data = await conn.stream.receive_some(_CHUNK)
            except (trio.BrokenResourceError, OSError):
                raise broken from None
            if not data:
                raise broken
            h.receive_data(data if type(data) is bytes else bytes(data))  # h11_mypyc: bytes only
            continue
        if type(ev) is h11.Response:
            resp = Response(ev.status_code, ev.reason, ev.headers, url, method, ev.http_version)
            resp.conn = conn  # our side never reached DONE: it will not be pooled
            return resp
        if type(ev) is not h11.InformationalResponse:
            raise broken


class _StreamContext:
    __slots__ = ("client", "method", "url", "kwargs", "response")

    def __init__(self, client: Client, method: str, url: str, kwargs: dict[str, Any]) -> None:
        self.client = client
        self.method = method
        self.url = url
        self.kwargs = kwargs
        self.response: Response | None = None

    async def __aenter__(self) -> Response:
        self.response = await self.client.open(self.method, self.url, **self.kwargs)
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        if self.response is not None:
            await self.response.aclose()


async def _drain(resp: Response) -> None:
    """Read a small redirect body so its connection can be reused; a big one is discarded."""
    length = resp.content_length
    if length is not None and length > _MAX_DRAIN:
        await resp.aclose()
        return
    n = 0
    try:
        async for chunk in resp.aiter_bytes():
            n += len(chunk)
            if n > _MAX_DRAIN:
                break
    except ClientError:
        pass
    await resp.aclose()


def _why(exc: BaseException) -> str:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__
