# The short cuts of the virtual-request path, each against the general code it skips: the
# same result and the same error for every input, the usual shapes and the ones next to them.
# - gateway.jsoncodec.make_encoder against json.JSONEncoder.encode (values, errors, cycles);
# - EngineIOSession.receive_text's plain EVENT read against decode_eio/decode_sio;
# - sails.jwr_text against engineio.dumps(sails.jwr(...));
# - the origin-form split of a virtual request's url against split_target;
# - parse_virtual_request's plain body and headers against _body/_message_headers.
from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app import jsontext
from gateway.body import stream
from gateway.http.target import split_target
from gateway.jsoncodec import make_encoder
from gateway.server import sails_session
from gateway.ws import engineio as eio
from gateway.ws import sails

# -- JSON values, with the strings that need care (quotes, controls, non-ASCII, surrogates) ----
_text = st.text(
    st.characters(codec=None, exclude_categories=()) | st.sampled_from('"\\\n\x00\u2028\ud800')
)
_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:  # the type and the words are part of the contract
        return (type(exc).__name__, str(exc))


# -- gateway.jsoncodec ---------------------------------------------------------------------------


def reference(ensure_ascii: bool, default: Any = None, allow_nan: bool = False) -> json.JSONEncoder:
    return json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan, default=default
    )


@settings(max_examples=400, deadline=None)
@given(value=_values, ensure_ascii=st.booleans(), allow_nan=st.booleans())
def test_make_encoder_gives_what_json_encoder_gives(
    value: Any, ensure_ascii: bool, allow_nan: bool
) -> None:
    ours = make_encoder(ensure_ascii=ensure_ascii, allow_nan=allow_nan)
    want = outcome(lambda: reference(ensure_ascii, allow_nan=allow_nan).encode(value))
    assert outcome(lambda: ours(value)) == want


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        "a plain string",
        Text("a str subclass"),
        [Text("x"), Color.RED, 1.5, -0.0, 10**30],
        {1: "int key", 2.5: "float key", False: "bool key", None: "null key"},
        {"nan": math.nan},
        [math.inf],
        {b"bytes key": 1},
        [b"bytes"],
        {"a", "set"},
        object(),
        [[[[[]]]]],
    ],
    ids=repr,
)
def test_make_encoder_matches_on_the_odd_values(value: Any) -> None:
    for ensure_ascii in (False, True):
        for allow_nan in (False, True):
            ours = make_encoder(ensure_ascii=ensure_ascii, allow_nan=allow_nan)
            ref = reference(ensure_ascii, allow_nan=allow_nan)
            want = outcome(lambda: ref.encode(value))  # noqa: B023
            assert outcome(lambda: ours(value)) == want  # noqa: B023


def test_the_encoders_are_the_short_cut_on_this_python() -> None:
    # not JSONEncoder.encode behind the same name: the C encoder passed the check at import
    encoders = [make_encoder(ensure_ascii=a) for a in (False, True)]
    encoders += [jsontext._encode, stream._value_json]
    for encode in encoders:
        assert "<locals>.encode" in encode.__qualname__, encode.__qualname__


def first_chunk(source: stream.ValueSource) -> bytes | None:
    """ValueSource.receive_chunk() run to its end (it never suspends)."""
    coro = source.receive_chunk()
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("receive_chunk suspended")  # pragma: no cover


@settings(max_examples=200, deadline=None)
@given(value=_values)
def test_a_virtual_requests_data_reads_as_the_json_text_json_encoder_gives(value: Any) -> None:
    # ValueSource: the bytes a handler's read() gets for a virtual request's data, infinities
    # included (JSON text 1e400 decodes to one) as JSONEncoder writes them
    legacy = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    want = outcome(lambda: legacy.encode(value).encode())
    assert outcome(lambda: first_chunk(stream.ValueSource(value))) == want


def test_a_virtual_requests_infinite_number_reads_as_javascripts_literal() -> None:
    source = stream.ValueSource({"big": math.inf, "small": -math.inf})
    assert first_chunk(source) == b'{"big":Infinity,"small":-Infinity}'
    assert first_chunk(source) is None


def test_a_cycle_is_the_reference_encoders_value_error() -> None:
    cyclic: list[Any] = [1]
    cyclic.append({"again": cyclic})
    ours = make_encoder(ensure_ascii=False)
    with pytest.raises(ValueError, match="Circular reference detected"):
        ours(cyclic)
    assert ours({"after": "a cycle"}) == '{"after":"a cycle"}'  # nothing of it stays behind


def test_a_cycle_after_a_nan_is_the_nans_error_as_with_the_reference() -> None:
    # the retry after RecursionError is made with the same options: NaN is refused first
    cyclic: list[Any] = [math.nan]
    cyclic.append(cyclic)
    ours = make_encoder(ensure_ascii=False)
    with pytest.raises(ValueError, match="Out of range float values"):
        ours(cyclic)


def test_a_value_of_many_pieces_is_joined_as_the_reference_joins_it() -> None:
    value = [{"n": i, "s": "x"} for i in range(60_000)]  # far more than one chunk of output
    assert make_encoder(ensure_ascii=True)(value) == reference(True).encode(value)


