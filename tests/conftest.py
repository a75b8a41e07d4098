from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import make_settings


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    return make_settings()


NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def node() -> str:
    """The node binary for the stock-client tests (skipped without node or its npm packages)."""
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.skip("tests/node/node_modules is missing: run `npm ci` in tests/node")
    return path
