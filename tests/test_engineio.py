# Sans-IO tests of gateway.ws.engineio: the packet codecs and the session state machine, fed
# with frames captured from the stock clients (sails.io.js 1.2.1 / socket.io-client 2.0.3 for
# Engine.IO v3, socket.io-client 4.8 for v4) and with explicit `now` values. No sockets.
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ProtocolError
from gateway.ws.engineio import (
    RESERVED_EVENTS,
    Ack,
    Connected,
    ConnectRejected,
    Disconnected,
    EIOType,
    EngineIOSession,
    Event,
    SessionState,
    SIOPacket,
    SIOType,
    decode_eio,
    decode_sio,
    dumps,
    encode_eio,
    encode_sio,
)

# Frames observed on the wire (see tests/test_sails_stock_client.py for the live versions).
V3_GET = '420["get",{"method":"get","headers":{},"data":{},"url":"/user/3"}]'
V4_GET = '420["get",{"method":"get","headers":{},"data":{},"url":"/user/7"}]'
SID = "brBOXffQi1SNG08jIaqr"


def v3(**kw: Any) -> EngineIOSession:
    s = EngineIOSession(3, SID, ping_interval_s=25, ping_timeout_s=60, **kw)
    s.open_frames(0.0)
    return s


def v4(connect: bool = True, **kw: Any) -> EngineIOSession:
    s = EngineIOSession(4, SID, ping_interval_s=25, ping_timeout_s=20, **kw)
    s.open_frames(0.0)
    if connect:
        assert s.receive_text("40", 0.0) == [Connected("/", None)]
        s.frames_to_send()
    return s


# -- Engine.IO codec -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("2", (EIOType.PING, "")),
        ("2probe", (EIOType.PING, "probe")),
        ("3", (EIOType.PONG, "")),
        ("41", (EIOType.MESSAGE, "1")),
        ("1", (EIOType.CLOSE, "")),
        ("6", (EIOType.NOOP, "")),
    ],
)
def test_decode_eio(frame: str, expected: tuple[EIOType, str]) -> None:
    assert decode_eio(frame) == expected


@pytest.mark.parametrize("frame", ["", "7", "x", "b4AAEC", "-1"])
def test_decode_eio_rejects(frame: str) -> None:
    with pytest.raises(ProtocolError):
        decode_eio(frame)


def test_encode_eio() -> None:
    assert encode_eio(EIOType.PONG, "probe") == "3probe"
    assert encode_eio(EIOType.PING) == "2"


# -- Socket.IO codec -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "packet"),
    [
        ("0", SIOPacket(SIOType.CONNECT)),
        ('0{"token":"t"}', SIOPacket(SIOType.CONNECT, data={"token": "t"})),
        ("0/admin,", SIOPacket(SIOType.CONNECT, "/admin")),
        ("0/admin?x=1", SIOPacket(SIOType.CONNECT, "/admin?x=1")),  # v2 client style
        ("1", SIOPacket(SIOType.DISCONNECT)),
        ("1/admin,", SIOPacket(SIOType.DISCONNECT, "/admin")),
        (
            V3_GET[1:],
            SIOPacket(
                SIOType.EVENT,
                id=0,
                data=["get", {"method": "get", "headers": {}, "data": {}, "url": "/user/3"}],
            ),
        ),
        ('2["message",{"hi":1}]', SIOPacket(SIOType.EVENT, data=["message", {"hi": 1}])),
        ('3/admin,12["a"]', SIOPacket(SIOType.ACK, "/admin", 12, ["a"])),
        ("3999999999999999[]", SIOPacket(SIOType.ACK, id=999999999999999, data=[])),
        ('4"Invalid namespace"', SIOPacket(SIOType.CONNECT_ERROR, data="Invalid namespace")),
        ('2[" ü 中",null]', SIOPacket(SIOType.EVENT, data=[" ü 中", None])),
    ],
)
def test_decode_sio(text: str, packet: SIOPacket) -> None:
    assert decode_sio(text) == packet


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "9[]",
        "x",
        "2[",  # bad JSON
        '2{"a":1}',  # EVENT payload not a list
        "2[]",  # no event name
        "2[1]",  # name not a string
        '2["connect"]',  # reserved name
        '2["disconnect",1]',
        "2",  # EVENT without payload
        "3{}",  # ACK payload not a list
        "1{}",  # DISCONNECT with payload
        "0[]",  # CONNECT payload not an object
        "4",  # CONNECT_ERROR without payload
        '2["a",NaN]',
        '2["a",Infinity]',
        "21234567890123456[]",  # 16-digit ack id
        '51-["x",{"_placeholder":true,"num":0}]',  # binary attachments
        "61-0[]",
        "2" + "[" * 100_000,  # deep nesting must not escape as RecursionError
    ],
)
def test_decode_sio_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        decode_sio(text)


