# The App: a Router plus what a running gateway binds to it (settings, memory budget,
# credentials, statistics), and the built-in /_gateway/ routes: health, stats, and (loaded on
# first use, from gateway.app.status) the status page, its event stream and the Prometheus
# metrics.
# Must not: touch sockets or run requests itself: gateway.app.exchange runs each request
# through the App's chain and turns errors into replies.
from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.app.auth import Credentials
from gateway.app.metrics import Metrics
from gateway.app.router import Router
from gateway.body.stream import MemoryBudget
from gateway.http.target import parse_query

if TYPE_CHECKING:
    from gateway.app.bans import Bans
    from gateway.app.contracts import StatsProvider
    from gateway.app.cors import Cors
    from gateway.app.pubsub import SocketHub
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.settings import Settings

__all__ = ["App", "Binding"]

log = logging.getLogger("gateway.app")

BackgroundFn = TypeVar("BackgroundFn", bound=Callable[["App"], Awaitable[None]])


@dataclass(frozen=True, slots=True)
class Binding:
    """What ``App.commit_bind`` applies, built and checked by ``App.prepare_bind``.

    Attributes:
        settings: the profile.
        credentials: its credentials file, loaded and checked (empty without one).
        cors: the CORS policies (the profile's and the routes'), None when there are none.
    """

    settings: Settings
    credentials: Credentials
    cors: Cors | None = None


QueryParser = Callable[[str], dict[str, Any]]


def _no_query(query_string: str) -> dict[str, Any]:
    return {}


def _query_parser(option: str | bool | QueryParser) -> QueryParser:
    # Express's compileQueryParser: the "query parser" setting
    if option is True or option == "simple":
        return parse_query  # node's querystring (Express 5's default)
    if option == "extended":
        from gateway.app.qs import parse_extended_query

        return parse_extended_query
    if option is False:
        return _no_query
    if callable(option):
        return option
    raise ValueError(
        f"unknown value for query_parser: {option!r} (simple, extended, False or a function)"
    )


