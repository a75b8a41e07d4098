# The response API (EdgerOS WebResponse / Express res) through a real server: every member, the
# framing each one implies, send_file's safety and caching, and header-injection refusal.
from __future__ import annotations

import os
from email.utils import formatdate
from typing import Any

import pytest
import trio

from gateway import App
from gateway.app.response import Response, check_header
from tests.helpers import connect, parse_replies, read_all, request, running


def response_app(root: str) -> App:
    app = App()

    @app.get("/status")
    async def status(req, res):  # type: ignore[no-untyped-def]
        res.status(201).set("X-One", "1").header("X-Two", "2").set({"X-Three": "3"})
        res.append("X-List", "a").append("X-List", "b")
        await res.json({"get": res.get("x-one"), "missing": res.get("nope"),
                        "status": res.status_code})

    @app.get("/str")
    async def str_(req, res):  # type: ignore[no-untyped-def]
        await res.send("<p>hi</p>")

    @app.get("/bytes")
    async def bytes_(req, res):  # type: ignore[no-untyped-def]
        await res.send(b"\x00\x01")

    @app.get("/dict")
    async def dict_(req, res):  # type: ignore[no-untyped-def]
        await res.send({"a": [1, "ü"]})

    @app.get("/list")
    async def list_(req, res):  # type: ignore[no-untyped-def]
        await res.send([1, 2])

    @app.get("/none")
    async def none(req, res):  # type: ignore[no-untyped-def]
        await res.send()

    @app.get("/typed")
    async def typed(req, res):  # type: ignore[no-untyped-def]
        await res.type("css").send("a{}")

    @app.get("/typed-full")
    async def typed_full(req, res):  # type: ignore[no-untyped-def]
        await res.type("application/vnd.x+json").send("{}")

    @app.get("/send-status")
    async def send_status(req, res):  # type: ignore[no-untyped-def]
        await res.send_status(403)

    @app.get("/redirect")
    async def redirect(req, res):  # type: ignore[no-untyped-def]
        await res.redirect("/there?x=ü")

    @app.get("/redirect-301")
    async def redirect_301(req, res):  # type: ignore[no-untyped-def]
        await res.redirect(301, "/moved")

    @app.get("/redirect-303")
    async def redirect_303(req, res):  # type: ignore[no-untyped-def]
        await res.redirect("/other", 303)

    @app.get("/location")
    async def location(req, res):  # type: ignore[no-untyped-def]
        await res.location("/a b").status(201).send("made")

    @app.get("/cookie")
    async def cookie(req, res):  # type: ignore[no-untyped-def]
        res.cookie("sid", "a b;c", max_age=60, secure=True)
        res.clear_cookie("old")
        await res.send("ok")

    @app.get("/chunks")
    async def chunks(req, res):  # type: ignore[no-untyped-def]
        await res.write("a")
        await res.write(b"")
        await res.write(b"b")
        await res.end()

    @app.get("/write-with-length")
    async def write_with_length(req, res):  # type: ignore[no-untyped-def]
        res.set("Content-Length", "4")
        await res.write("ab")
        await res.end("cd")

    @app.get("/json-seq")
    async def json_seq(req, res):  # type: ignore[no-untyped-def]
        w = res.json_seq()
        await w.send({"n": 1})
        await w.send([2])
        await w.aclose()

    @app.get("/204")
    async def no_content(req, res):  # type: ignore[no-untyped-def]
        await res.status(204).send("ignored")

    @app.get("/304")
    async def not_modified(req, res):  # type: ignore[no-untyped-def]
        await res.status(304).json({"ignored": True})

    @app.get("/twice")
    async def twice(req, res):  # type: ignore[no-untyped-def]
        await res.send("first")
        try:
            await res.send("second")
        except RuntimeError:
            req.app.locals["twice"] = "refused"

    @app.get("/files/*path")
    async def files(req, res):  # type: ignore[no-untyped-def]
        await res.send_file("/".join(req.params["path"]), root=root)

    return app


@pytest.fixture
def root(tmp_path: Any) -> str:
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_text("<h1>home</h1>")
    (www / "sub" / "data.json").write_text('{"k": 1}')
    (www / "blob.unknownext").write_bytes(b"\x00" * 100000)
    (www / "empty.txt").write_text("")
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", www / "escape.txt")
    os.symlink(www / "index.html", www / "inside.html")
    return str(www)


