# The server side of the WebSocket opening handshake (RFC 6455 section 4.2), as pure functions.
# Owns: checking an Upgrade request's headers, subprotocol and permessage-deflate negotiation,
# and the bytes of the 101 response. The Origin policy (cross-site WebSocket hijacking) is the
# one CORS policy of gateway.app.cors (socket_allowed), which the server applies.
# Must not: touch sockets or clocks, or know routes; failures are HTTPError replies (400,
# 426) that the application turns into responses like any other error.
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from gateway.errors import BadRequest, HTTPError

__all__ = [
    "Offer",
    "check_upgrade",
    "choose_subprotocol",
    "negotiate_deflate",
    "accept_response",
]


@dataclass(frozen=True, slots=True)
class Offer:
    """What a valid Upgrade request asks for.

    Attributes:
        key: Sec-WebSocket-Key (base64 of 16 bytes).
        subprotocols: Sec-WebSocket-Protocol tokens in the client's order of preference.
        extensions: Sec-WebSocket-Extensions offers, one string per offer.
    """

    key: str
    subprotocols: tuple[str, ...]
    extensions: tuple[str, ...]


def _tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def check_upgrade(method: str, http_version: str, headers: Mapping[str, str]) -> Offer:
    """Validate a WebSocket Upgrade request (RFC 6455 section 4.2.1).

    Args:
        method: the request method.
        http_version: "1.1" (1.0 cannot upgrade).
        headers: the request headers, lower-case names (repeated fields joined with ", ").

    Returns:
        The Offer.

    Raises:
        HTTPError: 400 for a malformed handshake (method, version, Connection/Upgrade tokens,
            a missing or malformed key); 426 with ``Sec-WebSocket-Version: 13`` for another
            protocol version, as the RFC asks.
    """
    if method != "GET" or http_version != "1.1":
        raise BadRequest(None, "WebSocket handshake needs GET over HTTP/1.1")
    if "websocket" not in (t.lower() for t in _tokens(headers.get("upgrade"))):
        raise BadRequest(None, "WebSocket handshake needs 'Upgrade: websocket'")
    if "upgrade" not in (t.lower() for t in _tokens(headers.get("connection"))):
        raise BadRequest(None, "WebSocket handshake needs 'Connection: Upgrade'")
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise HTTPError(
            426, "Unsupported WebSocket version: use 13", {"Sec-WebSocket-Version": "13"}
        )
    key = headers.get("sec-websocket-key", "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise BadRequest(None, "Malformed Sec-WebSocket-Key")
    return Offer(
        key,
        tuple(_tokens(headers.get("sec-websocket-protocol"))),
        tuple(_tokens(headers.get("sec-websocket-extensions"))),
    )


def choose_subprotocol(offered: Iterable[str], supported: Iterable[str] | None) -> str | None:
    """The first subprotocol the client offered that we support (client's preference order).

    Args:
        offered: Offer.subprotocols.
        supported: the route's ``subprotocols`` option, or None.

    Returns:
        The chosen subprotocol, or None (the handshake then goes on without one; a client
        that requires one closes the connection itself, RFC 6455 section 4.1).
    """
    ours = set(supported or ())
    for proto in offered:
        if proto in ours:
            return proto
    return None


def negotiate_deflate(offers: Sequence[str]) -> tuple[list[Extension], str | None]:
    """Accept permessage-deflate if offered (only called when the profile enables it).

    Returns:
        (extensions for the wsproto connection, the Sec-WebSocket-Extensions response value).
    """
    ext = PerMessageDeflate()
    value = server_extensions_handshake(offers, [ext])
    if value is None:
        return [], None
    return [ext], value.decode("ascii")


def accept_response(key: str, subprotocol: str | None, extensions: str | None) -> bytes:
    """The 101 Switching Protocols response head.

    Args:
        key: Offer.key.
        subprotocol: the chosen subprotocol, or None.
        extensions: the Sec-WebSocket-Extensions value, or None.

    Returns:
        The bytes to send.
    """
    token = generate_accept_token(key.encode("ascii")).decode("ascii")
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {token}\r\n"
    )
    if subprotocol:
        head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    if extensions:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    return (head + "\r\n").encode("latin-1")
