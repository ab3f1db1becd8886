"""Partition shapes: the properties each shape promises, for 3 to 7 nodes and many seeds."""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from nemesis import shapes
from nemesis.shapes import (
    bridge,
    components,
    describe,
    halves,
    isolate,
    isolate_leader,
    isolate_random,
    majorities_ring,
    majority,
    make_cut,
    reaches,
)

SIZES = range(3, 8)
SEEDS = range(60)


def ids(n: int) -> list[str]:
    return [f"n{i + 1}" for i in range(n)]


def all_pairs(nodes: list[str]) -> set[frozenset[str]]:
    return {frozenset(p) for p in combinations(nodes, 2)}


@pytest.mark.parametrize("n", SIZES)
def test_halves_are_two_disjoint_sides_with_every_cross_pair_cut(n):
    nodes = ids(n)
    seen_splits = set()
    for seed in SEEDS:
        cut = halves(nodes, random.Random(seed))
        groups = components(nodes, cut)
        assert sorted(len(g) for g in groups) == [n // 2, n - n // 2]
        a, b = groups
        assert a | b == set(nodes) and not a & b
        assert cut == {frozenset((x, y)) for x in a for y in b}
        assert shapes.is_clean(nodes, cut)
        seen_splits.add(frozenset(map(frozenset, groups)))
    assert len(seen_splits) > 1, "the split should depend on the seed"


@pytest.mark.parametrize("n", SIZES)
def test_isolate_cuts_one_node_from_all_others(n):
    nodes = ids(n)
    for node in nodes:
        for cut in (isolate(nodes, node), isolate_leader(nodes, node)):
            assert reaches(nodes, cut)[node] == {node}
            assert sorted(map(sorted, components(nodes, cut))) == sorted(
                [[node], sorted(set(nodes) - {node})]
            )
    lonely = set()
    for seed in SEEDS:
        sees = reaches(nodes, isolate_random(nodes, random.Random(seed)))
        (alone,) = [x for x in nodes if sees[x] == {x}]
        lonely.add(alone)
    assert lonely == set(nodes), "every node gets isolated for some seed"
    with pytest.raises(ValueError, match="not one of"):
        isolate(nodes, "nope")


@pytest.mark.parametrize("n", SIZES)
def test_ring_every_node_sees_a_distinct_majority(n):
    nodes = ids(n)
    for seed in SEEDS:
        cut = majorities_ring(nodes, random.Random(seed))
        assert cut, "a ring always cuts something for n >= 3"
        sees = reaches(nodes, cut)
        for node, view in sees.items():
            assert node in view
            assert len(view) >= majority(n), (node, view)
        views = [frozenset(v) for v in sees.values()]
        assert len(set(views)) == n, f"two nodes see the same majority: {sees}"
        assert len(components(nodes, cut)) == 1, "the ring stays connected through relays"
        assert not shapes.is_clean(nodes, cut)
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
        sees = reaches(ids(n), majorities_ring(ids(n), random.Random(1)))
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
        sees = reaches(nodes, cut)
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


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_shapes_are_deterministic_given_the_seed_and_ignore_input_order(shape):
    nodes = ids(5)
    for seed in range(10):
        first = make_cut(shape, nodes, random.Random(seed), leader="n2")
        again = make_cut(shape, list(reversed(nodes)), random.Random(seed), leader="n2")
        assert first == again
        assert first <= all_pairs(nodes)


def test_make_cut_errors():
    with pytest.raises(ValueError, match="needs the current leader"):
        make_cut("leader", ids(3), random.Random(0))
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
