# Memory-budget benchmark (not a test): N concurrent clients each upload a body to a caching
# route of a gateway subprocess whose body budget is B; the server's RSS is sampled every 10 ms and
# must stay under RSS-at-start + B + slack. Over-budget uploads get 503 + Retry-After and succeed
# on retry (bounded, with backoff); every accepted body must arrive intact (sha256 echoed back).
# Run from the repository root:  .venv/bin/python bench/budget.py  (127.0.0.1 only; bounded loops)
# Serves as its own app module too: `gateway serve bench.budget:app` (POST /cache reads, hashes).
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from gateway import App, Request, Response
from gateway.body.budget import tune_allocator

# What the server process should do at startup (see tune_allocator); --malloc-default skips it
if not os.environ.get("BENCH_BUDGET_MALLOC_DEFAULT"):
    tune_allocator()

app = App()


@app.post("/cache")
async def cache(req: Request, res: Response) -> None:
    data = await req.read()  # cached whole: charged to the memory budget until the reply is sent
    await res.json({"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})


# -- the driver ------------------------------------------------------------------------------------
MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


class Sampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_of(self.pid))
            except (OSError, ValueError, IndexError):
                return
            self.samples += 1
            time.sleep(self.interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def upload(
    port: int, ident: bytes, base: memoryview, *, max_attempts: int, stats: dict[str, Any]
) -> None:
    """Upload ident + base with Expect: 100-continue, retrying 503s; check the echoed hash."""
    import h11
    import trio

    size = len(ident) + len(base)
    digest = hashlib.sha256(ident + base).hexdigest()
    for attempt in range(max_attempts):
        conn = h11.Connection(h11.CLIENT)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(
                conn.send(
                    h11.Request(
                        method="POST",
                        target="/cache",
                        headers=[
                            ("host", f"127.0.0.1:{port}"),
                            ("content-length", str(size)),
                            ("content-type", "application/octet-stream"),
                            ("expect", "100-continue"),
                            ("connection", "close"),
                        ],
                    )
                )
            )
            status, headers, body = 0, {}, bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.InformationalResponse) and event.status_code == 100:
                    await stream.send_all(conn.send(h11.Data(data=ident)))
                    await stream.send_all(conn.send(h11.Data(data=base)))
                    await stream.send_all(conn.send(h11.EndOfMessage()))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
        if status == 200:
            reply = json.loads(body)
            stats["accepted"] += 1
            stats["intact"] += reply == {"bytes": size, "sha256": digest}
            stats["max_attempts"] = max(stats["max_attempts"], attempt + 1)
            return
        if status != 503:
            stats["failed"] += 1
            stats["other_status"].append(status)
            return
        stats["rejected_503"] += 1
        stats["with_retry_after"] += "retry-after" in headers
        retry_after = float(headers.get("retry-after", "1"))
        # exponential backoff from 50 ms, capped at the server's Retry-After, with jitter so
        # the retries do not come back as one wave
        await trio.sleep(min(retry_after, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
    stats["failed"] += 1
    stats["gave_up"] += 1


async def drive(args: argparse.Namespace, port: int) -> dict[str, Any]:
    import trio

    base = memoryview(random.Random(1).randbytes(args.body_bytes - 8))
    stats: dict[str, Any] = {
        "accepted": 0,
        "intact": 0,
        "rejected_503": 0,
        "with_retry_after": 0,
        "failed": 0,
        "gave_up": 0,
        "max_attempts": 0,
        "other_status": [],
    }
    async with trio.open_nursery() as nursery:
        for i in range(args.clients):
            nursery.start_soon(
                functools.partial(
                    upload, port, b"%08d" % i, base, max_attempts=args.max_attempts, stats=stats
                )
            )
    return stats


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("gateway did not become ready")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--body-bytes", type=int, default=MiB)
    ap.add_argument("--budget-bytes", type=int, default=16 * MiB)
    ap.add_argument("--slack-bytes", type=int, default=8 * MiB)
    ap.add_argument("--max-attempts", type=int, default=40)
    ap.add_argument("--gateway", default=os.path.join(".venv", "bin", "gateway"))
    ap.add_argument(
        "--malloc-default",
        action="store_true",
        help="leave glibc's dynamic mmap threshold alone (no tune_allocator())",
    )
    args = ap.parse_args()
    import trio

    port = free_port()
    cmd = [
        args.gateway,
        "serve",
        "bench.budget:app",
        "--profile",
        "default",
        "--port",
        str(port),
        "--set",
        f"memory.body_budget_bytes={args.budget_bytes}",
        "--set",
        "server.access_log=false",
    ]
    env = dict(os.environ)
    if args.malloc_default:
        env["BENCH_BUDGET_MALLOC_DEFAULT"] = "1"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_ready(port, proc)
        warm = trio.run(drive, argparse.Namespace(**{**vars(args), "clients": 1}), port)
        assert warm["intact"] == 1, warm
        time.sleep(0.3)
        start = max(rss_of(proc.pid) for _ in range(3))
        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = time.perf_counter()
        stats = trio.run(drive, args, port)
        elapsed = time.perf_counter() - t0
        time.sleep(0.05)
        sampler.stop.set()
        sampler.join()
        end = rss_of(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    bound = start + args.budget_bytes + args.slack_bytes
    report = {
        "clients": args.clients,
        "body_bytes": args.body_bytes,
        "budget_mib": round(args.budget_bytes / MiB, 2),
        "rss_start_mib": round(start / MiB, 2),
        "rss_peak_mib": round(sampler.peak / MiB, 2),
        "rss_growth_mib": round((sampler.peak - start) / MiB, 2),
        "rss_end_mib": round(end / MiB, 2),
        "rss_bound_mib": round(bound / MiB, 2),
        "rss_samples": sampler.samples,
        "seconds": round(elapsed, 2),
        "malloc": "default" if args.malloc_default else "tune_allocator",
        **stats,
    }
    print(json.dumps(report))
    problems = []
    if sampler.peak > bound:
        problems.append(f"peak RSS {report['rss_peak_mib']} MiB over {report['rss_bound_mib']}")
    if stats["accepted"] != args.clients or stats["intact"] != args.clients:
        problems.append(f"{stats['accepted']} accepted, {stats['intact']} intact of {args.clients}")
    if stats["rejected_503"] != stats["with_retry_after"]:
        problems.append("a 503 without Retry-After")
    for p in problems:
        print("FAIL:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
