# The cases of the differential harness, as data: HTTP cases are raw requests sent byte for byte
# to the reference server and to the gateway (same app, see tests/node/differential_*.js and
# gateway_*_app.py); socket cases are Sails virtual requests sent with io.socket.request() by
# each stock client set-up. Every case has a unique id; the report and docs/FIDELITY.md use it.
# Must not: depend on the servers (no ports here: "{host}" in raw bytes is filled in per server).
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SECRET = "harness-secret"  # the cookie secret of every app in the harness


def sign(value: str) -> str:
    """A cookie-parser signed value (``s:`` + cookie-signature), as Express/Sails make them."""
    mac = hmac.new(SECRET.encode(), value.encode(), hashlib.sha256).digest()
    return "s:" + value + "." + base64.b64encode(mac).decode().rstrip("=")


def express_etag(body: bytes) -> str:
    """The weak ETag Express puts on a res.send body (the `etag` package)."""
    digest = base64.b64encode(hashlib.sha1(body).digest()).decode()[:27]
    return f'W/"{len(body):x}-{digest}"'


def handshake_cookie() -> str:
    """The Cookie every socket set-up sends with its WebSocket handshake."""
    return f"hs=1; j=j:%7B%22k%22%3A1%7D; sig={sign('hv')}"


@dataclass(frozen=True)
class HTTPCase:
    """One raw HTTP request. Without ``raw`` the bytes are built: request line, ``Host`` (the
    server's 127.0.0.1:port, unless ``host`` is False), ``headers`` in order, a Content-Length
    for a non-empty body (unless one is given, or Transfer-Encoding), the body."""

    id: str
    app: str  # "express" or "sails": which reference app and which gateway twin
    target: str = "/echo"
    method: str = "GET"
    headers: tuple[tuple[str, str | bytes], ...] = ()
    body: bytes = b""
    version: str = "1.1"
    host: bool = True
    raw: bytes | None = None  # the whole request, "{host}" replaced by 127.0.0.1:port
    replies: tuple[str, ...] = ()  # methods of the replies expected (default: one, ``method``)
    note: str = ""

    def reply_methods(self) -> tuple[str, ...]:
        return self.replies or (self.method,)

    def label(self) -> str:
        if self.raw is not None:
            first = self.raw.split(b"\n", 1)[0].rstrip(b"\r")
            return f"raw {first.decode('latin-1')!r}" + (f" ({self.note})" if self.note else "")
        extra = "; ".join(
            f"{k}: {v!r}" if isinstance(v, bytes) else f"{k}: {v}" for k, v in self.headers
        )
        text = f"{self.method} {self.target}"
        if extra:
            text += f" [{extra}]"
        if self.body:
            text += f" body={self.body[:60]!r}"
        return text + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class SocketCase:
    """One virtual request: ``io.socket.request({method, url, data, headers})``."""

    id: str
    url: str
    method: str = "get"
    data: Any = None
    headers: dict[str, Any] | None = None
    note: str = ""

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.data is not None:
            opts["data"] = self.data
        if self.headers is not None:
            opts["headers"] = self.headers
        return opts

    def label(self) -> str:
        text = f"{self.method.upper()} {self.url}"
        if self.data is not None:
            text += f" data={self.data!r}"
        if self.headers is not None:
            text += f" headers={self.headers!r}"
        return text + (f" ({self.note})" if self.note else "")


# The three stock client set-ups of virtual requests (tests/node/sails_client.js "sdk" values).
SOCKET_SETUPS = {
    "dist": "dist",  # the sails.io.js-dist browser bundle (socket.io-client 2.0.3, EIO=3)
    "sdk2": "node",  # the sails.io.js SDK over socket.io-client 2.0.3 (EIO=3)
    "sdk4": "node4",  # the sails.io.js SDK over socket.io-client 4.x (EIO=4)
}

JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")
HTML_ACCEPT = ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")


