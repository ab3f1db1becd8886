"""etcd 3.4 under the harness: real etcd members in network namespaces, partitioned.

Linearizable reads must come out valid under partitions, kills and pauses (Jepsen found
etcd 3.4's key-value operations strict serializable); serializable reads are served from a
member's own state, so an isolated member answers stale reads and the checker must say so.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from harness.runner import run_plan
from raftchat.localcluster import loopback_config
from systems import SystemStartError, make_system
from workloads import make_workload

NOT_INSTALLED = "etcd is not installed (apt-get install etcd-server)"
NOT_ROOT = "partitions of etcd need the netns network, which needs root"
pytestmark = [pytest.mark.cluster, pytest.mark.skipif(shutil.which("etcd") is None, reason=NOT_INSTALLED)]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason=NOT_ROOT)

BASE = {"system": "etcd", "nodes": 3, "workload": "register", "net": "netns", "recovery": 2}


def _no_etcd_left(run_dir) -> None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert str(run_dir) not in cmdline, f"an etcd member of the run is still running: {cmdline}"


@needs_root
def test_linearizable_reads_under_partitions_kills_and_pauses_are_valid(tmp_path):
    plan = {**BASE, "time_limit": 12, "nemesis": ["partition", "kill", "pause"], "nemesis_interval": 2}
    outcome = run_plan(plan, store_root=tmp_path, progress=False)
    r = outcome.results
    assert outcome.valid is True, (r.get("error"), r.get("checker"))
    assert r["system"] == "etcd" and r["system_version"].startswith("3.")
    assert r["network"]["name"] == "netns"
    assert r["stats"]["totals"]["ok"] > 100, r["stats"]
    assert "etcd 3." in (outcome.run_dir / "timeline.html").read_text()
    assert sorted(p.name for p in (outcome.run_dir / "logs").iterdir()) == ["n1.log", "n2.log", "n3.log"]
    _no_etcd_left(outcome.run_dir)


@needs_root
def test_serializable_reads_of_an_isolated_member_are_found_stale(tmp_path):
    plan = {
        **BASE,
        "system_options": {"reads": "serializable"},
        "time_limit": 24,
        "rate": 200,
        "nemesis": ["partition-one"],  # four times a member (sometimes the leader) is cut off for 3 s
        "nemesis_interval": 3,
        "op_timeout": 2,  # a worker of the cut-off member whose write hangs is back to reading soon
        "workload_options": {"weights": {"read": 8.0, "write": 1.0, "cas": 1.0}},
    }
    outcome = run_plan(plan, store_root=tmp_path, progress=False)
    r = outcome.results
    assert outcome.valid is False, (r.get("error"), r.get("checker"))
    assert r["system_options"] == {"reads": "serializable"}
    failure = r["checker"]["failure"]
    assert failure["minimal"], failure
    _no_etcd_left(outcome.run_dir)


def test_a_member_whose_port_is_taken_fails_the_start_with_the_tail_of_its_log(tmp_path):
    config = loopback_config(3)
    host, port = config.nodes[0].client_hostport
    with socket.socket() as taken:
        taken.bind((host, port))
        taken.listen()
        workload = make_workload("register", {}, 1, 1)
        cluster = make_system("etcd").cluster(tmp_path / "cluster", config, None, workload, None)
        try:
            cluster.start_all()
            with pytest.raises(SystemStartError) as caught:
                cluster.wait_ready(timeout=30)
        finally:
            cluster.stop_all()
    message = str(caught.value)
    assert "node n1 exited" in message and "address already in use" in message, message
    _no_etcd_left(tmp_path)
