# A real browser for the page tests: headless Chromium (Debian's `chromium`) driven over the
# Chrome DevTools Protocol, on a WebSocket spoken with wsproto over trio. Just enough of CDP to
# open a page, evaluate JavaScript in it, wait for a condition and take a screenshot.
# Chromium is a real peer: a missing one fails the test naming its package (tests/peers.py).
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from tests.peers import require_tool

__all__ = ["Browser", "Page", "open_browser", "CHROMIUM_FLAGS"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CDPError(Exception):
    """Chromium answered a command with an error, or the page's script threw."""


class Browser:
    """One DevTools connection to a running Chromium (see ``open_browser``)."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._next_id = 0
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []  # every event Chromium sent, in order

    async def _reader(self) -> None:
        parts: list[str] = []
        while True:
            data = await self._stream.receive_some(1 << 16)
            if not data:
                return
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, Ping):
                    await self._stream.send_all(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    return
                elif isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        message = json.loads("".join(parts))
                        parts.clear()
                        channel = self._waiting.pop(message.get("id", -1), None)
                        if channel is not None:
                            channel.send_nowait(message)
                        else:
                            self.events.append(message)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result.

        Raises:
            CDPError: Chromium answered with an error.
        """
        self._next_id += 1
        ident = self._next_id
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[ident] = send
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._stream.send_all(self._ws.send(TextMessage(json.dumps(message))))
        reply = await receive.receive()
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def new_page(
        self,
        url: str,
        *,
        width: int = 412,
        height: int = 860,
        scale: float = 1.0,
        mobile: bool = True,
    ) -> Page:
        """A new tab at ``url`` with a phone-sized viewport by default."""
        target = (await self.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))[
            "sessionId"
        ]
        page = Page(self, session)
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
            session,
        )
        await self.call("Page.navigate", {"url": url}, session)
        return page


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited) and return the value.

        Raises:
            CDPError: the expression threw.
        """
        result = await self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, interval_s: float = 0.05) -> Any:
        """Evaluate until the value is truthy (the caller's fail_after bounds the wait)."""
        while True:
            try:
                value = await self.evaluate(expression)
            except CDPError:
                value = None  # the page is still loading: the element is not there yet
            if value:
                return value
            await trio.sleep(interval_s)

    async def screenshot(self, path: Path) -> bytes:
        """Save a PNG of the viewport to ``path`` and return its bytes."""
        result = await self.browser.call("Page.captureScreenshot", {"format": "png"}, self.session)
        data = base64.b64decode(result["data"])
        await trio.Path(path).write_bytes(data)
        return data


async def _devtools_address(profile: Path, proc: trio.Process) -> tuple[int, str]:
    # Chromium writes the port it chose (we asked for 0) and the browser's WebSocket path here
    marker = profile / "DevToolsActivePort"
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before it listened")
        try:
            port, path = (await trio.Path(marker).read_text()).split("\n")[:2]
            if port and path:
                return int(port), path
        except (FileNotFoundError, ValueError):
            pass
        await trio.sleep(0.05)


@asynccontextmanager
async def open_browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Start headless Chromium with its own profile under ``tmp_path``; stop it (its whole
    process group) afterwards. The caller's fail_after bounds the start."""
    exe = require_tool("chromium", "chromium")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    # a plain descriptor for the child's output (a local file: opening it does not block)
    log = os.open(tmp_path / "chromium.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    proc = await trio.lowlevel.open_process(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        port, path = await _devtools_address(profile, proc)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target=path)))
        while True:
            ws.receive_data(await stream.receive_some(1 << 16))
            events = list(ws.events())
            if events:
                assert isinstance(events[0], AcceptConnection), events
                break
        browser = Browser(stream, ws)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(browser._reader)
            try:
                yield browser
            finally:
                nursery.cancel_scope.cancel()
                await trio.aclose_forcefully(stream)
    finally:
        with trio.CancelScope(shield=True):
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the group we started: browser + helpers
            except ProcessLookupError:
                pass
            with trio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            os.close(log)
