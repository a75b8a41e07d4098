# gateway.tomlfile: a profile's TOML parsed in a forked child answers exactly what tomllib
# answers in the process (the document, type for type and float bit for bit, or the error
# message), and falls back to tomllib here wherever the child cannot answer. The child path runs
# in a fresh interpreter (one thread, as at start-up): forking the test process, which may run
# trio's worker threads, is what parse() itself refuses to do.
from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import tomlfile
from gateway.errors import ConfigError
from gateway.settings import format_settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "firmware_profiles").glob("*.toml"))
# The interpreters these tests start are left out of coverage: coverage reads its settings
# from pyproject.toml with tomllib at start-up, so a measured child would have tomllib loaded
# before the code under test runs, which then (rightly) parses in the process.
PLAIN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}

# Run in a fresh interpreter: each text through the child (parse_in_child, and parse, which must
# take the child path there), then through tomllib; one verdict per text.
_COMPARE = r"""
import json, struct, sys
from gateway import tomlfile

def same(a, b):
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b

texts = json.load(sys.stdin)
child = [tomlfile.parse_in_child(t) for t in texts]
via_parse = []
loaded = []  # after each parse(): whether tomllib is loaded by then
for t in texts:
    try:
        via_parse.append((True, tomlfile.parse(t)))
    except tomlfile.TOMLError as exc:
        via_parse.append((False, str(exc)))
    except Exception as exc:
        via_parse.append(("raised", type(exc).__name__))
    loaded.append("tomllib" in sys.modules)
import tomllib
verdicts = []
for t, c, p in zip(texts, child, via_parse):
    try:
        want = (True, tomllib.loads(t))
    except tomllib.TOMLDecodeError as exc:
        want = (False, str(exc))
    except RecursionError:  # tomllib has no nesting limit of its own
        want = (False, "arrays or inline tables nested too deeply")
    except Exception as exc:
        want = ("raised", type(exc).__name__)
    if c is None:
        verdict = "fallback"
    elif c[0] == want[0] and same(c[1], want[1]):
        verdict = "document" if want[0] is True else "error"
    else:
        verdict = f"child differs: {c!r} != {want!r}"
    if p[0] != want[0] or not (p[1] == want[1] if p[0] == "raised" else same(p[1], want[1])):
        verdict += f"; parse differs: {p!r} != {want!r}"
    verdicts.append(verdict)
print(json.dumps({"verdicts": verdicts, "loaded": loaded}))
"""


def run_python(code: str, *args: str, stdin: str | None = None) -> str:
    """The output of ``python -c code args...`` in a fresh interpreter (one thread, outside
    coverage), which must succeed."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=PLAIN_ENV,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def compare(texts: list[str]) -> dict[str, Any]:
    return json.loads(run_python(_COMPARE, stdin=json.dumps(texts)))  # type: ignore[no-any-return]


def has_date_or_time(doc: object) -> bool:
    if isinstance(doc, dict):
        return any(has_date_or_time(v) for v in doc.values())
    if isinstance(doc, list):
        return any(has_date_or_time(v) for v in doc)
    return type(doc).__module__ == "datetime"


def expected(text: str) -> str:
    """What the child should answer for ``text``: its document, its error, or nothing."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "error"
    except RecursionError:
        return "error"  # ours: "nested too deeply"
    return "fallback" if has_date_or_time(doc) else "document"


