# /_gateway/metrics: the Prometheus text exposition (0.0.4), parsed by prometheus_client's own
# parser, with what real traffic made it count (requests by method, status class, mode and
# transport, durations, body bytes, connections, WebSockets and Socket.IO sockets), who may
# read it (privilege, or the profile's status.metrics_public), and a real Prometheus scraping
# it with a bearer token and answering queries about it.
from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from wsproto.events import TextMessage

from gateway import App, Request, Response, bodyparsers
from gateway.app.metrics import DURATION_BUCKETS_S, RECENT_ERRORS, Metrics
from tests.helpers import request, running
from tests.peers import require_tool
from tests.test_modes import TOKEN
from tests.test_sails_gateway import _eio4
from tests.test_websocket import Client

AUTH = [("Authorization", f"Bearer {TOKEN}")]


def families(text: str) -> dict[str, Any]:
    """Parse as Prometheus' client library does; family names without a counter's _total."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(
    fams: dict[str, Any], family: str, name: str | None = None
) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels: value} of one family's samples (named ``name``, default the family's)."""
    name = name or family
    return {
        tuple(sorted(s.labels.items())): s.value for s in fams[family].samples if s.name == name
    }


# -- counting --------------------------------------------------------------------------------


def test_observe_counts_by_labels_buckets_and_bytes() -> None:
    m = Metrics()
    m.observe("GET", 200, False, "http", 0.001, 0, 10, "/a")  # on a bound: that bucket
    m.observe("GET", 204, False, "http", 0.0011, 0, 0, "/a")
    m.observe("BREW", 418, True, "socket", 99.0, 7, 3, "/pot")
    m.observe("DELETE", 999, True, "socket", 0.007, 0, 0, "/odd")
    http, sock = m.transports["http"], m.transports["socket"]
    assert http.requests_by_label() == [("GET", 2, "user", 2)]
    assert sock.requests_by_label() == [("DELETE", 9, "privilege", 1), ("other", 4, "privilege", 1)]
    assert http.buckets[0] == 1 and http.buckets[1] == 1 and sum(http.buckets) == 2
    assert sock.buckets[len(DURATION_BUCKETS_S)] == 1  # past the last bound: +Inf only
    assert sock.buckets[DURATION_BUCKETS_S.index(0.01)] == 1
    assert (http.count, http.bytes_in, http.bytes_out) == (2, 0, 10)
    assert (sock.count, sock.bytes_in, sock.bytes_out) == (2, 7, 3)
    assert http.seconds == pytest.approx(0.0021) and m.total() == 4
    assert [(e.method, e.path, e.status, e.mode) for e in m.errors] == [
        ("BREW", "/pot", 418, "privilege"),
        ("DELETE", "/odd", 999, "privilege"),
    ]


@pytest.mark.parametrize("bound", range(len(DURATION_BUCKETS_S)))
def test_each_duration_lands_in_the_first_bucket_that_holds_it(bound: int) -> None:
    m = Metrics()
    at = DURATION_BUCKETS_S[bound]
    below = DURATION_BUCKETS_S[bound - 1] if bound else 0.0
    for duration in (at, (at + below) / 2, at * 1.0001):
        m.observe("GET", 200, False, "http", duration, 0, 0, "/")
    buckets = m.transports["http"].buckets
    assert buckets[bound] == 2 and buckets[bound + 1] == 1 and sum(buckets) == 3


def test_the_error_ring_is_bounded_and_keeps_the_latest() -> None:
    m = Metrics()
    for i in range(RECENT_ERRORS + 5):
        m.observe("GET", 500 if i % 2 else 404, False, "http", 0.0, 0, 0, f"/e/{i}" + "x" * 300)
    assert len(m.errors) == RECENT_ERRORS
    assert m.errors[0].path.startswith("/e/5x") and m.errors[-1].path.startswith("/e/24x")
    assert all(len(e.path) == 200 for e in m.errors)


# -- over HTTP -----------------------------------------------------------------------------------


