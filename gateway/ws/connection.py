# Sans-IO server side of an open WebSocket: wsproto's FrameProtocol (frames, masking, UTF-8,
# extensions) under the connection state machine of wsproto.connection.Connection, events and
# state transitions alike. Ours rather than wsproto's Connection so that no private attribute of
# wsproto is touched: that class keeps a deque for its event queue (760 bytes per socket) which
# only ever holds the one close event of a lost connection; here that event is a flag.
# Must not: touch sockets, tasks or the clock; the server feeds bytes and sends what it returns.
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed
from wsproto.utilities import LocalProtocolError

__all__ = ["ServerWebSocket", "ConnectionState"]

_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_LOCAL_CLOSING = ConnectionState.LOCAL_CLOSING


class ServerWebSocket:
    """The server end of an open WebSocket (after the handshake): bytes in, events out.

    Same behaviour as ``wsproto.connection.Connection(ConnectionType.SERVER, extensions)``:
    ``state``, ``send(event) -> bytes``, ``receive_data(bytes | None)`` and ``events()``.
    A parse failure is reported as a ``CloseConnection`` event with the failure's close code
    (1002, 1007, 1009) and reason; the connection's state is left as it was.

    Args:
        extensions: the negotiated extensions (permessage-deflate), or None.
    """

    __slots__ = ("_proto", "_state", "_lost")

    def __init__(self, extensions: list[Extension] | None = None) -> None:
        self._proto = FrameProtocol(False, extensions or [])
        self._state = _OPEN
        self._lost = False  # the transport closed without a Close frame: one event to give

    @property
    def state(self) -> ConnectionState:
        return self._state

    def send(self, event: Event) -> bytes:
        """The bytes for a Message, Ping, Pong or CloseConnection.

        Raises:
            wsproto.utilities.LocalProtocolError: the event cannot be sent in this state.
        """
        state = self._state
        if isinstance(event, Message) and state is _OPEN:
            return bytes(self._proto.send_data(event.data, event.message_finished))
        if isinstance(event, Ping) and state is _OPEN:
            return bytes(self._proto.ping(event.payload))
        if isinstance(event, Pong) and state is _OPEN:
            return bytes(self._proto.pong(event.payload))
        if isinstance(event, CloseConnection) and state in (_OPEN, _REMOTE_CLOSING):
            data = bytes(self._proto.close(event.code, event.reason))
            self._state = _CLOSED if state is _REMOTE_CLOSING else _LOCAL_CLOSING
            return data
        raise LocalProtocolError(f"Event {event} cannot be sent in state {state}.")

    def receive_data(self, data: bytes | None) -> None:
        """Feed bytes from the peer; None when the transport closed.

        Raises:
            wsproto.utilities.LocalProtocolError: the connection is already closed.
        """
        if data is None:
            # RFC 6455 7.1.5: closed without a Close frame: close code 1006
            self._lost = True
            self._state = _CLOSED
            return
        state = self._state
        if state is _OPEN or state is _LOCAL_CLOSING:
            self._proto.receive_bytes(data)
        elif state is _CLOSED:
            raise LocalProtocolError("Connection already closed.")

    def events(self) -> Iterator[Event]:
        """The events the bytes received so far make (each once)."""
        if self._lost:
            self._lost = False
            yield CloseConnection(code=CloseReason.ABNORMAL_CLOSURE)
        # payload types by opcode, as FrameProtocol makes them: str for TEXT, bytes for BINARY,
        # PING and PONG, (code, reason) for CLOSE (the frame's type is their union)
        try:
            for frame in self._proto.received_frames():
                opcode = frame.opcode
                payload: Any = frame.payload
                if opcode is Opcode.TEXT:
                    yield TextMessage(
                        data=payload,
                        frame_finished=frame.frame_finished,
                        message_finished=frame.message_finished,
                    )
                elif opcode is Opcode.BINARY:
                    yield BytesMessage(
                        data=payload,
                        frame_finished=frame.frame_finished,
                        message_finished=frame.message_finished,
                    )
                elif opcode is Opcode.PING:
                    yield Ping(payload=payload)
                elif opcode is Opcode.PONG:
                    yield Pong(payload=payload)
                elif opcode is Opcode.CLOSE:
                    code, reason = payload
                    self._state = _CLOSED if self._state is _LOCAL_CLOSING else _REMOTE_CLOSING
                    yield CloseConnection(code=code, reason=reason)
        except ParseFailed as exc:
            yield CloseConnection(code=exc.code, reason=str(exc))
