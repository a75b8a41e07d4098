# Content negotiation: media-type parsing, Express's req.is() (type-is 2.1), req.accepts*()
# (accepts 2 + negotiator 1.1), req.xhr, and Sails' req.wantsJSON heuristic (PROTOCOLS.md
# section 2). Pure functions over header strings: no request objects, no I/O. Accept headers
# repeat a lot (every browser sends the same few), so their parse is cached in a small LRU.
from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final, Literal, NamedTuple

__all__ = [
    "parse_media_type",
    "charset_of",
    "type_is",
    "accepts",
    "accepts_list",
    "accepts_charsets",
    "accepts_encodings",
    "accepts_languages",
    "has_body",
    "split_content_type",
    "wants_json",
    "is_xhr",
]

# RFC 9110 token; type/subtype as the `content-type` npm package checks them.
_TOKEN: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
# media-typer 1.1 test(), which type-is 2.1 applies to a request's (lower-cased) Content-Type.
_TYPE_IS_VALID = re.compile(r"[a-z0-9][a-z0-9!#$&^_-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_PARAM = re.compile(
    rf";[ \t]*({_TOKEN})[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|{_TOKEN})[ \t]*", re.DOTALL
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# The prefix JavaScript's parseFloat() reads.
_JS_FLOAT = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity)")
# What JavaScript's Number() accepts (after trimming): type-is's hasBody asks !isNaN(length).
_JS_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)|0[xX][0-9a-fA-F]+|0[oO][0-7]+"
    r"|0[bB][01]+"
)
_NAN = math.nan

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
# type-is only (not accepts): names that stand for a family rather than a file extension
# (matched as written, lower case, as type-is's normalize() does).
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

    Each of ``types`` may be an extension name (``"json"``, ``"html"``, ``"png"``, any case),
    ``"urlencoded"``, ``"form"`` (ours) or ``"multipart"``, a full type (``"application/json"``),
    a wildcard (``"text/*"``, ``"*/*"``) or a suffix pattern (``"+json"``,
    ``"application/*+json"``). Full types and patterns are compared with the lower-cased
    Content-Type as written, so ``"TEXT/HTML"`` matches nothing, as in type-is 2.1; a
    Content-Type must pass media-typer's test (no ``*``, a letter or digit first).

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
    if _TYPE_IS_VALID.fullmatch(actual) is None:
        return False
    if not types:
        return actual
    for given in types:
        expected: str | None
        if given in _TYPE_IS_ALIASES:
            expected = _TYPE_IS_ALIASES[given]
        elif given.startswith("+"):
            expected = "*/*" + given
        else:
            expected = _ext_to_mime(given)
        if expected is not None and _mime_match(expected, actual):
            return actual if (given.startswith("+") or "*" in given) else given
    return False


def has_body(transfer_encoding: str | None, content_length: str | None) -> bool:
    """type-is's ``hasBody``: whether a request has a body, judged from its head alone.

    A Transfer-Encoding header, or a Content-Length that JavaScript's ``Number()`` reads as a
    number, means a body, ``Content-Length: 0`` included (Express 5: ``req.is('json')`` is
    ``'json'`` for an empty JSON POST).

    Args:
        transfer_encoding: the Transfer-Encoding header value, or None.
        content_length: the Content-Length header value, or None.

    Returns:
        Whether ``req.is()`` may look at the Content-Type.
    """
    if transfer_encoding is not None:
        return True
    if content_length is None:
        return False
    if content_length.isdigit():
        return True  # what HTTP/1.1 allows, checked by the parser: the usual case
    text = content_length.strip(" \t\n\r\v\f")
    return not text or _JS_NUMBER.fullmatch(text) is not None  # Number("") is 0


# -- Accept-style headers: negotiator 1.1 (lib/accept.js over content-type 2.1's parse) --------


def _skip_ows(text: str, index: int, end: int) -> int:
    while index < end and text[index] in " \t":
        index += 1
    return index