def traffic_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(req: Request, res: Response) -> None:
        await res.send("hello")

    @app.post("/echo", bodyparsers.raw())
    async def echo(req: Request, res: Response) -> None:
        await res.send(req.body)

    @app.get("/boom")
    async def boom(req: Request, res: Response) -> None:
        raise RuntimeError("handler bug")

    return app


async def test_metrics_need_privilege_by_default(creds: str) -> None:
    with trio.fail_after(10):
        async with running(traffic_app(), server__credentials_file=creds) as server:
            anonymous = await request(server, "GET", "/_gateway/metrics")
            wrong = await request(
                server, "GET", "/_gateway/metrics", [("Authorization", "Bearer nope")]
            )
            ok = await request(server, "GET", "/_gateway/metrics", AUTH)
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="gateway"'
    assert "gateway_" not in anonymous.text and wrong.status == 403
    assert ok.status == 200
    assert ok.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "gateway_build_info" in families(ok.text)


async def test_the_profile_can_open_metrics_to_the_lan() -> None:
    with trio.fail_after(10):
        async with running(traffic_app(), status__metrics_public=True) as server:
            reply = await request(server, "GET", "/_gateway/metrics")
    assert reply.status == 200 and "gateway_requests" in families(reply.text)


async def test_what_traffic_makes_the_metrics_count(creds: str, caplog: Any) -> None:
    with trio.fail_after(20):
        async with running(traffic_app(), server__credentials_file=creds) as server:
            replies = [await request(server, "GET", "/hello") for _ in range(3)]
            replies.append(
                await request(
                    server,
                    "POST",
                    "/echo",
                    [("Content-Type", "application/octet-stream")],
                    b"12345",
                )
            )
            replies.append(await request(server, "GET", "/nowhere?token=secret"))
            replies.append(await request(server, "GET", "/boom"))
            replies.append(await request(server, "GET", "/hello", AUTH))
            replies.append(await request(server, "HEAD", "/hello"))
            # a Sails virtual request over Socket.IO: the same router, counted as "socket"
            client, _ = await _eio4(server.port)
            await client.send(
                TextMessage('420["get",{"method":"get","headers":{},"data":{},"url":"/hello"}]')
            )
            ack = await client.event()
            assert isinstance(ack, TextMessage) and ack.data.startswith("430")
            scrape = await request(server, "GET", "/_gateway/metrics", AUTH)
            again = await request(server, "GET", "/_gateway/metrics", AUTH)
            await client.stream.aclose()
            Client.opened.remove(client.stream)
    assert [r.status for r in replies] == [200, 200, 200, 200, 404, 500, 200, 200]
    fams = families(scrape.text)
    assert samples(fams, "gateway_requests", "gateway_requests_total") == {
        (("method", "GET"), ("mode", "user"), ("status", "2xx"), ("transport", "http")): 3,
        (("method", "POST"), ("mode", "user"), ("status", "2xx"), ("transport", "http")): 1,
        (("method", "GET"), ("mode", "user"), ("status", "4xx"), ("transport", "http")): 1,
        (("method", "GET"), ("mode", "user"), ("status", "5xx"), ("transport", "http")): 1,
        (("method", "GET"), ("mode", "privilege"), ("status", "2xx"), ("transport", "http")): 1,
        (("method", "HEAD"), ("mode", "user"), ("status", "2xx"), ("transport", "http")): 1,
        # the Socket.IO handshake is an HTTP request that switched protocols
        (("method", "GET"), ("mode", "user"), ("status", "1xx"), ("transport", "http")): 1,
        (("method", "GET"), ("mode", "user"), ("status", "2xx"), ("transport", "socket")): 1,
    }
    counts = samples(
        fams, "gateway_request_duration_seconds", "gateway_request_duration_seconds_count"
    )
    assert counts == {(("transport", "http"),): 9, (("transport", "socket"),): 1}
    buckets = samples(
        fams, "gateway_request_duration_seconds", "gateway_request_duration_seconds_bucket"
    )
    assert buckets[(("le", "+Inf"), ("transport", "http"))] == 9
    http_buckets = [buckets[(("le", repr(b)), ("transport", "http"))] for b in DURATION_BUCKETS_S]
    assert http_buckets == sorted(http_buckets)  # cumulative
    assert samples(fams, "gateway_request_body_bytes", "gateway_request_body_bytes_total") == {
        (("transport", "http"),): 5,  # "12345"
        # a virtual request's data arrives parsed, inside its WebSocket message: no body bytes
        (("transport", "socket"),): 0,
    }
    body_out = sum(len(r.body) for r in replies)  # HEAD sends none
    assert (
        samples(fams, "gateway_response_body_bytes", "gateway_response_body_bytes_total")[
            (("transport", "http"),)
        ]
        == body_out
    )
    assert samples(fams, "gateway_websockets_open")[()] == 1
    assert samples(fams, "gateway_sockets_open")[()] == 1
    assert samples(fams, "gateway_connections_open")[()] == 2  # the socket and this scrape
    assert samples(fams, "gateway_build_info")[(("profile", "test"), ("version", "0.1.0"))] == 1
    assert samples(fams, "gateway_body_budget_total_bytes")[()] == 4 * 1024 * 1024
    assert samples(fams, "process_resident_memory_bytes")[()] > 1024 * 1024
    assert samples(fams, "gateway_reloads", "gateway_reloads_total") == {
        (("outcome", "applied"),): 0,
        (("outcome", "refused"),): 0,
    }
    assert "secret" not in scrape.text  # nothing a client sent becomes a label
    # the scrape itself is counted once it has ended: the next one sees it
    again_counts = samples(families(again.text), "gateway_requests", "gateway_requests_total")
    assert (
        again_counts[
            (("method", "GET"), ("mode", "privilege"), ("status", "2xx"), ("transport", "http"))
        ]
        == 2
    )


