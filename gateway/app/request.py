# The request object handlers see, identical for HTTP, HTTPS and Sails virtual requests, and for
# user and privilege mode (EdgerOS WebRequest / Express req). Everything but the path is computed
# lazily: a GET /hello pays for what its handler touches and nothing more.
# Must not: read sockets itself (the body comes through gateway.app.body.BodyStream) or know
# which transport it arrived on beyond the flags it is given.
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from gateway.app.body import BodyStream, EmptySource, MemoryBudget, State
from gateway.http.target import parse_cookies, parse_query

if TYPE_CHECKING:
    from gateway.app.contracts import Application, BodySource
    from gateway.settings import ModeLimits

__all__ = ["Request", "PackedHeaders"]

_EMPTY = EmptySource()
_UNPARSED = object()
_NO_PARAMS: dict[str | int, Any] = {}


class Request:
    """One request (EdgerOS WebRequest members plus Express/Sails qualifiers).

    Handlers read: app, url, original_url, base_url, method, protocol, headers, body, path,
    params, query, cookies, get(), header(), param(), wants_json, xhr, is_(), accepts(), ip,
    hostname, secure, is_socket, mode, privileged, limits; and the body via ``async for``,
    ``on(event, cb)``, ``enable_cache()``, ``read()``, ``text()``, ``json()``.
    """

    __slots__ = (
        "app",
        "method",
        "url",
        "original_url",
        "base_url",
        "path",
        "_query_string",
        "params",
        "_raw_headers",
        "_headers",
        "_query",
        "_cookies",
        "body",
        "body_parsed",
        "protocol",
        "http_version",
        "client",
        "is_socket",
        "privileged",
        "limits",
        "_source",
        "_budget",
        "_stream",
        "route_options",
        "locals",
        "auth_failed",
        "_host",
        "upgrade",
    )

    def __init__(
        self,
        app: Application,
        method: str,
        target: str,
        path: str,
        query_string: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
        *,
        protocol: str = "http",
        http_version: str = "1.1",
        client: tuple[str, int] | None = None,
        source: BodySource = _EMPTY,
        budget: MemoryBudget,
        limits: ModeLimits,
        privileged: bool = False,
        is_socket: bool = False,
        auth_failed: bool = False,
        host: str | None = None,
        upgrade: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.app = app
        self.method = method
        self.url = target
        self.original_url = target
        self.base_url = ""
        self.path = path
        self._query_string = query_string
        self.params: dict[str | int, Any] = _NO_PARAMS
        self._raw_headers = raw_headers
        # already decoded (lower-case names, latin-1 text), as a virtual request has them
        self._headers: dict[str, str] | None = headers
        self._query: dict[str, str | list[str]] | None = None
        self._cookies: dict[str, str] | None = None
        self.body: Any = {}
        self.body_parsed = False
        self.protocol = protocol
        self.http_version = http_version
        self.client = client
        self.is_socket = is_socket
        self.privileged = privileged
        self.limits = limits
        self._source = source
        self._budget = budget
        self._stream: BodyStream | None = None
        self.route_options: dict[str, Any] | None = None
        self.locals: dict[str, Any] = {}
        self.auth_failed = auth_failed
        self._host = host
        # a WebSocket handshake (GET + Upgrade: websocket): only ws routes match it
        self.upgrade = upgrade

    # -- headers ----------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; repeated fields joined with ", " (cookies with "; "), as Node does."""
        h = self._headers
        if h is None:
            h = {}
            for name, value in self._raw_headers:
                k = name.decode("latin-1")
                v = value.decode("latin-1")
                if k in h:
                    h[k] = h[k] + ("; " if k == "cookie" else ", ") + v
                else:
                    h[k] = v
            self._headers = h
        return h

    def header_fields(self, names: Collection[bytes]) -> dict[str, str]:
        """The named fields only (lower-case names), decoded as ``headers`` would be, without
        decoding every header: for a request that lives on (a WebSocket's handshake), a decoded
        copy of each header would cost memory for the socket's whole life.

        Args:
            names: lower-case header names, as bytes.

        Returns:
            The fields present (repeated fields joined with ", ").
        """
        decoded = self._headers
        if decoded is not None:
            return {k: v for k, v in decoded.items() if k.encode("latin-1") in names}
        out: dict[str, str] = {}
        for name, value in self._raw_headers:
            if name in names:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                out[key] = out[key] + ", " + text if key in out else text
        return out

    def compact_headers(self) -> None:
        """Keep the raw header fields as one bytes object (for a request that lives as long as
        a WebSocket: the parser's per-field tuples cost about 1 KiB); the API sees no change."""
        if self._headers is None and not isinstance(self._raw_headers, PackedHeaders):
            self._raw_headers = PackedHeaders(self._raw_headers)

    def get(self, field: str) -> str | None:
        """A request header, case-insensitively; Referer and Referrer are interchangeable."""
        name = field.lower()
        if name == "referrer":
            name = "referer"
        return self.headers.get(name)

    header = get

    # -- URL --------------------------------------------------------------------------------
    @property
    def query(self) -> dict[str, str | list[str]]:
        q = self._query
        if q is None:
            q = self._query = parse_query(self._query_string) if self._query_string else {}
        return q

    @property
    def query_string(self) -> str:
        return self._query_string

    @property
    def cookies(self) -> dict[str, str]:
        c = self._cookies
        if c is None:
            c = self._cookies = parse_cookies(self.headers.get("cookie"))
        return c

    def param(self, name: str | int, default: Any = None) -> Any:
        """Deprecated lookup (EdgerOS/Express 4): params first, then query."""
        if name in self.params:
            return self.params[name]
        if isinstance(name, str) and name in self.query:
            return self.query[name]
        return default

    @property
    def secure(self) -> bool:
        return self.protocol == "https"

    @property
    def ip(self) -> str | None:
        return self.client[0] if self.client else None

    @property
    def hostname(self) -> str | None:
        """The Host header without its port (IPv6 literals keep their brackets)."""
        host = self._host if self._host is not None else self.headers.get("host")
        if not host:
            return None
        if host.startswith("["):
            end = host.find("]")
            return host[: end + 1] if end > 0 else host
        return host.split(":", 1)[0]

    @property
    def mode(self) -> str:
        """ "privilege" or "user": what this caller may reach and spend."""
        return "privilege" if self.privileged else "user"

    # -- negotiation (gateway.app.negotiation loads on first use: most requests never ask) ----
    @property
    def xhr(self) -> bool:
        from gateway.app import negotiation

        return negotiation.is_xhr(self.headers.get("x-requested-with"))

    @property
    def wants_json(self) -> bool:
        """Sails' heuristic (PROTOCOLS.md section 2), as a real bool."""
        from gateway.app import negotiation

        h = self.headers
        return negotiation.wants_json(
            xhr=negotiation.is_xhr(h.get("x-requested-with")),
            is_socket=self.is_socket,
            accept=h.get("accept"),
            content_type=h.get("content-type"),
            route_wants_json=bool(self.route_options and self.route_options.get("wants_json")),
        )

    def is_(self, *types: str) -> str | None | bool:
        """Express req.is(): the matching type, False when none matches, None without a body."""
        h = self.headers
        if "content-type" not in h or not (
            "transfer-encoding" in h or h.get("content-length", "0") != "0"
        ):
            return None
        from gateway.app import negotiation

        return negotiation.type_is(h.get("content-type"), *types)

    def accepts(self, *types: str) -> str | None:
        """Express req.accepts(): the best of ``types`` for the Accept header, or None."""
        from gateway.app import negotiation

        return negotiation.accepts(self.headers.get("accept"), *types)

    # -- body -------------------------------------------------------------------------------
    @property
    def stream(self) -> BodyStream:
        """The body stream (created on first use, with the limits of this request's mode).

        When the exchange ends, the stream releases the body's budget and ``req.body`` goes
        back to ``{}`` (copy what must outlive the exchange).

        A route option ``max_body_bytes`` (``app.post(path, fn, max_body_bytes=N)``) sets the
        streaming limit of that route, above or below the mode's; the cache limit and the
        memory budget, which bound memory, stay the mode's.
        """
        s = self._stream
        if s is None:
            limits = self.limits
            s = self._stream = BodyStream(
                self._source, limits.max_body_bytes, limits.max_cache_bytes, self._budget
            )
            # the stream holds the connection from now on: no request <-> session cycle
            self._source = _EMPTY
            s.on_finished = self._body_released
            self._apply_route_limit(s)
        return s

    @property
    def body_stream(self) -> BodyStream | None:
        """The body stream if anything has made it yet, else None (the exchange finishes it)."""
        return self._stream

    def _body_released(self) -> None:
        # the exchange ended: its body is no longer budgeted, so it must not stay referenced
        self.body = {}

    def _apply_route_limit(self, s: BodyStream) -> None:
        opts = self.route_options
        if opts is not None and s.state is State.UNREAD:
            limit = opts.get("max_body_bytes")
            if isinstance(limit, int) and limit >= 0:
                s.max_body_bytes = limit

    @property
    def max_body_bytes(self) -> int:
        """The most body bytes this request may stream (route option or mode limit)."""
        s = self.stream
        self._apply_route_limit(s)
        return s.max_body_bytes

    def __aiter__(self) -> AsyncIterator[bytes]:
        """``async for chunk in req``: the body, pulled chunk by chunk (backpressure)."""
        s = self.stream
        self._apply_route_limit(s)  # a stream made by middleware, before the route matched
        return s.__aiter__()

    def on(self, event: str, callback: Callable[..., Any]) -> Request:
        """EdgerOS events: ``data(chunk)``, ``end()``, ``close()``, ``error(err)``.

        Plain or async callbacks; an async one is awaited before the next chunk is read.
        A handler that returns with listeners registered and no reply sent has its body
        pumped by the App. Returns the request (chainable).
        """
        self.stream.on(event, callback)
        return self

    @property
    def cache_enabled(self) -> bool:
        """True once ``enable_cache()`` or ``read()`` switched the body cache on."""
        s = self._stream
        return s is not None and s.cache_enabled

    def enable_cache(self) -> None:
        """Keep the body: once it has fully arrived, ``req.body`` is its raw bytes.

        Raises:
            RuntimeError: the body was already (partly) read: a programming error (500).
        """
        s = self.stream
        s.enable_cache()
        s.on_cached = self._store_body

    def _store_body(self, data: bytes) -> None:
        self.body = data

    async def read(self, limit: int | None = None) -> bytes:
        """The whole raw body, kept under the memory budget (413/503 when over).

        Raises:
            BodyTooLarge, BudgetExceeded, BodyTimeout, ClientDisconnected, BodyError;
            RuntimeError when the body was already streamed without the cache.
        """
        s = self.stream
        if not s.cache_enabled and s.state is State.UNREAD:
            self.enable_cache()
        return await s.read(limit)

    async def text(self, charset: str | None = None) -> str:
        """The body decoded as text (Content-Encoding, then the charset; default utf-8).

        Raises:
            UnsupportedMediaType (415), BadRequest (400) and every error of ``read()``.
        """
        from gateway.app.bodyparsers import read_text  # on first use: zlib, codecs, multipart

        if not self.cache_enabled:
            self.enable_cache()
        return await read_text(self, self.stream.max_cache_bytes, charset)

    async def json(self) -> Any:
        """The body parsed as JSON (any top-level value; ``{}`` when empty).

        A body that arrived already parsed (a Sails virtual request's ``data``) is returned as
        it is, without a byte read.

        Raises:
            BadRequest (400, naming the position), UnsupportedMediaType (415) and every error
            of ``read()``.
        """
        if self._stream is None:
            parsed = getattr(self._source, "value", _UNPARSED)
            if parsed is not _UNPARSED:
                return parsed
        from gateway.app.bodyparsers import read_json  # on first use, like the parsers

        if not self.cache_enabled:
            self.enable_cache()
        return await read_json(self, self.stream.max_cache_bytes)

    def reserve(self, nbytes: int) -> None:
        """Charge nbytes more to the process-wide body budget until this request ends.

        Raises:
            BudgetExceeded: 503, the budget is exhausted.
        """
        self.stream.reserve(nbytes)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url} mode={self.mode}>"


class PackedHeaders:
    """Header fields kept as ONE bytes object (see Request.compact_headers).

    The parser's per-header tuples and bytes cost about 1 KiB per idle WebSocket; this blob
    costs the bytes themselves. Header names and values were validated by the parser, so they
    hold neither LF nor NUL, which serve as separators. Iterates as (name, value) pairs.
    """

    __slots__ = ("_blob",)

    def __init__(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        self._blob = b"\n".join(name + b"\0" + value for name, value in pairs)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        if not self._blob:
            return
        for line in self._blob.split(b"\n"):
            name, _, value = line.partition(b"\0")
            yield name, value
