# The raw-bytes corpus for comparing the two HTTP parsers the gateway can run with (h11 and the
# compiled fork h11_mypyc, gateway.http.parser): request heads and bodies of every smuggling and
# framing shape we know (duplicate Content-Length, CL with TE, obs-fold, bare CR/LF, huge chunk
# sizes, invalid tokens, ...), and responses for the client side. Also runnable as a script:
# `python -m tests.parser_corpus` feeds the request corpus to the gateway's own ServerConnection
# (with whichever parser $GATEWAY_HTTP_PARSER selects) and prints the outcomes as JSON, so that
# tests/test_parser_differential.py can compare the gateway's behaviour under each parser.
from __future__ import annotations

import json
import sys
from typing import Any

HOST = b"Host: example.com\r\n"


# (name, raw bytes). Each shape appears once; the tests feed each one whole and byte by byte.
REQUESTS: list[tuple[str, bytes]] = [
    ("get", b"GET /hello HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("get-query", b"GET /a/b?x=1&y=%20 HTTP/1.1\r\n" + HOST + b"Accept: */*\r\n\r\n"),
    ("http10-no-host", b"GET / HTTP/1.0\r\n\r\n"),
    ("http10-keepalive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    ("post-cl", b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"),
    ("post-cl-zero", b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n"),
    ("post-cl-short-eof", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc"),
    (
        "chunked",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    ),
    (
        "chunked-upper-hex-ows",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: Chunked\r\n\r\n"
        b"A  \r\n0123456789\r\n0\r\n\r\n",
    ),
    (
        "chunked-eof-mid",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhe",
    ),
    (
        "chunked-huge-size",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffff\r\nabc",
    ),
    (
        "chunked-size-21-digits",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"100000000000000000000\r\nabc",
    ),
    (
        "chunked-size-2^64",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"10000000000000000\r\nabc",
    ),
    (
        "chunked-negative",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc",
    ),
    (
        "chunked-0x-prefix",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
    ),
    (
        "chunked-bad-footer",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhelloXX0\r\n\r\n",
    ),
    (
        "chunked-lf-footer",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
    ),
    (
        "chunked-bare-lf-size",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunked-ext-ctl",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;a=\x00\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunked-end-lf",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\n",
    ),
    (
        "chunked-trailer-fold",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"0\r\nX: a\r\n b\r\n\r\n",
    ),
    (
        "chunked-trailer-bad-cl",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"0\r\nContent-Length: x\r\n\r\n",
    ),
    (
        "chunked-trailer-te",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"0\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n",
    ),
    (
        "dup-cl-same",
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    ),
    (
        "dup-cl-diff",
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ),
    ("cl-list", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3, 3\r\n\r\nabc"),
    ("cl-plus", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: +3\r\n\r\nabc"),
    ("cl-neg", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n"),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 0x3\r\n\r\nabc"),
    ("cl-space-inside", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1 2\r\n\r\nabc"),
    ("cl-21-digits", b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: " + b"9" * 21 + b"\r\n\r\n"),
    (
        "cl-20-digits",
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: " + b"0" * 19 + b"3\r\n\r\nabc",
    ),
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"0\r\n\r\n",
    ),
    ("te-gzip", b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n"),
    (
        "te-gzip-chunked",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    ),
    (
        "te-dup",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-space-colon",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    ("te-vtab", b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\r\n  b\r\n\tc\r\n\r\n"),
    ("obs-fold-cl", b"POST / HTTP/1.1\r\n" + HOST + b"X: a\r\n Content-Length: 6\r\n\r\n"),
    ("obs-fold-first", b"GET / HTTP/1.1\r\n " + HOST + b"\r\n"),
    ("bare-lf", b"GET / HTTP/1.1\n" + b"Host: example.com\n\n"),
    ("bare-lf-mixed", b"GET / HTTP/1.1\r\nHost: example.com\nX: y\r\n\r\n"),
    ("lf-crlf-end", b"GET / HTTP/1.1\r\nHost: example.com\r\n\n"),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: example.com\rX: y\r\n\r\n"),
    ("bare-cr-line-end", b"GET / HTTP/1.1\rHost: example.com\r\r"),
    ("leading-crlf", b"\r\n\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("leading-lf", b"\nGET / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("empty-line", b"\r\n"),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + HOST + b"X: a\x00b\r\n\r\n"),
    ("ctl-in-value", b"GET / HTTP/1.1\r\n" + HOST + b"X: a\x01b\x7f\r\n\r\n"),
    ("ff-in-value", b"GET / HTTP/1.1\r\n" + HOST + b"X: a\x0cb\r\n\r\n"),
    ("obs-text", b"GET / HTTP/1.1\r\n" + HOST + b"X: caf\xc3\xa9 \xff\r\n\r\n"),
    ("value-ows", b"GET / HTTP/1.1\r\n" + HOST + b"X:  \t a b \t \r\n\r\n"),
    ("value-empty", b"GET / HTTP/1.1\r\n" + HOST + b"X:\r\n\r\n"),
    ("name-space", b"GET / HTTP/1.1\r\n" + HOST + b"X Y: 1\r\n\r\n"),
    ("name-empty", b"GET / HTTP/1.1\r\n" + HOST + b": 1\r\n\r\n"),
    ("name-no-colon", b"GET / HTTP/1.1\r\n" + HOST + b"NoColon\r\n\r\n"),
    ("name-utf8", b"GET / HTTP/1.1\r\n" + HOST + b"X-\xc3\xa9: 1\r\n\r\n"),
    ("name-tab-colon", b"GET / HTTP/1.1\r\n" + HOST + b"X\t: 1\r\n\r\n"),
    ("name-symbols", b"GET / HTTP/1.1\r\n" + HOST + b"!#$%&'*+-.^_`|~: 1\r\n\r\n"),
    ("name-paren", b"GET / HTTP/1.1\r\n" + HOST + b"X(y): 1\r\n\r\n"),
    ("method-lower", b"get / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("method-token", b"M-SEARCH * HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("method-bad", b"G@T / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("method-utf8", b"G\xc3\x89T / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("line-double-space", b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("line-trailing-space", b"GET / HTTP/1.1 \r\n" + HOST + b"\r\n"),
    ("line-tab", b"GET\t/\tHTTP/1.1\r\n" + HOST + b"\r\n"),
    ("line-no-version", b"GET /\r\n" + HOST + b"\r\n"),
    ("line-http09", b"GET /\r\n\r\n"),
    ("version-lower", b"GET / http/1.1\r\n" + HOST + b"\r\n"),
    ("version-2", b"GET / HTTP/2.0\r\n" + HOST + b"\r\n"),
    ("version-1.2", b"GET / HTTP/1.2\r\n" + HOST + b"\r\n"),
    ("version-1.10", b"GET / HTTP/1.10\r\n" + HOST + b"\r\n"),
    ("version-0.9", b"GET / HTTP/0.9\r\n\r\n"),
    ("target-space", b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("target-ctl", b"GET /a\x01b HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("target-utf8", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("target-fragment", b"GET /a#frag HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("target-absolute", b"GET http://example.com/a?b HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("target-asterisk", b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("target-asterisk-get", b"GET * HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("no-host-11", b"GET / HTTP/1.1\r\n\r\n"),
    ("dup-host", b"GET / HTTP/1.1\r\n" + HOST + HOST + b"\r\n"),
    ("host-bad", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("host-empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    (
        "expect-100",
        b"POST / HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    ),
    (
        "expect-other",
        b"POST / HTTP/1.1\r\n" + HOST + b"Expect: 200-ok\r\nContent-Length: 0\r\n\r\n",
    ),
    ("connection-close", b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"),
    (
        "upgrade-ws",
        b"GET /ws HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ),
    (
        "pipelined",
        b"GET /1 HTTP/1.1\r\n"
        + HOST
        + b"\r\nPOST /2 HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n"
        + HOST
        + b"\r\n",
    ),
    (
        "pipelined-chunked-then-get",
        b"POST /1 HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /2 HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    (
        "smuggle-cl-body-is-request",
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 30\r\n\r\n"
        b"GET /admin HTTP/1.1\r\nX: y\r\n\r\n",
    ),
    ("eof-mid-head", b"GET / HTTP/1.1\r\nHost: exa"),
    ("eof-mid-line", b"GET / HT"),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    (
        "many-headers",
        b"GET / HTTP/1.1\r\n"
        + HOST
        + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(80))
        + b"\r\n",
    ),
    ("long-value", b"GET / HTTP/1.1\r\n" + HOST + b"X: " + b"v" * 9000 + b"\r\n\r\n"),
    ("long-target", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("long-head-incomplete", b"GET / HTTP/1.1\r\n" + b"X: " + b"v" * 20000),
]

RESPONSES: list[tuple[str, bytes]] = [
    ("ok-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    ("no-reason", b"HTTP/1.1 204\r\n\r\n"),
    ("no-reason-space", b"HTTP/1.1 204 \r\n\r\n"),
    ("http10-eof-body", b"HTTP/1.0 200 OK\r\n\r\nuntil close"),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    (
        "continue-then-ok",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ),
    ("status-3-digits", b"HTTP/1.1 2000 OK\r\n\r\n"),
    ("status-99", b"HTTP/1.1 099 Odd\r\n\r\n"),
    ("reason-obs-text", b"HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\nContent-Length: 0\r\n\r\n"),
    ("reason-ctl", b"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n"),
    ("version-lower", b"http/1.1 200 OK\r\n\r\n"),
    ("no-version", b"200 OK\r\n\r\n"),
    ("dup-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    (
        "cl-te",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    (
        "switch-101",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes",
    ),
    ("eof-mid-body", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
    ("garbage", b"SSH-2.0-OpenSSH_9.2\r\n"),
]


def gateway_outcome(raw: bytes, bytewise: bool) -> list[Any]:
    """What the gateway's ServerConnection makes of ``raw`` then EOF (answering every request
    with nothing, as the server does between cycles): events as JSON-able lists, then the error
    (status and message) if one was raised."""
    from gateway.errors import ProtocolError
    from gateway.http import events as http_events
    from gateway.http.connection import HTTPLimits, Request, ServerConnection

    conn = ServerConnection(HTTPLimits())
    out: list[Any] = []
    chunks = [raw[i : i + 1] for i in range(len(raw))] if bytewise else [raw]
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            for _ in range(10_000):  # a bound: a loop that spins is a failure, not a hang
                ev = conn.next_event()
                if ev is http_events.NEED_DATA:
                    break
                if ev is http_events.PAUSED:
                    conn.start_next_cycle()
                    out.append(["cycle"])
                    continue
                kind = type(ev).__name__
                if type(ev) is Request:
                    out.append(
                        [kind, ev.method.hex(), ev.target.hex(), ev.http_version.hex()]
                        + [[n.hex(), v.hex()] for n, v in ev.headers]
                    )
                elif type(ev) is http_events.Data:
                    out.append([kind, bytes(ev.data).hex()])
                elif type(ev) is http_events.EndOfMessage:
                    out.append([kind] + [[n.hex(), v.hex()] for n, v in ev.headers])
                elif type(ev) is http_events.ConnectionClosed:
                    out.append([kind])
                    return out
                else:
                    out.append(["unexpected", repr(ev)])
                    return out
            else:
                out.append(["spinning"])
                return out
    except ProtocolError as exc:
        out.append(["error", exc.status_hint, exc.message])
    return out


def main() -> None:
    """Print the gateway's outcome for every request of the corpus, whole and byte by byte,
    and the parser it ran with, as one JSON object."""
    from gateway.http.parser import NAME

    cases = sys.argv[1:] or [name for name, _ in REQUESTS]
    raw = dict(REQUESTS)
    result = {
        "parser": NAME,
        "outcomes": {
            name: {
                "whole": gateway_outcome(raw[name], False),
                "bytewise": gateway_outcome(raw[name], True),
            }
            for name in cases
        },
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
