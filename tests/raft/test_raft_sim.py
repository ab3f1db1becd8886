"""RaftCore under simulation: thousands of random faulty schedules checked for safety and
liveness, the targeted scenarios that need more than the scenario language (hand-made
messages, timers set directly, faults on every tick), and unit tests of the core's contract.
Scenarios that read as a trace (pre-vote, check-quorum, figure 8, ReadIndex, snapshots,
crash points, deliberate bugs) are data files in tests/raft/scenarios/.

Environment knobs:
  RAFTSIM_SCHEDULES=20000     run more random schedules (default: a few seconds' worth)
  RAFTSIM_BASE_SEED=5000      start the seeds somewhere else
  RAFTSIM_SEED=1234           replay one schedule (the `replay` test), printing its trace
"""

from __future__ import annotations

import os
import random
import sys
import time

import pytest
from raftsim import InvariantViolation, Sim, run_schedule

from raftchat.raft.core import Config, RaftCore, Ready, Role
from raftchat.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    HardState,
    InstallSnapshot,
    RequestVote,
    Snapshot,
    SnapshotResponse,
    VoteResponse,
)

DEFAULT_SCHEDULES = 1000


def _replay_hint(seed: int) -> str:
    return f"reproduce with: RAFTSIM_SEED={seed} python -m pytest -q tests/raft/test_raft_sim.py -k replay -s"


def _run_or_explain(seed: int) -> Sim:
    try:
        return run_schedule(seed)
    except AssertionError as exc:
        sim = getattr(exc, "sim", None)
        details = sim.describe() if sim is not None else ""
        pytest.fail(
            f"schedule seed {seed} failed: {type(exc).__name__}: {exc}\n{_replay_hint(seed)}\n{details}"
        )


# ---------------------------------------------------------------------- random schedules


def test_random_schedules() -> None:
    """Random faults (drop, delay, reorder, duplicate, partition, crash mid-Ready, compaction)
    with safety checked after every event, then heal and require progress."""
    count = int(os.environ.get("RAFTSIM_SCHEDULES", DEFAULT_SCHEDULES))
    base = int(os.environ.get("RAFTSIM_BASE_SEED", 0))
    started = time.perf_counter()
    committed = terms = 0
    for seed in range(base, base + count):
        sim = _run_or_explain(seed)
        committed += sim.max_committed
        terms += len(sim.leaders)
    elapsed = time.perf_counter() - started
    print(
        f"\n{count} schedules in {elapsed:.1f}s ({count / elapsed:.0f}/s); "
        f"{committed / count:.1f} committed entries and {terms / count:.1f} leader terms per schedule"
    )


def test_the_liveness_bound_is_counted_in_election_periods() -> None:
    """An election attempt needs its round trips; when they are longer than the election
    timeout the bound counts them instead (schedule 1287: timeouts of 3 to 5 ticks, messages
    delayed up to 2, writes of up to a tick, so a vote and the first append are answered after
    up to 6; 60 timeouts of 3 were too few rounds for it)."""
    sim = Sim(1287, async_writes=True)
    assert (sim.config.election_ticks, sim.max_delay) == (3, 2)
    assert sim.election_period() == 6 and sim.liveness_rounds() == 360
    _run_or_explain(1287)


def test_replay() -> None:
    """Replay one schedule by seed, printing its configuration and final state."""
    seed = os.environ.get("RAFTSIM_SEED")
    if seed is None:
        pytest.skip("set RAFTSIM_SEED to replay a schedule")
    sim = _run_or_explain(int(seed))
    print(sim.describe())


