# The response object handlers use (EdgerOS WebResponse / Express res), the same for HTTP and
# Sails virtual requests. Header values are validated when set (no CR/LF: response splitting is
# refused at the source). A small response goes out as ONE write (head + body) through the sink.
# A transport that carries values (a Sails JWR: gateway.app.contracts.ValueSink) gets send()/json()
# bodies as the values themselves, with only the headers the application set.
# Must not: touch sockets or files directly: bytes leave through a ResponseSink the transport
# provides (the HTTP session, or the virtual-request collector of a WebSocket).
from __future__ import annotations

import enum
import logging
import math
import os
import re
import stat
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from gateway.app.jsontext import dumps as _dumps
from gateway.app.jsontext import dumps_text
from gateway.errors import REASONS, Forbidden, HTTPError, NotFound
from gateway.http.dates import http_date, parse_http_date

if TYPE_CHECKING:
    from gateway.app.contracts import EventStream, ResponseSink, ValueSink

__all__ = ["Response", "MIME_TYPES", "JSONSeqWriter", "NO_BODY", "NoBody", "is_fresh"]

log = logging.getLogger("gateway.app")


class NoBody(enum.Enum):
    """Type of NO_BODY: a reply without a body (a JWR without ``body``: the client sees
    ``undefined``), as opposed to a body that is JSON ``null``."""

    NO_BODY = 0


# what a ValueSink (gateway.app.contracts) is given for res.end(), res.send() and HEAD
NO_BODY: Final = NoBody.NO_BODY

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# encodeurl 2 (Express 5 res.location): percent-encode what a URL may not hold, and a "%" that
# does not start an escape; leave valid escapes and reserved characters alone.
_URL_UNSAFE = re.compile(r"[^\x21\x23-\x3B\x3D\x3F-\x5F\x61-\x7A\x7C\x7E]+|%+(?![0-9A-Fa-f]{2})")
_SURROGATES = re.compile(r"[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")
# cookie 0.7 (Express 5 res.cookie) checks on Domain and Path
_COOKIE_DOMAIN = re.compile(
    r"[.]?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?([.][a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z", re.I
)
_COOKIE_PATH = re.compile(r"[\x20-\x3A\x3D-\x7E]*\Z")
_URI_COMPONENT_SAFE = "!~*'()"  # what encodeURIComponent leaves, besides quote()'s own
_SAME_SITE = {"lax": "Lax", "strict": "Strict", "none": "None", True: "Strict"}
_PRIORITY = {"low": "Low", "medium": "Medium", "high": "High"}
# mime-types 3 contentType(): the charset a full type gets when it names none. text/* gets
# utf-8; these are mime-db's other types with a charset.
_DB_CHARSETS: dict[str, str] = {
    t: "utf-8"
    for t in (
        "application/json",
        "application/javascript",
        "application/manifest+json",
        "application/elm+json",
        "application/fhir+json",
        "application/3gpdash-qoe-report+xml",
        "application/beep+xml",
        "application/cda+xml",
        "application/emergencycalldata.cap+xml",
        "application/fhir+xml",
        "application/hl7v2+xml",
        "application/im-iscomposing+xml",
        "application/msc-ivr+xml",
        "application/msc-mixer+xml",
        "application/pidf+xml",
        "application/pidf-diff+xml",
        "application/poc-settings+xml",
        "application/vnd.omads-email+xml",
        "application/vnd.omads-file+xml",
        "application/vnd.omads-folder+xml",
        "application/vnd.syncml+xml",
        "application/vnd.syncml.dm+wbxml",
        "application/vnd.syncml.dm+xml",
        "application/vnd.syncml.dmddf+xml",
        "application/vnd.syncml.dmtnds+xml",
        "application/vnd.wap.wbxml",
    )
} | {
    "application/news-checkgroups": "us-ascii",
    "application/news-groupinfo": "us-ascii",
    "application/prs.cyn": "7-bit",
    "application/vnd.fdsn.stationxml+xml": "xml-based",
}
_MEDIA_TYPE_HEAD = re.compile(r"\s*([^;\s]*)")
_CT_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CT_TEXT = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# statuses 2 (Express res.sendStatus and res.redirect): the messages gateway.errors lacks,
# and 422, whose RFC 9110 name (there) is not the one Express sends
_STATUS_MESSAGES: dict[int, str] = REASONS | {
    102: "Processing",
    103: "Early Hints",
    203: "Non-Authoritative Information",
    205: "Reset Content",
    207: "Multi-Status",
    208: "Already Reported",
    226: "IM Used",
    300: "Multiple Choices",
    305: "Use Proxy",
    402: "Payment Required",
    407: "Proxy Authentication Required",
    418: "I'm a Teapot",
    421: "Misdirected Request",
    422: "Unprocessable Entity",
    423: "Locked",
    424: "Failed Dependency",
    425: "Too Early",
    428: "Precondition Required",
    451: "Unavailable For Legal Reasons",
    506: "Variant Also Negotiates",
    507: "Insufficient Storage",
    508: "Loop Detected",
    509: "Bandwidth Limit Exceeded",
    510: "Not Extended",
    511: "Network Authentication Required",
}

