"""Per-message cost of a WebSocket echo through a real server on loopback: the server (bench.app's
/ws route, default profile; access log off, which logs no message anyway) runs in this process;
a client subprocess opens --conns WebSockets and ping-pongs -n masked text messages of --size
bytes on each, checking every echo. Only this process is the server, so under valgrind (which
does not trace children) the count is the server's alone. A benchmark, not a test: it prints
figures and asserts nothing of speed. It imports only what every version of the gateway has, so
the same script measures two trees.

Two regimes: with --think-ms 0 the client answers at once, and under valgrind (the server some
50x slower) the next message is nearly always waiting when the server reads again; with
--think-ms 5 the server waits for every message, as a server faster than its clients does (the
shared harness's `ws` test, a C client on the other core, is close to that one).

Usage (from the project root, or with PYTHONPATH pointing at another tree):
    .venv/bin/python bench/ws_cost.py -n 20000 --conns 8
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/ws_cost.py -n 2001 [--think-ms 5]   # and -n 1: difference / (2000 * conns)
The client alone, against any server (a peer, for its own count under valgrind):
    python bench/ws_cost.py --client PORT -n 2001 [--path /ws]
"""

from __future__ import annotations

import argparse
import base64
import os
import selectors
import socket
import sys
import time

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked_frame(payload: bytes, key: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0xFF)) + n.to_bytes(8, "big")
    mask = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + key + body


def client(port: int, n: int, conns: int, size: int, path: str, think_ms: float) -> None:
    """Ping-pong n messages on each of conns WebSockets (each echo answered think_ms after it
    came); exit 1 on any mismatch."""
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    frame = masked_frame(payload)
    expect = bytes((0x81, size)) if size < 126 else bytes((0x81, 126)) + size.to_bytes(2, "big")
    expect += payload
    sel = selectors.DefaultSelector()
    left: dict[socket.socket, int] = {}
    bufs: dict[socket.socket, bytes] = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(HANDSHAKE.format(path=path, port=port, key=key).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = s.recv(4096)
            if not got:
                sys.exit("closed during the handshake")
            head += got
        if not head.startswith(b"HTTP/1.1 101"):
            sys.exit("handshake refused: " + head[:60].decode(errors="replace"))
        bufs[s] = head.partition(b"\r\n\r\n")[2]
        left[s] = n
        sel.register(s, selectors.EVENT_READ, s)
    due: list[tuple[float, socket.socket]] = [(0.0, s) for s in left]  # sends to make
    think = think_ms / 1000
    while left:
        now = time.monotonic()
        while due and due[0][0] <= now:
            due.pop(0)[1].sendall(frame)
        timeout = max(0.0, due[0][0] - now) if due else None
        for key_, _ in sel.select(timeout):
            s = key_.data
            got = s.recv(65536)
            if not got:
                sys.exit("the server closed a WebSocket")
            buf = bufs[s] + got
            while len(buf) >= len(expect):
                if buf[: len(expect)] != expect:
                    sys.exit(f"echo mismatch: {buf[:40]!r}")
                buf = buf[len(expect) :]
                left[s] -= 1
                if left[s]:
                    due.append((time.monotonic() + think, s))
                else:
                    sel.unregister(s)
                    s.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # Close 1000
                    del left[s]
            bufs[s] = buf


async def serve(n: int, conns: int, size: int, think_ms: float) -> dict[str, float]:
    import trio

    from bench.app import app
    from gateway.server.serve import Server
    from gateway.settings import load_settings

    settings = load_settings(
        "default",
        env={},
        overrides={"websocket.max_connections": str(conns + 8), "server.access_log": "false"},
    )
    app.bind(settings)
    server = Server(app, settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        argv = [sys.executable, __file__, "--client", str(server.port), "-n", str(n)]
        argv += ["--conns", str(conns), "--size", str(size), "--think-ms", str(think_ms)]
        cpu0, t0 = time.process_time(), time.perf_counter()
        proc = await trio.run_process(argv, check=False)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    if proc.returncode:
        raise SystemExit(f"client failed ({proc.returncode})")
    msgs = n * conns
    return {
        "messages": msgs,
        "server_us_per_message": round(cpu / msgs * 1e6, 2),
        "per_server_cpu_s": round(msgs / cpu, 1) if cpu else 0.0,
        "wall_s": round(wall, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="messages per WebSocket")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--size", type=int, default=64, help="payload bytes (text)")
    ap.add_argument("--client", type=int, metavar="PORT", help="only the client, to PORT")
    ap.add_argument("--path", default="/ws")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="the client answers each echo this long after it came (0: at once)",
    )
    args = ap.parse_args()
    if args.client:
        client(args.client, args.n, args.conns, args.size, args.path, args.think_ms)
        return
    import json

    import trio

    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(json.dumps(trio.run(serve, args.n, args.conns, args.size, args.think_ms)))


if __name__ == "__main__":
    main()
