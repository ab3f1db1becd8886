"""The fast self-test: the harness must still catch deliberate bugs, and only those.

A change that blinds the checker, the workloads or the nemesis (or that makes raftchat's
bug switches do nothing) fails here. The full measurement is `harness selftest`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.selftest import run_selftest, table, write_json

BUGS = ["stale-read", "forget-vote", "lose-unsynced"]


def _elections(run_dir: str) -> list[tuple[int, int]]:
    """(first, second) leader terms of every crash-voters round of a run that elected both."""
    terms = []
    for line in (Path(run_dir) / "history.jsonl").read_text().splitlines():
        record = json.loads(line)
        value = record.get("value") or {}
        if record.get("process") == "nemesis" and record["f"] == "start" and value.get("second_leader"):
            terms.append((value["first_leader"]["term"], value["second_leader"]["term"]))
    return terms


@pytest.mark.slow
def test_fast_selftest_catches_bugs_without_false_alarms(tmp_path):
    reports = run_selftest(BUGS, runs=1, time_limit=15, store_root=tmp_path / "store", progress=False)
    printed = table(reports, 1)
    for report in reports:
        assert report.detected == 1, f"{report.bug} went unnoticed:\n{printed}"
        assert report.false_alarms == 0, (
            f"the correct build was judged wrong next to {report.bug}:\n{printed}"
        )
        assert report.median_first_anomaly is not None and 0 < report.median_first_anomaly < 30
    write_json(tmp_path / "selftest.json", reports, 1, 15)
    data = json.loads((tmp_path / "selftest.json").read_text())
    assert [b["detection_rate"] for b in data["bugs"]] == [1.0] * len(BUGS)
    assert all((tmp_path / "store" / f"selftest-{b}").is_dir() for b in BUGS)

    # How forget-vote was caught: a forgotten vote elected a second leader in the same term;
    # with votes remembered, the second election always needed a new term.
    forget_vote = next(r for r in reports if r.bug == "forget-vote")
    with_bug, correct = (
        _elections(forget_vote.with_bug[0].run_dir),
        _elections(forget_vote.correct[0].run_dir),
    )
    assert any(first == second for first, second in with_bug), with_bug
    assert correct and all(second > first for first, second in correct), correct


NODE_CHECK_BUGS = {"snapshot-drops-last-key": "convergence", "assert-after-restore": "health"}


@pytest.mark.slow
@pytest.mark.cluster
def test_bugs_clients_do_not_see_are_caught_by_the_node_checks(tmp_path):
    """Bugs that strike after a snapshot restore: the node checks catch them, each by its own verdict."""
    bugs = list(NODE_CHECK_BUGS)
    reports = run_selftest(bugs, runs=1, time_limit=12, store_root=tmp_path / "store", progress=False)
    printed = table(reports, 1)
    for report in reports:
        assert report.detected == 1, f"{report.bug} went unnoticed:\n{printed}"
        results = json.loads((Path(report.with_bug[0].run_dir) / "results.json").read_text())
        assert results["checks"][NODE_CHECK_BUGS[report.bug]] is False, results["checks"]
        assert report.false_alarms == 0, (
            f"the correct build was judged wrong next to {report.bug}:\n{printed}"
        )
        assert report.median_first_anomaly is not None
