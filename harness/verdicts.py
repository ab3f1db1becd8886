"""The one place where checker verdicts become a run's verdict and exit code.

A run is judged by several checkers composed the way Jepsen composes them: linearizability
of what clients saw, and the cluster's own health (replicas that agree, nodes that recover,
nodes that do not fail by themselves). Each failure has its own exit code, so a script can
tell a service that lied to its clients from one that lost a replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 3
EXIT_DIVERGED, EXIT_NODE_FAILED, EXIT_NOT_RECOVERED = 4, 5, 6


@dataclass(frozen=True)
class Verdict:
    """One verdict a run can get: its exit code, its word (summaries, CSS classes, JUnit),
    what it says, and the composed checker whose failure gives it (None: no checker's)."""

    code: int
    word: str
    description: str
    check: str | None = None


# Most serious first: the merge rule. Within a run the first failed checker in this order
# decides (``compose``); across many runs (a nightly) the first verdict any run got (``worst``).
TABLE = (
    Verdict(EXIT_INVALID, "invalid", "not linearizable", "linearizable"),
    Verdict(EXIT_DIVERGED, "diverged", "replicas diverged", "convergence"),
    Verdict(EXIT_NODE_FAILED, "node-failed", "a node failed by itself", "health"),
    Verdict(EXIT_NOT_RECOVERED, "not-recovered", "a node did not recover", "recovery"),
    Verdict(EXIT_ERROR, "error", "error"),
    Verdict(EXIT_UNKNOWN, "unknown", "unknown"),
    Verdict(EXIT_VALID, "valid", "valid"),
)
BY_CODE = {v.code: v for v in TABLE}
# The composed checkers, most serious first: the first that fails decides the exit code.
CHECKS: dict[str, tuple[int, str]] = {v.check: (v.code, v.description) for v in TABLE if v.check}
VERDICTS = {code: BY_CODE[code].word for code in sorted(BY_CODE)}  # in exit-code order
SEVERITY = tuple(v.code for v in TABLE if v.code != EXIT_VALID)


def linearizability_code(valid: Any) -> int:
    """``harness check``'s exit code for a checker verdict (True, False, "unknown")."""
    return {True: EXIT_VALID, False: EXIT_INVALID, "unknown": EXIT_UNKNOWN}.get(valid, EXIT_ERROR)


def compose(checks: dict[str, dict[str, Any]], error: str | None = None) -> tuple[bool | str | None, int]:
    """The run's verdict and exit code from each checker's ``{"valid": ...}``.

    Any failed checker makes the run invalid (``False``) with that checker's code; otherwise an
    unknown linearizability verdict is unknown, an unchecked history (None) or a harness error
    an error: a valid prefix of a broken run proves little.
    """
    for name, (code, _) in CHECKS.items():
        if (checks.get(name) or {}).get("valid") is False:
            return False, code
    linearizable = (checks.get("linearizable") or {}).get("valid")
    if linearizable is None:
        return None, EXIT_ERROR
    if linearizable == "unknown":
        return "unknown", EXIT_UNKNOWN
    return True, EXIT_ERROR if error is not None else EXIT_VALID


def verdict(code: int | None) -> str:
    """A word for an exit code, for summaries and CSS classes."""
    return VERDICTS.get(code, "error") if code is not None else "error"


def run_word(valid: Any, code: int | None) -> str:
    """The word for a stored run from its ``valid`` and exit code; a run without a verdict
    keeps its state's word ("unknown", "incomplete", "failed")."""
    if valid is True:
        return verdict(EXIT_VALID)
    if valid is False:
        return verdict(code) if code not in (None, EXIT_INVALID) else verdict(EXIT_INVALID)
    return str(valid)


def describe(code: int) -> str:
    return BY_CODE[code].description if code in BY_CODE else BY_CODE[EXIT_ERROR].description


def worst(codes: list[int]) -> int:
    """The exit code of a set of runs (a nightly): the most serious news, 0 when all valid."""
    for code in SEVERITY:
        if code in codes:
            return code
    if any(code != EXIT_VALID for code in codes):
        return EXIT_ERROR
    return EXIT_VALID
