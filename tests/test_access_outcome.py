# The access log says what the client really got (issue: a cut upload and a handler that never
# replied were logged as "200 0"): the status sent, or "-" when no head went out, and how an
# exchange that ended early ended (no-response / incomplete, then client-gone / cancelled /
# the error's type).
from __future__ import annotations

from typing import Any

import trio
import trio.testing

from gateway import App
from tests.helpers import connect, running


def outcome_app(events: dict[str, trio.Event]) -> App:
    app = App()

    @app.post("/upload")
    async def upload(req, res):  # type: ignore[no-untyped-def]
        events["reading"].set()
        async for _chunk in req:
            pass
        await res.send("done")

    @app.get("/hang")
    async def hang(req, res):  # type: ignore[no-untyped-def]
        events["hanging"].set()
        await trio.sleep_forever()

    @app.get("/stream")
    async def stream(req, res):  # type: ignore[no-untyped-def]
        await res.write(b"first part")
        events["streaming"].set()
        await trio.sleep_forever()

    return app


def access_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ' "POST ' in ln or ' "GET ' in ln]


async def test_what_the_client_really_got_is_logged(capsys: Any) -> None:
    events = {k: trio.Event() for k in ("reading", "hanging", "streaming")}
    with trio.fail_after(10):
        async with running(outcome_app(events), server__access_log="true") as server:
            # an upload whose client vanishes mid-body
            up = await connect(server)
            await up.send_all(
                b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
            )
            await events["reading"].wait()
            await up.aclose()
            # a response cut after its head and first bytes
            st = await connect(server)
            await st.send_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
            await events["streaming"].wait()
            await st.receive_some(65536)
            await st.aclose()
            # a handler still running when the server stops
            hg = await connect(server)
            await hg.send_all(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
            await events["hanging"].wait()
            await trio.testing.wait_all_tasks_blocked()
        await hg.aclose()
    lines = access_lines(capsys.readouterr().err)
    by_path = {ln.split('"')[1].split()[1]: ln for ln in lines}
    assert set(by_path) == {"/upload", "/stream", "/hang"}, lines
    assert '"POST /upload HTTP/1.1" - 0 ' in by_path["/upload"]
    assert by_path["/upload"].endswith(" user no-response:client-gone")
    assert '"GET /stream HTTP/1.1" 200 ' in by_path["/stream"]
    # nothing more was written after the client left: the stop is what ended it
    assert by_path["/stream"].endswith(" user incomplete:cancelled")
    assert '"GET /hang HTTP/1.1" - 0 ' in by_path["/hang"]
    assert by_path["/hang"].endswith(" user no-response:cancelled")


async def test_an_asyncio_call_in_a_handler_says_handlers_run_on_trio(caplog: Any) -> None:
    import asyncio
    import logging

    from tests.helpers import request

    app = App()

    @app.get("/sleepy")
    async def sleepy(req, res):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1)  # what a newcomer from asyncio writes
        await res.send("never")

    with trio.fail_after(5), caplog.at_level(logging.ERROR, "gateway"):
        async with running(app) as server:
            reply = await request(server, "GET", "/sleepy")
    assert reply.status == 500
    assert any(
        "handlers run on trio, not asyncio: use trio.sleep" in r.getMessage()
        for r in caplog.records
    )
