# The request API handlers see (EdgerOS WebRequest / Express req), through real requests, and the
# promise that user and privilege mode share one API (only `mode`/`privileged` differ).
from __future__ import annotations

from typing import Any

import pytest
import trio

from gateway import App
from tests.helpers import (
    Client,
    make_settings,
    memory_session,
    parse_replies,
    read_all,
    request,
    running,
)


def dump_app() -> App:
    app = App()

    async def dump(req, res):  # type: ignore[no-untyped-def]
        body_before = req.body
        await res.json(
            {
                "app_is_app": req.app is app,
                "url": req.url,
                "original_url": req.original_url,
                "method": req.method,
                "protocol": req.protocol,
                "http_version": req.http_version,
                "headers": req.headers,
                "body": body_before,
                "path": req.path,
                "params": req.params,
                "query": req.query,
                "cookies": req.cookies,
                "get_ct": req.get("Content-Type"),
                "get_CT": req.get("CONTENT-TYPE"),
                "header_ct": req.header("content-type"),
                "referrer": req.get("Referrer"),
                "referer": req.get("referer"),
                "missing": req.get("X-Missing"),
                "param_id": req.param("id"),
                "param_q": req.param("q"),
                "param_default": req.param("nope", "dflt"),
                "wants_json": req.wants_json,
                "xhr": req.xhr,
                "is_json": req.is_("json"),
                "is_html": req.is_("html"),
                "accepts": req.accepts("json", "html"),
                "ip": req.ip,
                "hostname": req.hostname,
                "secure": req.secure,
                "is_socket": req.is_socket,
                "mode": req.mode,
                "privileged": req.privileged,
            }
        )

    app.all("/req/:id", dump)
    return app


HEADERS = [
    ("Content-Type", "application/json"),
    ("Referer", "http://ref.example/"),
    ("Cookie", "name=tj; theme=dark"),
    ("Cookie", "extra=1"),
    ("Accept", "text/html, application/json;q=0.9"),
    ("X-Multi", "a"),
    ("X-Multi", "b"),
    ("Host", "device.example:8080"),
]
TARGET = "/req/42?q=tobi+ferret&a=1&a=2&user[name]=tj&empty="


def check_members(d: dict[str, Any]) -> None:
    assert d["app_is_app"] is True
    assert d["url"] == d["original_url"] == TARGET
    assert d["method"] == "POST" and d["protocol"] == "http" and d["http_version"] == "1.1"
    assert d["headers"]["content-type"] == "application/json"
    assert d["headers"]["x-multi"] == "a, b"
    assert d["headers"]["cookie"] == "name=tj; theme=dark; extra=1"
    assert d["body"] == {}  # no body parser: the EdgerOS default
    assert d["path"] == "/req/42"
    assert d["params"] == {"id": "42"}
    assert d["query"] == {"q": "tobi ferret", "a": ["1", "2"], "user[name]": "tj", "empty": ""}
    assert d["cookies"] == {"name": "tj", "theme": "dark", "extra": "1"}
    assert d["get_ct"] == d["get_CT"] == d["header_ct"] == "application/json"
    assert d["referrer"] == d["referer"] == "http://ref.example/"
    assert d["missing"] is None
    assert d["param_id"] == "42" and d["param_q"] == "tobi ferret"
    assert d["param_default"] == "dflt"
    assert d["xhr"] is False
    assert d["is_json"] == "json" and d["is_html"] is False
    assert d["accepts"] == "html"
    assert d["ip"] == "127.0.0.1" and d["hostname"] == "device.example"
    assert d["secure"] is False and d["is_socket"] is False
    # JSON content-type with an Accept header present: Sails says JSON
    assert d["wants_json"] is True


async def test_request_members_over_a_real_socket() -> None:
    with trio.fail_after(5):
        async with running(dump_app()) as server:
            client = Client(await trio.open_tcp_stream("127.0.0.1", server.port))
            async with client.stream:
                await client.send("POST", TARGET, HEADERS[:-1], body=b'{"x":1}')
                reply = await client.response()  # (Host is the Client's own 127.0.0.1)
            d = reply.json()
    assert d["hostname"] == "127.0.0.1"
    d["hostname"] = "device.example"
    check_members(d)
    assert d["mode"] == "user" and d["privileged"] is False


