# The MQTT 5 adapter: a device's requests and room events over a fleet's broker. A message on
# <prefix>/<device_id>/request (a Sails-shaped {method, url, headers, data} with a Response
# Topic and Correlation Data, MQTT 5 §4.10) becomes a request head + parsed body + JWR sink for
# the SAME exchange as HTTP and socket requests; its JWR goes back to the Response Topic.
# Also: rooms relayed both ways (app.sockets), and retained presence with a Last Will.
# Owns: topics, the in-flight cap (503 beyond it), the bridge's figures, its credentials file.
# Must not: speak MQTT itself (gateway.server.mqtt_link) or build replies (the exchange does).
from __future__ import annotations

import json
import logging
import os
import socket
import stat
import sys
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import trio

from gateway.app.metrics import TransportMetrics
from gateway.body.stream import ValueSource
from gateway.errors import ConfigError, HTTPError, RemoteProtocolError
from gateway.server.sails_session import VirtualResponse, _late_status, _target
from gateway.settings import mqtt_address
from gateway.ws import engineio as eio
from gateway.ws import sails

try:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from gateway.server.mqtt_link import Link, LinkConfig
except ImportError as exc:  # pragma: no cover - the [mqtt] extra is not installed
    raise ConfigError(
        "[mqtt] url is set, but paho-mqtt is not installed: "
        "pip install 'gateway[mqtt]' (or paho-mqtt>=2.1,<3)"
    ) from exc

if TYPE_CHECKING:
    import ssl

    import paho.mqtt.client as paho

    from gateway.app.application import App
    from gateway.app.exchange import Exchange
    from gateway.app.pubsub import Push
    from gateway.settings import MQTTSettings, Settings

    class Server(Protocol):
        """What the bridge needs of its server (gateway.server.serve.Server, which imports
        this module: a Protocol, not an import back)."""

        @property
        def settings(self) -> Settings: ...

        @property
        def app(self) -> App: ...

        @property
        def exchange(self) -> Exchange: ...

        @property
        def drain_deadline(self) -> float: ...


__all__ = ["Bridge", "check", "read_credentials"]

log = logging.getLogger("gateway.mqtt")

TRANSPORT: Final = "mqtt"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # as JSON.parse: no NaN/Infinity


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_JSON: Final = "application/json"


class _Info:
    """The connection as a request over MQTT sees it (a ConnectionInfo): no peer address
    (the broker relays it), never privileged by itself, https over an mqtts:// link."""

    __slots__ = ("peer", "scheme", "privileged", "peer_text")

    def __init__(self, scheme: str) -> None:
        self.peer: tuple[str, int] | None = None
        self.scheme = scheme
        self.privileged = False
        self.peer_text = TRANSPORT


class _Reply(VirtualResponse):
    """The JWR of one request, as the JSON payload for the Response Topic (capped)."""

    __slots__ = ("payload",)

    def __init__(self, limit: int) -> None:
        # the Engine.IO session and ack id of the parent are not used: _reply is ours; a HEAD's
        # reply carries the body, as a Sails JWR does
        super().__init__(cast(Any, None), 0, limit)
        self.payload: bytes | None = None

    def _reply(self, status: int, headers: list[tuple[str, str]], body: Any) -> int:
        # ValueError/TypeError: not JSON-able
        payload = sails.jwr_text(status, headers, body).encode()
        if len(payload) > self.limit:
            log.warning("mqtt: reply over websocket.max_virtual_response_bytes (%d)", self.limit)
            raise HTTPError(500, "virtual response too large")
        self.payload = payload
        return len(payload)


def read_credentials(path: str) -> tuple[str, str]:
    """``username:password`` from the first line of a file only its owner may read.

    Raises:
        ConfigError: missing, accessible by group/others, or not ``username:password``.
    """
    key = "mqtt.credentials_file"
    try:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path}: {key}: must not be accessible by other users (mode "
                f"{stat.S_IMODE(st.st_mode):04o}; expected 0600 or 0400: "
                f"chmod 600 {path})"
            )
        with open(path, encoding="utf-8") as f:
            line = f.readline(4096).rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{path}: {key}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {key}: expected UTF-8 text") from None
    user, sep, password = line.partition(":")
    if not sep or not user:
        raise ConfigError(f"{path}: {key}: expected one line 'username:password'")
    return user, password


