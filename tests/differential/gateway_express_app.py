# The Express reference app of tests/node/differential_express.js, written against the gateway's
# public API, route for route (keep the two in step). Uses the API as documented, including
# names still being added: where one is missing the app is built without it and the name goes
# to MISSING_API (printed by the report), so the gap shows as differences, never as a stub.
from __future__ import annotations

import re
from typing import Any

import gateway
from gateway import App, HTTPError, Request, Response, Router, bodyparsers
from tests.differential.echo import echo

SECRET = "harness-secret"  # the same secret as the reference apps

MISSING_API: list[str] = []  # gateway API this build could not use (filled while building)


def router(**options: Any) -> Router:
    """``Router(**options)``; a plain Router (and a MISSING_API entry) when refused."""
    try:
        return Router(**options)
    except TypeError as exc:
        MISSING_API.append(f"Router({', '.join(f'{k}={v!r}' for k, v in options.items())}): {exc}")
        return Router()


def use_cookie_parser(app: Router) -> None:
    """``app.use(cookie_parser(SECRET))`` when the gateway has it."""
    factory = getattr(gateway, "cookie_parser", None)
    if factory is None:
        MISSING_API.append("gateway.cookie_parser")
        return
    app.use(factory(SECRET))


def urlencoded(**options: Any) -> Any:
    """``bodyparsers.urlencoded(**options)``; the default parser when the options are refused."""
    try:
        return bodyparsers.urlencoded(**options)
    except TypeError as exc:
        MISSING_API.append(f"bodyparsers.urlencoded({options}): {exc}")
        return bodyparsers.urlencoded()


async def send(req: Request, res: Response) -> None:
    await res.json(echo(req))


