# The public API of the gateway: what a device developer imports. Nothing else is public.
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.app.application import App
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
from gateway.version import __version__ as __version__

__all__ = [
    "App",
    "bodyparsers",
    "cookie_parser",
    "Router",
    "Request",
    "Response",
    "Handler",
    "Middleware",
    "ErrorHandler",
    "Next",
    "WebSocketHandler",
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

if TYPE_CHECKING:
    from gateway.app.cookies import cookie_parser
    from gateway.app.handlers import ErrorHandler, Handler, Middleware, Next, WebSocketHandler
    from gateway.app.pubsub import SocketHub
    from gateway.body import parsers as bodyparsers
    from gateway.server.websocket import WebSocket

# Imported on first use: an app without body parsers or WebSockets does not pay their memory
# (zlib, multipart, wsproto's handshake machinery) on a device with a few hundred MiB.
# The handler types are Protocols for type checkers (about 25 KiB): loaded when imported.
_LAZY = {
    "bodyparsers": "gateway.body.parsers",
    "WebSocket": "gateway.server.websocket",
    "SocketHub": "gateway.app.pubsub",
    "cookie_parser": "gateway.app.cookies",
    **dict.fromkeys(
        ("Handler", "Middleware", "ErrorHandler", "Next", "WebSocketHandler"),
        "gateway.app.handlers",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    import importlib

    mod = importlib.import_module(module)
    value = mod if name == "bodyparsers" else getattr(mod, name)
    globals()[name] = value
    return value
