"""The client's costs: keep-alive requests per *client* CPU-second against the gateway's /hello,
side by side with httpx (on trio) and a bare trio + h11 loop; Sails virtual requests one at a
time over one socket; RSS growth while a 1 GiB download streams to a file.

The gateway serves bench.client_app:app (bench.app plus a /download route), pinned to CPU 0;
each contender runs in a fresh process pinned to CPU 1, so its process_time() is its own. The
contenders are interleaved within each repetition.

Usage (from the project root; httpx is needed for its column only: pip install httpx):
    .venv/bin/python bench/client_bench.py [--duration 3] [--reps 3] [--only ours,bare,httpx,socket]
    .venv/bin/python bench/client_bench.py --download 1073741824
Instructions per request (a gateway serving bench.client_app:app on PORT):
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        bench/client_bench.py --child ours --port PORT --count 200   (then --count 1000)
A benchmark, not a test: numbers go to stdout as JSON lines, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTENDERS = ("ours", "bare", "httpx", "socket")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def start_server(port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "bench.client_app:app",
        "--port",
        str(port),
        "--set",
        "server.access_log=false",
        "--set",
        "http.max_requests_per_connection=100000000",
    ]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- the contenders (each runs in its own process) ----------------------------------------------


async def run_ours(base: str, duration: float) -> tuple[int, float]:
    from gateway.client import Client

    async with Client(base) as client:
        for _ in range(200):
            await client.get("/hello")
        n, t0, c0 = 0, time.monotonic(), time.process_time()
        while time.monotonic() - t0 < duration:
            for _ in range(100):
                r = await client.get("/hello")
                assert r.status == 200 and r.content == b"hello"
            n += 100
        return n, time.process_time() - c0


async def run_socket(base: str, duration: float) -> tuple[int, float]:
    from gateway.client import open_socket

    async with open_socket(base, reconnect=False) as io:
        for _ in range(200):
            await io.get("/hello")
        n, t0, c0 = 0, time.monotonic(), time.process_time()
        while time.monotonic() - t0 < duration:
            for _ in range(100):
                r = await io.get("/hello")
                assert r.status == 200 and r.body == "hello"
            n += 100
        return n, time.process_time() - c0


async def run_bare(base: str, duration: float) -> tuple[int, float]:
    import h11

    port = int(base.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", f"127.0.0.1:{port}")]

    async def one() -> bytes:
        await stream.send_all(
            conn.send(h11.Request(method="GET", target="/hello", headers=headers))
            + conn.send(h11.EndOfMessage())
        )
        body = b""
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif type(ev) is h11.Data:
                body += ev.data
            elif type(ev) is h11.EndOfMessage:
                conn.start_next_cycle()
                return body

    for _ in range(200):
        await one()
    n, t0, c0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - t0 < duration:
        for _ in range(100):
            assert await one() == b"hello"
        n += 100
    return n, time.process_time() - c0


async def run_httpx(base: str, duration: float) -> tuple[int, float]:
    import httpx

    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(200):
            await client.get("/hello")
        n, t0, c0 = 0, time.monotonic(), time.process_time()
        while time.monotonic() - t0 < duration:
            for _ in range(100):
                r = await client.get("/hello")
                assert r.status_code == 200 and r.content == b"hello"
            n += 100
        return n, time.process_time() - c0


async def run_download(base: str, size: int) -> dict[str, Any]:
    from gateway.client import Client

    async with Client(base, timeout=None) as client:
        await client.get("/hello")  # connection, pool and modules warm
        with tempfile.NamedTemporaryFile(dir=os.environ.get("BENCH_TMP", "/tmp")) as f:
            before = rss_kib()
            peak = before
            got = 0

            def progress(n: int, total: int | None) -> None:
                nonlocal peak
                if n - progress.last >= 64 << 20:  # type: ignore[attr-defined]
                    progress.last = n  # type: ignore[attr-defined]
                    peak = max(peak, rss_kib())

            progress.last = 0  # type: ignore[attr-defined]
            c0 = time.process_time()
            async with client.stream("GET", f"/download/{size}", on_download=progress) as r:
                got = await r.save(f.name)
            cpu = time.process_time() - c0
            after = rss_kib()
        return {
            "bytes": got,
            "rss_before_kib": before,
            "rss_peak_kib": max(peak, after),
            "rss_after_kib": after,
            "growth_kib": max(peak, after) - before,
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "client_cpu_s": round(cpu, 2),
        }


RUNNERS = {"ours": run_ours, "bare": run_bare, "httpx": run_httpx, "socket": run_socket}


async def run_count(name: str, base: str, count: int) -> None:
    """Exactly ``count`` requests, untimed: run twice under valgrind --tool=callgrind with two
    counts; the difference of the instruction totals over the difference of the counts is the
    contender's instructions per request (no kernel time, no noise from other processes)."""
    import h11

    if name == "ours":
        from gateway.client import Client

        async with Client(base) as client:
            for _ in range(count):
                await client.get("/hello")
    elif name == "socket":
        from gateway.client import open_socket

        async with open_socket(base, reconnect=False) as io:
            for _ in range(count):
                await io.get("/hello")
    elif name == "httpx":
        import httpx

        async with httpx.AsyncClient(base_url=base) as hx:
            for _ in range(count):
                await hx.get("/hello")
    else:
        port = int(base.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        conn = h11.Connection(h11.CLIENT)
        headers = [("host", f"127.0.0.1:{port}")]
        for _ in range(count):
            await stream.send_all(
                conn.send(h11.Request(method="GET", target="/hello", headers=headers))
                + conn.send(h11.EndOfMessage())
            )
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif type(ev) is h11.EndOfMessage:
                    conn.start_next_cycle()
                    break


def child(args: argparse.Namespace) -> None:
    base = f"http://127.0.0.1:{args.port}"
    if args.count:
        trio.run(run_count, args.child, base, args.count)
        return
    if args.child == "download":
        print(json.dumps(trio.run(run_download, base, args.download)))
        return
    n, cpu = trio.run(RUNNERS[args.child], base, args.duration)
    print(json.dumps({"requests": n, "cpu_s": cpu, "per_cpu_s": n / cpu}))


def spawn(name: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        "taskset",
        "-c",
        "1",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        name,
        "--port",
        str(port),
        "--duration",
        str(args.duration),
        "--download",
        str(args.download),
    ]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--only", default=",".join(CONTENDERS))
    p.add_argument("--download", type=int, default=0, help="bytes to download (0: skip)")
    p.add_argument(
        "--child", help="run one contender in this process (ours, bare, httpx, socket, download)"
    )
    p.add_argument(
        "--port", type=int, default=0, help="with --child: the server's port (a server you started)"
    )
    p.add_argument(
        "--count",
        type=int,
        default=0,
        help="with --child NAME: exactly this many requests, untimed (callgrind)",
    )
    args = p.parse_args()
    if args.child:
        child(args)
        return
    port = free_port()
    server = start_server(port)
    try:
        names = [n for n in args.only.split(",") if n] if not args.download else []
        table: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(args.reps if names else 0):
            order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate who goes first
            for name in order:
                result = spawn(name, port, args)
                print(json.dumps({"rep": rep + 1, "contender": name, **result}), flush=True)
                if "per_cpu_s" in result:
                    table[name].append(result["per_cpu_s"])
        if names:
            summary: dict[str, Any] = {n: [round(v) for v in vals] for n, vals in table.items()}
            for a, b in (("ours", "httpx"), ("ours", "bare"), ("socket", "ours")):
                if table.get(a) and table.get(b) and len(table[a]) == len(table[b]):
                    summary[f"{a}/{b}"] = [
                        round(x / y, 2) for x, y in zip(table[a], table[b], strict=True)
                    ]
            print(json.dumps({"summary": summary}))
        if args.download:
            for rep in range(args.reps):
                print(
                    json.dumps({"rep": rep + 1, "download": spawn("download", port, args)}),
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
