# ServerConnection reads plain request heads itself (_fast_head) and hands every other head to
# h11, which used to read them all. The two must not differ in anything the server sees: the
# same bytes, fed the same way, give the same events (the Request's fields, the split target,
# the body's Data and EndOfMessage, what follows the body) and the same errors
# (status and message), request after request on one connection. Compared here against the same
# class with the fast path switched off, over the parser corpus (tests/parser_corpus.py), the
# made-up requests of tests/test_parser_differential.py, and heads made to sit on the edge of
# the plain shape; and the fast path is shown to be taken where it should be, so that the
# comparisons cannot pass by never taking it. The HTTP suite runs with either parser (make test).
from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import RemoteProtocolError
from gateway.http import events as http_events
from gateway.http.connection import HTTPLimits, LengthReader, Request, ServerConnection
from tests.parser_corpus import REQUESTS
from tests.test_parser_differential import _requests


class _H11Only(ServerConnection):
    """The connection as it was: every head read by h11, and the end of the stream where a head
    would start told by h11 too (the gateway says ConnectionClosed there itself)."""

    __slots__ = ()

    def _fast_head(self) -> Any:
        return None

    def receive_data(self, data: bytes | bytearray) -> None:
        if not data and self.in_head and self._h11 is None:
            self._feed_h11()
        super().receive_data(data)

    def start_next_cycle(self) -> None:
        super().start_next_cycle()
        if self._eof:
            self._eof = False
            self._feed_h11().receive_data(b"")


class _Counting(ServerConnection):
    """The connection as it is, counting the heads the fast path read."""

    __slots__ = ("taken",)

    def __init__(self, limits: HTTPLimits) -> None:
        super().__init__(limits)
        self.taken = 0

    def _fast_head(self) -> Any:
        event = super()._fast_head()
        if event is not None:
            self.taken += 1
        return event


def _drive(conn: ServerConnection, chunks: list[bytes], max_requests: int = 4) -> list[Any]:
    """Feed ``chunks`` as a server would (the next one when the parser needs data, then the end
    of the stream) and record every event and the error that ends it all."""
    out: list[Any] = []
    chunks = list(chunks)
    eof = False
    requests = 0
    try:
        while True:
            event = conn.next_event()
            if event is http_events.NEED_DATA:
                if chunks:
                    conn.receive_data(chunks.pop(0))
                elif not eof:
                    eof = True
                    conn.receive_data(b"")
                else:
                    out.append("NEED_DATA after the end")
                    return out
                continue
            kind = type(event)
            if kind is Request:
                requests += 1
                out.append(
                    (
                        "Request",
                        event.method,
                        event.target,
                        event.http_version,
                        list(event.headers),
                        conn.target,
                    )
                )
            elif kind is http_events.Data:
                out.append(("Data", bytes(event.data)))
            elif kind is http_events.EndOfMessage:
                out.append(("EndOfMessage", list(event.headers)))
                after = conn.next_event()
                out.append(("after", getattr(after, "__name__", type(after).__name__)))
                if requests >= max_requests:
                    return out
                conn.start_next_cycle()
            elif kind is http_events.ConnectionClosed:
                out.append("ConnectionClosed")
                return out
            else:
                out.append(("other", repr(event)))
                return out
    except RemoteProtocolError as exc:
        out.append(("error", exc.status_hint, exc.message))
    return out


def _both(chunks: list[bytes]) -> tuple[list[Any], list[Any], int]:
    limits = HTTPLimits()
    fast = _Counting(limits)
    got = _drive(fast, chunks)
    return got, _drive(_H11Only(limits), chunks), fast.taken


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if b > a]


def _bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize(("name", "raw"), REQUESTS, ids=[n for n, _ in REQUESTS])
def test_the_corpus_gives_what_h11_gave(name: str, raw: bytes, how: str) -> None:
    chunks = [raw] if how == "whole" else _bytewise(raw)
    fast, h11_only, _ = _both(chunks)
    assert fast == h11_only


