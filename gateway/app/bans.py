# Brute-force protection: requests that present a wrong bearer token are counted per peer (an
# IPv4 address, an IPv6 /64, a local uid); past [bans] max_failures within window_s the peer is
# banned for ban_s: its requests that present credentials get 429 with Retry-After, and their
# tokens are not even checked, so no guess is ever confirmed. Owns the bounded table, the ban
# log line (one per ban) and the counters behind /_gateway/metrics and App.statistics().
# Must not: decide privilege (gateway.app.auth does) or build replies (the exchange does); it is
# loaded with the first failure, so a gateway nobody guesses at never carries it.
#
# Theory of operation. One entry per peer key in an OrderedDict, least recently failed first:
# [failures in the current window, when the window started, when the ban ends (0: none)]. A
# failure moves its peer to the end; a new peer beyond max_tracked_peers evicts the first
# (the one that failed longest ago); entries whose window and ban are both over are dropped
# from the front as new ones come. So the table never holds more than max_tracked_peers
# entries, whatever an attacker cycling addresses does (each costs ~0.3 KiB, measured with
# tracemalloc in tests/test_bans.py: 0.3 MiB at the default cap of 1024). The window is
# fixed, from a peer's first failure in it; a ban starts a fresh window when it ends.
#
# Why only requests with credentials are refused (not every request of a banned peer): what a
# ban must protect is the token check, and a peer is banned for guessing tokens. Refusing its
# public routes too would let one misconfigured script (or one bad host behind a NAT, or on the
# same IPv6 /64, which a home LAN is) lock the whole LAN out of the device's own pages.
from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.settings import BansSettings

__all__ = ["Bans", "peer_key"]

log = logging.getLogger("gateway.auth")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def peer_key(peer: tuple[str, int] | None) -> str:
    """What a peer is counted as: an IPv4 address, an IPv6 /64 prefix (one host has many
    addresses in its /64, and picks new ones at will), an IPv4-mapped IPv6 address as its
    IPv4 address, a Unix-socket peer as its uid.

    Args:
        peer: the connection's peer: (host, port), ("unix", uid), or None.

    Returns:
        The key, e.g. "192.168.1.20", "2001:db8:1:2::/64", "unix:uid=1000".
    """
    if peer is None:
        return "-"
    host = peer[0]
    if host == "unix":
        return f"unix:uid={peer[1]}"
    if ":" not in host:
        return host  # IPv4: the address as the kernel gave it
    try:
        ip = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"


class Bans:
    """Failed credentials per peer, and the bans they earn (one per App).

    Args:
        settings: the profile's [bans].
        clock: the server's clock (seconds, monotonic; trio's under a server).

    Attributes:
        failures: requests that presented wrong credentials (all peers, exempt ones too).
        bans: bans begun.
        refused: requests refused with 429 during a ban.
    """

    __slots__ = ("settings", "clock", "peers", "failures", "bans", "refused", "_exempt")

    def __init__(self, settings: BansSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.peers: OrderedDict[str, list[float]] = OrderedDict()
        self.failures = 0
        self.bans = 0
        self.refused = 0
        self.configure(settings)

    def configure(self, settings: BansSettings) -> None:
        """Apply a profile's [bans] (at start, and on each reload): peers and their bans are
        kept; a smaller max_tracked_peers evicts the least recently failed.

        Args:
            settings: the profile's [bans] (checked by load_settings).
        """
        self.settings = settings
        self._exempt: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.exempt_networks
        )
        while len(self.peers) > settings.max_tracked_peers:
            self.peers.popitem(last=False)

    def retry_after(self, peer: tuple[str, int] | None) -> int:
        """Seconds until ``peer``'s ban ends (rounded up), 0 when it is not banned.

        Args:
            peer: the connection's peer.

        Returns:
            The seconds, for Retry-After.
        """
        entry = self.peers.get(peer_key(peer))
        if entry is None:
            return 0
        left = entry[2] - self.clock()
        return math.ceil(left) if left > 0 else 0

    def refuse(self, peer: tuple[str, int] | None) -> int:
        """retry_after(), counting the request as refused when the peer is banned."""
        left = self.retry_after(peer)
        if left:
            self.refused += 1
            # a banned peer that keeps trying stays at the back: cycling other addresses
            # through the table evicts quiet entries first, not its ban
            self.peers.move_to_end(peer_key(peer))
        return left

    def fail(self, peer: tuple[str, int] | None) -> None:
        """Count one request that presented wrong credentials; ban its peer past the limit.

        Args:
            peer: the connection's peer.
        """
        self.failures += 1
        settings = self.settings
        if not settings.max_failures or self._exempted(peer):
            return
        now = self.clock()
        key = peer_key(peer)
        peers = self.peers
        entry = peers.get(key)
        if entry is None:
            self._prune(now)
            entry = peers[key] = [0.0, now, 0.0]
            if len(peers) > settings.max_tracked_peers:
                peers.popitem(last=False)  # the one that failed longest ago
        else:
            peers.move_to_end(key)
            if now - entry[1] >= settings.window_s:
                entry[0], entry[1] = 0.0, now  # a new window
        entry[0] += 1
        if entry[0] >= settings.max_failures and entry[2] <= now:
            entry[2] = now + settings.ban_s
            entry[0], entry[1] = 0.0, entry[2]  # a fresh window once the ban ends
            self.bans += 1
            log.warning(
                "%s banned for %g s: %d failed credentials within %g s ([bans]); "
                "its requests with credentials get 429 until then",
                key,
                settings.ban_s,
                settings.max_failures,
                settings.window_s,
            )

    def _exempted(self, peer: tuple[str, int] | None) -> bool:
        exempt = self._exempt
        if not exempt or peer is None or peer[0] == "unix":
            return False
        try:
            ip = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in exempt)

    def _prune(self, now: float) -> None:
        # drop stale entries from the front (window and ban both over): the table shrinks
        # back as failures stop, and a lookup on the valid-token path finds it empty
        peers = self.peers
        window = self.settings.window_s
        while peers:
            entry = next(iter(peers.values()))
            if entry[2] > now or now - entry[1] < window:
                return
            peers.popitem(last=False)

    def banned_peers(self) -> int:
        """Peers banned now."""
        now = self.clock()
        return sum(1 for entry in self.peers.values() if entry[2] > now)

    def statistics(self) -> dict[str, Any]:
        """The counters, for App.statistics() and the metrics."""
        return {
            "failures": self.failures,
            "bans": self.bans,
            "refused": self.refused,
            "banned_peers": self.banned_peers(),
            "tracked_peers": len(self.peers),
            "max_tracked_peers": self.settings.max_tracked_peers,
        }
