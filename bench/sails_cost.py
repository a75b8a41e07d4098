"""Server instructions per request, one at a time over one connection, counted by callgrind:
HTTP keep-alive against Sails virtual requests over one Socket.IO WebSocket (EIO=3, as
sails.io.js connects), same route of bench.app:app. The instruction-count companion of
bench/sails_bench.py (which measures CPU time and needs a quiet machine): load does not change
these. A benchmark, not a test: it prints figures and asserts nothing.

Usage (from the project root):
    .venv/bin/python bench/sails_cost.py [--requests 1000] [--routes hello,echo] [--think-ms 0]
Each figure is the server's count with --requests + 1 requests minus its count with 1, over
--requests (the server runs under valgrind, which must be installed).

Two regimes. With --think-ms 0 the next request is sent as soon as the reply is read, and under
valgrind (the server some 50x slower) it is nearly always there when the server reads again:
no request waits for the socket. With --think-ms 5 the client waits that long after each reply,
so the server has gone back to waiting for the socket every time, as it does at full speed with
one request at a time (bench/sails_bench.py's regime: the client takes longer to answer than
the server takes to look again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import sails_bench as sb  # noqa: E402  (the project root first, as the server has it)


def start(port: int) -> tuple[subprocess.Popen[bytes], str]:
    out = tempfile.NamedTemporaryFile(suffix=".cg", delete=False).name  # noqa: SIM115
    prefix = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
    return sb.start_server(port, prefix, timeout=300), out


def total(proc: subprocess.Popen[bytes], out: str) -> int:
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    return callgrind_total(out)


def callgrind_total(out: str) -> int:
    """The instruction total of callgrind's output file ``out`` (which is then removed)."""
    text = open(out).read()  # noqa: SIM115
    os.unlink(out)
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if m is None:
        raise SystemExit("no callgrind total")
    return int(m.group(1))


def http_requests(port: int, route: str, n: int, think: float = 0.0) -> None:
    request = sb.http_request(route)
    sock = socket.create_connection(("127.0.0.1", port))
    reader = sb.Reader(sock)
    for _ in range(n):
        sock.sendall(request)
        reader.http_response()
        if think:
            time.sleep(think)
    sock.close()


def virtual_requests(port: int, route: str, n: int, think: float = 0.0) -> None:
    reader = sb.sio_connect(port, 3)
    frames = sb.virtual_frames(route)
    for i in range(n):
        reader.sock.sendall(frames[i % 100])
        while reader.ws_frame()[:2] != b"43":  # else a heartbeat
            pass
        if think:
            time.sleep(think)
    reader.sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--routes", default="hello,echo")
    ap.add_argument("--think-ms", type=float, default=0.0, help="pause after each reply")
    a = ap.parse_args()
    for route in a.routes.split(","):
        per = {}
        for kind, drive in (("http", http_requests), ("sails", virtual_requests)):
            counts = []
            for n in (1, a.requests + 1):
                port = sb.free_port()
                proc, out = start(port)
                drive(port, route, n, a.think_ms / 1000)
                counts.append(total(proc, out))
            per[kind] = (counts[1] - counts[0]) / a.requests
        print(
            json.dumps(
                {
                    "route": route,
                    "http_instructions": round(per["http"]),
                    "sails_instructions": round(per["sails"]),
                    "http_over_sails": round(per["http"] / per["sails"], 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
