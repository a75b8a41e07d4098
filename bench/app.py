# What ../shared/bench expects: GET /hello, POST /echo (JSON back), POST /upload (streamed,
# byte count) and the WebSocket /ws echo. Serve: gateway serve bench.app:app --port N
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from gateway import App, Request, Response

if TYPE_CHECKING:  # the WebSocket layer loads with the first upgrade, not with the app
    from gateway import WebSocket

app = App()


@app.get("/hello")
async def hello(req: Request, res: Response) -> None:
    res.set("Content-Type", "text/plain")
    await res.send("hello")


@app.post("/echo")
async def echo(req: Request, res: Response) -> None:
    await res.json(json.loads(await req.read()))


# Streamed, never kept: the route lifts the streaming limit (the mode's max_body_bytes is 1 MiB
# for an unprivileged caller); the cache limit and the memory budget still apply.
@app.post("/upload", max_body_bytes=1 << 30)
async def upload(req: Request, res: Response) -> None:
    n = 0
    async for chunk in req:
        n += len(chunk)
    res.set("Content-Type", "text/plain")
    await res.send(str(n))


@app.ws("/ws")
async def ws_echo(ws: WebSocket, req: Request) -> None:
    async for message in ws:  # text and binary, echoed as they came
        await ws.send(message)
