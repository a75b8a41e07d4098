# App-lifetime background tasks (`@app.background`): started once the server listens, given the
# app, cancelled when the server stops; a failing one is logged and counted, and the server keeps
# serving. The demo of issue "trio in handlers": a poller that pushes readings.
from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from gateway import App
from tests.helpers import request, running


async def test_a_background_task_runs_for_the_servers_lifetime(autojump_clock: Any) -> None:
    app = App()
    readings: list[int] = []
    cancelled = trio.Event()

    @app.background
    async def poll(app_: App) -> None:
        assert app_ is app
        try:
            while True:
                readings.append(len(readings) + 1)
                await trio.sleep(1)
        finally:
            cancelled.set()

    @app.get("/reading")
    async def reading(req, res):  # type: ignore[no-untyped-def]
        await res.json({"last": readings[-1] if readings else None})

    with trio.fail_after(60):
        async with running(app) as server:
            await trio.sleep(3.5)
            reply = await request(server, "GET", "/reading")
            assert reply.status == 200 and reply.json() == {"last": 4}
            assert not cancelled.is_set()
        assert cancelled.is_set()  # the server's exit cancelled it


async def test_a_background_task_reads_a_blocking_sensor_in_a_thread() -> None:
    app = App()
    first = trio.Event()
    values: list[bytes] = []

    def read_sensor() -> bytes:  # blocking I/O, as a real sensor read is
        with open("/dev/zero", "rb") as dev:
            return dev.read(4)

    @app.background
    async def poll(app_: App) -> None:
        values.append(await trio.to_thread.run_sync(read_sensor))
        first.set()
        await trio.sleep_forever()

    @app.get("/reading")
    async def reading(req, res):  # type: ignore[no-untyped-def]
        await first.wait()
        await res.json({"bytes": len(values[0])})

    with trio.fail_after(10):
        async with running(app) as server:
            reply = await request(server, "GET", "/reading")
            assert reply.status == 200 and reply.json() == {"bytes": 4}


async def test_a_failing_background_task_is_logged_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.background
    async def broken(app_: App) -> None:
        raise OSError(121, "Remote I/O error")  # an I2C device that is not there

    @app.get("/")
    async def index(req, res):  # type: ignore[no-untyped-def]
        await res.send("up")

    with trio.fail_after(5), caplog.at_level(logging.ERROR, "gateway"):
        async with running(app) as server:
            await trio.testing.wait_all_tasks_blocked()
            reply = await request(server, "GET", "/")
            assert reply.status == 200 and reply.body == b"up"
            assert app.background_failures == 1
            assert app.statistics()["background_failures"] == 1
    assert any("background task broken failed" in r.getMessage() for r in caplog.records)
