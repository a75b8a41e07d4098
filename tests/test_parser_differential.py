# The two HTTP parsers the gateway can run with (gateway.http.parser), compared on the same bytes:
# h11 (pinned 0.16.0) and the compiled fork h11_mypyc (the `fast` extra, pinned 0.17.0). Raw
# parsers first, server and client side, whole and byte by byte, over a corpus of smuggling and
# framing shapes (tests/parser_corpus.py) and over hypothesis-made requests with random splits;
# then the header validation the fork rewrote (_headers.py) on the sending side; then the
# gateway itself: the corpus through ServerConnection in two processes, one per parser, which
# must give identical events and errors. docs/FAST_PARSER.md lists the differences the review
# found and why each one does or does not matter; the known ones are pinned here as tests.
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parser_corpus import REQUESTS, RESPONSES
from tests.peers import missing

try:
    import h11_mypyc as fast
except ImportError:  # fails every test below (tests/peers.py: a missing peer never skips)
    fast = None


@pytest.fixture(autouse=True)
def _the_fork_is_installed() -> None:
    if fast is None:
        missing("h11_mypyc (the `fast` extra)", "pip install -e '.[dev]' (the venv of make test)")


ROOT = Path(__file__).resolve().parent.parent
MAX_EVENT = 16384  # h11's max_incomplete_event_size, the same for both


def _fields(mod: ModuleType, ev: Any) -> list[Any]:
    """An event as plain data (class names and bytes), comparable across the two modules."""
    if ev is mod.NEED_DATA or ev is mod.PAUSED:
        return [ev.__name__]
    kind = type(ev).__name__
    if kind == "Request":
        return [
            kind,
            ev.method,
            ev.target,
            ev.http_version,
            list(ev.headers),
            ev.headers.raw_items(),
        ]
    if kind in ("Response", "InformationalResponse"):
        return [kind, ev.status_code, ev.reason, ev.http_version, list(ev.headers)]
    if kind == "Data":
        return [kind, bytes(ev.data), ev.chunk_start, ev.chunk_end]
    if kind == "EndOfMessage":
        return [kind, list(ev.headers)]
    return [kind]


def _states(mod: ModuleType, conn: Any) -> list[Any]:
    return [conn.our_state.__name__, conn.their_state.__name__, conn.trailing_data]


def _feed(mod: ModuleType, conn: Any, chunks: list[bytes], out: list[Any]) -> None:
    """Feed ``chunks`` then EOF; answer each complete request (server) with an empty 200."""
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        for _ in range(10_000):
            try:
                ev = conn.next_event()
            except mod.RemoteProtocolError as exc:
                out.append(["RemoteProtocolError", str(exc), exc.error_status_hint])
                return
            except Exception as exc:  # a difference to report, not a crash of the test
                out.append(["crash", type(exc).__name__, str(exc)])
                return
            out.append(_fields(mod, ev))
            if ev is mod.NEED_DATA:
                break
            if type(ev) is mod.ConnectionClosed:
                return
            if ev is mod.PAUSED:
                if conn.our_role is not mod.SERVER or conn.our_state is not mod.SEND_RESPONSE:
                    return
                out.append(
                    conn.send(mod.Response(status_code=200, headers=[("content-length", "0")]))
                )
                if conn.our_state is mod.SWITCHED_PROTOCOL:  # a CONNECT we just accepted
                    return
                out.append(conn.send(mod.EndOfMessage()))
                if conn.our_state is not mod.DONE or conn.their_state is not mod.DONE:
                    return  # MUST_CLOSE, or a protocol switch we just declined
                conn.start_next_cycle()
        else:
            out.append(["spinning"])
            return


def serve(mod: ModuleType, chunks: list[bytes]) -> list[Any]:
    """What ``mod``'s server connection makes of the chunks (then EOF)."""
    conn = mod.Connection(mod.SERVER, max_incomplete_event_size=MAX_EVENT)
    out: list[Any] = []
    _feed(mod, conn, chunks, out)
    return out + [_states(mod, conn)]


def fetch(mod: ModuleType, chunks: list[bytes]) -> list[Any]:
    """What ``mod``'s client connection makes of the chunks as the reply to a GET."""
    conn = mod.Connection(mod.CLIENT, max_incomplete_event_size=MAX_EVENT)
    out: list[Any] = [
        conn.send(mod.Request(method="GET", target="/", headers=[("Host", "example.com")])),
        conn.send(mod.EndOfMessage()),
    ]
    _feed(mod, conn, chunks, out)
    return out + [_states(mod, conn)]


def _splits(raw: bytes, how: str) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))] if how == "bytewise" else [raw]


