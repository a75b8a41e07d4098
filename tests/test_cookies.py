# cookie_parser, req.signed_cookies, j: JSON cookies and res.cookie(signed=True), compared with
# the real packages: every expected value below is what cookie-signature 1.x, cookie-parser 1.4.7
# and express@5.3's res.cookie produced for the same input (run once with node and pasted here).
from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from gateway import App, cookie_parser
from gateway.app.cookies import json_cookies, sign, signed_cookie, unsign
from tests.helpers import request, running

# cookie-signature's sign(value, secret)
SIGNED = [
    ("hello", "tobiiscool", "hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI"),
    ("", "s", ".ZOygfM5nkpw1fWPQpK7CB+d0gAQDKYkU/ATojOAqxJ8"),
    ('j:{"a":1}', "current", 'j:{"a":1}.QCV+iIPpagRc/reuAtNL0ndfRt/FwR458yefWlwOqIQ'),
    ("héllo wörld", "sécret", "héllo wörld.2svz2eIu3584x49wahD5WIPdsPjirz6UB1VQAFVczLA"),
    ("x", "old", "x.lWlnTeh6L0AEVScIK1YpYxYYKcxYk0tg+1nxbR30Gk0"),
]


@pytest.mark.parametrize(("value", "secret", "signed"), SIGNED)
def test_sign_and_unsign_like_cookie_signature(value: str, secret: str, signed: str) -> None:
    assert sign(value, secret) == signed
    assert unsign(signed, secret) == value
    assert unsign(signed, secret + "x") is False
    assert unsign(signed[:-1], secret) is False
    assert unsign(signed + "A", secret) is False


def test_signed_cookie_edge_cases() -> None:
    assert signed_cookie("plain", ["s"]) == "plain"  # not s: -> itself
    assert signed_cookie("s:abc", ["s"]) is False  # no '.'
    assert signed_cookie("s:", ["s"]) is False
    assert signed_cookie(7, ["s"]) == 7
    assert signed_cookie("s:" + sign("v", "b"), ["a", "b"]) == "v"  # any secret may verify


HEADER = (
    "plain=v; json=j%3A%7B%22a%22%3A1%7D; jzero=j:0; jnull=j:null; jempty=j:%22%22; jarr=j:[]; "
    "jobj=j:{}; jbad=j:{nope; jnan=j:NaN; jnum=j:12; jfalse=j:false; jtrue=j:true; "
    "good=s%3Ahello.Frjj2t46%2Fg%2Fuy7LLaT2YqyiN2zv0eJNE3uzmZfefXmo; "
    "rotated=s%3Aold%20value.jEzCETU3TJiJ3jMg8ZUxOtped6cK5XfsY0Ye3gk0NGs; "
    "bad=s%3Ahello.Ni7rniuZ0Lw%2Bb7FwAHIrdBSAFVvFMj0%2FCnXmnpEoOyM; "
    "sjson=s%3Aj%3A%7B%22b%22%3A%5B1%2C2%5D%7D.npZbJU8FX2wYS2rACp8HQNV%2BBlKWXIjLXbr1HJobNeo; "
    "nodot=s%3Aabc; empty=s%3A; sjzero=s%3Aj%3A0.gLyc1h9E9d06sCXH0l1Nd9Ojtit6D4SyLmGCS5oBBj8; "
    "dup=first; dup=second"
)
UNSIGNED_COOKIES: dict[str, Any] = {
    "plain": "v",
    "json": {"a": 1},
    "jzero": "j:0",
    "jnull": "j:null",
    "jempty": 'j:""',
    "jarr": [],
    "jobj": {},
    "jbad": "j:{nope",
    "jnan": "j:NaN",
    "jnum": 12,
    "jfalse": "j:false",
    "jtrue": True,
    "dup": "first",
}
SIGNED_RAW = {
    "good": "s:hello.Frjj2t46/g/uy7LLaT2YqyiN2zv0eJNE3uzmZfefXmo",
    "rotated": "s:old value.jEzCETU3TJiJ3jMg8ZUxOtped6cK5XfsY0Ye3gk0NGs",
    "bad": "s:hello.Ni7rniuZ0Lw+b7FwAHIrdBSAFVvFMj0/CnXmnpEoOyM",
    "sjson": 's:j:{"b":[1,2]}.npZbJU8FX2wYS2rACp8HQNV+BlKWXIjLXbr1HJobNeo',
    "nodot": "s:abc",
    "empty": "s:",
    "sjzero": "s:j:0.gLyc1h9E9d06sCXH0l1Nd9Ojtit6D4SyLmGCS5oBBj8",
}
EXPRESS = {
    # app.use("/secret", cookieParser(["current", "old"]))
    "/secret": {
        "cookies": UNSIGNED_COOKIES,
        "signed": {
            "good": "hello",
            "rotated": "old value",
            "bad": False,
            "sjson": {"b": [1, 2]},
            "nodot": False,
            "empty": False,
            "sjzero": "j:0",
        },
        "secret": "current",
    },
    # app.use("/none", cookieParser())
    "/none": {"cookies": {**UNSIGNED_COOKIES, **SIGNED_RAW}, "signed": {}, "secret": None},
}


