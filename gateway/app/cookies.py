# Cookie conventions of Express apps: cookie-parser (`s:` signed and `j:` JSON values) and
# cookie-signature (HMAC-SHA256, base64 without '='), for `cookie_parser()`, `req.signed_cookies`
# and `res.cookie(..., signed=True)`. Decision: `req.cookies` parses `j:` JSON values even without
# cookie_parser, because an Express app only has req.cookies through cookie-parser (which always
# does) and `res.cookie(name, {...})` writes them; signature checks need a secret, so they need
# the middleware (the secret comes from the app, not from the profile). Must not: parse the Cookie
# header itself (gateway.http.target does) or touch the response.
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from gateway.http.target import parse_cookies

if TYPE_CHECKING:
    from gateway.app.contracts import CookieTarget

__all__ = [
    "cookie_parser",
    "cookie_value",
    "json_cookie",
    "json_cookies",
    "sign",
    "signed_cookie",
    "signed_cookies",
    "unsign",
]

Middleware = Callable[[Any, Any, Callable[..., Awaitable[None]]], Awaitable[None]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JSON.parse refuses NaN and Infinity


def _js_truthy(value: Any) -> bool:
    # cookie-parser keeps a JSON value only when it is truthy in JavaScript: `j:0`, `j:""`,
    # `j:false` and `j:null` stay strings, while `j:[]` and `j:{}` (falsy in Python) are parsed
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    return True


def json_cookie(value: Any) -> Any:
    """cookie-parser's ``JSONCookie``: the JSON after a ``j:`` prefix.

    Args:
        value: a cookie value.

    Returns:
        The parsed JSON, or None when ``value`` is not a string starting with ``j:`` or what
        follows is not JSON.
    """
    if not isinstance(value, str) or not value.startswith("j:"):
        return None
    try:
        return json.loads(value[2:], parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None


def json_cookies(cookies: dict[str, Any]) -> dict[str, Any]:
    """cookie-parser's ``JSONCookies``: replace each ``j:`` value by its JSON, in place.

    A value whose JSON is falsy in JavaScript (``0``, ``""``, ``false``, ``null``) or that is
    not JSON keeps its text, as in cookie-parser.

    Args:
        cookies: name -> value.

    Returns:
        ``cookies`` itself.
    """
    for name, value in cookies.items():
        if isinstance(value, str) and value.startswith("j:"):
            parsed = json_cookie(value)
            if _js_truthy(parsed):
                cookies[name] = parsed
    return cookies


def sign(value: str, secret: str) -> str:
    """cookie-signature's ``sign``: ``value + "." + base64(HMAC-SHA256(secret, value))``
    without ``=`` padding.

    Args:
        value: the cookie value to sign.
        secret: the signing secret (UTF-8).

    Returns:
        The signed value (without the ``s:`` prefix cookie-parser adds).
    """
    import base64
    import hashlib
    import hmac

    mac = hmac.new(secret.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).digest()
    return value + "." + base64.b64encode(mac).decode("ascii").rstrip("=")


def unsign(signed: str, secret: str) -> str | Literal[False]:
    """cookie-signature's ``unsign``, compared in constant time.

    Args:
        signed: ``value.signature``.
        secret: the secret to check against.

    Returns:
        The value, or False when the signature is not ``secret``'s.
    """
    import hmac

    value = signed[: signed.rfind(".")]  # no '.': all but the last character, as in JS
    expected = sign(value, secret)
    if hmac.compare_digest(expected.encode("utf-8"), signed.encode("utf-8")):
        return value
    return False


def signed_cookie(value: Any, secrets: Sequence[str]) -> Any:
    """cookie-parser's ``signedCookie``.

    Args:
        value: a cookie value.
        secrets: the secrets to try, in order.

    Returns:
        ``value`` itself when it is not a string starting with ``s:``; else the unsigned value
        for the first secret that signed it, or False when none did.
    """
    if not isinstance(value, str) or not value.startswith("s:"):
        return value
    for secret in secrets:
        unsigned = unsign(value[2:], secret)
        if unsigned is not False:
            return unsigned
    return False


def signed_cookies(cookies: dict[str, Any], secrets: Sequence[str]) -> dict[str, Any]:
    """cookie-parser's ``signedCookies``: move every ``s:`` cookie out of ``cookies``.

    Args:
        cookies: name -> value; the signed ones are removed from it.
        secrets: the secrets to try.

    Returns:
        name -> unsigned value, or False for a wrong signature.
    """
    out: dict[str, Any] = {}
    for name in list(cookies):
        value = cookies[name]
        unsigned = signed_cookie(value, secrets)
        if unsigned is not value:
            out[name] = unsigned
            del cookies[name]
    return out


def cookie_value(value: Any) -> str:
    """What ``res.cookie`` stores for ``value``, as Express does: objects, lists and None
    become ``j:`` + JSON, booleans ``true``/``false``, anything else its text.

    Args:
        value: the value given to ``res.cookie``.

    Returns:
        The cookie value before signing and percent-encoding.
    """
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (dict, list, tuple)):
        return "j:" + json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cookie_parser(secret: str | Sequence[str] | None = None) -> Middleware:
    """Middleware with cookie-parser's semantics: ``req.secret``, ``req.signed_cookies``, and
    ``req.cookies`` without the signed ones.

    With secrets, every cookie whose value starts with ``s:`` moves to ``req.signed_cookies``:
    its value when one of the secrets signed it (tried in order), else False. ``j:`` JSON
    values are parsed in both. ``req.secret`` is the first secret, which
    ``res.cookie(name, value, signed=True)`` signs with. A second cookie_parser on the same
    request does nothing, as in Express.

    Args:
        secret: None (no signed cookies), a secret, or secrets (the first signs; the others
            still verify, for rotation).

    Returns:
        ``async (req, res, next)``.

    Raises:
        TypeError: a secret that is not a str (at creation).
    """
    if not secret:
        secrets: tuple[str, ...] = ()
    elif isinstance(secret, str):
        secrets = (secret,)
    else:
        secrets = tuple(secret)
    for s in secrets:
        if not isinstance(s, str):
            raise TypeError(f"cookie_parser secrets must be str, not {type(s).__name__}")
    first = secrets[0] if secrets else None

    async def cookie_parser_mw(
        req: CookieTarget, res: Any, next: Callable[..., Awaitable[None]]
    ) -> None:
        if not req.cookies_parsed:
            cookies: dict[str, Any] = parse_cookies(req.headers.get("cookie"))
            signed: dict[str, Any] = {}
            if secrets and cookies:
                signed = json_cookies(signed_cookies(cookies, secrets))
            req.set_cookies(json_cookies(cookies), signed, first)
        await next()

    return cookie_parser_mw
