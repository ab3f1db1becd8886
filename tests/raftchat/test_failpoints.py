"""Failpoints on real node processes: refused unless allowed, and crash-after-vote exits
exactly after a vote is persisted and sent (which is what makes forget-vote observable)."""

from __future__ import annotations

import pytest
from support import wait_until

from raftchat import config as cfg
from raftchat import protocol
from raftchat.node import FAILPOINT_EXIT
from raftchat.storage import Storage


def _arm(cluster, node: str, name: str | None) -> dict:
    address = cfg.split_hostport(cluster.config.node(node).client)
    return protocol.request_sync(address, {"id": 7, "meta": "failpoint", "name": name}, timeout=2.0)


def test_failpoints_are_refused_unless_the_node_allows_them(make_cluster):
    cluster = make_cluster(3)
    node = cluster.ids[0]
    reply = _arm(cluster, node, "crash-after-vote")
    assert reply["status"] == "bad_request" and "--failpoints" in reply["error"]
    assert cluster.arm(node, "crash-after-vote") is False
    assert cluster.alive(node)


def test_an_unknown_failpoint_is_a_clear_error(make_cluster):
    cluster = make_cluster(3, failpoints=True)
    reply = _arm(cluster, cluster.ids[0], "explode")
    assert reply["status"] == "bad_request"
    assert "unknown failpoint 'explode'" in reply["error"] and "crash-after-vote" in reply["error"]
    assert _arm(cluster, cluster.ids[0], None)["value"] == {"armed": None}


@pytest.mark.parametrize("bugs", [(), ("forget-vote",)], ids=["correct", "forget-vote"])
def test_a_voter_exits_right_after_voting_and_its_vote_survives_unless_forgotten(make_cluster, bugs):
    cluster = make_cluster(3, failpoints=True, bugs=bugs)
    leader = cluster.wait_for_leader()
    followers = [n for n in cluster.ids if n != leader]
    for node in followers:
        assert cluster.arm(node, "crash-after-vote")
    cluster.kill(leader)

    # One follower campaigns; the other grants its vote and exits; the vote was enough.
    crashed = wait_until("a voter to exit", lambda: [n for n in followers if not cluster.alive(n)])
    assert len(crashed) == 1
    voter, candidate = crashed[0], next(n for n in followers if n != crashed[0])
    assert cluster.procs[voter].returncode == FAILPOINT_EXIT
    log = cluster.log_path(voter).read_text()
    assert f"failpoint crash-after-vote: voted for {candidate} in term" in log
    status = wait_until(
        "the candidate to lead", lambda: (s := cluster.status(candidate)) and s["role"] == "leader" and s
    )

    storage = Storage.open(cluster.data_dir / voter, cluster.config.cluster_id, voter, bugs=frozenset(bugs))
    try:
        hard_state, _, _ = storage.load()
    finally:
        storage.close()
    assert hard_state.term == status["term"]
    assert hard_state.voted_for == (None if bugs else candidate)
