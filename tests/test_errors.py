# Errors say whose fault they are (h11's model): the peer's protocol errors are
# RemoteProtocolError (a 4xx to answer), ours are LocalProtocolError (500, logged), and a client
# that went away is ClientDisconnected, which is no HTTPError: an app's `except HTTPError`
# cannot swallow it and it never becomes a reply.
from __future__ import annotations

from typing import Any

import pytest
import trio

from gateway import App, ClientDisconnected, HTTPError, Request, Response
from gateway.errors import (
    BodyError,
    GatewayError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from gateway.http.connection import HTTPLimits, ServerConnection
from gateway.http.target import split_target
from gateway.http.writer import ResponseWriter
from gateway.ws import engineio, sails
from tests.helpers import read_all
from tests.test_body_streaming import session


def test_the_hierarchy_says_whose_fault() -> None:
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)
    assert RemoteProtocolError("x").status_hint == 400
    assert LocalProtocolError("x").status_hint == 500
    assert issubclass(ClientDisconnected, GatewayError)
    assert not issubclass(ClientDisconnected, HTTPError)
    assert not issubclass(ClientDisconnected, BodyError)


def test_the_peers_errors_are_remote() -> None:
    conn = ServerConnection(HTTPLimits())
    conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    )
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400
    with pytest.raises(RemoteProtocolError):
        split_target(b"ftp://x/")
    with pytest.raises(RemoteProtocolError):
        engineio.decode_eio("")
    with pytest.raises(RemoteProtocolError):  # SailsParseError is the peer's fault too
        sails.parse_virtual_request("get", [{}], 1)


def test_our_errors_are_local() -> None:
    writer = ResponseWriter()
    writer.head(
        200, [("Content-Length", "2")], head_request=False, http10=False, keep_alive=True, date="x"
    )
    with pytest.raises(LocalProtocolError) as info:
        writer.data(b"abc")
    assert info.value.status_hint == 500
    with pytest.raises(LocalProtocolError):
        writer.head(200, [], head_request=False, http10=False, keep_alive=True, date="x")


async def test_except_http_error_does_not_swallow_a_disconnect() -> None:
    app = App()
    seen: list[str] = []
    done = trio.Event()

    @app.post("/up")
    async def up(req: Request, res: Response) -> None:
        try:
            try:
                async for _ in req:
                    pass
            except HTTPError:
                seen.append("http error")  # a bad body would land here; a disconnect must not
                await res.status(400).send("bad body")
        except ClientDisconnected:
            seen.append("disconnected")
            raise
        finally:
            done.set()

    with trio.fail_after(10):
        async with session(app) as (client, server, _):
            await client.send("POST", "/up", [("content-length", "100000")], end=False)
            await client.send_body(b"x" * 3000)
            await client.stream.aclose()
            await done.wait()
    assert seen == ["disconnected"]
    assert app.errors_5xx == 0  # nothing was answered, nothing counted as our error


async def test_a_local_protocol_error_is_logged_not_answered(caplog: Any) -> None:
    app = App()

    @app.get("/liar")
    async def liar(req: Request, res: Response) -> None:
        res.set("Content-Length", "3")
        await res.write("ab")
        await res.write("cd")  # more than the Content-Length it declared: our bug

    with trio.fail_after(10):
        async with session(app) as (client, server, _):
            await client.send("GET", "/liar")
            raw = await read_all(client.stream)
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\nab")
    assert raw.count(b"HTTP/1.1") == 1  # aborted: no error reply after the head went out
    assert server.stats["protocol_errors"] == 0  # not counted as the peer's
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert any(isinstance(r.exc_info[1], LocalProtocolError) for r in errors)
