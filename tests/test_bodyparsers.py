# Tests for gateway.body.parsers: json/urlencoded/text/raw middleware and content decoding,
# fed whole and chunk by chunk through FakeRequest, a fake of the request seam
# (docs/CONTRACTS.md) with a fake memory budget that records its peak.
from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.body import parsers as bp
from gateway.errors import (
    BadRequest,
    BodyTooLarge,
    BudgetExceeded,
    HTTPError,
    PayloadTooLarge,
    UnsupportedMediaType,
)


@dataclass(frozen=True)
class FakeLimits:
    max_body_bytes: int = 1 << 20
    max_cache_bytes: int = 1 << 20


class FakeRequest:
    """Exactly the body seam: get, headers, body, limits, __aiter__, read, reserve."""

    def __init__(
        self,
        body: bytes | Sequence[bytes] = b"",
        *,
        content_type: str | None = None,
        chunk: int | None = None,
        headers: dict[str, str] | None = None,
        content_length: bool = True,
        max_body_bytes: int = 1 << 20,
        budget_bytes: int = 1 << 24,
    ) -> None:
        if isinstance(body, bytes | bytearray):
            size = chunk or max(len(body), 1)
            self._chunks = [bytes(body[i : i + size]) for i in range(0, len(body), size)]
        else:
            self._chunks = list(body)
        total = sum(len(c) for c in self._chunks)
        self.headers: dict[str, str] = {}
        if content_type is not None:
            self.headers["content-type"] = content_type
        if content_length:
            self.headers["content-length"] = str(total)
        else:
            self.headers["transfer-encoding"] = "chunked"
        for k, v in (headers or {}).items():
            self.headers[k.lower()] = v
        self.body: Any = {}
        self.body_parsed = False
        self.limits = FakeLimits(max_body_bytes=max_body_bytes)
        self.budget_bytes = budget_bytes
        self.reserved = 0
        self.peak = 0
        self.pulled = 0
        self._streamed = False
        self._cache: bytes | None = None

    def get(self, field: str) -> str | None:
        name = field.lower()
        return self.headers.get("referer" if name == "referrer" else name)

    async def __aiter__(self) -> Any:
        if self._streamed:
            raise RuntimeError("the request body has already been read")
        self._streamed = True
        for c in self._chunks:
            await trio.lowlevel.checkpoint()
            self.pulled += len(c)
            if self.pulled > self.limits.max_body_bytes:
                raise BodyTooLarge(message="fake: over max_body_bytes")
            yield c

    async def read(self, limit: int | None = None) -> bytes:
        if self._cache is None:
            parts = [c async for c in self]
            data = b"".join(parts)
            if limit is not None and len(data) > limit:
                raise BodyTooLarge(message="fake: over read limit")
            self.reserve(len(data))
            self._cache = data
        return self._cache

    def reserve(self, nbytes: int) -> None:
        if self.reserved + nbytes > self.budget_bytes:
            raise BudgetExceeded()
        self.reserved += nbytes
        self.peak = max(self.peak, self.reserved)


async def run(mw: Callable[..., Awaitable[None]], req: FakeRequest) -> bool:
    called: list[bool] = []

    async def next_() -> None:
        called.append(True)

    await mw(req, None, next_)
    return bool(called)


def splits(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


JSON = "application/json"

# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (500, 500),
        ("100kb", 102400),
        ("1mb", 1 << 20),
        ("1.5kb", 1536),
        ("10", 10),
        ("2 MB", 2 << 20),
    ],
)
def test_parse_limit(value: int | str, expected: int) -> None:
    assert bp.parse_limit(value) == expected


