# What every body parser shares: the request seam they read through (docs/CONTRACTS.md),
# Express-style options (limit, type), Content-Type/charset parsing, and the streaming
# Content-Encoding decoder (gzip/deflate) whose limit applies to the *decoded* size (zip bombs stop
# at limit + 1 bytes, never more than 64 KiB allocated per step).
# Must not: touch sockets, the clock or the response; problems are raised as gateway.errors.
# Memory: only collect_body/decode_cached keep bytes, and they charge them to the budget once:
# a body the cache already holds (and already charged) is used as is, not read or charged again.
from __future__ import annotations

import codecs
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
from typing import Any, Protocol

from gateway.app.negotiation import type_is
from gateway.body.stream import too_large
from gateway.errors import BadRequest, BudgetExceeded, UnsupportedMediaType

__all__ = [
    "BodyRequest",
    "LimitsLike",
    "Middleware",
    "Next",
    "TypeOption",
    "charset",
    "collect_body",
    "decode_text",
    "decoded_chunks",
    "has_body",
    "max_body_of",
    "parse_content_type",
    "parse_limit",
    "text_codec",
    "type_checker",
    "unsupported_charset",
]


class LimitsLike(Protocol):
    """The part of Settings' ``ModeLimits`` the parsers read."""

    @property
    def max_body_bytes(self) -> int: ...


class BodyRequest(Protocol):
    """The request seam of docs/CONTRACTS.md, plus the ``body_parsed`` flag.

    ``body_parsed`` is set True by the first parser that reads the body, so that later parsers
    skip (Express's body-parsed flag). Optional members, looked up with getattr so that minimal
    fakes keep working: ``cache_enabled`` (bool: the raw body is being kept by the request, so
    parsers use ``read()`` instead of streaming and charging it again) and ``max_body_bytes``
    (int: the effective streaming limit, a route option included).
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


def has_body(req: BodyRequest) -> bool:
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


def max_body_of(req: BodyRequest) -> int:
    """The request's effective streaming limit: a route's ``max_body_bytes`` or its mode's.

    Args:
        req: the request.

    Returns:
        The most raw body bytes the request may carry.
    """
    value = getattr(req, "max_body_bytes", None)
    return value if isinstance(value, int) else req.limits.max_body_bytes


def charset(req: BodyRequest) -> str | None:
    """The lower-case charset parameter of the request's Content-Type, if any.

    Args:
        req: the request.

    Returns:
        The charset name as sent (lower-cased), or None.
    """
    parsed = parse_content_type(req.get("content-type"))
    if parsed is None:
        return None
    value = parsed[1].get("charset")
    return value.strip().lower() if value else None


def unsupported_charset(name: str) -> UnsupportedMediaType:
    """The 415 for a charset we cannot decode (the message names it)."""
    return UnsupportedMediaType(message=f'unsupported charset "{name.upper()}"')


_NOT_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)


def text_codec(name: str) -> str:
    """Resolve a charset name to a Python text codec.

    Python's codec registry also holds things that are not charsets (rot13, zlib, idna...);
    those are refused like unknown names.

    Args:
        name: a charset name (``utf-8``, ``latin1``, ``windows-1252``...).

    Returns:
        The codec's canonical name.

    Raises:
        UnsupportedMediaType: 415, not a charset Python can decode text with.
    """
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise unsupported_charset(name) from None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        raise unsupported_charset(name)
    return info.name


def decode_text(data: bytes, codec: str) -> str:
    """Decode a body, dropping one leading BOM like iconv-lite.

    Args:
        data: the body bytes.
        codec: a codec accepted by ``text_codec``.

    Returns:
        The text.

    Raises:
        BadRequest: 400, bytes invalid in the charset (the message names the byte offset).
    """
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise BadRequest(message=f"invalid {codec} in body at byte {exc.start}") from None
    return text[1:] if text.startswith("\ufeff") else text


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
                    raise too_large(self._limit)
                yield out
            elif not d.eof and data and len(data) == before:
                raise BadRequest(message=f"invalid {self._encoding} body")
            if not data and not d.eof and len(out) < cap:
                return  # input used up and no output pending


def _inflater_for(req: BodyRequest, limit: int, inflate: bool) -> _Inflater | None:
    """None for identity (after the early Content-Length check), else the decoder.

    Raises:
        BodyTooLarge: 413, an identity body whose Content-Length is over ``limit``.
        UnsupportedMediaType: 415, an unknown encoding, or any encoding with inflate=False.
    """
    encoding = (req.get("content-encoding") or "identity").strip().lower()
    if encoding == "identity":
        length = req.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise too_large(limit)
        return None
    if not inflate:
        raise UnsupportedMediaType(message=f'content encoding unsupported "{encoding}"')
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater("gzip" if encoding == "x-gzip" else encoding, limit)
    raise UnsupportedMediaType(message=f'unsupported content encoding "{encoding}"')


async def decoded_chunks(
    req: BodyRequest, limit: int, *, inflate: bool = True
) -> AsyncGenerator[bytes, None]:
    """Stream the request body decoded from its Content-Encoding, bounded by ``limit``.

    The limit is ``min(limit, max_body_of(req))`` and applies to the *decoded* bytes; the raw
    bytes are bounded by the request's own streaming limit. Nothing is charged to the memory
    budget here: callers that keep chunks call ``req.reserve`` (see ``collect_body``). When the
    request caches its body, the chunks come from the cache (replayed, not read again).

    Args:
        req: the request (body seam).
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
    max_raw = max_body_of(req)
    limit = min(limit, max_raw)
    inflater = _inflater_for(req, limit, inflate)
    source = req.__aiter__()
    try:
        total = 0
        async for chunk in source:
            total += len(chunk)
            if inflater is None:
                if total > limit:
                    raise too_large(limit)
                if chunk:
                    yield chunk
                continue
            if total > max_raw:
                raise too_large(max_raw)
            for out in inflater.feed(chunk):
                yield out
        if inflater is not None:
            for out in inflater.finish():
                yield out
    finally:
        # Stopping early (413, 400, a consumer that gives up) must not leave an async generator
        # source to the garbage collector: close it now (the real request's stream has no
        # aclose: it is a plain iterator, and what is left of it the connection drains).
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _keep(req: BodyRequest, chunks: list[bytes], chunk: bytes) -> None:
    req.reserve(len(chunk))
    chunks.append(chunk)


