# Sails virtual requests over Socket.IO (sails-hook-sockets semantics) and their JWR replies.
# Owns: turning an EVENT named after an HTTP method into a VirtualRequest, the header merge
# rules, the JWR shape ({body, headers, statusCode}) and the parse-error reply.
# Must not: route, run handlers or do I/O; it never imports trio or gateway.app. Where we differ
# from sails-hook-sockets on purpose, the function's docstring says so.
from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.errors import REASONS, RemoteProtocolError
from gateway.ws.engineio import SIOPacket, SIOType, dumps, encode_utf8, escape, needs_ascii

__all__ = [
    "VIRTUAL_REQUEST_EVENTS",
    "PARSE_ERROR_EVENT",
    "PARSE_ERROR_CODE",
    "NOT_FOUND",
    "NO_BODY",
    "NoBody",
    "SailsParseError",
    "VirtualRequest",
    "is_virtual_request",
    "parse_virtual_request",
    "HandshakeFields",
    "handshake_fields",
    "merge_headers",
    "jwr",
    "jwr_text",
    "status_jwr",
    "body_from_http",
    "parse_error_payload",
    "parse_error_reply",
]

# sails.io.js emits the lower-cased method as the event name; sails-hook-sockets routes these.
VIRTUAL_REQUEST_EVENTS: Final = frozenset(
    {"get", "post", "put", "patch", "delete", "options", "head"}
)
PARSE_ERROR_EVENT: Final = "sails:parseError"
# sails-hook-sockets' errorpack: namespace "sails:hook:sockets" + "_" + "PARSE_VIRTUAL_REQ".
PARSE_ERROR_CODE: Final = "SAILS:HOOK:SOCKETS_PARSE_VIRTUAL_REQ"
NOT_FOUND: Final = "Not Found"  # the body of a 404 JWR (res.sendStatus(404) in Sails)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF, NUL and other C0 (HTAB is ok)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NoBody(enum.Enum):
    """Type of NO_BODY: a JWR without a ``body`` key (the client sees ``undefined``)."""

    NO_BODY = 0


NO_BODY: Final = NoBody.NO_BODY


class SailsParseError(RemoteProtocolError):
    """A Socket.IO message that cannot be read as a Sails virtual request.

    Args:
        details: what was wrong (becomes ``details`` of the Sails error payload).
        status_hint: 400, or 431/414 for too many headers / too long a URL.
    """

    def __init__(self, details: str, status_hint: int = 400) -> None:
        super().__init__(details, status_hint)
        self.details = details


# not frozen: one per message, and a frozen dataclass's __init__ sets each field through
# object.__setattr__ (the three of a virtual request: 4% of its instructions); nothing mutates it
@dataclass(slots=True)
class VirtualRequest:
    """One virtual request read from a Socket.IO event.

    Attributes:
        method: upper-case HTTP method (from the event name).
        url: the request target as sent (path and query).
        headers: the message's own headers, lower-case names, string values; combine them with
            the WebSocket handshake's using merge_headers() before routing.
        data: the body: an object (``params`` merged under ``data``) or an array.
        ack_id: answer with a JWR through this ack; None means "send no reply".
    """

    method: str
    url: str
    headers: dict[str, str]
    data: Any
    ack_id: int | None


def is_virtual_request(event_name: str) -> bool:
    """True if an event with this name is a Sails virtual request (get, post, ..., head)."""
    return event_name in VIRTUAL_REQUEST_EVENTS


def _js_string(value: Any) -> str | None:
    # What String(value) gives for the scalars a header could sensibly hold; None drops it.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return None


def _message_headers(raw: Any, max_headers: int) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SailsParseError("headers must be an object")
    if len(raw) > max_headers:
        raise SailsParseError(f"more than {max_headers} headers", 431)
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not _TOKEN.fullmatch(name):
            raise SailsParseError(f"invalid header name {name[:40]!r}")
        text = _js_string(value)
        if text is None:
            continue  # null, objects and arrays: String() would only give "[object Object]"
        if _BAD_VALUE.search(text):
            raise SailsParseError(f"control character in header {name!r}")
        headers[name.lower()] = text
    return headers