@pytest.mark.parametrize("privileged", [False, True])
async def test_request_members_are_identical_in_both_modes(privileged: bool) -> None:
    head = f"POST {TARGET} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in HEADERS)
    raw = (head + "Content-Length: 7\r\nConnection: close\r\n\r\n").encode() + b'{"x":1}'
    server, stream, run = memory_session(dump_app(), make_settings(), privileged=privileged)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await stream.send_all(raw)
            (reply,) = parse_replies(await read_all(stream), ["POST"])
    d = reply.json()
    check_members(d)
    assert d["mode"] == ("privilege" if privileged else "user")
    assert d["privileged"] is privileged


WANTS_JSON = [
    ([], True),  # no Accept at all
    ([("Accept", "text/html")], False),
    ([("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")], False),
    ([("Accept", "application/json")], True),
    ([("Accept", "*/*")], True),
    ([("Accept", "text/html"), ("X-Requested-With", "XMLHttpRequest")], True),
    ([("Accept", "text/html"), ("X-Requested-With", "xmlhttprequest")], True),
    ([("Accept", "text/html"), ("X-Requested-With", "fetch")], False),
    ([("Accept", "text/html"), ("Content-Type", "application/json")], True),
    ([("Content-Type", "application/json")], True),
    ([("Accept", "text/html"), ("Content-Type", "text/plain")], False),
]


@pytest.mark.parametrize(("headers", "expected"), WANTS_JSON)
async def test_wants_json_truth_table(headers: list[tuple[str, str]], expected: bool) -> None:
    app = App()

    @app.all("/")
    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.json({"wants_json": req.wants_json, "xhr": req.xhr})

    with trio.fail_after(5):
        async with running(app) as server:
            reply = await request(server, "POST", "/", headers, body=b"{}")
    assert reply.json()["wants_json"] is expected


async def test_route_option_wants_json() -> None:
    app = App()

    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.json({"wants_json": req.wants_json})

    app.get("/j", index, wants_json=True)
    app.get("/h", index)
    with trio.fail_after(5):
        async with running(app) as server:
            j = await request(server, "GET", "/j", [("Accept", "text/html")])
            h = await request(server, "GET", "/h", [("Accept", "text/html")])
    assert j.json() == {"wants_json": True}
    assert h.json() == {"wants_json": False}


async def test_is_without_a_body_is_none_and_accepts_false_when_nothing_fits() -> None:
    app = App()

    @app.get("/")
    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.json({"is": req.is_("json"), "accepts": req.accepts("image/png")})

    with trio.fail_after(5):
        async with running(app) as server:
            reply = await request(
                server, "GET", "/", [("Content-Type", "application/json"), ("Accept", "text/html")]
            )
    assert reply.json() == {"is": None, "accepts": False}  # Express: false, not undefined


async def test_body_is_read_through_the_request() -> None:
    app = App()

    @app.post("/text")
    async def text(req, res):  # type: ignore[no-untyped-def]
        await res.json({"text": await req.text()})

    @app.post("/json")
    async def js(req, res):  # type: ignore[no-untyped-def]
        await res.json({"json": await req.json()})

    @app.post("/events")
    async def events(req, res):  # type: ignore[no-untyped-def]
        seen: list[Any] = []
        req.enable_cache()
        req.on("data", lambda chunk: seen.append(len(chunk)))
        req.on("end", lambda: seen.append("end"))
        async for _ in req:
            pass
        await res.json(
            {
                "seen_end": seen[-1],
                "total": sum(x for x in seen if x != "end"),
                "cached": len(req.body),
            }
        )

    with trio.fail_after(5):
        async with running(app) as server:
            t = await request(
                server,
                "POST",
                "/text",
                [("Content-Type", "text/plain; charset=utf-8")],
                body="grüße".encode(),
            )
            j = await request(server, "POST", "/json", body=b'{"a": [1, 2]}')
            bad = await request(server, "POST", "/json", [("Accept", "text/html")], body=b"{")
            e = await request(server, "POST", "/events", body=b"x" * 40000)
    assert t.json() == {"text": "grüße"}
    assert j.json() == {"json": {"a": [1, 2]}}
    assert bad.status == 400 and b"Invalid JSON" in bad.body
    assert e.json() == {"seen_end": "end", "total": 40000, "cached": 40000}


async def test_hostname_forms() -> None:
    app = App()

    @app.get("/")
    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.json({"hostname": req.hostname})

    with trio.fail_after(5):
        async with running(app) as server:
            out = []
            for host in ("example.com", "example.com:81", "[::1]:8080"):
                stream = await trio.open_tcp_stream("127.0.0.1", server.port)
                async with stream:
                    await stream.send_all(
                        f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
                    )
                    data = b""
                    while chunk := await stream.receive_some(4096):
                        data += chunk
                out.append(data.split(b"\r\n\r\n", 1)[1])
    assert out == [
        b'{"hostname":"example.com"}',
        b'{"hostname":"example.com"}',
        b'{"hostname":"[::1]"}',
    ]


