"""The bare trio loop of ../shared/bench with httptools (Node's llhttp parser, in C; what uvicorn's
fast mode parses with) in place of h11: what a C parser would leave of a request's cost on trio,
the ceiling the gateway could reach by adopting one. An experiment for the side-by-side harness,
not a server: GET /hello, POST /echo and POST /upload only (no WebSocket: its smoke check fails,
and `--tests hello,echo` skips it), no limits, no timeouts, keep-alive, responses built by hand
with the headers the h11 bare loop sends (content-type, content-length).

Needs httptools, which the harness's own environment has (uvicorn's fast peer):
    --server 'bare-httptools=$B/venv/bin/python bench/bare_httptools.py {port}'
A benchmark helper, not a test.
"""

from __future__ import annotations

import functools
import json
import sys

import httptools
import trio

RECV = 65536


class _Parsed:
    """httptools' callbacks: the messages of one read, whole (URL and body joined)."""

    __slots__ = ("url", "body", "done", "close")

    def __init__(self) -> None:
        self.url = b""
        self.body: list[bytes] = []
        self.done: list[tuple[bytes, bytes]] = []
        self.close = False

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append((self.url, b"".join(self.body)))


def _response(ctype: bytes, body: bytes, status: bytes = b"200 OK") -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 ",
            status,
            b"\r\ncontent-type: ",
            ctype,
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\n\r\n",
            body,
        )
    )


def _reply(url: bytes, body: bytes) -> bytes:
    if url == b"/hello":
        return _response(b"text/plain", b"hello")
    if url == b"/echo":
        return _response(b"application/json", json.dumps(json.loads(body)).encode())
    if url == b"/upload":
        return _response(b"text/plain", str(len(body)).encode())
    return _response(b"text/plain", b"not found", b"404 Not Found")


async def handle(stream: trio.SocketStream) -> None:
    parsed = _Parsed()
    parser = httptools.HttpRequestParser(parsed)
    try:
        while True:
            data = await stream.receive_some(RECV)
            if not data:
                return
            parser.feed_data(data)
            if parsed.done:
                out = b"".join([_reply(url, body) for url, body in parsed.done])
                parsed.done.clear()
                await stream.send_all(out)
                if not parser.should_keep_alive():
                    return
    except (httptools.HttpParserError, trio.BrokenResourceError):
        return
    finally:
        await stream.aclose()


def main() -> None:
    port = int(sys.argv[1])
    trio.run(functools.partial(trio.serve_tcp, handle, port, host="127.0.0.1"))


if __name__ == "__main__":
    main()