def test_encode_sio_examples() -> None:
    assert encode_sio(SIOPacket(SIOType.CONNECT)) == "0"
    assert encode_sio(SIOPacket(SIOType.CONNECT, data={"sid": "x"})) == '0{"sid":"x"}'
    assert encode_sio(SIOPacket(SIOType.EVENT, data=["message", {"a": 1}])) == (
        '2["message",{"a":1}]'
    )
    assert encode_sio(SIOPacket(SIOType.ACK, "/admin", 7, [])) == "3/admin,7[]"
    assert encode_sio(SIOPacket(SIOType.DISCONNECT)) == "1"


@pytest.mark.parametrize(
    "packet",
    [
        SIOPacket(SIOType.EVENT, data=["connect"]),
        SIOPacket(SIOType.EVENT, data=[]),
        SIOPacket(SIOType.EVENT, data="message"),
        SIOPacket(SIOType.BINARY_EVENT, data=["x"]),
        SIOPacket(SIOType.ACK, id=-1, data=[]),
        SIOPacket(SIOType.ACK, id=10**15, data=[]),
        SIOPacket(SIOType.ACK, id=1, data=[float("nan")]),
    ],
)
def test_encode_sio_refuses(packet: SIOPacket) -> None:
    with pytest.raises(ValueError):
        encode_sio(packet)