def _express() -> Iterator[HTTPCase]:
    E = "express"
    # -- URL, path and query string -----------------------------------------------------------
    yield HTTPCase("url-basic", E, "/echo")
    yield HTTPCase("url-query", E, "/echo?a=1&b=two")
    yield HTTPCase("url-query-repeat", E, "/echo?a=1&a=2&a=3")
    yield HTTPCase("url-query-plus", E, "/echo?q=tobi+ferret")
    yield HTTPCase("url-query-escapes", E, "/echo?q=%C3%A9%20x&r=%E2%82%AC")
    yield HTTPCase("url-query-bad-escape", E, "/echo?q=%zz&r=%&s=%C3")
    yield HTTPCase(
        "url-query-brackets", E, "/echo?user[name]=tj&user[age]=3", note="simple parser: flat keys"
    )
    yield HTTPCase("url-query-empty-pieces", E, "/echo?&&a=&b&=c")
    yield HTTPCase("url-query-question-only", E, "/echo?")
    yield HTTPCase("url-query-question-in-value", E, "/echo?a=b?c=d")
    yield HTTPCase("url-fragment", E, "/user/42?x=1#frag")
    yield HTTPCase("url-fragment-no-query", E, "/user/42#frag")
    yield HTTPCase("url-double-slash", E, "//echo")
    yield HTTPCase("url-trailing-slash", E, "/echo/")
    yield HTTPCase("url-case", E, "/ECHO")
    yield HTTPCase("url-param-space", E, "/user/a%20b")
    yield HTTPCase("url-param-slash", E, "/user/a%2Fb")
    yield HTTPCase("url-param-bad-escape", E, "/user/%zz")
    yield HTTPCase(
        "url-param-utf8-raw",
        E,
        "/user/\u00fc".encode().decode("latin-1"),
        note="raw UTF-8 bytes in the target",
    )
    yield HTTPCase("url-dot-segments", E, "/echo/../echo")
    yield HTTPCase(
        "url-absolute-form", E, raw=b"GET http://{host}/echo?x=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"
    )
    yield HTTPCase("url-asterisk-options", E, raw=b"OPTIONS * HTTP/1.1\r\nHost: {host}\r\n\r\n")
    yield HTTPCase("url-user-books", E, "/user/1/books/2")
    yield HTTPCase("url-user-dot-ext", E, "/user/4.json")
    yield HTTPCase("url-regex", E, "/re/12/abc")
    yield HTTPCase("url-regex-nomatch", E, "/re/x/abc")
    yield HTTPCase("url-file-wildcard", E, "/file/a/b/c.txt")
    yield HTTPCase("url-file-trailing-slash", E, "/file/x/")
    yield HTTPCase("url-file-encoded", E, "/file/a%2Fb/c%20d")
    yield HTTPCase("url-file-bare", E, "/file")
    yield HTTPCase("url-file-bare-slash", E, "/file/")
    yield HTTPCase("url-optional-absent", E, "/opt")
    yield HTTPCase("url-optional-present", E, "/opt/yes")
    yield HTTPCase("url-param-dot", E, "/dl/report.pdf")
    yield HTTPCase("url-param-dot-many", E, "/dl/a.b.c")
    # -- mounted routers ----------------------------------------------------------------------
    yield HTTPCase("mount-merge-params", E, "/shop/7/items/3?x=1")
    yield HTTPCase("mount-merge-root", E, "/shop/7")
    yield HTTPCase("mount-merge-root-slash", E, "/shop/7/")
    yield HTTPCase("mount-merge-encoded", E, "/shop/a%20b/items/3")
    yield HTTPCase("mount-no-merge", E, "/store/7/items/3")
    yield HTTPCase("mount-nested", E, "/api/v1/things/5?x=1")
    yield HTTPCase("mount-nested-case", E, "/API/V1/things/5")
    yield HTTPCase("mount-parser-prefix", E, "/parsed/echo/9?q=1")
    # -- request headers ----------------------------------------------------------------------
    yield HTTPCase("hdr-referrer-spelling", E, headers=(("Referrer", "http://r.example/"),))
    yield HTTPCase("hdr-referer", E, headers=(("Referer", "http://r.example/"),))
    yield HTTPCase(
        "hdr-both-referers", E, headers=(("Referrer", "http://a/"), ("Referer", "http://b/"))
    )
    yield HTTPCase(
        "hdr-dup-referer", E, headers=(("Referer", "http://a/"), ("Referer", "http://b/"))
    )
    yield HTTPCase(
        "hdr-dup-host", E, raw=b"GET /echo HTTP/1.1\r\nHost: {host}\r\nHost: other.example\r\n\r\n"
    )
    yield HTTPCase(
        "hdr-dup-content-type",
        E,
        "/echo",
        "POST",
        headers=(JSON, ("Content-Type", "text/plain")),
        body=b'{"a":1}',
    )
    yield HTTPCase("hdr-dup-custom", E, headers=(("X-Custom", "a"), ("X-Custom", "b")))
    yield HTTPCase("hdr-dup-cookie", E, headers=(("Cookie", "a=1"), ("Cookie", "b=2")))
    yield HTTPCase(
        "hdr-dup-accept", E, headers=(("Accept", "text/html"), ("Accept", "application/json"))
    )
    yield HTTPCase("hdr-dup-user-agent", E, headers=(("User-Agent", "one"), ("User-Agent", "two")))
    yield HTTPCase("hdr-name-case", E, headers=(("x-CUSTOM", "v"), ("aCcEpT", "text/plain")))
    yield HTTPCase("hdr-empty-value", E, headers=(("X-Custom", ""),))
    yield HTTPCase("hdr-value-spaces", E, headers=(("X-Custom", "  spaced  out \t"),))
    yield HTTPCase("hdr-latin1", E, headers=(("X-Custom", b"caf\xe9"),))
    yield HTTPCase("hdr-utf8-bytes", E, headers=(("X-Custom", "caf\u00e9".encode()),))
    yield HTTPCase(
        "hdr-host-name-port", E, raw=b"GET /echo HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
    )
    yield HTTPCase("hdr-host-ipv6", E, raw=b"GET /echo HTTP/1.1\r\nHost: [::1]:3000\r\n\r\n")
    yield HTTPCase("hdr-host-missing", E, host=False)
    yield HTTPCase("hdr-host-missing-http10", E, host=False, version="1.0")
    yield HTTPCase("hdr-host-empty", E, raw=b"GET /echo HTTP/1.1\r\nHost:\r\n\r\n")
    yield HTTPCase("hdr-xhr", E, headers=(("X-Requested-With", "XMLHttpRequest"),))
    yield HTTPCase("hdr-xhr-lower", E, headers=(("X-Requested-With", "xmlhttprequest"),))
    yield HTTPCase(
        "hdr-forwarded",
        E,
        headers=(
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "fwd.example"),
        ),
        note="trust proxy off: ignored",
    )
    yield HTTPCase("hdr-many", E, headers=tuple((f"X-H{i}", str(i)) for i in range(40)))
    # -- req.is() -----------------------------------------------------------------------------
    yield HTTPCase(
        "is-json-empty-body", E, "/echo", "POST", headers=(JSON, ("Content-Length", "0"))
    )
    yield HTTPCase("is-json-body", E, "/echo", "POST", headers=(JSON,), body=b'{"a":1}')
    yield HTTPCase("is-body-no-type", E, "/echo", "POST", body=b"abc")
    yield HTTPCase("is-type-no-body", E, "/echo", "GET", headers=(JSON,))
    yield HTTPCase(
        "is-json-charset",
        E,
        "/echo",
        "POST",
        headers=(("Content-Type", "application/json; charset=utf-8"),),
        body=b"{}",
    )
    yield HTTPCase(
        "is-vendor-json",
        E,
        "/echo",
        "POST",
        headers=(("Content-Type", "application/vnd.api+json"),),
        body=b"{}",
    )
    yield HTTPCase("is-form", E, "/echo", "POST", headers=(FORM,), body=b"a=1")
    yield HTTPCase(
        "is-text", E, "/echo", "POST", headers=(("Content-Type", "text/plain"),), body=b"hi"
    )
    yield HTTPCase(
        "is-html", E, "/echo", "POST", headers=(("Content-Type", "text/html"),), body=b"<p>"
    )
    yield HTTPCase(
        "is-chunked",
        E,
        "/echo",
        "POST",
        headers=(JSON, ("Transfer-Encoding", "chunked")),
        body=b"2\r\n{}\r\n0\r\n\r\n",
    )
    yield HTTPCase(
        "is-upper-case-type",
        E,
        "/echo",
        "POST",
        headers=(("Content-Type", "APPLICATION/JSON"),),
        body=b"{}",
    )
    yield HTTPCase(
        "is-invalid-type", E, "/echo", "POST", headers=(("Content-Type", "garbage"),), body=b"x"
    )
    # -- req.accepts() ------------------------------------------------------------------------
    yield HTTPCase("acc-none", E)
    yield HTTPCase("acc-browser", E, headers=(HTML_ACCEPT,))
    yield HTTPCase("acc-json", E, headers=(("Accept", "application/json"),))
    yield HTTPCase("acc-q-values", E, headers=(("Accept", "text/html;q=0.5, application/json"),))
    yield HTTPCase("acc-q-zero", E, headers=(("Accept", "application/json;q=0, */*"),))
    yield HTTPCase("acc-star", E, headers=(("Accept", "*/*"),))
    yield HTTPCase("acc-text-star", E, headers=(("Accept", "text/*"),))
    yield HTTPCase("acc-empty", E, headers=(("Accept", ""),))
    yield HTTPCase("acc-garbage", E, headers=(("Accept", "garbage"),))
    yield HTTPCase(
        "acc-params",
        E,
        headers=(("Accept", "application/json;charset=utf-8;q=0.9, text/plain;level=1"),),
    )
    yield HTTPCase(
        "acc-same-q-order", E, headers=(("Accept", "text/plain, text/html, application/json"),)
    )
    # -- bodies -------------------------------------------------------------------------------
    yield HTTPCase("body-no-parser", E, "/echo", "POST", headers=(JSON,), body=b'{"a":1}')
    yield HTTPCase(
        "body-json",
        E,
        "/parsed/echo",
        "POST",
        headers=(JSON,),
        body=b'{"a":1,"b":[1,2],"c":{"d":null}}',
    )
    yield HTTPCase("body-json-array", E, "/parsed/echo", "POST", headers=(JSON,), body=b"[1,2]")
    yield HTTPCase(
        "body-json-empty", E, "/parsed/echo", "POST", headers=(JSON, ("Content-Length", "0"))
    )
    yield HTTPCase("body-json-invalid", E, "/parsed/echo", "POST", headers=(JSON,), body=b'{"a":')
    yield HTTPCase("body-json-primitive", E, "/parsed/echo", "POST", headers=(JSON,), body=b"5")
    yield HTTPCase(
        "body-json-latin1",
        E,
        "/parsed/echo",
        "POST",
        headers=(("Content-Type", "application/json; charset=latin1"),),
        body=b"{}",
    )
    yield HTTPCase(
        "body-json-proto-key",
        E,
        "/parsed/echo",
        "POST",
        headers=(JSON,),
        body=b'{"__proto__":{"x":1},"a":2}',
    )
    yield HTTPCase(
        "body-json-chunked",
        E,
        "/parsed/echo",
        "POST",
        headers=(JSON, ("Transfer-Encoding", "chunked")),
        body=b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n',
    )
    yield HTTPCase("body-json-get", E, "/parsed/echo", "GET", headers=(JSON,), body=b'{"a":1}')
    yield HTTPCase(
        "body-text-for-json",
        E,
        "/parsed/echo",
        "POST",
        headers=(("Content-Type", "text/plain"),),
        body=b'{"a":1}',
    )
    yield HTTPCase(
        "body-unparsed-type",
        E,
        "/parsed/echo",
        "POST",
        headers=(("Content-Type", "application/xml"),),
        body=b"<a/>",
    )
    yield HTTPCase("body-form", E, "/parsed/echo", "POST", headers=(FORM,), body=b"a=1&b=2&a=3")
    yield HTTPCase(
        "body-form-brackets-simple",
        E,
        "/parsed/echo",
        "POST",
        headers=(FORM,),
        body=b"user[name]=tj&user[age]=3",
    )
    yield HTTPCase(
        "body-form-plus-escapes",
        E,
        "/parsed/echo",
        "POST",
        headers=(FORM,),
        body=b"q=a+b%20c&r=%E2%82%AC",
    )
    yield HTTPCase(
        "body-form-empty", E, "/parsed/echo", "POST", headers=(FORM, ("Content-Length", "0"))
    )
    yield HTTPCase(
        "body-form-extended",
        E,
        "/extended/echo",
        "POST",
        headers=(FORM,),
        body=b"user[name]=tj&user[age]=3&arr[]=1&arr[]=2",
    )
    yield HTTPCase(
        "body-form-extended-index",
        E,
        "/extended/echo",
        "POST",
        headers=(FORM,),
        body=b"a[0]=x&a[1]=y&b[c][d]=e",
    )
    yield HTTPCase(
        "body-form-extended-deep",
        E,
        "/extended/echo",
        "POST",
        headers=(FORM,),
        body=b"a[b][c][d][e][f][g][h]=1",
    )
    yield HTTPCase(
        "body-text",
        E,
        "/parsed/echo",
        "POST",
        headers=(("Content-Type", "text/plain; charset=utf-8"),),
        body="h\u00e9llo".encode(),
    )
    # -- req.param() (Express 4 order: params, body, query) -------------------------------------
    yield HTTPCase("param-route-over-query", E, "/echo/5?id=9")
    yield HTTPCase(
        "param-body-over-query",
        E,
        "/parsed/echo?q=query&a=qa",
        "POST",
        headers=(JSON,),
        body=b'{"q":"body"}',
    )
    yield HTTPCase(
        "param-route-over-body",
        E,
        "/parsed/echo/5",
        "POST",
        headers=(JSON,),
        body=b'{"id":"body","name":"n"}',
    )
    # -- cookies ------------------------------------------------------------------------------
    yield HTTPCase("ck-plain", E, headers=(("Cookie", "a=1; b=two"),))
    yield HTTPCase("ck-json", E, headers=(("Cookie", 'j=j:{"x":2}'),))
    yield HTTPCase("ck-json-invalid", E, headers=(("Cookie", "j=j:{bad"),))
    yield HTTPCase("ck-signed-valid", E, headers=(("Cookie", f"sig={sign('sv')}"),))
    yield HTTPCase("ck-signed-tampered", E, headers=(("Cookie", "sig=s:sv.forged"),))
    yield HTTPCase("ck-signed-json", E, headers=(("Cookie", "sj=" + sign('j:{"a":1}')),))
    yield HTTPCase("ck-quoted", E, headers=(("Cookie", 'a="quoted"'),))
    yield HTTPCase("ck-encoded", E, headers=(("Cookie", "a=%20x%3B; b=%zz"),))
    yield HTTPCase("ck-repeated-name", E, headers=(("Cookie", "a=1; a=2"),))
    yield HTTPCase("ck-no-equals", E, headers=(("Cookie", "flag; a=1"),))
    yield HTTPCase("ck-set", E, "/cookies/set")
    yield HTTPCase("ck-set-signed", E, "/cookies/signed")
    yield HTTPCase("ck-set-options", E, "/cookies/options")
    yield HTTPCase("ck-clear", E, "/cookies/clear")
    # -- redirects ----------------------------------------------------------------------------
    yield HTTPCase("redir-default", E, "/redirect")
    yield HTTPCase("redir-html", E, "/redirect", headers=(HTML_ACCEPT,))
    yield HTTPCase("redir-json", E, "/redirect", headers=(("Accept", "application/json"),))
    yield HTTPCase("redir-301", E, "/redirect/301")
    yield HTTPCase("redir-encoded", E, "/redirect/encoded")
    yield HTTPCase("redir-absolute-html", E, "/redirect/absolute", headers=(HTML_ACCEPT,))
    yield HTTPCase("redir-head", E, "/redirect", "HEAD")
    yield HTTPCase("redir-location", E, "/location")
    # -- what res.* send ----------------------------------------------------------------------
    yield HTTPCase("res-status-201", E, "/status/201")
    yield HTTPCase("res-status-418", E, "/status/418")
    yield HTTPCase("res-status-unknown", E, "/status/599")
    yield HTTPCase("res-status-204", E, "/status/204")
    yield HTTPCase("res-send-text", E, "/send/text")
    yield HTTPCase("res-send-buffer", E, "/send/buffer")
    yield HTTPCase("res-json-null", E, "/send/json-null")
    yield HTTPCase("res-json-number", E, "/send/number")
    yield HTTPCase("res-json-string", E, "/send/string-json")
    yield HTTPCase("res-send-object", E, "/send/object")
    yield HTTPCase("res-send-empty", E, "/send/empty")
    yield HTTPCase("res-end", E, "/send/end")
    yield HTTPCase("res-204-body", E, "/send/204")
    yield HTTPCase("res-type-text", E, "/send/typed")
    yield HTTPCase("res-type-json", E, "/type/json")
    yield HTTPCase("res-type-html", E, "/type/html")
    yield HTTPCase("res-type-png", E, "/type/png")
    yield HTTPCase("res-type-full", E, "/type/application%2Fx-custom")
    yield HTTPCase("res-type-dot-css", E, "/type/.css")
    yield HTTPCase("res-set-append", E, "/headers")
    yield HTTPCase(
        "res-if-none-match",
        E,
        "/send/text",
        headers=(("If-None-Match", express_etag(b"hello")),),
        note="the ETag Express gave this body",
    )
    # -- errors -------------------------------------------------------------------------------
    yield HTTPCase("err-404", E, "/nope")
    yield HTTPCase("err-404-post", E, "/nope", "POST", headers=(JSON,), body=b"{}")
    yield HTTPCase("err-404-json-accept", E, "/nope", headers=(("Accept", "application/json"),))
    yield HTTPCase("err-404-escaped", E, "/nope%3Cb%3E?x=%3Ci%3E")
    yield HTTPCase("err-throw", E, "/throw")
    yield HTTPCase("err-throw-json-accept", E, "/throw", headers=(("Accept", "application/json"),))
    yield HTTPCase("err-throw-async", E, "/throw-async")
    yield HTTPCase("err-next-418", E, "/next-error/418")
    yield HTTPCase("err-next-400", E, "/next-error/400")
    yield HTTPCase("err-next-503", E, "/next-error/503")
    yield HTTPCase("err-handler", E, "/handled")
    yield HTTPCase("err-next-route", E, "/next-route")
    # -- methods ------------------------------------------------------------------------------
    yield HTTPCase("m-head-via-get", E, "/head", "HEAD")
    yield HTTPCase("m-head-explicit", E, "/head-explicit", "HEAD")
    yield HTTPCase("m-get-beside-head", E, "/head-explicit")
    yield HTTPCase("m-options-auto", E, "/multi", "OPTIONS")
    yield HTTPCase("m-options-explicit", E, "/opts", "OPTIONS")
    yield HTTPCase("m-options-unknown-path", E, "/nope", "OPTIONS")
    yield HTTPCase("m-wrong-method", E, "/only-post")
    yield HTTPCase("m-put", E, "/multi", "PUT", headers=(JSON,), body=b"{}")
    yield HTTPCase("m-delete-unrouted", E, "/multi", "DELETE")
    yield HTTPCase("m-head-unknown-path", E, "/nope", "HEAD")
    yield HTTPCase("m-extension-method", E, "/echo", "PURGE")
    yield HTTPCase("m-unknown-token", E, raw=b"FOO /echo HTTP/1.1\r\nHost: {host}\r\n\r\n")
    yield HTTPCase("m-lowercase", E, raw=b"get /echo HTTP/1.1\r\nHost: {host}\r\n\r\n")
    # -- HTTP/1.1 framing and strictness -----------------------------------------------------
    yield HTTPCase("strict-host-space", E, raw=b"GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n")
    yield HTTPCase("strict-relative-target", E, raw=b"GET user/42 HTTP/1.1\r\nHost: {host}\r\n\r\n")
    yield HTTPCase("strict-bare-lf", E, raw=b"GET /echo HTTP/1.1\nHost: {host}\nX-Custom: a\n\n")
    yield HTTPCase(
        "strict-obs-fold", E, raw=b"GET /echo HTTP/1.1\r\nHost: {host}\r\nX-Custom: a\r\n b\r\n\r\n"
    )
    yield HTTPCase(
        "strict-space-before-colon",
        E,
        raw=b"GET /echo HTTP/1.1\r\nHost: {host}\r\nX-Custom : a\r\n\r\n",
    )
    yield HTTPCase(
        "strict-cl-and-te",
        E,
        "/echo",
        "POST",
        headers=(("Content-Length", "5"), ("Transfer-Encoding", "chunked")),
        body=b"0\r\n\r\n",
    )
    yield HTTPCase(
        "strict-cl-conflict",
        E,
        "/echo",
        "POST",
        headers=(("Content-Length", "2"), ("Content-Length", "3")),
        body=b"ab",
    )
    yield HTTPCase(
        "strict-cl-repeated-same",
        E,
        "/echo",
        "POST",
        headers=(("Content-Length", "2"), ("Content-Length", "2")),
        body=b"ab",
    )
    yield HTTPCase("strict-cl-invalid", E, "/echo", "POST", headers=(("Content-Length", "abc"),))
    yield HTTPCase(
        "strict-te-unknown", E, "/echo", "POST", headers=(("Transfer-Encoding", "gzip"),), body=b"x"
    )
    yield HTTPCase(
        "strict-chunk-size-bad",
        E,
        "/parsed/echo",
        "POST",
        headers=(JSON, ("Transfer-Encoding", "chunked")),
        body=b"zz\r\n{}\r\n0\r\n\r\n",
    )
    yield HTTPCase("strict-http10", E, version="1.0")
    yield HTTPCase("strict-http2-version", E, raw=b"GET /echo HTTP/2.0\r\nHost: {host}\r\n\r\n")
    yield HTTPCase("strict-bad-version", E, raw=b"GET /echo HTTP/1.x\r\nHost: {host}\r\n\r\n")
    yield HTTPCase("strict-nul-in-value", E, headers=(("X-Custom", b"a\x00b"),))
    yield HTTPCase("strict-ctl-in-target", E, raw=b"GET /e\x01cho HTTP/1.1\r\nHost: {host}\r\n\r\n")
    yield HTTPCase("strict-space-in-target", E, raw=b"GET /a b HTTP/1.1\r\nHost: {host}\r\n\r\n")
    yield HTTPCase(
        "strict-long-header",
        E,
        headers=(("X-Custom", "x" * 12000),),
        note="12 kB: over the gateway's 8 KiB head, under Node's 16 KiB",
    )
    yield HTTPCase(
        "strict-expect-continue",
        E,
        "/parsed/echo",
        "POST",
        headers=(JSON, ("Expect", "100-continue")),
        body=b'{"a":1}',
    )
    yield HTTPCase("strict-expect-unknown", E, "/echo", "GET", headers=(("Expect", "magic"),))
    yield HTTPCase(
        "strict-pipelined",
        E,
        raw=b"GET /echo?n=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"
        b"GET /echo?n=2 HTTP/1.1\r\nHost: {host}\r\n\r\n",
        replies=("GET", "GET"),
    )


