# The body parsers (json, urlencoded, text, raw, multipart form) through the real server: valid
# and hostile inputs (invalid and deeply nested JSON, huge numbers, too many parameters, unknown
# charsets and encodings, a gzip bomb, a browser form uploading a firmware image), the replies
# they turn into, and what they cost the memory budget (files stream unless asked to be kept).
from __future__ import annotations

import gzip
import hashlib
import zlib
from typing import Any

import pytest
import trio

from gateway import App, bodyparsers
from gateway.body import parsers as app_bodyparsers
from gateway.http.target import parse_query
from tests.helpers import Reply, request, running

JSON = [("Content-Type", "application/json")]
FORM = [("Content-Type", "application/x-www-form-urlencoded")]
HTML = [("Accept", "text/html")]  # error replies as plain text


def parser_app() -> App:
    app = App()
    app.use("/echo", bodyparsers.json())
    app.use("/echo", bodyparsers.urlencoded())
    app.use("/echo", bodyparsers.text())
    app.use("/echo", bodyparsers.raw(type="application/octet-stream", limit="1kb"))

    @app.post("/echo")
    async def echo(req, res):  # type: ignore[no-untyped-def]
        body = req.body
        if isinstance(body, bytes):
            body = {"raw": body.hex()}
        await res.json({"body": body, "type": type(req.body).__name__})

    app.post("/big-json", bodyparsers.json(limit="1mb"), echo)
    return app


