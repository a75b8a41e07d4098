# Owns: choosing, once at import, the h11 implementation the gateway parses HTTP/1.1 with: the
# fork h11_mypyc (the `fast` extra; compiled with mypyc where a wheel exists) when it is
# installed, else h11.
# $GATEWAY_HTTP_PARSER (auto | h11 | h11_mypyc) forces one; forcing one that is not installed is
# a ConfigError naming what to install. Every other module reaches h11 through the `h11` name
# here (tests/test_imports.py checks), so events, states and exception classes always come from
# one module: h11_mypyc's classes are not h11's, and `except h11.X` must catch the selected one.
# Must not: parse anything, or hold state beyond the selected module and its label.
#
# The fork's differences from h11 0.16.0 and what they mean for us: docs/FAST_PARSER.md.
from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Final

from gateway.errors import ConfigError

__all__ = ["h11", "NAME", "VERSION", "COMPILED", "LABEL", "ENV_VAR", "select"]

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


def select(choice: str | None) -> ModuleType:
    """The parser module for a ``$GATEWAY_HTTP_PARSER`` value.

    Args:
        choice: "h11", "h11_mypyc", or "auto"/""/None: h11_mypyc when it is installed, else
            h11. Where pip found no compiled wheel (armv7) h11_mypyc is its pure-Python build:
            still a few percent fewer instructions per request than h11, the same reviewed
            source (docs/FAST_PARSER.md), so auto takes it too.

    Returns:
        The imported module.

    Raises:
        ConfigError: an unknown value, or a forced parser that cannot be imported.
    """
    choice = (choice or "auto").strip().lower()
    if choice not in CHOICES:
        raise ConfigError(
            f"${ENV_VAR}={choice!r}: expected one of {', '.join(CHOICES)} (default auto)"
        )
    if choice == "auto":
        try:
            return importlib.import_module(FAST)
        except ImportError:
            return importlib.import_module("h11")
    try:
        return importlib.import_module(choice)
    except ImportError as exc:
        install = (
            f"pip install 'gateway[fast]' (or {FAST}=={REVIEWED_FAST_VERSION})"
            if choice == FAST
            else "pip install h11"
        )
        raise ConfigError(
            f"${ENV_VAR}={choice}: {choice} cannot be imported ({exc}); {install}, "
            f"or set {ENV_VAR}=auto"
        ) from None


if TYPE_CHECKING:
    # Both have the same API; the type checker reads h11's annotations for either.
    import h11 as h11
else:
    h11 = select(os.environ.get(ENV_VAR))

NAME: Final[str] = h11.__name__
VERSION: Final[str] = str(getattr(h11, "__version__", "unknown"))
COMPILED: Final = is_compiled(h11)
# What the start-up log and /_gateway/stats say, e.g. "h11_mypyc 0.17.0 (compiled)".
LABEL: Final = f"{NAME} {VERSION} ({'compiled' if COMPILED else 'pure Python'})" + (
    f" [not the reviewed {REVIEWED_FAST_VERSION}]"
    if NAME == FAST and VERSION != REVIEWED_FAST_VERSION
    else ""
)
