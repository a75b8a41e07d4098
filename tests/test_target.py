# Tests for gateway.http.target: request-target forms and rejections, strict percent-decoding,
# the query parser (node querystring, Express 5 "simple") and the cookie parser (`cookie` npm).
from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ProtocolError
from gateway.http.target import (
    Target,
    parse_cookies,
    parse_query,
    parse_target,
    percent_decode,
    split_target,
)

# -- request-target -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "query", "authority"),
    [
        (b"/", "/", "", None),
        (b"/p", "/p", "", None),
        (b"/p?", "/p", "", None),
        (b"/search?q=tobi+ferret", "/search", "q=tobi+ferret", None),
        (b"/a?b?c", "/a", "b?c", None),  # only the first '?' splits
        (b"//double//slash", "//double//slash", "", None),
        (b"/a/../b", "/a/../b", "", None),  # no dot-segment resolution
        (b"/caf%C3%A9", "/caf%C3%A9", "", None),  # nothing decoded
        (b"/a#frag", "/a", "", None),  # a stray fragment is dropped
        (b"/a?x=1#frag", "/a", "x=1", None),
        (b"*", "*", "", None),
        (b"http://example.com:8080/p?q=1", "/p", "q=1", "example.com:8080"),
        (b"http://example.com", "/", "", "example.com"),
        (b"HTTPS://Example.com?x=1", "/", "x=1", "Example.com"),
        (b"http://[::1]:80/x", "/x", "", "[::1]:80"),
    ],
)
def test_target_forms(raw: bytes, path: str, query: str, authority: str | None) -> None:
    t = parse_target(raw)
    assert t == Target(path, query, authority, raw.decode())
    assert split_target(raw) == (path, query)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"p",  # not origin-form
        b"example.com:443",  # authority-form (CONNECT): not ours
        b"?x",
        b"**",
        b"ftp://host/p",
        b"ws://host/p",
        b"http:/host/p",
        b"http:///p",  # empty authority
        b"http://user@host/p",  # userinfo
        b"/a b",
        b"/a\tb",
        b"/a\x00",
        b"/a\r\n",
        b"/\x7f",
        b"/caf\xc3\xa9",  # raw UTF-8
        b"/\xff",
    ],
)
def test_target_rejected(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_target(raw)
    assert info.value.status_hint == 400


def test_target_is_frozen() -> None:
    t = parse_target(b"/x")
    with pytest.raises(AttributeError):
        t.path = "/y"  # type: ignore[misc]


# -- percent_decode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("plain", "plain"),
        ("", ""),
        ("caf%C3%A9", "café"),
        ("caf%c3%a9", "café"),
        ("a%2Fb", "a/b"),
        ("a+b", "a+b"),
        ("%25", "%"),
        ("%2525", "%25"),
        ("%F0%9F%98%80", "\U0001f600"),
        ("café%20x", "café x"),  # non-ASCII text passes through
    ],
)
def test_percent_decode(raw: str, decoded: str) -> None:
    assert percent_decode(raw) == decoded


@pytest.mark.parametrize(
    "raw", ["%", "%4", "%zz", "a%g1", "%E0%A4", "%C0%AF", "%ED%A0%80", "%FF", "%%41"]
)
def test_percent_decode_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        percent_decode(raw)


@given(st.text())
def test_percent_decode_inverts_quote(text: str) -> None:
    assert percent_decode(quote(text, safe="")) == text


# -- parse_query ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        ("q=tobi+ferret", {"q": "tobi ferret"}),  # the EdgerOS / Express doc example
        ("", {}),
        ("a=1", {"a": "1"}),
        ("a=1&a=2&a=3", {"a": ["1", "2", "3"]}),
        ("a=1&b=2&a=3", {"a": ["1", "3"], "b": "2"}),
        ("user[name]=tj", {"user[name]": "tj"}),  # flat: no nesting in the simple parser
        ("a[]=1&a[]=2", {"a[]": ["1", "2"]}),
        ("a%5Bb%5D=1", {"a[b]": "1"}),
        ("a", {"a": ""}),
        ("a=", {"a": ""}),
        ("a&b", {"a": "", "b": ""}),
        ("=", {"": ""}),
        ("=x", {"": "x"}),
        ("&&", {}),
        ("&a=1&&b=2&", {"a": "1", "b": "2"}),
        ("a=b=c", {"a": "b=c"}),
        ("a+b=c+d", {"a b": "c d"}),
        ("a=%2B", {"a": "+"}),
        ("a=%20", {"a": " "}),
        ("a=%zz", {"a": "%zz"}),  # bad escapes stay as sent
        ("a=%", {"a": "%"}),
        ("a=%41%zz", {"a": "A%zz"}),  # valid ones around them still decode
        ("%zz=1", {"%zz": "1"}),
        ("a=caf%C3%A9", {"a": "café"}),
        ("a=%E0%A4", {"a": "\ufffd"}),  # invalid UTF-8 -> U+FFFD, as node's Buffer does
        ("a=%E9t%E9", {"a": "\ufffdt\ufffd"}),
        ("a=1;b=2", {"a": "1;b=2"}),  # ';' is not a separator
        ("__proto__=x", {"__proto__": "x"}),
    ],
)
def test_parse_query(qs: str, expected: dict[str, object]) -> None:
    assert parse_query(qs) == expected


