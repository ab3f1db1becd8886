"""Turn a history (invoke/completion records) into the operations the search works on.

Jepsen's rules: an invoke is paired with the next completion of the same process; a
``fail`` completion means the operation did not happen, so the pair is dropped; an
``info`` completion, or an invoke still open at the end, is an operation with an unknown
outcome (``ret`` None): it may have taken effect at any time after its call, or never.
Nemesis records are fault events, not operations.

Times: the search orders operations in real time. ``Op.time`` is used when the history
has times (not all zero) and they never go backwards in record order; otherwise (EDN and
Porcupine logs carry no time) the record order is the only clock and the record index is
used, which also makes every time distinct.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from checker.model import Operation
from histories.format import NEMESIS, Op


def operations(ops: list[Op]) -> list[Operation]:
    """Pair invocations with completions; the result is in invocation order, id = position."""
    with no_collection():
        return _pair(ops)


@contextmanager
def no_collection() -> Iterator[None]:
    """Without the cyclic garbage collector: checking builds millions of small objects in
    no cycles, and the collector would rescan all that are alive, again and again (on a
    million-operation history, pairing alone went from 30 s to 3 s without it)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _pair(ops: list[Op]) -> list[Operation]:
    """Operations made at their invocation, in invocation order (which is call order: the
    clock never goes backwards in record order), completed when their completion comes;
    no list of pairs and no sort, so a million operations take no more memory than they need."""
    records = [op for op in ops if op.process != NEMESIS]
    times = _clock(records)
    open_by_process: dict[Any, Operation] = {}
    made: list[Operation] = []
    failed = False
    for op, t in zip(records, times, strict=True):
        if op.type == "invoke":
            # A new invoke while one is open: the earlier one never completed (unknown).
            started = Operation(-1, op.process, op.f, op.value, None, t, None, op.index, -1, op.node)
            open_by_process[op.process] = started
            made.append(started)
            continue
        if op.type not in ("ok", "fail", "info"):
            continue
        started = open_by_process.pop(op.process, None)
        if started is None:
            continue  # a completion without an invocation: nothing to pair it with
        started.ret_index = op.index
        if op.node:
            started.node = op.node  # the node that answered, after any redirects
        if op.type == "ok":
            started.output, started.ret = op.value, t
        elif op.type == "fail":
            started.id, failed = _FAILED, True
    result = [op for op in made if op.id != _FAILED] if failed else made
    for index, op in enumerate(result):
        op.id = index
    return result


_FAILED = -2  # the id of an operation that failed (it did not happen): dropped


def _clock(records: list[Op]) -> list[int]:
    """The time of each record: its own time when usable, else its record index."""
    times = [op.time or 0 for op in records]
    usable = any(times) and all(a <= b for a, b in zip(times, times[1:], strict=False))
    if usable:
        return times
    indexes = [op.index for op in records]
    if all(a < b for a, b in zip(indexes, indexes[1:], strict=False)):
        return indexes
    return list(range(len(records)))
