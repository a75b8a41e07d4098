# The HTTP client (gateway.client) against the REAL gateway on 127.0.0.1 port 0: keep-alive and
# the pool, idle expiry and closed connections, the total deadline, abort, redirects and what
# crosses origins, bodies (bytes, files, iterators), streamed responses, progress, the body cap,
# JSON-seq values, the seeds' request object (notify fall-through, events, error codes), bearer
# tokens, TLS and the Unix socket.
from __future__ import annotations

import json
import os
from typing import Any

import pytest
import trio
import trio.testing
import trustme

from gateway import App, Request, Response
from gateway.app.auth import hash_token
from gateway.client import (
    Aborted,
    Client,
    ConnectError,
    Forbidden,
    InvalidJSON,
    NotFound,
    RequestTimeout,
    ResponseTooLarge,
    StatusError,
    TooManyRedirects,
)
from gateway.client.request import Progress
from tests.helpers import running

TOKEN = "client-test-token"


def client_app() -> tuple[App, dict[str, Any]]:
    app = App()
    state: dict[str, Any] = {"release": trio.Event(), "seq_sent": 0}

    @app.get("/hello")
    async def hello(req: Request, res: Response) -> None:
        res.set("Content-Type", "text/plain")
        await res.send("hello")

    @app.route(["GET", "POST", "PUT", "PATCH", "DELETE"], "/method")
    async def method(req: Request, res: Response) -> None:
        body = await req.read()
        await res.json(
            {
                "method": req.method,
                "body": body.decode("latin-1"),
                "auth": req.get("authorization"),
                "ctype": req.get("content-type"),
                "xrw": req.get("x-requested-with"),
                "query": req.query,
            }
        )

    @app.post("/count", max_body_bytes=64 << 20)
    async def count(req: Request, res: Response) -> None:
        n = 0
        chunked = req.get("transfer-encoding") == "chunked"
        async for chunk in req:
            n += len(chunk)
        await res.json({"bytes": n, "chunked": chunked, "length": req.get("content-length")})

    @app.get("/bytes/:n")
    async def nbytes(req: Request, res: Response) -> None:
        n = int(req.params["n"])
        res.set("Content-Type", "application/octet-stream")
        if req.query.get("chunked"):
            while n > 0:
                await res.write(b"x" * min(n, 10000))
                n -= 10000
            await res.end()
        else:
            await res.send(b"x" * n)

    @app.get("/seq/:n")
    async def seq(req: Request, res: Response) -> None:
        async with res.json_seq() as w:
            for i in range(int(req.params["n"])):
                await w.send({"i": i})
                state["seq_sent"] = i + 1
                if req.query.get("wait") and i == 0:
                    await state["release"].wait()

    @app.get("/rawseq")
    async def rawseq(req: Request, res: Response) -> None:
        res.set("Content-Type", "application/json-seq")
        await res.write(b'\x1e{"a":1}\n\x1e{bad\n\x1e[2]\n\x1e42')
        await res.end()

    @app.get("/ndjson")
    async def ndjson(req: Request, res: Response) -> None:
        res.set("Content-Type", "application/x-ndjson")
        await res.send(b'{"a":1}\n\n[1,2]\nnope\n"s"')

    @app.get("/badjson")
    async def badjson(req: Request, res: Response) -> None:
        res.set("Content-Type", "application/json")
        await res.send(b"{bad")

    @app.get("/status/:code")
    async def status(req: Request, res: Response) -> None:
        await res.status(int(req.params["code"])).json({"code": int(req.params["code"])})

    @app.get("/slow")
    async def slow(req: Request, res: Response) -> None:
        await trio.sleep(100)
        await res.send("late")

    @app.get("/dribble")
    async def dribble(req: Request, res: Response) -> None:
        res.set("Content-Type", "text/plain")
        for _ in range(100):
            await res.write(b".")
            await trio.sleep(1)
        await res.end()

    @app.get("/redirect/:code")
    async def redirect(req: Request, res: Response) -> None:
        await res.redirect(int(req.params["code"]), req.query.get("to", "/method"))

    @app.post("/redirect/:code")
    async def redirect_post(req: Request, res: Response) -> None:
        await req.read()
        await res.redirect(int(req.params["code"]), req.query.get("to", "/method"))

    @app.get("/loop")
    async def loop(req: Request, res: Response) -> None:
        await res.redirect("/loop")

    @app.get("/admin", privileged=True)
    async def admin(req: Request, res: Response) -> None:
        await res.json({"mode": req.mode})

    return app, state


