# Sails-style pub/sub for connected sockets: `app.sockets` (join, leave, broadcast, blast, id).
# Owns: the room table (every socket is in a room named after its own id) and fan-out of one
# Push to many subscribers, encoded once and shared. Delivery is synchronous and never waits:
# each subscriber queues the push under its own byte ceiling or drops the slow consumer.
# Must not: import trio or do I/O (subscribers are the transport's sockets), or know the wire
# format (subscribers encode a Push once and cache it in the Push for the others).
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from gateway.errors import BadRequest

__all__ = ["SocketHub", "Push", "Subscriber", "DEFAULT_EVENT"]

log = logging.getLogger("gateway.pubsub")

DEFAULT_EVENT: Final = "message"  # Sails' default event name for broadcast and blast
_MISSING: Any = object()


class Push:
    """One server push (an event name and its data), shared by every recipient.

    Attributes:
        event: the event name.
        data: the JSON-able payload.
        text: a transport's encoded form, cached by the first subscriber that needs it.
        frame: a transport's wire frame, cached likewise (only for frames that do not depend
            on per-connection state).
    """

    __slots__ = ("event", "data", "text", "frame")

    def __init__(self, event: str, data: Any) -> None:
        self.event = event
        self.data = data
        self.text: str | None = None
        self.frame: bytes | None = None


class Subscriber(Protocol):
    """A connected socket as the hub sees it (implemented by the server's Socket.IO sessions)."""

    @property
    def id(self) -> str:
        """The socket id (also the name of its own room)."""
        ...

    def deliver(self, push: Push) -> bool:
        """Queue ``push`` without waiting. False if the socket is gone or was dropped as slow."""
        ...


def _split(event: Any, data: Any) -> tuple[str, Any]:
    # Sails: broadcast(rooms, data) and blast(data) mean the default event name.
    if data is _MISSING:
        return DEFAULT_EVENT, None if event is _MISSING else event
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, not {type(event).__name__}")
    return event, data