def test_dumps_keeps_utf8_but_escapes_lone_surrogates() -> None:
    assert dumps(["中", 1]) == '["中",1]'
    text = dumps(["\ud800x"])
    assert text == '["\\ud800x"]'
    text.encode("utf-8")  # sendable
    assert json.loads(text) == ["\ud800x"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
event_names = st.text(min_size=1).filter(lambda n: n not in RESERVED_EVENTS)
namespaces = st.just("/") | st.text(
    alphabet=st.characters(exclude_characters=",", exclude_categories=["Cs"]), max_size=8
).map(lambda s: "/" + s)
ack_ids = st.none() | st.integers(min_value=0, max_value=10**15 - 1)


@given(namespaces, ack_ids, event_names, st.lists(json_values, max_size=4))
def test_event_round_trip(namespace: str, ack_id: int | None, name: str, args: list[Any]) -> None:
    packet = SIOPacket(SIOType.EVENT, namespace, ack_id, [name, *args])
    assert decode_sio(encode_sio(packet)) == packet


@given(namespaces, st.integers(min_value=0, max_value=10**15 - 1), st.lists(json_values))
def test_ack_round_trip(namespace: str, ack_id: int, args: list[Any]) -> None:
    packet = SIOPacket(SIOType.ACK, namespace, ack_id, args)
    assert decode_sio(encode_sio(packet)) == packet


@given(st.text(max_size=40))
def test_decode_sio_never_raises_anything_but_protocol_error(text: str) -> None:
    try:
        decode_sio(text)
    except ProtocolError:
        pass


# -- session: Engine.IO v3 (sails.io.js 1.2.1 / socket.io-client 2.0.3) -----------------------


def test_v3_open_frames_match_socket_io_2() -> None:
    s = EngineIOSession(3, SID, ping_interval_s=25, ping_timeout_s=60)
    assert s.state is SessionState.HANDSHAKE
    frames = s.open_frames(0.0)
    assert frames == [
        '0{"sid":"brBOXffQi1SNG08jIaqr","upgrades":[],"pingInterval":25000,"pingTimeout":60000}',
        "40",
    ]
    assert s.connected  # socket.io 2 connects "/" by itself
    with pytest.raises(RuntimeError):
        s.open_frames(1.0)


def test_v3_virtual_request_and_ack() -> None:
    s = v3()
    events = s.receive_text(V3_GET, 1.0)
    msg = {"method": "get", "headers": {}, "data": {}, "url": "/user/3"}
    assert events == [Event("get", (msg,), 0)]
    assert s.frames_to_send() == []
    reply = {"body": {"id": 3}, "headers": {}, "statusCode": 200}
    assert s.send_ack(0, [reply]) == '430[{"body":{"id":3},"headers":{},"statusCode":200}]'
    assert s.send_event("message", {"hi": 1}) == '42["message",{"hi":1}]'


def test_v3_client_pings_and_we_pong() -> None:
    s = v3()
    assert s.receive_text("2", 1.0) == []
    assert s.receive_text("2probe", 2.0) == []
    assert s.frames_to_send() == ["3", "3probe"]
    assert s.frames_to_send() == []


def test_v3_ping_timeout_counts_from_the_last_packet() -> None:
    s = v3()
    assert s.next_deadline() == 85.0
    assert s.poll(84.9) is None
    s.receive_text("2", 50.0)
    assert s.next_deadline() == 135.0
    assert s.poll(134.0) is None
    assert s.poll(135.0) == Disconnected("ping timeout", 1000, "no packet from the client")
    assert s.state is SessionState.CLOSED
    assert s.next_deadline() is None
    assert s.poll(500.0) is None


def test_v3_pong_from_client_is_wrong_direction() -> None:
    [ended] = v3().receive_text("3", 1.0)
    assert isinstance(ended, Disconnected)
    assert (ended.reason, ended.close_code) == ("parse error", 1002)


def test_v3_client_disconnect() -> None:
    s = v3()
    assert s.receive_text("41", 1.0) == [Disconnected("client namespace disconnect")]
    assert not s.connected
    assert s.receive_text(V3_GET, 2.0) == []
    assert s.connection_lost() == []


def test_v3_engine_close_packet() -> None:
    assert v3().receive_text("1", 1.0) == [Disconnected("transport close")]


def test_v3_other_namespace_gets_error_and_is_otherwise_ignored() -> None:
    s = v3()
    assert s.receive_text("40/admin?token=1", 1.0) == [ConnectRejected("/admin")]
    assert s.frames_to_send() == ['44/admin,"Invalid namespace"']
    assert s.receive_text('42/admin,["get",{}]', 1.0) == []  # socket.io 2 drops it
    assert s.receive_text("40", 1.0) == []  # "/" is already connected
    assert s.receive_text('44"oops"', 1.0) == []
    assert s.connected


def test_v3_binary_frames_end_the_session() -> None:
    for frame in ("b4AQID", '451-["upload",{"_placeholder":true,"num":0}]'):
        [ended] = v3().receive_text(frame, 1.0)
        assert isinstance(ended, Disconnected) and ended.close_code == 1002
    [ended] = v3().receive_bytes(b"\x04\x01\x02", 1.0)
    assert ended == Disconnected("parse error", 1002, "binary messages are not supported")


# -- session: Engine.IO v4 (socket.io-client 4.x) ---------------------------------------------


def test_v4_open_then_client_connect() -> None:
    s = EngineIOSession(4, SID, socket_id="sock1", ping_interval_s=25, ping_timeout_s=20)
    assert s.open_frames(0.0) == [
        '0{"sid":"brBOXffQi1SNG08jIaqr","upgrades":[],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":1000000}'
    ]
    assert s.state is SessionState.OPEN and not s.connected
    with pytest.raises(RuntimeError):
        s.send_event("message", 1)
    assert s.receive_text('40{"token":"t"}', 1.0) == [Connected("/", {"token": "t"})]
    assert s.frames_to_send() == ['40{"sid":"sock1"}']
    assert s.connected


def test_v4_socket_id_defaults_to_sid() -> None:
    s = EngineIOSession(4, SID)
    s.open_frames(0.0)
    s.receive_text("40", 0.0)
    assert s.frames_to_send() == ['40{"sid":"brBOXffQi1SNG08jIaqr"}']


def test_v4_event_before_connect_is_invalid_state() -> None:
    s = v4(connect=False)
    [ended] = s.receive_text(V4_GET, 1.0)
    assert isinstance(ended, Disconnected) and ended.reason == "invalid state"


def test_v4_second_connect_is_invalid_state() -> None:
    [ended] = v4().receive_text("40", 1.0)
    assert isinstance(ended, Disconnected) and ended.reason == "invalid state"


def test_v4_invalid_namespace() -> None:
    s = v4(connect=False)
    assert s.receive_text("40/admin,", 1.0) == [ConnectRejected("/admin")]
    assert s.frames_to_send() == ['44/admin,{"message":"Invalid namespace"}']
    assert s.state is SessionState.OPEN


def test_v4_server_pings_and_client_pongs() -> None:
    s = v4()
    assert s.next_deadline() == 25.0
    assert s.poll(24.0) is None and s.frames_to_send() == []
    assert s.poll(25.0) is None
    assert s.frames_to_send() == ["2"]
    assert s.next_deadline() == 45.0
    assert s.poll(30.0) is None and s.frames_to_send() == []  # one ping at a time
    assert s.receive_text("3", 30.0) == []
    assert s.next_deadline() == 55.0
    assert s.poll(55.0) is None and s.frames_to_send() == ["2"]
    assert s.poll(75.0) == Disconnected("ping timeout", 1000, "no pong from the client")


def test_v4_pings_run_before_connect_and_connect_times_out() -> None:
    s = EngineIOSession(4, SID, ping_interval_s=10, ping_timeout_s=5, connect_timeout_s=30)
    s.open_frames(0.0)
    assert s.next_deadline() == 10.0
    s.poll(10.0)
    assert s.frames_to_send() == ["2"]
    s.receive_text("3", 11.0)
    assert s.next_deadline() == 21.0
    assert s.poll(30.0) == Disconnected("connect timeout", 1000, "no CONNECT from the client")


def test_v4_receive_never_moves_the_deadline_earlier() -> None:
    # ping_interval < ping_timeout: engine.io would ping again 1 s after the pong; we wait until
    # the old deadline, so a timer task sleeping until it never misses an earlier one.
    s = EngineIOSession(4, SID, ping_interval_s=1, ping_timeout_s=5)
    s.open_frames(0.0)
    s.receive_text("40", 0.0)
    s.frames_to_send()
    s.poll(1.0)
    assert s.frames_to_send() == ["2"] and s.next_deadline() == 6.0
    s.receive_text("3", 1.1)
    assert s.next_deadline() == 6.0
    s.poll(6.0)
    assert s.frames_to_send() == ["2"]


def test_v4_ping_from_client_is_wrong_direction() -> None:
    [ended] = v4().receive_text("2", 1.0)
    assert ended == Disconnected("parse error", 1002, "invalid heartbeat direction")


def test_v4_server_event_with_ack() -> None:
    s = v4()
    assert s.send_event("question", 1, ack_id=5) == '425["question",1]'
    assert s.receive_text('435["answer",2]', 1.0) == [Ack(5, ("answer", 2))]
    [ended] = v4().receive_text("43[]", 1.0)
    assert isinstance(ended, Disconnected) and ended.detail == "ACK without an id"


def test_v4_client_events_and_disconnect() -> None:
    s = v4()
    assert s.receive_text('421["hello",1,"a"]', 1.0) == [Event("hello", (1, "a"), 1)]
    assert s.receive_text('42["fire"]', 1.0) == [Event("fire", (), None)]
    assert s.receive_text("6", 1.0) == []
    assert s.receive_text("41", 1.0) == [Disconnected("client namespace disconnect")]


def test_v4_packets_for_unknown_namespaces_close() -> None:
    [ended] = v4().receive_text('42/admin,["x"]', 1.0)
    assert isinstance(ended, Disconnected) and ended.reason == "invalid state"
    [ended] = v4().receive_text('44{"message":"x"}', 1.0)
    assert isinstance(ended, Disconnected) and ended.reason == "invalid state"


@pytest.mark.parametrize("frame", ["0{}", "5", "x", "", "4", "42[1]"])
def test_v4_protocol_errors_end_the_session(frame: str) -> None:
    s = v4()
    [ended] = s.receive_text(frame, 1.0)
    assert isinstance(ended, Disconnected) and ended.close_code == 1002
    assert s.state is SessionState.CLOSED


def test_max_payload_counts_utf8_bytes() -> None:
    s = v4(max_payload_bytes=1000)
    assert s.receive_text('42["a","' + "x" * 900 + '"]', 1.0) != []
    [ended] = v4(max_payload_bytes=1000).receive_text('42["a","' + "中" * 400 + '"]', 1.0)
    assert ended == Disconnected("message too big", 1009, "over 1000 bytes")
    [ended] = v4(max_payload_bytes=10).receive_bytes(b"x" * 11, 1.0)
    assert isinstance(ended, Disconnected) and ended.close_code == 1009


def test_close_frames_and_connection_lost() -> None:
    s = v4()
    assert s.close_frames() == ["41"]
    assert s.state is SessionState.CLOSED
    assert s.close_frames() == []
    assert s.connection_lost() == []
    with pytest.raises(RuntimeError):
        s.send_ack(1, [])
    s = v4(connect=False)
    assert s.close_frames() == []
    s = v3()
    assert s.connection_lost() == [Disconnected("transport close")]
    assert s.connection_lost() == []


def test_receive_before_open_is_invalid_state() -> None:
    s = EngineIOSession(3, SID)
    [ended] = s.receive_text("2", 0.0)
    assert isinstance(ended, Disconnected) and ended.reason == "invalid state"
    assert EngineIOSession(4, SID).next_deadline() is None


@pytest.mark.parametrize(
    "kwargs",
    [{"version": 5}, {"ping_interval_s": 0}, {"ping_timeout_s": -1}, {"max_payload_bytes": 0}],
)
def test_constructor_validates(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"version": 4, "sid": SID, **kwargs}
    with pytest.raises(ValueError):
        EngineIOSession(**args)
