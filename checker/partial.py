"""Partial linearizations, as Porcupine shows them: for each operation, the longest
linearizable prefix found that includes it.

The check itself needs only a yes or no (and the deepest prefix, for the report); a person
looking at a failure wants more: hovering an operation, which order of which operations
could have happened up to and including it. This is a separate, bounded walk of the same
search space (Wing & Gong's, with the configuration memo), run only to draw a failing
group: at every dead end the path so far is a maximal partial linearization, and each of
its operations keeps the longest one it was part of.

Paths share their prefixes, so they are kept as a tree (``nodes``: ``[op id, parent]``),
and each operation names its node: the page walks parents to rebuild the order.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from checker.model import Model, Operation

BUDGET_S = 1.5  # seconds of search per group; past it the longest found so far are shown
MAX_STEPS = 400_000  # configurations visited, whatever the clock says


@dataclass
class Partials:
    """``nodes[k] = [op id, parent k or -1]``; ``best[op id] = k``: the end of its longest path.

    ``complete`` is False when the budget ran out: a longer one may exist.
    """

    nodes: list[list[int]] = field(default_factory=list)
    best: dict[int, int] = field(default_factory=dict)
    complete: bool = True

    def order(self, op_id: int) -> list[int]:
        """The longest partial linearization with ``op_id``, in linearization order."""
        k = self.best.get(op_id, -1)
        out = []
        while k >= 0:
            op, k = self.nodes[k]
            out.append(op)
        return out[::-1]

    def to_json(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "best": {str(k): v for k, v in self.best.items()},
            "complete": self.complete,
        }


def partial_linearizations(
    model: Model, ops: list[Operation], budget_s: float = BUDGET_S, max_steps: int = MAX_STEPS
) -> Partials:
    """For each op of ``ops`` (one group), the longest partial linearization found with it."""
    ops = sorted(ops, key=lambda o: (o.call, o.id))
    n = len(ops)
    inf = float("inf")
    rets = [inf if op.ret is None else op.ret for op in ops]
    deadline = time.perf_counter() + budget_s
    tree: list[tuple[int, int]] = []  # (position in ops, parent node)
    best_len = [0] * n
    best_node = [-1] * n
    seen: set[tuple[int, Hashable]] = set()
    # A frame: (linearized bitset, state, tree node of the path's end, path length)
    stack: list[tuple[int, Hashable, int, int]] = [(0, model.init(), -1, 0)]
    steps = 0
    complete = True
    while stack:
        done, state, node, length = stack.pop()
        steps += 1
        if steps > max_steps or (steps % 64 == 0 and time.perf_counter() > deadline):
            complete = False
            break
        extended = False
        earliest = inf  # the earliest return among the ops not yet linearized, in call order so far
        for i in range(n):
            if done >> i & 1:
                continue
            op = ops[i]
            if op.call > earliest:
                break  # every later op was called after some pending op returned
            earliest = min(earliest, rets[i])
            possible, after = model.step(state, op)
            if not possible:
                continue
            key = (done | 1 << i, after)
            if key in seen:
                continue
            seen.add(key)
            tree.append((i, node))
            stack.append((done | 1 << i, after, len(tree) - 1, length + 1))
            extended = True
        if not extended and length:
            _credit(tree, node, length, best_len, best_node)
    for _, _, node, length in stack:  # paths cut short by the budget still count
        if length:
            _credit(tree, node, length, best_len, best_node)
    return _export(ops, tree, best_node, complete)


def _credit(
    tree: list[tuple[int, int]], node: int, length: int, best_len: list[int], best_node: list[int]
) -> None:
    """Every op on the path ending at ``node`` was in a partial linearization of ``length`` ops."""
    k = node
    while k >= 0:
        i, parent = tree[k]
        if best_len[i] < length:
            best_len[i], best_node[i] = length, node
        k = parent


def _export(
    ops: list[Operation], tree: list[tuple[int, int]], best_node: list[int], complete: bool
) -> Partials:
    """Only the tree nodes some op's best path goes through, renumbered, with op ids."""
    keep: dict[int, int] = {}
    order: list[int] = []
    for end in sorted({k for k in best_node if k >= 0}):
        chain = []
        k = end
        while k >= 0 and k not in keep:
            chain.append(k)
            k = tree[k][1]
        for k in reversed(chain):
            keep[k] = len(order)
            order.append(k)
    nodes = [[ops[tree[k][0]].id, keep[tree[k][1]] if tree[k][1] >= 0 else -1] for k in order]
    best = {ops[i].id: keep[k] for i, k in enumerate(best_node) if k >= 0}
    return Partials(nodes, best, complete)
