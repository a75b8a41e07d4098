# Every exception the gateway raises on purpose, and the status each one maps to.
# Errors say whose fault they are (h11's model): ConfigError (ours, at startup),
# RemoteProtocolError (the peer broke HTTP/WebSocket framing: a 4xx hint), LocalProtocolError
# (we did: a bug, 500 and a log line), HTTPError (an application-level reply), body errors
# (BudgetExceeded is *our* memory being short: 503, not the client's fault), ClientDisconnected
# (nobody left to reply to: not an HTTPError, so an app's `except HTTPError` cannot swallow it).
# Turning errors into replies happens in one place (gateway.app.exchange); this module only
# defines them.
from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "GatewayError",
    "ConfigError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "HTTPError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "RequestTimeout",
    "PayloadTooLarge",
    "URITooLong",
    "UnsupportedMediaType",
    "HeaderFieldsTooLarge",
    "ServiceUnavailable",
    "GatewayTimeout",
    "HandlerTimeout",
    "BodyError",
    "BodyTooLarge",
    "BudgetExceeded",
    "BodyTimeout",
    "ClientDisconnected",
    "WebSocketClosed",
    "REASONS",
]

REASONS: dict[int, str] = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    422: "Unprocessable Content",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A bad profile, flag or environment value. Startup only; the CLI exits with code 78.

    The message names the file (or variable/flag), the key and what was expected.
    """

    exit_code = 78

    @classmethod
    def of(cls, errors: list[ConfigError]) -> ConfigError:
        """One error for all the problems found in one pass (each on its own line)."""
        if len(errors) == 1:
            return errors[0]
        return cls(f"{len(errors)} problems:\n" + "\n".join(f"  {e}" for e in errors))


class ProtocolError(GatewayError):
    """HTTP or WebSocket framing went wrong; the subclass says whose fault it is.

    Catch RemoteProtocolError to answer the peer, LocalProtocolError to log our bug.

    Args:
        message: what was wrong, short and safe to send back to the client.
        status_hint: the HTTP status to reply with (400, 408, 413, 414, 431, ...; 500 when
            the fault is ours).
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: reply with ``status_hint`` (a 4xx) and close."""


class LocalProtocolError(ProtocolError):
    """We were about to break the protocol (e.g. more body than the Content-Length we sent):
    a bug, never the peer's fault. ``status_hint`` is 500; the traceback goes to the log."""

    def __init__(self, message: str, status_hint: int = 500) -> None:
        super().__init__(message, status_hint)


class HTTPError(GatewayError):
    """An HTTP reply raised from a handler, middleware or body parser.

    Args:
        status: the status code (4xx or 5xx).
        message: a short, client-safe text; the reason phrase when omitted.
        headers: extra response headers (e.g. Allow, Retry-After, WWW-Authenticate).
    """

    status = 500

    def __init__(
        self,
        status: int | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        self.message = message or REASONS.get(self.status, "Error")
        self.headers: list[tuple[str, str]] = (
            list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        )
        super().__init__(self.message)


class BadRequest(HTTPError):
    status = 400


class Unauthorized(HTTPError):
    status = 401


class Forbidden(HTTPError):
    status = 403


class NotFound(HTTPError):
    status = 404


class MethodNotAllowed(HTTPError):
    status = 405


class RequestTimeout(HTTPError):
    status = 408


class PayloadTooLarge(HTTPError):
    status = 413


class URITooLong(HTTPError):
    status = 414


class UnsupportedMediaType(HTTPError):
    status = 415


class HeaderFieldsTooLarge(HTTPError):
    status = 431


class ServiceUnavailable(HTTPError):
    status = 503


class GatewayTimeout(HTTPError):
    status = 504


class HandlerTimeout(GatewayTimeout):
    """A request's handlers did not finish within their deadline (``[app] handler_timeout_s``
    or the route's ``timeout=``): they were cancelled, and the gateway answers 504 itself (the
    app's error handlers do not see it); after the response head it closes the connection.

    Args:
        seconds: the deadline that passed.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(None, f"no response within the {seconds:g} s handler deadline")
        self.seconds = seconds


class BodyError(HTTPError):
    """The request body broke: over a limit, too slow, malformed, or the client left.

    Delivered to the app through the request's ``error`` event and raised from body reads.
    """

    status = 400


class BodyTooLarge(BodyError, PayloadTooLarge):
    """The body (or its decoded form) is over the per-request limit: 413."""

    status = 413


class BudgetExceeded(BodyError, ServiceUnavailable):
    """The process-wide body memory budget is exhausted: 503 with Retry-After (our fault)."""

    status = 503

    def __init__(self, message: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(
            None,
            message or "Server busy: body memory budget exhausted",
            {"Retry-After": str(retry_after_s)},
        )


class BodyTimeout(BodyError, RequestTimeout):
    """The body stopped arriving (read timeout or below the minimum rate): 408."""

    status = 408


class ClientDisconnected(GatewayError):
    """The client went away mid-request; there is nobody to reply to.

    Raised from body reads and response writes, and delivered to a request's ``error``
    listeners. Not an HTTPError (nor a BodyError): it never becomes a reply, and an app's
    ``except HTTPError`` does not swallow it.
    """

    def __init__(self, message: str = "client disconnected") -> None:
        super().__init__(message)
        self.message = message


class WebSocketClosed(GatewayError):
    """The WebSocket is closed; ``code`` and ``reason`` are the close frame's."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(f"websocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
