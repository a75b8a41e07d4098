# Request bodies as streams and events, through the real server: `async for chunk in req` and
# req.on("data"|"end"|"close"|"error") as one mechanism, their order, what a broken body (limit,
# timeout, malformed chunked, disconnect) fires, draining and closing after an unread body (with
# pipelined bytes as proof that the next request is never read out of a body), and BodyStream
# itself against a scripted source. Timeouts run on in-memory streams under autojump_clock.
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from gateway import App, BodyError, ClientDisconnected
from gateway.body.stream import BodyStream, BytesSource, EmptySource, MemoryBudget, State
from gateway.errors import BodyTimeout, BodyTooLarge
from gateway.server.serve import ConnectionInfo, Server
from tests.helpers import Client, bound_server, connect, exchange, request, running

# -- shared helpers (also used by the other body test modules) ------------------------------------


class CountingStream(trio.abc.HalfCloseableStream):
    """Wraps the server side of a connection and counts the bytes that cross it."""

    def __init__(self, inner: trio.abc.HalfCloseableStream) -> None:
        self.inner = inner
        self.received = 0  # bytes the server has taken from the client
        self.sent = 0  # bytes handed to send_all, counted when the call starts
        self.send_calls = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        self.send_calls += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.received += len(data)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def session(
    app: App,
    *,
    privileged: bool = False,
    lockstep: bool = False,
    **overrides: Any,
) -> AsyncIterator[tuple[Client, Server, CountingStream]]:
    """One in-memory connection to a real HTTPSession (and the server's reaper).

    ``lockstep``: the client's and server's send_all return only once the other side has
    received the bytes (no buffering anywhere), so what a writer has queued can be counted.
    """
    server = bound_server(app, **overrides)
    if lockstep:
        client_side, server_side = trio.testing.lockstep_stream_pair()
    else:
        client_side, server_side = trio.testing.memory_stream_pair()
    counted = CountingStream(server_side)
    info = ConnectionInfo(("127.0.0.1", 40000), "http", privileged, "127.0.0.1:40000")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.reaper)
        nursery.start_soon(server._run_session, counted, info)
        yield Client(client_side), server, counted
        nursery.cancel_scope.cancel()


