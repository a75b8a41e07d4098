# Makes docs/status-page.png, the README's picture of the /_gateway/ status page: the demo app
# on the pi4-2gb profile (on loopback, any free port), some traffic (pages, JSON, a form post,
# a 404 and a 413, an open WebSocket), a privileged viewer (a token entered in the page's own
# form), headless Chromium (the tests' DevTools client, tests/cdp.py).
#
#   PYTHONPATH=. .venv/bin/python scripts/status_screenshot.py [OUT.png] [--phone]
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app.auth import hash_token  # noqa: E402
from gateway.demo import app  # noqa: E402
from gateway.server.serve import Server  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from tests.cdp import open_browser  # noqa: E402
from tests.helpers import request  # noqa: E402
from tests.test_websocket import Client  # noqa: E402

TOKEN = "status-page-screenshot"


async def traffic(server: Server) -> None:
    """What a device sees in its first minutes: a page, its API, a form, mistakes."""
    for target in ("/", "/api/hello?name=device", "/user/42", "/_gateway/health"):
        await request(server, "GET", target)
    await request(
        server,
        "POST",
        "/notes",
        [("Content-Type", "application/x-www-form-urlencoded")],
        b"note=hello",
    )
    await request(server, "GET", "/favicon.ico")
    await request(server, "GET", "/admin/status")  # no token: 401
    await request(server, "POST", "/upload", body=b"x" * (2 * 1024 * 1024 + 1))  # over: 413


async def steady(server: Server) -> None:
    while True:  # a small steady load, so requests per second is not zero
        await request(server, "GET", "/api/hello?name=sensor")
        await trio.sleep(0.1)


async def main(out: Path, phone: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        creds = Path(tmp) / "credentials"
        creds.write_text(f"{hash_token(TOKEN)} admin\n")
        os.chmod(creds, 0o600)
        settings = load_settings(
            "pi4-2gb",
            env={},
            overrides={
                "server.host": "127.0.0.1",
                "server.port": "0",
                "server.access_log": "false",
                "server.credentials_file": str(creds),
            },
        )
        app.bind(settings)
        server = Server(app, settings)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve)
                await traffic(server)
                ws, _ = await Client.open(server.port, "/ws/echo")
                nursery.start_soon(steady, server)
                async with open_browser(Path(tmp)) as browser:
                    size = (412, 900, True) if phone else (900, 640, False)
                    tab = await browser.new_page(
                        f"http://127.0.0.1:{server.port}/_gateway/",
                        width=size[0],
                        height=size[1],
                        mobile=size[2],
                    )
                    await tab.wait_for("document.getElementById('state').textContent === 'live'")
                    await tab.evaluate(
                        f"document.getElementById('token').value = '{TOKEN}';"
                        "document.getElementById('auth').requestSubmit()"
                    )
                    await tab.wait_for(
                        "document.getElementById('mode').textContent === 'privileged view'"
                    )
                    await trio.sleep(2.5)  # two snapshots: a request rate to show
                    await tab.wait_for("document.getElementById('rps').textContent !== '\u2013'")
                    await tab.screenshot(out)
                await ws.stream.aclose()
                nursery.cancel_scope.cancel()
    print(f"wrote {out}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--phone"]
    trio.run(
        main,
        Path(args[0]) if args else ROOT / "docs" / "status-page.png",
        "--phone" in sys.argv[1:],
    )
