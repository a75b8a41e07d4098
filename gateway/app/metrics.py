# The request counters behind /_gateway/metrics and the status page: one `observe()` call per
# finished request (requests by method, status class, mode and transport; a duration histogram
# with fixed buckets; body bytes in and out) and a small ring of the last 4xx/5xx lines.
# Plain integers in fixed-size lists: no locks (one trio thread), no allocation per request,
# bounded whatever clients send.
# Must not: render text, read the clock or know transports' objects (callers pass numbers in).
from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from typing import Final, NamedTuple

__all__ = ["Metrics", "DURATION_BUCKETS_S", "METHODS", "RecentError", "RECENT_ERRORS"]

#: Upper bounds of the request-duration histogram, in seconds. A device answers most requests
#: in about a millisecond; slow flash, a busy CPU or a streamed upload take 0.1-10 s.
DURATION_BUCKETS_S: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: How many 4xx/5xx lines the status page keeps (for a privileged viewer).
RECENT_ERRORS: Final = 20
#: Methods counted by name; every other (WebDAV, made-up ones) is "other", the last index, so a
#: client cannot grow the label set.
METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other")
_METHOD_INDEX: Final = {m: i * 20 for i, m in enumerate(METHODS[:-1])}
_OTHER: Final = (len(METHODS) - 1) * 20
_MAX_PATH: Final = 200
_MAX_METHOD: Final = 24
# observe() compares with the first three bounds as literals (cheaper than a bisect)
assert DURATION_BUCKETS_S[:3] == (0.001, 0.0025, 0.005)


class RecentError(NamedTuple):
    """One 4xx/5xx line for the status page: no query string, no headers, no body."""

    time: float  # wall clock, seconds since the epoch
    method: str
    path: str  # the request's path only, cut at 200 characters
    status: int
    mode: str
    transport: str


class TransportMetrics:
    """The counters of one transport ("http" or "socket").

    Attributes:
        requests: a flat table of counts, ``method index * 20 + status class (1-9) * 2 +
            privileged`` (see ``requests_by_label``): list indexing is the cheapest count
            Python has, and every index is bounded.
        buckets: the duration histogram, not cumulative; the last one is +Inf.
        seconds: the sum of all durations.
        bytes_in, bytes_out: request and response body bytes.
    """

    __slots__ = ("requests", "buckets", "seconds", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.requests = [0] * (len(METHODS) * 20)
        self.buckets = [0] * (len(DURATION_BUCKETS_S) + 1)
        self.seconds = 0.0
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def count(self) -> int:
        """Requests counted."""
        return sum(self.buckets)

    def requests_by_label(self) -> list[tuple[str, int, str, int]]:
        """The non-zero counts as (method, status class 1-9, mode, count)."""
        out = []
        for index, n in enumerate(self.requests):
            if n:
                method, rest = divmod(index, 20)
                out.append((METHODS[method], rest // 2, "privilege" if rest % 2 else "user", n))
        return out


class Metrics:
    """What every finished request adds to the gateway's counters (one per App).

    Attributes:
        transports: "http" / "socket" (Sails virtual requests) -> their counters.
        errors: the last RECENT_ERRORS 4xx/5xx requests, oldest first.
        reloads_applied, reloads_refused: profile reloads (SIGHUP) and their outcome.
        status_viewers: open status-page streams (the page caps them).
    """

    __slots__ = ("transports", "errors", "reloads_applied", "reloads_refused", "status_viewers")

    def __init__(self) -> None:
        self.transports = {"http": TransportMetrics(), "socket": TransportMetrics()}
        self.errors: deque[RecentError] = deque(maxlen=RECENT_ERRORS)
        self.reloads_applied = 0
        self.reloads_refused = 0
        self.status_viewers = 0

    def observe(
        self,
        method: str,
        status: int,
        privileged: bool,
        transport: str,
        duration_s: float,
        bytes_in: int,
        bytes_out: int,
        path: str,
    ) -> None:
        """Count one finished request (the server calls this where it writes the access line).

        Every request pays for it, so it is written for CPython's cheapest operations (list
        indexing, float comparisons; measured in bench/request_cost.py), not for elegance.

        Args:
            method: the request method (anything outside METHODS counts as "other").
            status: the status sent (100-999).
            privileged: the request's mode (Request.privileged).
            transport: "http" or "socket" (a Sails virtual request).
            duration_s: from the request head to the end of the response.
            bytes_in: request body bytes received.
            bytes_out: response body bytes sent.
            path: the request path, kept only for a 4xx/5xx (no query: it may carry secrets).
        """
        t = self.transports[transport]
        try:
            index = _METHOD_INDEX[method]
        except KeyError:
            index = _OTHER
        t.requests[index + status // 100 * 2 + privileged] += 1
        if duration_s <= 0.005:  # most requests: two comparisons instead of a bisect
            bucket = 0 if duration_s <= 0.001 else 1 if duration_s <= 0.0025 else 2
        else:
            bucket = bisect_left(DURATION_BUCKETS_S, duration_s, 3)
        t.buckets[bucket] += 1
        t.seconds += duration_s
        t.bytes_in += bytes_in
        t.bytes_out += bytes_out
        if status >= 400:
            self.errors.append(
                RecentError(
                    time.time(),
                    method[:_MAX_METHOD],
                    path[:_MAX_PATH],
                    status,
                    "privilege" if privileged else "user",
                    transport,
                )
            )

    def total(self) -> int:
        """Requests counted so far, both transports."""
        return sum(t.count for t in self.transports.values())