def test_the_corpus_takes_the_fast_path_for_its_plain_requests() -> None:
    taken = {name for name, raw in REQUESTS if _both([raw])[2]}
    assert {"get", "get-query"} <= taken
    # and h11 still reads every shape the fast path leaves alone
    assert len(taken) < len(REQUESTS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_made_up_requests_give_what_h11_gave(case: tuple[bytes, list[int]]) -> None:
    raw, cuts = case
    fast, h11_only, _ = _both(_split(raw, cuts))
    assert fast == h11_only


# Heads on the edge of the plain shape: each part plain (the first list) most of the time, else
# one step off it (the second).
_PARTS: dict[str, tuple[list[bytes], list[bytes]]] = {
    "method": ([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"],
               [b"CONNECT", b"TRACE", b"get", b"G\xe9T", b"GET\t"]),
    "target": ([b"/", b"/a/b?x=1&y=%20", b"//x", b"/a?b=\"c\"", b"/~!$&'()*+,;=:@"],
               [b"/\xff", b"*", b"http://h/x", b"/a b", b"/#f", b"", b"a"]),
    "version": ([b"HTTP/1.1"], [b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]),
    "name": ([b"Accept", b"X-Id", b"Connection", b"Content-Length", b"content-length", b"Host"],
             [b"X_Id", b"X.Y", b"Transfer-Encoding", b"Expect", b"Upgrade", b"X Y", b"", b"-",
              b"\xe9", b"X-\x7f", b" X"]),
    "value": ([b"", b"a", b" a ", b"\ta\t", b"a  b", b"0", b"3", b"close", b"keep-alive",
               b"\xe9t\xe9", b"example.com", b"Xa X", b"keep-alive, close", b"close,te",
               b"Xclose"],
              [b"03", b"-1", b"3, 3", b"chunked", b"100-continue", b"websocket", b"a\x00b",
               b"a\rb", b"exa mple.com", b"[::1]:80", b"3 3", b"+3"]),
    "sep": ([b": ", b":", b":\t", b":  "], [b" : ", b"\t:", b" :"]),
    "end": ([b"\r\n"], [b"\n", b"\r", b"\r\r\n"]),
    "body": ([b"", b"abc", b"abcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
              b"GET /n HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy"],
             [b"abcdef", b"ab", b"GET / HTTP/1.0\r\n\r\n"]),
}  # fmt: skip


def _edge_head(pick: Any) -> bytes:
    """A head from _PARTS; ``pick(part)`` chooses one entry of that part."""
    head = pick("method") + b" " + pick("target") + b" " + pick("version") + pick("end")
    if pick("host") != b"no":
        head += b"Host: example.com" + pick("end")
    for _ in range(int(pick("count"))):
        head += pick("name") + pick("sep") + pick("value") + pick("end")
    return head + pick("end") + pick("body")


def _edge_pick(plain: bool, choice: int, part: str) -> bytes:
    if part == "host":
        return b"yes" if plain else b"no"
    if part == "count":
        return b"%d" % (choice % 5)
    usual, off = _PARTS[part]
    pool = usual if plain else off
    return pool[choice % len(pool)]


@st.composite
def _edge_heads(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    def pick(part: str) -> bytes:
        plain = draw(st.integers(0, 11)) > 0  # about one part in twelve off the plain shape
        return _edge_pick(plain, draw(st.integers(0, 99)), part)

    raw = _edge_head(pick)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(raw)), max_size=4))))
    return raw, cuts


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edge_heads())
def test_heads_on_the_edge_of_the_plain_shape_give_what_h11_gave(
    case: tuple[bytes, list[int]],
) -> None:
    raw, cuts = case
    fast, h11_only, _ = _both(_split(raw, cuts))
    assert fast == h11_only


def test_a_seeded_sweep_takes_both_paths_and_they_agree() -> None:
    rng = random.Random(20261203)
    taken = 0
    for _ in range(1500):
        raw = _edge_head(lambda part: _edge_pick(rng.random() > 0.08, rng.randrange(100), part))
        fast, h11_only, n = _both([raw])
        assert fast == h11_only, raw
        taken += n > 0
    # both paths well used: the comparisons above are not all on one side
    assert 150 < taken < 1350, taken  # 322 with this seed


