# Content negotiation: media-type parsing, Express's req.is() (type-is), req.accepts()
# (accepts + negotiator), req.xhr, and Sails' req.wantsJSON heuristic (PROTOCOLS.md section 2).
# Pure functions over header strings: no request objects, no I/O. Accept headers repeat a lot
# (every browser sends the same few), so their parse is cached in a small bounded LRU.
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Final, Literal, NamedTuple

__all__ = [
    "parse_media_type",
    "charset_of",
    "type_is",
    "accepts",
    "accepts_list",
    "wants_json",
    "is_xhr",
]

# RFC 9110 token; type/subtype as the `content-type` npm package checks them.
_TOKEN: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_PARAM = re.compile(
    rf";[ \t]*({_TOKEN})[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|{_TOKEN})[ \t]*", re.DOTALL
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# negotiator's simpleMediaTypeRegExp (Accept entries and offered types).
_ACCEPT_ENTRY = re.compile(r"\s*([^\s/;]+)/([^;\s]+)\s*(?:;(.*))?", re.DOTALL)
# The prefix JavaScript's parseFloat() reads.
_JS_FLOAT = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity)")

# Extension names -> media types, as mime-types 3 (Express 5) answers for the names apps use.
_EXTENSIONS: Final[dict[str, str]] = {
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
    "text": "text/plain",
    "txt": "text/plain",
    "xml": "application/xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "bin": "application/octet-stream",
    "js": "text/javascript",
    "mjs": "text/javascript",
    "css": "text/css",
    "csv": "text/csv",
    "pdf": "application/pdf",
}
# type-is only (not accepts): names that stand for a family rather than a file extension.
_TYPE_IS_ALIASES: Final[dict[str, str]] = {
    "urlencoded": "application/x-www-form-urlencoded",
    "form": "application/x-www-form-urlencoded",  # ours: a readable alias for the same
    "multipart": "multipart/*",
}


