# The MQTT 5 bridge against real peers: Debian's mosquitto (our own, on a free loopback port) and
# mosquitto_rr/_sub/_pub as the independent client. Requests through the same exchange as HTTP
# (200, 404, privilege, JSON bodies, malformed payloads, the in-flight cap), room events both
# ways, presence and its Last Will, a broker restart under traffic, TLS with credentials, and
# three `gateway serve` processes on one broker (slow).
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from gateway.app.auth import hash_token
from gateway.cli import main
from gateway.client.socket import open_socket
from gateway.discovery import installed_version
from gateway.errors import ConfigError
from gateway.server.serve import Server
from gateway.settings import load_settings
from tests.helpers import bound_server, make_settings, request, running
from tests.mqtt_support import Broker, free_port, make_app, rr, sub
from tests.peers import require_tool

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "mqtt-test-token-0123456789"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    require_tool("mosquitto_rr", "mosquitto-clients")
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def until(predicate: Callable[[], bool]) -> None:
    """Poll the bridge's figures (it has no events to wait on); callers bound it."""
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.02)


async def ready(server: Server, connects: int = 1) -> None:
    """Until the bridge is connected and subscribed (its ``connects``-th connection)."""
    bridge = server.mqtt
    assert bridge is not None
    with trio.fail_after(20):
        await until(lambda: bridge.link.subscribed and bridge.link.connects >= connects)


@asynccontextmanager
async def bridged(broker: Broker, app: Any = None, **overrides: Any) -> AsyncIterator[Server]:
    settings = make_settings(mqtt__url=broker.url, mqtt__device_id="dev1", **overrides)
    async with running(app or make_app(), settings) as server:
        await ready(server)
        yield server


def credentials(tmp_path: Path) -> str:
    path = tmp_path / "tokens"
    path.write_text(hash_token(TOKEN) + " admin\n")
    path.chmod(0o600)
    return str(path)


# -- requests -----------------------------------------------------------------------------------


async def test_a_request_runs_the_app_and_its_jwr_goes_to_the_response_topic(
    broker: Broker,
) -> None:
    with trio.fail_after(20):
        async with bridged(broker) as server:
            out = await rr(
                broker,
                "gateway/dev1/request",
                '{"method":"get","url":"/hello?x=1","headers":{}}',
                correlation="req-42",
                response_topic="caller/7/reply",
            )
            assert out["topic"] == "caller/7/reply"
            assert out["properties"]["correlation-data"] == "req-42"
            assert out["properties"]["content-type"] == "application/json"
            jwr = out["payload"]
            assert jwr["statusCode"] == 200
            assert jwr["body"] == {
                "hello": "mqtt",
                "transport": "mqtt",
                "is_socket": False,
                "mode": "user",
                "ip": None,
                "query": {"x": "1"},
            }
            # the same route answers HTTP as usual, and the metrics name both transports
            reply = await request(server, "GET", "/hello")
            assert json.loads(reply.body)["transport"] == "http"
            text = server.app.metrics.transports["mqtt"]
            assert text.count == 1 and server.app.metrics.transports["http"].count >= 1


async def test_404_json_body_and_method(broker: Broker) -> None:
    with trio.fail_after(20):
        async with bridged(broker):
            out = await rr(broker, "gateway/dev1/request", '{"url":"/nowhere"}')
            assert out["payload"]["statusCode"] == 404
            assert out["payload"]["body"] == {"error": "Cannot GET /nowhere", "status": 404}
            out = await rr(
                broker,
                "gateway/dev1/request",
                json.dumps({"method": "post", "url": "/echo", "data": {"a": [1, 2], "s": "é"}}),
            )
            assert out["payload"]["statusCode"] == 201
            # data arrives parsed (as over a Sails socket): no Content-Type, no parser run
            assert out["payload"]["body"] == {"got": {"a": [1, 2], "s": "é"}, "type": None}
            out = await rr(broker, "gateway/dev1/request", '{"method":"HEAD","url":"/hello"}')
            # a HEAD's reply carries the body, as a Sails JWR does (docs/FIDELITY.md)
            assert out["payload"]["statusCode"] == 200 and out["payload"]["body"]["hello"] == "mqtt"