class App(Router):
    """An application: routes and middleware, served by ``gateway serve module:app``.

    Args:
        privileged, case_sensitive, strict, merge_params: as for Router.
        query_parser: how ``req.query`` is parsed (Express's "query parser" setting):
            ``"simple"`` (Express 5's default: node's querystring, repeated keys give a list,
            ``a[b]=1`` stays the flat key ``"a[b]"``), ``"extended"`` (qs, as Express 4 and
            Sails 1.5 HTTP requests: ``a[b]=1`` gives ``{"a": {"b": "1"}}``; see
            gateway.app.qs), False (always ``{}``), or a function from the raw query string
            to a dict (not called for an empty query string). The parser of the app that
            received the request applies, also under a mounted sub-app.
        cors: the CORS policy of the app's routes over the profile's [cors], as for Router.

    Raises:
        ValueError: an unknown ``query_parser``.
        TypeError, ValueError: a bad ``cors`` option.
    """

    # a slot, not a __dict__ entry: req.query reads it, and a slot is the quickest attribute
    __slots__ = ("parse_query",)

    def __init__(
        self,
        *,
        privileged: bool = False,
        case_sensitive: bool = False,
        strict: bool = False,
        merge_params: bool = False,
        query_parser: str | bool | QueryParser = "simple",
        cors: bool | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            privileged=privileged,
            case_sensitive=case_sensitive,
            strict=strict,
            merge_params=merge_params,
            cors=cors,
        )
        self.parse_query: QueryParser = _query_parser(query_parser)
        self.settings: Settings | None = None
        self.budget = MemoryBudget(16 * 1024 * 1024)
        self.credentials = Credentials.empty()
        # the CORS policies of the bound profile (gateway.app.cors), None when none exists:
        # the exchange then spends nothing on CORS
        self.cors_policies: Cors | None = None
        # the profile's handler deadline ([app] handler_timeout_s; 0: none, and no scope)
        self.handler_timeout_s = 0.0
        # failed credentials per peer (gateway.app.bans), made with the first failure
        self.bans: Bans | None = None
        self.clock: Callable[[], float] = time.monotonic  # the server sets its own
        self.locals: dict[str, Any] = {}
        self.started_at = time.monotonic()
        self.stats_provider: StatsProvider | None = None  # the server's figures
        self.requests_served = 0
        self.errors_5xx = 0
        self._sockets: SocketHub | None = None
        self.builtin = _builtin_router(self)  # /_gateway/..., routed by the exchange
        self.background_tasks: list[Callable[[App], Awaitable[None]]] = []
        self.background_failures = 0
        self.metrics = Metrics()
        self.draining = False
        # called once when the server starts draining: long-lived responses (server-sent
        # events) end themselves instead of holding the restart up for the whole grace
        self.drain_hooks: set[Callable[[], None]] = set()

    def background(self, fn: BackgroundFn) -> BackgroundFn:
        """Register ``async def fn(app)`` to run for the server's lifetime (a decorator).

        It starts once the server listens and is cancelled when the server stops (after the
        drain), e.g. a sensor poller that pushes readings to sockets. Handlers and these tasks
        run on trio: sleep with ``trio.sleep``, run blocking reads in
        ``trio.to_thread.run_sync``. An exception ends the task only: it is logged and counted
        (``background_failures`` in /_gateway/stats); the server keeps serving.

        Returns:
            ``fn`` unchanged.
        """
        self.background_tasks.append(fn)
        return fn

    @property
    def sockets(self) -> SocketHub:
        """Rooms and pushes for Socket.IO clients (the Sails API), made on first use."""
        hub = self._sockets
        if hub is None:
            from gateway.app.pubsub import SocketHub

            hub = self._sockets = SocketHub()
        return hub

    @property
    def has_sockets(self) -> bool:
        """True once ``sockets`` was used (a socket connected or the app pushed)."""
        return self._sockets is not None

    def bind(self, settings: Settings) -> None:
        """Attach a profile's settings: memory budget, credentials. Called by the server.

        Raises:
            ConfigError: the credentials file is unsafe or malformed (nothing changed).
        """
        self.commit_bind(self.prepare_bind(settings))

    def prepare_bind(self, settings: Settings) -> Binding:
        """Build and check what binding ``settings`` needs, changing nothing: the first half
        of a reload, which must be refused whole or applied whole.

        Args:
            settings: the profile to bind.

        Returns:
            The Binding to pass to commit_bind().

        Raises:
            ConfigError: the credentials file is missing, unsafe or malformed; a route's
                ``cors`` option conflicts with the profile's [cors].
        """
        path = settings.server.credentials_file
        credentials = Credentials.load(path) if path else Credentials.empty()
        cors = None
        if settings.cors.allowed_origins or next(self.cors_chains(), None) is not None:
            from gateway.app.cors import Cors

            cors = Cors(settings.cors, self, settings.source)
            if not cors.active:
                cors = None
        return Binding(settings, credentials, cors)

    def commit_bind(self, binding: Binding) -> None:
        """Apply a prepared Binding. Cannot fail, and does not wait: no request sees half of it.

        The memory budget is resized in place, never replaced: the bodies in flight stay
        charged to it (see MemoryBudget.resize), so the limit holds across a reload.

        Args:
            binding: from prepare_bind().
        """
        settings = self.settings = binding.settings
        self.credentials = binding.credentials
        self.cors_policies = binding.cors
        self.handler_timeout_s = settings.app.handler_timeout_s
        self.budget.resize(settings.memory.body_budget_bytes)
        if self.bans is not None:
            self.bans.configure(settings.bans)
        if settings.websocket.allowed_origins:
            log.warning(
                "%s: [websocket] allowed_origins is deprecated: it still admits "
                "sockets from those origins; move it to [cors] allowed_origins, which "
                "lets their pages call routes too (see README, CORS)",
                settings.source,
            )

    def begin_drain(self) -> None:
        """The server stops taking requests: end the streams that never end by themselves.

        Called by the server's shutdown(); runs every drain hook once.
        """
        self.draining = True
        hooks = list(self.drain_hooks)
        self.drain_hooks.clear()
        for hook in hooks:
            hook()

    def auth_failed(self, peer: tuple[str, int] | None) -> None:
        """Count a request that presented a wrong bearer token (the exchange calls this): the
        peer's failures, and a ban past [bans] max_failures (gateway.app.bans, loaded now).

        Args:
            peer: the connection's peer.
        """
        bans = self.bans
        if bans is None:
            from gateway.app.bans import Bans
            from gateway.settings import BansSettings

            settings = self.settings.bans if self.settings is not None else BansSettings()
            bans = self.bans = Bans(settings, self.clock)
        bans.fail(peer)

    # -- statistics --------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "requests": self.requests_served,
            "errors_5xx": self.errors_5xx,
            "background_failures": self.background_failures,
            "memory": {"body_budget": self.budget.statistics(), "rss_bytes": _rss_bytes()},
            "auth": (
                self.bans.statistics()
                if self.bans is not None
                else {
                    "failures": 0,
                    "bans": 0,
                    "refused": 0,
                    "banned_peers": 0,
                    "tracked_peers": 0,
                    "max_tracked_peers": (
                        self.settings.bans.max_tracked_peers if self.settings is not None else 0
                    ),
                }
            ),
        }
        if self.settings is not None:
            stats["profile"] = self.settings.profile
        if self.stats_provider is not None:
            stats.update(self.stats_provider.statistics())
        return stats


def _builtin_router(app: App) -> Router:
    r = Router()

    async def health(req: Request, res: Response) -> None:
        await res.json({"status": "ok", "mode": req.mode})

    async def stats(req: Request, res: Response) -> None:
        await res.json(app.statistics())

    # The status page and metrics are imported on first use: a gateway nobody looks at does
    # not carry their code. Who may see them is the profile's [status] (read per request, so a
    # reload applies it), not a fixed route option.
    async def page(req: Request, res: Response) -> None:
        from gateway.app import status

        await status.page(app, req, res)

    async def snapshot(req: Request, res: Response) -> None:
        from gateway.app import status

        await status.snapshot_json(app, req, res)

    async def events(req: Request, res: Response) -> None:
        from gateway.app import status

        await status.events(app, req, res)

    async def metrics(req: Request, res: Response) -> None:
        from gateway.app import status

        await status.metrics(app, req, res)

    r.get("/_gateway/health", health)
    r.get("/_gateway/stats", stats, privileged=True)
    r.get("/_gateway/", page)
    r.get("/_gateway/status", snapshot)
    r.get("/_gateway/events", events, timeout=None)  # a stream: no handler deadline
    r.get("/_gateway/metrics", metrics)
    return r


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
