# The Sails socket client (gateway.client.open_socket) against the REAL gateway (EIO 4 and 3):
# virtual requests with every method, statuses and headers, server pushes (handlers,
# subscriptions, rooms), per-request deadlines, closing, and reconnection with the request
# queue through a loopback proxy that can cut and refuse connections. Then the same client,
# unchanged, against a REAL Sails 1.5 app run by Node (tests/node/sails_app.js).
from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from gateway import App, Request, Response
from gateway.client import Aborted, NotFound, RequestTimeout, TransportError
from gateway.client.socket import JWR, Push, open_socket
from tests.conftest import NODE_DIR
from tests.helpers import running


def socket_app() -> tuple[App, dict[str, Any]]:
    app = App()
    state: dict[str, Any] = {"release": trio.Event(), "started": trio.Event(), "hits": 0}

    @app.get("/hello")
    async def hello(req: Request, res: Response) -> None:
        state["hits"] += 1
        res.set("Content-Type", "text/plain")
        await res.send("hello")

    @app.route(["GET", "POST", "PUT", "PATCH", "DELETE"], "/echo/:id")
    async def echo(req: Request, res: Response) -> None:
        body = await req.json() if req.method != "GET" else None
        await res.json(
            {
                "method": req.method,
                "id": req.params["id"],
                "body": body,
                "query": req.query,
                "x": req.get("x-test"),
                "auth": req.get("authorization"),
                "socket": req.is_socket,
            }
        )

    @app.get("/status/:code")
    async def status(req: Request, res: Response) -> None:
        await res.status(int(req.params["code"])).json({"code": int(req.params["code"])})

    @app.get("/wait")
    async def wait(req: Request, res: Response) -> None:
        state["started"].set()
        await state["release"].wait()
        await res.json({"waited": True})

    @app.post("/join/:room")
    async def join(req: Request, res: Response) -> None:
        app.sockets.join(req, req.params["room"])
        await res.json({"joined": req.params["room"]})

    @app.post("/push")
    async def push(req: Request, res: Response) -> None:
        data = await req.json()
        if "room" in data:
            app.sockets.broadcast(data["room"], data["event"], data["data"])
        else:
            app.sockets.blast(data["event"], data["data"])
        await res.json({"sent": True})

    return app, state


