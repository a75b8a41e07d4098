# Tests for gateway.app.negotiation: media-type parsing, req.is() (type-is), req.accepts()
# (accepts + negotiator), req.xhr and Sails' wantsJSON truth table. Tables use the examples of
# the Express docs and of the type-is / negotiator READMEs.
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.app.negotiation import (
    accepts,
    accepts_charsets,
    accepts_encodings,
    accepts_languages,
    accepts_list,
    charset_of,
    has_body,
    is_xhr,
    parse_media_type,
    type_is,
    wants_json,
)

# -- parse_media_type / charset_of ----------------------------------------------------------


def test_parse_media_type() -> None:
    assert parse_media_type("text/html") == ("text/html", {})
    assert parse_media_type('Text/HTML; Charset="UTF-8"') == ("text/html", {"charset": "UTF-8"})
    assert parse_media_type("application/json ; charset=utf-8 ; foo=bar") == (
        "application/json",
        {"charset": "utf-8", "foo": "bar"},
    )
    assert parse_media_type('a/b; x="q\\"uo;te"') == ("a/b", {"x": 'q"uo;te'})
    assert parse_media_type("a/b; junk; y=1") == ("a/b", {"y": "1"})  # junk skipped


@pytest.mark.parametrize("bad", ["", "text", "text/", "/html", "text/html/x", "te xt/html"])
def test_parse_media_type_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_media_type(bad)


@pytest.mark.parametrize(
    ("value", "charset"),
    [
        (None, None),
        ("", None),
        ("text/plain", None),
        ("text/plain; charset=UTF-8", "utf-8"),
        ('text/plain; charset="ISO-8859-1"', "iso-8859-1"),
        ("bogus; charset=utf-8", None),
    ],
)
def test_charset_of(value: str | None, charset: str | None) -> None:
    assert charset_of(value) == charset


# -- type_is (req.is) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "types", "expected"),
    [
        # Express docs: Content-Type: text/html; charset=utf-8
        ("text/html; charset=utf-8", ("html",), "html"),
        ("text/html; charset=utf-8", ("text/html",), "text/html"),
        # type-is returns the actual type for wildcards (Express's docs show 'text/*')
        ("text/html; charset=utf-8", ("text/*",), "text/html"),
        # Express docs: Content-Type: application/json
        ("application/json", ("json",), "json"),
        ("application/json", ("application/json",), "application/json"),
        ("application/json", ("application/*",), "application/json"),
        ("application/json", ("html",), False),
        # type-is README
        ("application/json", ("html", "json"), "json"),
        ("application/json", ("*/*",), "application/json"),
        ("application/json", ("+json",), False),  # the suffix needs something before it
        ("application/vnd.api+json", ("json",), False),
        ("application/vnd.api+json", ("+json",), "application/vnd.api+json"),
        ("application/vnd.api+json", ("application/*+json",), "application/vnd.api+json"),
        ("application/vnd.api+json", ("text/*+json",), False),
        ("application/json", ("*+json",), False),  # not type/subtype
        ("application/x-www-form-urlencoded", ("urlencoded",), "urlencoded"),
        ("application/x-www-form-urlencoded", ("form",), "form"),
        ("multipart/form-data; boundary=xyz", ("multipart",), "multipart"),
        ("multipart/form-data; boundary=xyz", ("multipart/*",), "multipart/form-data"),
        ("text/plain", ("txt",), "txt"),
        ("text/plain", ("text",), "text"),
        ("image/jpeg", ("png", "jpg"), "jpg"),
        ("application/octet-stream", ("bin",), "bin"),
        ("text/javascript", ("js",), "js"),
        ("text/css", ("css",), "css"),
        ("application/xml", ("xml",), "xml"),
        ("application/json", (".json",), ".json"),  # mime lookup forms
        ("application/json", ("JSON",), "JSON"),
        ("Application/JSON; Charset=UTF-8", ("json",), "json"),
        ("application/json", ("nosuchext",), False),
        ("application/json", (), "application/json"),  # no types: the type itself
        ("Text/HTML; x=y", (), "text/html"),
        ("garbage", ("json",), False),
        ("text/", ("text/*",), False),
        # type-is 2.1: full types and patterns are compared as written with the lower-cased
        # Content-Type; names of its own ("urlencoded") only in lower case; extensions any case
        ("text/html", ("TEXT/HTML",), False),
        (
            "application/x-www-form-urlencoded",
            ("URLENCODED", "*/*"),
            "application/x-www-form-urlencoded",
        ),
        ("application/vnd.api+json", ("+JSON",), False),
        # media-typer's test: no "*" and no "." in the type of a request's Content-Type
        ("text/*", ("text/*",), False),
        ("text/*", (), False),
        ("x.y/plain", (), False),
        ("\ttext/plain ; charset=utf-8", (), "text/plain"),
    ],
)
def test_type_is(content_type: str, types: tuple[str, ...], expected: object) -> None:
    assert type_is(content_type, *types) == expected


