# The demo app served by `make run`: a small status page, JSON routes, a form post, an upload
# and a privileged route, to show a newcomer the API in one screen.
from __future__ import annotations

import hashlib
import html

from gateway import App, Request, Response
from gateway.app import bodyparsers

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
<li><code>curl -H 'Authorization: Bearer TOKEN' http://127.0.0.1:8080/admin/status</code>
 (privileged)</li></ul>
<h2>Leave a note (form post)</h2>
<form method="post" action="/notes"><input name="note" required maxlength="200">
<button>Post</button></form><ul id="notes">{notes}</ul>
<h2>Upload a file (streamed, only its size and SHA-256 are kept)</h2>
<form method="post" action="/upload" enctype="application/octet-stream" id="up">
<input type="file" id="file"> <button>Upload</button></form><pre id="result"></pre>
<script>
document.getElementById('up').onsubmit = async (e) => {{
  e.preventDefault();
  const f = document.getElementById('file').files[0]; if (!f) return;
  const r = await fetch('/upload', {{method: 'POST', body: f}});
  document.getElementById('result').textContent = await r.text();
}};
</script></body></html>
"""


@app.get("/")
async def index(req: Request, res: Response) -> None:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _notes[-10:])
    profile = req.app.settings.profile if req.app.settings else "?"
    await res.send(PAGE.format(profile=profile, mode=req.mode, notes=notes,
                               requests=req.app.requests_served))


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
