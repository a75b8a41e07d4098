# The Sails reference app of tests/node/differential_sails.js, written against the gateway's
# public API, route for route (keep the two in step): extended query strings and bodies, the
# cookie parser, and Sails' default responses (res.ok, res.bad_request, ...). Missing API is
# handled as in gateway_express_app (recorded in MISSING_API, never stubbed).
from __future__ import annotations

import re
from typing import Any

from gateway import App, Request, Response, bodyparsers
from tests.differential.echo import echo
from tests.differential.gateway_express_app import MISSING_API, urlencoded, use_cookie_parser


def _app(**options: Any) -> App:
    try:
        return App(**options)
    except TypeError as exc:
        MISSING_API.append(f"App({options}): {exc}")
        return App()


async def send(req: Request, res: Response) -> None:
    await res.json(echo(req, sails=True))


def build_sails_app() -> App:
    """The gateway twin of the Sails reference app (its ``routes``)."""
    app = _app(query_parser="extended")  # Sails' HTTP query strings are qs-parsed
    use_cookie_parser(app)
    # registered before the body parsers, so no parser runs for it: a virtual request's data
    # must be req.body as it is in Sails (over HTTP skipper would parse: socket cases only)
    app.all("/raw/echo", send)
    app.use(bodyparsers.json())
    app.use(urlencoded(extended=True))

    app.all("/echo", send)
    app.all("/echo/:id", send)
    app.get("/user/:id", send)
    app.get("/user/:id/books/:book", send)
    app.get("/file/*", send)  # Express 4 / Sails syntax: the capture is params[0]
    app.get(re.compile(r"^\/re\/(?P<num>\d+)\/(?P<word>\w+)$"), send)
    app.get("/wants", send, wants_json=True)

    # Sails' default responses (res.ok(data) ... on the gateway's Response).
    @app.get("/ok")
    async def ok(req: Request, res: Response) -> None:
        await res.ok({"done": True})  # type: ignore[attr-defined]

    @app.get("/ok/empty")
    async def ok_empty(req: Request, res: Response) -> None:
        await res.ok()  # type: ignore[attr-defined]

    @app.get("/ok/string")
    async def ok_string(req: Request, res: Response) -> None:
        await res.ok("fine")  # type: ignore[attr-defined]

    @app.get("/bad")
    async def bad(req: Request, res: Response) -> None:
        await res.bad_request({"reason": "missing x"})  # type: ignore[attr-defined]

    @app.get("/bad/empty")
    async def bad_empty(req: Request, res: Response) -> None:
        await res.bad_request()  # type: ignore[attr-defined]

    @app.get("/forbidden")
    async def forbidden(req: Request, res: Response) -> None:
        await res.forbidden()  # type: ignore[attr-defined]

    @app.get("/notfound")
    async def notfound(req: Request, res: Response) -> None:
        await res.not_found()  # type: ignore[attr-defined]

    @app.get("/servererror")
    async def servererror(req: Request, res: Response) -> None:
        await res.server_error({"secret": "not for clients"})  # type: ignore[attr-defined]

    @app.get("/servererror/empty")
    async def servererror_empty(req: Request, res: Response) -> None:
        await res.server_error()  # type: ignore[attr-defined]

    @app.get("/throw")
    async def throw(req: Request, res: Response) -> None:
        raise RuntimeError("boom")

    @app.get("/status/:code")
    async def status(req: Request, res: Response) -> None:
        await res.send_status(int(req.params["code"]))

    @app.get("/text")
    async def text(req: Request, res: Response) -> None:
        await res.send("hello")

    @app.get("/json-null")
    async def json_null(req: Request, res: Response) -> None:
        await res.json(None)

    @app.get("/headers")
    async def headers(req: Request, res: Response) -> None:
        res.set("X-One", "1")
        res.set({"X-Two": "2"})
        await res.json({"ok": True})

    @app.get("/redirect")
    async def redirect(req: Request, res: Response) -> None:
        await res.redirect("/target?x=1")

    @app.get("/cookies/set")
    async def cookies_set(req: Request, res: Response) -> None:
        res.cookie("plain", "v1")
        res.cookie("sig", "sv", signed=True)  # type: ignore[call-arg]
        await res.json({"ok": True})

    app.post("/only-post", send)
    return app
