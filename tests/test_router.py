# Dispatch semantics of the Express-style router, through a real server: path forms, params,
# middleware order, next()/next(err)/next("route")/next("router"), mounting, 404/405/OPTIONS.
from __future__ import annotations

import re
from typing import Any

import trio

from gateway import App, Router
from tests.helpers import request, running


async def call(app: App, method: str, target: str, **kw: Any) -> Any:
    with trio.fail_after(5):
        async with running(app) as server:
            return await request(server, method, target, [("Accept", "text/html")], **kw)


async def echo_params(req, res):  # type: ignore[no-untyped-def]
    await res.json(
        {
            "params": {str(k): v for k, v in req.params.items()},
            "path": req.path,
            "url": req.url,
            "base_url": req.base_url,
        }
    )


async def test_path_forms_and_params() -> None:
    app = App()
    app.get("/user/:id", echo_params)
    app.get("/opt{/:tab}", echo_params)
    app.get("/file/*path", echo_params)
    app.get("/old/*", echo_params)
    app.get(re.compile(r"^/re/(\d+)-(\w+)$"), echo_params)
    with trio.fail_after(5):
        async with running(app) as server:

            async def params(target: str) -> Any:
                r = await request(server, "GET", target, [("Accept", "text/html")])
                return r.status, r.json()["params"] if r.status == 200 else r.body

            assert await params("/user/42") == (200, {"id": "42"})
            assert await params("/user/a%20b") == (200, {"id": "a b"})
            assert await params("/user/42/") == (200, {"id": "42"})  # non-strict trailing slash
            assert (await params("/user"))[0] == 404
            assert await params("/opt") == (200, {})
            assert await params("/opt/x") == (200, {"tab": "x"})
            assert await params("/file/a/b%2Fc.txt") == (200, {"path": ["a", "b/c.txt"]})
            assert await params("/old/javascripts/jquery.js") == (
                200,
                {"0": "javascripts/jquery.js"},
            )
            assert await params("/re/12-ab") == (200, {"0": "12", "1": "ab"})
            assert (await params("/re/x-ab"))[0] == 404
            status, body = await params("/user/%zz")
            assert status == 400 and b"%zz" in body


async def test_case_insensitive_by_default() -> None:
    app = App()
    app.get("/Hello", echo_params)
    assert (await call(app, "GET", "/hello")).status == 200


async def test_middleware_order_all_and_use() -> None:
    app = App()
    order: list[str] = []

    @app.use
    async def first(req, res, next):  # type: ignore[no-untyped-def]
        order.append("mw1")
        await next()
        order.append("mw1-after")

    @app.use("/api")
    async def api_only(req, res, next):  # type: ignore[no-untyped-def]
        order.append("api-mw:" + req.path)
        await next()

    async def all_(req, res, next):  # type: ignore[no-untyped-def]
        order.append("all")
        await next()

    async def get(req, res):  # type: ignore[no-untyped-def]
        order.append("get")
        await res.send("ok")

    app.all("/api/x", all_)
    app.get("/api/x", get)
    r = await call(app, "GET", "/api/x")
    assert r.body == b"ok"
    # a mounted middleware sees the path below its mount point
    assert order == ["mw1", "api-mw:/x", "all", "get", "mw1-after"]
    order.clear()
    assert (await call(app, "GET", "/apix")).status == 404
    assert order == ["mw1", "mw1-after"]


async def test_next_route_and_multiple_handlers() -> None:
    app = App()

    async def skip(req, res, next):  # type: ignore[no-untyped-def]
        if req.query.get("skip"):
            await next("route")
            return
        await next()

    async def second(req, res):  # type: ignore[no-untyped-def]
        await res.send("second handler")

    async def fallback(req, res):  # type: ignore[no-untyped-def]
        await res.send("next route")

    app.get("/r", skip, second)
    app.get("/r", fallback)
    assert (await call(app, "GET", "/r")).body == b"second handler"
    assert (await call(app, "GET", "/r?skip=1")).body == b"next route"


