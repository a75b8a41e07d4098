# CORS: ONE origin policy for HTTP requests, Sails virtual requests and WebSocket/Socket.IO
# handshakes, from the profile's [cors] with per-router and per-route overrides (the `cors`
# option). Owns: compiling the policies (at bind), the preflight answer, the headers of actual
# requests, the origin check of socket handshakes and of cross-origin virtual requests.
# Must not: look at credentials (a preflight carries none, so it is answered before any privilege
# check, on purpose) or touch I/O beyond the Response it is handed. Loaded only when a policy
# exists (the profile lists origins, or a route or router has a `cors` option) or a socket opens.
#
# Theory of operation. `Cors` is built by App.prepare_bind: the profile's Policy (None when
# [cors] allowed_origins is empty: same-origin only, no CORS headers) and every `cors` chain of
# the app's routers, each merged and checked once (a conflict refuses the start or the reload).
# Per request the exchange calls `Cors.apply()`: the route the request (or, for a preflight, the
# method it announces) would reach is looked up WITHOUT running anything (Router.cors_options),
# its policy decides; a preflight is answered at once (204), anything else gets its headers set
# before the app runs, and it returns them so that an error reply keeps them.
#
# Decisions (with the sources that made them):
# - A preflight from an origin the policy does not allow gets 403 with `Vary: Origin` and no
#   CORS header. Browsers fail a preflight without Access-Control-Allow-Origin whatever its
#   status (Fetch, "CORS check"), so the status only speaks to people and tools: the `cors`
#   npm package answers 204 and Sails 200 (both look like success in logs and metrics, for a
#   refusal), Starlette's CORSMiddleware 400 "Disallowed CORS origin" (a refusal, but 400 says
#   the request was malformed, which it was not). 403 says what happened. Nothing of the
#   policy (methods, headers) is told to an origin that is not allowed (Sails' reason too).
# - An allowed origin's preflight always gets the whole policy (204), even for a method or a
#   header the policy does not list: the browser then names exactly what was refused
#   ("Method PUT is not allowed by Access-Control-Allow-Methods"); refusing the preflight
#   would hide that behind a bare CORS error. The browser enforces it either way.
# - `Vary: Origin` on every response a listed-origins policy covers, with or without an Origin
#   header: a cache that kept the answer to a request without Origin (no CORS headers) must not
#   hand it to a cross-origin page (Fetch, "CORS protocol and HTTP caches"). `"*"` does not
#   depend on the Origin: `Access-Control-Allow-Origin: *` on every response, no Vary.
# - `"*"` never admits a WebSocket or Socket.IO handshake: a handshake always carries the
#   browser's cookies, i.e. it is a credentialed request, and `"*"` never counts for those.
#   Same-origin pages always may; other origins must be listed.
# - Cross-origin virtual requests are checked against their route's policy by the server:
#   no browser stands between a socket and its JWRs, so a route that does not allow the
#   socket's origin answers 403 (Sails only sets the headers; see docs/FIDELITY.md).
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from gateway.errors import ConfigError, Forbidden

_ORIGIN: Final = frozenset((b"origin",))

if TYPE_CHECKING:
    from gateway.app.contracts import ConnectionInfo
    from gateway.app.request import Request
    from gateway.app.response import Response

    class Router(Protocol):
        """What the CORS policy reads of a router (gateway.app.router.Router): the ``cors``
        options of its layers, without running them (a Protocol: router imports this module)."""

        def cors_chains(self) -> Iterable[tuple[str, Any]]: ...

        def cors_options(self, method: str, path: str, upgrade: bool) -> Any: ...

    from gateway.settings import CorsSettings

__all__ = ["Cors", "Policy", "check_option", "same_origin", "socket_allowed"]

log = logging.getLogger("gateway.cors")

KEYS: Final = (
    "allowed_origins",
    "allowed_methods",
    "allowed_headers",
    "allow_credentials",
    "max_age_s",
    "exposed_headers",
)
_DEFAULT_PORTS: Final = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_VARY_ORIGIN: Final = ("Vary", "Origin")


def _normal_origin(origin: str) -> str:
    """An origin as browsers serialise it: lower case, no default port, no trailing slash."""
    origin = origin.strip().rstrip("/").lower()
    scheme, sep, rest = origin.partition("://")
    default = _DEFAULT_PORTS.get(scheme)
    if sep and default and rest.endswith(":" + default):
        origin = origin[: -len(default) - 1]
    return origin