def _no_password(*_: object) -> bytes:
    raise ValueError("the TLS key is encrypted; the bridge needs an unencrypted key file")


def _tls_context(m: MQTTSettings) -> ssl.SSLContext:
    import ssl

    try:
        ctx = ssl.create_default_context(cafile=m.tls_ca_file or None)
        if m.tls_cert_file:
            ctx.load_cert_chain(m.tls_cert_file, m.tls_key_file, password=_no_password)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"mqtt.tls_ca_file/tls_cert_file/tls_key_file: cannot load ({exc})"
        ) from None
    return ctx


def check(settings: Settings) -> None:
    """What ``gateway check`` and the server's start verify of [mqtt]: credentials and TLS.

    Raises:
        ConfigError: unreadable or unsafe credentials file, unloadable TLS files, or a host
            name that cannot be a device id.
    """
    m = settings.mqtt
    if m.credentials_file:
        read_credentials(m.credentials_file)
    if mqtt_address(m.url)[0]:
        _tls_context(m)
    _device_id(m)


def _device_id(m: MQTTSettings) -> str:
    device = m.device_id or socket.gethostname()
    if not device or device == "all" or any(c in device for c in "/+#\0"):
        raise ConfigError(
            f"mqtt.device_id: the host name {device!r} cannot be a device id "
            '(one MQTT topic level, not "all"): set mqtt.device_id'
        )
    return device


