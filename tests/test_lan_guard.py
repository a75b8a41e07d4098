# The LAN guard (server.allowed_networks, checked at accept) for the peers a dual-stack socket
# delivers: the systemd socket unit binds [::] without IPV6_V6ONLY, so an IPv4 LAN client
# arrives as ::ffff:a.b.c.d and must be judged by its IPv4 address. End to end: a listener on
# :: with IPV6_V6ONLY=0 handed to the Server as systemd would (``sockets=``), a client from
# 127.0.0.1; and the guard itself (Server._admit) with literal peer addresses.
from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from gateway import App, Request, Response
from gateway.errors import ConfigError
from gateway.server.serve import Server, _Listener
from gateway.settings import ServerSettings, Settings
from tests.helpers import make_settings, parse_replies, read_all, request, running


def peer_app() -> App:
    app = App()

    @app.get("/ip")
    async def ip(req: Request, res: Response) -> None:
        await res.send(req.ip)

    return app


def dual_stack_listener() -> socket.socket:
    """A listening socket on [::]:0 that also takes IPv4 (as systemd's BindIPv6Only=both)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0))
    sock.listen(16)
    return sock


@asynccontextmanager
async def dual_stack(networks: list[str]) -> AsyncIterator[Server]:
    app = peer_app()
    settings = make_settings(server__allowed_networks=networks)
    app.bind(settings)
    server = Server(app, settings, sockets=[dual_stack_listener()])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


async def get_ip(port: int, host: str = "127.0.0.1") -> bytes:
    """The raw reply to GET /ip from ``host`` (b"" when the server closed without replying)."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        try:
            await stream.send_all(b"GET /ip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        except trio.BrokenResourceError:
            pass
        return await read_all(stream)


async def test_ipv4_client_of_a_dual_stack_listener_is_judged_by_its_ipv4_address() -> None:
    with trio.fail_after(10):
        async with dual_stack(["127.0.0.0/8"]) as server:
            assert server.listeners[0].address[0] == "::"
            raw = await get_ip(server.port)
            assert server.stats["accepted"] == 1 and server.stats["rejected_network"] == 0
    assert raw.startswith(b"HTTP/1.1 200 ")
    # the path under test really ran: the peer arrived as an IPv4-mapped IPv6 address
    assert raw.endswith(b"\r\n\r\n::ffff:127.0.0.1")


async def test_ipv4_client_is_refused_when_only_ipv6_loopback_is_allowed() -> None:
    with trio.fail_after(10):
        async with dual_stack(["::1/128"]) as server:
            raw = await get_ip(server.port)
            assert server.stats["rejected_network"] == 1 and server.stats["accepted"] == 0
            ipv6 = await get_ip(server.port, "::1")  # the same listener: ::1 is let in
            assert server.stats["accepted"] == 1
    assert raw == b""
    assert ipv6.startswith(b"HTTP/1.1 200 ") and ipv6.endswith(b"\r\n\r\n::1")


def _admit(networks: list[str] | None, host: str) -> bool:
    overrides: dict[str, Any] = {}
    if networks is not None:
        overrides["server__allowed_networks"] = networks
    settings = make_settings(**overrides)
    server = Server(App(), settings)
    listener = _Listener(None, None, "tcp", ("::", 0, 0, 0))  # type: ignore[arg-type]
    info = server._admit(
        None,
        (host, 40000, 0, 0) if ":" in host else (host, 40000),  # type: ignore[arg-type]
        listener,
    )
    if info is None:
        assert server.stats["rejected_network"] == 1
        return False
    assert info.peer == (host, 40000) and info.peer_text == f"{host}:40000"
    assert info.privileged is False
    return True


@pytest.mark.parametrize(
    ("host", "admitted"),
    [
        # the default profile's networks: loopback, RFC 1918, link-local, ULA
        ("10.0.0.5", True),
        ("::ffff:10.0.0.5", True),
        ("192.168.1.20", True),
        ("::ffff:192.168.1.20", True),
        ("172.16.0.1", True),
        ("::ffff:172.31.255.254", True),
        ("::ffff:172.32.0.1", False),
        ("169.254.1.1", True),
        ("::ffff:169.254.1.1", True),
        ("127.0.0.1", True),
        ("::ffff:127.0.0.1", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("fd12:3456::1", True),
        ("8.8.8.8", False),
        ("::ffff:8.8.8.8", False),
        ("2001:db8::1", False),
        ("::ffff:0:8.8.8.8", False),  # IPv4-translated (RFC 2765), not mapped: stays IPv6
    ],
)
def test_guard_with_the_default_networks(host: str, admitted: bool) -> None:
    assert _admit(None, host) is admitted


@pytest.mark.parametrize(
    ("networks", "host", "admitted"),
    [
        (["127.0.0.0/8"], "::ffff:127.0.0.1", True),
        (["127.0.0.0/8"], "::1", False),
        (["::1/128"], "::ffff:127.0.0.1", False),
        (["::1/128"], "::1", True),
        (["10.0.0.0/8"], "::ffff:10.0.0.5", True),
        (["10.0.0.0/8"], "::ffff:11.0.0.5", False),
        (["192.168.0.0/16"], "::ffff:10.0.0.5", False),
    ],
)
def test_guard_unmaps_ipv4_mapped_peers(networks: list[str], host: str, admitted: bool) -> None:
    assert _admit(networks, host) is admitted


def test_a_scope_id_is_not_part_of_the_address() -> None:
    # Linux allows "%" in an interface name, and the scope comes back as that name: only what
    # precedes the first "%" is the address (ipaddress refuses a scope holding a "%")
    assert _admit(None, "fe80::1%eth0") is True
    assert _admit(None, "fe80::1%a%b") is True
    assert _admit(["fe80::/10"], "fe80::1%a%b") is True
    assert _admit(["10.0.0.0/8"], "fe80::1%a%b") is False


def test_a_network_that_does_not_parse_is_refused_when_settings_are_built_in_code() -> None:
    # load_settings checks allowed_networks; Settings built in code (a library user's own
    # profile) reach the Server unchecked and must not start a server that admits nobody
    settings = Settings(server=ServerSettings(allowed_networks=("127.0.0.0/8", "lan")))
    with pytest.raises(ConfigError) as err:
        Server(App(), settings)
    assert str(err.value) == (
        "(built-in defaults): server.allowed_networks: "
        "'lan' does not appear to be an IPv4 or IPv6 network"
    )


def scheme_app() -> App:
    app = App()

    @app.get("/who")
    async def who(req: Request, res: Response) -> None:
        await res.json({"ip": req.ip, "protocol": req.protocol})

    return app


async def test_every_refusal_is_counted_and_logged_with_the_peer(caplog: Any) -> None:
    with trio.fail_after(10), caplog.at_level(logging.WARNING, logger="gateway.server"):
        async with dual_stack(["::1/128"]) as server:
            assert await get_ip(server.port) == b""
            assert await get_ip(server.port) == b""
            assert server.stats["rejected_network"] == 2 and server.stats["accepted"] == 0
    refusals = [r for r in caplog.records if r.name == "gateway.server"]
    assert [r.getMessage() for r in refusals] == [
        "refused connection from ::ffff:127.0.0.1: not in server.allowed_networks"
    ] * 2
    assert all(r.levelno == logging.WARNING for r in refusals)


async def test_an_admitted_tcp_peer_is_plain_http_with_its_address() -> None:
    with trio.fail_after(10):
        async with running(scheme_app()) as server:
            reply = await request(server, "GET", "/who")
    assert reply.json() == {"ip": "127.0.0.1", "protocol": "http"}


async def test_a_unix_socket_peer_is_named_by_its_uid(tmp_path: Any, capsys: Any) -> None:
    # the guard's other half: a Unix socket has no address; the peer is its uid (from the
    # kernel, SO_PEERCRED), which the access log shows and the bans key on
    path = str(tmp_path / "gw.sock")
    uid = os.geteuid()
    with trio.fail_after(10):
        async with running(scheme_app(), server__unix_path=path, server__access_log="true"):
            stream = await trio.open_unix_socket(path)
            async with stream:
                await stream.send_all(b"GET /who HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                (reply,) = parse_replies(await read_all(stream))
    assert reply.json() == {"ip": "unix", "protocol": "http"}
    (line,) = [x for x in capsys.readouterr().err.splitlines() if '"GET /who HTTP/1.1"' in x]
    assert f' unix:uid={uid} "GET /who HTTP/1.1" 200 ' in f" {line}"


class FakeUnixPeer:
    """A connection whose SO_PEERCRED is given bytes (struct ucred as the kernel writes it)."""

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.creds = struct.pack("=iII", pid, uid, gid)

    def getsockopt(self, level: int, name: int, size: int) -> bytes:
        assert (level, name, size) == (socket.SOL_SOCKET, socket.SO_PEERCRED, len(self.creds))
        return self.creds


@pytest.mark.parametrize(
    ("allowed", "uid", "privileged"),
    [
        ("0", 0, True),
        ("1000", 1000, True),
        ("1000", 1001, False),
        ("3000000000", 3000000000, True),  # a namespace's uid above 2**31-1 is not negative
        ("1000", 3000000000, False),
    ],
)
def test_unix_peer_privilege_is_its_uid(allowed: str, uid: int, privileged: bool) -> None:
    server = Server(App(), make_settings(server__unix_allowed_uids=allowed))
    listener = _Listener(None, None, "unix", "/run/gw.sock")  # type: ignore[arg-type]
    info = server._admit(FakeUnixPeer(4242, uid, 100), None, listener)  # type: ignore[arg-type]
    assert info is not None
    assert info.peer == ("unix", uid) and info.peer_text == f"unix:uid={uid}"
    assert info.privileged is privileged and info.scheme == "http"
