# gateway.ws.engineio at its edges, where a session that ends right but says the wrong thing
# would go unnoticed: every protocol violation's exact Disconnected (the close code reaches the
# peer, the detail the log), the payload ceiling at exactly max_payload_bytes, ack ids at 15
# digits, the defaults that mirror socket.io 4, and the error messages a caller's bug gets.
# Sans-IO, explicit `now` values. Written against the mutants docs/TESTING.md lists.
from __future__ import annotations

import pytest

from gateway.errors import ProtocolError
from gateway.ws.engineio import (
    Connected,
    Disconnected,
    EngineIOSession,
    SIOPacket,
    SIOType,
    decode_eio,
    decode_sio,
    encode_sio,
)

SID = "brBOXffQi1SNG08jIaqr"


def opened(version: int, *, connect: bool = True, **kw: int) -> EngineIOSession:
    s = EngineIOSession(version, SID, ping_interval_s=25, ping_timeout_s=20, **kw)  # type: ignore[arg-type]
    s.open_frames(0.0)
    if version == 4 and connect:
        assert s.receive_text("40", 0.0) == [Connected("/", None)]
        s.frames_to_send()
    return s


@pytest.mark.parametrize(
    ("version", "connect", "frame", "ended"),
    [
        (3, True, "3", Disconnected("parse error", 1002, "invalid heartbeat direction")),
        (4, True, "2", Disconnected("parse error", 1002, "invalid heartbeat direction")),
        (4, True, "0{}", Disconnected("parse error", 1002, "unexpected Engine.IO OPEN packet")),
        (4, True, "5", Disconnected("parse error", 1002, "unexpected Engine.IO UPGRADE packet")),
        (4, True, "x", Disconnected("parse error", 1002, "unknown Engine.IO packet type 'x'")),
        (4, True, "43[]", Disconnected("parse error", 1002, "ACK without an id")),
        (4, True, "40", Disconnected("invalid state", 1002, "CONNECT on a connected namespace")),
        (4, False, '42["get"]', Disconnected("invalid state", 1002, "EVENT before CONNECT")),
        (
            4,
            True,
            '44{"message":"x"}',
            Disconnected("invalid state", 1002, "CONNECT_ERROR from a client"),
        ),
    ],
)
def test_every_violation_ends_with_its_reason_code_and_detail(
    version: int, connect: bool, frame: str, ended: Disconnected
) -> None:
    assert opened(version, connect=connect).receive_text(frame, 1.0) == [ended]


def test_a_message_before_the_open_packet_is_an_invalid_state() -> None:
    s = EngineIOSession(4, SID)
    assert s.receive_text("40", 0.0) == [
        Disconnected("invalid state", 1002, "message before open_frames()")
    ]


@pytest.mark.parametrize(
    ("text", "too_big"),
    [
        ('42["' + "x" * 15 + '"]', False),  # 21 characters, 21 bytes: exactly the ceiling
        ('42["' + "x" * 16 + '"]', True),
        ('42["' + "é" * 7 + "x" + '"]', False),  # 14 characters, 21 bytes: at the ceiling
        ('42["' + "é" * 8 + '"]', True),  # 14 characters, 22 bytes
        ('42["' + "x" * 7 + '"]', False),  # 13 characters: 4 * 13 > 21, and 13 bytes
    ],
)
def test_the_payload_ceiling_is_exactly_max_payload_bytes(text: str, too_big: bool) -> None:
    events = opened(4, max_payload_bytes=21).receive_text(text, 1.0)
    if too_big:
        assert events == [Disconnected("message too big", 1009, "over 21 bytes")]
    else:
        assert len(events) == 1 and not isinstance(events[0], Disconnected)


def test_binary_messages_are_refused_and_too_big_ones_say_so() -> None:
    assert opened(4, max_payload_bytes=10).receive_bytes(b"x" * 10, 1.0) == [
        Disconnected("parse error", 1002, "binary messages are not supported")
    ]
    assert opened(4, max_payload_bytes=10).receive_bytes(b"x" * 11, 1.0) == [
        Disconnected("message too big", 1009, "over 10 bytes")
    ]


def test_ack_ids_up_to_15_digits_are_sent_and_longer_or_negative_refused() -> None:
    s = opened(4)
    assert s.send_ack(999_999_999_999_999, [1]) == "43999999999999999[1]"
    for bad in (1_000_000_000_000_000, -1):
        with pytest.raises(ValueError, match=rf"^bad ack id {bad}$"):
            s.send_ack(bad, [])


