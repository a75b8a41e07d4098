# The HTTP server end to end: real loopback sockets (port 0) for framing, keep-alive, limits,
# smuggling and the LAN guard; in-memory streams + autojump_clock for every timeout, so nothing
# here sleeps for real.
from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from gateway import App, HTTPError, Router
from tests.helpers import (
    Client,
    bound_server,
    connect,
    exchange,
    make_settings,
    memory_session,
    parse_replies,
    read_all,
    request,
    running,
)
from tests.test_http_connection import BAD_BODIES, BAD_HEADS


def echo_app() -> App:
    app = App()

    @app.get("/")
    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.send("hello")

    @app.get("/path")
    async def path(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {
                "path": req.path,
                "query": req.query,
                "url": req.url,
                "hostname": req.hostname,
                "version": req.http_version,
            }
        )

    @app.post("/echo")
    async def echo(req, res):  # type: ignore[no-untyped-def]
        await res.send(await req.read())

    @app.post("/ignore")
    async def ignore(req, res):  # type: ignore[no-untyped-def]
        await res.send("ignored")

    @app.post("/reject")
    async def reject(req, res):  # type: ignore[no-untyped-def]
        await res.status(401).send("no")

    @app.get("/stream")
    async def stream(req, res):  # type: ignore[no-untyped-def]
        await res.write("one,")
        await res.write(b"two,")
        await res.end("three")

    @app.get("/boom")
    async def boom(req, res):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret detail /etc/shadow")

    @app.get("/boom-late")
    async def boom_late(req, res):  # type: ignore[no-untyped-def]
        await res.write("partial")
        raise RuntimeError("after the head")

    @app.get("/split")
    async def split(req, res):  # type: ignore[no-untyped-def]
        res.set("X-Evil", "a\r\nSet-Cookie: owned=1")
        await res.send("unreachable")

    return app


@asynccontextmanager
async def session(app: App, **overrides: Any) -> AsyncIterator[tuple[Client, Any]]:
    """An in-memory connection to a real HTTPSession (for timeouts under autojump_clock)."""
    server, stream, run = memory_session(app, make_settings(**overrides))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        yield Client(stream), server
        nursery.cancel_scope.cancel()


# -- framing and keep-alive ---------------------------------------------------------------------
async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            client = Client(await connect(server))
            async with client.stream:
                for i in range(3):
                    await client.send("POST", "/echo", body=b"n%d" % i)
                    reply = await client.response()
                    assert reply.body == b"n%d" % i
                    assert "connection" not in reply.headers
                assert server.stats["accepted"] == 1


async def test_pipelined_requests_are_answered_in_order() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
        b"GET /path?last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            replies = await exchange(server, raw, ["GET", "POST", "HEAD", "POST", "GET"])
    assert [r.status for r in replies] == [200] * 5
    assert replies[0].body == b"hello"
    assert replies[1].body == b"abc"
    assert replies[2].body == b"" and replies[2].headers["content-length"] == "5"
    assert replies[3].body == b"xy"
    assert replies[4].json()["query"] == {"last": ""}


async def test_head_has_no_body_and_the_same_content_length_as_get() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            get = await request(server, "GET", "/")
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                raw = await read_all(stream)
    assert raw.endswith(b"\r\n\r\n"), raw  # nothing after the head
    head = parse_replies(raw, ["HEAD"])[0]
    assert head.status == 200
    assert head.headers["content-length"] == get.headers["content-length"] == "5"
    assert head.headers["content-type"] == get.headers["content-type"]


