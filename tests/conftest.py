from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import make_settings
from tests.peers import missing, require_tool


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    return make_settings()


NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def node() -> str:
    """The node binary for the stock-client tests; fails (never skips) without node or the
    npm packages of tests/node, which `make test` installs."""
    path = require_tool("node", "nodejs")
    if not (NODE_DIR / "node_modules").is_dir():
        missing("tests/node/node_modules", "`make node-deps` (npm ci in tests/node)")
    return path


@pytest.fixture
def creds(tmp_path: Path) -> str:
    """A 0600 credentials file listing tests.test_modes.TOKEN as "admin", written from the
    literal SHA-256 (not from hash_token, the code under test). Modules may define their own."""
    from tests.test_modes import TOKEN_SHA256

    path = tmp_path / "credentials"
    path.write_text(f"sha256:{TOKEN_SHA256} admin\n")
    os.chmod(path, 0o600)
    return str(path)
