# Request-target parsing (RFC 9112 section 3.2) and the two small text formats that ride on a
# request: the query string (node's querystring, Express 5's "simple" parser) and the Cookie
# header (the `cookie` npm package). Also the strict percent-decoder that routing uses for params.
# Sans-IO and pure: str/bytes in, values out. Never imports trio; never resolves '..' or touches
# files (routing matches the raw path, as Express does; file-path safety belongs to send_file).
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.errors import RemoteProtocolError

# Every error this module raises is the peer's fault (h11's RemoteProtocolError); the raise
# sites use this short name.
ProtocolError = RemoteProtocolError

__all__ = [
    "Target",
    "parse_target",
    "split_target",
    "percent_decode",
    "parse_query",
    "parse_cookies",
]

# Visible ASCII only (VCHAR, 0x21-0x7e): no controls, no spaces, no DEL, no raw UTF-8.
_BAD_TARGET_BYTE = re.compile(rb"[^\x21-\x7e]")
# absolute-form: scheme "://" authority path-abempty [ "?" query ]; only http(s) is ours.
_ABSOLUTE_FORM = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)")
_HTTP_SCHEMES = frozenset({"http", "https"})

# A '%' not followed by two hex digits: decodeURIComponent's URIError.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed request-target.

    Attributes:
        path: the raw (still percent-encoded) path: ``/a/b`` for origin- and absolute-form (``/``
            when an absolute URI has no path), ``*`` for asterisk-form.
        query: the raw query string without the ``?`` (``""`` when there is none).
        authority: ``host[:port]`` from an absolute-form target, else None.
        raw: the whole request-target as received (ASCII).
    """

    path: str
    query: str
    authority: str | None
    raw: str


def parse_target(target: bytes) -> Target:
    """Split an HTTP/1.1 request-target into path, query and authority.

    Accepts origin-form (``/p?q``), absolute-form (``http://host:port/p?q``, http/https only) and
    asterisk-form (``*``; that it only goes with OPTIONS is the caller's check). A ``#fragment``
    is not part of a request-target; if a client sends one anyway it is dropped, as Node's URL
    parsing (and so Express's ``req.path``) does. Nothing is decoded or normalised.

    Args:
        target: the request-target bytes from the request line.

    Returns:
        A :class:`Target`.

    Raises:
        ProtocolError: (400) empty target, a byte outside visible ASCII (controls, space, DEL,
            >= 0x80), authority-form or any other form, a non-http(s) scheme, an empty authority
            or one carrying userinfo (``user@host``, RFC 9110 section 4.2.4).
    """
    if not target:
        raise ProtocolError("empty request-target", 400)
    if _BAD_TARGET_BYTE.search(target) is not None:
        raise ProtocolError("request-target contains a byte outside visible ASCII", 400)
    raw = target.decode("ascii")
    first = raw[0]
    if first == "/":
        path, query = _split_path_query(raw)
        return Target(path, query, None, raw)
    if raw == "*":
        return Target("*", "", None, raw)
    m = _ABSOLUTE_FORM.fullmatch(raw)
    if m is None:
        raise ProtocolError(
            "request-target must be origin-form (/path), absolute-form (http://host/path) or *",
            400,
        )
    scheme, authority, rest = m.groups()
    if scheme.lower() not in _HTTP_SCHEMES:
        raise ProtocolError(f"unsupported scheme in request-target: {scheme!r}", 400)
    if not authority:
        raise ProtocolError("absolute-form request-target has an empty authority", 400)
    if "@" in authority:
        raise ProtocolError("request-target authority must not carry userinfo", 400)
    path, query = _split_path_query(rest)
    return Target(path or "/", query, authority, raw)


def split_target(target: bytes) -> tuple[str, str]:
    """Shorthand for ``parse_target(target)``'s ``(path, query)``.

    Args:
        target: the request-target bytes from the request line.

    Returns:
        ``(raw path, raw query)``.

    Raises:
        ProtocolError: as :func:`parse_target`.
    """
    t = parse_target(target)
    return t.path, t.query


def _split_path_query(s: str) -> tuple[str, str]:
    hash_at = s.find("#")
    if hash_at >= 0:
        s = s[:hash_at]
    path, _, query = s.partition("?")
    return path, query


def percent_decode(s: str) -> str:
    """Strict percent-decoding with UTF-8, like JavaScript's ``decodeURIComponent``.

    Every ``%XX`` is decoded (``%2F`` too: this is for values, not whole paths); ``+`` stays a
    plus; characters that are not escapes pass through unchanged.

    Args:
        s: the encoded text.

    Returns:
        The decoded text (``s`` itself when it holds no ``%``).

    Raises:
        ValueError: a ``%`` not followed by two hex digits, or escapes that are not valid UTF-8
            (truncated or overlong sequences, encoded surrogates).
    """
    if "%" not in s:
        return s
    bad = _BAD_ESCAPE.search(s)
    if bad is not None:
        raise ValueError(f"malformed percent-escape at index {bad.start()}")
    return _ESCAPE_RUN.sub(_decode_run, s)


def _decode_run(m: re.Match[str]) -> str:
    # UnicodeDecodeError is a ValueError, which is what percent_decode promises.
    return bytes.fromhex(m.group().replace("%", "")).decode("utf-8")


def _qs_unescape(s: str, encoding: str = "utf-8") -> str:
    # node's querystring.unescape: decodeURIComponent, else decode what is valid and keep the
    # rest (a bad '%' stays literal; invalid UTF-8 becomes U+FFFD). unquote does exactly that.
    if "%" not in s:
        return s
    return unquote(s, encoding, "replace")


def parse_query(qs: str, max_keys: int = 1000,
                encoding: str = "utf-8") -> dict[str, str | list[str]]:
    """Parse a query string like node's ``querystring.parse`` (Express 5's "simple" parser).

    ``&`` separates pairs and the first ``=`` splits key from value; ``+`` is a space; keys and
    values are percent-decoded leniently (``%zz`` stays ``%zz``, invalid UTF-8 becomes U+FFFD);
    a key without ``=`` gets ``""``; empty pieces (``&&``) are skipped; a repeated key collects
    its values into a list in order; brackets mean nothing (``a[b]=1`` is the key ``"a[b]"``).

    Args:
        qs: the raw query string, without the ``?``.
        max_keys: how many ``&``-separated pieces to look at (node's ``maxKeys``, default 1000;
            as in node, skipped empty pieces count too). Later pieces are ignored, not an error.
            ``0`` or less means no limit.
        encoding: the charset of %-escaped bytes (a urlencoded body may be ISO-8859-1).

    Returns:
        A dict from key to a string, or to a list of strings for a repeated key.
    """
    result: dict[str, str | list[str]] = {}
    if not qs:
        return result
    pieces = qs.split("&", max_keys) if max_keys > 0 else qs.split("&")
    if max_keys > 0 and len(pieces) > max_keys:
        del pieces[max_keys:]
    for piece in pieces:
        if not piece:
            continue
        key, _, value = piece.partition("=")
        if "+" in key:
            key = key.replace("+", " ")
        if "%" in key:
            key = _qs_unescape(key, encoding)
        if value:
            if "+" in value:
                value = value.replace("+", " ")
            if "%" in value:
                value = _qs_unescape(value, encoding)
        seen = result.get(key)
        if seen is None:
            result[key] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            result[key] = [seen, value]
    return result


def parse_cookies(header: str | None) -> dict[str, str]:
    """Parse a Cookie header like the ``cookie`` npm package (0.7, as Express 4/5 ship it).

    Pairs are ``;``-separated and split at their first ``=``; names and values are trimmed of
    spaces and tabs; a value wrapped in double quotes is unwrapped; values are percent-decoded
    when that succeeds and kept as sent when it does not; the first occurrence of a name wins;
    pieces without ``=`` are skipped.

    Args:
        header: the Cookie header value, or None when absent.

    Returns:
        A dict from cookie name to value (empty when there is no header).
    """
    cookies: dict[str, str] = {}
    if not header or len(header) < 2:
        return cookies
    for piece in header.split(";"):
        eq = piece.find("=")
        if eq < 0:
            continue
        name = piece[:eq].strip(" \t")
        if name in cookies:
            continue
        value = piece[eq + 1 :].strip(" \t")
        if len(value) >= 1 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if "%" in value:
            try:
                value = percent_decode(value)
            except ValueError:
                pass
        cookies[name] = value
    return cookies
