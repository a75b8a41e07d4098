# Tests for gateway.body.multipart: the sans-IO MultipartParser (bytes in, events out, fed whole,
# byte by byte, 7 bytes at a time and at random splits) and the async layer (multipart(req),
# form()) over tests.test_bodyparsers.FakeRequest.
from __future__ import annotations

import gzip
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.body import multipart as mp
from gateway.body.multipart import MultipartParser, PartData, PartEnd, PartStart
from gateway.errors import BadRequest, BodyTooLarge, PayloadTooLarge, UnsupportedMediaType
from tests.test_bodyparsers import FakeRequest, run

B = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"
# File content that tries hard to look like a delimiter without being one.
NASTY = (
    b"\r\n--" + B[:-1] + b"X\r\n"
    b"\r\n\r\n--\r\n-"
    + b"\r\n--"
    + B[:5]
    + b"\x00\xff\r\r\n\n--"
    + B[:-3]
    + b"\r\n-"
    + bytes(range(256))
)


def build(
    parts: list[tuple[list[bytes], bytes]],
    boundary: bytes = B,
    *,
    preamble: bytes = b"",
    epilogue: bytes = b"",
    close: bool = True,
) -> bytes:
    out = [preamble]
    for headers, data in parts:
        out.append(b"--" + boundary + b"\r\n")
        out.extend(h + b"\r\n" for h in headers)
        out.append(b"\r\n" + data + b"\r\n")
    if close:
        out.append(b"--" + boundary + b"--" + epilogue)
    return b"".join(out)


def field(name: str, value: bytes) -> tuple[list[bytes], bytes]:
    return [f'Content-Disposition: form-data; name="{name}"'.encode()], value


def file(name: str, filename: str, data: bytes, ctype: bytes = b"application/octet-stream") -> Any:
    disp = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'.encode()
    return [disp, b"Content-Type: " + ctype], data


FORM_BODY = build(
    [
        field("version", b"1.2.3"),
        file("firmware", "fw.bin", NASTY),
        field("version", b"second"),
        field("empty", b""),
    ]
)


def feed_all(chunks: list[bytes], boundary: bytes = B, **limits: Any) -> list[Any]:
    """Feed chunks and merge consecutive PartData so results compare across splits."""
    parser = MultipartParser(boundary, **limits)
    events: list[Any] = []
    for c in chunks:
        events.extend(parser.feed(c))
    parser.close()
    merged: list[Any] = []
    for e in events:
        assert not (isinstance(e, PartData) and not e.data)
        if isinstance(e, PartData) and merged and isinstance(merged[-1], PartData):
            merged[-1] = PartData(merged[-1].data + e.data)
        else:
            merged.append(e)
    return merged


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


EXPECTED = [
    PartStart("version", None, "text/plain", {"content-disposition": 'form-data; name="version"'}),
    PartData(b"1.2.3"),
    PartEnd(),
    PartStart(
        "firmware",
        "fw.bin",
        "application/octet-stream",
        {
            "content-disposition": 'form-data; name="firmware"; filename="fw.bin"',
            "content-type": "application/octet-stream",
        },
    ),
    PartData(NASTY),
    PartEnd(),
    PartStart("version", None, "text/plain", {"content-disposition": 'form-data; name="version"'}),
    PartData(b"second"),
    PartEnd(),
    PartStart("empty", None, "text/plain", {"content-disposition": 'form-data; name="empty"'}),
    PartEnd(),
]

# ---------------------------------------------------------------------------- sans-IO


@pytest.mark.parametrize("size", [None, 1, 2, 7, 64, len(B) + 3, len(B) + 4])
def test_events_whole_and_chunked(size: int | None) -> None:
    chunks = [FORM_BODY] if size is None else split(FORM_BODY, size)
    assert feed_all(chunks) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(FORM_BODY)), max_size=40))
