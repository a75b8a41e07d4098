# Sans-IO server side of an open WebSocket: bytes in, whole messages and events out, in order.
# The common frame (FIN, RSV 0, text or binary, masked, whole in the input, within the message
# limit and 64 KiB, outside a fragmented message, no extension negotiated) is parsed and
# unmasked here straight from the input and given as one whole message; every other frame goes,
# frame-aligned, to wsproto's FrameProtocol (control frames, fragments, RSV bits, reserved
# opcodes, frames that come in pieces, long or oversize frames, bad lengths), which keeps its
# validation, its fail-fast UTF-8 check and its close semantics.
# Must not: touch sockets, tasks or the clock, or read wsproto's private attributes.
#
# Theory of operation. Input is cut at frame boundaries by our own head parse: a frame is
# either ours (a whole message) or owed to wsproto (`_owed` bytes of it still to feed). wsproto
# therefore only ever gets frames from their first byte, and after each of them it is back at a
# frame boundary; whether it is inside a fragmented message is read from the data frames it
# gives (message_finished). A head cut by the end of the input waits in `_stash` (< 14 bytes).
# The state (OPEN -> LOCAL_CLOSING / REMOTE_CLOSING -> CLOSED) is wsproto.connection.
# Connection's and moves only in send() and on a received Close; once it has left OPEN, or
# after a failure, nothing is fast-parsed again (after a failure nothing is parsed at all).
from __future__ import annotations

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

__all__ = ["ServerWebSocket", "ConnectionState", "FAST_FRAME_MAX", "unmask"]

_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_LOCAL_CLOSING = ConnectionState.LOCAL_CLOSING
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY

# routes for the input
_FAST = 0  # frame by frame: ours or wsproto's
_WSPROTO = 1  # everything to wsproto (extensions negotiated, or no longer OPEN)
_FAILED = 2  # the input could not be parsed: nothing after it is read

# Frames up to here are ours when a read brings them whole; longer ones go through wsproto,
# which unmasks them piece by piece as they arrive (cache-sized pieces: faster at megabytes).
FAST_FRAME_MAX = 65536
_INT_XOR_MAX = 8192  # up to here one big-int XOR unmasks fastest; above, four translate()s
_IDENT = int.from_bytes(bytes(range(256)), "little")
_ONES = int.from_bytes(b"\x01" * 256, "little")
_ZERO_KEY = b"\x00\x00\x00\x00"


