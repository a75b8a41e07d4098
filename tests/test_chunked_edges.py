# gateway.http.chunked at its edges: what each broken body says (the text of the 400/431), the
# ceilings at exactly their value (a partial size line, the trailer bytes and fields), the
# chunk_start / chunk_end flags of the Data events (h11's own meaning), and a reader made with
# no bytes yet. The ChunkedReader alone, fed whole; test_http_connection.py feeds it through
# the ServerConnection, whole and byte by byte. Written against the mutants docs/TESTING.md lists.
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ProtocolError
from gateway.http import events as http_events
from gateway.http.chunked import ChunkedReader


def events_of(raw: bytes, *, line: int = 100, trailer: int = 200, fields: int = 4) -> list[object]:
    """Every event ``raw`` gives, up to the body's end."""
    reader = ChunkedReader(line, trailer, fields)
    reader.receive_data(raw)
    out: list[object] = []
    for _ in range(len(raw) + 2):  # bounded: a reader that never asks for data fails, not hangs
        ev = reader.next_event()
        if ev is http_events.NEED_DATA:
            return out
        out.append(ev)
        if type(ev) is http_events.EndOfMessage:
            return out
    raise AssertionError(f"no end after {len(raw) + 2} events: {out[-3:]}")


def refusal(raw: bytes, *, eof: bool = False, **limits: int) -> tuple[int, str]:
    reader = ChunkedReader(
        limits.get("line", 100), limits.get("trailer", 200), limits.get("fields", 4)
    )
    reader.receive_data(raw)
    if eof:
        reader.receive_data(b"")
    with pytest.raises(ProtocolError) as info:
        for _ in range(len(raw) + 2):  # bounded, as in events_of
            if reader.next_event() is http_events.NEED_DATA:
                break
    return info.value.status_hint, info.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"5\r\nhello\n0\r\n\r\n", "Bare LF in chunked body (chunk data must end with CRLF)"),
        (b"5\r\nhelloXX0\r\n\r\n", "Chunk data not followed by CRLF (wrong chunk size?)"),
        (b"5\r\nhello\rX", "Chunk data not followed by CRLF (wrong chunk size?)"),
        (b"5;a\nb\r\n", "Bare LF in chunked body (lines must end with CRLF)"),
        (b"5;a\rb\r\n", "Bare CR in chunked body"),
        (b"5;a\x00\r\n", "Control character in chunked body"),
        (b"5 \r\n", "Malformed chunk size line"),
        (b"10000000000000000\r\n", "Chunk size too large"),
        (b"0\r\nX: t\ru\r\n\r\n", "Bare CR in chunked body"),
        (b"0\r\nX: a\x01\r\n\r\n", "Control character in chunked body"),  # last before CRLF
        (b"0\r\nX: t\r\n u\r\n\r\n", "Obsolete line folding (obs-fold) in chunked trailer"),
        (b"0\r\nX: t\r\n\tu\r\n\r\n", "Obsolete line folding (obs-fold) in chunked trailer"),
        (b"0\r\nX : t\r\n\r\n", "Malformed trailer field"),
        (b"5;a\nhello", "Bare LF in chunked body (lines must end with CRLF)"),  # no CRLF yet
    ],
)
def test_each_broken_body_says_why(raw: bytes, message: str) -> None:
    assert refusal(raw) == (400, message)


def test_the_peer_closing_mid_body_is_named() -> None:
    assert refusal(b"5\r\nhel", eof=True) == (
        400,
        "Incomplete chunked body: the peer closed the connection",
    )


def test_a_partial_size_line_may_reach_the_ceiling_but_not_pass_it() -> None:
    reader = ChunkedReader(10, 200, 4)
    reader.receive_data(b"5;aaaaaaaa")  # 10 bytes, no CRLF yet: wait for the rest
    assert reader.next_event() is http_events.NEED_DATA
    assert refusal(b"5;aaaaaaaaa", line=10) == (400, "Chunk size line too long")


