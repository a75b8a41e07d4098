# JSON text sequences (RFC 7464, application/json-seq) from res.json_seq(): the RS json LF
# framing, one flushed record at a time (each record reaches the client before the handler
# produces the next), and a quiet end when the client goes away (the producer sees
# ClientDisconnected; nothing is logged as an error).
from __future__ import annotations

import json
import logging
from typing import Any

import h11
import trio

from gateway import App, ClientDisconnected
from tests.helpers import Client, connect, request, running
from tests.test_body_streaming import session

RS = b"\x1e"


def read_json_seq(data: bytes) -> list[Any]:
    """An RFC 7464 reader: split on RS, skip empty pieces, every record ends with LF."""
    values = []
    for piece in data.split(RS):
        if not piece:
            continue
        assert piece.endswith(b"\n"), piece
        values.append(json.loads(piece))
    return values


VALUES: list[Any] = [
    {"sensor": "t1", "value": 21.5},
    [1, 2, {"nested": [None, True, False]}],
    "text with \x1e record separator, \n newline and ünïcode",
    0,
    None,
    {"big": "x" * 20000},
]


def seq_app(log: dict[str, Any]) -> App:
    app = App()

    @app.get("/seq")
    async def seq(req, res):  # type: ignore[no-untyped-def]
        async with res.json_seq() as out:
            for value in VALUES:
                await out.send(value)

    @app.get("/acked")
    async def acked(req, res):  # type: ignore[no-untyped-def]
        acks: list[trio.Event] = log["acks"]
        async with res.json_seq() as out:
            for i, ack in enumerate(acks):
                await out.send({"i": i})
                await ack.wait()  # the client has this record before the next one exists
                log["produced"].append(i)

    @app.get("/forever")
    async def forever(req, res):  # type: ignore[no-untyped-def]
        req.on("close", log["closed"].set)
        n = 0
        try:
            async with res.json_seq() as out:
                while True:
                    await out.send({"n": n, "pad": "p" * 1000})
                    n += 1
        except ClientDisconnected as exc:
            log["stopped"] = (n, exc)
            raise

    @app.get("/broken")
    async def broken(req, res):  # type: ignore[no-untyped-def]
        async with res.json_seq() as out:
            await out.send({"ok": 1})
            await out.send(object())

    return app


async def test_records_are_rs_json_lf() -> None:
    with trio.fail_after(10):
        async with running(seq_app({})) as server:
            reply = await request(server, "GET", "/seq")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json-seq"
    assert reply.headers["transfer-encoding"] == "chunked"
    assert reply.body.count(RS) == len(VALUES)  # an RS inside a string is escaped (\u001e)
    assert read_json_seq(reply.body) == VALUES


async def test_each_record_arrives_before_the_next_is_produced() -> None:
    log: dict[str, Any] = {"acks": [trio.Event() for _ in range(5)], "produced": []}
    with trio.fail_after(10):
        async with running(seq_app(log)) as server:
            stream = await connect(server)
            async with stream:
                conn = h11.Connection(h11.CLIENT)
                await stream.send_all(
                    conn.send(h11.Request(method="GET", target="/acked", headers=[("host", "a")]))
                    + conn.send(h11.EndOfMessage())
                )
                buf = b""
                got: list[Any] = []
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                        continue
                    if isinstance(event, h11.Data):
                        buf += event.data
                        while buf.count(b"\n") and buf.startswith(RS):
                            record, _, buf = buf.partition(b"\n")
                            got.append(json.loads(record[1:]))
                            # had the server buffered records, this would wait forever
                            assert log["produced"] == list(range(len(got) - 1))
                            log["acks"][len(got) - 1].set()
                    elif isinstance(event, h11.EndOfMessage):
                        break
    assert got == [{"i": i} for i in range(5)] and log["produced"] == list(range(5))


async def test_client_going_away_stops_the_producer_quietly(caplog: Any) -> None:
    log: dict[str, Any] = {"closed": trio.Event()}
    with trio.fail_after(10), caplog.at_level(logging.WARNING):
        async with session(seq_app(log)) as (client, _, _):
            await client.send("GET", "/forever")
            head = await client.stream.receive_some(65536)
            assert head.startswith(b"HTTP/1.1 200 OK")
            await client.stream.aclose()
            await log["closed"].wait()
    n, exc = log["stopped"]
    assert isinstance(exc, ClientDisconnected) and n >= 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_client_going_away_over_tcp(caplog: Any) -> None:
    log: dict[str, Any] = {"closed": trio.Event()}
    with trio.fail_after(10), caplog.at_level(logging.WARNING):
        async with running(seq_app(log)) as server:
            client = Client(await connect(server))
            await client.send("GET", "/forever")
            data = b""
            while data.count(RS) < 3:  # read a few records, then hang up
                data += await client.stream.receive_some(65536)
            await client.aclose()
            await log["closed"].wait()
    assert isinstance(log["stopped"][1], ClientDisconnected)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_value_that_is_not_json_leaves_the_sequence_unterminated(caplog: Any) -> None:
    with trio.fail_after(10), caplog.at_level(logging.CRITICAL):
        async with running(seq_app({})) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("GET", "/broken")
                data = b""
                while chunk := await client.stream.receive_some(65536):
                    data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert RS + b'{"ok":1}\n' in body and not body.endswith(b"0\r\n\r\n")  # no last chunk
