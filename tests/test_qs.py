# qs.parse (gateway.app.qs) and the places it is used: App(query_parser="extended") and
# bodyparsers.urlencoded(extended=True). Expected values are what the real packages gave for the
# same input: qs 6.17.1 (QS_TABLE), express@5.3 with body-parser 2.4 (BODY_PARSER), each run once
# with node and pasted here. Properties (hypothesis): only our documented errors, output bounded
# by the input.
from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import App, bodyparsers
from gateway.app.qs import parse
from gateway.errors import BadRequest
from tests.helpers import request, running

# (input, options, qs.parse(input, options)); allow_prototypes=True is Express 5's "extended"
QS_TABLE: list[tuple[str, dict[str, Any], Any]] = [
    ("a[b][c]=1", {"allow_prototypes": True}, {"a": {"b": {"c": "1"}}}),
    ("a[]=1&a[]=2", {"allow_prototypes": True}, {"a": ["1", "2"]}),
    ("a[1]=x&a[0]=y", {"allow_prototypes": True}, {"a": ["y", "x"]}),
    ("a[1]=b&a[15]=c", {"allow_prototypes": True}, {"a": ["b", "c"]}),
    ("a[20]=x", {"allow_prototypes": True}, {"a": {"20": "x"}}),
    ("a[21]=x", {"allow_prototypes": True}, {"a": {"21": "x"}}),
    ("a[]=1&a[21]=2", {"allow_prototypes": True}, {"a": {"0": "1", "21": "2"}}),
    ("a[0]=1&a[b]=2", {"allow_prototypes": True}, {"a": {"0": "1", "b": "2"}}),
    ("a=1&a=2&a=3", {"allow_prototypes": True}, {"a": ["1", "2", "3"]}),
    (
        "a[b][c][d][e][f][g][h][i]=j",
        {"allow_prototypes": True},
        {"a": {"b": {"c": {"d": {"e": {"f": {"[g][h][i]": "j"}}}}}}},
    ),
    ("a[b][c]=1", {"allow_prototypes": True, "depth": 1}, {"a": {"b": {"[c]": "1"}}}),
    (
        "a[0][0][0][0][0][0][0][0]=x",
        {"allow_prototypes": True},
        {"a": [[[[[{"[0][0][0]": "x"}]]]]]},
    ),
    ("a[999999999]=x", {"allow_prototypes": True}, {"a": {"999999999": "x"}}),
    ("a[-1]=x&a[01]=y", {"allow_prototypes": True}, {"a": {"-1": "x", "01": "y"}}),
    ("__proto__[x]=1&a[__proto__]=2&a[b]=3", {"allow_prototypes": True}, {"a": {"b": "3"}}),
    (
        "constructor=1&toString[a]=2&a[hasOwnProperty]=3",
        {"allow_prototypes": True},
        {"constructor": "1", "toString": {"a": "2"}, "a": {"hasOwnProperty": "3"}},
    ),
    ("constructor=1&toString[a]=2&a[hasOwnProperty]=3", {"allow_prototypes": False}, {}),
    (
        "q=tobi+ferret&e=%E2%82%AC&bad=%zz&half=%E2%82",
        {"allow_prototypes": True},
        {"q": "tobi ferret", "e": "€", "bad": "%zz", "half": "%E2%82"},
    ),
    ("a+b=c+d&%61=%62", {"allow_prototypes": True}, {"a b": "c d", "a": "b"}),
    ("a%5Bb%5D=1&a%5bc%5d=2", {"allow_prototypes": True}, {"a": {"b": "1", "c": "2"}}),
    ("a=%E9&b=%FC%2B", {"allow_prototypes": True, "charset": "iso-8859-1"}, {"a": "é", "b": "ü+"}),
    ("a=1&b=2&c=3&d=4", {"allow_prototypes": True, "parameter_limit": 2}, {"a": "1", "b": "2"}),
    ("=x&&b&c=", {"allow_prototypes": True}, {"b": "", "c": ""}),
    ("a[b]=1&a=2", {"allow_prototypes": True}, {"a": [{"b": "1"}, "2"]}),
    ("a=2&a[b]=1", {"allow_prototypes": True}, {"a": ["2", {"b": "1"}]}),
    (
        "a[b]=1&a=2&a=3&a[c]=4",
        {"allow_prototypes": True},
        {"a": {"0": "2", "1": "3", "b": "1", "c": "4"}},
    ),
    (
        "a[=]=1&a]=x=2&[x]=3&[]=4",
        {"allow_prototypes": True},
        {"0": "4", "a": {"=": "1"}, "a]": "x=2", "x": "3"},
    ),
    ("a[[b]]=1&a[b=2", {"allow_prototypes": True}, {"a": {"[b]": "1", "[b": "2"}}),
    (
        "a[b]c=1&a[][x]=2&a[][y]=3",
        {"allow_prototypes": True},
        {"a": {"0": {"x": "2", "y": "3"}, "b": "1"}},
    ),
    (
        "a[0][b]=1&a[1][b]=2&a[0][c]=3",
        {"allow_prototypes": True},
        {"a": [{"b": "1", "c": "3"}, {"b": "2"}]},
    ),
    (
        "a[]=1&a[]=2&a[]=3",
        {"allow_prototypes": True, "array_limit": 2},
        {"a": {"0": "1", "1": "2", "2": "3"}},
    ),
    (
        "user[name]=tj&user[email]=tj%40example.com&tags[]=a&tags[]=b",
        {"allow_prototypes": True},
        {"user": {"name": "tj", "email": "tj@example.com"}, "tags": ["a", "b"]},
    ),
    ("a.b=1&a[b.c]=2", {"allow_prototypes": True}, {"a.b": "1", "a": {"b.c": "2"}}),
]