@pytest.mark.parametrize("value", ["abc", "-1", -1, "1xb", ""])
def test_parse_limit_invalid(value: int | str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        bp.parse_limit(value)


def test_parse_content_type() -> None:
    assert bp.parse_content_type('Text/HTML; Charset="utf-8"; q=1') == (
        "text/html",
        {"charset": "utf-8", "q": "1"},
    )
    assert bp.parse_content_type('multipart/form-data; boundary="a\\"b"') == (
        "multipart/form-data",
        {"boundary": 'a"b'},
    )
    assert bp.parse_content_type("nonsense") is None
    assert bp.parse_content_type("text/plain; =x") is None
    assert bp.parse_content_type(None) is None


class _CT:
    def __init__(self, ct: str | None) -> None:
        self.ct = ct

    def get(self, field: str) -> str | None:
        return self.ct


@pytest.mark.parametrize(
    ("types", "ct", "ok"),
    [
        ("application/json", "application/json; charset=utf-8", True),
        ("json", "application/json", True),
        ("+json", "application/vnd.api+json", True),
        ("+json", "application/json", False),
        ("*/*", "image/png", True),
        ("text/*", "text/csv", True),
        ("text/*", "application/csv", False),
        (["bin", "text"], "text/plain", True),
        ("urlencoded", "application/x-www-form-urlencoded", True),
        ("multipart", "multipart/form-data; boundary=x", True),
        ("json", None, False),
        ("json", "garbage", False),
        ("nosuchshorthand", "application/json", False),
    ],
)
def test_type_checker(types: Any, ct: str | None, ok: bool) -> None:
    assert bp.type_checker(types)(_CT(ct)) is ok


# --------------------------------------------------------------------------------- json


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_json_whole_and_chunked(chunk: int | None) -> None:
    req = FakeRequest(b'{"a": [1, 2.5, "\xc3\xa9"], "b": null}', content_type=JSON, chunk=chunk)
    assert await run(bp.json(), req)
    assert req.body == {"a": [1, 2.5, "é"], "b": None}
    assert req.body_parsed is True
    assert req.peak == int(req.headers["content-length"])


@pytest.mark.parametrize("ct", ["application/vnd.api+json", "application/json; charset=UTF-8"])
async def test_json_default_types(ct: str) -> None:
    req = FakeRequest(b"[1]", content_type=ct)
    await run(bp.json(), req)
    assert req.body == [1]


@pytest.mark.parametrize(
    "req",
    [
        FakeRequest(b"[1]", content_type="text/plain"),
        FakeRequest(b"[1]"),  # no Content-Type
        FakeRequest(b"[1]", content_type="application/jsonx"),
    ],
)
async def test_json_non_matching_type_leaves_body(req: FakeRequest) -> None:
    assert await run(bp.json(), req)
    assert req.body == {}
    assert req.body_parsed is False
    assert req.pulled == 0


async def test_json_no_body_is_skipped() -> None:
    req = FakeRequest(b"", content_type=JSON)
    del req.headers["content-length"]
    assert await run(bp.json(), req)
    assert req.body == {} and not req.body_parsed


async def test_json_empty_body_is_empty_object() -> None:
    req = FakeRequest(b"", content_type=JSON)
    await run(bp.json(), req)
    assert req.body == {} and req.body_parsed


async def test_already_parsed_is_skipped() -> None:
    req = FakeRequest(b"[1]", content_type=JSON)
    req.body_parsed = True
    req.body = "earlier"
    assert await run(bp.json(), req)
    assert req.body == "earlier" and req.pulled == 0


async def test_first_matching_parser_wins() -> None:
    req = FakeRequest(b"[1]", content_type=JSON)
    await run(bp.json(), req)
    await run(bp.raw(type="*/*"), req)
    assert req.body == [1]


async def test_json_custom_type_callable() -> None:
    req = FakeRequest(b"[1]", content_type="text/plain")
    await run(bp.json(type=lambda r: True), req)
    assert req.body == [1]


@pytest.mark.parametrize(
    ("body", "value"), [(b'"str"', "str"), (b"true", True), (b"  42", 42), (b"null", None)]
)
async def test_json_strict_rejects_primitives(body: bytes, value: object) -> None:
    with pytest.raises(BadRequest, match="strict"):
        await run(bp.json(), FakeRequest(body, content_type=JSON))
    req = FakeRequest(body, content_type=JSON)
    await run(bp.json(strict=False), req)
    assert req.body_parsed is True  # null parsed to None, not "no body" ({})
    assert req.body == value and type(req.body) is type(value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": }', "Invalid JSON at line 1 column 7 (char 6): Expecting value"),
        (
            b'{\n  "a": 1,\n  "b" 2}',
            "Invalid JSON at line 3 column 7 (char 18): Expecting ':' delimiter",
        ),
        (b"[1, 2", "Invalid JSON at line 1 column 6 (char 5): Expecting ',' delimiter"),
        (b"[1] x", "Invalid JSON at line 1 column 5 (char 4): Extra data"),
        (b"   ", "Invalid JSON at line 1 column 4 (char 3): Expecting value"),
    ],
)
async def test_json_invalid_names_position(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        await run(bp.json(), FakeRequest(body, content_type=JSON, chunk=2))
    assert info.value.status == 400
    assert info.value.message == message


async def test_json_hostile_deep_nesting_is_cheap_400() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    with trio.fail_after(5), pytest.raises(BadRequest, match="nesting deeper than 64"):
        await run(bp.json(limit="1mb"), FakeRequest(body, content_type=JSON, chunk=8192))


def test_json_depth_limit_boundary() -> None:
    deep = bp.parse_json(b"[" * 64 + b"]" * 64)  # 64 levels are fine by default
    for _ in range(63):
        deep = deep[0]
    assert deep == []
    assert bp.parse_json(b"[" * 5 + b"]" * 5, max_depth=5) == [[[[[]]]]]
    with pytest.raises(BadRequest, match="char 5"):
        bp.parse_json(b"[" * 6 + b"]" * 6, max_depth=5)
    # brackets inside strings do not count, escaped quotes do not end strings
    assert bp.parse_json(b'["[[[[[[\\"[[[[["]', max_depth=2) == ['[[[[[["[[[[[']
    # an unterminated string stops the scan; json reports the real error
    with pytest.raises(BadRequest, match="Unterminated string"):
        bp.parse_json(b'["' + b'\\"' * 1000 + b"[[[", max_depth=2)


def test_json_unterminated_string_scan_is_linear() -> None:
    body = b"[[[[" + b'\\"' * 200_000  # many quotes, none closing: must not be quadratic
    with pytest.raises(BadRequest):
        bp.parse_json(body, max_depth=2)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"[" + b"1" * 50_000 + b"]", "number too long"),
        (b'{"n": -' + b"9" * 5000 + b"}", "number too long"),
        (b"[0." + b"1" * 5000 + b"]", "number too long"),
        (b"[1e999]", "out of range"),
        (b"[-1e400]", "out of range"),
        (b"[1E+999]", "out of range"),
        (b'["a", 2e0999]', "out of range"),
        (b"[NaN]", "NaN is not a JSON value"),
        (b'{"x": Infinity}', "Infinity is not a JSON value"),
        (b"[-Infinity]", "-Infinity is not a JSON value"),
    ],
)
async def test_json_hostile_numbers(body: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        await run(bp.json(strict=False), FakeRequest(body, content_type=JSON))


async def test_json_big_but_fine_numbers() -> None:
    req = FakeRequest(b"[" + b"9" * 1000 + b", 1.5e300]", content_type=JSON)
    await run(bp.json(), req)
    assert req.body[0] == int("9" * 1000) and req.body[1] == 1.5e300


def test_json_numbers_with_and_without_the_checked_decoder() -> None:
    # short numbers and 1-2 digit exponents skip the number hooks; anything else is checked
    fine = b'[1e99, -2E-99, 0.5, 123456789012345678901234567890, "' + b"9" * 100 + b'", 1e308]'
    assert bp.parse_json(fine) == [
        1e99,
        -2e-99,
        0.5,
        123456789012345678901234567890,
        "9" * 100,
        1e308,
    ]
    assert bp.parse_json(b"[" + b"7" * 63 + b"]") == [int("7" * 63)]
    assert bp.parse_json(b"[" + b"7" * 64 + b"]") == [int("7" * 64)]


async def test_json_invalid_utf8_is_400() -> None:
    with pytest.raises(BadRequest, match="invalid utf-8 in body at byte 7"):
        await run(bp.json(), FakeRequest(b'{"a": "\xff"}', content_type=JSON))


async def test_json_bom_is_stripped() -> None:
    req = FakeRequest(b'\xef\xbb\xbf{"a": 1}', content_type=JSON)
    await run(bp.json(), req)
    assert req.body == {"a": 1}


@pytest.mark.parametrize("charset", ["utf-16", "utf-16le", "utf-32be"])
async def test_json_utf16_utf32(charset: str) -> None:
    data = '{"k": "ü€"}'.encode(charset)
    req = FakeRequest(data, content_type=f"application/json; charset={charset.upper()}", chunk=3)
    await run(bp.json(), req)
    assert req.body == {"k": "ü€"}


@pytest.mark.parametrize("charset", ["latin1", "koi8-r", "utf8", "x-nope"])
async def test_json_other_charset_is_415(charset: str) -> None:
    req = FakeRequest(b"[1]", content_type=f"application/json; charset={charset}")
    with pytest.raises(UnsupportedMediaType) as info:
        await run(bp.json(), req)
    assert info.value.message == f'unsupported charset "{charset.upper()}"'
    assert req.pulled == 0


def test_json_reviver() -> None:
    seen: list[str] = []

    def reviver(key: str, value: Any) -> Any:
        seen.append(key)
        return value * 2 if isinstance(value, int) else value

    assert bp.parse_json(b'{"a": [1, 2], "b": 3}', reviver=reviver) == {"a": [2, 4], "b": 6}
    assert seen == ["0", "1", "a", "b", ""]


# ------------------------------------------------------------------------------- limits


async def test_limit_over_is_413_with_message() -> None:
    body = b"[" + b" " * 102_399 + b"]"  # 102401 bytes
    req = FakeRequest(body, content_type=JSON, chunk=4096)
    with pytest.raises(BodyTooLarge) as info:
        await run(bp.json(), req)
    assert info.value.status == 413
    assert info.value.message == "request entity too large: limit 102400 bytes"
    assert req.pulled == 0  # rejected from Content-Length alone


async def test_limit_without_content_length_stops_reading() -> None:
    body = b"[" + b" " * 300_000 + b"]"
    req = FakeRequest(body, content_type=JSON, chunk=1000, content_length=False)
    with pytest.raises(BodyTooLarge, match="limit 102400 bytes"):
        await run(bp.json(), req)
    assert req.pulled <= 102_400 + 1000
    assert req.peak <= 102_400


async def test_limit_exactly_at_limit_is_fine() -> None:
    body = b"[" + b" " * 98 + b"]"
    req = FakeRequest(body, content_type=JSON, chunk=7, content_length=False)
    await run(bp.json(limit=100), req)
    assert req.body == []


async def test_mode_limit_caps_parser_limit() -> None:
    req = FakeRequest(b"[" + b" " * 2000 + b"]", content_type=JSON, max_body_bytes=1000)
    with pytest.raises(BodyTooLarge, match="limit 1000 bytes"):
        await run(bp.json(limit="1mb"), req)


async def test_budget_exhausted_is_503() -> None:
    req = FakeRequest(b"[" + b"1," * 500 + b"1]", content_type=JSON, chunk=100, budget_bytes=300)
    with pytest.raises(BudgetExceeded) as info:
        await run(bp.json(), req)
    assert info.value.status == 503
    assert req.reserved <= 300


# ----------------------------------------------------------------------- content coding


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


PAYLOAD = b'{"firmware": "' + b"v1.2.3-" * 500 + b'"}'
ENCODINGS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("GZIP", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", _deflate_raw),
    ("identity", lambda b: b),
]


@pytest.mark.parametrize(("encoding", "compress"), ENCODINGS)
@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_json_content_encodings(
    encoding: str, compress: Callable[[bytes], bytes], chunk: int | None
) -> None:
    req = FakeRequest(
        compress(PAYLOAD), content_type=JSON, chunk=chunk, headers={"Content-Encoding": encoding}
    )
    await run(bp.json(), req)
    assert req.body == {"firmware": "v1.2.3-" * 500}
    assert req.peak == len(PAYLOAD)  # decoded bytes are what is charged


async def test_gzip_concatenated_members() -> None:
    data = gzip.compress(b"hello ") + gzip.compress(b"world")
    req = FakeRequest(
        data, content_type="text/plain", chunk=5, headers={"content-encoding": "gzip"}
    )
    await run(bp.text(), req)
    assert req.body == "hello world"


ZEROS = 10 * 1024 * 1024


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("chunk", [1024, 1 << 20])
async def test_zip_bomb_is_413_with_bounded_memory(encoding: str, chunk: int) -> None:
    bomb = gzip.compress(bytes(ZEROS)) if encoding == "gzip" else zlib.compress(bytes(ZEROS), 9)
    assert len(bomb) < 20_000
    req = FakeRequest(bomb, content_type="application/octet-stream", chunk=chunk)
    req.headers["content-encoding"] = encoding
    with pytest.raises(BodyTooLarge, match="limit 102400 bytes"):
        await run(bp.raw(), req)
    assert req.peak <= 102_400
    if chunk < len(bomb):
        assert req.pulled < len(bomb)  # stopped reading soon after the limit


async def test_decoded_chunks_bounds_each_allocation() -> None:
    bomb = gzip.compress(bytes(ZEROS))
    req = FakeRequest(bomb, content_type="application/octet-stream")
    req.headers["content-encoding"] = "gzip"
    sizes: list[int] = []
    with pytest.raises(BodyTooLarge):
        async for chunk in bp.decoded_chunks(req, 300_000):
            sizes.append(len(chunk))
    assert max(sizes) <= 64 * 1024
    assert sum(sizes) <= 300_000


@pytest.mark.parametrize("encoding", ["br", "compress", "gzip, identity", "zstd"])
async def test_unknown_encoding_is_415(encoding: str) -> None:
    req = FakeRequest(b"[1]", content_type=JSON, headers={"content-encoding": encoding})
    with pytest.raises(UnsupportedMediaType) as info:
        await run(bp.json(), req)
    assert info.value.message == f'unsupported content encoding "{encoding}"'


async def test_inflate_false_refuses_gzip() -> None:
    req = FakeRequest(
        gzip.compress(b"[1]"), content_type=JSON, headers={"content-encoding": "gzip"}
    )
    with pytest.raises(UnsupportedMediaType, match="content encoding unsupported"):
        await run(bp.json(inflate=False), req)


@pytest.mark.parametrize(
    ("encoding", "data", "match"),
    [
        ("gzip", gzip.compress(PAYLOAD)[:-9], "truncated gzip body"),
        ("gzip", gzip.compress(PAYLOAD)[:5], "truncated gzip body"),
        ("gzip", b"", "truncated gzip body"),
        ("deflate", b"", "truncated deflate body"),
        ("deflate", b"x", "truncated deflate body"),
        ("gzip", b"not gzip at all", "invalid gzip body"),
        ("gzip", gzip.compress(PAYLOAD) + b"trailing", "invalid gzip body"),
        ("deflate", zlib.compress(PAYLOAD) + b"trailing", "unexpected data after"),
        ("deflate", zlib.compress(PAYLOAD)[:-3], "truncated deflate body"),
    ],
)
async def test_corrupt_or_truncated_encoding_is_400(encoding: str, data: bytes, match: str) -> None:
    req = FakeRequest(data, content_type=JSON, chunk=3, headers={"content-encoding": encoding})
    with pytest.raises(BadRequest, match=match) as info:
        await run(bp.json(), req)
    assert info.value.status == 400


async def test_compressed_raw_bytes_bounded_by_mode_limit() -> None:
    data = gzip.compress(b"") * 2000  # 40 kB of empty members decoding to nothing
    req = FakeRequest(data, content_type="text/plain", max_body_bytes=10_000, chunk=1000)
    req.headers["content-encoding"] = "gzip"
    with pytest.raises(BodyTooLarge):
        await run(bp.text(), req)


# ------------------------------------------------------------------------ urlencoded

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_urlencoded_simple_semantics(chunk: int | None) -> None:
    body = b"a=1&b=2&a=3&user[name]=tj&q=tobi+ferret&e=%C3%A9%20x&flag&&=v&bad=%zz&u=%FF"
    req = FakeRequest(body, content_type=FORM, chunk=chunk)
    await run(bp.urlencoded(), req)
    assert req.body == {
        "a": ["1", "3"],
        "b": "2",
        "user[name]": "tj",
        "q": "tobi ferret",
        "e": "é x",
        "flag": "",
        "": "v",
        "bad": "%zz",
        "u": "\ufffd",
    }


async def test_urlencoded_parameter_limit() -> None:
    ok = b"&".join(b"k%d=v" % i for i in range(1000))
    req = FakeRequest(ok, content_type=FORM)
    await run(bp.urlencoded(), req)
    assert len(req.body) == 1000
    too_many = ok + b"&x=1"
    with pytest.raises(PayloadTooLarge) as info:
        await run(bp.urlencoded(), FakeRequest(too_many, content_type=FORM))
    assert info.value.status == 413 and "too many parameters" in info.value.message
    with pytest.raises(PayloadTooLarge, match="too many parameters"):
        await run(bp.urlencoded(parameter_limit=2), FakeRequest(b"a=1&b=2&c=3", content_type=FORM))


async def test_urlencoded_charsets() -> None:
    req = FakeRequest(b"n=%E9t%E9", content_type=FORM + "; charset=ISO-8859-1")
    await run(bp.urlencoded(), req)
    assert req.body == {"n": "été"}
    with pytest.raises(UnsupportedMediaType, match='unsupported charset "UTF-16"'):
        await run(bp.urlencoded(), FakeRequest(b"a=1", content_type=FORM + "; charset=utf-16"))
    with pytest.raises(BadRequest, match="invalid utf-8"):
        await run(bp.urlencoded(), FakeRequest(b"a=\xff", content_type=FORM))
    with pytest.raises(ValueError):
        bp.urlencoded(default_charset="koi8-r")


async def test_urlencoded_empty_body() -> None:
    req = FakeRequest(b"", content_type=FORM)
    await run(bp.urlencoded(), req)
    assert req.body == {} and req.body_parsed


# ------------------------------------------------------------------------- text / raw


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_text_default_utf8(chunk: int | None) -> None:
    req = FakeRequest("héllo wörld".encode(), content_type="text/plain", chunk=chunk)
    await run(bp.text(), req)
    assert req.body == "héllo wörld"


async def test_text_charset_param_and_bom() -> None:
    req = FakeRequest("été".encode("latin-1"), content_type="text/plain; charset=ISO-8859-1")
    await run(bp.text(), req)
    assert req.body == "été"
    req = FakeRequest(b"\xef\xbb\xbfhi", content_type="text/plain")
    await run(bp.text(), req)
    assert req.body == "hi"
    req = FakeRequest("hi".encode("utf-16"), content_type="text/plain; charset=utf-16")
    await run(bp.text(), req)
    assert req.body == "hi"


@pytest.mark.parametrize("charset", ["x-unknown", "rot13", "zlib", "unicode_escape", "idna"])
async def test_text_unknown_charset_is_415(charset: str) -> None:
    req = FakeRequest(b"hi", content_type=f"text/plain; charset={charset}")
    with pytest.raises(UnsupportedMediaType) as info:
        await run(bp.text(), req)
    assert info.value.message == f'unsupported charset "{charset.upper()}"'


async def test_text_undecodable_is_400() -> None:
    with pytest.raises(BadRequest, match="invalid utf-8"):
        await run(bp.text(), FakeRequest(b"ok \xc3\x28", content_type="text/plain"))


async def test_text_other_type_and_empty() -> None:
    req = FakeRequest(b"", content_type="text/plain")
    await run(bp.text(), req)
    assert req.body == ""
    req = FakeRequest(b"<p>", content_type="text/html")
    await run(bp.text(), req)
    assert req.body == {}
    await run(bp.text(type="text/*"), req)
    assert req.body == "<p>"


@pytest.mark.parametrize("chunk", [None, 1, 7])
async def test_raw_bytes(chunk: int | None) -> None:
    data = bytes(range(256)) * 4
    req = FakeRequest(data, content_type="application/octet-stream", chunk=chunk)
    await run(bp.raw(), req)
    assert req.body == data and isinstance(req.body, bytes)


async def test_raw_limit_string() -> None:
    req = FakeRequest(bytes(2048), content_type="application/octet-stream")
    with pytest.raises(BodyTooLarge, match="limit 1024 bytes"):
        await run(bp.raw(limit="1kb"), req)


def test_errors_are_http_errors() -> None:
    for cls in (BadRequest, BodyTooLarge, PayloadTooLarge, UnsupportedMediaType):
        assert issubclass(cls, HTTPError)


# ------------------------------------------------------------------ property: any split


def _random_split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return [c for c in out if c] or [b""]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids),
        max_leaves=20,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    encoding=st.sampled_from(["identity", "gzip", "deflate"]),
)
def test_property_json_any_split_any_encoding(value: Any, cuts: list[int], encoding: str) -> None:
    import json as stdjson

    doc = {"v": value}
    data = stdjson.dumps(doc).encode()
    if encoding == "gzip":
        data = gzip.compress(data)
    elif encoding == "deflate":
        data = zlib.compress(data)
    req = FakeRequest(
        _random_split(data, cuts), content_type=JSON, headers={"content-encoding": encoding}
    )
    trio.run(run, bp.json(), req)
    assert req.body == doc
