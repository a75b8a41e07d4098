# The HTTP client against a REAL Node `http` server (tests/node/http_server.js): keep-alive,
# chunked bodies, a body that dribbles past the total deadline, a connection cut mid-body or
# closed without a response (retried for GET, never for POST), a server that closes idle
# connections, a JSON-seq stream whose records arrive one by one, redirects.
from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from gateway.client import Client, RequestTimeout, TransportError
from tests.conftest import NODE_DIR

pytestmark = pytest.mark.node


@asynccontextmanager
async def node_server(node: str) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [node, str(NODE_DIR / "http_server.js")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1000)  # type: ignore[union-attr]
                assert chunk, "http_server.js exited before listening"
                line += chunk
        try:
            yield f"http://127.0.0.1:{json.loads(line)['port']}"
        finally:
            await proc.stdin.aclose()  # type: ignore[union-attr]
            with trio.move_on_after(5):
                await proc.wait()
            proc.kill()


async def test_keep_alive_and_chunked_bodies(node: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base) as client:
            for _ in range(5):
                assert (await client.get("/hello")).text == "hello"
            r = await client.get("/chunked/50")
            assert r.headers.get("transfer-encoding") == "chunked"
            assert len(r.content) == 50_000 and r.content[:1000] == b"a" * 1000
            async with client.stream("GET", "/chunked/20") as s:
                sizes = [len(c) async for c in s.aiter_bytes()]
            assert sum(sizes) == 20_000

            async def gen() -> Any:
                yield b"abc"
                yield b"def"

            r = await client.post("/method", content=gen())
            assert r.json() == {"method": "POST", "body": "abcdef", "auth": None, "te": "chunked"}
            assert (await client.get("/stats")).json() == {"connections": 1}


async def test_dribbling_body_hits_the_total_deadline(node: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base) as client:
            with pytest.raises(RequestTimeout) as info:
                await client.get("/dribble", timeout=0.3)
            assert info.value.code == 501
            assert client.statistics()["open"] == 0
            assert (await client.get("/hello")).text == "hello"


async def test_cut_mid_body_is_a_transport_error(node: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base) as client:
            with pytest.raises(TransportError) as info:
                await client.get("/cut")
            assert info.value.code == 502
            async with client.stream("GET", "/cut") as r:
                got = b""
                with pytest.raises(TransportError):
                    async for chunk in r.aiter_bytes():
                        got += chunk
            assert got == b"x" * 100
            assert (await client.get("/hello")).text == "hello"


async def test_no_response_is_retried_for_get_never_for_post(node: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base, retry_backoff=0.01) as client:
            r = await client.get("/flaky/a")
            assert r.json() == {"key": "a", "hits": 2, "method": "GET"}
            with pytest.raises(TransportError) as info:
                await client.post("/flaky/b", content=b"x")
            assert "without a response" in info.value.message
            r = await client.post("/flaky/b", content=b"x")  # the server saw it once already
            assert r.json()["hits"] == 2
        async with Client(base, retries=0) as strict:
            with pytest.raises(TransportError):
                await strict.get("/flaky/c")


async def test_connections_the_server_closes_are_not_reused(node: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base, retry_backoff=0.01) as client:
            for _ in range(10):
                assert (await client.get("/close-after")).json() == {"ok": True}
            assert (await client.get("/stats")).json()["connections"] == 11


async def test_json_seq_records_arrive_one_by_one(node: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base) as client:
            async with client.stream("GET", "/seq") as r:
                values = r.values()
                assert await values.__anext__() == {"n": 1}
                # the server sends nothing more until told to: the first record came alone
                assert (await client.get("/release")).json() == {"released": True}
                assert [v async for v in values] == [{"n": 2}, {"n": 3}]
            got: list[Any] = []
            first = trio.Event()

            def on_value(value: Any, resp: Any) -> None:
                got.append(value)
                first.set()

            req = client.new("GET", "/seq").on("value", on_value)

            async def release_when_first_arrives() -> None:
                await first.wait()
                assert got == [{"n": 1}]
                await client.get("/release")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(release_when_first_arrives)
                await req
            assert got == [{"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.parametrize(
    ("code", "expect"), [(301, "GET"), (302, "GET"), (303, "GET"), (307, "POST"), (308, "POST")]
)
async def test_redirects_from_node(node: str, code: int, expect: str) -> None:
    with trio.fail_after(30):
        async with node_server(node) as base, Client(base, token="tk") as client:
            r = await client.post(f"/redirect/{code}", content=b"data")
            assert r.json()["method"] == expect
            assert r.json()["body"] == ("data" if expect == "POST" else "")
            assert r.json()["auth"] == "Bearer tk"
            assert r.history == ((code, f"{base}/redirect/{code}"),)
