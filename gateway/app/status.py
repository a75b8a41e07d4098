# What the gateway says about itself, for people and for Prometheus: the /_gateway/ status page
# (a static HTML file with inline CSS/JS, read on first request), its figures as one JSON
# snapshot (/_gateway/status) and live as server-sent events (/_gateway/events), and the
# Prometheus text exposition, format 0.0.4, of /_gateway/metrics, written by hand.
# Who may read what is the profile's [status], read per request (a reload applies it); the
# recent error lines (method, path, status) go to privileged viewers only.
# Must not: count anything itself (gateway.app.metrics does, as each request ends).
from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from gateway.app.metrics import DURATION_BUCKETS_S
from gateway.errors import Forbidden, HTTPError, Unauthorized

if TYPE_CHECKING:
    from gateway.app.contracts import MonitoredApp
    from gateway.app.request import Request
    from gateway.app.response import Response
    from gateway.settings import StatusSettings

__all__ = [
    "page",
    "snapshot",
    "snapshot_json",
    "events",
    "metrics",
    "render_metrics",
    "MAX_VIEWERS",
    "UPDATE_INTERVAL_S",
]

#: Status streams open at once (each holds a connection and sends a snapshot a second);
#: one more is a 503 with Retry-After.
MAX_VIEWERS: Final = 8
#: Seconds between two snapshots on the status stream.
UPDATE_INTERVAL_S: Final = 1.0
_PAGE_FILE: Final = Path(__file__).with_name("status_page.html")
_INLINE: Final = re.compile(rb"<(script|style)>(.*?)</\1>", re.S)


# -- who may see it --------------------------------------------------------------------------


def _status_settings(app: MonitoredApp) -> StatusSettings:
    if app.settings is None:
        from gateway.settings import StatusSettings

        return StatusSettings()
    return app.settings.status


def _allow(req: Request, public: bool) -> None:
    """Refuse a user-mode caller when the profile keeps this to privileged ones (401/403, as
    a route marked privileged answers)."""
    if public or req.privileged:
        return
    if req.auth_failed:
        raise Forbidden(None, "Forbidden: privilege required")
    raise Unauthorized(
        None, "Unauthorized: privilege required", {"WWW-Authenticate": 'Bearer realm="gateway"'}
    )


# -- the page --------------------------------------------------------------------------------


