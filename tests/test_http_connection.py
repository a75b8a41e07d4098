# Sans-IO tests of gateway.http.connection: bytes in, events (or ProtocolError) out, no sockets.
# Every input is fed whole AND one byte at a time: the limits and smuggling checks must not
# depend on how the peer's bytes happen to be split into reads.
from __future__ import annotations

from typing import Any

import h11
import pytest

from gateway.errors import ProtocolError
from gateway.http.connection import HTTPLimits, ServerConnection
from gateway.http.writer import ResponseWriter

LIMITS = HTTPLimits(max_head_bytes=4096, max_request_line_bytes=2048, max_header_count=32)
SPLITS = ["whole", "bytewise"]


def feed(raw: bytes, split: str, limits: HTTPLimits = LIMITS) -> tuple[list[Any], ProtocolError | None]:
    """Feed ``raw`` then EOF, answer every request with an empty 200, collect what happens.

    Returns (events, error): events as simple tuples, error the ProtocolError raised (or None).
    Data events are merged, so whole and bytewise runs give the same list.
    """
    conn = ServerConnection(limits)
    events: list[Any] = []
    chunks = [raw[i:i + 1] for i in range(len(raw))] if split == "bytewise" else [raw]
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    break
                if ev is h11.PAUSED:  # the request is complete: the server answers, then:
                    conn.start_next_cycle()
                    continue
                if type(ev) is h11.Request:
                    events.append(("request", ev.method, ev.target, dict(ev.headers)))
                elif type(ev) is h11.Data:
                    if events and events[-1][0] == "data":
                        events[-1] = ("data", events[-1][1] + bytes(ev.data))
                    else:
                        events.append(("data", bytes(ev.data)))
                elif type(ev) is h11.EndOfMessage:
                    events.append(("end",))
                elif type(ev) is h11.ConnectionClosed:
                    events.append(("closed",))
                    return events, None
    except ProtocolError as exc:
        return events, exc
    return events, None


def rejected(raw: bytes, split: str, status: int = 400) -> ProtocolError:
    events, err = feed(raw, split)
    assert err is not None, f"accepted: {events}"
    assert err.status_hint == status, err.message
    # nothing of a rejected head is handed out as a request
    assert all(e[0] != "request" or e[2] != b"/smuggled" for e in events)
    return err