def _trailing_ows(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in " \t":
        end -= 1
    return end


def _skip_value(text: str, index: int, end: int, stop: str) -> int:
    while index < end:
        c = text[index]
        if c == ";" or c == stop:
            break
        index += 1
    return index


def _parse_params(text: str, index: int, stop: str) -> tuple[dict[str, str], int]:
    # content-type 2.1 parseParameters(): names lower-cased, the first of a repeated name wins,
    # quoted-pairs undone, a name without "=" skipped; stops at `stop` (a comma in an Accept
    # header, "" for one media type). Returns the parameters and where it stopped.
    params: dict[str, str] = {}
    end = len(text)
    while index < end:
        if text[index] == stop:
            break
        index = _skip_ows(text, index + 1, end)  # over the ";"
        key_start = index
        while index < end:
            c = text[index]
            if c == stop:
                return params, index
            if c == ";":
                break
            if c == "=":
                key = text[key_start : _trailing_ows(text, key_start, index)].lower()
                index = _skip_ows(text, index + 1, end)
                if index < end and text[index] == '"':
                    index += 1
                    chars: list[str] = []
                    while index < end:
                        c = text[index]
                        index += 1
                        if c == '"':
                            index = _skip_value(text, index, end, stop)
                            params.setdefault(key, "".join(chars))
                            break
                        if c == "\\" and index < end:
                            chars.append(text[index])
                            index += 1
                            continue
                        chars.append(c)
                    break
                value_start = index
                index = _skip_value(text, index, end, stop)
                if key not in params:
                    params[key] = text[value_start : _trailing_ows(text, value_start, index)]
                break
            index += 1
    return params, index


def split_content_type(value: str) -> tuple[str, dict[str, str]]:
    """content-type 2.1's lenient ``parse()``: the type and the parameters, never an error.

    Args:
        value: a Content-Type value.

    Returns:
        ``(type, params)``: the text before the first ``;``, trimmed and lower-cased (not
        checked: it may not be ``type/subtype``), and the parameters (names lower-cased, the
        first of a repeated name wins, quoted values unquoted).
    """
    end = len(value)
    start = _skip_ows(value, 0, end)
    stop = _skip_value(value, start, end, "")
    params, _ = _parse_params(value, stop, "")
    return value[start : _trailing_ows(value, start, stop)].lower(), params


@lru_cache(maxsize=64)
def _parse_accept_entries(header: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    # negotiator 1.1 parseAccept(): (value as sent, parameters) per comma-separated entry,
    # empty entries included (they keep their index, which breaks ties).
    entries: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    end = len(header)
    index = 0
    while index < end:
        start = _skip_ows(header, index, end)
        stop = _skip_value(header, start, end, ",")
        value = header[start : _trailing_ows(header, start, stop)]
        params, index = _parse_params(header, stop, ",")
        entries.append((value, tuple(params.items())))
        index += 1
    return tuple(entries)


def _quality(params: dict[str, str]) -> float:
    # negotiator: `params.q ? parseFloat(params.q) : 1`, so an empty q counts as 1
    q = params.pop("q", None)
    return _js_parse_float(q) if q else 1.0


def _js_truthy(x: float) -> bool:
    return x != 0 and not math.isnan(x)


def _better(best: tuple[int, float, int], s: int, q: float, o: int) -> bool:
    # negotiator's `(priority.s - spec.s || priority.q - spec.q || priority.o - spec.o) < 0`:
    # a NaN or zero difference falls through to the next one, as JavaScript's || does.
    for diff in (best[0] - s, best[1] - q, best[2] - o):
        if _js_truthy(diff):
            return diff < 0
    return False  # the last difference was NaN or zero: (NaN || 0) < 0 is false


class _Spec(NamedTuple):
    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    q: float
    i: int


def _js_parse_float(text: str | None) -> float:
    m = _JS_FLOAT.match(text or "")
    if m is None:
        return _NAN  # never acceptable (NaN > 0 is false), but it can still win a tie
    return float(m.group(1).replace("Infinity", "inf"))


def _media_spec(value: str, params: tuple[tuple[str, str], ...], i: int) -> _Spec | None:
    # negotiator formatMediaType(): the type as sent, split at its first "/"
    slash = value.find("/")
    if slash < 0:
        return None
    p = dict(params)
    q = _quality(p)
    return _Spec(value[:slash], value[slash + 1 :], tuple(p.items()), q, i)


def _parse_offer(offer: str) -> _Spec | None:
    # an offered type goes through content-type's parse (type lower-cased, no comma stop)
    start = _skip_ows(offer, 0, len(offer))
    stop = _skip_value(offer, start, len(offer), "")
    value = offer[start : _trailing_ows(offer, start, stop)].lower()
    params, _ = _parse_params(offer, stop, "")
    return _media_spec(value, tuple(params.items()), 0)


@lru_cache(maxsize=64)
def _parse_accept(header: str) -> tuple[_Spec, ...]:
    specs: list[_Spec] = []
    for i, (value, params) in enumerate(_parse_accept_entries(header)):
        spec = _media_spec(value, params, i)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def _priority(offer: _Spec, accepted: tuple[_Spec, ...]) -> tuple[float, int, int]:
    # negotiator getMediaTypePriority(): the most specific matching entry, then the highest q,
    # then the later entry. Returns (q, specificity, entry index); q > 0 means "acceptable".
    best = (0, 0.0, -1)
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
        if _better(best, s, spec.q, spec.i):
            best = (s, spec.q, spec.i)
    return best[1], best[0], best[2]


def accepts(accept_header: str | None, *types: str) -> str | Literal[False]:
    """Express's ``req.accepts(types)``: the best of ``types`` for an Accept header.

    Preference is by q-value, then by how specifically the Accept header names the type
    (``text/html`` over ``text/*`` over ``*/*``), then by the Accept header's order, then by the
    order of ``types``. The header is read as negotiator 1.1 (Express 5.3) reads it: every
    parameter of an entry but ``q`` must match the offer, those after ``q`` included.

    Args:
        accept_header: the Accept header value; None or empty means "anything".
        *types: offered types: extension names (``"json"``, ``"html"``) or full media types.

    Returns:
        The winning entry of ``types`` exactly as given, ``types[0]`` when there is no Accept
        header, or False when nothing offered is acceptable (as Express returns false).

    Raises:
        TypeError: no types given (use :func:`accepts_list` for the client's own list).
    """
    if not types:
        raise TypeError("accepts() needs at least one type; use accepts_list() for the header")
    if not accept_header:
        return types[0]
    winner = _best_offer(accept_header, types)
    return False if winner is None else winner


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
        offer = _parse_offer(mime)
        if offer is None:
            continue
        q, s, o = _priority(offer, accepted)
        if not q > 0:  # NaN included
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


class _Token(NamedTuple):
    value: str  # as sent
    q: float
    i: int


def _parse_tokens(header: str) -> list[_Token]:
    # negotiator formatCharset/formatEncoding/formatLanguage: empty entries dropped
    out: list[_Token] = []
    for i, (value, params) in enumerate(_parse_accept_entries(header)):
        if value:
            out.append(_Token(value, _quality(dict(params)), i))
    return out


def _negotiate_tokens(
    accepted: list[_Token], offers: tuple[str, ...], specificity: Callable[[str, str], int]
) -> str | list[str] | Literal[False]:
    # negotiator preferredCharsets/Encodings/Languages: with no offers, every acceptable entry
    # as sent, by q then header order; else the best offer, or False (as Express).
    if not offers:
        ranked = sorted((t for t in accepted if t.q > 0), key=lambda t: (-t.q, t.i))
        return [t.value for t in ranked]
    best: tuple[float, int, int, int] | None = None
    winner: str | None = None
    for index, offer in enumerate(offers):
        prio = (0, 0.0, -1)
        for spec in accepted:
            s = specificity(offer, spec.value)
            if s >= 0 and _better(prio, s, spec.q, spec.i):
                prio = (s, spec.q, spec.i)
        if not prio[1] > 0:
            continue
        key = (-prio[1], -prio[0], prio[2], index)
        if best is None or key < best:
            best, winner = key, offer
    return False if winner is None else winner


def _token_specificity(offer: str, spec: str) -> int:
    # charset and encoding specify(): the same name (any case) 1, "*" 0, else no match (-1)
    if spec.lower() == offer.lower():
        return 1
    return 0 if spec == "*" else -1


def _language_specificity(offer: str, spec: str) -> int:
    # language specify(): the full tag 4, the entry's prefix is the offer 2 (Accept "en-US",
    # offer "en"), the offer's prefix is the entry 1 (Accept "en", offer "en-GB"), "*" 0.
    offer = offer.strip(" \t").split(";", 1)[0].strip(" \t").lower()
    if not offer:
        return -1
    full = spec.lower()
    if full == offer:
        return 4
    if full.split("-", 1)[0] == offer:
        return 2
    if full == offer.split("-", 1)[0]:
        return 1
    return 0 if spec == "*" else -1


def accepts_charsets(header: str | None, *charsets: str) -> str | list[str] | Literal[False]:
    """Express's ``req.acceptsCharsets()`` for an Accept-Charset header.

    Args:
        header: the Accept-Charset value; None means ``*`` (anything).
        *charsets: the charsets the server can send, in its order of preference.

    Returns:
        With no ``charsets``: the client's acceptable charsets, most preferred first. Else the
        best of ``charsets`` as given, or False when none is acceptable (as Express).
    """
    return _negotiate_tokens(
        _parse_tokens("*" if header is None else header), charsets, _token_specificity
    )


def accepts_encodings(header: str | None, *encodings: str) -> str | list[str] | Literal[False]:
    """Express's ``req.acceptsEncodings()`` for an Accept-Encoding header.

    ``identity`` is acceptable unless the header excludes it (``identity;q=0`` or ``*;q=0``):
    when the header does not name it (nor ``*``) it is added with the lowest q of the header.

    Args:
        header: the Accept-Encoding value; None or empty means ``identity`` only.
        *encodings: the codings the server can apply, in its order of preference.

    Returns:
        With no ``encodings``: the acceptable codings, most preferred first. Else the best of
        ``encodings`` as given, or False when none is acceptable (as Express).
    """
    tokens = _parse_tokens(header or "")
    if not any(_token_specificity("identity", t.value) >= 0 for t in tokens):
        # negotiator: `minQuality = Math.min(minQuality, encoding.q || 1)`, so q=0 and NaN
        # entries do not lower it; its index is the number of entries, empty ones included
        low = min([1.0, *(t.q for t in tokens if _js_truthy(t.q))])
        tokens.append(_Token("identity", low, len(_parse_accept_entries(header or ""))))
    return _negotiate_tokens(tokens, encodings, _token_specificity)


def accepts_languages(header: str | None, *languages: str) -> str | list[str] | Literal[False]:
    """Express's ``req.acceptsLanguages()`` for an Accept-Language header.

    Args:
        header: the Accept-Language value; None means ``*`` (anything).
        *languages: the languages the server has (``"en"``, ``"de-DE"``), in its order.

    Returns:
        With no ``languages``: the client's acceptable language tags as sent, most preferred
        first. Else the best of ``languages`` as given, or False when none is acceptable (as
        Express).
    """
    return _negotiate_tokens(
        _parse_tokens("*" if header is None else header), languages, _language_specificity
    )


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
