# The types of what an app registers: route handlers, middleware, error handlers, WebSocket
# handlers and the `next` they are given, as Protocols, so that `mypy --strict` checks an app's
# functions against what the router calls them with (a handler missing `res`, a sync function,
# a wrong parameter type is an error at the registration).
# Must not: hold behaviour, or import the router or the App (the router imports this).
from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union

if TYPE_CHECKING:
    from gateway.app.request import Request
    from gateway.app.response import Response

__all__ = [
    "Next",
    "Handler",
    "Middleware",
    "ErrorHandler",
    "WebSocketHandler",
    "RouteFn",
    "RouteDecorator",
    "WebSocketDecorator",
]


class Next(Protocol):
    """What middleware gets as ``next``: ``await next()`` runs the rest of the chain,
    ``await next(err)`` skips to the error handlers, ``next("route")`` to the next route,
    ``next("router")`` out of the current router."""

    def __call__(self, err: object = None, /) -> Awaitable[None]: ...


class Handler(Protocol):
    """A route handler: ``async def handler(req: Request, res: Response) -> None``."""

    def __call__(self, req: Request, res: Response, /) -> Awaitable[None]: ...


class Middleware(Protocol):
    """Middleware (or a route handler that may pass on):
    ``async def mw(req: Request, res: Response, next: Next) -> None``."""

    def __call__(self, req: Request, res: Response, next: Next, /) -> Awaitable[None]: ...


class ErrorHandler(Protocol):
    """An error handler, registered with ``use`` (four parameters, as in Express):
    ``async def on_error(err: Exception, req: Request, res: Response, next: Next) -> None``."""

    def __call__(self, err: Any, req: Request, res: Response, next: Next, /) -> Awaitable[None]: ...


class WebSocketHandler(Protocol):
    """A WebSocket route's handler: ``async def live(ws: WebSocket, req: Request) -> None``.

    ``ws`` is typed Any here: the WebSocket class belongs to the server layer, which the app
    layer does not import; annotate it ``gateway.WebSocket`` in the handler.
    """

    def __call__(self, ws: Any, req: Request, /) -> Awaitable[None]: ...


# what route registrations (get, post, all, route, ...) take
RouteFn = Union[Handler, Middleware]  # noqa: UP007 (a runtime alias: | would need the classes)
_R = TypeVar("_R", bound=RouteFn)
_W = TypeVar("_W", bound=WebSocketHandler)


class RouteDecorator(Protocol):
    """What ``@app.get(path)`` and its kind return: registers the decorated handler, returns it
    unchanged."""

    def __call__(self, fn: _R, /) -> _R: ...


class WebSocketDecorator(Protocol):
    """What ``@app.ws(path)`` returns."""

    def __call__(self, fn: _W, /) -> _W: ...
