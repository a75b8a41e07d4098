# The real peers the suite runs against (Node and the stock clients, systemd's tools, nspawn,
# QEMU, CPython 2.7 for Autobahn): `make test` installs them (scripts/system-deps.sh, npm ci,
# scripts/autobahn.sh --setup-only), so a missing one is a broken set-up and its tests FAIL,
# naming what is missing and what installs it. They never skip: a skip hides a peer that was
# never exercised behind a green run. The one allowed skip is a peer that cannot exist on the
# platform (an amd64 VM on another architecture), and it shows in the -ra summary.
from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["missing", "require_root", "require_tool"]


def missing(what: str, how: str) -> NoReturn:
    """Fail the current test: ``what`` is missing; ``how`` says what installs it."""
    pytest.fail(f"{what} is missing: {how}", pytrace=False)


def require_tool(name: str, package: str) -> str:
    """The path of the program ``name``, or fail naming its Debian ``package``."""
    path = shutil.which(name)
    if path is None:
        missing(
            name,
            f"Debian package {package} (`make test` installs it: scripts/system-deps.sh, as root)",
        )
    return path


def require_root(why: str) -> None:
    """Fail unless running as root (`make test` is run as root; README)."""
    if os.geteuid() != 0:
        missing("root", f"{why}; run `make test` as root")
