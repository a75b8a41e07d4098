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
        return None if value in expected else f"expected {' or '.join(map(repr, expected))}, " \
                                              f"got {value!r}"

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
    if isinstance(value, str) and 0 < len(value) <= 200 and "<" not in value \
            and "    at " not in value and "Traceback" not in value:
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


def _ref_header(name: str, *values: str) -> Callable[[Outcome], bool]:
    return lambda o: o.reference.headers.get(name) in values if values else \
        name in o.reference.headers


def _echoes_with(key: str, test: Callable[[Any], bool]) -> Callable[[Outcome], bool]:
    """Both sides answered with the echo document, and the reference's ``key`` passes."""

    def when(o: Outcome) -> bool:
        ref, gw = o.reference.body, o.gateway.body
        return (isinstance(ref, dict) and "method" in ref and isinstance(gw, dict)
                and "method" in gw and test(ref.get(key)))

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


_SOCKET_HEADER_CASES = tuple(
    f"socket:sk-header-{name}@*" for name in (
        "custom", "json-type", "accept-html", "referrer", "referer", "cookie", "origin", "host",
        "number", "xhr", "content-length")
)
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json; charset=utf-8"

# Keep in step with the table in docs/FIDELITY.md (tests/test_differential.py checks ids and
# cases). Rows apply where their cases (and ``when``) match; each Expect must hold there.
DELIBERATE: tuple[Deliberate, ...] = (
    Deliberate(
        "D01", ("http:*",),
        (Expect("header:content-type", equals("text/html; charset=utf-8"), equals(_TEXT, _JSON)),
         Expect("header:content-security-policy", equals("default-src 'none'"), absent),
         Expect("header:x-content-type-options", equals("nosniff"), absent),
         Expect("body", html_error_page, short_text, required=False)),
        "Error replies of the router and of handlers: Express's finalhandler sends an HTML page "
        "(with Content-Security-Policy and X-Content-Type-Options); the gateway sends a short "
        "text, or {error, status} as JSON when the client wants JSON.",
        "One error format for HTTP and sockets, readable by scripts; no markup to escape and no "
        "stack trace or internal message can leak (status and reason only for 5xx).",
        when=_ref_header("content-security-policy", "default-src 'none'"),
    ),
    Deliberate(
        "D02", ("http:*",),
        (Expect("header:x-powered-by", present, absent),),
        "X-Powered-By (Express: \"Express\", Sails: \"Sails <sailsjs.com>\") is never sent.",
        "It tells an attacker what runs on the device and costs bytes on every reply.",
        when=_ref_header("x-powered-by"),
    ),
    Deliberate(
        "D03", ("http:ck-set", "http:ck-set-signed", "http:ck-clear", "http:s-cookies-set"),
        (Expect("header:set-cookie", gateway=cookie_defaults),),
        "res.cookie() defaults to HttpOnly and SameSite=Lax (Express sets neither unless asked).",
        "Safe defaults for a device's admin cookies: no script access, no cross-site sends. "
        "Pass http_only=False or same_site=None to get Express's cookie.",
    ),
    Deliberate(
        "D04", ("http:*",),
        (Expect("body.body", is_none, equals({})),),
        "req.body without a body parser (or when no parser matched) is {} (EdgerOS); Express 5 "
        "and Sails leave it undefined.",
        "The EdgerOS request API the gateway also promises: handlers can read req.body.x "
        "without checking for undefined.",
        when=_echoes_with("body", lambda v: v is None),
    ),
    Deliberate(
        "D05", ("http:*",),
        (Expect("header:content-type", absent, equals(_TEXT, _JSON)),
         Expect("body", equals(NO_BODY), short_text)),
        "A request the reference rejects with an empty 400 (Node's HTTP parser; Sails' body "
        "parser in production) or 417 (Node's answer to an Expect other than 100-continue): the "
        "gateway's reply, same status, has a short body naming the problem.",
        "Someone debugging a device with curl or a raw socket learns what was wrong.",
        when=lambda o: o.reference.status in (400, 417) and o.reference.body == NO_BODY
        and not o.reference.headers and o.gateway.status == o.reference.status,
    ),
    Deliberate(
        "D06", ("http:hdr-dup-host", "http:strict-te-unknown", "http:strict-host-space"),
        (Expect("status", equals(200), equals(400)),
         Expect("header:content-type", equals(_JSON), equals(_TEXT)),
         Expect("body", echo_document, short_text)),
        "Requests RFC 9112 says a server MUST reject and Node accepts: two Host fields or a Host "
        "that is not a valid host[:port] (section 3.2), a Transfer-Encoding other than chunked "
        "(section 6.1) get 400 from the gateway; Node passes them to the app.",
        "Request smuggling and cache poisoning start with requests that two parsers read "
        "differently; the gateway refuses them as the RFC requires.",
    ),
    Deliberate(
        "D07", ("http:strict-long-header",),
        (Expect("status", equals(200), equals(431)),
         Expect("header:content-type", equals(_JSON), equals(_TEXT)),
         Expect("body", echo_document, short_text)),
        "A 12 kB header: Node accepts heads up to 16 KiB, the default profile up to 8 KiB "
        "(http.max_head_bytes), beyond that 431.",
        "Limits are sized per hardware profile: every buffer has a ceiling a small device can "
        "afford; a profile can raise it.",
    ),
    Deliberate(
        "D08", ("http:m-wrong-method", "http:m-delete-unrouted", "http:s-wrong-method",
                "socket:sk-wrong-method@*"),
        (Expect("status", equals(404), equals(405)),
         Expect("header:[Aa]llow", absent, present),
         Expect("body", gateway=contains("not allowed"), required=False)),
        "A path that has routes, but none for the method: Express and Sails answer 404; the "
        "gateway answers 405 with Allow.",
        "RFC 9110 section 15.5.6; the client learns which methods exist instead of a misleading "
        "404.",
    ),
    Deliberate(
        "D09", ("http:s-*", "socket:*"),
        (Expect("body.baseUrl", starts("http://", "ws://"), equals("")),),
        "req.baseUrl in a Sails app: Sails overwrites Express's mount path with the server's "
        "address (http://host:port, or ws://could.not.determine.host for a socket); the "
        "gateway keeps Express's meaning, the path the router is mounted at.",
        "Mounted routers depend on it; one meaning for HTTP and sockets.",
        when=_echoes_with("baseUrl", lambda v: isinstance(v, str) and "://" in v),
    ),
    Deliberate(
        "D10", ("socket:*",),
        (Expect("body.is.*", type_error, not_error),
         Expect("body.accepts*", type_error, not_error),
         Expect("body.xhr", is_none, is_bool),
         Expect("body.secure", is_none, is_bool)),
        "Sails' virtual requests have no req.is() or req.accepts() (TypeError) and leave "
        "req.xhr and req.secure undefined; a virtual request on the gateway is the same "
        "Request as an HTTP one.",
        "One request API whatever the transport: a handler does not need to know whether it "
        "serves HTTP or a socket.",
        when=_echoes_with("method", lambda v: True),
    ),
    Deliberate(
        "D11", _SOCKET_HEADER_CASES,
        (Expect("body.headers.[A-Z]*", present, absent),),
        "req.headers of a virtual request: Sails keeps each header the client sent twice, as "
        "written (X-Custom) and lower-cased (x-custom); the gateway has the lower-case name "
        "only.",
        "As for HTTP (Node's req.headers): one spelling, and req.get() finds any case.",
    ),
)