@pytest.mark.parametrize(("text", "options", "expected"), QS_TABLE)
def test_same_as_qs(text: str, options: dict[str, Any], expected: Any) -> None:
    got = parse(text, **options)
    assert got == expected
    # JSON key order too (res.json(req.query) gives the same bytes as Express)
    assert _ordered(got) == _ordered(expected)


def _ordered(value: Any) -> Any:
    if isinstance(value, dict):
        return [[k, _ordered(v)] for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def test_depth_and_array_limits_bound_hostile_keys() -> None:
    # the values are qs's answers too
    assert parse("a" + "[0]" * 100_000 + "=x") == {"a": [[[[[{"[0]" * 99_995: "x"}]]]]]}
    assert parse("a[999999999]=x&a[]=y") == {"a": {"0": "y", "999999999": "x"}}
    assert parse("a" + "[" * 100_000 + "=1") == {"a": {"[" * 100_000: "1"}}
    with pytest.raises(BadRequest, match="The input exceeded the depth"):
        parse("a[b][c]=1", depth=1, strict_depth=True)
    assert parse("a[b][c]=1", depth=1) == {"a": {"b": {"[c]": "1"}}}


def _lines_run(text: str, **options: Any) -> int:
    """How many lines of gateway/app/qs.py parse(text) executes (deterministic, unlike time)."""
    import sys

    from gateway.app import qs

    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename != qs.__file__:
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        parse(text, **options)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("piece", ["a=1", "a[]=1", "a[199]=x", "a[b]=1&a=2", "a[%d][b]=1", "k%d=v"])
def test_work_is_linear_in_the_input(piece: str) -> None:
    # a key repeated n times: JavaScript's qs copies the array each time (quadratic); we don't
    def text(n: int) -> str:
        return "&".join(piece.replace("%d", str(i)) for i in range(n))

    small = _lines_run(text(200), array_limit=200, parameter_limit=10_000)
    large = _lines_run(text(3200), array_limit=3200, parameter_limit=10_000)
    assert large < small * 16 * 1.5  # 16 times the input; quadratic would be 256 times


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return 1 + sum(_size(v) for v in value)
    return 1 + len(value)


_PIECES = st.sampled_from(
    [
        "a",
        "b",
        "0",
        "1",
        "20",
        "21",
        "[",
        "]",
        "[]",
        "[0]",
        "[1]",
        "[a]",
        "=",
        "&",
        "%5B",
        "%5D",
        "+",
        "%",
        "%zz",
        "%E9",
        "__proto__",
        "constructor",
        "99999999999",
        "-1",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_PIECES, max_size=40).map("".join),
    st.sampled_from(
        [
            dict(),
            dict(depth=32, array_limit=100, strict_depth=True),
            dict(depth=0, array_limit=3),
            dict(charset="iso-8859-1"),
        ]
    ),
)
def test_never_fails_and_stays_small(text: str, options: dict[str, Any]) -> None:
    try:
        result = parse(text, **options)
    except BadRequest as exc:  # the one documented error (strict_depth)
        assert exc.message == "The input exceeded the depth"
        return
    # every key and value comes from the input; containers cost one unit each and a parameter
    # makes at most depth + 2 of them
    pieces = text.count("&") + 1
    assert _size(result) <= 2 * len(text) + pieces * (options.get("depth", 5) + 3)


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=5))
def test_flat_round_trip(data: dict[str, str]) -> None:
    from urllib.parse import quote

    text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in data.items())
    # qs rebuilds nesting from brackets and drops __proto__; plain keys come back as they were
    plain = {k: v for k, v in data.items() if "[" not in k and "]" not in k and k != "__proto__"}
    result = parse(text, parameter_limit=100)
    assert {k: result[k] for k in plain} == plain