# -- Express 5 / Node / Sails 1.5 fidelity (expected values as Node and Sails answer them) -------
async def raw_exchange(server: Any, head: str, body: bytes = b"") -> Any:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(head.replace("\n", "\r\n").encode() + body)
        (reply,) = parse_replies(await read_all(stream), [head.split(" ", 1)[0]])
    return reply


def fidelity_app() -> App:
    from gateway import bodyparsers

    app = App()
    app.use(bodyparsers.json())

    @app.all("/f/:id")
    async def dump(req, res):  # type: ignore[no-untyped-def]
        await res.json(
            {
                "headers": req.headers,
                "distinct": req.headers_distinct,
                "referrer": req.get("Referrer"),
                "referer": req.get("REFERER"),
                "is_json": req.is_("json"),
                "is_any": req.is_(),
                "is_list": req.is_(["html", "json"]),
                "wants_json": req.wants_json,
                "explicit_html": req.explicitly_accepts_html,
                "param_x": req.param("x"),
                "param_id": req.param("id"),
                "param_n": req.param("n", 0),
                "param_none": req.param("none", "dflt"),
                "all": req.all_params(),
                "accepts": req.accepts(),
                "accepts_list_arg": req.accepts(["html", "json"]),
                "charsets": req.accepts_charsets(),
                "charset": req.accepts_charsets("latin1", "utf-8"),
                "encodings": req.accepts_encodings(),
                "encoding": req.accepts_encodings("br", "gzip"),
                "languages": req.accepts_languages(),
                "language": req.accepts_languages("en", "de"),
                "host": req.host,
                "hostname": req.hostname,
                "subdomains": req.subdomains,
                "protocol": req.protocol,
                "secure": req.secure,
                "xhr": req.xhr,
            }
        )

    return app


async def test_repeated_headers_are_combined_as_node_does() -> None:
    head = (
        "POST /f/1 HTTP/1.1\nHost: tobi.ferrets.example.com:8080\n"
        "Content-Type: application/json\nContent-Type: text/html\n"
        "User-Agent: ua1\nUser-Agent: ua2\nReferer: r1\nReferer: r2\nReferrer: rr1\n"
        "If-Modified-Since: i1\nIf-Modified-Since: i2\nFrom: f1\nFrom: f2\n"
        "Set-Cookie: a=1\nSet-Cookie: b=2\nCookie: c=1\nCookie: d=2\n"
        "X-Multi: a\nX-Multi: b\nDate: d1\nDate: d2\n"
        "X-Forwarded-Host: evil.example\nX-Forwarded-Proto: https\n"
        "Content-Length: 0\nConnection: close\n\n"
    )
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            d = (await raw_exchange(server, head)).json()
    h = d["headers"]
    # single-value fields keep the FIRST value
    assert (
        h["content-type"],
        h["user-agent"],
        h["referer"],
        h["if-modified-since"],
        h["from"],
    ) == ("application/json", "ua1", "r1", "i1", "f1")
    assert h["cookie"] == "c=1; d=2"
    assert h["x-multi"] == "a, b" and h["date"] == "d1, d2"
    assert h["set-cookie"] == "a=1, b=2"  # a list in Node; joined as Fetch's Headers.get does
    assert d["distinct"]["set-cookie"] == ["a=1", "b=2"]
    assert d["distinct"]["content-type"] == ["application/json", "text/html"]
    # Express reads Referrer first, then Referer, for either name
    assert d["referrer"] == d["referer"] == "rr1"
    # trust proxy is off: X-Forwarded-* are not believed
    assert (d["host"], d["hostname"]) == (
        "tobi.ferrets.example.com:8080",
        "tobi.ferrets.example.com",
    )
    assert d["subdomains"] == ["ferrets", "tobi"]
    assert (d["protocol"], d["secure"], d["xhr"]) == ("http", False, False)


