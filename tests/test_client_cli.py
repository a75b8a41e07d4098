# `gateway request` run as a real process against the real gateway (piped: the body alone on
# stdout, the head on stderr; on a terminal: pretty JSON and a progress bar), its exit codes,
# --socket, --form, @file and --output; and the blocking facade (gateway.client.sync) from
# plain threads.
from __future__ import annotations

import json
import os
import pty
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from gateway import App, Request, Response
from gateway.client import NotFound, sync
from gateway.client.cli import EXIT_CODES, exit_code, parse
from tests.helpers import running

ROOT = Path(__file__).resolve().parent.parent


def cli_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(req: Request, res: Response) -> None:
        res.set("Content-Type", "text/plain")
        await res.send("hello")

    @app.route(["GET", "POST", "PUT", "DELETE"], "/echo")
    async def echo(req: Request, res: Response) -> None:
        await res.json(
            {
                "method": req.method,
                "ctype": req.get("content-type"),
                "body": (await req.read()).decode(),
                "query": req.query,
                "x": req.get("x-test"),
                "auth": req.get("authorization"),
                "socket": req.is_socket,
            }
        )

    @app.get("/status/:code")
    async def status(req: Request, res: Response) -> None:
        await res.status(int(req.params["code"])).json({"code": int(req.params["code"])})

    @app.get("/seq")
    async def seq(req: Request, res: Response) -> None:
        res.set("Content-Type", "application/json-seq")
        await res.write(b'\x1e{"a":1}\n\x1e{bad\n\x1e[2]\n')
        await res.end()

    @app.get("/slow")
    async def slow(req: Request, res: Response) -> None:
        await trio.sleep(30)
        await res.send("late")

    @app.get("/bytes/:n")
    async def nbytes(req: Request, res: Response) -> None:
        res.set("Content-Type", "application/octet-stream")
        await res.send(b"b" * int(req.params["n"]))

    @app.post("/count", max_body_bytes=16 << 20)
    async def count(req: Request, res: Response) -> None:
        n = 0
        async for chunk in req:
            n += len(chunk)
        await res.json({"bytes": n})

    return app


