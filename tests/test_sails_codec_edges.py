# gateway.ws.sails at its edges: the limits at exactly their value (the defaults included),
# header values as JavaScript's String() gives them (false, 1e21), a dropped header that does
# not stop the ones after it, repeated handshake fields, the status range of a JWR, and the
# exact details of each refusal (they reach the client in the parse-error reply).
# Written against the mutants docs/TESTING.md lists.
from __future__ import annotations

from typing import Any

import pytest

from gateway.ws.sails import (
    SailsParseError,
    body_from_http,
    handshake_fields,
    jwr,
    merge_headers,
    parse_virtual_request,
)


def msg(**kw: Any) -> dict[str, Any]:
    return {"method": "post", "headers": {}, "data": {}, "url": "/x", **kw}


def refusal(event: str, args: list[Any], **limits: int) -> SailsParseError:
    with pytest.raises(SailsParseError) as info:
        parse_virtual_request(event, args, 7, **limits)
    return info.value


def test_the_default_limits_are_100_headers_and_8192_url_characters() -> None:
    headers = {f"x-{i}": "v" for i in range(100)}
    assert len(parse_virtual_request("get", [msg(headers=headers)], 1).headers) == 100
    err = refusal("get", [msg(headers={**headers, "x-100": "v"})])
    assert (err.details, err.status_hint) == ("more than 100 headers", 431)
    url = "/" + "a" * 8191
    assert parse_virtual_request("get", [msg(url=url)], 1).url == url
    err = refusal("get", [msg(url=url + "a")])
    assert (err.details, err.status_hint) == ("url longer than 8192 characters", 414)


def test_limits_given_are_inclusive() -> None:
    assert parse_virtual_request("get", [msg(headers={"a": "1", "b": "2"})], 1, max_headers=2)
    assert parse_virtual_request("get", [msg(url="/abc")], 1, max_url_chars=4)
    assert refusal("get", [msg(url="/abcd")], max_url_chars=4).details == (
        "url longer than 4 characters"
    )


def test_header_values_are_javascript_strings() -> None:
    headers = {"x-t": True, "x-f": False, "x-big": 1e21, "x-under": 1e20, "x-neg": -1e21}
    assert parse_virtual_request("get", [msg(headers=headers)], None).headers == {
        "x-t": "true",
        "x-f": "false",
        "x-big": "1e+21",  # String(1e21): exponent notation from 1e21 on
        "x-under": "100000000000000000000",
        "x-neg": "-1e+21",
    }


def test_a_dropped_header_value_does_not_drop_the_ones_after_it() -> None:
    headers = {"x-null": None, "x-obj": {"a": 1}, "x-after": "kept"}
    assert parse_virtual_request("get", [msg(headers=headers)], None).headers == {"x-after": "kept"}


@pytest.mark.parametrize(
    ("event", "args", "details"),
    [
        ("connect", [msg()], "'connect' is not a virtual request event"),
        (
            "get",
            [msg(url=["/" + "a" * 80])],
            'Invalid url provided: ["/' + "a" * 57,
        ),  # 60 characters of JSON
        ("get", [msg(data="ab")], "data must be an object or an array"),
        ("get", [msg(headers={"x" * 50 + " ": "v"})], f"invalid header name {'x' * 40!r}"),
    ],
)
def test_refusal_details(event: str, args: list[Any], details: str) -> None:
    assert refusal(event, args).details == details


def test_repeated_handshake_fields_join_as_node_does() -> None:
    pairs = [("Origin", "http://a"), ("origin", "http://b"), ("cookie", "a=1"), ("Cookie", "b=2")]
    assert handshake_fields(pairs) == {"origin": "http://a, http://b", "cookie": "a=1; b=2"}
    assert merge_headers({}, pairs)["origin"] == "http://a, http://b"


def test_jwr_status_range_is_100_to_599() -> None:
    assert jwr(100)["statusCode"] == 100
    assert jwr(599)["statusCode"] == 599
    for bad in (99, 600):
        with pytest.raises(ValueError, match=rf"^bad status {bad}$"):
            jwr(bad)


def test_body_from_http_replaces_bytes_that_are_not_utf8() -> None:
    assert body_from_http("text/plain", b"ok \xff") == "ok \ufffd"
    assert body_from_http(None, "é".encode() + b"\xc3") == "é\ufffd"