def test_a_value_too_deep_is_recursion_error_as_with_the_reference() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    ours = make_encoder(ensure_ascii=False)
    with pytest.raises(RecursionError):
        ours(deep)
    with pytest.raises(RecursionError):
        reference(False).encode(deep)


def test_the_default_hook_is_used_as_json_encoder_uses_it() -> None:
    # the response encoder: bytes as text, sets and tuples as lists
    value = {"b": b"\xffx", "s": {3}, "t": (1, 2), "nested": [{"b": b"y"}]}
    want = reference(False, jsontext._json_default).encode(value)
    assert jsontext.dumps_text(value) == want
    assert make_encoder(ensure_ascii=False, default=jsontext._json_default)(value) == want
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        jsontext.dumps(object())


# -- EngineIOSession.receive_text: the plain EVENT read ----------------------------------------


def connected() -> eio.EngineIOSession:
    session = eio.EngineIOSession(3, "sid")
    session.open_frames(0.0)
    return session


def both_ways(text: str) -> None:
    fast = connected()
    got = fast.receive_text(text, 1.0)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(eio, "_plain_event", lambda text: None)
        slow = connected()
        want = slow.receive_text(text, 1.0)
    assert got == want, text
    assert (fast.state, fast.frames_to_send()) == (slow.state, slow.frames_to_send())


_ack_ids = st.sampled_from(["", "0", "7", "123", "9" * 15, "9" * 16, "1a", " 1", "٣", "/x,"])
_payload_text = st.one_of(
    _values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.lists(_values, min_size=0, max_size=3).map(
        lambda args: json.dumps(["get", *args], allow_nan=True)
    ),
    st.sampled_from(
        [
            '["get",{"url":"/x"}]',
            '["connect"]',
            '["disconnect",1]',
            "[1,2]",
            "[]",
            '["get"',
            '["get"] ',
            ' ["get"]',
            '["get",NaN]',
            '["get",Infinity]',
            '\ufeff["get"]',
            '["get"]["x"]',
            "",
            "[" * 5000 + "]" * 5000,
        ]
    ),
)


@settings(max_examples=600, deadline=None)
@given(ack=_ack_ids, payload=_payload_text)
def test_a_plain_event_reads_as_the_full_decoder_reads_it(ack: str, payload: str) -> None:
    both_ways("42" + ack + payload)


@pytest.mark.parametrize(
    "text",
    [
        '420["get",{"method":"get","headers":{},"data":{},"url":"/hello"}]',
        '42["post",{"url":"/x","data":{"a":[1,2.5,null,true]}}]',
        '42999999999999999["get"]',
        '421234567890123456["get"]',
        '42/admin,1["get"]',
        '42["connect_error"]',
        '42["get"',
        "42",
        "42[]",
    ],
)
def test_plain_events_and_their_neighbours(text: str) -> None:
    both_ways(text)


def test_the_plain_read_takes_the_usual_shapes() -> None:
    # the short cut is taken (not only equal): these never reach decode_sio
    assert eio._plain_event('425["get",{"url":"/a"}]') == eio.Event("get", ({"url": "/a"},), 5)
    assert eio._plain_event('42["put",{"url":"/a"},2]') == eio.Event("put", ({"url": "/a"}, 2))
    # a list inside the payload, and the longest ack id (15 digits)
    nested = '42["post",{"url":"/a","data":{"x":[1,[2]]}}]'
    assert eio._plain_event(nested) == eio.Event("post", ({"url": "/a", "data": {"x": [1, [2]]}},))
    assert eio._plain_event("42" + "9" * 15 + '["get"]') == eio.Event("get", (), 10**15 - 1)
    for text in ('42 ["get"]', '42["get"] ', '42/n,["get"]', '42["get",NaN]', '42["connect"]'):
        assert eio._plain_event(text) is None, text


# -- sails.jwr_text --------------------------------------------------------------------------

_names = st.sampled_from(
    ["Content-Type", "content-type", "X-A", "Set-Cookie", "set-cookie", "SET-COOKIE", "é", "\ud800"]
)
_header_values = st.sampled_from(["v", "a, b", 'q"uote', "é", "\ud83d", "\x00"]) | _text
_headers = st.lists(st.tuples(_names, _header_values), max_size=5)
_bodies = st.one_of(
    st.just(sails.NO_BODY), _values, st.binary(max_size=20), st.sampled_from([b"\xff", "\udfff"])
)


@settings(max_examples=500, deadline=None)
@given(status=st.integers(90, 610), headers=_headers, body=_bodies)
def test_jwr_text_is_the_dumped_jwr(status: int, headers: list[tuple[str, str]], body: Any) -> None:
    def made() -> str:
        return sails.jwr_text(status, headers, body)

    def dumped() -> str:
        return eio.dumps(sails.jwr(status, headers, body))

    assert outcome(made) == outcome(dumped)
    assert outcome(lambda: sails.jwr_text(status, dict(headers), body)) == outcome(
        lambda: eio.dumps(sails.jwr(status, dict(headers), body))
    )