async def test_a_handler_deadline_answers_504_in_the_jwr(broker: Broker) -> None:
    app = make_app()
    finished: list[str] = []

    @app.get("/stuck", timeout="300ms")
    async def stuck(req: Any, res: Any) -> None:
        try:
            await trio.sleep_forever()  # a device that never answers
        finally:
            finished.append("stuck")

    @app.get("/started", timeout="300ms")
    async def started(req: Any, res: Any) -> None:
        await res.write("part")  # a JWR goes out whole: still time for the 504
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with bridged(broker, app):
            out = await rr(broker, "gateway/dev1/request", '{"url":"/stuck"}')
            assert out["payload"]["statusCode"] == 504
            assert out["payload"]["body"] == {"error": "Gateway Timeout", "status": 504}
            out = await rr(broker, "gateway/dev1/request", '{"url":"/started"}')
            # answered as every failure after the reply began: the reason phrase, as text
            assert (out["payload"]["statusCode"], out["payload"]["body"]) == (
                504,
                "Gateway Timeout",
            )
    assert finished == ["stuck"]


async def test_privilege_only_with_a_bearer_token_in_headers(
    broker: Broker, tmp_path: Path
) -> None:
    with trio.fail_after(20):
        async with bridged(broker, server__credentials_file=credentials(tmp_path)):
            topic = "gateway/dev1/request"
            out = await rr(broker, topic, '{"url":"/admin"}')
            assert out["payload"]["statusCode"] == 401
            out = await rr(
                broker,
                topic,
                json.dumps({"url": "/admin", "headers": {"Authorization": "Bearer wrong"}}),
            )
            assert out["payload"]["statusCode"] == 403
            out = await rr(
                broker,
                topic,
                json.dumps({"url": "/admin", "headers": {"Authorization": f"Bearer {TOKEN}"}}),
            )
            assert out["payload"] == {
                "body": {"mode": "privilege"},
                "headers": {},
                "statusCode": 200,
            }


async def test_malformed_payloads_get_a_400_jwr_or_are_dropped(broker: Broker) -> None:
    with trio.fail_after(30):
        async with bridged(broker, websocket__max_message_bytes="2KiB") as server:
            bridge = server.mqtt
            assert bridge is not None
            topic = "gateway/dev1/request"
            for payload, status, says in [
                ("not json", 400, "not JSON"),
                ("[1, 2]", 400, "not an object"),
                ('{"method":"get"}', 400, "No url provided"),
                ('{"method":"fly","url":"/"}', 400, "not a virtual request"),
                ('{"method":1,"url":"/"}', 400, "method must be a string"),
                ('{"url":"/","data":"abc"}', 400, "data must be an object"),
                ('{"url":"/","x":NaN}', 400, "not JSON"),
                (json.dumps({"url": "/", "data": {"x": "y" * 3000}}), 413, "max_message"),
            ]:
                out = await rr(broker, topic, payload)
                assert out["payload"]["statusCode"] == status, payload
                assert says in out["payload"]["body"], out
            out = await rr(broker, topic, b"\xff\xfe{}")
            assert out["payload"]["statusCode"] == 400
            assert bridge.malformed == 9
            # without a Response Topic there is nobody to tell: dropped, counted, logged
            await trio.run_process(
                [
                    "mosquitto_pub",
                    "-V",
                    "mqttv5",
                    "-p",
                    str(broker.port),
                    "-t",
                    topic,
                    "-q",
                    "1",
                    "-m",
                    "garbage",
                ]
            )
            await until(lambda: bridge.malformed >= 10)
            out = await rr(broker, topic, '{"url":"/hello"}')
            assert out["payload"]["statusCode"] == 200


async def test_requests_over_the_in_flight_cap_get_503(broker: Broker) -> None:
    gate = trio.Event()
    with trio.fail_after(30):
        async with (
            bridged(broker, make_app(gate), mqtt__max_in_flight=1) as server,
            trio.open_nursery() as nursery,
        ):
            bridge = server.mqtt
            assert bridge is not None
            first: dict[str, Any] = {}

            async def slow() -> None:
                first.update(
                    await rr(
                        broker,
                        "gateway/dev1/request",
                        '{"url":"/slow"}',
                        response_topic="test/slow",
                        timeout_s=20,
                    )
                )

            nursery.start_soon(slow)
            await until(lambda: bridge.in_flight >= 1)
            out = await rr(broker, "gateway/dev1/request", '{"url":"/hello"}')
            assert out["payload"]["statusCode"] == 503
            assert out["payload"]["headers"] == {"retry-after": "1"}
            assert bridge.rejected == 1
            gate.set()
            await until(lambda: bool(first))
            assert first["payload"]["body"] == "done"


# -- presence, statistics, events ---------------------------------------------------------------


