# The parser selection (gateway.http.parser): which h11 runs, how $GATEWAY_HTTP_PARSER forces one,
# the start-up error for a forced parser that is missing, and that every part of the HTTP layer
# (head parser, chunked reader, client) hands out the selected module's events. `make test` runs
# the HTTP test set twice, once per parser; the first test here is what proves that the second
# run really used the other parser.
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import gateway.http.parser as parser
from gateway.errors import ConfigError
from gateway.http.chunked import ChunkedReader
from gateway.http.connection import HTTPLimits, Request, ServerConnection
from gateway.http.events import Data, EndOfMessage
from tests.peers import missing
from tests.test_imports import MODULES, imports_of

ROOT = Path(__file__).resolve().parent.parent


def test_the_parser_that_runs_is_the_one_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = os.environ.get(parser.ENV_VAR, "auto").strip().lower() or "auto"
    installed = importlib.util.find_spec("h11_mypyc") is not None
    expected = asked if asked != "auto" else ("h11_mypyc" if installed else "h11")
    assert parser.NAME == expected
    assert parser.h11.__name__ == expected
    # a head of other than the plain shape is read by the module load() gives (Transfer-Encoding:
    # h11 reads it), and its body events are the gateway's own, whichever read the head
    loaded = []
    load = parser.load
    monkeypatch.setattr(parser, "load", lambda: loaded.append(load()) or loaded[-1])
    conn = ServerConnection(HTTPLimits())
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n")
    head, data = conn.next_event(), conn.next_event()
    assert type(head) is Request
    assert type(data) is Data and data.data == b"x"
    assert loaded and {m.__name__ for m in loaded} == {expected}
    assert type(ChunkedReader(100, 100, 10, b"0\r\n\r\n").next_event()) is EndOfMessage
    print(f"HTTP parser under test: {parser.LABEL}")


def test_the_client_uses_the_same_parser() -> None:
    from gateway.client import http, pool, response

    assert http.h11 is pool.h11 is response.h11 is parser.h11


def test_only_the_selection_point_imports_h11() -> None:
    # a module importing h11 itself would mix two modules' classes under h11_mypyc: its
    # `except h11.RemoteProtocolError` would not catch the parser's errors
    direct = {
        (name, imported)
        for name in MODULES
        if name != "gateway.http.parser"
        for imported in imports_of(name)
        if imported.partition(".")[0] in ("h11", "h11_mypyc")
    }
    assert direct == set()


def test_label_names_module_version_and_build() -> None:
    assert parser.LABEL.startswith(f"{parser.NAME} {parser.VERSION} (")
    assert ("(compiled)" in parser.LABEL) == parser.COMPILED
    assert parser.is_compiled(importlib.import_module("h11")) is False  # h11 is pure Python


@pytest.mark.parametrize("value", ["h11", " H11 "])
def test_forcing_h11(value: str) -> None:
    assert parser.select(value).__name__ == "h11"


def test_an_unknown_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"GATEWAY_HTTP_PARSER='fast'.*auto, h11, h11_mypyc"):
        parser.select("fast")


def test_forcing_a_missing_parser_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h11_mypyc", None)  # import h11_mypyc now fails
    with pytest.raises(ConfigError) as info:
        parser.select("h11_mypyc")
    assert "pip install 'gateway[fast]'" in str(info.value)
    assert parser.select("auto").__name__ == "h11"  # auto takes h11 when the fork is missing
    assert parser.select(None).__name__ == "h11"


def test_auto_takes_the_fork_when_it_is_installed() -> None:
    if importlib.util.find_spec("h11_mypyc") is None:
        missing("h11_mypyc (the `fast` extra)", "pip install -e '.[dev]' (the venv of make test)")
    assert parser.select("auto").__name__ == "h11_mypyc"
    assert parser.select("").__name__ == "h11_mypyc"


