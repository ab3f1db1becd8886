"""The checks composed with linearizability: replicas agree, nodes stay healthy and recover.

The first tests need no cluster: the replica's hash chain and digest, the log scan, the verdict
composition and the plan key. The ones marked ``cluster`` run the harness against real node
processes and break a node from outside (a pause or a kill the harness did not make), or plant
a bug, and expect the matching verdict and exit code; the correct build must pass.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness import plan as plans
from harness import verdicts
from harness.health import scan_logs
from harness.restart import problem_after_restart
from harness.runner import run_plan
from raftchat.chat import ChatMachine
from raftchat.sessions import CHECKPOINT_EVERY, Replica, encode_command


def _entries(count: int) -> list[tuple[int, int, bytes]]:
    """(index, term, data): accounts created, then messages between them, with a no-op per term."""
    entries: list[tuple[int, int, bytes]] = []
    for index in range(1, count + 1):
        term = 1 + index // 50
        if index % 50 == 0:
            entries.append((index, term, b""))  # a new leader's no-op
            continue
        user = f"u{index % 7}"
        op = (
            {"op": "create_account", "key": b"k", "user": user}
            if index < 10
            else {
                "op": "send_message",
                "key": b"k",
                "sender": user,
                "to": f"u{(index * 3) % 7}",
                "text": f"t{index}",
            }
        )
        entries.append((index, term, encode_command(f"c{index % 3}", index, 0, op)))
    return entries


def _replay(entries, bugs=frozenset(), restore_at: int | None = None) -> Replica:
    """A replica that applies ``entries``; with ``restore_at``, it instead installs another
    replica's snapshot of index ``restore_at`` and applies only the rest (as a follower does)."""
    replica = Replica(ChatMachine(), bugs=frozenset(bugs))
    rest = entries
    if restore_at is not None:
        leader = _replay(entries[:restore_at])
        replica.restore(leader.snapshot())
        rest = entries[restore_at:]
    for index, term, data in rest:
        replica.apply_entry(index, term, data)
    return replica


def test_chain_and_digest_continue_across_a_snapshot_install():
    entries = _entries(300)
    whole, installed = _replay(entries), _replay(entries, restore_at=137)
    assert installed.applied_index == whole.applied_index == 300
    assert installed.chain == whole.chain
    assert installed.digest() == whole.digest()
    status = whole.chain_status(since=200)
    assert [i for i, _ in status["checkpoints"]] == [256]
    assert all(i % CHECKPOINT_EVERY == 0 for i, _ in whole.chain_status()["checkpoints"])
    # A digest is of the state, not of how it was reached: a restored machine (users inserted in
    # sorted order) digests like one that created them in apply order.
    assert list(installed.machine._inboxes) != list(whole.machine._inboxes)


def test_the_chain_tells_apart_what_the_digest_alone_would_see_late():
    entries = _entries(300)
    skipped = _replay(entries, bugs={"skip-after-restore"}, restore_at=137)
    whole = _replay(entries)
    assert skipped.chain != whole.chain and skipped.digest() != whole.digest()
    lost = Replica(ChatMachine(), bugs=frozenset({"snapshot-drops-last-key"}))
    for index, term, data in entries[:137]:
        lost.apply_entry(index, term, data)
    restored = Replica(ChatMachine())
    restored.restore(lost.snapshot())
    reference = _replay(entries[:137])
    assert restored.chain == reference.chain  # the same entries were applied ...
    assert restored.digest() != reference.digest()  # ... but the restored state lost a user
    assert sorted(restored.machine._inboxes) == sorted(reference.machine._inboxes)[:-1]
    with pytest.raises(AssertionError, match="invariant"):
        _replay(entries, bugs={"assert-after-restore"}, restore_at=137)


