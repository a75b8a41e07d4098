# The public API of the gateway: what a device developer imports. Nothing else is public.
from __future__ import annotations

from gateway.app import bodyparsers
from gateway.app.application import App
from gateway.app.pubsub import SocketHub
from gateway.app.request import Request
from gateway.app.response import Response
from gateway.app.router import Router
from gateway.errors import (
    BadRequest,
    BodyError,
    BodyTooLarge,
    BudgetExceeded,
    ClientDisconnected,
    Forbidden,
    HTTPError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    WebSocketClosed,
)
from gateway.server.websocket import WebSocket

__all__ = [
    "App",
    "bodyparsers",
    "Router",
    "Request",
    "Response",
    "HTTPError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "BodyError",
    "BodyTooLarge",
    "BudgetExceeded",
    "ClientDisconnected",
    "WebSocket",
    "WebSocketClosed",
    "SocketHub",
]
__version__ = "0.1.0"
