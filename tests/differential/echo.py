# The echo of the request API the gateway apps of the differential harness send back: the same
# document tests/node/differential_echo.js builds from an Express/Sails request, field for field.
# Each field is computed on its own: an API that is missing or raises gives
# "<error Name: message>" for that field only, so one gap shows as one difference.
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gateway import Request

# Keep in step with GET_FIELDS and PARAM_NAMES in tests/node/differential_echo.js.
GET_FIELDS = (
    "Referer",
    "Referrer",
    "Host",
    "Content-Type",
    "Content-Length",
    "Accept",
    "Cookie",
    "X-Custom",
    "X-Requested-With",
    "User-Agent",
    "Origin",
    "Accept-Language",
)
PARAM_NAMES = ("id", "q", "a", "shopId", "name")


def safe(fn: Callable[[], Any]) -> Any:
    """``fn()``, or an "<error ...>" marker when it raises."""
    try:
        return fn()
    except Exception as exc:  # any failure is the field's value: it is what gets compared
        return f"<error {type(exc).__name__}: {exc}>"


def _call(obj: Any, method: str, *args: Any) -> Any:
    """``obj.method(*args)`` through ``safe``."""
    return safe(lambda: getattr(obj, method)(*args))


def _route_path(req: Any) -> Any:
    route = req.route
    if route is None:
        return None
    path = route.path
    if isinstance(path, str):
        return path
    # a compiled regex, written as JavaScript prints one; Sails names a regex route's groups
    # outside the pattern ("r|^/re/(\\d+)$|num"), Python inside it: the groups are the same
    return "/" + re.sub(r"\(\?P<\w+>", "(", path.pattern) + "/"


def echo(req: Request, *, sails: bool = False) -> dict[str, Any]:
    """The echo document for ``req`` (``sails`` adds Sails' qualifiers)."""
    r: Any = req  # names still being added to the API are looked up at run time
    out: dict[str, Any] = {
        "method": safe(lambda: r.method),
        "url": safe(lambda: r.url),
        "originalUrl": safe(lambda: r.original_url),
        "baseUrl": safe(lambda: r.base_url),
        "path": safe(lambda: r.path),
        "params": safe(lambda: dict(r.params)),
        "query": safe(lambda: r.query),
        "cookies": safe(lambda: r.cookies),
        "signedCookies": safe(lambda: r.signed_cookies),
        "body": safe(lambda: r.body),
        "headers": safe(lambda: r.headers),
        "get": {f: _call(r, "get", f) for f in GET_FIELDS},
        "is": {
            "json": safe(lambda: r.is_("json")),
            "html": safe(lambda: r.is_("html")),
            "urlencoded": safe(lambda: r.is_("urlencoded")),
            "textAny": safe(lambda: r.is_("text/*")),
            "jsonOrForm": safe(lambda: r.is_("json", "urlencoded")),
            "plusJson": safe(lambda: r.is_("+json")),
        },
        "accepts": safe(lambda: r.accepts()),
        "acceptsJsonHtml": safe(lambda: r.accepts("json", "html")),
        "acceptsHtml": safe(lambda: r.accepts("html")),
        "acceptsText": safe(lambda: r.accepts("text/plain")),
        "param": {n: _call(r, "param", n) for n in PARAM_NAMES},
        "hostname": safe(lambda: r.hostname),
        "protocol": safe(lambda: r.protocol),
        "xhr": safe(lambda: r.xhr),
        "secure": safe(lambda: r.secure),
        "ip": safe(lambda: r.ip),
        "route": safe(lambda: _route_path(req)),
    }
    if sails:
        out["wantsJSON"] = safe(lambda: bool(r.wants_json))
        out["isSocket"] = safe(lambda: bool(r.is_socket))
        out["allParams"] = safe(lambda: r.all_params())
        out["explicitlyAcceptsHTML"] = safe(lambda: bool(r.explicitly_accepts_html))
    return out
