"""Sails virtual requests over ONE Socket.IO WebSocket vs HTTP/1.1 keep-alive, same route.

Serves bench.app:app with the project's gateway (pinned to CPU 0), drives it from this process
(pinned to CPU 1) and reports requests/s and requests per second of *server* CPU time (the
figure least disturbed by the client's own cost), for a window of 1 (one request at a time) and
of 8 requests in flight (HTTP pipelining / concurrent virtual requests), sent in batches. Also measures the RSS
per idle Socket.IO connection (EIO=3 as sails.io.js connects) and per idle plain WebSocket.

Usage (from the project root):
    .venv/bin/python bench/sails_bench.py [--duration 5] [--window 1,8] [--idle 500] [--slices 4]
        [--think-ms 0]
HTTP and Sails take turns, --slices times each, for --duration seconds each in all.
With --think-ms the client pauses after each window's replies, as a client across a LAN (or one
that does anything with a reply) does: the server then waits for the socket before every
request. Without it the next request follows the reply at once, and it is a race whether the
server finds it there when it looks (bench/sails_cost.py counts both regimes).
A benchmark, not a test: numbers go to stdout as JSON lines, nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import psutil

ROUTES = {"hello": ("GET", "/hello", None), "echo": ("POST", "/echo", {"a": 1, "b": [1, 2, 3]})}
WS_HEAD = (
    "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def start_server(
    port: int, prefix: tuple[str, ...] = ("taskset", "-c", "0"), timeout: float = 5.0
) -> subprocess.Popen[bytes]:
    """Start the gateway on ``port`` under ``prefix`` (CPU 0; bench/sails_cost.py: valgrind)
    and wait up to ``timeout`` seconds for it to listen."""
    cmd = [sys.executable, "-m", "gateway", *serve_args(port)]
    proc = subprocess.Popen([*prefix, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_listening(proc, port, timeout)


def serve_args(port: int) -> list[str]:
    """The gateway's command line after ``gateway``: bench.app on ``port``, no access log,
    no connection caps in the way."""
    return [
        "serve",
        "bench.app:app",
        "--port",
        str(port),
        "--set",
        "server.access_log=false",
        "--set",
        "server.max_connections=2000",
        "--set",
        "websocket.max_connections=2000",
        "--set",
        "http.max_requests_per_connection=100000000",
    ]


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, timeout: float
) -> subprocess.Popen[bytes]:
    """``proc``, once something listens on ``port``; killed after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class Reader:
    def __init__(self, sock: socket.socket, rest: bytes = b"") -> None:
        self.sock = sock
        self.buf = rest

    def need(self, n: int) -> None:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data

    def ws_frame(self) -> bytes:
        self.need(2)
        n, hl = self.buf[1] & 0x7F, 2
        if n == 126:
            self.need(4)
            n, hl = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self.need(10)
            n, hl = int.from_bytes(self.buf[2:10], "big"), 10
        self.need(hl + n)
        data, self.buf = self.buf[hl : hl + n], self.buf[hl + n :]
        return data

    def http_response(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self.need(len(self.buf) + 1)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.buf = rest
        self.need(length)
        body, self.buf = self.buf[:length], self.buf[length:]
        return body


def ws_connect(port: int, target: str) -> Reader:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(WS_HEAD.format(target=target, port=port, key=key).encode())
    r = Reader(sock)
    while b"\r\n\r\n" not in r.buf:
        r.need(len(r.buf) + 1)
    head, _, r.buf = r.buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head[:80])
    return r


def sio_connect(port: int, version: int) -> Reader:
    r = ws_connect(port, f"/socket.io/?EIO={version}&transport=websocket")
    assert r.ws_frame().startswith(b"0{")
    if version == 4:
        r.sock.sendall(mask(b"40"))
    assert r.ws_frame().startswith(b"40")
    return r


def http_request(route: str) -> bytes:
    """The keep-alive HTTP request for ``route`` (ROUTES), as sent."""
    method, path, data = ROUTES[route]
    body = json.dumps(data).encode() if data is not None else b""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def virtual_frames(route: str) -> list[bytes]:
    """Masked WebSocket frames of the Sails virtual request for ``route``, ack ids 0 to 99."""
    method, path, data = ROUTES[route]
    msg = {"method": method.lower(), "headers": {}, "data": data or {}, "url": path}
    return [mask(f'42{i}["{method.lower()}",{json.dumps(msg)}]'.encode()) for i in range(100)]


