"""``check``: is a history linearizable for a model, and if not, where and why.

``check(ops, model)`` pairs the history's records into operations, splits them into
independent partitions (the model's ``partition``: P-compositionality), decides each one
by inference or search (``checker.schedule``), and on failure explains where the search got
stuck (``checker.failure``) and shrinks the failing partition to a small counterexample.
"""

from __future__ import annotations

import time

from checker import memory, schedule
from checker.failure import explain
from checker.model import Model, Operation
from checker.models import get_model
from checker.prepare import no_collection, operations
from checker.result import UNKNOWN, CheckResult
from checker.shrink import shrink_failure
from histories.format import Op

MAX_NAMED = 10  # undecided partitions named in a reason before "and N more"


def check(
    history_ops: list[Op],
    model: Model | str,
    timeout: float | None = None,
    shrink: bool = True,
    max_memory: int | None = None,
    workers: int | None = None,
) -> CheckResult:
    """Is the history linearizable for ``model`` (a Model or a name for ``get_model``)?

    ``timeout`` (seconds) bounds the whole search; past it the verdict is "unknown".
    ``max_memory`` (bytes the searches may add to the process; default a quarter of the
    machine's memory) bounds the memos. Partitions are decided by inference where their
    reads reveal the order, the rest searched in turns (``checker.schedule``), and the
    first non-linearizable one ends the check (partitions left unchecked keep ``None``
    in ``linearizations``). Shrinking a failure has its own small budget (3 s) on top.
    """
    return check_operations(operations(history_ops), model, timeout, shrink, max_memory, workers=workers)


def check_operations(
    ops: list[Operation],
    model: Model | str,
    timeout: float | None = None,
    shrink: bool = True,
    max_memory: int | None = None,
    inference: bool = True,
    workers: int | None = None,
) -> CheckResult:
    """``check`` for operations already paired (``checker.prepare.operations``).
    ``inference`` False: the general search alone decides (to compare the two).
    ``workers``: processes for the first pass over a big history (None: one per core)."""
    with no_collection():
        return _check_operations(ops, model, timeout, shrink, max_memory, inference, workers)


def _check_operations(
    ops: list[Operation],
    model: Model | str,
    timeout: float | None,
    shrink: bool,
    max_memory: int | None,
    inference: bool,
    workers: int | None,
) -> CheckResult:
    if isinstance(model, str):
        model = get_model(model)
    start = time.perf_counter()
    deadline = None if timeout is None else start + timeout
    bound = memory.default_bound() if max_memory is None else max_memory
    parts = model.partition(ops)
    result = CheckResult(
        valid=True, model=model.name, ops=ops, partition_ops=[[op.id for op in p] for p in parts]
    )
    done = schedule.run(model, parts, deadline, bound, use_inference=inference, workers=workers)
    result.linearizations = [r.linearization if r is not None else None for r in done.results]
    result.decided_by = done.decided_by
    result.undecided = sorted(done.undecided)
    if done.failed is not None:
        result.valid = False
        result.failure = explain(model, parts[done.failed], done.failed, done.results[done.failed])
    elif done.undecided:
        result.valid = UNKNOWN
        result.reason = _unknown_reason(done, timeout, bound, len(parts))
    result.elapsed = time.perf_counter() - start
    if result.failure is not None and shrink:
        shrink_failure(model, done.witness or parts[done.failed], result.failure)
    return result


def _unknown_reason(done: schedule.Schedule, timeout: float | None, bound: int, total: int) -> str:
    """Why the verdict is unknown: the first limit reached, and the partitions left open."""
    listed = ", ".join(map(str, sorted(done.undecided)[:MAX_NAMED]))
    more = len(done.undecided) - MAX_NAMED
    left = f"{len(done.undecided)} of {total} partitions undecided: {listed}" + (
        f" and {more} more" if more > 0 else ""
    )
    if done.memory_partition is not None:
        return f"memory bound of {bound // memory.MIB} MiB reached in group {done.memory_partition}; {left}"
    return f"time limit of {timeout:g} s reached; {left}"
