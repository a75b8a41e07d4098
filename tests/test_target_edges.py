# gateway.http.target at its edges: what each refused request-target says (the text of the
# 400), the forms at their smallest (a one-character host, a one-digit port, a cookie header of
# two characters), a second '#', maxKeys of 1, a charset other than UTF-8, and which characters
# the cookie parser trims (space and tab only, as the `cookie` package).
# Written against the mutants docs/TESTING.md lists.
from __future__ import annotations

import pytest

from gateway.errors import ProtocolError
from gateway.http.target import (
    is_authority_form,
    parse_cookies,
    parse_query,
    percent_decode,
    split_target,
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty request-target"),
        (b"/caf\xc3\xa9", "request-target contains a byte outside visible ASCII"),
        (b"http://h/\xff", "request-target contains a byte outside visible ASCII"),
        (b"a:80", "authority-form request-target (host:port) is only for CONNECT"),
        (b"h:8", "authority-form request-target (host:port) is only for CONNECT"),
        (
            b"?x",
            "request-target must be origin-form (/path), absolute-form (http://host/path) "
            "or * (OPTIONS only)",
        ),
        (b"ftp://h/p", "unsupported scheme in request-target: 'ftp'"),
        (b"http:///p", "absolute-form request-target has an empty authority"),
        (b"http://user@host/p", "request-target authority must not carry userinfo"),
        (b"http://h:x/p", "malformed authority in request-target"),
        (b"http://:80/p", "malformed authority in request-target"),
    ],
)
def test_each_refused_target_says_why(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        split_target(raw)
    assert info.value.message == message


def test_the_smallest_authority_form_is_recognised() -> None:
    assert is_authority_form(b"a:80")  # a one-character host
    assert is_authority_form(b"h:8")  # a one-digit port
    assert not is_authority_form(b"h:")
    assert not is_authority_form(b":80")


def test_an_absolute_form_fragment_starts_at_the_first_hash() -> None:
    assert split_target(b"http://h/a#b#c?d") == ("/a#b#c?d", "/a", "", "h")


def test_a_malformed_escape_is_located() -> None:
    with pytest.raises(ValueError, match=r"^malformed percent-escape at index 4$"):
        percent_decode("a%20%zz")


def test_max_keys_of_one_keeps_one_piece() -> None:
    assert parse_query("a=1&b=2", max_keys=1) == {"a": "1"}


def test_the_charset_decodes_keys_and_values() -> None:
    # a urlencoded body declared ISO-8859-1: %E9 is é, not an invalid UTF-8 byte
    assert parse_query("caf%E9=%E9t%E9", encoding="latin-1") == {"café": "été"}
    assert parse_query("caf%E9=%E9t%E9") == {"caf\ufffd": "\ufffdt\ufffd"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=", {"a": ""}),  # two characters: the shortest header with a pair
        ("=", {}),  # one character: nothing, as the package
        ("a", {}),
        ("a=1; a=2; b=3", {"a": "1", "b": "3"}),  # the first wins, and the rest still count
        (" \ta\t = \t1 \t", {"a": "1"}),
        # only space and tab are trimmed: not NBSP (an obs-text byte read as latin-1), not X
        ("\xa0a\xa0=\xa0v\xa0", {"\xa0a\xa0": "\xa0v\xa0"}),
        ("XaX=XvX", {"XaX": "XvX"}),
    ],
)
def test_cookie_edges(header: str, expected: dict[str, str]) -> None:
    assert parse_cookies(header) == expected
