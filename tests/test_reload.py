# Profile reloads (SIGHUP, systemctl reload) on a running server: a reload is a transaction
# (a refused one changes nothing: settings, memory budget and its counters, credentials, what new
# connections get), sd_notify says RELOADING=1 then READY=1 either way, and a valid one resizes
# the memory budget in place: the bodies in flight stay charged to it, so a smaller budget
# refuses new bodies (503) until enough of them have finished.
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from gateway import App, Request, Response
from gateway.app.auth import hash_token
from gateway.errors import ConfigError
from gateway.server import runner
from gateway.server.systemd import Notifier
from tests.helpers import Client, connect, make_settings, request, running

MIB = 1024 * 1024


def _credentials(path: Path, token: str, mode: int) -> str:
    path.write_text(hash_token(token) + " admin\n")
    path.chmod(mode)
    return str(path)


def _budget(app: App) -> dict[str, int]:
    stats: dict[str, int] = app.statistics()["memory"]["body_budget"]
    return stats


# -- a refused reload changes nothing ---------------------------------------------------------------
async def test_a_refused_reload_changes_nothing(tmp_path: Path) -> None:
    app = App()
    held, release = trio.Event(), trio.Event()

    @app.post("/hold")
    async def hold(req: Request, res: Response) -> None:
        data = await req.read()
        held.set()
        await release.wait()
        await res.json({"len": len(data)})

    @app.post("/read")
    async def read(req: Request, res: Response) -> None:
        await res.json({"len": len(await req.read())})

    running_creds = _credentials(tmp_path / "creds", "old-token", 0o600)
    unsafe_creds = _credentials(tmp_path / "creds-unsafe", "new-token", 0o644)
    small = {"limits__privileged__max_cache_bytes": "65536"}  # cache limits must fit budgets
    before = make_settings(
        memory__body_budget_bytes=100_000, server__credentials_file=running_creds, **small
    )
    # everything differs, so that any part applied before the refusal would show
    refused = make_settings(
        memory__body_budget_bytes=200_000,
        server__credentials_file=unsafe_creds,
        **small,
        limits__user__max_body_bytes=1000,
        limits__user__max_cache_bytes=1000,
        server__allowed_networks="10.0.0.0/8",
        http__max_header_count=4,
    )
    old = {"Authorization": "Bearer old-token"}
    new = {"Authorization": "Bearer new-token"}
    with trio.fail_after(10):
        async with running(app, before) as server, trio.open_nursery() as nursery:

            async def holder() -> None:
                assert (await request(server, "POST", "/hold", body=b"h" * 60_000)).status == 200

            nursery.start_soon(holder)
            await held.wait()
            assert (await request(server, "POST", "/read", body=b"r" * 60_000)).status == 503
            budget, credentials = app.budget, app.credentials
            figures = _budget(app)
            assert figures["used_bytes"] == 60_000 and figures["rejections"] == 1
            limits, networks = server.http_limits, server._networks

            with pytest.raises(ConfigError, match="must not be accessible by other users"):
                server.reload(refused)

            assert app.settings is before and server.settings is before
            assert app.budget is budget and _budget(app) == figures
            assert app.credentials is credentials
            assert server.http_limits is limits and server._networks is networks
            # and as a client sees it, on new connections
            stats = await request(server, "GET", "/_gateway/stats", list(old.items()))
            assert stats.status == 200 and stats.json()["memory"]["body_budget"] == figures
            assert (
                await request(server, "GET", "/_gateway/stats", list(new.items()))
            ).status == 403
            assert (await request(server, "POST", "/read", body=b"r" * 5000)).json() == {
                "len": 5000
            }
            release.set()
    assert app.budget.used == app.budget.pledged == 0


def _receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _messages(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    while True:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return out
        out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))


