# Server-sent events from res.sse(): the text/event-stream framing (event, id, retry, one data
# line per line of text), each event flushed before the next exists, the keepalive comment when
# the handler is quiet, Last-Event-ID, a quiet end when the client goes away, a clean end when
# the server drains, and the real client: Chromium's EventSource, reconnecting with the id of
# the last event it saw.
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h11
import pytest
import trio

from gateway import App, ClientDisconnected
from gateway.app.sse import format_event
from tests.cdp import open_browser
from tests.helpers import Client, connect, request, running
from tests.test_body_streaming import session

# -- framing ----------------------------------------------------------------------------------


def test_each_line_of_text_is_a_data_line_whatever_its_line_ending() -> None:
    assert format_event("one\ntwo\r\nthree\rfour") == (
        b"data: one\ndata: two\ndata: three\ndata: four\n\n"
    )
    assert format_event("") == b"data: \n\n"  # an empty message is still dispatched
    assert format_event(" lead") == b"data:  lead\n\n"  # the client strips one space only


def test_fields_come_before_the_data_and_other_values_go_as_json() -> None:
    assert format_event({"t": 21.5, "ok": True}, event="reading", id="7", retry_ms=1500) == (
        b'event: reading\nid: 7\nretry: 1500\ndata: {"t":21.5,"ok":true}\n\n'
    )
    assert format_event([1, "ü"]) == 'data: [1,"ü"]\n\n'.encode()
    assert format_event(None) == b"data: null\n\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "a\nb"},
        {"event": "a\rb"},
        {"id": "1\n2"},
        {"id": "1\x002"},
        {"retry_ms": -1},
        {"retry_ms": 1.5},
        {"retry_ms": True},
    ],
)
def test_fields_that_would_break_the_framing_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        format_event("x", **kwargs)


def test_data_that_is_not_json_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        format_event(object())


# -- over a connection --------------------------------------------------------------------------


def sse_app(log: dict[str, Any]) -> App:
    app = App()

    @app.get("/acked")
    async def acked(req, res):  # type: ignore[no-untyped-def]
        async with res.sse() as events:
            await events.send(events.last_event_id or "", event="hello", id="0")
            for i, ack in enumerate(log["acks"]):
                await events.send({"i": i}, id=str(i + 1))
                await ack.wait()  # the client has this event before the next one exists
                log["produced"].append(i)

    @app.get("/quiet")
    async def quiet(req, res):  # type: ignore[no-untyped-def]
        req.on("close", log["closed"].set)
        try:
            async with res.sse() as events:
                await events.send("first")
                log["sent"] = trio.current_time()
                await trio.sleep_forever()
        except ClientDisconnected as exc:
            log["stopped"] = exc
            raise

    @app.get("/ticking")
    async def ticking(req, res):  # type: ignore[no-untyped-def]
        async with res.sse(heartbeat_s=15) as events:
            for i in range(4):
                await events.send(str(i))
                await trio.sleep(10)  # never 15 s quiet: no keepalive needed

    @app.get("/until-drain")
    async def until_drain(req, res):  # type: ignore[no-untyped-def]
        async with res.sse() as events:
            await events.send("streaming")
            log["streaming"].set()
            await trio.sleep_forever()
        log["after_block"] = trio.current_time()

    @app.get("/broken")
    async def broken(req, res):  # type: ignore[no-untyped-def]
        async with res.sse() as events:
            await events.send("ok")
            raise RuntimeError("the producer failed")

    @app.get("/own-headers")
    async def own_headers(req, res):  # type: ignore[no-untyped-def]
        res.set("Cache-Control", "no-store")
        async with res.sse(heartbeat_s=0) as events:
            await events.comment("hi")
            await events.send("x")

    return app


async def _read_events(client: Client, until: bytes) -> tuple[h11.Response | None, bytes]:
    """The response head (None when it came before) and the body bytes up to and including
    ``until``."""
    conn = client.h11
    head = None
    body = b""
    while until not in body:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await client.stream.receive_some(65536)))
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        else:
            raise AssertionError(f"unexpected {event!r} after {body!r}")
    return head, body


async def test_events_are_flushed_one_at_a_time_with_the_headers_of_a_stream() -> None:
    log: dict[str, Any] = {"acks": [trio.Event() for _ in range(3)], "produced": []}
    with trio.fail_after(10):
        async with running(sse_app(log)) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send(
                    "GET", "/acked", [("Last-Event-ID", "41"), ("Accept", "text/event-stream")]
                )
                head, body = await _read_events(client, b"id: 0\ndata: 41\n\n")
                assert body == b"event: hello\nid: 0\ndata: 41\n\n" and head is not None
                headers = {k.decode(): v.decode() for k, v in head.headers}
                assert headers["content-type"] == "text/event-stream; charset=utf-8"
                assert headers["cache-control"] == "no-cache"
                assert headers["x-accel-buffering"] == "no"
                assert headers["transfer-encoding"] == "chunked"
                for i in range(3):
                    _, body = await _read_events(client, b"\n\n")
                    assert body == f'id: {i + 1}\ndata: {{"i":{i}}}\n\n'.encode()
                    # had the server buffered events, this one would never have come
                    assert log["produced"] == list(range(i))
                    log["acks"][i].set()
                reply = await client.response()  # the rest: the stream ends when the block does
    assert reply.body == b"" and log["produced"] == [0, 1, 2]


