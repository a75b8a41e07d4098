# The /_gateway/ status page: its figures (one JSON snapshot, and live over server-sent events),
# what a user-mode viewer sees and what only a privileged one does (the recent 4xx/5xx lines),
# the profile switch that keeps it all to privileged viewers, the cap on viewers, a page with
# nothing from elsewhere, and the page itself in headless Chromium: its request counter moves
# as requests are made, a token turns on the privileged view, and a screenshot is taken.
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio

from gateway import App, Request, Response
from gateway.app.status import MAX_VIEWERS
from tests.cdp import open_browser
from tests.helpers import Client, connect, request, running
from tests.test_body_streaming import session
from tests.test_modes import TOKEN

AUTH = [("Authorization", f"Bearer {TOKEN}")]


def small_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(req: Request, res: Response) -> None:
        await res.send("hello")

    return app


async def test_the_snapshot_shows_errors_and_paths_to_privileged_viewers_only(creds: str) -> None:
    with trio.fail_after(10):
        async with running(small_app(), server__credentials_file=creds) as server:
            await request(server, "GET", "/hello")
            await request(server, "GET", "/missing/page?token=secret")
            await request(server, "DELETE", "/hello", AUTH)  # 405, privileged
            public = (await request(server, "GET", "/_gateway/status")).json()
            private = (await request(server, "GET", "/_gateway/status", AUTH)).json()
    assert "errors" not in public and "/missing" not in json.dumps(public)
    assert public["mode"] == "user" and private["mode"] == "privilege"
    assert public["profile"] == "test" and public["version"] and public["board"]
    assert public["requests"] == {"total": 3, "http": 3, "socket": 0, "4xx": 2, "5xx": 0}
    assert private["requests"]["total"] == 4  # the first snapshot has ended meanwhile
    assert public["connections"] == 1 and public["websockets"] == 0 and public["sockets"] == 0
    mem = public["memory"]
    assert mem["budget_total_bytes"] == 4 * 1024 * 1024 and mem["max_bytes"] > 0
    assert mem["rss_bytes"] > 1024 * 1024
    newest, oldest = private["errors"]
    assert (newest["method"], newest["path"], newest["status"], newest["mode"]) == (
        "DELETE",
        "/hello",
        405,
        "privilege",
    )
    assert (oldest["method"], oldest["path"], oldest["status"]) == ("GET", "/missing/page", 404)
    assert "secret" not in json.dumps(private)  # never the query string


async def test_the_profile_can_keep_the_figures_to_privileged_viewers(creds: str) -> None:
    with trio.fail_after(10):
        async with running(
            small_app(), server__credentials_file=creds, status__page_public=False
        ) as server:
            page = await request(server, "GET", "/_gateway/")
            snapshot = await request(server, "GET", "/_gateway/status")
            stream = await request(server, "GET", "/_gateway/events")
            refused = await request(
                server, "GET", "/_gateway/events", [("Authorization", "Bearer wrong")]
            )
            allowed = await request(server, "GET", "/_gateway/status", AUTH)
    assert page.status == 200  # the page holds no figures: it asks for a token
    assert snapshot.status == 401 and stream.status == 401 and refused.status == 403
    assert snapshot.headers["www-authenticate"] == 'Bearer realm="gateway"'
    assert allowed.status == 200 and "errors" in allowed.json()


async def test_the_page_is_small_self_contained_and_locked_down() -> None:
    with trio.fail_after(10):
        async with running(small_app()) as server:
            reply = await request(server, "GET", "/_gateway/")
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    assert len(reply.body) < 40 * 1024
    html = reply.text
    # nothing from elsewhere: no external scripts, styles, fonts or images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    csp = reply.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/]+=*'", csp)
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert '<meta name="viewport"' in html  # laid out for a phone


