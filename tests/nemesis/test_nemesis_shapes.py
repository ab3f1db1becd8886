"""Partition shapes: the properties each shape promises, for 3 to 7 nodes and many seeds.

What a cut means is computed here from its definition (``sees``, ``groups``), not with the
module's own ``reaches``/``components``, which are checked against it on random cuts.
"""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from nemesis import shapes
from nemesis.shapes import (
    bridge,
    describe,
    halves,
    isolate,
    isolate_follower,
    isolate_leader,
    isolate_random,
    majorities_ring,
    make_cut,
)

SIZES = range(3, 8)
SEEDS = range(60)


def ids(n: int) -> list[str]:
    return [f"n{i + 1}" for i in range(n)]


def all_pairs(nodes: list[str]) -> set[frozenset[str]]:
    return {frozenset(p) for p in combinations(nodes, 2)}


def majority(n: int) -> int:
    """More than half."""
    return next(k for k in range(n + 1) if 2 * k > n)


def views_of(nodes: list[str], cut: set[frozenset[str]] | frozenset) -> dict[str, set[str]]:
    """Whom each node talks to directly: itself and every node it is not cut from."""
    return {a: {a} | {b for b in nodes if frozenset((a, b)) not in cut} for a in nodes}


def groups_of(nodes: list[str], cut: set[frozenset[str]] | frozenset) -> list[set[str]]:
    """The groups within which messages can travel, relayed or not: views merged while they overlap."""
    parts = [set(view) for view in views_of(nodes, cut).values()]
    merging = True
    while merging:
        merging = False
        for i, j in combinations(range(len(parts)), 2):
            if parts[i] & parts[j]:
                parts[i] |= parts.pop(j)
                merging = True
                break
    return sorted(parts, key=min)


def clean(nodes: list[str], cut: set[frozenset[str]] | frozenset) -> bool:
    """A clean split: every node sees exactly its whole group."""
    views = views_of(nodes, cut)
    return all(views[n] == group for group in groups_of(nodes, cut) for n in group)


def described(nodes: list[str], cut: set[frozenset[str]] | frozenset) -> dict:
    """What the history says of a cut: its pairs, and the groups of a clean split or else who sees whom."""
    said: dict = {"cut": sorted(sorted(p) for p in cut)}
    if clean(nodes, cut):
        said["components"] = [sorted(g) for g in groups_of(nodes, cut)]
    else:
        said["sees"] = {n: sorted(v) for n, v in sorted(views_of(nodes, cut).items())}
    return said


def random_cut(rng: random.Random, nodes: list[str]) -> set[frozenset[str]]:
    return {p for p in all_pairs(nodes) if rng.random() < rng.choice([0.2, 0.5, 0.8])}


@pytest.mark.parametrize("n", SIZES)
def test_the_modules_views_and_groups_follow_their_definition(n):
    nodes = ids(n)
    rng = random.Random(n)
    for _ in range(200):
        cut = random_cut(rng, nodes)
        assert shapes.reaches(nodes, cut) == views_of(nodes, cut)
        assert shapes.components(nodes, cut) == groups_of(nodes, cut)  # in the order of their first node
        assert shapes.is_clean(nodes, cut) == clean(nodes, cut)
        assert describe(nodes, cut) == described(nodes, cut)
    assert majority(n) == shapes.majority(n)


