# The handler deadline (gateway.app.deadline): [app] handler_timeout_s and a route's timeout=
# option over real loopback sockets on trio's autojump clock. A passed deadline cancels the
# handlers (their finally blocks run) and answers 504, or closes a response already started and
# logs it incomplete; a route's option moves the profile's deadline (longer, shorter, none);
# Sails virtual requests get the 504 in their JWR; the default path makes no scope.
from __future__ import annotations

import logging
from typing import Any

import h11
import pytest
import trio
import trio.testing

from gateway import App, HTTPError, Request, Response
from gateway.client.socket import open_socket
from tests.helpers import Client, connect, read_all, request, running


def deadline_app(seen: dict[str, Any]) -> App:
    """Routes that hang, stream then hang, or take a given time; ``seen`` records what ran."""
    app = App()
    seen.setdefault("finally", [])
    seen.setdefault("errors", [])

    async def hang(req: Request, res: Response) -> None:
        seen["started"] = trio.current_time()
        try:
            await trio.sleep_forever()
        finally:  # a cancelled handler's clean-up runs (a sensor released, a lock freed)
            seen["finally"].append(req.path)
            seen["ended"] = trio.current_time()

    async def take(req: Request, res: Response) -> None:
        await trio.sleep(float(req.query["s"]))
        await res.json({"took": float(req.query["s"])})

    app.get("/hang", hang)  # the profile's deadline, if any
    app.get("/route-hang", hang, timeout="2s")
    app.get("/take", take)
    app.get("/take-short", take, timeout=1)
    app.get("/take-long", take, timeout="1m")
    app.get("/take-none", take, timeout=None)

    @app.get("/stream", timeout="500ms")
    async def stream(req: Request, res: Response) -> None:
        await res.write("first part")
        try:
            await trio.sleep_forever()
        finally:
            seen["finally"].append(req.path)

    async def errors(err: Any, req: Request, res: Response, next: Any) -> None:
        seen["errors"].append(err)  # an app's error handler never sees a passed deadline
        await next(err)

    app.use(errors)
    return app


