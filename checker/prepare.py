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
from histories.op import NEMESIS, Op


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
    records = [op for op in ops if op.process != NEMESIS]
    times = _clock(records)
    open_by_process: dict[Any, tuple[Op, int]] = {}
    pairs: list[tuple[Op, int, Op | None, int | None]] = []  # invoke, call, completion, ret
    for op, t in zip(records, times, strict=True):
        if op.type == "invoke":
            if op.process in open_by_process:  # a new invoke: the earlier one never completed
                inv, call = open_by_process.pop(op.process)
                pairs.append((inv, call, None, None))
            open_by_process[op.process] = (op, t)
            continue
        if op.type not in ("ok", "fail", "info"):
            continue
        started = open_by_process.pop(op.process, None)
        if started is None:
            continue  # a completion without an invocation: nothing to pair it with
        pairs.append((started[0], started[1], op, t))
    pairs.extend((inv, call, None, None) for inv, call in open_by_process.values())
    pairs.sort(key=lambda p: (p[1], p[0].index))

    result: list[Operation] = []
    for inv, call, done, ret in pairs:
        if done is not None and done.type == "fail":
            continue
        known = done is not None and done.type == "ok"
        result.append(
            Operation(
                id=len(result),
                process=inv.process,
                f=inv.f,
                input=inv.value,
                output=done.value if known else None,
                call=call,
                ret=ret if known else None,
                call_index=inv.index,
                ret_index=done.index if done is not None else -1,
            )
        )
    return result


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
