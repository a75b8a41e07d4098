"""RSS after start (VmRSS 2 s after the server listens) of the gateway from one or more source
trees, with plain h11 and with h11_mypyc, against the bare trio+h11 loop of ../shared/bench,
interleaved round by round so that drift falls on all alike. The servers run bench.app.

Usage (from the project root):
    .venv/bin/python bench/start_rss.py [--rounds 6] [--tree old=/tmp/old] [--tree new=.]
Another build's tree: git archive <commit> gateway bench firmware_profiles | tar -x -C /tmp/old
Each tree is byte-compiled first (compileall): with PYTHONDONTWRITEBYTECODE set, a tree without
.pyc files compiles its modules from source at every start, which costs the process about
0.5 MiB more than loading them, and the comparison would measure that instead.
A benchmark, not a test: it prints one JSON line per server (median and all rounds, KiB).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench import sails_bench as sb  # noqa: E402

BARE = os.path.join(ROOT, "..", "shared", "bench", "peers", "bare_trio.py")


def rss_after_start(cmd: list[str], env: dict[str, str], cwd: str | None) -> int:
    port = sb.free_port()
    proc = subprocess.Popen(
        [*cmd, str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        sb.wait_listening(proc, port, 20)
        time.sleep(2)
        with open(f"/proc/{proc.pid}/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--tree", action="append", help="NAME=PATH (default: gateway=.)")
    ap.add_argument("--bare", default=BARE, help="the bare loop's script")
    args = ap.parse_args()
    trees = [t.split("=", 1) for t in (args.tree or ["gateway=."])]
    if any(len(t) != 2 or not os.path.isdir(os.path.join(t[1], "gateway")) for t in trees):
        ap.error("--tree takes NAME=PATH, PATH a tree with gateway/ and bench/ in it")
    for _, path in trees:
        for sub in ("gateway", "bench"):
            compileall.compile_dir(os.path.join(path, sub), quiet=2)
    gateway = [os.path.join(ROOT, ".venv", "bin", "gateway"), "serve", "bench.app:app", "--port"]
    found: dict[str, list[int]] = {}
    for _ in range(args.rounds):
        for parser in ("h11", "h11_mypyc"):
            for name, path in trees:
                tree = os.path.abspath(path)
                env = {**os.environ, "GATEWAY_HTTP_PARSER": parser, "PYTHONPATH": tree}
                kib = rss_after_start(gateway, env, tree)
                found.setdefault(f"{name} {parser}", []).append(kib)
        bare = rss_after_start([sys.executable, args.bare], dict(os.environ), None)
        found.setdefault("bare trio+h11", []).append(bare)
    base = statistics.median(found["bare trio+h11"])
    for server, runs in found.items():
        median = statistics.median(runs)
        ratio = round(median / base, 3)
        print(
            json.dumps({"server": server, "rss_kib_median": median, "ratio": ratio, "runs": runs})
        )


if __name__ == "__main__":
    main()