async def test_counting_does_not_need_the_access_log() -> None:
    app = traffic_app()
    with trio.fail_after(10):
        async with running(app, server__access_log=False) as server:
            await request(server, "GET", "/hello")
    assert app.metrics.transports["http"].requests_by_label() == [("GET", 2, "user", 1)]


# -- a real Prometheus ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = json.load(r)
    except OSError:
        return []  # not listening yet
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.slow
async def test_a_real_prometheus_scrapes_with_a_bearer_token(tmp_path: Path, creds: str) -> None:
    exe = require_tool("prometheus", "prometheus")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    app = traffic_app()
    with trio.fail_after(60):
        async with running(app, server__credentials_file=creds) as server:
            for _ in range(4):
                await request(server, "GET", "/hello")
            web = _free_port()
            config = tmp_path / "prometheus.yml"
            config.write_text(
                "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                "  - job_name: gateway\n"
                "    metrics_path: /_gateway/metrics\n"
                f"    authorization: {{type: Bearer, credentials_file: {token_file}}}\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
            )
            log = os.open(tmp_path / "prometheus.log", os.O_WRONLY | os.O_CREAT, 0o644)
            proc = await trio.lowlevel.open_process(
                [
                    exe,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{web}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            try:
                while True:  # bounded by fail_after: up is 1 once a scrape parsed
                    up = await trio.to_thread.run_sync(_query, web, 'up{job="gateway"}')
                    if up and up[0]["value"][1] == "1":
                        break
                    assert proc.returncode is None, (tmp_path / "prometheus.log").read_text()
                    await trio.sleep(0.2)
                hello = await trio.to_thread.run_sync(
                    _query,
                    web,
                    'gateway_requests_total{method="GET",status="2xx",'
                    'transport="http",mode="user"}',
                )
                info = await trio.to_thread.run_sync(_query, web, "gateway_build_info")
            finally:
                proc.terminate()
                with trio.move_on_after(10):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                os.close(log)
    assert float(hello[0]["value"][1]) == 4
    assert info[0]["metric"]["profile"] == "test" and info[0]["metric"]["job"] == "gateway"
    # Prometheus really sent the token: a scrape without it would have been a 401 (up = 0)
    counted = {
        (m, c, mode): n for m, c, mode, n in app.metrics.transports["http"].requests_by_label()
    }
    assert counted[("GET", 2, "privilege")] >= 1
