"""`harness selftest --system NAME`: does the harness find what Jepsen found in other people's systems?

Each configuration pairs a system's settings with the faults that show (or must not show)
a documented weakness: etcd's linearizable reads must stay valid (the no-false-alarm row),
its serializable reads and ZooKeeper's plain reads go stale when a member is cut off, and
Redis with Sentinel loses acknowledged writes when a partition isolates the primary.
ZooKeeper's sync-then-read row is measured, not judged: a sync is not a quorum operation,
so a stale read stays possible around a leader change. Every run stays in the store; for
each anomaly the report names the node that served the operation the checker got stuck on
and the fault in effect when it was invoked.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import store
from harness.runner import RunOutcome, run_plan
from harness.selftest import first_anomaly_seconds

# Stale reads need reads on the cut-off member after the majority wrote: a worker there that
# starts a write waits for it until op_timeout, so most of its operations are reads.
READ_HEAVY = {"weights": {"read": 8.0, "write": 1.0, "cas": 1.0}}


@dataclass(frozen=True)
class Config:
    label: str
    expected: str  # "valid", "invalid" or "measured"
    plan: dict[str, Any]
    why: str


CONFIGS: dict[str, list[Config]] = {
    "etcd": [
        Config(
            "linearizable reads, partition + kill + pause",
            "valid",
            {"system_options": {"reads": "linearizable"}, "nemesis": ["partition", "kill", "pause"]},
            "Jepsen (2020) found etcd 3.4's key-value operations strict serializable",
        ),
        Config(
            "serializable reads, partitions",
            "invalid",
            {
                "system_options": {"reads": "serializable"},
                "nemesis": ["partition-one", "partition-leader"],
                "nemesis_interval": 5,
                "workload_options": READ_HEAVY,
            },
            "serializable reads are served from a member's local state",
        ),
    ],
    "zookeeper": [
        Config(
            "plain reads, partitions",
            "invalid",
            {
                "system_options": {"reads": "plain", "tick_ms": 1000},
                "nemesis": ["partition-follower"],  # an isolated leader only stalls writes for 3 s
                "nemesis_interval": 3,
                "workload_options": READ_HEAVY,
            },
            "ZooKeeper promises sequential consistency to each client, not linearizable reads",
        ),
        Config(
            "sync then read, partition + kill + pause",
            "measured",
            {"system_options": {"reads": "sync"}, "nemesis": ["partition", "kill", "pause"]},
            "sync is not a quorum operation (ZOOKEEPER-1675): stale reads stay possible around a "
            "leader change, far rarer than with plain reads",
        ),
    ],
    "redis": [
        Config(
            "Sentinel, partitions that isolate the primary",
            "invalid",
            {"nemesis": ["partition-leader"], "nemesis_interval": 5},
            "replication is asynchronous; Jepsen (2013) showed failover losing acknowledged writes",
        ),
    ],
}

COMMON = {"nodes": 3, "concurrency": 10, "rate": 150, "recovery": 3, "workload": "register"}


@dataclass
class Trial:
    seed: int
    valid: Any
    first_anomaly_s: float | None
    run_dir: str
    ops: int
    anomaly: dict[str, Any] | None = None  # node that served the stuck operation, fault in effect


@dataclass
class ConfigReport:
    system: str
    config: Config
    trials: list[Trial] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return sum(t.valid is False for t in self.trials)

    @property
    def valid(self) -> int:
        return sum(t.valid is True for t in self.trials)

    @property
    def median_first_anomaly(self) -> float | None:
        times = [t.first_anomaly_s for t in self.trials if t.first_anomaly_s is not None]
        return statistics.median(times) if times else None

    @property
    def met(self) -> str:
        runs = len(self.trials)
        if self.config.expected == "valid":
            return "yes" if self.valid == runs else "no"
        if self.config.expected == "invalid":
            return "yes" if self.invalid >= max(1, runs - 1) else "no"
        return "measured"


def anomaly_detail(outcome: RunOutcome) -> dict[str, Any] | None:
    """Which node served the operation the checker got stuck on, and the fault in effect then."""
    failure = (outcome.results.get("checker") or {}).get("failure")
    if not failure:
        return None
    stuck = {s["op"] for s in failure.get("minimal_stuck") or failure.get("stuck") or []}
    ops = [op for op in failure.get("minimal_history", []) if op["id"] in stuck] or failure.get(
        "minimal_history", []
    )
    if not ops:
        return None
    op = ops[-1]
    node = None
    try:
        with open(outcome.run_dir / store.HISTORY) as history:
            for line in history:
                record = json.loads(line)
                same = record.get("process") == op["process"] and record.get("time") == op["call"]
                if record.get("type") == "invoke" and same:
                    node = record.get("node")
                    break
    except (OSError, ValueError):
        pass
    at = op["call"] / 1e9
    faults = []
    for interval in (outcome.results.get("stats") or {}).get("nemesis") or []:
        if interval["start"] <= at and (interval["stop"] is None or at <= interval["stop"]):
            value = interval.get("value") or {}
            targets = value.get("components") or value.get("nodes") or ""
            faults.append(f"{interval['fault']} {targets}".strip())
    return {
        "op": f"{op['f']} {op['input']} -> {op['output']}",
        "at_s": round(at, 2),
        "node": node,
        "faults": faults,
    }


def run_system_selftest(
    system: str,
    runs: int,
    time_limit: float,
    store_root: Path,
    seed: int = 1,
    progress: bool = True,
    only: list[int] | None = None,
) -> list[ConfigReport]:
    """Run each configuration of ``system`` (``only``: these 1-based numbers) ``runs`` times."""
    reports = []
    for index, config in enumerate(CONFIGS[system]):
        if only and index + 1 not in only:
            continue
        report = ConfigReport(system, config)
        for i in range(runs):
            overrides = {
                **COMMON,
                **config.plan,
                "system": system,
                "name": f"selftest-{system}-{index + 1}",
                "time_limit": time_limit,
                "seed": seed + i,
            }
            started = time.monotonic()
            outcome = run_plan(None, overrides, store_root, progress=False)
            trial = Trial(
                seed + i,
                outcome.valid,
                first_anomaly_seconds(outcome),
                str(outcome.run_dir),
                (outcome.results.get("stats") or {}).get("client_ops", 0),
                anomaly_detail(outcome),
            )
            report.trials.append(trial)
            if outcome.results.get("interrupted"):
                reports.append(report)
                return reports  # Ctrl-C stops the self-test, not only the run
            if progress:
                verdict = {True: "valid", False: "INVALID", "unknown": "unknown"}.get(outcome.valid, "error")
                print(
                    f"{system} {config.label:<46} run {i + 1}/{runs}: {verdict:<8} "
                    f"({time.monotonic() - started:.0f} s) {outcome.run_dir}",
                    file=sys.stderr,
                    flush=True,
                )
        reports.append(report)
    return reports


def table(reports: list[ConfigReport]) -> str:
    lines = [
        f"{'system and configuration':<56} {'expected':<9} {'invalid':>9} {'first anomaly':>14} {'met':>9}"
    ]
    for r in reports:
        median = r.median_first_anomaly
        lines.append(
            f"{r.system + ', ' + r.config.label:<56} {r.config.expected:<9} "
            f"{r.invalid:>3} of {len(r.trials):<3} {(f'{median:.1f} s' if median is not None else '-'):>14} "
            f"{r.met:>9}"
        )
        for t in r.trials:
            if t.anomaly and r.config.expected == "measured":
                a = t.anomaly
                lines.append(
                    f"    seed {t.seed}: {a['op']} at {a['at_s']} s on {a['node']}; faults: {a['faults']}"
                )
    return "\n".join(lines)


def write_json(path: Path, reports: list[ConfigReport], runs: int, time_limit: float) -> None:
    data = {
        "runs": runs,
        "time_limit": time_limit,
        "configurations": [
            {
                "system": r.system,
                **asdict(r.config),
                "invalid": r.invalid,
                "valid": r.valid,
                "met": r.met,
                "median_first_anomaly_s": r.median_first_anomaly,
                "trials": [asdict(t) for t in r.trials],
            }
            for r in reports
        ],
    }
    path.write_text(json.dumps(data, indent=2, default=str))