@functools.cache
def _page() -> tuple[bytes, str]:
    """The page and its Content-Security-Policy: only its own inline script and style (by
    hash) and connections to this origin; nothing from elsewhere can run in it."""
    html = _PAGE_FILE.read_bytes()
    allowed: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for m in _INLINE.finditer(html):
        digest = base64.b64encode(hashlib.sha256(m.group(2)).digest()).decode()
        allowed[m.group(1)].append(f"'sha256-{digest}'")
    script = " ".join(allowed[b"script"]) or "'none'"
    style = " ".join(allowed[b"style"]) or "'none'"
    csp = (
        f"default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, csp


async def page(app: MonitoredApp, req: Request, res: Response) -> None:
    """GET /_gateway/: the status page. It holds no figures itself (they come over the event
    stream, as the viewer's mode allows), so it is served to anyone who reaches the server."""
    del app, req
    html, csp = _page()
    res.set(
        {
            "Content-Security-Policy": csp,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
    )
    res.type("html")
    await res.send(html)


# -- the figures -----------------------------------------------------------------------------


@functools.cache
def _version() -> str:
    from gateway.discovery import installed_version

    return installed_version()


@functools.cache
def _board() -> str:
    """The board this runs on, read once (device tree or DMI; see gateway.detect)."""
    from gateway.detect import detect

    try:
        return detect("/").board or "unknown"
    except (OSError, ValueError):
        return "unknown"


def snapshot(app: MonitoredApp, privileged: bool) -> dict[str, Any]:
    """The status page's figures now.

    Args:
        app: the running App (its statistics, metrics and settings).
        privileged: include the recent 4xx/5xx lines (method, path, status, time).

    Returns:
        A JSON-ready dict: version, profile, board, uptime, requests, connections,
        WebSockets, Socket.IO sockets, memory (RSS and its ceiling, the body budget).
    """
    stats = app.statistics()
    m = app.metrics
    settings = app.settings
    budget = stats["memory"]["body_budget"]
    by_class = [0] * 10
    for t in m.transports.values():
        for _, cls, _, n in t.requests_by_label():
            by_class[cls] += n
    out: dict[str, Any] = {
        "version": _version(),
        "profile": settings.profile if settings else "",
        "description": settings.description if settings else "",
        "board": _board(),
        "mode": "privilege" if privileged else "user",
        "uptime_s": stats["uptime_s"],
        "requests": {
            "total": sum(by_class),
            "http": m.transports["http"].count,
            "socket": m.transports["socket"].count,
            "4xx": by_class[4],
            "5xx": sum(by_class[5:]),
        },
        "connections": stats.get("connections", {}).get("active", 0),
        "websockets": stats.get("websockets", 0),
        "sockets": stats.get("sockets", {}).get("sockets", 0),
        "draining": stats.get("draining", False),
        "memory": {
            "rss_bytes": stats["memory"]["rss_bytes"],
            "max_bytes": settings.systemd.memory_max_bytes if settings else 0,
            "high_bytes": settings.systemd.memory_high_bytes if settings else 0,
            "budget_used_bytes": budget["used_bytes"],
            "budget_peak_bytes": budget["peak_bytes"],
            "budget_total_bytes": budget["total_bytes"],
            "budget_over_bytes": budget["over_bytes"],
            "budget_rejections": budget["rejections"],
        },
    }
    if privileged:
        out["errors"] = [
            {
                "time": round(e.time, 3),
                "method": e.method,
                "path": e.path,
                "status": e.status,
                "mode": e.mode,
                "transport": e.transport,
            }
            for e in reversed(m.errors)
        ]
    return out


async def snapshot_json(app: MonitoredApp, req: Request, res: Response) -> None:
    """GET /_gateway/status: one snapshot as JSON (for scripts; the page uses the stream)."""
    _allow(req, _status_settings(app).page_public)
    res.set("Cache-Control", "no-cache")
    await res.json(snapshot(app, req.privileged))


async def events(app: MonitoredApp, req: Request, res: Response) -> None:
    """GET /_gateway/events: a ``status`` event with a snapshot every UPDATE_INTERVAL_S, plus
    ``requests.per_s`` over the last interval, until the viewer leaves or the server drains.

    Raises:
        HTTPError: 401/403 (the profile keeps the figures to privileged viewers), 400 (a
            virtual request: a stream needs a connection of its own), 503 (MAX_VIEWERS open).
    """
    _allow(req, _status_settings(app).page_public)
    if req.is_socket:
        raise HTTPError(400, "The status stream needs HTTP (EventSource), not a socket request")
    m = app.metrics
    if m.status_viewers >= MAX_VIEWERS:
        raise HTTPError(503, "Too many status page viewers; retry later", {"Retry-After": "10"})
    m.status_viewers += 1
    try:
        # a snapshot every second is traffic enough to keep the connection busy: no heartbeat
        async with res.sse(heartbeat_s=0) as stream:
            last: tuple[int, float] | None = None
            retry: int | None = 2000  # the page reconnects 2 s after a break
            while True:
                snap = snapshot(app, req.privileged)
                now = trio.current_time()
                total = snap["requests"]["total"]
                per_s = None
                if last is not None and now > last[1]:
                    per_s = round((total - last[0]) / (now - last[1]), 2)
                snap["requests"]["per_s"] = per_s
                last = (total, now)
                await stream.send(snap, event="status", retry_ms=retry)
                retry = None
                await trio.sleep(UPDATE_INTERVAL_S)
    finally:
        m.status_viewers -= 1


# -- Prometheus --------------------------------------------------------------------------------


async def metrics(app: MonitoredApp, req: Request, res: Response) -> None:
    """GET /_gateway/metrics: the Prometheus text exposition (privileged unless the profile
    sets status.metrics_public)."""
    _allow(req, _status_settings(app).metrics_public)
    res.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    await res.send(render_metrics(app))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(int(value))  # a bool counts as 0/1
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class _Exposition:
    """Text format 0.0.4: # HELP and # TYPE, then the samples, per family."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]] | float
    ) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        if not isinstance(samples, list):
            samples = [({}, samples)]
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")


def render_metrics(app: MonitoredApp) -> str:
    """The App's counters and the server's figures in the Prometheus text format 0.0.4.

    Args:
        app: the running App.

    Returns:
        The exposition, ending in a newline.
    """
    stats = app.statistics()
    m = app.metrics
    settings = app.settings
    out = _Exposition()
    fam = out.family
    fam(
        "gateway_build_info",
        "gauge",
        "Version and profile of the running gateway.",
        [({"version": _version(), "profile": settings.profile if settings else ""}, 1)],
    )
    uptime = float(stats["uptime_s"])
    fam("gateway_uptime_seconds", "gauge", "Seconds since the gateway started.", uptime)
    fam(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the epoch.",
        round(time.time() - uptime, 3),
    )
    fam(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size of the process.",
        int(stats["memory"]["rss_bytes"]),
    )
    if settings is not None and settings.systemd.memory_max_bytes:
        fam(
            "gateway_memory_max_bytes",
            "gauge",
            "The profile's memory ceiling (systemd MemoryMax=).",
            settings.systemd.memory_max_bytes,
        )
    fam(
        "gateway_requests_total",
        "counter",
        "Requests answered, by method, status class, mode and transport (socket: Sails "
        "virtual requests).",
        [
            ({"method": method, "status": f"{cls}xx", "mode": mode, "transport": transport}, n)
            for transport, t in m.transports.items()
            for method, cls, mode, n in t.requests_by_label()
        ],
    )
    name = "gateway_request_duration_seconds"
    out.lines.append(f"# HELP {name} Time from the request head to the end of the response.")
    out.lines.append(f"# TYPE {name} histogram")
    for transport, t in m.transports.items():
        cumulative = 0
        for bound, n in zip((*DURATION_BUCKETS_S, math.inf), t.buckets, strict=True):
            cumulative += n
            out.sample(f"{name}_bucket", {"transport": transport, "le": _number(bound)}, cumulative)
        out.sample(f"{name}_sum", {"transport": transport}, t.seconds)
        out.sample(f"{name}_count", {"transport": transport}, t.count)
    fam(
        "gateway_request_body_bytes_total",
        "counter",
        "Request body bytes received.",
        [({"transport": k}, t.bytes_in) for k, t in m.transports.items()],
    )
    fam(
        "gateway_response_body_bytes_total",
        "counter",
        "Response body bytes sent.",
        [({"transport": k}, t.bytes_out) for k, t in m.transports.items()],
    )
    conn = stats.get("connections", {})
    fam(
        "gateway_connections_open",
        "gauge",
        "Open client connections (upgraded ones too).",
        conn.get("active", 0),
    )
    fam(
        "gateway_connections_accepted_total",
        "counter",
        "Connections accepted.",
        conn.get("accepted", 0),
    )
    fam(
        "gateway_connections_rejected_total",
        "counter",
        "Connections refused: over server.max_connections (busy) or from outside "
        "server.allowed_networks (network).",
        [
            ({"reason": "busy"}, conn.get("rejected_busy", 0)),
            ({"reason": "network"}, conn.get("rejected_network", 0)),
        ],
    )
    fam(
        "gateway_protocol_errors_total",
        "counter",
        "Connections ended for malformed HTTP or a head timeout.",
        conn.get("protocol_errors", 0),
    )
    fam(
        "gateway_websockets_open",
        "gauge",
        "Open WebSockets (Socket.IO ones included).",
        stats.get("websockets", 0),
    )
    sockets = stats.get("sockets", {})
    fam(
        "gateway_sockets_open",
        "gauge",
        "Connected Socket.IO (Sails) sockets.",
        sockets.get("sockets", 0),
    )
    fam(
        "gateway_socket_pushes_total",
        "counter",
        "Server pushes queued to sockets.",
        sockets.get("pushes", 0),
    )
    fam(
        "gateway_socket_pushes_dropped_total",
        "counter",
        "Server pushes dropped (a socket's send queue was full).",
        sockets.get("dropped", 0),
    )
    budget = stats["memory"]["body_budget"]
    for key, what in (
        ("total", "Size of the request-body memory budget."),
        ("used", "Request-body bytes held now."),
        ("pledged", "Request-body bytes announced and not yet received."),
        ("peak", "Most request-body bytes ever held at once."),
        ("over", "Bytes held beyond a budget that a reload made smaller."),
    ):
        fam(f"gateway_body_budget_{key}_bytes", "gauge", what, budget[f"{key}_bytes"])
    fam(
        "gateway_body_budget_rejections_total",
        "counter",
        "Requests refused (503) because the body budget was spent.",
        budget["rejections"],
    )
    fam(
        "gateway_reloads_total",
        "counter",
        "Profile reloads (SIGHUP), by outcome.",
        [({"outcome": "applied"}, m.reloads_applied), ({"outcome": "refused"}, m.reloads_refused)],
    )
    auth = stats.get("auth", {})
    fam(
        "gateway_auth_failures_total",
        "counter",
        "Requests that presented a wrong bearer token (HTTP, virtual requests, WebSocket and "
        "Socket.IO handshakes).",
        auth.get("failures", 0),
    )
    fam(
        "gateway_bans_total",
        "counter",
        "Peers banned for failing credentials too often ([bans] max_failures in window_s).",
        auth.get("bans", 0),
    )
    fam(
        "gateway_banned_peers",
        "gauge",
        "Peers banned now (IPv4 addresses, IPv6 /64 prefixes, local uids).",
        auth.get("banned_peers", 0),
    )
    fam(
        "gateway_ban_refusals_total",
        "counter",
        "Requests with credentials refused (429) because their peer was banned.",
        auth.get("refused", 0),
    )
    fam(
        "gateway_background_failures_total",
        "counter",
        "Background tasks that failed.",
        stats.get("background_failures", 0),
    )
    fam(
        "gateway_draining",
        "gauge",
        "1 while the gateway drains to stop.",
        int(bool(stats.get("draining", False))),
    )
    mqtt = stats.get("mqtt")
    if mqtt is not None:  # the MQTT bridge is configured ([mqtt] url)
        fam(
            "gateway_mqtt_connected",
            "gauge",
            "1 while the MQTT bridge is connected.",
            int(bool(mqtt["connected"])),
        )
        fam(
            "gateway_mqtt_reconnects_total",
            "counter",
            "MQTT connections after the first.",
            mqtt["reconnects"],
        )
        fam(
            "gateway_mqtt_connect_failures_total",
            "counter",
            "MQTT connection attempts that failed.",
            mqtt["connect_failures"],
        )
        fam(
            "gateway_mqtt_requests_total",
            "counter",
            "Requests received over MQTT: accepted, or rejected (in-flight cap, draining).",
            [
                ({"outcome": "accepted"}, mqtt["requests"]),
                ({"outcome": "rejected"}, mqtt["rejected"]),
            ],
        )
        fam(
            "gateway_mqtt_requests_in_flight",
            "gauge",
            "Requests over MQTT being handled.",
            mqtt["requests_in_flight"],
        )
        fam(
            "gateway_mqtt_malformed_total",
            "counter",
            "MQTT requests and events that could not be read.",
            mqtt["malformed"],
        )
        fam(
            "gateway_mqtt_events_total",
            "counter",
            "Room events relayed, by direction.",
            [({"direction": "out"}, mqtt["events_out"]), ({"direction": "in"}, mqtt["events_in"])],
        )
        fam(
            "gateway_mqtt_publishes_dropped_total",
            "counter",
            "Publishes dropped: not connected, or too many awaiting acknowledgement.",
            mqtt["dropped"],
        )
    return "\n".join(out.lines) + "\n"
