# Cached bodies and the process-wide memory budget, through the real server: enable_cache/read/
# text/json, the cache limit (413) and budget exhaustion (503 + Retry-After + the error event),
# bytes reserved as they arrive, and the release of every reservation on every way an exchange
# can end (success, 413, 503, 408, disconnect, handler bug, handler cancellation, connection
# cancelled by the send timeout, server shutdown). Each scenario ends with budget.used == 0.
from __future__ import annotations

import gzip
import logging
from typing import Any

import pytest
import trio
import trio.testing

from gateway import App, BudgetExceeded, ClientDisconnected, bodyparsers
from gateway.body.stream import MemoryBudget
from gateway.errors import BodyTimeout, BodyTooLarge
from tests.helpers import Client, connect, request, running
from tests.test_body_streaming import Recorder, session, stream_of

# a budget small enough for two 60 kB bodies not to fit (the cache limits must fit in it)
SMALL = {"memory__body_budget_bytes": 100_000, "limits__privileged__max_cache_bytes": 65536}


def cache_app(rec: Recorder | None = None) -> App:
    app = App()

    @app.post("/cache")
    async def cache(req, res):  # type: ignore[no-untyped-def]
        before = req.body
        req.enable_cache()
        if rec is not None:
            rec.attach(req)
        async for _ in req:
            pass
        assert req.body is await req.read() is await req.read()  # kept, not copied
        await res.json(
            {
                "before": before,
                "len": len(req.body),
                "type": type(req.body).__name__,
                "reserved": req.stream.reserved,
            }
        )

    @app.post("/read")
    async def read(req, res):  # type: ignore[no-untyped-def]
        if rec is not None:
            rec.attach(req)
        data = await req.read()
        await res.json({"len": len(data), "body_is_data": req.body is data})

    @app.post("/text")
    async def text(req, res):  # type: ignore[no-untyped-def]
        await res.json({"text": await req.text(), "again": await req.text()})

    @app.post("/json")
    async def js(req, res):  # type: ignore[no-untyped-def]
        await res.json({"json": await req.json()})

    return app


# -- the cache ------------------------------------------------------------------------------------
async def test_cached_body_becomes_req_body_once_complete() -> None:
    app = cache_app()
    with trio.fail_after(10):
        async with running(app) as server:
            cached = await request(server, "POST", "/cache", body=b"c" * 40000)
            read = await request(server, "POST", "/read", body=b"r" * 100)
            empty = await request(server, "POST", "/read")
    assert cached.json() == {"before": {}, "len": 40000, "type": "bytes", "reserved": 40000}
    assert read.json() == {"len": 100, "body_is_data": True}
    assert empty.json() == {"len": 0, "body_is_data": True}
    assert app.budget.used == 0 and app.budget.peak == 40000


async def test_text_and_json_decode_charset_and_content_encoding() -> None:
    app = cache_app()
    latin = [("Content-Type", "text/plain; charset=iso-8859-1")]
    gz = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    with trio.fail_after(10):
        async with running(app) as server:
            t = await request(server, "POST", "/text", latin, body="grüße".encode("latin-1"))
            j = await request(server, "POST", "/json", gz, body=gzip.compress(b'{"a": [1, 2]}'))
            scalar = await request(server, "POST", "/json", body=b"42")
            bad = await request(
                server, "POST", "/json", [("Accept", "text/html")], body=b'{"a": 1,\n "b": }'
            )
            deep = await request(server, "POST", "/json", body=b"[" * 10000)
            unknown = await request(
                server,
                "POST",
                "/text",
                [("Content-Type", "text/plain; charset=klingon")],
                body=b"x",
            )
    assert t.json() == {"text": "grüße", "again": "grüße"}
    assert j.json() == {"json": {"a": [1, 2]}} and scalar.json() == {"json": 42}
    assert bad.status == 400 and bad.text.startswith("Invalid JSON at line 2 column 7 (char 15)")
    assert deep.status == 400 and "nesting deeper than 64" in deep.json()["error"]
    assert unknown.status == 415 and 'unsupported charset "KLINGON"' in unknown.json()["error"]
    assert app.budget.used == 0


