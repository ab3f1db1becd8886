"""Redis 7 with Sentinel under the harness: a partition that isolates the primary loses writes.

Replication is asynchronous: the isolated primary keeps acknowledging writes while the
sentinels on the majority side promote a replica; when the partition heals, the old primary
becomes a replica of the new one and what it acknowledged is gone. The checker must say so.
"""

from __future__ import annotations

import os
import shutil

import pytest

from harness.runner import run_plan

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        shutil.which("redis-server") is None or shutil.which("redis-sentinel") is None,
        reason="Redis is not installed (apt-get install redis-server redis-sentinel)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="partitions of Redis need the netns network (root)"),
]


def test_a_partition_isolating_the_primary_loses_acknowledged_writes(tmp_path):
    plan = {
        "system": "redis",
        "nodes": 3,
        "workload": "register",
        "net": "netns",
        "time_limit": 20,
        "nemesis": ["partition-leader"],
        "nemesis_interval": 5,
        "recovery": 3,
    }
    outcome = run_plan(plan, store_root=tmp_path, progress=False)
    r = outcome.results
    assert outcome.valid is False, (r.get("error"), r.get("checker"))
    assert r["system"] == "redis" and r["system_version"].startswith("7.")
    starts = [e for e in r["stats"].get("nemesis") or [] if e]
    assert starts, r["stats"]
    sentinel_logs = sorted((outcome.run_dir / "cluster" / "sentinels").glob("*/node.log"))
    assert any("+switch-master" in log.read_text() for log in sentinel_logs), "no failover happened"
    # The anomaly names the primaries that served it (not the workers' own nodes): the old one
    # that acknowledged the lost write and the new one that read without it, with the failover
    # between them or both claiming to be primary at once.
    context = r["anomaly_context"]
    served = {s["node"] for s in context["served_by"]}
    split = len(context["claiming_leadership"]) > 1
    assert len(served) >= 2 and (context["straddles_leader_change"] or split), context
