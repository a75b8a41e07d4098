# The request object handlers see, identical for HTTP, HTTPS and Sails virtual requests, and for
# user and privilege mode (EdgerOS WebRequest / Express req). Everything but the path is computed
# lazily: a GET /hello pays for what its handler touches and nothing more.
# Must not: read sockets itself (the body comes through gateway.body.stream.BodyStream) or know
# which transport it arrived on beyond the flags it is given.
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from gateway.app.cookies import json_cookies
from gateway.body.stream import BodyStream, EmptySource, MemoryBudget, State
from gateway.http.target import parse_cookies

if TYPE_CHECKING:
    import weakref

    from gateway.app.contracts import Application, BodySource, RouteInfo
    from gateway.app.response import Response
    from gateway.settings import ModeLimits

__all__ = ["Request", "PackedHeaders"]

_EMPTY = EmptySource()
_UNREAD = State.UNREAD  # a module name: an enum member is a slow lookup on Python 3.11
_UNPARSED = object()
_NO_PARAMS: dict[str | int, Any] = {}
# Node's IncomingMessage (lib/_http_incoming.js matchKnownFields): a repeated field of these
# keeps its FIRST value; set-cookie is a list; cookie is joined with "; "; the rest with ", ".
_SINGLE_VALUE = frozenset(
    (
        "age",
        "authorization",
        "content-length",
        "content-type",
        "etag",
        "expires",
        "from",
        "host",
        "if-modified-since",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "proxy-authorization",
        "referer",
        "retry-after",
        "server",
        "user-agent",
    )
)
_FRESH_METHODS = frozenset(("GET", "HEAD", "QUERY"))