def test_a_failing_schedule_names_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure report must carry the seed and the replay command."""

    def broken(seed: int) -> Sim:
        exc = InvariantViolation("synthetic")
        exc.sim = Sim(seed, nodes=1)  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(sys.modules[__name__], "run_schedule", broken)
    with pytest.raises(pytest.fail.Exception) as info:
        _run_or_explain(77)
    assert "RAFTSIM_SEED=77 python -m pytest -q tests/raft/test_raft_sim.py -k replay" in str(info.value)


# ---------------------------------------------------------------------- scenario helpers


def quiet_sim(nodes: int, seed: int = 0, **config: object) -> Sim:
    """A sim with a reliable network, for hand-written scenarios."""
    cfg = Config(**{"election_ticks": 10, "heartbeat_ticks": 2, **config})  # type: ignore[arg-type]
    sim = Sim(seed, nodes=nodes, config=cfg, drop=0.0, dup=0.0, max_delay=0, crash_in_ready=0.0)
    sim.notice_crashes = False  # scenarios say themselves who learns of a crash
    return sim


def win(sim: Sim, node: str) -> None:
    """Tick only ``node`` until it leads a new term, delivering messages but stopping the
    moment it wins (so its first AppendEntries are still in the network)."""
    core = sim.core(node)
    old = core.term if core.role is Role.LEADER else -1

    def won() -> bool:
        return core.role is Role.LEADER and core.term > old

    for _ in range(100):
        sim.tick(node)
        sim.deliver_all(until=won)
        if won():
            return
    raise AssertionError(f"{node} did not win an election")


def elect(sim: Sim, node: str) -> None:
    """Make ``node`` leader and let its no-op commit everywhere reachable."""
    win(sim, node)
    settle(sim, node)


def settle(sim: Sim, leader: str) -> None:
    """Deliver everything, then let one tick of the leader pass: a commit that no later
    AppendEntries carried reaches the followers with that tick's commit news."""
    sim.deliver_all()
    sim.tick(leader)
    sim.deliver_all()


def run(sim: Sim, steps: int) -> None:
    for _ in range(steps):
        sim.time_step()


def drain(core: RaftCore) -> Ready:
    rd = core.ready()
    core.advance(rd)
    return rd


# ---------------------------------------------------------------------- pre-vote, check-quorum


def _pre_vote_grants(sim: Sim, to: str) -> list[VoteResponse]:
    """Watch the network for pre-vote grants to ``to`` (appended as they are delivered)."""
    seen: list[VoteResponse] = []
    send = sim.send

    def spy(msg: object) -> None:
        if isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted and msg.dst == to:
            seen.append(msg)
        send(msg)  # type: ignore[arg-type]

    sim.send = spy  # type: ignore[method-assign]
    return seen


def test_a_rejoining_node_with_an_up_to_date_log_never_gets_its_deferred_pre_vote() -> None:
    """The safety side of deferring pre-votes: a node cut off from a healthy leader (its log
    as long as everyone's, so every follower would vote for it on log grounds) asks again and
    again after it rejoins, but the leader's heartbeats keep renewing the followers' leases
    and dropping the held-back requests; the leader is never deposed."""
    sim = quiet_sim(3)
    elect(sim, "n1")
    term = sim.core("n1").term
    grants = _pre_vote_grants(sim, "n3")
    sim.partition(["n3"])
    run(sim, 5 * sim.config.election_ticks)
    assert sim.core("n3").role is Role.PRE_CANDIDATE
    assert sim.core("n3").last_index == sim.core("n2").last_index, "the scenario needs an up-to-date log"
    sim.heal()
    for _ in range(20 * sim.config.election_ticks):
        sim.time_step()
        # Rejoin at every phase of n3's timer: put it back in front of the others again.
        if sim.core("n3").role is Role.FOLLOWER:
            sim.core("n3")._election_elapsed = sim.core("n3")._timeout - 1
    assert grants == []
    assert sim.core("n1").role is Role.LEADER and [sim.core(i).term for i in sim.ids] == [term] * 3


# ---------------------------------------------------------------------- snapshots


def test_follower_ignores_snapshot_older_than_its_commit() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, [Entry(i, 1, b"x") for i in (1, 2, 3)], commit=3))
    drain(core)
    core.step(InstallSnapshot("a", "b", 1, 2, 1, 0, b"old", True))
    rd = drain(core)
    assert rd.snapshot is None and core.last_index == 3 and core.term_of(1) == 1
    assert rd.messages == [SnapshotResponse("b", "a", 1, 3)]


def test_installed_snapshot_keeps_a_matching_suffix_and_drops_a_conflicting_log() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, [Entry(i, 1, b"x") for i in (1, 2, 3, 4)], commit=1))
    drain(core)
    core.step(InstallSnapshot("a", "b", 1, 2, 1, 0, b"s2", True))
    rd = drain(core)
    assert rd.snapshot == Snapshot(2, 1, b"s2")
    assert [e.index for e in rd.entries] == [3, 4], "the kept suffix is handed out again after the snapshot"
    assert rd.committed == [] and core.commit_index == 2 and core.last_index == 4
    assert core.term_of(1) is None and core.term_of(2) == 1

    core.step(InstallSnapshot("a", "b", 2, 3, 2, 0, b"s3", True))  # disagrees at index 3
    rd = drain(core)
    assert rd.snapshot == Snapshot(3, 2, b"s3") and rd.entries == [] and core.last_index == 3