# every shape whole and byte by byte, but the few over-long heads whole only (fed byte by byte
# they would only add time: the limit they hit is the same count of bytes)
_SERVER_CASES = [
    pytest.param(raw, how, id=f"{name}-{how}")
    for name, raw in REQUESTS
    for how in ("whole", "bytewise")
    if how == "whole" or len(raw) <= 2000
]


@pytest.mark.parametrize(("raw", "how"), _SERVER_CASES)
def test_server_side_parsing_is_identical(raw: bytes, how: str) -> None:
    chunks = _splits(raw, how)
    assert serve(fast, chunks) == serve(h11, chunks)


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize(("name", "raw"), RESPONSES, ids=[n for n, _ in RESPONSES])
def test_client_side_parsing_is_identical(name: str, raw: bytes, how: str) -> None:
    chunks = _splits(raw, how)
    assert fetch(fast, chunks) == fetch(h11, chunks)


def test_the_corpus_exercises_both_outcomes() -> None:
    # a corpus where everything passed (or everything failed) would compare little
    outcomes = [serve(h11, [raw])[-2][0] for _, raw in REQUESTS]
    assert "RemoteProtocolError" in outcomes
    assert outcomes.count("RemoteProtocolError") < len(outcomes) - 20


# -- hypothesis: requests assembled from the pieces smuggling is made of ----------------------

_LINE_END = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"])
_REQUEST_LINE = st.sampled_from(
    [
        b"GET / HTTP/1.1",
        b"POST /x?y=1 HTTP/1.1",
        b"GET / HTTP/1.0",
        b"PUT * HTTP/1.1",
        b"CONNECT a:1 HTTP/1.1",
        b"GET  / HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b"G\x00T / HTTP/1.1",
        b"GET /\xff HTTP/1.1",
        b"GET / HTTP/9.9",
    ]
)
_FIELD = st.one_of(
    st.sampled_from(
        [
            b"Host: a",
            b"Host: a",
            b"Content-Length: 3",
            b"Content-Length: 0",
            b"Content-Length: 03",
            b"Content-Length:3 ",
            b"Content-Length: 3,3",
            b"Content-Length: 99999999999999999999",
            b"Content-Length: 999999999999999999999",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: CHUNKED ",
            b"Transfer-Encoding: identity",
            b"Transfer-Encoding: gzip, chunked",
            b"Transfer-Encoding : chunked",
            b" Transfer-Encoding: chunked",
            b"\tX: folded",
            b"Connection: close",
            b"Connection: keep-alive, Upgrade",
            b"Upgrade: websocket",
            b"Expect: 100-continue",
            b"X: \x00",
            b"X: a\x0bb",
            b"X:",
            b": empty",
            b"X-\xff: y",
        ]
    ),
    st.builds(
        lambda n, v: n + b": " + v,
        st.binary(min_size=0, max_size=6),
        st.binary(min_size=0, max_size=8),
    ),
)
_BODY = st.one_of(
    st.sampled_from(
        [
            b"",
            b"abc",
            b"3\r\nabc\r\n0\r\n\r\n",
            b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            b"ffffffffffffffffffff\r\n",
            b"3\nabc\n0\n\n",
            b"0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"abcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
    ),
    st.binary(max_size=24),
)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    parts = [draw(_REQUEST_LINE), draw(_LINE_END)]
    for field in draw(st.lists(_FIELD, max_size=6)):
        parts += [field, draw(_LINE_END)]
    parts += [draw(_LINE_END), draw(_BODY)]
    raw = b"".join(parts)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(raw)), max_size=6))))
    return raw, cuts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_made_up_requests_parse_identically_however_they_are_split(
    case: tuple[bytes, list[int]],
) -> None:
    raw, cuts = case
    bounds = [0, *cuts, len(raw)]
    chunks = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    assert serve(fast, chunks) == serve(h11, chunks)
    assert serve(fast, [raw]) == serve(h11, [raw])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_identically(raw: bytes) -> None:
    assert serve(fast, [raw]) == serve(h11, [raw])
    assert fetch(fast, [raw]) == fetch(h11, [raw])


# -- the sending side: header validation, which the fork rewrote (byte classes, not regexes) ---


def _send(mod: ModuleType, headers: list[tuple[bytes, bytes]]) -> Any:
    conn = mod.Connection(mod.CLIENT)
    try:
        return conn.send(mod.Request(method="GET", target="/", headers=[(b"Host", b"a"), *headers]))
    except mod.LocalProtocolError as exc:
        return ("LocalProtocolError", str(exc))