@pytest.mark.parametrize(
    ("headers", "body", "is_json", "is_any", "wants_json"),
    [
        # Content-Length: 0 is a body (type-is hasBody), so req.is() looks at the type
        (
            [("Content-Type", "application/json"), ("Content-Length", "0")],
            b"",
            "json",
            "application/json",
            True,
        ),
        # no body at all: null, and Sails' "JSON content-type" rule cannot hold
        ([("Content-Type", "application/json")], b"", None, None, False),
        # a body without a Content-Type: false
        ([("Content-Type", "")], b"abc", False, False, False),
        (
            [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
            b"2\r\n{}\r\n0\r\n\r\n",
            "json",
            "application/json",
            True,
        ),
    ],
)
async def test_is_and_wants_json_follow_type_is_has_body(
    headers: list[tuple[str, str]],
    body: bytes,
    is_json: object,
    is_any: object,
    wants_json: bool,
) -> None:
    hdrs = [("Accept", "text/html"), *[(k, v) for k, v in headers if v]]
    if body and not any(k == "Transfer-Encoding" for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            method = "GET" if not body and len(hdrs) == 2 else "POST"
            d = (await request(server, method, "/f/1", hdrs, body=body)).json()
    assert d["is_json"] == is_json and d["is_any"] == is_any
    assert d["wants_json"] is wants_json
    assert d["explicit_html"] is True


async def test_param_and_all_params_follow_sails() -> None:
    body = b'{"x": "body", "id": "bodyid", "n": null, "only_body": 1}'
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            d = (
                await request(
                    server,
                    "POST",
                    "/f/7?x=query&id=qid&q=1",
                    [("Content-Type", "application/json")],
                    body=body,
                )
            ).json()
            g = (await request(server, "GET", "/f/7?x=query&none=")).json()
            a = (
                await request(
                    server,
                    "POST",
                    "/f/7?x=query",
                    [("Content-Type", "application/json")],
                    body=b'["zero", "one"]',
                )
            ).json()
    # params, then body, then query; a body key with null counts (Sails checks undefined)
    assert (d["param_id"], d["param_x"], d["param_n"], d["param_none"]) == (
        "7",
        "body",
        None,
        "dflt",
    )
    assert d["all"] == {"x": "body", "id": "7", "q": "1", "n": None, "only_body": 1}
    assert (g["param_x"], g["param_none"]) == ("query", "")
    assert g["all"] == {"x": "query", "none": "", "id": "7"}
    # a JSON array body adds its indices (Sails: _.extend({}, query, body))
    assert a["all"] == {"x": "query", "0": "zero", "1": "one", "id": "7"}


async def test_accepts_without_arguments_and_the_other_accept_headers() -> None:
    hdrs = [
        ("Accept", "text/html;q=0.5, application/json, */*;q=0"),
        ("Accept-Charset", "utf-8, iso-8859-1;q=0.5"),
        ("Accept-Language", "en-US, de;q=0.7"),
        ("Accept-Encoding", "gzip, br;q=0.2"),
        ("X-Requested-With", "XMLHttpRequest"),
    ]
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            d = (await request(server, "GET", "/f/1", hdrs)).json()
            bare = (await request(server, "GET", "/f/1")).json()
    assert d["accepts"] == ["application/json", "text/html"]
    assert d["accepts_list_arg"] == "json"
    assert (d["charsets"], d["charset"]) == (["utf-8", "iso-8859-1"], "utf-8")
    assert (d["encodings"], d["encoding"]) == (["gzip", "br", "identity"], "gzip")
    assert (d["languages"], d["language"]) == (["en-US", "de"], "en")
    assert d["xhr"] is True and d["wants_json"] is True and d["explicit_html"] is True
    assert bare["accepts"] == ["*/*"] and bare["accepts_list_arg"] == "html"
    assert (bare["charsets"], bare["encodings"], bare["languages"]) == (["*"], ["identity"], ["*"])
    assert bare["explicit_html"] is False and bare["wants_json"] is True


@pytest.mark.parametrize(
    ("host", "hostname", "subdomains"),
    [
        ("[::1]:8080", "[::1]", []),
        ("[::1]", "[::1]", []),
        ("127.0.0.1:81", "127.0.0.1", []),  # an IP has no subdomains
        ("a.b.c.example.com", "a.b.c.example.com", ["c", "b", "a"]),
        ("localhost", "localhost", []),
    ],
)
async def test_hostname_and_subdomains(host: str, hostname: str, subdomains: list[str]) -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            d = (
                await raw_exchange(
                    server, f"GET /f/1 HTTP/1.1\nHost: {host}\nConnection: close\n\n"
                )
            ).json()
    assert (d["host"], d["hostname"], d["subdomains"]) == (host, hostname, subdomains)
