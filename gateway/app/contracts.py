# The seams between the app layer and the transports, as small Protocols: where a request's body
# comes from (BodySource), where its reply goes (ResponseSink, ValueSink for a transport that
# carries values, not bytes, WebSocketAcceptor for one that can switch protocols), what is known
# of the connection (ConnectionInfo), who adds figures to /_gateway/stats (StatsProvider), what
# a request knows of its application (Application) and what the status page reads of it
# (MonitoredApp). The server implements them; app/ only ever sees these shapes. Types only:
# every module imports it under TYPE_CHECKING, so its Protocol classes cost no memory in a
# running gateway (about 30 KiB).
# Must not: import gateway.app or gateway.server modules, even for typing (it is the bottom of
# app/: every other module may import it; the exceptions are pubsub's SocketHub and metrics'
# Metrics types, which import nothing of app/ themselves), or hold behaviour or values used at
# runtime.
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.app.auth import Credentials
    from gateway.app.metrics import Metrics
    from gateway.app.pubsub import SocketHub
    from gateway.settings import Settings

__all__ = [
    "BodySource",
    "ParsedBody",
    "ResponseSink",
    "ValueSink",
    "WebSocketAcceptor",
    "ConnectionInfo",
    "StatsProvider",
    "Application",
    "MonitoredApp",
]


class BodySource(Protocol):
    """Where body bytes come from: the HTTP session, or a virtual request's data."""

    def expected_length(self) -> int | None:
        """Content-Length when known (only used to reject early), else None."""
        ...

    async def receive_chunk(self) -> bytes | None:
        """The next chunk, or None at the end.

        Raises:
            BodyError: a subclass saying what broke (413, 408, 400), or ClientDisconnected.
        """
        ...


class ParsedBody(BodySource, Protocol):
    """A body that arrived already parsed (a Sails virtual request's ``data``).

    ``req.json()`` returns ``value`` as it is; byte reads get its JSON text.
    """

    @property
    def value(self) -> Any: ...


class ResponseSink(Protocol):
    """Where a response's bytes go. ``head_only`` is True for HEAD (no body is written).

    ``carries_values`` is False for byte transports (HTTP); a ValueSink sets it True.
    """

    head_only: bool
    carries_values: bool

    async def send_response(
        self, status: int, headers: list[tuple[str, str]], body: bytes | None, end: bool
    ) -> None:
        """Send the head (and body when given); with end=True the response is complete."""
        ...

    async def send_data(self, data: bytes) -> None:
        """Send more body (only after send_response(..., end=False))."""
        ...

    async def end(self) -> None:
        """Complete a streamed response."""
        ...

    async def send_file(self, path: str, size: int) -> None:
        """Stream ``size`` bytes of the file at ``path`` as the rest of the body, then end."""
        ...


class ValueSink(ResponseSink, Protocol):
    """A transport whose replies carry the body as a value (a Sails JWR), not as bytes.

    ``res.json(obj)`` hands it ``obj``, ``res.send(text)`` the text, ``res.end()`` NO_BODY
    (gateway.app.response);
    only headers the application set are given (no Content-Type or Content-Length made up by
    the Response). Streamed bodies and files still arrive as bytes through ResponseSink.
    ``head_only`` is False: a JWR carries the body for HEAD too, as Sails' does.
    """

    async def send_value(self, status: int, headers: list[tuple[str, str]], value: Any) -> int:
        """Send the whole reply.

        Returns:
            The size of the reply on the wire (for the access log).

        Raises:
            HTTPError: the reply cannot be carried (e.g. over the transport's size limit);
                nothing was sent, so the exchange can still answer with an error.
            ValueError, TypeError: ``value`` cannot be serialised (nothing was sent).
        """
        ...


class ConnectionInfo(Protocol):
    """What the server knows about a connection when it is accepted."""

    @property
    def peer(self) -> tuple[str, int] | None: ...

    @property
    def scheme(self) -> str: ...

    @property
    def privileged(self) -> bool: ...

    @property
    def peer_text(self) -> str: ...