_TRICKY = st.sampled_from(
    [
        b"",
        b" ",
        b"\t",
        b"\x00",
        b"\x0b",
        b"\x0c",
        b"\r",
        b"\n",
        b"\x7f",
        b"\x01",
        b"\x80",
        b"\xff",
        b"a",
        b"-",
        b":",
        b"(",
        b'"',
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.one_of(_TRICKY, st.binary(max_size=2)), max_size=4).map(b"".join),
            st.lists(st.one_of(_TRICKY, st.binary(max_size=2)), max_size=5).map(b"".join),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_header_validation_on_send_is_identical(headers: list[tuple[bytes, bytes]]) -> None:
    assert _send(fast, headers) == _send(h11, headers)


def test_response_writer_is_identical() -> None:
    for status, headers in [
        (200, [("Content-Length", "2")]),
        (204, []),
        (101, [("Upgrade", "websocket"), ("Connection", "Upgrade")]),
        (200, [("Transfer-Encoding", "chunked")]),
        (200, [("X", "a\tb")]),
    ]:
        out = []
        for mod in (h11, fast):
            conn = mod.Connection(mod.SERVER)
            conn.receive_data(
                b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
            conn.next_event()
            conn.next_event()
            cls = mod.InformationalResponse if status < 200 else mod.Response
            sent = [conn.send(cls(status_code=status, headers=headers))]
            if status >= 200 and status != 204:
                sent.append(conn.send(mod.Data(data=b"ok")))
            if status >= 200:
                sent.append(conn.send(mod.EndOfMessage()))
            out.append((sent, conn.our_state.__name__))
        assert out[0] == out[1]


# -- the differences the review found (docs/FAST_PARSER.md), pinned ---------------------------


def test_the_compiled_fork_refuses_a_bytearray_and_our_layer_never_hands_it_one() -> None:
    from gateway.http.connection import HTTPLimits, Request, ServerConnection
    from gateway.http.parser import COMPILED, NAME

    if fast.__name__ == "h11_mypyc" and _is_compiled(fast):
        with pytest.raises(TypeError):
            fast.Connection(fast.SERVER).receive_data(bytearray(b"GET / HTTP/1.1\r\n"))
    h11.Connection(h11.SERVER).receive_data(bytearray(b"GET / HTTP/1.1\r\n"))  # h11 takes it
    # trio's memory streams hand out bytearrays: the gateway converts before h11_mypyc sees them
    # (a plain head is read without h11; one with an underscore in a field name goes to h11)
    for head in (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\n\r\n",
    ):
        conn = ServerConnection(HTTPLimits())
        conn.receive_data(bytearray(head[:20]))
        conn.receive_data(bytearray(head[20:]))
        assert type(conn.next_event()) is Request, (NAME, COMPILED)


def test_sentinels_are_plain_classes_in_the_fork() -> None:
    # h11's sentinels are their own type (type(NEED_DATA) is NEED_DATA) and repr as their name;
    # the fork's are plain classes (mypyc compiles no metaclass). The gateway compares them by
    # identity only (`ev is NEED_DATA`), which both support.
    assert type(h11.NEED_DATA) is h11.NEED_DATA
    assert type(fast.NEED_DATA) is not fast.NEED_DATA
    assert fast.NEED_DATA.__name__ == h11.NEED_DATA.__name__ == "NEED_DATA"


def test_exception_classes_are_distinct_so_one_module_must_serve_both_sides() -> None:
    assert not issubclass(fast.RemoteProtocolError, h11.RemoteProtocolError)
    assert fast.PRODUCT_ID != h11.PRODUCT_ID  # "python-h11-mypyc/..." (the gateway never sends it)


def _is_compiled(mod: ModuleType) -> bool:
    from gateway.http.parser import is_compiled

    return is_compiled(mod)


# -- the gateway itself, once per parser ---------------------------------------------------------


def _gateway_outcomes(parser: str) -> dict[str, Any]:
    env = {**os.environ, "GATEWAY_HTTP_PARSER": parser, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.parser_corpus"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["parser"] == parser  # the forced parser is the one that ran
    return result["outcomes"]


def test_the_gateway_behaves_identically_with_either_parser() -> None:
    slow, quick = _gateway_outcomes("h11"), _gateway_outcomes("h11_mypyc")
    assert quick.keys() == slow.keys() == {name for name, _ in REQUESTS}
    differ = {name: (slow[name], quick[name]) for name in slow if slow[name] != quick[name]}
    assert differ == {}
    # and the comparison saw requests served and requests refused, each way of feeding them
    flat = [json.dumps(o) for o in slow.values()]
    assert any('"Request"' in o and '"error"' not in o for o in flat)
    assert sum('"error"' in o for o in flat) > 40
