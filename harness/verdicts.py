"""The one place where checker verdicts become a run's verdict and exit code.

A run is judged by several checkers composed the way Jepsen composes them: linearizability
of what clients saw, and the cluster's own health (replicas that agree, nodes that recover,
nodes that do not fail by themselves). Each failure has its own exit code, so a script can
tell a service that lied to its clients from one that lost a replica.
"""

from __future__ import annotations

from typing import Any

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 3
EXIT_DIVERGED, EXIT_NODE_FAILED, EXIT_NOT_RECOVERED = 4, 5, 6

# The composed checkers, most serious first: the first that fails decides the exit code.
CHECKS: dict[str, tuple[int, str]] = {
    "linearizable": (EXIT_INVALID, "not linearizable"),
    "convergence": (EXIT_DIVERGED, "replicas diverged"),
    "health": (EXIT_NODE_FAILED, "a node failed by itself"),
    "recovery": (EXIT_NOT_RECOVERED, "a node did not recover"),
}
VERDICTS = {
    EXIT_VALID: "valid",
    EXIT_INVALID: "invalid",
    EXIT_UNKNOWN: "unknown",
    EXIT_ERROR: "error",
    EXIT_DIVERGED: "diverged",
    EXIT_NODE_FAILED: "node-failed",
    EXIT_NOT_RECOVERED: "not-recovered",
}
# Across many runs (a nightly), the worst news wins in this order.
SEVERITY = (EXIT_INVALID, EXIT_DIVERGED, EXIT_NODE_FAILED, EXIT_NOT_RECOVERED, EXIT_ERROR, EXIT_UNKNOWN)


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


def describe(code: int) -> str:
    for check_code, text in CHECKS.values():
        if check_code == code:
            return text
    return {EXIT_VALID: "valid", EXIT_UNKNOWN: "unknown", EXIT_ERROR: "error"}.get(code, "error")


def worst(codes: list[int]) -> int:
    """The exit code of a set of runs (a nightly): the most serious news, 0 when all valid."""
    for code in SEVERITY:
        if code in codes:
            return code
    if any(code != EXIT_VALID for code in codes):
        return EXIT_ERROR
    return EXIT_VALID
