"""What the HTTP loop does between requests, counted per request: checkpoints, head reads that
found nothing (an exception each), and waits for the socket. The counts do not depend on the
machine's speed the way times do, so they show whether a change to that loop costs a load
anything: run it against two builds under the same load and compare.

Usage (from the project root):
    .venv/bin/python bench/head_waits.py [--conns 50] [--path /hello] [--duration 4]
    .venv/bin/python bench/head_waits.py --think-ms 5 --requests 300   # one client that pauses
    .venv/bin/python bench/head_waits.py --think-ms 0 --requests 20000 [--virtual]
Another build: PYTHONPATH=<checkout> in the environment (the server imports gateway from it).

With --think-ms absent the load is wrk (-t1, --conns connections; --post FILE: POST that file),
pinned as ../shared/bench pins it: server on CPU 0,
wrk on CPU 1. With --think-ms the load is one keep-alive connection sending --requests requests,
each after a pause of that long (0: the next follows the reply at once); with --virtual, one
Socket.IO connection sending Sails virtual requests for the same route (bench/sails_bench.py's),
also one at a time. The server runs with counting wrappers around trio.lowlevel.checkpoint,
trio.lowlevel.wait_readable (socket_waits: any wait, HTTP's or a WebSocket's; with --virtual
it includes the few of the connection's handshake), HTTPSession._read_now and
HTTPSession._read_when_ready (a few hundred instructions per request, the same for every
build). The server's CPU time per request is printed too (the scheduler's count, so as noisy
as the machine). A benchmark, not a test: it prints one JSON line and asserts nothing.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench import sails_bench as sb  # noqa: E402  (the project root first, as the server has it)

# run by the server's interpreter: wrap, count, write the counts at exit, serve
_SERVER = r"""
import atexit, json, sys
import trio
from gateway.server import http_session as hs

counts = {"requests": 0, "checkpoints": 0, "reads": 0, "failed_reads": 0, "waits": 0,
          "socket_waits": 0}
_checkpoint = trio.lowlevel.checkpoint

async def checkpoint():
    counts["checkpoints"] += 1
    await _checkpoint()

trio.lowlevel.checkpoint = checkpoint
_wait_readable = trio.lowlevel.wait_readable

async def wait_readable(sock):
    counts["socket_waits"] += 1
    await _wait_readable(sock)

trio.lowlevel.wait_readable = wait_readable
_read_now = hs.HTTPSession._read_now

def read_now(self, sock, max_bytes):
    data = _read_now(self, sock, max_bytes)
    counts["reads"] += 1
    if data is None:
        counts["failed_reads"] += 1
    return data

hs.HTTPSession._read_now = read_now
_read_when_ready = hs.HTTPSession._read_when_ready

async def read_when_ready(self, sock, max_bytes):
    counts["waits"] += 1
    return await _read_when_ready(self, sock, max_bytes)

hs.HTTPSession._read_when_ready = read_when_ready
_serve_one = hs.HTTPSession._serve_one

async def serve_one(self, event):
    counts["requests"] += 1
    await _serve_one(self, event)

hs.HTTPSession._serve_one = serve_one

out = sys.argv[1]

def dump():
    with open(out, "w") as f:
        json.dump(counts, f)

atexit.register(dump)
sys.argv = ["gateway", *sys.argv[2:]]
from gateway.cli import main
main()
"""


def serve(port: int, out: str) -> subprocess.Popen[bytes]:
    cmd = ["taskset", "-c", "0", sys.executable, "-c", _SERVER, out, *sb.serve_args(port)]
    # in the tree it imports gateway from (python -c puts the working directory first)
    tree = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or ROOT
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sb.wait_listening(proc, port, 10)


def wrk(port: int, path: str, conns: int, duration: float, body: str | None) -> float:
    url = f"http://127.0.0.1:{port}{path}"
    extra = []
    if body is not None:  # a POST of that file's bytes
        with open(body, "rb") as f:
            text = f.read().decode()
        lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        lua.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(text)}\n"
        )
        lua.close()
        extra = ["-s", lua.name]
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", *extra, url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    if extra:
        os.unlink(extra[1])
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, all its threads, from the scheduler's nanosecond count
    (/proc/PID/task/*/schedstat; /proc/PID/stat's clock ticks are too coarse at ~100 µs a
    request)."""
    total = 0
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return total / 1e9


def paused_client(port: int, path: str, n: int, think: float) -> None:
    request = sb.http_request(path.lstrip("/"))  # sails_bench's request (its own /echo body)
    sock = socket.create_connection(("127.0.0.1", port))
    reader = sb.Reader(sock)
    for _ in range(n):
        sock.sendall(request)
        reader.http_response()
        time.sleep(think)
    sock.close()


def virtual_client(port: int, path: str, n: int, think: float) -> None:
    """sails_bench's virtual requests (Socket.IO, EIO=3) over one WebSocket, one at a time."""
    reader = sb.sio_connect(port, 3)
    frames = sb.virtual_frames(path.lstrip("/"))
    for i in range(n):
        reader.sock.sendall(frames[i % 100])
        while reader.ws_frame()[:2] != b"43":  # else a heartbeat
            pass
        time.sleep(think)
    reader.sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", default="/hello", choices=["/hello", "/echo"])
    ap.add_argument("--post", help="with wrk: POST this file (../shared/bench/echo_body.json)")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--think-ms", type=float, default=None, help="one client pausing this long")
    ap.add_argument("--requests", type=int, default=300, help="with --think-ms")
    ap.add_argument(
        "--virtual", action="store_true", help="with --think-ms: Sails virtual requests instead"
    )
    a = ap.parse_args()
    if a.virtual and a.think_ms is None:
        ap.error("--virtual needs --think-ms (wrk speaks HTTP only)")
    if a.path == "/echo" and a.think_ms is None and a.post is None:
        ap.error("--path /echo under wrk needs --post FILE (a GET of /echo is a 404)")
    port = sb.free_port()
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name  # noqa: SIM115
    proc = serve(port, out)
    rps = None
    cpu = cpu_seconds(proc.pid)
    try:
        if a.think_ms is None:
            rps = wrk(port, a.path, a.conns, a.duration, a.post)
        else:
            client = virtual_client if a.virtual else paused_client
            client(port, a.path, a.requests, a.think_ms / 1000)
        cpu = cpu_seconds(proc.pid) - cpu
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    with open(out) as f:
        counts = json.load(f)
    os.unlink(out)
    if a.virtual:  # the HTTP session served the upgrade only
        counts["requests"] = a.requests
    n = counts["requests"] or 1
    load = f"wrk -c{a.conns}" if a.think_ms is None else f"1 client, {a.think_ms:g} ms pauses"
    if a.virtual:
        load += ", virtual requests"
    result = {
        "load": load,
        "path": a.path,
        "requests": counts["requests"],
        "wrk_rps": rps,
        "server_cpu_us_per_request": round(cpu / n * 1e6, 1),
    }
    for key in ("checkpoints", "reads", "failed_reads", "waits", "socket_waits"):
        result[f"{key}_per_request"] = round(counts[key] / n, 4)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
