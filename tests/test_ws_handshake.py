# The WebSocket handshake's negotiation (gateway.ws.handshake) against the real gateway:
# permessage-deflate (RFC 7692) when the profile enables it, with the 101 head checked byte for
# byte and a compressed frame on the wire both ways; and the Offer of a request that names no
# subprotocol or extension. Written against the mutants docs/TESTING.md lists.
from __future__ import annotations

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from gateway import App, WebSocket
from gateway.app.request import Request as HTTPRequest
from gateway.ws import handshake
from tests.helpers import running

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # and its accept value


def echo_app() -> App:
    app = App()

    @app.ws("/echo")
    async def echo(ws: WebSocket, req: HTTPRequest) -> None:
        async for message in ws:
            await ws.send(message)

    return app


async def raw_head(stream: trio.SocketStream, extensions: str | None) -> tuple[bytes, bytes]:
    """Send a handshake with ``extensions`` offered; the response head and what followed it."""
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    await stream.send_all(
        (
            "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
            f"{offer}\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


async def test_deflate_offered_and_enabled_is_accepted_exactly() -> None:
    with trio.fail_after(10):
        async with running(echo_app(), websocket__permessage_deflate="true") as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                head, _ = await raw_head(stream, "permessage-deflate; client_max_window_bits")
    assert (
        head
        == (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {ACCEPT}\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n"
        ).encode()
    )


async def test_deflate_not_offered_or_not_enabled_is_not_in_the_101() -> None:
    plain = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    ).encode()
    with trio.fail_after(10):
        async with running(echo_app(), websocket__permessage_deflate="true") as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                assert (await raw_head(stream, None))[0] == plain
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:  # an extension we do not know is ignored, not refused
                assert (await raw_head(stream, "x-webkit-deflate-frame"))[0] == plain
        async with running(echo_app()) as server:  # the profile's default: off
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                assert (await raw_head(stream, "permessage-deflate"))[0] == plain


async def test_a_deflated_message_round_trips_compressed_on_the_wire() -> None:
    text = "compressible " * 200
    with trio.fail_after(10):
        async with running(echo_app(), websocket__permessage_deflate="true") as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                ws = WSConnection(ConnectionType.CLIENT)
                await stream.send_all(
                    ws.send(
                        Request(host="127.0.0.1", target="/echo", extensions=[PerMessageDeflate()])
                    )
                )
                data = await stream.receive_some(65536)
                ws.receive_data(data)
                (accepted,) = ws.events()
                assert isinstance(accepted, AcceptConnection)
                assert [e.name for e in accepted.extensions] == ["permessage-deflate"]
                await stream.send_all(ws.send(TextMessage(text)))
                frame = b""
                events: list[object] = []
                while not events:
                    chunk = await stream.receive_some(65536)
                    assert chunk
                    frame += chunk
                    ws.receive_data(chunk)
                    events = list(ws.events())
    assert events == [TextMessage(text)]
    # FIN | RSV1 (compressed, RFC 7692 6) | text, and far smaller than the 2600 characters
    assert frame[0] == 0xC1 and len(frame) < 100


def test_an_upgrade_naming_no_subprotocol_or_extension_offers_none() -> None:
    offer = handshake.check_upgrade(
        "GET",
        "1.1",
        {
            "upgrade": "websocket",
            "connection": "Upgrade",
            "sec-websocket-key": KEY,
            "sec-websocket-version": "13",
        },
    )
    assert offer == handshake.Offer(KEY, (), ())
