# The App: a Router plus what a running gateway binds to it (settings, memory budget,
# credentials, statistics), and the built-in /_gateway/health and /_gateway/stats routes.
# Must not: touch sockets or run requests itself: gateway.app.exchange runs each request
# through the App's chain and turns errors into replies.
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from gateway.app.auth import Credentials
from gateway.app.body import MemoryBudget
from gateway.app.router import Router

if TYPE_CHECKING:
    from gateway.app.contracts import StatsProvider
    from gateway.app.pubsub import SocketHub
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.settings import Settings

__all__ = ["App"]

log = logging.getLogger("gateway.app")


class App(Router):
    """An application: routes and middleware, served by ``gateway serve module:app``.

    Args:
        privileged, case_sensitive, strict: as for Router.
    """

    def __init__(
        self, *, privileged: bool = False, case_sensitive: bool = False, strict: bool = False
    ) -> None:
        super().__init__(privileged=privileged, case_sensitive=case_sensitive, strict=strict)
        self.settings: Settings | None = None
        self.budget = MemoryBudget(16 * 1024 * 1024)
        self.credentials = Credentials.empty()
        self.locals: dict[str, Any] = {}
        self.started_at = time.monotonic()
        self.stats_provider: StatsProvider | None = None  # the server's figures
        self.requests_served = 0
        self.errors_5xx = 0
        self._sockets: SocketHub | None = None
        self.builtin = _builtin_router(self)  # /_gateway/..., routed by the exchange

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
            ConfigError: the credentials file is unsafe or malformed.
        """
        self.settings = settings
        self.budget = MemoryBudget(settings.memory.body_budget_bytes)
        path = settings.server.credentials_file
        self.credentials = Credentials.load(path) if path else Credentials.empty()

    # -- statistics --------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "requests": self.requests_served,
            "errors_5xx": self.errors_5xx,
            "memory": {"body_budget": self.budget.statistics(), "rss_bytes": _rss_bytes()},
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

    r.get("/_gateway/health", health)
    r.get("/_gateway/stats", stats, privileged=True)
    return r


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
