# The MQTT bridge's real peers: Debian's mosquitto broker, started on a free loopback port with a
# generated config (never the system's own broker on 1883), and the mosquitto-clients tools
# (mosquitto_rr / _sub / _pub, MQTT 5) as the independent client; plus the app the tests serve,
# in-process and as `gateway serve tests.mqtt_support:app` processes.
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import trio

from gateway import App, bodyparsers

__all__ = ["Broker", "app", "free_port", "make_app", "rr", "sub"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mosquitto() -> str:
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if path is None:
        import pytest

        pytest.fail(
            "mosquitto is missing: Debian package mosquitto (`make test` installs it: "
            "scripts/system-deps.sh, as root)",
            pytrace=False,
        )
    return path


class Broker:
    """A mosquitto of our own: ``start()``, ``stop()``, ``restart()`` on the same port.

    Args:
        directory: where the config and log go.
        users: username -> password (then anonymous clients are refused).
        tls: (cert file, key file) for a TLS listener instead of plain TCP.
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp_path
        if users:
            pwfile = directory / "passwd"
            pwfile.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pwfile), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = directory / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_mosquitto(), "-c", str(self.conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not listen") from None
                time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _client_args(broker: Broker, extra: list[str] | None) -> list[str]:
    return ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(broker.port), *(extra or [])]


async def rr(
    broker: Broker,
    topic: str,
    message: str | bytes,
    *,
    correlation: str | None = None,
    response_topic: str = "test/reply",
    extra: list[str] | None = None,
    timeout_s: int = 5,
) -> dict[str, Any]:
    """One request with mosquitto_rr; its answer as ``mosquitto_rr -F %j`` prints it (topic,
    properties, payload), the payload parsed as JSON."""
    args = [
        "mosquitto_rr",
        *_client_args(broker, extra),
        "-t",
        topic,
        "-e",
        response_topic,
        "-W",
        str(timeout_s),
        "-F",
        "%j",
    ]
    if correlation is not None:
        args += ["-D", "publish", "correlation-data", correlation]
    if isinstance(message, bytes):
        args += ["-s"]  # the message from stdin, bytes as they are
        result = await trio.run_process(
            args + [], stdin=message, capture_stdout=True, capture_stderr=True, check=False
        )
    else:
        result = await trio.run_process(
            args + ["-m", message], capture_stdout=True, capture_stderr=True, check=False
        )
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    out: dict[str, Any] = json.loads(result.stdout)
    out["payload"] = json.loads(out["payload"])
    return out


async def sub(
    broker: Broker, topic: str, count: int, *, timeout_s: int = 5, extra: list[str] | None = None
) -> list[tuple[str, str]]:
    """(topic, payload) of the first ``count`` messages on ``topic`` (retained ones included)."""
    args = [
        "mosquitto_sub",
        *_client_args(broker, extra),
        "-t",
        topic,
        "-C",
        str(count),
        "-W",
        str(timeout_s),
        "-F",
        "%t %p",
    ]
    result = await trio.run_process(args, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    return [
        tuple(line.split(" ", 1))
        for line in result.stdout.decode().splitlines()  # type: ignore[misc]
    ]


def make_app(gate: trio.Event | None = None) -> App:
    """Routes the MQTT tests call: the request API as the handler sees it, an echo, a
    privileged route, one that waits for ``gate`` (the in-flight cap), rooms."""
    app = App()
    app.use(bodyparsers.json())
    gate = gate if gate is not None else trio.Event()

    @app.get("/hello")
    async def hello(req: Any, res: Any) -> None:
        await res.json(
            {
                "hello": "mqtt",
                "transport": req.transport,
                "is_socket": req.is_socket,
                "mode": req.mode,
                "ip": req.ip,
                "query": req.query,
            }
        )

    @app.post("/echo")
    async def echo(req: Any, res: Any) -> None:
        await res.status(201).json({"got": req.body, "type": req.get("content-type")})

    @app.get("/admin", privileged=True)
    async def admin(req: Any, res: Any) -> None:
        await res.json({"mode": req.mode})

    @app.get("/whoami")
    async def whoami(req: Any, res: Any) -> None:
        await res.json({"device": req.app.settings.mqtt.device_id, "pid": os.getpid()})

    @app.get("/slow")
    async def slow(req: Any, res: Any) -> None:
        await gate.wait()
        await res.send("done")

    @app.get("/join/:room")
    async def join(req: Any, res: Any) -> None:
        app.sockets.join(req, req.params["room"])
        await res.json({"joined": req.params["room"]})

    @app.post("/broadcast/:room")
    async def broadcast(req: Any, res: Any) -> None:
        n = app.sockets.broadcast(req.params["room"], "news", req.body)
        await res.json({"sockets": n})

    return app


app = make_app()
