# CORS without a browser: every header decision of a compiled Policy (actual requests,
# preflights, "*", reflection, Vary), the `cors` option of routes and routers (checked when
# registered, merged at bind, a conflict refusing the start), and over real sockets: preflights
# answered before privilege, refusals (403 + Vary), headers kept on error replies, nothing at
# all without a policy, the built-in routes, Sails virtual requests from cross-origin sockets
# and the WebSocket origin check of ws routes with their own option.
from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from wsproto.events import AcceptConnection, RejectConnection

from gateway import App, Request, Response, Router
from gateway.app.cors import Cors, Policy, check_option
from gateway.errors import ConfigError
from gateway.settings import CorsSettings, load_settings
from tests.helpers import make_settings, request, running
from tests.test_modes import TOKEN
from tests.test_sails_gateway import _eio4, _jwr
from tests.test_websocket import Client

A = "https://a.example"
B = "http://192.168.1.20:8080"


def policy(**values: Any) -> Policy:
    base = {
        "allowed_origins": (A, B),
        "allowed_methods": ("GET", "POST"),
        "allowed_headers": ("Authorization", "Content-Type"),
        "allow_credentials": False,
        "max_age_s": 600.0,
        "exposed_headers": (),
    }
    built = Policy.build({**base, **values})
    assert built is not None
    return built


# -- the policy's decisions, header by header ----------------------------------------------------


def test_an_allowed_origin_is_echoed_with_credentials_and_exposed_headers() -> None:
    p = policy(allow_credentials=True, exposed_headers=("ETag", "X-Count"))
    assert p.actual_headers(A) == [
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", A),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", "ETag, X-Count"),
    ]
    # browsers send the serialised origin; a config written otherwise still matches, and the
    # echo is what the browser sent, byte for byte
    assert p.actual_headers("https://A.example")[1] == (
        "Access-Control-Allow-Origin",
        "https://A.example",
    )
    assert policy(allowed_origins=("https://a.example:443/",)).allows(A)
    # the answers the exchange uses are the same, made once per listed origin: variants
    # written otherwise are answered too, without growing anything
    for variant in (A, "https://A.example", "HTTPS://a.EXAMPLE:443"):
        assert p.answer(variant).pairs == tuple(p.actual_headers(variant))
    assert p.answer("https://b.example").pairs == (("Vary", "Origin"),)
    assert len(p._answers) == 2


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://b.example",
        "null",
        "https://a.example.evil",
        "http://a.example",
        "https://a.example:8443",
    ],
)
def test_other_origins_get_only_vary(origin: str | None) -> None:
    # the answer depends on the Origin: caches must keep the variants apart (Fetch, "CORS
    # protocol and HTTP caches"), also for a request without Origin
    assert policy(allow_credentials=True).actual_headers(origin) == [("Vary", "Origin")]


def test_a_wildcard_answers_every_request_alike() -> None:
    p = policy(allowed_origins=("*",), exposed_headers=("*",))
    for origin in (None, A, "null", "https://anything.example"):
        assert p.actual_headers(origin) == [
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Expose-Headers", "*"),
        ]
    assert p.allows("https://anything.example") and not p.allows_socket("https://x.example")
    pre = dict(p.preflight_headers("https://x.example", {"access-control-request-method": "GET"}))
    assert pre["Access-Control-Allow-Origin"] == "*" and "Vary" not in pre


def test_a_preflight_gets_the_whole_policy() -> None:
    p = policy(allow_credentials=True, max_age_s=7200.0)
    headers = {
        "access-control-request-method": "DELETE",
        "access-control-request-headers": "x-other",
    }
    assert p.preflight_headers(A, headers) == [
        ("Access-Control-Allow-Origin", A),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET, POST"),
        ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
        ("Access-Control-Max-Age", "7200"),
        ("Vary", "Origin"),
    ]
    # max_age_s = 0 sends none; no methods or headers listed: none said
    quiet = policy(max_age_s=0.0, allowed_methods=(), allowed_headers=())
    assert quiet.preflight_headers(A, headers) == [
        ("Access-Control-Allow-Origin", A),
        ("Vary", "Origin"),
    ]