def test_an_unsolicited_pong_schedules_the_next_ping_from_it() -> None:
    s = opened(4)
    assert s.receive_text("3", 10.0) == []  # no ping outstanding: not an error
    assert s.next_deadline() == 35.0


def test_the_defaults_are_socket_io_4s() -> None:
    # pingInterval 25000, pingTimeout 20000, connectTimeout 45000, maxHttpBufferSize 1e6
    s = EngineIOSession(4, SID)
    assert s.open_frames(0.0) == [
        '0{"sid":"brBOXffQi1SNG08jIaqr","upgrades":[],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":1000000}'
    ]
    assert s.poll(25.0) is None and s.frames_to_send() == ["2"]
    assert s.receive_text("3", 25.0) == []
    assert s.next_deadline() == 45.0  # the connect timeout comes before the next ping (50)
    assert s.poll(44.9) is None
    assert s.poll(45.0) == Disconnected("connect timeout", 1000, "no CONNECT from the client")


def test_a_callers_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match=r"^unsupported Engine.IO version 5$"):
        EngineIOSession(5, SID)  # type: ignore[arg-type]
    s = opened(4, connect=False)
    with pytest.raises(RuntimeError, match=r"^open_frames\(\) may only be called once$"):
        s.open_frames(1.0)
    with pytest.raises(RuntimeError, match=r"^namespace '/' is not connected \(state open\)$"):
        s.send_event("message")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_refused_by_name(constant: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_sio(f'2["a",{constant}]')
    assert str(info.value.message) == f"bad JSON payload: {constant} is not JSON"


# -- what a refusal says: it ends up in Disconnected.detail, the log line of a dropped socket --
@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("", "empty Engine.IO packet"),
        ("b4AQID", "binary Engine.IO packets are not supported"),
        ("B4AQID", "unknown Engine.IO packet type 'B'"),
        ("9", "unknown Engine.IO packet type '9'"),
    ],
)
def test_decode_eio_refusals_are_named(frame: str, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_eio(frame)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7x", "unknown Socket.IO packet type '7'"),
        (
            '51-["upload",{"_placeholder":true,"num":0}]',
            "binary Socket.IO packets (attachments) are not supported",
        ),
        (
            '61-[{"_placeholder":true,"num":0}]',
            "binary Socket.IO packets (attachments) are not supported",
        ),
        ("2" + "1" * 16 + '["a"]', "Socket.IO ack id too long"),
        ('2["connect"]', "reserved event name 'connect'"),
        ("2{}", "invalid payload for Socket.IO EVENT"),
        ("3{}", "invalid payload for Socket.IO ACK"),
        (
            '2\ufeff["a"]',
            "bad JSON payload: Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)",
        ),
    ],
)
def test_decode_sio_refusals_are_named(text: str, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_sio(text)
    assert info.value.message == message


def test_an_ack_id_of_15_digits_is_read() -> None:
    assert decode_sio("3" + "9" * 15 + "[]") == SIOPacket(SIOType.ACK, "/", 10**15 - 1, [])


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (SIOPacket(SIOType.BINARY_EVENT, data=["a"]), "binary Socket.IO packets are not supported"),
        (
            SIOPacket(SIOType.BINARY_ACK, id=1, data=[]),
            "binary Socket.IO packets are not supported",
        ),
        (
            SIOPacket(SIOType.EVENT, data=[]),
            "an EVENT payload is a list starting with the event name",
        ),
        (SIOPacket(SIOType.EVENT, data=["disconnect"]), "reserved event name 'disconnect'"),
        (SIOPacket(SIOType.ACK, id=-3, data=[]), "bad ack id -3"),
    ],
)
def test_encode_sio_refusals_are_named(packet: SIOPacket, message: str) -> None:
    with pytest.raises(ValueError) as info:
        encode_sio(packet)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ping_interval_s": 0},
        {"ping_timeout_s": 0},
        {"connect_timeout_s": 0},
        {"max_payload_bytes": 0},
    ],
)
def test_every_timing_and_the_ceiling_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^timings and max_payload_bytes must be positive$"):
        EngineIOSession(4, SID, **kwargs)  # type: ignore[arg-type]


def test_the_smallest_values_are_accepted() -> None:
    s = EngineIOSession(4, SID, ping_interval_s=0.001, max_payload_bytes=1, connect_timeout_s=0.5)
    assert s.open_frames(0.0)[0].endswith('"maxPayload":1}')
