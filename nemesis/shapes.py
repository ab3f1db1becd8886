"""Partition shapes: which pairs of nodes cannot talk to each other.

Every shape is a pure function from node ids (and a seeded ``random.Random``) to a set of cut
pairs, so a run's partitions are reproducible from its seed. Cuts are symmetric (a pair is cut
in both directions), which is what both network mechanisms implement.

The shapes are Jepsen's: ``halves`` and ``isolate`` split the cluster cleanly; ``majorities_ring``
and ``bridge`` are *non-transitive*: a node can see two nodes that cannot see each other, the
situation where Raft implementations tend to go wrong (several nodes each believing they talk
to a majority).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from nemesis.net.base import Pair

Cut = frozenset[Pair]

# Shape names as the schedule and the history spell them. SHAPES is what a plain "partition"
# draws from; "follower" is only asked for by name (``partition-follower``): "one" already
# isolates a follower most of the time, and adding a shape to the draw would change the faults
# that every stored seed replays.
SHAPES = ("halves", "one", "leader", "ring", "bridge")
ALL_SHAPES = (*SHAPES, "follower")
# Shapes resolved against the leader the cluster reports when the fault starts.
LEADER_SHAPES = frozenset({"leader", "follower"})


def majority(n: int) -> int:
    """The smallest number of nodes that is more than half of ``n``."""
    return n // 2 + 1


def pair(a: str, b: str) -> Pair:
    return frozenset((a, b))


def between(*groups: Iterable[str]) -> Cut:
    """Every pair of nodes that are in two different groups: the groups cannot talk at all."""
    sets = [list(g) for g in groups]
    return frozenset(pair(a, b) for i, g in enumerate(sets) for h in sets[i + 1 :] for a in g for b in h)


def _shuffled(nodes: Sequence[str], rng: random.Random) -> list[str]:
    order = sorted(nodes)  # sorted first, so the result depends on the seed, not the caller's order
    rng.shuffle(order)
    return order


def halves(nodes: Sequence[str], rng: random.Random) -> Cut:
    """A random split into two sides of n//2 and n - n//2 nodes (the bigger side is a majority)."""
    order = _shuffled(nodes, rng)
    k = len(order) // 2
    return between(order[:k], order[k:])


def isolate(nodes: Sequence[str], node: str) -> Cut:
    """``node`` alone on one side, everyone else on the other."""
    if node not in nodes:
        raise ValueError(f"node {node!r} is not one of {', '.join(nodes)}")
    return between([node], [n for n in nodes if n != node])


def isolate_random(nodes: Sequence[str], rng: random.Random) -> Cut:
    return isolate(nodes, rng.choice(sorted(nodes)))


def isolate_leader(nodes: Sequence[str], leader: str) -> Cut:
    """The leader alone: the rest must elect a new one while the old one may still believe it leads."""
    return isolate(nodes, leader)


