# What ../shared/bench expects: GET /hello, POST /echo (JSON back), POST /upload (streamed,
# byte count) and the WebSocket /ws echo. Serve: gateway serve bench.app:app --port N
from __future__ import annotations

import json

from gateway import App, Request, Response

app = App()


@app.get("/hello")
async def hello(req: Request, res: Response) -> None:
    res.set("Content-Type", "text/plain")
    await res.send("hello")


@app.post("/echo")
async def echo(req: Request, res: Response) -> None:
    await res.json(json.loads(await req.read()))


@app.post("/upload")
async def upload(req: Request, res: Response) -> None:
    n = 0
    async for chunk in req:
        n += len(chunk)
    res.set("Content-Type", "text/plain")
    await res.send(str(n))
