# Sans-IO tests of gateway.ws.connection: the fast path for whole data frames against wsproto's
# FrameProtocol alone (the reference: what the connection was before the fast path), fed whole,
# at every byte boundary, one byte at a time and in random chunks (hypothesis): the same
# messages, pings, pongs and the same close code. Plus the edges: lengths 125/126/65535/65536,
# a control frame between fragments, invalid UTF-8, unmasked frames, RSV bits, non-minimal
# lengths, oversize frames, an all-zero mask, the state after a Close. No sockets.
from __future__ import annotations

import itertools
import os
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from gateway.ws.connection import FAST_FRAME_MAX, ConnectionState, ServerWebSocket, unmask

LIMIT = 1 << 20


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x9a\x3c\x55\x01",
    wide: int = 0,
) -> bytes:
    """A client frame built by hand (``mask=None``: unmasked; ``wide``: force the 2- or 8-byte
    length form, minimal or not)."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if wide == 8 or (not wide and n > 0xFFFF):
        head = struct.pack("!BBQ", first, bit | 127, n)
    elif wide == 2 or n > 125:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = bytes((first, bit | n))
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(0x8, struct.pack("!H", code) + reason)


Outcome = tuple[list[Any], "int | None"]


def reference(chunks: list[bytes], limit: int = LIMIT) -> Outcome:
    """wsproto's FrameProtocol alone, with the message limit applied to the assembled parts
    as gateway.server.websocket applies it (UTF-8 bytes for text)."""
    proto = FrameProtocol(False, [])
    out: list[Any] = []
    parts: list[Any] = []
    size = 0
    for chunk in chunks:
        proto.receive_bytes(chunk)
        try:
            for f in proto.received_frames():
                if f.opcode in (Opcode.TEXT, Opcode.BINARY):
                    data: Any = f.payload
                    size += len(data.encode() if isinstance(data, str) else data)
                    if size > limit:
                        return out, 1009
                    parts.append(data)
                    if f.message_finished:
                        out.append(("" if isinstance(data, str) else b"").join(parts))
                        parts, size = [], 0
                elif f.opcode is Opcode.PING:
                    out.append(("ping", f.payload))
                elif f.opcode is Opcode.PONG:
                    out.append(("pong", f.payload))
                else:
                    return out, int(f.payload[0])  # type: ignore[index]
        except ParseFailed as exc:
            return out, int(exc.code)
    return out, None


def ours(chunks: list[bytes], limit: int = LIMIT, conn: ServerWebSocket | None = None) -> Outcome:
    """The connection under test, assembled the same way."""
    conn = conn or ServerWebSocket(None, limit)
    out: list[Any] = []
    parts: list[Any] = []
    size = 0
    for chunk in chunks:
        for item in conn.receive(chunk):
            if isinstance(item, (str, bytes)):
                assert not parts, "a whole message inside a fragmented one"
                assert len(item.encode() if isinstance(item, str) else item) <= limit
                out.append(item)
            elif isinstance(item, (TextMessage, BytesMessage)):
                data: Any = item.data
                size += len(data.encode() if isinstance(data, str) else data)
                if size > limit:
                    return out, 1009
                parts.append(data)
                if item.message_finished:
                    out.append(("" if isinstance(data, str) else b"").join(parts))
                    parts, size = [], 0
            elif isinstance(item, Ping):
                out.append(("ping", item.payload))
            elif isinstance(item, Pong):
                out.append(("pong", item.payload))
            else:
                assert isinstance(item, CloseConnection)
                return out, int(item.code)
    return out, None


def splits(data: bytes) -> list[list[bytes]]:
    """``data`` whole, one byte at a time, and cut in two at every boundary."""
    return [
        [data],
        [data[i : i + 1] for i in range(len(data))],
        *([data[:i], data[i:]] for i in range(1, len(data))),
    ]


# -- unmask --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 64, 125, 8191, 8192, 8193, 65536])
def test_unmask_is_the_xor_with_the_repeated_key(n: int) -> None:
    payload = os.urandom(n)
    key = os.urandom(4)
    assert unmask(payload, key) == bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    assert unmask(unmask(payload, key), key) == payload


def test_all_zero_mask_gives_the_payload_itself() -> None:
    payload = b"hello, zero mask"
    assert unmask(payload, b"\0\0\0\0") is payload
    conn = ServerWebSocket()
    assert conn.receive(frame(0x1, payload, mask=b"\0\0\0\0")) == [payload.decode()]


# -- the fast path and its edges -----------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_lengths_at_the_encoding_edges(n: int, opcode: int) -> None:
    payload = (b"0123456789abcdef" * (n // 16 + 1))[:n]
    message: Any = payload.decode() if opcode == 0x1 else payload
    data = frame(opcode, payload)
    got = ServerWebSocket().receive(data)
    if n <= FAST_FRAME_MAX:
        assert got == [message]  # one whole message: the fast path
    else:  # a long frame: wsproto's pieces
        assert all(isinstance(e, (TextMessage, BytesMessage)) for e in got)
    assert ours([data]) == reference([data]) == ([message], None)


def test_many_frames_in_one_receive_are_whole_messages_in_order() -> None:
    messages: list[Any] = [f"m{i}" if i % 3 else bytes([i]) * i for i in range(200)]
    data = b"".join(
        frame(0x1, m.encode()) if isinstance(m, str) else frame(0x2, m) for m in messages
    )
    assert ServerWebSocket().receive(data) == messages


def test_every_byte_boundary_gives_the_same_result() -> None:
    data = (
        frame(0x1, b"hello")
        + frame(0x2, bytes(range(200)))
        + frame(0x1, b"frag-", fin=False)
        + frame(0x9, b"ping in between")
        + frame(0x0, b"ment", fin=False)
        + frame(0x0, b"ed")
        + frame(0xA, b"pong")
        + frame(0x1, "é".encode() * 70)
        + close_frame(1000, b"bye")
    )
    expected = (
        [
            "hello",
            bytes(range(200)),
            ("ping", b"ping in between"),
            "frag-mented",
            ("pong", b"pong"),
            "é" * 70,
        ],
        1000,
    )
    for chunks in splits(data):
        assert ours(chunks) == reference(chunks) == expected, [len(c) for c in chunks]


def test_a_head_without_its_payload_waits_then_completes() -> None:
    data = frame(0x2, b"x" * 300)
    conn = ServerWebSocket()
    assert conn.receive(data[:8]) == []  # the head and the mask key, no payload yet
    got = conn.receive(data[8:100]) + conn.receive(data[100:])
    assert b"".join(e.data for e in got) == b"x" * 300
    assert got[-1].message_finished
    assert conn.receive(frame(0x1, b"next")) == ["next"]  # whole frames are fast again


def test_a_head_cut_in_two_is_kept() -> None:
    data = frame(0x2, b"y" * 1000)  # 2 + 2 + 4 bytes of head
    conn = ServerWebSocket()
    for i in range(1, 8):
        conn = ServerWebSocket()
        assert conn.receive(data[:i]) == []
        assert conn.receive(data[i:]) == [b"y" * 1000]


def test_control_frame_between_fragments_then_fast_again() -> None:
    conn = ServerWebSocket()
    got = conn.receive(
        frame(0x2, b"ab", fin=False) + frame(0x9, b"p") + frame(0x0, b"cd") + frame(0x2, b"ef")
    )
    assert [type(e) for e in got] == [BytesMessage, Ping, BytesMessage, bytes]
    assert got[1] == Ping(b"p") and got[3] == b"ef"
    assert not got[0].message_finished and got[2].message_finished


def test_a_whole_frame_inside_a_fragmented_message_is_1002() -> None:
    data = frame(0x1, b"start", fin=False) + frame(0x1, b"whole")
    assert ours([data]) == reference([data]) == ([], 1002)


def test_invalid_utf8_in_a_whole_text_frame_is_1007_and_nothing_after_it_is_read() -> None:
    conn = ServerWebSocket()
    got = conn.receive(frame(0x1, b"ok") + frame(0x1, b"bad \xc3\x28") + frame(0x1, b"after"))
    assert got[0] == "ok"
    assert isinstance(got[1], CloseConnection) and got[1].code == 1007
    assert len(got) == 2
    assert conn.receive(frame(0x1, b"later")) == []
    assert conn.state is ConnectionState.OPEN  # failing is the caller's: it sends the Close


def test_invalid_utf8_in_a_text_frame_in_pieces_fails_fast() -> None:
    data = frame(0x1, b"valid start, then \xff" + b"x" * 100)
    conn = ServerWebSocket()
    got = conn.receive(data[:30])  # the bad byte has come, the frame's end has not
    assert isinstance(got[-1], CloseConnection) and got[-1].code == 1007


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x1, b"x", mask=None), 1002),  # unmasked client frame
        (frame(0x2, b"x" * 200, mask=None), 1002),
        (frame(0x1, b"x", rsv=0x40), 1002),  # RSV1 without an extension
        (frame(0x2, b"x", rsv=0x20), 1002),
        (frame(0x1, b"x", rsv=0x10), 1002),
        (frame(0x3, b"x"), 1002),  # reserved opcode
        (frame(0x9, b"p", fin=False), 1002),  # fragmented control frame
        (frame(0x9, b"p" * 126), 1002),  # control frame over 125 bytes
        (frame(0x0, b"x"), 1002),  # continuation without a start
        (frame(0x1, b"short", wide=2), 1002),  # a 2-byte length for 5 bytes
        (frame(0x2, b"z" * 300, wide=8), 1002),  # an 8-byte length for 300 bytes
        (frame(0x8, b"\x03"), 1002),  # a Close with one byte
        (close_frame(999), 1002),
        (close_frame(1000, b"\xff"), 1007),
    ],
)
def test_protocol_errors_have_wsprotos_close_codes(data: bytes, code: int) -> None:
    before = frame(0x1, b"first")
    for chunks in splits(before + data):
        assert ours(chunks) == reference(chunks) == (["first"], code)


def test_oversize_frames_go_to_wsproto_in_pieces() -> None:
    conn = ServerWebSocket(None, max_message_bytes=1000)
    assert conn.receive(frame(0x2, b"a" * 1000)) == [b"a" * 1000]
    got = conn.receive(frame(0x2, b"b" * 1001))
    assert got and all(isinstance(e, BytesMessage) for e in got)  # the caller counts: 1009
    data = frame(0x2, b"c" * 1001)
    assert ours([data], 1000) == reference([data], 1000) == ([], 1009)


def test_a_peer_close_stops_the_fast_path() -> None:
    conn = ServerWebSocket()
    got = conn.receive(frame(0x1, b"a") + close_frame(1001, b"away") + frame(0x1, b"b"))
    assert got[0] == "a"
    assert got[1] == CloseConnection(1001, "away")
    assert len(got) == 2
    assert conn.state is ConnectionState.REMOTE_CLOSING
    assert conn.send(CloseConnection(1001)) == b"\x88\x02\x03\xe9"
    assert conn.state is ConnectionState.CLOSED


def test_after_our_close_wsproto_reads_until_the_answer() -> None:
    conn = ServerWebSocket()
    data = frame(0x1, b"late") + close_frame(1000)
    assert conn.receive(data[:3]) == []  # a head cut in two before our Close...
    conn.send(CloseConnection(1000))
    assert conn.state is ConnectionState.LOCAL_CLOSING
    got = conn.receive(data[3:])  # ...is read by wsproto from its first byte
    assert got == [TextMessage("late"), CloseConnection(1000, "")]
    assert conn.state is ConnectionState.CLOSED


def test_a_lost_connection_is_1006() -> None:
    conn = ServerWebSocket()
    assert conn.receive(frame(0x1, b"x")[:3]) == []
    assert conn.receive(b"") == [CloseConnection(1006)]
    assert conn.state is ConnectionState.CLOSED


# -- differential: random frame sequences, random cuts -------------------------------------------

_KEYS = st.one_of(st.just(b"\0\0\0\0"), st.binary(min_size=4, max_size=4))


@st.composite
def frames(draw: Any) -> bytes:
    kind = draw(
        st.sampled_from(
            ["text", "text", "text", "binary", "binary", "bad-text", "fragmented", "control"]
            + ["close", "odd"]
        )
    )
    key = draw(_KEYS)
    if kind in ("text", "binary", "bad-text"):
        length = draw(st.sampled_from([0, 1, 5, 125, 126, 300, 1001, 65535, 65536, 70000]))
        if kind == "text":
            seed = draw(st.text(min_size=1, max_size=8)).encode()
        elif kind == "bad-text":
            seed = draw(st.binary(min_size=1, max_size=8))
        else:
            seed = draw(st.binary(min_size=1, max_size=8))
        payload = (seed * (length // len(seed) + 1))[:length]
        return frame(0x1 if kind != "binary" else 0x2, payload, mask=key)
    if kind == "fragmented":
        opcode = draw(st.sampled_from([0x1, 0x2]))
        pieces = draw(st.lists(st.text(max_size=20), min_size=1, max_size=4))
        out = b""
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            out += frame(0x0 if i else opcode, piece.encode(), fin=last, mask=key)
            if draw(st.booleans()):
                out += frame(0x9, b"between", mask=key)
        return out
    if kind == "control":
        return frame(draw(st.sampled_from([0x9, 0xA])), draw(st.binary(max_size=125)), mask=key)
    if kind == "close":
        code = draw(st.sampled_from([1000, 1001, 1002, 1005, 1006, 999, 3000, 4999, 5000]))
        return frame(0x8, struct.pack("!H", code) + draw(st.binary(max_size=5)), mask=key)
    # odd: the rare shapes
    return draw(
        st.sampled_from(
            [
                frame(0x1, b"x", rsv=0x40),
                frame(0x2, b"unmasked", mask=None),
                frame(0x3, b"reserved"),
                frame(0x0, b"lonely continuation"),
                frame(0x1, b"wide", wide=2),
                frame(0x2, b"wider", wide=8),
                frame(0x1, b"unfinished", fin=False),
                frame(0x8, b"\x03"),
            ]
        )
    )


@st.composite
def streams(draw: Any) -> tuple[list[bytes], int]:
    data = b"".join(draw(st.lists(frames(), min_size=1, max_size=8)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6))))
    bounds = [0, *cuts, len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    limit = draw(st.sampled_from([100, 1000, 65536, LIMIT]))
    return chunks, limit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_differential_against_wsproto_alone(stream: tuple[list[bytes], int]) -> None:
    chunks, limit = stream
    assert ours(chunks, limit) == reference(chunks, limit)
