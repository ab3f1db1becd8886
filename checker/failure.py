"""A failed search explained: the deepest prefix it reached, the states along it, and the
operations that could have gone next but that the model rejects there."""

from __future__ import annotations

from collections.abc import Hashable

from checker.linearizable import PartitionResult
from checker.model import Model, Operation
from checker.result import Failure, Stuck


def explain(model: Model, ops: list[Operation], partition: int, outcome: PartitionResult) -> Failure:
    """A Failure from the deepest point the search reached: the prefix, its states, and
    the operations that could have gone next but that the model rejects there. ``ops``
    holds the prefix's operations: the failed partition's are enough (no table of the
    whole history is built for the few the prefix names).

    ``states`` has one entry per op of ``longest``; with an empty prefix, the initial state.
    """
    by_id = {op.id: op for op in ops}
    state: Hashable = model.init()
    states = []
    for op_id in outcome.longest:
        _, state = model.step(state, by_id[op_id])
        states.append(model.describe_state(state))
    if not states:
        states.append(model.describe_state(state))
    return Failure(
        partition=partition,
        longest=list(outcome.longest),
        states=states,
        state=model.describe_state(state),
        stuck=stuck_ops(model, state, outcome.candidates),
    )


def stuck_ops(model: Model, state: Hashable, candidates: list[Operation]) -> list[Stuck]:
    """The candidates the model rejects in ``state``; if it rejects none (every one fits
    but leads to a dead end further on), all known-outcome candidates."""
    rejected = [op for op in candidates if not model.step(state, op)[0]]
    chosen = rejected or [op for op in candidates if op.ret is not None]
    stuck = []
    for op in chosen:
        description = model.describe_op(op)
        observed = description.rsplit(" -> ", 1)[1] if " -> " in description else "ok"
        stuck.append(Stuck(op.id, description, model.expected(state, op), observed))
    return stuck
