# The demo app served by `make run`: a small status page, JSON routes, a form post, an upload
# (the page states its limits), a WebSocket echo and a privileged route (the page says how to get
# a token), to show a newcomer the API in one screen.
from __future__ import annotations

import hashlib
import html
from typing import TYPE_CHECKING

from gateway import App, Request, Response
from gateway.body import parsers as bodyparsers

if TYPE_CHECKING:
    from gateway.server.websocket import WebSocket

app = App()
# Body parsers go on the routes that take such bodies: /upload streams whatever it is sent.
json_body = bodyparsers.json()
form_body = bodyparsers.urlencoded()

_notes: list[str] = []

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gateway</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
code{{background:#eee;padding:0 .2rem}}li{{margin:.2rem 0}}</style></head>
<body><h1>gateway is running</h1>
<p>Profile <code>{profile}</code>, mode <code>{mode}</code>, {requests} requests served.</p>
<h2>Try</h2><ul>
<li><a href="/api/hello?name=device">GET /api/hello?name=device</a> (JSON)</li>
<li><a href="/user/42">GET /user/42</a> (route parameter)</li>
<li><a href="/_gateway/health">GET /_gateway/health</a></li>
<li><a href="/_gateway/">the gateway's live status page</a> (uptime, requests, memory)</li></ul>
<h2>A privileged route</h2>
<p><code>/admin/status</code> needs a bearer token ({tokens}). Make one and serve with it:</p>
<pre>.venv/bin/gateway token --name admin --file .credentials
make run CREDENTIALS=.credentials
curl -H 'Authorization: Bearer TOKEN' http://127.0.0.1:8080/admin/status</pre>
<h2>Leave a note (form post)</h2>
<form method="post" action="/notes"><input name="note" required maxlength="200">
<button>Post</button></form><ul id="notes">{notes}</ul>
<h2>Upload a file (streamed, only its size and SHA-256 are kept)</h2>
<p>Up to {user_max} as a user, {priv_max} with a token (the profile's
<code>[limits.user]</code> / <code>[limits.privileged]</code> <code>max_body_bytes</code>; a
route can lower it: <code>@app.post(path, max_body_bytes=...)</code>). Larger: 413.</p>
<form method="post" action="/upload" enctype="application/octet-stream" id="up">
<input type="file" id="file"> <button>Upload</button></form><pre id="result"></pre>
<script>
document.getElementById('up').onsubmit = async (e) => {{
  e.preventDefault();
  const f = document.getElementById('file').files[0]; if (!f) return;
  const r = await fetch('/upload', {{method: 'POST', body: f}});
  document.getElementById('result').textContent =
    (r.ok ? '' : r.status + ' ' + r.statusText + ': ') + await r.text();
}};
</script>
<h2>WebSocket echo</h2>
<form id="wsf"><input id="wsin" value="hello" maxlength="200"> <button>Send</button></form>
<pre id="wsout"></pre>
<script>
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://')
                         + location.host + '/ws/echo');
ws.onmessage = (e) => {{ document.getElementById('wsout').textContent += e.data + '\\n'; }};
document.getElementById('wsf').onsubmit = (e) => {{
  e.preventDefault(); ws.send(document.getElementById('wsin').value);
}};
</script></body></html>
"""


@app.get("/")
async def index(req: Request, res: Response) -> None:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _notes[-10:])
    settings = req.app.settings
    tokens = len(req.app.credentials)
    await res.send(
        PAGE.format(
            profile=settings.profile if settings else "?",
            mode=req.mode,
            notes=notes,
            requests=req.app.requests_served,
            tokens=f"{tokens} configured" if tokens else "none configured yet",
            user_max=_size(settings.user.max_body_bytes) if settings else "?",
            priv_max=_size(settings.privileged.max_body_bytes) if settings else "?",
        )
    )


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


@app.get("/api/hello")
async def hello(req: Request, res: Response) -> None:
    await res.json({"hello": req.query.get("name", "world"), "wants_json": req.wants_json})


@app.get("/user/:id")
async def user(req: Request, res: Response) -> None:
    await res.send(f"user {html.escape(req.params['id'])}")


async def echo(req: Request, res: Response) -> None:
    await res.json(req.body)


app.post("/api/echo", json_body, echo)


async def post_note(req: Request, res: Response) -> None:
    note = req.body.get("note") if isinstance(req.body, dict) else None
    if not isinstance(note, str) or not note.strip():
        await res.status(400).send("a note is required")
        return
    _notes.append(note.strip()[:200])
    del _notes[:-100]
    await res.redirect("/", 303)


app.post("/notes", form_body, post_note)


@app.post("/upload")
async def upload(req: Request, res: Response) -> None:
    digest = hashlib.sha256()
    size = 0
    async for chunk in req:
        digest.update(chunk)
        size += len(chunk)
    await res.json({"bytes": size, "sha256": digest.hexdigest()})


@app.get("/admin/status", privileged=True)
async def admin_status(req: Request, res: Response) -> None:
    await res.json(req.app.statistics())


@app.ws("/ws/echo")
async def ws_echo(ws: WebSocket, req: Request) -> None:
    async for message in ws:
        await ws.send(message)
