# The demo app `make run` serves: each of its routes does what its page says.
from __future__ import annotations

import hashlib
import json
import os

import trio

from gateway.cli import load_app
from tests.helpers import request, running


async def test_demo_routes() -> None:
    app = load_app("gateway.demo:app")
    with trio.fail_after(10):
        async with running(app) as server:
            page = await request(server, "GET", "/", [("accept", "text/html")])
            assert page.status == 200 and b"gateway is running" in page.body
            hello = await request(server, "GET", "/api/hello?name=pi")
            assert hello.json() == {"hello": "pi", "wants_json": True}
            assert (await request(server, "GET", "/user/42")).body == b"user 42"
            echo = await request(
                server,
                "POST",
                "/api/echo",
                [("content-type", "application/json")],
                json.dumps({"a": [1, 2]}).encode(),
            )
            assert echo.json() == {"a": [1, 2]}
            note = await request(
                server,
                "POST",
                "/notes",
                [("content-type", "application/x-www-form-urlencoded")],
                b"note=hello+device",
            )
            assert note.status == 303 and note.headers["location"] == "/"
            page = await request(server, "GET", "/", [("accept", "text/html")])
            assert b"hello device" in page.body
            blob = os.urandom(50_000)  # sent the way `curl --data-binary` sends it
            up = await request(
                server,
                "POST",
                "/upload",
                [("content-type", "application/x-www-form-urlencoded")],
                blob,
            )
            assert up.json() == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
            admin = await request(server, "GET", "/admin/status")
            assert admin.status == 401


async def test_demo_page_states_its_limits_and_how_to_get_a_token() -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Message
    from wsproto.events import Request as WSRequest

    app = load_app("gateway.demo:app")
    with trio.fail_after(10):
        async with running(app) as server:
            page = (await request(server, "GET", "/", [("accept", "text/html")])).text
            assert "Up to 256 KiB as a user, 2 MiB with a token" in page  # the test profile
            assert "needs a bearer token (none configured yet)" in page
            assert "gateway token --name admin --file .credentials" in page
            assert "make run CREDENTIALS=.credentials" in page
            # the page's WebSocket echo
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            ws = WSConnection(ConnectionType.CLIENT)
            await stream.send_all(ws.send(WSRequest(host="127.0.0.1", target="/ws/echo")))
            events: list[object] = []
            while not any(isinstance(e, Message) for e in events):
                ws.receive_data(await stream.receive_some(4096))
                for event in ws.events():
                    events.append(event)
                    if isinstance(event, AcceptConnection):
                        await stream.send_all(ws.send(Message(data="hello device")))
            assert isinstance(events[0], AcceptConnection)
            assert [e.data for e in events if isinstance(e, Message)] == ["hello device"]
            await stream.aclose()
