# Express-style routing: an ordered stack of layers (middleware, routes, mounted routers, error
# handlers) walked with `await next()`. Patterns are compiled when registered, never per request.
# Owns: dispatch order, next()/next(err)/next("route")/next("router"), mount prefix stripping,
# params (mergeParams as the `router` package merges them), req.route, HEAD->GET fallback, 405
# with Allow, and the privilege check of privileged layers.
# Must not: build error replies (gateway.app.application does, in one place) or touch I/O.
from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union, overload

from gateway.app.routing import ParamDecodeError, PathPattern
from gateway.errors import Forbidden, HandlerTimeout, Unauthorized

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

__all__ = ["Router", "Route", "METHODS"]

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

    class _Chain(Protocol):
        """What _then returns: fits every registration method's decorator type."""

        def __call__(self, fn: F, /) -> F: ...


def _then(router: Router, layer: _Layer) -> _Chain:
    """What registering with handlers returns: a decorator that appends one more handler to
    the same route, so ``@app.post("/form", bodyparsers.urlencoded())`` above ``async def
    form(req, res)`` chains the parser before the handler, as Express's
    ``app.post(path, mw, handler)`` does, instead of dropping the handler."""

    def then(fn: F) -> F:
        if isinstance(fn, Router) or not callable(fn):
            raise TypeError(
                f"@{'use' if layer.kind == _MIDDLEWARE else 'route'}(...) "
                f"decorates an async function, not {fn!r}"
            )
        if layer.kind == _MIDDLEWARE:  # one function per middleware layer: the next layer
            stack = router.stack
            stack.insert(
                stack.index(layer) + 1,
                _Layer(_MIDDLEWARE, layer.pattern, [_adapt(fn)], privileged=layer.privileged),
            )
        else:
            layer.fns.append(_adapt(fn))
        return fn

    return then


def _only(fn: F) -> F:
    raise TypeError(
        f"{fn!r}: this registration already has its handler; use the decorator "
        "form without one (@app.ws(path)) or pass the handler, not both"
    )


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


class Route:
    """What ``req.route`` is during a route's handlers (Express's Route): made once, when the
    route is registered.

    Attributes:
        path: the path pattern as registered (``"/user/:id"``, or the compiled regex).
        methods: Express's form, lower-case names to True (``{"get": True}``); a route for every
            method (``all``) has ``{"_all": True}``, as ``router.all`` has in Express (Express's
            ``app.all`` registers its handler once per method and lists them all).
        stack: the route's handlers, in order.
    """

    __slots__ = ("path", "methods", "stack")

    def __init__(
        self, path: str | re.Pattern[str], methods: frozenset[str] | None, stack: tuple[Fn, ...]
    ) -> None:
        self.path = path
        self.methods: dict[str, bool] = (
            {"_all": True} if methods is None else {m.lower(): True for m in sorted(methods)}
        )
        self.stack = stack

    def __repr__(self) -> str:
        return f"<Route {self.path!r} {sorted(self.methods)}>"


class _Layer:
    __slots__ = (
        "kind",
        "pattern",
        "methods",
        "fns",
        "privileged",
        "options",
        "router",
        "route",
        "timeout",
    )

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
        route: Route | None = None,
        timeout: float | None = None,
    ) -> None:
        self.kind = kind
        self.pattern = pattern
        self.methods = methods
        self.fns = fns
        self.privileged = privileged
        self.options = options
        self.router = router
        self.route = route
        # a route's own handler deadline in seconds (0.0: none), None: the profile's
        self.timeout = timeout

    def handles(self, method: str) -> bool:
        m = self.methods
        return m is None or method in m or (method == "HEAD" and "GET" in m)


