"""Server instructions per request over real loopback sockets, counted by callgrind: a figure
the machine's load does not change, for comparing two trees or the gateway with the bare
trio+h11 loop of ../shared/bench (user-space instructions only; syscalls per request come from
../shared/bench/syscalls.sh). A benchmark, not a test: it prints figures and asserts nothing.

Usage (from the project root):
    .venv/bin/python bench/socket_cost.py [--requests 2000] [--conns 16] [--path /hello]
        [--post FILE] -- SERVER_CMD... (with {port} where the port goes)
    e.g. -- .venv/bin/gateway serve bench.app:app --port {port}
         -- .venv/bin/python ../shared/bench/peers/bare_trio.py {port}
The server runs twice under callgrind: once serving 1 request per connection, once serving
--requests in all (keep-alive, --conns connections each one request at a time, as wrk does);
the difference divided by the difference in requests is the cost of one request.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not come up")


def drive(port: int, total: int, conns: int, request: bytes) -> None:
    """``total`` requests over ``conns`` keep-alive connections, one in flight on each."""
    sel = selectors.DefaultSelector()
    left = total
    socks = []
    for _ in range(min(conns, total)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, bytearray())
        s.sendall(request)
        left -= 1
    done = 0
    while done < total:
        for key, _ in sel.select(timeout=30):
            buf: bytearray = key.data
            chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
            if not chunk:
                raise SystemExit("server closed a connection")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                continue
            m = re.search(rb"(?i)content-length: *(\d+)", bytes(buf[:end]))
            need = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) < need:
                continue
            del buf[:need]
            done += 1
            if left:
                left -= 1
                key.fileobj.sendall(request)  # type: ignore[union-attr]
    for s in socks:
        s.close()


# --cache-sim=yes --branch-sim=yes through the environment: SOCKET_COST_VALGRIND="..."
EXTRA = os.environ.get("SOCKET_COST_VALGRIND", "").split()


def measure(cmd: list[str], total: int, conns: int, request: bytes) -> dict[str, int]:
    port = free_port()
    out = tempfile.NamedTemporaryFile(suffix=".cg", delete=False).name
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *EXTRA]
    argv += [a.replace("{port}", str(port)) for a in cmd]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port, proc, time.monotonic() + 300)
        drive(port, total, conns, request)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    text = open(out).read()
    os.unlink(out)
    events = re.search(r"^events: (.*)$", text, re.M)
    m = re.search(r"^(?:summary|totals): ([\d ]+)$", text, re.M)
    if not m or not events:
        raise SystemExit("no callgrind total")
    return dict(zip(events.group(1).split(), map(int, m.group(1).split()), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--post", help="POST this file's bytes as JSON to --path")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("give the server command after --")
    if a.post:
        body = open(a.post, "rb").read()
        request = (
            f"POST {a.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    else:
        request = f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    small = measure(cmd, a.conns, a.conns, request)
    big = measure(cmd, a.requests, a.conns, request)
    n = a.requests - a.conns
    print(f"per request ({a.requests} over {a.conns} connections):")
    for event, count in big.items():
        print(f"  {event:6} {(count - small[event]) / n:12,.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
