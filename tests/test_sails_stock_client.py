# The STOCK clients (sails.io.js 1.2.1 dist bundle and node SDK over socket.io-client 2.0.3, and
# socket.io-client 4.x) run by Node against tests/sails_echo_server.py, which answers with our
# sans-IO EngineIOSession + gateway.ws.sails. Checks the replies field by field and the wire.
# Fails (never skips) when `node` or tests/node/node_modules is missing (`make node-deps`).
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio

from tests.conftest import NODE_DIR
from tests.sails_echo_server import Conn, EchoServer, serve_echo

pytestmark = pytest.mark.node

# What sails.io.js-dist 1.2.1 asks for (PROTOCOLS.md section 3).
SAILS_TARGET = (
    "/socket.io/?__sails_io_sdk_version=1.2.1&__sails_io_sdk_platform=browser"
    "&__sails_io_sdk_language=javascript&EIO=3&transport=websocket"
)
Driver = Callable[[str, EchoServer, Any], Any]


async def run(node: str, script: str, server: EchoServer, scenario: Any) -> list[dict[str, Any]]:
    """Run a driver to completion; its JSON lines, asserting it exited 0."""
    with trio.fail_after(30):
        result = await trio.run_process(
            [node, str(NODE_DIR / script), server.base_url, json.dumps(scenario)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    lines = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]
    assert result.returncode == 0, (lines, result.stderr.decode()[-2000:])
    assert lines[-1].get("done") is True
    return lines


def steps(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {line["step"]: line for line in lines if "step" in line}


def sent(conn: Conn, direction: str) -> list[str]:
    return [frame for d, frame in conn.frames if d == direction]


async def start(nursery: trio.Nursery, **kw: Any) -> EchoServer:
    server: EchoServer = await nursery.start(serve_echo, EchoServer(**kw))
    return server


async def ended(conn: Conn) -> Conn:
    """Wait until the server has seen the end of the connection (the driver may exit first)."""
    with trio.fail_after(10):
        await conn.done.wait()
    return conn


# -- sails.io.js 1.2.1 (Engine.IO v3) ---------------------------------------------------------


async def test_dist_client_replies_push_and_wire(node: str, nursery: trio.Nursery) -> None:
    server = await start(nursery)
    lines = await run(
        node,
        "sails_client.js",
        server,
        {
            "handshake_headers": {"Origin": "http://app.local", "Cookie": "sid=abc"},
            "steps": [
                {"op": "get", "url": "/user/3"},
                {"op": "get", "url": "/nope"},
                {"op": "post", "url": "/push", "data": {"data": {"hi": 1}}},
                {"op": "on", "event": "message", "count": 1},
                {"op": "put", "url": "/echo/9", "data": {"a": 1}},
                {"op": "disconnect"},
            ],
        },
    )
    assert lines[0] == {"event": "connect"}
    got = steps(lines)
    assert got[0]["resData"] == {"id": 3}
    jwres = got[0]["jwres"]
    assert jwres["statusCode"] == 200
    assert jwres["headers"] == {"Content-Type": "application/json", "X-Served-By": "echo"}
    assert jwres["body"] == {"id": 3} and "error" not in jwres
    assert got[1]["resData"] == "Not Found"
    assert got[1]["jwres"]["statusCode"] == 404
    assert got[1]["jwres"]["error"].startswith("Server responded with a 404 status code")
    assert got[2]["resData"] == {"pushed": True}
    assert got[3]["data"] == [{"hi": 1}]
    assert got[4]["resData"] == {
        "method": "PUT",
        "url": "/echo/9",
        "headers": {  # sails-hook-sockets: the handshake's cookie and origin, not its host
            "cookie": "sid=abc",
            "origin": "http://app.local",
        },
        "data": {"a": 1},
    }
    assert got[5]["isConnected"] is False

    [conn] = server.conns
    await ended(conn)
    assert conn.target == SAILS_TARGET
    kind, first = conn.frames[0]
    assert kind == "S>C" and first.startswith('0{"sid":')
    assert list(json.loads(first[1:])) == ["sid", "upgrades", "pingInterval", "pingTimeout"]
    assert conn.frames[1] == ("S>C", "40")
    assert conn.frames[2] == (
        "C>S",
        '420["get",{"method":"get","headers":{},"data":{},"url":"/user/3"}]',
    )
    assert conn.frames[3] == (
        "S>C",
        '430[{"body":{"id":3},"headers":{"Content-Type":"application/json",'
        '"X-Served-By":"echo"},"statusCode":200}]',
    )
    assert '42["message",{"hi":1}]' in sent(conn, "S>C")
    assert sent(conn, "C>S")[-1] == "41"
    assert conn.disconnected is not None
    assert conn.disconnected.reason == "client namespace disconnect"


async def test_node_sdk_headers_statuses_and_parse_errors(node: str, nursery: trio.Nursery) -> None:
    server = await start(nursery)
    lines = await run(
        node,
        "sails_client.js",
        server,
        {
            "sdk": "node",
            "handshake_headers": {"Cookie": "sid=hs", "Origin": "http://app.local"},
            "headers": {"x-global": "g"},
            "steps": [
                {
                    "op": "request",
                    "options": {
                        "method": "patch",
                        "url": "/echo/1",
                        "data": {"a": [1, 2]},
                        "headers": {"cookie": "sid=msg", "origin": "http://evil", "X-Num": "5"},
                    },
                },
                {"op": "get", "url": "/text"},
                {"op": "get", "url": "/empty"},
                {"op": "delete", "url": "/status/500"},
                {"op": "post", "url": "/status/201", "data": {}},
                {"op": "emit", "event": "get", "args": [{"method": "get"}], "ack": True},
                {"op": "emit", "event": "get", "args": [{"url": 5}]},
                {"op": "on", "event": "sails:parseError"},
                {"op": "post", "url": "/kick"},
                {"op": "expect_disconnect"},
            ],
        },
    )
    got = steps(lines)
    assert got[0]["resData"]["method"] == "PATCH"
    assert got[0]["resData"]["headers"] == {
        "cookie": "sid=hs",  # the handshake's cookie wins
        "x-num": "5",
        "x-global": "g",  # io.sails.headers
        "origin": "http://app.local",  # always the handshake's
    }
    assert got[0]["resData"]["data"] == {"a": [1, 2]}
    assert got[1]["resData"] == "plain text"
    assert got[1]["jwres"]["headers"] == {"Content-Type": "text/plain"}
    assert got[2]["hasResData"] is False and got[2]["jwres"]["statusCode"] == 204
    assert got[3]["jwres"]["statusCode"] == 500 and "error" in got[3]["jwres"]
    assert got[4]["jwres"]["statusCode"] == 201 and "error" not in got[4]["jwres"]
    [ack] = got[5]["ack"]
    assert ack["statusCode"] == 400
    assert ack["body"]["code"] == "SAILS:HOOK:SOCKETS_PARSE_VIRTUAL_REQ"
    assert ack["body"]["details"] == "No url provided in request"
    [parse_error] = got[7]["data"]
    assert parse_error["details"] == "Invalid url provided: 5"
    assert got[8]["resData"] == {"kicked": True}
    assert got[9]["reason"] == "io server disconnect"
    [conn] = server.conns
    await ended(conn)
    assert "__sails_io_sdk_platform=node" in conn.target
    assert conn.headers["cookie"] == "sid=hs"
    assert sent(conn, "S>C")[-1] == "41"


async def test_disconnect_then_reconnect(node: str, nursery: trio.Nursery) -> None:
    server = await start(nursery)
    lines = await run(
        node,
        "sails_client.js",
        server,
        [
            {"op": "get", "url": "/user/1"},
            {"op": "disconnect"},
            {"op": "reconnect"},
            {"op": "get", "url": "/user/2"},
        ],
    )
    got = steps(lines)
    assert got[0]["resData"] == {"id": 1}
    assert got[1]["isConnected"] is False
    assert got[2]["isConnected"] is True
    assert got[3]["resData"] == {"id": 2}
    assert [line.get("event") for line in lines if "event" in line] == [
        "connect",
        "disconnect",
        "connect",
    ]
    assert [(await ended(c)).target for c in server.conns] == [SAILS_TARGET, SAILS_TARGET]
    assert server.conns[1].frames[2][1].startswith('420["get"')  # ack ids restart per socket


async def test_rooms_and_blast_between_two_clients(node: str, nursery: trio.Nursery) -> None:
    server = await start(nursery)
    listener: list[dict[str, Any]] = []
    listened = trio.Event()

    async def listen() -> None:
        scenario = [
            {"op": "post", "url": "/rooms/lobby/join"},
            {"op": "on", "event": "message", "count": 2},
        ]
        listener.extend(await run(node, "sails_client.js", server, scenario))
        listened.set()

    nursery.start_soon(listen)
    with trio.fail_after(10):
        await server.room_joined.wait()
    talker = await run(
        node,
        "sails_client.js",
        server,
        [
            {"op": "post", "url": "/rooms/lobby/broadcast", "data": {"text": "hi"}},
            {"op": "post", "url": "/blast", "data": {"data": {"all": True}}},
        ],
    )
    assert steps(talker)[0]["resData"] == {"broadcast": "lobby"}
    with trio.fail_after(10):
        await listened.wait()
    assert steps(listener)[1]["data"] == [{"text": "hi"}, {"all": True}]


async def test_v3_client_heartbeat(node: str, nursery: trio.Nursery) -> None:
    # Generous timeouts: only the pinging is under test, not how fast a loaded CI machine is.
    server = await start(nursery, ping_interval_s=0.2, ping_timeout_s=1.0)
    lines = await run(
        node,
        "sails_client.js",
        server,
        [{"op": "sleep", "ms": 1000}, {"op": "is_connected"}],
    )
    assert steps(lines)[1]["isConnected"] is True
    [conn] = server.conns
    await ended(conn)
    assert '"pingInterval":200,"pingTimeout":1000' in conn.frames[0][1]
    pings = [i for i, (d, f) in enumerate(conn.frames) if (d, f) == ("C>S", "2")]
    assert len(pings) >= 3  # the client pings every pingInterval ...
    assert all(conn.frames[i + 1] == ("S>C", "3") for i in pings)  # ... and we answer
    assert "2" not in sent(conn, "S>C")


# -- socket.io-client 4 (Engine.IO v4) --------------------------------------------------------


async def test_sio4_requests_acks_push_and_server_pings(node: str, nursery: trio.Nursery) -> None:
    # Pings at 0.4 s, then every max(0.4 s after the pong, 1.0 s after the ping) = ~1 s.
    server = await start(nursery, ping_interval_s=0.4, ping_timeout_s=1.0)
    lines = await run(
        node,
        "sio4_client.js",
        server,
        {
            "auth": {"token": "t"},
            "steps": [
                {"op": "request", "method": "get", "url": "/user/7"},
                {"op": "request", "method": "get", "url": "/nope"},
                {"op": "emit", "event": "hello", "args": [1, "a"], "ack": True},
                {"op": "request", "method": "post", "url": "/push", "data": {"data": [1]}},
                {"op": "on", "event": "message"},
                {"op": "sleep", "ms": 1700},
                {"op": "disconnect"},
            ],
        },
    )
    got = steps(lines)
    assert got[0]["resData"] == {"id": 7}
    assert got[0]["jwres"]["headers"] == {"Content-Type": "application/json", "X-Served-By": "echo"}
    assert got[1]["jwres"]["statusCode"] == 404 and got[1]["resData"] == "Not Found"
    assert got[2]["ack"] == ["hello", 1, "a"]
    assert got[4]["data"] == [[[1]]]
    assert got[5]["connected"] is True
    assert sum(1 for line in lines if line.get("event") == "ping") >= 2

    [conn] = server.conns
    await ended(conn)
    assert conn.target == "/socket.io/?EIO=4&transport=websocket"
    assert conn.session is not None
    assert lines[0] == {"event": "connect", "id": conn.session.socket_id}
    open_packet = json.loads(conn.frames[0][1][1:])
    assert open_packet["maxPayload"] == 1_000_000 and open_packet["upgrades"] == []
    assert conn.frames[1] == ("C>S", '40{"token":"t"}')
    assert conn.frames[2] == ("S>C", '40{"sid":"' + conn.session.socket_id + '"}')
    assert conn.frames[3] == (
        "C>S",
        '420["get",{"method":"get","headers":{},"data":{},"url":"/user/7"}]',
    )
    assert conn.auth == {"token": "t"}
    pings = [i for i, (d, f) in enumerate(conn.frames) if (d, f) == ("S>C", "2")]
    assert len(pings) >= 2  # the server pings ...
    assert all(("C>S", "3") in conn.frames[i + 1 : i + 4] for i in pings[:-1])  # ... client pongs
    assert "2" not in sent(conn, "C>S")
    assert conn.disconnected is not None
    assert conn.disconnected.reason == "client namespace disconnect"


async def test_sio4_invalid_namespace(node: str, nursery: trio.Nursery) -> None:
    server = await start(nursery)
    lines = await run(
        node,
        "sio4_client.js",
        server,
        {"namespace": "/admin", "wait_connect": False, "steps": [{"op": "expect_connect_error"}]},
    )
    assert steps(lines)[0]["message"] == "Invalid namespace"
    [conn] = server.conns
    await ended(conn)
    assert ("C>S", "40/admin,") in conn.frames
    assert ("S>C", '44/admin,{"message":"Invalid namespace"}') in conn.frames


async def test_sio4_server_disconnect(node: str, nursery: trio.Nursery) -> None:
    server = await start(nursery)
    lines = await run(
        node,
        "sio4_client.js",
        server,
        [{"op": "request", "method": "post", "url": "/kick"}, {"op": "expect_disconnect"}],
    )
    got = steps(lines)
    assert got[0]["resData"] == {"kicked": True}
    assert got[1]["reason"] == "io server disconnect"
