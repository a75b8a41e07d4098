# Express/EdgerOS body-parser middleware (json, urlencoded, text, raw) and the streaming
# Content-Encoding decoder `decoded_chunks` that multipart.py shares. Reaches the request only
# through the `BodySource` seam (docs/CONTRACTS.md) and reports problems by raising
# gateway.errors; never touches sockets, the clock or the response. Every size is bounded while
# streaming: the decoded body by the parser's limit, retained bytes by req.reserve() (the
# process-wide memory budget).
from __future__ import annotations

import codecs
import json as _json
import math
import operator
import re
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from itertools import accumulate, repeat
from typing import Any, Protocol
from urllib.parse import unquote_plus

from gateway.app.negotiation import type_is
from gateway.errors import BadRequest, BodyTooLarge, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "BodySource",
    "LimitsLike",
    "Middleware",
    "Next",
    "TypeOption",
    "collect_body",
    "decoded_chunks",
    "has_body",
    "json",
    "parse_content_type",
    "parse_json",
    "parse_limit",
    "parse_urlencoded",
    "raw",
    "text",
    "type_checker",
    "urlencoded",
]


class LimitsLike(Protocol):
    """The part of Settings' ``ModeLimits`` the parsers read."""

    @property
    def max_body_bytes(self) -> int: ...


class BodySource(Protocol):
    """The request seam of docs/CONTRACTS.md, plus the ``body_parsed`` flag.

    ``body_parsed`` is set True by the first parser that reads the body, so that later parsers
    skip (Express's ``req._body``); the real Request must define it (default False).
    """

    body: Any
    body_parsed: bool

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def limits(self) -> LimitsLike: ...

    def get(self, field: str) -> str | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def read(self, limit: int | None = None) -> bytes: ...

    def reserve(self, nbytes: int) -> None: ...


Next = Callable[[], Awaitable[None]]
Middleware = Callable[[Any, Any, Next], Awaitable[None]]
TypeOption = str | Sequence[str] | Callable[[Any], bool]

# ---------------------------------------------------------------- options and content types

_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
_LIMIT_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)?\s*", re.IGNORECASE)
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_RE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
_PARAM_RE = re.compile(rf'\s*;\s*({_TOKEN})\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|{_TOKEN})\s*', re.S)
_TRAILER_RE = re.compile(r"\s*;?\s*")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)


def parse_limit(limit: int | str) -> int:
    """Turn an Express-style limit (``102400``, ``"100kb"``, ``"1.5mb"``) into bytes.

    Units follow the npm ``bytes`` package: kb = 1024 bytes; fractions are floored.

    Args:
        limit: a non-negative int, or a number with an optional b/kb/mb/gb/tb/pb unit.

    Returns:
        The limit in bytes.

    Raises:
        ValueError: the limit is negative or not understood.
    """
    if isinstance(limit, bool):
        raise ValueError(f'option limit "{limit}" is invalid')
    if isinstance(limit, int):
        if limit < 0:
            raise ValueError(f'option limit "{limit}" is invalid')
        return limit
    m = _LIMIT_RE.fullmatch(limit)
    if m is None:
        raise ValueError(f'option limit "{limit}" is invalid')
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]] | None:
    """Parse a Content-Type value into a lower-case ``type/subtype`` and its parameters.

    Args:
        value: the header value, or None.

    Returns:
        ``(media_type, params)`` with lower-case parameter names and unquoted values, or None
        when the value is missing or malformed (a malformed type matches nothing, as in type-is).
    """
    if not value:
        return None
    m = _MEDIA_RE.match(value)
    if m is None:
        return None
    params: dict[str, str] = {}
    pos = m.end()
    while pos < len(value):
        p = _PARAM_RE.match(value, pos)
        if p is None:
            break
        v = p.group(2)
        if v.startswith('"'):
            v = _QUOTED_PAIR_RE.sub(r"\1", v[1:-1])
        params[p.group(1).lower()] = v
        pos = p.end()
    if _TRAILER_RE.fullmatch(value, pos) is None:
        return None
    return f"{m.group(1)}/{m.group(2)}".lower(), params