# -- well-formed input ------------------------------------------------------------------------
@pytest.mark.parametrize("split", SPLITS)
def test_simple_get(split: str) -> None:
    events, err = feed(b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-Y: z\r\n\r\n", split)
    assert err is None
    assert events == [("request", b"GET", b"/a?b=1", {b"host": b"h", b"x-y": b"z"}),
                      ("end",), ("closed",)]


@pytest.mark.parametrize("split", SPLITS)
def test_content_length_body(split: str) -> None:
    events, err = feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", split)
    assert err is None
    assert events[1:] == [("data", b"hello"), ("end",), ("closed",)]


@pytest.mark.parametrize("split", SPLITS)
def test_chunked_body_with_extension_and_trailer(split: str) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    events, err = feed(raw, split)
    assert err is None
    assert events[1:] == [("data", b"hello world"), ("end",), ("closed",)]


@pytest.mark.parametrize("split", SPLITS)
def test_transfer_coding_name_is_case_insensitive(split: str) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    events, err = feed(raw, split)
    assert err is None and events[1] == ("data", b"ok")


@pytest.mark.parametrize("split", SPLITS)
def test_pipelined_requests_come_out_in_order(split: str) -> None:
    raw = (b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
           b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
           b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
    events, err = feed(raw, split)
    assert err is None
    assert [e[2] for e in events if e[0] == "request"] == [b"/1", b"/2", b"/3"]
    assert ("data", b"abc") in events


@pytest.mark.parametrize("split", SPLITS)
def test_absolute_form_and_arbitrary_method(split: str) -> None:
    events, err = feed(b"PROPFIND http://host:8/p?q HTTP/1.1\r\nHost: host:8\r\n\r\n", split)
    assert err is None
    assert events[0][1:3] == (b"PROPFIND", b"http://host:8/p?q")


@pytest.mark.parametrize("split", SPLITS)
def test_http10_without_host_is_fine(split: str) -> None:
    events, err = feed(b"GET / HTTP/1.0\r\n\r\n", split)
    assert err is None and events[0][0] == "request"


@pytest.mark.parametrize("split", SPLITS)
def test_bare_lf_line_endings_are_accepted(split: str) -> None:
    events, err = feed(b"GET / HTTP/1.1\nHost: h\n\n", split)
    assert err is None and events[0][0] == "request"


@pytest.mark.parametrize("split", SPLITS)
def test_obs_fold_in_an_ordinary_field_is_unfolded(split: str) -> None:
    events, err = feed(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", split)
    assert err is None
    assert events[0][3][b"x"] == b"a b"


def test_100_continue_state_is_visible() -> None:
    conn = ServerConnection(LIMITS)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    assert type(conn.next_event()) is h11.Request
    assert conn.they_are_waiting_for_100_continue
    assert conn.next_event() is h11.NEED_DATA
    conn.receive_data(b"ok")
    assert type(conn.next_event()) is h11.Data
    assert not conn.they_are_waiting_for_100_continue  # the body came anyway


# -- head limits --------------------------------------------------------------------------------
def _request_line(n: int) -> bytes:
    pre, post = b"GET /", b" HTTP/1.1"
    return pre + b"a" * (n - len(pre) - len(post)) + post


def _head(n: int) -> bytes:
    base = b"GET / HTTP/1.1\r\nHost: h\r\nX: "
    raw = base + b"b" * (n - len(base) - 4) + b"\r\n\r\n"
    assert len(raw) == n
    return raw


@pytest.mark.parametrize("split", SPLITS)
def test_request_line_at_the_limit_is_accepted(split: str) -> None:
    events, err = feed(_request_line(2048) + b"\r\nHost: h\r\n\r\n", split)
    assert err is None and events[0][0] == "request"


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_request_line_over_the_limit_is_414(split: str, eol: bytes) -> None:
    rejected(_request_line(2049) + eol + b"Host: h\r\n\r\n", split, 414)


def test_request_line_over_the_limit_is_414_before_the_line_ends() -> None:
    conn = ServerConnection(LIMITS)
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(b"GET /" + b"a" * 3000)
    assert info.value.status_hint == 414


@pytest.mark.parametrize("split", SPLITS)
def test_head_at_the_limit_is_accepted(split: str) -> None:
    events, err = feed(_head(4096), split)
    assert err is None and events[0][0] == "request"


@pytest.mark.parametrize(("split", "size"), [("whole", 4097), ("whole", 5000), ("whole", 60000),
                                             ("bytewise", 4097), ("bytewise", 5000)])
def test_head_over_the_limit_is_431_even_in_one_read(split: str, size: int) -> None:
    rejected(_head(size), split, 431)


def test_incomplete_head_over_the_limit_is_431_at_once() -> None:
    conn = ServerConnection(LIMITS)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n")
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(b"X: " + b"b" * 4096)
    assert info.value.status_hint == 431


@pytest.mark.parametrize("split", SPLITS)
def test_header_count(split: str) -> None:
    def head(count: int) -> bytes:
        fields = b"".join(b"X%d: 1\r\n" % i for i in range(count - 1))
        return b"GET / HTTP/1.1\r\n" + fields + b"Host: h\r\n\r\n"

    events, err = feed(head(32), split)
    assert err is None and events[0][0] == "request"
    assert rejected(head(33), split, 431).message == "Too many header fields"


@pytest.mark.parametrize("split", SPLITS)
def test_limits_apply_to_a_pipelined_second_head(split: str) -> None:
    raw = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" + _head(4097)
    events, err = feed(raw, split)
    assert [e[2] for e in events if e[0] == "request"] == [b"/1"]
    assert err is not None and err.status_hint == 431


def test_incomplete_pipelined_leftover_is_checked_at_the_next_cycle() -> None:
    conn = ServerConnection(LIMITS)
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" + b"GET /" + b"a" * 3000)
    assert type(conn.next_event()) is h11.Request
    assert type(conn.next_event()) is h11.EndOfMessage
    with pytest.raises(ProtocolError) as info:
        conn.start_next_cycle()
    assert info.value.status_hint == 414


def test_head_bytes_pending() -> None:
    conn = ServerConnection(LIMITS)
    assert conn.head_bytes_pending == 0 and conn.in_head
    conn.receive_data(b"GET / HT")
    assert conn.head_bytes_pending == 8
    conn.receive_data(b"TP/1.1\r\nHost: h\r\n\r\n")
    assert type(conn.next_event()) is h11.Request
    assert not conn.in_head and conn.head_bytes_pending == 0


# -- smuggling shapes and malformed heads: 400 ---------------------------------------------------
POST = b"POST /smuggled HTTP/1.1\r\nHost: h\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

BAD_HEADS = {
    "cl-and-te": POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-cl": POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "duplicate-cl-identical": POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "duplicate-cl-different": POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl-list": POST + b"Content-Length: 5, 5\r\n\r\nhello",
    "cl-plus": POST + b"Content-Length: +5\r\n\r\nhello",
    "cl-minus": POST + b"Content-Length: -5\r\n\r\nhello",
    "cl-hex": POST + b"Content-Length: 0x5\r\n\r\nhello",
    "cl-letters": POST + b"Content-Length: 5a\r\n\r\nhello",
    "cl-empty": POST + b"Content-Length: \r\n\r\nhello",
    "cl-non-ascii-digit": POST + "Content-Length: \u0665\r\n\r\nhello".encode(),
    "cl-huge": POST + b"Content-Length: 99999999999999999999999\r\n\r\n",
    "cl-folded": POST + b"Content-Length: 5\r\n 5\r\n\r\nhello",
    "te-gzip-chunked": POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te-chunked-identity": POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te-xchunked": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-identity": POST + b"Transfer-Encoding: identity\r\n\r\nhello",
    "te-duplicate": POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"0\r\n\r\n",
    "te-folded": POST + b"Transfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n",
    "te-in-http10": b"POST /smuggled HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"0\r\n\r\n",
    "nul-in-name": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX\x00Y: 1\r\n\r\n",
    "nul-in-value": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "esc-in-value": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: a\x1bb\r\n\r\n",
    "soh-in-value": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
    "del-in-value": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n",
    "vt-in-value": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: a\x0bb\r\n\r\n",
    "cr-in-value": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
    "cr-in-name": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX\rY: 1\r\n\r\n",
    "bare-cr-line-end": b"GET /smuggled HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n",
    "bare-cr-request-line": b"GET /smuggled HTTP/1.1\rHost: h\r\n\r\n",
    "space-before-colon": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX-Foo : 1\r\n\r\n",
    "space-before-colon-cl": POST + b"Content-Length : 5\r\n\r\nhello",
    "tab-before-colon-te": POST + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
    "tab-before-colon-host": b"GET /smuggled HTTP/1.1\r\nHost\t: h\r\n\r\n",
    "missing-host": b"GET /smuggled HTTP/1.1\r\n\r\n",
    "duplicate-host": b"GET /smuggled HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "duplicate-host-same": b"GET /smuggled HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
    "leading-whitespace-field": b"GET /smuggled HTTP/1.1\r\n Host: h\r\n\r\n",
    "control-in-target": b"GET /smug\x01gled HTTP/1.1\r\nHost: h\r\n\r\n",
    "space-in-target": b"GET /smug gled HTTP/1.1\r\nHost: h\r\n\r\n",
    "no-colon": b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX-Foo\r\n\r\n",
    "bad-version": b"GET /smuggled HTTP/1.x\r\nHost: h\r\n\r\n",
}

BAD_BODIES = {
    "chunk-0x": CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk-negative": CHUNKED + b"-1\r\nhello\r\n0\r\n\r\n",
    "chunk-space-semicolon": CHUNKED + b"5 ;\r\nhello\r\n0\r\n\r\n",
    "chunk-huge-21-digits": CHUNKED + b"1FFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
    "chunk-overflows-64-bits": CHUNKED + b"10000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk-20-digits": CHUNKED + b"FFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
    "chunk-empty-size": CHUNKED + b"\r\nhello\r\n0\r\n\r\n",
    "chunk-size-bare-lf": CHUNKED + b"5\nhello\r\n0\r\n\r\n",
    "chunk-bad-terminator": CHUNKED + b"5\r\nhelloXX0\r\n\r\n",
    "chunk-lf-terminator": CHUNKED + b"5\r\nhello\n0\r\n\r\n",
    "chunk-too-long": CHUNKED + b"3\r\nhello\r\n0\r\n\r\n",
    "last-chunk-unterminated": CHUNKED + b"5\r\nhello\r\n0\r\nGET / HTTP/1.1\r\n\r\n",
    "chunked-eof-mid-body": CHUNKED + b"5\r\nhel",
    "cl-eof-mid-body": POST + b"Content-Length: 10\r\n\r\nhello",
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("raw", BAD_HEADS.values(), ids=BAD_HEADS.keys())
def test_bad_head_is_400_and_no_request_is_handed_out(raw: bytes, split: str) -> None:
    events, err = feed(raw, split)
    assert err is not None and err.status_hint == 400, (events, err)
    assert events == [], "a request was handed out before the error"
    # the message is short and safe to send back: no repr of the raw bytes
    assert len(err.message) <= 200
    assert "bytearray" not in err.message and "\\x" not in err.message


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("raw", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_body_framing_is_400(raw: bytes, split: str) -> None:
    events, err = feed(raw, split)
    assert err is not None and err.status_hint == 400, (events, err)
    assert [e[0] for e in events][:1] == ["request"]
    assert ("end",) not in events
    assert "bytearray" not in err.message


@pytest.mark.parametrize("split", SPLITS)
def test_nothing_after_a_bad_head_is_interpreted(split: str) -> None:
    raw = BAD_HEADS["cl-and-te"] + b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n"
    events, err = feed(raw, split)
    assert err is not None and events == []


def test_largest_sane_chunk_size_is_accepted() -> None:
    conn = ServerConnection(LIMITS)
    conn.receive_data(CHUNKED + b"7FFFFFFFFFFFFFFF\r\nabc")
    assert type(conn.next_event()) is h11.Request
    ev = conn.next_event()
    assert type(ev) is h11.Data and bytes(ev.data) == b"abc"


# -- output: the response writer -----------------------------------------------------------------
def _writer_head(writer: ResponseWriter, status: int = 200, headers: list[tuple[str, str]] | None = None,
                 **kw: Any) -> bytes:
    args = {"head_request": False, "http10": False, "keep_alive": True, "date": "D"}
    args.update(kw)
    return writer.head(status, headers or [], **args)


def test_writer_content_length_response() -> None:
    w = ResponseWriter()
    head = _writer_head(w, 200, [("Content-Type", "text/plain"), ("Content-Length", "5")])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5\r\n" in head and b"Connection" not in head
    assert w.data(b"hello") == b"hello" and w.end() == b""
    assert w.keep_alive and w.done


def test_writer_chunked_without_length() -> None:
    w = ResponseWriter()
    assert b"Transfer-Encoding: chunked" in _writer_head(w)
    assert w.data(b"abc") == b"3\r\nabc\r\n"
    assert w.data(b"") == b""  # an empty write must not end the body
    assert w.end() == b"0\r\n\r\n"


def test_writer_head_request_keeps_length_and_sends_no_body() -> None:
    w = ResponseWriter()
    head = _writer_head(w, 200, [("Content-Length", "5")], head_request=True)
    assert b"Content-Length: 5" in head
    assert w.data(b"hello") == b"" and w.end() == b""


@pytest.mark.parametrize("status", [204, 304, 101])
def test_writer_bodiless_statuses(status: int) -> None:
    w = ResponseWriter()
    head = _writer_head(w, status, [("Content-Length", "5")])
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    assert w.data(b"x") == b""


def test_writer_http10_keep_alive_and_close() -> None:
    w = ResponseWriter()
    head = _writer_head(w, 200, [("Content-Length", "1")], http10=True)
    assert b"Connection: keep-alive" in head
    w2 = ResponseWriter()
    head2 = _writer_head(w2, 200, [], http10=True)  # no length: the close ends the body
    assert b"Connection: close" in head2 and b"chunked" not in head2
    assert not w2.keep_alive


def test_writer_app_framing_headers_are_replaced() -> None:
    w = ResponseWriter()
    head = _writer_head(w, 200, [("Transfer-Encoding", "gzip"), ("Connection", "close"),
                                 ("Content-Length", "2")])
    assert b"gzip" not in head and head.count(b"Connection: close") == 1
    assert not w.keep_alive


def test_writer_refuses_more_than_content_length() -> None:
    w = ResponseWriter()
    _writer_head(w, 200, [("Content-Length", "2")])
    with pytest.raises(ProtocolError) as info:
        w.data(b"too long")
    assert info.value.status_hint == 500


def test_writer_short_body_closes_the_connection() -> None:
    w = ResponseWriter()
    _writer_head(w, 200, [("Content-Length", "5")])
    w.data(b"ab")
    w.end()
    assert not w.keep_alive