MIME_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "htm": "text/html; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "xml": "application/xml",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "ico": "image/vnd.microsoft.icon",
    "webp": "image/webp",
    "wasm": "application/wasm",
    "pdf": "application/pdf",
    "bin": "application/octet-stream",
    "gz": "application/gzip",
    "tar": "application/x-tar",
    "zip": "application/zip",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "woff2": "font/woff2",
    "map": "application/json; charset=utf-8",
    "json-seq": "application/json-seq",  # ours (RFC 7464): mime-types has no such extension
}
_FILE_CHUNK = 65536
# what encodeURIComponent leaves alone beyond what quote() always does (letters, digits, "-._~")
_URI_COMPONENT_SAFE = "!*'()"


def check_header(name: str, value: str) -> None:
    """Refuse header names that are not tokens and values with CR, LF or other controls.

    Raises:
        ValueError: the header would break the response framing (response splitting).
    """
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_VALUE.search(value):
        raise ValueError(f"invalid header value for {name!r}: control characters (CR/LF)")


@lru_cache(maxsize=64)  # a handler sets the same few types on every response
def _with_charset(value: str) -> str:
    # mime-types contentType() for a full type, as Express's res.set('Content-Type') applies it
    if "charset" in value:
        return value
    m = _MEDIA_TYPE_HEAD.match(value)
    media = m.group(1).lower() if m else ""
    charset = _DB_CHARSETS.get(media) or ("utf-8" if media.startswith("text/") else None)
    return f"{value}; charset={charset}" if charset else value


@lru_cache(maxsize=32)
def _utf8_content_type(value: str) -> str:
    """Express's setCharset(type, 'utf-8') (content-type 2.1 parse + format), applied by
    res.send(string) and res.json() to a Content-Type the handler set: the body IS utf-8.

    The type is lower-cased; a charset parameter is replaced where it stands, else appended.
    A value that content-type could not format (not ``type/subtype``, or a parameter value
    with control characters) is left as it is, where Express throws: a deliberate leniency,
    the response still goes out.
    """
    from gateway.app.negotiation import split_content_type  # on first use, as elsewhere

    media, params = split_content_type(value)
    if _CT_TYPE.fullmatch(media) is None:
        return value
    params["charset"] = "utf-8"
    out = [media]
    for key, val in params.items():
        if _TOKEN.match(key) is None:
            return value
        if _TOKEN.match(val) is None:
            if _CT_TEXT.fullmatch(val) is None:
                return value
            val = '"' + val.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(f"{key}={val}")
    return "; ".join(out)


def _encode_url(url: str) -> str:
    # encodeurl 2: lone surrogates become U+FFFD (pairs are one character to JavaScript)
    if _SURROGATES.search(url):
        url = _SURROGATES.sub(
            lambda m: (
                m.group(0).encode("utf-16-le", "surrogatepass").decode("utf-16-le")
                if len(m.group(0)) == 2
                else "\ufffd"
            ),
            url,
        )
    return _URL_UNSAFE.sub(lambda m: quote(m.group(0), safe=""), url)


def _encode_uri(url: str) -> str:
    # JavaScript's encodeURI: UTF-8 percent-encoding of all but letters, digits and
    # -_.!~*'();/?:@&=+$,# ("%" too: unlike encodeurl it does not keep escapes). A lone
    # surrogate, where encodeURI throws, becomes "?".
    return quote(url, safe=";,/?:@&=+$!*'()#", errors="replace")


def is_fresh(req_headers: Mapping[str, str], etag: str | None, last_modified: str | None) -> bool:
    """The ``fresh`` package (Express 5 ``req.fresh``): is the client's cached copy current?

    Args:
        req_headers: the request's headers (lower-case names).
        etag: the response's ETag, or None.
        last_modified: the response's Last-Modified, or None.

    Returns:
        False for an unconditional request or ``Cache-Control: no-cache``; else whether
        If-None-Match (``*``, or one of its tags equal to the ETag, weak or not) or, without it,
        If-Modified-Since (not older than Last-Modified) holds.
    """
    modified_since = req_headers.get("if-modified-since")
    none_match = req_headers.get("if-none-match")
    if not modified_since and not none_match:
        return False
    cache_control = req_headers.get("cache-control")
    if cache_control and re.search(r"(?:^|,)\s*?no-cache\s*?(?:,|$)", cache_control):
        return False
    if none_match:
        if none_match == "*":
            return True
        if not etag:
            return False
        for tag in (t.strip(" ") for t in none_match.split(",")):
            if tag == etag or tag == "W/" + etag or "W/" + tag == etag:
                return True
        return False
    if not last_modified or not modified_since:
        return False
    lm, ims = parse_http_date(last_modified), parse_http_date(modified_since)
    return lm is not None and ims is not None and lm <= ims


