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
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from checker.model import Operation
from histories.format import NEMESIS, Op
from histories.jsonl import iter_jsonl_ops
from histories.read import detect_text, read_history
from histories.textio import iter_lines, read_head


def operations(ops: Iterable[Op]) -> list[Operation]:
    """Pair invocations with completions; the result is in invocation order, id = position.
    ``ops`` may be a stream (``read_operations``): only the operations are kept."""
    with no_collection():
        return _pair(ops)


def read_operations(path: str | Path) -> list[Operation]:
    """The operations of a history file. A jsonl file is streamed: its records are read,
    checked and paired one at a time, so a million-operation history never sits in memory
    as records beside its operations (other formats are read whole, then paired)."""
    name = str(path)
    with no_collection():
        if detect_text(read_head(path), name) == "jsonl":
            return _pair(iter_jsonl_ops(iter_lines(path), name))
        return _pair(read_history(path).ops)


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


def _pair(records: Iterable[Op]) -> list[Operation]:
    """Operations made at their invocation, in invocation order (which is call order: the
    clock never goes backwards in record order), completed when their completion comes;
    no list of pairs and no sort, so a million operations take no more memory than they need.

    Times: each record's own while they are usable (see the module docstring), else the
    record indexes, else the records' positions, applied after the pass."""
    open_by_process: dict[Any, tuple[Operation, int]] = {}
    made: list[Operation] = []
    positions = array("q")  # per op: the position of its invoke record, then of its completion
    failed = False
    timed, monotonic, increasing = False, True, True  # what the clock can be (see _retime)
    last_time, last_index, position = 0, -1, -1
    for op in records:
        if op.process == NEMESIS:
            continue
        position += 1
        t = op.time or 0
        if t:
            timed = True
        if t < last_time:
            monotonic = False
        if op.index <= last_index:
            increasing = False
        last_time, last_index = t, op.index
        if op.type == "invoke":
            # A new invoke while one is open: the earlier one never completed (unknown).
            started = Operation(-1, op.process, op.f, op.value, None, t, None, op.index, -1, op.node)
            open_by_process[op.process] = (started, len(made))
            made.append(started)
            positions.append(position)
            positions.append(-1)
            continue
        if op.type not in ("ok", "fail", "info"):
            continue
        opened = open_by_process.pop(op.process, None)
        if opened is None:
            continue  # a completion without an invocation: nothing to pair it with
        started, k = opened
        started.ret_index = op.index
        positions[2 * k + 1] = position
        if op.node:
            started.node = op.node  # the node that answered, after any redirects
        if op.type == "ok":
            started.output, started.ret = op.value, t
        elif op.type == "fail":
            started.id, failed = _FAILED, True
    if not (timed and monotonic):
        _retime(made, positions, increasing)
    result = [op for op in made if op.id != _FAILED] if failed else made
    for index, op in enumerate(result):
        op.id = index
    return result


_FAILED = -2  # the id of an operation that failed (it did not happen): dropped


def _retime(made: list[Operation], positions: array, by_index: bool) -> None:
    """No usable times: the record indexes are the clock when they increase, else the
    records' positions (either way every time is distinct)."""
    for k, op in enumerate(made):
        known = op.ret is not None
        if by_index:
            op.call = op.call_index
            op.ret = op.ret_index if known else None
        else:
            op.call = positions[2 * k]
            op.ret = positions[2 * k + 1] if known else None
