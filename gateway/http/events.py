# The body events and sentinels the server's HTTP layer hands out: what h11 names Data,
# EndOfMessage, ConnectionClosed, NEED_DATA and PAUSED, with the same fields, defined here so that
# a server whose clients send plain heads never imports a parser (gateway.http.connection reads
# those heads, gateway.http.chunked and its LengthReader their bodies). For the heads h11 reads,
# gateway.http.connection turns h11's events into these (`from_h11`), so the server sees one set
# of classes whichever reads a request, and h11 (or h11_mypyc, ~0.2-0.6 MiB) loads only at the
# first head of another shape (docs/BENCHMARKS.md, "The parser loaded at its first head").
# Must not: import h11 (tests/test_cli.py checks it is not loaded after start).
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Data", "EndOfMessage", "ConnectionClosed", "NEED_DATA", "PAUSED", "from_h11"]


class Data:
    """Part of a request body (h11.Data).

    Args:
        data: the bytes (a bytearray from the chunked reader; the server copies it once).
        chunk_start: the first bytes of a chunk of a chunked body.
        chunk_end: the last bytes of a chunk of a chunked body.
    """

    __slots__ = ("data", "chunk_start", "chunk_end")

    def __init__(
        self, data: bytes | bytearray, chunk_start: bool = False, chunk_end: bool = False
    ) -> None:
        self.data = data
        self.chunk_start = chunk_start
        self.chunk_end = chunk_end

    def __repr__(self) -> str:
        return (
            f"Data(data={self.data!r}, chunk_start={self.chunk_start}, chunk_end={self.chunk_end})"
        )


class EndOfMessage:
    """The end of a request body (h11.EndOfMessage).

    Args:
        headers: the trailer fields of a chunked body, (lower-case name, value) pairs.
    """

    __slots__ = ("headers",)

    def __init__(self, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.headers = headers  # () for a body without trailers: no list per request

    def __repr__(self) -> str:
        return f"EndOfMessage(headers={self.headers!r})"


class ConnectionClosed:
    """The peer closed the connection between requests (h11.ConnectionClosed)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ConnectionClosed()"


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def __name__(self) -> str:  # as h11's sentinels (classes) have
        return self._name

    def __repr__(self) -> str:
        return self._name


# No complete event yet: feed more bytes (h11.NEED_DATA).
NEED_DATA: Any = _Sentinel("NEED_DATA")
# The request and its body are read; the bytes that follow wait for the next cycle (h11.PAUSED).
PAUSED: Any = _Sentinel("PAUSED")


def from_h11(event: object, h11: Any) -> object:
    """The event of this module for one of h11's body events or sentinels (h11: the module that
    made it, h11 or h11_mypyc). A Request is the caller's to read."""
    kind = type(event)
    if kind is h11.Data:
        return Data(event.data, event.chunk_start, event.chunk_end)  # type: ignore[attr-defined]
    if kind is h11.EndOfMessage:
        return EndOfMessage(list(event.headers))  # type: ignore[attr-defined]
    if kind is h11.ConnectionClosed:
        return ConnectionClosed()
    if event is h11.NEED_DATA:
        return NEED_DATA
    if event is h11.PAUSED:
        return PAUSED
    raise TypeError(f"not an event a server connection hands out: {event!r}")
