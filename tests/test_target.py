# Tests for gateway.http.target: request-target forms and rejections, strict percent-decoding,
# the query parser (node querystring, Express 5 "simple") and the cookie parser (`cookie` npm).
from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ProtocolError
from gateway.http.target import (
    is_authority_form,
    is_valid_host,
    parse_cookies,
    parse_query,
    percent_decode,
    split_target,
)

# -- request-target -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "url", "path", "query", "authority"),
    [
        (b"/", "/", "/", "", None),
        (b"/p", "/p", "/p", "", None),
        (b"/p?", "/p?", "/p", "", None),
        (b"/search?q=tobi+ferret", "/search?q=tobi+ferret", "/search", "q=tobi+ferret", None),
        (b"/a?b?c", "/a?b?c", "/a", "b?c", None),  # only the first '?' splits
        (b"//double//slash", "//double//slash", "//double//slash", "", None),
        (b"/a/../b", "/a/../b", "/a/../b", "", None),  # no dot-segment resolution
        (b"/caf%C3%A9", "/caf%C3%A9", "/caf%C3%A9", "", None),  # nothing decoded
        # a stray fragment stays in url and leaves path and query, as in Express 5
        (b"/a#frag", "/a#frag", "/a", "", None),
        (b"/user/42?x=1#frag", "/user/42?x=1#frag", "/user/42", "x=1", None),
        (b"/a#f?x=1", "/a#f?x=1", "/a", "", None),  # a '?' after the '#' is fragment
        (b"/a?x=1#f#g", "/a?x=1#f#g", "/a", "x=1", None),
        (b"/#", "/#", "/", "", None),
        (b"*", "*", "*", "", None),
        (b"http://example.com:8080/p?q=1", "/p?q=1", "/p", "q=1", "example.com:8080"),
        (b"http://example.com", "/", "/", "", "example.com"),
        (b"HTTPS://Example.com?x=1", "/?x=1", "/", "x=1", "Example.com"),
        (b"http://[::1]:80/x", "/x", "/x", "", "[::1]:80"),
        (b"http://h/p?x=1#f", "/p?x=1#f", "/p", "x=1", "h"),
        (b"http://h#f", "/#f", "/", "", "h"),
    ],
)
def test_target_forms(raw: bytes, url: str, path: str, query: str, authority: str | None) -> None:
    assert split_target(raw) == (url, path, query, authority)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"p",  # not origin-form
        b"user/42",
        b"example.com:443",  # authority-form (CONNECT's)
        b"?x",
        b"#f",
        b"**",
        b"ftp://host/p",
        b"ws://host/p",
        b"http:/host/p",
        b"http:///p",  # empty authority
        b"http://:80/p",  # empty host
        b"http://user@host/p",  # userinfo
        b"http://a b/p",
        b"http://h:x/p",  # port not digits
        b"http://[::g]/p",  # not an IPv6 address
        b"http://[fe80::1%25eth0]/p",  # zone identifiers are not HTTP's
        b"*\x00",
        b"\x7f",
        b"/caf\xc3\xa9",  # raw UTF-8
        b"/\xff",
    ],
)
def test_target_rejected(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        split_target(raw)
    assert info.value.status_hint == 400


def test_authority_form_is_named_in_the_error() -> None:
    with pytest.raises(ProtocolError, match="only for CONNECT"):
        split_target(b"example.com:443")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"a",
        b"localhost:8080",
        b"127.0.0.1",
        b"10.0.0.1:80",
        b"device.local:",
        b"[::1]",
        b"[::1]:8080",
        b"[2001:db8::7]:1",
        b"[::ffff:192.0.2.1]",
        b"[v1.fe:80]",
        b"xn--bcher-kva.de",
        b"a%20b",
        b"a_b~c!$&'()*+,;=",
        b"999.999.999.999",
    ],  # the last one is a valid reg-name
)
def test_valid_host(value: bytes) -> None:
    assert is_valid_host(value)


@pytest.mark.parametrize(
    "value",
    [
        b"a b",
        b"a\tb",
        b"a:b",
        b"a:80:80",
        b"a:-1",
        b"user@h",
        b"h/p",
        b"h?q",
        b"h#f",
        b"[::1",
        b"::1",
        b"[::g]",
        b"[1:2:3:4:5:6:7:8:9]",
        b"[fe80::1%25eth0]",
        b"[v1]",
        b"[vz.x]",
        b"a%2",
        b"a%zz",
        b'"a"',
        b"a\\b",
        b"h\xc3\xa9",
    ],
)
def test_invalid_host(value: bytes) -> None:
    assert not is_valid_host(value)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"example.com:443", True),
        (b"[::1]:443", True),
        (b"10.0.0.1:80", True),
        (b"example.com", False),
        (b"example.com:", False),
        (b":443", False),
        (b"/p", False),
        (b"http://h/", False),
        (b"a b:80", False),
    ],
)
def test_is_authority_form(target: bytes, expected: bool) -> None:
    assert is_authority_form(target) is expected


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