def test_jwr_text_writes_the_usual_replies_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # the short cut is taken (jwr() is not even called) for text headers without repeats,
    # cookies dropped, every kind of body; and the status range is jwr()'s, ends included
    def no_jwr(*args: Any) -> Any:
        raise AssertionError("jwr() called")

    monkeypatch.setattr(sails, "jwr", no_jwr)
    headers = [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
    assert (
        sails.jwr_text(200, headers, "hello")
        == '{"body":"hello","headers":{"Content-Type":"text/plain"},"statusCode":200}'
    )
    for body in ({"a": [1, 2.5]}, sails.NO_BODY, b"by\xfftes", "\u00e9t\u00e9", None, 3):
        sails.jwr_text(404, [("X-A", "\u00e9")], body)
    assert sails.jwr_text(100) == '{"headers":{},"statusCode":100}'
    assert sails.jwr_text(599) == '{"headers":{},"statusCode":599}'
    for status in (99, 600):
        with pytest.raises(ValueError, match=f"bad status {status}"):
            sails.jwr_text(status)


def test_jwr_text_reads_an_iterator_of_headers_once() -> None:
    def pairs() -> Any:
        yield ("X-A", "1")
        yield ("X-A", "2")  # a repeated name: jwr()'s joining, from the pairs already read
        yield ("Set-Cookie", "s=1")

    assert sails.jwr_text(200, pairs(), "x") == eio.dumps(sails.jwr(200, list(pairs()), "x"))
    assert '"X-A":"1, 2"' in sails.jwr_text(200, pairs(), "x")


def test_jwr_text_of_headers_that_are_not_text_is_jwrs() -> None:
    for headers in ([("X-N", 5)], [(5, "x")], (("A", "b"),), [("A", "1"), ("A", "2")]):
        assert outcome(lambda: sails.jwr_text(200, headers, "x")) == outcome(  # noqa: B023
            lambda: eio.dumps(sails.jwr(200, headers, "x"))  # type: ignore[arg-type]  # noqa: B023
        )


def test_an_ack_frame_from_text_is_send_acks() -> None:
    session = connected()
    value = {"body": "ok", "headers": {}, "statusCode": 200}
    assert session.send_ack_text(12, eio.dumps(value)) == session.send_ack(12, [value])
    for ack_id in (0, 10**15 - 1):  # the ends of the range
        assert session.send_ack_text(ack_id, "1") == session.send_ack(ack_id, [1])
    for bad in (-1, 10**15):
        assert outcome(lambda: session.send_ack_text(bad, "1")) == outcome(  # noqa: B023
            lambda: session.send_ack(bad, [1])  # noqa: B023
        )
    session.close_frames()
    assert outcome(lambda: session.send_ack_text(1, "1")) == outcome(
        lambda: session.send_ack(1, [1])
    )


# -- a virtual request's url ------------------------------------------------------------------

_url_chars = st.sampled_from(list("/?#&=%.aZ09~ -") + ["\x7f", "\x01", "é", "\u00a0", "://"])


def split_as_http(url: str) -> tuple[str, str, str]:
    # what _target gives through split_target, the way it was written before its short cut
    raw = url.encode("ascii") if url.isascii() and url.isprintable() and " " not in url else None
    if raw is None:
        from urllib.parse import quote

        raw = quote(url, safe=sails_session._VISIBLE_ASCII).encode("ascii")
    target, path, query, _ = split_target(raw)
    return target, path, query


@settings(max_examples=500, deadline=None)
@given(url=st.lists(_url_chars, max_size=12).map("".join))
def test_the_url_of_a_virtual_request_splits_as_split_target_splits_it(url: str) -> None:
    got = outcome(lambda: sails_session._target(url))
    if url[:1] == "/" or "://" in url:
        assert got == outcome(lambda: split_as_http(url))
    else:
        assert got == ("RemoteProtocolError", "Not Found")


# -- parse_virtual_request's plain message -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.none(),
        st.just(False),
        st.just(0),
        st.just(""),
        st.just("ab"),
        _values,
        st.dictionaries(_text, _values, max_size=3),
    ),
    params=st.one_of(st.just("absent"), st.none(), st.dictionaries(_text, _values, max_size=3)),
    headers=st.one_of(
        st.just("absent"), st.none(), st.just({}), st.just([]), st.just(""), st.just({"X-A": 1})
    ),
)
def test_a_plain_message_reads_as_the_general_rules_read_it(
    data: Any, params: Any, headers: Any
) -> None:
    message: dict[str, Any] = {"url": "/x", "data": data}
    if params != "absent":
        message["params"] = params
    if headers != "absent":
        message["headers"] = headers

    def general() -> tuple[Any, Any]:
        return (
            sails._message_headers(message.get("headers"), 100),
            sails._body(message),
        )

    got = outcome(
        lambda: (lambda v: (v.headers, v.data))(sails.parse_virtual_request("post", [message], 1))
    )
    assert got == outcome(general)
    if got[0] == "ok" and type(data) is dict:
        assert got[1][1] is not data  # a copy, as _body makes one