def test_star_methods_and_headers_reflect_the_preflight() -> None:
    p = policy(allowed_methods=("*",), allowed_headers=("*",), allow_credentials=True)
    got = dict(
        p.preflight_headers(
            A,
            {
                "access-control-request-method": "PATCH",
                "access-control-request-headers": "x-a, x-b",
            },
        )
    )
    assert got["Access-Control-Allow-Methods"] == "PATCH"
    assert got["Access-Control-Allow-Headers"] == "x-a, x-b"
    assert got["Vary"] == ("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")


def test_private_network_access_is_answered_for_an_allowed_origin() -> None:
    got = dict(
        policy().preflight_headers(
            A,
            {
                "access-control-request-method": "GET",
                "access-control-request-private-network": "true",
            },
        )
    )
    assert got["Access-Control-Allow-Private-Network"] == "true"
    assert "Access-Control-Allow-Private-Network" not in dict(
        policy().preflight_headers(A, {"access-control-request-method": "GET"})
    )


def test_no_origin_listed_is_no_policy_and_a_wildcard_refuses_credentials() -> None:
    values = {key: getattr(CorsSettings(), key) for key in CorsSettings.__slots__}
    assert Policy.build(values) is None
    with pytest.raises(
        ValueError,
        match=r'"\*" in allowed_origins together with '
        r"allow_credentials",
    ):
        policy(allowed_origins=("*",), allow_credentials=True)


# -- the cors option -------------------------------------------------------------------------------


def test_the_option_is_checked_when_registered() -> None:
    assert check_option(None) is None and check_option(False) is False
    assert check_option({"allowed_origins": [A], "max_age_s": 5}) == {
        "allowed_origins": (A,),
        "max_age_s": 5.0,
    }
    with pytest.raises(TypeError, match="expected True, False or a dict"):
        check_option("https://a.example")
    with pytest.raises(ValueError, match="unknown key 'origins'; expected one of: allowed_"):
        check_option({"origins": [A]})
    with pytest.raises(ValueError, match=r"cors.allowed_origins: expected a list of origins"):
        check_option({"allowed_origins": ["https://a.example/path"]})
    with pytest.raises(ValueError, match=r'"\*" together with allow_credentials'):
        check_option({"allowed_origins": ["*"], "allow_credentials": True})
    app = App()
    with pytest.raises(ValueError, match=r"route '/x': cors: unknown key 'bogus'"):
        app.get("/x", cors={"bogus": 1})
    with pytest.raises(TypeError):
        Router(cors=[A])  # type: ignore[arg-type]


def chain_app() -> App:
    app = App()

    async def ok(req: Request, res: Response) -> None:
        await res.send("ok")

    app.get("/plain", ok)
    app.get("/closed", ok, cors=False)
    app.get("/own", ok, cors={"allowed_origins": [B], "allow_credentials": True})
    api = Router(cors={"exposed_headers": ["X-Api"]})
    api.get("/item", ok)
    api.get("/reopened", ok, cors={"allowed_origins": [B]})
    shut = Router(cors=False)
    shut.get("/in", ok)
    shut.get("/again", ok, cors=True)
    app.use("/api", api)
    app.use("/shut", shut)
    return app


def test_options_merge_outermost_first() -> None:
    app = chain_app()
    cors = Cors(load_settings("test", env={}, overrides={"cors.allowed_origins": A}).cors, app)
    assert cors.active and cors.overrides

    def at(path: str) -> Policy | None:
        return cors.policy_for(app, "GET", path)

    plain, own, item, reopened = at("/plain"), at("/own"), at("/api/item"), at("/api/reopened")
    assert plain is cors.base and at("/nowhere") is cors.base
    assert at("/closed") is None and at("/shut/in") is None
    assert own is not None and own.allows(B) and not own.allows(A) and own.credentials
    assert item is not None and item.allows(A)  # the router's override over the profile's
    assert item.actual_headers(A)[-1] == ("Access-Control-Expose-Headers", "X-Api")
    assert reopened is not None and reopened.allows(B) and not reopened.allows(A)
    assert reopened.actual_headers(B)[-1] == ("Access-Control-Expose-Headers", "X-Api")
    again = at("/shut/again")  # True: the policy the enclosing routers would give, the profile's
    assert again is not None and again.allows(A)
    assert cors.policy_for(app, "POST", "/own") is cors.base  # no POST route there


