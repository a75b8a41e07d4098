# bench.app plus GET /download/:n (n bytes of zeros, streamed in 64 KiB writes) for the
# client's download benchmark (bench/client_bench.py). Serve: gateway serve bench.client_app:app
from __future__ import annotations

from bench.app import app
from gateway import Request, Response

_BLOCK = bytes(65536)


@app.get("/download/:n")
async def download(req: Request, res: Response) -> None:
    n = int(req.params["n"])
    res.set("Content-Type", "application/octet-stream")
    res.set("Content-Length", str(n))
    while n > 0:
        piece = _BLOCK if n >= len(_BLOCK) else _BLOCK[:n]
        await res.write(piece)
        n -= len(piece)
    await res.end()