def test_events_random_splits(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [FORM_BODY[a:b] for a, b in zip([0, *points], [*points, len(FORM_BODY)], strict=True)]
    assert feed_all(chunks) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300), size=st.integers(min_value=1, max_value=50))
def test_any_binary_content_round_trips(data: bytes, size: int) -> None:
    boundary = b"b0undary"
    if b"\r\n--" + boundary in b"\r\n" + data + b"\r\n":
        return  # a client would have chosen another boundary
    body = build([file("f", "x", data)], boundary)
    events = feed_all(split(body, size), boundary)
    assert [e.data for e in events if isinstance(e, PartData)] == ([data] if data else [])


def test_boundary_split_across_feeds_and_bounded_buffer() -> None:
    parser = MultipartParser(B)
    events: list[Any] = []
    for i in range(len(FORM_BODY)):
        events.extend(parser.feed(FORM_BODY[i : i + 1]))
        # never more than a header block or a possible delimiter start is retained
        assert parser.buffered_bytes() <= max(len(B) + 3, 120)  # 120: the longest header block
    parser.close()
    assert parser.done
    payload = b"".join(e.data for e in events if isinstance(e, PartData))
    assert payload == b"1.2.3" + NASTY + b"second"


def test_large_body_keeps_only_a_delimiter_sized_tail() -> None:
    parser = MultipartParser(B)
    parser.feed(b"--" + B + b'\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n')
    near = b"\r\n--" + B[:-1]  # a delimiter prefix at every chunk end
    total = 0
    for _ in range(2000):
        for e in parser.feed(b"x" * 500 + near):
            total += len(e.data) if isinstance(e, PartData) else 0
        assert parser.buffered_bytes() <= len(B) + 3
    parser.feed(b"\r\n--" + B + b"--")
    parser.close()


def test_preamble_and_epilogue_are_ignored() -> None:
    body = build(
        [field("a", b"1")],
        preamble=b"This is a preamble with --" + B + b" inside a line\r\n",
        epilogue=b"\r\nepilogue --" + B + b"\r\n",
    )
    events = feed_all(split(body, 3))
    assert [type(e) for e in events] == [PartStart, PartData, PartEnd]


def test_content_disposition_variants() -> None:
    body = build(
        [
            (
                [b"content-disposition: form-data; name=\"a%22b\"; filename*=UTF-8''%e2%82%ac.bin"],
                b"1",
            ),
            ([b'Content-Disposition: form-data; name=plain; filename="C:\\\\dir\\\\a.bin"'], b"2"),
            ([b'Content-Disposition: form-data; name="q\\"uote"; filename=""'], b""),
            ([b"Content-Disposition: FORM-DATA;name=x;"], b""),
            (['Content-Disposition: form-data; name="é"; filename="ü.txt"'.encode()], b""),
        ]
    )
    starts = [e for e in feed_all([body]) if isinstance(e, PartStart)]
    assert [(s.name, s.filename) for s in starts] == [
        ('a"b', "€.bin"),
        ("plain", "a.bin"),
        ('q"uote', ""),
        ("x", None),
        ("é", "ü.txt"),
    ]


