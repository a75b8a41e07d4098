# The trio-native LAN client: HTTP/1.1 (gateway.client.http), the seeds' request object with
# status handlers and events (gateway.client.request), JSON text sequences
# (gateway.client.jsonseq), Sails virtual requests over Socket.IO (gateway.client.socket) and a
# blocking facade (gateway.client.sync). Imported only by code that uses it, never by the server.
from __future__ import annotations

from gateway.client.errors import (
    Aborted,
    ClientError,
    ConnectError,
    Forbidden,
    InvalidJSON,
    NotFound,
    RequestTimeout,
    ResponseTooLarge,
    StatusError,
    TooManyRedirects,
    TransportError,
)
from gateway.client.http import Client, Headers, Response
from gateway.client.request import Progress, Request
from gateway.client.socket import JWR, Push, SailsSocket, open_socket

__all__ = [
    "Client",
    "Response",
    "Headers",
    "Request",
    "Progress",
    "open_socket",
    "SailsSocket",
    "JWR",
    "Push",
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
]