class Request:
    """One request (EdgerOS WebRequest members plus Express/Sails qualifiers).

    Handlers read: app, url, original_url, base_url, method, protocol, headers,
    headers_distinct, body, path, params, query, cookies, get(), header(), param(),
    all_params(), wants_json, explicitly_accepts_html, xhr, is_(), accepts(),
    accepts_charsets(), accepts_encodings(), accepts_languages(), ip, host, hostname,
    subdomains, secure, fresh, stale, is_socket, transport, mode, privileged, limits; and the
    body via
    ``async for``, ``on(event, cb)``, ``enable_cache()``, ``read()``, ``text()``, ``json()``.

    Trust proxy is off, as Express's default and on purpose: ``protocol``, ``secure``, ``ip``,
    ``host`` and ``hostname`` come from the connection and the Host header, never from
    X-Forwarded-* (a device reached through a proxy must not believe what a client forwards).

    A Sails virtual request (``is_socket``) is the same Request, with what Sails gives it:
    ``protocol`` "ws" ("wss" over TLS), no ``host``/``hostname`` (Sails' virtual requests have
    none: a message's Host header names nothing the socket connected to), and
    ``explicitly_accepts_html`` False (Sails computes its qualifiers for HTTP only).
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
        "transport",
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
        "_res",
        "_route",
        "_secret",
        "_signed_cookies",
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
        # "http", "socket" (a Sails virtual request) or another adapter's name ("mqtt"): set
        # by the exchange for metrics and the access log; handlers need not look at it
        self.transport = "socket" if is_socket else "http"
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
        # the Response, weakly, once it sets what req.fresh depends on (Response._link)
        self._res: weakref.ref[Response] | None = None

    # -- headers ----------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names to values, repeated fields combined as Node's IncomingMessage does.

        A repeated single-value field (Content-Type, Content-Length, Host, Authorization,
        Referer, User-Agent, ... Node's list) keeps its first value; Cookie values are joined
        with ``"; "``; every other field with ``", "``. Set-Cookie, a list in Node, is joined
        with ``", "`` here, as the Fetch API's ``Headers.get`` does, so that the mapping stays
        ``str -> str``: ``headers_distinct["set-cookie"]`` has the separate values.
        """
        h = self._headers
        if h is None:
            h = {}
            for name, value in self._raw_headers:
                k = name.decode("latin-1")
                if k in h:  # rare: only a repeated field pays for the rules
                    if k in _SINGLE_VALUE:
                        continue
                    h[k] = h[k] + ("; " if k == "cookie" else ", ") + value.decode("latin-1")
                else:
                    h[k] = value.decode("latin-1")
            self._headers = h
        return h

    @property
    def headers_distinct(self) -> dict[str, list[str]]:
        """Node's ``req.headersDistinct``: every field's values, in order, none combined.

        Built on each access (few handlers need it, so no request pays to keep it).
        """
        raw = self._raw_headers
        if self._headers is not None and isinstance(raw, tuple) and not raw:
            return {k: [v] for k, v in self._headers.items()}  # a virtual request: no repeats
        out: dict[str, list[str]] = {}
        for name, value in raw:
            out.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        return out

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
        """A request header, case-insensitively (Express ``req.get``).

        ``Referer`` and ``Referrer`` are interchangeable: either name reads the ``Referrer``
        field first, then ``Referer``, as Express does.

        Raises:
            TypeError: ``field`` is empty (Express: "name argument is required").
        """
        if not field:
            raise TypeError("name argument is required to req.get")
        name = field.lower()
        if name == "referer" or name == "referrer":
            h = self.headers
            return h.get("referrer") or h.get("referer")
        return self.headers.get(name)

    header = get

    # -- URL --------------------------------------------------------------------------------
    @property
    def query(self) -> dict[str, Any]:
        """The query string parsed by the app's query parser (``App(query_parser=...)``)."""
        q = self._query
        if q is None:
            qs = self._query_string
            if qs:
                parse = self.app.parse_query
                q = self._query = parse(qs)
            else:
                q = self._query = {}
        return q

    @property
    def query_string(self) -> str:
        return self._query_string

    @property
    def cookies(self) -> dict[str, Any]:
        """The Cookie header's cookies; ``j:`` JSON values parsed (see gateway.app.cookies)."""
        c = self._cookies
        if c is None:
            c = self._cookies = json_cookies(parse_cookies(self.headers.get("cookie")))
        return c

    def param(self, name: str | int, default: Any = None) -> Any:
        """Deprecated lookup (Express 4 / Sails 1.5 ``req.param``): params, then body, then query.

        The body counts only when a parser made it a dict (JSON object, form); a key that is
        present counts even when its value is None (JSON null), as Sails checks ``undefined``.
        EdgerOS documents "params, then query": the same order when no parser filled the body.
        """
        params = self.params
        if name in params:
            return params[name]
        body = self.body
        if isinstance(body, Mapping) and name in body:
            return body[name]
        if isinstance(name, str):
            query = self.query
            if name in query:
                return query[name]
        return default

    def all_params(self) -> dict[str | int, Any]:
        """Sails' ``req.allParams()``: query, then body over it, then route params.

        A dict body adds its keys; a list body (a JSON array) its indices as int keys, as
        Sails' ``_.extend({}, query, body)`` does. A new dict on each call, as Sails computes
        it per call; later sources win.
        """
        merged: dict[str | int, Any] = {}
        if self._query_string:
            merged.update(self.query)
        body = self.body
        if isinstance(body, Mapping):
            merged.update(body)
        elif isinstance(body, list):
            merged.update(enumerate(body))
        merged.update(self.params)
        return merged

    @property
    def secure(self) -> bool:
        """True over TLS: ``protocol`` is "https", or "wss" for a virtual request."""
        protocol = self.protocol
        return protocol == "https" or protocol == "wss"

    @property
    def ip(self) -> str | None:
        return self.client[0] if self.client else None

    @property
    def host(self) -> str | None:
        """Express 5 ``req.host``: the Host header with its port (the request target's
        authority when it came in absolute form); None without one, and for a virtual request
        (as in Sails). X-Forwarded-Host is not read (trust proxy is off)."""
        if self.is_socket:
            return None
        host = self._host if self._host is not None else self.headers.get("host")
        return host or None

    @property
    def hostname(self) -> str | None:
        """``req.host`` without its port; an IPv6 literal keeps its brackets (``[::1]``)."""
        host = self.host
        if host is None:
            return None
        offset = host.find("]") + 1 if host.startswith("[") else 0
        colon = host.find(":", offset)
        return host[:colon] if colon >= 0 else host

    @property
    def subdomains(self) -> list[str]:
        """Express ``req.subdomains`` with the default offset 2: ``tobi.ferrets.example.com``
        gives ``["ferrets", "tobi"]``; an IP address gives ``[]``. The offset is fixed: the
        gateway has no ``app.set("subdomain offset")``; slice ``hostname`` for another."""
        hostname = self.hostname
        if not hostname:
            return []
        if _is_ip(hostname):
            return []  # Express: [hostname].slice(2)
        return hostname.split(".")[::-1][2:]

    @property
    def fresh(self) -> bool:
        """Express ``req.fresh``: the client's cached copy is still good (a 304 would do).

        Only for GET, HEAD and QUERY with a 2xx or 304 status; compares If-None-Match with the
        response's ETag (weak or strong), else If-Modified-Since with its Last-Modified, and is
        False under ``Cache-Control: no-cache`` (the ``fresh`` package). Set the status with
        ``res.status()`` (not by assigning ``status_code``): that is what tells the request.
        """
        if self.method not in _FRESH_METHODS:
            return False
        ref = self._res
        res = ref() if ref is not None else None
        etag = modified = None
        if res is not None:  # else the handler set no validator and no non-2xx status
            status = res.status_code
            if not (200 <= status < 300 or status == 304):
                return False
            e, m = res.get("etag"), res.get("last-modified")
            etag = e if isinstance(e, str) else None
            modified = m if isinstance(m, str) else None
        from gateway.app.response import is_fresh

        return is_fresh(self.headers, etag, modified)

    @property
    def stale(self) -> bool:
        """``not req.fresh``."""
        return not self.fresh

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
        """Sails' ``req.wantsJSON`` (PROTOCOLS.md section 2), as a real bool.

        Its rule 4 is ``req.is('json') && req.get('Accept')``, and ``req.is()`` is null without
        a body: a bodiless GET with ``Content-Type: application/json`` and an HTML Accept
        does not want JSON.
        """
        from gateway.app import negotiation

        h = self.headers
        return negotiation.wants_json(
            xhr=negotiation.is_xhr(h.get("x-requested-with")),
            is_socket=self.is_socket,
            accept=h.get("accept"),
            content_type=(
                h.get("content-type")
                if negotiation.has_body(h.get("transfer-encoding"), h.get("content-length"))
                else None
            ),
            route_wants_json=bool(self.route_options and self.route_options.get("wants_json")),
        )

    @property
    def explicitly_accepts_html(self) -> bool:
        """Sails' ``req.explicitlyAcceptsHTML``: the Accept header contains ``html``
        (case-sensitive substring, as Sails' ``indexOf`` is). Always False for a virtual request:
        Sails sets it for HTTP requests only."""
        if self.is_socket:
            return False
        accept = self.headers.get("accept")
        return accept is not None and "html" in accept

    def is_(self, *types: str | list[str]) -> str | None | bool:
        """Express ``req.is()`` (type-is 2.1): which of ``types`` the body's Content-Type is.

        Args:
            *types: extension names, ``"urlencoded"``, ``"multipart"``, full types, wildcards or
                ``+suffix`` patterns (see ``negotiation.type_is``); or one list of them.

        Returns:
            None when the request has no body (no Transfer-Encoding and no numeric
            Content-Length; ``Content-Length: 0`` IS a body); False when it has one but no
            Content-Type, an invalid one, or none of ``types`` matches; else the matching entry
            of ``types`` (the actual type for wildcards and suffixes; with no ``types``, the
            actual type).
        """
        from gateway.app import negotiation

        h = self.headers
        if not negotiation.has_body(h.get("transfer-encoding"), h.get("content-length")):
            return None
        return negotiation.type_is(h.get("content-type"), *_flatten(types), has_body=True)

    @overload
    def accepts(self) -> list[str]: ...
    @overload
    def accepts(self, *types: str | list[str]) -> str | list[str] | Literal[False]: ...

    def accepts(self, *types: str | list[str]) -> str | list[str] | Literal[False]:
        """Express ``req.accepts()``: the best of ``types`` for the Accept header.

        Args:
            *types: extension names or media types, or one list of them.

        Returns:
            With no ``types``: the client's accepted media types, most preferred first
            (``["*/*"]`` without an Accept header). Else the winning entry of ``types`` as
            given, ``types[0]`` without an Accept header, or False when nothing offered is
            acceptable (as Express).
        """
        from gateway.app import negotiation

        accept = self.headers.get("accept")
        offers = _flatten(types)
        if not offers:
            return negotiation.accepts_list(accept)
        return negotiation.accepts(accept, *offers)

    def accepts_charsets(self, *charsets: str) -> str | list[str] | Literal[False]:
        """Express ``req.acceptsCharsets()``: the best of ``charsets`` for Accept-Charset, False
        when none is acceptable; with no arguments, the client's list, most preferred first."""
        from gateway.app import negotiation

        return negotiation.accepts_charsets(self.headers.get("accept-charset"), *charsets)

    def accepts_encodings(self, *encodings: str) -> str | list[str] | Literal[False]:
        """Express ``req.acceptsEncodings()`` for Accept-Encoding (``identity`` is acceptable
        unless excluded), False when none is; with no arguments, the acceptable codings, most
        preferred first."""
        from gateway.app import negotiation

        return negotiation.accepts_encodings(self.headers.get("accept-encoding"), *encodings)

    def accepts_languages(self, *languages: str) -> str | list[str] | Literal[False]:
        """Express ``req.acceptsLanguages()`` for Accept-Language (``"en"`` serves ``en-US``),
        False when none is acceptable; with no arguments, the client's language tags, most
        preferred first."""
        from gateway.app import negotiation

        return negotiation.accepts_languages(self.headers.get("accept-language"), *languages)

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
        if opts is not None and s.state is _UNREAD:
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
        if not s.cache_enabled and s.state is _UNREAD:
            self.enable_cache()
        return await s.read(limit)

    async def text(self, charset: str | None = None) -> str:
        """The body decoded as text (Content-Encoding, then the charset; default utf-8).

        Raises:
            UnsupportedMediaType (415), BadRequest (400) and every error of ``read()``.
        """
        from gateway.body.parsers import read_text  # on first use: zlib, codecs, multipart

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
        from gateway.body.parsers import read_json  # on first use, like the parsers

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

    # -- set by the router and by cookie_parser (unset slots read as their defaults) --------
    _route: RouteInfo | None
    _secret: str | None
    _signed_cookies: dict[str, Any]

    @property
    def route(self) -> RouteInfo | None:
        """The route whose handlers run (Express ``req.route``): ``.path`` as registered,
        ``.methods`` (``{"get": True}``), ``.stack``. None until a route matched; kept after it
        calls ``next()``, as in Express."""
        try:
            return self._route
        except AttributeError:
            return None

    @route.setter
    def route(self, value: RouteInfo | None) -> None:
        # the router sets it when a route matches (a slot left unset costs other requests
        # nothing)
        self._route = value

    @property
    def secret(self) -> str | None:
        """The cookie signing secret ``cookie_parser(secret)`` set (its first); else None."""
        try:
            return self._secret
        except AttributeError:
            return None

    @secret.setter
    def secret(self, value: str | None) -> None:
        self._secret = value

    @property
    def signed_cookies(self) -> dict[str, Any]:
        """Cookies whose signature ``cookie_parser(secret)`` checked: the value, or False when
        the signature is wrong. Empty without cookie_parser."""
        try:
            return self._signed_cookies
        except AttributeError:
            return {}

    @signed_cookies.setter
    def signed_cookies(self, value: dict[str, Any]) -> None:
        self._signed_cookies = value

    @property
    def cookies_parsed(self) -> bool:
        """A ``cookie_parser()`` ran on this request (a second one does nothing, as in
        Express): ``signed_cookies`` was set."""
        try:
            self._signed_cookies  # noqa: B018 - set by cookie_parser (set_cookies)
        except AttributeError:
            return False
        return True

    def set_cookies(
        self, cookies: dict[str, Any], signed: dict[str, Any], secret: str | None
    ) -> None:
        """What ``cookie_parser()`` found: ``req.cookies`` (without the signed ones),
        ``req.signed_cookies`` and ``req.secret``.

        Args:
            cookies: the unsigned cookies, ``j:`` values parsed.
            signed: the signed cookies: the value, or False for a wrong signature.
            secret: the secret ``res.cookie(..., signed=True)`` signs with (or None).
        """
        self._cookies = cookies
        self._signed_cookies = signed
        self._secret = secret


def _flatten(types: tuple[str | list[str], ...]) -> tuple[str, ...]:
    # Express takes req.is('json', 'html') and req.is(['json', 'html']) alike
    if len(types) == 1 and isinstance(types[0], list):
        return tuple(types[0])
    return types  # type: ignore[return-value]


def _is_ip(hostname: str) -> bool:
    # Node's net.isIP() for what a Host header can hold: dotted IPv4 (a bracketed IPv6
    # literal is not an IP to isIP, so Express splits it on dots like a name)
    parts = hostname.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and p.isascii() and int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts
    )


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