class Proxy:
    """A loopback TCP proxy that can cut its connections and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refuse = False
        self.refuse_v4 = False  # answer an EIO=4 handshake with 400, as a v3-only server
        self.accepted = 0
        self._scopes: list[trio.CancelScope] = []

    async def serve(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        if self.refuse:
            await client.aclose()
            return
        first = b""
        if self.refuse_v4:
            while b"\r\n\r\n" not in first:
                first += await client.receive_some(65536)
            if b"EIO=4" in first.split(b"\r\n", 1)[0]:
                await client.send_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 28\r\n"
                    b"\r\nUnsupported protocol version"
                )
                await client.aclose()
                return
        upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        try:
            if first:
                await upstream.send_all(first)
            await self._pipe(client, upstream)
        finally:
            client.socket.close()
            upstream.socket.close()

    async def _pipe(self, client: trio.SocketStream, upstream: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._scopes.append(scope)

            async def pipe(a: trio.SocketStream, b: trio.SocketStream) -> None:
                try:
                    while data := await a.receive_some(65536):
                        await b.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipe, client, upstream)
                nursery.start_soon(pipe, upstream, client)
        self._scopes.remove(scope)

    def cut(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()


@asynccontextmanager
async def proxied(server: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy(server.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


# -- against the gateway -------------------------------------------------------------------------


@pytest.mark.parametrize("eio", [4, 3])
async def test_virtual_requests_every_method(eio: int) -> None:
    app, _ = socket_app()
    with trio.fail_after(10):
        async with (
            running(app) as server,
            open_socket(url(server.port), eio=eio, headers={"x-test": "global"}, token="tk") as io,
        ):
            assert io.version == eio and io.connected and io.socket_id
            r = await io.get("/hello")
            assert (r.status_code, r.body) == (200, "hello")
            assert r.headers["content-type"].startswith("text/plain")
            for method in ("post", "put", "patch", "delete"):
                r = await io.request(
                    method, "/echo/7?q=1", {"n": method}, headers={"X-Test": "own"}
                )
                assert r.body == {
                    "method": method.upper(),
                    "id": "7",
                    "body": {"n": method},
                    "query": {"q": "1"},
                    "x": "own",
                    "auth": "Bearer tk",
                    "socket": True,
                }
            r = await io.get("/echo/8")
            assert r.body["x"] == "global" and r.body["method"] == "GET"
            r = await io.get("/status/418")
            assert r.status == 418 and r.error == {"code": 418} and not r.ok
            r = await io.get("/nowhere")
            assert r.status_code == 404 and r.error is not None
            with pytest.raises(NotFound) as info:
                r.raise_for_status()
            assert info.value.code == 511 and info.value.response is r
            assert io.statistics()["in_flight"] == 0


async def test_requests_in_flight_together_and_pushes() -> None:
    app, _ = socket_app()
    with trio.fail_after(10):
        async with running(app) as server, open_socket(url(server.port)) as io:
            got: list[JWR] = []
            async with trio.open_nursery() as nursery:
                for i in range(20):

                    async def one(i: int = i) -> None:
                        got.append(await io.post(f"/echo/{i}", {"i": i}))

                    nursery.start_soon(one)
            assert sorted(r.body["body"]["i"] for r in got) == list(range(20))
            seen: list[Any] = []
            io.on("news", seen.append)
            async with io.events("news", "alert") as pushes:
                await io.post("/join/r1")
                await io.post("/push", {"room": "r1", "event": "news", "data": {"n": 1}})
                await io.post("/push", {"room": "r2", "event": "news", "data": {"n": 2}})
                await io.post("/push", {"event": "alert", "data": "all"})
                first: Push = await pushes.receive()
                second: Push = await pushes.receive()
            assert (first.event, first.data) == ("news", {"n": 1})
            assert (second.event, second.data) == ("alert", "all")
            assert seen == [{"n": 1}]


async def test_request_deadline_and_close(autojump_clock: Any) -> None:
    app, state = socket_app()
    with trio.fail_after(100):
        async with running(app) as server, open_socket(url(server.port)) as io:
            with pytest.raises(RequestTimeout) as info:
                await io.get("/wait", timeout=2)
            assert info.value.code == 501 and io.statistics()["in_flight"] == 0
            state["release"].set()
            assert (await io.get("/hello")).body == "hello"  # the late reply was dropped
            state["release"] = trio.Event()
            state["started"] = trio.Event()
            async with trio.open_nursery() as nursery:

                async def pending() -> None:
                    with pytest.raises(Aborted) as info:
                        await io.get("/wait")
                    assert info.value.code == 503

                nursery.start_soon(pending)
                await state["started"].wait()
                await io.aclose()
            with pytest.raises(Aborted):
                await io.get("/hello")
            state["release"].set()


async def test_reconnect_replays_queued_requests(autojump_clock: Any) -> None:
    app, state = socket_app()
    with trio.fail_after(100):
        async with (
            running(app) as server,
            proxied(server) as proxy,
            open_socket(url(proxy.port), reconnect_delay=1, reconnect_delay_max=4) as io,
        ):
            assert (await io.get("/hello")).body == "hello"
            async with trio.open_nursery() as nursery:

                async def in_flight() -> None:
                    with pytest.raises(TransportError) as info:
                        await io.get("/wait")
                    assert info.value.code == 502  # may have run: not sent again

                nursery.start_soon(in_flight)
                await state["started"].wait()
                proxy.refuse = True
                proxy.cut()
            await trio.testing.wait_all_tasks_blocked()
            assert not io.connected
            results: list[JWR] = []
            async with trio.open_nursery() as nursery:
                for _ in range(3):

                    async def queued() -> None:
                        results.append(await io.get("/hello"))

                    nursery.start_soon(queued)
                await trio.testing.wait_all_tasks_blocked()
                assert io.statistics()["queued"] == 3
                hits = state["hits"]
                await trio.sleep(10)  # attempts are refused meanwhile
                assert proxy.accepted >= 3 and not io.connected and state["hits"] == hits
                proxy.refuse = False
            assert [r.body for r in results] == ["hello"] * 3
            assert io.connected and io.reconnects == 1
            assert io.statistics()["queued"] == 0


async def test_reconnect_gives_up_and_fails_the_queue(autojump_clock: Any) -> None:
    app, _ = socket_app()
    with trio.fail_after(100):
        async with (
            running(app) as server,
            proxied(server) as proxy,
            open_socket(url(proxy.port), reconnect_delay=1, reconnect_attempts=3) as io,
        ):
            proxy.refuse = True
            proxy.cut()
            await trio.testing.wait_all_tasks_blocked()
            assert not io.connected
            with pytest.raises(TransportError) as info:
                await io.get("/hello")  # queued, then failed when reconnecting gave up
            assert "gave up" in info.value.message
            assert io.closed and proxy.accepted == 4


async def test_a_server_refusing_v4_gets_v3() -> None:
    app, _ = socket_app()
    with trio.fail_after(10):
        async with running(app) as server, proxied(server) as proxy:
            proxy.refuse_v4 = True
            async with open_socket(url(proxy.port)) as io:
                assert io.version == 3 and proxy.accepted == 2
                assert (await io.get("/hello")).body == "hello"


async def test_refused_handshake_is_a_connect_error() -> None:
    app, _ = socket_app()
    with trio.fail_after(10):
        async with running(app) as server:
            from gateway.client import ConnectError

            with pytest.raises(ConnectError) as info:
                async with open_socket(url(server.port), path="/nope/"):
                    pass
            assert info.value.code == 502 and "404" in info.value.message


# -- against a real Sails 1.5 app ---------------------------------------------------------------


@asynccontextmanager
async def sails_app(node: str) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [node, str(NODE_DIR / "sails_app.js")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1000)  # type: ignore[union-attr]
                assert chunk, "sails_app.js exited before listening"
                line += chunk
        try:
            yield json.loads(line)["port"]
        finally:
            await proc.stdin.aclose()  # type: ignore[union-attr]
            with trio.move_on_after(10):
                await proc.wait()
            proc.kill()


@pytest.mark.node
@pytest.mark.parametrize("eio", [4, 3])
async def test_against_a_real_sails_app(node: str, eio: int) -> None:
    with trio.fail_after(60):
        async with (
            sails_app(node) as port,
            open_socket(url(port), eio=eio, headers={"x-test": "global"}, token="tk") as io,
        ):
            assert io.version == eio
            r = await io.get("/user/7?x=1")
            assert r.status_code == 200
            assert r.body == {
                "id": "7",
                "isSocket": True,
                "wantsJSON": True,
                "query": {"x": "1"},
                "header": "global",
                "auth": "Bearer tk",
            }
            r = await io.post("/echo", {"a": [1, 2]}, headers={"x-test": "own"})
            assert r.body == {
                "method": "POST",
                "body": {"a": [1, 2]},
                "isSocket": True,
                "header": "own",
            }
            for method in ("put", "patch", "delete"):
                r = await io.request(method, "/echo", {"m": method})
                assert r.body == {"method": method.upper(), "body": {"m": method}}
            r = await io.get("/status/418")
            assert (r.status, r.body, r.error) == (418, {"code": 418}, {"code": 418})
            r = await io.get("/nope")
            assert (r.status, r.body) == (404, "Not Found")
            assert (await io.get("/forbidden")).status == 403
            async with io.events("news", "message") as pushes:
                joined = await io.post("/join/r1")
                assert joined.body["joined"] == "r1"
                await io.post("/broadcast/r1", {"hi": 1})
                await io.post("/blast", {"all": 1})
                a, b = await pushes.receive(), await pushes.receive()
            assert (a.event, a.data, b.event, b.data) == ("news", {"hi": 1}, "message", {"all": 1})
            with pytest.raises(RequestTimeout):
                await io.get("/slow", timeout=0.05)
            assert (await io.get("/slow")).body == {"slow": True}


@pytest.mark.parametrize("eio", [3, 4])
async def test_heartbeats_keep_an_idle_socket(autojump_clock: Any, eio: int) -> None:
    # v3: the client pings on the timer task; v4: the server pings and the reader answers
    app, _ = socket_app()
    with trio.fail_after(1000):
        async with running(app) as server, open_socket(url(server.port), eio=eio) as io:
            # five of the test profile's 5 s ping intervals, under its 30 s idle timeout
            await trio.sleep(25)
            assert io.connected and io.reconnects == 0
            assert (await io.get("/hello")).body == "hello"


async def test_socket_over_tls_with_a_ca_file(tmp_path: Any) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    app, _ = socket_app()
    with trio.fail_after(20):
        async with running(
            app, server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
        ) as server:
            async with open_socket(f"https://localhost:{server.port}", ca_file=str(ca_file)) as io:
                assert (await io.get("/hello")).body == "hello"
            from gateway.client import ConnectError

            with pytest.raises(ConnectError):  # the system's CAs do not know this one
                async with open_socket(f"wss://localhost:{server.port}"):
                    pass
            # let the server finish with the refused connection before it is stopped
            await trio.testing.wait_all_tasks_blocked()
