"""The latency tail under wrk: p50 to p99.9 and the maximum, servers interleaved.

../shared/bench/run.py reports p50 and p99 only; a tail that a few hundred requests make (a
burst of new connections waiting to be accepted, a stall) shows in p99.5, p99.9 and the
maximum first. Each repetition starts each server pinned to CPU 0, warms it up with one
second of wrk, then runs wrk (pinned to CPU 1, --conns NEW connections, as every run of the
harness opens) for --seconds with bench/wrk_percentiles.lua. Medians over the repetitions are
printed at the end, in milliseconds.

Usage (from the project root; needs wrk and taskset):
    .venv/bin/python bench/tail.py [--conns 50] [--seconds 4] [--reps 3]
        [--path /echo --body ../shared/bench/echo_body.json] --server 'NAME=CMD with {port}' ...
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.cpu_split import require, wrk_parser  # noqa: E402  (the project root first)
from bench.socket_cost import free_port, wait_up  # noqa: E402

LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_percentiles.lua")


def measure(cmd: str, conns: int, seconds: float, path: str, body: str | None) -> dict[str, float]:
    port = free_port()
    argv = ["taskset", "-c", "0", *shlex.split(cmd.format(port=port))]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", "-s", LUA]
    tail = [f"http://127.0.0.1:{port}{path}", *(["--", body] if body else [])]
    try:
        wait_up(port, proc, time.monotonic() + 30)  # GET /hello answers 200
        subprocess.run([*wrk, "-d1s", *tail], capture_output=True, check=True)  # warm up
        out = subprocess.run(
            [*wrk, f"-d{seconds:g}s", *tail], capture_output=True, text=True, check=True
        ).stdout
    finally:
        proc.terminate()
        proc.wait(10)
    return {k: float(v) for k, v in re.findall(r"(p[\d.]+|max|n)=([\d.]+)", out)}


def main() -> None:
    ap = wrk_parser(__doc__, 4)
    ap.add_argument("--body", help="a file to POST (as the harness's echo test)")
    a = ap.parse_args()
    require("tail", {"wrk": "wrk", "taskset": "util-linux"})
    servers = [s.split("=", 1) for s in a.server]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
    for rep in range(a.reps):
        for name, cmd in servers:
            row = measure(cmd, a.conns, a.seconds, a.path, a.body)
            rows[name].append(row)
            print(f"rep {rep + 1} {name}: {row}", flush=True)
    keys = [k for k in rows[servers[0][0]][0] if k != "n"]
    print(f"\nmedian of {a.reps}, ms | " + " | ".join(keys))
    for name, got in rows.items():
        print(name, "|", " | ".join(f"{statistics.median(r[k] for r in got):.1f}" for k in keys))


if __name__ == "__main__":
    main()
