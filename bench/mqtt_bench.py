"""Requests through an MQTT broker (the bridge) vs HTTP/1.1 keep-alive, same route; bridge RSS.

Starts a mosquitto of its own on a free loopback port (never the system's), serves bench.app:app
with the project's gateway pinned to CPU 0 and the bridge pointed at that broker, and drives it
from this process (paho-mqtt, MQTT 5 request/response with a Response Topic and Correlation
Data) with a window of 1 (one request at a time) and of 16 requests in flight; the same route
over one HTTP keep-alive connection with the same windows (pipelined). Reports requests/s and
requests per second of *gateway* CPU time (the broker's CPU is reported beside it, not counted).
Then the RSS of an idle gateway with the bridge enabled (connected, subscribed) and disabled,
each started fresh, median of --rss-runs.

Usage (from the project root, mosquitto installed: scripts/system-deps.sh):
    .venv/bin/python bench/mqtt_bench.py [--duration 5] [--window 1,16] [--rss-runs 3]
        [--rss-only]
A benchmark, not a test: numbers go to stdout as JSON lines, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.sails_bench import ROUTES, free_port, http_run  # noqa: E402


def start_broker(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = os.path.join(directory, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            + "set_tcp_nodelay true\n"  # replies not held back by Nagle (40 ms)
            + ("user root\n" if os.geteuid() == 0 else "")
        )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        ["taskset", "-c", "1", binary, "-c", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_gateway(port: int, broker_port: int | None, device: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "bench.app:app",
        "--port",
        str(port),
        "--set",
        "server.access_log=false",
        "--set",
        "http.max_requests_per_connection=100000000",
    ]
    if broker_port is not None:
        cmd += [
            "--set",
            f"mqtt.url=mqtt://127.0.0.1:{broker_port}",
            "--set",
            f"mqtt.device_id={device}",
            "--set",
            "mqtt.max_in_flight=64",
        ]
    env = {**os.environ, "GATEWAY_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    wait_port(port)
    if broker_port is not None:  # until the bridge says it subscribed
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        seen = b""
        deadline = time.monotonic() + 20
        while b"subscribed" not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bridge did not connect: {seen[-500:]!r}")
            seen += proc.stderr.read() or b""
            time.sleep(0.05)
    return proc


class Requester:
    """MQTT 5 request/response from this process: paho with its own network thread."""

    def __init__(self, broker_port: int, device: str) -> None:
        self.topic = f"gateway/{device}/request"
        self.reply_to = f"bench/{os.getpid()}/reply"
        self.outstanding = 0
        self.cond = threading.Condition()
        self.errors = 0
        c = self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        c.max_inflight_messages_set(0)  # unlimited: the window is ours
        c.on_message = self._reply
        # paho leaves Nagle on: a request would wait for the ACK of the previous PUBACK
        c.on_socket_open = lambda client, userdata, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        subscribed = threading.Event()
        c.on_subscribe = lambda *a: subscribed.set()
        c.connect("127.0.0.1", broker_port)
        c.loop_start()
        c.subscribe(self.reply_to, qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK")
        self.props = Properties(PacketTypes.PUBLISH)
        self.props.ResponseTopic = self.reply_to
        self.props.CorrelationData = b"bench"

    def _reply(self, client: Any, userdata: Any, message: Any) -> None:
        if b'"statusCode":200' not in message.payload:
            self.errors += 1
        with self.cond:
            self.outstanding -= 1
            self.cond.notify()

    def run(self, route: str, window: int, duration: float) -> int:
        method, path, data = ROUTES[route]
        payload = json.dumps({"method": method.lower(), "url": path, "data": data or {}}).encode()
        done = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:  # closed loop: a window out, its replies back
            with self.cond:
                self.outstanding += window
            for _ in range(window):
                self.client.publish(self.topic, payload, qos=1, properties=self.props)
            with self.cond:
                if not self.cond.wait_for(lambda: self.outstanding == 0, 10):
                    raise RuntimeError("replies missing")
            done += window
        return done

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def measure(gw: psutil.Process, broker: psutil.Process, fn: Any) -> dict[str, float]:
    g0, b0, t0 = cpu(gw), cpu(broker), time.monotonic()
    n = fn()
    g1, b1, t1 = cpu(gw), cpu(broker), time.monotonic()
    return {
        "requests": n,
        "per_s": round(n / (t1 - t0)),
        "per_gateway_cpu_s": round(n / max(g1 - g0, 1e-9)),
        "broker_cpu_s": round(b1 - b0, 3),
    }


def rss_mib(proc: subprocess.Popen[bytes]) -> float:
    time.sleep(1.0)  # settled: start-up garbage collected, the bridge idle
    return psutil.Process(proc.pid).memory_info().rss / 1048576


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--window", default="1,16")
    parser.add_argument("--routes", default="hello,echo")
    parser.add_argument("--rss-runs", type=int, default=3)
    parser.add_argument("--rss-only", action="store_true", help="only the idle RSS figures")
    args = parser.parse_args()
    windows = [int(w) for w in args.window.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        broker, broker_port = start_broker(tmp)
        try:
            if not args.rss_only:
                requests_per_cpu(args.routes, windows, args.duration, broker, broker_port)
            # RSS: fresh processes, alternated, idle after start
            on: list[float] = []
            off: list[float] = []
            for i in range(args.rss_runs):
                for enabled, out in ((True, on), (False, off)):
                    p = start_gateway(free_port(), broker_port if enabled else None, f"rss{i}")
                    try:
                        out.append(rss_mib(p))
                    finally:
                        p.terminate()
                        p.wait(10)
            if not on:
                return
            print(
                json.dumps(
                    {
                        "rss_mib_bridge_enabled": [round(x, 2) for x in on],
                        "rss_mib_bridge_disabled": [round(x, 2) for x in off],
                        "bridge_cost_mib_median": round(
                            statistics.median(on) - statistics.median(off), 2
                        ),
                    }
                )
            )
        finally:
            broker.terminate()
            broker.wait(10)


def requests_per_cpu(
    routes: str, windows: list[int], duration: float, broker: subprocess.Popen[bytes], port: int
) -> None:
    """Requests per second of gateway CPU over MQTT and over HTTP, each route and window."""
    http_port = free_port()
    gw = start_gateway(http_port, port, "bench")
    requester = Requester(port, "bench")
    try:
        g, b = psutil.Process(gw.pid), psutil.Process(broker.pid)
        requester.run("hello", 1, 1.0)  # warm up both paths
        http_run(http_port, "hello", 1, 0.0, 1.0)
        for route in routes.split(","):
            for window in windows:
                m = measure(g, b, lambda r=route, w=window: requester.run(r, w, duration))
                h = measure(
                    g, b, lambda r=route, w=window: http_run(http_port, r, w, 0.0, duration)
                )
                print(
                    json.dumps(
                        {
                            "route": route,
                            "window": window,
                            "mqtt": m,
                            "http": h,
                            "mqtt_vs_http_per_cpu": round(
                                m["per_gateway_cpu_s"] / h["per_gateway_cpu_s"], 2
                            ),
                        }
                    ),
                    flush=True,
                )
        print(json.dumps({"mqtt_reply_errors": requester.errors}), flush=True)
    finally:
        requester.close()
        gw.terminate()
        gw.wait(10)


if __name__ == "__main__":
    main()
