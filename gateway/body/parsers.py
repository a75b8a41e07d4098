# Express/EdgerOS body-parser middleware: json, urlencoded, text, raw (and multipart's form),
# plus the helpers behind req.json()/req.text(). Import as `from gateway import bodyparsers` and
# `app.use(bodyparsers.json())`. Shared machinery (the request seam, limits, Content-Type and
# Content-Encoding decoding) lives in gateway.body.decoding and is re-exported here.
# Must not: touch sockets, the clock or the response; problems are raised as gateway.errors. Every
# size is bounded while streaming: the decoded body by the parser's limit, retained bytes by
# req.reserve() (the process-wide memory budget), a cached body is parsed without a second charge.
from __future__ import annotations

import json as _json
import math
import operator
import re
from collections.abc import Callable
from itertools import accumulate, repeat
from typing import Any, Final

from gateway.body.decoding import (
    BodyRequest,
    LimitsLike,
    Middleware,
    Next,
    TypeOption,
    charset,
    collect_body,
    decode_text,
    decoded_chunks,
    has_body,
    parse_content_type,
    parse_limit,
    text_codec,
    type_checker,
    unsupported_charset,
)
from gateway.body.multipart import form, multipart
from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.http.target import parse_query

__all__ = [
    "BodyRequest",
    "LimitsLike",
    "Middleware",
    "Next",
    "TypeOption",
    "collect_body",
    "decoded_chunks",
    "form",
    "has_body",
    "json",
    "multipart",
    "parse_content_type",
    "parse_json",
    "parse_limit",
    "parse_urlencoded",
    "raw",
    "read_json",
    "read_text",
    "text",
    "type_checker",
    "urlencoded",
]

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


# Number hooks make the C scanner call back into Python for every number, and json.loads with
# hooks builds a decoder per call. Text whose longest run of number characters is short and
# which has no 3-digit exponent can't hold a number the hooks would refuse: it is decoded
# without them (the common case); any other text goes through them.
_FAST_JSON: Final = _json.JSONDecoder(parse_constant=_parse_constant)
_CHECKED_JSON: Final = _json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)
_LONG_NUMBER_RE: Final = re.compile(r"[-+0-9.eE]{64,}|[eE][-+]?[0-9]{3}")


def _revive(reviver: Callable[[str, Any], Any], key: str, value: Any) -> Any:
    # Bottom-up like JSON.parse's reviver; depth is already bounded by max_depth.
    if isinstance(value, dict):
        for k in value:
            value[k] = _revive(reviver, k, value[k])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _revive(reviver, str(i), item)
    return reviver(key, value)


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
    text = decode_text(data, charset)
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
        decoder = _CHECKED_JSON if _LONG_NUMBER_RE.search(text) else _FAST_JSON
        value = decoder.decode(text)
    except _json.JSONDecodeError as exc:
        raise _json_error(text, exc.pos, exc.msg) from None
    except _Rejected as exc:
        raise BadRequest(message=f"Invalid JSON: {exc}") from None
    except RecursionError:  # belt and braces; _check_depth should have caught it
        raise BadRequest(message="Invalid JSON: nesting too deep") from None
    return _revive(reviver, "", value) if reviver is not None else value


# -------------------------------------------------------------------------- urlencoded


def parse_urlencoded(
    text: str,
    *,
    encoding: str = "utf-8",
    parameter_limit: int = 1000,
    extended: bool = False,
    depth: int = 32,
) -> dict[str, Any]:
    """Parse ``application/x-www-form-urlencoded`` with Express's "simple" semantics, or
    ``extended`` ones (qs, as body-parser's ``extended: true``).

    For UTF-8 this *is* ``gateway.http.target.parse_query`` (node's querystring, what
    ``req.query`` uses): ``+`` is a space, bad %-escapes are kept literally and undecodable
    escaped bytes become U+FFFD, repeated keys give a list, ``a[b]`` stays a flat key, empty
    pieces are skipped and a key without ``=`` has the value ``""``. The one difference is the
    parameter limit: a query string silently ignores pieces past it, a body is refused (413, as
    body-parser does). ISO-8859-1 bodies take the same rules with Latin-1 escapes.

    Extended: ``qs.parse`` with body-parser's options (gateway.app.qs): nested keys
    (``a[b][c]=1``), arrays (``a[]=1``, ``a[0]=1``) up to index ``max(100, pieces)``, at most
    ``depth`` bracket groups per key (more is 400 "The input exceeded the depth").

    Args:
        text: the body text.
        encoding: the charset of %-escaped bytes (utf-8 or iso-8859-1).
        parameter_limit: the most ``&``-separated pieces accepted (as body-parser counts them).
        extended: parse nested keys with qs.
        depth: (extended) the most bracket groups in a key (body-parser's default 32).

    Returns:
        A dict of names to a value or a list of values (extended: nested dicts and lists).

    Raises:
        PayloadTooLarge: 413 "too many parameters".
        BadRequest: 400 "The input exceeded the depth" (extended).
    """
    pieces = text.count("&") + 1
    if pieces > parameter_limit:
        raise PayloadTooLarge(message=f"too many parameters (limit {parameter_limit})")
    if not extended:
        return parse_query(text, max_keys=0, encoding=encoding)
    from gateway.app import qs  # on first use: apps with simple forms never load it

    return qs.parse(
        text,
        depth=depth,
        array_limit=max(100, pieces),
        parameter_limit=parameter_limit,
        charset=encoding,
        allow_prototypes=True,
        strict_depth=True,
    )


