# Backpressure both ways, so a slow peer can never grow the gateway's memory:
# - responses: res.write() waits for the transport; a client that never reads blocks the handler
#   (one write queued at most), then the send timeout closes the connection and the handler's
#   write is cancelled (or raises ClientDisconnected);
# - requests: the next chunk is read from the socket only after the previous one was taken, for
#   `async for` and for async `data` listeners alike (a slow consumer holds one receive buffer).
from __future__ import annotations

from typing import Any

import trio
import trio.testing

from gateway import App, ClientDisconnected
from tests.helpers import connect, running
from tests.test_body_streaming import session

CHUNK = 16384  # also the test profile's recv_buffer_bytes


def flood_app(log: dict[str, Any]) -> App:
    app = App()

    @app.get("/flood")
    async def flood(req, res):  # type: ignore[no-untyped-def]
        req.on("close", log["closed"].set)
        log["written"] = 0
        try:
            for _ in range(1 << 16):  # 1 GiB in 16 KiB writes, bounded
                await res.write(b"f" * CHUNK)
                log["written"] += CHUNK
        except BaseException as exc:
            log["error"] = exc
            log["at"] = trio.current_time()
            raise

    return app


async def test_a_client_that_never_reads_blocks_the_writer_then_times_out(
    autojump_clock: Any,
) -> None:
    log: dict[str, Any] = {"closed": trio.Event()}
    with trio.fail_after(60):
        async with session(flood_app(log), lockstep=True) as (client, server, counted):
            # lockstep: a send_all returns only when the peer has taken every byte, so nothing
            # can pile up in between and every byte the handler got rid of is accounted for
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.send, "GET", "/flood")
                start = trio.current_time()
                await log["closed"].wait()
            offered = await client.stream.receive_some(1 << 20)  # the one write in flight
            assert await client.closed()
    assert isinstance(log["error"], (trio.Cancelled, ClientDisconnected))
    assert log["written"] == 0  # the very first write (head + chunk) never completed
    assert counted.sent <= CHUNK + 512 and len(offered) == counted.sent
    assert 5.0 <= log["at"] - start <= 5.0 + 0.5 + 0.01  # send_timeout_s + reaper resolution
    assert server.stats["active"] == 0


async def test_over_tcp_the_writer_stops_at_the_socket_buffers(autojump_clock: Any) -> None:
    log: dict[str, Any] = {"closed": trio.Event()}
    with trio.fail_after(60):
        async with running(flood_app(log)) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET /flood HTTP/1.1\r\nHost: a\r\n\r\n")
                await log["closed"].wait()  # never reading a byte
    assert isinstance(log["error"], (trio.Cancelled, ClientDisconnected))
    # what left the handler sits in the kernel's socket buffers (a few MiB on loopback), not
    # in the gateway: the loop asked to write 1 GiB
    assert 0 < log["written"] < 32 << 20


def reader_app(log: dict[str, Any]) -> App:
    app = App()

    @app.post("/slow-loop")
    async def slow_loop(req, res):  # type: ignore[no-untyped-def]
        n = 0
        async for chunk in req:
            n += len(chunk)
            if not log["first"].is_set():
                log["first"].set()
                await log["go"].wait()  # a consumer that stalls after one chunk
        await res.json({"bytes": n})

    @app.post("/slow-listener")
    async def slow_listener(req, res):  # type: ignore[no-untyped-def]
        sizes: list[int] = []

        async def on_data(chunk: bytes) -> None:
            sizes.append(len(chunk))
            if len(sizes) == 1:
                log["first"].set()
                await log["go"].wait()

        async def on_end() -> None:
            await res.json({"bytes": sum(sizes)})

        req.on("data", on_data)
        req.on("end", on_end)

    return app


async def check_slow_consumer(path: str) -> None:
    log: dict[str, Any] = {"first": trio.Event(), "go": trio.Event()}
    body = b"b" * 200_000
    with trio.fail_after(10):
        async with session(reader_app(log)) as (client, _, counted):
            # the in-memory client buffers without limit: the whole body is "sent" at once
            await client.send("POST", path, body=body)
            await log["first"].wait()
            await trio.testing.wait_all_tasks_blocked()
            held = counted.received
            log["go"].set()
            reply = await client.response()
    assert reply.json() == {"bytes": len(body)}
    # while the consumer sat on its first chunk, the gateway had read one receive buffer
    assert held <= CHUNK


async def test_async_for_reads_the_next_chunk_only_when_asked() -> None:
    await check_slow_consumer("/slow-loop")


async def test_an_async_data_listener_holds_back_the_next_read() -> None:
    await check_slow_consumer("/slow-listener")
