# The machine-readable twin of the "Deliberate differences" table in docs/FIDELITY.md: each row
# names the cases it applies to and exactly how they differ (which fields, and what each side
# shows). The harness checks every listed difference is really there and really that one;
# tests/test_differential.py checks this table and the document list the same rows and cases.
# Must not: list a difference that is not kept on purpose (that is a bug to fix, not a row).
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.differential.harness import Outcome

Check = Callable[[Any, Any], str | None]  # (reference, gateway) -> None, or why it fails


NO_BODY = "<no body>"  # the harness's marker for an empty body (harness.NO_BODY)


def _absent(value: Any) -> bool:
    return repr(value) == "<absent>"


def absent(value: Any, _other: Any = None) -> str | None:
    return None if _absent(value) else f"expected no value, got {value!r}"


def present(value: Any, _other: Any = None) -> str | None:
    return f"expected a value, got {value!r}" if _absent(value) else None


def equals(*expected: Any) -> Check:
    """The value is one of ``expected``."""

    def check(value: Any, _other: Any = None) -> str | None:
        return (
            None
            if value in expected
            else f"expected {' or '.join(map(repr, expected))}, got {value!r}"
        )

    return check


def contains(*parts: str) -> Check:
    def check(value: Any, _other: Any = None) -> str | None:
        if isinstance(value, str) and all(p in value for p in parts):
            return None
        if isinstance(value, dict) and all(p in str(value.get("error", "")) for p in parts):
            return None
        return f"expected a text containing {parts!r}, got {value!r}"

    return check


def starts(*prefixes: str) -> Check:
    def check(value: Any, _other: Any = None) -> str | None:
        if isinstance(value, str) and value.startswith(prefixes):
            return None
        return f"expected a text starting with {' or '.join(map(repr, prefixes))}, got {value!r}"

    return check


def html_error_page(value: Any, _other: Any = None) -> str | None:
    """Express's finalhandler page: a whole HTML document around a <pre> message."""
    if isinstance(value, str) and value.startswith("<!DOCTYPE html>") and "<pre>" in value:
        return None
    return f"expected an HTML error page, got {value!r}"


def short_text(value: Any, _other: Any = None) -> str | None:
    """A short plain text or a small JSON error object: never markup, never a stack trace."""
    if isinstance(value, dict) and set(value) == {"error", "status"}:
        return None
    if (
        isinstance(value, str)
        and 0 < len(value) <= 200
        and "<" not in value
        and "    at " not in value
        and "Traceback" not in value
    ):
        return None
    return f"expected a short text or a JSON error, got {value!r}"


def echo_document(value: Any, _other: Any = None) -> str | None:
    """The app's echo (the request reached the handler)."""
    if isinstance(value, dict) and "method" in value and "headers" in value:
        return None
    return f"expected the echo document, got {value!r}"


def type_error(value: Any, _other: Any = None) -> str | None:
    """The API raised a TypeError on this side (it does not exist there)."""
    if isinstance(value, str) and value.startswith("<error TypeError"):
        return None
    return f"expected a TypeError (no such API), got {value!r}"


def not_error(value: Any, _other: Any = None) -> str | None:
    if isinstance(value, str) and value.startswith("<error "):
        return f"expected a value, got {value}"
    return None


def is_none(value: Any, _other: Any = None) -> str | None:
    return None if value is None else f"expected null/undefined, got {value!r}"


def is_bool(value: Any, _other: Any = None) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def _cookie(value: str) -> tuple[str, set[str]]:
    pair, *attributes = value.split("; ")
    return pair, set(attributes)


def cookie_defaults(gw: Any, ref: Any) -> str | None:
    """Each Set-Cookie is the reference's plus ``HttpOnly`` and ``SameSite=Lax`` (unless the
    call gave them), and nothing else differs."""
    if not isinstance(gw, list) or not isinstance(ref, list) or len(gw) != len(ref):
        return f"expected as many cookies as {ref!r}, got {gw!r}"
    for mine, theirs in zip(gw, ref, strict=True):
        pair, attrs = _cookie(mine)
        ref_pair, ref_attrs = _cookie(theirs)
        names = {a.split("=")[0].lower() for a in ref_attrs}
        added = {a for a in ("HttpOnly", "SameSite=Lax") if a.split("=")[0].lower() not in names}
        if pair != ref_pair or attrs != ref_attrs | added:
            return f"expected {theirs!r} plus {sorted(added)}, got {mine!r}"
    return None


