# Express-style routing: an ordered stack of layers (middleware, routes, mounted routers, error
# handlers) walked with `await next()`. Patterns are compiled when registered, never per request.
# Owns: dispatch order, next()/next(err)/next("route")/next("router"), mount prefix stripping,
# HEAD->GET fallback, 405 with Allow, and the privilege check of privileged layers.
# Must not: build error replies (gateway.app.application does, in one place) or touch I/O.
from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union, overload

from gateway.app.routing import PathPattern
from gateway.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    # the handler types are for the type checker only (gateway.app.handlers loads lazily)
    from gateway.app.handlers import (
        ErrorHandler,
        Handler,
        Middleware,
        Next,
        RouteDecorator,
        RouteFn,
        WebSocketDecorator,
        WebSocketHandler,
    )
    from gateway.app.request import Request
    from gateway.app.response import Response

__all__ = ["Router", "METHODS"]

# Every method h11 accepts is a token; these get shortcut decorators.
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

# The public registration methods are typed with gateway.app.handlers' Protocols (so that a
# user's mypy checks the functions an app registers); inside, every function is called as fn(...).
Fn = Callable[..., Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])
Path = Union[str, re.Pattern[str]]  # noqa: UP007 (a runtime alias)

if TYPE_CHECKING:
    # what use() takes: middleware, (req, res) handlers, error handlers, mounted routers/apps
    UseFn = Union[Handler, Middleware, ErrorHandler, "Router"]  # noqa: UP007
    _U = TypeVar("_U", bound=Union[Handler, Middleware, ErrorHandler])  # noqa: UP007

    class UseDecorator(Protocol):
        """What ``@app.use(path)`` returns."""

        def __call__(self, fn: _U, /) -> _U: ...


def _done(fn: F) -> F:
    # what registering with handlers returns: a no-op decorator, so that every registration
    # method has one typed return (a decorator) whether or not handlers were passed
    return fn

_MIDDLEWARE, _ROUTE, _MOUNT, _ERROR, _WS = range(5)


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 3
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    return sum(
        1
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _adapt(fn: Fn) -> Fn:
    """Call every handler as fn(req, res, next); (req, res) handlers simply don't get next."""
    if not inspect.iscoroutinefunction(fn) and not inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    ):
        raise TypeError(f"handler {fn!r} must be an async function")
    if _arity(fn) >= 3:
        return fn

    async def two(req: Request, res: Response, next: Next) -> None:
        await fn(req, res)

    two.__name__ = getattr(fn, "__name__", "handler")
    two.__wrapped__ = fn  # type: ignore[attr-defined]
    return two


class _Layer:
    __slots__ = ("kind", "pattern", "methods", "fns", "privileged", "options", "router")

    def __init__(
        self,
        kind: int,
        pattern: PathPattern,
        fns: list[Fn],
        *,
        methods: frozenset[str] | None = None,
        privileged: bool = False,
        options: dict[str, Any] | None = None,
        router: Router | None = None,
    ) -> None:
        self.kind = kind
        self.pattern = pattern
        self.methods = methods
        self.fns = fns
        self.privileged = privileged
        self.options = options
        self.router = router

    def handles(self, method: str) -> bool:
        m = self.methods
        return m is None or method in m or (method == "HEAD" and "GET" in m)


