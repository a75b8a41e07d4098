# Autobahn|Testsuite fuzzingclient (cases 1-10) against the gateway's echo route, through
# scripts/autobahn.sh (which sets up its Python 2.7 virtualenv once). Strict: every case must end
# OK or INFORMATIONAL, with a clean close (no NON-STRICT, FAILED or UNCLEAN), but for the cases
# listed in KEPT_NON_STRICT with the reason each is kept.
# `make test` sets autobahntestsuite up first (`make autobahn-deps`: scripts/autobahn.sh
# --setup-only, which needs a CPython 2.7 and fails naming it). Without it this test FAILS,
# naming what is missing: it never skips.
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.peers import missing

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "autobahn.sh"
# All of 1-10, the 9.* performance cases (16 MiB messages) included: the whole run takes about
# 25 s on this machine, so nothing needs leaving out.
CASES = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*"
GOOD = {"OK", "INFORMATIONAL"}
# case -> why it stays NON-STRICT on purpose (none today: 3.2, 3.3, 4.1.3, 4.1.4, 4.2.3, 4.2.4
# and 5.15 were, until the messages before a bad frame were answered before the Close)
KEPT_NON_STRICT: dict[str, str] = {}


def _python27() -> str | None:
    for path in [
        os.environ.get("PY27", ""),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7"))),
        shutil.which("python2.7") or "",
    ]:
        if path and os.access(path, os.X_OK):
            return path
    return None


@pytest.mark.slow
def test_autobahn_fuzzingclient_cases_1_to_10(tmp_path: Path) -> None:
    if _python27() is None:
        missing(
            "CPython 2.7 (to run autobahntestsuite)",
            "install one (pyenv: ~/.pyenv/versions/2.7.18) or set PY27=/path/to/python2.7, "
            "then `make autobahn-deps`",
        )
    # not measured by coverage: tracing the server would slow the 16 MiB cases (9.*) for nothing
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env.update(AUTOBAHN_OUT=str(tmp_path), AUTOBAHN_CASES=CASES)
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    if proc.returncode == 2:
        missing(
            "autobahntestsuite",
            "scripts/autobahn.sh --setup-only failed "
            f"(`make autobahn-deps`):\n{proc.stderr[-2000:]}",
        )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr[-2000:]  # 3: no gateway
    report = json.loads((tmp_path / "index.json").read_text())
    assert "gateway" in report, (report, proc.stderr[-2000:])
    results = report["gateway"]
    assert len(results) == 301, sorted(results)  # every case of 1-10 ran
    bad = {
        case: (r["behavior"], r["behaviorClose"])
        for case, r in results.items()
        if not (
            r["behavior"] in GOOD or (r["behavior"] == "NON-STRICT" and case in KEPT_NON_STRICT)
        )
        or r["behaviorClose"] not in ("OK", "INFORMATIONAL")
    }
    assert not bad, bad
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