async def get(server: Any, target: str, headers: list[tuple[str, str]] | None = None,
              method: str = "GET") -> Any:
    return await request(server, method, target, [("Accept", "text/html"), *(headers or [])])


async def test_status_and_headers(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, "/status")
    assert r.status == 201
    assert (r.headers["x-one"], r.headers["x-two"], r.headers["x-three"]) == ("1", "2", "3")
    assert [v for k, v in r.header_list if k == "x-list"] == ["a", "b"]
    assert r.json() == {"get": "1", "missing": None, "status": 201}


@pytest.mark.parametrize(("target", "ctype", "body"), [
    ("/str", "text/html; charset=utf-8", b"<p>hi</p>"),
    ("/bytes", "application/octet-stream", b"\x00\x01"),
    ("/dict", "application/json; charset=utf-8", '{"a":[1,"ü"]}'.encode()),
    ("/list", "application/json; charset=utf-8", b"[1,2]"),
    ("/typed", "text/css; charset=utf-8", b"a{}"),
    ("/typed-full", "application/vnd.x+json", b"{}"),
    ("/send-status", "text/plain; charset=utf-8", b"Forbidden"),
])
async def test_send_types(root: str, target: str, ctype: str, body: bytes) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, target)
    assert r.headers["content-type"] == ctype
    assert r.body == body
    assert r.headers["content-length"] == str(len(body))


async def test_send_none_is_an_empty_body(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, "/none")
    assert r.status == 200 and r.body == b"" and r.headers["content-length"] == "0"