def test_log_scan_finds_internal_errors_and_two_leaders_of_one_term(tmp_path):
    stamp = "2026-12-01 10:00:0{},000 {} INFO "
    (tmp_path / "n1.log").write_text(
        stamp.format(1, "n1") + "n1: term 3, leader, leader n1\n"
        + stamp.format(2, "n1") + "n1: snapshot at index 100 (2000 bytes)\n"
    )  # fmt: skip
    (tmp_path / "n2.log").write_text(
        stamp.format(3, "n2") + "n2: term 3, leader, leader n2\n"
        + "Traceback (most recent call last):\n  File \"x.py\", line 1\nAssertionError: boom\n"
    )  # fmt: skip
    origin = time.mktime(time.strptime("2026-12-01 10:00:00", "%Y-%m-%d %H:%M:%S"))
    found = scan_logs(tmp_path, origin)
    assert found["log_error_count"] == 2
    assert {e["node"] for e in found["log_errors"]} == {"n2"}
    assert found["log_errors"][0]["t"] == 3.0
    assert found["two_leaders"] == [{"term": 3, "leaders": ["n1", "n2"], "t": 1.0}]
    (tmp_path / "n2.log").write_text(
        stamp.format(3, "n2") + "n2: term 4, leader, leader n2\n"
        + stamp.format(4, "n2") + "n2: term 5, follower, leader n1\n"
    )  # fmt: skip
    (tmp_path / "n3.log").write_text(stamp.format(5, "n3") + "n3: term 5, follower, leader n3\n")
    clean = scan_logs(tmp_path, origin)
    assert clean["log_error_count"] == 0 and clean["terms_led"] == 3
    # n3 took itself for term 5's leader while n2 followed n1 in term 5: two leaders of one term.
    assert clean["two_leaders"] == [{"term": 5, "leaders": ["n1", "n3"], "t": 4.0}]


def test_verdicts_compose_with_their_own_exit_codes():
    ok = {"valid": True}
    assert verdicts.compose({"linearizable": ok, "health": ok}) == (True, 0)
    assert verdicts.compose({"linearizable": ok, "convergence": {"valid": False}}) == (False, 4)
    assert verdicts.compose({"linearizable": ok, "health": {"valid": False}}) == (False, 5)
    assert verdicts.compose({"linearizable": ok, "recovery": {"valid": False}}) == (False, 6)
    both = {"linearizable": {"valid": False}, "recovery": {"valid": False}}
    assert verdicts.compose(both) == (False, 1)
    assert verdicts.compose({"linearizable": {"valid": "unknown"}}) == ("unknown", 2)
    assert verdicts.compose({"linearizable": ok}, error="boom") == (True, 3)
    assert verdicts.worst([0, 6, 2, 5]) == 5 and verdicts.worst([0, 3, 2]) == 3


def test_plan_key_raftchat_is_validated_and_defaults_to_frequent_compaction():
    assert plans.load(None).raftchat == {"snapshot_every": plans.DEFAULT_SNAPSHOT_EVERY}
    tuned = plans.load({"raftchat": {"heartbeat_ms": 20, "snapshot_every": 30}}).raftchat
    assert tuned == {"snapshot_every": 30, "heartbeat_ms": 20}
    for bad, words in [
        ({"raftchat": {"snapshot_evry": 3}}, "unknown key 'snapshot_evry'"),
        ({"raftchat": {"tick_ms": 0}}, "'raftchat.tick_ms' must be a positive integer"),
        ({"raftchat": {"heartbeat_ms": 400}}, "heartbeat_ms must be smaller"),
        ({"raftchat": [1]}, "'raftchat' must be a mapping"),
        ({"converge_timeout": -1}, "'converge_timeout'"),
    ]:
        with pytest.raises(plans.PlanError, match=words):
            plans.load(bad)


# ---------------------------------------------------------------------------------- real runs