async def test_next_err_goes_to_error_middleware_and_errors_in_middleware_too() -> None:
    app = App()

    @app.get("/next-err")
    async def next_err(req, res, next):  # type: ignore[no-untyped-def]
        await next(ValueError("passed"))

    @app.use("/mw-raises")
    async def raises(req, res, next):  # type: ignore[no-untyped-def]
        raise KeyError("raised")

    @app.get("/after-error")
    async def never(req, res):  # type: ignore[no-untyped-def]
        await res.send("must be skipped")

    async def on_error(err, req, res, next):  # type: ignore[no-untyped-def]
        await res.status(599 if isinstance(err, KeyError) else 598).send(f"handled {err!s}")

    app.use(on_error)
    r1 = await call(app, "GET", "/next-err")
    r2 = await call(app, "GET", "/mw-raises/x")
    assert (r1.status, r1.body) == (598, b"handled passed")
    assert (r2.status, r2.body) == (599, b"handled 'raised'")


async def test_path_mounted_error_handler_sees_the_path_below_its_mount() -> None:
    app = App()

    @app.get("/api/boom")
    async def boom(req, res):  # type: ignore[no-untyped-def]
        raise ValueError("x")

    async def api_errors(err, req, res, next):  # type: ignore[no-untyped-def]
        await res.status(500).json({"path": req.path, "base": req.base_url})

    app.use("/api", api_errors)
    assert (await call(app, "GET", "/api/boom")).json() == {"path": "/boom", "base": "/api"}


async def test_error_handler_can_pass_the_error_on() -> None:
    app = App()
    seen: list[str] = []

    @app.get("/boom")
    async def boom(req, res):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    async def log_it(err, req, res, next):  # type: ignore[no-untyped-def]
        seen.append(type(err).__name__)
        await next(err)

    app.use(log_it)
    r = await call(app, "GET", "/boom")
    assert seen == ["RuntimeError"]
    assert r.status == 500 and r.body == b"Internal Server Error"


async def test_mounted_router_strips_and_restores_the_path() -> None:
    app = App()
    api = Router()
    seen: list[tuple[str, str, str]] = []

    @api.get("/items/:id")
    async def item(req, res):  # type: ignore[no-untyped-def]
        seen.append((req.path, req.base_url, req.url))
        await res.json({"id": req.params["id"], "path": req.path, "base": req.base_url})

    @api.use
    async def fallthrough(req, res, next):  # type: ignore[no-untyped-def]
        seen.append((req.path, req.base_url, req.url))
        await next()

    app.use("/api/v1", api)

    @app.use
    async def after(req, res):  # type: ignore[no-untyped-def]
        await res.json({"path": req.path, "base": req.base_url, "url": req.url})

    r = await call(app, "GET", "/api/v1/items/7?x=1")
    assert r.json() == {"id": "7", "path": "/items/7", "base": "/api/v1"}
    assert seen == [("/items/7", "/api/v1", "/items/7?x=1")]
    seen.clear()
    r = await call(app, "GET", "/api/v1/other?y=2")
    assert seen == [("/other", "/api/v1", "/other?y=2")]
    assert r.json() == {"path": "/api/v1/other", "base": "", "url": "/api/v1/other?y=2"}


async def test_sub_app_mount_with_params_and_next_router() -> None:
    app = App()
    sub = App()

    @sub.use
    async def gate(req, res, next):  # type: ignore[no-untyped-def]
        if req.query.get("leave"):
            await next("router")
            return
        await next()

    @sub.get("/")
    async def sub_index(req, res):  # type: ignore[no-untyped-def]
        # Express: a mounted app does not see its mount's params (no mergeParams)
        await res.send(f"sub of {req.params.get('dev')} at {req.base_url} {req.path}")

    async def outside(req, res):  # type: ignore[no-untyped-def]
        await res.send("left the router")

    app.use("/dev/:dev", sub)
    app.get("/dev/:dev", outside)
    assert (await call(app, "GET", "/dev/7")).body == b"sub of None at /dev/7 /"
    assert (await call(app, "GET", "/dev/7?leave=1")).body == b"left the router"


