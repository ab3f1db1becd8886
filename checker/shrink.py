"""Shrink a non-linearizable partition to a small sub-history that is still not linearizable.

Delta debugging (Zeller's ddmin) over whole operations: removing one removes its call and
its return, and the rest keep their times, so any sub-history is a real sub-history.
A person reads a handful of operations much faster than a thousand. The shrinking is
bounded (time and number of checks); a budget that runs out leaves a smaller, but not
necessarily minimal, counterexample.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from checker.failure import stuck_ops
from checker.infer import infer
from checker.linearizable import PartitionResult, check_partition
from checker.model import Model, Operation
from checker.result import Failure

Test = Callable[[list[Operation]], bool]

# Below this size a candidate must also be *explainable* (see ``explainable``); above it
# the check would cost more than it saves, and ddmin only passes through such sizes.
EXPLAIN_LIMIT = 40


def shrink_failure(
    model: Model, ops: list[Operation], failure: Failure, budget: float = 3.0, max_checks: int = 5000
) -> None:
    """Fill ``failure.minimal``, ``minimal_longest`` and ``minimal_stuck`` in place.

    When the budget does not even allow re-checking, the whole partition stands as its
    own counterexample, with the failure's own prefix and stuck operations.
    """
    target = {(s.op, s.expected) for s in failure.stuck}
    minimal = shrink(model, ops, budget, max_checks, target)
    # The search explains the small anomaly best (its stuck ops are the ones the model rejects).
    outcome = check_partition(model, minimal, time.perf_counter() + budget)
    failure.minimal = sorted(op.id for op in minimal)
    if outcome.valid is not False:
        failure.minimal_longest, failure.minimal_stuck = list(failure.longest), list(failure.stuck)
        return
    by_id = {op.id: op for op in minimal}
    state = model.init()
    for op_id in outcome.longest:
        _, state = model.step(state, by_id[op_id])
    failure.minimal_longest = list(outcome.longest)
    failure.minimal_stuck = stuck_ops(model, state, outcome.candidates)


def shrink(
    model: Model,
    ops: list[Operation],
    budget: float = 3.0,
    max_checks: int = 5000,
    target: set[tuple[int, str]] | None = None,
) -> list[Operation]:
    """A sub-list of ``ops`` (not linearizable) that is 1-minimal if the budget allows.

    ``target``: (op id, expected) pairs of the original failure's stuck ops. A sub-history
    must then fail the same way, with one of these ops stuck where the model expected the
    same answer; otherwise shrinking drifts to a trivial anomaly (in chat, one fetch
    without the account it reads: a real counterexample, but not this history's).
    """
    deadline = time.perf_counter() + budget
    checks = 0

    def fails(subset: list[Operation]) -> bool:
        nonlocal checks
        if checks >= max_checks or time.perf_counter() > deadline:
            raise _OutOfBudget
        checks += 1
        inferred = infer(model, subset)
        if inferred is not None and inferred.result.valid is True:
            return False  # proven linearizable without a search
        # A failure is searched even when inferred: the stuck operations to compare with
        # the target are the search's.
        outcome = check_partition(model, subset, deadline)
        if outcome.valid is not False:
            return False
        if target and not any(
            (s.op, s.expected) in target for s in stuck_ops(model, outcome.state, outcome.candidates)
        ):
            return False
        return len(subset) > EXPLAIN_LIMIT or explainable(model, subset, deadline)

    ops = [op for op in ops if op.ret is not None or not model.read_only(op)]
    first = decide(model, ops, deadline)
    if first.valid is not False:
        return ops
    try:
        if target and not fails(ops):
            target = None  # the search ended elsewhere this time: any failure will do
        # Two big cuts first: what was invoked after the point where the search got stuck,
        # and every pure check but the stuck ones (each usually matters little).
        if first.candidates:
            cut = max(op.call for op in first.candidates)
            prefix = [op for op in ops if op.call <= cut]
            if len(prefix) < len(ops) and fails(prefix):
                ops = prefix
        keep = {op_id for op_id, _ in target or ()}
        fewer = [op for op in ops if op.id in keep or not model.read_only(op)]
        if len(fewer) < len(ops) and fails(fewer):
            ops = fewer
    except _OutOfBudget:
        return ops
    return ddmin(ops, fails)


def decide(model: Model, ops: list[Operation], deadline: float) -> PartitionResult:
    """Inference where the sub-history reveals enough (it is exact there), else the search:
    shrinking checks hundreds of sub-histories, and most are decided without searching."""
    inferred = infer(model, ops)
    return inferred.result if inferred is not None else check_partition(model, ops, deadline)


def explainable(model: Model, ops: list[Operation], deadline: float) -> bool:
    """Can every operation, on its own, be justified by the others?

    For each completed operation, there must be some way to linearize it with any subset
    of the others taking effect. Without this, shrinking happily deletes the write that a
    read observed, and the "minimal anomaly" becomes a read of a value nobody wrote: not
    linearizable, but not the bug in the history either.
    """
    for op in ops:
        if op.ret is None:
            continue
        optional = [o if o is op else _unknown(o) for o in ops]
        if decide(model, optional, deadline).valid is not True:
            return False
    return True


def _unknown(op: Operation) -> Operation:
    """The same operation with its outcome forgotten: it may take effect, or not."""
    return Operation(op.id, op.process, op.f, op.input, None, op.call, None, op.call_index, op.ret_index)


class _OutOfBudget(Exception):
    """Raised by a test once the shrinking budget is spent: keep what was reached."""


def ddmin(items: list[Operation], fails: Test) -> list[Operation]:
    """Zeller's minimizing delta debugging: try chunks, then complements, then finer chunks.

    ``fails`` may raise _OutOfBudget: the smallest failing list found so far is returned.
    """
    n = 2
    try:
        while len(items) >= 2:
            size = len(items)
            chunks = [items[size * k // n : size * (k + 1) // n] for k in range(n)]
            reduced = next((c for c in chunks if fails(c)), None)
            if reduced is not None:
                items, n = reduced, 2
                continue
            for k in range(n):
                complement = [op for j, c in enumerate(chunks) if j != k for op in c]
                if fails(complement):
                    items, n = complement, max(n - 1, 2)
                    break
            else:
                if n >= size:
                    break
                n = min(size, 2 * n)
    except _OutOfBudget:
        pass
    return items