def _cookie_app() -> App:
    app = App()
    app.use("/secret", cookie_parser(["current", "old"]))
    app.use("/none", cookie_parser())
    app.use("/twice", cookie_parser("current"), cookie_parser("other"))

    @app.use
    async def show(req, res):  # type: ignore[no-untyped-def]
        await res.json({"cookies": req.cookies, "signed": req.signed_cookies, "secret": req.secret})

    return app


async def test_cookie_parser_like_express() -> None:
    with trio.fail_after(10):
        async with running(_cookie_app()) as server:
            for path, expected in EXPRESS.items():
                r = await request(server, "GET", path, [("Cookie", HEADER)])
                assert r.json() == expected, path
            # without cookie_parser: EdgerOS's req.cookies, j: values parsed (our decision,
            # see gateway/app/cookies.py), signed values left as they came
            r = await request(server, "GET", "/raw", [("Cookie", HEADER)])
            assert r.json() == EXPRESS["/none"]
            # a second cookie_parser on the same request does nothing (the first secret stays)
            r = await request(server, "GET", "/twice", [("Cookie", HEADER)])
            assert r.json()["secret"] == "current"
            assert r.json()["signed"]["good"] == "hello"
            r = await request(server, "GET", "/secret")
            assert r.json() == {"cookies": {}, "signed": {}, "secret": "current"}


def test_json_cookies_keeps_what_javascript_finds_falsy() -> None:
    cookies = {
        "a": "j:0",
        "b": "j:0.0",
        "c": "j:[]",
        "d": "j:1e400",
        "e": 'j:"x"',
        "f": "j:-0",
        "g": "j:" + "[" * 5000,
    }
    assert json_cookies(cookies) == {
        "a": "j:0",
        "b": "j:0.0",
        "c": [],
        "d": float("inf"),
        "e": "x",
        "f": "j:-0",
        "g": "j:" + "[" * 5000,
    }


# express@5.3's Set-Cookie for res.cookie(...) with req.secret = "current" (Express adds only
# "Path=/"; our defaults add HttpOnly and SameSite=Lax, so only name=value is compared)
SET_COOKIE = [
    (
        "a",
        {"x": [1, "é"]},
        True,
        "a=s%3Aj%3A%7B%22x%22%3A%5B1%2C%22%C3%A9%22%5D%7D."
        "zDGk6qYdSGwdCdnyOi4xp3hXxOTdvEIvnOejrf%2FUbZM",
    ),
    ("b", "plain value!*'()~", False, "b=plain%20value!*'()~"),
    ("c", "v", True, "c=s%3Av.WJvt9Z%2B6hLdywGqAU5Ri1%2B7pxhoBkogQKq98QcM0A80"),
    ("d", None, False, "d=j%3Anull"),
    ("e", True, False, "e=true"),
    ("f", [1, 2], False, "f=j%3A%5B1%2C2%5D"),
]


async def test_res_cookie_signs_and_encodes_like_express() -> None:
    app = App()
    app.use(cookie_parser("current"))

    @app.get("/set")
    async def set_cookies(req, res):  # type: ignore[no-untyped-def]
        for name, value, signed, _ in SET_COOKIE:
            res.cookie(name, value, signed=signed)
        await res.send("ok")

    @app.get("/back")
    async def back(req, res):  # type: ignore[no-untyped-def]
        await res.json({"cookies": req.cookies, "signed": req.signed_cookies})

    with trio.fail_after(10):
        async with running(app) as server:
            r = await request(server, "GET", "/set")
            headers = [v for k, v in r.header_list if k == "set-cookie"]
            assert [h.split(";")[0] for h in headers] == [expected for *_, expected in SET_COOKIE]
            assert all("; Path=/; HttpOnly; SameSite=Lax" in h for h in headers)
            # and they come back through cookie_parser as they were set
            jar = "; ".join(h.split(";")[0] for h in headers)
            r = await request(server, "GET", "/back", [("Cookie", jar)])
            assert r.json() == {
                "cookies": {"b": "plain value!*'()~", "d": "j:null", "e": "true", "f": [1, 2]},
                "signed": {"a": {"x": [1, "é"]}, "c": "v"},
            }


async def test_signed_cookie_without_a_secret_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.get("/set")
    async def set_cookie(req, res):  # type: ignore[no-untyped-def]
        res.cookie("g", "v", signed=True)
        await res.send("unreachable")

    caplog.set_level(logging.CRITICAL, logger="gateway.app")
    with trio.fail_after(10):
        async with running(app) as server:
            r = await request(server, "GET", "/set")
    assert r.status == 500
    assert "set-cookie" not in r.headers


def test_cookie_parser_refuses_non_string_secrets() -> None:
    with pytest.raises(TypeError):
        cookie_parser(["ok", 3])  # type: ignore[list-item]