@pytest.fixture
def creds(tmp_path: Any) -> str:
    path = tmp_path / "credentials"
    path.write_text(f"{hash_token(TOKEN)} admin\n")
    os.chmod(path, 0o600)
    return str(path)


def base(server: Any, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.port}"


# -- keep-alive and the pool --------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            for _ in range(5):
                r = await client.get("/hello")
                assert (r.status, r.text, r.content_type) == (200, "hello", "text/plain")
            r = await client.head("/hello")  # no body, whatever the length says
            assert (r.status, r.content, r.headers["content-length"]) == (200, b"", "5")
            r = await client.get("/status/204")
            assert (r.status, r.content) == (204, b"")
            assert server.stats["accepted"] == 1
            assert client.statistics() == {"origins": 1, "open": 1, "idle": 1}


async def test_pool_is_bounded_and_waiters_get_a_connection() -> None:
    app, state = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server), max_connections=2) as client:
            results: list[int] = []

            async def one() -> None:
                async with client.stream("GET", "/seq/2?wait=1") as r:
                    results.append(len([v async for v in r.values()]))

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(one)
                await trio.testing.wait_all_tasks_blocked()
                # two requests hold the two connections; the third waits for one
                assert client.statistics()["open"] == 2
                assert server.stats["accepted"] == 2
                state["release"].set()
            assert results == [2, 2, 2]
            assert server.stats["accepted"] == 2


async def test_idle_connections_expire(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server), idle_timeout=1) as client:
            await client.get("/hello")
            await trio.sleep(0.5)
            await client.get("/hello")
            assert server.stats["accepted"] == 1
            await trio.sleep(2)  # the server (idle_timeout_s 5) still holds it; we don't
            await client.get("/hello")
            assert server.stats["accepted"] == 2


async def test_connection_closed_by_the_server_is_not_reused(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with (
            running(app) as server,
            Client(base(server), idle_timeout=60, retries=0) as client,
        ):
            await client.get("/hello")
            await trio.sleep(6)  # the test profile's idle_timeout_s is 5: the server closes
            await trio.testing.wait_all_tasks_blocked()
            r = await client.get("/hello")  # no retry allowed: the check found it closed
            assert r.text == "hello"
            assert server.stats["accepted"] == 2


async def test_connection_close_response_is_not_pooled() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            r = await client.get("/hello", headers={"Connection": "close"})
            assert r.text == "hello"
            assert client.statistics()["open"] == 0
            await client.get("/hello")
            assert server.stats["accepted"] == 2


# -- deadlines and abort ---------------------------------------------------------------------------


async def test_total_deadline_covers_the_wait_for_the_head(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server), timeout=5) as client:
            t0 = trio.current_time()
            with pytest.raises(RequestTimeout) as info:
                await client.get("/slow")
            assert info.value.code == 501
            assert trio.current_time() - t0 == pytest.approx(5)
            assert client.statistics()["open"] == 0  # discarded, not pooled half-way
            assert (await client.get("/hello")).text == "hello"


async def test_total_deadline_covers_the_body(autojump_clock: Any) -> None:
    # a server that dribbles one byte a second never trips a per-read timeout; ours is total
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server), timeout=3.5) as client:
            with pytest.raises(RequestTimeout):
                await client.get("/dribble")
            async with client.stream("GET", "/dribble") as r:
                got = b""
                with pytest.raises(RequestTimeout):
                    async for chunk in r.aiter_bytes():
                        got += chunk
                assert 2 <= len(got) <= 4
            assert client.statistics()["open"] == 0