async def test_404_405_options_and_head_fallback() -> None:
    app = App()

    async def handler(req, res):  # type: ignore[no-untyped-def]
        await res.send(f"{req.method} body")

    app.get("/thing", handler)
    app.put("/thing", handler)
    app.route(["PROPFIND"], "/dav", handler)
    with trio.fail_after(5):
        async with running(app) as server:
            nf = await request(server, "GET", "/nothing", [("Accept", "text/html")])
            na = await request(server, "DELETE", "/thing", [("Accept", "text/html")])
            opt = await request(server, "OPTIONS", "/thing")
            head = await request(server, "HEAD", "/thing")
            dav = await request(server, "PROPFIND", "/dav")
            dav_get = await request(server, "GET", "/dav", [("Accept", "text/html")])
    assert nf.status == 404 and nf.body == b"Cannot GET /nothing"
    assert na.status == 405 and na.headers["allow"] == "GET, HEAD, PUT"
    assert b"DELETE" in na.body
    assert opt.status == 200 and opt.headers["allow"] == "GET, HEAD, PUT"
    # as Express 5's router sends it: exactly text/plain (no charset), nosniff, the list
    assert opt.headers["content-type"] == "text/plain"
    assert opt.headers["x-content-type-options"] == "nosniff"
    assert opt.body == b"GET, HEAD, PUT"
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(b"HEAD body"))
    assert dav.body == b"PROPFIND body"
    assert dav_get.status == 405 and dav_get.headers["allow"] == "PROPFIND"


async def test_handler_that_sends_nothing_is_a_500() -> None:
    app = App()

    @app.get("/silent")
    async def silent(req, res):  # type: ignore[no-untyped-def]
        pass

    r = await call(app, "GET", "/silent")
    assert r.status == 500


async def test_sync_handlers_are_refused_at_registration() -> None:
    app = App()

    def sync(req, res):  # type: ignore[no-untyped-def]
        pass

    try:
        app.get("/x", sync)
    except TypeError as exc:
        assert "async" in str(exc)
    else:
        raise AssertionError("a sync handler was accepted")


async def test_a_request_through_next_chains_leaves_no_reference_cycle() -> None:
    # next/route_next refer to themselves through their closure cells; the router breaks that
    # when a request ends, or every request (req and res with it) would wait for the cycle
    # collector: memory that grows with the request rate on a small device.
    import gc

    from gateway.app.request import Request

    app = App()
    sub = Router()

    @app.use
    async def mw(req, res, next):  # type: ignore[no-untyped-def]
        await next()

    async def skip(req, res, next):  # type: ignore[no-untyped-def]
        await next("route" if req.query.get("skip") else None)

    async def second(req, res):  # type: ignore[no-untyped-def]
        await res.send("second")

    async def fallback(req, res):  # type: ignore[no-untyped-def]
        await res.send("fallback")

    @sub.get("/x")
    async def mounted(req, res):  # type: ignore[no-untyped-def]
        await res.send("mounted")

    app.get("/r", skip, second)
    app.get("/r", fallback)
    app.use("/sub", sub)
    gc.collect()
    gc.disable()
    try:
        async with running(app) as server:
            for target in ("/r", "/r?skip=1", "/sub/x"):
                assert (await request(server, "GET", target)).status == 200
            await trio.sleep(0.1)  # the sessions end
        left = [o for o in gc.get_objects() if isinstance(o, Request)]
    finally:
        gc.enable()
    assert left == []


# -- mergeParams, req.route, decode errors, mount base URLs: the same scenarios as Express 5 ----
# The expected values are what the real express@5.3 / router@2.3 answered for the same app and
# requests (run once with node; the JavaScript app is the same shape, route for route).