def _ext_to_mime(name: str) -> str | None:
    if "/" in name:
        return name
    # mime-types' lookup() takes "json", ".json" or "file.json", in any case.
    ext = name.rpartition(".")[2].lower()
    return _EXTENSIONS.get(ext)


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Parse a Content-Type-style value into its type and parameters.

    Args:
        value: e.g. ``'Text/HTML; Charset="UTF-8"'``.

    Returns:
        ``(type/subtype lower-cased, params)``: parameter names lower-cased, quoted values
        unquoted (``\\x`` escapes undone), values otherwise as sent. Parameters that do not parse
        are skipped rather than failing the whole value.

    Raises:
        ValueError: the part before the first ``;`` is not ``token/token``.
    """
    semi = value.find(";")
    media = (value if semi < 0 else value[:semi]).strip(" \t")
    if _MEDIA_TYPE.fullmatch(media) is None:
        raise ValueError(f"invalid media type: {media!r}")
    params: dict[str, str] = {}
    if semi >= 0:
        for m in _PARAM.finditer(value, semi):
            raw = m.group(2)
            if raw[0] == '"':
                raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
            params[m.group(1).lower()] = raw
    return media.lower(), params


def charset_of(content_type: str | None) -> str | None:
    """The lower-cased ``charset`` parameter of a Content-Type, as body-parser reads it.

    Args:
        content_type: the Content-Type header value, or None.

    Returns:
        The charset, or None when there is no header, no charset, or the type does not parse.
    """
    if not content_type or "charset" not in content_type.lower():
        return None
    try:
        _, params = parse_media_type(content_type)
    except ValueError:
        return None
    charset = params.get("charset")
    return charset.lower() if charset else None


def _mime_match(expected: str, actual: str) -> bool:
    # type-is mimeMatch(): `*` wildcards and `*+suffix` subtypes; `actual` is already lower-case.
    exp_type, _, exp_sub = expected.partition("/")
    act_type, _, act_sub = actual.partition("/")
    if not exp_sub or "/" in exp_sub:
        return False
    if exp_type != "*" and exp_type != act_type:
        return False
    if exp_sub.startswith("*+"):
        return len(exp_sub) <= len(act_sub) + 1 and act_sub.endswith(exp_sub[1:])
    return exp_sub == "*" or exp_sub == act_sub


def type_is(
    content_type: str | None, *types: str, has_body: bool | None = None
) -> str | None | Literal[False]:
    """Express's ``req.is()`` (type-is): which of ``types`` the request body's Content-Type is.

    Each of ``types`` may be an extension name (``"json"``, ``"html"``, ``"png"``), ``"urlencoded"``,
    ``"form"`` or ``"multipart"``, a full type (``"application/json"``), a wildcard
    (``"text/*"``, ``"*/*"``) or a suffix pattern (``"+json"``, ``"application/*+json"``).

    Args:
        content_type: the Content-Type header value, or None.
        *types: the types to test, in order; none means "just give me the type".
        has_body: whether the request has a body (Transfer-Encoding or a Content-Length). False
            gives None, as Express does; None (unknown) treats a missing Content-Type as no body;
            True makes a missing Content-Type a non-match (False), as Express does.

    Returns:
        None when there is no body (or, with ``has_body=None``, no Content-Type); False when the
        Content-Type is invalid or matches none of ``types``; else the first matching entry of
        ``types`` as given (``"json"``), except that a wildcard or suffix entry gives the actual
        lower-cased media type (``"text/*"`` -> ``"text/html"``), as type-is does. With no
        ``types``, the actual media type.
    """
    if has_body is False or (not content_type and has_body is None):
        return None
    if not content_type:
        return False
    semi = content_type.find(";")
    actual = (content_type if semi < 0 else content_type[:semi]).strip(" \t").lower()
    if _MEDIA_TYPE.fullmatch(actual) is None:
        return False
    if not types:
        return actual
    for given in types:
        lowered = given.lower()
        expected: str | None
        if lowered in _TYPE_IS_ALIASES:
            expected = _TYPE_IS_ALIASES[lowered]
        elif lowered.startswith("+"):
            expected = "*/*" + lowered
        else:
            expected = _ext_to_mime(lowered)
        if expected is not None and _mime_match(expected, actual):
            return actual if (given.startswith("+") or "*" in given) else given
    return False


class _Spec(NamedTuple):
    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    q: float
    i: int


def _js_parse_float(text: str | None) -> float:
    m = _JS_FLOAT.match(text or "")
    if m is None:
        return 0.0  # JS gives NaN, which is never acceptable; 0 behaves the same here
    return float(m.group(1).replace("Infinity", "inf"))


def _split_quoted(text: str, sep: str) -> list[str]:
    # negotiator's splitMediaTypes / splitParameters: split on `sep` outside double quotes.
    parts = text.split(sep)
    if '"' not in text:
        return parts
    out: list[str] = [parts[0]]
    for part in parts[1:]:
        if out[-1].count('"') % 2 == 0:
            out.append(part)
        else:
            out[-1] += sep + part
    return out


def _parse_spec(text: str, i: int) -> _Spec | None:
    m = _ACCEPT_ENTRY.fullmatch(text)
    if m is None:
        return None
    q = 1.0
    params: list[tuple[str, str]] = []
    if m.group(3):
        for pair in _split_quoted(m.group(3), ";"):
            key, eq, val = pair.strip().partition("=")
            key = key.lower()
            if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                val = val[1:-1]
            if key == "q":
                q = _js_parse_float(val if eq else None)
                break  # what follows q are accept-extensions, not media-type parameters
            params.append((key, val))
    return _Spec(m.group(1), m.group(2), tuple(params), q, i)


@lru_cache(maxsize=64)
def _parse_accept(header: str) -> tuple[_Spec, ...]:
    specs: list[_Spec] = []
    for i, entry in enumerate(_split_quoted(header, ",")):
        spec = _parse_spec(entry.strip(), i)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def _priority(offer: _Spec, accepted: tuple[_Spec, ...]) -> tuple[float, int, int]:
    # negotiator getMediaTypePriority(): the most specific matching entry, then the highest q,
    # then the later entry. Returns (q, specificity, entry index); q == 0 means "not acceptable".
    best_q, best_s, best_o = 0.0, 0, -1
    otype, osub = offer.type.lower(), offer.subtype.lower()
    oparams = dict(offer.params)
    for spec in accepted:
        s = 0
        if spec.type.lower() == otype:
            s |= 4
        elif spec.type != "*":
            continue
        if spec.subtype.lower() == osub:
            s |= 2
        elif spec.subtype != "*":
            continue
        if spec.params:
            if all(v == "*" or v.lower() == oparams.get(k, "").lower() for k, v in spec.params):
                s |= 1
            else:
                continue
        diff = (best_s - s) or (best_q - spec.q) or (best_o - spec.i)
        if diff < 0:
            best_q, best_s, best_o = spec.q, s, spec.i
    return best_q, best_s, best_o


def accepts(accept_header: str | None, *types: str) -> str | None:
    """Express's ``req.accepts(types)``: the best of ``types`` for an Accept header.

    Preference is by q-value, then by how specifically the Accept header names the type
    (``text/html`` over ``text/*`` over ``*/*``), then by the Accept header's order, then by the
    order of ``types``.

    Args:
        accept_header: the Accept header value; None or empty means "anything".
        *types: offered types: extension names (``"json"``, ``"html"``) or full media types.

    Returns:
        The winning entry of ``types`` exactly as given, ``types[0]`` when there is no Accept
        header, or None when nothing offered is acceptable (Express returns false).

    Raises:
        TypeError: no types given (use :func:`accepts_list` for the client's own list).
    """
    if not types:
        raise TypeError("accepts() needs at least one type; use accepts_list() for the header")
    if not accept_header:
        return types[0]
    return _best_offer(accept_header, types)


@lru_cache(maxsize=128)
def _best_offer(accept_header: str, types: tuple[str, ...]) -> str | None:
    # Cached whole: the same few Accept headers meet the same few offers over and over.
    accepted = _parse_accept(accept_header)
    best: tuple[float, int, int, int] | None = None
    winner: str | None = None
    for index, given in enumerate(types):
        mime = _ext_to_mime(given)
        if mime is None:
            continue
        offer = _parse_spec(mime, index)
        if offer is None:
            continue
        q, s, o = _priority(offer, accepted)
        if q <= 0 or math.isnan(q):
            continue
        # compareSpecs: higher q, higher specificity, earlier Accept entry, earlier offer.
        key = (-q, -s, o, index)
        if best is None or key < best:
            best, winner = key, given
    return winner


def accepts_list(accept_header: str | None) -> list[str]:
    """The client's acceptable media types, most preferred first (``req.accepts()`` with no args).

    Args:
        accept_header: the Accept header value; None means ``*/*`` (RFC 9110).

    Returns:
        ``type/subtype`` strings as sent, q > 0 only, ordered by q then by header order.
    """
    if accept_header is None:
        return ["*/*"]
    specs = [s for s in _parse_accept(accept_header) if s.q > 0]
    specs.sort(key=lambda s: (-s.q, s.i))
    return [f"{s.type}/{s.subtype}" for s in specs]


def is_xhr(x_requested_with: str | None) -> bool:
    """Express's ``req.xhr``.

    Args:
        x_requested_with: the X-Requested-With header value, or None.

    Returns:
        True when it equals ``XMLHttpRequest`` case-insensitively.
    """
    return x_requested_with is not None and x_requested_with.lower() == "xmlhttprequest"


def wants_json(
    *,
    xhr: bool,
    is_socket: bool,
    accept: str | None,
    content_type: str | None,
    route_wants_json: bool = False,
) -> bool:
    """Sails' ``req.wantsJSON`` (lib/hooks/request/qualifiers.js), checked in this order.

    1. ``xhr`` (see :func:`is_xhr`);
    2. ``is_socket`` (a virtual request from a WebSocket);
    3. the Accept header does not contain the substring ``html``: a case-sensitive test, as
       Sails' ``accept.indexOf('html') !== -1`` is, and a missing or empty Accept counts as
       "no html";
    4. the Content-Type is JSON as ``req.is('json')`` sees it (exactly ``application/json``,
       parameters allowed, ``+json`` types not) and an Accept header is present;
    5. the route's ``wantsJSON`` option.

    Args:
        xhr: whether the request is an XHR (``req.xhr``).
        is_socket: whether it is a Sails virtual request over a socket.
        accept: the Accept header value, or None.
        content_type: the Content-Type header value, or None; pass None when the request has no
            body (``req.is()`` is null without one, so step 4 cannot hold).
        route_wants_json: the route's ``wantsJSON`` option.

    Returns:
        Whether the client should get JSON rather than HTML.
    """
    if xhr or is_socket:
        return True
    if not accept or "html" not in accept:
        return True
    if content_type and type_is(content_type, "json"):
        return True  # Accept is present here: step 3 returned otherwise
    return route_wants_json
