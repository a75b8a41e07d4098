# Sans-IO tests of gateway.ws.sails: virtual request parsing (sails-hook-sockets rules and our
# stricter checks), header merging, JWR building and parse-error replies. Payloads are the
# ones sails.io.js 1.2.1 puts on the wire.
from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ProtocolError
from gateway.ws.engineio import SIOType, decode_sio, encode_sio
from gateway.ws.sails import (
    NO_BODY,
    NOT_FOUND,
    PARSE_ERROR_EVENT,
    SailsParseError,
    VirtualRequest,
    body_from_http,
    handshake_fields,
    is_virtual_request,
    jwr,
    merge_headers,
    parse_error_payload,
    parse_error_reply,
    parse_virtual_request,
    status_jwr,
)

# What io.socket.get('/user/3', cb) sends (after the event name).
GET_USER = {"method": "get", "headers": {}, "data": {}, "url": "/user/3"}


def msg(**kw: Any) -> dict[str, Any]:
    return {"method": "post", "headers": {}, "data": {}, "url": "/x", **kw}


# -- parse_virtual_request ---------------------------------------------------------------------


def test_parse_stock_get() -> None:
    assert parse_virtual_request("get", [GET_USER], 0) == VirtualRequest(
        "GET", "/user/3", {}, {}, 0
    )


@pytest.mark.parametrize("name", ["get", "post", "put", "patch", "delete", "options", "head"])
def test_every_method_event(name: str) -> None:
    assert is_virtual_request(name)
    assert parse_virtual_request(name, [msg()], None).method == name.upper()


def test_event_name_wins_over_payload_method() -> None:
    assert parse_virtual_request("delete", [msg(method="get")], 3).method == "DELETE"


def test_not_a_virtual_request_event() -> None:
    assert not is_virtual_request("message")
    assert not is_virtual_request("GET")
    with pytest.raises(SailsParseError):
        parse_virtual_request("message", [msg()], None)


@pytest.mark.parametrize(
    ("data", "params", "body"),
    [
        ({"a": 1}, None, {"a": 1}),
        ([1, 2], None, [1, 2]),
        ([1, 2], {"p": 1}, [1, 2]),  # an array body ignores params
        ({"a": 1, "p": 9}, {"p": 1, "q": 2}, {"p": 9, "q": 2, "a": 1}),  # data over params
        (None, {"p": 1}, {"p": 1}),
        (None, None, {}),
        (False, None, {}),
        (0, None, {}),
        ("", None, {}),
    ],
)
def test_body_rules(data: Any, params: Any, body: Any) -> None:
    message = msg(data=data)
    if params is not None:
        message["params"] = params
    assert parse_virtual_request("post", [message], 1).data == body


def test_missing_data_key_is_empty_object() -> None:
    assert parse_virtual_request("get", [{"url": "/a"}], None).data == {}


@pytest.mark.parametrize("data", ["text", 5, True])
def test_truthy_scalar_data_is_rejected(data: Any) -> None:
    with pytest.raises(SailsParseError, match="data must be"):
        parse_virtual_request("post", [msg(data=data)], 1)


@pytest.mark.parametrize(
    ("args", "details"),
    [
        ([], "No url provided in request: the message is not an object"),
        (["/user/3"], "No url provided in request: the message is not an object"),
        ([[GET_USER]], "No url provided in request: the message is not an object"),
        ([{"method": "get"}], "No url provided in request"),
        ([msg(url="")], "No url provided in request"),
        ([msg(url=None)], "No url provided in request"),
        ([msg(url=5)], "Invalid url provided: 5"),
        ([msg(url=["/a"])], 'Invalid url provided: ["/a"]'),
        ([msg(url="/a\r\nX: y")], "Invalid url provided: control character"),
        ([msg(headers="x")], "headers must be an object"),
        ([msg(headers={"bad name": "x"})], "invalid header name 'bad name'"),
        ([msg(headers={"x-a": "1\r\nSet-Cookie: a=b"})], "control character in header 'x-a'"),
        ([msg(headers={"x-a": "a\x00"})], "control character in header 'x-a'"),
    ],
)
def test_parse_errors(args: list[Any], details: str) -> None:
    with pytest.raises(SailsParseError) as info:
        parse_virtual_request("get", args, 7)
    assert info.value.details == details
    assert info.value.status_hint == 400
    assert isinstance(info.value, ProtocolError)


def test_limits_have_their_own_status() -> None:
    with pytest.raises(SailsParseError) as info:
        parse_virtual_request("get", [msg(url="/" + "a" * 20)], 1, max_url_chars=10)
    assert info.value.status_hint == 414
    headers = {f"x-{i}": "v" for i in range(4)}
    with pytest.raises(SailsParseError) as info:
        parse_virtual_request("get", [msg(headers=headers)], 1, max_headers=3)
    assert info.value.status_hint == 431


def test_headers_lower_cased_and_coerced() -> None:
    headers = {
        "X-Str": "a\tb",
        "X-Int": 5,
        "X-Float": 2.0,
        "X-Frac": 2.5,
        "X-True": True,
        "X-Null": None,
        "X-Obj": {"a": 1},
        "X-List": [1],
    }
    req = parse_virtual_request("get", [msg(headers=headers)], None)
    assert req.headers == {
        "x-str": "a\tb",
        "x-int": "5",
        "x-float": "2",
        "x-frac": "2.5",
        "x-true": "true",
    }