def _any(value: Any, _other: Any = None) -> str | None:
    return None


def has_body(value: Any, _other: Any = None) -> str | None:
    return f"expected a body, got {value!r}" if value == NO_BODY or _absent(value) else None


def express4_allow(value: Any, _other: Any = None) -> str | None:
    """Express 4's automatic OPTIONS list: the route's methods in order, joined with ","."""
    if isinstance(value, str) and ", " not in value and "GET" in value.split(","):
        return None
    return f"expected Express 4's Allow list (A,B,C), got {value!r}"


def express5_allow(value: Any, other: Any = None) -> str | None:
    """Express 5's automatic OPTIONS list: the same methods as ``other`` (Express 4's), sorted,
    joined with ", "."""
    expected = ", ".join(sorted(str(other).split(",")))
    return None if value == expected else f"expected {expected!r}, got {value!r}"


def virtual_query_value(value: Any, _other: Any = None) -> str | None:
    """Sails' virtual req.query value: a string (node's querystring: flat keys, a fragment kept
    in the last value), or nothing where the gateway has a nested key."""
    if _absent(value) or isinstance(value, str):
        return None
    return f"expected a querystring value (a string) or none, got {value!r}"


def http_query_value(value: Any, other: Any = None) -> str | None:
    """The gateway's value for the same key: the same url's req.query over HTTP (qs: nested
    keys; no fragment). ``other`` is the reference's value."""
    if _absent(other):  # a nested key Sails has flat
        return (
            None if isinstance(value, (dict, list)) else f"expected a nested value, got {value!r}"
        )
    if isinstance(other, str) and "#" in other:  # the fragment is no part of the query
        want = other.split("#", 1)[0]
        return None if value == want else f"expected {want!r}, got {value!r}"
    # a flat key ("x[y]") of Sails' that the gateway has nested under another key
    return None if _absent(value) else f"expected no value (nested here), got {value!r}"


def _ref_header(name: str, *values: str) -> Callable[[Outcome], bool]:
    return lambda o: (
        o.reference.headers.get(name) in values if values else name in o.reference.headers
    )


def _echoes_with(key: str, test: Callable[[Any], bool]) -> Callable[[Outcome], bool]:
    """Both sides answered with the echo document, and the reference's ``key`` passes."""

    def when(o: Outcome) -> bool:
        ref, gw = o.reference.body, o.gateway.body
        return (
            isinstance(ref, dict)
            and "method" in ref
            and isinstance(gw, dict)
            and "method" in gw
            and test(ref.get(key))
        )

    return when


@dataclass(frozen=True)
class Expect:
    """One difference a row explains: the field (a difference key as the harness names it,
    e.g. ``header:x-powered-by``, ``body``, ``body.body``; ``*`` globs allowed) and what the
    reference and the gateway must show there."""

    field: str
    reference: Check = _any
    gateway: Check = _any
    required: bool = True  # False: checked where it differs, but it need not (e.g. HEAD: no body)

    def check(self, ref: Any, gw: Any) -> str | None:
        why = self.reference(ref, gw)
        if why:
            return "reference: " + why
        why = self.gateway(gw, ref)
        return "gateway: " + why if why else None


@dataclass(frozen=True)
class Deliberate:
    """A row of the table. ``cases`` are case keys ("http:err-404", "socket:sk-get@dist"), or
    globs over them ("http:*"); ``when`` further limits a glob to the cases where it holds
    (called with the Outcome)."""

    id: str
    cases: tuple[str, ...]
    expects: tuple[Expect, ...]
    what: str
    why: str
    when: Callable[[Outcome], bool] | None = None


def matches(row: Deliberate, outcome: Outcome) -> bool:
    """Whether ``row`` applies to ``outcome``."""
    key = outcome.key
    if not any(fnmatch.fnmatchcase(key, pattern) for pattern in row.cases):
        return False
    return row.when is None or row.when(outcome)