async def gw(*args: str, tty: bool = False) -> tuple[int, str, str]:
    """Run `python -m gateway request ARGS`; (exit status, stdout, stderr)."""
    cmd = [sys.executable, "-m", "gateway", "request", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not tty:
        result = await trio.run_process(
            cmd, capture_stdout=True, capture_stderr=True, check=False, env=env
        )
        return result.returncode, result.stdout.decode(), result.stderr.decode()
    master, slave = pty.openpty()
    try:
        proc = await trio.lowlevel.open_process(cmd, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        out = b""
        while True:
            try:
                data = await trio.to_thread.run_sync(os.read, master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        code = await proc.wait()
    finally:
        os.close(master)
    return code, out.decode(), ""


async def test_piped_output_body_on_stdout_head_on_stderr() -> None:
    with trio.fail_after(60):
        async with running(cli_app()) as server:
            p = f":{server.port}"
            code, out, err = await gw(f"{p}/hello")
            assert (code, out) == (0, "hello")
            assert err.startswith("HTTP/1.1 200 OK\n") and "content-type: text/plain" in err
            code, out, _ = await gw(
                f"{p}/echo", "a=1", "n:=[1,2]", "X-Test:yes", "q==v w", "--token", "tk"
            )
            body = json.loads(out)
            assert code == 0 and body["method"] == "POST"
            assert json.loads(body["body"]) == {"a": "1", "n": [1, 2]}
            assert (body["x"], body["auth"], body["query"]) == ("yes", "Bearer tk", {"q": "v w"})
            code, out, _ = await gw("PUT", f"{p}/echo", "a=1", "b=x y", "--form")
            body = json.loads(out)
            assert body["method"] == "PUT" and body["body"] == "a=1&b=x+y"
            assert body["ctype"] == "application/x-www-form-urlencoded"


async def test_exit_codes() -> None:
    with trio.fail_after(60):
        async with running(cli_app()) as server:
            p = f":{server.port}"
            for status, expect in ((404, 21), (403, 20), (500, 14), (302, 14), (201, 0)):
                code, _, _ = await gw(f"{p}/status/{status}")
                assert code == expect, status
            code, out, err = await gw(f"{p}/slow", "--timeout", "0.2")
            assert code == 11 and "error 501" in err
            code, out, err = await gw(f"{p}/seq")
            assert code == 30
            assert out.splitlines() == ['{"a": 1}', "[2]"]  # one record per line, in order
            assert "skipped" in err
        code, _, err = await gw(f":{server.port}/hello", "--timeout", "2")  # server gone
        assert code == 12 and "error 502" in err
        for bad in (["--bogus", ":1/x"], [], [":1/x", "novalue"], [":1/x", "n:=[bad"]):
            code, _, err = await gw(*bad)
            assert code == 2, bad
    assert EXIT_CODES == {501: 11, 502: 12, 503: 13, 504: 14, 510: 20, 511: 21, 520: 30}
    assert exit_code(None, 204) == 0 and exit_code(NotFound("x")) == 21


async def test_socket_file_upload_and_output(tmp_path: Any) -> None:
    src = tmp_path / "up.bin"
    src.write_bytes(b"u" * 300_000)
    dst = tmp_path / "down.bin"
    with trio.fail_after(60):
        async with running(cli_app()) as server:
            p = f":{server.port}"
            code, out, err = await gw("POST", f"{p}/echo", "k:=5", "X-Test:s", "--socket")
            body = json.loads(out)
            assert code == 0 and err.startswith("JWR 200")
            assert body["socket"] is True and json.loads(body["body"]) == {"k": 5}
            assert body["x"] == "s"
            code, out, _ = await gw(f"{p}/status/404", "--socket")
            assert code == 21
            code, out, _ = await gw(f"{p}/count", f"@{src}")
            assert code == 0 and json.loads(out) == {"bytes": 300_000}
            code, out, _ = await gw(f"{p}/bytes/200000", "--output", str(dst))
            assert code == 0 and out == "" and dst.read_bytes() == b"b" * 200_000


async def test_on_a_terminal_json_is_pretty_and_downloads_show_progress(tmp_path: Any) -> None:
    src = tmp_path / "up.bin"
    src.write_bytes(b"u" * 2_000_000)
    with trio.fail_after(60):
        async with running(cli_app()) as server:
            code, out, _ = await gw(f":{server.port}/echo", tty=True)
            assert code == 0
            assert "HTTP/1.1 200 OK" in out and '\n  "method": "GET",' in out.replace("\r\n", "\n")
            code, out, _ = await gw(
                f":{server.port}/bytes/3000000", "--output", os.devnull, tty=True
            )
            assert code == 0 and "download [" in out and "100% 2.9 MiB/2.9 MiB" in out
            code, out, _ = await gw(f":{server.port}/count", f"@{src}", tty=True)
            assert code == 0 and "upload [" in out and "100% 1.9 MiB/1.9 MiB" in out


def test_request_items_grammar() -> None:
    opts = parse(["DELETE", "host:9/x", "A:b=c", "k=v:w", 'j:={"a":1}', "q==1", "@f"])
    assert opts is not None
    assert (opts.method, opts.url) == ("DELETE", "http://host:9/x")
    assert opts.headers == [("A", "b=c")] and opts.params == [("q", "1")]
    assert opts.fields == {"k": "v:w", "j": {"a": 1}} and opts.body_file == "f"
    assert parse([":8/x"]).method == "GET"  # type: ignore[union-attr]
    assert parse([":8/x", "a=1"]).method == "POST"  # type: ignore[union-attr]


# -- the blocking facade -------------------------------------------------------------------------


@contextmanager
def gateway_in_a_thread() -> Iterator[int]:
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        box["token"] = trio.lowlevel.current_trio_token()
        box["stop"] = trio.Event()
        async with running(cli_app()) as server:
            box["port"] = server.port
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["port"]
    finally:
        trio.from_thread.run_sync(box["stop"].set, trio_token=box["token"])
        thread.join(10)


def test_sync_facade() -> None:
    with gateway_in_a_thread() as port:
        base = f"http://127.0.0.1:{port}"
        r = sync.get(f"{base}/hello")
        assert (r.status, r.text) == (200, "hello")
        r = sync.post(f"{base}/echo", json={"a": 1}, client={"token": "tk"})
        assert r.json()["auth"] == "Bearer tk"
        with sync.Client(base) as client:
            assert [client.get("/hello").text for _ in range(3)] == ["hello"] * 3
            assert client.put("/echo", content=b"x").json()["method"] == "PUT"
            with pytest.raises(NotFound):
                client.get("/status/404").raise_for_status()
        with sync.Socket(base) as io:
            assert io.get("/hello").body == "hello"
            assert io.post("/echo", {"z": 1}).body["socket"] is True