class Bridge:
    """The MQTT adapter of one Server (started by Server.serve when [mqtt] url is set).

    Args:
        server: the Server (its exchange, app, settings and drain deadline).

    Raises:
        ConfigError: see check().
    """

    def __init__(self, server: Server) -> None:
        settings = server.settings
        m = settings.mqtt
        tls, host, port = mqtt_address(m.url)
        user, password = (
            read_credentials(m.credentials_file) if m.credentials_file else (None, None)
        )
        self.server = server
        self.device_id = _device_id(m)
        base = f"{m.topic_prefix}/{self.device_id}"
        self.request_topic = base + "/request"
        self.status_topic = base + "/status"
        self._events_out = base + "/events/"
        # topic -> room, for the messages we subscribe to
        self._rooms_in = {f"{m.topic_prefix}/all/events/{r}": r for r in m.rooms}
        self._rooms_in.update({f"{base}/events-in/{r}": r for r in m.rooms})
        self.rooms = m.rooms
        self.max_in_flight = m.max_in_flight
        self.max_message_bytes = settings.websocket.max_message_bytes
        self.response_limit = settings.websocket.max_virtual_response_bytes
        self.broker = f"{host}:{port}"
        self.info = _Info("https" if tls else "http")
        self.link = Link(
            LinkConfig(
                host,
                port,
                _tls_context(m) if tls else None,
                f"{m.topic_prefix}-{self.device_id}",
                user,
                password,
                m.keepalive_s,
                m.reconnect_max_s,
                self.max_message_bytes,
            ),
            self._message,
            self._connected,
            will=(self.status_topic, self._presence("offline")),
        )
        self.version = _installed_version()
        self.in_flight = 0
        self.requests = self.rejected = self.malformed = 0
        self.events_out = self.events_in = 0
        self.draining = False
        self.busy = True  # until the goodbye is said (the server's drain waits for it)
        self._nursery: trio.Nursery | None = None
        self._stop = trio.Event()

    # -- lifetime ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until cancelled, or until the server drains (then: finish the requests in
        flight, publish ``offline``, DISCONNECT) within the drain's deadline."""
        app = self.server.app
        app.metrics.transports.setdefault(TRANSPORT, TransportMetrics())
        hub = app.sockets if self.rooms else None
        for room in self.rooms:
            assert hub is not None
            hub.relay(room, self._relay)
        app.drain_hooks.add(self._begin_drain)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.link.run)
                await self._stop.wait()
                with trio.move_on_at(self.server.drain_deadline):
                    while self.in_flight:  # noqa: ASYNC110 (bounded by the drain deadline)
                        await trio.sleep(0.05)
                    await self._goodbye()
                nursery.cancel_scope.cancel()
        except Exception:  # HTTP goes on without the bridge
            log.exception("mqtt: the bridge failed and stopped")
        finally:
            self._nursery = None
            self.busy = False
            for room in self.rooms:
                assert hub is not None
                hub.relay(room, None)
            app.drain_hooks.discard(self._begin_drain)

    def _begin_drain(self) -> None:
        self.draining = True
        self._stop.set()

    async def _goodbye(self) -> None:
        self.link.publish(self.status_topic, self._presence("offline"), retain=True)
        await self.link.close(1.0)

    def _presence(self, status: str) -> bytes:
        body: dict[str, Any] = {"status": status, "device_id": self.device_id}
        if status == "online":
            body.update(profile=self.server.settings.profile, version=self.version)
        return eio.dumps(body).encode()

    def _connected(self) -> None:
        # a clean start forgets subscriptions: subscribe again on every connect
        self.link.subscribe([self.request_topic, *self._rooms_in])
        self.link.publish(self.status_topic, self._presence("online"), retain=True)

    # -- messages in (paho's reader calls this: it must not wait) -------------------------------
    def _message(self, message: paho.MQTTMessage) -> None:
        topic = message.topic
        if topic == self.request_topic:
            self._request(message)
            return
        room = self._rooms_in.get(topic)
        if room is not None:
            self._event_in(room, message.payload)

    def _request(self, message: paho.MQTTMessage) -> None:
        props = message.properties
        reply_to: str | None = getattr(props, "ResponseTopic", None) or None
        correlation: bytes | None = getattr(props, "CorrelationData", None)
        nursery = self._nursery
        if self.draining or nursery is None or self.in_flight >= self.max_in_flight:
            self.rejected += 1
            if reply_to is not None:
                text = (
                    "Shutting down; retry"
                    if self.draining
                    else "Too many requests over MQTT in flight; retry"
                )
                self._publish_reply(
                    reply_to,
                    correlation,
                    eio.dumps(sails.jwr(503, {"retry-after": "1"}, text)).encode(),
                )
            return
        self.in_flight += 1
        self.requests += 1
        nursery.start_soon(self._serve, message.payload, reply_to, correlation)

    async def _serve(
        self, payload: bytes | bytearray, reply_to: str | None, correlation: bytes | None
    ) -> None:
        """One request through the exchange (the App, as for HTTP); its JWR to ``reply_to``."""
        exchange = self.server.exchange
        started = trio.current_time()
        sink = _Reply(self.response_limit)
        try:
            try:
                vreq = _parse(payload, self.max_message_bytes)
                target, path, query = _target(vreq.url)
            except RemoteProtocolError as exc:  # SailsParseError too
                self.malformed += 1
                if reply_to is None:
                    log.warning(
                        "mqtt: dropped a malformed request without a Response Topic: %s",
                        exc.message,
                    )
                    return
                await exchange.refuse(sink, exc.status_hint, exc.message)
            else:
                info = self.info
                headers = vreq.headers
                req = exchange.request(
                    info,
                    vreq.method,
                    target,
                    path,
                    query,
                    (),
                    ValueSource(vreq.data),
                    authorization=headers.get("authorization"),
                    headers=headers,
                    body=vreq.data,
                    transport=TRANSPORT,
                )
                try:
                    await exchange.run(info, req, sink, None, started)
                except Exception as exc:
                    # failed after the reply had started (a handler deadline: 504): nothing
                    # was published yet, so an error reply still can be
                    sink = _Reply(self.response_limit)
                    await exchange.refuse(sink, _late_status(exc), "")
            if reply_to is not None and sink.payload is not None:
                self._publish_reply(reply_to, correlation, sink.payload)
        except Exception:
            log.exception("mqtt: request failed")
        finally:
            self.in_flight -= 1

    def _publish_reply(self, topic: str, correlation: bytes | None, payload: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation is not None:
            props.CorrelationData = correlation
        props.ContentType = _JSON
        props.PayloadFormatIndicator = 1  # UTF-8
        self.link.publish(topic, payload, properties=props)

    # -- room events ------------------------------------------------------------------------
    def _relay(self, room: str, push: Push) -> None:
        """A broadcast to a relayed room: to <prefix>/<device_id>/events/<room>."""
        try:
            payload = eio.dumps({"event": push.event, "data": push.data}).encode()
        except (TypeError, ValueError) as exc:
            log.warning("mqtt: room %r: event %r not sent: %s", room, push.event, exc)
            return
        if self.link.publish(self._events_out + room, payload):
            self.events_out += 1

    def _event_in(self, room: str, payload: bytes | bytearray) -> None:
        """{"event", "data"} from the fleet to this device's sockets in ``room``."""
        try:
            value = _DECODER.decode(payload.decode())
            if not isinstance(value, dict):
                raise ValueError('expected an object {"event", "data"}')
            event = value.get("event", "message")
            if not isinstance(event, str) or not event:
                raise ValueError("event must be a non-empty string")
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            self.malformed += 1
            log.warning("mqtt: room %r: dropped an event: %s", room, str(exc)[:200])
            return
        self.events_in += 1
        try:
            self.server.app.sockets.broadcast(room, event, value.get("data"), relay=False)
        except (TypeError, ValueError) as exc:  # a reserved event name
            log.warning("mqtt: room %r: event %r not delivered: %s", room, event, exc)

    def statistics(self) -> dict[str, Any]:
        """The bridge's figures (/_gateway/stats "mqtt", the metrics)."""
        return {
            "broker": self.broker,
            "device_id": self.device_id,
            **self.link.statistics(),
            "requests": self.requests,
            "requests_in_flight": self.in_flight,
            "rejected": self.rejected,
            "malformed": self.malformed,
            "events_out": self.events_out,
            "events_in": self.events_in,
        }


def _installed_version() -> str:
    """gateway.discovery.installed_version() without importlib.metadata, whose modules (zipfile,
    csv, xml.sax, importlib.resources: ~0.5 MiB of RSS) would stay for one string: the Version
    of the first gateway-*.dist-info on sys.path, as importlib.metadata finds it, else
    gateway.__version__ (a source tree)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("gateway-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry or ".", name, "METADATA"), encoding="utf-8") as f:
                        for line in f:
                            if line.startswith("Version:"):
                                return line[8:].strip()
                            if not line.strip():
                                break  # the headers end at the first blank line
                except OSError:
                    pass
    from gateway import __version__

    return __version__


def _parse(payload: bytes | bytearray, limit: int) -> sails.VirtualRequest:
    """A request payload ``{"method", "url", "headers", "data"}`` (method default GET).

    Raises:
        SailsParseError: over ``limit`` bytes (413), not UTF-8 JSON, not an object, or not a
            valid virtual request (see sails.parse_virtual_request).
    """
    if len(payload) > limit:
        raise sails.SailsParseError(
            f"request over websocket.max_message_bytes ({limit} bytes)", 413
        )
    try:
        message = _DECODER.decode(payload.decode())
    except (ValueError, RecursionError) as exc:
        raise sails.SailsParseError(f"the payload is not JSON: {str(exc)[:100]}") from None
    if not isinstance(message, dict):
        raise sails.SailsParseError("the payload is not an object {method, url, headers, data}")
    method = message.get("method", "get")
    if not isinstance(method, str):
        raise sails.SailsParseError("method must be a string")
    return sails.parse_virtual_request(method.lower(), [message], 0)