def _join(chunks: list[bytes]) -> bytes:
    if len(chunks) == 1:
        return chunks[0]
    try:
        return b"".join(chunks)
    except MemoryError:  # what the budget is for: answer 503, never let a MemoryError out
        raise BudgetExceeded() from None


async def collect_body(req: BodyRequest, limit: int, *, inflate: bool = True) -> bytes:
    """Read the whole decoded body, charging each kept byte to the memory budget exactly once.

    When the request caches its raw body (``req.enable_cache()``), the raw bytes come from
    ``req.read()`` (charged by the cache) and only a decoded copy, if the body was encoded, is
    charged here; an identity body is returned as the cached object itself, not copied.

    Args:
        req: the request.
        limit: the most decoded bytes to accept (also capped by the request's max body).
        inflate: passed to ``decoded_chunks``.

    Returns:
        The decoded body.

    Raises:
        BudgetExceeded: 503, the process-wide body budget is exhausted.
        HTTPError: any error of ``decoded_chunks``.
    """
    chunks: list[bytes] = []
    try:
        if getattr(req, "cache_enabled", False):
            limit = min(limit, max_body_of(req))
            inflater = _inflater_for(req, limit, inflate)
            raw = await req.read()
            if inflater is None:
                if len(raw) > limit:
                    raise too_large(limit)
                return raw
            for out in inflater.feed(raw):
                _keep(req, chunks, out)
            for out in inflater.finish():
                _keep(req, chunks, out)
        else:
            async with aclosing(decoded_chunks(req, limit, inflate=inflate)) as stream:
                async for chunk in stream:
                    _keep(req, chunks, chunk)
    except BaseException:
        # the error's traceback holds this frame: let go of the bytes kept so far now
        chunks.clear()
        raise
    return _join(chunks) if chunks else b""
