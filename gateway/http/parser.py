# Owns: choosing, once at import, the h11 implementation the gateway parses HTTP/1.1 with: the
# fork h11_mypyc (the `fast` extra; compiled with mypyc where a wheel exists) when it is
# installed, else h11; and importing it, at the first call of load(): the gateway reads plain
# heads itself (gateway.http.connection) and hands out its own events (gateway.http.events), so
# a server whose clients send only plain heads never loads a parser (0.2 MiB with h11, 0.6 with
# h11_mypyc). The choice, its version and build (LABEL) are read from the installed files
# without importing them.
# $GATEWAY_HTTP_PARSER (auto | h11 | h11_mypyc) forces one; forcing one that is not installed is
# a ConfigError naming what to install. Every other module reaches h11 through load() here (or
# the `h11` name, which loads it: the client and the tests; tests/test_http_parser.py checks),
# so events, states and exception classes always come from one module: h11_mypyc's classes are
# not h11's, and `except h11.X` must catch the selected one.
# Must not: parse anything, or hold state beyond the selected module and its label.
#
# The fork's differences from h11 0.16.0 and what they mean for us: docs/FAST_PARSER.md.
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from gateway.errors import ConfigError

__all__ = [
    "h11",
    "load",
    "NAME",
    "VERSION",
    "COMPILED",
    "LABEL",
    "ENV_VAR",
    "select",
    "choose",
    "ParserUnavailable",
]

ENV_VAR: Final = "GATEWAY_HTTP_PARSER"
CHOICES: Final = ("auto", "h11", "h11_mypyc")
# The fork and version the `fast` extra pins (pyproject.toml); docs/FAST_PARSER.md reviewed
# this one against h11 0.16.0. Another version is used when forced, and says so in LABEL.
FAST: Final = "h11_mypyc"
REVIEWED_FAST_VERSION: Final = "0.17.0"


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` (h11 or h11_mypyc) runs as compiled code: its connection module is a
    C extension. h11_mypyc also ships a pure-Python wheel (armv7, PyPy, new interpreters),
    which is the same source run by the interpreter."""
    conn = sys.modules.get(module.__name__ + "._connection")
    path = getattr(conn, "__file__", None) or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


class ParserUnavailable(ConfigError):
    """The chosen parser cannot be imported: not installed, or a broken install. A ConfigError
    (`gateway check` and the start exit 78 on it); the HTTP session answers it with a 500 when
    the first head that needs the parser finds it broken."""


def _package_dir(name: str) -> str | None:
    """Where the package ``name`` is installed, found as the import system would find it (no
    import), or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent that fails, a module without a spec
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def choose(choice: str | None) -> str:
    """The name of the parser module for a ``$GATEWAY_HTTP_PARSER`` value, without importing it.

    Args:
        choice: "h11", "h11_mypyc", or "auto"/""/None: h11_mypyc when it is installed, else
            h11. Where pip found no compiled wheel (armv7) h11_mypyc is its pure-Python build:
            still a few percent fewer instructions per request than h11, the same reviewed
            source (docs/FAST_PARSER.md), so auto takes it too.

    Raises:
        ConfigError: an unknown value.
        ParserUnavailable: a forced parser that is not installed.
    """
    choice = (choice or "auto").strip().lower()
    if choice not in CHOICES:
        raise ConfigError(
            f"${ENV_VAR}={choice!r}: expected one of {', '.join(CHOICES)} (default auto)"
        )
    if choice == "auto":
        return FAST if _package_dir(FAST) is not None else "h11"
    if _package_dir(choice) is None:
        raise _missing(choice, "not installed")
    return choice


def _missing(choice: str, why: str) -> ParserUnavailable:
    install = (
        f"pip install 'gateway[fast]' (or {FAST}=={REVIEWED_FAST_VERSION})"
        if choice == FAST
        else "pip install h11"
    )
    return ParserUnavailable(
        f"${ENV_VAR}={choice}: {choice} cannot be imported ({why}); {install}, "
        f"or set {ENV_VAR}=auto"
    )


def select(choice: str | None) -> ModuleType:
    """The parser module for a ``$GATEWAY_HTTP_PARSER`` value (see choose), imported.

    Raises:
        ConfigError: an unknown value.
        ParserUnavailable: the chosen parser is not installed or cannot be imported.
    """
    name = choose(choice)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _missing(name, str(exc)) from None


def describe(name: str) -> tuple[str, bool]:
    """The version and build (compiled or not) of the installed parser ``name``, read from its
    files without importing it: the version from its ``_version.py`` (what ``__version__``
    holds), compiled when its connection module is a C extension, which the import system
    takes before the ``.py`` beside it (is_compiled says the same of the imported module)."""
    where = _package_dir(name)
    if where is None:
        return "unknown", False
    compiled = any(
        os.path.isfile(os.path.join(where, "_connection" + suffix))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )
    try:
        with open(os.path.join(where, "_version.py"), encoding="utf-8") as f:
            found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", f.read(), re.M)
    except OSError:
        found = None
    return (found.group(1) if found else "unknown"), compiled


_CHOICE: Final = os.environ.get(ENV_VAR)
_CHOICE_FORCED: Final = (_CHOICE or "auto").strip().lower() != "auto"
NAME: Final[str] = choose(_CHOICE)
_FOUND = describe(NAME)
VERSION: Final[str] = _FOUND[0]
COMPILED: Final[bool] = _FOUND[1]
# What the start-up log and /_gateway/stats say, e.g. "h11_mypyc 0.17.0 (compiled)".
LABEL: Final = f"{NAME} {VERSION} ({'compiled' if COMPILED else 'pure Python'})" + (
    f" [not the reviewed {REVIEWED_FAST_VERSION}]"
    if NAME == FAST and VERSION != REVIEWED_FAST_VERSION
    else ""
)

_module: ModuleType | None = None


def load() -> Any:
    """The selected parser module (NAME), imported at the first call. Where the choice was
    auto and the fork's files are there but do not import (a broken install), h11, as auto
    does at the import itself, with a warning: LABEL still names the fork.

    Raises:
        ParserUnavailable: a forced parser cannot be imported (a broken install: `gateway
            check`, the service's ExecStartPre, imports it and says so before the start).
    """
    global _module
    module = _module
    if module is None:
        try:
            module = select(NAME)
        except ParserUnavailable as exc:
            if _CHOICE_FORCED or NAME == "h11":
                raise
            logging.getLogger("gateway").warning(
                "HTTP parser %s cannot be imported: h11 serves instead (%s)", NAME, exc
            )
            module = select("h11")
        _module = module
        # The server gave start-up's freed heap pages back to the OS once it was ready; this
        # import comes later and frees its .pyc buffers too (about 0.1 MiB of RSS that would
        # stay mapped for the process's life): give them back as well (0.2 ms, once).
        from gateway.body.budget import release_free_memory

        release_free_memory()
    return module


if TYPE_CHECKING:
    # Both have the same API; the type checker reads h11's annotations for either.
    import h11 as h11
else:

    def __getattr__(name: str) -> Any:
        # `h11` here is the selected module, imported on first use (the client, the tests)
        if name == "h11":
            return load()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