class Recorder:
    """Registers every body event on a request and records them in order."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.errors: list[BaseException] = []
        self.closed = trio.Event()

    def attach(self, req: Any) -> None:
        req.on("data", lambda chunk: self.log.append("data"))
        req.on("end", lambda: self.log.append("end"))
        req.on("error", self._error)
        req.on("close", self._close)

    def _error(self, err: BaseException) -> None:
        self.errors.append(err)
        self.log.append("error")

    def _close(self) -> None:
        self.log.append("close")
        self.closed.set()

    @property
    def kinds(self) -> list[str]:
        """The log with runs of "data" folded into one."""
        out: list[str] = []
        for item in self.log:
            if not (item == "data" and out and out[-1] == "data"):
                out.append(item)
        return out


def streaming_app(rec: Recorder) -> App:
    app = App()

    @app.post("/stream")
    async def stream(req, res):  # type: ignore[no-untyped-def]
        rec.attach(req)
        total = 0
        async for chunk in req:
            total += len(chunk)
        await res.json({"bytes": total})

    @app.post("/edgeros")
    async def edgeros(req, res):  # type: ignore[no-untyped-def]
        # EdgerOS style: listeners only; the App pumps the body after the handler returns
        rec.attach(req)
        sizes: list[int] = []
        req.on("data", lambda chunk: sizes.append(len(chunk)))

        async def on_end() -> None:
            await res.json({"bytes": sum(sizes)})

        req.on("end", on_end)

    return app


# -- event order ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/stream", "/edgeros"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_events_are_data_then_end_then_close(path: str, chunked: bool) -> None:
    rec = Recorder()
    body = bytes(range(256)) * 400  # 100 KiB: several receive buffers (16 KiB in the profile)
    headers = [("Transfer-Encoding", "chunked")] if chunked else []
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if chunked else body
    with trio.fail_after(10):
        async with running(streaming_app(rec)) as server:
            reply = await request(server, "POST", path, headers, body=raw)
            await rec.closed.wait()
    assert reply.status == 200 and reply.json() == {"bytes": len(body)}
    assert rec.kinds == ["data", "end", "close"]
    assert rec.log.count("data") >= 2 and rec.errors == []


async def test_no_body_fires_end_and_close() -> None:
    rec = Recorder()
    app = streaming_app(rec)
    with trio.fail_after(10):
        async with running(app) as server:
            reply = await request(server, "POST", "/edgeros")
            await rec.closed.wait()
    assert reply.json() == {"bytes": 0}
    assert rec.log == ["end", "close"]


async def test_async_for_and_listeners_see_the_same_chunks() -> None:
    app = App()
    seen: dict[str, list[bytes]] = {"loop": [], "event": []}

    @app.post("/both")
    async def both(req, res):  # type: ignore[no-untyped-def]
        async def on_data(chunk: bytes) -> None:  # an async listener is awaited before the next
            await trio.lowlevel.checkpoint()
            seen["event"].append(chunk)

        req.on("data", on_data)
        async for chunk in req:
            assert seen["event"][-1] is chunk  # fired before the loop body got it
            seen["loop"].append(chunk)
        await res.send("ok")

    with trio.fail_after(10):
        async with running(app) as server:
            reply = await request(server, "POST", "/both", body=b"z" * 50000)
    assert reply.status == 200
    assert seen["loop"] == seen["event"] and b"".join(seen["loop"]) == b"z" * 50000


# -- broken bodies --------------------------------------------------------------------------------
async def test_disconnect_mid_body_fires_error_and_close_without_end() -> None:
    rec = Recorder()
    caught: list[BaseException] = []
    app = App()

    @app.post("/up")
    async def up(req, res):  # type: ignore[no-untyped-def]
        rec.attach(req)
        try:
            async for _ in req:
                pass
        except ClientDisconnected as exc:
            caught.append(exc)
            raise

    with trio.fail_after(10):
        async with session(app) as (client, server, _):
            await client.send("POST", "/up", [("content-length", "100000")], end=False)
            await client.send_body(b"x" * 3000)
            await client.stream.aclose()
            await rec.closed.wait()
    assert rec.kinds == ["data", "error", "close"]
    assert isinstance(rec.errors[0], ClientDisconnected) and caught == rec.errors
    assert app.budget.used == 0


async def test_disconnect_while_listeners_wait_for_the_pump() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with session(streaming_app(rec)) as (client, _, _):
            await client.send("POST", "/edgeros", [("content-length", "100000")], end=False)
            await client.send_body(b"x" * 100)
            await client.stream.aclose()
            await rec.closed.wait()
    assert rec.kinds == ["data", "error", "close"]
    assert isinstance(rec.errors[0], ClientDisconnected)


async def test_stalled_body_is_408_with_the_error_event(autojump_clock: Any) -> None:
    rec = Recorder()
    with trio.fail_after(60):
        async with session(streaming_app(rec)) as (client, _, _):
            await client.send("POST", "/stream", [("content-length", "1000")], end=False)
            await client.send_body(b"ab")
            start = trio.current_time()
            reply = await client.response()
            assert 5.0 <= trio.current_time() - start < 6.0  # body_timeout_s = 5
            assert await client.closed()
            await rec.closed.wait()
    assert reply.status == 408 and reply.headers["connection"] == "close"
    assert rec.kinds == ["data", "error", "close"]
    assert isinstance(rec.errors[0], BodyTimeout) and "5 s" in str(rec.errors[0])


async def test_body_below_the_minimum_rate_is_408_with_the_error_event(
    autojump_clock: Any,
) -> None:
    rec = Recorder()
    with trio.fail_after(120):
        async with session(streaming_app(rec)) as (client, _, _):
            await client.send("POST", "/stream", [("content-length", "1000")], end=False)

            async def dribble() -> None:
                try:
                    for _ in range(1000):
                        await client.send_body(b"x")
                        await trio.sleep(1)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(dribble)
                reply = await client.response()
                nursery.cancel_scope.cancel()
            await rec.closed.wait()
    assert reply.status == 408
    assert isinstance(rec.errors[0], BodyTimeout) and "minimum rate" in str(rec.errors[0])


async def test_malformed_chunked_body_is_400_saying_why() -> None:
    rec = Recorder()
    raw = (
        b"POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\nzz\r\nnot a chunk\r\n0\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    with trio.fail_after(10):
        async with running(streaming_app(rec)) as server:
            replies = await exchange(server, raw, ["POST"])
            await rec.closed.wait()
    assert [r.status for r in replies] == [400]  # and the connection closes: no /after
    assert replies[0].headers["connection"] == "close"
    assert b"Malformed request body" in replies[0].body
    err = rec.errors[0]
    assert type(err) is BodyError and err.status == 400 and "chunk" in err.message
    assert rec.kinds == ["data", "error", "close"]


async def test_content_length_over_the_limit_is_413_before_any_body_byte() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with running(streaming_app(rec)) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send(
                    "POST",
                    "/stream",
                    [("content-length", str(300 * 1024)), ("expect", "100-continue")],
                    end=False,
                )
                reply = await client.response()
                assert client.informational == []  # no 100 Continue for a body we refuse
            await rec.closed.wait()
    assert reply.status == 413
    assert reply.json() == {"error": "request entity too large: limit 262144 bytes", "status": 413}
    assert isinstance(rec.errors[0], BodyTooLarge)
    assert rec.log == ["error", "close"]


async def test_chunked_body_over_the_limit_is_413_while_reading() -> None:
    rec = Recorder()
    body = b"y" * (300 * 1024)
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with trio.fail_after(10):
        async with running(streaming_app(rec)) as server:
            reply = await request(
                server, "POST", "/stream", [("Transfer-Encoding", "chunked")], body=raw
            )
            await rec.closed.wait()
    assert reply.status == 413 and b"limit 262144 bytes" in reply.body
    assert rec.kinds == ["data", "error", "close"]


async def test_route_option_sets_the_streaming_limit() -> None:
    app = App()

    async def count(req, res):  # type: ignore[no-untyped-def]
        n = 0
        async for chunk in req:
            n += len(chunk)
        await res.json({"bytes": n, "limit": req.max_body_bytes})

    app.post("/big", count, max_body_bytes=1 << 20)
    app.post("/small", count, max_body_bytes=1000)
    with trio.fail_after(10):
        async with running(app) as server:
            big = await request(server, "POST", "/big", body=b"b" * 600_000)
            small = await request(server, "POST", "/small", body=b"s" * 2000)
    assert big.json() == {"bytes": 600_000, "limit": 1 << 20}  # the mode's limit is 256 KiB
    assert small.status == 413 and b"request entity too large: limit 1000 bytes" in small.body


async def test_pump_without_an_error_listener_replies_with_the_error() -> None:
    app = App()

    @app.post("/data-only")
    async def data_only(req, res):  # type: ignore[no-untyped-def]
        req.on("data", lambda chunk: None)

    @app.post("/own-error")
    async def own_error(req, res):  # type: ignore[no-untyped-def]
        async def on_error(err: BodyError) -> None:
            await res.status(422).send(f"mine: {err.status}")

        req.on("data", lambda chunk: None)
        req.on("error", on_error)

    body = b"q" * (300 * 1024)
    with trio.fail_after(10):
        async with running(app) as server:
            plain = await request(server, "POST", "/data-only", body=body)
            own = await request(server, "POST", "/own-error", body=body)
    assert plain.status == 413
    assert own.status == 422 and own.text == "mine: 413"


async def test_unknown_event_name_is_a_programming_error(caplog: Any) -> None:
    app = App()

    @app.post("/bad")
    async def bad(req, res):  # type: ignore[no-untyped-def]
        req.on("finish", lambda: None)

    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="gateway.app"):
        async with running(app) as server:
            reply = await request(server, "POST", "/bad", body=b"x")
    assert reply.status == 500
    assert "unknown request event 'finish'" in caplog.text


async def test_reading_twice_without_the_cache_is_a_programming_error(caplog: Any) -> None:
    app = App()

    @app.post("/twice")
    async def twice(req, res):  # type: ignore[no-untyped-def]
        async for _ in req:
            pass
        async for _ in req:
            pass

    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="gateway.app"):
        async with running(app) as server:
            reply = await request(server, "POST", "/twice", body=b"x" * 100)
    assert reply.status == 500 and b"already been read" not in reply.body  # nothing leaks
    assert "already been read" in caplog.text and "enable_cache" in caplog.text


# -- unread bodies: drain or close, never read the next request out of a body --------------------
def ignoring_app(calls: list[str]) -> App:
    app = App()

    @app.post("/ignore")
    async def ignore(req, res):  # type: ignore[no-untyped-def]
        calls.append("ignore")
        await res.send("ignored")

    @app.get("/smuggled")
    async def smuggled(req, res):  # type: ignore[no-untyped-def]
        calls.append("smuggled")
        await res.send("SMUGGLED")

    @app.get("/next")
    async def next_(req, res):  # type: ignore[no-untyped-def]
        calls.append("next")
        await res.send("next")

    return app


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


async def test_small_unread_body_is_drained_and_the_pipelined_request_served() -> None:
    calls: list[str] = []
    body = SMUGGLED * 10  # a body that looks like requests must stay a body
    raw = b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    with trio.fail_after(10):
        async with running(ignoring_app(calls)) as server:
            replies = await exchange(server, raw + body + NEXT, ["POST", "GET"])
    assert [r.body for r in replies] == [b"ignored", b"next"]
    assert calls == ["ignore", "next"]


async def test_unread_chunked_body_closes_and_nothing_after_it_is_read() -> None:
    # a chunked body has no length to judge the drain by: the connection closes instead
    calls: list[str] = []
    body = SMUGGLED * 10
    head = b"POST /ignore HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) + NEXT
    with trio.fail_after(10):
        async with running(ignoring_app(calls)) as server:
            replies = await exchange(server, raw, ["POST", "GET"])
    assert [r.body for r in replies] == [b"ignored"]
    assert replies[0].headers["connection"] == "close" and calls == ["ignore"]


async def test_large_unread_body_closes_and_nothing_after_it_is_read() -> None:
    calls: list[str] = []
    body = SMUGGLED * 1000  # 35 KB: over max_drain_bytes (16 KiB in the test profile)
    raw = b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    with trio.fail_after(10):
        async with running(ignoring_app(calls)) as server:
            replies = await exchange(server, raw + body + NEXT, ["POST", "GET"])
    assert [r.body for r in replies] == [b"ignored"]
    assert replies[0].headers["connection"] == "close"
    assert calls == ["ignore"]


async def test_partly_read_body_is_drained_from_where_the_handler_stopped() -> None:
    app = ignoring_app([])

    @app.post("/first-chunk")
    async def first_chunk(req, res):  # type: ignore[no-untyped-def]
        async for chunk in req:
            await res.send(b"%d" % len(chunk))
            break

    body = b"P" * 20000
    raw = b"POST /first-chunk HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    with trio.fail_after(10):
        async with running(app) as server:
            replies = await exchange(server, raw + body + NEXT, ["POST", "GET"])
    assert len(replies) == 2 and replies[1].body == b"next"
    assert 0 < int(replies[0].body) <= 16384


# -- BodyStream against scripted sources ----------------------------------------------------------
class ScriptedSource:
    """Hands out the given chunks; an exception in the script is raised instead."""

    def __init__(self, script: list[bytes | BaseException], length: int | None = None) -> None:
        self.script = list(script)
        self.length = length
        self.pulls = 0

    def expected_length(self) -> int | None:
        return self.length

    async def receive_chunk(self) -> bytes | None:
        self.pulls += 1
        await trio.lowlevel.checkpoint()
        if not self.script:
            return None
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def stream_of(
    script: list[bytes | BaseException],
    *,
    length: int | None = None,
    max_body: int = 1000,
    max_cache: int = 100,
    budget: int = 1000,
) -> tuple[BodyStream, ScriptedSource, MemoryBudget]:
    source = ScriptedSource(script, length)
    b = MemoryBudget(budget)
    return BodyStream(source, max_body, max_cache, b), source, b


async def test_the_next_chunk_is_pulled_only_when_the_previous_was_taken() -> None:
    s, source, _ = stream_of([b"a", b"b", b"c"])
    it = s.__aiter__()
    assert source.pulls == 0
    assert await it.__anext__() == b"a" and source.pulls == 1
    assert await it.__anext__() == b"b" and source.pulls == 2
    assert [c async for c in s] == [b"c"] and s.state is State.DONE


async def test_a_listener_that_raises_a_body_error_fails_the_stream() -> None:
    s, _, budget = stream_of([b"1234", b"5678"], budget=6)
    errors: list[BaseException] = []
    s.on("data", lambda chunk: s.reserve(len(chunk)))  # keeps what it sees, under the budget
    s.on("error", errors.append)
    with pytest.raises(BodyError) as info:
        async for _ in s:
            pass
    assert info.value.status == 503 and errors == [info.value] and s.state is State.FAILED
    with pytest.raises(BodyError):  # the same error again, not a silent empty body
        s.__aiter__()
    await s.finish()
    assert budget.used == 0


async def test_a_failed_stream_raises_its_error_on_every_later_read() -> None:
    s, _, _ = stream_of([b"ok", BodyTimeout(None, "slow")])
    with pytest.raises(BodyTimeout):
        async for _ in s:
            pass
    with pytest.raises(BodyTimeout):
        await s.read()
    s.on("end", lambda: None)
    with pytest.raises(BodyTimeout):
        await s.pump()  # no error listener: re-raised for the App to answer
    s.on("error", lambda err: None)
    await s.pump()  # an error listener took it


async def test_finish_fires_close_once_and_logs_listener_bugs(caplog: Any) -> None:
    s, _, _ = stream_of([])
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise ValueError("listener bug")

    s.on("close", broken)
    s.on("close", lambda: calls.append("second"))
    with caplog.at_level(logging.ERROR, logger="gateway.body"):
        await s.finish()
        await s.finish()
    assert calls == ["broken", "second"] and "close listener failed" in caplog.text


async def test_finish_with_disconnected_fails_an_unfinished_body() -> None:
    s, _, _ = stream_of([b"a", b"b"])
    rec = Recorder()
    rec.attach(s)
    it = s.__aiter__()
    await it.__anext__()
    await s.finish(disconnected=True)
    assert rec.kinds == ["data", "error", "close"]
    assert isinstance(rec.errors[0], ClientDisconnected)


async def test_nothing_can_be_read_or_reserved_after_the_exchange_ended() -> None:
    s, source, budget = stream_of([b"a", b"b"])
    it = s.__aiter__()
    await it.__anext__()
    await s.finish()
    with pytest.raises(RuntimeError, match="has ended"):
        await it.__anext__()  # its source may be serving the next request by now
    with pytest.raises(RuntimeError, match="has ended"):
        s.reserve(1)
    assert source.pulls == 1 and budget.used == 0


async def test_two_tasks_cannot_pull_at_once() -> None:
    gate = trio.Event()

    class Slow:
        def expected_length(self) -> int | None:
            return None

        async def receive_chunk(self) -> bytes | None:
            await gate.wait()
            return None

    s = BodyStream(Slow(), 100, 100, MemoryBudget(100))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.read)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="another task"):
            await s.__aiter__().__anext__()
        gate.set()
    assert s.cached == b""


@pytest.mark.parametrize(  # factories: a source is consumed, and a test may run twice
    ("source", "expected"),
    [
        (EmptySource, b""),
        (lambda: BytesSource(b""), b""),
        (lambda: BytesSource(b"virtual"), b"virtual"),
    ],
)
async def test_in_memory_sources(source: Any, expected: bytes) -> None:
    s = BodyStream(source(), 100, 100, MemoryBudget(100))
    assert await s.read() == expected and s.state is State.DONE
    assert [c async for c in s] == ([expected] if expected else [])  # the cached body again


def test_listener_registration_checks_the_event_name() -> None:
    s, _, _ = stream_of([])
    handlers: list[Callable[..., None]] = []
    for name in ("data", "end", "close", "error"):
        s.on(name, handlers.append)
        assert s.listener_count(name) == 1
    with pytest.raises(ValueError, match="expected data, end, close, error"):
        s.on("readable", handlers.append)