def _node_pid(store: Path, node: str) -> int | None:
    """The pid of a run's node process, found by its command line (the run's data directory)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in cmdline]
        named = "--id" in words and words[words.index("--id") + 1] == node
        if "raftchat" in words and named and any(str(store) in w for w in words):
            return int(pid)
    return None


def _run_and_meddle(store: Path, plan: dict, node: str, sig: int) -> dict:
    """Run ``plan``; once the load is under way, send ``sig`` to ``node`` from outside the harness."""
    sent: list[int] = []

    def meddle() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not sent:
            pid = _node_pid(store, node)
            if pid is not None and any(store.glob("*/*/nodes.jsonl")):
                time.sleep(2)  # a few polls of the healthy cluster first
                os.kill(pid, sig)
                sent.append(pid)
            time.sleep(0.05)

    meddler = threading.Thread(target=meddle, daemon=True)
    meddler.start()
    outcome = run_plan(None, plan, store, progress=False)  # signal handlers need the main thread
    meddler.join(timeout=5)
    assert sent, f"{node} was never found running"
    return outcome.results


SHORT = {"nodes": 3, "concurrency": 6, "rate": 100, "recovery": 1, "converge_timeout": 4}


@pytest.mark.cluster
def test_frequent_compaction_under_kill_and_partition_is_valid_with_snapshot_counts(tmp_path):
    plan = {
        **SHORT,
        "time_limit": 14,  # three faults; a node cut off or killed for 2 s misses over 25 entries
        "nemesis": ["kill", "partition"],
        "nemesis_interval": 2,
        "raftchat": {"snapshot_every": 25},
    }
    outcome = run_plan(None, plan, tmp_path / "store", progress=False)
    results = outcome.results
    assert outcome.valid is True and outcome.exit_code == 0, json.dumps(results.get("checks"))
    assert results["checks"] == {"linearizable": True, "convergence": True, "health": True, "recovery": True}
    snaps = {n: results["node_stats"][n]["snapshots"] for n in ("n1", "n2", "n3")}
    assert all(s["taken"] >= 3 for s in snaps.values()), snaps
    assert sum(s["installed"] for s in snaps.values()) >= 1, snaps
    assert results["recovery"]["converged"] and results["convergence"]["compared_indices"] > 10
    restart = results["recovery"]["restart"]  # every node killed at the end came back to that state
    assert restart["valid"] is True and restart["applied_after"] >= restart["applied_before"] > 0, restart
    assert set(results["stats"]["availability_by_node"]) == {"n1", "n2", "n3"}
    assert results["node_stats"]["harness"]["rss_mib"]["peak"] > 0
    assert (outcome.run_dir / "nodes.png").stat().st_size > 0


@pytest.mark.cluster
def test_a_node_kept_from_catching_up_fails_recovery(tmp_path):
    store = tmp_path / "store"
    results = _run_and_meddle(store, {**SHORT, "time_limit": 8, "nemesis": []}, "n3", signal.SIGSTOP)
    assert results["exit_code"] == verdicts.EXIT_NOT_RECOVERED, results.get("checks")
    assert results["checks"]["recovery"] is False and results["checks"]["health"] is True
    assert [b["node"] for b in results["recovery"]["behind"]] == ["n3"]


@pytest.mark.cluster
def test_a_node_that_dies_by_itself_fails_node_health(tmp_path):
    store = tmp_path / "store"
    results = _run_and_meddle(store, {**SHORT, "time_limit": 8, "nemesis": []}, "n2", signal.SIGKILL)
    assert results["exit_code"] == verdicts.EXIT_NODE_FAILED, results.get("checks")
    [event] = results["health"]["unexpected_exits"]
    assert event["node"] == "n2" and event["returncode"] == -signal.SIGKILL
    assert event["restarted"] is None and event["down_s"] > 3
    assert results["checks"]["linearizable"] is True  # two of three nodes kept serving


@pytest.mark.cluster
def test_a_replica_that_skips_an_entry_after_a_restore_is_caught_as_divergence(tmp_path):
    plan = {
        **SHORT,
        "time_limit": 12,
        "nemesis": ["kill"],
        "nemesis_interval": 2,
        "bug": "skip-after-restore",
    }
    outcome = run_plan(None, {**plan, "raftchat": {"snapshot_every": 25}}, tmp_path / "store", progress=False)
    # The lost entry may also show to clients (then "not linearizable" outranks "diverged"):
    # what must hold is that the convergence check saw the replicas part.
    checks = outcome.results.get("checks")
    assert checks["convergence"] is False, checks
    assert outcome.exit_code in (verdicts.EXIT_DIVERGED, verdicts.EXIT_INVALID), checks
    first = outcome.results["convergence"]["divergences"][0]
    assert first["index"] > 0 and len(first["nodes"]) == 2


def test_the_digest_is_kept_until_the_state_changes():
    entries = _entries(60)
    replica = _replay(entries[:50])
    first = replica.digest()
    assert replica.digest() == first  # asked again: the same answer, from the cache
    replica.apply_entry(*entries[50])
    assert replica.digest() != first  # an apply changes it
    assert replica.digest() == _replay(entries[:51]).digest()
    again = replica.digest()
    replica.restore(_replay(entries[:50]).snapshot())
    assert replica.digest() == first != again  # so does a restore


def test_a_no_op_entry_keeps_the_digest_and_digests_wait_for_agreeing_heads():
    from harness.monitor import _heads_agree

    replica = _replay(_entries(20))
    first = replica.digest()
    calls = []
    snapshot = replica.machine.snapshot
    replica.machine.snapshot = lambda: calls.append(1) or snapshot()
    replica.apply_entry(21, 2, b"")  # a new leader's no-op
    assert replica.digest() == first and not calls  # kept: no pass over the state
    head = {"applied": 21, "chain": {"head": "ab"}}
    assert _heads_agree({"n1": head, "n2": dict(head), "n3": None})  # a paused node does not hold it up
    assert not _heads_agree({"n1": head, "n2": {"applied": 20, "chain": {"head": "aa"}}})
    assert not _heads_agree({"n1": None, "n2": None})


def test_the_restart_check_judges_what_came_back():
    """After every node was killed and restarted: a lower applied index, another digest or no
    agreement is a failure; the same digest a few no-op entries later is not."""
    nodes = {"n1": {"applied": 10, "digest": "aa"}, "n2": {"applied": 10, "digest": "aa"}}
    before = {"converged": True, "applied": 10, "nodes": nodes}
    later = {n: {"applied": 11, "digest": "aa"} for n in nodes}
    assert problem_after_restart(before, {"converged": True, "applied": 11, "nodes": later}) is None
    lower = problem_after_restart(before, {"converged": True, "applied": 9, "nodes": nodes})
    assert lower is not None and "below the 10" in lower
    other = {n: {"applied": 11, "digest": "bb"} for n in nodes}
    changed = problem_after_restart(before, {"converged": True, "applied": 11, "nodes": other})
    assert changed is not None and "digest bb" in changed and "digest aa" in changed
    apart = {"converged": False, "behind": [{"node": "n2", "what": "did not answer"}]}
    assert "n2 did not answer" in (problem_after_restart(before, apart) or "")


def test_plan_key_restart_check_is_a_boolean():
    assert plans.validate({}).restart_check is True
    assert plans.validate({"restart_check": False}).restart_check is False
    with pytest.raises(plans.PlanError, match="restart_check"):
        plans.validate({"restart_check": "no"})


@pytest.mark.cluster
def test_entries_lost_in_a_crash_of_every_node_fail_the_restart_check(tmp_path):
    """A bug no fault of the run shows (no faults at all): acknowledged entries that are not
    on disk. Only the kill of every node at the end reveals it; without that check the same
    run passes."""
    plan = {**SHORT, "time_limit": 6, "nemesis": [], "bug": "lose-unsynced"}
    outcome = run_plan(None, plan, tmp_path / "store", progress=False)
    checks = outcome.results.get("checks")
    assert outcome.exit_code == verdicts.EXIT_NOT_RECOVERED, checks
    restart = outcome.results["recovery"]["restart"]
    assert restart["valid"] is False and "lost" in restart["note"], restart
    outcome = run_plan(None, {**plan, "restart_check": False}, tmp_path / "store", progress=False)
    assert outcome.exit_code == verdicts.EXIT_VALID, outcome.results.get("checks")
    assert "restart" not in outcome.results["recovery"]
