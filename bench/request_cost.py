"""In-process per-request cost: one HTTPSession of a real Server serving N keep-alive
``GET /hello`` requests (or, with --echo, ``POST /echo`` with a 1 KiB JSON body, as the side-by-side
harness sends) (bench.app, default profile, access log on as shipped) from a fake stream
that hands it one request per read and swallows the replies: no kernel, no client, no other task.
The fake stream is not a socket, so the session reads and writes it through the stream's methods
(as it does a TLS stream: a schedule point per read and per write, which a plain socket, read
directly, does not pay; bench/socket_cost.py counts that path over real sockets).
A benchmark, not a test: it prints per-request figures and asserts nothing. It imports only what
every version of the gateway has, so the same script measures two trees (before/after a change).

Usage (from the project root, or with PYTHONPATH pointing at another tree):
    .venv/bin/python bench/request_cost.py [--requests 20000] [--repeat 5] [--observe]
        [--no-access-log] [--echo]
Wall-clock time on a shared machine is noisy; instruction counts are not. Run it under callgrind
with --requests 1 and --requests 2001 and divide the difference by 2000:
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/request_cost.py --requests 2001 --repeat 1
--observe also times the metrics counter alone (gateway.app.metrics, where it exists).
$GATEWAY_HTTP_PARSER=h11|h11_mypyc picks the parser (gateway.http.parser, where it exists).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import trio

GET = (
    b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\nConnection: keep-alive\r\n\r\n"
)
# a 1 KiB JSON object shaped like the side-by-side harness's echo_body.json (a device report)
_BODY = json.dumps(
    {
        "device_id": "edge-gw-00042",
        "firmware": "3.14.159-rc2",
        "online": True,
        "location": {"lat": 52.520008, "lon": 13.404954, "site": "berlin-mitte-rack-7"},
        "tags": ["sensor", "gateway", "zone-a", "priority-high", "batch-17"],
        "readings": [{"ch": i, "v": 20.5 + i, "unit": "C", "ok": True} for i in range(16)],
    }
).encode()
ECHO = (
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_BODY), _BODY)
)


class FakeStream(trio.abc.HalfCloseableStream):
    """Gives the session ``n`` requests, one per read, then EOF; counts what it is sent."""

    def __init__(self, n: int, request: bytes = GET) -> None:
        self.left = n
        self.sent = 0
        self.request = request

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.left == 0:
            return b""
        self.left -= 1
        return self.request

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def serve(n: int, access_log: bool = True, request: bytes = GET) -> float:
    from bench.app import app
    from gateway.server.http_session import HTTPSession
    from gateway.server.serve import ConnectionInfo, Server
    from gateway.settings import load_settings

    # one connection for all of them (the profile recycles a connection after 1000)
    settings = load_settings(
        "default",
        env={},
        overrides={"http.max_requests_per_connection": str(n + 1), "server.access_log": access_log},
    )
    app.bind(settings)
    server = Server(app, settings)
    stream = FakeStream(n, request)
    session = HTTPSession(
        server, stream, ConnectionInfo(("127.0.0.1", 40000), "http", False, "127.0.0.1:40000")
    )
    start = time.perf_counter()
    await session.run()
    elapsed = time.perf_counter() - start
    server._flush_access()
    if stream.sent < 100 * n:
        raise RuntimeError(f"{stream.sent} bytes of replies to {n} requests")
    return elapsed


def observe_cost(n: int) -> float:
    from gateway.app.metrics import Metrics

    m = Metrics()
    observe = m.observe
    start = time.perf_counter()
    for _ in range(n):
        observe("GET", 200, False, "http", 0.0004, 0, 5, "/hello")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--observe", action="store_true")
    p.add_argument("--no-access-log", action="store_true", help="server.access_log = false")
    p.add_argument("--echo", action="store_true", help="POST /echo (1 KiB JSON) instead")
    args = p.parse_args()
    request = ECHO if args.echo else GET
    real_stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # the access log  # noqa: SIM115
    try:
        best = min(
            trio.run(serve, args.requests, not args.no_access_log, request)
            for _ in range(args.repeat)
        )
    finally:
        sys.stderr.close()
        sys.stderr = real_stderr
    print(
        f"{'POST /echo' if args.echo else 'GET /hello'} in-process: "
        f"{best / args.requests * 1e6:.2f} us per request (best of {args.repeat} x {args.requests})"
    )
    if args.observe:
        best = min(observe_cost(args.requests * 10) for _ in range(args.repeat))
        print(f"Metrics.observe alone: {best / (args.requests * 10) * 1e9:.0f} ns per call")


if __name__ == "__main__":
    main()