def test_type_is_without_body_or_type() -> None:
    assert type_is(None, "json") is None
    assert type_is("", "json") is None
    assert type_is("application/json", "json", has_body=False) is None
    assert type_is(None, "json", has_body=True) is False  # a body but no type: Express's false
    assert type_is("application/json", "json", has_body=True) == "json"


# -- accepts (req.accepts) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "types", "expected"),
    [
        # Express docs
        ("text/html", ("html",), "html"),
        ("text/*, application/json", ("html",), "html"),
        ("text/*, application/json", ("text/html",), "text/html"),
        ("text/*, application/json", ("json", "text"), "json"),
        ("text/*, application/json", ("application/json",), "application/json"),
        ("text/*, application/json", ("image/png",), False),
        ("text/*, application/json", ("png",), False),
        ("text/*;q=.5, application/json", ("html", "json"), "json"),
        # no header: the first offer
        (None, ("json", "html"), "json"),
        ("", ("html", "json"), "html"),
        # ties go to the order of the offers
        ("*/*", ("json", "html"), "json"),
        ("*/*", ("html", "json"), "html"),
        ("application/json, text/html", ("html", "json"), "json"),  # Accept order first
        # q-values
        ("text/html;q=0.5, application/json;q=0.9", ("html", "json"), "json"),
        ("application/json;q=0, */*", ("json", "html"), "html"),
        ("application/json;q=0", ("json",), False),
        ("*/*;q=0.1, text/html", ("json", "html"), "html"),
        # specificity beats order of the Accept entries
        ("text/*;q=0.5, text/html;q=0.8", ("text/plain", "text/html"), "text/html"),
        ("text/html;q=0.1, */*", ("html",), "html"),  # the exact entry rules, even lower
        ("text/html;q=0, text/*", ("html", "text"), "text"),
        # parameters must match when the Accept entry names them
        ("text/html;level=1", ("text/html",), False),
        ("text/html;level=1", ("text/html;level=1",), "text/html;level=1"),
        ("text/html;level=1;q=0.5, */*;q=0.1", ("text/html;level=1",), "text/html;level=1"),
        ("text/html;LEVEL=1", ("text/html; level=1",), "text/html; level=1"),
        # case and odd input
        ("TEXT/HTML", ("html",), "html"),
        ("application/json", ("JSON",), "JSON"),
        ("foo, text/html", ("html",), "html"),  # invalid entries ignored
        ('text/html;foo="a,b", application/json', ("json",), "json"),
        ("text/html;q=abc", ("html",), False),  # NaN q: not acceptable
        # negotiator 1.1 (Express 5.3) keeps the parameters after q: they must match too
        ("text/html;q=0.5;level=1", ("html",), False),
        ("text/html;q=0.5;level=1", ("text/html;level=1",), "text/html;level=1"),
        ("text/html;q=", ("html",), "html"),  # an empty q counts as 1
        ("text/html;q=0.5, text/html;q=abc", ("html",), False),  # the later NaN entry wins
        ("text/html;q=0.1;q=0.9", ("html",), "html"),  # the first q counts
        ("image/*", ("nosuchext", "png"), "png"),
    ],
)
def test_accepts(accept: str | None, types: tuple[str, ...], expected: str | bool) -> None:
    assert accepts(accept, *types) == expected


# Express 5.3's req.acceptsCharsets/Encodings/Languages (negotiator 1.1), as Node answers them.
@pytest.mark.parametrize(
    ("header", "offers", "expected"),
    [
        (None, (), ["*"]),
        ("", (), []),
        ("utf-8, iso-8859-1;q=0.5", (), ["utf-8", "iso-8859-1"]),
        ("utf-8, iso-8859-1;q=0.5", ("iso-8859-1", "utf-8"), "utf-8"),
        ("UTF-8;q=0.2, *;q=0.5", ("utf-8", "latin1"), "latin1"),
        ("utf-8;q=0", ("utf-8",), False),
        (None, ("utf-8", "latin1"), "utf-8"),
    ],
)
def test_accepts_charsets(header: str | None, offers: tuple[str, ...], expected: object) -> None:
    assert accepts_charsets(header, *offers) == expected


@pytest.mark.parametrize(
    ("header", "offers", "expected"),
    [
        (None, (), ["identity"]),
        ("", ("gzip",), False),
        ("", ("gzip", "identity"), "identity"),
        ("gzip, br;q=0.2", (), ["gzip", "br", "identity"]),  # identity at the lowest q, last
        ("gzip, br;q=0.2", ("br", "gzip"), "gzip"),
        ("gzip;q=0.5, identity;q=0", ("identity",), False),
        ("*;q=0", ("identity",), False),  # "*" names identity too: nothing is added
        ("gzip;q=0, br", (), ["br", "identity"]),  # q=0 does not lower identity's q
        ("GZIP", ("gzip",), "gzip"),
    ],
)
def test_accepts_encodings(header: str | None, offers: tuple[str, ...], expected: object) -> None:
    assert accepts_encodings(header, *offers) == expected