async def test_cancelling_the_caller_discards_the_connection(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server)) as client:
            with trio.move_on_after(2):
                await client.get("/slow")
            assert client.statistics() == {"origins": 1, "open": 0, "idle": 0}
            async with client.stream("GET", "/bytes/300000?chunked=1") as r:
                async for _ in r.aiter_bytes():
                    break  # leaving half-read
            assert client.statistics()["open"] == 0
            assert (await client.get("/hello")).text == "hello"


async def test_request_abort_is_error_503(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server)) as client:
            seen: list[Any] = []
            req = client.new("GET", "/slow").on("abort", seen.append)
            async with trio.open_nursery() as nursery:

                async def go() -> None:
                    with pytest.raises(Aborted) as info:
                        await req
                    assert info.value.code == 503

                nursery.start_soon(go)
                await trio.sleep(1)
                req.abort()
            assert len(seen) == 1 and seen[0].code == 503
            assert client.statistics()["open"] == 0


# -- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "method", "expect"),
    [
        (301, "POST", "GET"),
        (302, "POST", "GET"),
        (303, "POST", "GET"),
        (303, "PUT", "GET"),
        (307, "POST", "POST"),
        (308, "POST", "POST"),
        (301, "GET", "GET"),
        (302, "PUT", "PUT"),
    ],
)
async def test_redirects_change_the_method_as_browsers(code: int, method: str, expect: str) -> None:
    app, _ = client_app()

    @app.put("/redirect/:code")
    async def redirect_put(req: Request, res: Response) -> None:
        await req.read()
        await res.redirect(int(req.params["code"]), "/method")

    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            r = await client.request(
                method, f"/redirect/{code}", content=b"payload" if method != "GET" else None
            )
            body = r.json()
            assert body["method"] == expect
            assert body["body"] == ("payload" if expect != "GET" else "")
            assert r.history == ((code, f"{base(server)}/redirect/{code}"),)
            assert r.url == f"{base(server)}/method"


async def test_redirect_to_another_origin_drops_credentials() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server:
            to = f"{base(server, 'localhost')}/method"
            async with Client(base(server), token="t0k") as client:
                same = await client.get("/redirect/302?to=/method")
                assert same.json()["auth"] == "Bearer t0k"
                other = await client.get(f"/redirect/302?to={to}")
                assert other.json()["auth"] is None
                own = await client.get(
                    f"/redirect/307?to={to}", headers={"Authorization": "Basic x"}
                )
                assert own.json()["auth"] is None


async def test_redirect_limits_and_opt_out() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server), max_redirects=3) as client:
            with pytest.raises(TooManyRedirects) as info:
                await client.get("/loop")
            assert info.value.code == 502
            r = await client.get("/redirect/302", follow_redirects=False)
            assert r.status == 302 and r.headers["location"] == "/method"

            async def body() -> Any:
                yield b"once"

            r = await client.post("/redirect/307", content=body())
            assert r.status == 307  # an iterator cannot be sent twice: the caller sees it


# -- bodies and streaming --------------------------------------------------------------------------