async def test_a_route_deadline_cancels_the_handler_and_answers_504(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict[str, Any] = {}
    with trio.fail_after(60), caplog.at_level(logging.WARNING, "gateway.app"):
        async with running(deadline_app(seen)) as server:
            reply = await request(server, "GET", "/route-hang")
            assert reply.status == 504
            assert reply.json() == {"error": "Gateway Timeout", "status": 504}
            assert seen["finally"] == ["/route-hang"]
            assert seen["ended"] - seen["started"] == pytest.approx(2.0, abs=0.01)
            text = await request(server, "GET", "/route-hang", [("accept", "text/html")])
            assert (text.status, text.text) == (504, "Gateway Timeout")
            # no deadline in the profile: the same handler without the option is not limited
            with trio.move_on_after(30) as waited:
                await request(server, "GET", "/hang")
            assert waited.cancelled_caught
    assert seen["errors"] == []
    assert [r.getMessage() for r in caplog.records if "deadline" in r.getMessage()] == [
        "GET /route-hang: no response within the 2 s handler deadline: handlers cancelled"
    ] * 2


async def test_the_profile_deadline_covers_every_route_and_middleware(autojump_clock: Any) -> None:
    seen: dict[str, Any] = {}
    app = deadline_app(seen)
    slow = App()

    async def stuck_middleware(req: Request, res: Response, next: Any) -> None:
        try:
            await trio.sleep_forever()  # a middleware waiting on a device that never answers
        finally:
            seen["finally"].append("middleware")

    slow.use(stuck_middleware)

    with trio.fail_after(60):
        async with running(app, app__handler_timeout_s="3s") as server:
            start = trio.current_time()
            reply = await request(server, "GET", "/hang")
            assert reply.status == 504 and trio.current_time() - start == pytest.approx(3, 0.01)
            assert seen["finally"] == ["/hang"]
            assert (await request(server, "GET", "/take?s=2.5")).json() == {"took": 2.5}
        async with running(slow, app__handler_timeout_s=1.5) as server:
            assert (await request(server, "GET", "/anything")).status == 504
    assert seen["finally"] == ["/hang", "middleware"] and seen["errors"] == []


@pytest.mark.parametrize(
    ("path", "seconds", "status"),
    [
        ("/take-short", 0.9, 200),  # the route's 1 s, shorter than the profile's 10 s
        ("/take-short", 1.5, 504),
        ("/take-long", 30.0, 200),  # the route's 1 min, longer than the profile's 10 s
        ("/take-long", 61.0, 504),
        ("/take-none", 3000.0, 200),  # no deadline at all: a stream, a long download
        ("/take", 9.5, 200),  # no option: the profile's 10 s
        ("/take", 10.5, 504),
    ],
)
async def test_a_route_option_overrides_the_profile(
    autojump_clock: Any, path: str, seconds: float, status: int
) -> None:
    with trio.fail_after(4000):
        async with running(deadline_app({}), app__handler_timeout_s="10s") as server:
            start = trio.current_time()
            reply = await request(server, "GET", f"{path}?s={seconds}")
            assert reply.status == status, reply
            took = trio.current_time() - start
            deadline = {"/take-short": 1, "/take-long": 60, "/take": 10}.get(path)
            assert took == pytest.approx(seconds if status == 200 else deadline, abs=0.01)


async def test_a_route_reached_late_counts_its_deadline_from_there(autojump_clock: Any) -> None:
    app = App()

    async def warm_up(req: Request, res: Response, next: Any) -> None:
        await trio.sleep(1.5)  # middleware before the route: under the profile's deadline
        await next()

    app.use(warm_up)

    @app.get("/r", timeout="1s")
    async def route(req: Request, res: Response) -> None:
        await trio.sleep(0.9)
        await res.send("in time")

    with trio.fail_after(60):
        async with running(app, app__handler_timeout_s="2s") as server:
            reply = await request(server, "GET", "/r")
    assert (reply.status, reply.text) == (200, "in time")


async def test_a_handler_finishing_just_before_the_deadline_is_unaffected(
    autojump_clock: Any,
) -> None:
    with trio.fail_after(60):
        async with running(deadline_app({}), app__handler_timeout_s="2s") as server:
            client = Client(await connect(server))
            async with client.stream:
                for _ in range(3):  # the connection stays open and keeps serving
                    await client.send("GET", "/take?s=1.999")
                    reply = await client.response()
                    assert reply.status == 200 and "connection" not in reply.headers
                    await client.send("GET", "/take-short?s=0.999")
                    assert (await client.response()).status == 200


async def test_a_started_response_is_cut_and_logged_incomplete(
    autojump_clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}
    with trio.fail_after(60):
        async with running(deadline_app(seen), server__access_log="true") as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
                data = await read_all(stream)  # until the server closes the connection
            assert seen["finally"] == ["/stream"]
            # the server still serves: only that connection was closed
            assert (await request(server, "GET", "/take?s=0")).status == 200
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "a")]))
    client.receive_data(data)
    client.receive_data(b"")
    events = []
    with pytest.raises(h11.RemoteProtocolError):  # the peer closed mid-body
        while True:
            event = client.next_event()
            events.append(event)
            assert event is not h11.NEED_DATA
    assert events[0].status_code == 200
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"first part"
    assert not any(isinstance(e, h11.EndOfMessage) for e in events)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if '"GET /stream ' in ln]
    assert len(lines) == 1 and lines[0].endswith(" user incomplete:handler-timeout"), lines
    assert '"GET /stream HTTP/1.1" 200 ' in lines[0]


