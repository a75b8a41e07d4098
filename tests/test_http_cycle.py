# Sans-IO tests of gateway.http.connection.Cycle: the framing and keep-alive of one
# request/response cycle are decided there, once (bytes in, decisions out, no sockets).
from __future__ import annotations

import pytest

from gateway.http.connection import Cycle, HTTPLimits, Request, ServerConnection

DRAIN = 1000


def cycle_for(raw: bytes) -> tuple[ServerConnection, Cycle]:
    conn = ServerConnection(HTTPLimits())
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, Request)
    cycle = Cycle(conn, DRAIN)
    cycle.begin(event)
    return conn, cycle


def head(
    cycle: Cycle,
    headers: list[tuple[str, str]] | None = None,
    *,
    status: int = 200,
    closing: bool = False,
) -> bytes:
    return cycle.response_head(
        status,
        headers if headers is not None else [("Content-Length", "2")],
        head_request=False,
        closing=closing,
        date="d",
    )


@pytest.mark.parametrize(
    ("raw", "has_body", "length", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", False, None, True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", False, None, False),
        (b"GET / HTTP/1.0\r\n\r\n", False, None, False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", False, None, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", False, 0, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", True, 5, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", True, None, True),
    ],
)
def test_request_framing_read_once(
    raw: bytes, has_body: bool, length: int | None, keep_alive: bool
) -> None:
    _, cycle = cycle_for(raw)
    assert (cycle.has_body, cycle.length, cycle.client_keep_alive) == (has_body, length, keep_alive)
    assert cycle.body_done is not has_body


def test_authorization_and_upgrade_in_the_same_pass() -> None:
    _, cycle = cycle_for(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n"
        b"Upgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n"
    )
    assert cycle.authorization == b"Bearer t" and cycle.upgrade and cycle.ws_upgrade
    _, cycle = cycle_for(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n")
    assert cycle.upgrade and not cycle.ws_upgrade and cycle.authorization is None


def test_keep_alive_and_the_next_request() -> None:
    _, cycle = cycle_for(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"Connection" not in head(cycle)
    cycle.data(b"ok")
    assert not cycle.reusable(False)  # not complete yet
    cycle.end()
    assert cycle.reusable(False)
    assert not cycle.reusable(True)  # the server is closing (draining, request cap, ...)


def test_closing_and_http10_say_so_in_the_head() -> None:
    _, cycle = cycle_for(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"Connection: close\r\n" in head(cycle, closing=True)
    cycle.data(b"ok")
    cycle.end()
    assert not cycle.reusable(False)
    _, cycle = cycle_for(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head(cycle)
    cycle.data(b"o")
    cycle.end()
    assert not cycle.reusable(False)  # shorter than its Content-Length: the close ends it
    _, cycle = cycle_for(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert b"Connection: keep-alive\r\n" in head(cycle)
    _, cycle = cycle_for(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = head(cycle, [])  # no length: HTTP/1.0 reads until the close
    assert b"Connection: close\r\n" in out and b"chunked" not in out


def test_an_unread_body_keeps_the_connection_only_if_drainable() -> None:
    _, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 900\r\n\r\n")
    assert b"Connection" not in head(cycle)  # 900 <= max_drain: the server drains it
    cycle.data(b"ok")
    cycle.end()
    assert not cycle.reusable(False)  # ... and only then the connection is reusable
    cycle.body_received(900)
    assert cycle.body_done and cycle.reusable(False)
    _, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
    assert b"Connection: close\r\n" in head(cycle)
    _, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert b"Connection: close\r\n" in head(cycle)  # how long it is, nobody knows


def test_100_continue_is_sent_once_and_unasked_bodies_close() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    _, cycle = cycle_for(raw)
    assert b"Connection: close\r\n" in head(cycle)  # answered without asking: close
    _, cycle = cycle_for(raw)
    assert cycle.start_body() is True  # the first read: the client waits for it
    assert cycle.reading and b"Connection" not in head(cycle)


def test_content_length_bodies_are_read_direct() -> None:
    _, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    assert cycle.go_direct() and cycle.direct
    cycle.body_received(4)
    assert cycle.body_left() == 6 and not cycle.body_done
    cycle.body_received(6)
    assert cycle.body_left() == 0 and cycle.body_done
    _, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert not cycle.go_direct() and cycle.body_left() is None
    cycle.body_received(100)
    assert not cycle.body_done  # a chunked body ends with its last chunk
    cycle.body_ended()
    assert cycle.body_done


def test_begin_resets_the_previous_cycle() -> None:
    conn, cycle = cycle_for(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    head(cycle, [("Content-Length", "2")])
    cycle.data(b"ok")
    cycle.end()
    cycle.body_received(3)
    assert cycle.reusable(False)
    conn.next_event()  # Data
    conn.next_event()  # EndOfMessage
    conn.start_next_cycle()
    event = conn.next_event()
    assert isinstance(event, Request) and event.target == b"/next"
    cycle.begin(event)
    assert not cycle.started and not cycle.done and cycle.body_bytes == 0 and cycle.body_done


def test_a_cycle_before_its_first_request_is_an_idle_http11_one() -> None:
    # the server answers a head it could not read with a Cycle that never began: these are
    # what that answer's framing is decided from (identity: None is not False)
    cycle = Cycle(ServerConnection(HTTPLimits()), DRAIN)
    fresh = {
        "http10": False,
        "client_keep_alive": True,
        "has_body": False,
        "length": None,
        "body_bytes": 0,
        "body_done": True,
        "reading": False,
        "direct": False,
        "authorization": None,
        "upgrade": False,
        "ws_upgrade": False,
    }
    assert {k: getattr(cycle, k) for k in fresh} == fresh
    assert all(getattr(cycle, k) is v for k, v in fresh.items() if type(v) is not int)
    assert type(cycle.body_bytes) is int and cycle.body_left() is None


def test_begin_clears_reading_and_direct() -> None:
    conn, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    cycle.start_body()
    cycle.go_direct()
    assert cycle.reading is True and cycle.direct is True
    event = conn.next_event()
    while not isinstance(event, Request):  # the body, its end, then a second request
        if type(event).__name__ == "EndOfMessage":
            conn.start_next_cycle()
            conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        event = conn.next_event()
    cycle.begin(event)
    assert cycle.reading is False and cycle.direct is False


@pytest.mark.parametrize(("length", "drainable"), [(DRAIN, True), (DRAIN + 1, False)])
def test_an_unread_body_of_exactly_max_drain_bytes_is_drained(length: int, drainable: bool) -> None:
    _, cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % length)
    assert cycle.can_drain() is drainable
    assert (b"Connection: close\r\n" in head(cycle)) is not drainable
    assert cycle.keep_alive is drainable  # a bool either way: the session reads it as one