def type_checker(type: TypeOption) -> Callable[[Any], bool]:
    """Build the Content-Type predicate for a parser's ``type`` option.

    Matching is ``gateway.app.negotiation.type_is`` (Express type-is), shared with ``req.is_()``.

    Args:
        type: a media type (``"application/json"``), a shorthand (``"json"``, ``"urlencoded"``,
            ``"multipart"``), a wildcard (``"*/*"``, ``"text/*"``), a suffix (``"+json"``), a
            list of those, or a callable ``(req) -> bool`` used as is.

    Returns:
        A function ``(req) -> bool``; False when the request has no valid Content-Type.
    """
    if callable(type):
        return type
    types = (type,) if isinstance(type, str) else tuple(type)

    def check(req: Any) -> bool:
        return bool(types) and bool(type_is(req.get("content-type"), *types, has_body=True))

    return check


def has_body(req: BodySource) -> bool:
    """Whether the request declares a body (type-is ``hasBody``).

    A ``Transfer-Encoding`` header, or a numeric ``Content-Length`` (also ``0``: an empty body
    is still a body, so e.g. ``text()`` gives ``""``).

    Args:
        req: the request.

    Returns:
        True when a body parser should run.
    """
    if req.get("transfer-encoding") is not None:
        return True
    length = req.get("content-length")
    return length is not None and length.strip().isdigit()


def _charset(req: BodySource) -> str | None:
    parsed = parse_content_type(req.get("content-type"))
    if parsed is None:
        return None
    value = parsed[1].get("charset")
    return value.strip().lower() if value else None