class Router:
    """An Express router: ``use``, ``all``, method routes, ``ws``, mountable routers.

    Args:
        privileged: every layer of this router needs privilege mode (401/403 otherwise).
        case_sensitive: paths match case-sensitively (Express default: False).
        strict: a trailing slash is significant (Express default: False).
    """

    def __init__(
        self, *, privileged: bool = False, case_sensitive: bool = False, strict: bool = False
    ) -> None:
        self.stack: list[_Layer] = []
        self.privileged = privileged
        self._case = case_sensitive
        self._strict = strict

    def _pattern(self, path: str | re.Pattern[str], end: bool) -> PathPattern:
        return PathPattern(path, end=end, case_sensitive=self._case, strict=self._strict)

    # -- registration --------------------------------------------------------------------------
    @overload
    def use(self, path: Path, /, *fns: UseFn, privileged: bool = False) -> UseDecorator: ...

    @overload
    def use(self, fn: UseFn, /, *fns: UseFn, privileged: bool = False) -> UseDecorator: ...

    def use(self, path: Any, /, *fns: Any, privileged: bool = False) -> UseDecorator:
        """Middleware, error handlers (4 arguments) and mounted routers/apps, in order.

        ``use(fn)``, ``use("/api", fn, ...)``, ``use("/api", router)``; as a decorator:
        ``@app.use("/api")``.
        """
        if not isinstance(path, (str, re.Pattern)):
            fns, path = (path, *fns), "/"
        if not fns:

            def deco(fn: F) -> F:
                self.use(path, fn, privileged=privileged)
                return fn

            return deco
        pattern = self._pattern(path, end=False)
        for fn in fns:
            priv = privileged or self.privileged
            if isinstance(fn, Router):
                self.stack.append(
                    _Layer(_MOUNT, pattern, [], router=fn, privileged=priv or fn.privileged)
                )
            elif _arity(fn) >= 4:
                self.stack.append(_Layer(_ERROR, pattern, [fn], privileged=priv))
            else:
                self.stack.append(_Layer(_MIDDLEWARE, pattern, [_adapt(fn)], privileged=priv))
        return _done

    def route(
        self,
        methods: Iterable[str] | None,
        path: Path,
        *fns: RouteFn,
        privileged: bool = False,
        **options: Any,
    ) -> RouteDecorator:
        """Register handlers for ``methods`` (None: all) at ``path``; a decorator without fns."""
        if not fns:

            def deco(fn: F) -> F:
                self.route(methods, path, fn, privileged=privileged, **options)
                return fn

            return deco
        mset = None if methods is None else frozenset(m.upper() for m in methods)
        self.stack.append(
            _Layer(
                _ROUTE,
                self._pattern(path, end=True),
                [_adapt(f) for f in fns],
                methods=mset,
                privileged=privileged or self.privileged,
                options=options or None,
            )
        )
        return _done

    def all(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(None, path, *fns, **kw)

    def get(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("GET",), path, *fns, **kw)

    def post(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("POST",), path, *fns, **kw)

    def put(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("PUT",), path, *fns, **kw)

    def patch(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("PATCH",), path, *fns, **kw)

    def delete(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("DELETE",), path, *fns, **kw)

    def head(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("HEAD",), path, *fns, **kw)

    def options(self, path: Path, *fns: RouteFn, **kw: Any) -> RouteDecorator:
        return self.route(("OPTIONS",), path, *fns, **kw)

    def ws(
        self,
        path: Path,
        fn: WebSocketHandler | None = None,
        *,
        privileged: bool = False,
        **options: Any,
    ) -> WebSocketDecorator:
        """A WebSocket route: ``async def handler(ws, req)``."""
        if fn is None:

            def deco(f: F) -> F:
                self.ws(path, f, privileged=privileged, **options)
                return f

            return deco
        self.stack.append(
            _Layer(
                _WS,
                self._pattern(path, end=True),
                [fn],
                methods=frozenset({"GET"}),
                privileged=privileged or self.privileged,
                options=options or None,
            )
        )
        return _done

    # -- dispatch ------------------------------------------------------------------------------
    async def handle(
        self, req: Request, res: Response, out: Next, allowed: set[str] | None = None
    ) -> None:
        """Walk the stack for ``req`` (``req.path`` is relative to this router's mount point).

        ``out(err=None)`` is called when the stack is exhausted or ``next("router")`` is called.
        ``allowed`` collects the methods of routes whose path matched (for 405/Allow).
        """
        stack = self.stack
        n = len(stack)
        idx = 0
        path = req.path
        method = req.method
        upgrade = req.upgrade  # set by the transport: a GET with Upgrade: websocket

        async def next_(err: Any = None) -> None:
            nonlocal idx
            if err == "router":
                await out()
                return
            if err == "route":
                err = None
            while idx < n:
                layer = stack[idx]
                idx += 1
                kind = layer.kind
                if err is not None:
                    if kind != _ERROR:
                        continue
                elif kind == _ERROR:
                    continue
                elif kind == _ROUTE or kind == _WS:
                    if (kind == _WS) is not upgrade:
                        continue
                m = layer.pattern.match(path)
                if m is None:
                    continue
                if kind == _ROUTE and not layer.handles(method):
                    if allowed is not None and layer.methods is not None:
                        allowed.update(layer.methods)
                    continue
                params, consumed = m
                try:
                    if layer.privileged and not req.privileged:
                        if req.auth_failed:
                            raise Forbidden(None, "Forbidden: privilege required")
                        raise Unauthorized(
                            None,
                            "Unauthorized: privilege required",
                            {"WWW-Authenticate": 'Bearer realm="gateway"'},
                        )
                    if kind == _MOUNT:
                        assert layer.router is not None
                        await _mount(layer.router, req, res, params, consumed, next_, allowed)
                    elif kind == _ERROR:
                        req.params = params
                        if consumed:  # mounted at a path: it sees the path below (Express)
                            await _stripped(partial(layer.fns[0], err, req, res), req, consumed,
                                            next_)
                        else:
                            await layer.fns[0](err, req, res, next_)
                    elif kind == _MIDDLEWARE:
                        req.params = params
                        if consumed:
                            await _stripped(partial(layer.fns[0], req, res), req, consumed, next_)
                        else:
                            await layer.fns[0](req, res, next_)
                    elif kind == _WS:
                        # the transport's sink accepts the handshake (checks, then the 101 and
                        # the handler once this request is over); others cannot upgrade
                        req.params = params
                        req.route_options = layer.options
                        await res.accept_websocket(layer.fns[0], layer.options or {})
                    else:
                        req.params = params
                        req.route_options = layer.options
                        await _run_route(layer, req, res, next_)
                except Exception as exc:  # to the error-handling layers, like Express
                    if res.finished:
                        raise
                    await next_(exc)
                return
            await out(err)

        try:
            await next_()
        finally:
            # next_ refers to itself through its closure cell: without this, every request
            # would leave a reference cycle (holding req and res) for the cycle collector
            next_ = _spent


async def _spent(err: Any = None) -> None:
    """What a request's ``next`` refers to once the request is over (a late call does nothing)."""


async def _run_route(layer: _Layer, req: Request, res: Response, next_: Next) -> None:
    fns = layer.fns
    if len(fns) == 1:
        fn = fns[0]
        plain = getattr(fn, "__wrapped__", None)  # a (req, res) handler: no next to pass
        if plain is not None:
            await plain(req, res)
        else:
            await fn(req, res, next_)
        return
    i = 0

    async def route_next(err: Any = None) -> None:
        nonlocal i
        if err is not None and err != "route":
            await next_(err)
            return
        if err == "route" or i >= len(fns):
            await next_()
            return
        fn = fns[i]
        i += 1
        await fn(req, res, route_next)

    try:
        await route_next()
    finally:
        route_next = _spent  # the same self-reference as next_ in Router.handle


async def _mount(
    router: Router,
    req: Request,
    res: Response,
    params: dict[Any, Any],
    consumed: int,
    next_: Next,
    allowed: set[str] | None,
) -> None:
    req.params = params
    await _stripped(lambda out: router.handle(req, res, out, allowed), req, consumed, next_)


async def _stripped(
    call: Callable[[Next], Awaitable[None]], req: Request, consumed: int, next_: Next
) -> None:
    """Run ``call(next)`` with the first ``consumed`` characters of the path moved from
    ``req.path``/``req.url`` to ``req.base_url``; restored before ``next`` continues outside."""
    saved = (req.path, req.url, req.base_url)
    prefix = req.path[:consumed]
    rest = req.path[consumed:] or "/"
    if not rest.startswith("/"):
        rest = "/" + rest
    req.base_url = saved[2] + prefix
    req.path = rest
    req.url = rest + req.url[len(saved[0]) :]
    restored = False

    def restore() -> None:
        nonlocal restored
        if not restored:
            req.path, req.url, req.base_url = saved
            restored = True

    async def out(err: Any = None) -> None:
        restore()
        await next_(err)

    try:
        await call(out)
    finally:
        restore()
