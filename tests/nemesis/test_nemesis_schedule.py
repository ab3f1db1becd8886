"""The nemesis schedule: alternating start/stop events with exact details, and heal_all."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import netns_missing, wait_until
from test_nemesis_shapes import described, views_of

from nemesis import (
    FAILPOINT_FAULTS,
    FAULTS,
    NETWORK_FAULTS,
    Nemesis,
    NetworkUnavailable,
    choose_network,
    schedule,
    shapes,
)
from nemesis.faults import KILLS, PARTITION_SHAPES, PARTITIONS, PAUSES, band_name
from nemesis.process import process_state
from raftchat.localcluster import LocalCluster, loopback_config, node_status

PROCESS_FAULTS = ["kill", "kill-leader", "kill-all", "pause", "pause-leader"]
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_exactly_the_registered_faults() -> None:
    text = README.read_text()
    start = text.index("Faults (`--nemesis`, comma-separated):")
    sentence = text[start : text.index("Partitions cut", start)]
    listed = re.findall(r"`([a-z-]+)`", sentence.split(":", 1)[1])
    assert listed == list(FAULTS)


def test_the_registry_groups_faults_by_what_they_need_and_do() -> None:
    assert set(PROCESS_FAULTS) == KILLS | PAUSES
    assert {"delay", "loss", "crash-voters"} | PARTITIONS == NETWORK_FAULTS
    assert {"crash-voters"} == FAILPOINT_FAULTS
    assert set(PARTITION_SHAPES.values()) == set(shapes.ALL_SHAPES)
    assert set(shapes.SHAPES) == set(shapes.ALL_SHAPES) - {"follower"}, "asked for by name only"
    assert {name for name, f in FAULTS.items() if f.min_nodes > 1} == {"partition-follower"}
    for name, fault in FAULTS.items():
        assert fault.description and fault.name == name
        assert (fault.action == "partition") == (name in PARTITIONS)
    assert band_name("partition", {"shape": "ring"}) == "partition (ring)"
    assert band_name("partition-ring", {"shape": "ring"}) == "partition-ring"
    assert band_name("kill", {"nodes": ["n1"]}) == "kill"


class Events:
    """Collects what the nemesis records, and the states it reports."""

    def __init__(self, check: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.ops: list[tuple[str, Any, str, Any]] = []
        self.states: list[str] = []
        self.check = check

    def record(self, type: str, process: Any, f: str, value: Any) -> None:
        self.ops.append((type, process, f, value))
        if self.check is not None:
            self.check(f, value)

    @property
    def values(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f, value) for _type, _process, f, value in self.ops]


class FakeNetwork:
    """Remembers the calls: the schedule's logic, without a network mechanism."""

    name = "fake"
    tag = "test"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.cut_now: set[frozenset[str]] = set()
        self.slowed: dict[str, Any] = {}

    def cut(self, pairs: set[frozenset[str]]) -> None:
        self.calls.append(("cut", set(pairs)))
        self.cut_now = set(pairs)

    def heal(self) -> None:
        self.calls.append(("heal", None))
        self.cut_now = set()

    def slow(
        self, nodes: list[str], delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0
    ) -> None:
        self.calls.append(("slow", (list(nodes), delay_ms, jitter_ms, loss)))
        self.slowed = {"nodes": list(nodes), "delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss": loss}

    def clear_slow(self) -> None:
        self.calls.append(("clear_slow", None))
        self.slowed = {}


class FakeCluster:
    """Five node ids and a fixed leader: enough for network faults."""

    procs: dict = {}
    ids = ["n1", "n2", "n3", "n4", "n5"]
    config = loopback_config(5)  # addresses for the garbage fault; nothing listens there

    def leader(self) -> str | None:
        return "n4"

    def alive(self, node_id: str) -> bool:
        return False