def _unsupported_charset(charset: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(message=f'unsupported charset "{charset.upper()}"')


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(message=f"request entity too large: limit {limit} bytes")


# ------------------------------------------------------------------ content decoding

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_DECODE_CHUNK_BYTES = 64 * 1024  # the most one decompress call may allocate


def _is_zlib_header(head: bytes) -> bool:
    # RFC 1950: CM = 8 (deflate), CINFO <= 7, and the 16-bit header is a multiple of 31.
    return (head[0] & 0x0F) == 8 and (head[0] >> 4) <= 7 and ((head[0] << 8) | head[1]) % 31 == 0


class _Inflater:
    """Sans-IO gzip/deflate decoder whose output is bounded while decoding.

    Each decompress call is given ``max_length`` = min(64 KiB, room left + 1), so a zip bomb
    is stopped after at most ``limit + 1`` decoded bytes and never allocates more than 64 KiB
    at once. gzip accepts concatenated members (as Node's gunzip does); ``deflate`` is zlib-
    wrapped per RFC 9110, with a raw-deflate fallback when the first two bytes are not a zlib
    header (body-parser only accepts zlib; some clients send raw deflate).
    """

    __slots__ = ("_encoding", "_d", "_head", "_limit", "_total")

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._limit = limit
        self._total = 0
        self._head = b""
        self._d: Any = None if encoding == "deflate" else zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:  # deflate: wait for two bytes to tell zlib from raw deflate
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._d = zlib.decompressobj(
                zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
            )
        yield from self._run(data)

    def finish(self) -> Iterator[bytes]:
        if self._d is None:
            raise BadRequest(message=f"truncated {self._encoding} body")
        yield from self._run(b"")
        if not self._d.eof:
            raise BadRequest(message=f"truncated {self._encoding} body")

    def _run(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        while True:
            if d.eof:
                if not data:
                    return
                if self._encoding == "deflate":
                    raise BadRequest(message="unexpected data after the deflate body")
                d = self._d = zlib.decompressobj(_GZIP_WBITS)  # next gzip member
            cap = min(_DECODE_CHUNK_BYTES, self._limit - self._total + 1)
            before = len(data)
            try:
                out = d.decompress(data, cap)
            except zlib.error as exc:
                raise BadRequest(message=f"invalid {self._encoding} body: {exc}") from None
            data = d.unused_data if d.eof else d.unconsumed_tail
            if out:
                self._total += len(out)
                if self._total > self._limit:
                    raise _too_large(self._limit)
                yield out
            elif not d.eof and data and len(data) == before:
                raise BadRequest(message=f"invalid {self._encoding} body")
            if not data and not d.eof and len(out) < cap:
                return  # input used up and no output pending


async def decoded_chunks(
    req: BodySource, limit: int, *, inflate: bool = True
) -> AsyncGenerator[bytes, None]:
    """Stream the request body decoded from its Content-Encoding, bounded by ``limit``.

    The limit is ``min(limit, req.limits.max_body_bytes)`` and applies to the *decoded* bytes;
    the raw bytes are bounded by ``req.limits.max_body_bytes``. Nothing is charged to the
    memory budget here: callers that keep chunks call ``req.reserve`` (see ``collect_body``).

    Args:
        req: the request (body source seam).
        limit: the most decoded bytes to accept.
        inflate: when False, any encoding other than identity is refused (Express ``inflate``).

    Yields:
        Non-empty decoded chunks, each at most 64 KiB for gzip/deflate.

    Raises:
        BodyTooLarge: 413, the decoded body is over the limit (Content-Length is checked first).
        UnsupportedMediaType: 415, an unknown Content-Encoding.
        BadRequest: 400, a corrupt or truncated gzip/deflate body.
        BodyError: and its subclasses, from the request's own reads.
    """
    max_raw = req.limits.max_body_bytes
    limit = min(limit, max_raw)
    encoding = (req.get("content-encoding") or "identity").strip().lower()
    inflater: _Inflater | None = None
    if encoding == "identity":
        length = req.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise _too_large(limit)
    elif not inflate:
        raise UnsupportedMediaType(message=f'content encoding unsupported "{encoding}"')
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater("gzip" if encoding == "x-gzip" else encoding, limit)
    else:
        raise UnsupportedMediaType(message=f'unsupported content encoding "{encoding}"')
    source = req.__aiter__()
    try:
        total = 0
        async for chunk in source:
            total += len(chunk)
            if inflater is None:
                if total > limit:
                    raise _too_large(limit)
                if chunk:
                    yield chunk
                continue
            if total > max_raw:
                raise _too_large(max_raw)
            for out in inflater.feed(chunk):
                yield out
        if inflater is not None:
            for out in inflater.finish():
                yield out
    finally:
        # Stopping early (413, 400, a consumer that gives up) must not leave the request's
        # own async generator to the garbage collector: close it now.
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


async def collect_body(req: BodySource, limit: int, *, inflate: bool = True) -> bytes:
    """Read the whole decoded body, charging every kept byte to the memory budget.

    Args:
        req: the request.
        limit: the most decoded bytes to accept (also capped by the mode's max_body_bytes).
        inflate: passed to ``decoded_chunks``.

    Returns:
        The decoded body (one ``b"".join`` of the chunks).

    Raises:
        BudgetExceeded: 503, the process-wide body budget is exhausted.
        HTTPError: any error of ``decoded_chunks``.
    """
    chunks: list[bytes] = []
    async with aclosing(decoded_chunks(req, limit, inflate=inflate)) as stream:
        async for chunk in stream:
            req.reserve(len(chunk))
            chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------- JSON

_JSON_CHARSETS = frozenset(
    {"utf-8", "utf-16", "utf-16le", "utf-16be", "utf-32", "utf-32le", "utf-32be"}
)
_JSON_WS_RE = re.compile(r"[ \t\n\r]*")
# A JSON string (escapes included); an unterminated one runs to the end of the text, where the
# parser will fail anyway. Greedy and always able to end at '"' or \Z, so it never backtracks:
# the scan stays linear even for hostile runs of '\"'.
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|\Z)', re.S)
_JSON_DEPTH_RE = re.compile(_JSON_STRING_RE.pattern + r"|[\[\]{}]", re.S)
_BRACKET_DELTAS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[{]}")))
_MAX_NUMBER_CHARS = 1000  # int() is quadratic in digits; JS keeps 17 significant digits anyway


class _Rejected(Exception):
    """Raised from the json hooks; turned into a 400."""


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - text.rfind("\n", 0, pos)


def _json_error(text: str, pos: int, what: str) -> BadRequest:
    line, col = _line_col(text, pos)
    return BadRequest(message=f"Invalid JSON at line {line} column {col} (char {pos}): {what}")


def _check_depth(text: str, max_depth: int) -> None:
    if text.count("[") + text.count("{") <= max_depth:
        return  # cannot be too deep
    # Outside strings, [ and { are +1, ] and } are -1. Strip strings, keep brackets as 2/0 bytes
    # and take the running sum's maximum with C-level itertools: no Python loop per character
    # (one transient copy of the text, smaller than it by the strings removed).
    skeleton = _JSON_STRING_RE.sub("", text).encode("utf-8", "surrogatepass")
    deltas = skeleton.translate(_BRACKET_DELTAS, _NOT_BRACKETS)
    if max(accumulate(map(operator.sub, deltas, repeat(1))), default=0) <= max_depth:
        return
    depth = 0  # too deep: walk the tokens once more to name the position
    for m in _JSON_DEPTH_RE.finditer(text):
        ch = text[m.start()]
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                raise _json_error(text, m.start(), f"nesting deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1


def _parse_int(s: str) -> int:
    if len(s) > _MAX_NUMBER_CHARS:
        raise _Rejected(f"number too long ({len(s)} characters, at most {_MAX_NUMBER_CHARS})")
    return int(s)


def _parse_float(s: str) -> float:
    if len(s) > _MAX_NUMBER_CHARS:
        raise _Rejected(f"number too long ({len(s)} characters, at most {_MAX_NUMBER_CHARS})")
    value = float(s)
    if not math.isfinite(value):
        raise _Rejected(f"number out of range: {s[:40]}")
    return value


def _parse_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON value")


def _revive(reviver: Callable[[str, Any], Any], key: str, value: Any) -> Any:
    # Bottom-up like JSON.parse's reviver; depth is already bounded by max_depth.
    if isinstance(value, dict):
        for k in value:
            value[k] = _revive(reviver, k, value[k])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _revive(reviver, str(i), item)
    return reviver(key, value)


def _decode_text(data: bytes, charset: str) -> str:
    try:
        text = data.decode(charset)
    except UnicodeDecodeError as exc:
        raise BadRequest(message=f"invalid {charset} in body at byte {exc.start}") from None
    return text[1:] if text.startswith("\ufeff") else text  # strip a BOM like iconv-lite


def parse_json(
    data: bytes,
    *,
    charset: str = "utf-8",
    strict: bool = True,
    reviver: Callable[[str, Any], Any] | None = None,
    max_depth: int = 64,
) -> Any:
    """Parse a JSON body the way the ``json()`` middleware does (sync, for reuse and tests).

    Args:
        data: the decoded body bytes.
        charset: a UTF-8/16/32 charset name.
        strict: accept only an object or array at the top level.
        reviver: ``(key, value) -> value`` applied bottom-up, like JSON.parse's reviver (a
            returned value replaces the original; there is no ``undefined`` to delete keys).
        max_depth: the deepest nesting of arrays/objects accepted.

    Returns:
        The parsed value; ``{}`` for an empty body (as body-parser).

    Raises:
        BadRequest: 400, invalid UTF, invalid JSON (the message names line, column and char),
            a strict violation, nesting deeper than ``max_depth``, NaN/Infinity, numbers over
            1000 characters or out of float range.
    """
    text = _decode_text(data, charset)
    if not text:
        return {}
    ws = _JSON_WS_RE.match(text)
    first = ws.end() if ws is not None else 0
    if strict and first < len(text) and text[first] not in "{[":
        raise _json_error(
            text, first, "strict mode accepts only an object or array at the top level"
        )
    _check_depth(text, max_depth)
    try:
        value = _json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _json.JSONDecodeError as exc:
        raise _json_error(text, exc.pos, exc.msg) from None
    except _Rejected as exc:
        raise BadRequest(message=f"Invalid JSON: {exc}") from None
    except RecursionError:  # belt and braces; _check_depth should have caught it
        raise BadRequest(message="Invalid JSON: nesting too deep") from None
    return _revive(reviver, "", value) if reviver is not None else value


# -------------------------------------------------------------------------- urlencoded


def parse_urlencoded(
    text: str, *, encoding: str = "utf-8", parameter_limit: int = 1000
) -> dict[str, str | list[str]]:
    """Parse ``application/x-www-form-urlencoded`` with Express's "simple" semantics.

    ``+`` is a space, bad %-escapes are kept literally and undecodable escaped bytes become
    U+FFFD (Node's querystring), repeated keys give a list, ``a[b]`` stays a flat key, empty
    pieces are skipped and a key without ``=`` has the value ``""``.
    (A private stand-in for ``gateway.http.target.parse_query``; swap it in once that exists.)

    Args:
        text: the body text.
        encoding: the charset of %-escaped bytes (utf-8 or iso-8859-1).
        parameter_limit: the most ``&``-separated pieces accepted (as body-parser counts them).

    Returns:
        A dict of names to a value or a list of values.

    Raises:
        PayloadTooLarge: 413 "too many parameters".
    """
    if text.count("&") >= parameter_limit:
        raise PayloadTooLarge(message=f"too many parameters (limit {parameter_limit})")
    out: dict[str, str | list[str]] = {}
    for piece in text.split("&"):
        if not piece:
            continue
        k, _, v = piece.partition("=")
        key = unquote_plus(k, encoding=encoding, errors="replace")
        value = unquote_plus(v, encoding=encoding, errors="replace")
        old = out.get(key)
        if old is None:
            out[key] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            out[key] = [old, value]
    return out


# ---------------------------------------------------------------------- middleware


_NOT_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)


def _text_charset(charset: str) -> str:
    # Python's codec registry also holds things that are not charsets (rot13, zlib, idna...).
    try:
        info = codecs.lookup(charset)
    except LookupError:
        raise _unsupported_charset(charset) from None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        raise _unsupported_charset(charset)
    return info.name


def _skip(req: BodySource, should_parse: Callable[[Any], bool]) -> bool:
    return req.body_parsed or not has_body(req) or not should_parse(req)


def json(
    *,
    limit: int | str = "100kb",
    type: TypeOption = ("application/json", "+json"),
    strict: bool = True,
    reviver: Callable[[str, Any], Any] | None = None,
    max_depth: int = 64,
    inflate: bool = True,
) -> Middleware:
    """Middleware that parses JSON bodies into ``req.body``.

    Args:
        limit: most decoded body bytes (int or "100kb"); also capped by the caller's mode.
        type: Content-Types to parse (see ``type_checker``); default JSON and ``+json`` types.
        strict: only an object or array at the top level.
        reviver: see ``parse_json``.
        max_depth: deepest nesting accepted (hostile 100 000-deep input is a cheap 400).
        inflate: decode gzip/deflate bodies.

    Returns:
        ``async (req, res, next)``; skips when the body was parsed already, there is no body or
        the type does not match, leaving ``req.body`` as it was.

    Raises:
        ValueError: a bad ``limit`` (at creation). The middleware raises UnsupportedMediaType
        (415: charset not UTF-8/16/32, unknown encoding), BodyTooLarge (413), BudgetExceeded
        (503), BadRequest (400: see ``parse_json``).
    """
    max_bytes = parse_limit(limit)
    should_parse = type_checker(type)

    async def json_parser(req: BodySource, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            charset = _charset(req) or "utf-8"
            if charset not in _JSON_CHARSETS:
                raise _unsupported_charset(charset)
            req.body_parsed = True
            data = await collect_body(req, max_bytes, inflate=inflate)
            req.body = parse_json(
                data, charset=charset, strict=strict, reviver=reviver, max_depth=max_depth
            )
        await next()

    return json_parser


def urlencoded(
    *,
    limit: int | str = "100kb",
    type: TypeOption = "application/x-www-form-urlencoded",
    parameter_limit: int = 1000,
    default_charset: str = "utf-8",
    inflate: bool = True,
) -> Middleware:
    """Middleware that parses urlencoded form bodies into ``req.body`` (simple parser).

    Args:
        limit: most decoded body bytes.
        type: Content-Types to parse.
        parameter_limit: most fields; more is 413 "too many parameters".
        default_charset: utf-8 or iso-8859-1, used when the Content-Type names none.
        inflate: decode gzip/deflate bodies.

    Returns:
        ``async (req, res, next)``, see ``json``.

    Raises:
        ValueError: bad options (at creation). The middleware raises UnsupportedMediaType (415,
        a charset other than utf-8/iso-8859-1), PayloadTooLarge/BodyTooLarge (413),
        BudgetExceeded (503), BadRequest (400, raw bytes invalid in the charset).
    """
    max_bytes = parse_limit(limit)
    should_parse = type_checker(type)
    if parameter_limit < 1:
        raise ValueError("option parameter_limit must be a positive number")
    if default_charset not in ("utf-8", "iso-8859-1"):
        raise ValueError("option default_charset must be either utf-8 or iso-8859-1")

    async def urlencoded_parser(req: BodySource, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            charset = _charset(req) or default_charset
            if charset not in ("utf-8", "iso-8859-1"):
                raise _unsupported_charset(charset)
            req.body_parsed = True
            data = await collect_body(req, max_bytes, inflate=inflate)
            if data.count(b"&") >= parameter_limit:  # before decoding anything
                raise PayloadTooLarge(message=f"too many parameters (limit {parameter_limit})")
            req.body = parse_urlencoded(
                _decode_text(data, charset), encoding=charset, parameter_limit=parameter_limit
            )
        await next()

    return urlencoded_parser


def text(
    *,
    limit: int | str = "100kb",
    type: TypeOption = "text/plain",
    default_charset: str = "utf-8",
    inflate: bool = True,
) -> Middleware:
    """Middleware that decodes text bodies into a ``str`` in ``req.body``.

    Args:
        limit: most decoded body bytes.
        type: Content-Types to parse.
        default_charset: used when the Content-Type names no charset.
        inflate: decode gzip/deflate bodies.

    Returns:
        ``async (req, res, next)``, see ``json``. A leading BOM is removed.

    Raises:
        ValueError: bad options (at creation). The middleware raises UnsupportedMediaType (415,
        unknown charset, named in the message), BodyTooLarge (413), BudgetExceeded (503),
        BadRequest (400, bytes invalid in the charset).
    """
    max_bytes = parse_limit(limit)
    should_parse = type_checker(type)
    try:
        _text_charset(default_charset)
    except UnsupportedMediaType:
        raise ValueError(f'option default_charset "{default_charset}" is not a charset') from None

    async def text_parser(req: BodySource, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            charset = _charset(req) or default_charset
            codec = _text_charset(charset)
            req.body_parsed = True
            data = await collect_body(req, max_bytes, inflate=inflate)
            req.body = _decode_text(data, codec)
        await next()

    return text_parser


def raw(
    *,
    limit: int | str = "100kb",
    type: TypeOption = "application/octet-stream",
    inflate: bool = True,
) -> Middleware:
    """Middleware that puts the body bytes in ``req.body``.

    Args:
        limit: most decoded body bytes.
        type: Content-Types to parse.
        inflate: decode gzip/deflate bodies.

    Returns:
        ``async (req, res, next)``, see ``json``.

    Raises:
        ValueError: a bad ``limit`` (at creation). The middleware raises BodyTooLarge (413),
        UnsupportedMediaType (415), BudgetExceeded (503), BadRequest (400, corrupt encoding).
    """
    max_bytes = parse_limit(limit)
    should_parse = type_checker(type)

    async def raw_parser(req: BodySource, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            req.body_parsed = True
            req.body = await collect_body(req, max_bytes, inflate=inflate)
        await next()

    return raw_parser