def test_headers_are_lower_case_and_part_content_type_kept() -> None:
    body = build([([b'Content-Disposition: form-data; name="j"', b"X-Thing:  v "], b"{}")])
    (start,) = [e for e in feed_all([body]) if isinstance(e, PartStart)]
    assert start.headers["x-thing"] == "v"
    assert start.content_type == "text/plain"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (build([field("a", b"1")], close=False), "truncated multipart body"),
        (build([field("a", b"1")])[:-2], "truncated multipart body"),
        (build([field("a", b"1")])[:20], "missing boundary delimiter"),
        (b"", "missing boundary delimiter"),
        (b"no delimiter here at all", "missing boundary delimiter"),
        (b"--" + B + b"\r\nContent-Disposition: form-data", "truncated"),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_truncated_or_missing_is_400(body: bytes, match: str, size: int) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        feed_all(split(body, size) or [b""])
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ([b"Content-Type: text/plain"], "no Content-Disposition"),
        ([b"Content-Disposition: form-data"], "has no name"),
        ([b'Content-Disposition: attachment; name="a"'], "not form-data"),
        ([b'Content-Disposition: form-data; name="a"; name="b"'], "repeated"),
        ([b'Content-Disposition: form-data; name="a', b"x: y"], "bad Content-Disposition"),
        ([b'Content-Disposition: form-data; name="a"', b"no colon"], "bad header line"),
        ([b'Content-Disposition: form-data; name="a"', b" folded: x"], "bad header line"),
        ([b'Content-Disposition: form-data; name="a"', b"X: a\rb"], "bad header line"),
        ([b'Content-Disposition: form-data; name="a"', b"Content-Type: a/b"] * 2, "repeated"),
        ([b"Content-Disposition: form-data; name=a; filename*=latin2''x"], "bad filename"),
        ([b"Content-Disposition: form-data; name=a; filename*=UTF-8''%ff"], "bad filename"),
    ],
)
def test_malformed_part_headers_are_400(headers: list[bytes], match: str) -> None:
    body = build([(headers, b"x")])
    with pytest.raises(BadRequest, match=match) as info:
        feed_all(split(body, 5))
    assert info.value.status == 400


def test_bad_delimiter_line_is_400() -> None:
    body = b"--" + B + b"\r\n" + field("a", b"1")[0][0] + b"\r\n\r\n1\r\n--" + B + b"X\r\n"
    with pytest.raises(BadRequest, match="malformed multipart delimiter line"):
        feed_all([body])


@pytest.mark.parametrize(
    "boundary", [b"", b"a" * 71, b"bad\rboundary", b"ends with space ", b'quo"te', b"\xff"]
)
def test_invalid_boundary_is_400(boundary: bytes) -> None:
    with pytest.raises(BadRequest, match="invalid multipart boundary"):
        MultipartParser(boundary)


def test_boundary_of_70_chars_and_spaces_is_fine() -> None:
    boundary = b"a b'()+_,-./:=?" + b"z" * 55
    assert len(boundary) == 70
    assert len(feed_all([build([field("a", b"1")], boundary)], boundary)) == 3


@pytest.mark.parametrize("size", [1, 7, 100_000])
def test_limits_are_413(size: int) -> None:
    def check(body: bytes, match: str, **limits: Any) -> None:
        with pytest.raises(PayloadTooLarge, match=match) as info:
            feed_all(split(body, size), **limits)
        assert info.value.status == 413

    three = build([field("a", b"1"), field("b", b"2"), field("c", b"3")])
    check(three, r"too many parts \(limit 2\)", max_parts=2)
    feed_all(split(three, size), max_parts=3)
    check(build([field("big", b"x" * 101)]), "field 'big' too large", max_field_bytes=100)
    feed_all(split(build([field("ok", b"x" * 100)]), size), max_field_bytes=100)
    check(build([file("fw", "a", b"x" * 11)]), "file 'fw' too large", max_file_bytes=10)
    feed_all(split(build([file("fw", "a", b"x" * 500)]), size), max_field_bytes=10)
    many = build([([field("a", b"")[0][0]] + [b"X-%d: v" % i for i in range(20)], b"")])
    check(many, "too many part headers", max_header_pairs=20)
    long = build([([field("a", b"")[0][0], b"X: " + b"v" * 9000], b"")])
    check(long, "part headers too large", max_header_bytes=8192)
    endless = b"--" + B + b"\r\n" + b"X: " + b"v" * 20_000
    check(endless, "part headers too large", max_header_bytes=8192)


def test_feed_after_close_and_after_epilogue() -> None:
    parser = MultipartParser(B)
    assert parser.feed(build([field("a", b"1")])) != []
    assert parser.feed(b"anything") == []
    parser.close()
    with pytest.raises(RuntimeError):
        parser.feed(b"x")