def expand(row: Deliberate, diffs: dict[str, Any]) -> list[tuple[Expect, list[str]]]:
    """Each expectation of ``row`` with the difference keys it covers in ``diffs``."""
    return [(e, [k for k in diffs if fnmatch.fnmatchcase(k, e.field)]) for e in row.expects]


_SAILS_ERROR_TEXTS = (
    "Not Found",
    "Internal Server Error",
    "Bad request: Could not decode requested URL.",
)
_SOCKET_HEADER_CASES = tuple(
    f"socket:sk-header-{name}@*"
    for name in (
        "custom",
        "json-type",
        "accept-html",
        "referrer",
        "referer",
        "cookie",
        "origin",
        "host",
        "number",
        "xhr",
        "content-length",
    )
)
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json; charset=utf-8"

# Keep in step with the table in docs/FIDELITY.md (tests/test_differential.py checks ids and
# cases). Rows apply where their cases (and ``when``) match; each Expect must hold there.
DELIBERATE: tuple[Deliberate, ...] = (
    Deliberate(
        "D01",
        ("http:*",),
        (
            Expect("header:content-type", equals("text/html; charset=utf-8"), equals(_TEXT, _JSON)),
            Expect("header:content-security-policy", equals("default-src 'none'"), absent),
            Expect("header:x-content-type-options", equals("nosniff"), absent),
            Expect("body", html_error_page, short_text, required=False),
        ),
        "Error replies of the router and of handlers: Express's finalhandler sends an HTML page "
        "(with Content-Security-Policy and X-Content-Type-Options); the gateway sends a short "
        "text, or {error, status} as JSON when the client wants JSON.",
        "One error format for HTTP and sockets, readable by scripts; no markup to escape and no "
        "stack trace or internal message can leak (status and reason only for 5xx).",
        when=_ref_header("content-security-policy", "default-src 'none'"),
    ),
    Deliberate(
        "D02",
        ("http:*",),
        (Expect("header:x-powered-by", present, absent),),
        'X-Powered-By (Express: "Express", Sails: "Sails <sailsjs.com>") is never sent.',
        "It tells an attacker what runs on the device and costs bytes on every reply.",
        when=_ref_header("x-powered-by"),
    ),
    Deliberate(
        "D03",
        ("http:ck-set", "http:ck-set-signed", "http:ck-clear", "http:s-cookies-set"),
        (Expect("header:set-cookie", gateway=cookie_defaults),),
        "res.cookie() defaults to HttpOnly and SameSite=Lax (Express sets neither unless asked).",
        "Safe defaults for a device's admin cookies: no script access, no cross-site sends. "
        "Pass http_only=False or same_site=None to get Express's cookie.",
    ),
    Deliberate(
        "D04",
        ("http:*",),
        (Expect("body.body", is_none, equals({})),),
        "req.body without a body parser (or when no parser matched) is {} (EdgerOS); Express 5 "
        "and Sails leave it undefined.",
        "The EdgerOS request API the gateway also promises: handlers can read req.body.x "
        "without checking for undefined.",
        when=_echoes_with("body", lambda v: v is None),
    ),
    Deliberate(
        "D05",
        ("http:*",),
        (
            Expect("header:content-type", absent, equals(_TEXT, _JSON)),
            Expect("body", equals(NO_BODY), short_text),
        ),
        "A request the reference rejects with an empty 400 (Node's HTTP parser; Sails' body "
        "parser in production) or 417 (Node's answer to an Expect other than 100-continue): the "
        "gateway's reply, same status, has a short body naming the problem.",
        "Someone debugging a device with curl or a raw socket learns what was wrong.",
        when=lambda o: (
            o.reference.status in (400, 417)
            and o.reference.body == NO_BODY
            and not o.reference.headers
            and o.gateway.status == o.reference.status
        ),
    ),
    Deliberate(
        "D06",
        ("http:hdr-dup-host", "http:strict-te-unknown", "http:strict-host-space"),
        (
            Expect("status", equals(200), equals(400)),
            Expect("header:content-type", equals(_JSON), equals(_TEXT)),
            Expect("body", echo_document, short_text),
        ),
        "Requests RFC 9112 says a server MUST reject and Node accepts: two Host fields or a Host "
        "that is not a valid host[:port] (section 3.2), a Transfer-Encoding other than chunked "
        "(section 6.1) get 400 from the gateway; Node passes them to the app.",
        "Request smuggling and cache poisoning start with requests that two parsers read "
        "differently; the gateway refuses them as the RFC requires.",
    ),
    Deliberate(
        "D07",
        ("http:strict-long-header",),
        (
            Expect("status", equals(200), equals(431)),
            Expect("header:content-type", equals(_JSON), equals(_TEXT)),
            Expect("body", echo_document, short_text),
        ),
        "A 12 kB header: Node accepts heads up to 16 KiB, the default profile up to 8 KiB "
        "(http.max_head_bytes), beyond that 431.",
        "Limits are sized per hardware profile: every buffer has a ceiling a small device can "
        "afford; a profile can raise it.",
    ),
    Deliberate(
        "D08",
        (
            "http:m-wrong-method",
            "http:m-delete-unrouted",
            "http:s-wrong-method",
            "socket:sk-wrong-method@*",
        ),
        (
            Expect("status", equals(404), equals(405)),
            Expect("header:[Aa]llow", absent, present),
            Expect("body", gateway=contains("not allowed"), required=False),
        ),
        "A path that has routes, but none for the method: Express and Sails answer 404; the "
        "gateway answers 405 with Allow.",
        "RFC 9110 section 15.5.6; the client learns which methods exist instead of a misleading "
        "404.",
    ),
    Deliberate(
        "D09",
        ("http:s-*", "socket:*"),
        (Expect("body.baseUrl", starts("http://", "ws://"), equals("")),),
        "req.baseUrl in a Sails app: Sails overwrites Express's mount path with the server's "
        "address (http://host:port, or ws://could.not.determine.host for a socket); the "
        "gateway keeps Express's meaning, the path the router is mounted at.",
        "Mounted routers depend on it; one meaning for HTTP and sockets.",
        when=_echoes_with("baseUrl", lambda v: isinstance(v, str) and "://" in v),
    ),
    Deliberate(
        "D10",
        ("socket:*",),
        (
            Expect("body.is.*", type_error, not_error),
            Expect("body.accepts*", type_error, not_error),
            Expect("body.xhr", is_none, is_bool),
            Expect("body.secure", is_none, is_bool),
        ),
        "Sails' virtual requests have no req.is() or req.accepts() (TypeError) and leave "
        "req.xhr and req.secure undefined; a virtual request on the gateway is the same "
        "Request as an HTTP one.",
        "One request API whatever the transport: a handler does not need to know whether it "
        "serves HTTP or a socket.",
        when=_echoes_with("method", lambda v: True),
    ),
    Deliberate(
        "D11",
        _SOCKET_HEADER_CASES,
        (Expect("body.headers.[A-Z]*", present, absent),),
        "req.headers of a virtual request: Sails keeps each header the client sent twice, as "
        "written (X-Custom) and lower-cased (x-custom); the gateway has the lower-case name "
        "only.",
        "As for HTTP (Node's req.headers): one spelling, and req.get() finds any case.",
    ),
    Deliberate(
        "D12",
        (
            "http:s-throw",
            "http:s-404",
            "http:s-404-html",
            "http:s-wrong-method",
            "socket:sk-throw@*",
            "socket:sk-param-bad-escape@*",
        ),
        (
            Expect("header:content-type", equals(_TEXT), equals(_JSON), required=False),
            Expect("body", equals(*_SAILS_ERROR_TEXTS), short_text),
        ),
        "The gateway's own error replies in a Sails app (no route, a method no route has, a "
        "handler's exception, a route param with a malformed %-escape), over HTTP and sockets: "
        "{error, status} as JSON when the client wants JSON (a virtual request always does), "
        "else a short text naming the problem. Sails sends text/plain: the reason phrase "
        '(res.notFound(), res.serverError()) or "Bad request: Could not decode requested '
        'URL." (A virtual request\'s 404 is Sails\' "Not Found" on both.)',
        "One error format for every app and transport (D01's): a script reads status and error "
        "the same way from an Express-style or a Sails-style app; a 4xx says what was wrong, a "
        "5xx still says nothing but its reason.",
    ),
    Deliberate(
        "D13",
        ("http:res-if-none-match",),
        (
            Expect("status", equals(304), equals(200)),
            Expect("header:content-type", absent, present),
            Expect("body", equals(NO_BODY), has_body),
        ),
        "No automatic ETag, so no automatic 304: Express hashes every res.send() body and "
        "answers a matching If-None-Match with 304; the gateway sends the body.",
        "Hashing every body costs a small device CPU on every reply; a handler that wants 304s "
        "sets an ETag (or Last-Modified) with res.set() and gets them (req.fresh), as files "
        "from send_file() do.",
    ),
    Deliberate(
        "D14",
        ("http:m-unknown-token", "http:m-lowercase"),
        (
            Expect("status", equals(400), equals(200)),
            Expect("header:content-type", absent, equals(_JSON)),
            Expect("body", equals(NO_BODY), echo_document),
        ),
        "A method Node's HTTP parser does not know (FOO, or get in lower case: methods are "
        "case-sensitive) gets an empty 400 from Node; the gateway accepts any token as a method "
        "and routes it (an app.all route serves it, else 404 or 405).",
        "RFC 9110 section 9.1: a method is any token; a server answers one it does not "
        "implement with 501 or 405, not as a malformed request. Custom and WebDAV-style methods "
        "reach the app (Node's parser knows a fixed list).",
    ),
    Deliberate(
        "D15",
        ("http:strict-http2-version",),
        (
            Expect("status", equals(200), equals(505)),
            Expect("header:content-type", equals(_JSON), equals(_TEXT)),
            Expect("body", echo_document, contains("HTTP version not supported")),
        ),
        "A request line with HTTP/2.0: Node serves it as HTTP/1.1; the gateway answers 505 "
        "HTTP Version Not Supported.",
        "RFC 9110 section 15.6.6: a major version the server does not speak is 505 (HTTP/2 has "
        "no text request line); serving it as 1.1 would be guessing.",
    ),
    Deliberate(
        "D16",
        ("http:url-absolute-form",),
        (
            Expect("body.url", starts("http://"), starts("/")),
            Expect("body.originalUrl", starts("http://"), starts("/")),
        ),
        "An absolute-form target (GET http://host/path?q): Express's req.url and "
        "req.originalUrl are the whole URI; the gateway's are its origin-form part (/path?q). "
        "req.path, req.query and req.hostname agree.",
        "Routing, mounts and url rewriting work on the path; absolute-form is what a proxy "
        "receives (RFC 9112 section 3.2.2), so a handler always sees one shape of req.url.",
    ),
    Deliberate(
        "D17",
        ("http:s-user-dot-ext", "socket:sk-user-dot-ext@*"),
        (
            Expect("status", equals(404), equals(200)),
            Expect("header:content-type", equals(_TEXT), equals(_JSON), required=False),
            Expect("body", equals("Not Found"), echo_document),
        ),
        "Sails' skipAssets: a GET route ending in a param (/user/:id) does not match a path that "
        "looks like a file (/user/4.json) and Sails answers 404; the gateway routes as Express "
        'does (id is "4.json").',
        "skipAssets is a Sails-only routing option that serves its asset pipeline, which the "
        "gateway does not have; routes match as in Express, over HTTP and sockets alike.",
    ),
    Deliberate(
        "D18",
        ("http:s-wants-route-option",),
        (Expect("body.wantsJSON", equals(False), equals(True)),),
        "A route's wants_json option (Sails' wantsJSON) is honoured; Sails computes "
        "req.wantsJSON in a middleware that runs before the route's options are merged, so the "
        "option never changes a browser's request.",
        "PROTOCOLS.md section 2, rule 5: the route option is part of the rule; a route marked "
        "JSON-only gets JSON, error replies included.",
    ),
    Deliberate(
        "D19",
        ("http:s-body-no-type",),
        (
            Expect("body.body.a", equals(1), absent),
            Expect("body.allParams.a", equals(1), absent),
            Expect("body.param.a", equals(1), is_none),
        ),
        "A request body without a Content-Type: Sails' body parser (skipper) guesses JSON and "
        "parses it; the gateway's parsers go by the Content-Type, as Express's body-parser "
        "does, and req.body stays {}.",
        "A body is read as what it says it is: guessing from content makes the same bytes mean "
        "different things to different parsers (RFC 9110 section 8.3 lets a recipient treat an "
        "untyped body as application/octet-stream).",
    ),
    Deliberate(
        "D20",
        ("http:s-options",),
        (
            Expect("header:allow", express4_allow, express5_allow),
            Expect("body", express4_allow, express5_allow),
            Expect("header:content-type", equals("text/html; charset=utf-8"), equals("text/plain")),
            Expect("header:x-content-type-options", absent, equals("nosniff")),
        ),
        "The automatic OPTIONS reply (a path with routes, none for OPTIONS) over HTTP in a "
        "Sails app: Sails 1.5 runs Express 4's router (the Allow list unsorted, joined with "
        '",", as text/html); the gateway sends Express 5\'s (sorted, ", ", text/plain with '
        "nosniff), which Sails' own router sends for virtual requests.",
        "One automatic OPTIONS reply for every app and transport; plain text with nosniff, so "
        "no browser renders it as HTML.",
    ),
    Deliberate(
        "D21",
        ("socket:sk-options@*", "socket:sk-typed-stream@*"),
        (
            Expect("body", equals(NO_BODY), has_body),
            Expect("header:content-length", present, absent, required=False),
        ),
        "A virtual response written with res.write()/res.end(data) (a streamed reply; the "
        "automatic OPTIONS reply): Sails' JWR has no body (its virtual response keeps only what "
        "res.send() got; res.write() before res.status() even throws) and may carry a "
        "Content-Length; the gateway's JWR carries what was written, as the HTTP reply does, "
        "and no Content-Length (a JWR has no framing).",
        "One response API whatever the transport: a handler that streams works over a socket "
        "too, and the client gets what the handler sent.",
    ),
    Deliberate(
        "D22",
        ("socket:sk-headers@*",),
        (Expect("header:X-Two", absent, equals("2")),),
        "res.set({name: value}) on a virtual request: Sails' virtual res.set() takes one name "
        '(a mapping becomes a header named "[object Object]", which the JWR loses); the '
        "gateway's JWR carries every header the app set.",
        "One response API whatever the transport: res.set() with a mapping works as over HTTP "
        "(Express).",
    ),
    Deliberate(
        "D23",
        ("socket:sk-header-cookie@*",),
        (
            Expect("body.headers.cookie", equals("msg=1"), starts("hs=1")),
            Expect("body.get.Cookie", equals("msg=1"), starts("hs=1")),
            Expect("body.cookies.msg", equals("1"), absent),
            Expect("body.cookies.[hj]*", absent, present),
            Expect("body.signedCookies.sig", absent, equals("hv")),
        ),
        "A virtual request whose message has a Cookie header: in Sails a message Cookie "
        "(capital C) replaces the cookie of the socket's handshake; the gateway keeps the "
        "handshake's (a message's cookie only fills the gap when the handshake had none).",
        "The handshake's cookie is what the browser sent; a script that can emit socket "
        "messages must not be able to forge another session's cookie or a signed one "
        "(security).",
    ),
    Deliberate(
        "D24",
        ("socket:sk-cookies-set@*",),
        (
            Expect("status", equals(500), equals(200)),
            Expect("body", equals("Internal Server Error"), equals({"ok": True})),
        ),
        "res.cookie() on a virtual request: Sails' virtual response has no res.cookie() (a "
        "TypeError, so a 500); the gateway's works, and the Set-Cookie is left out of the JWR "
        "as Sails leaves every Set-Cookie out.",
        "One response API whatever the transport: a handler shared by HTTP and sockets does not "
        "fail on a socket.",
    ),
    Deliberate(
        "D25",
        ("socket:sk-query-nested@*", "socket:sk-fragment@*"),
        (
            Expect("body.query.*", virtual_query_value, http_query_value),
            Expect("body.allParams.*", virtual_query_value, http_query_value),
        ),
        "req.query of a virtual request: Sails parses it with node's querystring (x[y]=1 stays "
        'a flat key "x[y]") and keeps a #fragment in the last value; the gateway parses it '
        "as the same url over HTTP: with the app's one query parser (qs in a Sails app: "
        'x = {y: "1"}), without the fragment.',
        "The same url gives the same req.query over HTTP and sockets (Sails itself gives nested "
        "keys over HTTP and flat ones over sockets); a fragment is no part of the query (RFC "
        "3986 section 3.5).",
    ),
)
