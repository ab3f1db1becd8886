"""Process faults against a real 3-node cluster: kill -9 / restart, SIGSTOP / SIGCONT."""

from __future__ import annotations

import random

from support import wait_until

from nemesis.process import ProcessFaults, process_state, random_minority
from raftchat.localcluster import LocalCluster, node_status


def rejoined(cluster: LocalCluster, node: str) -> bool:
    """The node answers its status and knows the cluster's current leader as its leader."""
    status = node_status(cluster.config.node(node).client)
    leader = cluster.leader()
    return bool(status) and leader is not None and status["leader"] == leader


def running(pid: int) -> bool:
    return process_state(pid) not in (None, "T", "t", "Z")


def new_leader(cluster: LocalCluster, old: str) -> str | None:
    leader = cluster.leader()
    return leader if leader not in (None, old) else None


def test_random_minority_is_a_non_empty_minority():
    for n in range(1, 8):
        nodes = [f"n{i}" for i in range(n)]
        for seed in range(30):
            chosen = random_minority(nodes, random.Random(seed))
            assert 1 <= len(chosen) <= max(1, (n - 1) // 2)
            assert set(chosen) <= set(nodes) and len(set(chosen)) == len(chosen)


def test_process_state_of_a_missing_process_is_none():
    assert process_state(2**22 + 12345) is None


def test_kill_leader_then_restart_rejoins(cluster):
    faults = ProcessFaults(cluster)
    old = cluster.leader()
    assert old is not None
    old_pid = cluster.procs[old].pid
    done = faults.kill([old])
    assert done == {"nodes": [old], "pids": {old: old_pid}}
    assert not cluster.alive(old)
    assert process_state(old_pid) is None, "killed and reaped: no /proc entry left"
    assert faults.killed == {old: old_pid}
    wait_until("a new leader", lambda: new_leader(cluster, old))

    assert faults.kill([old]) == {"nodes": [], "pids": {}}, "a dead node is not killed twice"
    restarted = faults.restart()
    assert restarted["nodes"] == [old]
    assert restarted["pids"][old] == cluster.procs[old].pid != old_pid
    assert faults.killed == {}
    assert faults.restart() == {"nodes": [], "pids": {}}, "restart only restarts what we killed"
    wait_until(f"{old} to rejoin", lambda: rejoined(cluster, old))


def test_restart_leaves_nodes_it_did_not_kill_alone(cluster):
    faults = ProcessFaults(cluster)
    other = cluster.ids[0]
    cluster.kill(other)  # killed by someone else: not the nemesis's to restart
    assert faults.heal() == {"resumed": {"nodes": [], "pids": {}}, "restarted": {"nodes": [], "pids": {}}}
    assert not cluster.alive(other)


def test_pause_then_resume_rejoins(cluster):
    faults = ProcessFaults(cluster)
    leader = cluster.leader()
    node = next(n for n in cluster.ids if n != leader)
    pid = cluster.procs[node].pid
    assert faults.pause([node]) == {"nodes": [node], "pids": {node: pid}}
    wait_until(f"{node} to be stopped", lambda: process_state(pid) == "T")
    assert node_status(cluster.config.node(node).client, timeout=0.3) is None, "a stopped node cannot answer"
    assert faults.pause([node]) == {"nodes": [], "pids": {}}, "pausing twice is one pause"

    assert faults.resume() == {"nodes": [node], "pids": {node: pid}}
    wait_until(f"{node} to run again", lambda: running(pid))
    assert faults.paused == {}
    wait_until(f"{node} to rejoin", lambda: rejoined(cluster, node))


def test_pause_leader_forces_an_election_and_heal_resumes_it(cluster):
    faults = ProcessFaults(cluster)
    old = cluster.leader()
    pid = cluster.procs[old].pid
    faults.pause([old])
    wait_until("the leader to be stopped", lambda: process_state(pid) == "T")
    wait_until("a new leader", lambda: new_leader(cluster, old))
    healed = faults.heal()
    assert healed["resumed"] == {"nodes": [old], "pids": {old: pid}}
    wait_until("the old leader to run", lambda: running(pid))
    wait_until(f"{old} to step down and rejoin", lambda: rejoined(cluster, old))


def test_killing_a_paused_node_restarts_it_instead_of_resuming(cluster):
    faults = ProcessFaults(cluster)
    node = cluster.ids[1]
    pid = cluster.procs[node].pid
    faults.pause([node])
    faults.kill([node])
    assert process_state(pid) is None
    assert faults.paused == {} and faults.killed == {node: pid}
    healed = faults.heal()
    assert healed["resumed"]["nodes"] == [] and healed["restarted"]["nodes"] == [node]
    assert cluster.alive(node)
