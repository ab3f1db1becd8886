"""The fast self-test: the harness must still catch deliberate bugs, and only those.

A change that blinds the checker, the workloads or the nemesis (or that makes raftchat's
bug switches do nothing) fails here. The full measurement is `harness selftest`.
"""

from __future__ import annotations

import json

import pytest

from harness.selftest import run_selftest, table, write_json


@pytest.mark.slow
def test_fast_selftest_catches_bugs_without_false_alarms(tmp_path):
    reports = run_selftest(
        ["stale-read", "lose-unsynced"], runs=1, time_limit=15, store_root=tmp_path / "store", progress=False
    )
    printed = table(reports, 1)
    for report in reports:
        assert report.detected == 1, f"{report.bug} went unnoticed:\n{printed}"
        assert report.false_alarms == 0, (
            f"the correct build was judged wrong next to {report.bug}:\n{printed}"
        )
        assert report.median_first_anomaly is not None and 0 < report.median_first_anomaly < 30
    write_json(tmp_path / "selftest.json", reports, 1, 15)
    data = json.loads((tmp_path / "selftest.json").read_text())
    assert [b["detection_rate"] for b in data["bugs"]] == [1.0, 1.0]
    assert all((tmp_path / "store" / f"selftest-{b}").is_dir() for b in ("stale-read", "lose-unsynced"))