async def until(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait in the event loop (the nemesis runs there) until ``condition``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def all_rejoined(cluster: LocalCluster) -> bool:
    """Every node runs, answers, and names the same leader, which the cluster agrees on."""
    leader = cluster.leader()
    if leader is None:
        return False
    for node in cluster.ids:
        pid = cluster.procs[node].pid
        status = node_status(cluster.config.node(node).client)
        if process_state(pid) in (None, "T", "Z") or not status or status["leader"] != leader:
            return False
    return True


def pairs_of(values: list[tuple[str, dict[str, Any]]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (start, stop) pairs, asserting that they alternate and name the same fault."""
    starts_stops = [(f, v) for f, v in values if f in ("start", "stop")]
    assert [f for f, _ in starts_stops] == ["start", "stop"] * (len(starts_stops) // 2), starts_stops
    pairs = list(zip(starts_stops[::2], starts_stops[1::2], strict=True))
    for (_, start), (_, stop) in pairs:
        assert start["fault"] == stop["fault"]
    return [(start, stop) for (_, start), (_, stop) in pairs]


def test_construction_errors():
    rng, record = random.Random(0), lambda *a: None
    with pytest.raises(ValueError, match="unknown fault"):
        Nemesis(FakeCluster(), None, ["kill", "explode"], 1.0, rng, record)
    with pytest.raises(ValueError, match="at least one fault"):
        Nemesis(FakeCluster(), None, [], 1.0, rng, record)
    for fault in ("partition", "partition-ring", "delay", "loss"):
        with pytest.raises(ValueError, match=f"{fault}.*need a network mechanism"):
            Nemesis(FakeCluster(), None, ["kill", fault], 1.0, rng, record)
    with pytest.raises(ValueError, match="positive"):
        Nemesis(FakeCluster(), None, ["kill"], 0, rng, record)
    Nemesis(FakeCluster(), FakeNetwork(), list(FAULTS), 1.0, rng, record)  # every fault is known


def test_process_faults_alternate_with_exact_details_and_heal(cluster):
    ids = cluster.ids

    def check_now(f: str, value: dict[str, Any]) -> None:
        """At the moment of the start, the recorded pids really are dead or stopped."""
        if f == "start" and value["action"] == "kill":
            assert all(process_state(pid) is None for pid in value["pids"].values())
        if f == "start" and value["action"] == "pause":
            deadline = time.monotonic() + 1.0
            while any(process_state(pid) != "T" for pid in value["pids"].values()):
                assert time.monotonic() < deadline, "paused processes are not stopped"
                time.sleep(0.01)

    events = Events(check_now)
    nemesis = Nemesis(
        cluster, None, PROCESS_FAULTS, 0.4, random.Random(7), events.record, events.states.append
    )

    def enough() -> bool:  # four faults done, of at least three kinds
        stops = [v for f, v in events.values if f == "stop"]
        return len(stops) >= 4 and len({v["fault"] for v in stops}) >= 3

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(nemesis.run(stop))
        await until("four fault cycles of three kinds", enough)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert nemesis.active is None
        await nemesis.heal_all()

    asyncio.run(scenario())
    assert all(t == "info" and p == "nemesis" for t, p, _f, _v in events.ops)
    *run_values, (last_f, heal) = events.values
    pairs = pairs_of(run_values)
    assert len(pairs) >= 4, pairs
    assert len({start["fault"] for start, _ in pairs}) >= 3, "the seed should exercise several faults"
    for start, stop in pairs:
        fault = start["fault"]
        if start["action"] == "none":  # no leader within LEADER_WAIT: nothing done, and said so
            assert start["leader"] is None and start["nodes"] == [] and stop["action"] == "none"
            continue
        assert set(start["pids"]) == set(start["nodes"])
        if fault == "kill-all":
            assert start["nodes"] == ids
        elif fault in ("kill-leader", "pause-leader"):
            assert start["nodes"] == [start["leader"]]
        else:
            assert len(start["nodes"]) == 1  # a minority of 3
        if start["action"] == "kill":
            assert stop["action"] == "restart" and stop["nodes"] == start["nodes"]
            assert all(stop["pids"][n] != start["pids"][n] for n in stop["nodes"])
        else:
            assert start["action"] == "pause"
            assert stop == {
                "fault": fault,
                "action": "resume",
                "nodes": start["nodes"],
                "pids": start["pids"],
            }
    assert events.states == [s for start, _ in pairs for s in (start["fault"], "none")] + ["none"]
    assert last_f == "heal"
    assert heal == {
        "fault": "heal-all",
        "action": "heal",
        "restarted": [],
        "resumed": [],
        "pids": {},
    }, "the run already stopped its last fault"
    wait_until("every node to rejoin", lambda: all_rejoined(cluster))


@pytest.mark.parametrize("fault", ["kill", "pause-leader", "kill-all"])
def test_heal_all_stops_the_active_fault_and_restores_every_node(cluster, fault):
    events = Events()
    nemesis = Nemesis(cluster, None, [fault], 5.0, random.Random(1), events.record)

    async def scenario() -> None:
        start = await nemesis.start_fault(fault)
        assert start["nodes"]
        await nemesis.heal_all()

    asyncio.run(scenario())
    (f1, start), (f2, stop), (f3, heal) = events.values
    assert (f1, f2, f3) == ("start", "stop", "heal")
    assert stop["nodes"] == start["nodes"]
    assert heal["action"] == "heal" and heal["restarted"] == heal["resumed"] == []
    assert nemesis.processes.killed == {} and nemesis.processes.paused == {}
    # asyncio.run has returned and shut its default executor down: nodes restarted from one of
    # its threads would have been SIGKILLed by PR_SET_PDEATHSIG; ours must still be running.
    wait_until("every node to rejoin", lambda: all_rejoined(cluster))


class LeaderlessCluster(FakeCluster):
    def leader(self) -> str | None:
        return None


def test_partition_follower_without_a_leader_does_nothing_and_says_so():
    network, events = FakeNetwork(), Events()
    nemesis = Nemesis(
        LeaderlessCluster(), network, ["partition-follower"], 1.0, random.Random(1), events.record
    )
    nemesis.leader_wait = 0.2

    async def scenario() -> None:
        await nemesis.start_fault("partition-follower")
        await nemesis.stop_fault()

    asyncio.run(scenario())
    (_, start), (_, stop) = events.values
    assert start == {
        "fault": "partition-follower",
        "shape": "follower",
        "leader": None,
        "action": "none",
        "nodes": [],
        "note": "no leader found: nothing done",
    }
    assert stop == {"fault": "partition-follower", "shape": "follower", "action": "none"}
    assert network.calls == []


def test_a_fault_that_needs_more_nodes_than_the_cluster_has_is_refused():
    class OneNode(FakeCluster):
        ids = ["n1"]

    with pytest.raises(ValueError, match="partition-follower need at least 2 nodes; the cluster has 1"):
        Nemesis(
            OneNode(), FakeNetwork(), ["partition-one", "partition-follower"], 1.0, random.Random(0), print
        )


def test_leader_fault_without_a_leader_does_nothing_and_says_so(cluster):
    for node in cluster.ids:
        cluster.kill(node)  # not the nemesis's doing: it must neither target nor restart them
    events = Events()
    nemesis = Nemesis(cluster, None, ["kill-leader"], 0.3, random.Random(1), events.record)
    nemesis.leader_wait = 0.3

    async def scenario() -> None:
        await nemesis.start_fault("kill-leader")
        await nemesis.heal_all()

    asyncio.run(scenario())
    (_, start), (_, stop), (_, heal) = events.values
    assert start == {
        "fault": "kill-leader",
        "leader": None,
        "action": "none",
        "nodes": [],
        "note": "no leader found: nothing done",
    }
    assert stop == {"fault": "kill-leader", "action": "none"}
    assert heal["restarted"] == []
    assert not any(cluster.alive(n) for n in cluster.ids)


def test_network_faults_record_the_cut_and_link_faults():
    network, events = FakeNetwork(), Events()
    cluster = FakeCluster()
    nodes = cluster.ids
    faults = ["partition", *(f for f in FAULTS if f.startswith("partition-")), "delay", "loss"]
    nemesis = Nemesis(cluster, network, faults, 1.0, random.Random(3), events.record, events.states.append)

    async def scenario() -> None:
        for fault in [*faults, *["partition"] * 12]:
            start = await nemesis.start_fault(fault)
            if start["action"] == "cut":
                assert network.cut_now == {frozenset(p) for p in start["cut"]}
            else:
                assert network.slowed["nodes"] == start["nodes"]
            await nemesis.stop_fault()
            assert network.cut_now == set() and network.slowed == {}
        await nemesis.start_fault("partition-ring")
        await nemesis.heal_all()

    asyncio.run(scenario())
    *run_values, (_, heal) = events.values
    random_shapes = set()
    for start, stop in pairs_of(run_values):
        fault = start["fault"]
        if fault in ("delay", "loss"):
            assert start["action"] == "slow"
            assert stop == {"fault": fault, "action": "clear", "nodes": start["nodes"]}
            assert len(start["nodes"]) in (1, 2, 5)
            if fault == "delay":
                assert 50 <= start["delay_ms"] <= 200 and start["jitter_ms"] == start["delay_ms"] // 5
            else:
                assert start["loss"] == 0.2
            continue
        shape = start["shape"]
        if fault == "partition":
            random_shapes.add(shape)
        else:
            assert fault == f"partition-{shape}"
        cut = {frozenset(p) for p in start["cut"]}
        expected = {"fault": fault, "shape": shape, "action": "cut", **described(nodes, cut)}
        if shape in ("leader", "follower"):
            expected["leader"] = "n4"
        elif "leader" in start:  # halves or one, drawn to cut the leader off with the minority
            assert shape in schedule.MINORITY_SHAPES and start["leader"] == "n4"
            assert "n4" in min(start["components"], key=len)
            expected["leader"] = "n4"
        if shape == "bridge":  # the one node that sees everyone
            (expected["bridge"],) = [n for n, seen in views_of(nodes, cut).items() if seen == set(nodes)]
        assert start == expected
        assert stop == {"fault": fault, "shape": shape, "action": "heal", "cut": start["cut"]}
        if shape == "leader":
            assert start["components"] == [["n1", "n2", "n3", "n5"], ["n4"]]
        if shape == "follower":
            (alone,) = [g for g in start["components"] if len(g) == 1]
            assert alone != ["n4"] and ["n4"] not in start["components"]
        if shape == "bridge":
            assert start["sees"][start["bridge"]] == nodes
        if shape == "ring":
            assert all(len(seen) == 3 for seen in start["sees"].values())
    assert random_shapes == set(shapes.SHAPES), "plain 'partition' draws every shape"
    assert heal == {
        "fault": "heal-all",
        "action": "heal",
        "network": "healed",
        "restarted": [],
        "resumed": [],
        "pids": {},
    }
    assert network.calls[-3:] == [("heal", None), ("heal", None), ("clear_slow", None)]
    assert {f"partition: {shape}" for shape in random_shapes} <= set(events.states)
    assert "partition-ring" in events.states
    assert events.states[-1] == "none"


def test_the_same_seed_gives_the_same_faults():
    def run(seed: int) -> list[Any]:
        events = Events()
        nemesis = Nemesis(
            FakeCluster(),
            FakeNetwork(),
            sorted(NETWORK_FAULTS - FAILPOINT_FAULTS),  # those need real nodes: test_crash_voters.py
            1.0,
            random.Random(seed),
            events.record,
        )

        async def scenario() -> None:
            for _ in range(10):
                await nemesis.start_fault(nemesis.rng.choice(nemesis.faults))
            await nemesis.heal_all()

        asyncio.run(scenario())
        return events.values

    assert run(5) == run(5)
    assert run(5) != run(6)


class FakeProcessCluster(FakeCluster):
    """Live fake processes that kill and signal only count: the process faults' draw, fast."""

    def __init__(self, ids: list[str], leader: str | None) -> None:
        self.ids = ids
        self._leader = leader
        self.procs = {n: type("Proc", (), {"pid": 1000 + i})() for i, n in enumerate(ids)}

    def leader(self) -> str | None:
        return self._leader

    def alive(self, node_id: str) -> bool:
        return True

    def kill(self, node_id: str) -> None:
        pass

    def signal(self, node_id: str, sig: int) -> None:
        pass

    def start(self, node_id: str) -> Any:
        return self.procs[node_id]


def _minorities(cluster: FakeProcessCluster, seed: int, draws: int, share: float | None = None) -> list:
    """(nodes hit, the run's rng state afterwards) of ``draws`` kill or pause faults."""
    events = Events()
    nemesis = Nemesis(cluster, None, ["kill", "pause"], 1.0, random.Random(seed), events.record)
    nemesis.leader_wait = 0.0
    if share is not None:
        schedule.LEADER_SHARE, saved = share, schedule.LEADER_SHARE
    try:

        async def scenario() -> None:
            for _ in range(draws):
                await nemesis.start_fault(nemesis.rng.choice(nemesis.faults))
            await nemesis.heal_all()

        asyncio.run(scenario())
    finally:
        if share is not None:
            schedule.LEADER_SHARE = saved
    hit = [v["nodes"] for f, v in events.values if f == "start"]
    return [hit, nemesis.rng.getstate()]


@pytest.mark.parametrize("size", [3, 5])
def test_kill_and_pause_hit_the_leader_in_about_half_their_draws(size):
    ids = [f"n{i}" for i in range(1, size + 1)]
    hit, _ = _minorities(FakeProcessCluster(ids, "n2"), seed=3, draws=200)
    assert all(1 <= len(nodes) <= (size - 1) // 2 for nodes in hit), "still a minority"
    with_leader = sum("n2" in nodes for nodes in hit) / len(hit)
    uniform = 0.3 if size == 5 else 1 / 3  # a random minority alone
    assert with_leader > uniform + 0.2, with_leader
    assert with_leader < 0.85, "followers alone are still hit"
    assert len({n for nodes in hit for n in nodes}) == size


def test_the_leader_bias_draws_nothing_from_the_runs_random_stream():
    """The fault names, shapes and minorities a seed gives stay as they were; only the swap of
    one node for the leader comes from the second stream."""
    cluster = FakeProcessCluster(["n1", "n2", "n3", "n4", "n5"], "n5")
    biased, state = _minorities(cluster, seed=11, draws=30)
    plain, plain_state = _minorities(cluster, seed=11, draws=30, share=0.0)
    assert state == plain_state
    assert biased != plain
    for b, p in zip(biased, plain, strict=True):
        assert b == p or ("n5" in b and "n5" not in p and len(b) == len(p))
    assert _minorities(cluster, seed=11, draws=30)[0] == biased, "the seed still decides"
    none = _minorities(FakeProcessCluster(["n1", "n2", "n3"], None), seed=11, draws=10)[0]
    assert all(len(nodes) == 1 for nodes in none), "no leader: the random minority, unchanged"


def test_halves_and_one_cut_the_leader_off_with_the_minority_in_about_half_their_draws():
    events = Events()
    cluster = FakeCluster()  # the leader is n4
    nemesis = Nemesis(
        cluster, FakeNetwork(), ["partition-halves", "partition-one"], 1.0, random.Random(4), events.record
    )

    async def scenario() -> None:
        for _ in range(120):
            await nemesis.start_fault(nemesis.rng.choice(nemesis.faults))
        await nemesis.heal_all()

    asyncio.run(scenario())
    starts = [v for f, v in events.values if f == "start"]
    small = [min(v["components"], key=len) for v in starts]
    cut_off = sum("n4" in group for group in small) / len(starts)
    assert 0.55 < cut_off < 0.9, cut_off  # uniform: 2 in 5 for halves, 1 in 5 for one
    assert {len(group) for group in small} == {1, 2}, "the shapes keep their sizes"


# ---------------------------------------------------------------------------- choosing the network


def test_choose_network_kinds(monkeypatch):
    from nemesis.net.netns import NetnsNetwork
    from nemesis.net.proxy import ProxyNetwork

    proxy = choose_network("proxy", tag="abc123")
    assert isinstance(proxy, ProxyNetwork) and proxy.name == "proxy" and proxy.tag == "abc123"
    with pytest.raises(ValueError, match="unknown network kind"):
        choose_network("carrier-pigeon")

    monkeypatch.setattr(
        NetnsNetwork, "available", classmethod(lambda cls: (False, "network namespaces need root"))
    )
    assert isinstance(choose_network("auto"), ProxyNetwork)
    with pytest.raises(NetworkUnavailable, match="network namespaces need root"):
        choose_network("netns")

    monkeypatch.setattr(NetnsNetwork, "available", classmethod(lambda cls: (True, "")))
    monkeypatch.setattr(NetnsNetwork, "netem_available", classmethod(lambda cls: False))
    netns = choose_network("auto", tag="abc123", faults=["partition", "loss"])
    assert isinstance(netns, NetnsNetwork) and netns.tag == "abc123"
    assert isinstance(choose_network("auto", faults=["partition", "delay"]), ProxyNetwork)
    with pytest.raises(NetworkUnavailable, match="netem"):
        choose_network("netns", faults=["delay"])
    with pytest.raises(ValueError, match="'delay' fault cannot run on the netns network"):
        Nemesis(FakeCluster(), netns, ["delay"], 1.0, random.Random(0), lambda *a: None)


# ---------------------------------------------------------------------------- real networks


@pytest.fixture(params=["proxy", "netns"])
def net_cluster(request, tmp_path) -> Iterator[tuple[LocalCluster, Any]]:
    """A 3-node cluster whose node-to-node traffic goes through a real network mechanism."""
    if request.param == "netns" and (reason := netns_missing()):
        pytest.skip(reason)
    network = choose_network(request.param)
    cluster = None
    try:
        config = network.setup(LocalCluster(tmp_path, 3).config)
        cluster = LocalCluster(tmp_path, 3, config=config, command_prefix=network.command_prefix)
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        yield cluster, network
    finally:
        if cluster is not None:
            cluster.stop_all()
        network.teardown()


def cut_links(network: Any) -> set[frozenset[str]]:
    """The pairs the proxy black-holes right now (a pair counts once both directions are cut)."""
    links = network.stats()
    one_way = {(link["src"], link["dst"]) for link in links if link["cut"]}
    return {frozenset(p) for p in one_way if (p[1], p[0]) in one_way}


@pytest.mark.cluster
def test_partition_leader_cuts_it_off_and_heal_all_heals(net_cluster):
    cluster, network = net_cluster
    events = Events()
    nemesis = Nemesis(cluster, network, ["partition-leader"], 5.0, random.Random(2), events.record)

    def new_leader_elsewhere(old: str) -> str | None:
        statuses = cluster.statuses()
        leader = cluster.leader()
        if leader in (None, old):
            return None
        # The isolated node cannot have heard of the new leader.
        return leader if (statuses[old] or {}).get("leader") != leader else None

    async def scenario() -> None:
        start = await nemesis.start_fault("partition-leader")
        old = start["leader"]
        assert start["cut"] == sorted(sorted((old, n)) for n in cluster.ids if n != old)
        assert sorted(start["components"]) == sorted([[old], sorted(set(cluster.ids) - {old})])
        if network.name == "proxy":
            assert cut_links(network) == {frozenset(p) for p in start["cut"]}
        await asyncio.to_thread(wait_until, "a leader among the majority", lambda: new_leader_elsewhere(old))
        await nemesis.heal_all()
        if network.name == "proxy":
            assert cut_links(network) == set()

    asyncio.run(scenario())
    assert [f for f, _ in events.values] == ["start", "stop", "heal"]
    assert events.values[2][1]["network"] == "healed"
    wait_until("every node to rejoin", lambda: all_rejoined(cluster))


@pytest.mark.cluster
def test_partition_follower_cuts_off_a_node_that_is_not_the_leader(net_cluster):
    cluster, network = net_cluster
    events = Events()
    nemesis = Nemesis(cluster, network, ["partition-follower"], 5.0, random.Random(2), events.record)
    before = wait_until("the cluster to report a leader", cluster.leader)

    async def scenario() -> None:
        start = await nemesis.start_fault("partition-follower")
        leader = start["leader"]
        (alone,) = [g[0] for g in start["components"] if len(g) == 1]
        assert leader == before, "resolved against the leader of the moment"
        assert alone != leader and alone in cluster.ids
        assert start["cut"] == sorted(sorted((alone, n)) for n in cluster.ids if n != alone)
        if network.name == "proxy":
            assert cut_links(network) == {frozenset(p) for p in start["cut"]}
        # The leader kept its majority: it still leads its term after many election timeouts,
        # and the cut-off follower (pre-vote) never led and never pushed the term up.
        leader_term = (cluster.status(leader) or {}).get("term")
        for _ in range(10):
            await asyncio.sleep(0.1)
            lonely = cluster.status(alone) or {}
            assert lonely.get("role") != "leader"
            assert lonely.get("term", 0) <= leader_term
        assert cluster.leader() == leader and (cluster.status(leader) or {}).get("term") == leader_term
        await nemesis.heal_all()

    asyncio.run(scenario())
    assert [f for f, _ in events.values] == ["start", "stop", "heal"]
    wait_until("every node to rejoin", lambda: all_rejoined(cluster))


@pytest.mark.cluster
def test_network_schedule_over_proxies_records_what_is_in_force(tmp_path):
    network = choose_network("proxy")
    cluster = None

    def check_now(f: str, value: dict[str, Any]) -> None:
        if f == "start" and value["action"] == "cut":
            assert cut_links(network) == {frozenset(p) for p in value["cut"]}
        elif f in ("stop", "heal"):
            assert cut_links(network) == set()

    events = Events(check_now)
    try:
        config = network.setup(LocalCluster(tmp_path, 3).config)
        cluster = LocalCluster(tmp_path, 3, config=config)
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        faults = ["partition", "partition-ring", "partition-bridge", "delay", "loss"]
        nemesis = Nemesis(
            cluster, network, faults, 0.4, random.Random(4), events.record, events.states.append
        )

        def enough() -> bool:  # three faults done, a cut and a slow link among them
            stops = [v for f, v in events.values if f == "stop"]
            actions = {v["action"] for f, v in events.values if f == "start"}
            return len(stops) >= 3 and {"cut", "slow"} <= actions

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(nemesis.run(stop))
            await until("three fault cycles with a cut and a slow link", enough)
            stop.set()
            await task
            await nemesis.heal_all()

        asyncio.run(scenario())
        *run_values, (last_f, _heal) = events.values
        pairs = pairs_of(run_values)
        assert len(pairs) >= 3 and last_f == "heal"
        assert {"cut", "slow"} <= {start["action"] for start, _ in pairs}
        wait_until("every node to rejoin", lambda: all_rejoined(cluster))
    finally:
        if cluster is not None:
            cluster.stop_all()
        network.teardown()
