"""Failpoints on real node processes: refused unless allowed, crash-after-vote exits
exactly after a vote is persisted and sent (which is what makes forget-vote observable), and
stall-writes shows that nothing claiming durability leaves while the disk has not answered."""

from __future__ import annotations

import threading
import time

import pytest
from support import wait_until

from raftchat import config as cfg
from raftchat import protocol
from raftchat.client import SyncClient
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


def _never(what: str, check, seconds: float) -> None:
    """``check`` stays false for ``seconds`` (polled), else fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not check(), what
        time.sleep(0.05)


def _settled(cluster) -> str:
    """The leader, once every node answers and follows it."""
    leader = cluster.wait_for_leader()
    wait_until(
        f"every node to follow {leader}",
        lambda: all((s := cluster.status(n)) and s["leader"] == leader for n in cluster.ids),
    )
    return leader


def test_a_node_with_a_stalled_disk_acknowledges_nothing_and_grants_no_vote(make_cluster):
    """stall-writes holds every write back on the writer thread. Followers that hold a new
    entry only in memory must not acknowledge it (so the leader, whose own disk is fine,
    cannot commit it); after the leader dies, a voter whose disk is stalled must grant no
    vote (a vote is a term and a choice on disk first), while its event loop keeps answering.
    Disarmed, the writes land and the cluster goes on."""
    cluster = make_cluster(3, machine="kv", failpoints=True)
    leader = _settled(cluster)
    followers = [n for n in cluster.ids if n != leader]
    with SyncClient(cluster.config, timeout=10) as client:
        assert client.call("put", key="k", value="before").status == "ok"
    for node in followers:
        assert cluster.arm(node, "stall-writes", timeout=2.0)
    before = cluster.status(leader)["last_index"]

    result: list = []

    def write() -> None:
        with SyncClient(cluster.config, timeout=60) as client:
            result.append(client.call("put", key="k", value="during"))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    wait_until(
        "both followers to hold the new entry in memory",
        lambda: all((s := cluster.status(n)) and s["last_index"] > before for n in followers),
    )
    _never(
        "the leader committed an entry that only its own disk holds",
        lambda: cluster.status(leader)["commit"] > before,
        1.0,
    )
    assert not result
    for node in followers:
        assert cluster.arm(node, None, timeout=2.0)
    writer.join(60)
    assert result and result[0].status == "ok", result

    # Votes: one survivor campaigns or votes with a stalled disk, the other with a working one.
    # (The leader may have changed: without answers from its followers it stepped down.)
    leader = _settled(cluster)
    followers = [n for n in cluster.ids if n != leader]
    stalled = followers[0]
    assert cluster.arm(stalled, "stall-writes", timeout=2.0)
    cluster.kill(leader)
    _never(
        "a leader was elected with a vote (or a candidacy) that was not on disk",
        lambda: any((s := cluster.status(n)) and s["role"] == "leader" for n in followers),
        1.5,
    )
    assert cluster.status(stalled) is not None, "a stalled disk blocked the event loop"
    assert cluster.arm(stalled, None, timeout=2.0)
    wait_until("a new leader", lambda: cluster.leader() in followers)
    with SyncClient(cluster.config, timeout=10) as client:
        assert client.call("put", key="k", value="after").status == "ok"
        assert client.call("get", key="k").value == "after"
