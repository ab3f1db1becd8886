"""ZooKeeper 3.8 under the harness: a real ensemble of JVMs in network namespaces, partitioned.

Plain reads are served from a member's own state (ZooKeeper promises sequential consistency,
not linearizable reads): an isolated follower keeps answering until it notices it lost the
leader, so reads against it go stale and the checker must find them. A JVM ensemble is slow
to start, so this file starts one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import processes_mentioning

from harness.runner import run_plan
from systems import SystemUnavailable, make_system
from systems.zookeeper import SERVER_JAR

NOT_INSTALLED = "ZooKeeper is not installed (apt-get install zookeeper default-jre-headless)"
pytestmark = pytest.mark.skipif(shutil.which("java") is None or not SERVER_JAR.exists(), reason=NOT_INSTALLED)


@pytest.mark.cluster
@pytest.mark.skipif(os.geteuid() != 0, reason="partitions of ZooKeeper need the netns network (root)")
def test_plain_reads_of_an_isolated_member_are_found_stale(tmp_path):
    plan = {
        "system": "zookeeper",
        "system_options": {"reads": "plain", "tick_ms": 1000},  # a follower notices after 5 s
        "nodes": 3,
        "workload": "register",
        "workload_options": {"weights": {"read": 8.0, "write": 1.0, "cas": 1.0}},
        "net": "netns",
        "time_limit": 20,
        "rate": 200,
        # A follower, never the leader: the others elect no one within 3 s (they wait 5 s for
        # a lost leader), so an isolated leader only stalls the writes and no read goes stale,
        # while an isolated follower answers from its own state as the others commit writes.
        "nemesis": ["partition-follower"],
        "nemesis_interval": 3,
        "recovery": 2,
    }
    outcome = run_plan(plan, store_root=tmp_path, progress=False)
    r = outcome.results
    assert outcome.valid is False, (r.get("error"), r.get("checker"))
    assert r["system"] == "zookeeper" and r["system_version"].startswith("3.")
    assert r["checker"]["failure"]["minimal"]
    records = [json.loads(line) for line in (outcome.run_dir / "history.jsonl").read_text().splitlines()]
    cuts = [op["value"] for op in records if op.get("process") == "nemesis" and op.get("f") == "start"]
    cuts = [value for value in cuts if value.get("action") == "cut"]
    assert cuts and all(len(value["components"]) == 2 for value in cuts), cuts
    assert all([value["leader"]] not in value["components"] for value in cuts), "a leader was isolated"
    assert sorted(p.name for p in (outcome.run_dir / "logs").iterdir()) == ["n1.log", "n2.log", "n3.log"]
    assert "QuorumPeer" in (outcome.run_dir / "logs" / "n1.log").read_text()


def test_a_missing_java_runtime_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemUnavailable, match="apt-get install default-jre-headless"):
        make_system("zookeeper").check_installed()
    assert Path(SERVER_JAR).exists()


def _load_started(store: Path) -> bool:
    """The history is opened before the ensemble starts: wait for operations in it."""
    return any(path.stat().st_size > 5_000 for path in store.glob("zookeeper/*/history.jsonl"))


@pytest.mark.cluster
def test_kill_9_of_the_harness_leaves_no_jvm_behind(tmp_path):
    store = tmp_path / "store"
    command = [sys.executable, "-m", "harness.cli", "run", "--system", "zookeeper", "--nodes", "3"]
    command += ["--time-limit", "60", "--nemesis", "pause", "--store", str(store), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not _load_started(store):
            time.sleep(0.2)
        assert _load_started(store), "the run never started its load"
        assert len(processes_mentioning(str(store))) >= 3, "the ensemble is not running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while processes_mentioning(str(store)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_mentioning(str(store)), "a ZooKeeper server outlived the killed harness"
