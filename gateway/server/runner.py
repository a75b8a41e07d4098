# The process around a Server: systemd readiness/watchdog/stopping notifications, socket
# activation, and signals (SIGTERM/SIGINT drain and stop, a second one stops at once; SIGHUP
# reloads the profile: new limits for new connections, an invalid profile is refused whole and
# logged; either way RELOADING=1 is followed by READY=1).
# Must not: serve connections itself (gateway.server.serve) or parse profiles (gateway.settings).
from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from gateway.body.budget import release_free_memory, tune_allocator
from gateway.errors import ConfigError
from gateway.http.parser import LABEL as PARSER_LABEL
from gateway.server.serve import Server
from gateway.server.systemd import Notifier, listen_fds, watchdog_interval_s, watchdog_loop

if TYPE_CHECKING:
    from gateway.app.application import App
    from gateway.settings import Settings

__all__ = ["run"]

log = logging.getLogger("gateway")


async def run(app: App, settings: Settings, profile: str, overrides: dict[str, str]) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, with systemd integration when systemd is there."""
    tune_allocator()  # freed body buffers go back to the OS: RSS follows the body budget
    notifier = Notifier.from_environ(os.environ)
    sockets = listen_fds(os.environ)
    server = Server(app, settings, sockets or None)
    await server.open_listeners()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            where = ", ".join(_address(a) for a in server.addresses)
            log.info(
                "serving on %s with profile %s (HTTP parser %s)",
                where,
                settings.profile,
                PARSER_LABEL,
            )
            notifier.ready(f"serving on {where} (profile {settings.profile})")
            tune_collector()
            release_free_memory()  # what start-up freed (module loading, profile, routes)
            interval = watchdog_interval_s(os.environ)
            if interval:
                nursery.start_soon(watchdog_loop, notifier, interval)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    _reload(server, notifier, profile, overrides)
                    continue
                if server.draining:
                    log.warning("second stop signal: stopping now")
                    nursery.cancel_scope.cancel()
                    break
                log.info(
                    "stopping: draining in-flight requests (up to %gs)",
                    server.settings.server.shutdown_grace_s,
                )  # the reloaded profile's
                notifier.stopping("draining")
                server.shutdown()
                nursery.start_soon(_stop_when_done, server, nursery)
    notifier.close()


# Young-generation threshold while serving (CPython's default is 700). A request's objects live
# across a few awaits, so with tens of connections in flight 700 net allocations are crossed
# every few requests and each collection promotes the in-flight objects it finds, which then
# feed generation 1 and 2 collections: measured under wrk -c50, GET /hello, 624 young, 57 middle
# and 5 full collections per 14.7k requests took about 7% of the server's CPU. At 7000: 46 young,
# 4 middle, none full, under 0.3%. Most garbage here is freed by reference counting the moment
# it dies; the threshold only delays cyclic garbage, a few hundred KiB at most.
GC_YOUNG_THRESHOLD = 7000


def tune_collector() -> None:
    """Once start-up is over: move what it allocated (modules, routes, the profile: about 26k
    objects) to the collector's permanent generation, which full collections skip (a full
    collection went from about 14 ms to under 1 ms), and raise the young threshold
    (GC_YOUNG_THRESHOLD). Objects made later (a reload's) are collected as usual.
    """
    gc.collect()  # freeze what is live, not start-up's garbage
    gc.freeze()
    _, middle, full = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, full)


async def _stop_when_done(server: Server, nursery: trio.Nursery) -> None:
    # serve() returns when its sessions drained (or the grace ran out); then stop the rest
    await server.stopped.wait()
    nursery.cancel_scope.cancel()


_reloads = 0  # reloads handled by this process: the generation in the reload-status file


def _reload(server: Server, notifier: Notifier, profile: str, overrides: dict[str, str]) -> None:
    from gateway.settings import load_settings

    global _reloads
    _reloads += 1
    notifier.reloading("reloading profile")
    # Every RELOADING=1 gets its READY=1, whatever happens: systemd keeps the unit "reloading"
    # until then. A reload is a transaction (Server.reload), so a refused one changed nothing.
    try:
        settings = load_settings(profile, overrides=overrides)
        server.reload(settings)
    except ConfigError as exc:
        server.app.metrics.reloads_refused += 1
        log.error("reload refused, keeping the running profile: %s", exc)
        notifier.ready(f"reload refused: {exc}"[:200])
        write_reload_status(os.environ, _reloads, f"refused {exc}")
        return
    except Exception as exc:  # a bug, not the profile: keep serving what runs, and say so
        server.app.metrics.reloads_refused += 1
        log.exception("reload failed, keeping the running profile")
        notifier.ready(f"reload failed: {type(exc).__name__}: {exc}"[:200])
        write_reload_status(os.environ, _reloads, f"refused {type(exc).__name__}: {exc}")
        return
    server.app.metrics.reloads_applied += 1
    log.info("reloaded profile %s", settings.profile)
    notifier.ready(f"reloaded profile {settings.profile}")
    write_reload_status(os.environ, _reloads, f"ok {settings.profile}")


RELOAD_STATUS = "reload-status"


def write_reload_status(environ: Mapping[str, str], generation: int, outcome: str) -> None:
    """Record a reload's outcome for ``gateway reload`` (systemd's ExecReload=), which waits
    for it: ``$RUNTIME_DIRECTORY/reload-status`` holds ``<generation> ok|refused <text>``.

    Written atomically (rename); nothing without a runtime directory (not under systemd).
    """
    where = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not where:
        return
    path = os.path.join(where, RELOAD_STATUS)
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{generation} {outcome}\n")
        os.replace(path + ".tmp", path)
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc.strerror)


def _address(addr: object) -> str:
    """``127.0.0.1:8080``, ``[::1]:8080`` or a Unix socket path, for logs and STATUS=."""
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)