PLAIN = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Id:\t7 \r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        PLAIN,
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        b"DELETE /x HTTP/1.1\r\nhost: h\r\nEmpty:\r\n\r\n",
        # a protocol switch proposed: paused after the body, whatever follows (h11's
        # MIGHT_SWITCH_PROTOCOL), the bytes after the head left for the server (trailing_data)
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"\x81\x82ab",
        b"POST /u HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, foo\r\nContent-Length: 2\r\n\r\nabGET /",
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\nConnection: close\r\n\r\nmore",
        # an Upgrade without a member proposes nothing: a request like any other
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade:\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: , ,\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    ],
)
@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_plain_heads_are_read_without_h11(raw: bytes, how: str) -> None:
    fast, h11_only, taken = _both(_bytewise(raw) if how == "bytewise" else [raw])
    assert taken == raw.count(b" HTTP/1.1\r\n")  # every head of them
    assert fast == h11_only


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/1.0\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host: h11's constructor refuses, h11 reports it
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    ],
)
def test_other_heads_are_left_to_h11(raw: bytes) -> None:
    fast, h11_only, taken = _both([raw])
    assert taken == 0
    assert fast == h11_only


NEXT = b"GET /n HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "heads"),
    [
        # a value keeps what is not whitespace at its ends (an "X" trimmed would pass unseen)
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: Xa X\r\n\r\n", 1),
        # Connection is a list: "close" anywhere in it means no next request (h11's MUST_CLOSE)
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n" + NEXT, 1),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close,te\r\n\r\n" + NEXT, 1),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n" + NEXT, 1),
        # and only "close" itself: these keep the connection for the next request
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Xclose, closeX\r\n\r\n" + NEXT, 2),
    ],
)
def test_field_values_and_connection_lists_read_as_h11_reads_them(raw: bytes, heads: int) -> None:
    fast, h11_only, taken = _both([raw])
    assert taken == heads
    assert fast == h11_only


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-A: 1\r\n" * 64 + b"\r\n", 431),
    ],
)
def test_a_plain_head_our_checks_refuse_is_refused_the_same_without_h11(
    raw: bytes, status: int
) -> None:
    conn = ServerConnection(HTTPLimits())
    fast = _drive(conn, [raw])
    assert conn._h11 is None  # the fast path read it, and refused it
    assert fast == _drive(_H11Only(HTTPLimits()), [raw])
    assert fast[-1][:2] == ("error", status)


def test_pipelined_requests_after_a_fast_body_are_read_in_turn() -> None:
    raw = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    fast, h11_only, taken = _both([raw])
    assert taken == 3
    assert fast == h11_only
    assert [e[2] for e in fast if e[0] == "Request"] == [b"/a", b"/b", b"/c"]
    assert ("Data", b"abc") in fast


def test_a_body_cut_short_by_the_peer_is_the_same_error() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"
    fast, h11_only, taken = _both([raw])
    assert taken == 1
    assert fast == h11_only
    assert fast[-1] == (
        "error",
        400,
        "peer closed connection without sending complete message body "
        "(received 2 bytes, expected 5)",
    )


def test_the_length_reader_hands_out_what_it_holds_and_keeps_what_follows() -> None:
    reader = LengthReader(5, b"ab")
    assert bytes(reader.next_event().data) == b"ab"
    assert reader.next_event() is http_events.NEED_DATA
    reader.receive_data(b"cdeNEXT")
    assert bytes(reader.next_event().data) == b"cde"
    assert type(reader.next_event()) is http_events.EndOfMessage
    assert reader.done
    assert reader.next_event() is http_events.PAUSED
    assert reader.trailing_data == (b"NEXT", False)
    reader.receive_data(b"")
    assert reader.trailing_data == (b"NEXT", True)
    # bytes that arrive while some are still held are kept behind them, in order
    reader = LengthReader(6, bytearray(b"ab"))
    reader.receive_data(b"cd")
    reader.receive_data(bytearray(b"efGET"))
    assert reader.next_event().data == b"abcdef"
    assert type(reader.next_event()) is http_events.EndOfMessage
    assert reader.trailing_data == (b"GET", False)


def test_an_oversized_plain_head_is_still_refused_with_431() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    fast, h11_only, taken = _both([raw])
    assert taken == 0
    assert fast == h11_only
    assert fast[-1][:2] == ("error", 431)


def test_bytes_after_the_end_of_the_stream_are_refused_as_h11_refuses_them() -> None:
    # the server never feeds a connection after its end; if it did, it would hear it as h11 did
    for conn in (ServerConnection(HTTPLimits()), _H11Only(HTTPLimits())):
        conn.receive_data(b"")
        assert type(conn.next_event()) is http_events.ConnectionClosed
        assert conn.trailing_data == (b"", True)
        with pytest.raises(RuntimeError, match="received close, then received more data"):
            conn.receive_data(b"GET / HTTP/1.1\r\n")
