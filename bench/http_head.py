"""Micro-benchmark of the sans-IO HTTP layer alone: a typical ~200-byte GET head, and a chunked
POST (4 chunks of 1 KiB), fed through one kept-alive ServerConnection N times, with the target
split the session reads. A benchmark, not a test: it prints per-request figures, asserts nothing.

Usage (from the project root):
    .venv/bin/python bench/http_head.py [--requests 10000] [--repeat 5]
Wall-clock time on a shared machine is noisy; instruction counts are not. Run it under
callgrind twice, with --requests 1 and --requests 2001, and divide the difference by 2000:
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/http_head.py --requests 2001 --repeat 1 --only get
"""

from __future__ import annotations

import argparse
import time

import h11

from gateway.http.connection import HTTPLimits, ServerConnection

GET = (
    b"GET /hello?name=world HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    b"X-Request-Id: 0123456789abcdef\r\n\r\n"
)
CHUNKED = (
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
    + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 4
    + b"0\r\n\r\n"
)


def run_get(n: int) -> float:
    conn = ServerConnection(HTTPLimits())
    start = time.perf_counter()
    for _ in range(n):
        conn.receive_data(GET)
        conn.next_event()  # the Request
        url, path, query, host = conn.target
        conn.next_event()  # its EndOfMessage
        conn.start_next_cycle()
    return time.perf_counter() - start


def run_chunked(n: int) -> float:
    conn = ServerConnection(HTTPLimits())
    start = time.perf_counter()
    for _ in range(n):
        conn.receive_data(CHUNKED)
        while type(conn.next_event()) is not h11.EndOfMessage:
            pass
        conn.start_next_cycle()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["get", "chunked"])
    args = parser.parse_args()
    for name, run in (("get", run_get), ("chunked", run_chunked)):
        if args.only not in (None, name):
            continue
        best = min(run(args.requests) for _ in range(args.repeat))
        print(f"{name}: {best / args.requests * 1e9:.0f} ns per request (best of {args.repeat})")


if __name__ == "__main__":
    main()