def isolate_follower(nodes: Sequence[str], leader: str, rng: random.Random) -> Cut:
    """One node that is not the leader, alone: it keeps its term and its state and may serve
    its own reads until it notices, while the leader keeps its majority. The draw is a rank
    among the followers, so it takes the same randomness whichever node leads."""
    if leader not in nodes:
        raise ValueError(f"the leader {leader!r} is not one of {', '.join(nodes)}")
    followers = sorted(n for n in nodes if n != leader)
    if not followers:
        raise ValueError(f"the 'follower' shape needs a node besides the leader {leader!r}")
    return isolate(nodes, followers[rng.randrange(len(followers))])


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Cut:
    """Jepsen's majorities ring: every node sees a majority (itself included), no two the same one.

    The nodes are put in a random ring and each one keeps its links to the nodes within ring
    distance k = ceil((majority - 1) / 2), so it sees 2k + 1 >= majority nodes; the window around
    each node is different from every other node's while 2k + 1 < n. Because cuts are symmetric,
    a node cannot always see *exactly* a majority: for n = 7 that would give all 7 nodes 3
    neighbours, and a graph cannot have an odd number of odd-degree nodes; each node sees 5 of 7.

    n = 3 is special: any two nodes are a majority, so the window (k = 1) is the whole cluster and
    no cut would remain. Instead the ring is broken at one random link: the two ends see
    {self, middle}, the middle sees everyone. All three views are majorities and all are
    different, but the middle one is not a *strict* majority of 2, which a symmetric cut cannot
    avoid. (This is also ``bridge`` for 3 nodes.) For n <= 2 there is nothing to cut: every
    majority is the whole cluster.
    """
    order = _shuffled(nodes, rng)
    n = len(order)
    if n <= 2:
        return frozenset()
    k = -(-(majority(n) - 1) // 2)
    if 2 * k + 1 >= n:  # only n = 3
        return frozenset({pair(order[0], order[1])})
    cut = set()
    for i, j in combinations(range(n), 2):
        distance = min(j - i, n - (j - i))
        if distance > k:
            cut.add(pair(order[i], order[j]))
    return frozenset(cut)


def bridge(nodes: Sequence[str], rng: random.Random) -> Cut:
    """Two halves that cannot talk to each other, both linked to one bridge node that sees everyone.

    The rest are split into sides of (n-1)//2 and the remainder; for n = 5 that is 2 | bridge | 2.
    """
    order = _shuffled(nodes, rng)
    if len(order) < 3:
        return frozenset()
    rest = order[1:]
    k = len(rest) // 2
    return between(rest[:k], rest[k:])


def bridge_node(nodes: Sequence[str], cut: Cut) -> str | None:
    """The node that sees everyone while others do not (the bridge of a ``bridge`` cut)."""
    sees = reaches(nodes, cut)
    full = [n for n in sees if len(sees[n]) == len(nodes)]
    return full[0] if len(full) == 1 and cut else None


def make_cut(shape: str, nodes: Sequence[str], rng: random.Random, leader: str | None = None) -> Cut:
    """The cut for a shape by name (``leader`` is needed, and only used, by LEADER_SHAPES)."""
    if shape in LEADER_SHAPES:
        if leader is None:
            raise ValueError(f"the {shape!r} shape needs the current leader")
        return isolate_leader(nodes, leader) if shape == "leader" else isolate_follower(nodes, leader, rng)
    if shape == "halves":
        return halves(nodes, rng)
    if shape == "one":
        return isolate_random(nodes, rng)
    if shape == "ring":
        return majorities_ring(nodes, rng)
    if shape == "bridge":
        return bridge(nodes, rng)
    raise ValueError(f"unknown partition shape {shape!r} (known: {', '.join(ALL_SHAPES)})")


def leader_to_minority(nodes: Sequence[str], cut: Cut, leader: str, rng: random.Random) -> Cut:
    """A clean cut with ``leader`` moved into its smallest group (in the place of one of its
    nodes, drawn by ``rng``), so the leader is cut off from the majority with the few nodes it
    still reaches; the shape and the sizes stay. A cut that already has it there is returned."""
    groups = sorted(components(nodes, cut), key=lambda g: (len(g), sorted(g)))
    if leader in groups[0] or len(groups) < 2 or len(groups[0]) == len(groups[-1]):
        return cut
    other = rng.choice(sorted(groups[0]))
    swap = {leader: other, other: leader}
    return frozenset(pair(*(swap.get(n, n) for n in p)) for p in cut)


def reaches(nodes: Iterable[str], cut: Iterable[Pair]) -> dict[str, set[str]]:
    """Whom each node can talk to directly (itself included)."""
    cut = set(cut)
    ids = list(nodes)
    return {a: {b for b in ids if a == b or pair(a, b) not in cut} for a in ids}


def components(nodes: Iterable[str], cut: Iterable[Pair]) -> list[set[str]]:
    """Connected groups under the cut (a ring or a bridge is one group: messages can be relayed)."""
    sees = reaches(nodes, cut)
    seen: set[str] = set()
    groups = []
    for start in sorted(sees):
        if start in seen:
            continue
        group, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node not in group:
                group.add(node)
                todo.extend(sees[node] - group)
        seen |= group
        groups.append(group)
    return groups


def is_clean(nodes: Iterable[str], cut: Iterable[Pair]) -> bool:
    """True when the cut splits the cluster into groups that talk fully inside and not at all across."""
    ids = list(nodes)
    sees = reaches(ids, cut)
    return all(sees[n] == group for group in components(ids, cut) for n in group)


def describe(nodes: Sequence[str], cut: Iterable[Pair]) -> dict[str, Any]:
    """The cut for the history: the pairs, and the groups (clean split) or who sees whom (otherwise)."""
    cut = set(cut)
    described: dict[str, Any] = {"cut": sorted(sorted(p) for p in cut)}
    if is_clean(nodes, cut):
        described["components"] = [sorted(g) for g in components(nodes, cut)]
    else:
        described["sees"] = {n: sorted(s) for n, s in sorted(reaches(nodes, cut).items())}
    return described