class Router:
    """An Express router: ``use``, ``all``, method routes, ``ws``, mountable routers.

    Args:
        privileged: every layer of this router needs privilege mode (401/403 otherwise).
        case_sensitive: paths match case-sensitively (Express default: False).
        strict: a trailing slash is significant in routes (Express default: False). Mount
            paths (``use``) ignore it, as in Express.
        merge_params: a router mounted at a path with params (``app.use("/shop/:shop_id",
            router)``) sees them in ``req.params`` too; its own params win on a conflict
            (Express ``Router({mergeParams: true})``).
        cors: the CORS policy of this router's routes (gateway.app.cors.check_option): None
            (the enclosing router's, or the profile's [cors]), False (none: same-origin only),
            True, or a dict of [cors] keys over the enclosing policy. A route's own ``cors=``
            option overrides it in turn.

    Raises:
        TypeError, ValueError: a bad ``cors`` option.
    """

    def __init__(
        self,
        *,
        privileged: bool = False,
        case_sensitive: bool = False,
        strict: bool = False,
        merge_params: bool = False,
        cors: bool | dict[str, Any] | None = None,
    ) -> None:
        self.stack: list[_Layer] = []
        self.privileged = privileged
        self.merge_params = merge_params
        self.cors = None if cors is None else _check_cors(cors, "Router(cors=...)")
        self._case = case_sensitive
        self._strict = strict

    def _pattern(self, path: str | re.Pattern[str], end: bool) -> PathPattern:
        # router.use() layers are never strict in Express (its Layer gets strict: false)
        strict = self._strict and end
        return PathPattern(path, end=end, case_sensitive=self._case, strict=strict)

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
        last = self.stack[-1]
        if last.kind != _MIDDLEWARE:  # a mounted router or an error handler: nothing to chain
            return _only
        return _then(self, last)

    def route(
        self,
        methods: Iterable[str] | None,
        path: Path,
        *fns: RouteFn,
        privileged: bool = False,
        **options: Any,
    ) -> RouteDecorator:
        """Register handlers for ``methods`` (None: all) at ``path``; a decorator without fns.

        Options: ``max_body_bytes``, ``cors`` (see Router), ``wants_json``, and ``timeout``:
        this route's handler deadline, counted from when the route is reached, over the
        profile's ``[app] handler_timeout_s`` (seconds or a duration such as ``"2s"``; None
        or 0: none, for a stream). Past it the handlers are cancelled and the client gets
        504 (gateway.app.deadline).

        Raises:
            TypeError, ValueError: a bad ``cors`` or ``timeout`` option.
        """
        if options.get("cors") is not None:  # refused at once, even before a handler comes
            options["cors"] = _check_cors(options["cors"], f"route {path!r}: cors")
        if "timeout" in options:
            options["timeout"] = _check_timeout(options["timeout"], f"route {path!r}: timeout")
        if not fns:

            def deco(fn: F) -> F:
                self.route(methods, path, fn, privileged=privileged, **options)
                return fn

            return deco
        mset = None if methods is None else frozenset(m.upper() for m in methods)
        layer = _Layer(
            _ROUTE,
            self._pattern(path, end=True),
            [_adapt(f) for f in fns],
            methods=mset,
            privileged=privileged or self.privileged,
            options=options or None,
            route=Route(path, mset, fns),
            timeout=options.get("timeout"),
        )
        self.stack.append(layer)
        return _then(self, layer)

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
        """A WebSocket route: ``async def handler(ws, req)``.

        Raises:
            TypeError: a ``timeout`` option (a WebSocket handler runs for the socket's life,
                outside any request's deadline), or a bad ``cors`` option.
            ValueError: a bad ``cors`` option.
        """
        if "timeout" in options:
            raise TypeError(
                f"ws route {path!r}: timeout= does not apply: a WebSocket handler runs "
                "for as long as its socket is open (close it from the handler instead)"
            )
        if options.get("cors") is not None:
            options["cors"] = _check_cors(options["cors"], f"ws route {path!r}: cors")
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
                route=Route(path, frozenset({"GET"}), (fn,)),
            )
        )
        return _only

    # -- CORS: which policy a request would meet (gateway.app.cors), without running anything --
    def cors_options(self, method: str, path: str, upgrade: bool = False) -> tuple[Any, ...]:
        """The ``cors`` options that apply to the route a ``method`` request for ``path``
        would reach, outermost first: this router's own, each mounted router's on the way, and
        the route's. Only route patterns and methods are matched: no middleware runs, nothing
        is decoded; the first matching route decides (a preflight announces the method of a
        request that has not been made, so it cannot be routed for real).

        Args:
            method: the method (a preflight's Access-Control-Request-Method).
            path: the request path (relative to this router).
            upgrade: a WebSocket handshake (only ws routes match it).

        Returns:
            The options set along the way (None ones left out); () when none is.
        """
        found = self._cors_route(method, path, upgrade, 0)
        own = () if self.cors is None else (self.cors,)
        return own if found is None else own + found

    def _cors_route(
        self, method: str, path: str, upgrade: bool, depth: int
    ) -> tuple[Any, ...] | None:
        # None: no route of this router matches
        if depth > 32:  # a router mounted inside itself would never end
            return None
        for layer in self.stack:
            kind = layer.kind
            if kind == _ROUTE or kind == _WS:
                if (kind == _WS) is not upgrade or not layer.handles(method):
                    continue
            elif kind != _MOUNT:
                continue
            try:
                m = layer.pattern.match(path)
            except ParamDecodeError:
                continue
            if m is None:
                continue
            sub = layer.router
            if sub is not None:
                rest = path[m[1] :] or "/"
                inner = sub._cors_route(
                    method, rest if rest[0] == "/" else "/" + rest, upgrade, depth + 1
                )
                if inner is not None:
                    return inner if sub.cors is None else (sub.cors, *inner)
                continue
            option = layer.options.get("cors") if layer.options else None
            return () if option is None else (option,)
        return None

    def cors_chains(
        self, outer: tuple[Any, ...] = (), label: str = "App", depth: int = 0
    ) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Every chain of ``cors`` options a request can meet (see cors_options), with what
        to name in an error: compiled and checked once, when the App is bound.

        Yields:
            (label, chain) for this router (when it has an option) and each route with one.
        """
        own = outer if self.cors is None else (*outer, self.cors)
        if self.cors is not None:
            yield label, own
        if depth > 32:
            return
        for layer in self.stack:
            if layer.router is not None:
                yield from layer.router.cors_chains(
                    own, f"{label} > Router at {layer.pattern.pattern!r}", depth + 1
                )
            elif layer.options and layer.options.get("cors") is not None:
                yield (f"{label} > route {layer.pattern.pattern!r}", (*own, layer.options["cors"]))

    # -- dispatch ------------------------------------------------------------------------------
    async def handle(
        self,
        req: Request,
        res: Response,
        out: Next,
        allowed: set[str] | None = None,
        parent: dict[Any, Any] | None = None,
    ) -> None:
        """Walk the stack for ``req`` (``req.path`` is relative to this router's mount point).

        ``out(err=None)`` is called when the stack is exhausted or ``next("router")`` is called.
        ``allowed`` collects the methods of routes whose path matched (for 405/Allow).
        ``parent``: the params of the mount point, merged under every layer's (the mounting
        router passes them when this router has ``merge_params``).
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
            while True:  # one try per next() call, not per layer: this loop is the hot path
                try:
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
                        m = layer.pattern.match(path)  # ParamDecodeError: see below
                        if m is None:
                            continue
                        if kind == _ROUTE:
                            methods = layer.methods  # layer.handles(method), inlined (hot)
                            if not (
                                methods is None
                                or method in methods
                                or (method == "HEAD" and "GET" in methods)
                            ):
                                if allowed is not None and methods is not None:
                                    allowed.update(methods)
                                continue
                        params, consumed = m
                        if parent is not None:
                            params = _merge_params(params, parent)
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
                                await _mount(
                                    layer.router, req, res, params, consumed, next_, allowed
                                )
                            elif kind == _ERROR:
                                req.params = params
                                if consumed:  # mounted at a path: it sees the path below
                                    await _stripped(
                                        partial(layer.fns[0], err, req, res), req, consumed, next_
                                    )
                                else:
                                    await layer.fns[0](err, req, res, next_)
                            elif kind == _MIDDLEWARE:
                                req.params = params
                                if consumed:
                                    await _stripped(
                                        partial(layer.fns[0], req, res), req, consumed, next_
                                    )
                                else:
                                    await layer.fns[0](req, res, next_)
                            elif kind == _WS:
                                # the transport's sink accepts the handshake (checks, then the
                                # 101 and the handler once this request is over); others cannot
                                # upgrade
                                req.params = params
                                req.route_options = layer.options
                                req.route = layer.route
                                await res.accept_websocket(layer.fns[0], layer.options or {})
                            else:
                                req.params = params
                                req.route_options = layer.options
                                # kept after the route calls next(), as in Express (a logger that
                                # awaits next() then reads req.route.path sees the route that ran)
                                req.route = layer.route
                                if layer.timeout is None:
                                    await _run_route(layer, req, res, next_)
                                else:
                                    await _timed_route(layer, req, res, next_)
                        except Exception as exc:  # to the error-handling layers, like Express
                            if res.finished or isinstance(exc, HandlerTimeout):
                                raise  # a passed deadline is the gateway's to answer
                            await next_(exc)
                        return
                    break
                except ParamDecodeError as exc:
                    # a malformed %-escape in a param of the layer being matched: to the error
                    # handlers that follow, as Express does (the first error is kept)
                    if res.finished:
                        raise
                    if err is None:
                        err = exc
            await out(err)

        try:
            await next_()
        finally:
            # next_ refers to itself through its closure cell: without this, every request
            # would leave a reference cycle (holding req and res) for the cycle collector
            next_ = _spent


