"""Linearizability checking of histories against sequential models.

``check(ops, model)`` pairs the history's records into operations, splits them into
independent partitions (the model's ``partition``: P-compositionality), searches each one
for a linearization, and on failure explains where the search got stuck and shrinks the
failing partition to a small counterexample.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from checker.linearizable import PartitionResult, check_partition
from checker.model import Model, Operation
from checker.models import get_model
from checker.prepare import operations
from checker.result import UNKNOWN, CheckResult, Failure, Stuck
from histories.op import Op

__all__ = ["check", "check_operations", "explain", "get_model", "CheckResult", "Failure", "Stuck"]


def check(
    history_ops: list[Op], model: Model | str, timeout: float | None = None, shrink: bool = True
) -> CheckResult:
    """Is the history linearizable for ``model`` (a Model or a name for ``get_model``)?

    ``timeout`` (seconds) bounds the whole search; past it the verdict is "unknown".
    Partitions are checked in order and the first non-linearizable one ends the check
    (later ones keep ``None`` in ``linearizations``). Shrinking a failure has its own
    small budget (3 s) on top.
    """
    return check_operations(operations(history_ops), model, timeout, shrink)


def check_operations(
    ops: list[Operation], model: Model | str, timeout: float | None = None, shrink: bool = True
) -> CheckResult:
    """``check`` for operations already paired (``checker.prepare.operations``)."""
    if isinstance(model, str):
        model = get_model(model)
    start = time.perf_counter()
    deadline = None if timeout is None else start + timeout
    parts = model.partition(ops)
    result = CheckResult(
        valid=True, model=model.name, ops=ops, partition_ops=[[op.id for op in p] for p in parts]
    )
    timed_out: int | None = None
    for index, part in enumerate(parts):
        if deadline is not None and time.perf_counter() > deadline:
            outcome = PartitionResult(UNKNOWN, None)
        else:
            outcome = check_partition(model, part, deadline)
        result.linearizations.append(outcome.linearization)
        if outcome.valid is False:
            result.valid = False
            result.failure = explain(model, ops, index, outcome)
            result.linearizations.extend([None] * (len(parts) - index - 1))
            break
        if outcome.valid == UNKNOWN and timed_out is None:
            timed_out = index
    else:
        if timed_out is not None:
            result.valid = UNKNOWN
            result.reason = f"time limit of {timeout:g} s reached in partition {timed_out} of {len(parts)}"
    result.elapsed = time.perf_counter() - start
    if result.failure is not None and shrink:
        from checker.shrink import shrink_failure

        shrink_failure(model, parts[result.failure.partition], result.failure)
    return result


def explain(model: Model, ops: list[Operation], partition: int, outcome: PartitionResult) -> Failure:
    """A Failure from the deepest point the search reached: the prefix, its states, and
    the operations that could have gone next but that the model rejects there.

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
