# Brute-force protection: what a peer is counted as (IPv4, IPv6 /64, mapped, uid), the window,
# the ban and its end on a fake clock and on trio's autojump clock, one log line per ban,
# exempt networks, [bans] max_failures = 0, the table's bound and its measured memory; over real
# sockets a banned peer's 429 + Retry-After (its public routes still served, a correct token
# refused too) and its return after the ban; failures counted on virtual requests, WebSocket
# and Socket.IO handshakes and the Unix socket; the counters in statistics and the metrics.
from __future__ import annotations

import gc
import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from wsproto.events import RejectConnection

from gateway import App, Request, Response
from gateway.app.bans import Bans, peer_key
from gateway.settings import BansSettings
from tests.helpers import Client, request, running
from tests.test_body_streaming import session
from tests.test_modes import TOKEN
from tests.test_sails_gateway import _eio4, _jwr
from tests.test_websocket import Client as WSClient

WRONG = [("Authorization", "Bearer not-the-token")]
RIGHT = [("Authorization", f"Bearer {TOKEN}")]


class ShiftedClock:
    """trio's clock plus what the test jumped: a ban's end on real sockets without a mock clock
    (under which no timeout of the server, nor the test's fail_after, would ever fire)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return trio.current_time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bans(**values: Any) -> tuple[Bans, FakeClock]:
    clock = FakeClock()
    settings = BansSettings(**{"max_failures": 3, "window_s": 10.0, "ban_s": 60.0, **values})
    return Bans(settings, clock), clock


def app_with_routes() -> App:
    app = App()

    @app.get("/public")
    async def public(req: Request, res: Response) -> None:
        await res.json({"mode": req.mode})

    @app.get("/admin", privileged=True)
    async def admin(req: Request, res: Response) -> None:
        await res.send("admin")

    @app.ws("/live", privileged=True)
    async def live(ws: Any, req: Request) -> None:
        await ws.send("hi")

    return app


# -- what a peer is --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        (("192.168.1.20", 5000), "192.168.1.20"),
        (("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 5000), "2001:db8:1:2::/64"),
        (("2001:db8:1:2::1", 1), "2001:db8:1:2::/64"),  # the same host's other address
        (("2001:db8:1:3::1", 1), "2001:db8:1:3::/64"),
        (("::ffff:10.0.0.7", 1), "10.0.0.7"),  # IPv4-mapped: the IPv4 address
        (("fe80::1%eth0", 1), "fe80::/64"),
        (("unix", 1000), "unix:uid=1000"),
        (None, "-"),
    ],
)
def test_peer_keys(peer: tuple[str, int] | None, key: str) -> None:
    assert peer_key(peer) == key


# -- the window and the ban, on a fake clock --------------------------------------------------------


def test_a_ban_comes_at_the_limit_within_the_window_and_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table, clock = bans()
    peer = ("10.0.0.5", 1)
    caplog.set_level(logging.WARNING, "gateway.auth")
    table.fail(peer)
    table.fail(peer)
    assert table.retry_after(peer) == 0
    clock.now += 10.0  # the window is over: counting starts again
    table.fail(peer)
    table.fail(peer)
    assert table.retry_after(peer) == 0 and table.bans == 0
    clock.now += 9.5
    table.fail(peer)  # the third within 10 s
    assert table.retry_after(peer) == 60 and table.bans == 1
    clock.now += 0.25
    assert table.retry_after(("10.0.0.5", 2)) == 60  # rounded up; any port of the address
    assert table.refuse(peer) == 60 and table.refused == 1
    assert table.retry_after(("10.0.0.6", 1)) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "10.0.0.5 banned for 60 s: 3 failed credentials within 10 s ([bans]); its requests "
        "with credentials get 429 until then"
    ]  # once per ban, not per request
    clock.now += 59.75
    assert table.retry_after(peer) == 0 and table.refuse(peer) == 0 and table.refused == 1
    table.fail(peer)  # a fresh window after the ban: one failure is not a ban
    assert table.retry_after(peer) == 0
    assert table.failures == 6 and table.banned_peers() == 0


def test_an_ipv6_host_cannot_escape_by_changing_its_address() -> None:
    table, _ = bans()
    for suffix in ("1", "2", "abcd:1234"):
        table.fail((f"2001:db8:0:7::{suffix}", 1))
    assert table.retry_after(("2001:db8:0:7::99", 1)) == 60
    assert table.retry_after(("2001:db8:0:8::1", 1)) == 0


def test_exempt_networks_and_zero_failures_never_ban() -> None:
    table, _ = bans(exempt_networks=("192.168.1.10/32", "fd00::/8"))
    for _ in range(5):
        table.fail(("192.168.1.10", 1))
        table.fail(("::ffff:192.168.1.10", 1))
        table.fail(("fd00::5", 1))
    assert table.bans == 0 and not table.peers and table.failures == 15  # counted, not banned
    off, _ = bans(max_failures=0)
    for _ in range(10):
        off.fail(("10.0.0.1", 1))
    assert off.bans == 0 and not off.peers and off.failures == 10


def test_the_table_is_bounded_and_keeps_an_active_ban() -> None:
    table, clock = bans(max_tracked_peers=64)
    attacker = ("10.9.9.9", 1)
    for _ in range(3):
        table.fail(attacker)
    for i in range(10_000):  # an attacker cycling addresses, one failure each
        table.fail((f"172.16.{i // 256}.{i % 256}", 1))
        if i % 50 == 0:
            assert table.refuse(attacker) > 0  # it keeps trying: kept at the back
        assert len(table.peers) <= 64
    assert len(table.peers) == 64 and table.retry_after(attacker) > 0
    quiet, _ = bans(max_tracked_peers=64)
    for _ in range(3):
        quiet.fail(attacker)
    for i in range(64):
        quiet.fail((f"172.16.0.{i}", 1))
    assert quiet.retry_after(attacker) == 0  # a quiet entry is the oldest: evicted first
    # a reload with a smaller cap keeps the newest
    assert table.refuse(attacker) > 0
    table.configure(BansSettings(max_failures=3, window_s=10.0, ban_s=60.0, max_tracked_peers=8))
    assert len(table.peers) == 8 and table.retry_after(attacker) > 0
    # entries whose window and ban are over leave as new failures come
    clock.now += 120.0
    table.fail(("10.1.1.1", 1))
    assert list(table.peers) == ["10.1.1.1"]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_the_memory_of_a_full_table(family: str) -> None:
    # the documented cost (README, default.toml): ~0.3 KiB an entry, keys included
    table, _ = bans(max_tracked_peers=1024)

    def peer(i: int) -> tuple[str, int]:
        return (
            (f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}", 1)
            if family == "ipv4"
            else (f"2001:db8:{i:x}::1", 1)
        )

    table.fail(peer(0))
    table.peers.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):  # far past the cap: the table stays at it
            table.fail(peer(i))
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table.peers) == 1024
    assert 150 * 1024 < used < 320 * 1024, used  # 0.15-0.31 MiB for 1024 peers


# -- in the exchange, on trio's clock ----------------------------------------------------------------


async def test_a_banned_peer_gets_429_on_credentials_only_until_the_ban_ends(
    autojump_clock: trio.testing.MockClock, creds: str
) -> None:
    app = app_with_routes()
    with trio.fail_after(1000):
        async with session(
            app,
            server__credentials_file=creds,
            http__idle_timeout_s=10_000,
            bans__max_failures=3,
            bans__window_s=30,
            bans__ban_s=120,
        ) as (client, _, _):

            async def get(path: str, headers: list[tuple[str, str]] | None = None) -> Any:
                await client.send("GET", path, headers)
                return await client.response()

            statuses = [(await get("/admin", WRONG)).status for _ in range(2)]
            await trio.sleep(31)  # past the window: the two are forgotten
            statuses += [(await get("/admin", WRONG)).status for _ in range(3)]
            banned = await get("/admin", RIGHT)  # the right token, but banned
            public = await get("/public")
            public_with_token = await get("/public", WRONG)
            await trio.sleep(60)
            later = await get("/admin", RIGHT)
            await trio.sleep(61)
            after = await get("/admin", RIGHT)
            stats = app.statistics()["auth"]
    # the failure that reaches the limit is answered 429 already: the ban starts with it
    assert statuses == [403, 403, 403, 403, 429]
    assert banned.status == 429 and banned.headers["retry-after"] == "120"
    assert b"Too many failed credentials" in banned.body
    assert public.status == 200 and public.json() == {"mode": "user"}  # the LAN keeps the device
    assert public_with_token.status == 429
    assert later.status == 429 and later.headers["retry-after"] == "60"
    assert after.status == 200 and after.body == b"admin"
    assert stats == {
        "failures": 5,
        "bans": 1,
        "refused": 4,
        "banned_peers": 0,
        "tracked_peers": 1,
        "max_tracked_peers": 1024,
    }


async def test_other_schemes_and_empty_tokens_are_not_guesses(
    autojump_clock: trio.testing.MockClock, creds: str
) -> None:
    # a browser's saved Basic credentials for the same host are no attack on our tokens
    app = app_with_routes()
    with trio.fail_after(100):
        async with session(app, server__credentials_file=creds, bans__max_failures=2) as (
            client,
            _,
            _,
        ):
            for header in ("Basic dXNlcjpwYXNz", "Bearer", "Digest x", "Basic"):
                await client.send("GET", "/admin", [("Authorization", header)])
                assert (await client.response()).status == 403
    assert app.bans is None  # nothing counted: the module never loaded for this app


# -- real sockets ---------------------------------------------------------------------------------------


async def test_a_banned_peer_is_served_again_after_the_ban_over_real_sockets(creds: str) -> None:
    app = app_with_routes()
    with trio.fail_after(20):
        async with running(
            app, server__credentials_file=creds, bans__max_failures=3, bans__ban_s=300
        ) as server:
            app.clock = clock = ShiftedClock()  # what bans read (the server set trio's)
            failed = [(await request(server, "GET", "/admin", WRONG)).status for _ in range(3)]
            # (the third reached the limit: answered 429 with the ban it started)
            banned = await request(server, "GET", "/admin", RIGHT)
            clock.jump(299.5)
            still = await request(server, "GET", "/admin", RIGHT)
            clock.jump(1)
            served = await request(server, "GET", "/admin", RIGHT)
    assert failed == [403, 403, 429]
    assert banned.status == 429 and banned.headers["retry-after"] == "300"
    assert still.status == 429 and still.headers["retry-after"] in ("1", "2")  # rounded up
    assert served.status == 200 and served.body == b"admin"


async def test_failures_on_sockets_handshakes_and_the_unix_socket_count(
    creds: str, tmp_path: Path
) -> None:
    app = app_with_routes()
    unix = str(tmp_path / "gw.sock")
    with trio.fail_after(20):
        async with running(
            app,
            server__credentials_file=creds,
            server__unix_path=unix,
            server__unix_allowed_uids=[os.getuid() + 4242],
            bans__max_failures=4,
        ) as server:
            # a WebSocket handshake and a Socket.IO handshake with a wrong token
            _, ws = await WSClient.open(server.port, "/live", headers=WRONG)
            sock, _ = await _eio4(server.port, WRONG)  # the socket opens, in user mode
            # then virtual requests guessing tokens
            first = await _jwr(sock, 1, "get", {"url": "/admin", "headers": dict(WRONG)})
            second = await _jwr(sock, 2, "get", {"url": "/admin", "headers": dict(WRONG)})
            refused = await _jwr(sock, 3, "get", {"url": "/admin", "headers": dict(RIGHT)})
            _, ws_banned = await WSClient.open(server.port, "/live", headers=RIGHT)
            # the local socket's peer is its uid: counted apart from 127.0.0.1
            stream = await trio.open_unix_socket(unix)
            local = Client(stream)
            for status in (403, 403, 403, 429):  # the fourth reaches the limit
                await local.send("GET", "/admin", WRONG)
                assert (await local.response()).status == status
            await local.send("GET", "/admin", RIGHT)
            local_banned = await local.response()
            await local.aclose()
            stats = app.statistics()["auth"]
    assert isinstance(ws, RejectConnection) and ws.status_code == 403
    assert first["statusCode"] == 403 and second["statusCode"] == 429  # the fourth: banned
    assert refused["statusCode"] == 429 and refused["headers"]["Retry-After"] == "600"
    assert isinstance(ws_banned, RejectConnection) and ws_banned.status_code == 429
    assert local_banned.status == 429
    assert stats["failures"] == 8 and stats["bans"] == 2 and stats["banned_peers"] == 2
    assert stats["refused"] == 5


async def test_the_counters_in_the_metrics(creds: str) -> None:
    app = app_with_routes()
    with trio.fail_after(20):
        async with running(
            app, server__credentials_file=creds, bans__max_failures=2, status__metrics_public=True
        ) as server:
            app.clock = clock = ShiftedClock()
            for _ in range(3):  # 2 failures (the second starts the ban), then one refused
                await request(server, "GET", "/admin", WRONG)
            text = (await request(server, "GET", "/_gateway/metrics")).text
            clock.jump(601)
            later = (await request(server, "GET", "/_gateway/metrics")).text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    value = {
        name: fams[name].samples[0].value
        for name in (
            "gateway_auth_failures",
            "gateway_bans",
            "gateway_banned_peers",
            "gateway_ban_refusals",
        )
    }
    assert value == {
        "gateway_auth_failures": 2,
        "gateway_bans": 1,
        "gateway_banned_peers": 1,
        "gateway_ban_refusals": 2,
    }
    assert fams["gateway_banned_peers"].type == "gauge" and fams["gateway_bans"].type == "counter"
    again = {f.name: f for f in text_string_to_metric_families(later)}
    assert again["gateway_banned_peers"].samples[0].value == 0
    assert again["gateway_bans"].samples[0].value == 1
