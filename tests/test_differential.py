# The differential harness as tests: every HTTP and socket case of tests/differential/cases.py
# run against the real Express 5 / Sails 1.5 (tests/node) and against the gateway; a case passes
# when both answer alike or differ exactly as a row of docs/FIDELITY.md says. Also checks the
# harness itself (cases well formed, the table and its twin in step, the classifier). The servers
# start once for the module. Missing Node or npm packages FAIL these tests, never skip them.
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.differential import deliberate
from tests.differential.cases import HTTP_CASES, SOCKET_CASES, SOCKET_SETUPS
from tests.differential.harness import (
    ABSENT,
    NO_BODY,
    HarnessError,
    Observation,
    Outcome,
    Results,
    canonical_cookie,
    classify,
    compare,
    run,
)

FIDELITY = Path(__file__).resolve().parent.parent / "docs" / "FIDELITY.md"
SOCKET_KEYS = [f"{c.id}@{setup}" for setup in SOCKET_SETUPS for c in SOCKET_CASES]


@pytest.fixture(scope="module")
def results() -> Results | str:
    """One run of the whole harness for the module (or why it could not run)."""
    try:
        return run()
    except HarnessError as exc:
        return str(exc)


def outcome(results: Results | str, kind: str, case_id: str) -> Outcome:
    if isinstance(results, str):
        pytest.fail(f"the differential harness cannot run: {results}")
    [found] = [o for o in results.outcomes if o.kind == kind and o.case_id == case_id]
    return found


# -- the cases against the real servers ----------------------------------------------------------


@pytest.mark.parametrize("case_id", [c.id for c in HTTP_CASES])
@pytest.mark.node
@pytest.mark.slow
def test_http_case(results: Results | str, case_id: str) -> None:
    o = outcome(results, "http", case_id)
    if o.status == "differs":
        pytest.fail(o.describe(), pytrace=False)


@pytest.mark.parametrize("case_key", SOCKET_KEYS)
@pytest.mark.node
@pytest.mark.slow
def test_socket_case(results: Results | str, case_key: str) -> None:
    o = outcome(results, "socket", case_key)
    if o.status == "differs":
        pytest.fail(o.describe(), pytrace=False)


@pytest.mark.node
@pytest.mark.slow
def test_every_table_row_is_used(results: Results | str) -> None:
    """A row no case reaches is a promise nothing checks."""
    if isinstance(results, str):
        pytest.fail(f"the differential harness cannot run: {results}")
    used = {row for o in results.outcomes for row in o.deliberate}
    assert [r.id for r in deliberate.DELIBERATE if r.id not in used] == []


@pytest.mark.node
@pytest.mark.slow
def test_socket_setups_agree_on_the_reference(results: Results | str) -> None:
    """The three stock client set-ups get the same answers from Sails (else a case's
    difference could come from the client, not from the server)."""
    if isinstance(results, str):
        pytest.fail(f"the differential harness cannot run: {results}")
    seen: dict[str, Observation] = {}
    for o in results.select("socket"):
        base = o.case_id.split("@")[0]
        first = seen.setdefault(base, o.reference)
        assert compare(first, o.reference) == {}, o.case_id


# -- the harness itself (no servers) -------------------------------------------------------------


def test_cases_are_well_formed() -> None:
    assert len(HTTP_CASES) >= 150
    assert len(SOCKET_CASES) >= 60
    ids = [c.id for c in HTTP_CASES] + [c.id for c in SOCKET_CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert {c.app for c in HTTP_CASES} == {"express", "sails"}
    assert all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)


def _table_in_doc() -> dict[str, set[str]]:
    text = FIDELITY.read_text()
    section = text.split("## Deliberate differences", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"D\d\d", cells[0]):
            rows[cells[0]] = set(re.findall(r"`([^`]+)`", cells[1]))
    return rows


def test_table_and_its_twin_list_the_same_rows_and_cases() -> None:
    doc = _table_in_doc()
    twin = {row.id: set(row.cases) for row in deliberate.DELIBERATE}
    assert doc == twin


def test_listed_cases_exist() -> None:
    keys = {f"http:{c.id}" for c in HTTP_CASES} | {f"socket:{k}" for k in SOCKET_KEYS}
    import fnmatch

    for row in deliberate.DELIBERATE:
        for pattern in row.cases:
            assert fnmatch.filter(keys, pattern), f"{row.id}: {pattern} matches no case"


def _obs(
    status: int = 200, headers: dict[str, Any] | None = None, body: Any = NO_BODY
) -> Observation:
    return Observation(status, headers or {}, body)


def _classified(ref: Observation, gw: Observation, case_id: str = "url-basic") -> Outcome:
    return classify(Outcome("http", case_id, "express", "", ref, gw, compare(ref, gw)))


def test_classifier_equal_deliberate_and_differs() -> None:
    same = _classified(_obs(body={"a": 1}), _obs(body={"a": 1}))
    assert same.status == "equal" and same.diffs == {}
    powered = _classified(_obs(headers={"x-powered-by": "Express"}), _obs())
    assert powered.status == "deliberate" and powered.deliberate == ["D02"]
    extra = _classified(
        _obs(headers={"x-powered-by": "Express"}, body={"a": 1}), _obs(body={"a": 2})
    )
    assert extra.status == "differs" and extra.unexplained == ["body.a"]
    # a row listing a case whose listed difference is gone makes the case fail
    gone = _classified(_obs(), _obs(), case_id="strict-long-header")
    assert gone.status == "differs" and gone.problems
    # a listed difference that differs otherwise than listed fails too
    wrong = _classified(
        _obs(
            200,
            {"content-type": "application/json; charset=utf-8"},
            {"method": "GET", "headers": {}},
        ),
        _obs(413, {"content-type": "text/plain; charset=utf-8"}, "too large"),
        case_id="strict-long-header",
    )
    assert wrong.status == "differs" and any("status" in p for p in wrong.problems)


def test_compare_names_the_field_and_ignores_what_varies() -> None:
    ref = _obs(headers={"content-type": "a"}, body={"get": {"Host": "h"}, "x": "<error E: m>"})
    gw = _obs(headers={"content-type": "a"}, body={"get": {"Host": "i"}, "x": "<error F: n>"})
    assert compare(ref, gw) == {"body.get.Host": ("h", "i")}  # both raised: equal
    assert compare(_obs(body={"k": 1}), _obs(body={}))["body.k"] == (1, ABSENT)
    assert (
        canonical_cookie("a=1; Path=/; HttpOnly; Max-Age=5") == "a=1; HttpOnly; Max-Age=5; Path=/"
    )
    cookie = deliberate.cookie_defaults(["a=1; HttpOnly; Path=/; SameSite=Lax"], ["a=1; Path=/"])
    assert cookie is None
    assert deliberate.cookie_defaults(["a=2; HttpOnly; Path=/; SameSite=Lax"], ["a=1; Path=/"])