# A fresh interpreter (this module imports urllib.request itself): serves a request over the
# bridge, then imports urllib.request as any app would and uses it.
_LAZY_URLLIB = """
import json, sys, types
import trio
from tests.helpers import make_settings, running
from tests.mqtt_support import make_app, rr

async def main(port):
    settings = make_settings(mqtt__url=f"mqtt://127.0.0.1:{port}", mqtt__device_id="lazy")
    seen = {}
    with trio.fail_after(30):
        async with running(make_app(), settings) as server:
            link = server.mqtt.link
            while not link.subscribed:
                await trio.sleep(0.02)
            broker = types.SimpleNamespace(port=port)
            out = await rr(broker, "gateway/lazy/request", '{"url": "/hello"}')
            seen["status"] = out["payload"]["statusCode"]
            seen["deferred"] = type(sys.modules["urllib.request"]).__name__
            seen["loaded"] = sorted({"http.client", "email.parser"} & set(sys.modules))
            import urllib.request  # an app's own import, after the bridge's
            from urllib.request import urlopen
            url = f"http://127.0.0.1:{server.port}/hello"
            body = await trio.to_thread.run_sync(lambda: urlopen(url, timeout=5).read())
            seen["urlopen"] = json.loads(body)["transport"]
            seen["same"] = (
                urllib.request is sys.modules["urllib.request"]
                and type(urllib.request) is types.ModuleType
                and sys.modules["paho.mqtt.client"].urllib.request is urllib.request
                and isinstance(urllib.request.getproxies(), dict)
            )
    print(json.dumps(seen))

trio.run(main, int(sys.argv[1]))
"""


