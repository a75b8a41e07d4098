"""Requests through a real HTTPSession in one process: the request path without the kernel's noise.

Serves a small app (GET /hello, POST /echo with a JSON body, and the same two as Sails virtual
requests over one Socket.IO WebSocket) on one end of a Unix socketpair and drives it from the
other end, one request at a time (keep-alive). Run the same script against two trees to compare
them; for instruction counts run it under valgrind with two request counts and take the
difference per request (no start-up cost in the figure):

    PYTHONPATH=<tree> python bench/inprocess.py --route hello -n 20000 --reps 5
    PYTHONPATH=<tree> valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/inprocess.py --route hello -n 2000 --reps 1   # and -n 4000

A benchmark, not a test: numbers go to stdout as JSON lines, nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import time
from typing import Any

import trio

from gateway import App, Request, Response
from gateway.server.http_session import HTTPSession
from gateway.server.serve import ConnectionInfo, Server
from gateway.settings import load_settings

ECHO_BODY = json.dumps({"a": 1, "b": [1, 2, 3], "text": "x" * 900}).encode()


def make_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(req: Request, res: Response) -> None:
        res.set("Content-Type", "text/plain")
        await res.send("hello")

    @app.post("/echo")
    async def echo(req: Request, res: Response) -> None:
        await res.json(json.loads(await req.read()))

    return app


def http_request(route: str) -> bytes:
    if route == "hello":
        return b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    return (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(ECHO_BODY)
    ) + ECHO_BODY


def mask(payload: bytes) -> bytes:
    key = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class Reader:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def need(self, n: int) -> None:
        while len(self.buf) < n:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buf += data

    async def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            await self.need(len(self.buf) + 1)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    async def http_response(self) -> None:
        head = await self.head()
        i = head.lower().find(b"content-length:")
        length = int(head[i + 15 : head.index(b"\r\n", i)]) if i >= 0 else 0
        await self.need(length)
        self.buf = self.buf[length:]

    async def ws_frame(self) -> bytes:
        await self.need(2)
        n, hl = self.buf[1] & 0x7F, 2
        if n == 126:
            await self.need(4)
            n, hl = int.from_bytes(self.buf[2:4], "big"), 4
        await self.need(hl + n)
        data, self.buf = self.buf[hl : hl + n], self.buf[hl + n :]
        return data


async def drive(route: str, n: int, stream: trio.SocketStream) -> None:
    r = Reader(stream)
    if route.startswith("sails-"):
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            (
                "GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert (await r.head()).startswith(b"HTTP/1.1 101")
        assert (await r.ws_frame()).startswith(b"0{")
        assert (await r.ws_frame()) == b"40"
        method, url, data = (
            ("get", "/hello", {})
            if route == "sails-hello"
            else ("post", "/echo", json.loads(ECHO_BODY))
        )
        frames = [
            mask(
                f'42{i}["{method}",'.encode()
                + json.dumps({"method": method, "headers": {}, "data": data, "url": url}).encode()
                + b"]"
            )
            for i in range(10)
        ]
        for i in range(n):
            await stream.send_all(frames[i % 10])
            while not (await r.ws_frame()).startswith(b"43"):
                pass  # a heartbeat
        return
    req = http_request(route)
    for _ in range(n):
        await stream.send_all(req)
        await r.http_response()


async def run_once(route: str, n: int) -> dict[str, Any]:
    """One connection (one socket for the Sails routes): a warm-up, then n timed requests."""
    settings = load_settings(
        "default",
        env={},
        overrides={
            "server.access_log": "false",
            "http.max_requests_per_connection": "100000000",
            "websocket.idle_timeout_s": "3600",
        },
    )
    app = make_app()
    app.bind(settings)
    server = Server(app, settings)
    a, b = socket.socketpair()
    client = trio.SocketStream(trio.socket.from_stdlib_socket(a))
    server_side = trio.SocketStream(trio.socket.from_stdlib_socket(b))
    info = ConnectionInfo(("127.0.0.1", 40000), "http", False, "127.0.0.1:40000")
    session = HTTPSession(server, server_side, info)
    warm = min(n, 200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        if route.startswith("sails-"):
            # one socket for warm-up and measurement: time both, subtract the warm-up's share
            cpu0, t0 = time.process_time(), time.perf_counter()
            await drive(route, warm + n, client)
            cpu = (time.process_time() - cpu0) * n / (warm + n)
            wall = (time.perf_counter() - t0) * n / (warm + n)
        else:
            await drive(route, warm, client)
            cpu0, t0 = time.process_time(), time.perf_counter()
            await drive(route, n, client)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return {
        "route": route,
        "requests": n,
        "per_cpu_s": round(n / cpu, 1) if cpu else 0.0,
        "us_per_request": round(cpu / n * 1e6, 2),
        "rps": round(n / wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--route", default="hello", choices=["hello", "echo", "sails-hello", "sails-echo"]
    )
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    for _ in range(args.reps):
        print(json.dumps(trio.run(run_once, args.route, args.n)), flush=True)


if __name__ == "__main__":
    main()
