# The STOCK clients (sails.io.js 1.2.1 dist bundle and node SDK, socket.io-client 4) run by Node
# against the REAL gateway: virtual requests go through the same router, middleware, params,
# query, JSON bodies, cookies and error replies as HTTP; pushes come from app.sockets. Plus raw
# Engine.IO checks with a wsproto client (polling refused, limits, a slow consumer dropped).
# Node tests fail (never skip) when node or tests/node/node_modules is missing (tests/peers.py).
from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.lowlevel
from wsproto.events import AcceptConnection, CloseConnection, TextMessage

from gateway import App, Request, Response, WebSocket
from gateway.server.serve import Server
from tests.conftest import NODE_DIR
from tests.helpers import request, running
from tests.test_websocket import Client, _close_clients  # noqa: F401 (autouse fixture)

node_test = pytest.mark.node


def sails_app() -> tuple[App, dict[str, Any]]:
    app = App()
    state: dict[str, Any] = {"joined": trio.Event()}

    @app.use
    async def tag(req: Request, res: Response, next: Any) -> None:
        res.set("X-Served-By", "gateway")
        req.locals["sid"] = req.cookies.get("sid")
        await next()

    @app.get("/user/:id")
    async def user(req: Request, res: Response) -> None:
        await res.json(
            {
                "id": req.params["id"],
                "sid": req.locals["sid"],
                "isSocket": req.is_socket,
                "query": req.query,
            }
        )

    @app.route(["PUT", "PATCH", "POST", "DELETE"], "/echo/:id")
    async def echo(req: Request, res: Response) -> None:
        h = req.headers
        await res.json(
            {
                "method": req.method,
                "id": req.params["id"],
                "body": await req.json(),
                "headers": {
                    k: h[k]
                    for k in ("cookie", "origin", "x-num", "x-global", "content-type")
                    if k in h
                },
            }
        )

    @app.get("/text")
    async def text(req: Request, res: Response) -> None:
        await res.type("text").send("plain text")

    @app.get("/empty")
    async def empty(req: Request, res: Response) -> None:
        await res.status(204).end()

    @app.delete("/status/:code")
    async def status(req: Request, res: Response) -> None:
        await res.status(int(req.params["code"])).json({"status": int(req.params["code"])})

    @app.get("/boom")
    async def boom(req: Request, res: Response) -> None:
        raise RuntimeError("bug")

    @app.get("/private", privileged=True)
    async def private(req: Request, res: Response) -> None:
        await res.json({"secret": True})

    @app.get("/big")
    async def big(req: Request, res: Response) -> None:
        await res.json({"x": "y" * 100_000})

    @app.get("/me")
    async def me(req: Request, res: Response) -> None:
        await res.json({"id": app.sockets.id(req), "rooms": sorted(app.sockets.rooms(req))})

    @app.post("/rooms/:room/join")
    async def join(req: Request, res: Response) -> None:
        app.sockets.join(req, req.params["room"])
        state["joined"].set()
        await res.json({"joined": req.params["room"]})

    @app.post("/rooms/:room/broadcast")
    async def broadcast(req: Request, res: Response) -> None:
        n = app.sockets.broadcast(req.params["room"], "message", await req.json(), omit=req)
        await res.json({"sent": n})

    @app.post("/blast")
    async def blast(req: Request, res: Response) -> None:
        body = await req.json()
        n = app.sockets.blast(body.get("event", "message"), body.get("data"))
        await res.json({"blasted": n})

    @app.post("/http-join")
    async def http_join(req: Request, res: Response) -> None:
        app.sockets.join(req, "x")  # an HTTP request is not a socket: 400
        await res.json({})

    return app, state


