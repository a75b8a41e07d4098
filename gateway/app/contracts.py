# The seams between the app layer and the transports, as small Protocols: where a request's body
# comes from (BodySource), where its reply goes (ResponseSink, or ValueSink for a transport that
# carries values, not bytes) and what is known of the connection (ConnectionInfo). The server
# implements them; app/ only ever sees these shapes.
# Must not: import anything from gateway, even for typing (it is the bottom of app/: every other
# module may import it), or hold behaviour.
from __future__ import annotations

import enum
from typing import Any, Final, Protocol

__all__ = [
    "NO_BODY",
    "NoBody",
    "BodySource",
    "ParsedBody",
    "ResponseSink",
    "ValueSink",
    "ConnectionInfo",
]


class NoBody(enum.Enum):
    """Type of NO_BODY: a reply without a body (a JWR without ``body``: the client sees
    ``undefined``), as opposed to a body that is JSON ``null``."""

    NO_BODY = 0


NO_BODY: Final = NoBody.NO_BODY


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

    ``res.json(obj)`` hands it ``obj``, ``res.send(text)`` the text, ``res.end()`` NO_BODY;
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