EDGES = [
    "",
    "# only a comment\n",
    "a = nan\nb = -nan\nc = +nan\nd = inf\ne = -inf\nf = -0.0\ng = 0.0\nh = 1e400\ni = 5e-324",
    "big = 9223372036854775807\nsmall = -9223372036854775808\nhuge = 0x7fffffffffffffff",
    "hex = 0xDEAD_BEEF\noct = 0o755\nbin = 0b1101\nunder = 1_000_000\nexp = 6.626e-34",
    'u = "\\u00e9\\U0001F600 \\t \\\\ \\" é"\nlit = \'C:\\path\\*\'\nml = """\n  a\\\n  b"""',
    "ml2 = '''\nfirst\n  second'''\nempty = \"\"\n\"quoted key\" = 1\n'lit key' = 2",
    "a.b.c = 1\na.b.d = [1, [2, [3, []]], {x = true}]\n[t]\nx.y = false\n[[arr]]\nv = 1\n[[arr]]",
    "[server]\nport = 8080\n[limits.user]\nmax_body_bytes = 1048576\n[limits.privileged]\nx = 1",
    "s = 'ß∂ƒ漢字🙂'\nkeys = { 'é' = 1, \"ü\" = [] }\nmixed = [1, 'a', 1.5, true, [], {}]",
    # errors: where the message (line and column) must come through word for word
    "a = 1\na = 2",
    "a = ",
    'a = "unterminated',
    "a = 1 b = 2",
    "[t]\n[t]",
    "x = [1, 2",
    'x = "\\q"',
    "x = 0128x",
    "x = 00",
    "a.b = 1\na = 2",
    "[[a]]\n[a]",
    "x = 1\r",
    "x = tru",
    # nested past the recursion limit: tomllib raised RecursionError (a traceback at start-up)
    "a = " + "[" * 5000 + "]" * 5000,
    "a = " + "{b = " * 5000 + "1" + "}" * 5000,
    "x = 1979-05-27T25:00:00",
    "\x00 = 1",
    # date and time values: marshal cannot carry them, so tomllib answers here
    "when = 1979-05-27T07:32:00Z",
    "d = 1979-05-27\nt = 07:32:00.999999\nlocal = 1979-05-27T00:32:00",
    "[nested]\nlist = [1, [{at = 1979-05-27}]]",
]


def test_the_child_answers_what_tomllib_answers_for_edges_and_every_profile() -> None:
    texts = [*EDGES, *(p.read_text() for p in PROFILES)]
    assert_alike(texts)
    assert {expected(t) for t in texts} == {"document", "error", "fallback"}


def assert_alike(texts: list[str]) -> None:
    """The child's answers and parse()'s equal tomllib's for each of ``texts``, and parse()
    in a one-thread process loaded tomllib only from the first text the child cannot carry."""
    result = compare(texts)
    kinds = [expected(t) for t in texts]
    assert result["verdicts"] == kinds
    first = kinds.index("fallback") if "fallback" in kinds else len(kinds)
    assert result["loaded"] == [i >= first for i in range(len(texts))]


def test_parse_in_a_one_thread_process_leaves_tomllib_unloaded() -> None:
    code = (
        "import sys\nfrom gateway import tomlfile\n"
        "doc = tomlfile.parse('a = 1\\n[b]\\nc = [1.5, \"x\"]')\n"
        "try:\n    tomlfile.parse('a = ')\nexcept tomlfile.TOMLError as exc:\n    err = str(exc)\n"
        "print(doc, repr(err), sorted({'tomllib', 'datetime', '_datetime'} & set(sys.modules)))\n"
    )
    out = run_python(code).strip()
    assert out == "{'a': 1, 'b': {'c': [1.5, 'x']}} 'Invalid value (at end of document)' []"


# Documents made of every kind of value marshal carries, written as TOML source.
_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_floats = st.floats(allow_nan=False) | st.sampled_from(["nan", "-nan", "inf", "-inf", "-0.0"])
_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | _floats
    | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


def _source(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in {"nan", "-nan", "inf", "-inf", "-0.0"}:
        return value
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str | int):
        return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_source(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_key(k)} = {_source(v)}" for k, v in value.items()) + "}"


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


_documents = st.dictionaries(_keys, _values, max_size=6).map(
    lambda doc: "\n".join(f"{_key(k)} = {_source(v)}" for k, v in doc.items())
)


@st.composite
def _texts(draw: st.DrawFn) -> str:
    """A valid document, or one with a few characters inserted or deleted (mostly invalid)."""
    text = draw(_documents)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()) and at < len(text):
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + draw(st.sampled_from(list("=\"'[]{},.#\n\\ 0a-+e:T"))) + text[at:]
    return text