def _scenario_app() -> App:
    async def j(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {
                "params": {str(k): v for k, v in req.params.items()},
                "base": req.base_url,
                "url": req.url,
            }
        )

    app = App()
    shop = Router(merge_params=True)
    shop.get("/item/:item", j)
    shop.get("/over/:shopId", j)
    app.use("/shop/:shopId", shop)
    plain = Router()
    plain.get("/item/:item", j)
    app.use("/plain/:shopId", plain)
    num = Router(merge_params=True)
    num.get(re.compile(r"^/(\d+)/(\w+)$"), j)
    app.use(re.compile(r"^/num/(\w+)"), num)
    inner = Router(merge_params=True)
    inner.get("/c/:c", j)
    mid = Router(merge_params=True)
    mid.use("/b/:b", inner)
    app.use("/a/:a", mid)
    inner2 = Router(merge_params=True)
    inner2.get("/c/:c", j)
    mid2 = Router()
    mid2.use("/b/:b", inner2)
    app.use("/a2/:a", mid2)
    wild = Router(merge_params=True)
    wild.get("/*rest", j)
    app.use("/w/*path", wild)

    @app.use("/rt")
    async def before(req, res, next):  # type: ignore[no-untyped-def]
        res.locals["before"] = None if req.route is None else req.route.path
        await next()

    async def seen(req, res, next):  # type: ignore[no-untyped-def]
        route = req.route
        res.locals["seen"] = {
            "path": route.path,
            "methods": route.methods,
            "stack": len(route.stack),
        }
        await next()

    async def passes(req, res, next):  # type: ignore[no-untyped-def]
        await next()

    app.get("/rt/:id", seen, passes)

    @app.all("/rt-all")
    async def rt_all(req, res):  # type: ignore[no-untyped-def]
        await res.json({"methods": req.route.methods})

    @app.use("/rt")
    async def after(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {"before": res.locals["before"], "seen": res.locals["seen"], "after": req.route.path}
        )

    app.get("/d/:id", j)

    @app.use("/static/*path")
    async def static(req, res):  # type: ignore[no-untyped-def]
        await res.json({"base": req.base_url, "url": req.url, "path": req.path})

    strict = Router(strict=True)

    @strict.use("/x/")
    async def strict_mw(req, res):  # type: ignore[no-untyped-def]
        await res.json({"mw": req.base_url})

    @strict.get("/y/")
    async def strict_route(req, res):  # type: ignore[no-untyped-def]
        await res.json({"route": "y/"})

    app.use("/strict", strict)

    @app.use
    async def on_error(err, req, res, next):  # type: ignore[no-untyped-def]
        await res.status(299).json({"error": err.message, "status": err.status})

    return app


EXPRESS_5_ANSWERS: dict[str, tuple[int, Any]] = {
    "/shop/7/item/9": (
        200,
        {"params": {"shopId": "7", "item": "9"}, "base": "/shop/7", "url": "/item/9"},
    ),
    "/shop/7/over/8": (200, {"params": {"shopId": "8"}, "base": "/shop/7", "url": "/over/8"}),
    "/plain/7/item/9": (200, {"params": {"item": "9"}, "base": "/plain/7", "url": "/item/9"}),
    "/num/x/5/y": (
        200,
        {"params": {"0": "x", "1": "5", "2": "y"}, "base": "/num/x", "url": "/5/y"},
    ),
    "/a/1/b/2/c/3": (
        200,
        {"params": {"a": "1", "b": "2", "c": "3"}, "base": "/a/1/b/2", "url": "/c/3"},
    ),
    "/a2/1/b/2/c/3": (200, {"params": {"b": "2", "c": "3"}, "base": "/a2/1/b/2", "url": "/c/3"}),
    "/w/p/q/r/s": (404, None),  # the mount's splat took everything: "/" is left for /*rest
    "/rt/5": (
        200,
        {
            "before": None,
            "seen": {"path": "/rt/:id", "methods": {"get": True}, "stack": 2},
            "after": "/rt/:id",
        },
    ),
    "/d/%zz": (299, {"error": "Failed to decode param '%zz'", "status": 400}),
    "/static/a/b/": (200, {"base": "/static/a/b", "url": "/", "path": "/"}),
    "/static/a/b": (200, {"base": "/static/a/b", "url": "/", "path": "/"}),
    "/strict/x": (200, {"mw": "/strict/x"}),
    "/strict/x/": (200, {"mw": "/strict/x"}),  # use() is never strict
    "/strict/y": (404, None),
    "/strict/y/": (200, {"route": "y/"}),
}


