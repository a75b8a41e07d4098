# The process-wide memory budget for request bodies (cached, parsed or kept by a parser), and
# the one allocator setting that makes RSS follow it. Reservations are synchronous counters:
# no waiting, no tasks, no clock; a short budget is an immediate BudgetExceeded (503 +
# Retry-After). gateway.body.stream charges it as bytes arrive and releases it when an exchange ends.
from __future__ import annotations

import logging

from gateway.errors import BudgetExceeded

__all__ = ["MemoryBudget", "release_free_memory", "tune_allocator"]

log = logging.getLogger("gateway.body")


def tune_allocator(mmap_threshold_bytes: int = 128 * 1024) -> bool:
    """Make freed body buffers go back to the OS at once, so RSS follows the budget (glibc).

    glibc raises its mmap threshold every time a large mapped block is freed; after the first
    cached body, megabyte-sized buffers come from the heap instead, where small allocations
    made meanwhile pin them and the heap stays grown. Pinning the threshold (mallopt
    M_MMAP_THRESHOLD, what MALLOC_MMAP_THRESHOLD_ does) keeps every block of at least that
    size in its own mapping, unmapped when freed. bench/budget.py (16 MiB budget, 100 clients
    caching 1 MiB each): peak RSS growth 18-19 MiB with it, 21-22 MiB without, and afterwards
    2 MiB above the start with it, 5-17 MiB without.
    Call once at startup; a MALLOC_MMAP_THRESHOLD_ set by the operator is left alone.

    Args:
        mmap_threshold_bytes: blocks of at least this size are mapped on their own.

    Returns:
        True when the threshold was set; False elsewhere (not glibc) or when left alone.
    """
    import os

    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, ImportError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, mmap_threshold_bytes))


def release_free_memory() -> bool:
    """Give the heap pages that start-up freed back to the OS (glibc ``malloc_trim(0)``).

    Importing modules reads each ``.pyc`` into a buffer that is freed once unmarshalled, and
    parsing the profile and compiling the routes leave more garbage behind; glibc keeps those
    free pages mapped because live objects sit above them. Trimming once, when the server is
    ready, returns them: about 0.9 MiB of RSS after start (bench.app, default profile).

    Returns:
        True when glibc trimmed something; False elsewhere (not glibc) or when nothing was freed.
    """
    try:
        import ctypes

        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, ImportError):
        return False
    return bool(malloc_trim(0))


class MemoryBudget:
    """The process-wide byte budget for cached and parsed bodies.

    ``used`` counts bytes actually held, reserved as they arrive. ``pledged`` counts bytes a
    caching request has declared (Content-Length) but not sent yet: admission control, so that
    when the budget is short a request is refused *before* its body is sent (no 100 Continue,
    no wasted upload) instead of halfway through it. Invariant: used + pledged <= total.
    Reservations never wait: when the budget is short the caller gets BudgetExceeded (503 +
    Retry-After) at once, which is what a client can act on. Every reservation and pledge is
    made for one request and given back when that request ends.

    A profile reload resizes the budget in place (``resize``): the requests in flight keep
    what they hold and give it back to this same object. A total below what is held makes
    the invariant false for a while, on purpose: nothing is taken back by force (those bytes
    exist), new reservations and pledges are refused until releases bring used + pledged
    under the new total, and ``statistics()`` reports the excess as ``over_bytes``.

    Args:
        total_bytes: the budget (profile memory.body_budget_bytes).
    """

    __slots__ = ("total", "used", "pledged", "peak", "rejections")

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.used = 0
        self.pledged = 0
        self.peak = 0
        self.rejections = 0

    @property
    def free(self) -> int:
        """Bytes that can still be reserved or pledged (0 while over a reduced total)."""
        return max(0, self.total - self.used - self.pledged)

    def resize(self, total_bytes: int) -> None:
        """Change the total in place (a profile reload); everything else stays.

        ``used``, ``pledged``, ``peak``, ``rejections`` and every request's reservation are
        kept, so what is in flight is still counted and given back here. Below what is held,
        nothing is freed by force: reserve() and pledge() refuse (503) until enough requests
        have ended; redeem() still succeeds (those bytes were promised before).

        Args:
            total_bytes: the new budget (profile memory.body_budget_bytes).

        Raises:
            ValueError: a negative total (settings never give one: a caller's bug).
        """
        if total_bytes < 0:
            raise ValueError(f"a memory budget cannot be negative: {total_bytes}")
        self.total = total_bytes
        held = self.used + self.pledged
        if held > total_bytes:
            log.warning(
                "memory budget resized to %d bytes with %d held: new bodies are "
                "refused until %d bytes are released",
                total_bytes,
                held,
                held - total_bytes,
            )

    def reserve(self, nbytes: int) -> None:
        """Take nbytes from the budget (bytes that nobody pledged).

        Args:
            nbytes: how many bytes (0 is a no-op).

        Raises:
            BudgetExceeded: fewer than nbytes are free (counted in ``rejections``).
        """
        used = self.used + nbytes
        if used + self.pledged > self.total and nbytes > 0:  # 0 is no charge, even when over
            self.rejections += 1
            raise BudgetExceeded()
        self.used = used
        if used > self.peak:
            self.peak = used

    def pledge(self, nbytes: int) -> None:
        """Set nbytes aside for a body that declared its length and has not arrived yet.

        Raises:
            BudgetExceeded: fewer than nbytes are free (counted in ``rejections``).
        """
        if self.used + self.pledged + nbytes > self.total and nbytes > 0:
            self.rejections += 1
            raise BudgetExceeded()
        self.pledged += nbytes

    def redeem(self, nbytes: int) -> None:
        """Turn nbytes of a pledge into a reservation (they have arrived); cannot fail."""
        self.pledged -= nbytes
        used = self.used = self.used + nbytes
        if used > self.peak:
            self.peak = used

    def reject(self) -> BudgetExceeded:
        """Count a refusal decided outside reserve()/pledge() (an allocation that failed).

        Returns:
            The BudgetExceeded to raise.
        """
        self.rejections += 1
        return BudgetExceeded()

    def unpledge(self, nbytes: int) -> None:
        """Give back what is left of a pledge. Never raises: it runs in cleanup paths."""
        self.pledged = max(0, self.pledged - nbytes)

    def release(self, nbytes: int) -> None:
        """Give nbytes back. Never raises: it runs in cleanup paths.

        Args:
            nbytes: bytes previously reserved.
        """
        if nbytes > self.used:  # an accounting bug; keep serving, but say so
            log.error("memory budget: released %d bytes with only %d in use", nbytes, self.used)
            nbytes = self.used
        self.used -= nbytes

    def statistics(self) -> dict[str, int]:
        """Figures for /_gateway/stats.

        Returns:
            total_bytes, used_bytes, pledged_bytes, free_bytes, over_bytes (held beyond a
            total that a reload reduced; 0 normally), peak_bytes (most ever used) and
            rejections (503s given).
        """
        unheld = self.total - self.used - self.pledged
        return {
            "total_bytes": self.total,
            "used_bytes": self.used,
            "pledged_bytes": self.pledged,
            "free_bytes": max(0, unheld),
            "over_bytes": max(0, -unheld),
            "peak_bytes": self.peak,
            "rejections": self.rejections,
        }
