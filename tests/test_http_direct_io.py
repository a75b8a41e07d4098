# The HTTP session reads and writes a plain socket directly (gateway.server.http_session
# _receive/_send): a read or write that does not wait is no schedule point, so the guarantees
# trio's SocketStream gave with one per operation are kept here by hand and tested: a checkpoint
# every _SPIN_LIMIT operations that did not wait and one per request (no connection starves the
# others), or for a client that answers only after the server waits, the wait itself (no
# checkpoint that only precedes a failed read), waiting when the socket is empty or full, resets
# and closes as trio's stream errors, and TLS (any other stream) through the stream's own
# methods.
from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from gateway import App
from gateway.errors import ClientDisconnected
from gateway.server import http_session
from gateway.server.http_session import HTTPSession
from gateway.server.serve import ConnectionInfo
from tests.helpers import bound_server, connect, parse_replies, read_all, running

LIMIT = http_session._SPIN_LIMIT
INFO = ConnectionInfo(("127.0.0.1", 40000), "http", False, "127.0.0.1:40000")


def hello_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(req, res):  # type: ignore[no-untyped-def]
        await res.send("hello")

    return app


def make_session(stream: trio.abc.Stream) -> HTTPSession:
    server = bound_server(hello_app(), http__max_requests_per_connection=5000)
    return HTTPSession(server, stream, INFO)


async def test_a_socket_stream_is_read_directly_and_a_checkpoint_comes_every_limit() -> None:
    a, b = trio.socket.socketpair()
    with a, b, trio.fail_after(5):
        session = make_session(trio.SocketStream(a))
        assert session._sock is a
        await b.send(b"x" * (4 * LIMIT))
        for _ in range(LIMIT):  # bytes are there: no schedule point
            with trio.testing.assert_no_checkpoints():
                assert await session._receive(1) == b"x"
        with trio.testing.assert_checkpoints():  # the next one gives the others their turn
            assert await session._receive(1) == b"x"
        # writes that do not wait count towards the same limit
        for _ in range(LIMIT):
            with trio.testing.assert_no_checkpoints():
                await session._send(b"y")
        with trio.testing.assert_checkpoints():
            await session._send(b"y")
        assert await b.recv(100) == b"y" * (LIMIT + 1)


async def test_an_empty_socket_is_waited_for_and_end_of_stream_is_empty_bytes() -> None:
    a, b = trio.socket.socketpair()
    with a, b, trio.fail_after(5):
        session = make_session(trio.SocketStream(a))
        async with trio.open_nursery() as nursery:

            async def later() -> None:
                await trio.testing.wait_all_tasks_blocked()
                await b.send(b"late")

            nursery.start_soon(later)
            with trio.testing.assert_checkpoints():
                assert await session._receive(100) == b"late"
        b.shutdown(socket.SHUT_WR)
        assert await session._receive(100) == b""


async def test_a_reset_is_a_broken_stream_and_a_closed_socket_a_closed_one() -> None:
    a, b = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    session = make_session(trio.SocketStream(a))
    with trio.fail_after(5):
        # unread bytes at close: the peer's next read fails with ECONNRESET
        await session._send(b"unread")
        b.close()
        with pytest.raises(trio.BrokenResourceError):
            while True:  # bounded: the first read fails, or an EOF then EPIPE below
                if await session._receive(100) == b"":
                    raise trio.BrokenResourceError("end of stream")
        with pytest.raises(ClientDisconnected):
            for _ in range(100):
                await session._send(b"z" * 65536)
        a.close()
        with pytest.raises(trio.ClosedResourceError):
            await session._receive(100)
        with pytest.raises(ClientDisconnected):
            await session._send(b"after close")


async def test_a_wait_on_a_socket_closed_meanwhile_is_a_closed_stream() -> None:
    # a late client's head is waited for without a read first (_LATE_HEADS): a socket another
    # task closed must end the session as a closed stream, not as trio's ValueError for fd -1
    a, b = trio.socket.socketpair()
    with a, b, trio.fail_after(5):
        session = make_session(trio.SocketStream(a))
        a.close()
        with pytest.raises(trio.ClosedResourceError):
            await session._read_when_ready(a, 100)


async def test_a_full_socket_is_written_as_it_drains_under_the_send_deadline() -> None:
    a, b = trio.socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MiB: far more than the buffers hold
    got = bytearray()
    deadlines: list[float] = []
    with a, b, trio.fail_after(10):
        session = make_session(trio.SocketStream(a))
        session.deadline = trio.current_time() + 1000
        saved = session.deadline

        async def reader() -> None:
            await trio.testing.wait_all_tasks_blocked()
            deadlines.append(session.deadline)  # while the writer waits for room
            while len(got) < len(big):
                got.extend(await b.recv(65536))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await session._send(big)
    assert bytes(got) == big
    # the send deadline was set while waiting, and the phase's own put back after
    assert deadlines[0] < saved and session.deadline == saved


async def test_tls_and_other_streams_go_through_their_own_methods() -> None:
    left, right = trio.testing.memory_stream_pair()
    with trio.fail_after(5):
        session = make_session(left)
        assert session._sock is None
        await right.send_all(b"abc")
        assert await session._receive(100) == b"abc"
        await session._send(b"def")
        assert await right.receive_some(100) == b"def"