def _body(message: dict[str, Any]) -> Any:
    # sails-hook-sockets: isArray(data) ? data : extend({}, params || {}, data || {}).
    data = message.get("data")
    if isinstance(data, list):
        return data
    body: dict[str, Any] = {}
    for part in (message.get("params"), data):
        if isinstance(part, dict):
            body.update(part)
        elif part not in (None, False, 0, ""):
            raise SailsParseError("data must be an object or an array")
    return body


def parse_virtual_request(
    event_name: str,
    args: Sequence[Any],
    ack_id: int | None,
    *,
    max_headers: int = 100,
    max_url_chars: int = 8192,
) -> VirtualRequest:
    """Read a Socket.IO event from sails.io.js as a virtual request.

    The message is ``{method, headers, data, url}``. As in sails-hook-sockets the *event name*
    is the method (a different ``method`` in the payload is ignored), ``params`` is a legacy
    alias merged under ``data``, and falsy ``data`` means ``{}``. Stricter than Sails on purpose:
    ``data`` that is a truthy scalar (Sails would turn "ab" into {"0":"a","1":"b"}), header
    names that are not HTTP tokens and header values with control characters are rejected;
    numeric/boolean header values become their JavaScript string, null/object values are
    dropped.

    Args:
        event_name: the Socket.IO event name (one of VIRTUAL_REQUEST_EVENTS).
        args: the event's arguments; the first is the message.
        ack_id: the event's ack id, or None.
        max_headers: more message headers than this is an error (431).
        max_url_chars: a longer url is an error (414).

    Returns:
        The VirtualRequest.

    Raises:
        SailsParseError: not a virtual request event, the first argument is not an object,
            ``url`` is missing/empty/not a string/has control characters/is too long, or the
            headers or data are malformed. Answer it with parse_error_reply().
    """
    if event_name not in VIRTUAL_REQUEST_EVENTS:
        raise SailsParseError(f"{event_name!r} is not a virtual request event")
    message = args[0] if args else None
    if not isinstance(message, dict):
        raise SailsParseError("No url provided in request: the message is not an object")
    url = message.get("url")
    if not url:
        raise SailsParseError("No url provided in request")
    if not isinstance(url, str):
        raise SailsParseError(f"Invalid url provided: {json.dumps(url)[:60]}")
    if len(url) > max_url_chars:
        raise SailsParseError(f"url longer than {max_url_chars} characters", 414)
    if _CONTROL.search(url):
        raise SailsParseError("Invalid url provided: control character")
    raw = message.get("headers")
    headers = {} if raw is None or raw == {} else _message_headers(raw, max_headers)
    data = message.get("data")
    if type(data) is dict and "params" not in message:
        body: Any = data.copy()  # what _body() makes of it, without its loop
    else:
        body = _body(message)
    return VirtualRequest(event_name.upper(), url, headers, body, ack_id)


def _pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


class HandshakeFields(dict[str, str]):
    """What virtual requests take from their socket's WebSocket handshake (lower-case names):
    ``cookie``, ``origin`` and ``nosession``, repeated fields joined as Node joins them. Made
    once per socket by handshake_fields()."""


