# ONE request lifecycle for every transport (an HTTP request, a Sails virtual request over a
# WebSocket, ...): build the Request (mode limits, credentials; failed ones counted per peer by
# gateway.app.bans), apply the CORS policy (gateway.app.cors, before privilege: a preflight has
# no credentials), refuse a banned peer's credentials (429), run the app, finish the body
# stream on every path, write the access line, and turn every error into a reply, here and
# nowhere else. Transports are adapters that hand in a request head, a body source and a
# response sink (gateway.app.contracts); nothing here knows which transport it serves.
# Must not: touch sockets, tasks or the clock (the adapter passes the start time in).
#
# Theory of operation: an adapter calls `request()` (synchronous: the Request and its mode),
# may bind the request to transport state (a socket's rooms), then awaits `run()`. `run()`
# runs an optional endpoint first (the server's own handler for /socket.io), then the app's
# chain; an error raised before a response went out becomes the error reply; one raised after
# it is re-raised (there is nothing left to say: the adapter aborts the exchange). Requests that
# could not even be read (a malformed head, a bad virtual-request url) are answered by
# `refuse()` with the same error reply.
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from gateway.app.auth import presents_token
from gateway.app.request import Request
from gateway.app.response import NO_BODY, Response
from gateway.errors import REASONS, ClientDisconnected, HTTPError, MethodNotAllowed, NotFound

if TYPE_CHECKING:
    from typing import Protocol

    from gateway.app.application import App
    from gateway.app.contracts import BodySource, ConnectionInfo, ResponseSink

    class AccessLog(Protocol):  # for the type checker only, as gateway.app.contracts
        """Records one line per finished exchange (the server's access log)."""

        def log_access(
            self,
            info: ConnectionInfo,
            req: Request,
            res: Response,
            started: float,
            failure: BaseException | None = None,
        ) -> None: ...


__all__ = ["Exchange", "Endpoint"]

log = logging.getLogger("gateway.app")

# what a handler written for asyncio gets: say what to use instead (docs/GUIDE.md section 7)
_ASYNCIO_HINT = (
    " (handlers run on trio, not asyncio: use trio.sleep, trio.to_thread.run_sync "
    "for blocking calls, and @app.background for tasks; see docs/GUIDE.md)"
)

Endpoint = Callable[[Request, Response], Awaitable[None]]