def test_without_any_policy_nothing_is_compiled() -> None:
    app = App()

    @app.get("/x")
    async def x(req: Request, res: Response) -> None:
        await res.send("x")

    app.bind(make_settings())
    assert app.cors_policies is None  # the exchange spends nothing on CORS


def test_a_route_option_that_conflicts_with_the_profile_refuses_the_start() -> None:
    app = App()

    @app.get("/secret", cors={"allow_credentials": True})
    async def secret(req: Request, res: Response) -> None:
        await res.send("s")

    with pytest.raises(
        ConfigError,
        match=r"App > route '/secret': cors: \"\*\" in "
        r"allowed_origins together with allow_credentials",
    ):
        app.bind(make_settings(cors__allowed_origins=["*"]))


# -- over real sockets -------------------------------------------------------------------------------


def api_app() -> tuple[App, list[tuple[str, str]]]:
    app = App()
    seen: list[tuple[str, str]] = []

    @app.use
    async def log(req: Request, res: Response, next: Any) -> None:
        seen.append((req.method, req.path))
        await next()

    @app.get("/data")
    async def data(req: Request, res: Response) -> None:
        res.set("X-Count", "3")
        await res.json({"n": 3})

    @app.post("/admin", privileged=True)
    async def admin(req: Request, res: Response) -> None:
        await res.json({"mode": req.mode})

    @app.get("/boom")
    async def boom(req: Request, res: Response) -> None:
        raise RuntimeError("a bug")

    @app.options("/own-options")
    async def own_options(req: Request, res: Response) -> None:
        res.set("X-Mine", "yes")
        await res.send_status(200)

    return app, seen


def preflight(
    origin: str, method: str = "POST", headers: str | None = None
) -> list[tuple[str, str]]:
    out = [("Origin", origin), ("Access-Control-Request-Method", method)]
    return out + ([("Access-Control-Request-Headers", headers)] if headers else [])


def cors_headers(reply: Any) -> dict[str, str]:
    return {k: v for k, v in reply.header_list if k.startswith("access-control-") or k == "vary"}


async def test_a_preflight_to_a_privileged_route_is_answered_before_privilege(creds: str) -> None:
    app, seen = api_app()
    with trio.fail_after(10):
        async with running(
            app,
            server__credentials_file=creds,
            cors__allowed_origins=[A],
            cors__allow_credentials=True,
        ) as server:
            pre = await request(server, "OPTIONS", "/admin", preflight(A, "POST", "authorization"))
            actual = await request(
                server, "POST", "/admin", [("Origin", A), ("Authorization", f"Bearer {TOKEN}")]
            )
            anonymous = await request(server, "POST", "/admin", [("Origin", A)])
    assert pre.status == 204 and pre.body == b""
    assert "content-length" not in pre.headers and "content-type" not in pre.headers
    assert cors_headers(pre) == {
        "access-control-allow-origin": A,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
        "access-control-allow-headers": "Authorization, Content-Type",
        "access-control-max-age": "600",
        "vary": "Origin",
    }
    assert seen == [("POST", "/admin"), ("POST", "/admin")]  # the preflight ran no middleware
    assert actual.status == 200 and actual.json() == {"mode": "privilege"}
    assert actual.headers["access-control-allow-origin"] == A
    # the refusal still carries the policy's headers: the page can read its 401
    assert anonymous.status == 401 and cors_headers(anonymous) == {
        "access-control-allow-origin": A,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }


async def test_a_disallowed_origin_is_refused_without_cors_headers() -> None:
    app, seen = api_app()
    with trio.fail_after(10):
        async with running(app, cors__allowed_origins=[A]) as server:
            pre = await request(server, "OPTIONS", "/data", preflight("https://evil.example"))
            get = await request(server, "GET", "/data", [("Origin", "https://evil.example")])
            bare = await request(server, "GET", "/data")
            twice = await request(server, "GET", "/data", [("Origin", A), ("Origin", A)])
    assert pre.status == 403 and cors_headers(pre) == {"vary": "Origin"}
    assert cors_headers(twice) == {"vary": "Origin"}  # "a, a" is no origin
    assert b"origin not allowed" in pre.body and seen == [("GET", "/data")] * 3
    # a simple request is served (CORS protects reading, the browser blocks it), marked Vary
    assert get.status == 200 and cors_headers(get) == {"vary": "Origin"}
    assert bare.status == 200 and cors_headers(bare) == {"vary": "Origin"}


