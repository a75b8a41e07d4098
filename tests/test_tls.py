# TLS is optional and off by default: with a certificate in the profile the same app is served
# over HTTPS (req.protocol "https", req.secure True; a Sails virtual request's "wss"). (The
# ssl module itself is imported by trio at startup whatever we do; our code only builds a
# context when a certificate is configured.)
from __future__ import annotations

import json
import ssl

import pytest
import trio
import trustme
from wsproto.events import AcceptConnection, TextMessage
from wsproto.events import Request as WSRequest

from gateway import App
from gateway.errors import ConfigError
from tests.helpers import bound_server, make_settings, parse_replies, read_all
from tests.test_websocket import Client, _close_clients  # noqa: F401 (autouse fixture)


async def test_https_request_reports_https(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))

    app = App()

    @app.get("/who")
    async def who(req, res):  # type: ignore[no-untyped-def]
        await res.json({"protocol": req.protocol, "secure": req.secure})

    server = bound_server(
        app, server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
    )
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            stream = trio.SSLStream(tcp, client_ctx, server_hostname="127.0.0.1")
            await stream.send_all(
                b"GET /who HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            data = await read_all(stream)
            await stream.aclose()
            nursery.cancel_scope.cancel()
    (reply,) = parse_replies(data)
    assert reply.status == 200
    assert reply.json() == {"protocol": "https", "secure": True}


async def test_virtual_request_over_tls_reports_wss(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a Sails virtual request's protocol is its socket's: "wss" over TLS (Sails: "ws"/"wss")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    app = App()

    @app.get("/who")
    async def who(req, res):  # type: ignore[no-untyped-def]
        await res.json({"protocol": req.protocol, "secure": req.secure})

    server = bound_server(
        app, server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
    )
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            stream = trio.SSLStream(tcp, client_ctx, server_hostname="127.0.0.1")
            client = Client(stream)  # type: ignore[arg-type]
            await client.send(
                WSRequest(
                    host=f"127.0.0.1:{server.port}", target="/socket.io/?EIO=4&transport=websocket"
                )
            )
            assert isinstance(await client.event(), AcceptConnection)
            assert str(getattr(await client.event(), "data", "")).startswith("0{")
            await client.send(TextMessage("40"))
            assert str(getattr(await client.event(), "data", "")).startswith("40{")
            await client.send(TextMessage('421["get",{"url":"/who"}]'))
            reply = await client.event()
            await trio.aclose_forcefully(stream)
            nursery.cancel_scope.cancel()
    assert isinstance(reply, TextMessage) and reply.data.startswith("431[")
    assert json.loads(reply.data[3:])[0] == {
        "body": {"protocol": "wss", "secure": True},
        "headers": {},
        "statusCode": 200,
    }


async def test_plain_http_client_on_tls_port_is_dropped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    app = App()
    server = bound_server(
        app, server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            await tcp.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = await read_all(tcp)  # the handshake fails: closed, no HTTP reply leaks
            await tcp.aclose()
            nursery.cancel_scope.cancel()
    assert not data.startswith(b"HTTP/")
    assert server.stats["active"] == 0


async def _served_by(port: int, ca: trustme.CA) -> bool:
    """True when a new connection's certificate verifies against ``ca`` (and HTTPS answers)."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, ctx, server_hostname="127.0.0.1")
    try:
        await stream.send_all(
            b"GET /_gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        (reply,) = parse_replies(await read_all(stream))
        return reply.status == 200
    except trio.BrokenResourceError:
        return False  # the certificate did not verify
    finally:
        await trio.aclose_forcefully(stream)


async def test_reload_renews_the_certificate_and_refuses_an_unloadable_one(  # type: ignore[no-untyped-def]
    tmp_path,
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"

    def install(ca: trustme.CA) -> None:
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))

    install(old_ca)
    app = App()
    server = bound_server(
        app, server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            assert await _served_by(server.port, old_ca)

            install(new_ca)  # renewed in place, under the same names
            renewed = make_settings(
                server__tls_cert_file=str(cert_file), server__tls_key_file=str(key_file)
            )
            server.reload(renewed)
            assert await _served_by(server.port, new_ca)
            assert not await _served_by(server.port, old_ca)

            # a key that does not load: refused whole, the running certificate and profile stay
            key_file.write_text("not a key\n")
            context = server._tls
            bad = make_settings(
                server__tls_cert_file=str(cert_file),
                server__tls_key_file=str(key_file),
                memory__body_budget_bytes=str(8 * 1024 * 1024),
            )
            with pytest.raises(ConfigError, match="server.tls_cert_file/tls_key_file"):
                server.reload(bad)
            assert server._tls is context and server.settings is renewed
            assert app.settings is renewed and app.budget.total == 4 * 1024 * 1024
            assert await _served_by(server.port, new_ca)
            nursery.cancel_scope.cancel()