async def test_request_bodies_bytes_file_and_iterators(tmp_path: Any) -> None:
    app, _ = client_app()
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(300_000))
    with trio.fail_after(20):
        async with running(app) as server, Client(base(server)) as client:
            r = await client.post("/count", content=b"a" * 1000)
            assert r.json() == {"bytes": 1000, "chunked": False, "length": "1000"}
            with open(path, "rb") as f:  # noqa: ASYNC230 (a plain file: read in a thread)
                r = await client.post("/count", content=f)
            assert r.json() == {"bytes": 300_000, "chunked": False, "length": "300000"}
            async with await trio.open_file(path, "rb") as af:
                r = await client.post("/count", content=af)
            assert r.json()["bytes"] == 300_000

            async def agen() -> Any:
                for _ in range(10):
                    yield b"z" * 1000

            r = await client.post("/count", content=agen())
            assert r.json() == {"bytes": 10_000, "chunked": True, "length": None}
            r = await client.post("/count", content=iter([b"ab", b"cd"]))
            assert r.json()["bytes"] == 4
            r = await client.post("/method", json={"k": [1, 2]})
            assert json.loads(r.json()["body"]) == {"k": [1, 2]}
            assert r.json()["ctype"] == "application/json"
            r = await client.post("/method", data={"a": "1 2", "b": "é"})
            assert r.json()["body"] == "a=1+2&b=%C3%A9"
            r = await client.get("/method", params={"q": "x y", "n": [1, 2]})
            assert r.json()["query"] == {"q": "x y", "n": ["1", "2"]}


async def test_upload_and_download_progress() -> None:
    app, _ = client_app()
    with trio.fail_after(20):
        async with running(app) as server, Client(base(server)) as client:
            up: list[tuple[int, int | None]] = []
            down: list[tuple[int, int | None]] = []
            await client.post(
                "/count", content=b"u" * 200_000, on_upload=lambda n, t: up.append((n, t))
            )
            assert up[-1] == (200_000, 200_000) and len(up) == 4  # 64 KiB slices
            assert [n for n, _ in up] == sorted(n for n, _ in up)
            r = await client.get("/bytes/500000", on_download=lambda n, t: down.append((n, t)))
            assert len(r.content) == 500_000
            assert down[-1] == (500_000, 500_000) and len(down) > 1

            async def agen() -> Any:
                yield b"12345"
                yield b"678"

            up.clear()
            await client.post("/count", content=agen(), on_upload=lambda n, t: up.append((n, t)))
            assert up == [(5, None), (8, None)]