class Exchange:
    """The request lifecycle of one App, shared by every connection of a server.

    Args:
        app: the application (bound to its settings: limits, budget, credentials).
        access_log: where finished exchanges are recorded, or None.
    """

    __slots__ = ("app", "access_log")

    def __init__(self, app: App, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.access_log = access_log

    def request(
        self,
        info: ConnectionInfo,
        method: str,
        target: str,
        path: str,
        query: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
        source: BodySource,
        http_version: str = "1.1",
        authorization: str | None = None,
        host: str | None = None,
        upgrade: bool = False,
        *,
        headers: dict[str, str] | None = None,
        body: Any = NO_BODY,
        transport: str | None = None,
    ) -> Request:
        """The Request for a request head, with its mode (privilege) and that mode's limits.

        Args:
            info: the connection (peer, scheme, privilege the connection itself grants).
            method, target, path, query: the request line, split (target = path + query).
            raw_headers: the header fields as bytes (HTTP), or () when ``headers`` is given.
            source: where the body comes from.
            http_version: "1.1" or "1.0".
            authorization: the Authorization header's value, if any (a bearer token gives
                privilege; a wrong one makes privileged routes answer 403 instead of 401).
            host: the authority of an absolute-form target (it wins over the Host header).
            upgrade: a GET asking for a WebSocket (only ws routes match it).
            headers: already decoded headers (lower-case names) instead of raw_headers.
            body: a body that arrived already parsed (a virtual request's data): it becomes
                ``req.body`` and body parsers skip it; NO_BODY for a byte body.
            transport: the adapter's name for ``req.transport`` (metrics, access log); None:
                "socket" for a parsed body, else "http". Only "socket" makes ``is_socket``.

        Returns:
            The Request.
        """
        app = self.app
        settings = app.settings
        if settings is None:
            raise RuntimeError("the App is not bound to settings (App.bind)")
        privileged = info.privileged
        auth_failed = False
        if authorization is not None and not privileged:
            bans = app.bans
            if bans is not None and bans.peers and bans.retry_after(info.peer):
                auth_failed = True  # a banned peer's token is not even checked: run() says 429
            else:
                privileged, auth_failed = app.credentials.check_authorization(authorization)
                if auth_failed and presents_token(authorization):
                    app.auth_failed(info.peer)  # counted, and banned past [bans] max_failures
        parsed = body is not NO_BODY
        is_socket = parsed if transport is None else transport == "socket"
        req = Request(
            app,
            method,
            target,
            path,
            query,
            raw_headers,
            protocol=info.scheme,
            http_version=http_version,
            client=info.peer,
            source=source,
            budget=app.budget,
            limits=settings.privileged if privileged else settings.user,
            privileged=privileged,
            is_socket=is_socket,
            auth_failed=auth_failed,
            host=host,
            upgrade=upgrade,
            headers=headers,
        )
        if parsed:
            req.body = body
            req.body_parsed = True  # body parsers see it as parsed and skip
        if transport is not None:
            req.transport = transport
        return req

    async def run(
        self,
        info: ConnectionInfo,
        req: Request,
        sink: ResponseSink,
        endpoint: Endpoint | None = None,
        started: float = 0.0,
    ) -> Response:
        """Serve ``req`` through ``sink``: endpoint or app, error replies, body end, access log.

        Args:
            info: the connection (for the access log).
            req: from ``request()``.
            sink: where the reply goes.
            endpoint: runs before the app; the app runs only if it left the response unsent.
            started: when the exchange started, in the adapter's clock (for the access log).

        Returns:
            The Response (status_code, bytes_sent, finished).

        Raises:
            ClientDisconnected: the client went away; there is nobody to reply to.
            Exception: a failure after the response head went out (the adapter aborts).
        """
        app = self.app
        res = Response(sink)
        res.req = req
        failure: BaseException | None = None  # what ended the exchange early (access log)
        kept: tuple[tuple[str, str], ...] = ()  # CORS headers: an error reply keeps them
        try:
            try:
                router = app.builtin if req.path.startswith("/_gateway/") else app
                cors = app.cors_policies
                if cors is not None and endpoint is None and not req.upgrade:
                    # before privilege: a preflight carries no credentials (gateway.app.cors)
                    kept = await cors.apply(router, info, req, res) or ()  # None: answered
                if req.auth_failed and not res.finished:
                    _refuse_banned(app, info)
                if endpoint is not None and not res.finished:
                    await endpoint(req, res)
                if not res.finished:
                    app.requests_served += 1
                    allowed: set[str] = set()
                    fell_through = False

                    async def done(err: Any = None) -> None:
                        nonlocal fell_through
                        if err is not None and err not in ("route", "router"):
                            raise err if isinstance(err, BaseException) else HTTPError(500)
                        fell_through = True

                    timeout = app.handler_timeout_s
                    if timeout:  # the profile's deadline: only then a cancel scope (~6 us)
                        from gateway.app.deadline import run_app

                        await run_app(timeout, req, router.handle, req, res, done, allowed)
                    else:
                        await router.handle(req, res, done, allowed)
                    if not res.finished:
                        stream = req.body_stream
                        if stream is not None:  # EdgerOS style: listeners, handler returned
                            await stream.pump()
                    if not res.headers_sent:
                        if not fell_through:
                            log.error(
                                "%s %s: handler returned without sending a response",
                                req.method,
                                req.path,
                            )
                            raise HTTPError(500)
                        if not allowed:
                            raise NotFound(None, f"Cannot {req.method} {req.original_url}"[:200])
                        await _no_method(req, res, allowed)
            except ClientDisconnected:
                raise
            except HTTPError as exc:
                if res.headers_sent:
                    raise
                await self.reply_error(
                    req,
                    res,
                    exc.status,
                    exc.message,
                    [*exc.headers, *kept] if kept else exc.headers,
                )
            except Exception as exc:
                log.exception(
                    "%s %s: unhandled error in handler%s",
                    req.method,
                    req.path,
                    _ASYNCIO_HINT if "no running event loop" in str(exc) else "",
                )
                if res.headers_sent:
                    raise
                await self.reply_error(req, res, 500, None, kept)
            if res.headers_sent and not res.finished:
                await res.end()  # a streamed response the handler left open
        except BaseException as exc:  # the client went away, cancelled, failed after the head
            failure = exc
            raise
        finally:
            stream = req.body_stream
            if stream is not None:
                await stream.finish()
            access_log = self.access_log
            if access_log is not None:
                access_log.log_access(info, req, res, started, failure)
        return res

    async def reply_error(
        self,
        req: Request | None,
        res: Response,
        status: int,
        message: str | None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        reveal: bool = False,
    ) -> None:
        """THE error reply: a short text, or ``{"error", "status"}`` when the client wants JSON.

        5xx replies say only the reason phrase (the cause goes to the log, never the client).
        Headers set before the error are dropped; ``headers`` (Allow, Retry-After, ...) are
        set. A virtual request's 404 is the reason phrase, as Sails' res.notFound() sends it.

        Args:
            req: the request, or None when none could be read (then the reply is text).
            res: its response, nothing sent yet.
            status: the status code.
            message: a client-safe text for a 4xx, or None for the reason phrase.
            headers: extra response headers.
            reveal: ``message`` is the gateway's own text (a protocol refusal such as 501 or
                505), safe to send with a 5xx too.
        """
        if status >= 500:
            self.app.errors_5xx += 1
        text = message if message and (status < 500 or reveal) else REASONS.get(status, "Error")
        res.clear_headers()
        for name, value in headers:
            res.set(name, value)
        res.status(status)
        if req is not None and req.is_socket and status == 404:
            await res.send_status(404)
        elif req is not None and req.wants_json:
            await res.json({"error": text, "status": status})
        elif res.carries_values:
            await res.send(text)  # a JWR's body is the text; it has no type to set
        else:
            await res.type("text").send(text)

    async def refuse(self, sink: ResponseSink, status: int, message: str) -> Response:
        """Answer a request that could not be read (malformed head, bad virtual url) with the
        error reply, as text.

        Args:
            sink: where the reply goes.
            status: the status code (the ProtocolError's hint).
            message: what was wrong, client-safe.

        Returns:
            The Response.
        """
        res = Response(sink)
        await self.reply_error(None, res, status, message, reveal=True)
        return res


def _refuse_banned(app: App, info: ConnectionInfo) -> None:
    # a request that presented credentials from a peer banned for guessing them (gateway.app.bans)
    bans = app.bans
    if bans is not None and bans.peers:
        left = bans.refuse(info.peer)
        if left:
            raise HTTPError(
                429,
                f"Too many failed credentials from this address: retry after {left} s",
                {"Retry-After": str(left)},
            )


async def _no_method(req: Request, res: Response, allowed: set[str]) -> None:
    # a path that only other methods match: OPTIONS gets the Allow list, others 405
    if "GET" in allowed:
        allowed.add("HEAD")
    allow = ", ".join(sorted(allowed))
    if req.method == "OPTIONS":
        # Express 5's router (router 2, sendOptionsResponse), which Sails' own virtual router
        # sends too: text/plain exactly (no charset), nosniff, the list as the body. The names
        # are lower-case as a Sails JWR shows them (its response lower-cases setHeader names);
        # over HTTP a field name's case carries no meaning (RFC 9110 5.1).
        res.status(200)
        res.set_header("allow", allow)
        res.set_header("content-type", "text/plain")
        res.set_header("x-content-type-options", "nosniff")
        await res.end(allow)
        return
    raise MethodNotAllowed(None, f"Method {req.method} not allowed", {"Allow": allow})
