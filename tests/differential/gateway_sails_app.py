# The Sails reference app of tests/node/differential_sails.js, written against the gateway's
# public API, route for route (keep the two in step): Sails' query parser (qs, arrayLimit 1000)
# and extended bodies, the cookie parser, Sails' default responses (res.ok, res.bad_request, ...),
# and Sails' route semantics written out (a verb-less address is bound to its CRUD verbs; an
# `r|regex|names` route numbers its groups, then names them). Missing API is handled as in
# gateway_express_app (recorded in MISSING_API, never stubbed).
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import App, Request, Response, bodyparsers
from gateway.app import qs
from tests.differential.echo import echo
from tests.differential.gateway_express_app import MISSING_API, urlencoded, use_cookie_parser

Handler = Callable[[Request, Response], Awaitable[None]]
# A Sails route address without a verb is bound to these (sails/lib/router/bind.js: "If verb is
# not specified, default to CRUD methods"); not to OPTIONS, which its router answers itself.
SAILS_VERBS = ("GET", "PUT", "POST", "DELETE", "PATCH")


def _app(**options: Any) -> App:
    try:
        return App(**options)
    except TypeError as exc:
        MISSING_API.append(f"App({options}): {exc}")
        return App()


async def send(req: Request, res: Response) -> None:
    await res.json(echo(req, sails=True))


def sails_regex(names: tuple[str, ...], fn: Handler) -> Handler:
    """A Sails ``r|regex|names`` route's handler: Express numbers the regex's groups
    (params[0], params[1], ...), then Sails copies each to the name given after the regex
    (bind.js regexRouteWrapper)."""

    async def route(req: Request, res: Response) -> None:
        for index, name in enumerate(names):
            if index in req.params:
                req.params[name] = req.params[index]
        await fn(req, res)

    return route


def build_sails_app() -> App:
    """The gateway twin of the Sails reference app (its ``routes``)."""
    # Sails' HTTP query strings: Express 4's "extended" parser, qs with arrayLimit 1000
    app = _app(query_parser=lambda text: qs.parse(text, array_limit=1000))
    use_cookie_parser(app)
    # registered before the body parsers, so no parser runs for it: a virtual request's data
    # must be req.body as it is in Sails (over HTTP skipper would parse: socket cases only)
    app.route(SAILS_VERBS, "/raw/echo", send)
    app.use(bodyparsers.json())
    app.use(urlencoded(extended=True))

    app.route(SAILS_VERBS, "/echo", send)
    app.route(SAILS_VERBS, "/echo/:id", send)
    app.get("/user/:id", send)
    app.get("/user/:id/books/:book", send)
    app.get("/file/*", send)  # Express 4 / Sails syntax: the capture is params[0]
    app.route(SAILS_VERBS, re.compile(r"^\/re\/(\d+)\/(\w+)$"), sails_regex(("num", "word"), send))
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

    @app.get("/json-string")
    async def json_string(req: Request, res: Response) -> None:
        await res.json("hi")

    @app.get("/typed-stream")
    async def typed_stream(req: Request, res: Response) -> None:
        res.status(200)
        res.set("Content-Type", "application/json")
        await res.write('{"a":')
        await res.end("1}")

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