def test_the_bridge_leaves_urllib_request_unloaded_until_someone_uses_it(broker: Broker) -> None:
    # paho imports urllib.request (http.client, email, ...: ~1.1 MiB of RSS here) only for its
    # proxy settings, which our own socket never asks for: it stays a lazy module until the
    # app (or anything) reads it, and then it is the ordinary module.
    result = subprocess.run(
        [sys.executable, "-c", _LAZY_URLLIB, str(broker.port)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {
        "status": 200,
        "deferred": "_LazyModule",
        "loaded": [],
        "urlopen": "http",
        "same": True,
    }


async def test_presence_is_retained_and_the_bridge_shows_in_stats_and_metrics(
    broker: Broker, tmp_path: Path
) -> None:
    with trio.fail_after(30):
        async with bridged(broker, server__credentials_file=credentials(tmp_path)) as server:
            [(topic, payload)] = await sub(broker, "gateway/+/status", 1)
            assert topic == "gateway/dev1/status"
            status = json.loads(payload)
            assert status["status"] == "online" and status["device_id"] == "dev1"
            assert status["profile"] == "test"
            assert status["version"] == installed_version()  # what importlib.metadata says
            await rr(broker, "gateway/dev1/request", '{"url":"/hello"}')
            auth = [("Authorization", f"Bearer {TOKEN}")]
            stats = json.loads(
                (await request(server, "GET", "/_gateway/stats", headers=auth)).body
            )["mqtt"]
            assert stats["connected"] is True and stats["subscribed"] is True
            assert stats["device_id"] == "dev1" and stats["broker"].endswith(f":{broker.port}")
            assert stats["requests"] == 1 and stats["reconnects"] == 0
            metrics = (await request(server, "GET", "/_gateway/metrics", headers=auth)).body
            text = metrics.decode()
            assert "gateway_mqtt_connected 1" in text
            assert 'gateway_mqtt_requests_total{outcome="accepted"} 1' in text
            assert (
                'gateway_requests_total{method="GET",status="2xx",mode="user",transport="mqtt"} 1'
            ) in text
            server.shutdown()  # a clean stop says offline itself (no Last Will needed)
            await server.stopped.wait()
    with trio.fail_after(10):
        [(topic, payload)] = await sub(broker, "gateway/+/status", 1)
        assert json.loads(payload) == {"status": "offline", "device_id": "dev1"}


async def test_room_events_go_out_per_room_and_come_in_to_local_sockets(broker: Broker) -> None:
    with trio.fail_after(40):
        async with bridged(broker, mqtt__rooms=["news", "a/b"]) as server:
            bridge = server.mqtt
            assert bridge is not None
            url = f"http://127.0.0.1:{server.port}"
            # out: what the app broadcasts to a relayed room reaches subscribers of the fleet
            received: list[tuple[str, str]] = []
            async with trio.open_nursery() as nursery:

                async def listen() -> None:
                    received.extend(await sub(broker, "gateway/+/events/#", 1, timeout_s=10))

                nursery.start_soon(listen)
                while not received:  # mosquitto_sub says nothing when it has subscribed
                    await request(
                        server,
                        "POST",
                        "/broadcast/news",
                        body=b'{"n":1}',
                        headers=[("Content-Type", "application/json")],
                    )
                    await trio.sleep(0.1)
            assert received[0] == ("gateway/dev1/events/news", '{"event":"news","data":{"n":1}}')
            # a room that is not relayed stays on this device
            before = bridge.events_out
            await request(
                server,
                "POST",
                "/broadcast/quiet",
                body=b"{}",
                headers=[("Content-Type", "application/json")],
            )
            assert bridge.events_out == before
            # in: fleet-wide and device-addressed events reach the room's local sockets
            async with open_socket(url) as io, io.events("news", "hello") as pushes:
                assert (await io.get("/join/news")).status == 200
                assert (await io.get("/join/a/b")).status == 404  # not a route: a/b is a room
                for topic, payload in [
                    ("gateway/all/events/news", '{"event":"news","data":{"from":"all"}}'),
                    ("gateway/all/events/other", '{"event":"news","data":"not relayed"}'),
                    ("gateway/dev1/events-in/news", '{"event":"hello","data":[1]}'),
                    ("gateway/dev1/events-in/news", '"not an object"'),
                    ("gateway/dev2/events-in/news", '{"event":"news","data":"dev2"}'),
                ]:
                    await trio.run_process(
                        [
                            "mosquitto_pub",
                            "-V",
                            "mqttv5",
                            "-p",
                            str(broker.port),
                            "-q",
                            "1",
                            "-t",
                            topic,
                            "-m",
                            payload,
                        ]
                    )
                first = await pushes.receive()
                second = await pushes.receive()
                assert (first.event, first.data) == ("news", {"from": "all"})
                assert (second.event, second.data) == ("hello", [1])
            assert bridge.events_in == 2 and bridge.malformed == 1


# -- broker loss --------------------------------------------------------------------------------


async def test_a_broker_restart_under_traffic_reconnects_and_http_keeps_serving(
    broker: Broker,
) -> None:
    with trio.fail_after(60):
        async with bridged(broker, mqtt__rooms=["news"]) as server:
            bridge = server.mqtt
            assert bridge is not None
            assert (await rr(broker, "gateway/dev1/request", '{"url":"/hello"}'))["payload"][
                "statusCode"
            ] == 200
            http_ok = 0
            stop = trio.Event()

            async def http_traffic() -> None:
                nonlocal http_ok
                while not stop.is_set():
                    with trio.fail_after(2):  # never held up by the broker's absence
                        reply = await request(server, "GET", "/hello")
                    assert reply.status == 200
                    http_ok += 1
                    await trio.sleep(0.01)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(http_traffic)
                await trio.to_thread.run_sync(broker.stop)
                await until(lambda: not bridge.link.connected)
                during = http_ok
                # a push while the broker is gone is dropped and counted, never queued
                dropped = bridge.link.dropped
                await request(
                    server,
                    "POST",
                    "/broadcast/news",
                    body=b"{}",
                    headers=[("Content-Type", "application/json")],
                )
                assert bridge.link.dropped == dropped + 1
                await trio.sleep(1.5)  # a failed reconnect attempt or two
                assert http_ok > during
                await trio.to_thread.run_sync(broker.start)
                await ready(server, connects=2)
                stop.set()
            assert bridge.statistics()["reconnects"] == 1
            assert bridge.link.connect_failures >= 1
            assert (await rr(broker, "gateway/dev1/request", '{"url":"/hello"}'))["payload"][
                "statusCode"
            ] == 200


# -- TLS, credentials and configuration ---------------------------------------------------------


async def test_mqtts_with_a_credentials_file(tmp_path: Path) -> None:
    require_tool("mosquitto_rr", "mosquitto-clients")
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    for name, blob in (
        ("ca.pem", ca.cert_pem),
        ("cert.pem", cert.cert_chain_pems[0]),
        ("key.pem", cert.private_key_pem),
    ):
        blob.write_to_path(str(tmp_path / name))
    broker = Broker(
        tmp_path,
        users={"device": "s3cret:with colon"},
        tls=(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
    )
    creds = tmp_path / "mqtt.credentials"
    creds.write_text("device:s3cret:with colon\n")
    creds.chmod(0o600)
    broker.start()
    try:
        url = f"mqtts://localhost:{broker.port}"
        with trio.fail_after(30):
            settings = make_settings(
                mqtt__url=url,
                mqtt__device_id="dev1",
                mqtt__credentials_file=str(creds),
                mqtt__tls_ca_file=str(tmp_path / "ca.pem"),
            )
            async with running(make_app(), settings) as server:
                await ready(server)
                assert server.mqtt is not None and server.mqtt.info.scheme == "https"
                out = await rr(
                    broker,
                    "gateway/dev1/request",
                    '{"url":"/hello"}',
                    extra=[
                        "--cafile",
                        str(tmp_path / "ca.pem"),
                        "-u",
                        "device",
                        "-P",
                        "s3cret:with colon",
                    ],
                )
                assert out["payload"]["statusCode"] == 200
            # a wrong password: refused by the broker, said in the stats, retried with backoff
            creds.write_text("device:wrong\n")
            async with running(make_app(), settings) as server:
                bridge = server.mqtt
                assert bridge is not None
                await until(
                    lambda: (
                        bridge.link.connect_failures >= 2 and "refused" in bridge.link.last_error
                    )
                )
                assert not bridge.link.connected
            # a CA that did not sign the broker's certificate: the TLS handshake fails
            other = tmp_path / "other-ca.pem"
            trustme.CA().cert_pem.write_to_path(str(other))
            creds.write_text("device:s3cret:with colon\n")
            settings = make_settings(
                mqtt__url=url,
                mqtt__device_id="dev1",
                mqtt__credentials_file=str(creds),
                mqtt__tls_ca_file=str(other),
            )
            async with running(make_app(), settings) as server:
                bridge = server.mqtt
                assert bridge is not None
                await until(lambda: "TLS" in bridge.link.last_error)
                assert not bridge.link.connected
    finally:
        broker.stop()


async def test_an_unsafe_credentials_file_stops_the_start(tmp_path: Path, capsys: Any) -> None:
    creds = tmp_path / "mqtt.credentials"
    creds.write_text("device:pw\n")
    creds.chmod(0o644)
    settings = make_settings(mqtt__url="mqtt://127.0.0.1:1", mqtt__credentials_file=str(creds))
    server = bound_server(make_app(), settings)
    try:
        with pytest.raises(ConfigError, match="must not be accessible by other users"):
            await server.open_listeners()
    finally:
        server.close_listeners()
    args = [
        "check",
        "--profile",
        "test",
        "--set",
        "mqtt.url=mqtt://127.0.0.1:1",
        "--set",
        f"mqtt.credentials_file={creds}",
    ]
    assert main(args) == 78
    assert "mqtt.credentials_file: must not be accessible" in capsys.readouterr().err
    creds.chmod(0o600)
    assert main(args) == 0
    creds.write_text("no colon here\n")
    assert main(args) == 78
    assert "expected one line 'username:password'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("mqtt.url", "http://broker:1883", "the scheme must be mqtt:// or mqtts://"),
        ("mqtt.url", "mqtt://broker:99999", "mqtt.url: expected a broker url"),
        ("mqtt.url", "mqtt://user:pw@broker", "credentials go in mqtt.credentials_file"),
        ("mqtt.device_id", "all", 'other than "all"'),
        ("mqtt.device_id", "a/b", "one MQTT topic level"),
        ("mqtt.topic_prefix", "gw/+", "one MQTT topic level"),
        ("mqtt.rooms", "ok,bad#", "room names that can be topic levels"),
        ("mqtt.tls_ca_file", "/etc/ssl/ca.pem", "an mqtts:// url"),
    ],
)
def test_mqtt_settings_are_checked_at_load(key: str, value: str, says: str) -> None:
    overrides = {"mqtt.url": "mqtt://broker:1883", key: value}
    with pytest.raises(ConfigError, match=says.replace("+", r"\+").replace("/", "/")):
        load_settings("test", env={}, overrides=overrides)


def test_an_empty_url_is_no_bridge() -> None:
    settings = make_settings(mqtt__rooms=["bad#"])  # not checked: nothing of [mqtt] is used
    assert Server(make_app(), settings).mqtt is None


# -- a fleet: three gateway processes on one broker ---------------------------------------------


def _serve(broker: Broker, device: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "tests.mqtt_support:app",
                "--profile",
                "test",
                "--port",
                str(port),
                "--set",
                f"mqtt.url={broker.url}",
                "--set",
                f"mqtt.device_id={device}",
                "--set",
                "mqtt.rooms=news",
            ],
            cwd=ROOT,
            env={**os.environ, "GATEWAY_LOG_LEVEL": "INFO"},
            stdout=out,
            stderr=out,
        )


