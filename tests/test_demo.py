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
            echo = await request(server, "POST", "/api/echo", [("content-type", "application/json")],
                                 json.dumps({"a": [1, 2]}).encode())
            assert echo.json() == {"a": [1, 2]}
            note = await request(server, "POST", "/notes",
                                 [("content-type", "application/x-www-form-urlencoded")],
                                 b"note=hello+device")
            assert note.status == 303 and note.headers["location"] == "/"
            page = await request(server, "GET", "/", [("accept", "text/html")])
            assert b"hello device" in page.body
            blob = os.urandom(50_000)  # sent the way `curl --data-binary` sends it
            up = await request(server, "POST", "/upload",
                               [("content-type", "application/x-www-form-urlencoded")], blob)
            assert up.json() == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
            admin = await request(server, "GET", "/admin/status")
            assert admin.status == 401