async def test_virtual_requests_get_the_status_in_their_jwr(autojump_clock: Any) -> None:
    seen: dict[str, Any] = {}
    with trio.fail_after(60):
        async with (
            running(deadline_app(seen), app__handler_timeout_s="5s") as server,
            open_socket(f"http://127.0.0.1:{server.port}") as io,
        ):
            jwr = await io.get("/route-hang")
            assert (jwr.status_code, jwr.body) == (504, {"error": "Gateway Timeout", "status": 504})
            jwr = await io.get("/hang")  # the profile's deadline
            assert jwr.status_code == 504
            jwr = await io.get("/stream")  # started, but a JWR goes out whole: still a 504
            assert (jwr.status_code, jwr.body) == (504, "Gateway Timeout")
            jwr = await io.get("/take-none?s=20")
            assert (jwr.status_code, jwr.body) == (200, {"took": 20.0})
            assert (await io.get("/take?s=4.9")).status_code == 200
            assert io.connected  # the socket outlives its requests' deadlines
    assert seen["finally"] == ["/route-hang", "/hang", "/stream"]


async def test_event_streams_are_not_cut_by_the_profiles_deadline(autojump_clock: Any) -> None:
    app = App()

    @app.get("/readings", timeout=None)
    async def readings(req: Request, res: Response) -> None:
        async with res.sse() as events:
            for n in range(5):
                await events.send({"n": n})
                await trio.sleep(1)

    with trio.fail_after(60):
        async with running(app, app__handler_timeout_s="2s") as server:
            for path, count in (("/readings", 5), ("/_gateway/events", 4)):
                stream = await connect(server)
                async with stream:
                    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                    got = b""
                    while got.count(b"data:") < count:  # 4-5 s of events, past the 2 s
                        got += await stream.receive_some(65536)
                assert got.startswith(b"HTTP/1.1 200 ")


async def test_the_default_path_makes_no_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.app.deadline as deadline

    async def refuse(*args: Any) -> None:
        raise AssertionError("a deadline scope on the default path")

    monkeypatch.setattr(deadline, "run_app", refuse)
    monkeypatch.setattr(deadline, "run_route", refuse)
    with trio.fail_after(10):
        async with running(deadline_app({})) as server:
            assert (await request(server, "GET", "/take?s=0")).status == 200
            assert (await request(server, "GET", "/nothing")).status == 404


def test_a_bad_route_option_is_refused_when_registered() -> None:
    app = App()

    async def handler(req: Request, res: Response) -> None:
        await res.send("x")

    for bad, kind in (
        ("soon", ValueError),
        (-1, ValueError),
        ("-2s", ValueError),
        (float("inf"), ValueError),
        (True, TypeError),
        ([2], TypeError),
    ):
        with pytest.raises(kind) as info:
            app.get("/x", handler, timeout=bad)
        assert str(info.value) == (
            "route '/x': timeout: expected seconds (a number, or a duration such as \"2s\" or "
            f'"500ms"), or None for no deadline{" >= 0" if kind is ValueError else ""}, '
            f"got {bad!r}"
        )
    with pytest.raises(ValueError):
        app.get("/y", timeout="1 fortnight")(handler)  # the decorator form checks at once
    with pytest.raises(TypeError, match="timeout= does not apply"):
        app.ws("/live", timeout="5s")
    assert app.stack == []


async def test_error_handlers_see_a_routes_own_errors_not_its_deadline(
    autojump_clock: Any,
) -> None:
    app = App()
    errors: list[Exception] = []

    @app.get("/fail", timeout="1s")
    async def fail(req: Request, res: Response) -> None:
        raise HTTPError(409, "busy")

    @app.get("/slow", timeout="1s")
    async def slow(req: Request, res: Response) -> None:
        await trio.sleep(5)

    async def on_error(err: Exception, req: Request, res: Response, next: Any) -> None:
        errors.append(err)
        await res.status(500).send("the app's own error page")

    app.use(on_error)
    with trio.fail_after(60):
        async with running(app) as server:
            assert (await request(server, "GET", "/fail")).text == "the app's own error page"
            assert (await request(server, "GET", "/slow")).status == 504
    assert [type(e).__name__ for e in errors] == ["HTTPError"]