async def test_read_limit_and_cache_limit_are_413() -> None:
    rec = Recorder()
    app = cache_app(rec)

    @app.post("/limited")
    async def limited(req, res):  # type: ignore[no-untyped-def]
        await res.send(await req.read(limit=10))

    body = b"k" * 70000  # over user max_cache_bytes (64 KiB), under max_body_bytes (256 KiB)
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with trio.fail_after(10):
        async with running(app) as server:
            early = await request(server, "POST", "/read", body=body)
            await rec.closed.wait()
            early_log = list(rec.log)
            rec.log.clear()
            rec.closed = trio.Event()
            late = await request(
                server, "POST", "/read", [("Transfer-Encoding", "chunked")], body=raw
            )
            await rec.closed.wait()
            small = await request(server, "POST", "/limited", body=b"x" * 11)
    assert early.status == late.status == small.status == 413
    assert b"limit 65536 bytes" in early.body and b"limit 65536 bytes" in late.body
    assert b"limit 10 bytes" in small.body
    assert early_log == ["error", "close"]  # from Content-Length: not a byte was read
    assert rec.kinds == ["data", "error", "close"]  # chunked: found while caching
    assert isinstance(rec.errors[-1], BodyTooLarge)
    assert app.budget.used == 0


async def test_enable_cache_after_reading_is_a_500_and_a_logged_programming_error(
    caplog: Any,
) -> None:
    app = App()

    @app.post("/late")
    async def late(req, res):  # type: ignore[no-untyped-def]
        async for _ in req:
            break
        req.enable_cache()

    with trio.fail_after(10), caplog.at_level(logging.ERROR, logger="gateway.app"):
        async with running(app) as server:
            reply = await request(
                server, "POST", "/late", [("Accept", "text/html")], body=b"x" * 40000
            )
    assert reply.status == 500 and reply.text == "Internal Server Error"
    (record,) = [r for r in caplog.records if r.name == "gateway.app"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "POST /late: unhandled error in handler"
    assert record.exc_info is not None  # the traceback goes to the log
    exc = record.exc_info[1]
    assert type(exc) is RuntimeError
    assert str(exc).startswith("enable_cache() must be called before the request body is read")


# -- the budget -----------------------------------------------------------------------------------
def holding_app(rec: Recorder) -> tuple[App, trio.Event, trio.Event]:
    app = cache_app(rec)
    held, release = trio.Event(), trio.Event()

    @app.post("/hold")
    async def hold(req, res):  # type: ignore[no-untyped-def]
        data = await req.read()
        held.set()
        await release.wait()
        await res.json({"len": len(data)})

    return app, held, release


async def test_exhausted_budget_is_503_with_retry_after_and_the_error_event() -> None:
    rec = Recorder()
    app, held, release = holding_app(rec)
    replies: dict[str, Any] = {}
    body = b"h" * 60000
    with trio.fail_after(10):
        async with running(app, **SMALL) as server:
            async with trio.open_nursery() as nursery:

                async def holder() -> None:
                    replies["hold"] = await request(server, "POST", "/hold", body=body)

                nursery.start_soon(holder)
                await held.wait()
                assert app.budget.used == 60000
                # early, from Content-Length: 60000 bytes cannot fit in the 40000 left
                replies["early"] = await request(server, "POST", "/read", body=body)
                await rec.closed.wait()
                early_log, early_errors = list(rec.log), list(rec.errors)
                rec.closed = trio.Event()
                # chunked: reserved as the bytes arrive, refused once the budget runs out
                raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                replies["late"] = await request(
                    server, "POST", "/read", [("Transfer-Encoding", "chunked")], body=raw
                )
                await rec.closed.wait()
                late_kinds, late_errors = rec.kinds, list(rec.errors)
                assert app.budget.used == 60000  # the refused body's bytes are already back
                release.set()
            replies["retry"] = await request(server, "POST", "/read", body=body)
            assert app.budget.used == 0
            stats = app.statistics()["memory"]["body_budget"]
    for name in ("early", "late"):
        r = replies[name]
        assert r.status == 503 and r.headers["retry-after"] == "1", name
        assert r.json() == {"error": "Service Unavailable", "status": 503}
    assert replies["hold"].json() == {"len": 60000} and replies["retry"].json()["len"] == 60000
    assert early_log == ["error", "close"] and isinstance(early_errors[0], BudgetExceeded)
    assert late_kinds[-3:] == ["data", "error", "close"]
    assert isinstance(late_errors[-1], BudgetExceeded)
    assert stats == {
        "total_bytes": 100_000,
        "used_bytes": 0,
        "pledged_bytes": 0,
        "free_bytes": 100_000,
        "over_bytes": 0,
        "peak_bytes": stats["peak_bytes"],
        "rejections": 2,
    }
    assert 60000 < stats["peak_bytes"] <= 100_000


async def test_budget_figures_are_in_gateway_stats() -> None:
    app = cache_app()
    with trio.fail_after(10):
        async with session(app, privileged=True, **SMALL) as (client, _, _):
            await client.send("POST", "/read", body=b"s" * 5000)
            assert (await client.response()).status == 200
            await client.send("GET", "/_gateway/stats")
            stats = (await client.response()).json()
    assert stats["memory"]["body_budget"] == {
        "total_bytes": 100_000,
        "used_bytes": 0,
        "pledged_bytes": 0,
        "free_bytes": 100_000,
        "over_bytes": 0,
        "peak_bytes": 5000,
        "rejections": 0,
    }


async def test_a_parser_uses_the_cached_body_instead_of_charging_it_again() -> None:
    app = App()

    async def keep(req, res, next):  # type: ignore[no-untyped-def]
        req.enable_cache()
        await next()

    app.use(keep)
    app.use(bodyparsers.json())

    @app.post("/parsed")
    async def parsed(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {
                "n": len(req.body["items"]),
                "raw": len(await req.read()),
                "reserved": req.stream.reserved,
            }
        )

    payload = b'{"items": [' + b",".join(b"1" for _ in range(5000)) + b"]}"
    gz = gzip.compress(payload)
    with trio.fail_after(10):
        async with running(app) as server:
            plain = await request(
                server, "POST", "/parsed", [("Content-Type", "application/json")], body=payload
            )
            peak_plain = app.budget.peak
            app.budget.peak = 0
            packed = await request(
                server,
                "POST",
                "/parsed",
                [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                body=gz,
            )
    assert plain.json() == {"n": 5000, "raw": len(payload), "reserved": len(payload)}
    assert peak_plain == len(payload)  # once, not twice
    # an encoded body: the raw bytes (cache) plus the decoded copy the parser keeps
    assert packed.json() == {"n": 5000, "raw": len(gz), "reserved": len(gz) + len(payload)}
    assert app.budget.used == 0


# -- every path gives the reservation back ---------------------------------------------------------
async def test_released_after_success_handler_error_and_extra_reservations(caplog: Any) -> None:
    app = App()

    @app.post("/boom")
    async def boom(req, res):  # type: ignore[no-untyped-def]
        await req.read()
        req.reserve(1000)  # e.g. a parsed copy
        raise ValueError("handler bug")

    @app.post("/ok")
    async def ok(req, res):  # type: ignore[no-untyped-def]
        await req.read()
        req.reserve(1000)
        await res.send("ok")

    with trio.fail_after(10), caplog.at_level(logging.CRITICAL):
        async with running(app) as server:
            assert (await request(server, "POST", "/ok", body=b"o" * 30000)).status == 200
            assert app.budget.used == 0 and app.budget.peak == 31000
            assert (await request(server, "POST", "/boom", body=b"b" * 30000)).status == 500
            assert app.budget.used == 0


async def test_released_after_a_stall_408(autojump_clock: Any) -> None:
    rec = Recorder()
    app = cache_app(rec)
    with trio.fail_after(60):
        async with session(app) as (client, _, _):
            await client.send("POST", "/read", [("content-length", "50000")], end=False)
            await client.send_body(b"x" * 20000)
            reply = await client.response()
            await rec.closed.wait()
    assert reply.status == 408 and isinstance(rec.errors[0], BodyTimeout)
    assert app.budget.peak == 20000 and app.budget.used == 0


async def test_released_after_a_disconnect_mid_body() -> None:
    rec = Recorder()
    app = cache_app(rec)
    with trio.fail_after(10):
        async with session(app) as (client, _, _):
            await client.send("POST", "/read", [("content-length", "50000")], end=False)
            await client.send_body(b"x" * 20000)
            await trio.testing.wait_all_tasks_blocked()
            assert app.budget.used == 20000
            await client.stream.aclose()
            await rec.closed.wait()
    assert isinstance(rec.errors[0], ClientDisconnected)
    assert app.budget.used == 0


async def test_released_when_the_handler_cancels_its_own_read(autojump_clock: Any) -> None:
    app = App()
    closed = trio.Event()

    @app.post("/impatient")
    async def impatient(req, res):  # type: ignore[no-untyped-def]
        req.on("close", closed.set)
        with trio.move_on_after(1):
            await req.read()
        await res.status(202).send(f"gave up holding {req.stream.reserved}")

    with trio.fail_after(60):
        async with session(app) as (client, _, _):
            await client.send("POST", "/impatient", [("content-length", "50000")], end=False)
            await client.send_body(b"x" * 20000)
            reply = await client.response()
            await closed.wait()
    assert reply.status == 202 and reply.body == b"gave up holding 20000"
    assert app.budget.used == 0


async def test_released_when_the_send_timeout_cancels_the_handler(autojump_clock: Any) -> None:
    app = App()
    seen: list[BaseException] = []
    closed = trio.Event()

    @app.post("/flood")
    async def flood(req, res):  # type: ignore[no-untyped-def]
        req.on("close", closed.set)
        await req.read()
        try:
            while True:
                await res.write(b"f" * 4096)  # to a client that never reads
        except BaseException as exc:
            seen.append(exc)
            raise

    with trio.fail_after(60):
        async with session(app, lockstep=True) as (client, server, _):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.send, "POST", "/flood", None, b"z" * 30000)
                await closed.wait()
                used_at_close = app.budget.used
            # what the cancelled write had offered: the head and one chunk, then the close
            pending = await client.stream.receive_some(65536)
            assert pending.startswith(b"HTTP/1.1 200 OK") and len(pending) < 4096 + 200
            assert await client.closed()
    assert isinstance(seen[0], (trio.Cancelled, ClientDisconnected))
    assert app.budget.peak == 30000 and used_at_close == 0 and app.budget.used == 0


async def test_released_when_the_server_is_cancelled_mid_handler() -> None:
    app = App()
    held = trio.Event()

    @app.post("/sleepy")
    async def sleepy(req, res):  # type: ignore[no-untyped-def]
        await req.read()
        held.set()
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            async with running(app) as server:
                client = Client(await connect(server))
                outer.start_soon(client.send, "POST", "/sleepy", None, b"s" * 30000)
                await held.wait()
                assert app.budget.used == 30000
            outer.cancel_scope.cancel()
            await client.aclose()
    assert app.budget.used == 0


# -- the budget object -------------------------------------------------------------------------
def test_memory_budget_accounting(caplog: Any) -> None:
    b = MemoryBudget(100)
    b.reserve(60)
    b.reserve(0)
    with pytest.raises(BudgetExceeded) as info:
        b.reserve(41)
    assert info.value.status == 503 and dict(info.value.headers) == {"Retry-After": "1"}
    assert (b.used, b.free, b.peak, b.rejections) == (60, 40, 60, 1)
    b.release(60)
    with caplog.at_level(logging.ERROR, logger="gateway.body"):
        b.release(5)  # an accounting bug is logged, never raised from a cleanup path
    assert b.used == 0 and "released 5 bytes" in caplog.text
    assert b.statistics() == {
        "total_bytes": 100,
        "used_bytes": 0,
        "pledged_bytes": 0,
        "free_bytes": 100,
        "over_bytes": 0,
        "peak_bytes": 60,
        "rejections": 1,
    }


def test_pledges_admit_declared_bodies_and_keep_room_for_them() -> None:
    b = MemoryBudget(100)
    b.pledge(70)  # a 70-byte body declared by Content-Length, not arrived yet
    with pytest.raises(BudgetExceeded):
        b.pledge(40)  # refused before its body is sent
    with pytest.raises(BudgetExceeded):
        b.reserve(31)  # an unannounced (chunked) body cannot take the pledged room either
    b.redeem(50)  # 50 of the 70 arrived
    assert (b.used, b.pledged, b.free, b.peak) == (50, 20, 30, 50)
    b.unpledge(20)  # the request ended early
    b.release(50)
    assert (b.used, b.pledged, b.free, b.rejections) == (0, 0, 100, 2)


def test_resize_keeps_what_is_held_and_refuses_until_under_the_new_total(caplog: Any) -> None:
    b = MemoryBudget(100)
    b.reserve(50)
    b.pledge(40)
    with pytest.raises(BudgetExceeded):
        b.reserve(11)
    with caplog.at_level(logging.WARNING, logger="gateway.body"):
        b.resize(60)  # a reload to a smaller budget, with 90 bytes held
    assert "refused until 30 bytes are released" in caplog.text
    assert b.statistics() == {
        "total_bytes": 60,
        "used_bytes": 50,
        "pledged_bytes": 40,
        "free_bytes": 0,
        "over_bytes": 30,
        "peak_bytes": 50,
        "rejections": 1,
    }
    for refused in (b.reserve, b.pledge):
        with pytest.raises(BudgetExceeded):
            refused(1)
    b.reserve(0)  # no charge is never refused, even over the total
    b.pledge(0)
    b.redeem(40)  # bytes promised before the resize still arrive
    assert (b.used, b.pledged, b.peak, b.free, b.rejections) == (90, 0, 90, 0, 3)
    b.release(30)  # exactly at the total: still nothing free
    with pytest.raises(BudgetExceeded):
        b.reserve(1)
    b.release(10)
    b.reserve(10)  # under it again: admitted
    assert b.statistics()["over_bytes"] == 0 and b.free == 0
    b.resize(200)  # and larger: room at once
    assert (b.total, b.used, b.free, b.peak, b.rejections) == (200, 60, 140, 90, 4)
    with pytest.raises(ValueError):
        b.resize(-1)


async def test_a_declared_body_that_cannot_fit_is_refused_before_it_is_sent() -> None:
    rec = Recorder()
    app, held, release = holding_app(rec)
    body = b"h" * 60000
    with trio.fail_after(10):
        async with running(app, **SMALL) as server:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(request, server, "POST", "/hold", None, body)
                await held.wait()
                client = Client(await connect(server))
                async with client.stream:
                    await client.send(
                        "POST",
                        "/read",
                        [("content-length", "50000"), ("expect", "100-continue")],
                        end=False,
                    )
                    reply = await client.response()
                assert client.informational == []  # no 100 Continue: the body stays home
                release.set()
    assert reply.status == 503 and reply.headers["retry-after"] == "1"
    assert app.budget.used == app.budget.pledged == 0


async def test_pledged_bytes_are_counted_as_they_arrive() -> None:
    app = App()
    seen: dict[str, Any] = {}

    @app.post("/watch")
    async def watch(req, res):  # type: ignore[no-untyped-def]
        req.enable_cache()
        async for chunk in req:
            seen.setdefault("first", (len(chunk), app.budget.used, app.budget.pledged))
        seen["done"] = (app.budget.used, app.budget.pledged)
        await res.send("ok")

    with trio.fail_after(10):
        async with session(app) as (client, _, _):
            await client.send("POST", "/watch", [("content-length", "40000")], end=False)
            await client.send_body(b"w" * 40000, end=True)
            assert (await client.response()).status == 200
    first, used, pledged = seen["first"]
    assert used == first and pledged == 40000 - first  # reserved as arrived, the rest promised
    assert seen["done"] == (40000, 0)
    assert app.budget.used == app.budget.pledged == 0


@pytest.mark.parametrize(
    ("script", "length"),
    [
        ([b"0123456789"], 10),  # one chunk: kept as is
        ([b"0123", b"456", b"789"], 10),  # filled into one buffer of the declared length
        ([b"0123", b"456", b"789"], None),  # chunked: joined once
        ([b"01", b"23456789"], 4),  # more than declared (not HTTP): nothing is lost
    ],
)
async def test_the_cache_keeps_every_byte_whatever_the_chunking(
    script: list[bytes], length: int | None
) -> None:
    s, _, budget = stream_of(list(script), length=length, max_cache=100, budget=100)
    s.enable_cache()
    data = await s.read()
    assert data == b"0123456789" and budget.used == 10 and budget.pledged == 0
    if len(script) == 1:
        assert data is script[0]  # no copy
    await s.finish()
    assert budget.used == 0 and s.cached is None


async def test_an_allocation_failure_is_a_503_never_a_memory_error(monkeypatch: Any) -> None:
    from gateway.body import stream as body_module

    def no_memory(self: Any) -> bytes:
        raise MemoryError

    monkeypatch.setattr(body_module._CacheStore, "value", no_memory)
    s, _, budget = stream_of([b"0123", b"4567"], length=8)
    errors: list[BaseException] = []
    s.on("error", errors.append)
    with pytest.raises(BudgetExceeded):
        await s.read()
    assert isinstance(errors[0], BudgetExceeded) and budget.rejections == 1
    assert budget.used == 0  # the failed cache gave its bytes back at once
