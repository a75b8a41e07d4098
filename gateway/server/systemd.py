# systemd integration: sd_notify (READY/STATUS/RELOADING/STOPPING/WATCHDOG), the watchdog period,
# and socket activation (LISTEN_FDS). Standard library only, no libsystemd; everything here is a
# no-op when not run by systemd. The only trio code is watchdog_loop(), which must ping from the
# trio loop itself: a wedged loop then stops pinging and systemd restarts the service.
# Notifier never raises into the server on I/O failure (it logs once); listen_fds() raises
# ConfigError for a malformed environment, since that is a startup problem.
from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import NoReturn

import trio

from gateway.errors import ConfigError

__all__ = [
    "Notifier",
    "watchdog_interval_s",
    "watchdog_loop",
    "listen_fds",
    "listen_fds_with_names",
    "SD_LISTEN_FDS_START",
]

log = logging.getLogger(__name__)

#: The first file descriptor systemd passes (after stdin, stdout, stderr).
SD_LISTEN_FDS_START = 3

_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
# A field value is one line: any of these would end it early and let the rest of the text
# be read as further fields (a STATUS= carrying "\nREADY=1" must not mark us ready).
_LINE_BREAKS = re.compile(r"[\r\n\x00\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")


def _one_line(value: object) -> str:
    return _LINE_BREAKS.sub(" ", str(value)).strip()


class Notifier:
    """Sends sd_notify(3) messages to the service manager's NOTIFY_SOCKET.

    Disabled (every method a silent no-op returning False) when NOTIFY_SOCKET is unset, so
    the server calls it unconditionally. One non-blocking AF_UNIX datagram socket is opened on
    the first send and kept until :meth:`close`. A failed send (manager gone, queue full)
    returns False and is logged once; the next success re-arms the warning.

    Args:
        address: the socket path, or "@name" for an abstract socket; None or "" disables.
    """

    __slots__ = ("_address", "_target", "_sock", "_warned")

    def __init__(self, address: str | None) -> None:
        self._address = address or None
        self._target: str | None = None
        self._sock: socket.socket | None = None
        self._warned = False
        if self._address is None:
            return
        if self._address.startswith("@"):
            # Linux abstract namespace: a leading NUL instead of '@'.
            self._target = "\0" + self._address[1:]
        elif self._address.startswith("/"):
            self._target = self._address
        else:
            # sd_notify also knows vsock: addresses (systemd >= 253, VMs); not our case.
            log.warning(
                "NOTIFY_SOCKET=%r is not a path or @abstract name; systemd notifications disabled",
                self._address,
            )

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] = os.environ, *, unset: bool = False
    ) -> Notifier:
        """Build a Notifier from NOTIFY_SOCKET.

        Args:
            environ: the environment to read (``os.environ`` by default).
            unset: remove NOTIFY_SOCKET from ``environ`` so that child processes do not
                inherit it (with NotifyAccess=main they could not use it anyway).

        Returns:
            A Notifier; disabled when NOTIFY_SOCKET is unset or empty.
        """
        address = environ.get("NOTIFY_SOCKET")
        if unset:
            environ.pop("NOTIFY_SOCKET", None)
        return cls(address)

    @property
    def enabled(self) -> bool:
        """True when there is a usable NOTIFY_SOCKET to send to."""
        return self._target is not None

    @property
    def address(self) -> str | None:
        """The NOTIFY_SOCKET value this notifier sends to, as given."""
        return self._address

    def send(self, message: str | None = None, /, **fields: object) -> bool:
        """Send one notification datagram.

        Args:
            message: raw "KEY=value" lines, sent verbatim before ``fields`` (the caller
                vouches for them).
            **fields: KEY=value pairs, in order; each value is made a single line (line
                breaks become spaces) so that it cannot inject further fields.

        Returns:
            True if the datagram was handed to the kernel; False when disabled, empty or failed.

        Raises:
            ValueError: a field name is not an upper-case sd_notify variable name (a bug in
                the caller, not a runtime condition).
        """
        lines = [message.rstrip("\n")] if message else []
        for name, value in fields.items():
            if not _FIELD_NAME.match(name):
                raise ValueError(f"not an sd_notify field name: {name!r}")
            lines.append(f"{name}={_one_line(value)}")
        if self._target is None or not lines:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                # CLOEXEC is Python's default; non-blocking so a stalled manager can never
                # block the trio loop (a full queue is EAGAIN, reported as a failure).
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(data, self._target)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "sd_notify to %s failed: %s (further failures not logged until one succeeds)",
                    self._address,
                    exc,
                )
            return False
        self._warned = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up (or a reload) is complete: READY=1, with an optional STATUS.

        Args:
            status: a one-line status text shown by ``systemctl status``.

        Returns:
            Whether the message was sent (see :meth:`send`).
        """
        if status is None:
            return self.send(READY=1)
        return self.send(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """Set the free-form status line (STATUS=).

        Args:
            text: the status; line breaks become spaces.

        Returns:
            Whether the message was sent.
        """
        return self.send(STATUS=text)

    def reloading(self, status: str | None = None) -> bool:
        """Tell systemd a reload started: RELOADING=1 plus MONOTONIC_USEC (systemd >= 253
        needs the timestamp to match the reload to the request). Send :meth:`ready` when done.

        Args:
            status: an optional status text.

        Returns:
            Whether the message was sent.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        if status is None:
            return self.send(RELOADING=1, MONOTONIC_USEC=usec)
        return self.send(RELOADING=1, MONOTONIC_USEC=usec, STATUS=status)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd a graceful stop began: STOPPING=1.

        Args:
            status: an optional status text (e.g. how many connections are draining).

        Returns:
            Whether the message was sent.
        """
        if status is None:
            return self.send(STOPPING=1)
        return self.send(STOPPING=1, STATUS=status)

    def watchdog(self) -> bool:
        """Ping the watchdog: WATCHDOG=1.

        Returns:
            Whether the message was sent.
        """
        return self.send(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time for the current start, reload or stop: EXTEND_TIMEOUT_USEC.

        Args:
            seconds: how long from now systemd should wait before timing out.

        Returns:
            Whether the message was sent.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"extend_timeout needs seconds >= 0, got {seconds!r}")
        return self.send(EXTEND_TIMEOUT_USEC=round(seconds * 1_000_000))

    def mainpid(self, pid: int) -> bool:
        """Tell systemd which process is the main one: MAINPID=.

        Args:
            pid: the new main process id.

        Returns:
            Whether the message was sent.

        Raises:
            ValueError: ``pid`` is not positive.
        """
        if pid <= 0:
            raise ValueError(f"mainpid needs a positive pid, got {pid!r}")
        return self.send(MAINPID=pid)

    def close(self) -> None:
        """Close the socket (idempotent). A later send opens a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def watchdog_interval_s(environ: Mapping[str, str] = os.environ) -> float | None:
    """How often to ping the watchdog, from WATCHDOG_USEC / WATCHDOG_PID (sd_watchdog_enabled).

    Args:
        environ: the environment to read.

    Returns:
        Half the watchdog period in seconds (systemd's advice: ping at half the period), or
        None when the watchdog is off, not meant for this process (WATCHDOG_PID is another
        pid), or the variables are malformed (logged).
    """
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = environ.get("WATCHDOG_PID")
    try:
        usec = int(raw)
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", raw, pid)
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000


