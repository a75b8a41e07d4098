# Graceful shutdown: server.shutdown() refuses new connections at once, closes idle keep-alive
# connections at once, lets in-flight requests finish (their reply says Connection: close), and
# cancels what is still running when shutdown_grace_s has passed.
from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from gateway import App
from gateway.server.serve import ConnectionInfo
from tests.helpers import Client, connect, running


def slow_app() -> tuple[App, trio.Event, trio.Event, list[str]]:
    app = App()
    entered, release = trio.Event(), trio.Event()
    log: list[str] = []

    @app.get("/fast")
    async def fast(req, res):  # type: ignore[no-untyped-def]
        await res.send("fast")

    @app.get("/slow")
    async def slow(req, res):  # type: ignore[no-untyped-def]
        entered.set()
        try:
            await release.wait()
        except trio.Cancelled:
            log.append("cancelled")
            raise
        await res.send("finished")

    return app, entered, release, log


async def test_shutdown_drains_gracefully() -> None:
    app, entered, release, log = slow_app()
    with trio.fail_after(5):
        async with running(app) as server:
            busy = Client(await connect(server))
            idle = Client(await connect(server))
            async with busy.stream, idle.stream:
                await idle.send("GET", "/fast")
                assert (await idle.response()).body == b"fast"
                await busy.send("GET", "/slow")
                await entered.wait()

                server.shutdown()
                assert server.draining
                with trio.fail_after(1):
                    assert await idle.closed()  # idle keep-alive: closed at once
                with pytest.raises(OSError):  # new connects are refused
                    await connect(server)

                release.set()
                reply = await busy.response()
                assert reply.body == b"finished"
                assert reply.headers["connection"] == "close"
                assert await busy.closed()
            with trio.fail_after(1):
                await server.stopped.wait()  # serve() returned by itself
    assert log == []


async def test_request_running_past_the_grace_is_cancelled(autojump_clock: Any) -> None:
    # virtual time: the listener is real (serve() owns the drain), the busy connection is an
    # in-memory stream handed to the server's own nursery, so nothing waits on the kernel and
    # the grace period is measured exactly, however slow the host
    app, entered, release, log = slow_app()
    with trio.fail_after(60):
        async with running(app, server__shutdown_grace_s="2") as server:
            client_side, server_side = trio.testing.memory_stream_pair()
            assert server._nursery is not None
            server._nursery.start_soon(server._run_session, server_side, ConnectionInfo(
                ("127.0.0.1", 40000), "http", False, "127.0.0.1:40000"))
            busy = Client(client_side)
            await busy.send("GET", "/slow")
            await entered.wait()
            start = trio.current_time()
            server.shutdown()
            await server.stopped.wait()
            # polled every 0.05 s within the grace: stopped at 2 s, not before, not much after
            assert 2.0 <= trio.current_time() - start <= 2.1
            assert await busy.closed()  # no response, just the close
    assert log == ["cancelled"]


async def test_shutdown_with_no_connections_returns_promptly() -> None:
    app, *_ = slow_app()
    with trio.fail_after(5):
        async with running(app) as server:
            server.shutdown()
            with trio.fail_after(1):
                await server.stopped.wait()
            assert server.statistics()["draining"] is True