@settings(max_examples=8, deadline=None)
@given(st.lists(_texts(), min_size=25, max_size=25))
def test_the_child_answers_what_tomllib_answers_for_generated_documents(texts: list[str]) -> None:
    assert_alike(texts)


def test_profiles_load_alike_through_the_child_and_here(monkeypatch: pytest.MonkeyPatch) -> None:
    # gateway check in a fresh process takes the child path; the same profile loaded here,
    # with the fork refused, takes tomllib's: the settings agree line for line.
    monkeypatch.setattr(tomlfile, "_single_threaded", lambda: False)
    for name in ("pi4-2gb", "tiny"):
        here = format_settings(load_settings(name, env={}))
        code = (
            "from gateway.settings import load_settings, format_settings\n"
            f"print(format_settings(load_settings({name!r}, env={{}})), end='')\n"
        )
        child = run_python(code)
        assert child == here


def test_a_bad_profile_reads_the_same_through_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "default"\n[server]\nport = 80\nport = 81\n')
    dated = tmp_path / "dated.toml"
    dated.write_text("[server]\nport = 1979-05-27\n")
    deep = tmp_path / "deep.toml"
    deep.write_text("[server]\nport = " + "[" * 3000 + "]" * 3000 + "\n")
    code = (
        "import sys\nfrom gateway.settings import load_settings\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n        load_settings(p, env={})\n"
        "    except Exception as exc:\n        print(type(exc).__name__, exc)\n"
    )
    child = run_python(code, str(bad), str(dated), str(deep)).splitlines()
    monkeypatch.setattr(tomlfile, "_single_threaded", lambda: False)  # here: tomllib's
    here = []
    for p in (bad, dated, deep):
        with pytest.raises(ConfigError) as info:
            load_settings(str(p), env={})
        here.append(f"ConfigError {info.value}")
    assert child == here
    assert "Cannot overwrite a value (at line 4, column 10)" in child[0]
    assert "port: expected" in child[1] and "1979-05-27" in child[1]
    assert child[2].endswith("deep.toml: invalid TOML: arrays or inline tables nested too deeply")


def test_a_child_that_cannot_answer_leaves_the_parse_to_tomllib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no fork (a task limit): parse_in_child says so and parse() reads the text itself
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert tomlfile.parse_in_child("a = 1") is None
    monkeypatch.setattr(tomlfile, "_single_threaded", lambda: True)
    monkeypatch.delitem(sys.modules, "tomllib")
    assert tomlfile.parse("a = 1") == {"a": 1}
    with pytest.raises(tomlfile.TOMLError, match=r"Invalid value \(at end of document\)"):
        tomlfile.parse("a = ")


def test_the_child_float_bits_survive() -> None:
    # the comparison itself: -0.0 and 0.0 are equal as floats but not as TOML values
    assert struct.pack("<d", -0.0) != struct.pack("<d", 0.0)
    assert_alike(["x = -0.0", "x = 0.0", "x = -nan"])


def test_a_silent_child_is_killed_and_a_reaped_one_still_answers() -> None:
    # A child that does not answer within the timeout is killed and reaped, and the caller
    # parses here. With SIGCHLD ignored the kernel reaps the child itself (waitpid then fails
    # with ECHILD): the answer read from the pipe stands.
    code = (
        "import os, signal, sys, time, tomllib\n"
        "from gateway import tomlfile\n"
        "real = tomllib.loads\n"
        "tomllib.loads = lambda text: time.sleep(60)  # what the child will run\n"
        "tomlfile._CHILD_TIMEOUT_S = 0.5\n"
        "t0 = time.monotonic()\n"
        "silent = tomlfile.parse_in_child('a = 1')\n"
        "waited = time.monotonic() - t0\n"
        "try:\n    os.waitpid(-1, os.WNOHANG)\n    left = 'a child left'\n"
        "except ChildProcessError:\n    left = 'no child left'\n"
        "tomllib.loads = real\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        "reaped = tomlfile.parse_in_child('a = [1, 2.5]')\n"
        "print(silent, waited < 10, left, reaped)\n"
    )
    out = run_python(code).strip()
    assert out == "None True no child left (True, {'a': [1, 2.5]})"