async def post(server: Any, path: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
    return await request(server, "POST", path, [*HTML, *headers], body=body)


def error_of(reply: Reply) -> str:
    """The error message, from a JSON or a text reply (JSON bodies get JSON errors)."""
    if reply.headers["content-type"].startswith("application/json"):
        return str(reply.json()["error"])
    return reply.text


def test_parsers_are_importable_from_the_package() -> None:
    assert bodyparsers is app_bodyparsers
    for name in ("json", "urlencoded", "text", "raw", "form", "multipart"):
        assert callable(getattr(bodyparsers, name))


# -- json -------------------------------------------------------------------------------------------
async def test_json_valid_strict_and_invalid() -> None:
    app = parser_app()
    with trio.fail_after(10):
        async with running(app) as server:
            ok = await post(server, "/echo", JSON, b'{"a": [1, 2.5, "x"], "b": null}')
            plus = await post(server, "/echo", [("Content-Type", "application/vnd.x+json")], b"[1]")
            scalar = await post(server, "/echo", JSON, b"42")
            bad = await post(server, "/echo", JSON, b'{"a": 1,\n  "b": tru}')
            nan = await post(server, "/echo", JSON, b'{"a": NaN}')
    assert ok.json() == {"body": {"a": [1, 2.5, "x"], "b": None}, "type": "dict"}
    assert plus.json()["body"] == [1]
    assert scalar.status == 400 and "strict mode" in error_of(scalar)
    assert bad.status == 400
    assert error_of(bad) == "Invalid JSON at line 2 column 8 (char 16): Expecting value"
    assert nan.status == 400 and "NaN is not a JSON value" in error_of(nan)
    assert app.budget.used == 0


async def test_json_hostile_nesting_and_numbers_are_400_not_500() -> None:
    app = parser_app()
    deep_open = b"[" * 100_000  # under the 100 kB default limit
    deep_closed = b"[" * 100_000 + b"]" * 100_000  # 200 kB: the route's parser allows 1 MB
    digits = b'{"n": ' + b"7" * 50_000 + b"}"
    fraction = b'{"n": 0.' + b"3" * 50_000 + b"}"
    with trio.fail_after(20):
        async with running(app) as server:
            replies = [
                await post(server, "/echo", JSON, deep_open),
                await post(server, "/big-json", JSON, deep_closed),
                await post(server, "/echo", JSON, digits),
                await post(server, "/echo", JSON, fraction),
            ]
    assert [r.status for r in replies] == [400, 400, 400, 400]
    assert "nesting deeper than 64 levels" in error_of(replies[0])
    assert error_of(replies[0]).startswith("Invalid JSON at line 1 column 65 (char 64)")
    assert "nesting deeper than 64 levels" in error_of(replies[1])
    assert "number too long (50000 characters, at most 1000)" in error_of(replies[2])
    assert "number too long" in error_of(replies[3])


async def test_json_limit_default_and_per_route() -> None:
    app = parser_app()
    body = b'{"pad": "' + b"p" * 150_000 + b'"}'
    with trio.fail_after(10):
        async with running(app) as server:
            default = await post(server, "/echo", JSON, body)
            route = await post(server, "/big-json", JSON, body)
    assert (
        default.status == 413
        and error_of(default) == "request entity too large: limit 102400 bytes"
    )
    assert route.status == 200 and len(route.json()["body"]["pad"]) == 150_000
    assert app.budget.used == 0


async def test_non_matching_content_type_leaves_the_body_alone() -> None:
    app = parser_app()
    with trio.fail_after(10):
        async with running(app) as server:
            xml = await post(server, "/echo", [("Content-Type", "application/xml")], b"<a/>")
            none = await post(server, "/echo", [], b"{}")
    assert xml.json() == none.json() == {"body": {}, "type": "dict"}


# -- urlencoded, text, raw --------------------------------------------------------------------------
async def test_urlencoded_parses_like_the_query_string() -> None:
    app = parser_app()
    form = "q=tobi+ferret&a=1&a=2&user[name]=tj&empty=&bad=%zz&utf=%C3%BC&flag"
    with trio.fail_after(10):
        async with running(app) as server:
            utf8 = await post(server, "/echo", FORM, form.encode())
            latin = await post(
                server,
                "/echo",
                [("Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1")],
                b"n=%FC&m=\xfc",
            )
    assert utf8.json()["body"] == parse_query(form)  # one set of rules for query and body
    assert utf8.json()["body"]["q"] == "tobi ferret" and utf8.json()["body"]["a"] == ["1", "2"]
    assert latin.json()["body"] == {"n": "ü", "m": "ü"}


async def test_urlencoded_parameter_limit_is_413() -> None:
    app = parser_app()
    at_limit = "&".join(f"k{i}=v" for i in range(1000)).encode()
    over = "&".join(f"k{i}=v" for i in range(1001)).encode()
    with trio.fail_after(10):
        async with running(app) as server:
            ok = await post(server, "/echo", FORM, at_limit)
            too_many = await post(server, "/echo", FORM, over)
    assert ok.status == 200 and len(ok.json()["body"]) == 1000
    assert too_many.status == 413 and error_of(too_many) == "too many parameters (limit 1000)"


async def test_text_charsets_and_raw_limit() -> None:
    app = parser_app()
    with trio.fail_after(10):
        async with running(app) as server:
            utf8 = await post(
                server, "/echo", [("Content-Type", "text/plain")], "\ufeffgrüße".encode()
            )
            cp = await post(
                server,
                "/echo",
                [("Content-Type", "text/plain; charset=cp1252")],
                "€uro".encode("cp1252"),
            )
            unknown = await post(
                server, "/echo", [("Content-Type", "text/plain; charset=x-no-such")], b"abc"
            )
            broken = await post(server, "/echo", [("Content-Type", "text/plain")], b"ab\xff")
            raw = await post(
                server, "/echo", [("Content-Type", "application/octet-stream")], b"\x00\x01\xfe"
            )
            raw_big = await post(
                server, "/echo", [("Content-Type", "application/octet-stream")], b"r" * 1025
            )
    assert utf8.json()["body"] == "grüße" and cp.json()["body"] == "€uro"
    assert unknown.status == 415 and error_of(unknown) == 'unsupported charset "X-NO-SUCH"'
    assert broken.status == 400 and error_of(broken) == "invalid utf-8 in body at byte 2"
    assert raw.json() == {"body": {"raw": "0001fe"}, "type": "bytes"}
    assert (
        raw_big.status == 413 and error_of(raw_big) == "request entity too large: limit 1024 bytes"
    )


# -- Content-Encoding -------------------------------------------------------------------------------
async def test_gzip_and_deflate_bodies_are_decoded() -> None:
    app = parser_app()
    doc = b'{"sensor": "t1", "values": [' + b",".join(b"21" for _ in range(2000)) + b"]}"
    with trio.fail_after(10):
        async with running(app) as server:
            gz = await post(
                server, "/echo", [*JSON, ("Content-Encoding", "gzip")], gzip.compress(doc)
            )
            zl = await post(
                server, "/echo", [*JSON, ("Content-Encoding", "deflate")], zlib.compress(doc)
            )
            corrupt = await post(
                server,
                "/echo",
                [*JSON, ("Content-Encoding", "gzip")],
                gzip.compress(doc)[:-20] + b"\x00" * 20,
            )
            br = await post(server, "/echo", [*JSON, ("Content-Encoding", "br")], b"x")
    assert gz.json()["body"]["values"] == [21] * 2000 and zl.json() == gz.json()
    assert corrupt.status == 400 and "gzip body" in error_of(corrupt)
    assert br.status == 415 and error_of(br) == 'unsupported content encoding "br"'


async def test_gzip_bomb_is_413_after_at_most_the_limit() -> None:
    app = parser_app()
    bomb = gzip.compress(b"\0" * (64 << 20), 9)  # 64 MiB of zeros in ~64 kB
    assert len(bomb) < 100_000
    with trio.fail_after(20):
        async with running(app) as server:
            reply = await post(server, "/echo", [*JSON, ("Content-Encoding", "gzip")], bomb)
    assert reply.status == 413 and error_of(reply) == "request entity too large: limit 102400 bytes"
    assert app.budget.peak <= 102400 + 65536  # decoding stopped at the limit
    assert app.budget.used == 0


# -- multipart/form-data ------------------------------------------------------------------------------
BOUNDARY = "----WebKitFormBoundaryx7ZyKqL2mB9aP0sT"
MULTIPART = [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")]


def form_body(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]], extra_headers: int = 0
) -> bytes:
    """What a browser sends for <form enctype="multipart/form-data"> (UTF-8 fields)."""
    out: list[bytes] = []
    for name, value in fields:
        out.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'.encode())
        out.extend(b"X-Extra-%d: 1\r\n" % i for i in range(extra_headers))
        out.append(b"\r\n" + value.encode() + b"\r\n")
    for name, filename, data in files:
        out.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        out.append(data + b"\r\n")
    out.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(out)