def _check_cors(value: Any, where: str) -> Any:
    # the CORS module loads only for an app that uses the option
    from gateway.app.cors import check_option

    return check_option(value, where)


def _check_timeout(value: Any, where: str) -> float:
    if value is None:
        return 0.0  # no deadline; checked without loading trio (built-in routes use it)
    from gateway.app.deadline import check_option

    return check_option(value, where)


def _merge_params(params: dict[Any, Any], parent: dict[Any, Any]) -> dict[Any, Any]:
    """The ``router`` package's mergeParams: the mount point's params under this layer's.

    Named params: this layer's win. Numbered captures (regex groups, unnamed ``*``): when both
    sides have ``0``, this layer's are renumbered to follow the parent's (parent ``{0: a}`` and
    ``{0: b}`` give ``{0: a, 1: b}``).
    """
    if not parent:
        return params
    merged = dict(parent)
    if 0 not in params or 0 not in parent:
        merged.update(params)
        return merged
    own = 0
    while own in params:
        own += 1
    offset = 0
    while offset in parent:
        offset += 1
    for i in range(own - 1, -1, -1):  # from the top, so no capture is overwritten before moved
        params[i + offset] = params[i]
        if i < offset:
            del params[i]
    merged.update(params)
    return merged


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


async def _timed_route(layer: _Layer, req: Request, res: Response, next_: Next) -> None:
    # a route with a timeout option: its handlers under their own deadline (loaded only here)
    from gateway.app.deadline import run_route

    assert layer.timeout is not None
    await run_route(layer.timeout, req, _run_route, layer, req, res, next_)


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
    parent = params if router.merge_params else None
    await _stripped(lambda out: router.handle(req, res, out, allowed, parent), req, consumed, next_)


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
    # no trailing slash in base_url (Express), even when a mount's splat took one
    req.base_url = saved[2] + (prefix[:-1] if prefix and prefix[-1] == "/" else prefix)
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
