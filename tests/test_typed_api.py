# The public API is typed so that a user's `mypy --strict` checks an app: handlers, middleware,
# error handlers and WebSocket handlers are Protocols (gateway.app.handlers), and registering a
# function of the wrong shape is an error at the registration. Runs the real mypy on two small
# apps in tests/fixtures/typed: one correct (no error), one with four mistakes (each reported).
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "typed"
ROOT = Path(__file__).resolve().parent.parent


def run_mypy(tmp_path: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            *files,
        ],
        cwd=FIXTURES,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_typed_app_passes_mypy_strict_and_wrong_handlers_do_not(tmp_path: Path) -> None:
    result = run_mypy(tmp_path, "good_app.py", "bad_app.py")
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert not [e for e in errors if e.startswith("good_app.py")], result.stdout
    lines = sorted(int(m.group(1)) for e in errors if (m := re.match(r"bad_app\.py:(\d+):", e)))
    # a handler without res (decorator), a sync function, a parameter of the wrong type, an int
    assert lines == [8, 17, 24, 25], result.stdout + result.stderr
    assert result.returncode == 1