def firmware_app(received: dict[str, Any]) -> App:
    app = App()

    async def store(part: Any) -> None:
        # a firmware image is streamed (to flash, here to a hash): never held in memory
        digest = hashlib.sha256()
        size = 0
        async for chunk in part:
            digest.update(chunk)
            size += len(chunk)
        received[part.name] = (part.filename, size, digest.hexdigest())

    async def done(req, res):  # type: ignore[no-untyped-def]
        fields = {
            k: (v if isinstance(v, str) else {"filename": v.filename, "size": len(v.data)})
            for k, v in req.body.items()
        }
        await res.json({"fields": fields, "files": received, "reserved": req.stream.reserved})

    app.post("/firmware", bodyparsers.form(on_file=store), done, max_body_bytes=4 << 20)
    app.post("/keep", bodyparsers.form(keep_files=True), done)
    app.post("/strict", bodyparsers.form(max_parts=3, max_field_bytes=10, max_header_pairs=2), done)
    app.post("/no-files", bodyparsers.form(), done)
    return app


async def test_browser_form_uploading_a_firmware_image_streams_the_file() -> None:
    received: dict[str, Any] = {}
    app = firmware_app(received)
    # 2 MiB (over the user mode's 256 KiB streaming limit), with delimiter look-alikes inside
    lookalike = b"\r\n--" + BOUNDARY[:-2].encode()
    image = (bytes(range(256)) * 64 + lookalike) * 128
    body = form_body([("version", "2.4.1"), ("notes", "über-fix")], [("image", "fw.bin", image)])
    with trio.fail_after(20):
        async with running(app) as server:
            reply = await post(server, "/firmware", MULTIPART, body)
    assert reply.status == 200, reply.text
    data = reply.json()
    assert data["fields"] == {"version": "2.4.1", "notes": "über-fix"}
    assert data["files"] == {"image": ["fw.bin", len(image), hashlib.sha256(image).hexdigest()]}
    fields_bytes = len("2.4.1") + len("über-fix".encode())
    assert data["reserved"] == fields_bytes  # the 2 MiB file was never kept
    assert app.budget.peak == fields_bytes and app.budget.used == 0


async def test_files_are_kept_only_when_asked() -> None:
    app = firmware_app({})
    blob = b"\x89PNG" + b"\x00" * 1000
    body = form_body([("title", "cat")], [("photo", "cat.png", blob)])
    with trio.fail_after(10):
        async with running(app) as server:
            kept = await post(server, "/keep", MULTIPART, body)
            refused = await post(server, "/no-files", MULTIPART, body)
    assert kept.status == 200 and kept.json()["reserved"] == len("cat") + len(blob)
    assert kept.json()["fields"]["photo"] == {"filename": "cat.png", "size": len(blob)}
    assert refused.status == 400 and error_of(refused) == "unexpected file field 'photo'"
    assert app.budget.used == 0


@pytest.mark.parametrize(
    ("fields", "extra", "message"),
    [
        ([("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], 0, "too many parts (limit 3)"),
        ([("a", "x" * 11)], 0, "field 'a' too large (limit 10 bytes)"),
        ([("a", "1")], 2, "too many part headers (limit 2)"),
    ],
)
async def test_multipart_limits_are_413(
    fields: list[tuple[str, str]], extra: int, message: str
) -> None:
    app = firmware_app({})
    with trio.fail_after(10):
        async with running(app) as server:
            reply = await post(server, "/strict", MULTIPART, form_body(fields, [], extra))
    assert reply.status == 413 and error_of(reply) == message
    assert app.budget.used == 0


async def test_malformed_multipart_is_400() -> None:
    app = firmware_app({})
    truncated = form_body([("a", "1")], [])[:-10]
    with trio.fail_after(10):
        async with running(app) as server:
            reply = await post(server, "/no-files", MULTIPART, truncated)
            no_boundary = await post(
                server, "/no-files", [("Content-Type", "multipart/form-data")], b"x"
            )
    assert reply.status == 400 and error_of(reply) == "truncated multipart body"
    assert no_boundary.status == 400 and error_of(no_boundary) == "missing boundary"