async def _first_events(client: Client, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` events of a status stream: (their field lines, data)."""
    import h11

    conn = client.h11
    buf = b""
    out: list[tuple[str, dict[str, Any]]] = []
    while len(out) < n:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await client.stream.receive_some(65536)))
        elif isinstance(event, h11.Data):
            buf += event.data
            while b"\n\n" in buf:
                block, _, buf = buf.partition(b"\n\n")
                lines = block.decode().split("\n")
                fields = "\n".join(line for line in lines if not line.startswith("data: "))
                data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
                out.append((fields, json.loads(data)))
        elif isinstance(event, h11.Response):
            assert event.status_code == 200, event
    return out


async def test_the_stream_sends_a_snapshot_a_second_with_the_request_rate(
    autojump_clock: Any,
) -> None:
    app = small_app()
    with trio.fail_after(60):
        async with session(app) as (client, _, _):
            await client.send("GET", "/_gateway/events")
            ((fields, first),) = await _first_events(client, 1)
            start = trio.current_time()
            for _ in range(3):  # three requests end on other connections meanwhile
                app.metrics.observe("GET", 200, False, "http", 0.001, 0, 5, "/x")
            ((later_fields, second),) = await _first_events(client, 1)
            assert trio.current_time() - start == pytest.approx(1.0, abs=0.01)
            await client.aclose()
    assert fields == "event: status\nretry: 2000" and later_fields == "event: status"
    assert first["requests"]["per_s"] is None and first["requests"]["total"] == 0
    assert second["requests"]["per_s"] == 3.0 and second["requests"]["total"] == 3


async def test_viewers_are_capped() -> None:
    app = small_app()
    with trio.fail_after(20):
        async with running(app, server__max_connections=MAX_VIEWERS + 4) as server:
            viewers = []
            for _ in range(MAX_VIEWERS):
                viewer = Client(await connect(server))
                await viewer.send("GET", "/_gateway/events")
                await _first_events(viewer, 1)
                viewers.append(viewer)
            busy = await request(server, "GET", "/_gateway/events")
            await viewers[0].aclose()
            while app.metrics.status_viewers == MAX_VIEWERS:  # noqa: ASYNC110 (bounded above)
                await trio.sleep(0.05)  # the stream finds its viewer gone at its next send
            again = await request(server, "GET", "/_gateway/status")
            for viewer in viewers[1:]:
                await viewer.aclose()
    assert busy.status == 503 and busy.headers["retry-after"] == "10"
    assert app.metrics.status_viewers < MAX_VIEWERS and again.status == 200


# -- in a real browser ----------------------------------------------------------------------------


async def test_the_page_in_chromium_counts_requests_live(tmp_path: Path, creds: str) -> None:
    with trio.fail_after(60):
        async with (
            running(small_app(), server__credentials_file=creds) as server,
            open_browser(tmp_path) as browser,
        ):
            tab = await browser.new_page(f"http://127.0.0.1:{server.port}/_gateway/")
            await tab.wait_for("document.getElementById('state').textContent === 'live'")
            before = int(
                await tab.wait_for(
                    "/^[0-9]+$/.test(document.getElementById('requests').textContent)"
                    " && document.getElementById('requests').textContent"
                )
            )
            for _ in range(4):
                await request(server, "GET", "/hello")
            await request(server, "GET", "/nowhere?token=secret")
            after = await tab.wait_for(
                f"document.getElementById('requests').textContent === '{before + 5}'"
            )
            assert after is True
            rps = await tab.wait_for(
                "/^[0-9.]+$/.test(document.getElementById('rps')"
                ".textContent) && document.getElementById('rps')"
                ".textContent"
            )
            public = await tab.evaluate(
                "[document.getElementById('errorsbox').hidden, document.body.innerText,"
                " document.getElementById('errcount').textContent,"
                " document.getElementById('profile').textContent]"
            )
            # the privileged view: a token entered in the page's own form
            await tab.evaluate(
                f"document.getElementById('token').value = '{TOKEN}';"
                "document.getElementById('auth').requestSubmit()"
            )
            await tab.wait_for("document.getElementById('mode').textContent === 'privileged view'")
            rows = await tab.wait_for(
                "[...document.querySelectorAll('#errors tr')].map(r => r.innerText).join('|')"
            )
            text = await tab.evaluate("document.body.innerText")
            shot = await tab.screenshot(tmp_path / "status-page.png")
    assert float(rps) >= 0
    hidden, public_text, errcount, profile = public
    assert hidden is True and "/nowhere" not in public_text and errcount == "1 / 0"
    assert profile.startswith("test")
    assert "/nowhere" in rows and "404" in rows and "GET" in rows
    assert "secret" not in text
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(shot[16:20], "big") == 412  # the phone-sized viewport's width
