# Request-target parsing (RFC 9112 section 3.2), the Host grammar (RFC 9110 7.2 / RFC 3986 3.2.2)
# and the two small text formats that ride on a request: the query string (node's querystring,
# Express 5's "simple" parser) and the Cookie header (the `cookie` npm package). Also the strict
# percent-decoder that routing uses for params.
# Sans-IO and pure: str/bytes in, values out. Never imports trio; never resolves '..' or touches
# files (routing matches the raw path, as Express does; file-path safety belongs to send_file).
#
# Fragments: '#' is not part of any request-target form (RFC 9112 3.2: a client sends none), but
# Node's HTTP parser accepts one, and Express 5 keeps req.url / req.originalUrl exactly as sent
# while req.path, req.query and routing ignore everything from the '#' (parseurl hands such a URL
# to url.parse). We copy that API rather than reject: `url` as sent, path and query without the
# fragment. Not copied: url.parse also percent-escapes a few characters (| ^ ` { } ' " < > \) in
# req.path when it has to take that slow path (so Express's req.path for /a|b#f is /a%7Cb);
# our path is the target's bytes up to '?' or '#', whatever they are.
# Also kept on purpose: for an absolute-form target Express's req.url is the whole URI; ours is its
# path and what follows (the router strips a mount prefix from url as from path, for every form).
from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

from gateway.errors import RemoteProtocolError

# Every error this module raises is the peer's fault (h11's RemoteProtocolError); the raise
# sites use this short name.
ProtocolError = RemoteProtocolError

__all__ = [
    "split_target",
    "is_valid_host",
    "is_authority_form",
    "percent_decode",
    "parse_query",
    "parse_cookies",
]

# Visible ASCII only (VCHAR, 0x21-0x7e): no controls, no spaces, no DEL, no raw UTF-8.
_BAD_TARGET_BYTE = re.compile(rb"[^\x21-\x7e]")
# absolute-form: scheme "://" authority path-abempty [ "?" query ]; only http(s) is ours.
_ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)")
_HTTP_SCHEMES = frozenset({b"http", b"https"})

# RFC 3986 3.2.2: host = IP-literal / IPv4address / reg-name, then [":" port] with port = *DIGIT.
# An IPv4address is also a reg-name, so one character class covers both; an IP-literal is an
# IPv6 address (checked with ipaddress below: its grammar is too long for a regex worth reading)
# or an IPvFuture. No zone identifiers (RFC 6874 is not part of HTTP's grammar).
_REG_CHARS = rb"A-Za-z0-9\-._~!$&'()*+,;="  # unreserved / sub-delims
_HOST = re.compile(
    rb"(?:(?:[" + _REG_CHARS + rb"]|%[0-9A-Fa-f]{2})*"
    rb"|\[(?:(?P<v6>[0-9A-Fa-f:.]+)|[vV][0-9A-Fa-f]+\.[" + _REG_CHARS + rb":]+)\])"
    rb"(?P<port>:[0-9]*)?"
)
# The bytes of the common Host shape (a name or IPv4 address, maybe a port): checked with one
# translate instead of the regex (half the instructions); '%', '[' and ']' take the regex.
_PLAIN_HOST_BYTES = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:"
)
_NOT_A_TARGET = (
    "request-target must be origin-form (/path), absolute-form "
    "(http://host/path) or * (OPTIONS only)"
)