def _wait_online(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_gateway/health", timeout=2):
                pass
            if "subscribed" in log.read_text():  # the bridge logs it at the SUBACK
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@pytest.mark.slow
async def test_three_gateways_on_one_broker(broker: Broker, tmp_path: Path) -> None:
    devices = ["dev-a", "dev-b", "dev-c"]
    ports = [free_port() for _ in devices]
    logs = [tmp_path / f"{d}.log" for d in devices]
    procs = [_serve(broker, d, p, log) for d, p, log in zip(devices, ports, logs, strict=True)]
    try:
        for port, proc, log in zip(ports, procs, logs, strict=True):
            await trio.to_thread.run_sync(_wait_online, port, proc, log)
        with trio.fail_after(60):
            # presence: one retained "online" per device
            seen = dict(await sub(broker, "gateway/+/status", 3))
            assert {t: json.loads(p)["status"] for t, p in seen.items()} == {
                f"gateway/{d}/status": "online" for d in devices
            }
            # each device answers its own request topic
            for device, proc in zip(devices, procs, strict=True):
                out = await rr(broker, f"gateway/{device}/request", '{"url":"/whoami"}')
                assert out["payload"]["body"] == {"device": device, "pid": proc.pid}
            # a fleet-wide event reaches the local Socket.IO sockets of all three; one
            # addressed to a device only that device's
            async with AsyncExitStack() as stack:
                ios = [
                    await stack.enter_async_context(open_socket(f"http://127.0.0.1:{p}"))
                    for p in ports
                ]
                for io in ios:
                    assert (await io.get("/join/news")).status == 200
                pushes = [await stack.enter_async_context(io.events("news")) for io in ios]
                for topic, data in (
                    ("gateway/all/events/news", {"to": "all"}),
                    ("gateway/dev-b/events-in/news", "just b"),
                    ("gateway/all/events/news", {"to": "all", "n": 2}),
                ):
                    await trio.run_process(
                        [
                            "mosquitto_pub",
                            "-V",
                            "mqttv5",
                            "-p",
                            str(broker.port),
                            "-q",
                            "1",
                            "-t",
                            topic,
                            "-m",
                            json.dumps({"event": "news", "data": data}),
                        ]
                    )
                got = [
                    [(await channel.receive()).data for _ in range(3 if i == 1 else 2)]
                    for i, channel in enumerate(pushes)
                ]
                assert got == [
                    [{"to": "all"}, {"to": "all", "n": 2}],
                    [{"to": "all"}, "just b", {"to": "all", "n": 2}],
                    [{"to": "all"}, {"to": "all", "n": 2}],
                ]
            # a SIGKILLed device: the broker publishes its retained Last Will
            procs[2].send_signal(signal.SIGKILL)
            procs[2].wait()
            while True:
                status = dict(await sub(broker, "gateway/+/status", 3))
                if json.loads(status["gateway/dev-c/status"])["status"] == "offline":
                    break
                await trio.sleep(0.1)
            assert json.loads(status["gateway/dev-a/status"])["status"] == "online"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


# -- reconnecting (virtual time) ----------------------------------------------------------------


async def test_reconnect_backoff_doubles_with_jitter_up_to_its_ceiling(autojump_clock: Any) -> None:
    from gateway.server.mqtt_link import Link, LinkConfig

    attempts: list[float] = []

    async def refused() -> Any:
        attempts.append(trio.current_time())
        raise ConnectionRefusedError(111, "Connection refused")

    link = Link(
        LinkConfig("127.0.0.1", 1, None, "t", None, None, 30.0, 8.0, 1024),
        lambda m: None,
        lambda: None,
    )
    link._open_socket = refused  # type: ignore[method-assign]
    with trio.move_on_after(120):
        await link.run()
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    ceilings = [min(8.0, 2.0**i) for i in range(len(gaps))]  # 1, 2, 4, 8, 8, ...
    assert all(c / 2 <= g <= c for g, c in zip(gaps, ceilings, strict=True)), gaps
    assert len(set(round(g, 6) for g in gaps[3:])) > 1  # jittered, not in lockstep
    assert 120 / 8 <= len(attempts) <= 2 + 120 / 4
    assert link.connect_failures == len(attempts) and link.last_error == "Connection refused"
    assert not link.publish("t/x", b"dropped") and link.dropped == 1  # no offline queue