def build_express_app() -> App:
    """The gateway twin of ``buildExpressApp()``."""
    app = App()
    use_cookie_parser(app)

    # The request API without a body parser, then with the simple and the extended parsers.
    app.all("/echo", send)
    app.all("/echo/:id", send)
    parsed = Router()
    parsed.use(bodyparsers.json(), urlencoded(), bodyparsers.text())
    parsed.all("/echo", send)
    parsed.all("/echo/:id", send)
    app.use("/parsed", parsed)
    extended = Router()
    extended.use(bodyparsers.json(), urlencoded(extended=True))
    extended.all("/echo", send)
    app.use("/extended", extended)

    # Route patterns and a regex route.
    app.get("/user/:id", send)
    app.get("/user/:id/books/:book", send)
    app.get("/file/*path", send)
    app.get("/opt{/:maybe}", send)
    app.get("/dl/:file.:ext", send)
    app.get(re.compile(r"^\/re\/(\d+)\/(\w+)$"), send)

    # Mounted routers: merge_params, a router without it, nested routers.
    shop = router(merge_params=True)
    shop.get("/", send)
    shop.get("/items/:itemId", send)
    app.use("/shop/:shopId", shop)
    store = Router()
    store.get("/items/:itemId", send)
    app.use("/store/:storeId", store)
    api = Router()
    v1 = Router()
    v1.get("/things/:id", send)
    api.use("/v1", v1)
    app.use("/api", api)

    # Cookies set and cleared.
    @app.get("/cookies/set")
    async def cookies_set(req: Request, res: Response) -> None:
        res.cookie("plain", "v 1;x")
        res.cookie("obj", {"a": 1})  # type: ignore[arg-type]  # Express: "j:" + JSON
        await res.json({"ok": True})

    @app.get("/cookies/signed")
    async def cookies_signed(req: Request, res: Response) -> None:
        res.cookie("sig", "sv", signed=True)  # type: ignore[call-arg]
        await res.json({"ok": True})

    @app.get("/cookies/options")
    async def cookies_options(req: Request, res: Response) -> None:
        res.cookie(
            "o",
            "1",
            max_age=60,
            path="/p",
            http_only=True,
            same_site="Strict",
            secure=True,
            domain="example.com",
        )
        await res.json({"ok": True})

    @app.get("/cookies/clear")
    async def cookies_clear(req: Request, res: Response) -> None:
        res.clear_cookie("plain")
        await res.json({"ok": True})

    # Redirects and Location.
    @app.get("/redirect")
    async def redirect(req: Request, res: Response) -> None:
        await res.redirect("/target?x=1")

    @app.get("/redirect/301")
    async def redirect_301(req: Request, res: Response) -> None:
        await res.redirect("/moved", 301)

    @app.get("/redirect/encoded")
    async def redirect_encoded(req: Request, res: Response) -> None:
        await res.redirect("/a b/\u00fc?q=1 2&r=%41")

    @app.get("/redirect/absolute")
    async def redirect_absolute(req: Request, res: Response) -> None:
        await res.redirect("http://example.com/x?y=<z>")

    @app.get("/location")
    async def location(req: Request, res: Response) -> None:
        res.location("/loc path")
        await res.send_status(201)

    # What send / json / type / set produce.
    @app.get("/status/:code")
    async def status(req: Request, res: Response) -> None:
        await res.send_status(int(req.params["code"]))

    @app.get("/send/text")
    async def send_text(req: Request, res: Response) -> None:
        await res.send("hello")

    @app.get("/send/buffer")
    async def send_buffer(req: Request, res: Response) -> None:
        await res.send(b"bin")

    @app.get("/send/json-null")
    async def send_json_null(req: Request, res: Response) -> None:
        await res.json(None)

    @app.get("/send/number")
    async def send_number(req: Request, res: Response) -> None:
        await res.json(42)

    @app.get("/send/string-json")
    async def send_string_json(req: Request, res: Response) -> None:
        await res.json("str")

    @app.get("/send/object")
    async def send_object(req: Request, res: Response) -> None:
        await res.send({"a": 1})

    @app.get("/send/empty")
    async def send_empty(req: Request, res: Response) -> None:
        await res.send()

    @app.get("/send/end")
    async def send_end(req: Request, res: Response) -> None:
        await res.end()

    @app.get("/send/204")
    async def send_204(req: Request, res: Response) -> None:
        await res.status(204).send("ignored")

    @app.get("/send/typed")
    async def send_typed(req: Request, res: Response) -> None:
        await res.type("text").send("plain")

    @app.get("/type/:t")
    async def type_(req: Request, res: Response) -> None:
        await res.type(str(req.params["t"])).send("x")

    @app.get("/headers")
    async def headers(req: Request, res: Response) -> None:
        res.set("X-One", "1")
        res.set({"X-Two": "2", "X-Three": "3"})
        res.append("X-List", "a")
        res.append("X-List", "b")
        await res.send("ok")

    # Errors: raised (sync and after an await), an error with a status, an error handler,
    # next("route").
    @app.get("/throw")
    async def throw(req: Request, res: Response) -> None:
        raise RuntimeError("boom")

    @app.get("/throw-async")
    async def throw_async(req: Request, res: Response) -> None:
        await gateway_checkpoint()
        raise RuntimeError("boom")

    @app.get("/next-error/:code")
    async def next_error(req: Request, res: Response, next: Any) -> None:
        await next(HTTPError(int(req.params["code"]), "bad thing"))

    @app.get("/handled")
    async def handled(req: Request, res: Response, next: Any) -> None:
        await next(RuntimeError("handled it"))

    @app.use("/handled")
    async def handled_error(err: Exception, req: Request, res: Response, next: Any) -> None:
        await res.status(422).json({"handled": str(err)})

    async def skip_route(req: Request, res: Response, next: Any) -> None:
        await next("route")

    async def skipped(req: Request, res: Response) -> None:
        await res.send("skipped")

    app.get("/next-route", skip_route, skipped)

    @app.get("/next-route")
    async def second(req: Request, res: Response) -> None:
        await res.json({"second": True})

    # Methods: HEAD through GET, an explicit HEAD, OPTIONS, a route without GET.
    app.get("/multi", send)
    app.put("/multi", send)
    app.post("/only-post", send)

    @app.get("/head")
    async def head(req: Request, res: Response) -> None:
        await res.set("X-Head", "1").send("body text")

    @app.head("/head-explicit")
    async def head_explicit(req: Request, res: Response) -> None:
        await res.set("X-Explicit", "1").end()

    app.get("/head-explicit", send)

    @app.options("/opts")
    async def opts(req: Request, res: Response) -> None:
        await res.set("Allow", "GET, OPTIONS").send("custom")

    app.get("/opts", send)
    return app


async def gateway_checkpoint() -> None:
    """Yield to the event loop once (the twin of an async handler's first await)."""
    import trio

    await trio.lowlevel.checkpoint()