class Response:
    """One response. Chainable setters; ``send``/``json``/``end``/``send_file`` are async.

    Express 5 semantics, with these differences kept on purpose:

    - no automatic ETag: Express hashes every ``send`` body; a small device should not. A
      handler that sets ETag or Last-Modified gets Express's automatic 304 (``req.fresh``).
      ``If-None-Match: *`` alone does not turn a response without validators into a 304.
    - ``cookie()`` defaults to ``HttpOnly; SameSite=Lax`` (Express: neither) and takes
      ``max_age`` in seconds (Express: ``maxAge`` in milliseconds).
    - ``redirect(url, status)`` is accepted besides Express's ``redirect(status, url)``.
    - a Content-Type that Express's ``send`` could not re-format throws there; here it goes
      out as set.
    - the Sails responses (``ok``, ``bad_request``, ...) behave as Sails 1.5 does in
      production, without views: no stack trace, no HTML page (see each).

    Args:
        sink: the transport's ResponseSink.
    """

    __slots__ = (
        "_sink",
        "status_code",
        "_headers",
        "headers_sent",
        "finished",
        "locals",
        "bytes_sent",
        "_streaming",
        "req",
        "__weakref__",  # req.fresh reaches its Response weakly: no req <-> res cycle
    )

    def __init__(self, sink: ResponseSink) -> None:
        self._sink = sink
        self.status_code = 200
        self._headers: dict[str, tuple[str, str | list[str]]] = {}
        self.headers_sent = False
        self.finished = False
        self.locals: dict[str, Any] = {}
        self.bytes_sent = 0
        self._streaming = False
        self.req: Any = None  # the Request, set by the App (Express res.req)

    def _link(self) -> None:
        # Let req.fresh see this response. Done only when the handler sets what freshness
        # depends on (an ETag, a Last-Modified, a status other than 2xx/304), so the many
        # requests that never ask pay nothing; a request without the link knows that its
        # response is a 2xx without validators.
        req = self.req
        if req is not None and getattr(req, "_res", False) is None:
            req._res = weakref.ref(self)

    # -- head -------------------------------------------------------------------------------
    def status(self, code: int) -> Response:
        """Set the status code (Express 5: an integer from 100 to 999).

        Raises:
            TypeError: ``code`` is not an int.
            ValueError: ``code`` is out of range (Express: RangeError).
        """
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"invalid status code {code!r}: status code must be an integer")
        if not 100 <= code <= 999:
            raise ValueError(f"invalid status code {code!r}")
        code = int(code)  # an IntEnum (http.HTTPStatus.OK) is welcome, stored as a plain int
        self.status_code = code
        if not (200 <= code < 300 or code == 304):
            self._link()
        return self

    def set(self, field: str | Mapping[str, str], value: str | list[str] | None = None) -> Response:
        """Set one header (or several from a mapping); a list value sends the field repeatedly.

        A Content-Type without a charset gets the one mime-types knows for it (``text/*`` and
        JSON: utf-8), as Express's ``res.set`` does; not in a Sails JWR, whose ``res.set``
        keeps the value as given (there are no bytes for a charset to describe).

        Raises:
            ValueError: a missing value, an invalid name, or CR/LF in a value.
            TypeError: a list for Content-Type.
        """
        if type(field) is not str and isinstance(field, Mapping):  # str: no ABC check (hot)
            for k, v in field.items():
                self.set(k, v)
            return self
        if value is None:
            raise ValueError("header value missing")
        key = field.lower()
        if isinstance(value, list):
            if key == "content-type":
                raise TypeError("Content-Type cannot be set to a list")
            for v in value:
                check_header(field, str(v))
            self._headers[key] = (field, [str(v) for v in value])
        else:
            value = str(value)
            check_header(field, value)
            if key == "content-type" and not self._sink.carries_values:
                value = _with_charset(value)
            elif key == "etag" or key == "last-modified":
                self._link()
            self._headers[key] = (field, value)
        return self

    header = set

    def update_headers(self, entries: Mapping[str, tuple[str, str]]) -> Response:
        """Put already-checked headers into the table at once (lower-case name -> (name,
        value)): for the gateway's own header sets (CORS answers), built and checked once,
        added to every response without ``set``'s per-header checks.
        """
        self._headers.update(entries)
        return self

    def set_header(self, field: str, value: str) -> Response:
        """Set one header to exactly ``value`` (Node's ``res.setHeader``): unlike ``set``, a
        Content-Type gets no charset added, and the name is kept as written.

        Raises:
            ValueError: an invalid name, or CR/LF in the value.
        """
        value = str(value)
        check_header(field, value)
        key = field.lower()
        if key == "etag" or key == "last-modified":
            self._link()
        self._headers[key] = (field, value)
        return self

    def append(self, field: str, value: str | list[str]) -> Response:
        """Add value(s) to a header, keeping what it had (Express ``res.append``).

        Raises:
            ValueError: an invalid name, or CR/LF in a value.
        """
        old = self._headers.get(field.lower())
        if old is None or not old[1]:
            return self.set(field, value)
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        for v in values:
            check_header(field, v)
        prev = old[1] if isinstance(old[1], list) else [old[1]]
        self._headers[field.lower()] = (old[0], [*prev, *values])
        return self

    def vary(self, field: str | list[str]) -> Response:
        """Add field name(s) to Vary, once each, case-insensitively (Express ``res.vary``).

        ``*`` anywhere makes the whole header ``*``.

        Raises:
            ValueError: a field is not a header name.
        """
        fields = field if isinstance(field, list) else _parse_list(str(field))
        for f in fields:
            if not _TOKEN.match(f):
                raise ValueError(f"invalid header name {f!r} for Vary")
        old = self.get("vary")
        header = ", ".join(old) if isinstance(old, list) else (old or "")
        if header == "*":
            return self
        present = _parse_list(header.lower())
        if "*" in fields or "*" in present:
            return self.set("Vary", "*")
        for f in fields:
            if f.lower() not in present:
                present.append(f.lower())
                header = f"{header}, {f}" if header else f
        if header:
            self.set("Vary", header)
        return self

    def get(self, field: str) -> str | list[str] | None:
        item = self._headers.get(field.lower())
        return item[1] if item else None

    def remove_header(self, field: str) -> Response:
        self._headers.pop(field.lower(), None)
        return self

    def type(self, value: str) -> Response:
        """Content-Type from an extension (``json``, ``.html``, ``file.html``) or a full type.

        Extensions map as mime-types 3 does (``MIME_TYPES``, plus ``json-seq``, ours); an
        unknown one gives ``application/octet-stream``.
        """
        if "/" not in value:
            value = MIME_TYPES.get(value.rpartition(".")[2].lower(), "application/octet-stream")
        return self.set("Content-Type", value)

    content_type = type

    def location(self, url: str) -> Response:
        """Set Location, percent-encoded as Express 5 does (encodeurl: valid escapes and
        reserved characters kept, a bare ``%`` encoded). ``"back"`` is NOT special: Express 5
        dropped the Referer magic, so it is sent as the relative URL ``back``."""
        return self.set("Location", _encode_url(url))

    def cookie(
        self,
        name: str,
        value: Any,
        *,
        max_age: float | None = None,
        expires: float | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        http_only: bool = True,
        same_site: str | bool | None = "Lax",
        partitioned: bool = False,
        priority: str | None = None,
        signed: bool = False,
    ) -> Response:
        """Add a Set-Cookie, serialised as Express 5 (cookie 0.7) does.

        The value is percent-encoded like ``encodeURIComponent``; a dict or list is sent as
        ``j:`` + JSON, as Express does for objects. Attributes come in cookie 0.7's order:
        Max-Age, Domain, Path, Expires, HttpOnly, Secure, Partitioned, Priority, SameSite.

        Deliberate differences from Express: ``http_only`` defaults to True and ``same_site``
        to ``"Lax"`` (a device's session cookie should not be readable by scripts nor sent by
        other sites unless asked); ``max_age`` is in seconds (Express: milliseconds); like
        Express, it also sets Expires (now + max_age), over any ``expires`` given.

        Args:
            name: a token.
            value: str, or bool/number (as JavaScript's String() writes them), or dict/list.
            max_age: seconds (floored).
            expires: a Unix timestamp.
            path: ``"/"`` by default; None or ``""`` omits it.
            same_site: ``"Lax"``, ``"Strict"``, ``"None"`` (any case), True (Strict), or
                None/False to omit it.
            priority: ``"low"``, ``"medium"`` or ``"high"``.
            signed: sign the value with ``req.secret`` as ``s:value.signature``
                (cookie-parser's format; see gateway.app.cookies).

        Raises:
            ValueError: an invalid name, domain, path, same_site or priority.
            RuntimeError: ``signed=True`` without a secret (no ``cookie_parser(secret)``).
        """
        if not _TOKEN.match(name):
            raise ValueError(f"invalid cookie name {name!r}")
        from gateway.app.cookies import cookie_value, sign

        text = cookie_value(value)
        if signed:
            secret = getattr(self.req, "secret", None)
            if not secret:
                raise RuntimeError('cookie_parser("secret") required for signed cookies')
            text = "s:" + sign(text, secret)
        parts = [f"{name}={quote(text, safe=_URI_COMPONENT_SAFE)}"]
        if max_age is not None:
            if not math.isfinite(max_age):
                raise ValueError(f"invalid cookie max_age {max_age!r}")
            expires = time.time() + max_age
            parts.append(f"Max-Age={math.floor(max_age)}")
        if domain:
            if not _COOKIE_DOMAIN.match(domain):
                raise ValueError(f"invalid cookie domain {domain!r}")
            parts.append(f"Domain={domain}")
        if path:
            if not _COOKIE_PATH.match(path):
                raise ValueError(f"invalid cookie path {path!r}")
            parts.append(f"Path={path}")
        if expires is not None:
            parts.append("Expires=" + http_date(expires))
        if http_only:
            parts.append("HttpOnly")
        if secure:
            parts.append("Secure")
        if partitioned:
            parts.append("Partitioned")
        if priority:
            if priority.lower() not in _PRIORITY:
                raise ValueError(f"invalid cookie priority {priority!r}")
            parts.append("Priority=" + _PRIORITY[priority.lower()])
        if same_site:
            key: str | bool = same_site.lower() if isinstance(same_site, str) else same_site
            if key not in _SAME_SITE:
                raise ValueError(f"invalid cookie same_site {same_site!r}")
            parts.append("SameSite=" + _SAME_SITE[key])
        return self.append("Set-Cookie", "; ".join(parts))

    def clear_cookie(
        self,
        name: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        http_only: bool = True,
        same_site: str | bool | None = "Lax",
        partitioned: bool = False,
        priority: str | None = None,
        max_age: float | None = None,
        expires: float | None = None,
    ) -> Response:
        """Expire cookie ``name``: an empty value with ``Expires`` at the epoch (Express 5).

        Takes the options of ``cookie()`` so that the attributes match the cookie being
        cleared (browsers need Path/Domain, and Secure for ``SameSite=None`` cookies);
        ``max_age`` and ``expires`` are ignored, as Express 5 ignores them.
        """
        del max_age, expires
        return self.cookie(
            name,
            "",
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            http_only=http_only,
            same_site=same_site,
            partitioned=partitioned,
            priority=priority,
        )

    def _head(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value in self._headers.values():
            if isinstance(value, list):
                out.extend((name, v) for v in value)
            else:
                out.append((name, value))
        return out

    def _check_open(self) -> None:
        if self.finished or self.headers_sent and not self._streaming:
            raise RuntimeError("the response has already been sent")

    # -- body -------------------------------------------------------------------------------
    async def send(self, body: Any = None) -> None:
        """Send the whole response (Express 5 ``res.send``).

        str: text/html unless a Content-Type was set (its charset becomes utf-8, the body's
        encoding); bytes: application/octet-stream unless set; None: an empty body; anything
        else (dict, list, bool, number): ``json()``. A GET/HEAD whose response carries an ETag
        or Last-Modified that the client already has (``req.fresh``) gets a 304.
        """
        self._check_open()
        if self._streaming:
            raise RuntimeError("the response is being streamed: use write()/end()")
        if self._sink.carries_values:
            if body is None or isinstance(body, (str, bytes, bytearray, memoryview)):
                await self._give_value(NO_BODY if body is None else body)  # checked above
                return
            return await self.json(body)
        h = self._headers
        if body is None:
            data = b""
        elif isinstance(body, str):
            data = body.encode()
            ct = h.get("content-type")
            if ct is None:
                h["content-type"] = ("Content-Type", "text/html; charset=utf-8")
            elif isinstance(ct[1], str):
                h["content-type"] = (ct[0], _utf8_content_type(ct[1]))
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
            if "content-type" not in h:
                h["content-type"] = ("Content-Type", "application/octet-stream")
        else:
            return await self.json(body)
        if "etag" in h or "last-modified" in h:
            self._not_modified_if_fresh()
        await self._send_whole(data)

    async def json(self, obj: Any) -> None:
        """Send ``obj`` as JSON (application/json; charset=utf-8); None is ``null``.

        A Content-Type the handler set is kept, with charset utf-8 (Express: json -> send).
        """
        self._check_open()
        if self._sink.carries_values:
            if isinstance(obj, str):
                # Sails' res.json(string): the JSON text, typed as JSON (the only header it
                # adds), exactly so: no charset
                self.set_header("content-type", "application/json")
                obj = dumps_text(obj)
            await self._give_value(obj)  # checked above
            return
        data = _dumps(obj)
        h = self._headers
        ct = h.get("content-type")
        if ct is None:
            h["content-type"] = ("Content-Type", "application/json; charset=utf-8")
        elif isinstance(ct[1], str):
            h["content-type"] = (ct[0], _utf8_content_type(ct[1]))
        if "etag" in h or "last-modified" in h:
            self._not_modified_if_fresh()
        await self._send_whole(data)

    def _not_modified_if_fresh(self) -> None:
        # Express send(): `if (req.fresh) this.status(304)`; asked only when the handler set a
        # validator, so that other responses never build the request's headers for it
        req = self.req
        if req is None or req.method not in ("GET", "HEAD", "QUERY"):
            return
        status = self.status_code
        if not (200 <= status < 300 or status == 304):
            return
        etag, modified = self.get("etag"), self.get("last-modified")
        if is_fresh(
            req.headers,
            etag if isinstance(etag, str) else None,
            modified if isinstance(modified, str) else None,
        ):
            self.status_code = 304

    async def _send_whole(self, data: bytes) -> None:
        status = self.status_code
        h = self._headers
        if status in (204, 304) or 100 <= status < 200:
            for k in ("content-type", "content-length", "transfer-encoding"):
                h.pop(k, None)
            data = b""
        elif status == 205:  # Reset Content: no body, and says so (Express)
            h.pop("transfer-encoding", None)
            h["content-length"] = ("Content-Length", "0")
            data = b""
        else:
            h["content-length"] = ("Content-Length", str(len(data)))
        self.headers_sent = True
        self.finished = True
        sink = self._sink
        self.bytes_sent = 0 if sink.head_only else len(data)
        await sink.send_response(
            status, self._head(), None if sink.head_only or not data else data, True
        )

    async def _send_value(self, value: Any) -> None:
        # The whole reply as a value (a ValueSink): marked sent only once the sink took it, so
        # that a reply the transport refuses (too large, not serialisable) can still be
        # answered with an error by the exchange.
        self._check_open()
        await self._give_value(value)

    async def _give_value(self, value: Any) -> None:
        # _send_value once the caller has made _check_open()'s check itself
        sink: ValueSink = self._sink  # type: ignore[assignment]  # (carries_values: one)
        nbytes = await sink.send_value(self.status_code, self._head(), value)
        self.headers_sent = True
        self.finished = True
        self.bytes_sent = nbytes

    @property
    def carries_values(self) -> bool:
        """True when the transport carries bodies as values (a Sails JWR), not bytes."""
        return self._sink.carries_values

    async def accept_websocket(
        self, handler: Callable[..., Awaitable[None]], options: dict[str, Any]
    ) -> None:
        """Take the connection over as a WebSocket for ``handler`` (what a ws route does).

        Raises:
            HTTPError: 426 when the transport cannot switch protocols (not an Upgrade request
                over HTTP); the acceptor's own 400/403/503 (bad handshake, origin, too many).
        """
        # a WebSocketAcceptor (gateway.app.contracts): only an HTTP Upgrade request's sink is
        accept = getattr(self._sink, "accept_websocket", None)
        if accept is None:
            raise HTTPError(426, "WebSocket upgrade not possible here")
        await accept(self.req, self, handler, options)

    def clear_headers(self) -> Response:
        """Forget every header set so far (an error reply starts from a clean head)."""
        self._headers.clear()
        return self

    async def send_status(self, code: int) -> None:
        """Set the status and send its message as text/plain (Express ``res.sendStatus``):
        ``statuses``' message, or the number itself for a code without one."""
        self.status(code)
        text = _STATUS_MESSAGES.get(code) or str(code)
        if self._sink.carries_values:  # Sails' sendStatus: the text, no type of its own
            await self._send_value(text)
            return
        await self.type("txt").send(text)

    async def redirect(self, url: str | int, status: int | str = 302) -> None:
        """Redirect (Express 5 ``res.redirect``): Location, the status (302 by default), and a
        body negotiated as Express's ``res.format`` would (``Vary: Accept``):

        - the client prefers text/plain (or sent no Accept): ``Found. Redirecting to URL``;
        - it prefers text/html: Express 5.3's small page, ``<!DOCTYPE html><head><title>Found
          </title></head><body><p>Found. Redirecting to URL</p></body>`` (URL HTML-escaped;
          Express 5.0-5.2 sent only the ``<p>``);
        - it accepts neither (``Accept: application/json``): an empty body, no Content-Type.

        ``redirect(url)``, ``redirect(status, url)`` (Express) and ``redirect(url, status)``
        (kept for Python callers) all work. A status without a message shows its number.

        A Sails virtual request gets what Sails' virtual response sends: ``content-type:
        text/html``, ``Location`` as given, and the body ``Redirecting to URL`` (the URL as
        JavaScript's encodeURI writes it); no Vary, nothing negotiated.
        """
        if self.headers_sent:
            raise RuntimeError("the response has already been sent")
        if isinstance(url, int):
            url, status = str(status), url
        code = int(status)
        if self._sink.carries_values:
            url = str(url)
            self.set_header("content-type", "text/html")
            self.set_header("Location", url)
            self.status(code)
            await self._send_value("Redirecting to " + _encode_uri(url))
            return
        self.location(str(url))
        address = str(self.get("Location"))
        self.vary("Accept")
        req = self.req
        key = req.accepts("text", "html") if req is not None else "text"
        message = _STATUS_MESSAGES.get(code) or str(code)
        if key == "html":
            self.set("Content-Type", "text/html; charset=utf-8")
            escaped = _html_escape(address)
            body = (
                f"<!DOCTYPE html><head><title>{message}</title></head>"
                f"<body><p>{message}. Redirecting to {escaped}</p></body>"
            )
        elif key == "text":
            self.set("Content-Type", "text/plain; charset=utf-8")
            body = f"{message}. Redirecting to {address}"
        else:
            body = ""
        self.status(code)
        await self._send_whole(body.encode())

    # -- Sails 1.5 default responses (lib/hooks/responses/defaults) ---------------------------
    # Sails as it runs in production (NODE_ENV=production) and without views, which is what a
    # device is: data goes out as JSON; an exception never does (no util.inspect, no stack);
    # no HTML page is rendered (Sails would render views/404 or views/500 for a browser that
    # does not want JSON, and falls back to the same text without views). data=None stands for
    # JavaScript's undefined: send JSON null with res.json(None).

    async def ok(self, data: Any = None) -> None:
        """Sails ``res.ok(data)``: 200 with ``data`` as JSON (a str too: a JSON string).

        None sends ``OK`` as text/plain (Sails: sendStatus(200)); an exception sends the same
        (Sails in production; in development it sends util.inspect(err), stack included).
        """
        await self._sails_data(200, data)

    async def bad_request(self, data: Any = None) -> None:
        """Sails ``res.badRequest(data)``: 400 with ``data`` as JSON; None or an exception sends
        ``Bad Request`` as text/plain (the exception is logged, never sent)."""
        if data is not None:
            log.debug('Sending 400 ("Bad Request") response: %r', data)
        await self._sails_data(400, data)

    async def forbidden(self, data: Any = None) -> None:
        """Sails ``res.forbidden()``: 403 ``Forbidden`` as text/plain, whatever ``data`` is
        (Sails 1.5 takes no argument and sends none; ``data`` is accepted and not sent)."""
        del data
        await self.send_status(403)

    async def not_found(self, data: Any = None) -> None:
        """Sails ``res.notFound()``: 404 ``Not Found`` as text/plain, for JSON and HTML clients
        alike (without views Sails sends the same); ``data`` is not sent, as in Sails."""
        del data
        await self.send_status(404)

    async def server_error(self, data: Any = None) -> None:
        """Sails ``res.serverError(data)``: 500 ``Internal Server Error`` as text/plain.

        ``data`` is logged (an exception with its traceback) and never sent: Sails in
        production drops it from the response; in development it would send the data as JSON,
        or an Error's stack, which the gateway never does.
        """
        if data is not None:
            req = self.req
            where = f"{req.method} {req.path}: " if req is not None else ""
            if isinstance(data, BaseException):
                log.error('%sSending 500 ("Server Error") response', where, exc_info=data)
            else:
                log.error('%sSending 500 ("Server Error") response: %r', where, data)
        await self.send_status(500)

    async def _sails_data(self, code: int, data: Any) -> None:
        if data is None or isinstance(data, BaseException):
            if isinstance(data, BaseException):
                log.info(
                    "res.%s() got an exception; it is not sent: %r",
                    "ok" if code == 200 else "bad_request",
                    data,
                )
            await self.send_status(code)
            return
        self.status(code)
        await self.json(data)

    async def write(self, chunk: str | bytes) -> None:
        """Stream part of the body (chunked unless a Content-Length was set).

        Waits until the transport has taken the bytes (the socket's send buffer for HTTP), so a
        client that does not read blocks the writer instead of growing our memory; the
        connection's send timeout then closes it (the write raises or is cancelled). The first
        write sends the head and its chunk together.

        Raises:
            ClientDisconnected: the client went away.
            RuntimeError: the response was already sent.
        """
        if self.finished:
            raise RuntimeError("the response has already been sent")
        data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        sink = self._sink
        if not self.headers_sent:
            if "content-type" not in self._headers and not sink.carries_values:
                self._headers["content-type"] = ("Content-Type", "text/html; charset=utf-8")
            self.headers_sent = True
            self._streaming = True
            body = data if data and not sink.head_only else None
            if body:
                self.bytes_sent += len(body)
            await sink.send_response(self.status_code, self._head(), body, False)
            return
        if data and not sink.head_only:
            self.bytes_sent += len(data)
            await sink.send_data(data)

    async def end(self, chunk: str | bytes | None = None) -> None:
        """Finish the response (optionally with a last chunk)."""
        if self.finished:
            raise RuntimeError("the response has already been sent")
        if not self._streaming:
            if self._sink.carries_values:
                await self._send_value(NO_BODY if chunk is None else chunk)
            elif chunk is None:
                await self._send_whole(b"")
            else:
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                await self._send_whole(data)
            return
        if chunk:
            await self.write(chunk)
        self.finished = True
        await self._sink.end()

    def json_seq(self) -> JSONSeqWriter:
        """A writer for JSON text sequences (RFC 7464): one flushed ``RS json LF`` per value."""
        return JSONSeqWriter(self)

    def sse(self, heartbeat_s: float = 15.0) -> AbstractAsyncContextManager[EventStream]:
        """Server-sent events (``text/event-stream``), for the browser's ``EventSource``.

        ``async with res.sse() as events: await events.send(data, event=..., id=...,
        retry_ms=...)``: each event is flushed on its own; a ``: keepalive`` comment goes out
        after ``heartbeat_s`` quiet seconds (0: none); ``events.last_event_id`` is the
        reconnecting client's ``Last-Event-ID``. The client going away ends the handler
        quietly (ClientDisconnected); a draining server ends the block, and the response
        cleanly. Sets ``Cache-Control: no-cache`` unless the handler set one.

        Args:
            heartbeat_s: seconds without a write before a keepalive comment.

        Returns:
            An async context manager giving the gateway.app.sse.EventStream.
        """
        from gateway.app.sse import open_event_stream

        return open_event_stream(self, heartbeat_s)

    async def send_file(
        self,
        path: str,
        *,
        root: str | None = None,
        max_age_s: int = 0,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Stream a file from disk with Content-Type, ETag, Last-Modified and 304 handling.

        Args:
            path: absolute, or relative to ``root``.
            root: the directory the file must stay inside (``..`` and symlink escapes: 403).
            if_none_match, if_modified_since: the request's conditional headers (the
                application passes them through ``req``; see App helpers).
        Raises:
            Forbidden, NotFound.
        """
        req = self.req
        if req is not None:
            if if_none_match is None:
                if_none_match = req.get("if-none-match")
            if if_modified_since is None:
                if_modified_since = req.get("if-modified-since")
        real = _resolve(path, root)
        try:
            st = os.stat(real)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound() from None
        except PermissionError:
            raise Forbidden() from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound()
        etag = f'W/"{st.st_size:x}-{int(st.st_mtime * 1000):x}"'
        self.set("ETag", etag)
        self.set("Last-Modified", http_date(st.st_mtime))
        self.set("Cache-Control", f"public, max-age={max_age_s}")
        if headers:
            self.set(headers)
        if "content-type" not in self._headers:
            ext = os.path.splitext(real)[1].lstrip(".").lower()
            self.type(MIME_TYPES.get(ext, "application/octet-stream"))
        if _not_modified(etag, st.st_mtime, if_none_match, if_modified_since):
            self.status(304)
            await self._send_whole(b"")
            return
        self._headers["content-length"] = ("Content-Length", str(st.st_size))
        self.headers_sent = True
        self.finished = True
        sink = self._sink
        if sink.head_only or st.st_size == 0:
            await sink.send_response(self.status_code, self._head(), None, True)
            return
        await sink.send_response(self.status_code, self._head(), None, False)
        self.bytes_sent = st.st_size
        await sink.send_file(real, st.st_size)


class JSONSeqWriter:
    """RFC 7464 writer (``application/json-seq``): each value goes out as 0x1E + JSON + 0x0A,
    sent on its own, so a reader gets every record as soon as it is produced.

    ``async with res.json_seq() as seq: await seq.send(value)``; leaving the block normally
    ends the response. When the client goes away, ``send`` raises ClientDisconnected (the
    producer stops; the connection ends quietly). On any other exception the response is left
    unterminated, which tells the client the sequence is incomplete.
    """

    __slots__ = ("_res",)

    def __init__(self, res: Response) -> None:
        self._res = res
        if not res.headers_sent and res.get("content-type") is None:
            res.set("Content-Type", "application/json-seq")

    async def send(self, value: Any) -> None:
        """Send one record and wait until the transport has taken it.

        Raises:
            ClientDisconnected: the client went away.
            TypeError, ValueError: ``value`` is not JSON-serialisable (nothing was sent).
        """
        await self._res.write(b"\x1e" + _dumps(value) + b"\n")

    async def aclose(self) -> None:
        """End the response (once; later calls do nothing)."""
        if not self._res.finished:
            await self._res.end()

    async def __aenter__(self) -> JSONSeqWriter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.aclose()


def _resolve(path: str, root: str | None) -> str:
    if "\x00" in path:
        raise Forbidden()
    if root is None:
        if not os.path.isabs(path):
            raise ValueError("send_file needs an absolute path or a root")
        parts = path.split("/")
        if ".." in parts:
            raise Forbidden()
        return path
    rel = path.lstrip("/")
    if ".." in rel.replace("\\", "/").split("/"):
        raise Forbidden()
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel))
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise Forbidden()  # a symlink pointing out of root
    return real


def _not_modified(etag: str, mtime: float, inm: str | None, ims: str | None) -> bool:
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or etag in tags or etag[2:] in tags
    if ims is not None:
        try:
            since = parse_http_date(ims)
            return since is not None and int(mtime) <= since
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


def _parse_list(header: str) -> list[str]:
    # the vary package's parse(): split on commas, trimming spaces
    return [part.strip(" ") for part in header.split(",")]


def _html_escape(s: str) -> str:
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


__all__ += ["check_header", "HTTPError"]
