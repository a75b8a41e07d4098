"""Instructions per step of a Sails virtual request's codec work, counted by callgrind: the
WebSocket frame read, the Engine.IO/Socket.IO decode, the virtual request read (message, url,
header merge) and the reply (the JWR and its ack frame), each alone in a loop, no I/O. The
companion of bench/sails_cost.py (the whole request over a socket). A benchmark, not a test:
it prints figures and asserts nothing. It runs on older trees too (PYTHONPATH=other/tree): a
step a tree does not have is done the way that tree does it.

Usage (from the project root; valgrind must be installed):
    .venv/bin/python bench/virtual_codec_cost.py [--steps frame,decode,request,reply] [-n 2000]
Each figure is the count with -n + 1 iterations minus the count with 1, over -n.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.sails_cost import callgrind_total  # noqa: E402  (the project root first)

STEPS = ("frame", "decode", "request", "reply")
# what bench/sails_bench.py sends for GET /hello (ack id 5), and what bench.app answers
MESSAGE = '425["get",{"method": "get", "headers": {}, "data": {}, "url": "/hello"}]'
HEADERS = [("X-Powered-By", "Express"), ("Content-Type", "text/plain; charset=utf-8")]


def masked(text: str) -> bytes:
    payload = text.encode()
    key = b"\x37\xfa\x21\x3d"
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + key + body


def run(step: str, n: int) -> None:
    """The loop itself (in the process callgrind counts)."""
    sys.path.insert(0, os.getcwd())
    from gateway.server import sails_session
    from gateway.ws import engineio as eio
    from gateway.ws import sails
    from gateway.ws.connection import ServerWebSocket

    ws = ServerWebSocket()
    frame = masked(MESSAGE)
    session = eio.EngineIOSession(3, "sid")
    session.open_frames(0.0)
    event = session.receive_text(MESSAGE, 0.0)[0]
    base = sails.handshake_fields([("Host", "127.0.0.1")])
    if step == "frame":
        for _ in range(n):
            ws.receive(frame)
    elif step == "decode":
        for _ in range(n):
            session.receive_text(MESSAGE, 0.0)
    elif step == "request":
        for _ in range(n):
            vreq = sails.parse_virtual_request(event.name, event.args, event.ack_id)
            sails_session._target(vreq.url)
            sails.merge_headers(vreq.headers, base)
    elif step == "reply":
        if hasattr(sails, "jwr_text"):
            for _ in range(n):
                session.send_ack_text(5, sails.jwr_text(200, HEADERS, "hello"))
        else:  # the trees before it: the JWR dict, then the ack frame
            for _ in range(n):
                session.send_ack(5, [sails.jwr(200, HEADERS, "hello")])


def count(step: str, n: int) -> int:
    out = tempfile.NamedTemporaryFile(suffix=".cg", delete=False).name  # noqa: SIM115
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    argv += [__file__, "--run", step, "-n", str(n)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return callgrind_total(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--run", choices=STEPS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        run(a.run, a.n)
        return
    for step in a.steps.split(","):
        per = (count(step, a.n + 1) - count(step, 1)) / a.n
        print(json.dumps({"step": step, "instructions": round(per)}), flush=True)


if __name__ == "__main__":
    main()