def handshake_fields(
    handshake_headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> HandshakeFields:
    """The handshake's part of every virtual request's headers (see merge_headers).

    Args:
        handshake_headers: the upgrade request's headers (a mapping, or name/value pairs in
            which repeated names are joined: cookies with "; ", others with ", ").

    Returns:
        The fields, for merge_headers().
    """
    if isinstance(handshake_headers, HandshakeFields):
        return handshake_headers
    fields = HandshakeFields()
    for name, value in _pairs(handshake_headers):
        key = name.lower()
        if key in ("cookie", "origin", "nosession"):
            if key in fields:
                fields[key] += ("; " if key == "cookie" else ", ") + value
            else:
                fields[key] = value
    return fields


def merge_headers(
    message_headers: Mapping[str, str],
    handshake_headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, str]:
    """A virtual request's headers, as sails-hook-sockets 3 builds them.

    sails-hook-sockets (lib/receive-incoming-sails-io-msg.js) takes
    ``_.defaults({host: sails.config.host, cookie: <handshake cookie>, nosession: <handshake
    nosession ? true : undefined>}, message.headers)``, then sets ``origin`` to the
    handshake's; Sails' request interpreter drops undefined values and lower-cases the names.
    So: the handshake's ``cookie`` wins over the message's (the message's only fills a gap);
    ``nosession`` is "true" when the handshake had a non-empty one; ``origin`` is always the
    handshake's, and a message ``origin`` is dropped even when the handshake had none; ``host``
    is the message's own (the gateway has no ``sails.config.host``, deprecated in Sails 1);
    other handshake headers (user-agent, ...) are not copied. No Content-Type or
    Content-Length is added: the body is ``data``, not bytes.

    Differs on purpose (docs/FIDELITY.md D23): Sails compares names case-sensitively before
    lower-casing them, so a message ``Cookie`` (capital C) overrides the handshake's cookie
    there, and a message ``Origin`` survives when the handshake had none; here the rules hold
    whatever the case (message names arrive lower-cased from parse_virtual_request). Sails
    also copies a reply's Set-Cookie into the handshake's cookie when the handshake had none;
    we don't (it would make the cookie attributes, Path/HttpOnly/..., read as cookies).

    Args:
        message_headers: VirtualRequest.headers (lower-case names).
        handshake_headers: the upgrade request's headers, or handshake_fields() of them.

    Returns:
        A new dict with lower-case names.
    """
    fields = (
        handshake_headers
        if type(handshake_headers) is HandshakeFields
        else handshake_fields(handshake_headers)
    )
    merged: dict[str, str] = {}
    cookie = fields.get("cookie")
    if cookie is not None:
        merged["cookie"] = cookie
    if fields.get("nosession"):
        merged["nosession"] = "true"
    for name, value in message_headers.items():
        merged.setdefault(name.lower(), value)
    merged.pop("origin", None)
    origin = fields.get("origin")
    if origin is not None:
        merged["origin"] = origin
    return merged


def jwr(
    status: int,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: Any = NO_BODY,
) -> dict[str, Any]:
    """Build a JSON WebSocket Response: ``{"body", "headers", "statusCode"}``.

    ``set-cookie`` (any case) is removed, as Sails does, so cookies never reach client-side
    script; repeated header names are joined with ", ". The body is carried as the value
    itself: Sails puts what the route passed to res.send()/res.json() in ``body`` (an object
    stays an object, text stays a string; see body_from_http for HTTP-style byte bodies).
    Bytes are decoded as UTF-8 (invalid sequences become U+FFFD): Sails would send a Buffer as
    a binary attachment, which this gateway does not do.

    Args:
        status: the status code (100-599).
        headers: response headers.
        body: a JSON-able value, bytes, or NO_BODY to omit the key (client sees undefined).

    Returns:
        The JWR dict, ready for EngineIOSession.send_ack(ack_id, [jwr]).

    Raises:
        ValueError: status out of range.
    """
    if not 100 <= status <= 599:
        raise ValueError(f"bad status {status}")
    out: dict[str, str] = {}
    for name, value in _pairs(headers):
        if name.lower() == "set-cookie":
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    reply: dict[str, Any] = {}
    if body is not NO_BODY:
        reply["body"] = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    reply["headers"] = out
    reply["statusCode"] = status
    return reply


def jwr_text(
    status: int,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: Any = NO_BODY,
) -> str:
    """``engineio.dumps(jwr(status, headers, body))``, made without the JWR dict: the text of
    every virtual reply (the headers are written string by string, and only the body goes
    through the JSON encoder).

    Args:
        status, headers, body: as jwr().

    Returns:
        The JSON text.

    Raises:
        ValueError: status out of range, or a body JSON cannot carry (NaN, a cycle).
        TypeError: a body (or a header) that is not JSON-able.
    """
    if not 100 <= status <= 599:
        raise ValueError(f"bad status {status}")
    # a list as it is (a reply's headers); a mapping or any other iterable read once
    pairs = headers if type(headers) is list else list(_pairs(headers))
    parts: list[str] = []
    seen: set[str] = set()
    for name, value in pairs:
        if type(name) is not str or type(value) is not str:
            return dumps(jwr(status, pairs, body))  # not text: as jwr() takes it
        if name.lower() == "set-cookie":
            continue
        if name in seen:
            return dumps(jwr(status, pairs, body))  # a repeated name: joined as jwr() does
        seen.add(name)
        parts.append(f"{escape(name)}:{escape(value)}")
    fields = ",".join(parts)
    if body is NO_BODY:
        text = f'{{"headers":{{{fields}}},"statusCode":{status}}}'
    else:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        value = escape(body) if type(body) is str else encode_utf8(body)
        text = f'{{"body":{value},"headers":{{{fields}}},"statusCode":{status}}}'
    if not text.isascii() and needs_ascii(text):
        return dumps(jwr(status, pairs, body))  # lone surrogates: the whole text escaped
    return text


def status_jwr(
    status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()
) -> dict[str, Any]:
    """A JWR whose body is the reason phrase, like res.sendStatus(): 404 -> "Not Found".

    Args:
        status: the status code.
        headers: response headers.

    Returns:
        The JWR dict.
    """
    return jwr(status, headers, REASONS.get(status, str(status)))


def body_from_http(content_type: str | None, payload: bytes) -> Any:
    """Turn an HTTP-style response body back into the value a JWR carries.

    JSON media types (``application/json``, ``*+json``) are parsed back into the value (what
    res.json(obj) puts in a Sails JWR); other bodies become text; an empty body is NO_BODY.
    JSON that fails to parse is kept as text.

    Args:
        content_type: the response's Content-Type, or None.
        payload: the encoded body.

    Returns:
        The value for jwr(body=...).
    """
    if not payload:
        return NO_BODY
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(payload)
        except (ValueError, RecursionError):
            pass
    return payload.decode("utf-8", "replace")


def parse_error_payload(error: SailsParseError) -> dict[str, Any]:
    """The error object sails-hook-sockets sends for an unparseable virtual request.

    Same fields as Sails' errorpack error serialised by JSON.stringify, minus ``stack``.

    Args:
        error: the parse error.

    Returns:
        ``{"code", "name", "status", "message", "details"}``.
    """
    return {
        "code": PARSE_ERROR_CODE,
        "name": f"Error ({PARSE_ERROR_CODE}):",
        "status": 400,
        "message": "Failed to parse incoming socket.io request.",
        "details": error.details,
    }


def parse_error_reply(error: SailsParseError, ack_id: int | None) -> SIOPacket:
    """The Socket.IO packet that answers an unparseable virtual request.

    With an ack id: an ACK carrying a JWR with status ``error.status_hint`` (400) and the Sails
    error object as body. sails-hook-sockets acks the bare error object instead, which
    sails.io.js then reports as status 200 with an undefined body; we send a real 400 so
    ``jwres.error`` is set. Without an ack id: ``42["sails:parseError", {error}]``, as Sails.

    Args:
        error: the parse error.
        ack_id: the request's ack id, or None.

    Returns:
        The packet; send it with encode_sio() inside an Engine.IO message ("4" + text).
    """
    payload = parse_error_payload(error)
    if ack_id is None:
        return SIOPacket(SIOType.EVENT, "/", None, [PARSE_ERROR_EVENT, payload])
    return SIOPacket(SIOType.ACK, "/", ack_id, [jwr(error.status_hint, {}, payload)])