async def test_streamed_response_to_a_file_and_the_buffered_cap(tmp_path: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(20):
        async with running(app) as server, Client(base(server), max_body_bytes=100_000) as client:
            async with client.stream("GET", "/bytes/1000000?chunked=1") as r:
                n = await r.save(tmp_path / "out")
            assert n == 1_000_000 == (tmp_path / "out").stat().st_size
            assert client.statistics()["idle"] == 1  # read to the end: pooled again
            with pytest.raises(ResponseTooLarge) as info:
                await client.get("/bytes/100001")
            assert info.value.code == 502
            assert client.statistics()["open"] == 0
            r = await client.get("/bytes/100001", max_body_bytes=200_000)
            assert len(r.content) == 100_001
            with pytest.raises(ResponseTooLarge):
                await client.get("/bytes/150000?chunked=1")


async def test_json_seq_values_arrive_as_they_are_sent() -> None:
    app, state = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            async with client.stream("GET", "/seq/3?wait=1") as r:
                values = r.values()
                assert await values.__anext__() == {"i": 0}
                await trio.testing.wait_all_tasks_blocked()
                assert state["seq_sent"] == 1  # the server is still holding the rest
                state["release"].set()
                assert [v async for v in values] == [{"i": 1}, {"i": 2}]


async def test_json_seq_invalid_and_truncated_records_are_reported_and_skipped() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            errors: list[InvalidJSON] = []
            async with client.stream("GET", "/rawseq") as r:
                got = [v async for v in r.values(on_invalid=errors.append)]
            assert got == [{"a": 1}, [2]]
            assert [e.code for e in errors] == [520, 520]
            assert "truncated" in errors[1].message
            async with client.stream("GET", "/rawseq") as r:
                with pytest.raises(InvalidJSON):
                    [v async for v in r.values()]
            async with client.stream("GET", "/ndjson") as r:
                got = [v async for v in r.values(on_invalid=errors.append)]
            assert got == [{"a": 1}, [1, 2], "s"]


# -- the seeds' request object --------------------------------------------------------------------


async def test_notify_falls_through_specific_generic_catch_all() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            calls: list[str] = []

            def rec(name: str, stop: bool = False) -> Any:
                def handler(resp: Any) -> bool:
                    calls.append(f"{name}:{resp.status}")
                    return stop

                return handler

            def make(code: int, stop404: bool) -> Any:
                # registered catch-all first: order of kinds, not of registration, decides
                return (
                    client.new("GET", f"/status/{code}")
                    .notify(rec("any"))
                    .notify(400, rec("4xx"))
                    .notify(404, rec("404", stop404))
                    .notify(200, rec("200", True))
                )

            r = await make(404, True)
            assert calls == ["404:404"] and r.status == 404
            calls.clear()
            with pytest.raises(NotFound) as info:
                await make(404, False)  # nobody returned True and no error listener
            assert calls == ["404:404", "4xx:404", "any:404"] and info.value.code == 511
            calls.clear()
            r = await make(200, False)
            assert calls == ["200:200"] and r.data == {"code": 200} and r.type == "json"
            calls.clear()
            with pytest.raises(Forbidden) as finfo:
                await make(403, False)
            assert calls == ["4xx:403", "any:403"] and finfo.value.code == 510
            with pytest.raises(StatusError) as sinfo:
                await client.new("GET", "/status/500")
            assert sinfo.value.code == 504 and sinfo.value.status == 500

            async def async_handler(resp: Any) -> bool:
                await trio.lowlevel.checkpoint()
                return True

            r = await client.new("GET", "/status/409").notify(409, async_handler)
            assert r.status == 409


async def test_seed_002_events_and_codes() -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app) as server, Client(base(server)) as client:
            log: list[Any] = []
            r = await (
                client.new("GET", "/seq/3")
                .on("value", lambda v, resp: log.append(("value", v)))
                .on("done", lambda resp: log.append(("done", resp.data)))
                .on("error", lambda e: log.append(("error", e.code)))
                .notify("loadstart", lambda req: log.append("loadstart"))
                .notify("loadend", lambda resp: log.append("loadend"))
            )
            assert log == [
                "loadstart",
                ("value", {"i": 0}),
                ("value", {"i": 1}),
                ("value", {"i": 2}),
                ("done", {}),
                "loadend",
            ]
            assert r.last_error == 0
            log.clear()
            r = await (
                client.new("GET", "/status/404")
                .on("error", lambda e: log.append((e.code, e.response.status)))
                .on("done", lambda resp: log.append("done"))
            )
            assert log == [(511, 404)] and r.last_error == 511
            log.clear()
            await (
                client.new("GET", "/rawseq")
                .on("error", lambda e: log.append(e.code))
                .on("value", lambda v, resp: log.append(v))
            )
            assert log == [{"a": 1}, 520, [2], 520]
            with pytest.raises(InvalidJSON) as info:
                await client.new("GET", "/badjson")
            assert info.value.code == 520 and info.value.response.status == 200
            prog: list[Progress] = []
            await client.new("GET", "/bytes/200000").notify("progress", prog.append)
            assert prog[-1].loaded == prog[-1].total == 200_000
            assert all(p.length_computable for p in prog)


async def test_await_and_async_for_and_chained_configuration(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server)) as client:
            r = await (
                client.new("post", "/method")
                .json()
                .body({"x": 1})
                .header("X-Extra", "1")
                .params(q="v")
                .token("tk")
            )
            assert r.data["method"] == "POST" and json.loads(r.data["body"]) == {"x": 1}
            assert r.data["auth"] == "Bearer tk" and r.data["xrw"] == "XMLHttpRequest"
            assert r.data["query"] == {"q": "v"}
            r = await client.new("GET", "/method").identify(False)
            assert r.data["xrw"] is None
            assert [v async for v in client.new("GET", "/seq/2")] == [{"i": 0}, {"i": 1}]
            assert [v async for v in client.new("GET", "/status/200")] == [{"code": 200}]
            with pytest.raises(RequestTimeout) as info:
                await client.new("GET", "/slow").timeout_after(2)
            assert info.value.code == 501
            seen: list[int] = []
            r2 = (
                await client.new("GET", "/slow")
                .timeout_after(2)
                .on("timeout", lambda e: seen.append(e.code))
                .on("error", lambda e: None)
            )
            assert r2 is None and seen == [501]
            base_req = client.new("GET", "/status/201").notify(201, lambda r: True)
            again = base_req.copy()
            assert (await again).status == 201 and (await base_req.resend()).status == 201