async def run(
    node: str, script: str, server: Server, scenario: Any, timeout_s: float = 30
) -> list[dict[str, Any]]:
    """Run a driver to completion; its JSON lines, asserting it exited 0."""
    with trio.fail_after(timeout_s):
        result = await trio.run_process(
            [node, str(NODE_DIR / script), f"http://127.0.0.1:{server.port}", json.dumps(scenario)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    lines = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]
    assert result.returncode == 0, (lines, result.stderr.decode()[-2000:])
    assert any(line.get("done") is True for line in lines), lines
    return lines


def steps(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {line["step"]: line for line in lines if "step" in line}


# -- the stock sails.io.js 1.2.1 (Engine.IO v3) --------------------------------------------------


@node_test
async def test_dist_client_requests_through_router(node: str) -> None:
    app, _ = sails_app()
    async with running(app) as server:
        lines = await run(
            node,
            "sails_client.js",
            server,
            {
                "handshake_headers": {
                    "Cookie": "sid=abc",
                    "Origin": f"http://127.0.0.1:{server.port}",
                },
                "steps": [
                    {"op": "get", "url": "/user/3?x=1&x=2&y=%C3%A9"},
                    {"op": "get", "url": "/nope"},
                    {"op": "post", "url": "/echo/7", "data": {"a": [1, 2]}},
                    {"op": "put", "url": "/echo/8", "data": {"b": None}},
                    {"op": "patch", "url": "/echo/9", "data": {}},
                    {"op": "delete", "url": "/status/418"},
                    {"op": "request", "options": {"method": "get", "url": "/text"}},
                    {"op": "get", "url": "/empty"},
                    {"op": "get", "url": "/boom"},
                    {"op": "get", "url": "/private"},
                    {"op": "get", "url": "/big"},
                    {"op": "disconnect"},
                ],
            },
        )
    assert lines[0] == {"event": "connect"}
    got = steps(lines)
    res0 = got[0]
    assert res0["resData"] == {
        "id": "3",
        "sid": "abc",
        "isSocket": True,
        "query": {"x": ["1", "2"], "y": "é"},
    }
    jwres = res0["jwres"]
    assert jwres["statusCode"] == 200 and "error" not in jwres
    assert jwres["body"] == res0["resData"]
    # only what the app set: res.json() adds no Content-Type to a JWR (Sails' res.json)
    assert jwres["headers"] == {"X-Served-By": "gateway"}
    assert got[1]["resData"] == "Not Found" and got[1]["jwres"]["statusCode"] == 404
    assert got[1]["jwres"]["error"].startswith("Server responded with a 404 status code")
    assert got[2]["resData"] == {
        "method": "POST",
        "id": "7",
        "body": {"a": [1, 2]},
        "headers": {"cookie": "sid=abc", "origin": f"http://127.0.0.1:{server.port}"},
    }
    assert got[3]["resData"]["method"] == "PUT" and got[3]["resData"]["body"] == {"b": None}
    assert got[4]["resData"]["method"] == "PATCH" and got[4]["resData"]["body"] == {}
    assert got[5]["jwres"]["statusCode"] == 418 and got[5]["resData"] == {"status": 418}
    assert "error" in got[5]["jwres"]
    assert got[6]["resData"] == "plain text"
    assert got[6]["jwres"]["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert got[7]["jwres"]["statusCode"] == 204 and got[7]["hasResData"] is False
    assert got[8]["jwres"]["statusCode"] == 500
    assert got[8]["resData"] == {"error": "Internal Server Error", "status": 500}
    assert got[9]["jwres"]["statusCode"] == 401  # privileged route, same rule as HTTP
    assert got[10]["jwres"]["statusCode"] == 500  # over max_virtual_response_bytes
    assert got[11]["isConnected"] is False


@node_test
async def test_node_sdk_headers_and_parse_errors(node: str) -> None:
    app, _ = sails_app()
    async with running(app) as server:
        lines = await run(
            node,
            "sails_client.js",
            server,
            {
                "sdk": "node",
                "handshake_headers": {
                    "Cookie": "sid=hs",
                    "Origin": f"http://127.0.0.1:{server.port}",
                },
                "headers": {"x-global": "g"},
                "steps": [
                    {
                        "op": "request",
                        "options": {
                            "method": "put",
                            "url": "/echo/1",
                            "data": {"z": 1},
                            "headers": {"cookie": "sid=msg", "origin": "http://evil", "X-Num": "5"},
                        },
                    },
                    {"op": "emit", "event": "get", "args": [{"method": "get"}], "ack": True},
                    {"op": "emit", "event": "get", "args": [{"url": 5}]},
                    {"op": "on", "event": "sails:parseError"},
                    {"op": "get", "url": "/me"},
                ],
            },
        )
    got = steps(lines)
    assert got[0]["resData"]["headers"] == {
        "cookie": "sid=hs",  # the handshake's cookie wins
        "origin": f"http://127.0.0.1:{server.port}",  # always the handshake's
        "x-num": "5",
        "x-global": "g",
    }  # no Content-Type made up: the body is data
    [ack] = got[1]["ack"]
    assert ack["statusCode"] == 400
    assert ack["body"]["details"] == "No url provided in request"
    [parse_error] = got[3]["data"]
    assert parse_error["details"] == "Invalid url provided: 5"
    me = got[4]["resData"]
    assert me["rooms"] == [me["id"]]  # every socket is in the room named after its id


@node_test
async def test_push_rooms_and_blast_between_clients(node: str) -> None:
    app, state = sails_app()
    async with running(app) as server, trio.open_nursery() as nursery:
        member: list[dict[str, Any]] = []
        outsider: list[dict[str, Any]] = []
        done = trio.Event()
        outsider_ready = trio.Event()

        async def listen() -> None:
            member.extend(
                await run(
                    node,
                    "sails_client.js",
                    server,
                    [
                        {"op": "post", "url": "/rooms/lobby/join"},
                        {"op": "on", "event": "message", "count": 2},
                    ],
                )
            )

        async def outside() -> None:
            outsider.extend(
                await run(
                    node,
                    "sio4_client.js",
                    server,
                    [
                        {"op": "request", "method": "get", "url": "/me"},
                        {"op": "on", "event": "message", "count": 1},
                    ],
                )
            )
            done.set()

        nursery.start_soon(listen)
        nursery.start_soon(outside)
        with trio.fail_after(15):
            await state["joined"].wait()
            while len(app.sockets) < 2:  # noqa: ASYNC110 (both clients connected)
                await trio.sleep(0.02)
        outsider_ready.set()
        talker = await run(
            node,
            "sails_client.js",
            server,
            [
                {"op": "post", "url": "/rooms/lobby/broadcast", "data": {"text": "hi"}},
                {"op": "post", "url": "/blast", "data": {"data": {"all": True}}},
            ],
        )
        with trio.fail_after(15):
            await done.wait()
    assert steps(talker)[0]["resData"] == {"sent": 1}  # the member only
    assert steps(talker)[1]["resData"] == {"blasted": 3}
    assert steps(member)[1]["data"] == [{"text": "hi"}, {"all": True}]
    assert steps(outsider)[1]["data"] == [[{"all": True}]]  # not in the room: the blast only


@node_test
async def test_disconnect_then_reconnect(node: str) -> None:
    app, _ = sails_app()
    async with running(app) as server:
        lines = await run(
            node,
            "sails_client.js",
            server,
            [
                {"op": "get", "url": "/me"},
                {"op": "disconnect"},
                {"op": "reconnect"},
                {"op": "get", "url": "/me"},
            ],
        )
        with trio.fail_after(5):
            while len(app.sockets):  # noqa: ASYNC110 (the server saw both sockets go)
                await trio.sleep(0.02)
    got = steps(lines)
    assert got[1]["isConnected"] is False and got[2]["isConnected"] is True
    assert got[0]["resData"]["id"] != got[3]["resData"]["id"]  # a new socket, a new id
    assert [x["event"] for x in lines if "event" in x] == ["connect", "disconnect", "connect"]


@node_test
async def test_v3_client_heartbeat(node: str) -> None:
    app, _ = sails_app()
    async with running(app, websocket__ping_interval_s=0.2, websocket__pong_timeout_s=1.0) as s:
        lines = await run(
            node, "sails_client.js", s, [{"op": "sleep", "ms": 1200}, {"op": "is_connected"}]
        )
    assert steps(lines)[1]["isConnected"] is True


# -- socket.io-client 4 (Engine.IO v4) ------------------------------------------------------------


@node_test
async def test_sio4_requests_push_and_server_pings(node: str) -> None:
    app, _ = sails_app()
    async with running(app, websocket__ping_interval_s=0.3, websocket__pong_timeout_s=1.0) as s:
        lines = await run(
            node,
            "sio4_client.js",
            s,
            {
                "extra_headers": {"Cookie": "sid=v4"},
                "steps": [
                    {"op": "request", "method": "get", "url": "/user/7"},
                    {
                        "op": "request",
                        "method": "post",
                        "url": "/blast",
                        "data": {"event": "news", "data": [1]},
                    },
                    {"op": "on", "event": "news"},
                    {"op": "sleep", "ms": 1700},
                    {"op": "disconnect"},
                ],
            },
        )
    got = steps(lines)
    assert got[0]["resData"] == {"id": "7", "sid": "v4", "isSocket": True, "query": {}}
    assert got[0]["jwres"]["headers"]["X-Served-By"] == "gateway"
    assert got[1]["resData"] == {"blasted": 1}
    assert got[2]["data"] == [[[1]]]
    assert got[3]["connected"] is True
    assert sum(1 for line in lines if line.get("event") == "ping") >= 2  # the server pings


# -- raw Engine.IO with a wsproto client (no Node) ------------------------------------------------


async def test_polling_is_400_and_bad_version_is_400() -> None:
    app, _ = sails_app()
    with trio.fail_after(10):
        async with running(app) as server:
            reply = await request(server, "GET", "/socket.io/?EIO=4&transport=polling")
            assert reply.status == 400 and "websocket transport" in reply.text
            client, event = await Client.open(server.port, "/socket.io/?EIO=2&transport=websocket")
            assert event.status_code == 400  # type: ignore[attr-defined]
            reply = await request(server, "POST", "/http-join")
            assert reply.status == 400  # app.sockets.join with an HTTP request


async def _eio4(port: int, headers: list[tuple[str, str]] | None = None) -> tuple[Client, str]:
    client, event = await Client.open(
        port, "/socket.io/?EIO=4&transport=websocket", headers=headers
    )
    assert isinstance(event, AcceptConnection)
    opened = await client.event()
    assert isinstance(opened, TextMessage) and opened.data.startswith("0{")
    await client.send(TextMessage("40"))
    connected = await client.event()
    assert isinstance(connected, TextMessage) and connected.data.startswith('40{"sid":')
    return client, json.loads(connected.data[2:])["sid"]


async def _jwr(client: Client, ack: int, method: str, message: dict[str, Any]) -> dict[str, Any]:
    """One virtual request through the raw client; its JWR."""
    await client.send(TextMessage(f"42{ack}" + json.dumps([method, message], ensure_ascii=False)))
    reply = await client.event()
    assert isinstance(reply, TextMessage) and reply.data.startswith(f"43{ack}["), reply
    jwr: dict[str, Any] = json.loads(reply.data[2 + len(str(ack)) :])[0]
    return jwr


async def test_raw_v4_ack_ids_concurrency_and_no_reply_without_ack() -> None:
    app, _ = sails_app()
    release = trio.Event()

    @app.get("/slow/:n")
    async def slow(req: Request, res: Response) -> None:
        if req.params["n"] == "0":
            await release.wait()
        await res.json({"n": req.params["n"]})

    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await _eio4(server.port)
            # no ack id: handled, but no reply
            await client.send(TextMessage('42["get",{"url":"/user/1"}]'))
            # request 0 blocks; 1 and 2 are answered meanwhile (handled concurrently)
            for i in range(3):
                await client.send(TextMessage(f'42{i}["get",{{"url":"/slow/{i}"}}]'))
            first = await client.event()
            second = await client.event()
            assert {first.data[:3], second.data[:3]} == {"431", "432"}  # type: ignore[attr-defined]
            release.set()
            last = await client.event()
            assert isinstance(last, TextMessage) and last.data.startswith("430[")
            assert json.loads(last.data[3:])[0]["body"] == {"n": "0"}


async def test_slow_handler_leaves_the_socket_read_and_in_flight_is_capped() -> None:
    # A request runs in the task that read it; another task takes the reading over, so a
    # blocked handler must not hold up pings, other requests or the close handshake, and
    # MAX_IN_FLIGHT blocked handlers stop the reading (backpressure) until one returns.
    from gateway.server.sails_session import MAX_IN_FLIGHT

    app, _ = sails_app()
    release = trio.Event()
    cancelled: list[str] = []

    @app.get("/wait")
    async def wait(req: Request, res: Response) -> None:
        try:
            await release.wait()
        except trio.Cancelled:
            cancelled.append(req.url)
            raise
        await res.json({"waited": True})

    with trio.fail_after(10):
        async with running(app) as server:
            client, event = await Client.open(server.port, "/socket.io/?EIO=3&transport=websocket")
            assert isinstance(event, AcceptConnection)
            assert (await client.event()).data.startswith("0{")  # type: ignore[attr-defined]
            assert (await client.event()).data == "40"  # type: ignore[attr-defined]
            await client.send(TextMessage('420["get",{"url":"/wait"}]'))
            await client.send(TextMessage("2"))  # v3: the client pings
            assert (await client.event()).data == "3"  # type: ignore[attr-defined]
            await client.send(TextMessage('421["get",{"url":"/user/7"}]'))
            reply = await client.event()
            assert isinstance(reply, TextMessage) and reply.data.startswith("431[")
            for i in range(2, MAX_IN_FLIGHT + 1):  # 0 and 2..8: all slots taken
                await client.send(TextMessage(f'42{i}["get",{{"url":"/wait"}}]'))
            await client.send(TextMessage("2"))
            with trio.move_on_after(0.3) as waited:
                await client.event()
            assert waited.cancelled_caught  # not read while MAX_IN_FLIGHT are running
            release.set()
            got = [(await client.event()).data for _ in range(MAX_IN_FLIGHT + 1)]  # type: ignore[attr-defined]
            assert "3" in got
            assert sorted(d[:3] for d in got if d != "3") == sorted(
                f"43{i}" for i in [0, *range(2, MAX_IN_FLIGHT + 1)]
            )

            release = trio.Event()  # the close handshake does not wait for a handler ...
            await client.send(TextMessage('429["get",{"url":"/wait?last"}]'))
            await trio.sleep(0.05)
            await client.send(CloseConnection(1000))
            close = await client.event()  # the server's answer, then the end of TCP
            assert isinstance(close, CloseConnection) and close.code == 1000
            await client.until_eof()
            assert cancelled == ["/wait?last"]  # ... and closing the socket cancelled it


def _socket_workers() -> int:
    """The "socket.io worker" tasks alive in this run (a socket's serve task not counted)."""

    def count(task: trio.lowlevel.Task) -> int:
        own = task.name == "socket.io worker"
        return own + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return count(root)


async def test_requests_that_do_not_suspend_take_no_other_task() -> None:
    # The reader runs a request whose handler and reply do not suspend and reads on: no
    # second task, no hand-off. The first request that suspends hands the reading over at
    # once, and the requests decoded with it (one TCP write) are answered meanwhile.
    app, _ = sails_app()
    release = trio.Event()

    @app.get("/wait")
    async def wait(req: Request, res: Response) -> None:
        await release.wait()
        await res.json({"waited": True})

    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await _eio4(server.port)
            for i in range(20):
                assert (await _jwr(client, i, "get", {"url": f"/user/{i}"}))["statusCode"] == 200
            assert _socket_workers() == 0
            burst = [f'42{i}["get",{{"url":"/user/{i}"}}]' for i in range(20, 25)]
            await client.raw(b"".join(client.ws.send(TextMessage(m)) for m in burst))
            got = [(await client.event()).data[:4] for _ in burst]  # type: ignore[attr-defined]
            assert got == [m[:4].replace("42", "43") for m in burst]  # in turn, by the reader
            assert _socket_workers() == 0

            burst = ['4230["get",{"url":"/wait"}]'] + [
                f'42{i}["get",{{"url":"/user/{i}"}}]' for i in range(31, 34)
            ]
            await client.raw(b"".join(client.ws.send(TextMessage(m)) for m in burst))
            got = [(await client.event()).data[:4] for _ in range(3)]  # type: ignore[attr-defined]
            assert sorted(got) == ["4331", "4332", "4333"]  # while /wait is blocked
            assert _socket_workers() >= 1  # the reading went to another task
            release.set()
            last = await client.event()
            assert isinstance(last, TextMessage) and last.data.startswith("4330[")
            assert (await _jwr(client, 40, "get", {"url": "/user/40"}))["statusCode"] == 200
            # the serve task's worker and two of those started have ended: one reads, one
            # waits to (a spare)
            assert _socket_workers() == 2


async def test_eager_reports_the_first_suspension_and_passes_everything_through() -> None:
    from gateway.server.sails_session import _eager

    seen: list[str] = []

    async def done_at_once() -> None:
        seen.append("ran")

    assert await _eager(done_at_once(), lambda: seen.append("suspended")) is False
    assert seen == ["ran"]

    # values trio sends in reach the coroutine; the callback runs once, before the first wait
    send, receive = trio.open_memory_channel[int](0)
    got: list[int] = []

    async def takes_two() -> None:
        got.append(await receive.receive())
        got.append(await receive.receive())

    seen.clear()
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            seen.append("feeding")
            await send.send(1)
            await send.send(2)

        nursery.start_soon(feed)
        assert await _eager(takes_two(), lambda: seen.append("suspended")) is True
    assert got == [1, 2] and seen == ["suspended", "feeding"]

    # an error raised after a suspension, and a cancellation thrown in, reach the caller
    async def fails() -> None:
        await trio.lowlevel.checkpoint()
        raise KeyError("late")

    with pytest.raises(KeyError, match="late"):
        await _eager(fails(), lambda: None)

    cleaned: list[str] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append("finally")

    with trio.CancelScope() as scope:

        def cancel() -> None:
            scope.cancel()

        await _eager(forever(), cancel)
    assert scope.cancelled_caught and cleaned == ["finally"]

    # a failing callback closes the coroutine before the error goes on
    cleaned.clear()

    def broken() -> None:
        raise RuntimeError("callback")

    with pytest.raises(RuntimeError, match="callback"):
        await _eager(forever(), broken)
    assert cleaned == ["finally"]


async def test_slow_consumer_is_dropped() -> None:
    app, _ = sails_app()
    with trio.fail_after(15):
        async with running(
            app, websocket__send_queue_bytes=65536, http__send_timeout_s=30
        ) as server:
            client, sid = await _eio4(server.port)
            for _ in range(4000):  # ~40 MiB of pushes to a socket that never reads
                app.sockets.broadcast(sid, "message", "x" * 10_000)
                if sid not in app.sockets.members(sid):
                    break
                await trio.lowlevel.checkpoint()
            assert sid not in app.sockets.members(sid)  # dropped, with a log line
            assert len(app.sockets) == 0
            await client.until_eof()  # and disconnected
            while server.ws_active:  # noqa: ASYNC110 (the server's side of the close, bounded)
                await trio.sleep(0.01)


async def test_plain_ws_and_sails_share_the_connection_cap() -> None:
    app, _ = sails_app()

    @app.ws("/ws")
    async def ws_echo(ws: WebSocket, req: Request) -> None:
        async for m in ws:
            await ws.send(m)

    with trio.fail_after(10):
        async with running(app, websocket__max_connections=1) as server:
            client, _ = await _eio4(server.port)
            other, event = await Client.open(server.port, "/socket.io/?EIO=3&transport=websocket")
            assert event.status_code == 503  # type: ignore[attr-defined]
            other, event = await Client.open(server.port, "/ws")
            assert event.status_code == 503  # type: ignore[attr-defined]
            await client.send(TextMessage("41"))  # leave: the server closes
            close = await client.expect_close()
            assert isinstance(close, CloseConnection) and close.code == 1000


# -- the hub without sockets ------------------------------------------------------------------------


class _Sub:
    def __init__(self, sid: str, ok: bool = True) -> None:
        self.id = sid
        self.ok = ok
        self.got: list[tuple[str, Any]] = []

    def deliver(self, push: Any) -> bool:
        self.got.append((push.event, push.data))
        return self.ok


async def test_hub_rooms_broadcast_blast_and_omit() -> None:
    from gateway import SocketHub

    hub = SocketHub()
    a, b, c = _Sub("a"), _Sub("b"), _Sub("c", ok=False)
    for sub in (a, b, c):
        hub.add(sub)
    hub.join("a", "lobby")
    hub.join("b", "lobby")
    assert hub.members("lobby") == {"a", "b"} and hub.rooms("a") == {"a", "lobby"}
    assert hub.members("c") == {"c"}  # every socket is in the room named after its id
    assert hub.broadcast("lobby", {"x": 1}) == 2  # two arguments: the "message" event
    assert hub.broadcast(["lobby", "c"], "news", 2, omit="a") == 1  # c refuses: dropped
    assert hub.blast("all") == 2 and hub.dropped == 2
    assert a.got == [("message", {"x": 1}), ("message", "all")]
    assert b.got == [("message", {"x": 1}), ("news", 2), ("message", "all")]
    hub.leave("a", "lobby")
    hub.remove(b)
    assert hub.members("lobby") == set() and len(hub) == 2
    with pytest.raises(KeyError):
        hub.join("nobody", "lobby")
    with pytest.raises(TypeError):
        hub.broadcast("a", 5, "data")


async def test_socketio_idle_timeout_and_v4_pong_timeout() -> None:
    app, _ = sails_app()
    with trio.fail_after(10):
        async with running(
            app,
            websocket__idle_timeout_s=0.3,
            websocket__ping_interval_s=5,
            websocket__pong_timeout_s=5,
        ) as server:
            client, _ = await _eio4(server.port)
            assert (await client.expect_close()).code == 1001  # idle: no request, no push
        async with running(
            app, websocket__ping_interval_s=0.1, websocket__pong_timeout_s=0.2
        ) as server:
            client, _ = await _eio4(server.port)
            close = await client.expect_close_ignoring_pings()  # never answers "2" with "3"
            assert close.code == 1000 and close.reason == "ping timeout"
            assert len(app.sockets) == 0


async def test_virtual_request_is_not_dressed_up_as_http() -> None:
    # As in Sails: the handler sees the client's headers (merged with the handshake's) as
    # sent, no Content-Type/Content-Length made up; req.body is the message's data, already
    # parsed (parsers mounted by the app skip it, whatever the client's Content-Type says);
    # the JWR carries only headers the app set and the body as the app gave it.
    from gateway import bodyparsers

    app = App()
    app.use(bodyparsers.urlencoded())
    app.use(bodyparsers.json())

    @app.all("/h")
    async def h(req: Request, res: Response) -> None:
        parsed = req.body_parsed
        body = req.body
        await res.json(
            {
                "headers": req.headers,
                "body": body,
                "parsed": parsed,
                "json_is_body": await req.json() is body,
                "raw": (await req.read()).decode(),
                "is": req.is_("json"),
            }
        )

    @app.get("/text")
    async def text(req: Request, res: Response) -> None:
        await res.send("plain")

    @app.get("/json-text")
    async def json_text(req: Request, res: Response) -> None:
        await res.json("hi")

    @app.get("/nothing")
    async def nothing(req: Request, res: Response) -> None:
        res.set("X-A", "1")
        await res.status(202).end()

    @app.get("/big-utf8")
    async def big_utf8(req: Request, res: Response) -> None:
        await res.json({"x": "€" * 30_000})  # 30 000 characters, 90 000 bytes

    @app.get("/stream")
    async def stream(req: Request, res: Response) -> None:
        res.set("Content-Type", "application/json")
        await res.write('{"a":')
        await res.end("1}")

    with trio.fail_after(10):
        async with running(app) as server:
            origin = f"http://127.0.0.1:{server.port}"
            client, _ = await _eio4(
                server.port, [("Cookie", "sid=hs"), ("Origin", origin), ("X-Handshake-Only", "1")]
            )
            got = await _jwr(
                client,
                1,
                "post",
                {
                    "url": "/h",
                    "data": {"a": [1, 2], "é": "ü"},
                    "headers": {
                        "X-Name": "zoë",
                        "X-Sign": "€ 5",
                        "Host": "h.local",
                        "cookie": "sid=msg",
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                },
            )
            assert got["statusCode"] == 200 and got["headers"] == {}
            assert got["body"] == {
                "headers": {
                    "cookie": "sid=hs",
                    "x-name": "zoë",
                    "x-sign": "€ 5",
                    "host": "h.local",
                    "content-type": "application/x-www-form-urlencoded",
                    "origin": origin,
                },
                "body": {"a": [1, 2], "é": "ü"},
                "parsed": True,
                "json_is_body": True,
                "raw": '{"a":[1,2],"é":"ü"}',
                "is": None,
            }
            got = await _jwr(client, 2, "get", {"url": "/h", "data": {"q": 1}})
            assert got["body"]["body"] == {"q": 1}  # data is the body for GET too
            assert "host" not in got["body"]["headers"]  # nobody sent one
            assert await _jwr(client, 3, "get", {"url": "/text"}) == {
                "body": "plain",
                "headers": {},
                "statusCode": 200,
            }
            assert await _jwr(client, 4, "get", {"url": "/json-text"}) == {
                "body": '"hi"',
                "headers": {"content-type": "application/json"},
                "statusCode": 200,
            }
            assert await _jwr(client, 5, "get", {"url": "/nothing"}) == {
                "headers": {"X-A": "1"},
                "statusCode": 202,
            }
            assert await _jwr(client, 6, "get", {"url": "/stream"}) == {
                "body": {"a": 1},
                "headers": {"Content-Type": "application/json"},
                "statusCode": 200,
            }
            # as in Sails: a HEAD's JWR carries the body (a JWR is not HTTP framing)
            assert await _jwr(client, 7, "head", {"url": "/text"}) == {
                "body": "plain",
                "headers": {},
                "statusCode": 200,
            }
            assert await _jwr(client, 8, "get", {"url": "/missing"}) == {
                "body": "Not Found",
                "headers": {},
                "statusCode": 404,
            }
            # websocket.max_virtual_response_bytes (64 KiB in the test profile) counts bytes
            assert (await _jwr(client, 10, "get", {"url": "/big-utf8"}))["statusCode"] == 500
            assert await _jwr(client, 9, "get", {"url": "ftp://x/"}) == {
                "body": "unsupported scheme in request-target: 'ftp'",
                "headers": {},
                "statusCode": 400,
            }
            assert app.budget.statistics()["used_bytes"] == 0  # the raw read was released


async def test_virtual_requests_have_access_lines(capsys: Any) -> None:
    app, _ = sails_app()
    with trio.fail_after(10):
        async with running(app, server__access_log="true") as server:
            client, _ = await _eio4(server.port)
            got = await _jwr(client, 1, "get", {"url": "/user/1?x=1"})
            assert got["statusCode"] == 200
            assert (await _jwr(client, 2, "get", {"url": "/nope"}))["statusCode"] == 404
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ' socket.io" ' in ln]
    assert lines[0].startswith("127.0.0.1:") and lines[0].endswith(" user")
    assert '"GET /user/1?x=1 socket.io" 200 ' in lines[0]
    assert '"GET /nope socket.io" 404 ' in lines[1]


async def test_virtual_request_has_what_sails_gives_one() -> None:
    # Sails' virtual request: protocol "ws", no host/hostname (whatever Host the message has),
    # explicitlyAcceptsHTML never set (qualifiers are for HTTP), allParams() with a JSON
    # array's indices; its response: res.redirect() as Sails' shim, res.set() kept as given,
    # a url without its leading "/" routed to nothing (404 Not Found).
    app = App()

    @app.all("/who")
    async def who(req: Request, res: Response) -> None:
        await res.json(
            {
                "protocol": req.protocol,
                "secure": req.secure,
                "host": req.host,
                "hostname": req.hostname,
                "subdomains": req.subdomains,
                "explicit_html": req.explicitly_accepts_html,
                "wants_json": req.wants_json,
                "all": req.all_params(),
            }
        )

    @app.get("/go")
    async def go(req: Request, res: Response) -> None:
        await res.redirect("/a b/\u00fc?q=%41")

    @app.get("/typed")
    async def typed(req: Request, res: Response) -> None:
        await res.set("Content-Type", "text/csv").send("a,b")

    with trio.fail_after(10):
        async with running(app) as server:
            client, _ = await _eio4(server.port)
            got = await _jwr(
                client,
                1,
                "put",
                {
                    "url": "/who?z=1",
                    "data": ["x", 2],
                    "headers": {"Host": "h.example:1", "Accept": "text/html"},
                },
            )
            assert got["body"] == {
                "protocol": "ws",
                "secure": False,
                "host": None,
                "hostname": None,
                "subdomains": [],
                "explicit_html": False,
                "wants_json": True,
                "all": {"z": "1", "0": "x", "1": 2},
            }
            assert await _jwr(client, 2, "get", {"url": "/go"}) == {
                "body": "Redirecting to /a%20b/%C3%BC?q=%2541",
                "statusCode": 302,
                "headers": {"content-type": "text/html", "Location": "/a b/\u00fc?q=%41"},
            }
            assert await _jwr(client, 3, "get", {"url": "/typed"}) == {
                "body": "a,b",
                "headers": {"Content-Type": "text/csv"},
                "statusCode": 200,
            }
            assert await _jwr(client, 4, "get", {"url": "who"}) == {
                "body": "Not Found",
                "headers": {},
                "statusCode": 404,
            }
            # the same handler over HTTP: Express's request
            reply = await request(
                server,
                "PUT",
                "/who?z=1",
                [("Accept", "text/html"), ("Content-Type", "application/json")],
                b'["x", 2]',
            )
    assert reply.json() == {
        "protocol": "http",
        "secure": False,
        "host": "127.0.0.1",
        "hostname": "127.0.0.1",
        "subdomains": [],
        "explicit_html": True,
        "wants_json": True,
        "all": {"z": "1"},
    }
