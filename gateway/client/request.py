# The seeds' request object: chainable configuration as SproutCore's SC.Request (seed 001),
# handlers by status with its fall-through rules, progress events, and seed 002's events
# (done / error / value) and error codes; the same exchange as a plain `await` or `async for`.
# Owns: handler registration and dispatch, the await/iteration semantics, abort, the
# response's seed-002 fields (data, type, last_error).
# Must not: touch connections (gateway.client.http does) or know the transport beyond a sender.
#
# Theory of operation: an exchange is driven by _Exchange, an async iterator whose every step
# (__anext__) runs in its own cancel scope, so abort() can cancel whichever step is running
# (and no scope ever spans a yield). The first step sends the request and reads the response
# head; JSON-seq / NDJSON bodies then give one value per record, other bodies are read whole.
# Status handlers run once the body is read (for a stream: once the head is in); the `done` or
# `error` event runs at the end. `await req` drives the iterator and calls the `value` handlers;
# `async for value in req` hands the values to the caller instead.
from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, cast

import trio

import gateway.client.jsonseq as jsonseq
from gateway.client.errors import (
    Aborted,
    ClientError,
    InvalidJSON,
    RequestTimeout,
    error_for_status,
)

if TYPE_CHECKING:
    from typing import Protocol

    from gateway.client.response import Response

    class Sender(Protocol):
        """What a request object needs of its client (gateway.client.http.Client): a typed
        shape, so that this module need not import the client, whose ``new`` makes requests."""

        @property
        def open(self) -> Callable[..., Awaitable[Response]]:
            """``Client.open(method, url, **options)``: the response head, body unread."""
            ...


__all__ = ["Request", "Progress", "EVENTS"]

# SC.Request's XMLHttpRequest progress events, and seed 002's events.
EVENTS: Final = frozenset(
    {
        "loadstart",
        "progress",
        "upload.progress",
        "load",
        "loadend",
        "abort",
        "timeout",
        "error",
        "done",
        "value",
    }
)
_UNSET: Any = object()
_JSON_TYPES: Final = ("application/json", "text/json")


class Progress:
    """A progress event (``progress`` / ``upload.progress``): bytes so far and the total.

    Attributes:
        loaded: bytes transferred so far.
        total: the total (Content-Length), or None when unknown.
        length_computable: total is known.
    """

    __slots__ = ("loaded", "total")

    def __init__(self, loaded: int, total: int | None) -> None:
        self.loaded = loaded
        self.total = total

    @property
    def length_computable(self) -> bool:
        return self.total is not None

    def __repr__(self) -> str:
        return f"Progress({self.loaded}, {self.total})"


def _matches(key: int, status: int) -> int:
    """0 no match, 1 specific, 2 generic (400 = any 4xx), 3 catch-all."""
    if key == 0:
        return 3
    if key == status:
        return 1
    if key % 100 == 0 and key // 100 == status // 100:
        return 2
    return 0