# A '%' not followed by two hex digits: decodeURIComponent's URIError.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def split_target(target: bytes) -> tuple[str, str, str, str | None]:
    """Split an HTTP/1.1 request-target into url, path, query and authority.

    origin-form (``/p?q``) takes a fast path (one decode, two searches, no regex): it is what
    nearly every request carries. Also accepted: absolute-form (``http://host:port/p?q``,
    http/https only) and asterisk-form (``*``). Which method may use which form (``*`` only with
    OPTIONS, authority-form only with CONNECT) is the caller's check, since it needs the method.
    A ``#fragment`` is kept in ``url`` and left out of path and query, as Express 5 does (see
    the module header). Nothing is decoded or normalised.

    Args:
        target: the request-target bytes from the request line. They are visible ASCII there
            (h11's request-line grammar admits nothing else, and the Sails adapter
            percent-encodes the rest); off the origin-form fast path that is checked again.

    Returns:
        ``(url, path, query, authority)``: ``url`` is the target as sent for origin-form, and
        its path-and-after (``/`` when it has no path) for absolute-form; ``path`` is the raw
        path (``*`` for asterisk-form); ``query`` is the raw query without the ``?`` (``""``
        when there is none); ``authority`` is ``host[:port]`` of an absolute-form target, else
        None.

    Raises:
        ProtocolError: (400) empty target, a byte outside visible ASCII, authority-form or any
            other form, a non-http(s) scheme, an empty or malformed authority, or one carrying
            userinfo (``user@host``, RFC 9110 section 4.2.4).
    """
    if target[:1] == b"/":
        try:
            url = target.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError("request-target contains a byte outside visible ASCII") from None
        h = url.find("#")
        rest = url if h < 0 else url[:h]
        q = rest.find("?")
        if q < 0:
            return url, rest, "", None
        return url, rest[:q], rest[q + 1 :], None
    if target == b"*":
        return "*", "*", "", None
    if not target:
        raise ProtocolError("empty request-target")
    if _BAD_TARGET_BYTE.search(target) is not None:
        raise ProtocolError("request-target contains a byte outside visible ASCII")
    m = _ABSOLUTE_FORM.fullmatch(target)
    if m is None:
        if is_authority_form(target):
            raise ProtocolError("authority-form request-target (host:port) is only for CONNECT")
        raise ProtocolError(_NOT_A_TARGET)
    scheme, authority, after = m.groups()
    if scheme.lower() not in _HTTP_SCHEMES:
        raise ProtocolError(f"unsupported scheme in request-target: {scheme.decode()!r}")
    if not authority:
        raise ProtocolError("absolute-form request-target has an empty authority")
    if b"@" in authority:
        raise ProtocolError("request-target authority must not carry userinfo")
    if not is_valid_host(authority) or authority[:1] == b":":
        raise ProtocolError("malformed authority in request-target")
    url = after.decode("ascii")
    if url[:1] != "/":
        url = "/" + url  # http://host?q is /?q: an empty path is "/" (RFC 9112 3.2.1)
    h = url.find("#")
    rest = url if h < 0 else url[:h]
    path, _, query = rest.partition("?")
    return url, path, query, authority.decode("ascii")


def is_valid_host(value: bytes) -> bool:
    """True when ``value`` is ``uri-host [":" port]`` (RFC 9110 7.2, RFC 3986 3.2.2).

    The grammar of a Host field value and of an absolute-form target's authority (without
    userinfo). An empty value is valid (RFC 9110 7.2 lets a client send one); so is an empty
    port (``host:``), as RFC 3986 has it.

    Args:
        value: the value without surrounding whitespace.

    Returns:
        Whether it matches.
    """
    if not value.translate(None, _PLAIN_HOST_BYTES):
        _, _, port = value.partition(b":")
        return not port or port.isdigit()  # isdigit: ASCII digits only, for bytes
    return _match_host(value) is not None


def is_authority_form(target: bytes) -> bool:
    """True when ``target`` is authority-form, ``uri-host ":" port`` (RFC 9112 3.2.3).

    Args:
        target: the request-target bytes.

    Returns:
        Whether it is a non-empty host followed by a colon and at least one port digit.
    """
    m = _match_host(target)
    if m is None:
        return False
    colon = m.start("port")
    return colon > 0 and m.end("port") > colon + 1


def _match_host(value: bytes) -> re.Match[bytes] | None:
    m = _HOST.fullmatch(value)
    if m is not None:
        v6 = m.group("v6")
        if v6 is not None:
            try:
                ipaddress.IPv6Address(v6.decode("ascii"))
            except ValueError:
                return None
    return m


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


def parse_query(
    qs: str, max_keys: int = 1000, encoding: str = "utf-8"
) -> dict[str, str | list[str]]:
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