def test_url_with_query_kept_as_sent() -> None:
    assert parse_virtual_request("get", [msg(url="/s?q=a b&x=1")], 1).url == "/s?q=a b&x=1"


# -- merge_headers -------------------------------------------------------------------------------


HANDSHAKE = {
    "Host": "device.local",
    "Cookie": "sid=hs",
    "Origin": "http://app.local",
    "User-Agent": "ua",
}


def test_handshake_cookie_wins_and_origin_is_forced() -> None:
    # sails-hook-sockets 3: _.defaults({host: sails.config.host, cookie: handshake's}, message),
    # then origin = handshake's; other handshake headers (Host, User-Agent) are not copied
    message = {"cookie": "sid=msg", "origin": "http://evil", "x-a": "1", "host": "other"}
    assert merge_headers(message, HANDSHAKE) == {
        "cookie": "sid=hs",
        "host": "other",
        "x-a": "1",
        "origin": "http://app.local",
    }
    assert merge_headers({"x-a": "1"}, HANDSHAKE) == {
        "cookie": "sid=hs",
        "x-a": "1",
        "origin": "http://app.local",
    }


def test_nosession_from_the_handshake() -> None:
    fields = handshake_fields({"NoSession": "1", "Cookie": "a=1"})
    assert merge_headers({"nosession": "no"}, fields) == {"cookie": "a=1", "nosession": "true"}
    assert merge_headers({"nosession": "x"}, {"nosession": ""}) == {"nosession": "x"}


def test_message_headers_fill_gaps() -> None:
    message = {"Cookie": "sid=msg", "origin": "http://evil", "host": "h"}
    assert merge_headers(message, {}) == {"cookie": "sid=msg", "host": "h"}


def test_handshake_pairs_join_repeated_cookies() -> None:
    pairs = [("cookie", "a=1"), ("Cookie", "b=2"), ("origin", "http://o")]
    assert merge_headers({}, pairs) == {"cookie": "a=1; b=2", "origin": "http://o"}


# -- JWR -----------------------------------------------------------------------------------------


def test_jwr_shape_and_set_cookie_removed() -> None:
    reply = jwr(
        200,
        [("Content-Type", "application/json"), ("SET-COOKIE", "a=1"), ("Vary", "a"), ("Vary", "b")],
        {"id": 3},
    )
    assert reply == {
        "body": {"id": 3},
        "headers": {"Content-Type": "application/json", "Vary": "a, b"},
        "statusCode": 200,
    }
    assert list(reply) == ["body", "headers", "statusCode"]
    assert jwr(201, {"set-cookie": "x"}, None) == {"body": None, "headers": {}, "statusCode": 201}


def test_jwr_without_body_and_with_bytes() -> None:
    assert jwr(204) == {"headers": {}, "statusCode": 204}
    assert jwr(200, {}, "é".encode() + b"\xff")["body"] == "é\ufffd"
    with pytest.raises(ValueError):
        jwr(99)
    with pytest.raises(ValueError):
        jwr(600)


def test_status_jwr_is_send_status() -> None:
    assert status_jwr(404) == {"body": NOT_FOUND, "headers": {}, "statusCode": 404}
    assert NOT_FOUND == "Not Found"
    assert status_jwr(599)["body"] == "599"


@pytest.mark.parametrize(
    ("content_type", "payload", "value"),
    [
        ("application/json", b'{"a":1}', {"a": 1}),
        ("application/json; charset=utf-8", b"[1]", [1]),
        ("application/problem+json", b'"x"', "x"),
        ("APPLICATION/JSON", b"not json", "not json"),
        ("text/plain", b'{"a":1}', '{"a":1}'),
        (None, "中".encode(), "中"),
        ("application/json", b"", NO_BODY),
    ],
)
def test_body_from_http(content_type: str | None, payload: bytes, value: Any) -> None:
    assert body_from_http(content_type, payload) == value


# -- parse errors --------------------------------------------------------------------------------

ERROR_PAYLOAD = {
    "code": "SAILS:HOOK:SOCKETS_PARSE_VIRTUAL_REQ",
    "name": "Error (SAILS:HOOK:SOCKETS_PARSE_VIRTUAL_REQ):",
    "status": 400,
    "message": "Failed to parse incoming socket.io request.",
    "details": "No url provided in request",
}


def test_parse_error_payload_matches_sails() -> None:
    assert parse_error_payload(SailsParseError("No url provided in request")) == ERROR_PAYLOAD


def test_parse_error_reply_through_ack_is_a_400_jwr() -> None:
    packet = parse_error_reply(SailsParseError("No url provided in request"), 4)
    assert packet.type is SIOType.ACK and packet.id == 4
    assert packet.data == [{"body": ERROR_PAYLOAD, "headers": {}, "statusCode": 400}]
    assert decode_sio(encode_sio(packet)) == packet


def test_parse_error_without_ack_is_an_event() -> None:
    packet = parse_error_reply(SailsParseError("No url provided in request"), None)
    text = encode_sio(packet)
    assert text.startswith('2["sails:parseError",{"code":"SAILS:HOOK:SOCKETS_PARSE_VIRTUAL_REQ"')
    assert packet.data == [PARSE_ERROR_EVENT, ERROR_PAYLOAD]
