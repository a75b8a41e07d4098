# One MQTT 5 connection to a broker, kept up from trio: paho-mqtt 2.x speaks the protocol,
# driven through its external-loop interface (loop_read/loop_write/loop_misc on readiness of
# its socket, on_socket_register_write to wake the writer; no thread, no asyncio). The TCP
# connect and the TLS handshake are done here with trio so that a slow or unreachable broker
# never blocks the event loop. Owns: reconnecting with bounded, jittered backoff; publishing
# at QoS 1 without an offline queue (dropped and counted while down); the connection's figures.
# Must not: know topics, requests or rooms (gateway.server.mqtt_bridge does).
#
# Theory of operation: run() loops over sessions. A session opens the socket (trio), hands it
# to paho (the one private hook: Client._create_socket returns it) and runs three tasks: the
# reader (wait_readable -> loop_read, which calls on_message), the writer (woken by paho's
# register-write callback: wait_writable -> loop_write while paho has bytes) and the ticker
# (loop_misc every second: keep-alive pings and their timeout; the CONNACK deadline). The
# first of them to see the connection gone ends the session; paho closes its socket through
# on_socket_close, where trio is told (notify_closing) before the descriptor goes.
#
# Memory: paho.mqtt.client imports urllib.request (and with it http.client, email, calendar:
# 1.1 MiB of a gateway's RSS, docs/BENCHMARKS.md) for one thing, its proxy settings
# (Client._get_proxy, reached only from Client._create_socket, which is ours here, and only
# with PySocks installed). It is imported with urllib.request deferred (_import_deferring):
# loaded whole on first use, by anyone, and never on our path.
from __future__ import annotations

import importlib
import importlib.util
import logging
import random
import socket
import ssl
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = ["Link", "LinkConfig", "CONNECT_TIMEOUT_S"]


