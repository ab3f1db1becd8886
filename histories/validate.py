"""Checks every reader applies once values are canonical: indexes and invoke/complete pairing."""

from __future__ import annotations

from collections.abc import Sequence

from histories.op import NEMESIS, HistoryError, Op


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
