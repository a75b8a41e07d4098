# CORS in a real browser: headless Chromium loads a page from one gateway (one loopback port, one
# origin) and calls an API gateway on another port with fetch() and WebSocket: a simple request
# that reads an exposed header, cookies only with credentials: 'include', a custom header that
# forces a preflight, a privileged route whose preflight passes without credentials and whose
# actual request carries the bearer token, a header the policy does not allow; and from a page of
# an origin the policy does not list, the blocked fetch (TypeError) and the refused WebSocket.
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from gateway import App, Request, Response, WebSocket
from tests.cdp import Page, open_browser
from tests.helpers import running
from tests.test_modes import TOKEN


def page_app() -> App:
    app = App()

    @app.get("/")
    async def index(req: Request, res: Response) -> None:
        await res.send("<!doctype html><title>page</title><p>a page of another origin</p>")

    return app


def api_app() -> App:
    app = App()

    @app.get("/data")
    async def data(req: Request, res: Response) -> None:
        res.set("X-Count", "3")
        await res.json({"n": 3})

    @app.get("/login")
    async def login(req: Request, res: Response) -> None:
        res.cookie("session", "abc123")
        await res.json({"ok": True})

    @app.get("/whoami")
    async def whoami(req: Request, res: Response) -> None:
        await res.json({"session": req.cookies.get("session")})

    @app.get("/custom")
    async def custom(req: Request, res: Response) -> None:
        await res.json({"x-custom": req.get("x-custom")})

    @app.post("/admin", privileged=True)
    async def admin(req: Request, res: Response) -> None:
        await res.json({"mode": req.mode})

    @app.ws("/live")
    async def live(ws: WebSocket, req: Request) -> None:
        await ws.send("hello")
        async for _ in ws:
            pass

    return app


def script(api: str) -> str:
    """What the page runs: every call, each result or the error's name (JSON)."""
    return """(async () => {
      const api = API, token = TOKEN, out = {};
      async function call(name, path, init) {
        try {
          const r = await fetch(api + path, init);
          let body = await r.text();
          try { body = JSON.parse(body); } catch (e) {}
          out[name] = {status: r.status, body, count: r.headers.get("X-Count")};
        } catch (e) {
          out[name] = {error: e.name};
        }
      }
      await call("simple", "/data");
      await call("login", "/login", {credentials: "include"});
      await call("with_cookies", "/whoami", {credentials: "include"});
      await call("without_cookies", "/whoami");
      await call("custom", "/custom", {headers: {"X-Custom": "hello"}});
      await call("admin", "/admin", {method: "POST", body: "{}",
        headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}});
      await call("anonymous", "/admin", {method: "POST"});
      await call("unlisted_header", "/custom", {headers: {"X-Other": "x"}});
      out.socket = await new Promise(resolve => {
        const ws = new WebSocket(api.replace("http:", "ws:") + "/live");
        ws.onmessage = e => { resolve("message: " + e.data); ws.close(); };
        ws.onerror = () => resolve("error");
      });
      return JSON.stringify(out);
    })()""".replace("API", json.dumps(api), 1).replace("TOKEN", json.dumps(TOKEN), 1)


async def run_page(browser: Any, url: str, api: str) -> dict[str, Any]:
    tab: Page = await browser.new_page(url)
    await tab.wait_for("document.readyState === 'complete' && document.title === 'page'")
    result: dict[str, Any] = json.loads(await tab.evaluate(script(api)))
    return result


async def test_fetch_and_websocket_from_pages_of_other_origins(tmp_path: Path, creds: str) -> None:
    api = api_app()
    with trio.fail_after(90):
        async with running(page_app()) as allowed_page, running(page_app()) as other_page:
            allowed = f"http://127.0.0.1:{allowed_page.port}"
            async with (
                running(
                    api,
                    server__credentials_file=creds,
                    cors__allowed_origins=[allowed],
                    cors__allow_credentials=True,
                    cors__allowed_headers=["Authorization", "Content-Type", "X-Custom"],
                    cors__exposed_headers=["X-Count"],
                ) as server,
                open_browser(tmp_path) as browser,
            ):
                base = f"http://127.0.0.1:{server.port}"
                good = await run_page(browser, allowed + "/", base)
                before = counts(api)
                bad = await run_page(browser, f"http://127.0.0.1:{other_page.port}/", base)
                after = counts(api)
    # from the listed origin
    assert good["simple"] == {"status": 200, "body": {"n": 3}, "count": "3"}  # exposed
    assert good["login"]["status"] == 200
    assert good["with_cookies"]["body"] == {"session": "abc123"}
    assert good["without_cookies"]["body"] == {"session": None}  # no credentials, no cookie
    assert good["custom"]["body"] == {"x-custom": "hello"}
    assert good["admin"] == {"status": 200, "body": {"mode": "privilege"}, "count": None}
    assert good["anonymous"]["status"] == 401  # readable: the refusal carries the headers
    assert good["unlisted_header"] == {"error": "TypeError"}  # the preflight did not list it
    assert good["socket"] == "message: hello"
    # three preflights answered 204 (X-Custom, the token, X-Other: the browser read the list
    # and refused the last itself); none refused
    assert before[("OPTIONS", 2)] == 3 and ("OPTIONS", 4) not in before
    # from an origin the policy does not list: nothing readable, the socket refused
    for name in ("simple", "with_cookies", "custom", "admin", "anonymous"):
        assert bad[name] == {"error": "TypeError"}, name
    assert bad["socket"] == "error"
    # its preflights (X-Custom, the token, X-Other) were refused: 403
    assert after[("OPTIONS", 4)] == 3 and after[("OPTIONS", 2)] == 3
    assert after[("GET", 4)] - before.get(("GET", 4), 0) == 1  # the WebSocket: 403


def counts(app: App) -> dict[tuple[str, int], int]:
    """Requests the API answered so far, by (method, status class)."""
    return {
        (method, cls): n for method, cls, _, n in app.metrics.transports["http"].requests_by_label()
    }