async def test_error_replies_keep_the_cors_headers() -> None:
    app, _ = api_app()
    with trio.fail_after(10):
        async with running(
            app, cors__allowed_origins=[A], cors__exposed_headers=["X-Count"]
        ) as server:
            ok = await request(server, "GET", "/data", [("Origin", A)])
            missing = await request(server, "GET", "/missing", [("Origin", A)])
            boom = await request(server, "GET", "/boom", [("Origin", A)])
            wrong = await request(server, "DELETE", "/data", [("Origin", A)])
    assert ok.headers["access-control-expose-headers"] == "X-Count" and ok.headers["x-count"] == "3"
    for reply, status in ((missing, 404), (boom, 500), (wrong, 405)):
        assert reply.status == status
        assert cors_headers(reply) == {
            "access-control-allow-origin": A,
            "access-control-expose-headers": "X-Count",
            "vary": "Origin",
        }, reply


async def test_without_a_policy_nothing_changes() -> None:
    app, seen = api_app()
    with trio.fail_after(10):
        async with running(app) as server:
            pre = await request(server, "OPTIONS", "/data", preflight(A, "GET"))
            own = await request(server, "OPTIONS", "/own-options", preflight(A, "GET"))
            get = await request(server, "GET", "/data", [("Origin", A)])
    # OPTIONS is the app's, as before: the Allow list, or its own handler
    assert pre.status == 200 and pre.headers["allow"] == "GET, HEAD" and not cors_headers(pre)
    assert own.status == 200 and own.headers["x-mine"] == "yes"
    assert get.status == 200 and not cors_headers(get)
    assert len(seen) == 3


async def test_route_options_over_real_requests() -> None:
    app = chain_app()
    with trio.fail_after(10):
        async with running(app) as server:  # no [cors] in the profile: only the routes'
            plain = await request(server, "GET", "/plain", [("Origin", B)])
            own = await request(server, "GET", "/own", [("Origin", B)])
            pre = await request(server, "OPTIONS", "/own", preflight(B, "GET"))
            closed = await request(server, "OPTIONS", "/api/item", preflight(B, "GET"))
            reopened = await request(server, "GET", "/api/reopened", [("Origin", B)])
    assert plain.status == 200 and not cors_headers(plain)
    assert own.headers["access-control-allow-origin"] == B
    assert own.headers["access-control-allow-credentials"] == "true"
    assert pre.status == 204 and pre.headers["access-control-allow-origin"] == B
    # the router's option lists no origin and the profile none: no policy, the app's OPTIONS
    assert closed.status == 200 and not cors_headers(closed)
    assert reopened.headers["access-control-allow-origin"] == B
    assert reopened.headers["access-control-expose-headers"] == "X-Api"


async def test_built_in_routes_and_unknown_paths_follow_the_profile() -> None:
    app, _ = api_app()
    with trio.fail_after(10):
        async with running(app, cors__allowed_origins=[A]) as server:
            health = await request(server, "GET", "/_gateway/health", [("Origin", A)])
            pre = await request(server, "OPTIONS", "/nowhere", preflight(A, "PUT"))
            head = await request(server, "HEAD", "/data", [("Origin", A)])
    assert health.status == 200 and health.headers["access-control-allow-origin"] == A
    assert pre.status == 204 and pre.headers["access-control-allow-origin"] == A
    assert head.status == 200 and head.headers["access-control-allow-origin"] == A


async def test_a_wildcard_policy_over_real_requests(creds: str) -> None:
    app, _ = api_app()
    with trio.fail_after(10):
        async with running(app, cors__allowed_origins=["*"]) as server:
            get = await request(server, "GET", "/data", [("Origin", "https://x.example")])
            bare = await request(server, "GET", "/data")
            pre = await request(server, "OPTIONS", "/admin", preflight("https://x.example"))
    for reply in (get, bare):
        assert cors_headers(reply) == {"access-control-allow-origin": "*"}
    assert pre.status == 204 and pre.headers["access-control-allow-origin"] == "*"


