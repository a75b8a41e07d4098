"""Where a server's CPU time per request goes, under wrk, by where perf's samples land.

Instruction counts (bench/socket_cost.py) are steady but blind to what an instruction costs:
cache and branch misses, and the kernel's work for each system call, including waking the
client. This samples the real thing. The server runs pinned to CPU 0 under
`perf record -g -e cpu-clock` while wrk (pinned to CPU 1) loads it; the samples are then split
by where they landed:

- python: the interpreter (libpython, or the python binary when it is linked statically)
- compiled: any other shared object of the process (h11_mypyc, _json, _socket ...)
- libc: libc and the dynamic loader
- kernel, wake-ups: kernel samples under sock_def_readable, the receiving side of a loopback
  write waking the client. Over a real network that cost lands on another machine.
- kernel, other: the rest of the kernel (system calls, TCP, epoll)

Each is printed as microseconds of server CPU per request, beside requests per server
CPU-second. Hardware counters (cycles, cache or branch misses) are not used: many VMs do not
expose them. Compare servers within one run, several times over, never across runs.

Usage (from the project root; needs perf and wrk):
    .venv/bin/python bench/cpu_split.py [--conns 50] [--seconds 5] [--path /hello] [--reps 3]
        --server 'NAME=CMD with {port}' [--server ...]
    e.g. --server 'gateway=.venv/bin/gateway serve bench.app:app --port {port}'
         --server 'bare-mypyc=.venv/bin/python bench/with_compiled_h11.py
                   ../shared/bench/peers/bare_trio.py {port}'
Servers are interleaved per repetition. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.socket_cost import free_port, wait_up  # noqa: E402  (the project root first)

FREQ = 2000  # samples per second of CPU time
GROUPS = ("python", "compiled", "libc", "kernel, wake-ups", "kernel, other")


def group(stack: list[tuple[str, str]]) -> str:
    """The group of one sample from its stack, innermost frame first: (symbol, object)."""
    sym, dso = stack[0]
    if dso.startswith("[kernel"):
        woke = any(s == "sock_def_readable" for s, _ in stack)
        return "kernel, wake-ups" if woke else "kernel, other"
    name = os.path.basename(dso)
    if name.startswith("libpython") or re.fullmatch(r"python3(\.\d+)?", name):
        return "python"
    if name.startswith(("libc.so", "libc-", "ld-linux", "libm.so")):
        return "libc"
    return "compiled"


def split(data: str) -> Counter[str]:
    """Samples per group in a perf.data file (perf script, one stack per sample)."""
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "ip,sym,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: Counter[str] = Counter()
    stack: list[tuple[str, str]] = []
    for line in [*out.splitlines(), ""]:
        line = line.strip()
        if not line:
            if stack:
                counts[group(stack)] += 1
            stack = []
            continue
        m = re.match(r"[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
        if m:
            stack.append((m.group(1).split("+")[0], m.group(2)))
    return counts


def measure(cmd: str, conns: int, seconds: float, path: str) -> dict[str, float]:
    port = free_port()
    argv = ["taskset", "-c", "0", *shlex.split(cmd.format(port=port))]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}{path}"
    wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}"]
    try:
        wait_up(port, proc, time.monotonic() + 30)  # GET /hello answers 200
        subprocess.run([*wrk, "-d1s", url], capture_output=True, check=True)  # warm up
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "perf.data")
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", str(FREQ)]
                + ["-p", str(proc.pid), "-o", data],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.3)
            load = subprocess.run(
                [*wrk, f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
            ).stdout
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
            counts = split(data)
    finally:
        proc.terminate()
        proc.wait(10)
    m = re.search(r"(\d+) requests in", load)
    if m is None:
        raise SystemExit(f"no request count in wrk's output:\n{load}")
    requests = int(m.group(1))
    total = sum(counts.values())
    row = {g: counts[g] / FREQ / requests * 1e6 for g in GROUPS}
    row["total us"] = total / FREQ / requests * 1e6
    row["req per CPU-s"] = requests / (total / FREQ) if total else 0.0
    return row


def wrk_parser(doc: str, seconds: float) -> argparse.ArgumentParser:
    """The options of a script that loads --server commands with wrk, interleaved (this one
    and bench/tail.py)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--server", action="append", required=True, help="NAME=CMD with {port}")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=seconds)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--reps", type=int, default=3)
    return ap


def require(script: str, tools: dict[str, str]) -> None:
    """Exit naming the first of ``tools`` (name -> its Debian package) that is missing."""
    for tool, package in tools.items():
        if shutil.which(tool) is None:
            raise SystemExit(f"{script}: {tool} is not installed (Debian: {package})")


def main() -> None:
    a = wrk_parser(__doc__, 5).parse_args()
    require("cpu_split", {"perf": "linux-perf", "wrk": "wrk", "taskset": "util-linux"})
    servers = [s.split("=", 1) for s in a.server]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
    for rep in range(a.reps):
        order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
        for name, cmd in order:
            row = measure(cmd, a.conns, a.seconds, a.path)
            rows[name].append(row)
            print(
                f"rep {rep} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()),
                file=sys.stderr,
                flush=True,
            )
    cols = ["req per CPU-s", "total us", *GROUPS]
    print(f"\nmedian of {a.reps}, us of server CPU per request (GET {a.path}, wrk -c{a.conns})\n")
    print("| server | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, rs in rows.items():
        med = [statistics.median(r[c] for r in rs) for c in cols]
        print(f"| {name} | {med[0]:.0f} | " + " | ".join(f"{v:.1f}" for v in med[1:]) + " |")


if __name__ == "__main__":
    main()
