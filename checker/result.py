"""The verdict of a check, with enough detail for a person to act on a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checker.model import Operation

UNKNOWN = "unknown"


@dataclass
class Stuck:
    """An operation that could not be linearized next, and why."""

    op: int  # Operation.id
    description: str  # the model's describe_op
    expected: str  # what the model would have returned at that point
    observed: str  # what the history says it returned


@dataclass
class Failure:
    """Where the search for one partition gave up."""

    partition: int  # index into CheckResult.partition_ops
    longest: list[int]  # op ids of the longest linearizable prefix found, in linearization order
    states: list[str]  # model state (described) after each op of ``longest``; states[-1] is "the state"
    state: str  # model state at the point of failure (after ``longest``)
    stuck: list[Stuck]  # candidates that could not go next
    minimal: list[int] | None = None  # op ids of a small sub-history that is still not linearizable
    minimal_longest: list[int] | None = None  # its longest linearizable prefix
    minimal_stuck: list[Stuck] | None = None


@dataclass
class CheckResult:
    valid: bool | str  # True, False or UNKNOWN
    model: str
    ops: list[Operation]  # every operation checked (fail and nemesis records removed)
    partition_ops: list[list[int]]  # op ids per partition
    linearizations: list[list[int] | None] = field(default_factory=list)  # per partition, when linearizable
    failure: Failure | None = None
    elapsed: float = 0.0  # seconds spent searching
    reason: str = ""  # for UNKNOWN: which limit was reached, and the partitions left undecided
    undecided: list[int] = field(default_factory=list)  # partitions neither proven nor refuted
    decided_by: list[str] = field(default_factory=list)  # per partition: "inference", "search", ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (without the full op list, which the history already has)."""
        data: dict[str, Any] = {
            "valid": self.valid,
            "model": self.model,
            "ops": len(self.ops),
            "partitions": len(self.partition_ops),
            "elapsed": round(self.elapsed, 6),
        }
        if self.reason:
            data["reason"] = self.reason
        if self.undecided:
            data["undecided_partitions"] = self.undecided
        data["decided_by"] = {
            how: self.decided_by.count(how) for how in ("inference", "search") if how in self.decided_by
        }
        if self.failure is not None:
            f = self.failure
            by_id = {op.id: op for op in self.ops}
            data["failure"] = {
                "partition": f.partition,
                "partition_ops": len(self.partition_ops[f.partition]),
                "longest_prefix": f.longest,
                "state": f.state,
                "stuck": [s.__dict__ for s in f.stuck],
                "minimal": f.minimal,
                "minimal_stuck": [s.__dict__ for s in f.minimal_stuck or []],
                "minimal_history": [_op_json(by_id[i]) for i in f.minimal or []],
            }
        return data


def _op_json(op: Operation) -> dict[str, Any]:
    return {
        "id": op.id,
        "index": op.call_index,  # the invocation's index in the history, as the timeline numbers it
        "node": op.node,
        "process": op.process,
        "f": op.f,
        "input": op.input,
        "output": op.output,
        "call": op.call,
        "ret": op.ret,
        "call_s": op.call / 1e9,  # seconds since the start of the test: the timeline's clock
        "ret_s": None if op.ret is None else op.ret / 1e9,
    }