class Request:
    """One request, configured by chaining, sent by ``await`` (or iterated with ``async for``).

    ``await client.new("GET", "/user/3").json().notify(404, missing).notify(200, found)``

    Handlers (``notify``) receive the Response for a status, a Progress for progress events,
    the error for ``error``, ``(value, response)`` for ``value``. Handlers may be plain or
    async functions. Made by ``Client.new`` (or ``get_url`` & co).

    Args:
        client: the Client that sends it.
        method: the HTTP method.
        url: absolute or relative to the client's base_url.
    """

    __slots__ = (
        "client",
        "method",
        "url",
        "_headers",
        "_params",
        "_body",
        "_is_json",
        "_timeout",
        "_token",
        "_identify",
        "_status_handlers",
        "_events",
        "_scope",
        "_aborted",
        "response",
    )

    def __init__(self, client: Sender, method: str, url: str) -> None:
        self.client = client
        self.method = method.upper()
        self.url = url
        self._headers: dict[str, str] = {}
        self._params: list[tuple[str, Any]] = []
        self._body: Any = _UNSET
        self._is_json = False
        self._timeout: Any = _UNSET
        self._token: str | None = None
        self._identify = True
        self._status_handlers: list[tuple[int, Callable[..., Any]]] = []
        self._events: dict[str, list[Callable[..., Any]]] = {}
        self._scope: trio.CancelScope | None = None
        self._aborted = False
        self.response: Response | None = None

    # -- configuration (chainable) ----------------------------------------------------------

    def header(self, key: str | dict[str, str], value: str | None = None) -> Request:
        """Set one header, or several from a dict (SC.Request.header).

        Returns:
            self.
        """
        if isinstance(key, dict):
            for k, v in key.items():
                self._headers[k.lower()] = str(v)
        elif value is None:
            self._headers.pop(key.lower(), None)
        else:
            self._headers[key.lower()] = str(value)
        return self

    def clear_headers(self) -> Request:
        """Forget the headers set so far."""
        self._headers.clear()
        return self

    def params(self, **values: Any) -> Request:
        """Add query parameters (repeated calls add more)."""
        self._params.extend(values.items())
        return self

    def json(self, flag: bool = True) -> Request:
        """Send the body as JSON and parse the response as JSON (SC.Request.json); also asks
        for JSON (``Accept: application/json``)."""
        self._is_json = flag
        return self

    def body(self, value: Any) -> Request:
        """The body: with ``json()`` any JSON value, else bytes, str, a binary file or an
        (async) iterable of bytes."""
        self._body = value
        return self

    def timeout_after(self, seconds: float | None) -> Request:
        """The total deadline of this request (SC's timeoutAfter, in seconds, not ms)."""
        if seconds is not None and seconds <= 0:
            raise ValueError("timeout_after needs a positive number of seconds")
        self._timeout = seconds
        return self

    def credentials(self, token: str | None) -> Request:
        """Send this bearer token (``Authorization: Bearer``), in place of the client's."""
        self._token = token
        return self

    token = credentials

    def identify(self, flag: bool = True) -> Request:
        """Send ``X-Requested-With: XMLHttpRequest`` (on by default, as SC.Request: it makes
        Sails' and the gateway's ``req.wants_json``/``req.xhr`` true)."""
        self._identify = flag
        return self

    def notify(
        self, status_or_event: int | str | Callable[..., Any], fn: Callable[..., Any] | None = None
    ) -> Request:
        """Register a handler (SC.Request.notify).

        Args:
            status_or_event: a status (404: only that one; 400: any 4xx unless a more specific
                handler returned True; 0: any status), an event name (EVENTS), or the handler
                itself (= status 0).
            fn: the handler. For statuses the handlers run specific first, then the generic
                range, then the catch-alls, each group in registration order, until one returns
                True (SC.Request's fall-through).

        Returns:
            self.

        Raises:
            ValueError: an unknown event name or status.
        """
        if fn is None:
            if not callable(status_or_event):
                raise ValueError("notify(status_or_event, fn) needs a handler")
            fn, status_or_event = status_or_event, 0
        if isinstance(status_or_event, str):
            if status_or_event not in EVENTS:
                raise ValueError(
                    f"unknown event {status_or_event!r} (one of {', '.join(sorted(EVENTS))})"
                )
            self._events.setdefault(status_or_event, []).append(fn)
        elif isinstance(status_or_event, int) and (
            status_or_event == 0 or 100 <= status_or_event <= 599
        ):
            self._status_handlers.append((status_or_event, fn))
        else:
            raise ValueError(f"not a status or an event: {status_or_event!r}")
        return self

    def on(self, event: str, fn: Callable[..., Any]) -> Request:
        """Seed 002's ``request.on(event, fn)``: ``notify`` for an event name."""
        if not isinstance(event, str):
            raise ValueError("on() takes an event name; use notify() for statuses")
        return self.notify(event, fn)

    def copy(self) -> Request:
        """A new request with the same configuration and handlers (SC.Request.copy)."""
        other = Request(self.client, self.method, self.url)
        other._headers = dict(self._headers)
        other._params = list(self._params)
        other._body = self._body
        other._is_json = self._is_json
        other._timeout = self._timeout
        other._token = self._token
        other._identify = self._identify
        other._status_handlers = list(self._status_handlers)
        other._events = {k: list(v) for k, v in self._events.items()}
        return other

    # -- sending -------------------------------------------------------------------------

    def abort(self) -> None:
        """Abort the exchange in flight: its connection is discarded, ``abort`` and ``error``
        (code 503) fire, and ``await`` raises Aborted if nothing handled it."""
        self._aborted = True
        if self._scope is not None:
            self._scope.cancel()

    async def send(self, body: Any = _UNSET) -> Response | None:
        """Send, run the handlers and events, and return the response.

        Args:
            body: the body (as ``body()``).

        Returns:
            The response; None when an error was handled by an ``error`` listener before any
            response arrived.

        Raises:
            The seed-002 error (StatusError 504 / Forbidden 510 / NotFound 511 for a non-2xx
            status, RequestTimeout 501, TransportError 502, Aborted 503, InvalidJSON 520) when
            nothing handled it: no status handler returned True and no ``error`` listener.
        """
        if body is not _UNSET:
            self._body = body
        exchange = _Exchange(self, iterating=False)
        values = self._events.get("value")
        async for value in exchange:
            if values:
                for fn in values:
                    await _call(fn, value, exchange.response)
        return exchange.response

    resend = send

    def __await__(self) -> Any:
        return self.send().__await__()

    def __aiter__(self) -> _Exchange:
        """``async for value in req``: the JSON-seq / NDJSON records as they arrive (or the one
        value of a JSON body); handlers and events run as for ``await``."""
        return _Exchange(self)

    # -- internals -------------------------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        headers = dict(self._headers)
        if self._identify:
            headers.setdefault("x-requested-with", "XMLHttpRequest")
        if self._is_json:
            headers.setdefault("accept", "application/json")
        if self._token is not None:
            headers["authorization"] = f"Bearer {self._token}"
        kwargs: dict[str, Any] = {"headers": headers}
        if self._params:
            kwargs["params"] = self._params
        if self._timeout is not _UNSET:
            kwargs["timeout"] = self._timeout
        body = self._body
        if body is not _UNSET:
            if self._is_json or isinstance(body, (dict, list)):
                kwargs["json"] = body
            else:
                kwargs["content"] = body
        if "progress" in self._events:
            kwargs["on_download"] = self._progress("progress")
        if "upload.progress" in self._events:
            kwargs["on_upload"] = self._progress("upload.progress")
        return kwargs

    def _progress(self, event: str) -> Callable[[int, int | None], None]:
        handlers = self._events[event]

        def fire(loaded: int, total: int | None) -> None:
            progress = Progress(loaded, total)
            for fn in handlers:
                fn(progress)  # progress handlers run inline: they must be plain functions

        return fire

    async def _fire(self, event: str, *args: Any) -> bool:
        handlers = self._events.get(event)
        if not handlers:
            return False
        for fn in handlers:
            await _call(fn, *args)
        return True

    async def _run_status_handlers(self, response: Response) -> bool:
        status = response.status
        handlers = self._status_handlers
        if not handlers:
            return False
        for rank in (1, 2, 3):
            for key, fn in handlers:
                if _matches(key, status) == rank and await _call(fn, response) is True:
                    return True
        return False


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class _Exchange:
    """The async iterator behind ``await req`` and ``async for value in req`` (see the theory
    of operation at the top).

    Args:
        req: the request.
        iterating: ``async for``: a plain JSON body is given as one value too (``await`` gives
            ``value`` handlers JSON-seq / NDJSON records only, as seed 002).
    """

    __slots__ = ("req", "iterating", "response", "_decoder", "_pending", "_state", "_handled")

    def __init__(self, req: Request, iterating: bool = True) -> None:
        self.req = req
        self.iterating = iterating
        self.response: Response | None = None
        self._decoder: jsonseq.JSONSeqDecoder | jsonseq.NDJSONDecoder | None = None
        self._pending: deque[Any] = deque()
        self._state = 0  # 0 not sent, 1 reading records, 3 body done (events due), 2 over
        self._handled = False

    def __aiter__(self) -> _Exchange:
        return self

    async def __anext__(self) -> Any:
        req = self.req
        pending = self._pending
        while True:
            if pending:
                item = pending.popleft()
                if type(item) is jsonseq.InvalidRecord:
                    await self._invalid(item)
                    continue
                return item
            if self._state == 3:
                self._state = 2
                resp = self.response
                await req._fire("load", resp)
                await req._fire("done", resp)
                await req._fire("loadend", resp)
            if self._state == 2:
                raise StopAsyncIteration
            scope = req._scope = trio.CancelScope()
            error: ClientError | None = None
            with scope:
                try:
                    if self._state == 0:
                        await self._start()
                    else:
                        await self._more()
                except ClientError as exc:
                    error = exc
            req._scope = None
            if scope.cancelled_caught:
                error = Aborted(f"{req.method} {req.url}: aborted", self.response)
            if error is not None:
                await self._fail(error)

    async def _start(self) -> None:
        req = self.req
        await req._fire("loadstart", req)
        resp = self.response = await req.client.open(req.method, req.url, **req._kwargs())
        req.response = resp
        ctype = resp.content_type
        if 200 <= resp.status < 300 and (
            ctype in jsonseq.SEQ_TYPES or ctype in jsonseq.NDJSON_TYPES
        ):
            self._decoder = (
                jsonseq.JSONSeqDecoder() if ctype in jsonseq.SEQ_TYPES else jsonseq.NDJSONDecoder()
            )
            resp.data, resp.type = {}, "json"
            self._handled = await req._run_status_handlers(resp)
            self._state = 1
            return
        await resp.read()
        if ctype in _JSON_TYPES or ctype.endswith("+json") or (req._is_json and resp.content):
            resp.type = "json"
            try:
                resp.data = resp.json()
            except InvalidJSON:
                self._handled = await req._run_status_handlers(resp)
                raise
        else:
            resp.type = "blob"
            resp.data = resp.text if ctype.startswith("text/") or not ctype else resp.content
        self._handled = await req._run_status_handlers(resp)
        if not 200 <= resp.status < 300:
            raise error_for_status(resp.status, resp.reason, resp)
        if self.iterating and resp.type == "json":
            self._pending.append(resp.data)
        self._state = 3

    async def _more(self) -> None:
        resp = self.response
        decoder = self._decoder
        assert resp is not None and decoder is not None
        chunk = await resp.next_chunk()
        if chunk is None:
            self._pending.extend(decoder.close())
            self._state = 3
        else:
            self._pending.extend(decoder.feed(chunk))

    async def _invalid(self, item: jsonseq.InvalidRecord) -> None:
        resp = self.response
        err = InvalidJSON(f"record {item.index}: {item.reason}", resp, item.text)
        if resp is not None:
            resp.errors.append(err)
        await self.req._fire("error", err)

    async def _fail(self, error: ClientError) -> None:
        self._state = 2
        self._pending.clear()
        req = self.req
        # an error raised by an HTTP exchange carries that exchange's Response
        resp = self.response if error.response is None else cast("Response", error.response)
        if resp is not None:
            resp.last_error = error.code
            await resp.aclose()
        if isinstance(error, RequestTimeout):
            await req._fire("timeout", error)
        elif isinstance(error, Aborted):
            await req._fire("abort", error)
        listened = await req._fire("error", error)
        await req._fire("loadend", resp)
        if not (listened or self._handled):
            raise error