@pytest.mark.parametrize(
    ("header", "offers", "expected"),
    [
        (None, (), ["*"]),
        ("en-US, de;q=0.7", (), ["en-US", "de"]),
        ("en-US, de;q=0.7", ("en", "de-DE"), "en"),  # the entry's prefix is the offer
        ("en", ("en-GB", "fr"), "en-GB"),  # the offer's prefix is the entry
        ("de-DE, en;q=0.1", ("EN", "de-de"), "de-de"),
        ("fr", ("en", "de"), False),
        ("*, fr;q=0", ("fr", "en"), "en"),
    ],
)
def test_accepts_languages(header: str | None, offers: tuple[str, ...], expected: object) -> None:
    assert accepts_languages(header, *offers) == expected


@pytest.mark.parametrize(
    ("transfer_encoding", "content_length", "expected"),
    [
        (None, None, False),
        ("chunked", None, True),
        (None, "0", True),  # an empty body is a body (type-is hasBody)
        (None, "12", True),
        (None, "", True),  # Number("") is 0
        (None, " 1e3 ", True),
        (None, "0x1f", True),
        (None, "abc", False),
        (None, "1,2", False),
    ],
)
def test_has_body(
    transfer_encoding: str | None, content_length: str | None, expected: bool
) -> None:
    assert has_body(transfer_encoding, content_length) is expected


def test_accepts_needs_types() -> None:
    with pytest.raises(TypeError):
        accepts("text/html")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ["*/*"]),
        ("", []),
        ("text/html", ["text/html"]),
        ("text/*, text/html", ["text/*", "text/html"]),  # by q, then header order
        ("text/html;q=0.5, application/json", ["application/json", "text/html"]),
        ("application/json;q=0, text/html", ["text/html"]),
        ("foo, */*;q=0.1, image/png", ["image/png", "*/*"]),
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ["text/html", "application/xhtml+xml", "application/xml", "*/*"],
        ),
    ],
)
def test_accepts_list(accept: str | None, expected: list[str]) -> None:
    assert accepts_list(accept) == expected


@given(st.text(), st.lists(st.sampled_from(["json", "html", "text/*", "image/png", "x"])))
def test_accepts_never_raises(accept: str, offers: list[str]) -> None:
    if offers:
        result = accepts(accept, *offers)
        assert result is False or result in offers
    assert isinstance(accepts_list(accept), list)


# -- is_xhr / wants_json --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("XMLHttpRequest", True),
        ("xmlhttprequest", True),
        ("XMLHTTPREQUEST", True),
        ("XMLHttpRequest ", False),
        ("fetch", False),
    ],
)
def test_is_xhr(value: str | None, expected: bool) -> None:
    assert is_xhr(value) is expected


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("xhr", "is_socket", "accept", "content_type", "route", "expected"),
    [
        # 1. xhr wins over everything
        (True, False, BROWSER, None, False, True),
        # 2. a socket request always wants JSON
        (False, True, BROWSER, None, False, True),
        # 3. Accept without the substring "html" (or missing) -> JSON
        (False, False, None, None, False, True),
        (False, False, "", None, False, True),
        (False, False, "*/*", None, False, True),
        (False, False, "application/json", None, False, True),
        (False, False, "text/plain", None, False, True),
        (False, False, BROWSER, None, False, False),
        (False, False, "text/html", None, False, False),
        (False, False, "application/xhtml+xml", None, False, False),  # contains "html"
        (False, False, "TEXT/HTML", None, False, True),  # Sails' indexOf is case-sensitive
        # 4. JSON body and an Accept header
        (False, False, BROWSER, "application/json", False, True),
        (False, False, BROWSER, "application/json; charset=utf-8", False, True),
        (False, False, BROWSER, "application/vnd.api+json", False, False),  # req.is('json')
        (False, False, BROWSER, "text/plain", False, False),
        (False, False, BROWSER, "garbage", False, False),
        # 5. the route option
        (False, False, BROWSER, None, True, True),
        (False, False, BROWSER, "text/plain", True, True),
    ],
)
def test_wants_json(
    xhr: bool,
    is_socket: bool,
    accept: str | None,
    content_type: str | None,
    route: bool,
    expected: bool,
) -> None:
    got = wants_json(
        xhr=xhr,
        is_socket=is_socket,
        accept=accept,
        content_type=content_type,
        route_wants_json=route,
    )
    assert got is expected