def _sails() -> Iterator[HTTPCase]:
    S = "sails"
    yield HTTPCase("s-echo", S, "/echo")
    yield HTTPCase("s-echo-param", S, "/echo/5?id=9&q=1")
    yield HTTPCase("s-query-nested", S, "/echo?x[y]=1&arr[]=a&arr[]=b")
    yield HTTPCase("s-query-index", S, "/echo?a[0]=x&a[1]=y&b[c][d]=e")
    yield HTTPCase("s-query-repeat", S, "/echo?a=1&a=2")
    yield HTTPCase("s-query-dots", S, "/echo?a.b=1&c[]=&d")
    yield HTTPCase("s-fragment", S, "/user/42?x=1#frag")
    yield HTTPCase("s-user-dot-ext", S, "/user/4.json", note="Sails skips asset-like paths")
    yield HTTPCase("s-user-books", S, "/user/1/books/2")
    yield HTTPCase("s-file-wildcard", S, "/file/a/b.txt")
    yield HTTPCase("s-regex", S, "/re/12/abc")
    yield HTTPCase("s-wants-default", S, "/echo")
    yield HTTPCase("s-wants-html", S, "/echo", headers=(HTML_ACCEPT,))
    yield HTTPCase(
        "s-wants-xhr-html",
        S,
        "/echo",
        headers=(HTML_ACCEPT, ("X-Requested-With", "XMLHttpRequest")),
    )
    yield HTTPCase(
        "s-wants-json-type-no-body",
        S,
        "/echo",
        headers=(HTML_ACCEPT, JSON),
        note="bodiless GET: req.is() is null",
    )
    yield HTTPCase(
        "s-wants-json-type-body", S, "/echo", "POST", headers=(HTML_ACCEPT, JSON), body=b'{"a":1}'
    )
    yield HTTPCase("s-wants-route-option", S, "/wants", headers=(HTML_ACCEPT,))
    yield HTTPCase("s-wants-html-upper", S, "/echo", headers=(("Accept", "TEXT/HTML"),))
    yield HTTPCase("s-accepts-star", S, "/echo", headers=(("Accept", "*/*"),))
    yield HTTPCase(
        "s-all-params",
        S,
        "/echo/5?id=9&q=query&z=1",
        "POST",
        headers=(JSON,),
        body=b'{"q":"body","a":3,"id":"b"}',
    )
    yield HTTPCase("s-body-json", S, "/echo", "POST", headers=(JSON,), body=b'{"a":{"b":[1]}}')
    yield HTTPCase(
        "s-body-form-nested",
        S,
        "/echo",
        "POST",
        headers=(FORM,),
        body=b"user[name]=tj&arr[]=1&arr[]=2",
    )
    yield HTTPCase(
        "s-body-text", S, "/echo", "POST", headers=(("Content-Type", "text/plain"),), body=b"plain"
    )
    yield HTTPCase("s-body-no-type", S, "/echo", "POST", body=b'{"a":1}')
    yield HTTPCase(
        "s-cookies",
        S,
        "/echo",
        headers=(("Cookie", 'a=1; j=j:{"x":2}; sig=' + sign("sv") + "; bad=s:x.y"),),
    )
    yield HTTPCase("s-ok", S, "/ok")
    yield HTTPCase("s-ok-empty", S, "/ok/empty")
    yield HTTPCase("s-ok-string", S, "/ok/string")
    yield HTTPCase("s-bad-request", S, "/bad")
    yield HTTPCase("s-bad-request-empty", S, "/bad/empty")
    yield HTTPCase("s-forbidden", S, "/forbidden")
    yield HTTPCase("s-not-found", S, "/notfound")
    yield HTTPCase("s-not-found-html", S, "/notfound", headers=(HTML_ACCEPT,))
    yield HTTPCase("s-server-error", S, "/servererror")
    yield HTTPCase("s-server-error-empty", S, "/servererror/empty")
    yield HTTPCase("s-throw", S, "/throw")
    yield HTTPCase("s-throw-html", S, "/throw", headers=(HTML_ACCEPT,))
    yield HTTPCase("s-404", S, "/nope")
    yield HTTPCase("s-404-html", S, "/nope", headers=(HTML_ACCEPT,))
    yield HTTPCase("s-status-201", S, "/status/201")
    yield HTTPCase("s-text", S, "/text")
    yield HTTPCase("s-json-null", S, "/json-null")
    yield HTTPCase("s-json-string", S, "/json-string")
    yield HTTPCase("s-typed-stream", S, "/typed-stream")
    yield HTTPCase("s-headers", S, "/headers")
    yield HTTPCase("s-redirect", S, "/redirect")
    yield HTTPCase("s-cookies-set", S, "/cookies/set")
    yield HTTPCase("s-wrong-method", S, "/only-post")
    yield HTTPCase("s-head", S, "/text", "HEAD")
    yield HTTPCase("s-options", S, "/echo", "OPTIONS")
    yield HTTPCase("s-body-json-invalid", S, "/echo", "POST", headers=(JSON,), body=b'{"a":')