# ---------------------------------------------------------------------------- async

CT = "multipart/form-data; boundary=" + B.decode()


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_multipart_streams_parts(chunk: int | None) -> None:
    req = FakeRequest(FORM_BODY, content_type=CT, chunk=chunk)
    seen: list[tuple[str, str | None, bytes]] = []
    async with mp.multipart(req) as parts:
        async for part in parts:
            if part.filename is None:
                seen.append((part.name, None, (await part.text()).encode()))
            else:
                got = [c async for c in part]
                assert all(got)
                seen.append((part.name, part.filename, b"".join(got)))
    assert seen == [
        ("version", None, b"1.2.3"),
        ("firmware", "fw.bin", NASTY),
        ("version", None, b"second"),
        ("empty", None, b""),
    ]
    # only the fields the caller read are charged; the streamed file is not
    assert req.peak == len(b"1.2.3second")


async def test_unconsumed_parts_are_drained_and_read_is_cached() -> None:
    req = FakeRequest(FORM_BODY, content_type=CT, chunk=5)
    names: list[str] = []
    kept = None
    async for part in mp.multipart(req):
        names.append(part.name)
        if part.name == "firmware":
            kept = part
            assert await part.read() == NASTY
            assert await part.read() == NASTY
    assert names == ["version", "firmware", "version", "empty"]
    assert kept is not None and await kept.read() == NASTY


async def test_read_after_streaming_is_an_error() -> None:
    req = FakeRequest(FORM_BODY, content_type=CT)
    async with mp.multipart(req) as parts:
        part = await parts.__anext__()
        async for _ in part:
            pass
        with pytest.raises(RuntimeError, match="already consumed"):
            await part.read()


async def test_text_charset_of_part() -> None:
    body = build(
        [
            (
                [
                    b'Content-Disposition: form-data; name="a"',
                    b"Content-Type: text/plain; charset=latin-1",
                ],
                "é".encode("latin-1"),
            ),
            ([b'Content-Disposition: form-data; name="b"'], b"\xff"),
            (
                [
                    b'Content-Disposition: form-data; name="c"',
                    b"Content-Type: text/plain; charset=nope",
                ],
                b"x",
            ),
        ]
    )
    req = FakeRequest(body, content_type=CT)
    async with mp.multipart(req) as parts:
        assert await (await parts.__anext__()).text() == "é"
        with pytest.raises(BadRequest, match="field 'b' is not valid utf-8"):
            await (await parts.__anext__()).text()
        with pytest.raises(UnsupportedMediaType, match='unsupported charset "NOPE"'):
            await (await parts.__anext__()).text()


