# `python -m tests.differential.report [-v]`: runs the differential harness once and prints the
# summary (cases, equal, deliberate, differing, for HTTP and for sockets), the differences no
# table row explains grouped by field (what to fix), and each differing case's diff (-v also
# prints the deliberate ones). Exit status 1 while any case differs, 2 when it cannot run.
from __future__ import annotations

import logging
import sys
from collections import Counter, defaultdict

from tests.differential.harness import HarnessError, Outcome, Results, run


def counts(results: Results) -> list[str]:
    """One line per mode: cases, equal, deliberate, differing."""
    lines = []
    for kind in ("http", "socket"):
        outcomes = results.select(kind)
        n = Counter(o.status for o in outcomes)
        lines.append(
            f"{kind:>6}: {len(outcomes)} cases, {n['equal']} equal, "
            f"{n['deliberate']} deliberate, {n['differs']} differ"
        )
    return lines


def by_field(outcomes: list[Outcome], limit: int = 12) -> list[str]:
    """The unexplained difference keys, most frequent first, with the cases showing each."""
    cases: dict[str, list[str]] = defaultdict(list)
    for o in outcomes:
        for name in o.unexplained:
            cases[name].append(o.case_id)
        for row in dict.fromkeys(problem.split(":")[0] for problem in o.problems):
            cases[f"(table row {row} does not hold)"].append(o.case_id)
    lines = []
    for name, ids in sorted(cases.items(), key=lambda item: (-len(item[1]), item[0])):
        merged = _merge_setups(ids)
        shown = ", ".join(merged[:limit]) + (
            f", ... (+{len(merged) - limit})" if len(merged) > limit else ""
        )
        lines.append(f"  {name} [{len(ids)}]: {shown}")
    return lines


def _merge_setups(ids: list[str]) -> list[str]:
    """ "sk-get@dist", "sk-get@sdk2" -> "sk-get@dist,sdk2" (HTTP ids pass through)."""
    setups: dict[str, list[str]] = defaultdict(list)
    for case_id in ids:
        base, _, setup = case_id.partition("@")
        setups[base].append(setup)
    return [base + ("@" + ",".join(s) if any(s) else "") for base, s in setups.items()]


def summary(results: Results, verbose: bool = False) -> str:
    """The whole report, as text."""
    lines = counts(results)
    lines.append(f"run time: {results.seconds:.1f} s")
    if results.notes():
        lines.append("retried:")
        lines.extend(f"  - {note}" for note in results.notes())
    if results.missing_api:
        lines.append("gateway API the gateway apps could not use:")
        lines.extend(f"  - {name}" for name in results.missing_api)
    for kind in ("http", "socket"):
        differing = results.select(kind, "differs")
        if not differing:
            continue
        lines += ["", f"== {kind}: differences no table row explains, by field"]
        lines += by_field(differing)
        lines += ["", f"== {kind}: {len(differing)} differing cases"]
        lines += [o.describe() for o in differing]
    if verbose:
        lines += ["", "== deliberate cases"]
        lines += [o.describe() for o in results.outcomes if o.status == "deliberate"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    if not verbose:  # handler errors are part of some cases: their tracebacks are noise here
        logging.getLogger("gateway").setLevel(logging.CRITICAL)
    try:
        results = run()
    except HarnessError as exc:
        print(f"cannot run the differential harness: {exc}", file=sys.stderr)
        return 2
    print(summary(results, verbose))
    return 1 if any(o.status == "differs" for o in results.outcomes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