async def test_every_request_is_a_schedule_point_even_when_all_bytes_are_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 200 pipelined requests in one write: the session never has to wait, and still lets the
    # other tasks run once per request (trio's SocketStream did twice)
    n = 200
    checkpoints = 0
    real = trio.lowlevel.checkpoint

    async def counting() -> None:
        nonlocal checkpoints
        checkpoints += 1
        await real()

    monkeypatch.setattr(http_session.trio.lowlevel, "checkpoint", counting)
    with trio.fail_after(10):
        async with running(hello_app(), http__max_requests_per_connection=n) as server:
            stream = await connect(server)
            async with stream:
                await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n" * n)
                await stream.send_eof()
                replies = parse_replies(await read_all(stream))
    assert [r.status for r in replies] == [200] * n
    assert checkpoints >= n - 1


class _SessionCheckpoints:
    """Counts trio.lowlevel.checkpoint calls made by one HTTPSession's task."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.task: trio.lowlevel.Task | None = None
        real = trio.lowlevel.checkpoint

        async def counting() -> None:
            if trio.lowlevel.current_task() is self.task:
                self.count += 1
            await real()

        monkeypatch.setattr(trio.lowlevel, "checkpoint", counting)

    async def run(self, session: HTTPSession) -> None:
        self.task = trio.lowlevel.current_task()
        await session.run()


GET = b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"


async def _read_replies(receive: Callable[[int], Awaitable[bytes | bytearray]], n: int) -> None:
    """Read ``n`` responses of hello_app (each ends with its body, b"hello")."""
    buf = b""
    while buf.count(b"\r\n\r\nhello") < n:
        data = await receive(65536)
        assert data, "the session closed"
        buf += data


async def _late_requests(
    send: Callable[[bytes], Awaitable[object]],
    receive: Callable[[int], Awaitable[bytes | bytearray]],
    n: int,
) -> None:
    """``n`` requests from a client that sends each only once the session waits for it."""
    for _ in range(n):
        await trio.testing.wait_all_tasks_blocked()
        await send(GET)
        await _read_replies(receive, 1)


@asynccontextmanager
async def _counted_session(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[HTTPSession, trio.socket.SocketType, _SessionCheckpoints]]:
    """A session serving hello_app on one end of a socket pair, its checkpoints counted; the
    block gets the session, the client's end and the counter (and ends the client's side)."""
    counter = _SessionCheckpoints(monkeypatch)
    a, b = trio.socket.socketpair()
    with a, b, trio.fail_after(10):
        session = make_session(trio.SocketStream(a))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(counter.run, session)
            yield session, b, counter
            b.shutdown(socket.SHUT_WR)


async def test_a_client_that_answers_only_after_the_wait_costs_no_checkpoint_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A LAN client: its next request comes after the server has gone back to waiting. The wait
    # is the schedule point; the checkpoint before it would only add a failed read. After
    # _LATE_HEADS such heads the session skips it, and looks after one every _PROBE_EVERY-th.
    n = 40
    failed_reads = 0
    read_now = HTTPSession._read_now

    def counting_read_now(self: HTTPSession, sock: trio.socket.SocketType, size: int) -> object:
        nonlocal failed_reads
        data = read_now(self, sock, size)
        failed_reads += data is None
        return data

    monkeypatch.setattr(HTTPSession, "_read_now", counting_read_now)
    async with _counted_session(monkeypatch) as (session, b, counter):
        await _late_requests(b.send, b.recv, n)
        assert session.requests == n
        late = http_session._LATE_HEADS
        assert session._late >= late
        # the first heads after a checkpoint, then one probe per _PROBE_EVERY requests
        probes = late + n // http_session._PROBE_EVERY
        assert counter.count <= probes
        # in the mode no read is tried before the wait (it would fail): only the first request
        # and those after a checkpoint read an empty socket
        assert failed_reads <= probes + 1
        # each request still had its schedule point: the wait for its head
        assert session._waits >= n


async def test_a_late_client_that_starts_pipelining_gets_a_checkpoint_per_request_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _counted_session(monkeypatch) as (session, b, counter):
        await _late_requests(b.send, b.recv, 10)  # late: the session skips the checkpoint
        assert session._late >= http_session._LATE_HEADS
        before = counter.count + session._waits
        n = 50
        await trio.testing.wait_all_tasks_blocked()
        await b.send(GET * n)  # all there at once: one read takes them all
        await _read_replies(b.recv, n)
        # the first head is waited for (the mode's schedule point), the second is found
        # buffered: its write makes the checkpoint it owes, and the mode ends; from then on
        # the session checkpoints between requests as before. A schedule point per request.
        assert counter.count + session._waits - before >= n
        assert session._late == 0


async def test_a_stream_read_through_its_own_methods_keeps_the_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TLS (any stream but a plain socket): its reads are not ours to count as waits
    n = 12
    counter = _SessionCheckpoints(monkeypatch)
    left, right = trio.testing.memory_stream_pair()
    with trio.fail_after(10):
        session = make_session(left)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(counter.run, session)
            await _late_requests(right.send_all, right.receive_some, n)
            assert counter.count >= n
            await right.aclose()
