# The blocking facade for one-off scripts and REPLs, built on the trio client: module functions
# run one request in a fresh trio.run; Client and Socket keep a trio loop in a thread of their
# own (through a trio_token portal) so keep-alive connections and a socket outlive each call.
# Must not: add behaviour of its own; every option and error is the trio client's.
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import trio

from gateway.client.http import Client as _AsyncClient
from gateway.client.http import Response
from gateway.client.socket import JWR, SailsSocket, open_socket

__all__ = ["request", "get", "post", "put", "patch", "delete", "head", "Client", "Socket"]


def request(
    method: str, url: str, *, client: Mapping[str, Any] | None = None, **kwargs: Any
) -> Response:
    """One request from blocking code (a new connection each call; use Client for many).

    Args:
        method: the HTTP method.
        url: an absolute URL.
        client: options for the underlying Client (timeout, token, verify, ...).
        **kwargs: the request's options (see gateway.client.Client.stream).

    Returns:
        The response, body read.

    Raises:
        The client's errors (RequestTimeout, TransportError, ...).
    """

    async def run() -> Response:
        async with _AsyncClient(**(client or {})) as c:
            return await c.request(method, url, **kwargs)

    return trio.run(run)


def get(url: str, **kwargs: Any) -> Response:
    """``request("GET", url, ...)``."""
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    """``request("POST", url, ...)``."""
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> Response:
    """``request("PUT", url, ...)``."""
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> Response:
    """``request("PATCH", url, ...)``."""
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> Response:
    """``request("DELETE", url, ...)``."""
    return request("DELETE", url, **kwargs)


def head(url: str, **kwargs: Any) -> Response:
    """``request("HEAD", url, ...)``."""
    return request("HEAD", url, **kwargs)


class _Loop:
    """A trio loop in a daemon thread, holding one async resource open until close()."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self.resource: Any = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="gateway-client")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the opener, or ends the thread
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with self._opener() as resource:
            self.resource = resource
            self._ready.set()
            await self._stop.wait()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return await fn(*args, **kwargs)

        if not self._thread.is_alive():
            raise RuntimeError("closed")
        return trio.from_thread.run(run, trio_token=self._token)

    def close(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            self._thread.join()


class Client:
    """A blocking keep-alive client: ``with Client("http://board:8080") as c: c.get("/x")``.

    Args:
        base_url, **options: as gateway.client.Client.
    """

    def __init__(self, base_url: str = "", **options: Any) -> None:
        self._loop = _Loop(lambda: _AsyncClient(base_url, **options))

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        """Send a request and read the response (see gateway.client.Client.request)."""
        return self._loop.call(self._loop.resource.request, method, url, **kwargs)  # type: ignore[no-any-return]

    def get(self, url: str, **kwargs: Any) -> Response:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        """Close the connections and stop the client's thread."""
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Socket:
    """A blocking Sails socket: ``with Socket("http://board:8080") as io: io.get("/x").body``.

    Server-event handlers (``on``) run in the socket's own thread.

    Args:
        url, **options: as gateway.client.open_socket.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = _Loop(lambda: open_socket(url, **options))

    @property
    def socket(self) -> SailsSocket:
        """The underlying trio SailsSocket."""
        return self._loop.resource  # type: ignore[no-any-return]

    def request(self, method: str, url: str, data: Any = None, **kwargs: Any) -> JWR:
        """A virtual request (see SailsSocket.request)."""
        return self._loop.call(self.socket.request, method, url, data, **kwargs)  # type: ignore[no-any-return]

    def get(self, url: str, data: Any = None, **kwargs: Any) -> JWR:
        """``request("get", url, data)``."""
        return self.request("get", url, data, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> JWR:
        """``request("post", url, data)``."""
        return self.request("post", url, data, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> JWR:
        """``request("put", url, data)``."""
        return self.request("put", url, data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> JWR:
        """``request("patch", url, data)``."""
        return self.request("patch", url, data, **kwargs)

    def delete(self, url: str, data: Any = None, **kwargs: Any) -> JWR:
        """``request("delete", url, data)``."""
        return self.request("delete", url, data, **kwargs)

    def on(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(*args)`` (in the socket's thread) for each ``event`` from the server."""
        return self.socket.on(event, fn)

    def close(self) -> None:
        """Leave and close the socket; stop its thread."""
        self._loop.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
