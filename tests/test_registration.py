# Registration as a newcomer writes it: a decorator given middleware chains it before the
# handler (Express's app.post(path, mw, handler)), never a silent drop; what cannot be chained is
# an error at registration, not a 404 at run time.
from __future__ import annotations

import pytest
import trio

from gateway import App, Router, bodyparsers
from tests.helpers import request, running


async def test_a_decorator_given_middleware_chains_it_before_the_handler() -> None:
    app = App()
    seen: list[str] = []

    async def tag(req, res, next):  # type: ignore[no-untyped-def]
        seen.append("tag")
        await next()

    @app.post("/form", bodyparsers.urlencoded())
    async def form(req, res):  # type: ignore[no-untyped-def]
        await res.json(req.body)

    @app.use("/api", tag)
    async def api_mw(req, res, next):  # type: ignore[no-untyped-def]
        seen.append("api_mw")
        await next()

    @app.get("/api/x")
    async def x(req, res):  # type: ignore[no-untyped-def]
        await res.send("x")

    with trio.fail_after(5):
        async with running(app) as server:
            reply = await request(
                server,
                "POST",
                "/form",
                body=b"a=1&b=two",
                headers=[("content-type", "application/x-www-form-urlencoded")],
            )
            assert reply.status == 200 and reply.json() == {"a": "1", "b": "two"}
            reply = await request(server, "GET", "/api/x")
            assert reply.status == 200 and seen == ["tag", "api_mw"]


def test_what_cannot_be_chained_is_an_error_at_registration() -> None:
    app = App()

    async def handler(ws, req):  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(TypeError, match="already has its handler"):

        @app.ws("/live", handler)
        async def live(ws, req):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(TypeError, match="already has its handler"):

        @app.use("/sub", Router())
        async def after_mount(req, res, next):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(TypeError, match="decorates an async function"):
        app.get("/a", handler)(Router())  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="must be an async function"):

        @app.get("/sync", handler)
        def sync(req, res):  # type: ignore[no-untyped-def]
            pass