def test_compaction_and_log_access() -> None:
    sim = quiet_sim(1)
    elect(sim, "n1")
    for _ in range(5):
        sim.propose("n1")
    core = sim.core("n1")
    assert core.commit_index == 6
    assert sim.compact("n1")
    assert core.term_of(6) == core.term and core.term_of(5) is None and core.term_of(7) is None
    assert core.entries_from(1) == [] and core.last_index == 6
    sim.propose("n1")
    assert [e.index for e in core.entries_from(1)] == [7]


# ---------------------------------------------------------------------- ReadIndex


def _leader_core(nodes: list[str], **config: object) -> RaftCore:
    """A core that just won term 1 (votes fed in by hand) and persisted its no-op."""
    core = RaftCore(nodes[0], nodes, Config(pre_vote=False, **config), random.Random(3))  # type: ignore[arg-type]
    while core.role is not Role.CANDIDATE and len(nodes) > 1:
        core.tick()
    for peer in nodes[1 : len(nodes) // 2 + 1]:
        core.step(VoteResponse(peer, nodes[0], 1, True))
    for _ in range(50):
        if core.role is Role.LEADER:
            break
        core.tick()
    assert core.role is Role.LEADER
    drain(core)
    return core


def test_reads_are_dropped_when_the_leader_steps_down() -> None:
    core = _leader_core(["a", "b", "c"])
    assert core.read_index(1)
    drain(core)
    core.step(AppendEntries("c", "a", 2, 0, 0, []))
    rd = drain(core)
    assert rd.dropped_reads == [1] and rd.role_changed and core.leader_id == "c"


# ---------------------------------------------------------------------- the core's contract


def test_proposals_made_between_readys_travel_in_one_batch_per_follower() -> None:
    sim = quiet_sim(3)
    elect(sim, "n1")
    core = sim.core("n1")
    first = core.propose(b"a")
    core.propose(b"b")
    core.propose(b"c")
    sim.process("n1")
    batches = [m for _, _, m in sim.net if isinstance(m, AppendEntries)]
    assert sorted(m.dst for m in batches) == ["n2", "n3"]
    assert all([e.index for e in m.entries] == [first, first + 1, first + 2] for m in batches)


def test_restart_reapplies_committed_entries_after_the_snapshot() -> None:
    sim = quiet_sim(3)
    elect(sim, "n1")
    for _ in range(4):
        sim.propose("n1")
    settle(sim, "n1")
    sim.compact("n2")  # at 5
    sim.propose("n1")
    settle(sim, "n1")
    st = sim.nodes["n2"].storage
    assert st.snap_index == 5 and st.hard_state.commit == 6
    core = RaftCore("n2", sim.ids, sim.config, random.Random(0), st.hard_state, st.snapshot, st.entries)
    assert core.commit_index == 6 and core.last_index == 6
    rd = drain(core)
    assert rd.snapshot is None, "the runtime restores its own snapshot at startup"
    assert [e.index for e in rd.committed] == [6]
    assert rd.hard_state is None and not rd.role_changed


def test_restart_clamps_a_commit_beyond_the_stored_log() -> None:
    core = RaftCore(
        "a", ["a", "b", "c"], Config(), random.Random(0), HardState(2, "b", 9), None, [Entry(1, 1, b"")]
    )
    assert core.commit_index == 1 and [e.index for e in drain(core).committed] == [1]


def test_committed_entries_are_handed_out_with_the_entries() -> None:
    """A commit is on a majority's disks already: applying does not wait for ours."""
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, [Entry(1, 1, b""), Entry(2, 1, b"x")], commit=2))
    rd = core.ready()
    assert [e.index for e in rd.entries] == [1, 2] and [e.index for e in rd.committed] == [1, 2]
    assert rd.hard_state == HardState(1, None, 2)
    assert not core.has_ready(), "nothing more until this Ready is advanced"
    with pytest.raises(RuntimeError):
        core.ready()
    core.advance(rd)
    assert not core.has_ready()


