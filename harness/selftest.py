"""`harness selftest`: prove that the harness catches real bugs, and raises no false alarms.

Each deliberate bug in raftchat (``raftchat node --bug NAME``) is paired with the workload
and faults that give it a chance to show, the way the bug showed in real systems. For
each bug the self-test runs that plan N times with the bug and N times without it, and
reports how often the checker found an anomaly, how far into the run the first anomalous
operation came, and how often the correct build was (wrongly) judged not linearizable.
Every run stays in the store, so each detection can be inspected.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import verdicts
from harness.runner import RunOutcome, run_plan
from raftchat.bugs import BUGS

# The plan overrides that give each bug its chance (why: see raftchat/bugs.py).
BUG_PLANS: dict[str, dict[str, Any]] = {name: bug.selftest for name, bug in BUGS.items()}

COMMON = {"nodes": 5, "concurrency": 10, "rate": 150, "recovery": 2}

# Bugs that the README's table records as hidden in real runs (the simulated-network tests
# catch them); every other bug must be detected for the self-test to pass by default.
HIDDEN_IN_REAL_RUNS = frozenset(name for name, bug in BUGS.items() if bug.hidden_in_real_runs)


@dataclass
class Trial:
    bug: str | None
    seed: int
    valid: Any
    first_anomaly_s: float | None
    run_dir: str
    ops: int
    caught_by: str = "valid"  # the run's verdict: invalid, diverged, node-failed, not-recovered, ...


@dataclass
class BugReport:
    bug: str
    plan: dict[str, Any]
    with_bug: list[Trial] = field(default_factory=list)
    correct: list[Trial] = field(default_factory=list)

    @property
    def detected(self) -> int:
        return sum(t.valid is False for t in self.with_bug)

    @property
    def false_alarms(self) -> int:
        return sum(t.valid is not True for t in self.correct)

    @property
    def caught_by(self) -> list[str]:
        """Which checks caught the bug (the verdicts of its detected runs)."""
        return sorted({t.caught_by for t in self.with_bug if t.valid is False})

    @property
    def median_first_anomaly(self) -> float | None:
        times = [t.first_anomaly_s for t in self.with_bug if t.first_anomaly_s is not None]
        return statistics.median(times) if times else None


def first_anomaly_seconds(outcome: RunOutcome) -> float | None:
    """How far into the run the first sign of the bug came: the invocation of the earliest
    operation that could not be linearized, or what the node checks first saw, if earlier."""
    times = [
        t
        for t in (first_linearizability_anomaly(outcome), first_node_anomaly(outcome.results))
        if t is not None
    ]
    return min(times) if times else None


def first_linearizability_anomaly(outcome: RunOutcome) -> float | None:
    failure = (outcome.results.get("checker") or {}).get("failure")
    if not failure:
        return None
    wanted = {s["op"] for s in failure.get("stuck", [])} | {s["op"] for s in failure.get("minimal_stuck", [])}
    calls = [op["call"] for op in failure.get("minimal_history", []) if op["id"] in wanted]
    if not calls:
        calls = [op["call"] for op in failure.get("minimal_history", [])]
    return min(calls) / 1e9 if calls else None


def first_node_anomaly(results: dict[str, Any]) -> float | None:
    """The earliest divergence, unexpected exit or logged internal error; else, for a node that
    did not recover, the end of the run."""
    convergence, health = results.get("convergence") or {}, results.get("health") or {}
    times = [d["t"] for d in convergence.get("divergences") or []]
    times += [e["t"] for e in health.get("unexpected_exits") or []]
    times += [e["t"] for e in health.get("log_errors") or [] if e.get("t") is not None]
    times += [s["t"] for s in health.get("two_leaders") or [] if s.get("t") is not None]
    if not times and (results.get("recovery") or {}).get("valid") is False:
        times.append((results.get("stats") or {}).get("duration_s") or 0.0)
    return min(times) if times else None


def run_selftest(
    bugs: list[str],
    runs: int,
    time_limit: float,
    store_root: Path,
    seed: int = 1,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    controls: bool = True,
) -> list[BugReport]:
    """Run each bug's plan (with ``overrides`` on top) ``runs`` times with the bug and, unless
    ``controls`` is off (a caller that shows the correct build elsewhere), without."""
    reports = []
    for bug in bugs:
        plan = {**COMMON, **BUG_PLANS[bug], **(overrides or {}), "time_limit": time_limit}
        report = BugReport(bug, plan)
        for i in range(runs):
            for with_bug in (True, False) if controls else (True,):
                trial_plan = {
                    **plan,
                    "name": f"selftest-{bug}" if with_bug else f"selftest-{bug}-correct",
                    "bug": bug if with_bug else None,
                    "seed": seed + i,
                }
                started = time.monotonic()
                outcome = run_plan(None, trial_plan, store_root, progress=False)
                trial = Trial(
                    bug if with_bug else None,
                    seed + i,
                    outcome.valid,
                    first_anomaly_seconds(outcome),
                    str(outcome.run_dir),
                    (outcome.results.get("stats") or {}).get("client_ops", 0),
                    outcome.results.get("verdict") or verdicts.run_word(outcome.valid, outcome.exit_code),
                )
                (report.with_bug if with_bug else report.correct).append(trial)
                if progress:
                    label = "bug    " if with_bug else "correct"
                    print(
                        f"{bug:<28} {label} run {i + 1}/{runs}: {trial.caught_by:<13} "
                        f"({time.monotonic() - started:.0f} s) {outcome.run_dir}",
                        file=sys.stderr,
                        flush=True,
                    )
        reports.append(report)
    return reports


def undetected(reports: list[BugReport], min_detections: int | None = None) -> list[str]:
    """The bugs detected in fewer runs than ``min_detections``.

    None is the default threshold: one detection for each bug the table expects to catch
    (every bug but those in HIDDEN_IN_REAL_RUNS).
    """
    if min_detections is None:
        return [r.bug for r in reports if r.bug not in HIDDEN_IN_REAL_RUNS and r.detected < 1]
    return [r.bug for r in reports if r.detected < min_detections]


def table(reports: list[BugReport], runs: int) -> str:
    lines = [
        f"{'bug':<28} {'workload':<9} {'faults':<34} {'detected':>9} "
        f"{'first anomaly':>14} {'false alarms':>13}  caught by",
    ]
    for r in reports:
        median = r.median_first_anomaly
        lines.append(
            f"{r.bug:<28} {r.plan['workload']:<9} {','.join(r.plan['nemesis']):<34} "
            f"{r.detected:>4} of {runs:<2} {(f'{median:.1f} s' if median is not None else '-'):>14} "
            f"{r.false_alarms:>6} of {runs:<3}  {', '.join(r.caught_by) or '-'}"
        )
    return "\n".join(lines)


def write_json(path: Path, reports: list[BugReport], runs: int, time_limit: float) -> None:
    data = {
        "runs": runs,
        "time_limit": time_limit,
        "bugs": [
            {
                "bug": r.bug,
                "plan": r.plan,
                "detected": r.detected,
                "detection_rate": r.detected / runs if runs else None,
                "median_first_anomaly_s": r.median_first_anomaly,
                "false_alarms": r.false_alarms,
                "caught_by": r.caught_by,
                "with_bug": [asdict(t) for t in r.with_bug],
                "correct": [asdict(t) for t in r.correct],
            }
            for r in reports
        ],
    }
    path.write_text(json.dumps(data, indent=2, default=str))