@pytest.mark.parametrize(
    "command", [["check", "--profile", "test"], ["serve", "--profile", "test", "--port", "0"]]
)
def test_the_cli_refuses_a_forced_parser_that_is_missing(command: list[str]) -> None:
    code = (
        "import sys; sys.modules['h11_mypyc'] = None\n"
        "from gateway.cli import main\n"
        f"raise SystemExit(main({command!r}))\n"
    )
    env = {**os.environ, parser.ENV_VAR: "h11_mypyc", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=60, text=True
    )
    assert proc.returncode == 78, proc.stderr
    assert "GATEWAY_HTTP_PARSER=h11_mypyc: h11_mypyc cannot be imported" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_says_which_parser(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    assert main(["check", "--profile", "test"]) == 0
    assert f"HTTP parser {parser.LABEL}" in capsys.readouterr().out


def test_the_fork_is_pinned_exactly_to_the_reviewed_version() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pin = f"h11_mypyc=={parser.REVIEWED_FAST_VERSION}"
    assert project["optional-dependencies"]["fast"] == [pin]
    assert pin in project["optional-dependencies"]["dev"]  # make test runs both parsers
    assert "h11_mypyc" in (ROOT / "docs" / "FAST_PARSER.md").read_text()


def test_forcing_a_missing_parser_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "h11_mypyc", None)
    monkeypatch.setitem(sys.modules, "h11", None)  # only inside this test: both fail to import
    messages = {}
    for choice in ("h11_mypyc", "h11"):
        with pytest.raises(ConfigError) as info:
            parser.select(choice)
        messages[choice] = str(info.value)
    assert re.fullmatch(
        r"\$GATEWAY_HTTP_PARSER=h11_mypyc: h11_mypyc cannot be imported \(.+\); "
        r"pip install 'gateway\[fast\]' \(or h11_mypyc==0\.17\.0\), "
        r"or set GATEWAY_HTTP_PARSER=auto",
        messages["h11_mypyc"],
    ), messages
    assert re.fullmatch(
        r"\$GATEWAY_HTTP_PARSER=h11: h11 cannot be imported \(.+\); pip install h11, "
        r"or set GATEWAY_HTTP_PARSER=auto",
        messages["h11"],
    ), messages


def _fake_parser(monkeypatch: pytest.MonkeyPatch, name: str, file: str | None) -> ModuleType:
    module = ModuleType(name)
    if file != "no _connection":
        connection = ModuleType(name + "._connection")
        connection.__file__ = file
        monkeypatch.setitem(sys.modules, name + "._connection", connection)
    return module


@pytest.mark.parametrize(
    ("file", "compiled"),
    [
        (f"/site/fake/_connection{importlib.machinery.EXTENSION_SUFFIXES[0]}", True),
        ("/site/fake/_connection.abi3.so", True),
        ("/site/fake/_connection.py", False),  # the fork's pure-Python wheel (armv7, PyPy)
        (None, False),  # a module without a file
        ("no _connection", False),  # not imported at all
    ],
)
def test_compiled_means_the_connection_module_is_an_extension(
    monkeypatch: pytest.MonkeyPatch, file: str | None, compiled: bool
) -> None:
    assert parser.is_compiled(_fake_parser(monkeypatch, "fakeparser", file)) is compiled


_INSTALLED = [n for n in ("h11", "h11_mypyc") if importlib.util.find_spec(n) is not None]


def _fresh(code: str, choice: str) -> subprocess.CompletedProcess[str]:
    """``code`` run in a fresh interpreter with ``choice`` as $GATEWAY_HTTP_PARSER, without
    coverage's start-up imports (it reads pyproject.toml with tomllib); it must exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env.update({parser.ENV_VAR: choice, "PYTHONPATH": str(ROOT)})
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=60, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc


# A fresh interpreter's view of the HTTP layer alone (the connection, its readers, the parser
# selection), without this process's h11 and without coverage's start-up imports.
_LAZY = """
import sys
import gateway.body.budget as budget
from gateway.http import events, parser
from gateway.http.connection import HTTPLimits, ServerConnection

trims = []
budget.release_free_memory = lambda: trims.append(1) or True

def loaded():
    return sorted({"h11", "h11_mypyc"} & set(sys.modules))

def kinds(raw):
    conn, out = ServerConnection(HTTPLimits()), []
    conn.receive_data(raw)
    for _ in range(50):
        ev = conn.next_event()
        out.append(getattr(ev, "__name__", type(ev).__name__))
        if ev is events.NEED_DATA:
            conn.receive_data(b"")
        elif ev is events.PAUSED or type(ev) is events.EndOfMessage:
            conn.start_next_cycle()  # as the server does after a keep-alive request
        elif type(ev) is events.ConnectionClosed:
            return out
    return out

label = parser.LABEL
print(loaded())
print(kinds(b""))  # a connection opened and closed with nothing sent
print(kinds(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
            b"POST /e HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: 3\\r\\n\\r\\nabc"
            b"GET /c HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n"))
ws = ServerConnection(HTTPLimits())  # a WebSocket handshake, a frame right behind it
ws.receive_data(b"GET /ws HTTP/1.1\\r\\nHost: a\\r\\nUpgrade: websocket\\r\\n"
                b"Connection: Upgrade\\r\\n\\r\\n\\x81\\x80")