async def test_redirects(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            plain = await get(server, "/redirect")
            moved = await get(server, "/redirect-301")
            other = await request(server, "GET", "/redirect-303", [("Accept", "text/plain")])
            loc = await get(server, "/location")
    assert plain.status == 302 and plain.headers["location"] == "/there?x=%C3%BC"
    assert b"Redirecting to /there?x=%C3%BC" in plain.body
    assert plain.headers["content-type"].startswith("text/html")
    assert moved.status == 301 and moved.headers["location"] == "/moved"
    assert other.status == 303 and other.headers["location"] == "/other"
    assert other.headers["content-type"].startswith("text/plain")
    assert loc.status == 201 and loc.headers["location"] == "/a%20b"


async def test_cookies(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, "/cookie")
    cookies = [v for k, v in r.header_list if k == "set-cookie"]
    assert len(cookies) == 2
    assert cookies[0].startswith("sid=a%20b%3Bc; Max-Age=60; Expires=")
    assert "; Path=/; Secure; HttpOnly; SameSite=Lax" in cookies[0]
    assert cookies[1].startswith("old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/")


async def test_write_end_is_chunked(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET /chunks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                raw = await read_all(stream)
            seq = await get(server, "/json-seq")
            fixed = await get(server, "/write-with-length")
    assert b"transfer-encoding: chunked" in raw.lower()
    assert raw.endswith(b"\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n")
    assert seq.headers["content-type"] == "application/json-seq"
    assert seq.body == b'\x1e{"n":1}\n\x1e[2]\n'
    assert fixed.body == b"abcd" and fixed.headers["content-length"] == "4"
    assert "transfer-encoding" not in fixed.headers


@pytest.mark.parametrize("target", ["/204", "/304"])
async def test_204_and_304_send_no_body(root: str, target: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n"
                                      "GET /str HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                                      .encode())
                raw = await read_all(stream)
    replies = parse_replies(raw)
    assert [r.status for r in replies] == [int(target[1:]), 200]
    assert replies[0].body == b"" and "content-type" not in replies[0].headers
    assert "content-length" not in replies[0].headers
    assert replies[1].body == b"<p>hi</p>"  # framing stayed intact


async def test_sending_twice_is_refused(root: str) -> None:
    app = response_app(root)
    with trio.fail_after(5):
        async with running(app) as server:
            r = await get(server, "/twice")
    assert r.body == b"first" and app.locals["twice"] == "refused"


# -- send_file ----------------------------------------------------------------------------------
async def test_send_file_streams_with_type_and_validators(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            html = await get(server, "/files/index.html")
            js = await get(server, "/files/sub/data.json")
            blob = await get(server, "/files/blob.unknownext")
            empty = await get(server, "/files/empty.txt")
            inside = await get(server, "/files/inside.html")
    assert html.status == 200 and html.body == b"<h1>home</h1>"
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["etag"].startswith('W/"')
    st = os.stat(os.path.join(root, "index.html"))
    assert html.headers["last-modified"] == formatdate(st.st_mtime, usegmt=True)
    assert js.headers["content-type"] == "application/json; charset=utf-8"
    assert blob.headers["content-type"] == "application/octet-stream"
    assert blob.body == b"\x00" * 100000 and blob.headers["content-length"] == "100000"
    assert empty.status == 200 and empty.body == b""
    assert inside.body == b"<h1>home</h1>"  # a symlink that stays inside root is fine


@pytest.mark.parametrize("target", ["/files/..%2Fsecret.txt", "/files/sub/..%2F..%2Fsecret.txt",
                                    "/files/escape.txt"])
async def test_send_file_refuses_escapes(root: str, target: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, target)
    assert r.status == 403
    assert b"secret" not in r.body


async def test_send_file_missing_is_404(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, "/files/nope.txt")
            d = await get(server, "/files/sub")
    assert r.status == 404 and d.status == 404


async def test_send_file_conditional_requests(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            first = await get(server, "/files/index.html")
            etag, lm = first.headers["etag"], first.headers["last-modified"]
            inm = await get(server, "/files/index.html", [("If-None-Match", etag)])
            inm_list = await get(server, "/files/index.html",
                                 [("If-None-Match", f'"other", {etag}')])
            inm_other = await get(server, "/files/index.html", [("If-None-Match", '"other"')])
            ims = await get(server, "/files/index.html", [("If-Modified-Since", lm)])
            old = await get(server, "/files/index.html",
                            [("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")])
            bad = await get(server, "/files/index.html", [("If-Modified-Since", "garbage")])
    for r in (inm, inm_list, ims):
        assert r.status == 304 and r.body == b""
        assert r.headers["etag"] == etag
    for r in (inm_other, old, bad):
        assert r.status == 200 and r.body == b"<h1>home</h1>"


async def test_send_file_head_has_length_and_no_body(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"HEAD /files/blob.unknownext HTTP/1.1\r\nHost: a\r\n\r\n"
                                      b"GET /files/index.html HTTP/1.1\r\nHost: a\r\n"
                                      b"Connection: close\r\n\r\n")
                raw = await read_all(stream)
    head, get_ = parse_replies(raw, ["HEAD", "GET"])
    assert head.headers["content-length"] == "100000" and head.body == b""
    assert get_.body == b"<h1>home</h1>"
    assert len(raw) < 2000


# -- header validation --------------------------------------------------------------------------
class _NullSink:
    head_only = False
    carries_values = False

    async def send_response(self, *a: Any) -> None: ...
    async def send_data(self, data: bytes) -> None: ...
    async def end(self) -> None: ...
    async def send_file(self, path: str, size: int) -> None: ...


@pytest.mark.parametrize(("name", "value"), [
    ("X", "a\r\nSet-Cookie: x=1"), ("X", "a\nb"), ("X", "a\rb"), ("X", "a\x00b"),
    ("X", "a\x7fb"), ("Bad Name", "v"), ("Bad:Name", "v"), ("", "v"), ("X\r\n", "v"),
])
def test_set_refuses_header_injection(name: str, value: str) -> None:
    res = Response(_NullSink())
    with pytest.raises(ValueError):
        res.set(name, value)
    with pytest.raises(ValueError):
        check_header(name, value)
    assert res.get(name) is None


def test_set_allows_tabs_and_non_ascii_values_and_refuses_bad_cookies() -> None:
    res = Response(_NullSink())
    res.set("X", "a\tb ü")
    assert res.get("x") == "a\tb ü"
    with pytest.raises(ValueError):
        res.set("X", ["ok", "bad\r\n"])
    with pytest.raises(ValueError):
        res.cookie("bad name", "v")
    with pytest.raises(ValueError):
        res.status(42)