# ---------------------------------------------------------------------- middleware


def _skip(req: BodyRequest, should_parse: Callable[[Any], bool]) -> bool:
    return req.body_parsed or not has_body(req) or not should_parse(req)


def _json_charset(req: BodyRequest) -> str:
    name = charset(req) or "utf-8"
    if name not in _JSON_CHARSETS:
        raise unsupported_charset(name)
    return name


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
        limit: most decoded body bytes (int or "100kb"); also capped by the request's max body.
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

    async def json_parser(req: BodyRequest, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            cs = _json_charset(req)
            req.body_parsed = True
            data = await collect_body(req, max_bytes, inflate=inflate)
            req.body = parse_json(
                data, charset=cs, strict=strict, reviver=reviver, max_depth=max_depth
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
    extended: bool = False,
    depth: int = 32,
) -> Middleware:
    """Middleware that parses urlencoded form bodies into ``req.body``.

    Args:
        limit: most decoded body bytes.
        type: Content-Types to parse.
        parameter_limit: most fields; more is 413 "too many parameters".
        default_charset: utf-8 or iso-8859-1, used when the Content-Type names none.
        inflate: decode gzip/deflate bodies.
        extended: nested keys with qs (``user[name]=tj`` -> ``{"user": {"name": "tj"}}``), as
            body-parser's ``extended: true``; else the simple parser (see parse_urlencoded).
        depth: (extended) the most bracket groups in a key; more is 400.

    Returns:
        ``async (req, res, next)``, see ``json``.

    Raises:
        ValueError: bad options (at creation). The middleware raises UnsupportedMediaType (415,
        a charset other than utf-8/iso-8859-1), PayloadTooLarge/BodyTooLarge (413),
        BudgetExceeded (503), BadRequest (400, raw bytes invalid in the charset; extended: a
        key deeper than ``depth``).
    """
    max_bytes = parse_limit(limit)
    should_parse = type_checker(type)
    if parameter_limit < 1:
        raise ValueError("option parameter_limit must be a positive number")
    if default_charset not in ("utf-8", "iso-8859-1"):
        raise ValueError("option default_charset must be either utf-8 or iso-8859-1")
    if depth < 0:
        raise ValueError("option depth must be a zero or a positive number")

    async def urlencoded_parser(req: BodyRequest, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            cs = charset(req) or default_charset
            if cs not in ("utf-8", "iso-8859-1"):
                raise unsupported_charset(cs)
            req.body_parsed = True
            data = await collect_body(req, max_bytes, inflate=inflate)
            req.body = parse_urlencoded(
                decode_text(data, cs),
                encoding=cs,
                parameter_limit=parameter_limit,
                extended=extended,
                depth=depth,
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
        text_codec(default_charset)
    except UnsupportedMediaType:
        raise ValueError(f'option default_charset "{default_charset}" is not a charset') from None

    async def text_parser(req: BodyRequest, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            codec = text_codec(charset(req) or default_charset)
            req.body_parsed = True
            data = await collect_body(req, max_bytes, inflate=inflate)
            req.body = decode_text(data, codec)
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

    async def raw_parser(req: BodyRequest, res: Any, next: Next) -> None:
        if not _skip(req, should_parse):
            req.body_parsed = True
            req.body = await collect_body(req, max_bytes, inflate=inflate)
        await next()

    return raw_parser


# -------------------------------------------------------- req.json() / req.text() helpers


async def read_text(req: BodyRequest, limit: int, charset_name: str | None = None) -> str:
    """The body as text: Content-Encoding decoded (bounded), then the charset.

    The request must cache its body (Request.text() switches the cache on first), so a second
    call decodes the same bytes and nothing is charged twice.

    Args:
        req: the request.
        limit: the most decoded bytes.
        charset_name: overrides the Content-Type's charset (default utf-8).

    Returns:
        The text (a leading BOM removed).

    Raises:
        UnsupportedMediaType: 415, unknown charset or encoding.
        BadRequest: 400, bytes invalid in the charset, corrupt encoding.
        BodyTooLarge, BudgetExceeded, BodyError: as ``collect_body``.
    """
    codec = text_codec(charset_name or charset(req) or "utf-8")
    return decode_text(await collect_body(req, limit), codec)


async def read_json(req: BodyRequest, limit: int, *, max_depth: int = 64) -> Any:
    """The body parsed as JSON (any top-level value), with the ``json()`` parser's defences.

    Args:
        req: the request (caching its body, see ``read_text``).
        limit: the most decoded bytes.
        max_depth: deepest nesting accepted.

    Returns:
        The value; ``{}`` for an empty body.

    Raises:
        BadRequest: 400, invalid JSON (the message names line, column and char), too deep,
            numbers too long or out of range.
        UnsupportedMediaType: 415, a charset other than UTF-8/16/32.
        BodyTooLarge, BudgetExceeded, BodyError: as ``collect_body``.
    """
    cs = _json_charset(req)
    return parse_json(await collect_body(req, limit), charset=cs, strict=False, max_depth=max_depth)