# -- sockets -------------------------------------------------------------------------------------


def socket_app() -> App:
    app = App()

    @app.get("/open")
    async def open_(req: Request, res: Response) -> None:
        await res.json({"origin": req.get("origin")})

    @app.get("/closed", cors=False)
    async def closed(req: Request, res: Response) -> None:
        await res.json({"closed": True})

    @app.ws("/live")
    async def live(ws: Any, req: Request) -> None:
        await ws.send("hi")

    @app.ws("/partner", cors={"allowed_origins": [B]})
    async def partner(ws: Any, req: Request) -> None:
        await ws.send("partner")

    return app


async def test_virtual_requests_from_a_cross_origin_socket_meet_their_routes_policy() -> None:
    app = socket_app()
    with trio.fail_after(10):
        async with running(app, cors__allowed_origins=[A]) as server:
            other, _ = await _eio4(server.port, [("Origin", A)])
            opened = await _jwr(other, 1, "get", {"url": "/open"})
            closed = await _jwr(other, 2, "get", {"url": "/closed"})
            # a virtual request cannot claim another origin (the handshake's is kept)
            forged = await _jwr(
                other,
                3,
                "get",
                {
                    "url": "/closed",
                    "headers": {"origin": f"http://127.0.0.1:{server.port}", "host": "a.example"},
                },
            )
            own, _ = await _eio4(server.port, [("Origin", f"http://127.0.0.1:{server.port}")])
            same = await _jwr(own, 1, "get", {"url": "/closed"})
    assert opened["statusCode"] == 200 and opened["body"] == {"origin": A}
    assert opened["headers"]["Access-Control-Allow-Origin"] == A  # as Sails sets them
    assert closed["statusCode"] == 403 and forged["statusCode"] == 403
    assert same["statusCode"] == 200 and same["body"] == {"closed": True}


async def test_ws_routes_take_their_own_origin_list() -> None:
    app = socket_app()
    with trio.fail_after(10):
        async with running(app, cors__allowed_origins=[A]) as server:
            results = {}
            for path in ("/live", "/partner"):
                for origin in (A, B):
                    _, event = await Client.open(server.port, path, headers=[("Origin", origin)])
                    results[path, origin] = (
                        101
                        if isinstance(event, AcceptConnection)
                        else event.status_code
                        if isinstance(event, RejectConnection)
                        else 0
                    )
            _, sio = await Client.open(
                server.port, "/socket.io/?EIO=4&transport=websocket", headers=[("Origin", B)]
            )
    assert results == {
        ("/live", A): 101,
        ("/live", B): 403,
        ("/partner", A): 403,
        ("/partner", B): 101,
    }
    assert isinstance(sio, RejectConnection) and sio.status_code == 403  # the profile's list


async def test_a_reload_applies_a_new_policy_or_refuses_a_conflicting_one() -> None:
    app = App()

    @app.get("/x", cors={"allow_credentials": True})
    async def x(req: Request, res: Response) -> None:
        await res.send("x")

    with trio.fail_after(10):
        async with running(app) as server:
            before = await request(server, "GET", "/x", [("Origin", A)])
            server.reload(make_settings(cors__allowed_origins=[A]))
            after = await request(server, "GET", "/x", [("Origin", A)])
            with pytest.raises(ConfigError, match=r"route '/x'"):
                server.reload(make_settings(cors__allowed_origins=["*"]))  # "*" + credentials
            kept = await request(server, "GET", "/x", [("Origin", A)])
    assert not cors_headers(before)  # the option lists no origin, nor does the profile
    assert after.headers["access-control-allow-origin"] == A
    assert after.headers["access-control-allow-credentials"] == "true"
    assert cors_headers(kept) == cors_headers(after)  # refused whole: the old policy stays


def test_the_old_websocket_key_still_works_and_says_where_it_moved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    caplog.set_level(logging.WARNING, "gateway.app")
    app.bind(make_settings(websocket__allowed_origins=[A]))
    assert app.cors_policies is None  # sockets only: HTTP gets no CORS from the old key
    (record,) = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert "[websocket] allowed_origins is deprecated" in record.getMessage()
    assert "move it to [cors] allowed_origins" in record.getMessage()