def test_leader_counts_itself_only_for_persisted_entries() -> None:
    core = _leader_core(["a", "b", "c"])
    index = core.propose(b"x")
    core.step(AppendResponse("b", "a", 1, True, match_index=1))
    rd = core.ready()  # hands out the proposal, not yet persisted
    core.step(AppendResponse("b", "a", 1, True, match_index=index))
    assert core.commit_index == 1, "a majority needs the leader's own durable copy"
    core.advance(rd)
    assert core.commit_index == index


def test_a_leader_writing_in_the_background_commits_with_its_followers_before_its_own_disk() -> None:
    core = _leader_core(["a", "b", "c"])
    index = core.propose(b"x")
    rd = core.ready()
    assert [e.index for e in rd.entries] == [index]
    core.advance(rd, persisted=False)  # the write is under way
    core.step(AppendResponse("b", "a", 1, True, match_index=index))
    assert core.commit_index == 1, "one follower and an unwritten leader are no majority"
    core.step(AppendResponse("c", "a", 1, True, match_index=index))
    assert core.commit_index == index, "two followers are"
    rd2 = core.ready()
    assert [e.index for e in rd2.committed] == [1, index] and rd2.entries == []
    core.advance(rd2, persisted=False)
    core.persisted(rd)
    core.persisted(rd2)
    assert core.commit_index == index and not core.ready().committed


def test_a_background_write_overtaken_by_a_truncation_does_not_count() -> None:
    """The write in flight held entries a new leader then overwrote: its completion must not
    make the follower's (unused) durable mark, or a later leader's count, cover the new ones."""
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, [Entry(1, 1, b"x"), Entry(2, 1, b"y")], commit=1))
    old = core.ready()
    core.advance(old, persisted=False)
    core.step(AppendEntries("c", "b", 2, 1, 1, [Entry(2, 2, b"z")], commit=1))
    new = core.ready()
    assert new.entries == [Entry(2, 2, b"z")]
    core.advance(new, persisted=False)
    core.persisted(old)
    assert core._persisted < 2, "index 2 on disk is the old entry, not the new leader's"
    core.persisted(new)
    assert core._persisted == 2


def test_stale_or_duplicate_appends_never_truncate() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    ents = [Entry(i, 1, f"e{i}".encode()) for i in (1, 2, 3)]
    core.step(AppendEntries("a", "b", 1, 0, 0, ents))
    core.step(AppendEntries("a", "b", 1, 0, 0, ents[:1]))  # an old, shorter copy arrives late
    assert core.last_index == 3
    rd = drain(core)
    assert [m.match_index for m in rd.messages] == [3, 1]
    core.step(AppendEntries("c", "b", 2, 1, 1, [Entry(2, 2, b"new")]))  # a real conflict
    assert core.last_index == 2 and core.term_of(2) == 2
    assert [e.data for e in drain(core).entries] == [b"new"]


def test_rejection_hints_skip_a_conflicting_term() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    terms = [1, 1, 1, 2, 2]
    core.step(AppendEntries("a", "b", 2, 0, 0, [Entry(i + 1, t, b"") for i, t in enumerate(terms)]))
    drain(core)
    core.step(AppendEntries("a", "b", 3, 7, 3, []))
    core.step(AppendEntries("a", "b", 3, 5, 1, []))
    replies = drain(core).messages
    assert [(m.success, m.hint_index, m.hint_term) for m in replies] == [(False, 5, 2), (False, 3, 1)]


def test_messages_for_someone_else_or_from_strangers_are_ignored() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "c", 5, 0, 0, [Entry(1, 5, b"")]))
    core.step(AppendEntries("z", "b", 5, 0, 0, [Entry(1, 5, b"")]))
    assert core.term == 0 and core.last_index == 0 and not core.has_ready()


def test_hard_state_only_when_it_changes() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, [Entry(1, 1, b"")]))
    assert drain(core).hard_state == HardState(1, None, 0)
    core.step(AppendEntries("a", "b", 1, 1, 1, []))
    rd = drain(core)
    assert rd.hard_state is None and rd.messages


def test_liveness_after_a_storm() -> None:
    """A hand-picked rough schedule still ends with a leader that commits."""
    sim = Sim(4242, nodes=5, drop=0.25, dup=0.2, max_delay=2)
    sim.run_random(600)
    rounds = sim.check_liveness()
    assert rounds < 60 * sim.config.election_ticks


# ---------------------------------------------------------------------- snapshot transfer in chunks