def _host_port(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = _DEFAULT_PORTS.get(scheme.lower())
    if default and netloc.endswith(":" + default) and not netloc.endswith("]"):
        netloc = netloc[: -len(default) - 1]
    return netloc


def same_origin(origin: str, host: str | None) -> bool:
    """True if ``origin`` names the host the request was sent to (default ports ignored).

    Args:
        origin: the Origin header ("null" is never the same origin).
        host: the Host header of the same request, or None.

    Returns:
        Whether the Origin's host:port equals the Host header's.
    """
    scheme, sep, netloc = origin.strip().partition("://")
    if not sep or not scheme or not netloc or not host or "/" in netloc:
        return False
    return _host_port(scheme, netloc) == _host_port(scheme, host.strip())


class _Answer:
    """An actual request's CORS headers as the exchange keeps them (``pairs``) and as they go
    into a Response's header table (``entries``: lower-case name -> (name, value))."""

    __slots__ = ("pairs", "entries")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = tuple(pairs)
        self.entries = {name.lower(): (name, value) for name, value in pairs}


class Policy:
    """One compiled CORS policy: the profile's, or a route's override merged over it.

    Attributes:
        origins: the listed origins, normalised (lower case, no default port).
        any_origin: ``"*"`` was listed (never with credentials).
        credentials: Access-Control-Allow-Credentials: true.
    """

    __slots__ = (
        "origins",
        "any_origin",
        "credentials",
        "_allow_tail",
        "_preflight_tail",
        "_reflect_methods",
        "_reflect_headers",
        "_vary",
        "_refused",
        "_answers",
    )

    def __init__(self, values: Mapping[str, Any]) -> None:
        origins = tuple(values["allowed_origins"])
        self.any_origin = "*" in origins
        self.origins = frozenset(_normal_origin(o) for o in origins if o != "*")
        self.credentials = bool(values["allow_credentials"])
        exposed = tuple(values["exposed_headers"])
        if self.credentials and (self.any_origin or "*" in exposed):
            which = "allowed_origins" if self.any_origin else "exposed_headers"
            raise ValueError(
                f'cors: "*" in {which} together with allow_credentials = true: '
                "browsers refuse a wildcard on credentialed requests"
            )
        tail: list[tuple[str, str]] = []
        if self.credentials:
            tail.append(("Access-Control-Allow-Credentials", "true"))
        if exposed:
            tail.append(("Access-Control-Expose-Headers", ", ".join(exposed)))
        self._allow_tail = tuple(tail)
        methods = tuple(values["allowed_methods"])
        headers = tuple(values["allowed_headers"])
        # "*" reflects what the preflight asked for: valid with credentials too, where a
        # literal "*" would be read as a name (Fetch)
        self._reflect_methods = "*" in methods
        self._reflect_headers = "*" in headers
        pre: list[tuple[str, str]] = []
        if methods and not self._reflect_methods:
            pre.append(("Access-Control-Allow-Methods", ", ".join(methods)))
        if headers and not self._reflect_headers:
            pre.append(("Access-Control-Allow-Headers", ", ".join(headers)))
        max_age = int(values["max_age_s"])
        if max_age > 0:
            pre.append(("Access-Control-Max-Age", str(max_age)))
        self._preflight_tail = tuple(pre)
        vary = [] if self.any_origin else ["Origin"]
        if self._reflect_methods:
            vary.append("Access-Control-Request-Method")
        if self._reflect_headers:
            vary.append("Access-Control-Request-Headers")
        self._vary = ", ".join(vary)
        # the actual-request answers, made once: for any origin not allowed, and for each
        # allowed origin as browsers send it (so the table is bounded by the policy's list)
        # ("*": one answer for all, the one made for no Origin)
        self._refused = _Answer(self.actual_headers(None))
        self._answers = {origin: _Answer(self.actual_headers(origin)) for origin in self.origins}

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Policy | None:
        """The policy of ``values`` (the [cors] keys), or None when it lists no origin.

        Raises:
            ValueError: ``"*"`` together with credentials.
        """
        return cls(values) if values["allowed_origins"] else None

    def allows(self, origin: str) -> bool:
        """Whether a page of ``origin`` may read responses (``"*"``: any page)."""
        return self.any_origin or _normal_origin(origin) in self.origins

    def allows_socket(self, origin: str) -> bool:
        """Whether a page of ``origin`` may open a WebSocket: listed origins only, never by
        ``"*"`` (a handshake carries cookies: it is a credentialed request)."""
        return _normal_origin(origin) in self.origins

    def actual_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of a response to an actual (not preflight) request.

        Args:
            origin: the request's Origin header, or None.

        Returns:
            Vary: Origin (unless ``"*"``), and for an allowed origin Access-Control-Allow-Origin
            (the origin itself, or ``*``), -Allow-Credentials and -Expose-Headers.
        """
        out: list[tuple[str, str]] = []
        if self.any_origin:
            out.append(("Access-Control-Allow-Origin", "*"))
            out.extend(self._allow_tail)
            return out
        out.append(_VARY_ORIGIN)
        if origin is not None and _normal_origin(origin) in self.origins:
            out.append(("Access-Control-Allow-Origin", origin.strip()))
            out.extend(self._allow_tail)
        return out

    def answer(self, origin: str | None) -> _Answer:
        """actual_headers(), made once per allowed origin (the hot path of apply())."""
        if self.any_origin or origin is None:
            return self._refused  # "*": the same answer for every request
        hit = self._answers.get(origin)
        if hit is not None:
            return hit
        if _normal_origin(origin) in self.origins:  # written otherwise than browsers do
            return _Answer(self.actual_headers(origin))
        return self._refused

    def preflight_headers(self, origin: str, headers: Mapping[str, str]) -> list[tuple[str, str]]:
        """The headers of the answer to an allowed origin's preflight.

        Args:
            origin: its Origin header (allowed).
            headers: the preflight's request headers (lower-case names).

        Returns:
            Access-Control-Allow-Origin, -Credentials, -Methods, -Headers, -Max-Age,
            -Private-Network when asked for, and Vary.
        """
        out = [
            ("Access-Control-Allow-Origin", "*" if self.any_origin else origin.strip()),
            *self._allow_tail,
            *self._preflight_tail,
        ]
        if self._reflect_methods:
            out.append(
                (
                    "Access-Control-Allow-Methods",
                    headers.get("access-control-request-method", "").strip(),
                )
            )
        if self._reflect_headers and headers.get("access-control-request-headers"):
            out.append(
                ("Access-Control-Allow-Headers", headers["access-control-request-headers"].strip())
            )
        # Chromium's Private Network Access: a public page asks before it calls a device on
        # the LAN. The owner listed this origin: that is the answer.
        if headers.get("access-control-request-private-network", "").strip() == "true":
            out.append(("Access-Control-Allow-Private-Network", "true"))
        if self._vary:
            out.append(("Vary", self._vary))
        return out


def check_option(value: object, where: str = "cors") -> bool | dict[str, Any] | None:
    """Check a ``cors=`` route or router option when it is registered.

    Args:
        value: None (inherit), True (the policy of the enclosing router or the profile),
            False (no CORS: same-origin only), or a dict of [cors] keys overriding the
            enclosing policy's (``{"allowed_origins": ["https://app.example"]}``).
        where: what to name in an error.

    Returns:
        The option, with a dict's values checked and normalised (lists as tuples).

    Raises:
        TypeError: not one of those kinds.
        ValueError: an unknown key, a wrong value (the same checks as the profile's), or
            ``"*"`` together with credentials.
    """
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected True, False or a dict of [cors] keys, got {value!r}")
    from gateway.settings import check_value

    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; expected one of: {', '.join(KEYS)}")
        try:
            out[key] = check_value(f"cors.{key}", item, where)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    if out.get("allow_credentials") and (
        "*" in out.get("allowed_origins", ()) or "*" in out.get("exposed_headers", ())
    ):
        raise ValueError(
            f'{where}: "*" together with allow_credentials = true: browsers '
            "refuse a wildcard on credentialed requests"
        )
    return out


class Cors:
    """The CORS policies of one App under one profile (built by App.prepare_bind).

    Args:
        settings: the profile's [cors].
        root: the App whose routers' ``cors`` options are compiled now (None: none).
        source: the profile's file, for an error message.

    Raises:
        ConfigError: a route's or router's option, merged over the profile's, puts ``"*"``
            together with credentials.

    Attributes:
        base: the profile's policy, None when it lists no origin.
        overrides: some router or route has a ``cors`` option.
        active: a policy exists somewhere: the exchange calls apply() for every request.
    """

    __slots__ = ("base", "overrides", "active", "_values", "_chains")

    def __init__(
        self, settings: CorsSettings, root: Router | None = None, source: str = ""
    ) -> None:
        self._values: dict[str, Any] = {key: getattr(settings, key) for key in KEYS}
        self.base = Policy.build(self._values)
        # id(option) of each chain -> (the options, kept alive so ids stay theirs; the policy)
        self._chains: dict[tuple[int, ...], tuple[tuple[Any, ...], Policy | None]] = {}
        self.overrides = False
        if root is not None:
            for label, chain in root.cors_chains():
                self.overrides = True
                try:
                    self._compile(chain)
                except ValueError as exc:
                    raise ConfigError(
                        f"{label}: {exc} (merged over the [cors] of {source or 'the profile'})"
                    ) from None
        self.active = self.base is not None or self.overrides

    def _compile(self, chain: tuple[Any, ...]) -> Policy | None:
        key = tuple(map(id, chain))
        hit = self._chains.get(key)
        if hit is not None:
            return hit[1]
        values: dict[str, Any] | None = self._values
        for option in chain:  # outermost first: each one over what encloses it
            if option is False:
                values = None
            elif option is True:
                values = self._values if values is None else values
            else:
                values = {**(self._values if values is None else values), **option}
        policy = None if values is None else Policy.build(values)
        self._chains[key] = (chain, policy)
        return policy

    def policy_for(
        self, router: Router, method: str, path: str, upgrade: bool = False
    ) -> Policy | None:
        """The policy of the route ``method path`` would reach (None: no CORS there).

        Args:
            router: the App (or its built-in router for /_gateway/).
            method: the method (a preflight's Access-Control-Request-Method).
            path: the request path.
            upgrade: a WebSocket handshake (ws routes only).

        Returns:
            The Policy, or None.
        """
        if not self.overrides:
            return self.base
        chain = router.cors_options(method, path, upgrade)
        if not chain:
            return self.base
        try:
            return self._compile(chain)
        except ValueError as exc:  # a route registered after the server started
            log.error("%s %s: %s; no CORS for it", method, path, exc)
            self._chains[tuple(map(id, chain))] = (chain, None)
            return None

    async def apply(
        self, router: Router, info: ConnectionInfo, req: Request, res: Response
    ) -> tuple[tuple[str, str], ...] | None:
        """Apply the policy of ``req``'s route: answer a preflight, or set an actual request's
        headers before the app runs.

        Args:
            router: the router that will serve the request (the App, or its built-in one).
            info: the connection (a cross-origin socket's virtual requests are checked here).
            req: the request (not a WebSocket handshake).
            res: its response, nothing set yet.

        Returns:
            The headers set, to keep on an error reply; None when the request was answered (an
            allowed preflight: 204).

        Raises:
            Forbidden: a preflight from an origin the policy does not allow (with Vary: Origin),
                or a cross-origin virtual request to a route that does not allow its origin.
        """
        origin = _origin_of(req)
        method = req.method
        preflight = False
        if method == "OPTIONS" and origin is not None:
            headers = req.headers
            preflight = "access-control-request-method" in headers
            if preflight:
                method = headers["access-control-request-method"].strip()
        policy = self.policy_for(router, method, req.path)
        if (
            req.is_socket
            and origin is not None
            and getattr(info, "cross_origin", False)
            and (policy is None or not policy.allows(origin))
        ):
            raise Forbidden(None, "Forbidden: this route does not allow the socket's origin (CORS)")
        if policy is None:
            return ()  # no CORS here: a preflight is the app's (Allow, 401, ...)
        if preflight:
            assert origin is not None
            if not policy.allows(origin):
                raise Forbidden(
                    None,
                    "Forbidden: origin not allowed (CORS)",
                    [] if policy.any_origin else [_VARY_ORIGIN],
                )
            for name, value in policy.preflight_headers(origin, req.headers):
                res.set(name, value)
            res.status(204)
            await res.send()
            return None
        answer = policy.answer(origin)
        # straight into the header table, without res.set()'s checks: the names are ours, the
        # values the profile's (checked when loaded) and the request's Origin (checked by the
        # HTTP parser: no control characters); this runs for every request of a CORS profile
        res.update_headers(answer.entries)
        return answer.pairs


def _origin_of(req: Request) -> str | None:
    # The Origin header without building req.headers (a dict of every header, ~2 us) for each
    # request of a CORS profile: most handlers never ask for it. A repeated Origin is joined
    # as req.headers would join it (and matches no origin).
    return req.header_fields(_ORIGIN).get("origin")


def socket_allowed(
    cors: Cors | None,
    router: Router,
    legacy: Iterable[str],
    origin: str | None,
    host: str | None,
    path: str,
) -> bool:
    """The origin check of a WebSocket or Socket.IO handshake (cross-site WebSocket hijacking).

    No Origin: not a browser, which a hijacking page cannot be: allowed. A same-origin page:
    allowed. Otherwise the origin must be listed by the policy of the ws route (or, for
    /socket.io/, the profile's), or by the deprecated [websocket] allowed_origins; ``"*"``
    does not count (see the module's decisions). ``null`` is never allowed.

    Args:
        cors: the App's Cors, or None when no policy exists.
        router: the App.
        legacy: the profile's [websocket] allowed_origins.
        origin: the Origin header, or None.
        host: the Host header, or None.
        path: the full request path (a ws route's, or /socket.io/).

    Returns:
        True if the handshake may go on.
    """
    if origin is None:
        return True
    if same_origin(origin, host):
        return True
    wanted = _normal_origin(origin)
    if any(wanted == _normal_origin(item) for item in legacy):
        return True
    if cors is None:
        return False
    policy = cors.policy_for(router, "GET", path, upgrade=True)
    return policy is not None and policy.allows_socket(origin)
