# The client's errors, each carrying the numeric code of seed 002's `http` client (`.code`), so
# scripts can switch on a number and Python code on a type.
# Owns: the error classes and the status -> error mapping (403 -> 510, 404 -> 511, else 504).
# Must not: do I/O or know how a request is sent (HTTP or a Sails socket raise the same ones).
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from typing import Protocol

    class Response(Protocol):
        """What an error keeps of the reply it came with: an HTTP Response
        (gateway.client.response) or a Sails JWR (gateway.client.socket). A shape, so that
        this bottom module imports neither (both import it)."""

        @property
        def status(self) -> int: ...


__all__ = [
    "ClientError",
    "RequestTimeout",
    "TransportError",
    "ConnectError",
    "Aborted",
    "StatusError",
    "Forbidden",
    "NotFound",
    "InvalidJSON",
    "ResponseTooLarge",
    "TooManyRedirects",
    "CODES",
    "error_for_status",
]

# seed 002: code -> meaning (what `lastError` holds); 0 is "no error".
CODES: Final = {
    501: "request timed out",
    502: "transport error",
    503: "request aborted",
    504: "HTTP status not 2xx",
    510: "forbidden (403)",
    511: "not found (404)",
    520: "invalid JSON",
}


class ClientError(GatewayError):
    """Root of the client's errors.

    Attributes:
        code: the seed-002 error code (501, 502, 503, 504, 510, 511, 520).
        response: the response, when one had arrived (status errors, invalid JSON).
    """

    code: int = 502

    def __init__(self, message: str, response: Response | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, {self.message!r})"


class RequestTimeout(ClientError):
    """The total deadline (or the connect timeout) passed: code 501."""

    code = 501


class TransportError(ClientError):
    """The connection failed or broke, or the peer broke HTTP/Socket.IO framing: code 502."""

    code = 502


class ConnectError(TransportError):
    """No connection could be made (refused, unreachable, TLS handshake failed): code 502.
    Nothing was sent, so every method may be retried after it."""


class ResponseTooLarge(TransportError):
    """A buffered body (or one JSON-seq record) went over its cap: code 502. The connection is
    discarded; stream the response (``Client.stream``) to read bodies of any size."""


class TooManyRedirects(TransportError):
    """More redirects than ``max_redirects``: code 502."""


class Aborted(ClientError):
    """The request was aborted (``Request.abort()``, or the socket was closed): code 503."""

    code = 503


class StatusError(ClientError):
    """The response status is not 2xx: code 504 (510 for a 403, 511 for a 404).

    Attributes:
        status: the HTTP status.
    """

    code = 504

    def __init__(self, message: str, response: Response | None = None, status: int = 0) -> None:
        super().__init__(message, response)
        self.status = status if response is None else response.status


class Forbidden(StatusError):
    """403: code 510."""

    code = 510


class NotFound(StatusError):
    """404: code 511."""

    code = 511


class InvalidJSON(ClientError):
    """A JSON body (or a JSON-seq record) does not parse: code 520.

    Attributes:
        text: the start of what failed (at most 200 characters).
    """

    code = 520

    def __init__(self, message: str, response: Response | None = None, text: str = "") -> None:
        super().__init__(message, response)
        self.text = text[:200]


def error_for_status(status: int, reason: str = "", response: Any = None) -> StatusError:
    """The error a non-2xx status maps to (seed 002: 403 -> 510, 404 -> 511, else 504).

    Args:
        status: the HTTP status.
        reason: the reason phrase, for the message.
        response: the response it came with.

    Returns:
        Forbidden, NotFound or StatusError (not raised).
    """
    cls = Forbidden if status == 403 else NotFound if status == 404 else StatusError
    text = f"HTTP {status} {reason}".rstrip()
    return cls(text, response, status)
