# The client side of Engine.IO v3/v4 + Socket.IO over an already-open WebSocket, sans-IO: the
# mirror of engineio.EngineIOSession, built on the same packet codecs (decode_eio/encode_eio,
# decode_sio/encode_sio, dumps).
# Owns: the open packet, the CONNECT handshake for "/", heartbeats (v3: we ping; v4: we answer),
# ack ids for the events we emit, and noticing a v3 server behind a v4 request.
# Must not: touch sockets, tasks or a clock (the caller passes `now`), or know about Sails.
#
# Theory of operation
#   States: OPENING -> CONNECTING -> CONNECTED -> CLOSED (ClientState)
#   - OPENING: the WebSocket is open; the server speaks first with its open packet ("0{...}").
#     We take its sid and timings (Opened) and, in v4, send "40" (CONNECT "/").
#   - CONNECTING -> CONNECTED on the server's CONNECT: v4 answers '40{"sid":...}'; a v3 server
#     sends a bare "40" unprompted. A bare "40" while we asked for v4 means the server speaks
#     v3 whatever the query said: the session switches to v3 rules (version becomes 3).
#     A CONNECT_ERROR ("44...") ends the session (Disconnected("connect error")).
#   - CLOSED once, with exactly one Disconnected unless the caller ended it (close_frames).
#   Heartbeats (poll(now); next_deadline() says when): v3: we send "2" every pingInterval and
#   expect "3" within pingTimeout; v4: the server pings ("2"), we answer "3" at once, and
#   silence for pingInterval + pingTimeout ends the session ("ping timeout").
#   Frames the peer or the clock make necessary wait in frames_to_send(); frames the caller
#   asks for (emit, close_frames) are returned.
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from gateway.errors import ProtocolError
from gateway.ws.engineio import (
    EIOType,
    SIOPacket,
    SIOType,
    decode_eio,
    decode_sio,
    dumps,
    encode_eio,
    encode_sio,
)

__all__ = [
    "ClientState",
    "Opened",
    "ServerConnected",
    "ServerEvent",
    "ServerAck",
    "ClientDisconnected",
    "ClientEvent",
    "EngineIOClient",
]

_CONNECT: Final = "40"
_PING: Final = "2"
_PONG: Final = "3"


class ClientState(enum.Enum):
    """Where an EngineIOClient is; see the theory of operation above."""

    OPENING = "opening"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Opened:
    """The server's Engine.IO open packet.

    Attributes:
        sid: the Engine.IO session id.
        ping_interval_s, ping_timeout_s: the heartbeat timings it announced.
        max_payload: v4 servers' announced limit, or None.
    """

    sid: str
    ping_interval_s: float
    ping_timeout_s: float
    max_payload: int | None


@dataclass(frozen=True, slots=True)
class ServerConnected:
    """Namespace "/" is connected (events may be emitted).

    Attributes:
        socket_id: the Socket.IO socket id (v4: from the CONNECT reply; v3: the Engine.IO sid).
        version: the protocol actually spoken (3 after a fallback).
    """

    socket_id: str
    version: int


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """The server emitted an event (a Sails push: ``42["message",{...}]``)."""

    name: str
    args: tuple[Any, ...]
    ack_id: int | None = None


@dataclass(frozen=True, slots=True)
class ServerAck:
    """The server acknowledged our event ``id`` (a Sails JWR is ``args[0]``)."""

    id: int
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ClientDisconnected:
    """The session is over.

    Attributes:
        reason: "io server disconnect", "transport close", "ping timeout", "parse error",
            "connect error", "message too big".
        detail: what exactly happened.
    """

    reason: str
    detail: str = ""


ClientEvent = Opened | ServerConnected | ServerEvent | ServerAck | ClientDisconnected


