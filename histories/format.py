"""The history record and what every reader shares: the format's vocabulary in one module.

``Op`` is one record, with Jepsen's fields; ``RawOp`` a record as a file wrote it, before its
dialect's conventions make it an ``Op``; ``History`` what a reader returns; the metadata
record opens a ``history.jsonl``; ``check_ops`` is the check every reader applies once values
are canonical.

A history is a list of ``Op`` in the order they happened. An operation appears twice:
once as ``invoke`` and once as its completion (``ok``, ``fail`` or ``info``), both from
the same ``process``; a process has at most one operation in flight.

Canonical values (every reader translates its format's conventions into these, so that a
model has one meaning whatever the file said):

* register / cas-register: ``read`` -> invoke ``None``, ok = the value read;
  ``write`` -> the value; ``cas`` -> invoke ``[expected, new]``, completion
  ``[expected, new, swapped]``: an ``ok`` with ``swapped`` false is a compare that failed,
  a definite observation that the register did not hold ``expected``. ``fail`` always
  means the operation did not take place. A read whose result is unknown is ``info``.
* kv: ``[key, value]`` for ``get``/``put``/``append`` (get's invoke value is ``None``).
* chat: invoke value = the operation's arguments plus ``"group"`` (the independent user
  group it touches); ok value = ``{"status": ..., "value": ...}`` as raftchat answered.
* ``process`` is ``"nemesis"`` for fault events (``f`` names the fault, ``value`` what was
  done); checkers skip those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TYPES = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"


@dataclass(slots=True)
class Op:
    index: int
    type: str
    process: int | str
    f: str
    value: Any = None
    time: int = 0  # nanoseconds since the start of the test (monotonic)
    node: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "process": self.process,
            "f": self.f,
            "value": self.value,
            "time": self.time,
        }
        if self.node is not None:
            data["node"] = self.node
        if self.error is not None:
            data["error"] = self.error
        return data


class HistoryError(ValueError):
    """A history file that cannot be read; says which file, which line and what is wrong."""

    def __init__(self, path: str, line: int | None, what: str) -> None:
        self.path, self.line, self.what = path, line, what
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {what}")


# ----------------------------------------------------------------- raw records


@dataclass(slots=True)
class RawOp:
    """Format-level fields; keeps its line (for errors) and any keys Op has no field for.

    ``value`` may still hold :class:`histories.edncodec.Keyword` markers such as
    ``:timed-out``, which only a dialect knows how to read.
    """

    line: int
    type: str
    process: int | str
    f: str
    value: Any = None
    index: int | None = None
    time: int | None = None
    node: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------- what a reader returns


@dataclass(slots=True)
class History:
    """A history read from ``path``.

    ``model_hint`` names the model the file was recorded for ("cas-register", "kv") when
    the format says so, and ``initial_hint`` the model's initial value (meaningful only
    with a model hint). ``dialect`` names the conventions that turned the file's values
    into canonical ones. ``synthetic_time`` is true when the file had no times and
    ``Op.time`` was set to the index: order is all it then carries. ``metadata`` is the
    file's own record of what it is (``histories.format``), when it has one.
    """

    ops: list[Op]
    format: str
    model_hint: str | None
    initial_hint: Any
    path: str
    dialect: str = "canonical"
    synthetic_time: bool = False
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.ops)


# ----------------------------------------------------------------- the metadata record
# The metadata record that opens a ``history.jsonl``: what the history is a history of.
#
# A history file that names its workload, model and system can be checked without guessing a
# model (``harness check FILE``). The record is the first line, an object with ``"meta":
# "history"``; it has none of an operation's fields, so it can never be mistaken for one,
# and every reader of the format skips it (``histories.jsonl``). Files without it (older
# runs, other tools) read as before.
#

MARK = "history"  # the value of the record's "meta" key
FIELDS = ("workload", "model", "system", "harness")  # what a harness-written record always has


def metadata_record(**fields: Any) -> dict[str, Any]:
    """A metadata record: ``{"meta": "history", **fields}`` (None values left out)."""
    return {"meta": MARK, **{k: v for k, v in fields.items() if v is not None}}


def is_metadata(record: Any) -> bool:
    return type(record) is dict and record.get("meta") == MARK


def first_metadata(text: str) -> dict[str, Any] | None:
    """The metadata record on the first non-blank line of jsonl ``text``, if it is one."""
    for line in text.split("\n", 8):  # a blank line or two before it at most
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return None
        return record if is_metadata(record) else None
    return None


# ----------------------------------------------------------------- checks


def check_ops(ops: Sequence[Op], lines: Sequence[int], path: str) -> None:
    """Raise HistoryError unless indexes increase and each client process alternates
    invoke / completion with matching ``f``. The nemesis is exempt: Jepsen logs its
    events as lone ``info`` records or overlapping pairs. An invocation still open at the
    end is allowed (it is the same as ``info``)."""
    check = Validator(path).check
    for op, line in zip(ops, lines, strict=True):
        check(op, line)


class Validator:
    """``check_ops`` one record at a time, for readers that stream: it keeps only the
    operations in flight, never the history."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.in_flight: dict[int | str, tuple[str, int]] = {}
        self.previous = -1

    def check(self, op: Op, line: int) -> None:
        """Raise HistoryError if ``op`` (at ``line``) cannot follow the records before it."""
        path, in_flight = self.path, self.in_flight
        if op.index <= self.previous:
            raise HistoryError(
                path, line, f"index {op.index} is not greater than the previous index {self.previous}"
            )
        self.previous = op.index
        if op.process == NEMESIS:
            return
        if op.type == "invoke":
            if op.process in in_flight:
                f, at = in_flight[op.process]
                raise HistoryError(
                    path,
                    line,
                    f"process {op.process!r} invokes {op.f!r} while its {f!r} "
                    f"invoked at line {at} is in flight",
                )
            in_flight[op.process] = (op.f, line)
            return
        invocation = in_flight.pop(op.process, None)
        if invocation is None:
            raise HistoryError(
                path,
                line,
                f"{op.type} {op.f!r} by process {op.process!r} without an invocation by that process",
            )
        if invocation[0] != op.f:
            raise HistoryError(
                path,
                line,
                f"{op.type} {op.f!r} by process {op.process!r} completes its {invocation[0]!r} "
                f"invoked at line {invocation[1]}",
            )
