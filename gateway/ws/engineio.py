# Engine.IO v3/v4 + Socket.IO framing over an already-open WebSocket, as a sans-IO state machine.
# Owns: the packet codecs (Engine.IO text packets, Socket.IO packets inside them), the open and
# CONNECT handshakes, heartbeats (who pings depends on the version) and the namespace rules.
# Must not: touch sockets, tasks or a clock (the caller passes `now`), or know about Sails/HTTP.
# Only the websocket transport exists here: no polling, no upgrade, no binary attachments.
# Codec and session share this file (one protocol); they split cleanly at the Session banner.
from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Final, Literal

from gateway.errors import RemoteProtocolError
from gateway.jsoncodec import make_encoder

__all__ = [
    "EIOType",
    "SIOType",
    "SIOPacket",
    "RESERVED_EVENTS",
    "MAX_ACK_ID_DIGITS",
    "decode_eio",
    "encode_eio",
    "decode_sio",
    "encode_sio",
    "dumps",
    "encode_utf8",
    "escape",
    "needs_ascii",
    "SessionState",
    "Connected",
    "ConnectRejected",
    "Event",
    "Ack",
    "Disconnected",
    "SessionEvent",
    "EngineIOSession",
]


class EIOType(enum.IntEnum):
    """Engine.IO packet types (the first character of a text frame)."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class SIOType(enum.IntEnum):
    """Socket.IO packet types (the first character of an Engine.IO message).

    Type 4 is ERROR in Socket.IO v2 (Engine.IO v3) and CONNECT_ERROR in v3+/v4 (Engine.IO v4).
    """

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


# Event names the Socket.IO v4 parsers reject in an EVENT packet (both directions): sending
# one makes socket.io-client 4 drop the whole connection as a parse error.
RESERVED_EVENTS: Final = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
# JavaScript numbers are exact up to 2**53 (16 digits); 15 digits always round-trip.
MAX_ACK_ID_DIGITS: Final = 15
_MAX_ACK_ID: Final = 10**MAX_ACK_ID_DIGITS - 1

_ACK_ID: Final = re.compile(r"[0-9]*")  # ASCII digits only, as the JS client writes them
# the type digit -> the type (a lookup instead of int() and the enum's constructor)
_EIO_TYPES: Final = {str(int(t)): t for t in EIOType}
_SIO_TYPES: Final = {str(int(t)): t for t in SIOType}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    # JSON.parse rejects NaN/Infinity; so must we, or we would echo them back as invalid JSON.
    raise ValueError(f"{name} is not JSON")


# One decoder and two encoders for every packet: json.loads/dumps with options build a new
# one per call, which costs more than coding a small packet (and gateway.jsoncodec's encoders
# skip the set-up JSONEncoder.encode makes on every call).
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
# the decoder's C scanner: (text, index) -> (value, end); StopIteration when no value starts there
_scan: Final = _DECODER.scan_once  # type: ignore[attr-defined]
encode_utf8: Final = make_encoder(ensure_ascii=False)
"""A JSON value as compact text, non-ASCII as it is (dumps without its surrogate check)."""
escape: Final[Callable[[str], str]] = encode_basestring
"""A str as a JSON string, non-ASCII as it is (what encode_utf8 does to every string)."""
_encode_ascii: Final = make_encoder(ensure_ascii=True)


def _loads(text: str) -> Any:
    try:
        if text.startswith("\ufeff"):
            return json.loads(text)  # json.loads' own error for a BOM
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"bad JSON payload: {exc}") from None


def dumps(value: Any) -> str:
    """Serialise a JSON value the way JSON.stringify would put it on the wire.

    Compact separators and raw UTF-8 (half the size of \\u escapes for CJK text); lone
    surrogates, which cannot be sent as UTF-8, fall back to \\u escapes as JSON.stringify does.

    Args:
        value: a JSON-able value (dict, list, str, int, float, bool, None).

    Returns:
        The JSON text.

    Raises:
        ValueError: NaN or an infinity (not representable in JSON).
        TypeError: a value that is not JSON-able.
    """
    text = encode_utf8(value)
    if needs_ascii(text):
        text = _encode_ascii(value)
    return text


def needs_ascii(text: str) -> bool:
    """True when ``text`` (made by encode_utf8/escape) holds a lone surrogate, which UTF-8
    cannot carry: then dumps() gives the value with every non-ASCII character escaped."""
    return not text.isascii() and _SURROGATE.search(text) is not None


# ---------------------------------------------------------------------------------------------
# Engine.IO packets
# ---------------------------------------------------------------------------------------------


def decode_eio(text: str) -> tuple[EIOType, str]:
    """Split an Engine.IO text frame into its type and data.

    Args:
        text: one WebSocket text message.

    Returns:
        (type, data); data is "" when the packet has none.

    Raises:
        RemoteProtocolError: empty frame, unknown type, or a `b...` base64 binary packet (Engine.IO v3
            without binary support), which this gateway does not accept.
    """
    if not text:
        raise RemoteProtocolError("empty Engine.IO packet")
    head = text[0]
    ptype = _EIO_TYPES.get(head)
    if ptype is None:
        if head == "b":
            raise RemoteProtocolError("binary Engine.IO packets are not supported")
        raise RemoteProtocolError(f"unknown Engine.IO packet type {head!r}")
    return ptype, text[1:]


def encode_eio(packet_type: EIOType, data: str = "") -> str:
    """Build an Engine.IO text frame.

    Args:
        packet_type: the Engine.IO packet type.
        data: the packet's data (already encoded text).

    Returns:
        The frame, e.g. ``"3"`` or ``"42[...]"``.
    """
    return f"{int(packet_type)}{data}"


# ---------------------------------------------------------------------------------------------
# Socket.IO packets
# ---------------------------------------------------------------------------------------------


# not frozen: one per message, and a frozen dataclass's __init__ sets each field through
# object.__setattr__ (the three of a virtual request: 4% of its instructions); nothing mutates it
@dataclass(slots=True)
class SIOPacket:
    """One Socket.IO packet (the payload of an Engine.IO MESSAGE).

    Attributes:
        type: the packet type.
        namespace: "/" or "/name" (v2 clients may append "?query" on CONNECT).
        id: the ack id (EVENT asks for an ack; ACK answers one), or None.
        data: the JSON payload, or None when the packet has none.
    """

    type: SIOType
    namespace: str = "/"
    id: int | None = None
    data: Any = None


def _check_payload(ptype: SIOType, data: Any, present: bool) -> None:
    if ptype is SIOType.EVENT:  # first: every virtual request is one
        ok = type(data) is list and bool(data) and type(data[0]) is str
        if ok and data[0] in RESERVED_EVENTS:
            raise RemoteProtocolError(f"reserved event name {data[0]!r}")
    elif ptype is SIOType.CONNECT:
        ok = not present or isinstance(data, dict)
    elif ptype is SIOType.DISCONNECT:
        ok = not present
    elif ptype is SIOType.CONNECT_ERROR:
        ok = isinstance(data, (str, dict))
    else:  # ACK
        ok = isinstance(data, list)
    if not ok:
        raise RemoteProtocolError(f"invalid payload for Socket.IO {ptype.name}")


def decode_sio(text: str) -> SIOPacket:
    """Parse a Socket.IO packet: type digit, optional ``/nsp,``, optional ack id, JSON payload.

    Args:
        text: the data of an Engine.IO MESSAGE packet (the text after the leading ``4``).

    Returns:
        The packet.

    Raises:
        RemoteProtocolError: unknown type, binary packet (5/6: attachments are not supported), ack id
            longer than MAX_ACK_ID_DIGITS, bad JSON, or a payload of the wrong shape for the type
            (EVENT: a non-empty list whose first item is a non-reserved string name; ACK: a list;
            CONNECT: an object or nothing; DISCONNECT: nothing; CONNECT_ERROR: string or object).
    """
    ptype = _SIO_TYPES.get(text[:1])
    if ptype is None:
        raise RemoteProtocolError(f"unknown Socket.IO packet type {text[:1]!r}")
    if ptype is SIOType.BINARY_EVENT or ptype is SIOType.BINARY_ACK:
        raise RemoteProtocolError("binary Socket.IO packets (attachments) are not supported")
    i = 1
    end = len(text)
    namespace = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma < 0:  # v2 style "40/admin" (no payload, no trailing comma)
            namespace, i = text[i:], end
        else:
            namespace, i = text[i:comma], comma + 1
    ack_id: int | None = None
    start = i
    i = _ACK_ID.match(text, i).end()  # type: ignore[union-attr]  # (matches "" too)
    if i > start:
        if i - start > MAX_ACK_ID_DIGITS:
            raise RemoteProtocolError("Socket.IO ack id too long")
        ack_id = int(text[start:i])
    present = i < end
    data = _loads(text[i:]) if present else None
    _check_payload(ptype, data, present)
    return SIOPacket(ptype, namespace, ack_id, data)


def encode_sio(packet: SIOPacket) -> str:
    """Serialise a Socket.IO packet (without the Engine.IO ``4`` prefix).

    Args:
        packet: the packet; ``data=None`` means "no payload".

    Returns:
        The text, e.g. ``'2["message",{"a":1}]'`` or ``'3/admin,7[]'``.

    Raises:
        ValueError: a binary type, a negative or over-long ack id, a reserved event name, or a
            payload JSON cannot represent (the peer's parser would drop the connection).
    """
    if packet.type in (SIOType.BINARY_EVENT, SIOType.BINARY_ACK):
        raise ValueError("binary Socket.IO packets are not supported")
    if packet.type is SIOType.EVENT:
        data = packet.data
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            raise ValueError("an EVENT payload is a list starting with the event name")
        if data[0] in RESERVED_EVENTS:
            raise ValueError(f"reserved event name {data[0]!r}")
    parts = [str(int(packet.type))]
    if packet.namespace != "/":
        parts.append(packet.namespace + ",")
    if packet.id is not None:
        if packet.id < 0 or len(str(packet.id)) > MAX_ACK_ID_DIGITS:
            raise ValueError(f"bad ack id {packet.id}")
        parts.append(str(packet.id))
    if packet.data is not None:
        parts.append(dumps(packet.data))
    return "".join(parts)


def _plain_event(text: str) -> Event | None:
    """The Event of an EVENT packet on "/" (``42``, ack id, JSON list) in its usual shape,
    read without decode_eio/decode_sio and their packet object: an ack id of ASCII digits
    right before the ``[`` that starts a well-formed payload, a list whose first item is a
    non-reserved name, nothing after it. None for anything else (another namespace, a space
    around the JSON, bad JSON, a payload of another shape): the full decoder reads it, errors
    and all.
    """
    start = text.find("[", 2)
    if start < 0 or start - 2 > MAX_ACK_ID_DIGITS:
        return None
    digits = text[2:start]
    if digits and not (digits.isascii() and digits.isdigit()):
        return None
    try:
        data, end = _scan(text, start)  # the C scanner, without JSONDecoder.decode's regexes
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(text) or type(data) is not list or not data:
        return None
    name = data[0]
    if type(name) is not str or name in RESERVED_EVENTS:
        return None
    return Event(name, tuple(data[1:]), int(digits) if digits else None)


# ---------------------------------------------------------------------------------------------
# Session
#
# Theory of operation
#   States: HANDSHAKE -> OPEN -> CONNECTED -> CLOSED  (SessionState)
#   - HANDSHAKE: created after the WebSocket handshake; nothing sent yet.
#   - open_frames(now) (the caller, once) sends the Engine.IO open packet and moves to OPEN.
#     v3 (Socket.IO 2): the server connects "/" by itself, so open_frames also returns "40" and
#     the state goes straight to CONNECTED (no Connected event: `connected` is True at once).
#     v4: the client must send "40" (or "40{auth}") within connect_timeout_s; the session
#     answers '40{"sid":...}' and reports Connected("/") (the peer moves OPEN -> CONNECTED).
#   - receive_text/receive_bytes (the peer) yield Event/Ack/Connected/ConnectRejected events.
#   - CLOSED is reached once, with exactly one Disconnected event unless the caller ended it
#     itself (close_frames): the client left "/" ("41") or sent an Engine.IO close ("1"), the
#     peer broke the protocol, the clock ran out (poll), or the transport died
#     (connection_lost). After a Disconnected the caller closes the WebSocket with close_code.
#   Heartbeats (poll, driven by the caller's clock; next_deadline says when to call it):
#   - v3: the CLIENT pings ("2", "2probe"), we answer "3"/"3probe"; any packet proves
#     liveness; silence for ping_interval + ping_timeout -> Disconnected("ping timeout").
#   - v4: the SERVER sends "2" ping_interval after the open / the last pong (never before the
#     previous pong deadline) and expects "3" within ping_timeout. A ping from a v4 client or a
#     pong from a v3 client is an "invalid heartbeat direction" (parse error), as in engine.io.
#   receive_* never moves next_deadline() earlier, so a timer task may simply sleep until it,
#   call poll(), and ask again; it needs no wake-up when packets arrive.
#   Frames: what the peer or the clock make necessary (pong, CONNECT reply, CONNECT_ERROR,
#   ping) is queued; drain it with frames_to_send() after every receive_*/poll call. Frames the
#   application asks for (open_frames, send_event, send_ack, close_frames) are returned.
#   Namespaces: only "/" exists. A CONNECT to another one gets CONNECT_ERROR (v4:
#   {"message":"Invalid namespace"}) / ERROR (v3: "Invalid namespace"), as socket.io does.
# ---------------------------------------------------------------------------------------------


class SessionState(enum.Enum):
    """Where an EngineIOSession is; see the theory of operation above."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CONNECTED = "connected"
    CLOSED = "closed"


# Enum members as module names: on Python 3.11 `SessionState.CONNECTED` is an attribute lookup
# through the enum's metaclass (some 60 ns, five times a plain class attribute), and the paths
# of every message compare states and types several times.
_HANDSHAKE: Final = SessionState.HANDSHAKE
_CONNECTED: Final = SessionState.CONNECTED
_CLOSED: Final = SessionState.CLOSED


@dataclass(frozen=True, slots=True)
class Connected:
    """The client connected to a namespace (v4 only; v3 connects "/" in open_frames).

    Attributes:
        namespace: always "/".
        auth: the v4 CONNECT payload (``io({auth})``), or None.
    """

    namespace: str = "/"
    auth: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ConnectRejected:
    """The client asked for a namespace that does not exist; the error frame is queued."""

    namespace: str


# not frozen: one per message, and a frozen dataclass's __init__ sets each field through
# object.__setattr__ (the three of a virtual request: 4% of its instructions); nothing mutates it
@dataclass(slots=True)
class Event:
    """The client emitted an event on "/".

    Attributes:
        name: the event name (for Sails: the lower-case HTTP method).
        args: the arguments after the name (JSON values).
        ack_id: answer with send_ack(ack_id, [...]) when not None.
    """

    name: str
    args: tuple[Any, ...]
    ack_id: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """The client acknowledged an event we sent with send_event(..., ack_id=id)."""

    id: int
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The session is over (exactly one per session).

    Attributes:
        reason: socket.io's words: "client namespace disconnect", "transport close",
            "ping timeout", "connect timeout", "parse error", "invalid state",
            "message too big", "server namespace disconnect".
        close_code: the WebSocket close code to close with (1000, 1002 or 1009).
        detail: what exactly was wrong (for the log; empty for a clean end).
    """

    reason: str
    close_code: int = 1000
    detail: str = ""


SessionEvent = Connected | ConnectRejected | Event | Ack | Disconnected

_INVALID_NAMESPACE: Final = "Invalid namespace"


@dataclass(slots=True)
class _Clock:
    last_rx: float = 0.0  # v3: last packet from the client
    opened: float = 0.0
    next_ping: float = 0.0  # v4: when to send the next ping
    pong_due: float | None = None  # v4: a ping is outstanding until then


class EngineIOSession:
    """Sans-IO Engine.IO + Socket.IO server session for one WebSocket (see theory above).

    Args:
        version: the client's EIO query parameter, 3 or 4.
        sid: the Engine.IO session id (also the Socket.IO socket id unless socket_id is given;
            with no polling transport the sid grants nothing, so sharing it is safe).
        socket_id: the Socket.IO socket id sent in the v4 CONNECT reply.
        ping_interval_s: seconds between heartbeats.
        ping_timeout_s: seconds to wait for the heartbeat's other half.
        max_payload_bytes: largest frame accepted (also announced as v4 ``maxPayload``).
        connect_timeout_s: v4: seconds the client has to send its CONNECT after the open.

    Raises:
        ValueError: an unsupported version or non-positive timing/size.
    """

    __slots__ = (
        "version",
        "sid",
        "socket_id",
        "ping_interval_s",
        "ping_timeout_s",
        "max_payload_bytes",
        "connect_timeout_s",
        "_state",
        "_clock",
        "_outbox",
    )

    def __init__(
        self,
        version: Literal[3, 4],
        sid: str,
        *,
        socket_id: str | None = None,
        ping_interval_s: float = 25.0,
        ping_timeout_s: float = 20.0,
        max_payload_bytes: int = 1_000_000,
        connect_timeout_s: float = 45.0,
    ) -> None:
        if version not in (3, 4):
            raise ValueError(f"unsupported Engine.IO version {version!r}")
        if min(ping_interval_s, ping_timeout_s, connect_timeout_s) <= 0 or max_payload_bytes <= 0:
            raise ValueError("timings and max_payload_bytes must be positive")
        self.version = version
        self.sid = sid
        self.socket_id = socket_id or sid
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.max_payload_bytes = max_payload_bytes
        self.connect_timeout_s = connect_timeout_s
        self._state = SessionState.HANDSHAKE
        self._clock = _Clock()
        self._outbox: list[str] = []

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """The current SessionState."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while namespace "/" is connected (events may be sent)."""
        return self._state is _CONNECTED

    def frames_to_send(self) -> list[str]:
        """Take the frames the peer or the clock made necessary (pongs, pings, CONNECT replies).

        Returns:
            Text frames to send in order; the queue is then empty.
        """
        out, self._outbox = self._outbox, []
        return out

    # -- frames the application asks for ----------------------------------------------------

    def open_frames(self, now: float) -> list[str]:
        """Start the session: the Engine.IO open packet (v3: and the unprompted "40").

        Args:
            now: the caller's clock, in seconds.

        Returns:
            The frames to send first, in order.

        Raises:
            RuntimeError: called twice.
        """
        if self._state is not SessionState.HANDSHAKE:
            raise RuntimeError("open_frames() may only be called once")
        info: dict[str, Any] = {
            "sid": self.sid,
            "upgrades": [],
            "pingInterval": round(self.ping_interval_s * 1000),
            "pingTimeout": round(self.ping_timeout_s * 1000),
        }
        if self.version == 4:
            info["maxPayload"] = self.max_payload_bytes
        frames = [encode_eio(EIOType.OPEN, dumps(info))]
        c = self._clock
        c.last_rx = c.opened = now
        c.next_ping = now + self.ping_interval_s
        if self.version == 3:
            frames.append(encode_eio(EIOType.MESSAGE, encode_sio(SIOPacket(SIOType.CONNECT))))
            self._state = SessionState.CONNECTED
        else:
            self._state = SessionState.OPEN
        return frames

    def send_event(self, name: str, *args: Any, ack_id: int | None = None) -> str:
        """Build an EVENT frame for "/" (a server push such as ``42["message",{...}]``).

        Args:
            name: the event name (not one of RESERVED_EVENTS).
            *args: JSON-able arguments.
            ack_id: ask the client to acknowledge; its answer arrives as Ack(ack_id, ...).

        Returns:
            The frame.

        Raises:
            RuntimeError: "/" is not connected.
            ValueError, TypeError: a reserved name or a value JSON cannot carry.
        """
        self._require_connected()
        packet = SIOPacket(SIOType.EVENT, "/", ack_id, [name, *args])
        return encode_eio(EIOType.MESSAGE, encode_sio(packet))

    def send_ack(self, ack_id: int, args: Sequence[Any]) -> str:
        """Build the ACK frame answering the client's event ``ack_id``.

        Args:
            ack_id: Event.ack_id.
            args: the callback's arguments (Sails: one, the JWR).

        Returns:
            The frame, e.g. ``43[{"body":...}]``.

        Raises:
            RuntimeError: "/" is not connected.
            ValueError, TypeError: a bad id or a value JSON cannot carry.
        """
        # encode_sio(SIOPacket(ACK, "/", ack_id, list(args))) without the packet: an ack is
        # sent for every virtual request
        self._check_ack(ack_id)
        return f"43{ack_id}{dumps(list(args))}"

    def send_ack_text(self, ack_id: int, arg: str) -> str:
        """send_ack(ack_id, [value]) for one argument already made JSON text (``arg``, as
        dumps() makes it: Sails' JWR, by gateway.ws.sails.jwr_text).

        Raises:
            RuntimeError: "/" is not connected.
            ValueError: a bad id.
        """
        self._check_ack(ack_id)
        return f"43{ack_id}[{arg}]"

    def _check_ack(self, ack_id: int) -> None:
        # what send_ack and send_ack_text refuse: "/" not connected, an id the peer cannot read
        if self._state is not _CONNECTED:
            self._require_connected()
        if not 0 <= ack_id <= _MAX_ACK_ID:
            raise ValueError(f"bad ack id {ack_id}")

    def close_frames(self) -> list[str]:
        """End the session from our side; send these, then close the WebSocket (code 1000).

        Socket.IO servers send DISCONNECT ("41") and close the transport; over a WebSocket no
        Engine.IO close packet is sent (the clients ignore it there). No Disconnected event is
        produced: the caller already knows ("server namespace disconnect").

        Returns:
            ``["41"]`` if "/" was connected, else ``[]`` (also when already closed).
        """
        was_connected = self.connected
        self._state = SessionState.CLOSED
        self._outbox.clear()
        if was_connected:
            return [encode_eio(EIOType.MESSAGE, encode_sio(SIOPacket(SIOType.DISCONNECT)))]
        return []

    def connection_lost(self, reason: str = "transport close") -> list[SessionEvent]:
        """Tell the session the WebSocket went away (closed by the peer or broken).

        Args:
            reason: the Disconnected reason to report.

        Returns:
            ``[Disconnected(reason)]``, or ``[]`` if the session had already ended.
        """
        if self._state is SessionState.CLOSED:
            return []
        return [self._end(reason)]

    # -- input from the peer -----------------------------------------------------------------

    def receive_text(self, text: str, now: float) -> list[SessionEvent]:
        """Feed one WebSocket text message.

        Args:
            text: the message.
            now: the caller's clock, in seconds.

        Returns:
            The events it produced. Replies (pong, CONNECT answer) wait in frames_to_send().
            Protocol violations end the session with a Disconnected event, never an exception.
        """
        state = self._state
        if state is _CLOSED:
            return []
        if state is _HANDSHAKE:
            return [self._end("invalid state", 1002, "message before open_frames()")]
        limit = self.max_payload_bytes
        n = len(text)
        if n > limit or (n * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
            return [self._end("message too big", 1009, f"over {limit} bytes")]
        self._clock.last_rx = now
        if state is _CONNECTED and text.startswith("42"):
            event = _plain_event(text)
            if event is not None:
                return [event]
        try:
            ptype, data = decode_eio(text)
            return self._on_eio(ptype, data, now)
        except RemoteProtocolError as exc:
            return [self._end("parse error", 1002, exc.message)]

    def receive_bytes(self, data: bytes, now: float) -> list[SessionEvent]:
        """Feed one WebSocket binary message.

        Binary frames only ever carry Socket.IO attachments (v4: raw; v3: a type byte first),
        which this gateway does not accept, so this always ends the session as a parse error
        (unless it is over max_payload_bytes: "message too big").

        Args:
            data: the message.
            now: the caller's clock, in seconds.

        Returns:
            ``[Disconnected(...)]``, or ``[]`` if already closed.
        """
        del now
        if self._state is SessionState.CLOSED:
            return []
        if len(data) > self.max_payload_bytes:
            return [self._end("message too big", 1009, f"over {self.max_payload_bytes} bytes")]
        return [self._end("parse error", 1002, "binary messages are not supported")]

    # -- the clock ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When poll() must next be called (caller's clock), or None before open/after close."""
        c = self._clock
        if self._state in (SessionState.CLOSED, SessionState.HANDSHAKE):
            return None
        if self.version == 3:
            return c.last_rx + self.ping_interval_s + self.ping_timeout_s
        heartbeat = c.pong_due if c.pong_due is not None else c.next_ping
        if self._state is SessionState.OPEN:
            return min(heartbeat, c.opened + self.connect_timeout_s)
        return heartbeat

    def poll(self, now: float) -> Disconnected | None:
        """Run the timers: v4 may queue a ping ("2"); a missed heartbeat ends the session.

        Args:
            now: the caller's clock, in seconds.

        Returns:
            Disconnected("ping timeout" / "connect timeout") when the session died, else None.
            Queued pings wait in frames_to_send().
        """
        c = self._clock
        if self._state in (SessionState.CLOSED, SessionState.HANDSHAKE):
            return None
        if self.version == 3:
            if now >= c.last_rx + self.ping_interval_s + self.ping_timeout_s:
                return self._end("ping timeout", 1000, "no packet from the client")
            return None
        # v4: Engine.IO heartbeats run from the open on, whether or not "/" is connected yet.
        if self._state is SessionState.OPEN and now >= c.opened + self.connect_timeout_s:
            return self._end("connect timeout", 1000, "no CONNECT from the client")
        if c.pong_due is not None:
            if now >= c.pong_due:
                return self._end("ping timeout", 1000, "no pong from the client")
        elif now >= c.next_ping:
            self._outbox.append(encode_eio(EIOType.PING))
            c.pong_due = now + self.ping_timeout_s
        return None

    # -- internals ---------------------------------------------------------------------------

    def _require_connected(self) -> None:
        if not self.connected:
            raise RuntimeError(f"namespace '/' is not connected (state {self._state.value})")

    def _end(self, reason: str, close_code: int = 1000, detail: str = "") -> Disconnected:
        self._state = SessionState.CLOSED
        self._clock.pong_due = None
        return Disconnected(reason, close_code, detail)

    def _on_eio(self, ptype: EIOType, data: str, now: float) -> list[SessionEvent]:
        if ptype is EIOType.MESSAGE:
            return self._on_sio(decode_sio(data))
        if ptype is EIOType.PING:
            if self.version == 4:
                return [self._end("parse error", 1002, "invalid heartbeat direction")]
            self._outbox.append(encode_eio(EIOType.PONG, data))
            return []
        if ptype is EIOType.PONG:
            if self.version == 3:
                return [self._end("parse error", 1002, "invalid heartbeat direction")]
            # The next ping goes ping_interval after this pong (as engine.io), but never before
            # the deadline poll() was last told about: receive_* must not move it earlier.
            c = self._clock
            floor = c.pong_due if c.pong_due is not None else c.next_ping
            c.pong_due = None
            c.next_ping = max(now + self.ping_interval_s, floor)
            return []
        if ptype is EIOType.CLOSE:
            return [self._end("transport close")]
        if ptype is EIOType.NOOP:
            return []
        # OPEN from a client, or UPGRADE on a connection that started as a WebSocket.
        return [self._end("parse error", 1002, f"unexpected Engine.IO {ptype.name} packet")]

    def _on_sio(self, packet: SIOPacket) -> list[SessionEvent]:
        # v2 clients may add "?query" to the namespace of a CONNECT; it names the same one.
        namespace = packet.namespace.partition("?")[0]
        ours = namespace == "/" and self._state is SessionState.CONNECTED
        if ours and packet.type is SIOType.EVENT:  # first: every virtual request is one
            data = packet.data
            return [Event(data[0], tuple(data[1:]), packet.id)]
        if packet.type is SIOType.CONNECT:
            if namespace != "/":
                self._outbox.append(self._connect_error(namespace))
                return [ConnectRejected(namespace)]
            if self.version == 3:
                return []  # already connected by open_frames(); socket.io 2 would ignore it
            if ours:
                # socket.io 4 treats a second CONNECT on a live namespace as a broken client.
                return [self._end("invalid state", 1002, "CONNECT on a connected namespace")]
            self._state = SessionState.CONNECTED
            reply = SIOPacket(SIOType.CONNECT, "/", None, {"sid": self.socket_id})
            self._outbox.append(encode_eio(EIOType.MESSAGE, encode_sio(reply)))
            return [Connected("/", packet.data)]
        if not ours:
            # socket.io 2 drops packets for namespaces it has no socket for; socket.io 4
            # closes the whole connection ("invalid state").
            if self.version == 3:
                return []
            return [self._end("invalid state", 1002, f"{packet.type.name} before CONNECT")]
        if packet.type is SIOType.ACK:
            if packet.id is None:
                return [self._end("parse error", 1002, "ACK without an id")]
            return [Ack(packet.id, tuple(packet.data))]
        if packet.type is SIOType.DISCONNECT:
            return [self._end("client namespace disconnect")]
        # CONNECT_ERROR/ERROR is server-to-client only.
        if self.version == 3:
            return []
        return [self._end("invalid state", 1002, "CONNECT_ERROR from a client")]

    def _connect_error(self, namespace: str) -> str:
        data: Any = _INVALID_NAMESPACE if self.version == 3 else {"message": _INVALID_NAMESPACE}
        packet = SIOPacket(SIOType.CONNECT_ERROR, namespace, None, data)
        return encode_eio(EIOType.MESSAGE, encode_sio(packet))
