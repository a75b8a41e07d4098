# Sans-IO parts of the client, bytes in and events out (also one byte at a time): the RFC 7464
# JSON-seq reader and NDJSON, and the Engine.IO/Socket.IO client session (v4, v3 and the
# fallback from a v4 request to a v3 server), cross-checked against the server session.
from __future__ import annotations

from typing import Any

import pytest

from gateway.client.jsonseq import InvalidRecord, JSONSeqDecoder, NDJSONDecoder
from gateway.ws import engineio as eio
from gateway.ws.engineio_client import (
    ClientDisconnected,
    EngineIOClient,
    Opened,
    ServerAck,
    ServerConnected,
    ServerEvent,
)


def feed_all(decoder: Any, data: bytes, step: int | None = None) -> list[Any]:
    out: list[Any] = []
    if step is None:
        out += decoder.feed(data)
    else:
        for i in range(0, len(data), step):
            out += decoder.feed(data[i : i + step])
    return out + decoder.close()


def values(items: list[Any]) -> list[Any]:
    return [i for i in items if not isinstance(i, InvalidRecord)]


def invalid(items: list[Any]) -> list[str]:
    return [i.reason for i in items if isinstance(i, InvalidRecord)]


STREAM = (
    b'\x1e{"a":1}\n\x1e\x1e\x1e[1,\n 2]\n\x1e"str"\n\x1e{bad}\n\x1e12\n\x1etrue \n'
    b"\x1e 3.5\n\x1e{}\x1e7"
)


@pytest.mark.parametrize("step", [None, 1, 2, 5])
def test_json_seq_records_runs_of_rs_bad_and_truncated(step: int | None) -> None:
    items = feed_all(JSONSeqDecoder(), STREAM, step)
    assert values(items) == [{"a": 1}, [1, 2], "str", 12, True, 3.5, {}]
    reasons = invalid(items)
    assert len(reasons) == 2
    assert reasons[0].startswith("not JSON")
    assert "truncated" in reasons[1]  # the final 7: no whitespace after it


def test_json_seq_value_arrives_with_its_lf_not_with_the_next_rs() -> None:
    d = JSONSeqDecoder()
    assert d.feed(b'\x1e{"a":') == []
    assert d.feed(b"1}\n") == [{"a": 1}]
    assert d.feed(b"\x1e[1,\n") == []  # an LF inside a pretty-printed record: keep reading
    assert d.feed(b"2]\n") == [[1, 2]]
    assert d.feed(b"\x1e123") == []
    assert d.feed(b"4\n") == [1234]
    assert d.close() == []


def test_json_seq_garbage_before_first_rs_and_after_a_value() -> None:
    d = JSONSeqDecoder()
    items = d.feed(b'junk\x1e{"a":1}\n') + d.feed(b" trailing\x1e[1]\n") + d.close()
    assert values(items) == [{"a": 1}, [1]]  # the first was delivered at its LF
    assert invalid(items) == ["data before the first RS", "data after a complete JSON text"]
    # seen whole, the same record is simply not JSON
    items = feed_all(JSONSeqDecoder(), b'\x1e{"a":1}\n trailing\x1e[1]\n')
    assert values(items) == [[1]] and invalid(items)[0].startswith("not JSON")
    assert feed_all(JSONSeqDecoder(), b"  \n\x1e1 ") == [1]  # whitespace is not garbage


def test_json_seq_record_cap_skips_to_the_next_rs() -> None:
    d = JSONSeqDecoder(max_record_bytes=10)
    items = feed_all(d, b'\x1e"' + b"x" * 30 + b'"\n\x1e[1]\n', 4)
    assert values(items) == [[1]]
    assert invalid(items) == ["record over 10 bytes"]
    assert d.buffered == 0
    with pytest.raises(ValueError):
        JSONSeqDecoder(0)


def test_json_seq_rejects_nan_and_bad_utf8() -> None:
    items = feed_all(JSONSeqDecoder(), b'\x1eNaN\n\x1e"\xff"\n\x1e[0]\n')
    assert values(items) == [[0]]
    assert len(invalid(items)) == 2


@pytest.mark.parametrize("step", [None, 1, 3])
def test_ndjson_lines(step: int | None) -> None:
    data = b'{"a":1}\r\n\n[1,2]\nnope\n"s\xe2\x80\xa8t"\n{"last":true}'
    items = feed_all(NDJSONDecoder(), data, step)
    assert values(items) == [{"a": 1}, [1, 2], "s\u2028t", {"last": True}]
    assert len(invalid(items)) == 1
    items = feed_all(NDJSONDecoder(max_record_bytes=4), b"[1]\n[1111111]\n[2]\n", step)
    assert values(items) == [[1], [2]] and invalid(items) == ["line over 4 bytes"]


# -- Engine.IO client session, against the server session ------------------------------------------


def pump(
    client: EngineIOClient, server: eio.EngineIOSession, frames: list[str], now: float = 0.0
) -> tuple[list[Any], list[Any]]:
    """Deliver server frames to the client and the client's replies back, until quiet."""
    c_events: list[Any] = []
    s_events: list[Any] = []
    to_client = list(frames)
    while to_client:
        for f in to_client:
            c_events += client.receive_text(f, now)
        to_client = []
        for f in client.frames_to_send():
            s_events += server.receive_text(f, now)
        to_client += server.frames_to_send()
    return c_events, s_events