class EngineIOClient:
    """Sans-IO Engine.IO + Socket.IO client session for namespace "/" (see the theory above).

    Args:
        version: the EIO version asked for in the handshake query (3 or 4).
        max_payload_bytes: the largest message accepted from the server.

    Raises:
        ValueError: another version, or a non-positive limit.
    """

    __slots__ = (
        "version",
        "max_payload_bytes",
        "sid",
        "socket_id",
        "ping_interval_s",
        "ping_timeout_s",
        "_state",
        "_outbox",
        "_next_ack",
        "_last_rx",
        "_next_ping",
        "_pong_due",
    )

    def __init__(self, version: int = 4, max_payload_bytes: int = 16 << 20) -> None:
        if version not in (3, 4):
            raise ValueError(f"unsupported Engine.IO version {version!r}")
        if max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        self.version = version
        self.max_payload_bytes = max_payload_bytes
        self.sid = ""
        self.socket_id = ""
        self.ping_interval_s = 25.0
        self.ping_timeout_s = 20.0
        self._state = ClientState.OPENING
        self._outbox: list[str] = []
        self._next_ack = 0
        self._last_rx = 0.0
        self._next_ping = 0.0
        self._pong_due: float | None = None

    @property
    def state(self) -> ClientState:
        """The current ClientState."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while "/" is connected."""
        return self._state is ClientState.CONNECTED

    def frames_to_send(self) -> list[str]:
        """Take the frames the server or the clock made necessary (CONNECT, pongs, v3 pings).

        Returns:
            Text frames in order; the queue is then empty.
        """
        out, self._outbox = self._outbox, []
        return out

    # -- frames the caller asks for ----------------------------------------------------------

    def emit(self, name: str, *args: Any, ack: bool = True) -> tuple[str, int | None]:
        """Build an EVENT frame for "/" (a Sails virtual request is ``emit("get", {...})``).

        Args:
            name: the event name.
            *args: JSON-able arguments.
            ack: ask for an acknowledgement (its answer comes as ServerAck with the id).

        Returns:
            (frame, ack id or None).

        Raises:
            RuntimeError: "/" is not connected.
            ValueError, TypeError: a reserved name or a value JSON cannot carry.
        """
        if self._state is not ClientState.CONNECTED:
            raise RuntimeError(f"namespace '/' is not connected ({self._state.value})")
        ack_id: int | None = None
        if ack:
            ack_id = self._next_ack
            self._next_ack += 1
            # encode_sio without the packet object: one per request on the hot path
            return f"42{ack_id}{dumps([name, *args])}", ack_id
        return encode_eio(
            EIOType.MESSAGE, encode_sio(SIOPacket(SIOType.EVENT, "/", None, [name, *args]))
        ), None

    def close_frames(self) -> list[str]:
        """Leave "/" ("41"); then close the WebSocket. No ClientDisconnected follows.

        Returns:
            ``["41"]`` when connected, else ``[]``.
        """
        was = self._state is ClientState.CONNECTED
        self._state = ClientState.CLOSED
        self._outbox.clear()
        return ["41"] if was else []

    def connection_lost(self, detail: str = "") -> list[ClientEvent]:
        """The WebSocket went away.

        Returns:
            ``[ClientDisconnected("transport close")]``, or ``[]`` if already over.
        """
        if self._state is ClientState.CLOSED:
            return []
        return [self._end("transport close", detail)]

    # -- input ---------------------------------------------------------------------------------

    def receive_text(self, text: str, now: float) -> list[ClientEvent]:
        """Feed one WebSocket text message from the server.

        Args:
            text: the message.
            now: the caller's clock, in seconds.

        Returns:
            The events it produced; a protocol violation ends the session with a
            ClientDisconnected, never an exception.
        """
        if self._state is ClientState.CLOSED:
            return []
        if len(text) > self.max_payload_bytes:
            return [self._end("message too big", f"over {self.max_payload_bytes} characters")]
        self._last_rx = now
        try:
            ptype, data = decode_eio(text)
            if ptype is EIOType.MESSAGE:
                return self._on_sio(data, now)
            if ptype is EIOType.PING:
                if self.version == 3:
                    raise ProtocolError("a v3 server does not ping")
                self._outbox.append(_PONG + data)
                return []
            if ptype is EIOType.PONG:
                if self.version == 4:
                    raise ProtocolError("a v4 server does not send pongs")
                self._pong_due = None
                return []
            if ptype is EIOType.OPEN:
                return self._on_open(data, now)
            if ptype is EIOType.CLOSE:
                return [self._end("transport close", "Engine.IO close packet")]
            if ptype is EIOType.NOOP:
                return []
            raise ProtocolError(f"unexpected Engine.IO {ptype.name} packet")
        except ProtocolError as exc:
            return [self._end("parse error", exc.message)]

    def receive_bytes(self, data: bytes, now: float) -> list[ClientEvent]:
        """A binary message: Socket.IO attachments are not supported, so the session ends."""
        del data, now
        if self._state is ClientState.CLOSED:
            return []
        return [self._end("parse error", "binary messages are not supported")]

    # -- the clock -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When poll() must next run (caller's clock), or None before the open / after close."""
        if self._state in (ClientState.OPENING, ClientState.CLOSED):
            return None
        if self.version == 3:
            return self._pong_due if self._pong_due is not None else self._next_ping
        return self._last_rx + self.ping_interval_s + self.ping_timeout_s

    def poll(self, now: float) -> ClientDisconnected | None:
        """Run the heartbeat: v3 may queue a ping; a missed heartbeat ends the session.

        Returns:
            ClientDisconnected("ping timeout") when the server went silent, else None.
        """
        if self._state in (ClientState.OPENING, ClientState.CLOSED):
            return None
        if self.version == 4:
            if now >= self._last_rx + self.ping_interval_s + self.ping_timeout_s:
                return self._end("ping timeout", "no ping from the server")
            return None
        if self._pong_due is not None:
            if now >= self._pong_due:
                return self._end("ping timeout", "no pong from the server")
        elif now >= self._next_ping:
            self._outbox.append(_PING)
            self._pong_due = now + self.ping_timeout_s
            self._next_ping = now + self.ping_interval_s
        return None

    # -- internals -----------------------------------------------------------------------------

    def _end(self, reason: str, detail: str = "") -> ClientDisconnected:
        self._state = ClientState.CLOSED
        self._outbox.clear()
        return ClientDisconnected(reason, detail)

    def _on_open(self, data: str, now: float) -> list[ClientEvent]:
        if self._state is not ClientState.OPENING:
            raise ProtocolError("a second Engine.IO open packet")
        try:
            info = json.loads(data) if data else None
        except ValueError:
            info = None
        if not isinstance(info, dict) or not isinstance(info.get("sid"), str):
            raise ProtocolError("bad Engine.IO open packet")
        interval, timeout = info.get("pingInterval"), info.get("pingTimeout")
        if not (
            isinstance(interval, (int, float))
            and isinstance(timeout, (int, float))
            and interval > 0
            and timeout > 0
        ):
            raise ProtocolError("bad heartbeat timings in the open packet")
        self.sid = info["sid"]
        self.ping_interval_s = interval / 1000
        self.ping_timeout_s = timeout / 1000
        self._next_ping = now + self.ping_interval_s
        self._state = ClientState.CONNECTING
        if self.version == 4:
            self._outbox.append(_CONNECT)
        max_payload = info.get("maxPayload")
        return [
            Opened(
                self.sid,
                self.ping_interval_s,
                self.ping_timeout_s,
                max_payload if isinstance(max_payload, int) else None,
            )
        ]

    def _on_sio(self, data: str, now: float) -> list[ClientEvent]:
        # Acks are most of the traffic: "43<id>[...]" parsed by the shared codec
        packet = decode_sio(data)
        if packet.namespace.partition("?")[0] != "/":
            return []  # another namespace: not ours (socket.io clients ignore it too)
        ptype = packet.type
        if ptype is SIOType.ACK:
            if packet.id is None:
                raise ProtocolError("ACK without an id")
            return [ServerAck(packet.id, tuple(packet.data))]
        if ptype is SIOType.EVENT:
            if self._state is not ClientState.CONNECTED:
                raise ProtocolError("EVENT before CONNECT")
            return [ServerEvent(packet.data[0], tuple(packet.data[1:]), packet.id)]
        if ptype is SIOType.CONNECT:
            if self._state is ClientState.CONNECTED:
                return []  # socket.io 2 may confirm twice
            if self._state is not ClientState.CONNECTING:
                raise ProtocolError("CONNECT before the open packet")
            payload = packet.data
            if payload is None:
                # the server connected "/" unprompted: it speaks v3 (Socket.IO 2)
                self.version = 3
                self.socket_id = self.sid
                self._next_ping = now + self.ping_interval_s
            else:
                sid = payload.get("sid")
                self.socket_id = sid if isinstance(sid, str) else self.sid
            self._state = ClientState.CONNECTED
            return [ServerConnected(self.socket_id, self.version)]
        if ptype is SIOType.DISCONNECT:
            return [self._end("io server disconnect")]
        # CONNECT_ERROR (v4) / ERROR (v3)
        message = (
            packet.data.get("message", "") if isinstance(packet.data, dict) else str(packet.data)
        )
        return [self._end("connect error", message)]