def test_the_trailer_section_may_reach_its_ceiling_but_not_pass_it() -> None:
    fits = b"0\r\nA: 12345678\r\nB: 1234567\r\n\r\n"  # 13 + 12 = 25 bytes of field lines
    (end,) = events_of(fits, trailer=25)
    assert type(end) is http_events.EndOfMessage
    assert list(end.headers) == [(b"a", b"12345678"), (b"b", b"1234567")]
    assert refusal(fits, trailer=24) == (431, "Trailer section too large")
    # an unfinished line is judged against what is left after the complete ones
    assert refusal(b"0\r\nA: 12345678\r\nB: 12345678901", trailer=25) == (
        431,
        "Trailer section too large",
    )
    reader = ChunkedReader(100, 25, 4)
    reader.receive_data(b"0\r\nA: 12345678\r\nB: 12345")  # 12 left, 8 sent: wait
    assert reader.next_event() is http_events.NEED_DATA


def test_trailer_fields_may_reach_the_count_but_not_pass_it() -> None:
    four = b"0\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(4)) + b"\r\n"
    (end,) = events_of(four, fields=4)
    assert type(end) is http_events.EndOfMessage and len(end.headers) == 4
    assert refusal(four, fields=3) == (431, "Too many trailer fields")


def test_data_events_mark_where_a_chunk_starts_and_ends() -> None:
    reader = ChunkedReader(100, 200, 4)
    reader.receive_data(b"5\r\nhel")
    first = reader.next_event()
    reader.receive_data(b"lo\r\n3\r\nabc\r\n0\r\n\r\n")
    rest = [reader.next_event() for _ in range(3)]
    assert [(bytes(e.data), e.chunk_start, e.chunk_end) for e in (first, *rest[:2])] == [
        (b"hel", True, False),
        (b"lo", False, True),
        (b"abc", True, True),
    ]
    assert type(rest[2]) is http_events.EndOfMessage


def test_a_reader_made_before_any_body_byte_starts_empty() -> None:
    reader = ChunkedReader(100, 200, 4)
    assert reader.next_event() is http_events.NEED_DATA
    reader.receive_data(b"0\r\n\r\n")
    assert type(reader.next_event()) is http_events.EndOfMessage
    assert reader.trailing_data == (b"", False)


# The framing fields of a trailer section, checked by the reader itself since it stopped
# handing them to h11's EndOfMessage: the same fields out and the same refusals, in h11's words,
# as h11's own check of them (normalize_and_validate), in both h11 and h11_mypyc.
_TRAILER_NAMES = [b"Content-Length", b"content-length", b"Transfer-Encoding", b"X-Sum", b"TE"]
_TRAILER_VALUES = [
    b"1", b"01", b"1, 1", b"1,2", b"x", b"", b"1" * 20, b"1" * 21, b" 7 ", b"chunked",
    b"Chunked", b"gzip", b"chunked, gzip", b"\xd9\xa1",
]  # fmt: skip


def _parsers() -> list[Any]:
    import importlib.util

    return [
        importlib.import_module(name)
        for name in ("h11", "h11_mypyc")
        if importlib.util.find_spec(name) is not None
    ]


@given(
    st.lists(
        st.tuples(st.sampled_from(_TRAILER_NAMES), st.sampled_from(_TRAILER_VALUES)), max_size=4
    )
)
@settings(max_examples=300, deadline=None)
def test_trailer_framing_fields_are_judged_as_h11_judges_them(
    fields: list[tuple[bytes, bytes]],
) -> None:
    raw = b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"
    ours: object
    try:
        end = events_of(raw, trailer=10_000, fields=10)[-1]
        assert type(end) is http_events.EndOfMessage
        ours = ("ok", end.headers)
    except ProtocolError as exc:
        ours = ("refused", exc.status_hint, exc.message)
    assert _parsers()
    for h11 in _parsers():
        # the fields as the reader's grammar passes them: values without the optional spaces
        given_fields = [(n, v.strip(b" \t")) for n, v in fields]
        theirs: object
        try:
            theirs = ("ok", list(h11.EndOfMessage(headers=given_fields).headers))
        except h11.LocalProtocolError as exc:
            theirs = ("refused", 400, f"Malformed trailer section: {exc}")
        assert ours == theirs, h11