@pytest.mark.parametrize("n", SIZES)
def test_halves_are_two_disjoint_sides_with_every_cross_pair_cut(n):
    nodes = ids(n)
    seen_splits = set()
    for seed in SEEDS:
        cut = halves(nodes, random.Random(seed))
        groups = groups_of(nodes, cut)
        assert sorted(len(g) for g in groups) == [n // 2, n - n // 2]
        a, b = groups
        assert a | b == set(nodes) and not a & b
        assert cut == {frozenset((x, y)) for x in a for y in b}
        assert clean(nodes, cut)
        seen_splits.add(frozenset(map(frozenset, groups)))
    assert len(seen_splits) > 1, "the split should depend on the seed"


@pytest.mark.parametrize("n", SIZES)
def test_isolate_cuts_one_node_from_all_others(n):
    nodes = ids(n)
    for node in nodes:
        for cut in (isolate(nodes, node), isolate_leader(nodes, node)):
            assert views_of(nodes, cut)[node] == {node}
            assert sorted(map(sorted, groups_of(nodes, cut))) == sorted([[node], sorted(set(nodes) - {node})])
    lonely = set()
    for seed in SEEDS:
        sees = views_of(nodes, isolate_random(nodes, random.Random(seed)))
        (alone,) = [x for x in nodes if sees[x] == {x}]
        lonely.add(alone)
    assert lonely == set(nodes), "every node gets isolated for some seed"
    with pytest.raises(ValueError, match="not one of"):
        isolate(nodes, "nope")


@pytest.mark.parametrize("n", SIZES)
def test_isolate_follower_cuts_off_one_node_that_is_never_the_leader(n):
    nodes = ids(n)
    for leader in nodes:
        lonely = set()
        for seed in SEEDS:
            cut = isolate_follower(nodes, leader, random.Random(seed))
            sees = views_of(nodes, cut)
            (alone,) = [x for x in nodes if sees[x] == {x}]
            assert alone != leader
            assert sees[leader] == set(nodes) - {alone}, "the leader keeps everyone else"
            assert cut == isolate(nodes, alone)
            lonely.add(alone)
        assert lonely == set(nodes) - {leader}, "every follower gets isolated for some seed"


def test_isolate_follower_draws_the_same_rank_whoever_leads():
    """The seed's stream does not depend on the leader: the same draw, shifted past it."""
    nodes = ids(5)
    for seed in SEEDS:
        alone = {}
        for leader in nodes:
            rng = random.Random(seed)
            cut = isolate_follower(nodes, leader, rng)
            (alone[leader],) = [x for x, seen in views_of(nodes, cut).items() if seen == {x}]
            alone[leader, "next"] = rng.random()
        followers = {leader: [x for x in nodes if x != leader] for leader in nodes}
        ranks = {followers[leader].index(alone[leader]) for leader in nodes}
        assert len(ranks) == 1
        assert len({alone[leader, "next"] for leader in nodes}) == 1


def test_isolate_follower_refuses_what_has_no_follower():
    assert isolate_follower(["n1", "n2"], "n1", random.Random(0)) == {frozenset({"n1", "n2"})}
    with pytest.raises(ValueError, match="needs a node besides the leader 'n1'"):
        isolate_follower(["n1"], "n1", random.Random(0))
    with pytest.raises(ValueError, match="leader 'n9' is not one of"):
        isolate_follower(ids(3), "n9", random.Random(0))


@pytest.mark.parametrize("n", SIZES)
def test_ring_every_node_sees_a_distinct_majority(n):
    nodes = ids(n)
    for seed in SEEDS:
        cut = majorities_ring(nodes, random.Random(seed))
        assert cut, "a ring always cuts something for n >= 3"
        sees = views_of(nodes, cut)
        for node, view in sees.items():
            assert node in view
            assert len(view) >= majority(n), (node, view)
        views = [frozenset(v) for v in sees.values()]
        assert len(set(views)) == n, f"two nodes see the same majority: {sees}"
        assert len(groups_of(nodes, cut)) == 1, "the ring stays connected through relays"
        assert not clean(nodes, cut)
        if n >= 4:
            # A proper ring: nobody sees everyone, every node sees the same number of nodes.
            assert all(len(v) < n for v in views)
            assert len({len(v) for v in views}) == 1
        else:
            # n = 3 (documented): the ring is broken at one link; the middle node sees everyone.
            assert len(cut) == 1
            assert sorted(len(v) for v in views) == [2, 2, 3]


def test_ring_sizes_match_the_documented_windows():
    expected_view = {3: None, 4: 3, 5: 3, 6: 5, 7: 5}
    for n, view in expected_view.items():
        sees = views_of(ids(n), majorities_ring(ids(n), random.Random(1)))
        if view is not None:
            assert {len(v) for v in sees.values()} == {view}, n


def test_ring_has_nothing_to_cut_below_three_nodes():
    assert majorities_ring(["a"], random.Random(0)) == frozenset()
    assert majorities_ring(["a", "b"], random.Random(0)) == frozenset()


@pytest.mark.parametrize("n", SIZES)
def test_bridge_node_sees_everyone_and_the_halves_do_not_see_each_other(n):
    nodes = ids(n)
    bridges = set()
    for seed in SEEDS:
        cut = bridge(nodes, random.Random(seed))
        sees = views_of(nodes, cut)
        (middle,) = [x for x in nodes if sees[x] == set(nodes)]
        assert shapes.bridge_node(nodes, cut) == middle
        bridges.add(middle)
        rest = set(nodes) - {middle}
        # The rest splits into two sides that are cliques, cut completely from each other.
        side_a = sees[min(rest)] - {middle}
        side_b = rest - side_a
        assert side_a and side_b
        assert sorted([len(side_a), len(side_b)]) == [(n - 1) // 2, n - 1 - (n - 1) // 2]
        assert cut == {frozenset((x, y)) for x in side_a for y in side_b}
        for x in side_a:
            assert sees[x] == side_a | {middle}
        for y in side_b:
            assert sees[y] == side_b | {middle}
    assert bridges == set(nodes), "every node is the bridge for some seed"


@pytest.mark.parametrize("shape", shapes.ALL_SHAPES)
def test_shapes_are_deterministic_given_the_seed_and_ignore_input_order(shape):
    nodes = ids(5)
    for seed in range(10):
        first = make_cut(shape, nodes, random.Random(seed), leader="n2")
        again = make_cut(shape, list(reversed(nodes)), random.Random(seed), leader="n2")
        assert first == again
        assert first <= all_pairs(nodes)


def test_make_cut_errors():
    for shape in shapes.LEADER_SHAPES:
        with pytest.raises(ValueError, match=f"the '{shape}' shape needs the current leader"):
            make_cut(shape, ids(3), random.Random(0))
    with pytest.raises(ValueError, match="unknown partition shape"):
        make_cut("triangle", ids(3), random.Random(0))


def test_describe_lists_components_for_clean_cuts_and_views_otherwise():
    nodes = ids(5)
    clean = describe(nodes, isolate(nodes, "n3"))
    assert clean == {
        "cut": [["n1", "n3"], ["n2", "n3"], ["n3", "n4"], ["n3", "n5"]],
        "components": [["n1", "n2", "n4", "n5"], ["n3"]],
    }
    ring = describe(nodes, majorities_ring(nodes, random.Random(3)))
    assert "components" not in ring and set(ring["sees"]) == set(nodes)
    assert all(len(v) == 3 for v in ring["sees"].values())
    assert describe(nodes, frozenset()) == {"cut": [], "components": [nodes]}


@pytest.mark.parametrize("n", [3, 5, 7])
@pytest.mark.parametrize("shape", ["halves", "one"])
def test_leader_to_minority_moves_the_leader_to_the_small_side_keeping_the_shape(n, shape):
    nodes = [f"n{i}" for i in range(1, n + 1)]
    for seed in range(20):
        cut = shapes.make_cut(shape, nodes, random.Random(seed))
        for leader in nodes:
            moved = shapes.leader_to_minority(nodes, cut, leader, random.Random(seed))
            before = sorted(map(len, shapes.components(nodes, cut)))
            groups = sorted(shapes.components(nodes, moved), key=len)
            assert sorted(map(len, groups)) == before and shapes.is_clean(nodes, moved)
            assert leader in groups[0], (cut, leader, moved)
            assert len(moved) == len(cut)
            if leader in sorted(shapes.components(nodes, cut), key=len)[0]:
                assert moved == cut, "already cut off: the draw stands"


def test_leader_to_minority_leaves_even_splits_and_non_clean_cuts_alone():
    nodes = ["n1", "n2", "n3", "n4"]
    cut = shapes.halves(nodes, random.Random(1))
    assert shapes.leader_to_minority(nodes, cut, "n1", random.Random(0)) == cut
    five = [f"n{i}" for i in range(1, 6)]
    ring = shapes.majorities_ring(five, random.Random(2))  # one group: relayed messages
    assert shapes.leader_to_minority(five, ring, "n3", random.Random(0)) == ring