def _behind_by_a_snapshot(sim: Sim, entries: int = 40, laggard: str = "n3") -> None:
    """n1 leads; ``laggard`` is down while ``entries`` commit, and everyone else compacts."""
    elect(sim, "n1")
    sim.crash(laggard)
    for _ in range(entries):
        sim.propose("n1", b"payload-%03d" % sim.next_cmd)
        sim.next_cmd += 1
        sim.deliver_all()
    for node in sim.ids:
        if node != laggard:
            assert sim.compact(node)


def _chunks_to(sim: Sim, dst: str) -> list[InstallSnapshot]:
    return [m for _, _, m in sim.net if isinstance(m, InstallSnapshot) and m.dst == dst]


def _caught_up(sim: Sim, node: str, leader: str) -> bool:
    return sim.nodes[node].sm == sim.nodes[leader].sm and sim.nodes[node].core is not None


@pytest.mark.parametrize("seed", range(8))
def test_snapshot_transfer_survives_drops_duplicates_and_reordering(seed: int) -> None:
    sim = quiet_sim(3, seed=seed, snapshot_chunk=8, snapshot_inflight=4)
    _behind_by_a_snapshot(sim, entries=30)
    sim.drop, sim.dup, sim.max_delay = 0.3, 0.3, 3
    sim.start("n3")
    for _ in range(400 * sim.config.election_ticks):
        sim.time_step()
        if _caught_up(sim, "n3", "n1"):
            break
    assert _caught_up(sim, "n3", "n1"), sim.describe()
    sim.check_deep()
    size = len(sim.nodes["n1"].storage.snapshot.data)
    assert sim.sent["InstallSnapshot"] > size // 8, "lost chunks were sent again"


def test_follower_takes_chunks_only_in_order_and_installs_with_the_last() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, [Entry(1, 1, b"")], commit=1))
    drain(core)
    data = b"0123456789abcdef"
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 4, data[4:8], False))  # no start seen: ask for 0
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 0, data[0:4], False))
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 0, data[0:4], False))  # duplicate
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 8, data[8:12], False))  # after a gap
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 4, data[4:8], False))
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 8, data[8:12], False))
    rd = drain(core)
    assert rd.snapshot is None and core.commit_index == 1
    assert [(m.match_index, m.snap_index, m.offset) for m in rd.messages] == [
        (0, 9, 0),
        (0, 9, 4),
        (0, 9, 4),
        (0, 9, 4),
        (0, 9, 8),
        (0, 9, 12),
    ]
    core.step(InstallSnapshot("a", "b", 1, 8, 1, 12, b"other", True))  # another transfer: refused
    core.step(InstallSnapshot("a", "b", 1, 9, 1, 12, data[12:], True))
    rd = drain(core)
    assert rd.snapshot == Snapshot(9, 1, data), "persisted before the answer below is sent"
    assert [(m.match_index, m.offset) for m in rd.messages] == [(0, 0), (9, 0)]
    assert core.commit_index == 9 and core.last_index == 9


def test_chunks_of_an_older_term_are_refused() -> None:
    core = RaftCore("b", ["a", "b", "c"], Config(), random.Random(1))
    core.step(AppendEntries("c", "b", 3, 0, 0, []))
    drain(core)
    core.step(InstallSnapshot("a", "b", 2, 9, 2, 0, b"stale", True))
    rd = drain(core)
    assert rd.snapshot is None and core.commit_index == 0 and core.leader_id == "c"
    assert rd.messages == [SnapshotResponse("b", "a", 3, 0)]


def test_an_asker_that_cannot_win_does_not_hold_back_a_follower_that_can() -> None:
    """A follower waits for a pre-vote asker once per term. An asker that reaches only this
    follower asks again every timeout for the same term; the follower must still time out
    and campaign itself (before, each grant restarted its timer and no one ever led)."""
    sim = quiet_sim(3)
    elect(sim, "n1")
    sim.crash("n1")
    f = sim.core("n2")
    term = f.term
    for _ in range(sim.config.election_ticks):
        f.tick()
    drain(f)
    campaigned = False
    for _ in range(6 * sim.config.election_ticks):
        f.step(RequestVote("n3", "n2", term + 1, f.last_index, f.last_term, pre_vote=True))
        f.tick()
        out = drain(f).messages
        if any(isinstance(m, RequestVote) and m.src == "n2" for m in out):
            campaigned = True
            break
    assert campaigned, "the follower never campaigned while the same asker kept asking"
