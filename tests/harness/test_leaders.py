"""Leader changes from the node monitor's samples, and what a minimal anomaly straddled."""

from __future__ import annotations

from harness.leaders import anomaly_context, describe, leader_changes


def _s(t: float, node: str, role: str, term: int, up: bool = True) -> dict:
    return {"t": t, "node": node, "role": role, "term": term, "up": up}


def test_changes_follow_the_highest_term_and_ignore_a_deposed_leader():
    samples = [
        _s(1.0, "n1", "leader", 2),
        _s(1.1, "n2", "follower", 2),
        _s(3.0, "n2", "leader", 3),  # elected while n1 was cut off
        _s(3.2, "n1", "leader", 2),  # n1 still thinks it leads, in the old term: not the leader
        _s(4.0, "n1", "follower", 3),
        _s(6.0, "n2", "follower", 4),  # n2 steps down
        _s(6.5, "n3", "leader", 4),
    ]
    changes = leader_changes(samples)
    assert [(c["t"], c["leader"], c["previous"]) for c in changes] == [
        (1.0, "n1", None),
        (3.0, "n2", "n1"),
        (6.0, None, "n2"),
        (6.5, "n3", None),
    ]


def test_primaries_without_terms_count_too():
    samples = [
        {"t": 1.0, "node": "n1", "role": "leader", "term": 0},
        {"t": 9.0, "node": "n3", "role": "leader", "term": 0},
    ]
    assert [c["leader"] for c in leader_changes(samples)] == ["n1", "n3"]


def _op(index: int, f: str, node: str, call: float, ret: float | None) -> dict:
    return {"index": index, "f": f, "node": node, "process": index, "call_s": call, "ret_s": ret}


def test_the_context_names_who_served_and_the_change_inside_the_window():
    samples = [_s(1.0, "n1", "leader", 2), _s(5.0, "n2", "leader", 3), _s(20.0, "n3", "leader", 4)]
    failure = {"minimal_history": [_op(10, "write", "n2", 4.0, 5.5), _op(12, "read", "n1", 6.0, 6.1)]}
    context = anomaly_context(failure, samples)
    assert context["window_s"] == [4.0, 6.1]
    assert context["leader_at_start"] == "n1"
    assert [c["leader"] for c in context["leader_changes"]] == ["n2"]
    assert context["straddles_leader_change"] is True
    assert [s["node"] for s in context["served_by"]] == ["n2", "n1"]
    line = describe(context)
    assert "served by n1, n2" in line and "n2 at 5.0 s" in line


def test_no_anomaly_no_context():
    assert anomaly_context(None, []) is None
    assert anomaly_context({"minimal_history": []}, []) is None
    context = anomaly_context({"minimal_history": [_op(1, "read", "n1", 2.0, None)]}, [])
    assert context["straddles_leader_change"] is False and context["leader_at_start"] is None
    assert "no leader change inside it" in describe(context)


def test_two_primaries_at_once_are_named():
    samples = [
        _s(1.0, "n1", "leader", 0),
        _s(5.0, "n2", "leader", 0),  # promoted while n1, cut off, still takes writes
        _s(5.5, "n1", "leader", 0),
    ]
    failure = {"minimal_history": [_op(3, "write", "n1", 6.0, 6.2), _op(4, "read", "n2", 6.3, 6.4)]}
    context = anomaly_context(failure, samples)
    assert context["claiming_leadership"] == ["n1", "n2"] and not context["straddles_leader_change"]
    assert "n1 and n2 all claimed to lead" in describe(context)


def test_a_cut_off_primary_that_goes_on_claiming_does_not_take_it_back():
    samples = [
        {"t": 1.0, "node": "n1", "role": "leader", "term": 0},
        {"t": 5.0, "node": "n2", "role": "leader", "term": 0},  # promoted by the sentinels
        {"t": 6.0, "node": "n1", "role": "leader", "term": 0},  # still a primary on its side
        {"t": 9.0, "node": "n1", "role": "follower", "term": 0},  # healed: a replica now
    ]
    assert [(c["t"], c["leader"]) for c in leader_changes(samples)] == [(1.0, "n1"), (5.0, "n2")]