def http_run(port: int, route: str, window: int, think: float, duration: float) -> int:
    req = http_request(route)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r = Reader(sock)
    done = 0
    end = time.monotonic() + duration
    batch = req * window
    while time.monotonic() < end:  # closed loop: a window out, its replies back
        sock.sendall(batch)
        for _ in range(window):
            r.http_response()
        done += window
        if think:
            time.sleep(think)
    sock.close()
    return done


def sio_run(port: int, route: str, window: int, think: float, duration: float) -> int:
    r = sio_connect(port, 3)
    frames = virtual_frames(route)
    done = 0
    end = time.monotonic() + duration
    sent = 0
    while time.monotonic() < end:  # closed loop: a window out, its acks back
        r.sock.sendall(b"".join(frames[(sent + i) % 100] for i in range(window)))
        sent += window
        got = 0
        while got < window:
            if r.ws_frame()[:2] == b"43":  # else a heartbeat
                got += 1
        done += window
        if think:
            time.sleep(think)
    r.sock.close()
    return done


def measure(
    proc: psutil.Process, runs: list[tuple[Any, tuple[Any, ...]]], duration: float, slices: int
) -> list[dict[str, float]]:
    """Run each of ``runs`` (fn, args) for ``duration`` seconds in all, taking turns in
    ``slices`` slices (drift on a shared host then falls on all of them alike); the server's
    requests, rate and CPU time for each."""
    totals = [[0, 0.0, 0.0] for _ in runs]
    for _ in range(slices):
        for total, (fn, args) in zip(totals, runs, strict=True):
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.monotonic()
            total[0] += fn(*args, duration / slices)
            total[1] += time.monotonic() - t0
            total[2] += sum(proc.cpu_times()[:2]) - cpu0
    return [
        {
            "requests": n,
            "rps": round(n / elapsed, 1),
            "server_cpu_s": round(cpu, 3),
            "per_cpu_s": round(n / cpu, 1) if cpu else 0.0,
        }
        for n, elapsed, cpu in totals
    ]


def rss(proc: psutil.Process) -> int:
    time.sleep(0.5)
    return min(proc.memory_info().rss for _ in range(3) if not time.sleep(0.1))


def idle(proc: psutil.Process, port: int, n: int, kind: str) -> dict[str, Any]:
    opener = (
        (lambda: sio_connect(port, 3).sock)
        if kind == "socketio"
        else (lambda: ws_connect(port, "/ws").sock)
    )
    opener().close()
    base = rss(proc)
    socks = [opener() for _ in range(n)]
    after = rss(proc)
    for s in socks:
        s.close()
    return {"idle": kind, "connections": n, "kib_per_conn": round((after - base) / n / 1024, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--window", default="1,8")
    ap.add_argument("--routes", default="hello,echo")
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--slices", type=int, default=4, help="turns HTTP and Sails take (each)")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="the client's pause after each window's replies (0: the next at once)",
    )
    args = ap.parse_args()
    os.sched_setaffinity(0, {1})
    port = free_port()
    server = start_server(port)
    proc = psutil.Process(server.pid)  # taskset execs the server: same pid
    try:
        for route in args.routes.split(","):
            for window in [int(w) for w in args.window.split(",")]:
                think = args.think_ms / 1000
                http_run(port, route, window, think, 0.5)  # warm-up
                sio_run(port, route, window, think, 0.5)
                h, s = measure(
                    proc,
                    [
                        (http_run, (port, route, window, think)),
                        (sio_run, (port, route, window, think)),
                    ],
                    args.duration,
                    args.slices,
                )
                print(
                    json.dumps(
                        {
                            "route": route,
                            "window": window,
                            "think_ms": args.think_ms,
                            "http": h,
                            "sails": s,
                            "ratio_per_cpu_s": round(s["per_cpu_s"] / h["per_cpu_s"], 3),
                            "ratio_rps": round(s["rps"] / h["rps"], 3),
                        }
                    ),
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(10)
    for kind in ("websocket", "socketio") if args.idle else ():
        # a fresh server each: memory freed by one kind would be reused by the other
        port = free_port()
        server = start_server(port)
        try:
            print(json.dumps(idle(psutil.Process(server.pid), port, args.idle, kind)), flush=True)
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