def test_parse_query_repeated_values_keep_order() -> None:
    assert parse_query("k=3&k=1&k=2")["k"] == ["3", "1", "2"]


def test_parse_query_max_keys() -> None:
    assert parse_query("a=1&b=2&c=3", max_keys=2) == {"a": "1", "b": "2"}
    assert parse_query("a=1&b=2&c=3", max_keys=3) == {"a": "1", "b": "2", "c": "3"}
    assert parse_query("&&a=1", max_keys=2) == {}  # node counts the empty pieces too
    assert parse_query("a=1&" * 1500) == {"a": ["1"] * 1000}  # default 1000
    assert len(parse_query("&".join(f"k{i}=v" for i in range(3000)), max_keys=0)) == 3000


@given(st.text())
def test_parse_query_never_raises(qs: str) -> None:
    result = parse_query(qs)
    for key, value in result.items():
        assert isinstance(key, str)
        assert isinstance(value, str | list)


@given(st.dictionaries(st.text(), st.text(), max_size=10))
def test_parse_query_round_trips_urlencode(data: dict[str, str]) -> None:
    from urllib.parse import urlencode

    qs = urlencode(data)
    expected = {k: v for k, v in data.items() if k or v}  # "=" alone is an empty piece
    got = parse_query(qs)
    assert {k: v for k, v in got.items() if k or v} == expected


# -- parse_cookies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, {}),
        ("", {}),
        ("a", {}),
        ("=", {}),  # too short to hold a cookie (the `cookie` package's length check)
        ("name=tj", {"name": "tj"}),  # the EdgerOS doc example
        ("foo=bar; equation=E%3Dmc%5E2", {"foo": "bar", "equation": "E=mc^2"}),
        ("FOO    = bar;   baz  =   raz", {"FOO": "bar", "baz": "raz"}),
        ("\tfoo\t=\tbar\t", {"foo": "bar"}),
        ('foo="bar=123456789&name=Magic+Mouse"', {"foo": "bar=123456789&name=Magic+Mouse"}),
        ('foo=" bar "', {"foo": " bar "}),  # trimmed before unquoting, not after
        ('foo="bar', {"foo": '"bar'}),  # unbalanced quotes stay
        ('foo="', {"foo": ""}),
        ("foo=%1;bar=bar", {"foo": "%1", "bar": "bar"}),  # undecodable: kept as sent
        ("foo=%zz", {"foo": "%zz"}),
        ("foo=%E0%A4", {"foo": "%E0%A4"}),
        ("foo=bar;foo=boo", {"foo": "bar"}),  # first one wins
        ("foo=false;bar=bar;foo=true", {"foo": "false", "bar": "bar"}),
        ("foo; bar=1", {"bar": "1"}),  # pieces without '=' skipped
        ("foo;bar=1;baz", {"bar": "1"}),
        ("a=b=c", {"a": "b=c"}),
        ("=x; y=1", {"": "x", "y": "1"}),
        ("a=; b=2", {"a": "", "b": "2"}),
        ("a=1;;b=2", {"a": "1", "b": "2"}),
        ("a=+", {"a": "+"}),  # no '+' to space for cookies
    ],
)
def test_parse_cookies(header: str | None, expected: dict[str, str]) -> None:
    assert parse_cookies(header) == expected


@given(st.text())
def test_parse_cookies_never_raises(header: str) -> None:
    assert isinstance(parse_cookies(header), dict)
