"""The ``crash-voters`` fault on real nodes behind real proxies.

It must do what its script says (nemesis/crash_voters.py): a majority of followers elect
one of themselves while the voters crash right after voting, that leader is paused, and a
node from outside campaigns in the term the crashed voters voted in. Voters that remember
their vote make it wait a term; voters with the forget-vote bug elect a second leader in
the same term. Afterwards every node runs again and the cluster agrees on one leader.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import wait_until

from nemesis import Nemesis
from nemesis.crash_voters import FAILPOINT
from nemesis.net.proxy import ProxyNetwork
from nemesis.process import process_state
from raftchat.localcluster import LocalCluster, node_status

pytestmark = pytest.mark.cluster

ROUNDS = 3  # the bug needs the center to campaign before it times out once more: give it chances
# What the fault records when, on a loaded machine, the electors did not manage to elect one
# of themselves before the voters crashed: the round did nothing, and proves nothing either way.
NO_ELECTION = "the electors did not elect a leader with crashing voters: nothing more done"


@pytest.fixture
def start_cluster(tmp_path) -> Iterator[Callable[[tuple[str, ...]], tuple[LocalCluster, ProxyNetwork]]]:
    """A 5-node cluster with failpoints allowed, its peer traffic through proxies that can cut it.

    Five, as the self-test runs it: with three, the restarted voter reaches a majority too
    and may win the second election instead of the center."""
    made: list[tuple[LocalCluster, ProxyNetwork]] = []

    def start(bugs: tuple[str, ...]) -> tuple[LocalCluster, ProxyNetwork]:
        network = ProxyNetwork()
        config = network.setup(LocalCluster(tmp_path, 5).config)
        cluster = LocalCluster(tmp_path, 5, config=config, bugs=bugs, failpoints=True)
        made.append((cluster, network))
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        return cluster, network

    yield start
    for cluster, network in made:
        cluster.stop_all()
        network.teardown()


def every_node_back(cluster: LocalCluster) -> bool:
    """Every node runs (not stopped), answers, and names the same leader."""
    statuses = []
    for node in cluster.ids:
        if not cluster.alive(node) or process_state(cluster.procs[node].pid) in ("T", "Z"):
            return False
        statuses.append(node_status(cluster.config.node(node).client))
    leaders = {s["leader"] if s else None for s in statuses}
    return len(leaders) == 1 and None not in leaders


def check_script(cluster: LocalCluster, start: dict[str, Any]) -> None:
    """What every round must show, whether the votes are remembered or not."""
    leader, nodes = start["leader"], cluster.ids
    assert start["fault"] == "crash-voters" and start["action"] == "script", start
    electors, outside = start["electors"], start["outside"]
    assert leader in outside and leader not in electors
    assert len(electors) == len(nodes) // 2 + 1 and sorted(electors + outside) == sorted(nodes)
    assert sorted(start["armed"]) == electors, "every elector must have armed the failpoint"
    first = start["first_leader"]
    assert first["node"] in electors and sorted(start["crashed"]) == sorted(set(electors) - {first["node"]})
    for voter in start["crashed"]:
        log = cluster.log_path(voter).read_text()
        assert f"failpoint {FAILPOINT}: voted for {first['node']} in term {first['term']}" in log
    assert start["center"] in outside
    assert sorted(start["restarted"]) == sorted(start["crashed"])
    assert start["resumed"] == [first["node"]]
    assert start["second_leader"] and start["second_leader"]["node"] == start["center"], repr(start)


def run_rounds(cluster: LocalCluster, network: ProxyNetwork, stop_at_same_term: bool) -> list[dict]:
    """Up to ROUNDS crash-voters faults, each stopped and healed; their recorded starts."""
    recorded: list[tuple[str, dict[str, Any]]] = []
    nemesis = Nemesis(
        cluster,
        network,
        ["crash-voters"],
        5.0,
        random.Random(3),
        lambda _t, _p, f, v: recorded.append((f, v)),
    )
    starts = []

    async def scenario() -> None:
        for _ in range(ROUNDS):
            start = await nemesis.start_fault("crash-voters")
            await nemesis.stop_fault()
            await nemesis.heal_all()
            starts.append(start)
            await asyncio.to_thread(wait_until, "every node back", lambda: every_node_back(cluster), 20)
            second = start.get("second_leader")
            if stop_at_same_term and second and second["term"] == start.get("first_leader", {}).get("term"):
                return

    asyncio.run(scenario())
    assert [f for f, _ in recorded] == ["start", "stop", "heal"] * len(starts)
    played = [start for start in starts if start.get("note") != NO_ELECTION]
    assert played, f"no round got as far as a first leader in {len(starts)} rounds: {starts}"
    return played


def test_voters_that_remember_their_vote_make_the_second_leader_wait_a_term(start_cluster) -> None:
    cluster, network = start_cluster(())
    for start in run_rounds(cluster, network, stop_at_same_term=False):
        check_script(cluster, start)
        assert start["second_leader"]["term"] > start["first_leader"]["term"], start
        assert "note" not in start, start


def test_voters_that_forget_their_vote_elect_two_leaders_in_one_term(start_cluster) -> None:
    cluster, network = start_cluster(("forget-vote",))
    starts = run_rounds(cluster, network, stop_at_same_term=True)
    for start in starts:
        check_script(cluster, start)
    last = starts[-1]
    term = last["first_leader"]["term"]
    assert last["second_leader"]["term"] == term, f"no second leader in the same term in {len(starts)} rounds"
    assert last["note"] == f"two leaders in term {term}: {last['first_leader']['node']} and {last['center']}"
