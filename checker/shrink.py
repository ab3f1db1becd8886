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

from checker.linearizable import check_partition
from checker.model import Model, Operation
from checker.result import Failure

Test = Callable[[list[Operation]], bool]


def shrink_failure(
    model: Model, ops: list[Operation], failure: Failure, budget: float = 3.0, max_checks: int = 5000
) -> None:
    """Fill ``failure.minimal``, ``minimal_longest`` and ``minimal_stuck`` in place.

    When the budget does not even allow re-checking, the whole partition stands as its
    own counterexample, with the failure's own prefix and stuck operations.
    """
    from checker import stuck_ops

    minimal = shrink(model, ops, budget, max_checks)
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
    model: Model, ops: list[Operation], budget: float = 3.0, max_checks: int = 5000
) -> list[Operation]:
    """A sub-list of ``ops`` (not linearizable) that is 1-minimal if the budget allows."""
    deadline = time.perf_counter() + budget
    checks = 0

    def fails(subset: list[Operation]) -> bool:
        nonlocal checks
        if checks >= max_checks or time.perf_counter() > deadline:
            return False
        checks += 1
        return check_partition(model, subset, deadline).valid is False

    read_only = getattr(model, "read_only", None)
    ops = [op for op in ops if op.ret is not None or not (read_only and read_only(op))]
    first = check_partition(model, ops, deadline)
    if first.valid is not False:
        return ops
    if first.candidates:  # what comes after the point where the search got stuck rarely matters
        cut = max(op.call for op in first.candidates)
        prefix = [op for op in ops if op.call <= cut]
        if len(prefix) < len(ops) and fails(prefix):
            ops = prefix
    return ddmin(ops, fails)


def ddmin(items: list[Operation], fails: Test) -> list[Operation]:
    """Zeller's minimizing delta debugging: try chunks, then complements, then finer chunks."""
    n = 2
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
    return items