class WebSocketAcceptor(Protocol):
    """A ResponseSink that can take the connection over as a WebSocket (an HTTP Upgrade
    request's sink; ``Response.accept_websocket`` uses it for a ws route)."""

    async def accept_websocket(
        self, req: Any, res: Any, handler: Callable[..., Awaitable[None]], options: dict[str, Any]
    ) -> None:
        """Check the handshake; switch protocols once the request is over.

        Raises:
            HTTPError: 400/426 bad handshake, 403 origin refused, 503 too many WebSockets.
        """
        ...


class StatsProvider(Protocol):
    """Adds the server's figures (connections, sockets, ...) to /_gateway/stats."""

    def statistics(self) -> dict[str, Any]: ...


class Application(Protocol):
    """What ``req.app`` offers a handler (Express's req.app): the App that serves it, seen
    without its routing methods (so that request.py need not import the App, which imports
    the router, which types its handlers with Request)."""

    @property
    def locals(self) -> dict[str, Any]:
        """Application-wide values (Express app.locals)."""
        ...

    @property
    def settings(self) -> Settings | None:
        """The profile the app is served with (None before it is bound)."""
        ...

    @property
    def sockets(self) -> SocketHub:
        """Rooms and pushes for Socket.IO clients (sails.sockets)."""
        ...

    @property
    def credentials(self) -> Credentials:
        """The privilege tokens the profile's credentials file lists."""
        ...

    def parse_query(self, query: str) -> Any:
        """The app's query parser (App(query_parser=...)): a raw query string to req.query."""
        ...

    @property
    def requests_served(self) -> int: ...

    @property
    def errors_5xx(self) -> int: ...

    def statistics(self) -> dict[str, Any]:
        """The figures of /_gateway/stats."""
        ...


class MonitoredApp(Protocol):
    """What the status page and /metrics read of the App (gateway.app.status): its profile,
    figures and counters. A Protocol so that status.py need not import the App, which loads
    it on first use."""

    @property
    def settings(self) -> Settings | None: ...

    @property
    def metrics(self) -> Metrics: ...

    def statistics(self) -> dict[str, Any]: ...


class EventTarget(Protocol):
    """What a server-sent event stream (gateway.app.sse) uses of the Response it writes to, so
    that sse.py need not import response.py (which loads it on first use, for ``res.sse()``)."""

    @property
    def req(self) -> Any:
        """The Request (Express res.req), or None."""
        ...

    @property
    def finished(self) -> bool: ...

    def get(self, field: str) -> str | list[str] | None: ...

    def set(self, field: str, value: str) -> Any: ...

    async def write(self, chunk: str | bytes) -> None: ...

    async def end(self, chunk: str | bytes | None = None) -> None: ...


class EventStream(Protocol):
    """What ``res.sse()`` gives (gateway.app.sse.EventStream): events, comments and the
    client's Last-Event-ID."""

    @property
    def last_event_id(self) -> str | None: ...

    async def send(
        self,
        data: Any,
        *,
        event: str | None = None,
        id: str | None = None,
        retry_ms: int | None = None,
    ) -> None:
        """Send one event (see gateway.app.sse.format_event)."""
        ...

    async def comment(self, text: str = "") -> None: ...

    async def aclose(self) -> None: ...


class RouteInfo(Protocol):
    """What ``req.route`` is (Express's Route; gateway.app.router.Route): a shape, so that
    request.py need not import the router, which types its handlers with Request."""

    @property
    def path(self) -> str | re.Pattern[str]: ...

    @property
    def methods(self) -> dict[str, bool]: ...

    @property
    def stack(self) -> tuple[Callable[..., Awaitable[None]], ...]: ...


class CookieTarget(Protocol):
    """What ``cookie_parser()`` (gateway.app.cookies) sets on a Request, so that cookies.py
    need not import request.py (which uses its helpers)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def cookies_parsed(self) -> bool:
        """A cookie_parser ran on this request already."""
        ...

    def set_cookies(
        self, cookies: dict[str, Any], signed: dict[str, Any], secret: str | None
    ) -> None: ...