def _socket() -> Iterator[SocketCase]:
    yield SocketCase("sk-get", "/echo")
    yield SocketCase("sk-get-query", "/echo?a=1&b=two")
    yield SocketCase("sk-query-repeat", "/echo?a=1&a=2")
    yield SocketCase("sk-query-nested", "/echo?x[y]=1&arr[]=a")
    yield SocketCase("sk-query-plus-escapes", "/echo?q=a+b%20c%C3%A9")
    yield SocketCase("sk-query-question-only", "/echo?")
    yield SocketCase("sk-fragment", "/user/42?x=1#frag")
    yield SocketCase("sk-param", "/echo/5?id=9")
    yield SocketCase("sk-user", "/user/3")
    yield SocketCase("sk-user-books", "/user/3/books/4")
    yield SocketCase("sk-user-dot-ext", "/user/4.json")
    yield SocketCase("sk-file-wildcard", "/file/a/b")
    yield SocketCase("sk-regex", "/re/12/abc")
    yield SocketCase("sk-param-encoded", "/user/a%20b")
    yield SocketCase("sk-param-bad-escape", "/user/%zz")
    yield SocketCase("sk-no-leading-slash", "echo")
    yield SocketCase("sk-post", "/echo", "post", {"a": 1})
    yield SocketCase("sk-post-nested", "/echo", "post", {"a": {"b": [1, {"c": None}]}})
    yield SocketCase("sk-post-array", "/echo", "post", [1, 2, 3])
    yield SocketCase("sk-post-empty", "/echo", "post", {})
    yield SocketCase("sk-post-no-data", "/echo", "post")
    yield SocketCase(
        "sk-post-scalars", "/echo", "post", {"n": 1.5, "t": True, "z": None, "s": "\u00e9\u20ac"}
    )
    yield SocketCase("sk-put", "/echo/7", "put", {"x": 1})
    yield SocketCase("sk-patch", "/echo/7", "patch", {"x": 2})
    yield SocketCase("sk-delete", "/echo/7", "delete", {"x": 3})
    yield SocketCase("sk-get-with-data", "/echo", "get", {"d": 1})
    yield SocketCase(
        "sk-raw-post",
        "/raw/echo",
        "post",
        {"a": [1, {"b": None}]},
        note="no body parser on the route",
    )
    yield SocketCase("sk-raw-get", "/raw/echo?q=1", "get", {"d": 1})
    yield SocketCase("sk-raw-put-array", "/raw/echo", "put", ["x", 2])
    yield SocketCase(
        "sk-param-order", "/echo/5?q=query&a=qa", "post", {"q": "body", "id": "body", "name": "n"}
    )
    yield SocketCase("sk-all-params", "/echo/5?id=9&z=1", "post", {"a": 3, "id": "b"})
    yield SocketCase("sk-header-custom", "/echo", headers={"X-Custom": "c"})
    yield SocketCase("sk-header-lower", "/echo", headers={"x-custom": "c"})
    yield SocketCase(
        "sk-header-json-type",
        "/echo",
        "post",
        {"a": 1},
        headers={"Content-Type": "application/json"},
    )
    yield SocketCase("sk-header-accept-html", "/echo", headers={"Accept": "text/html"})
    yield SocketCase("sk-header-referrer", "/echo", headers={"Referrer": "http://r/"})
    yield SocketCase("sk-header-referer", "/echo", headers={"Referer": "http://r/"})
    yield SocketCase(
        "sk-header-cookie", "/echo", headers={"Cookie": "msg=1"}, note="the handshake's cookie wins"
    )
    yield SocketCase("sk-header-origin", "/echo", headers={"Origin": "http://evil.example"})
    yield SocketCase("sk-header-host", "/echo", headers={"Host": "h.example:1"})
    yield SocketCase("sk-header-number", "/echo", headers={"X-Num": 5})
    yield SocketCase("sk-header-xhr", "/echo", headers={"X-Requested-With": "XMLHttpRequest"})
    yield SocketCase(
        "sk-header-content-length", "/echo", "post", {"a": 1}, headers={"Content-Length": "999"}
    )
    yield SocketCase("sk-wants-route", "/wants")
    yield SocketCase("sk-ok", "/ok")
    yield SocketCase("sk-ok-empty", "/ok/empty")
    yield SocketCase("sk-ok-string", "/ok/string")
    yield SocketCase("sk-bad-request", "/bad")
    yield SocketCase("sk-bad-request-empty", "/bad/empty")
    yield SocketCase("sk-forbidden", "/forbidden")
    yield SocketCase("sk-not-found", "/notfound")
    yield SocketCase("sk-server-error", "/servererror")
    yield SocketCase("sk-server-error-empty", "/servererror/empty")
    yield SocketCase("sk-throw", "/throw")
    yield SocketCase("sk-404", "/nope")
    yield SocketCase("sk-404-post", "/nope", "post", {"a": 1})
    yield SocketCase("sk-status-201", "/status/201")
    yield SocketCase("sk-status-204", "/status/204")
    yield SocketCase("sk-text", "/text")
    yield SocketCase("sk-json-null", "/json-null")
    yield SocketCase("sk-json-string", "/json-string")
    yield SocketCase("sk-typed-stream", "/typed-stream", note="res.set(Content-Type), write, end")
    yield SocketCase("sk-headers", "/headers")
    yield SocketCase("sk-redirect", "/redirect")
    yield SocketCase("sk-cookies-set", "/cookies/set")
    yield SocketCase("sk-wrong-method", "/only-post")
    yield SocketCase("sk-right-method", "/only-post", "post", {"p": 1})
    yield SocketCase("sk-head", "/text", "head")
    yield SocketCase("sk-options", "/echo", "options")
    yield SocketCase("sk-upper-method", "/echo", "GET")


HTTP_CASES: tuple[HTTPCase, ...] = (*_express(), *_sails())
SOCKET_CASES: tuple[SocketCase, ...] = tuple(_socket())