async def test_a_quiet_stream_gets_a_keepalive_comment(autojump_clock: Any) -> None:
    log: dict[str, Any] = {"closed": trio.Event()}
    with trio.fail_after(120):
        async with session(sse_app(log)) as (client, _, _):
            await client.send("GET", "/quiet")
            await _read_events(client, b"data: first\n\n")
            _, body = await _read_events(client, b"\n\n")
            assert body == b": keepalive\n\n"
            assert trio.current_time() - log["sent"] == pytest.approx(15, abs=0.01)
            _, body = await _read_events(client, b"\n\n")
            assert body == b": keepalive\n\n"
            assert trio.current_time() - log["sent"] == pytest.approx(30, abs=0.01)
            await client.aclose()


async def test_events_sent_often_enough_need_no_keepalive(autojump_clock: Any) -> None:
    with trio.fail_after(120):
        async with session(sse_app({})) as (client, _, _):
            await client.send("GET", "/ticking")
            reply = await client.response()
    assert reply.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"


async def test_the_client_going_away_ends_the_handler_quietly(
    autojump_clock: Any, caplog: Any
) -> None:
    log: dict[str, Any] = {"closed": trio.Event()}
    with trio.fail_after(120), caplog.at_level(logging.WARNING):
        async with session(sse_app(log)) as (client, _, _):
            await client.send("GET", "/quiet")
            await _read_events(client, b"data: first\n\n")
            await client.aclose()
            # the handler waits on something else: the next keepalive finds the client gone
            await log["closed"].wait()
            assert trio.current_time() - log["sent"] == pytest.approx(15, abs=0.01)
    assert isinstance(log["stopped"], ClientDisconnected)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_draining_server_ends_the_stream_at_once(autojump_clock: Any) -> None:
    log: dict[str, Any] = {"streaming": trio.Event()}
    with trio.fail_after(120):
        async with session(sse_app(log), server__shutdown_grace_s=60) as (client, server, _):
            await client.send("GET", "/until-drain")
            await log["streaming"].wait()
            stopped = trio.current_time()
            server.shutdown()
            reply = await client.response()  # ends with the last chunk, not a cut connection
            assert reply.body == b"data: streaming\n\n"
            assert log["after_block"] == stopped  # the code after the block ran, at once
            assert await client.closed()  # and the connection closes (draining)


async def test_a_stream_opened_while_draining_ends_at_once(autojump_clock: Any) -> None:
    log: dict[str, Any] = {"streaming": trio.Event()}
    app = sse_app(log)
    with trio.fail_after(120):
        async with session(app, server__shutdown_grace_s=60) as (client, _, _):
            app.begin_drain()
            await client.send("GET", "/until-drain")
            reply = await client.response()
    # the block ends at its first wait (here its first send): an empty, complete stream
    assert reply.status == 200 and reply.body == b"" and "after_block" in log
    assert not log["streaming"].is_set()


async def test_an_error_in_the_block_leaves_the_stream_unterminated(caplog: Any) -> None:
    with trio.fail_after(10), caplog.at_level(logging.CRITICAL):
        async with running(sse_app({})) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("GET", "/broken")
                data = b""
                while chunk := await client.stream.receive_some(65536):
                    data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"data: ok\n\n" in body and not body.endswith(b"0\r\n\r\n")  # no last chunk


async def test_head_gets_the_head_and_handler_headers_are_kept() -> None:
    log: dict[str, Any] = {"streaming": trio.Event()}
    with trio.fail_after(10):
        async with running(sse_app(log)) as server:
            head = await request(server, "HEAD", "/until-drain")
            own = await request(server, "GET", "/own-headers")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    assert own.headers["cache-control"] == "no-store"
    assert own.body == b": hi\n\ndata: x\n\n"


# -- the real client --------------------------------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><title>sse</title><script>
window.got = [];
const source = new EventSource('/events');
for (const type of ['tick', 'done']) {
  source.addEventListener(type, (e) => window.got.push([e.type, e.data, e.lastEventId]));
}
source.onmessage = (e) => window.got.push([e.type, e.data, e.lastEventId]);
</script>"""


async def test_chromium_eventsource_receives_and_resumes_with_last_event_id(tmp_path: Path) -> None:
    app = App()
    seen: list[str | None] = []

    @app.get("/")
    async def page(req, res):  # type: ignore[no-untyped-def]
        await res.type("html").send(PAGE)

    @app.get("/events")
    async def events(req, res):  # type: ignore[no-untyped-def]
        seen.append(req.get("Last-Event-ID"))
        async with res.sse() as stream:
            if stream.last_event_id is None:
                await stream.send("first", event="tick", id="1", retry_ms=100)
                await stream.send("two\nlines", event="tick", id="2")
                await stream.send({"plain": "message"}, id="3")
                return  # the stream ends: EventSource reconnects after retry_ms
            await stream.send(f"resumed after {stream.last_event_id}", event="done", id="4")
            await trio.sleep_forever()

    with trio.fail_after(60):
        async with running(app) as server, open_browser(tmp_path) as browser:
            tab = await browser.new_page(f"http://127.0.0.1:{server.port}/")
            got = await tab.wait_for("window.got && window.got.length >= 4 && window.got")
    assert got == [
        ["tick", "first", "1"],
        ["tick", "two\nlines", "2"],
        ["message", '{"plain":"message"}', "3"],
        ["done", "resumed after 3", "4"],
    ]
    assert seen == [None, "3"]