def unmask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte masking ``key`` (RFC 6455 5.3).

    Args:
        payload: the masked payload.
        key: the frame's 4-byte masking key.

    Returns:
        The unmasked payload (``payload`` itself when the key is all zero).
    """
    n = len(payload)
    if key == _ZERO_KEY:
        return payload
    if n <= _INT_XOR_MAX:
        mask = (key * ((n >> 2) + 1))[:n]
        return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
            n, "little"
        )
    data = bytearray(payload)
    for i in range(4):  # every 4th byte through a 256-byte table: C speed on large payloads
        data[i::4] = data[i::4].translate((_IDENT ^ (key[i] * _ONES)).to_bytes(256, "little"))
    return bytes(data)


class ServerWebSocket:
    """The server end of an open WebSocket (after the handshake): bytes in, messages out.

    ``receive(data)`` gives, in order, whole messages as ``str`` (text) or ``bytes`` (binary)
    when a frame carried one whole, and wsproto events for the rest: ``TextMessage`` /
    ``BytesMessage`` parts of fragmented or oversize messages (as wsproto gives them),
    ``Ping``, ``Pong`` and ``CloseConnection``. A parse failure is a ``CloseConnection`` with
    the failure's close code (1002, 1007) and reason, and the state is left as it was; nothing
    after it is parsed. ``send(event) -> bytes`` and ``state`` are those of
    ``wsproto.connection.Connection(ConnectionType.SERVER, extensions)``; ``state`` is a plain
    attribute (read it, never set it: only send() and receive() move it), since it is read
    several times per message and a property costs a call each time.

    Args:
        extensions: the negotiated extensions (permessage-deflate), or None: with any, every
            frame goes through wsproto.
        max_message_bytes: frames with a longer payload (or one over FAST_FRAME_MAX) go
            through wsproto in pieces (the caller enforces its limit on those pieces).
    """

    __slots__ = ("_proto", "state", "_route", "_max", "_owed", "_fragmented", "_stash")

    def __init__(
        self, extensions: list[Extension] | None = None, max_message_bytes: int = 1 << 20
    ) -> None:
        self._proto = FrameProtocol(False, extensions or [])
        self.state: ConnectionState = _OPEN
        self._route = _WSPROTO if extensions else _FAST
        self._max = min(max_message_bytes, FAST_FRAME_MAX)
        self._owed = 0  # bytes of the current frame still to give wsproto
        self._fragmented = False  # wsproto is inside a fragmented message
        self._stash = b""  # the start of a frame head that came without the rest of it

    def send(self, event: Event) -> bytes:
        """The bytes for a Message, Ping, Pong or CloseConnection.

        Raises:
            wsproto.utilities.LocalProtocolError: the event cannot be sent in this state.
        """
        state = self.state
        if isinstance(event, Message) and state is _OPEN:
            return bytes(self._proto.send_data(event.data, event.message_finished))
        if isinstance(event, Ping) and state is _OPEN:
            return bytes(self._proto.ping(event.payload))
        if isinstance(event, Pong) and state is _OPEN:
            return bytes(self._proto.pong(event.payload))
        if isinstance(event, CloseConnection) and state in (_OPEN, _REMOTE_CLOSING):
            data = bytes(self._proto.close(event.code, event.reason))
            self.state = _CLOSED if state is _REMOTE_CLOSING else _LOCAL_CLOSING
            return data
        raise LocalProtocolError(f"Event {event} cannot be sent in state {state}.")

    def receive(self, data: bytes) -> list[Any]:
        """Feed bytes from the peer; b"" when the transport closed.

        Returns:
            What the bytes complete, in order: str / bytes (whole messages) and wsproto events
            (see the class); a lost connection gives ``CloseConnection(1006)``.

        Raises:
            wsproto.utilities.LocalProtocolError: the connection is already closed.
        """
        if not data:
            # RFC 6455 7.1.5: closed without a Close frame: close code 1006
            self.state = _CLOSED
            return [CloseConnection(code=CloseReason.ABNORMAL_CLOSURE)]
        if self._route:
            if self._route == _FAILED:
                return []
            return self._to_wsproto(data, [])
        if self._stash:  # the start of a frame head
            data = self._stash + data
            self._stash = b""
        if self.state is not _OPEN:  # we sent a Close: wsproto reads on until the answer
            self._route = _WSPROTO
            return self._to_wsproto(data, [])
        out: list[Any] = []
        end = len(data)
        pos = 0
        limit = self._max
        while pos < end:
            if self._owed:  # the rest of a frame wsproto has the start of
                owed = self._owed
                piece = data[pos : pos + owed] if pos or end > owed else data
                pos += len(piece)
                self._owed = owed - len(piece)
                self._proto.receive_bytes(piece)
                self._drain(out)
                if self._route:  # a Close or a failure: nothing after it is parsed
                    return out
                continue
            left = end - pos
            if left < 2:
                self._stash = data[pos:]
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            n = b1 & 0x7F
            if n < 126:
                head = 2
            elif n == 126:
                if left < 4:
                    self._stash = data[pos:]
                    break
                n = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
            else:
                if left < 10:
                    self._stash = data[pos:]
                    break
                n = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            if not b1 & 0x80:  # unmasked: wsproto's 1002
                self._owed = head + n
                continue
            head += 4
            if left < head:  # the mask key is still to come
                self._stash = data[pos:]
                break
            size = head + n
            if (
                (b0 == 0x81 or b0 == 0x82)  # FIN, no RSV bit, text or binary
                and size <= left  # whole here: a frame in pieces is wsproto's (UTF-8 fails fast)
                and n <= limit
                and not self._fragmented  # else a new message inside another: wsproto's 1002
                and (head == 6 or (n > 125 if head == 8 else n > 0xFFFF))  # minimal length
            ):
                payload = unmask(data[pos + head : pos + size], data[pos + head - 4 : pos + head])
                pos += size
                if b0 == 0x81:
                    try:
                        out.append(payload.decode())
                    except UnicodeDecodeError as exc:
                        self._route = _FAILED
                        out.append(CloseConnection(code=1007, reason=str(exc)))
                        return out
                else:
                    out.append(payload)
            else:  # not ours: the whole frame goes to wsproto, which validates it
                self._owed = size
        return out

    def _to_wsproto(self, data: bytes, out: list[Any]) -> list[Any]:
        state = self.state
        if state is _OPEN or state is _LOCAL_CLOSING:
            self._proto.receive_bytes(data)
            self._drain(out)
        elif state is _CLOSED:
            raise LocalProtocolError("Connection already closed.")
        return out

    def _drain(self, out: list[Any]) -> None:
        # wsproto's frames as events; payload types by opcode, as FrameProtocol makes them: str
        # for TEXT, bytes for BINARY, PING and PONG, (code, reason) for CLOSE
        try:
            for frame in self._proto.received_frames():
                opcode = frame.opcode
                payload: Any = frame.payload
                if opcode is _TEXT or opcode is _BINARY:
                    finished = frame.message_finished
                    self._fragmented = not finished
                    cls = TextMessage if opcode is _TEXT else BytesMessage
                    out.append(
                        cls(
                            data=payload,
                            frame_finished=frame.frame_finished,
                            message_finished=finished,
                        )
                    )
                elif opcode is Opcode.PING:
                    out.append(Ping(payload=payload))
                elif opcode is Opcode.PONG:
                    out.append(Pong(payload=payload))
                elif opcode is Opcode.CLOSE:
                    code, reason = payload
                    self.state = _CLOSED if self.state is _LOCAL_CLOSING else _REMOTE_CLOSING
                    self._route = _WSPROTO
                    out.append(CloseConnection(code=code, reason=reason))
        except ParseFailed as exc:
            self._route = _FAILED
            out.append(CloseConnection(code=exc.code, reason=str(exc)))