@pytest.mark.parametrize("version", [3, 4])
def test_handshake_request_and_ack_with_the_server_session(version: int) -> None:
    server = eio.EngineIOSession(version, "sid1", ping_interval_s=10, ping_timeout_s=5)  # type: ignore[arg-type]
    client = EngineIOClient(version)
    c_events, s_events = pump(client, server, server.open_frames(0.0))
    assert isinstance(c_events[0], Opened) and c_events[0].sid == "sid1"
    assert c_events[0].ping_interval_s == 10
    assert c_events[-1] == ServerConnected("sid1", version)
    assert client.connected
    frame, ack = client.emit("get", {"url": "/x", "method": "get", "headers": {}, "data": {}})
    assert (frame, ack) == ('420["get",{"url":"/x","method":"get","headers":{},"data":{}}]', 0)
    (ev,) = server.receive_text(frame, 1.0)
    assert isinstance(ev, eio.Event) and ev.ack_id == 0
    reply = server.send_ack(0, [{"body": "ok", "headers": {}, "statusCode": 200}])
    assert client.receive_text(reply, 1.0) == [
        ServerAck(0, ({"body": "ok", "headers": {}, "statusCode": 200},))
    ]
    assert client.emit("post", {})[1] == 1  # ids count up
    push = server.send_event("message", {"n": 1})
    assert client.receive_text(push, 1.0) == [ServerEvent("message", ({"n": 1},), None)]
    assert client.close_frames() == ["41"]
    assert server.receive_text("41", 2.0)[0].reason == "client namespace disconnect"


def test_v4_request_answered_as_v3_falls_back() -> None:
    server = eio.EngineIOSession(3, "old", ping_interval_s=10, ping_timeout_s=5)
    client = EngineIOClient(4)
    opened, bare_connect = server.open_frames(0.0)
    assert client.receive_text(opened, 0.0)[0].sid == "old"
    assert client.frames_to_send() == ["40"]  # we asked for v4
    assert client.receive_text(bare_connect, 0.0) == [ServerConnected("old", 3)]
    assert client.version == 3
    assert server.receive_text("40", 0.0) == []  # a v3 server ignores our CONNECT
    # v3 rules now: WE ping
    assert client.next_deadline() == 10.0
    assert client.poll(10.0) is None and client.frames_to_send() == ["2"]
    server.receive_text("2", 10.0)
    assert server.frames_to_send() == ["3"]
    assert client.receive_text("3", 10.5) == []
    assert client.poll(20.0) is None and client.frames_to_send() == ["2"]
    assert client.poll(25.0) == ClientDisconnected("ping timeout", "no pong from the server")


def test_v4_heartbeat_is_answered_and_silence_ends_the_session() -> None:
    client = EngineIOClient(4)
    client.receive_text(
        '0{"sid":"s","upgrades":[],"pingInterval":1000,"pingTimeout":500,"maxPayload":100}', 0.0
    )
    client.receive_text('40{"sid":"sock"}', 0.0)
    assert client.socket_id == "sock" and client.frames_to_send() == ["40"]
    assert client.receive_text("2", 1.0) == [] and client.frames_to_send() == ["3"]
    assert client.next_deadline() == 2.5
    assert client.poll(2.4) is None
    assert client.poll(2.5) == ClientDisconnected("ping timeout", "no ping from the server")
    assert client.receive_text("2", 3.0) == []  # over: nothing more


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (["0{bad"], "parse error"),
        (['0{"sid":"s","pingInterval":0,"pingTimeout":1}'], "parse error"),
        (
            ['0{"sid":"s","pingInterval":1,"pingTimeout":1}', '44{"message":"nope"}'],
            "connect error",
        ),
        (['0{"sid":"s","pingInterval":1,"pingTimeout":1}', '42["x"]'], "parse error"),
        (
            ['0{"sid":"s","pingInterval":1,"pingTimeout":1}', '40{"sid":"a"}', "41"],
            "io server disconnect",
        ),
        (
            ['0{"sid":"s","pingInterval":1,"pingTimeout":1}', '40{"sid":"a"}', "1"],
            "transport close",
        ),
        (['0{"sid":"s","pingInterval":1,"pingTimeout":1}', '40{"sid":"a"}', "43[]"], "parse error"),
    ],
)
def test_protocol_violations_end_the_session(frames: list[str], reason: str) -> None:
    client = EngineIOClient(4, max_payload_bytes=1000)
    events: list[Any] = []
    for f in frames:
        events += client.receive_text(f, 0.0)
    assert isinstance(events[-1], ClientDisconnected) and events[-1].reason == reason
    assert not client.connected and client.connection_lost() == []


def test_limits_and_misuse() -> None:
    client = EngineIOClient(4, max_payload_bytes=10)
    with pytest.raises(RuntimeError):
        client.emit("get", {})
    assert client.receive_text("4" + "x" * 20, 0.0)[0].reason == "message too big"
    with pytest.raises(ValueError):
        EngineIOClient(5)
    c2 = EngineIOClient(4)
    assert c2.receive_bytes(b"\x00", 0.0)[0].reason == "parse error"