class SocketHub:
    """The rooms of connected sockets (``app.sockets``), like ``sails.sockets``.

    A socket is named by its id, or by a virtual Request that arrived over it (while that
    request is being handled).
    """

    def __init__(self) -> None:
        self._subs: dict[str, Subscriber] = {}
        self._rooms: dict[str, set[str]] = {}
        self._member_of: dict[str, set[str]] = {}
        self._requests: dict[int, str] = {}
        self._relays: dict[str, Callable[[str, Push], None]] = {}
        self.pushes = 0
        self.dropped = 0

    # -- the transport's side ------------------------------------------------------------------
    def add(self, sub: Subscriber) -> None:
        """Register a connected socket; it is in the room named after its id (implicitly: the
        own room is not stored, which saves two sets per idle socket)."""
        self._subs[sub.id] = sub

    def remove(self, sub: Subscriber) -> None:
        """Forget a socket and take it out of every room (idempotent)."""
        if self._subs.get(sub.id) is not sub:
            return
        del self._subs[sub.id]
        for room in self._member_of.pop(sub.id, ()):
            members = self._rooms.get(room)
            if members is not None:
                members.discard(sub.id)
                if not members:
                    del self._rooms[room]

    def relay(self, room: str, fn: Callable[[str, Push], None] | None) -> None:
        """Also hand every push broadcast to ``room`` to ``fn(room, push)``: sockets that are
        not this process's (other devices, through a bridge). ``fn`` must not wait or raise.
        blast() is not relayed: it means this process's sockets.

        Args:
            room: the room name.
            fn: the relay, or None to remove it.
        """
        if fn is None:
            self._relays.pop(room, None)
        else:
            self._relays[room] = fn

    def bind_request(self, req: object, socket_id: str) -> None:
        """Make ``req`` name its socket while it is handled (call unbind_request after)."""
        self._requests[id(req)] = socket_id

    def unbind_request(self, req: object) -> None:
        self._requests.pop(id(req), None)

    # -- the application's side ----------------------------------------------------------------
    def id(self, req: object) -> str:
        """The id of the socket a virtual request arrived over (``sails.sockets.getId``).

        Args:
            req: a Request with ``is_socket`` True, while it is being handled.

        Returns:
            The socket id.

        Raises:
            BadRequest: ``req`` is not a socket request (an HTTP request cannot join rooms).
        """
        sid = self._requests.get(id(req))
        if sid is None:
            raise BadRequest(None, "Not a socket request")
        return sid

    def _sid(self, target: object) -> str:
        return target if isinstance(target, str) else self.id(target)

    def join(self, target: object, room: str) -> None:
        """Subscribe a socket to ``room``.

        Args:
            target: a socket request or a socket id.
            room: the room name.

        Raises:
            BadRequest: not a socket request.
            KeyError: no connected socket has that id.
        """
        sid = self._sid(target)
        if sid not in self._subs:
            raise KeyError(sid)
        if room == sid:
            return  # its own room
        self._member_of.setdefault(sid, set()).add(room)
        self._rooms.setdefault(room, set()).add(sid)

    def leave(self, target: object, room: str) -> None:
        """Unsubscribe a socket from ``room`` (no error if it was not in it; a socket never
        leaves the room named after its own id).

        Raises:
            BadRequest: not a socket request.
        """
        sid = self._sid(target)
        rooms = self._member_of.get(sid)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._member_of[sid]
        members = self._rooms.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._rooms[room]

    def rooms(self, target: object) -> set[str]:
        """The rooms a socket is in (its own room included); empty if it is not connected."""
        sid = self._sid(target)
        if sid not in self._subs:
            return set()
        return {sid, *self._member_of.get(sid, ())}

    def members(self, room: str) -> set[str]:
        """The ids of the sockets in ``room``."""
        ids = set(self._rooms.get(room, ()))
        if room in self._subs:
            ids.add(room)
        return ids

    def broadcast(
        self,
        rooms: str | Iterable[str],
        event: Any = _MISSING,
        data: Any = _MISSING,
        *,
        omit: object = None,
        relay: bool = True,
    ) -> int:
        """Send an event to every socket in ``rooms`` (each socket once).

        ``broadcast(rooms, data)`` uses the event name "message", as Sails does.

        Args:
            rooms: a room name or several.
            event: the event name (or the data, when ``data`` is not given).
            data: a JSON-able payload.
            omit: a socket request or id to leave out (typically the sender).
            relay: also hand it to the rooms' relays (see relay()); False for a push that
                came from one.

        Returns:
            How many sockets of this process it was queued for.

        Raises:
            TypeError: the event name is not a string.
        """
        name, payload = _split(event, data)
        ids: set[str] = set()
        names = (rooms,) if isinstance(rooms, str) else tuple(rooms)
        for room in names:
            ids.update(self._rooms.get(room, ()))
            if room in self._subs:
                ids.add(room)
        push = Push(name, payload)
        relays = self._relays
        if relays and relay:
            for room in dict.fromkeys(names):  # a room named twice is relayed once
                fn = relays.get(room)
                if fn is not None:
                    fn(room, push)
        return self._send(ids, push, omit)

    def blast(self, event: Any = _MISSING, data: Any = _MISSING, *, omit: object = None) -> int:
        """Send an event to every connected socket; ``blast(data)`` uses "message".

        Returns:
            How many sockets it was queued for.
        """
        name, payload = _split(event, data)
        return self._send(list(self._subs), Push(name, payload), omit)

    def _send(self, ids: Iterable[str], push: Push, omit: object) -> int:
        skip = (
            None
            if omit is None
            else self._sid(omit)
            if isinstance(omit, str)
            else self._requests.get(id(omit))
        )
        sent = 0
        for sid in ids:
            sub = self._subs.get(sid)
            if sub is None or sid == skip:
                continue
            if sub.deliver(push):
                sent += 1
            else:
                self.dropped += 1
        self.pushes += sent
        return sent

    def __len__(self) -> int:
        return len(self._subs)

    def statistics(self) -> dict[str, int]:
        """Connected sockets, rooms, pushes queued and pushes dropped."""
        return {
            "sockets": len(self._subs),
            "rooms": len(self._rooms),
            "pushes": self.pushes,
            "dropped": self.dropped,
        }