async def test_transport_errors_carry_502(autojump_clock: Any) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    with trio.fail_after(100):
        async with Client(f"http://127.0.0.1:{port}", retries=2, retry_backoff=1) as client:
            t0 = trio.current_time()
            with pytest.raises(ConnectError) as info:
                await client.get("/x")
            assert info.value.code == 502
            assert trio.current_time() - t0 == pytest.approx(3)  # backoff 1 + 2
            with pytest.raises(ConnectError):
                await client.post("/x", content=b"1")  # nothing was sent: POST retried too


# -- credentials, TLS, Unix socket ----------------------------------------------------------------


async def test_bearer_token_reaches_privileged_routes(creds: str) -> None:
    app, _ = client_app()
    with trio.fail_after(10):
        async with running(app, server__credentials_file=creds) as server:
            async with Client(base(server)) as anon:
                assert (await anon.get("/admin")).status == 401
                with pytest.raises(Forbidden):
                    await anon.new("GET", "/admin").credentials("wrong")
            async with Client(base(server), token=TOKEN) as client:
                assert (await client.get("/admin")).json() == {"mode": "privilege"}


async def test_tls_verified_by_a_ca_file_and_refused_without(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    app, _ = client_app()
    with trio.fail_after(20):
        async with running(
            app, server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
        ) as server:
            url = f"https://localhost:{server.port}"
            async with Client(url, ca_file=str(ca_file)) as client:
                for _ in range(2):
                    assert (await client.get("/hello")).text == "hello"
                assert server.stats["accepted"] == 1
            async with Client(url, retries=0) as client:
                with pytest.raises(ConnectError):
                    await client.get("/hello")  # not signed by a CA the system trusts
            async with Client(url, verify=False) as client:
                assert (await client.get("/hello")).text == "hello"


async def test_unix_socket_transport(tmp_path: Any) -> None:
    app, _ = client_app()
    path = str(tmp_path / "gw.sock")
    with trio.fail_after(10):
        async with running(app, server__unix_path=path, server__unix_allowed_uids=str(os.getuid())):
            async with Client("http://device", unix_socket=path) as client:
                r = await client.get("/admin")
                assert r.json() == {"mode": "privilege"}  # the peer uid grants privilege


async def test_deadline_without_the_watchdog_and_errors_pass_through(autojump_clock: Any) -> None:
    # a Client used without `async with` has no watchdog: cancel scopes keep the deadline
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server:
            client = Client(base(server), timeout=5)
            try:
                assert not client.pool.watching
                with pytest.raises(RequestTimeout):
                    await client.get("/slow")
                async with client.stream("GET", "/dribble") as r:
                    with pytest.raises(RequestTimeout):
                        async for _ in r.aiter_bytes():
                            pass
                assert (await client.get("/hello")).text == "hello"
            finally:
                await client.aclose()
            with pytest.raises(KeyError):  # the block's own error, not an exception group
                async with Client(base(server)) as watched:
                    assert watched.pool.watching
                    raise KeyError("mine")


async def test_watchdog_closes_idle_connections_by_itself(autojump_clock: Any) -> None:
    app, _ = client_app()
    with trio.fail_after(100):
        async with running(app) as server, Client(base(server), idle_timeout=2) as client:
            await client.get("/hello")
            assert client.statistics()["idle"] == 1
            await trio.sleep(3)  # no request since: the watchdog closed it on time
            assert client.statistics() == {"origins": 1, "open": 0, "idle": 0}