async def watchdog_loop(notifier: Notifier, interval_s: float) -> NoReturn:
    """Ping the watchdog every ``interval_s`` seconds from the trio loop, until cancelled.

    Deliberately a trio task (not a thread or a timer): the pings prove that the event loop
    still schedules tasks. The first ping is sent at once; after a stall the next ping follows
    as soon as the loop runs again (no burst of missed pings).

    Args:
        notifier: where to send WATCHDOG=1.
        interval_s: seconds between pings, usually :func:`watchdog_interval_s`.

    Raises:
        ValueError: ``interval_s`` is not positive.
    """
    if not interval_s > 0:
        raise ValueError(f"watchdog interval must be > 0 s, got {interval_s!r}")
    while True:
        notifier.watchdog()
        await trio.sleep(interval_s)


def listen_fds_with_names(
    environ: MutableMapping[str, str] = os.environ, unset: bool = True
) -> list[tuple[str, socket.socket]]:
    """Take the sockets passed by socket activation (sd_listen_fds_with_names).

    Args:
        environ: the environment to read (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
        unset: remove those variables from ``environ`` (whatever their content), so that a
            child process does not take the sockets for its own.

    Returns:
        (name, socket) pairs for fds 3, 4, ...; empty when nothing was passed to this process
        (LISTEN_PID unset or another pid's). Names come from LISTEN_FDNAMES (FileDescriptorName=
        in the socket unit), "unknown" when it is absent. Each fd is made close-on-exec and
        wrapped with ``socket.socket(fileno=fd)``, which reads its family and type from the fd.

    Raises:
        ConfigError: LISTEN_PID or LISTEN_FDS is not a number, LISTEN_FDNAMES has the wrong
            count, or a passed fd is not a socket.
    """
    pid_s = environ.get("LISTEN_PID")
    fds_s = environ.get("LISTEN_FDS")
    names_s = environ.get("LISTEN_FDNAMES")
    if unset:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            environ.pop(key, None)
    if not pid_s or not fds_s:
        return []
    try:
        pid = int(pid_s)
        count = int(fds_s)
    except ValueError:
        raise ConfigError(
            f"socket activation: LISTEN_PID={pid_s!r} / LISTEN_FDS={fds_s!r}: expected integers"
        ) from None
    if pid != os.getpid():
        return []  # meant for a parent or a sibling, not us
    if count < 0:
        raise ConfigError(f"socket activation: LISTEN_FDS={fds_s!r}: expected a count >= 0")
    names = names_s.split(":") if names_s else ["unknown"] * count
    if len(names) != count:
        raise ConfigError(
            f"socket activation: LISTEN_FDNAMES={names_s!r} names {len(names)} "
            f"fds but LISTEN_FDS={count}"
        )
    result: list[tuple[str, socket.socket]] = []
    for fd, name in zip(
        range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count), names, strict=True
    ):
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            for _, taken in result:
                taken.detach()  # hand the fds back untouched rather than closing them
            raise ConfigError(
                f"socket activation: fd {fd} ({name!r}) is not a usable "
                f"socket: {exc.strerror or exc}"
            ) from None
        result.append((name, sock))
    return result


def listen_fds(
    environ: MutableMapping[str, str] = os.environ, unset: bool = True
) -> list[socket.socket]:
    """Take the sockets passed by socket activation (sd_listen_fds).

    Args:
        environ: the environment to read (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
        unset: remove those variables from ``environ`` so children don't inherit them.

    Returns:
        The sockets for fds 3, 4, ... in order; empty when none were passed to this process.

    Raises:
        ConfigError: as :func:`listen_fds_with_names`.
    """
    return [sock for _, sock in listen_fds_with_names(environ, unset)]
