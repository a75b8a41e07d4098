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
        await res.json({
            "app_is_app": req.app is app,
            "url": req.url, "original_url": req.original_url, "method": req.method,
            "protocol": req.protocol, "http_version": req.http_version,
            "headers": req.headers, "body": body_before,
            "path": req.path, "params": req.params, "query": req.query, "cookies": req.cookies,
            "get_ct": req.get("Content-Type"), "get_CT": req.get("CONTENT-TYPE"),
            "header_ct": req.header("content-type"),
            "referrer": req.get("Referrer"), "referer": req.get("referer"),
            "missing": req.get("X-Missing"),
            "param_id": req.param("id"), "param_q": req.param("q"),
            "param_default": req.param("nope", "dflt"),
            "wants_json": req.wants_json, "xhr": req.xhr,
            "is_json": req.is_("json"), "is_html": req.is_("html"),
            "accepts": req.accepts("json", "html"),
            "ip": req.ip, "hostname": req.hostname, "secure": req.secure,
            "is_socket": req.is_socket, "mode": req.mode, "privileged": req.privileged,
        })

    app.all("/req/:id", dump)
    return app


HEADERS = [("Content-Type", "application/json"), ("Referer", "http://ref.example/"),
           ("Cookie", "name=tj; theme=dark"), ("Cookie", "extra=1"),
           ("Accept", "text/html, application/json;q=0.9"), ("X-Multi", "a"), ("X-Multi", "b"),
           ("Host", "device.example:8080")]
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


async def test_is_without_a_body_is_none_and_accepts_none_when_nothing_fits() -> None:
    app = App()

    @app.get("/")
    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.json({"is": req.is_("json"), "accepts": req.accepts("image/png")})

    with trio.fail_after(5):
        async with running(app) as server:
            reply = await request(server, "GET", "/", [("Content-Type", "application/json"),
                                                      ("Accept", "text/html")])
    assert reply.json() == {"is": None, "accepts": None}


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
        await res.json({"seen_end": seen[-1], "total": sum(x for x in seen if x != "end"),
                        "cached": len(req.body)})

    with trio.fail_after(5):
        async with running(app) as server:
            t = await request(server, "POST", "/text",
                              [("Content-Type", "text/plain; charset=utf-8")],
                              body="grüße".encode())
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
                    await stream.send_all(f"GET / HTTP/1.1\r\nHost: {host}\r\n"
                                          "Connection: close\r\n\r\n".encode())
                    data = b""
                    while chunk := await stream.receive_some(4096):
                        data += chunk
                out.append(data.split(b"\r\n\r\n", 1)[1])
    assert out == [b'{"hostname":"example.com"}', b'{"hostname":"example.com"}',
                   b'{"hostname":"[::1]"}']
