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
        await res.json(
            {"get": res.get("x-one"), "missing": res.get("nope"), "status": res.status_code}
        )

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


async def get(
    server: Any, target: str, headers: list[tuple[str, str]] | None = None, method: str = "GET"
) -> Any:
    return await request(server, method, target, [("Accept", "text/html"), *(headers or [])])


async def test_status_and_headers(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            r = await get(server, "/status")
    assert r.status == 201
    assert (r.headers["x-one"], r.headers["x-two"], r.headers["x-three"]) == ("1", "2", "3")
    assert [v for k, v in r.header_list if k == "x-list"] == ["a", "b"]
    assert r.json() == {"get": "1", "missing": None, "status": 201}


@pytest.mark.parametrize(
    ("target", "ctype", "body"),
    [
        ("/str", "text/html; charset=utf-8", b"<p>hi</p>"),
        ("/bytes", "application/octet-stream", b"\x00\x01"),
        ("/dict", "application/json; charset=utf-8", '{"a":[1,"ü"]}'.encode()),
        ("/list", "application/json; charset=utf-8", b"[1,2]"),
        ("/typed", "text/css; charset=utf-8", b"a{}"),
        # Express: send(string) sets the charset of a Content-Type the handler chose to utf-8
        ("/typed-full", "application/vnd.x+json; charset=utf-8", b"{}"),
        ("/send-status", "text/plain; charset=utf-8", b"Forbidden"),
    ],
)
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
    # cookie 0.7's attribute order (Express 5): Max-Age, Domain, Path, Expires, HttpOnly, ...
    assert cookies[0].startswith("sid=a%20b%3Bc; Max-Age=60; Path=/; Expires=")
    assert cookies[0].endswith(" GMT; HttpOnly; Secure; SameSite=Lax")
    assert (
        cookies[1] == "old=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    )


async def test_write_end_is_chunked(root: str) -> None:
    with trio.fail_after(5):
        async with running(response_app(root)) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(
                    b"GET /chunks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
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
                await stream.send_all(
                    f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET /str HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
                )
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


@pytest.mark.parametrize(
    "target", ["/files/..%2Fsecret.txt", "/files/sub/..%2F..%2Fsecret.txt", "/files/escape.txt"]
)
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
            inm_list = await get(
                server, "/files/index.html", [("If-None-Match", f'"other", {etag}')]
            )
            inm_other = await get(server, "/files/index.html", [("If-None-Match", '"other"')])
            ims = await get(server, "/files/index.html", [("If-Modified-Since", lm)])
            old = await get(
                server,
                "/files/index.html",
                [("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
            )
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
                await stream.send_all(
                    b"HEAD /files/blob.unknownext HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"GET /files/index.html HTTP/1.1\r\nHost: a\r\n"
                    b"Connection: close\r\n\r\n"
                )
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


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X", "a\r\nSet-Cookie: x=1"),
        ("X", "a\nb"),
        ("X", "a\rb"),
        ("X", "a\x00b"),
        ("X", "a\x7fb"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("X\r\n", "v"),
    ],
)
def test_set_refuses_header_injection(name: str, value: str) -> None:
    res = Response(_NullSink())
    with pytest.raises(ValueError):
        res.set(name, value)
    with pytest.raises(ValueError):
        res.set_header(name, value)
    with pytest.raises(ValueError):
        check_header(name, value)
    assert res.get(name) is None


def test_set_header_keeps_the_value_exactly() -> None:
    # Node's res.setHeader: no charset added (res.set adds mime-types' charset, as Express)
    res = Response(_NullSink())
    res.set_header("Content-Type", "text/plain")
    assert res.get("content-type") == "text/plain" and res._head() == [
        ("Content-Type", "text/plain")
    ]
    res.set("Content-Type", "text/plain")
    assert res.get("content-type") == "text/plain; charset=utf-8"


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


# -- Express 5.3 / Sails 1.5 fidelity (expected values as Node answers them) ---------------------
def fidelity_app() -> App:
    app = App()

    @app.get("/redirect")
    async def redirect(req, res):  # type: ignore[no-untyped-def]
        await res.redirect("/there?x=ü 100%<b>")

    @app.get("/redirect-head")
    async def redirect_head(req, res):  # type: ignore[no-untyped-def]
        await res.redirect(301, "/moved")

    @app.get("/cookie")
    async def cookie(req, res):  # type: ignore[no-untyped-def]
        res.cookie("sid", "a b;c!*'()~", max_age=60, secure=True, same_site="lax")
        res.cookie("obj", {"a": 1}, http_only=False, same_site=None)
        res.cookie(
            "flag",
            True,
            http_only=False,
            same_site=True,
            priority="high",
            partitioned=True,
            domain=".example.com",
            path="/app",
        )
        res.clear_cookie(
            "old", max_age=1000, expires=5e9, same_site="strict", secure=True, http_only=False
        )
        await res.send("ok")

    @app.get("/send/:what")
    async def send(req, res):  # type: ignore[no-untyped-def]
        what = req.params["what"]
        if what == "true":
            await res.send(True)
        elif what == "num":
            await res.send(42)
        elif what == "json-null":
            await res.json(None)
        elif what == "latin1":
            res.set("Content-Type", "text/plain; charset=latin1; A=1")
            await res.send("t")
        elif what == "set-text":
            res.set("Content-Type", "text/plain")
            await res.send(b"raw")
        elif what == "vnd-json":
            await res.type("application/vnd.x+json").json({"a": 1})
        elif what == "205":
            await res.status(205).send("dropped")

    @app.get("/status/:code")
    async def status(req, res):  # type: ignore[no-untyped-def]
        await res.send_status(int(req.params["code"]))

    @app.get("/location")
    async def location(req, res):  # type: ignore[no-untyped-def]
        await res.location(req.query["to"]).send("x")

    @app.get("/headers")
    async def headers(req, res):  # type: ignore[no-untyped-def]
        res.vary("Accept")
        res.vary(["accept-encoding", "Accept"])
        res.vary("Origin")
        res.append("X-L", "a").append("X-L", ["b", "c"])
        res.type("file.HTML")
        await res.end()

    @app.get("/type/:ext")
    async def type_(req, res):  # type: ignore[no-untyped-def]
        await res.type(req.params["ext"]).end()

    @app.get("/etag")
    async def etag(req, res):  # type: ignore[no-untyped-def]
        res.set("ETag", '"abc"')
        fresh = req.fresh
        await res.json({"fresh": fresh, "stale": req.stale})

    @app.get("/fresh")
    async def fresh(req, res):  # type: ignore[no-untyped-def]
        res.status(int(req.query["status"]))
        await res.json({"fresh": req.fresh})

    @app.post("/etag")
    async def etag_post(req, res):  # type: ignore[no-untyped-def]
        res.set("ETag", '"abc"')
        await res.json({"fresh": req.fresh})

    return app


async def test_redirect_body_follows_the_accept_header() -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            html = await request(server, "GET", "/redirect", [("Accept", "text/html")])
            text = await request(server, "GET", "/redirect")  # no Accept: text, res.format's first
            js = await request(server, "GET", "/redirect", [("Accept", "application/json")])
            head = await request(server, "HEAD", "/redirect-head", [("Accept", "text/html")])
    loc = "/there?x=%C3%BC%20100%25%3Cb%3E"
    for r in (html, text, js):
        assert r.status == 302 and r.headers["location"] == loc
        assert r.headers["vary"] == "Accept"
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.body == (
        b"<!DOCTYPE html><head><title>Found</title></head><body><p>Found. "
        b"Redirecting to " + loc.encode() + b"</p></body>"
    )
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.body == b"Found. Redirecting to " + loc.encode()
    assert js.body == b"" and js.headers["content-length"] == "0"
    assert "content-type" not in js.headers
    assert head.status == 301 and head.body == b"" and head.headers["content-length"] == "120"


async def test_cookie_serialisation_matches_express() -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", "/cookie")
    sid, obj, flag, old = [v for k, v in r.header_list if k == "set-cookie"]
    assert sid.startswith("sid=a%20b%3Bc!*'()~; Max-Age=60; Path=/; Expires=")
    assert sid.endswith(" GMT; HttpOnly; Secure; SameSite=Lax")
    assert obj == "obj=j%3A%7B%22a%22%3A1%7D; Path=/"
    assert flag == (
        "flag=true; Domain=.example.com; Path=/app; Partitioned; Priority=High; SameSite=Strict"
    )
    # Express 5 clearCookie: max_age and expires are ignored, the other options kept
    assert old == "old=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; SameSite=Strict"


@pytest.mark.parametrize(
    ("what", "ctype", "body"),
    [
        ("true", "application/json; charset=utf-8", b"true"),
        ("num", "application/json; charset=utf-8", b"42"),
        ("json-null", "application/json; charset=utf-8", b"null"),
        ("latin1", "text/plain; charset=utf-8; a=1", b"t"),  # the body is utf-8, so is the charset
        ("set-text", "text/plain; charset=utf-8", b"raw"),  # res.set adds mime-types' charset
        ("vnd-json", "application/vnd.x+json; charset=utf-8", b'{"a":1}'),
    ],
)
async def test_send_and_json_content_types(what: str, ctype: str, body: bytes) -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", f"/send/{what}")
    assert (r.status, r.headers["content-type"], r.body) == (200, ctype, body)


async def test_205_has_no_body_and_a_zero_length() -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", "/send/205")
    assert r.status == 205 and r.body == b"" and r.headers["content-length"] == "0"


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (205, b"Reset Content"),
        (418, b"I'm a Teapot"),
        (422, b"Unprocessable Entity"),
        (299, b"299"),
    ],
)
async def test_send_status_uses_the_statuses_messages(code: int, body: bytes) -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", f"/status/{code}")
    assert r.status == code
    if code != 205:
        assert (r.headers["content-type"], r.body) == ("text/plain; charset=utf-8", body)


@pytest.mark.parametrize(
    ("to", "location"),
    [
        ("back", "back"),  # Express 5 dropped the Referer magic
        ("/a b", "/a%20b"),
        ("/100%", "/100%25"),  # a bare % is encoded ...
        ("/%41%2f", "/%41%2f"),  # ... a valid escape is not
        ("/x?a=^|[]", "/x?a=^|[]"),
        ('/"{}`', "/%22%7B%7D%60"),
        ("/ü", "/%C3%BC"),
    ],
)
async def test_location_is_encoded_like_encodeurl(to: str, location: str) -> None:
    from urllib.parse import quote as q

    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", "/location?to=" + q(to, safe=""))
    assert r.headers["location"] == location


async def test_vary_append_and_type_by_file_name() -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", "/headers")
    assert r.headers["vary"] == "Accept, accept-encoding, Origin"
    assert [v for k, v in r.header_list if k == "x-l"] == ["a", "b", "c"]
    assert r.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("ext", "ctype"),
    [
        ("ico", "image/vnd.microsoft.icon"),
        ("xml", "application/xml"),
        ("md", "text/markdown; charset=utf-8"),
        ("map", "application/json; charset=utf-8"),
        ("nosuchext", "application/octet-stream"),
        (".json", "application/json; charset=utf-8"),
    ],
)
async def test_type_lookups_match_mime_types(ext: str, ctype: str) -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            r = await request(server, "GET", f"/type/{ext}")
    assert r.headers["content-type"] == ctype


async def test_fresh_and_the_automatic_304() -> None:
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            plain = await request(server, "GET", "/etag")
            match = await request(server, "GET", "/etag", [("If-None-Match", 'W/"x", "abc"')])
            weak = await request(server, "GET", "/etag", [("If-None-Match", 'W/"abc"')])
            other = await request(server, "GET", "/etag", [("If-None-Match", '"zzz"')])
            reload = await request(
                server, "GET", "/etag", [("If-None-Match", '"abc"'), ("Cache-Control", "no-cache")]
            )
            post = await request(server, "POST", "/etag", [("If-None-Match", '"abc"')])
    assert plain.status == 200 and plain.json() == {"fresh": False, "stale": True}
    assert match.status == 304 and match.body == b"" and weak.status == 304
    assert "content-type" not in match.headers and match.headers["etag"] == '"abc"'
    assert other.status == 200 and other.json() == {"fresh": False, "stale": True}
    assert reload.status == 200
    assert post.status == 200 and post.json() == {"fresh": False}


async def test_fresh_without_validators_depends_on_the_status() -> None:
    star = [("If-None-Match", "*")]
    with trio.fail_after(5):
        async with running(fidelity_app()) as server:
            ok = await request(server, "GET", "/fresh?status=200", star)
            created = await request(server, "GET", "/fresh?status=201", star)
            missing = await request(server, "GET", "/fresh?status=404", star)
            plain = await request(server, "GET", "/fresh?status=200")
    # Express: "*" matches any current representation of a 2xx (it would then send a 304:
    # the gateway sends no automatic 304 without a validator the handler set)
    assert (ok.status, ok.json()) == (200, {"fresh": True})
    assert created.json() == {"fresh": True}
    assert (missing.status, missing.json()) == (404, {"fresh": False})
    assert plain.json() == {"fresh": False}


def test_status_needs_an_integer() -> None:
    res = Response(_NullSink())
    for bad in ("200", 200.0, True):
        with pytest.raises(TypeError):
            res.status(bad)  # type: ignore[arg-type]
    from http import HTTPStatus

    assert type(res.status(HTTPStatus.CREATED).status_code) is int
    with pytest.raises(TypeError):
        res.set("Content-Type", ["text/html"])
    for kwargs in (
        {"same_site": "sometimes"},
        {"priority": "urgent"},
        {"path": "/a;b"},
        {"domain": "bad domain"},
    ):
        with pytest.raises(ValueError):
            res.cookie("n", "v", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        res.vary("bad name")


# -- Sails 1.5 responses: what Sails sends in production without views (checked against Sails) --
def sails_app() -> App:
    app = App()
    calls: dict[str, Any] = {
        "ok": lambda res: res.ok(),
        "ok-str": lambda res: res.ok("hello"),
        "ok-obj": lambda res: res.ok({"a": 1}),
        "ok-err": lambda res: res.ok(ValueError("boom")),
        "bad": lambda res: res.bad_request(),
        "bad-str": lambda res: res.bad_request("too short"),
        "bad-err": lambda res: res.bad_request(ValueError("boom")),
        "forbidden": lambda res: res.forbidden({"a": 1}),
        "not-found": lambda res: res.not_found({"a": 1}),
        "err": lambda res: res.server_error(),
        "err-obj": lambda res: res.server_error({"secret": 1}),
        "err-exc": lambda res: res.server_error(ValueError("secret boom")),
    }

    @app.get("/sails/:what")
    async def sails(req, res):  # type: ignore[no-untyped-def]
        await calls[req.params["what"]](res)

    return app


TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("what", "status", "ctype", "body"),
    [
        ("ok", 200, TEXT, b"OK"),
        ("ok-str", 200, JSON, b'"hello"'),  # Sails sends a string as a JSON string
        ("ok-obj", 200, JSON, b'{"a":1}'),
        ("ok-err", 200, TEXT, b"OK"),  # an exception is never sent
        ("bad", 400, TEXT, b"Bad Request"),
        ("bad-str", 400, JSON, b'"too short"'),
        ("bad-err", 400, TEXT, b"Bad Request"),
        ("forbidden", 403, TEXT, b"Forbidden"),  # data is not sent (Sails takes none)
        ("not-found", 404, TEXT, b"Not Found"),
        ("err", 500, TEXT, b"Internal Server Error"),
        ("err-obj", 500, TEXT, b"Internal Server Error"),  # production Sails drops the data
        ("err-exc", 500, TEXT, b"Internal Server Error"),
    ],
)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
async def test_sails_responses(
    what: str, status: int, ctype: str, body: bytes, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(5):
        async with running(sails_app()) as server:
            r = await request(server, "GET", f"/sails/{what}", [("Accept", accept)])
    assert (r.status, r.headers["content-type"], r.body) == (status, ctype, body)
    if what.startswith("err-"):
        logged = [rec for rec in caplog.records if "Server Error" in rec.getMessage()]
        assert len(logged) == 1
        assert ("secret" in logged[0].getMessage()) or logged[0].exc_info is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Express's setCharset(type, "utf-8"), as Node answers it
        ('Text/Plain; Foo="a b"; charset=latin1', 'text/plain; foo="a b"; charset=utf-8'),
        ("text/plain;charset=utf-8", "text/plain; charset=utf-8"),
        ("application/x; a=1; a=2", "application/x; a=1; charset=utf-8"),
        (' text/html ; q="x\\\\"y"', 'text/html; q="x\\\\"; charset=utf-8'),
        ("nonsense", "nonsense"),  # Express throws; kept as set (deliberate)
    ],
)
def test_send_sets_the_charset_like_express(value: str, expected: str) -> None:
    from gateway.app.response import _utf8_content_type

    assert _utf8_content_type(value) == expected


async def test_the_fresh_link_leaves_no_reference_cycle() -> None:
    # req.fresh reaches the Response through a weak reference: a strong one would make every
    # request that sets an ETag wait for the cycle collector
    import gc

    from gateway.app.request import Request

    gc.collect()
    gc.disable()
    try:
        async with running(fidelity_app()) as server:
            with trio.fail_after(5):
                for target in ("/etag", "/fresh?status=404"):
                    assert (
                        await request(server, "GET", target, [("If-None-Match", '"abc"')])
                    ).status in (304, 404)
                await trio.sleep(0.1)  # the sessions end
        left = [o for o in gc.get_objects() if isinstance(o, Request)]
    finally:
        gc.enable()
    assert left == []