print([getattr(e, "__name__", type(e).__name__) for e in (ws.next_event(), ws.next_event(),
       ws.next_event())], ws.trailing_data)
print(loaded())
print(kinds(b"POST / HTTP/1.1\\r\\nHost: a\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
            b"1\\r\\nx\\r\\n0\\r\\n\\r\\n"))
print(loaded())
m = sys.modules[parser.NAME]
build = "compiled" if parser.is_compiled(m) else "pure Python"
print(label.startswith(f"{m.__name__} {m.__version__} ({build})"), parser.h11 is m)
print(kinds(b"POST / HTTP/1.1\\r\\nHost: a\\r\\nExpect: 100-continue\\r\\n"
            b"Content-Length: 0\\r\\n\\r\\n"))
print("trims", len(trims))  # what the import freed, given back once: at the first load only
"""


@pytest.mark.parametrize("choice", _INSTALLED)
def test_the_parser_loads_at_the_first_head_the_gateway_does_not_read_itself(choice: str) -> None:
    # plain heads (and their Content-Length bodies, and Connection: close), a client leaving
    # between requests, a connection closed with nothing sent, a WebSocket handshake never
    # import a parser; a chunked request's head imports the chosen one, and only it; the label the
    # start-up log printed before (read from the installed files) is the imported module's
    proc = _fresh(_LAZY, choice)
    head = "Request"
    assert proc.stdout.splitlines() == [
        "[]",
        "['ConnectionClosed']",
        str([head, "EndOfMessage", head, "Data", "EndOfMessage", head, "EndOfMessage",
             "NEED_DATA", "ConnectionClosed"]),
        "['Request', 'EndOfMessage', 'PAUSED'] (b'\\x81\\x80', False)",
        "[]",
        str([head, "Data", "EndOfMessage", "NEED_DATA", "ConnectionClosed"]),
        str([choice]),
        "True True",
        str([head, "EndOfMessage", "NEED_DATA", "ConnectionClosed"]),
        "trims 1",
    ]  # fmt: skip


def test_describe_reads_what_the_import_gives() -> None:
    for name in _INSTALLED:
        module = importlib.import_module(name)
        assert parser.describe(name) == (module.__version__, parser.is_compiled(module))
    assert parser.describe("no_such_parser_module") == ("unknown", False)


# h11_mypyc's files found (its spec points at a directory holding a parser's files: h11's), and
# its import failing: a broken install, as a corrupt compiled module would be.
_BROKEN = """
import importlib.abc, importlib.machinery, logging, os, sys
import h11 as real

class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "h11_mypyc":
            spec = importlib.machinery.ModuleSpec(name, self, is_package=True)
            spec.submodule_search_locations.append(os.path.dirname(real.__file__))
            return spec
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        raise ImportError("a broken build")

sys.meta_path.insert(0, Broken())
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from gateway.errors import ConfigError
from gateway.http import parser
from gateway.http.connection import HTTPLimits, ServerConnection

print(parser.NAME)
conn = ServerConnection(HTTPLimits())
conn.receive_data(b"POST / HTTP/1.1\\r\\nHost: a\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
                  b"0\\r\\n\\r\\n")
try:
    print(type(conn.next_event()).__name__, parser.load().__name__)
except ConfigError as exc:
    print("ConfigError", exc)
"""


@pytest.mark.parametrize("choice", ["auto", "h11_mypyc"])
def test_a_parser_that_breaks_after_start_falls_back_or_says_so(choice: str) -> None:
    # the choice is made from the installed files at start and the import comes later: auto
    # serves with h11 and warns, a forced one is a ParserUnavailable, a ConfigError (the
    # session answers 500; `gateway check`, the service's ExecStartPre, imports it first)
    proc = _fresh(_BROKEN, choice)
    out = proc.stdout.splitlines()
    assert out[0] == "h11_mypyc"
    if choice == "auto":
        assert out[1:] == ["Request h11"]
        assert "WARNING HTTP parser h11_mypyc cannot be imported: h11 serves instead" in proc.stderr
    else:
        assert out[1:] == [
            "ConfigError $GATEWAY_HTTP_PARSER=h11_mypyc: h11_mypyc cannot be imported (a broken "
            "build); pip install 'gateway[fast]' (or h11_mypyc==0.17.0), or set "
            "GATEWAY_HTTP_PARSER=auto"
        ]
