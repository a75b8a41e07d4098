from __future__ import annotations

import trio

from gateway import App
from tests.helpers import exchange, request, running


async def test_hello_over_a_real_socket() -> None:
    app = App()

    @app.get("/user/:id")
    async def user(req, res):  # type: ignore[no-untyped-def]
        await res.send(f"user {req.params['id']}")

    with trio.fail_after(5):
        async with running(app) as server:
            reply = await request(server, "GET", "/user/42")
            assert reply.status == 200
            assert reply.body == b"user 42"
            assert reply.headers["content-type"] == "text/html; charset=utf-8"
            replies = await exchange(
                server,
                b"GET /user/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /user/2 HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /user/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            )
            assert [r.body for r in replies] == [b"user 1", b"user 2", b"user 3"]
