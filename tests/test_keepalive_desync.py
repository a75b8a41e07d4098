# A response can go out before its request body has arrived (a handler that answers without
# reading). If the rest of that body then fails to arrive (timeout, disconnect, broken chunk),
# the connection must close: the bytes that come later are still the old body, and reading them
# as the next request head is the request-smuggling desync every server must avoid.
from __future__ import annotations

import trio
import trio.testing

from gateway import App
from tests.helpers import make_settings, memory_session, parse_replies


def _app() -> App:
    app = App()

    @app.post("/early")
    async def early(req, res):  # type: ignore[no-untyped-def]
        await res.send("early")  # answers without reading the body

    @app.get("/next")
    async def nxt(req, res):  # type: ignore[no-untyped-def]
        await res.send("smuggled")

    return app


async def test_body_timeout_after_an_early_reply_closes_the_connection(autojump_clock) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(http__body_timeout_s=1.0, http__max_drain_bytes=4096)
    server, client, run = memory_session(_app(), settings)
    # The body is announced as 200 bytes; 20 arrive, then nothing until the body timeout has
    # passed; then the remaining 180 bytes arrive, shaped like a request of their own.
    smuggled = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    rest = smuggled + b"x" * (180 - len(smuggled))
    received = bytearray()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await client.send_all(
                b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n" + b"a" * 20
            )
            await trio.sleep(5)  # well past body_timeout_s: the drain gives up
            try:
                await client.send_all(rest)
                await client.send_eof()
            except trio.BrokenResourceError:
                pass  # closed already: that is the point
            while True:
                data = await client.receive_some(65536)
                if not data:
                    break
                received += data
    replies = parse_replies(bytes(received), ["POST", "GET"])
    assert [r.body for r in replies] == [b"early"]
    assert b"smuggled" not in received