# -- App(query_parser=...) -------------------------------------------------------------------


async def test_query_parser_setting() -> None:
    target = "/q?user[name]=tj&tags[]=a&tags[]=b&a=1&a=2&x[y][z]=1"

    def app_with(parser: Any) -> App:
        app = App(query_parser=parser)

        @app.get("/q")
        async def show(req, res):  # type: ignore[no-untyped-def]
            await res.json(req.query)

        return app

    answers = {
        # Express 5 default ("simple", node's querystring)
        "simple": {"user[name]": "tj", "tags[]": ["a", "b"], "a": ["1", "2"], "x[y][z]": "1"},
        # Express 5 with app.set("query parser", "extended"): qs.parse(s, {allowPrototypes})
        "extended": {
            "user": {"name": "tj"},
            "tags": ["a", "b"],
            "a": ["1", "2"],
            "x": {"y": {"z": "1"}},
        },
        False: {},
    }
    with trio.fail_after(10):
        for parser, expected in answers.items():
            async with running(app_with(parser)) as server:
                r = await request(server, "GET", target)
                assert r.json() == expected, parser
        async with running(app_with(lambda s: {"raw": s})) as server:
            r = await request(server, "GET", target)
            assert r.json() == {"raw": target.split("?", 1)[1]}
            assert (await request(server, "GET", "/q")).json() == {}  # not called for ""
    with pytest.raises(ValueError, match="query_parser"):
        App(query_parser="qs")


# -- bodyparsers.urlencoded(extended=True) --------------------------------------------------

# (path, charset, body, status, reply) from express@5.3 with express.urlencoded({extended: true})
# (and {depth: 2} at /d2, {parameterLimit: 3} at /p3); errors are replied as {"error": message}
DEEP_32 = "a" + "[b]" * 32 + "=1"
BODY_PARSER: list[tuple[str, str, str, int, Any]] = [
    ("/", "utf-8", "a[b][c]=1&x[]=1&x[]=2", 200, {"a": {"b": {"c": "1"}}, "x": ["1", "2"]}),
    ("/", "utf-8", "a" + "[b]" * 33 + "=1", 400, {"error": "The input exceeded the depth"}),
    ("/", "utf-8", DEEP_32, 200, None),  # 32 levels of {"b": ...} (checked below)
    ("/", "utf-8", "a[150]=x", 200, {"a": {"150": "x"}}),  # arrayLimit max(100, 1)
    ("/", "utf-8", "a[99]=x", 200, {"a": ["x"]}),
    ("/", "utf-8", "&".join(["a[]=1"] * 150), 200, {"a": ["1"] * 150}),  # arrayLimit 150
    ("/", "iso-8859-1", "n=%E9t%E9&m=caf%C3%A9", 200, {"n": "été", "m": "cafÃ©"}),
    (
        "/",
        "utf-8",
        "__proto__[x]=1&constructor[y]=2&q=a+b%20c",
        200,
        {"constructor": {"y": "2"}, "q": "a b c"},
    ),
    ("/d2", "utf-8", "a[b][c]=1", 200, {"a": {"b": {"c": "1"}}}),
    ("/d2", "utf-8", "a[b][c][d]=1", 400, {"error": "The input exceeded the depth"}),
    ("/p3", "utf-8", "a=1&b=2&c=3", 200, {"a": "1", "b": "2", "c": "3"}),
    ("/p3", "utf-8", "a=1&b=2&c=3&d=4", 413, {"error": "too many parameters (limit 3)"}),
]


async def test_urlencoded_extended_like_body_parser() -> None:
    app = App()
    app.use("/d2", bodyparsers.urlencoded(extended=True, depth=2))
    app.use("/p3", bodyparsers.urlencoded(extended=True, parameter_limit=3))
    app.use(bodyparsers.urlencoded(extended=True))

    @app.post("/*any")
    async def show(req, res):  # type: ignore[no-untyped-def]
        await res.json(req.body)

    deep: Any = "1"
    for _ in range(32):
        deep = {"b": deep}
    with trio.fail_after(10):
        async with running(app) as server:
            for path, cs, body, status, reply in BODY_PARSER:
                r = await request(
                    server,
                    "POST",
                    path + "/x",
                    [
                        ("Content-Type", f"application/x-www-form-urlencoded; charset={cs}"),
                        ("Accept", "application/json"),
                    ],
                    body=body.encode("latin-1"),
                )
                assert r.status == status, body[:40]
                got = r.json()
                if status != 200:
                    assert got["error"] == reply["error"]
                else:
                    assert got == (reply if reply is not None else {"a": deep}), body[:40]


def test_urlencoded_depth_option_is_checked() -> None:
    with pytest.raises(ValueError, match="depth"):
        bodyparsers.urlencoded(extended=True, depth=-1)
