# Graceful shutdown: server.shutdown() refuses new connections at once, closes idle keep-alive
# connections at once, lets in-flight requests finish (their reply says Connection: close),
# sends WebSockets a Close at once, and cancels or closes hard what is still running or waiting
# for a peer when shutdown_grace_s has passed: one deadline for the whole drain.
from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from wsproto.events import AcceptConnection, CloseConnection

from gateway import App, Request, Response, WebSocket
from gateway.server.serve import ConnectionInfo
from tests.helpers import Client, connect, running
from tests.test_websocket import Client as WSClient
from tests.test_websocket import _close_clients  # noqa: F401 (autouse fixture)


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
            server._nursery.start_soon(
                server._run_session,
                server_side,
                ConnectionInfo(("127.0.0.1", 40000), "http", False, "127.0.0.1:40000"),
            )
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


# -- one deadline for the whole drain ------------------------------------------------------------
# A peer that never answers the Close frame must not hold the process past shutdown_grace_s
# (systemd's TimeoutStopSec= allows the grace plus a margin, then SIGKILLs): close handshakes,
# also those already under way, requests in flight and Socket.IO sockets share one deadline.
GRACE_S = 2.0
EPSILON_S = 0.1  # serve() polls for the last session every 50 ms
DRAIN = {
    "server__shutdown_grace_s": str(GRACE_S),
    "websocket__pong_timeout_s": "20",
    "websocket__ping_interval_s": "25",
}


def drain_app() -> tuple[App, trio.Event]:
    app = App()
    entered = trio.Event()

    @app.ws("/echo")
    async def echo(ws: WebSocket, req: Request) -> None:
        async for message in ws:
            await ws.send(message)

    @app.ws("/bye")
    async def bye(ws: WebSocket, req: Request) -> None:
        return None  # the server closes at once (1000) and waits for the peer's answer

    @app.ws("/flood")
    async def flood(ws: WebSocket, req: Request) -> None:
        while True:
            await ws.send(b"f" * 65536)

    @app.get("/slow")
    async def slow(req: Request, res: Response) -> None:
        entered.set()
        await trio.sleep_forever()

    return app, entered


async def _deaf(client: WSClient, closes: list[int]) -> None:
    """Read everything, answer nothing (not even the Close frame); note each Close seen."""
    while not client.eof:
        for event in client.ws.events():
            if isinstance(event, CloseConnection):
                closes.append(event.code)
        client.ws.receive_data(await client.read() or None)


async def _polite(client: WSClient, log: dict[str, Any]) -> None:
    close = await client.expect_close()  # answers the Close, then waits for the server's EOF
    log["code"], log["closed_at"] = close.code, trio.current_time()


async def test_unanswered_close_does_not_outlast_the_grace(autojump_clock: Any) -> None:
    app, entered = drain_app()
    closes: dict[str, list[int]] = {"deaf": [], "late": [], "sio": []}
    polite: dict[str, Any] = {}
    with trio.fail_after(60):
        async with running(app, **DRAIN) as server, trio.open_nursery() as peers:
            deaf, accepted = await WSClient.open(server.port, "/echo")
            assert isinstance(accepted, AcceptConnection)
            late, _ = await WSClient.open(server.port, "/bye")  # its close is already under way
            sio, _ = await WSClient.open(server.port, "/socket.io/?EIO=4&transport=websocket")
            mute, _ = await WSClient.open(server.port, "/flood")  # never reads a byte
            good, _ = await WSClient.open(server.port, "/echo")
            busy = Client(await connect(server))
            await busy.send("GET", "/slow")
            await entered.wait()
            for name, client in (("deaf", deaf), ("late", late), ("sio", sio)):
                peers.start_soon(_deaf, client, closes[name])
            await trio.sleep(1.0)  # late's close handshake has started; the flood has filled
            assert closes["late"] == [1000]  # the socket buffers

            peers.start_soon(_polite, good, polite)
            start = trio.current_time()
            server.shutdown()
            await server.stopped.wait()
            elapsed = trio.current_time() - start
            # every peer was closed by then, the deaf ones hard
            assert await busy.closed()
            await busy.aclose()
            await mute.until_eof()
            peers.cancel_scope.deadline = trio.current_time() + 0.01
    assert GRACE_S <= elapsed <= GRACE_S + EPSILON_S, elapsed  # 21 s before: pong_timeout_s
    assert deaf.eof and late.eof and sio.eof
    assert closes["deaf"] == [1001] and closes["sio"] == [1001]  # told why, at once
    # the well-behaved peer had its clean closing handshake at once, well within the grace
    assert polite["code"] == 1001 and polite["closed_at"] - start < 0.5


async def test_draining_within_the_grace_still_ends_when_the_last_socket_closes(
    autojump_clock: Any,
) -> None:
    app, _ = drain_app()
    with trio.fail_after(60):
        async with running(app, **DRAIN) as server:
            clients = [(await WSClient.open(server.port, "/echo"))[0] for _ in range(3)]
            start = trio.current_time()
            server.shutdown()
            codes = [(await client.expect_close()).code for client in clients]
            await server.stopped.wait()
            elapsed = trio.current_time() - start
    assert codes == [1001, 1001, 1001]
    assert elapsed <= EPSILON_S, elapsed  # no waiting for a deadline nobody needs