@pytest.mark.parametrize(
    ("ct", "exc", "match"),
    [
        ("multipart/form-data", BadRequest, "missing boundary"),
        ("multipart/form-data; boundary=", BadRequest, "malformed multipart Content-Type"),
        ('multipart/form-data; boundary="bad\\"quote"', BadRequest, "invalid multipart boundary"),
        ("multipart/form-data; boundary=" + "x" * 80, BadRequest, "invalid multipart boundary"),
        ("multipart/form-data; boundary=é", BadRequest, "malformed multipart Content-Type"),
        ("application/json", UnsupportedMediaType, "expected a multipart/form-data body"),
    ],
)
async def test_bad_content_type(ct: str, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        mp.multipart(FakeRequest(FORM_BODY, content_type=ct))


async def test_truncated_async_body_is_400() -> None:
    req = FakeRequest(FORM_BODY[:-10], content_type=CT, chunk=7)
    with pytest.raises(BadRequest, match="truncated"):
        async for part in mp.multipart(req):
            await part.read()


async def test_body_limit_applies() -> None:
    req = FakeRequest(FORM_BODY, content_type=CT, content_length=False, chunk=64)
    with pytest.raises(BodyTooLarge, match="limit 100 bytes"):
        async for _ in mp.multipart(req, limit=100):
            pass


async def test_parser_error_closes_the_stream() -> None:
    req = FakeRequest(build([field("a", b"x" * 1000)]), content_type=CT, chunk=10)
    with pytest.raises(PayloadTooLarge, match="field 'a' too large"):
        async for part in mp.multipart(req, max_field_bytes=10):
            await part.read()


async def test_gzip_encoded_multipart() -> None:
    req = FakeRequest(gzip.compress(FORM_BODY), content_type=CT, chunk=11)
    req.headers["content-encoding"] = "gzip"
    files: list[bytes] = []
    async with mp.multipart(req) as parts:
        async for part in parts:
            if part.filename:
                files.append(await part.read())
    assert files == [NASTY]


# ------------------------------------------------------------------------------ form()


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_form_fields_and_on_file(chunk: int | None) -> None:
    received: dict[str, bytes] = {}

    async def on_file(part: mp.Part) -> None:
        received[part.filename or ""] = b"".join([c async for c in part])

    req = FakeRequest(FORM_BODY, content_type=CT, chunk=chunk)
    assert await run(mp.form(on_file=on_file), req)
    assert req.body == {"version": ["1.2.3", "second"], "empty": ""}
    assert received == {"fw.bin": NASTY}
    assert req.body_parsed
    assert req.peak == len(b"1.2.3second")


async def test_form_on_file_may_ignore_the_part() -> None:
    async def on_file(part: mp.Part) -> None:
        return None

    req = FakeRequest(FORM_BODY, content_type=CT, chunk=3)
    await run(mp.form(on_file=on_file), req)
    assert req.body["version"] == ["1.2.3", "second"]


async def test_form_keep_files_is_charged_and_bounded() -> None:
    req = FakeRequest(FORM_BODY, content_type=CT, chunk=13)
    await run(mp.form(keep_files=True), req)
    upload = req.body["firmware"]
    assert isinstance(upload, mp.UploadedFile)
    assert (upload.filename, upload.content_type, upload.data) == (
        "fw.bin",
        "application/octet-stream",
        NASTY,
    )
    assert req.peak == len(b"1.2.3second") + len(NASTY)
    two = build([file("f", "a", b"1"), file("f", "b", b"2")])
    with pytest.raises(PayloadTooLarge, match="too many files"):
        await run(mp.form(keep_files=True, max_files=1), FakeRequest(two, content_type=CT))


async def test_form_refuses_unexpected_files() -> None:
    with pytest.raises(BadRequest, match="unexpected file field 'firmware'"):
        await run(mp.form(), FakeRequest(FORM_BODY, content_type=CT))


async def test_form_skips_other_types_and_parsed_bodies() -> None:
    req = FakeRequest(b"[1]", content_type="application/json")
    assert await run(mp.form(), req)
    assert req.body == {} and not req.body_parsed
    req = FakeRequest(FORM_BODY, content_type=CT)
    req.body_parsed = True
    assert await run(mp.form(), req)
    assert req.body == {} and req.pulled == 0


async def test_form_budget_exhaustion_is_503() -> None:
    from gateway.errors import BudgetExceeded

    req = FakeRequest(FORM_BODY, content_type=CT, budget_bytes=100)
    with pytest.raises(BudgetExceeded):
        await run(mp.form(keep_files=True), req)
    assert req.reserved <= 100


async def test_form_big_streamed_upload_stays_cheap() -> None:
    firmware = bytes(range(256)) * 8192  # 2 MiB
    body = build([field("v", b"9"), file("fw", "big.bin", firmware)])
    req = FakeRequest(body, content_type=CT, chunk=16_384, max_body_bytes=4 << 20)
    size = 0

    async def on_file(part: mp.Part) -> None:
        nonlocal size
        async for c in part:
            size += len(c)

    with trio.fail_after(10):
        await run(mp.form(on_file=on_file, limit="4mb"), req)
    assert size == len(firmware)
    assert req.peak == 1