async def test_same_answers_as_express_5() -> None:
    app = _scenario_app()
    with trio.fail_after(10):
        async with running(app) as server:
            for target, (status, body) in EXPRESS_5_ANSWERS.items():
                r = await request(server, "GET", target, [("Accept", "application/json")])
                assert r.status == status, target
                if body is not None:
                    assert r.json() == body, target
            # Express 5's app.all lists every method in route.methods (it registers the
            # handler once per method); our app.all is one route: {"_all": True}, as
            # Router.all is in Express
            r = await request(server, "GET", "/rt-all")
            assert r.json() == {"methods": {"_all": True}}


async def test_route_is_none_in_middleware_and_set_for_ws_head_and_regex_routes() -> None:
    app = App()
    seen: list[Any] = []

    @app.use
    async def mw(req, res, next):  # type: ignore[no-untyped-def]
        seen.append(req.route)
        await next()

    rx = re.compile(r"^/rx/(\d+)$")

    async def show(req, res):  # type: ignore[no-untyped-def]
        route = req.route
        seen.append((route.path, route.methods, route.stack))
        await res.send("ok")

    app.get("/user/:id", show)
    app.route(["GET", "POST"], rx, show)
    r1 = await call(app, "HEAD", "/user/1")
    r2 = await call(app, "POST", "/rx/5")
    assert r1.status == 200 and r2.status == 200
    assert seen == [
        None,
        ("/user/:id", {"get": True}, (show,)),
        None,
        (rx, {"get": True, "post": True}, (show,)),
    ]


def test_merge_params_numbered_captures() -> None:
    from gateway.app.router import _merge_params

    # the router package's mergeParams, case by case (values from running it in node)
    assert _merge_params({0: "b"}, {0: "a"}) == {0: "a", 1: "b"}
    assert _merge_params({0: "c", 1: "d"}, {0: "a", 1: "b"}) == {0: "a", 1: "b", 2: "c", 3: "d"}
    assert _merge_params({0: "b", "x": "2"}, {"x": "1"}) == {0: "b", "x": "2"}
    assert _merge_params({"x": "2"}, {0: "a", "x": "1"}) == {0: "a", "x": "2"}
    assert _merge_params({0: "c", 1: "d", 2: "e"}, {0: "a"}) == {0: "a", 1: "c", 2: "d", 3: "e"}
    assert _merge_params({}, {}) == {}


def test_router_and_app_take_the_same_routing_keywords() -> None:
    import inspect

    router_kw = set(inspect.signature(Router).parameters)
    app_kw = set(inspect.signature(App).parameters)
    assert router_kw == {"privileged", "case_sensitive", "strict", "merge_params", "cors"}
    assert app_kw == router_kw | {"query_parser"}
    assert App(merge_params=True).merge_params is True


async def test_root_middleware_sees_asterisk_form_options() -> None:
    # router@2: a layer at "/" with end=false matches any path (its fast path), "*" included
    app = App()
    seen: list[str] = []

    @app.use
    async def everything(req, res, next):  # type: ignore[no-untyped-def]
        seen.append("root " + req.path)
        await next()

    @app.use("/api")
    async def api_only(req, res, next):  # type: ignore[no-untyped-def]
        seen.append("api " + req.path)
        await next()

    r = await call(app, "OPTIONS", "*")
    assert seen == ["root *"]
    assert r.status == 404
