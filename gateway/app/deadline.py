# The handler deadline: ``[app] handler_timeout_s`` and a route's ``timeout=`` option. One trio
# cancel scope around a request's handlers, made only when a deadline applies (a scope costs
# ~6 us, so the default path makes none and never loads this module). Owns: checking the route
# option, the scope and its deadline (a route's option moves the profile's scope instead of
# nesting a second one), and turning a passed deadline into HandlerTimeout.
# Must not: build the reply (the exchange answers HandlerTimeout) or know the transport.
from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import trio

from gateway.errors import ConfigError, HandlerTimeout

if TYPE_CHECKING:
    from gateway.app.request import Request

__all__ = ["check_option", "run_app", "run_route"]

log = logging.getLogger("gateway.app")

_EXPECTED = 'seconds (a number, or a duration such as "2s" or "500ms"), or None for no deadline'


class _Deadline:
    """The scope of the request this task serves, and the seconds it was given (for the log)."""

    __slots__ = ("scope", "seconds")

    def __init__(self, scope: trio.CancelScope, seconds: float) -> None:
        self.scope = scope
        self.seconds = seconds


# A trio task serves one request at a time (HTTP session, Sails worker, MQTT request task), so
# the task's context holds the deadline of its request: a route's option finds it here.
_current: ContextVar[_Deadline | None] = ContextVar("gateway_handler_deadline", default=None)


def check_option(value: object, where: str) -> float:
    """Check a route's ``timeout=`` option when the route is registered.

    Args:
        value: seconds as a number or a duration text (``"2s"``, ``"500ms"``, ``"1m"``, as in
            a profile), or None / 0 for no deadline (a streaming route under a profile's).
        where: what to name in an error.

    Returns:
        The seconds, 0.0 for no deadline.

    Raises:
        TypeError: not a number, a text or None.
        ValueError: negative, not finite, or a text that is no duration.
    """
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{where}: expected {_EXPECTED}, got {value!r}")
    from gateway.settings import check_value

    try:
        return float(check_value("app.handler_timeout_s", value, where))
    except ConfigError:
        raise ValueError(f"{where}: expected {_EXPECTED} >= 0, got {value!r}") from None


async def run_app(
    seconds: float, req: Request, fn: Callable[..., Awaitable[None]], *args: Any
) -> None:
    """Run the app's chain for ``req`` under the profile's deadline (the exchange calls this
    only when ``[app] handler_timeout_s`` is set).

    Args:
        seconds: the deadline, from now (> 0).
        req: the request (for the log line).
        fn, args: the chain (``router.handle(req, res, done, allowed)``).

    Raises:
        HandlerTimeout: the deadline passed; the chain was cancelled (its ``finally`` blocks
            ran) and has returned.
    """
    await _run(trio.CancelScope(deadline=trio.current_time() + seconds), seconds, req, fn, args)


async def run_route(
    seconds: float, req: Request, fn: Callable[..., Awaitable[None]], *args: Any
) -> None:
    """Run a route's handlers under the route's own deadline, from now.

    Under a deadline already running for this request (the profile's, or an earlier route's
    that called ``next()``) the route moves that deadline (0: lifts it) rather than nesting a
    scope: a nested scope could only shorten it, and a route must be able to take longer
    (a firmware upload) or opt out (a stream). Without one, a route with 0 costs nothing.

    Args:
        seconds: the route's option (0.0: no deadline).
        req: the request (for the log line).
        fn, args: the route's dispatch.

    Raises:
        HandlerTimeout: as run_app, for a scope made here.
    """
    current = _current.get()
    if current is not None:
        current.scope.deadline = trio.current_time() + seconds if seconds else math.inf
        current.seconds = seconds
        await fn(*args)
    elif seconds:
        scope = trio.CancelScope(deadline=trio.current_time() + seconds)
        await _run(scope, seconds, req, fn, args)
    else:
        await fn(*args)


async def _run(
    scope: trio.CancelScope,
    seconds: float,
    req: Request,
    fn: Callable[..., Awaitable[None]],
    args: tuple[Any, ...],
) -> None:
    deadline = _Deadline(scope, seconds)
    token = _current.set(deadline)
    try:
        with scope:
            await fn(*args)
    finally:
        _current.reset(token)
    if scope.cancelled_caught:
        log.warning(
            "%s %s: no response within the %g s handler deadline: handlers cancelled",
            req.method,
            req.original_url.partition("?")[0],
            deadline.seconds,
        )
        raise HandlerTimeout(deadline.seconds)