async def test_sighup_reload_says_reloading_then_ready_and_refuses_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    creds = _credentials(tmp_path / "creds", "token", 0o600)
    profile = tmp_path / "board.toml"
    profile.write_text(
        'extends = "test"\n[memory]\nbody_budget_bytes = 4194304\n'
        f'[server]\ncredentials_file = "{creds}"\n'
    )
    app = App()
    receiver = _receiver(tmp_path / "notify.sock")
    notifier = Notifier(str(tmp_path / "notify.sock"))
    with receiver, notifier, trio.fail_after(10):
        async with running(app, make_settings(server__credentials_file=creds)) as server:
            # what runner.run does on SIGHUP: load the profile again, reload
            runner._reload(server, notifier, str(profile), {})
            reloading, ready = _messages(receiver)
            assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
            assert ready == {"READY": "1", "STATUS": "reloaded profile board"}
            assert app.budget.total == 4 * MIB
            assert (app.metrics.reloads_applied, app.metrics.reloads_refused) == (1, 0)
            settings, credentials = app.settings, app.credentials

            # the same file, made readable by others, and a new budget: refused whole
            os.chmod(creds, 0o644)
            profile.write_text(profile.read_text().replace("4194304", "8388608"))
            runner._reload(server, notifier, str(profile), {})
            reloading, ready = _messages(receiver)
            assert reloading["RELOADING"] == "1"
            assert ready["READY"] == "1" and ready["STATUS"].startswith("reload refused: ")
            assert "must not be accessible by other users" in ready["STATUS"]
            assert app.settings is settings and app.credentials is credentials
            assert app.budget.total == 4 * MIB
            assert (app.metrics.reloads_applied, app.metrics.reloads_refused) == (1, 1)

            # a failure that is not the profile's (a bug) still ends the reload with READY=1
            def broken(settings: Any) -> None:
                raise RuntimeError("boom")

            monkeypatch.setattr(server, "reload", broken)
            runner._reload(server, notifier, str(profile), {})
            reloading, ready = _messages(receiver)
            assert ready == {"READY": "1", "STATUS": "reload failed: RuntimeError: boom"}
            assert (app.metrics.reloads_applied, app.metrics.reloads_refused) == (1, 2)


# -- a valid reload keeps the bodies in flight ------------------------------------------------------
N = 24  # cached uploads in flight
SIZE = 512 * 1024  # each declares this much (Content-Length) ...
HALF = SIZE // 2  # ... and has sent this much when the budget shrinks
PROBE = 100_000  # a new cached upload


def upload_app(n: int) -> tuple[App, trio.Event]:
    app = App()
    halfway = trio.Event()
    count = [0]

    @app.post("/up")
    async def up(req: Request, res: Response) -> None:
        req.enable_cache()
        got = 0
        async for chunk in req:
            got += len(chunk)
            if got == HALF:  # the client stops here until the test lets it go on
                count[0] += 1
                if count[0] == n:
                    halfway.set()
        await res.json({"len": len(req.body)})

    return app, halfway


async def test_a_smaller_budget_under_load_keeps_every_body_in_flight() -> None:
    app, halfway = upload_app(N)
    common = {
        "limits__user__max_body_bytes": str(MIB),
        "limits__user__max_cache_bytes": str(MIB),
        "server__max_connections": "64",
    }
    large = make_settings(memory__body_budget_bytes=str(16 * MIB), **common)
    small = make_settings(memory__body_budget_bytes=str(8 * MIB), **common)
    with trio.fail_after(60):
        async with running(app, large) as server:
            clients = [Client(await connect(server)) for _ in range(N)]
            for client in clients:
                await client.send("POST", "/up", [("content-length", str(SIZE))], end=False)
                await client.send_body(b"u" * HALF)
            await halfway.wait()
            budget = app.budget
            before = _budget(app)
            assert (before["used_bytes"], before["pledged_bytes"]) == (N * HALF, N * HALF)

            server.reload(small)  # 12 MiB held, 8 MiB allowed

            after = _budget(app)
            assert (after["used_bytes"], after["pledged_bytes"]) == (N * HALF, N * HALF)
            assert after == {
                **before,
                "total_bytes": 8 * MIB,
                "free_bytes": 0,
                "over_bytes": N * SIZE - 8 * MIB,
            }
            assert app.budget is budget  # the requests in flight give back to this one
            rejections = after["rejections"]

            async def finish(client: Client) -> None:
                await client.send_body(b"u" * HALF, end=True)
                assert (await client.response()).json() == {"len": SIZE}
                await client.aclose()
                await trio.testing.wait_all_tasks_blocked()  # the server has released it

            # 8 finish: 16 x 512 KiB = 8 MiB still held, no room for anything new
            for client in clients[:8]:
                await finish(client)
            assert (budget.used, budget.pledged) == (16 * HALF, 16 * HALF)
            assert (await request(server, "POST", "/up", body=b"p" * PROBE)).status == 503
            assert budget.rejections == rejections + 1
            # one more finishes: 7.5 MiB held, room for the probe again
            await finish(clients[8])
            assert (await request(server, "POST", "/up", body=b"p" * PROBE)).json() == {
                "len": PROBE
            }
            for client in clients[9:]:
                await finish(client)
            assert (budget.used, budget.pledged) == (0, 0)
            final = _budget(app)
    # the peak was kept, then passed once by the first upload to finish (all others half-sent)
    assert before["peak_bytes"] == N * HALF and final["peak_bytes"] == (N + 1) * HALF
    assert final["over_bytes"] == 0
    assert final["free_bytes"] == 8 * MIB and final["rejections"] == rejections + 1