def _import_deferring(name: str, deferred: str) -> ModuleType:
    """Import module ``name`` with module ``deferred`` made lazy (the stdlib's LazyLoader),
    unless something imported ``deferred`` already (then nothing changes).

    The deferred module is created and put in ``sys.modules`` unexecuted, so that ``name``'s
    ``import deferred`` finds it (an import reads only its ``__spec__``; ``name`` must read
    nothing else of it while it is imported). Then the LazyLoader takes it over and it is set
    on its package, as an import would: the first attribute anyone reads of it (``import
    deferred`` in other code included) executes it in place, and from then on it is the module
    an ordinary import gives. Should ``name`` fail to import so, it is imported again the
    ordinary way. (Before Python 3.13 a lazy module's first load is not thread-safe: two
    threads reading it for the very first time at once could see it half-executed. An app
    that imports it at its top, before the server starts, never has a lazy one.)

    Args:
        name: the module to import.
        deferred: a module it imports at its top but uses only later, if at all.

    Returns:
        The module ``name``.
    """
    if deferred in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(deferred)
    if spec is None or spec.loader is None:
        return importlib.import_module(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[deferred] = module
    try:
        imported = importlib.import_module(name)
    except Exception:  # it reads the deferred module at import: load both the ordinary way
        if sys.modules.get(deferred) is module:
            del sys.modules[deferred]
        return importlib.import_module(name)
    loader.exec_module(module)  # from now on, the first attribute read loads it
    parent, _, child = deferred.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return imported


if TYPE_CHECKING:
    import paho.mqtt.client as paho
else:
    paho = _import_deferring("paho.mqtt.client", "urllib.request")

log = logging.getLogger("gateway.mqtt")

#: TCP connect + TLS handshake + CONNACK must complete within this.
CONNECT_TIMEOUT_S: Final = 10.0
#: The first reconnect waits about this long; each failure doubles it up to reconnect_max_s.
RECONNECT_MIN_S: Final = 1.0
#: A session that stayed connected this long resets the backoff (a broker that accepts and
#: drops at once is retried ever more slowly, not in a tight loop).
STABLE_S: Final = 10.0
#: QoS 1 messages handed to paho and not yet acknowledged by the broker: past this, publishes
#: are dropped and counted (a broker that stops acknowledging cannot grow our memory).
MAX_UNACKED: Final = 64
# MQTT 5 fixed header + properties around a payload (topic, correlation data, ...): the
# Maximum Packet Size we announce is the payload ceiling plus this
_PACKET_OVERHEAD: Final = 64 * 1024

MessageHandler = Callable[[paho.MQTTMessage], None]


class LinkConfig:
    """Where and how to connect (built once by the bridge from the profile).

    Args:
        host, port: the broker.
        tls: an SSL context for mqtts://, or None.
        client_id: the MQTT client identifier (unique per device).
        username, password: broker credentials, or None.
        keepalive_s: MQTT keep-alive.
        reconnect_max_s: the backoff's ceiling.
        max_packet_bytes: the largest payload accepted (announced to the broker as Maximum
            Packet Size, plus room for the header).
    """

    __slots__ = (
        "host",
        "port",
        "tls",
        "client_id",
        "username",
        "password",
        "keepalive_s",
        "reconnect_max_s",
        "max_packet_bytes",
    )

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        client_id: str,
        username: str | None,
        password: str | None,
        keepalive_s: float,
        reconnect_max_s: float,
        max_packet_bytes: int,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.client_id = client_id
        self.username = username
        self.password = password
        self.keepalive_s = keepalive_s
        self.reconnect_max_s = reconnect_max_s
        self.max_packet_bytes = max_packet_bytes


class _Client(paho.Client):
    """paho's Client with the socket made by trio: reconnect() takes it from ``pending``."""

    pending: Any = None

    def _create_socket(self) -> Any:
        sock, self.pending = self.pending, None
        if sock is None:
            raise ConnectionError("no socket prepared for the MQTT connection")
        return sock


class Link:
    """A broker connection that comes back by itself.

    Args:
        config: where and how to connect.
        on_message: called (synchronously, from the reader) for every message received.
        on_connected: called after each successful CONNACK (subscribe and announce there).
        will: (topic, payload) of a retained QoS 1 Last Will, or None.
    """

    def __init__(
        self,
        config: LinkConfig,
        on_message: MessageHandler,
        on_connected: Callable[[], None],
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.config = config
        self.connected = False
        self.subscribed = False  # the broker acknowledged this connection's subscriptions
        self.closing = False
        self.connects = 0
        self.connect_failures = 0
        self.published = 0
        self.dropped = 0
        self.received = 0
        self.last_error = ""
        self._on_message = on_message
        self._on_connected = on_connected
        self._wake = trio.Event()
        self._session_scope: trio.CancelScope | None = None
        self._sock: Any = None
        client = self.client = _Client(
            CallbackAPIVersion.VERSION2, client_id=config.client_id, protocol=paho.MQTTv5
        )
        client.max_queued_messages_set(MAX_UNACKED)
        client.max_inflight_messages_set(MAX_UNACKED)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = None
        client.on_connect = self._connack
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_subscribe = self._suback
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.MaximumPacketSize = config.max_packet_bytes + _PACKET_OVERHEAD
        # clean start, no session expiry: a request sent while this device was away is not
        # kept for it (the requester has long timed out); presence tells who is there
        client.connect_async(
            config.host,
            config.port,
            max(1, round(config.keepalive_s)),
            clean_start=True,
            properties=props,
        )

    # -- the loop of sessions -------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, serve, reconnect with backoff and jitter; until cancelled or close()d."""
        delay = RECONNECT_MIN_S
        while not self.closing:
            started = trio.current_time()
            try:
                await self._session()
            except (OSError, ssl.SSLError, trio.TooSlowError, ConnectionError, ValueError) as exc:
                self.connect_failures += 1
                self.last_error = _describe(exc)
                log.warning("mqtt: %s:%d: %s", self.config.host, self.config.port, self.last_error)
            except Exception as exc:  # a bug here must not end the bridge, nor the server
                self.connect_failures += 1
                self.last_error = _describe(exc)
                log.exception("mqtt: the session failed; reconnecting")
            finally:
                self._down()
            if self.closing:
                return
            if trio.current_time() - started >= STABLE_S:
                delay = RECONNECT_MIN_S
            # full jitter over the upper half: a fleet that lost its broker at once does not
            # come back at once
            await trio.sleep(random.uniform(delay / 2, delay))
            delay = min(self.config.reconnect_max_s, delay * 2)

    async def _session(self) -> None:
        sock = await self._open_socket()
        client = self.client
        client.pending = sock
        self._sock = sock
        rc = client.reconnect()  # queues CONNECT (our register-write callback wakes the writer)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(paho.error_string(rc))
        with trio.CancelScope() as scope:
            self._session_scope = scope
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, sock)
                nursery.start_soon(self._ticker, trio.current_time() + CONNECT_TIMEOUT_S)
                await self._reader(sock)
                scope.cancel()
        self._session_scope = None

    async def _open_socket(self) -> Any:
        cfg = self.config
        with trio.fail_after(CONNECT_TIMEOUT_S):
            # an ASCII host as bytes: trio then does not load the idna codec for it
            host: str | bytes = cfg.host.encode() if cfg.host.isascii() else cfg.host
            stream = await trio.open_tcp_stream(host, cfg.port)
            tsock = stream.socket
            tsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = socket.socket(tsock.family, tsock.type, tsock.proto, tsock.detach())
            sock.setblocking(False)
            if cfg.tls is None:
                return sock
            opened: socket.socket = sock
            try:
                # the SSLSocket takes the descriptor over (sock is detached)
                tls = opened = cfg.tls.wrap_socket(
                    sock, server_hostname=cfg.host, do_handshake_on_connect=False
                )
                while True:
                    try:
                        tls.do_handshake()
                        return tls
                    except ssl.SSLWantReadError:
                        await trio.lowlevel.wait_readable(tls)
                    except ssl.SSLWantWriteError:
                        await trio.lowlevel.wait_writable(tls)
            except BaseException:
                opened.close()
                raise

    async def _reader(self, sock: Any) -> None:
        client = self.client
        limit = self.config.max_packet_bytes + _PACKET_OVERHEAD
        pending = getattr(sock, "pending", None)  # TLS: bytes decrypted but not yet read
        try:
            while True:
                await trio.lowlevel.wait_readable(sock)
                while True:
                    rc = client.loop_read()
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or client.socket() is not sock:
                        return
                    # paho buffers a packet whole: a broker that ignores our Maximum Packet
                    # Size is cut off as soon as the length is known (the one private read)
                    if client._in_packet["remaining_length"] > limit:
                        self.last_error = "the broker sent a packet over Maximum Packet Size"
                        log.warning("mqtt: %s; reconnecting", self.last_error)
                        return
                    if pending is None or not pending():
                        break
        except (trio.ClosedResourceError, OSError):
            return  # paho closed the socket (on_socket_close told trio)
        except Exception as exc:  # a malformed packet: paho's own error
            self._failed("reading", exc)

    async def _writer(self, sock: Any) -> None:
        client = self.client
        waitable: Any = sock  # (not narrowed by the identity check below)
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                # write at once (the socket is writable nearly always); wait only for room
                while client.want_write():
                    if (
                        client.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS
                        or client.socket() is not sock
                    ):  # lost, or DISCONNECT written
                        self._end_session()
                        return
                    if client.want_write():
                        await trio.lowlevel.wait_writable(waitable)
        except (trio.ClosedResourceError, OSError):
            self._end_session()
        except Exception as exc:
            self._failed("writing", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        # the session's tasks never raise (a nursery would wrap it in an ExceptionGroup)
        self.last_error = f"{what}: {_describe(exc)}"
        log.warning("mqtt: %s", self.last_error, exc_info=exc)
        self._end_session()

    async def _ticker(self, connack_deadline: float) -> None:
        client = self.client
        while True:
            await trio.sleep(1.0)
            if not self.connected and trio.current_time() >= connack_deadline:
                self.last_error = "no CONNACK within the connect timeout"
                log.warning("mqtt: %s", self.last_error)
                self._end_session()
                return
            try:
                rc = client.loop_misc()
            except Exception as exc:
                self._failed("keep-alive", exc)
                return
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.last_error = self.last_error or "keep-alive: no answer from the broker"
                self._end_session()
                return

    def _end_session(self) -> None:
        scope = self._session_scope
        if scope is not None:
            scope.cancel()

    def _down(self) -> None:
        if self.connected:
            log.warning("mqtt: disconnected from %s:%d", self.config.host, self.config.port)
        self.connected = self.subscribed = False
        self._session_scope = None
        sock, self._sock = self._sock, None
        client = self.client
        if client.socket() is not None:
            client._sock_close()  # notify_closing through on_socket_close, then close
        elif sock is not None and sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    # -- paho's callbacks (synchronous, from loop_read/loop_write/loop_misc) --------------------
    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        pass  # the session already knows its socket

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        try:
            trio.lowlevel.notify_closing(sock)  # wake our waits before the descriptor goes
        except (RuntimeError, ValueError, OSError):
            pass

    def _register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._wake.set()

    def _connack(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.connect_failures += 1
            self.last_error = f"the broker refused the connection: {reason}"
            log.error("mqtt: %s", self.last_error)
            self._end_session()
            return
        self.connected = True
        self.connects += 1
        self.last_error = ""
        try:
            self._on_connected()
        except Exception:
            log.exception("mqtt: on connect")

    def _suback(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:  # the broker's ACL: say so, the rest still works
            self.last_error = f"subscription refused: {', '.join(refused)}"
            log.error("mqtt: %s", self.last_error)
        self.subscribed = True
        log.info(
            "mqtt: connected to %s:%d as %s, subscribed",
            self.config.host,
            self.config.port,
            self.config.client_id,
        )

    def _disconnected(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        was, self.connected = self.connected, False
        if was and not self.closing and reason is not None and reason.is_failure:
            self.last_error = f"disconnected: {reason}"  # (a refused CONNACK said why already)
        self._end_session()

    def _message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.received += 1
        try:
            self._on_message(message)
        except Exception:
            log.exception("mqtt: handling a message on %r failed", message.topic)

    # -- publishing -----------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> bool:
        """Publish at QoS 1 now, or drop and count (not connected, or MAX_UNACKED waiting).

        Args:
            topic: a topic name (no wildcards).
            payload: the bytes.
            retain: ask the broker to keep it as the topic's last value.
            properties: MQTT 5 publish properties (correlation data, content type, ...).

        Returns:
            True if handed to the connection.
        """
        if not self.connected:
            self.dropped += 1
            return False
        try:
            info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        except ValueError as exc:  # a topic with a wildcard, a payload over 256 MiB
            log.warning("mqtt: cannot publish to %r: %s", topic[:200], exc)
            self.dropped += 1
            return False
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.dropped += 1
            return False
        self.published += 1
        return True

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe to ``topics`` at QoS 1 (call from on_connected: a clean start forgets)."""
        if topics:
            self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])

    async def close(self, grace_s: float) -> None:
        """Let queued publishes go out (at most ``grace_s``), then DISCONNECT cleanly (the
        broker then does not publish the Last Will: say goodbye with a publish first)."""
        self.closing = True
        client = self.client
        if not self.connected:
            return
        # polled: paho has no awaitable for "acknowledged" or "closed"; bounded by grace_s
        with trio.move_on_after(grace_s):
            while client._out_messages and self.connected:  # noqa: ASYNC110
                await trio.sleep(0.01)
            client.disconnect()
            while self._session_scope is not None and client.socket() is not None:  # noqa: ASYNC110
                await trio.sleep(0.01)

    def statistics(self) -> dict[str, Any]:
        """The connection's figures for /_gateway/stats."""
        return {
            "connected": self.connected,
            "subscribed": self.subscribed,
            "connects": self.connects,
            "reconnects": max(0, self.connects - 1),
            "connect_failures": self.connect_failures,
            "published": self.published,
            "dropped": self.dropped,
            "received": self.received,
            "last_error": self.last_error,
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return f"no connection within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