async def test_head_of_a_streamed_response_sends_no_chunks() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(
                    b"HEAD /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                raw = await read_all(stream)
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\n")
    assert b"one" not in raw


async def test_http10_closes_after_the_response() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
                raw = await read_all(stream)  # returns: the server closed
    (reply,) = parse_replies(raw)
    assert reply.status == 200 and reply.body == b"hello"
    assert reply.http_version == b"1.1"


async def test_http10_keep_alive_keeps_the_connection() -> None:
    raw = (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"GET /path HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
        b"GET /path HTTP/1.0\r\n\r\n"
        b"GET /never HTTP/1.0\r\n\r\n"
    )
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(raw)  # no half-close: the server must close by itself
                replies = parse_replies(await read_all(stream))
    assert [r.status for r in replies] == [200, 200, 200]
    assert replies[0].headers["connection"] == "keep-alive"
    assert replies[1].json()["version"] == "1.0"
    assert replies[2].headers["connection"] == "close"


async def test_connection_close_is_honoured() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("GET", "/", [("connection", "close")])
                reply = await client.response()
                assert reply.headers["connection"] == "close"
                assert await client.closed()


async def test_absolute_form_target() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            (reply,) = await exchange(
                server,
                b"GET http://device.local:8080/path?q=1 HTTP/1.1\r\n"
                b"Host: other\r\nConnection: close\r\n\r\n",
            )
    data = reply.json()
    assert data["path"] == "/path"
    assert data["query"] == {"q": "1"}
    assert data["url"] == "/path?q=1"
    assert data["hostname"] == "device.local"  # RFC 9112 3.2.2: the target's authority wins


async def test_asterisk_form_options_is_not_a_crash() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            (reply,) = await exchange(
                server, b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            assert 200 <= reply.status < 500
            assert (await request(server)).status == 200


@pytest.mark.parametrize(
    ("raw", "status", "text"),
    [
        (
            b"CONNECT smuggled.example:443 HTTP/1.1\r\nHost: smuggled.example:443\r\n\r\n",
            501,
            b"CONNECT is not supported: this server is not a proxy",
        ),
        (
            b"GET /smuggled HTTP/2.0\r\nHost: a\r\n\r\n",
            505,
            b"HTTP version not supported (only HTTP/1.x)",
        ),
        (
            b"GET smuggled/42 HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
            b"request-target must be origin-form (/path), absolute-form (http://host/path) or * "
            b"(OPTIONS only)",
        ),
    ],
)
async def test_refused_request_lines_get_their_status_a_text_and_a_close(
    raw: bytes, status: int, text: bytes
) -> None:
    app, seen = smuggle_app()
    with trio.fail_after(5):
        async with running(app) as server:
            replies = await exchange(server, raw + SECOND)
            assert (await request(server, "GET", "/after")).status == 200
    assert [r.status for r in replies] == [status]
    assert replies[0].headers["connection"] == "close"
    assert replies[0].headers["content-type"].startswith("text/plain")
    assert replies[0].body == text
    assert seen == ["/after"]


async def test_fragment_is_kept_in_url_and_left_out_of_routing_path_and_query() -> None:
    # what Express 5.x answers for the same requests (req.url as sent, routing without '#')
    app = App()
    sub = Router()

    @sub.get("/:id")
    async def mounted(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {
                "url": req.url,
                "original_url": req.original_url,
                "base_url": req.base_url,
                "path": req.path,
                "query": req.query,
                "params": req.params,
            }
        )

    app.use("/mnt", sub)

    @app.get("/user/:id")
    async def user(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {
                "url": req.url,
                "original_url": req.original_url,
                "path": req.path,
                "query": req.query,
                "params": req.params,
            }
        )

    with trio.fail_after(5):
        async with running(app) as server:
            direct = await request(server, "GET", "/user/42?x=1#frag")
            hash_first = await request(server, "GET", "/user/42#frag?x=1")
            under_mount = await request(server, "GET", "/mnt/7?y=2#z")
    assert direct.json() == {
        "url": "/user/42?x=1#frag",
        "original_url": "/user/42?x=1#frag",
        "path": "/user/42",
        "query": {"x": "1"},
        "params": {"id": "42"},
    }
    assert hash_first.json() == {
        "url": "/user/42#frag?x=1",
        "original_url": "/user/42#frag?x=1",
        "path": "/user/42",
        "query": {},
        "params": {"id": "42"},
    }
    assert under_mount.json() == {
        "url": "/7?y=2#z",
        "original_url": "/mnt/7?y=2#z",
        "base_url": "/mnt",
        "path": "/7",
        "query": {"y": "2"},
        "params": {"id": "7"},
    }


async def test_chunked_request_and_response_bodies() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("POST", "/echo", [("transfer-encoding", "chunked")], end=False)
                for part in (b"a" * 10, b"b" * 20000, b"c"):
                    await client.send_body(part)
                await client.send_body(end=True)
                reply = await client.response()
                assert reply.body == b"a" * 10 + b"b" * 20000 + b"c"
                await client.send("GET", "/stream")
                streamed = await client.response()
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in streamed.headers
    assert streamed.body == b"one,two,three"


async def test_arbitrary_methods_reach_routes() -> None:
    app = App()

    async def propfind(req, res):  # type: ignore[no-untyped-def]
        await res.send(req.method)

    app.route(["PROPFIND"], "/x", propfind)
    with trio.fail_after(5):
        async with running(app) as server:
            assert (await request(server, "PROPFIND", "/x")).body == b"PROPFIND"
            reply = await request(server, "MKCOL", "/x")
    assert reply.status == 405 and reply.headers["allow"] == "PROPFIND"


# -- 100-continue -------------------------------------------------------------------------------
async def test_100_continue_is_sent_when_the_handler_reads(autojump_clock: Any) -> None:
    with trio.fail_after(60):
        async with session(echo_app()) as (client, _):
            await client.send(
                "POST", "/echo", [("content-length", "5"), ("expect", "100-continue")], end=False
            )
            assert await client.interim() == 100
            await client.send_body(b"hello", end=True)
            reply = await client.response()
            assert reply.status == 200 and reply.body == b"hello"
            await client.send("GET", "/")
            assert (await client.response()).status == 200  # still usable


@pytest.mark.parametrize(
    ("target", "status", "body"),
    [("/reject", 401, b"no"), ("/ignore", 200, b"ignored"), ("/missing", 404, None)],
)
async def test_early_answer_without_100_closes_at_once(
    autojump_clock: Any, target: str, status: int, body: bytes | None
) -> None:
    with trio.fail_after(60):
        async with session(echo_app()) as (client, _):
            start = trio.current_time()
            await client.send(
                "POST",
                target,
                [("content-length", "100000"), ("expect", "100-continue")],
                end=False,
            )
            reply = await client.response()
            assert reply.status == status
            if body is not None:
                assert reply.body == body
            assert client.informational == []
            assert reply.headers["connection"] == "close"
            assert await client.closed()
            assert trio.current_time() - start < 1  # no waiting for a body that never comes


async def test_unread_small_body_is_drained_and_the_connection_kept() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("POST", "/ignore", body=b"x" * 1000)
                assert (await client.response()).body == b"ignored"
                await client.send("GET", "/")
                assert (await client.response()).body == b"hello"


async def test_unread_large_body_closes_after_the_response() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("POST", "/ignore", [("content-length", "100000")], end=False)
                reply = await client.response()
                assert reply.body == b"ignored" and reply.headers["connection"] == "close"
                assert await client.closed()


# -- limits -------------------------------------------------------------------------------------
async def test_head_limits_from_the_profile() -> None:
    long_line = b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    big_head = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 5000 + b"\r\n\r\n"
    many = (
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(40)) + b"\r\n"
    )
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            for raw, status in ((long_line, 414), (big_head, 431), (many, 431)):
                replies = await exchange(server, raw + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                assert [r.status for r in replies] == [status]
                assert replies[0].headers["connection"] == "close"
                assert replies[0].body  # a short explanation
            assert server.stats["protocol_errors"] == 3
            assert (await request(server)).status == 200


async def test_limits_follow_overrides() -> None:
    with trio.fail_after(5):
        async with running(echo_app(), http__max_header_count=3) as server:
            reply = await request(server, headers=[("a", "1"), ("b", "2")])
    assert reply.status == 431


async def test_slow_head_gets_408_after_head_timeout(autojump_clock: Any) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    with trio.fail_after(60):
        async with session(echo_app()) as (client, server):
            start = trio.current_time()

            async def dribble() -> None:
                try:
                    for i in range(len(head)):
                        await client.stream.send_all(head[i : i + 1])
                        await trio.sleep(1)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(dribble)
                raw = await read_all(client.stream)
                elapsed = trio.current_time() - start
                nursery.cancel_scope.cancel()
    (reply,) = parse_replies(raw)
    assert reply.status == 408 and reply.headers["connection"] == "close"
    assert 2.0 <= elapsed < 3.0  # head_timeout_s = 2 in the test profile
    assert server.stats["protocol_errors"] == 1


async def test_idle_keep_alive_connection_closes_after_idle_timeout(autojump_clock: Any) -> None:
    with trio.fail_after(60):
        async with session(echo_app()) as (client, _):
            await client.send("GET", "/")
            assert (await client.response()).status == 200
            start = trio.current_time()
            assert await client.closed()
            assert 5.0 <= trio.current_time() - start < 6.0  # idle_timeout_s = 5


async def test_silent_new_connection_is_closed_without_a_reply(autojump_clock: Any) -> None:
    with trio.fail_after(60):
        async with session(echo_app()) as (client, _):
            assert await client.closed()
            assert trio.current_time() >= 2.0


async def test_body_read_timeout_is_408(autojump_clock: Any) -> None:
    with trio.fail_after(60):
        async with session(echo_app()) as (client, _):
            await client.send("POST", "/echo", [("content-length", "10")], end=False)
            await client.send_body(b"ab")
            start = trio.current_time()
            reply = await client.response()
            assert reply.status == 408 and reply.headers["connection"] == "close"
            assert 5.0 <= trio.current_time() - start < 6.0  # body_timeout_s = 5
            assert await client.closed()


async def test_body_below_the_minimum_rate_is_408(autojump_clock: Any) -> None:
    with trio.fail_after(120):
        async with session(echo_app()) as (client, _):
            await client.send("POST", "/echo", [("content-length", "100")], end=False)
            start = trio.current_time()

            async def dribble() -> None:
                try:
                    for _ in range(100):
                        await client.send_body(b"x")
                        await trio.sleep(1)  # each byte well within body_timeout_s
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(dribble)
                reply = await client.response()
                elapsed = trio.current_time() - start
                nursery.cancel_scope.cancel()
    assert reply.status == 408
    assert b"rate" in reply.body
    assert elapsed < 10  # long before the 100 s the body would take


async def test_max_requests_per_connection() -> None:
    with trio.fail_after(5):
        async with running(echo_app(), http__max_requests_per_connection=3) as server:
            client = Client(await connect(server))
            async with client.stream:
                for i in range(3):
                    await client.send("GET", "/")
                    reply = await client.response()
                    assert ("connection" in reply.headers) == (i == 2)
                assert reply.headers["connection"] == "close"
                assert await client.closed()


async def test_connection_cap_rejects_excess_without_harming_the_others() -> None:
    app = App()
    release = trio.Event()
    entered = 0
    both_in = trio.Event()

    @app.get("/wait")
    async def wait(req, res):  # type: ignore[no-untyped-def]
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await release.wait()
        await res.send("done")

    with trio.fail_after(5):
        async with running(app, server__max_connections=2) as server:
            clients = [Client(await connect(server)) for _ in range(2)]
            for c in clients:
                await c.send("GET", "/wait")
            await both_in.wait()
            for _ in range(3):
                extra = await connect(server)
                async with extra:
                    await extra.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    (busy,) = parse_replies(await read_all(extra))
                assert busy.status == 503 and busy.headers["connection"] == "close"
                assert "retry-after" in busy.headers
            release.set()
            for c in clients:
                async with c.stream:
                    assert (await c.response()).body == b"done"
            assert server.stats["rejected_busy"] == 3
            with trio.fail_after(1):
                while server.stats["active"]:  # noqa: ASYNC110 (polling the server's counter)
                    await trio.sleep(0.01)
            assert (await request(server, "GET", "/wait")).body == b"done"


async def test_connection_cap_holds_under_a_burst_of_connects() -> None:
    app = App()
    release = trio.Event()

    @app.get("/wait")
    async def wait(req, res):  # type: ignore[no-untyped-def]
        await release.wait()
        await res.send("done")

    with trio.fail_after(5):
        async with running(app, server__max_connections=2) as server:
            # connect all at once: the accept loop takes them in one go
            socks = []
            for _ in range(6):
                s = socket.create_connection(("127.0.0.1", server.port))
                s.sendall(b"GET /wait HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                socks.append(s)
            try:
                with trio.fail_after(2):
                    while server.stats["accepted"] < 6:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                await trio.sleep(0.05)
                assert server.stats["active"] <= 2
                assert server.stats["rejected_busy"] == 4
            finally:
                release.set()
                for s in socks:
                    s.close()


async def test_at_64_refusals_in_flight_an_excess_connection_is_closed_without_a_reply() -> None:
    # each busy refusal is a task that may wait up to a second on its peer; past 64 of them the
    # accept loop closes at once instead of starting more (the in-flight count is set here: no
    # loopback peer can make the 190-byte 503 wait)
    app = App()
    release = trio.Event()
    entered = trio.Event()

    @app.get("/wait")
    async def wait(req, res):  # type: ignore[no-untyped-def]
        entered.set()
        await release.wait()
        await res.send("done")

    with trio.fail_after(5):
        async with running(app, server__max_connections=1) as server:
            held = Client(await connect(server))
            await held.send("GET", "/wait")
            await entered.wait()
            server._rejecting = 63
            async with await connect(server) as extra:
                (busy,) = parse_replies(await read_all(extra))
            assert busy.status == 503
            assert server._rejecting == 63  # the refusal counted itself in and out
            server._rejecting = 64
            async with await connect(server) as extra:
                assert await read_all(extra) == b""
            assert server._rejecting == 64 and server.stats["rejected_busy"] == 2
            server._rejecting = 0
            release.set()
            async with held.stream:
                assert (await held.response()).body == b"done"


def _unread_socket_pair() -> tuple[socket.socket, socket.socket]:
    # a connection whose peer reads nothing and whose send buffer is full: the next send waits
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    for size in (65536, 1):
        try:
            while True:
                ours.send(b"x" * size)
        except BlockingIOError:
            pass
    return ours, theirs


async def test_a_busy_refusal_waits_one_second_at_most_for_a_peer_that_does_not_read(
    mock_clock: trio.testing.MockClock,
) -> None:
    server = bound_server(echo_app())
    pairs = [_unread_socket_pair() for _ in range(2)]
    conns = [trio.socket.from_stdlib_socket(ours) for ours, _ in pairs]
    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(server._reject_busy, conn)
                await trio.testing.wait_all_tasks_blocked()
                assert server._rejecting == 2
                mock_clock.jump(0.999)
                await trio.testing.wait_all_tasks_blocked()
                assert server._rejecting == 2 and all(c.fileno() != -1 for c in conns)
                mock_clock.jump(0.001)
                await trio.testing.wait_all_tasks_blocked()
                # checked here, not after the nursery: a longer wait would hang it (no autojump)
                assert server._rejecting == 0 and all(c.fileno() == -1 for c in conns)
                assert trio.current_time() == 1.0
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


# -- smuggling: 400, close, and nothing after the bad request is interpreted ----------------------
SECOND = b"GET /smuggled2 HTTP/1.1\r\nHost: a\r\n\r\n"


def smuggle_app() -> tuple[App, list[str]]:
    app = App()
    seen: list[str] = []

    @app.all("/*rest")
    async def any_(req, res):  # type: ignore[no-untyped-def]
        seen.append(req.path)
        body = await req.read() if req.method == "POST" else b""
        await res.send(b"ok:" + body)

    return app, seen


@pytest.mark.parametrize("raw", BAD_HEADS.values(), ids=BAD_HEADS.keys())
async def test_smuggling_heads_get_400_and_close(raw: bytes) -> None:
    app, seen = smuggle_app()
    with trio.fail_after(5):
        async with running(app) as server:
            replies = await exchange(server, raw + SECOND)
            assert [r.status for r in replies] == [400]
            assert replies[0].headers["connection"] == "close"
            assert replies[0].body and len(replies[0].body) < 300
            assert seen == []
            assert (await request(server, "GET", "/after")).status == 200


FRAMING_ERRORS = {k: v for k, v in BAD_BODIES.items() if "eof" not in k}


@pytest.mark.parametrize("raw", FRAMING_ERRORS.values(), ids=FRAMING_ERRORS.keys())
async def test_bad_body_framing_gets_400_and_close(raw: bytes) -> None:
    app, seen = smuggle_app()
    with trio.fail_after(5):
        async with running(app) as server:
            replies = await exchange(server, raw + SECOND)
            assert [r.status for r in replies] == [400]
            assert replies[0].headers["connection"] == "close"
            assert replies[0].body and len(replies[0].body) < 300
            assert "/smuggled2" not in seen
            assert (await request(server, "GET", "/after")).status == 200


@pytest.mark.parametrize("raw", [BAD_BODIES["chunked-eof-mid-body"], BAD_BODIES["cl-eof-mid-body"]])
async def test_client_leaving_mid_body_gets_nothing_and_harms_nothing(raw: bytes) -> None:
    app, seen = smuggle_app()
    with trio.fail_after(5):
        async with running(app) as server:
            replies = await exchange(server, raw)
            assert len(replies) <= 1 and all(r.status == 400 for r in replies)
            assert (await request(server, "GET", "/after")).status == 200


async def test_bad_second_request_in_a_pipeline() -> None:
    app, seen = smuggle_app()
    raw = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + BAD_HEADS["duplicate-cl-identical"] + SECOND
    with trio.fail_after(5):
        async with running(app) as server:
            replies = await exchange(server, raw)
    assert [r.status for r in replies] == [200, 400]
    assert seen == ["/first"]


async def test_error_replies_are_short_text() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            (reply,) = await exchange(server, BAD_HEADS["nul-in-name"])
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("text/plain")
    assert b"\x00" not in reply.body and b"bytearray" not in reply.body


# -- errors become replies; the server keeps serving ----------------------------------------------
async def test_handler_exception_is_a_500_that_reveals_nothing(caplog: Any) -> None:
    caplog.set_level(logging.ERROR)
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            client = Client(await connect(server))
            async with client.stream:
                await client.send("GET", "/boom", [("accept", "text/html")])
                reply = await client.response()
                assert reply.status == 500
                assert b"secret" not in reply.body and b"Traceback" not in reply.body
                assert reply.body == b"Internal Server Error"
                await client.send("GET", "/")  # same connection
                assert (await client.response()).body == b"hello"
            assert (await request(server)).body == b"hello"  # new connection
    records = [r for r in caplog.records if r.exc_info]
    assert records and "secret detail" in str(records[0].exc_info[1])


async def test_handler_exception_as_json_when_the_client_wants_json() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            reply = await request(server, "GET", "/boom", [("accept", "application/json")])
    assert reply.status == 500
    assert reply.json() == {"error": "Internal Server Error", "status": 500}


async def test_handler_exception_after_the_head_aborts_only_that_connection(caplog: Any) -> None:
    caplog.set_level(logging.ERROR)
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET /boom-late HTTP/1.1\r\nHost: a\r\n\r\n")
                raw = await read_all(stream)
            # the chunked body is cut short (no last chunk): the client sees a broken response
            assert raw.startswith(b"HTTP/1.1 200") and b"partial" in raw
            assert not raw.endswith(b"0\r\n\r\n")
            assert (await request(server)).body == b"hello"
    assert any("after the head" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_header_injection_from_a_handler_is_a_500() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(
                    b"GET /split HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                raw = await read_all(stream)
            assert (await request(server)).status == 200
    assert raw.startswith(b"HTTP/1.1 500")
    assert b"owned" not in raw and b"X-Evil" not in raw.lower()


async def test_not_found_is_json_for_json_clients_and_text_otherwise() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            text = await request(server, "GET", "/nope", [("accept", "text/html")])
            js = await request(server, "GET", "/nope", [("accept", "application/json")])
    assert text.status == 404 and text.headers["content-type"].startswith("text/plain")
    assert text.body == b"Cannot GET /nope"
    assert js.status == 404 and js.json() == {"error": "Cannot GET /nope", "status": 404}


async def test_body_too_large_is_413_with_a_json_body_for_json_clients() -> None:
    with trio.fail_after(5):
        async with running(echo_app()) as server:
            reply = await request(
                server,
                "POST",
                "/echo",
                [("accept", "application/json"), ("content-length", str(300 * 1024))],
            )
    assert reply.status == 413
    assert reply.json()["status"] == 413


# -- access log ---------------------------------------------------------------------------------
async def test_access_log_line_per_request_with_escapes(capsys: Any) -> None:
    with trio.fail_after(5):
        async with running(echo_app(), server__access_log="true") as server:
            await request(server, "GET", "/")
            await request(server, "GET", '/a%0aGET%20/forged"\\x')
            await request(server, "GET", "/missing")
    lines = capsys.readouterr().err.splitlines()
    access = [ln for ln in lines if '"GET ' in ln]
    assert len(access) == 3
    assert access[0].startswith("127.0.0.1:") and '"GET / HTTP/1.1" 200 5 ' in access[0]
    assert access[0].endswith(" user")
    assert '"GET /a%0aGET%20/forged\\x22\\x5cx HTTP/1.1" 404 ' in access[1]
    assert '"GET /missing HTTP/1.1" 404' in access[2]


async def test_access_log_can_be_switched_off(capsys: Any) -> None:
    with trio.fail_after(5):
        async with running(echo_app(), server__access_log="false") as server:
            await request(server, "GET", "/")
    assert '"GET / HTTP/1.1"' not in capsys.readouterr().err


async def test_raw_control_bytes_in_the_target_never_reach_the_log(capsys: Any) -> None:
    with trio.fail_after(5):
        async with running(echo_app(), server__access_log="true") as server:
            (reply,) = await exchange(server, b"GET /a\x1b[31mb HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reply.status == 400
    assert "\x1b" not in capsys.readouterr().err


# -- LAN guard and Unix socket ----------------------------------------------------------------------
async def test_peer_outside_allowed_networks_is_closed_at_accept() -> None:
    with trio.fail_after(5):
        async with running(echo_app(), server__allowed_networks="10.0.0.0/8") as server:
            stream = await connect(server)
            async with stream:
                try:
                    await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                except trio.BrokenResourceError:
                    pass
                assert await read_all(stream) == b""
            assert server.stats["rejected_network"] == 1
            assert server.stats["accepted"] == 0


# the default unix_allowed_uids is (0,): privilege for root only, whoever runs the tests
@pytest.mark.parametrize(
    ("uids", "mode"),
    [
        (None, "privilege" if os.geteuid() == 0 else "user"),
        ("12345", "user"),
        (str(os.geteuid()), "privilege"),
    ],
)
async def test_unix_socket_privilege_from_peer_credentials(
    tmp_path: Any, uids: str | None, mode: str
) -> None:
    path = str(tmp_path / "gw.sock")
    overrides: dict[str, Any] = {"server__unix_path": path}
    if uids is not None:
        overrides["server__unix_allowed_uids"] = uids
    with trio.fail_after(5):
        async with running(echo_app(), **overrides) as server:
            stream = await trio.open_unix_socket(path)
            async with stream:
                await stream.send_all(
                    b"GET /_gateway/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                (reply,) = parse_replies(await read_all(stream))
            assert reply.json() == {"status": "ok", "mode": mode}
            # TCP on the same server stays user mode
            tcp = await request(server, "GET", "/_gateway/health")
            assert tcp.json()["mode"] == "user"
    assert not await trio.Path(path).exists()  # removed when the server stops


async def test_http_error_from_a_handler_keeps_its_status_and_headers() -> None:
    app = App()

    @app.get("/teapot")
    async def teapot(req, res):  # type: ignore[no-untyped-def]
        raise HTTPError(418, "short and stout", {"X-Pot": "1"})

    with trio.fail_after(5):
        async with running(app) as server:
            reply = await request(server, "GET", "/teapot", [("accept", "text/html")])
    assert reply.status == 418 and reply.body == b"short and stout"
    assert reply.headers["x-pot"] == "1"
